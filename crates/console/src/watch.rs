//! `/console/watch`: the API's watch stream for the signed-in user (a browser's EventSource
//! cannot sign a request; the session cookie stands for the key, as on every console page).
//! The pages' script follows it and refreshes their live part when an event arrives.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloudphone_api::AppState;
use cloudphone_api::Params;
use cloudphone_api::watch::{event_filter, resume_point, stream};

use crate::auth::signed_in;

pub async fn watch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(session) => session.key,
        // An EventSource cannot follow a redirect to the login page: say it plainly.
        Err(_) => return (StatusCode::UNAUTHORIZED, "Sign in again.").into_response(),
    };
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let opened = Params::from_pairs(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .and_then(|p| event_filter(&p, &key.account_id))
        .and_then(|f| Ok((f, resume_point(last)?)));
    let (filter, from) = match opened {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match stream(state, key.key_id, filter, from).await {
        Ok(sse) => sse.into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
