//! The cancel of a running attempt as its operation sees it (docs/design.md §5.7). The worker
//! cuts an interruptible attempt when CancelTasks asked it to stop; the operation decides where
//! it may be cut: a phase that only reads its source into a scratch file (a command, a download,
//! a file pulled off the phone) is dropped at once, and a phase that writes onto the phone or
//! into the object store is never entered once cut, and never cut once entered.

use std::future::Future;

use cloudphone_backend::BackendError;
use cloudphone_core::TaskErrorCode;
use tokio_util::sync::CancellationToken;

/// One attempt's cut; a clone sees the same cut.
#[derive(Clone, Debug, Default)]
pub struct Cut(CancellationToken);

impl Cut {
    /// Asks the attempt to stop.
    pub fn cut(&self) {
        self.0.cancel();
    }

    /// Whether the attempt was asked to stop.
    pub fn is_cut(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Runs `phase`, dropped the moment the attempt is cut (then `Cancelled`). Only for phases
    /// whose drop leaves nothing behind but scratch files their callers remove.
    pub async fn droppable<T>(
        &self,
        phase: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::select! {
            biased;
            _ = self.0.cancelled() => Err(cancelled()),
            done = phase => done,
        }
    }

    /// Before a phase that must not be cut (a write onto the phone or into the object store):
    /// `Cancelled` if the attempt was cut already, so the phase never starts.
    pub fn before_writing(&self) -> Result<(), BackendError> {
        if self.is_cut() {
            return Err(cancelled());
        }
        Ok(())
    }
}

/// How a cut attempt ends.
pub fn cancelled() -> BackendError {
    let code = TaskErrorCode::Cancelled;
    BackendError::new(
        code,
        format!("{} It was stopped while it ran.", code.default_message()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_drops_a_droppable_phase_and_stops_a_write_before_it_starts() {
        let cut = Cut::default();
        assert_eq!(cut.droppable(async { Ok(1) }).await.unwrap(), 1);
        assert!(cut.before_writing().is_ok());
        let seen = cut.clone();
        let stuck = tokio::spawn(async move {
            seen.droppable(std::future::pending::<Result<(), BackendError>>())
                .await
        });
        cut.cut();
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), stuck)
            .await
            .expect("the phase was dropped")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, TaskErrorCode::Cancelled);
        assert!(
            e.message.ends_with("It was stopped while it ran."),
            "{}",
            e.message
        );
        assert_eq!(
            cut.before_writing().unwrap_err().code,
            TaskErrorCode::Cancelled
        );
        // Even a phase that is ready is not run once cut.
        assert!(cut.droppable(async { Ok(()) }).await.is_err());
    }
}
