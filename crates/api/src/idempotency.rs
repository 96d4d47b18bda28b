//! `ClientToken` idempotency around a task-producing call: the first call with a token runs and
//! its answer is kept; a repeat with the same parameters gets that answer (the original
//! `RequestId` and ids, nothing created), with other parameters `IdempotentParameterMismatch`,
//! and while the first still runs `IdempotentProcessing`. A call that fails frees its token.

use std::future::Future;

use cloudphone_core::ApiError;
use cloudphone_store::Idempotent;
use tracing::{error, info};

use crate::reply::{Body, success_bytes};
use crate::state::AppState;
use crate::store_error::internal;

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
            // Kept exactly as it is sent.
            let kept = match &answered {
                Ok(Body::Value(v)) => Some(success_bytes(request_id, Body::Value(v.clone()))),
                Ok(Body::Complete(bytes)) => Some(bytes.clone()),
                Err(_) => None,
            }
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
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
