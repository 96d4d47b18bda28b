//! The web console at `/console`: server-rendered pages (askama; no JavaScript build) of the
//! fleet, the task center and each phone, behind a login with an access key. Pages read through
//! the API's own actions as the signed-in key, so the console shows what that key's SDK would
//! and nothing of another account. A few lines of inline script refresh each page's live part:
//! when the watch stream (`/console/watch`) reports a change, else on a timer.
//!
//! The console also acts: batch actions from the fleet page ([`actions`]), and on a phone's
//! page its live screen and touch (`static/phone.js` on the stream server's WebSocket, with a
//! ticket the page asks for), a command, a file sent or fetched, a screenshot ([`phone`],
//! [`uploads`]). Every action is a `POST` of the pages' scripts, checked by [`post`] and carried
//! out as the same API action as the SDK's, audited. `/console/view/{id}` shows a phone's screen
//! to the holder of a ticket, without a login.

mod actions;
mod auth;
mod pages;
mod phone;
mod post;
pub mod session;
mod uploads;
pub mod view;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::IntoResponse;
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
        .route("/console/actions", post(actions::act))
        .route("/console/phones/{id}", get(phone::page_of))
        .route("/console/phones/{id}/ticket", post(phone::ticket))
        .route("/console/phones/{id}/command", post(phone::command))
        .route("/console/phones/{id}/fetch", post(phone::fetch))
        .route("/console/phones/{id}/screenshot", post(phone::screenshot))
        .route("/console/phones/{id}/apk", post(uploads::apk))
        .route("/console/phones/{id}/file", post(uploads::file))
        .route("/console/view/{id}", get(phone::viewer))
        .route("/console/static/phone.js", get(|| script(PHONE_JS)))
        .route("/console/static/fleet.js", get(|| script(FLEET_JS)))
        .layer(map_response(guarded))
        .with_state(state)
}

/// The phone page's script: the live screen, input and the page's actions.
const PHONE_JS: &str = include_str!("../static/phone.js");
/// The fleet page's script: selections and batch actions with their progress.
const FLEET_JS: &str = include_str!("../static/fleet.js");

async fn script(body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response()
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
