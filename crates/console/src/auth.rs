//! Signing in and out of the console, and the check every page makes first: a valid session
//! cookie ([`crate::session`]) for an access key that still exists and whose session generation
//! is the cookie's, else a redirect to the login page. Signing out ends every session of the
//! key (its generation moves on), so a copy of the cookie kept elsewhere stops working too.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cloudphone_api::AppState;
use cloudphone_client::pct;
use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::session::{self, COOKIE, LIFETIME_SECS};

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<String>,
    pub next: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    access_key_id: String,
    access_key_secret: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: &str) -> String {
    let inside =
        next == "/console" || next.starts_with("/console/") || next.starts_with("/console?");
    if inside && !next.contains("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/console".to_string()
    }
}

pub async fn form(Query(q): Query<NextQuery>) -> LoginPage {
    LoginPage {
        error: None,
        next: safe_next(&q.next),
    }
}

/// Whether a form was posted by a page of this server: a browser sends `Origin` with every
/// POST, and one naming another site is a forged login or logout.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    origin_host.is_some() && origin_host == host
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let refused = |status: StatusCode, why: &str| {
        (
            status,
            LoginPage {
                error: Some(why.to_string()),
                next: safe_next(&f.next),
            },
        )
            .into_response()
    };
    if !same_origin(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "This sign-in form was sent from another site.",
        );
    }
    let key = match state.store.access_key(f.access_key_id.trim()).await {
        Ok(k) => k,
        Err(e) => {
            warn!(error = %e, "console login: the store did not answer");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server's database is not answering; try again shortly.",
            );
        }
    };
    // Digests compared, so the time taken says nothing about how much of the secret matched.
    let matches = key.as_ref().is_some_and(|k| {
        Sha256::digest(k.secret.as_bytes()) == Sha256::digest(f.access_key_secret.as_bytes())
    });
    let Some(key) = key.filter(|_| matches) else {
        info!("console login refused");
        return refused(
            StatusCode::UNAUTHORIZED,
            "InvalidAccessKey: the AccessKey ID or secret is wrong.",
        );
    };
    let generation = match state.store.session_generation(&key.key_id).await {
        Ok(Some(g)) => g,
        // Disabled between the two reads.
        Ok(None) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "InvalidAccessKey: the AccessKey ID or secret is wrong.",
            );
        }
        Err(e) => {
            warn!(error = %e, "console login: the store did not answer");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server's database is not answering; try again shortly.",
            );
        }
    };
    let expires = now_ms() / 1000 + LIFETIME_SECS;
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{}",
        session::issue(&key.key_id, generation, &key.secret, expires),
        if state.https { "; Secure" } else { "" }
    );
    info!(account = %key.account_id, "console login");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&safe_next(&f.next)),
    )
        .into_response()
}

pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "sent from another site").into_response();
    }
    // Only a valid session ends the key's sessions: a stale cookie cannot log others out.
    if let Ok(session) = session_of(&state, &headers).await
        && let Err(e) = state.store.end_sessions(&session.key.key_id).await
    {
        warn!(error = %e, "console logout: the store did not answer");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server's database is not answering: you are still signed in; try again shortly.",
        )
            .into_response();
    }
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// A signed-in request's key and the session generation its cookie carries.
pub struct Session {
    pub key: AccessKey,
    pub generation: i64,
}

/// Why a request has no session.
pub(crate) enum NoSession {
    /// No cookie, or one that is not (or no longer) valid.
    SignedOut,
    /// The store did not answer.
    Unavailable,
}

fn unavailable(e: impl std::fmt::Display) -> NoSession {
    warn!(error = %e, "console: the store did not answer");
    NoSession::Unavailable
}

pub(crate) async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Session, NoSession> {
    let claim = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| session::cookie(h, COOKIE))
        .and_then(session::parse)
        .ok_or(NoSession::SignedOut)?;
    let key = state
        .store
        .access_key(&claim.key_id)
        .await
        .map_err(unavailable)?
        .ok_or(NoSession::SignedOut)?;
    let generation = state
        .store
        .session_generation(&claim.key_id)
        .await
        .map_err(unavailable)?
        .ok_or(NoSession::SignedOut)?;
    if !session::verify(&claim, &key.secret, generation, now_ms() / 1000) {
        return Err(NoSession::SignedOut);
    }
    Ok(Session { key, generation })
}

/// The session of a signed-in request, or the redirect to the login page (coming back to
/// `here` afterwards).
pub async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Session, Response> {
    match session_of(state, headers).await {
        Ok(session) => Ok(session),
        Err(NoSession::SignedOut) => {
            Err(Redirect::to(&format!("/console/login?next={}", pct(here))).into_response())
        }
        Err(NoSession::Unavailable) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "The server's database is not answering; try again shortly.",
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::{HeaderMap, safe_next, same_origin};

    #[test]
    fn a_form_from_another_site_is_refused() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:9723".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://127.0.0.1:9723".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn only_console_pages_are_followed_after_login() {
        assert_eq!(
            safe_next("/console/tasks?Level=1"),
            "/console/tasks?Level=1"
        );
        for elsewhere in [
            "https://evil.example",
            "//evil.example",
            "/consolex",
            "/console//evil",
            "",
            "/console\\x",
        ] {
            assert_eq!(safe_next(elsewhere), "/console", "{elsewhere}");
        }
    }
}
