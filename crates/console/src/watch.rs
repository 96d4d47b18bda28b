//! `/console/watch`: the API's watch stream for the signed-in user (a browser's EventSource
//! cannot sign a request; the session cookie stands for the key, as on every console page, and
//! the stream ends with that session). It counts against the same caps as the API's streams.
//! The pages' script follows it and refreshes their live part when an event arrives.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloudphone_api::AppState;
use cloudphone_api::Params;
use cloudphone_api::watch::{Holder, event_filter, resume_point, stream};

use crate::auth::signed_in;

pub async fn watch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(s) => s,
        // An EventSource cannot follow a redirect to the login page: say it plainly.
        Err(_) => return (StatusCode::UNAUTHORIZED, "Sign in again.").into_response(),
    };
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let opened = Params::from_pairs(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .and_then(|p| event_filter(&p, &session.key.account_id))
        .and_then(|f| Ok((f, resume_point(last)?)));
    let (filter, from) = match opened {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    // The stream ends with the session (a logout, the key disabled), not only with the key.
    let holder = Holder {
        key_id: session.key.key_id,
        session: Some(session.generation),
    };
    match stream(state, holder, filter, from).await {
        Ok(sse) => sse.into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, format!("{}: {e}", e.code())).into_response()
        }
    }
}
