//! The web console at `/console`: server-rendered pages (askama; no JavaScript build) of the
//! fleet and the task center, behind a login with an access key. Pages read through the API's
//! own actions as the signed-in key, so the console shows what that key's SDK would and
//! nothing of another account. A few lines of inline script refresh each page's live part:
//! when the watch stream (`/console/watch`) reports a change, else on a timer.

mod auth;
mod pages;
pub mod session;
pub mod view;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use cloudphone_api::AppState;

/// The console's routes, to merge beside the API's.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/console", get(pages::fleet))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route("/console/login", get(auth::form).post(auth::submit))
        .route("/console/logout", post(auth::logout))
        .route("/console/tasks", get(pages::tasks))
        .route("/console/tasks/{id}", get(pages::task))
        .route("/console/watch", get(watch::watch))
        .layer(map_response(guarded))
        .with_state(state)
}

/// Every console answer: never framed by another site, never cached (it shows an account's
/// fleet), and no referrer carried to other sites with its signed links (`no-referrer` would
/// make Chromium send `Origin: null` with the login form, which [`auth`] refuses).
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
