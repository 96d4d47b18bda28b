//! A store failure as the client sees it, for every part of the API that reads or writes the
//! store (the actions, authentication, idempotency, the watch stream).

use cloudphone_core::ApiError;
use cloudphone_store::StoreError;
use tracing::error;

/// 503 `ServiceUnavailable` while the database cannot be reached (retry later), else 500
/// `InternalError`. The cause is logged, never sent.
pub fn internal(e: StoreError) -> ApiError {
    error!(error = %e, "store operation failed");
    if e.is_unavailable() {
        ApiError::Unavailable
    } else {
        ApiError::Internal
    }
}
