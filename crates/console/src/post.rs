//! What every console endpoint that acts (a `POST` from the pages' scripts) checks first, and how
//! it answers. A request must carry `X-Console: 1` (a form of another site cannot set a header,
//! and a script of another site cannot send one without a CORS preflight this server never
//! grants), an `Origin` naming this server, and a valid session cookie (SameSite=Strict). The
//! action is then carried out through [`cloudphone_api::call_as_from`] as the session's key and
//! from the caller's address, so it is scoped, checked and audited exactly as the same call of
//! the SDK would be. Answers are JSON: the API's body, or `{"Code", "Message"}` with the API's
//! HTTP status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudphone_api::{AppState, PeerAddr, call_as, call_as_from};
use cloudphone_core::ApiError;
use cloudphone_core::resources::AccessKey;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{NoSession, same_origin, session_of};

/// The header every acting request carries.
pub const CONSOLE_HEADER: &str = "x-console";

/// The signed-in user of an acting request and where it came from.
pub struct Caller {
    pub key: AccessKey,
    /// The client's address, for the audit log.
    pub source: String,
}

impl Caller {
    /// Carries out `action` as this caller (audited unless it only reads).
    pub async fn act(
        &self,
        state: &AppState,
        action: &str,
        params: Vec<(&str, String)>,
    ) -> Result<Value, ApiError> {
        call_as_from(
            state,
            self.key.clone(),
            action,
            &owned(params),
            &self.source,
        )
        .await
    }

    /// A read as this caller (reads are not audited).
    pub async fn read(
        &self,
        state: &AppState,
        action: &str,
        params: Vec<(&str, String)>,
    ) -> Result<Value, ApiError> {
        call_as(state, self.key.clone(), action, &owned(params)).await
    }
}

fn owned(params: Vec<(&str, String)>) -> Vec<(String, String)> {
    params.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// A JSON answer.
pub fn json_reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refusal or failure as JSON.
pub fn failure(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    json_reply(
        status,
        &json!({ "Code": code, "Message": message.to_string() }),
    )
}

/// An API error as JSON, with its HTTP status.
pub fn api_failure(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    failure(status, &e.code(), e)
}

/// The caller of an acting request, or the refusal to send back.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<PeerAddr>,
) -> Result<Caller, Response> {
    if headers.get(CONSOLE_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "Forbidden.ConsoleHeader",
            "The console's actions are sent by its pages, with X-Console: 1.",
        ));
    }
    if headers.get(header::ORIGIN).is_none() || !same_origin(headers) {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "Forbidden.Origin",
            "This request was not sent by a page of this server.",
        ));
    }
    match session_of(state, headers).await {
        Ok(session) => Ok(Caller {
            key: session.key,
            source: peer.map(|p| p.0.to_string()).unwrap_or_default(),
        }),
        Err(NoSession::SignedOut) => Err(failure(
            StatusCode::UNAUTHORIZED,
            "SignInRequired",
            "Sign in to the console again.",
        )),
        Err(NoSession::Unavailable) => Err(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server's database is not answering; try again shortly.",
        )),
    }
}

/// An upload's caller: the request is refused before its body is read (an upload may be
/// large; the connection is closed rather than drained). Endpoints with a JSON body take
/// [`Acting`] instead.
impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Caller, Response> {
        let peer = parts.extensions.get::<PeerAddr>().cloned();
        caller(state, &parts.headers, peer).await
    }
}

/// An acting endpoint with a JSON body: its caller and the body, read by [`json_body`]'s rules.
/// The (small) body is read first, then the caller is checked, then the body parsed: a
/// refusal then leaves the connection clean for the page's next request (a refusal before the
/// body was read made the server close the connection, which a client reusing it saw as a
/// reset).
pub struct Acting<T>(pub Caller, pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Acting<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Acting<T>, Response> {
        let peer = req.extensions().get::<PeerAddr>().cloned();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = caller(state, &headers, peer).await?;
        let ask = json_body(&headers, &body).map_err(|refused| *refused)?;
        Ok(Acting(caller, ask))
    }
}

/// A JSON request body: `Content-Type: application/json` only (a form of another site cannot
/// send that type without a preflight either). The refusal is boxed: it is the rare way out.
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Box<Response>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Box::new(failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The body must be JSON (Content-Type: application/json).",
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(failure(StatusCode::BAD_REQUEST, "InvalidBody", e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Ask {
        command: String,
    }

    #[test]
    fn only_json_bodies_are_read() {
        let mut h = HeaderMap::new();
        let body = br#"{"command":"id"}"#;
        assert!(json_body::<Ask>(&h, body).is_err(), "no content type");
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let refused = json_body::<Ask>(&h, body).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(json_body::<Ask>(&h, body).unwrap().command, "id");
        let bad = json_body::<Ask>(&h, b"{").unwrap_err();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }
}
