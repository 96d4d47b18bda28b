//! The HTTP front: every request to `/` (GET or POST) is read within the size limits, decoded,
//! authenticated, routed on `x-acs-action`/`x-acs-version` (or `Action`/`Version`), and answered
//! in JSON. Panics become `InternalError`, never a dropped connection.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;
use cloudphone_core::{ApiError, ids};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::actions::{self, Action};
use crate::audit;
use crate::auth::{self, Recorded, authenticate};
use crate::params::Params;
use crate::reply;
use crate::request::RawRequest;
use crate::state::{AppState, Ctx};

/// The one API version this server speaks (the client's, so both name the same).
pub use cloudphone_client::protocol::VERSION;

/// The router of the API: the object routes under `/files/` ([`crate::files`]); every other path
/// and method goes through [`handle`].
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(crate::files::routes())
        .merge(crate::watch::routes())
        .fallback(handle)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                reply::failure(&ApiError::Internal, &ids::request_id(), "cloudphone")
            },
        ))
        .with_state(state)
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = ids::request_id();
    let started = Instant::now();
    let label = action_label(&request);
    let source = crate::peer::source(request.extensions());
    let span = info_span!("request", request_id = %request_id, action = tracing::field::Empty);
    // The call runs to its end in a task of its own, even when its client goes away: a client
    // that timed out and retries with its ClientToken finds the first call's answer, never
    // half a call.
    let call = {
        let (state, request_id, source) = (state.clone(), request_id.clone(), source.clone());
        tokio::spawn(
            async move { answer(&state, &request_id, &source, request).await }
                .instrument(span.clone()),
        )
    };
    let result = match call.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "a call panicked");
            Err(ApiError::Internal)
        }
    };
    let _enter = span.enter();
    let code = match &result {
        Ok(_) => "Success".to_string(),
        Err(e) => e.code(),
    };
    metrics::counter!("cloudphone_requests_total", "action" => label, "code" => code).increment(1);
    metrics::histogram!("cloudphone_request_duration_seconds", "action" => label)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok((action, body)) => {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            // Reads are polled many times a second (DescribeTasks above all): a line each at
            // info was a few per cent of a busy server's CPU and most of its log.
            if action.starts_with("Describe") {
                debug!(%action, elapsed_ms, "ok");
            } else {
                info!(%action, elapsed_ms, "ok");
            }
            reply::success(&request_id, body)
        }
        Err(e) => {
            info!(code = %e.code(), status = e.http_status(), elapsed_ms = started.elapsed().as_millis() as u64, "refused");
            reply::failure(&e, &request_id, &state.host_id)
        }
    }
}

/// The action a request names (signed header, or the query of a legacy request), as a bounded
/// metric label: the check that the two agree comes later, in [`routed`].
fn action_label(request: &Request) -> &'static str {
    label_of(request.headers(), request.uri())
}

/// [`action_label`] from a request's head: the action's name when it is one this server answers,
/// else `"unknown"` (so a metric's labels stay bounded whatever clients send).
pub fn label_of(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> &'static str {
    let header = headers.get("x-acs-action").and_then(|v| v.to_str().ok());
    let query = || {
        uri.query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
    };
    header.or_else(query).map_or("unknown", actions::label)
}

async fn answer(
    state: &AppState,
    request_id: &str,
    source: &str,
    request: Request,
) -> Result<(String, reply::Body), ApiError> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() != "/" {
        return Err(ApiError::ActionNotFound(parts.uri.path().to_string()));
    }
    let method = parts.method.as_str();
    if method != "GET" && method != "POST" {
        return Err(ApiError::ActionNotFound(format!("{method} /")));
    }
    let uri_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > state.limits.max_uri_bytes {
        return Err(ApiError::UriTooLong(state.limits.max_uri_bytes));
    }
    let body = read_body(body, state.limits.max_body_bytes).await?;
    let raw = RawRequest::from_parts(
        method,
        &parts.headers,
        parts.uri.query(),
        body,
        state.limits.max_params,
    )?;
    let now = now_ms();
    let call = auth::verify(state.store.as_ref(), &state.keys, &raw, now).await?;
    // After the signature (nobody can spend another key's calls) and before the nonce is
    // written (a refused call costs the database nothing).
    state.throttle.check(&call.key.key_id)?;
    // A call that only reads is worked out while its nonce is being recorded (the writer's
    // commit and the read run on different threads), and answered only once the nonce is
    // recorded: a replay, or a key deleted or changed meanwhile, gets nothing of it. Any other
    // call runs only after its nonce is recorded.
    // A nonce this node saw lately is most likely a replay: its read waits for the verdict.
    let reads_only = routed(&raw, "x-acs-action", "Action").is_ok_and(|a| actions::reads_only(&a))
        && !auth::seen_recently(&state.keys, &call);
    if reads_only {
        let (recorded, answer) = tokio::join!(
            auth::record(state.store.as_ref(), &state.keys, &call),
            run(state, request_id, source, &raw, call.key.clone(), now)
        );
        match recorded? {
            Recorded::Yes => answer,
            Recorded::Stale => {
                let caller = authenticate(state.store.as_ref(), &state.keys, &raw, now).await?;
                run(state, request_id, source, &raw, caller, now).await
            }
        }
    } else {
        let caller = auth::confirm(state.store.as_ref(), &state.keys, call, &raw, now).await?;
        run(state, request_id, source, &raw, caller, now).await
    }
}

/// Routes and parses an authenticated call and carries it out as `caller`.
async fn run(
    state: &AppState,
    request_id: &str,
    source: &str,
    raw: &RawRequest,
    caller: AccessKey,
    now: i64,
) -> Result<(String, reply::Body), ApiError> {
    let params = Params::from_request(raw)?;
    let action = routed(raw, "x-acs-action", "Action")?;
    tracing::Span::current().record("action", action.as_str());
    let version = routed(raw, "x-acs-version", "Version")?;
    if version != VERSION {
        return Err(ApiError::InvalidVersion(version));
    }
    if let Some(region) = params.region_id()
        && region != state.region
    {
        return Err(ApiError::invalid(
            "RegionId",
            format!("This server runs region {}.", state.region),
        ));
    }
    let answered = carry_out(state, request_id, source, &action, &params, caller, now).await;
    Ok((action, answered?))
}

/// Parses `action` and carries it out as `caller`, as every call does once it is
/// authenticated and routed: dry runs where the action has one, `ClientToken` for actions that
/// make tasks, and an audit entry for every action that is not a read.
async fn carry_out(
    state: &AppState,
    request_id: &str,
    source: &str,
    action: &str,
    params: &Params,
    caller: AccessKey,
    now: i64,
) -> Result<reply::Body, ApiError> {
    let audited = (!actions::reads_only(action)).then(|| caller.clone());
    let parsed = Action::parse(action, params).and_then(|a| {
        let controls = crate::controls::Controls::parse(params)?;
        if controls.dry_run && !actions::dry_runs(action) {
            return Err(ApiError::invalid(
                "DryRun",
                format!("{action} has no dry run."),
            ));
        }
        Ok((a, controls))
    });
    let answered = match parsed {
        Ok((parsed, controls)) => {
            let token = controls
                .client_token
                .clone()
                .filter(|_| actions::produces_tasks(action) && !controls.dry_run);
            let ctx = Ctx {
                state,
                caller,
                request_id: request_id.to_string(),
                now_ms: now,
                controls,
            };
            match token {
                Some(token) => {
                    let fingerprint = crate::controls::fingerprint(action, params);
                    let account = ctx.account().to_string();
                    crate::idempotency::once(
                        state,
                        &account,
                        &token,
                        &fingerprint,
                        request_id,
                        now,
                        || parsed.apply(&ctx),
                    )
                    .await
                }
                None => parsed.apply(&ctx).await,
            }
        }
        Err(e) => Err(e),
    };
    if let Some(caller) = audited {
        let (made, outcome) = match &answered {
            Ok(reply::Body::Value(v)) => (audit::made_ids(v), "Success".to_string()),
            Ok(reply::Body::Complete(_)) => (Vec::new(), "Success".to_string()),
            Err(e) => (Vec::new(), e.code()),
        };
        let entry = audit::entry(
            &caller,
            action,
            audit::named_ids(params),
            made,
            request_id,
            source,
            outcome,
            now,
        );
        if let Err(e) = state.store.append_audit(&[entry]).await {
            // The call is done either way; the operator sees the gap in the log.
            warn!(error = %e, action, "the audit entry could not be written");
        }
    }
    answered
}

/// Carries out `action` with `params` as `caller`, as a signed call would be after its
/// signature is checked: the same parsing, validation, account scoping, idempotency and audit
/// (with no source address: [`call_as_from`] gives one). For callers inside the server that
/// authenticated the user themselves (the web console). The answer is the success body,
/// `RequestId` included.
pub async fn call_as(
    state: &AppState,
    caller: AccessKey,
    action: &str,
    params: &[(String, String)],
) -> Result<serde_json::Value, ApiError> {
    call_as_from(state, caller, action, params, "").await
}

/// [`call_as`] for a user at `source` (the client's address, for the audit log): an action
/// that is not a read is audited as a signed call is, and a `ClientToken` makes a task
/// action idempotent as it does for a signed call.
pub async fn call_as_from(
    state: &AppState,
    caller: AccessKey,
    action: &str,
    params: &[(String, String)],
    source: &str,
) -> Result<serde_json::Value, ApiError> {
    let request_id = ids::request_id();
    let params = Params::from_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let answered = carry_out(
        state,
        &request_id,
        source,
        action,
        &params,
        caller,
        now_ms(),
    )
    .await;
    let mut body = match answered? {
        reply::Body::Value(v) => v,
        reply::Body::Complete(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            warn!(error = %e, "an answer written whole is not JSON");
            ApiError::Internal
        })?,
    };
    if let Some(map) = body.as_object_mut() {
        map.entry("RequestId")
            .or_insert(serde_json::Value::String(request_id));
    }
    Ok(body)
}

/// The action or version: from the signed header, or from the query of a legacy request; the two
/// must agree when both are sent.
fn routed(raw: &RawRequest, header: &str, param: &str) -> Result<String, ApiError> {
    let from_header = raw.header(header).filter(|v| !v.is_empty());
    let from_param = raw
        .query
        .iter()
        .chain(raw.body_form.iter())
        .find(|(k, _)| k == param)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    match (from_header, from_param) {
        (Some(h), Some(p)) if h != p => {
            warn!(header = h, param = p, "action or version disagree");
            Err(ApiError::invalid(
                param,
                format!("{param} '{p}' disagrees with header {header} '{h}'."),
            ))
        }
        (Some(v), _) | (None, Some(v)) => Ok(v.to_string()),
        (None, None) => Err(ApiError::missing(param)),
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(_) => Err(ApiError::RequestTooLarge(limit)),
    }
}
