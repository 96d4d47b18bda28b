//! The watch stream: `GET /tasks/watch`, server-sent events of task transitions, filtered like
//! DescribeTasks. Signed with ACS3 like any call (`x-acs-action: WatchTasks`, the real path);
//! the console serves the same stream to its signed-in users. Each event's `id` is its place in
//! the event log: a client that reconnects with `Last-Event-ID` (as every EventSource does)
//! resumes right after it, nothing missed and nothing twice. Without one the stream starts
//! with what happens from now on; `Last-Event-ID: 0-0` replays what the log still holds. The
//! first event (`ready`) carries the starting place as its id.
//!
//! Streams are capped per access key and in all ([`hub`]); the streams of one account share one
//! poll of the log ([`poller`]), each applying its own filter ([`filter`]) on its way through
//! the log ([`follow`]). A stream that falls behind its queue ends; its client resumes.

mod filter;
mod follow;
pub mod hub;
mod poller;

pub use hub::{Holder, Hub};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cloudphone_core::time::{iso, now_ms};
use cloudphone_core::{ApiError, ids};
use cloudphone_store::{EventFilter, EventPosition, TaskEvent};
use futures::{Stream, StreamExt};
use serde_json::json;

use crate::actions::describe_tasks::task_filter;
use crate::auth::{Target, authenticate_for};
use crate::params::Params;
use crate::reply;
use crate::request::RawRequest;
use crate::state::AppState;
use crate::store_error::internal;

/// The path of the stream, which the signature covers.
pub const PATH: &str = "/tasks/watch";
/// `x-acs-action` of a signed watch.
pub const ACTION: &str = "WatchTasks";
/// Events read per query.
const BATCH: usize = 500;
/// How often an account's log is read again when it had nothing new.
const POLL: Duration = Duration::from_millis(200);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PATH, get(watch))
}

async fn watch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = ids::request_id();
    let opened = match open(&state, request).await {
        Ok((key_id, filter, from)) => {
            let holder = Holder {
                key_id,
                session: None,
            };
            stream(state.clone(), holder, filter, from).await
        }
        Err(e) => Err(e),
    };
    match opened {
        Ok(sse) => sse.into_response(),
        Err(e) => reply::failure(&e, &request_id, &state.host_id),
    }
}

/// Authenticates a signed watch and reads its filters and starting place.
async fn open(
    state: &AppState,
    request: Request,
) -> Result<(String, EventFilter, Option<EventPosition>), ApiError> {
    let (parts, _) = request.into_parts();
    let raw = RawRequest::from_parts(
        parts.method.as_str(),
        &parts.headers,
        parts.uri.query(),
        Vec::new(),
        state.limits.max_params,
    )?;
    let target = Target {
        path: PATH,
        streamed_body: false,
    };
    let key = authenticate_for(state.store.as_ref(), &state.keys, &raw, target, now_ms()).await?;
    state.throttle.check(&key.key_id)?;
    match raw.header("x-acs-action").map(str::trim) {
        Some(ACTION) => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "x-acs-action",
                format!("is {other}, but this request is a {ACTION}"),
            ));
        }
        None => return Err(ApiError::missing("x-acs-action")),
    }
    let params = Params::from_pairs(raw.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let filter = event_filter(&params, &key.account_id)?;
    let from = resume_point(raw.header("last-event-id"))?;
    Ok((key.key_id, filter, from))
}

/// The DescribeTasks filters a watch can apply (an event carries no resource id, instance name
/// or param: those are refused, not ignored).
pub fn event_filter(p: &Params, account_id: &str) -> Result<EventFilter, ApiError> {
    for name in ["ResourceIds", "InstanceName", "Param"] {
        if p.keys()
            .any(|k| k == name || k.starts_with(&format!("{name}.")))
        {
            return Err(ApiError::invalid(
                name,
                "The watch stream does not filter on it.",
            ));
        }
    }
    let f = task_filter(p)?;
    Ok(EventFilter {
        account_id: account_id.to_string(),
        invoke_id: f.invoke_id,
        task_ids: f.task_ids,
        parent_task_id: f.parent_task_id,
        task_types: f.task_types,
        statuses: f.statuses,
        level: f.level,
        instance_id: f.instance_id,
    })
}

/// `Last-Event-ID` as `major-minor`; absent or empty: start from now.
pub fn resume_point(header: Option<&str>) -> Result<Option<EventPosition>, ApiError> {
    let Some(text) = header.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(
            "Last-Event-ID",
            "Expected the id of an event of this stream.",
        )
    };
    let (major, minor) = text.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
            .ok_or_else(bad)
    };
    Ok(Some(EventPosition {
        major: number(major)?,
        minor: number(minor)?,
    }))
}

/// The id an event is sent with.
pub fn event_id(p: EventPosition) -> String {
    format!("{}-{}", p.major, p.minor)
}

/// The JSON an event carries: the task as DescribeTasks names its fields.
pub fn event_json(e: &TaskEvent) -> serde_json::Value {
    let mut v = json!({
        "TaskId": e.task_id,
        "ParentTaskId": e.parent_id,
        "InvokeId": e.invoke_id,
        "Level": e.level.as_i64(),
        "TaskType": e.task_type.as_str(),
        "TaskStatus": e.status.as_str(),
        "InstanceId": e.instance_id,
        "ErrorCode": e.error_code,
        "Time": iso(e.at_ms),
    });
    if let (Some(c), Some(map)) = (e.counts, v.as_object_mut()) {
        map.insert("TotalChildCount".into(), json!(c.total()));
        map.insert("SuccessChildCount".into(), json!(c.finished));
        map.insert("FailedChildCount".into(), json!(c.failed));
        map.insert("SkippedChildCount".into(), json!(c.skipped));
        map.insert("RunningChildCount".into(), json!(c.running()));
    }
    v
}

/// How often the keys (and console sessions) of open streams are checked again.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The stream of `filter`'s events after `from` (or from now), until the client goes or the
/// server shuts down; refused over the caps of watch streams.
///
/// `holder` is who opened it: the stream ends within [`RECHECK`] once that key is deleted or
/// disabled (or its account is), or the console session it was opened with ended.
pub async fn stream(
    state: Arc<AppState>,
    holder: Holder,
    filter: EventFilter,
    from: Option<EventPosition>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.watches.open(
        &holder.key_id,
        state.limits.max_watch_streams,
        state.limits.max_watch_streams_per_key,
    )?;
    let (start, caught_up) = match from {
        Some(p) => (p, false),
        None => (
            state
                .store
                .event_tail(&filter.account_id)
                .await
                .map_err(internal)?,
            true,
        ),
    };
    let follower = follow::Follower::new(state, slot, holder, filter, start, caught_up);
    let events = futures::stream::unfold(follower, |mut f| async move {
        let e = f.next().await?;
        let event = Event::default()
            .id(event_id(e.position))
            .event("task")
            .data(event_json(&e).to_string());
        Some((Ok(event), f))
    });
    // First, where the stream starts: a client cut before any task event still resumes from
    // here (an EventSource keeps the id), not from a later "now".
    let ready = Event::default()
        .id(event_id(start))
        .event("ready")
        .data("{}");
    let stream = futures::stream::once(async move { Ok(ready) }).chain(events);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_round_trip_and_bad_ones_are_refused() {
        let p = EventPosition {
            major: 812,
            minor: 40_001,
        };
        assert_eq!(resume_point(Some(&event_id(p))).unwrap(), Some(p));
        assert_eq!(resume_point(None).unwrap(), None);
        assert_eq!(resume_point(Some("  ")).unwrap(), None);
        for bad in [
            "12",
            "a-1",
            "1-",
            "-1",
            "1-2-3",
            "1--2",
            "99999999999999999999-1",
        ] {
            let e = resume_point(Some(bad)).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter.Last-Event-ID", "{bad}");
        }
    }
}
