//! `ClientToken` idempotency around a task-producing call: the first call with a token runs and
//! its answer is kept; a repeat with the same parameters gets that answer (the original
//! `RequestId` and ids, nothing created), with other parameters `IdempotentParameterMismatch`,
//! and while the first still runs `IdempotentProcessing`. A call that fails frees its token.

use std::future::Future;

use cloudphone_core::ApiError;
use cloudphone_store::Idempotent;
use serde_json::Value;
use tracing::{error, info};

use crate::actions::common::internal;
use crate::reply::Body;
use crate::state::AppState;

/// A reservation older than this belongs to a call whose node died before answering: the
/// next call with its token runs again.
pub const STALE_MS: i64 = 5 * 60 * 1000;

/// The call with `token` and `fingerprint`: run by `run` unless an earlier one answered.
pub async fn once<Fut>(
    state: &AppState,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    request_id: &str,
    now_ms: i64,
    run: impl FnOnce() -> Fut,
) -> Result<Body, ApiError>
where
    Fut: Future<Output = Result<Body, ApiError>>,
{
    let store = state.store.as_ref();
    let begun = store
        .begin_idempotent(account_id, token, fingerprint, now_ms, now_ms - STALE_MS)
        .await
        .map_err(internal)?;
    match begun {
        Idempotent::Replay(body) => {
            info!("answered from the ClientToken of an earlier call");
            Ok(Body::Complete(body.into_bytes()))
        }
        Idempotent::Mismatch => Err(ApiError::IdempotentParameterMismatch),
        Idempotent::InFlight => Err(ApiError::IdempotentProcessing),
        Idempotent::Fresh => {
            let answered = run().await;
            let kept = match &answered {
                Ok(body) => Some(whole(body, request_id)),
                Err(_) => None,
            };
            if let Err(e) = store
                .finish_idempotent(account_id, token, now_ms, kept.as_deref())
                .await
            {
                // The call is done; its token answers IdempotentProcessing until it is stale.
                error!(error = %e, "recording the ClientToken's answer failed");
            }
            answered
        }
    }
}

/// The answer as the client receives it, `RequestId` included.
fn whole(body: &Body, request_id: &str) -> String {
    match body {
        Body::Value(v) => {
            let mut map = match v {
                Value::Object(map) => map.clone(),
                _ => serde_json::Map::new(),
            };
            map.insert("RequestId".into(), Value::String(request_id.into()));
            Value::Object(map).to_string()
        }
        Body::Complete(bytes) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
