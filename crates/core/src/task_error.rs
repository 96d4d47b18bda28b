//! The catalogue of error codes a failed task carries in `ErrorCode` (docs/design.md §3.4). One place,
//! so that every backend and the engine speak the same codes.

use crate::task::wire_enum;

wire_enum! {
    /// Stable, vendor-style codes for failed tasks.
    TaskErrorCode {
        /// The instance was not in a status the operation may start from.
        IncorrectInstanceStatus = "IncorrectInstanceStatus",
        /// The phone did not answer, or an attempt was lost with its worker and the operation
        /// may not be run again safely.
        InstanceUnreachable = "InstanceUnreachable",
        /// Every allowed attempt was spent without a result.
        AttemptsExhausted = "AttemptsExhausted",
        /// A command ran past its timeout.
        CommandTimeout = "CommandTimeout",
        SendFileFailed = "SendFileFailed",
        /// The file to send does not exist (object, or URL answering 404).
        SourceFileNotFound = "SourceFileNotFound",
        /// The file's MD5 differs from the `FileMd5` of the call.
        FileMd5Mismatch = "FileMd5Mismatch",
        /// The file could not be downloaded from its URL.
        DownloadFailed = "DownloadFailed",
        /// The file at the URL is larger than the server's `--max-download-bytes`; nothing of
        /// it was kept.
        FileTooLarge = "FileTooLarge",
        FetchFileFailed = "FetchFileFailed",
        InstallAppFailed = "InstallAppFailed",
        UninstallAppFailed = "UninstallAppFailed",
        OperateAppFailed = "OperateAppFailed",
        BackupFileFailed = "BackupFileFailed",
        RecoverFileFailed = "RecoverFileFailed",
        ScreenshotFailed = "ScreenshotFailed",
        /// A lifecycle operation (start, stop, reboot, reset, image) failed on the phone.
        OperationFailed = "OperationFailed",
        /// The phone's backend cannot do this operation at all (a physical device cannot be
        /// started, stopped or reset by the control plane).
        UnsupportedOperation = "UnsupportedOperation",
        /// The backend failed in a way it could not name.
        InternalError = "InternalError",
        /// The task's stored `Param` is not what its type takes (bad JSON, a missing key, a
        /// value of the wrong type): it fails at once, never run with blanks. `ErrorMsg` says
        /// what is wrong ([`crate::task_params`]).
        InvalidTaskParameters = "InvalidTaskParameters",
        /// `CancelTasks` ended the task: before it started (Skipped), or while its command ran
        /// (Failed, the command stopped).
        Cancelled = "Cancelled",
        /// The batch's failures went past its `MaxErrors`: the task never started (Skipped).
        MaxErrorsExceeded = "MaxErrorsExceeded",
    }
}

impl TaskErrorCode {
    /// The message shown in `ErrorMsg` when the backend gives none.
    pub fn default_message(self) -> &'static str {
        match self {
            TaskErrorCode::IncorrectInstanceStatus => {
                "The instance is not in a status this operation can start from."
            }
            TaskErrorCode::InstanceUnreachable => "The instance could not be reached.",
            TaskErrorCode::AttemptsExhausted => "The task did not complete within its attempts.",
            TaskErrorCode::CommandTimeout => "The command did not finish within its timeout.",
            TaskErrorCode::SendFileFailed => "The file could not be sent.",
            TaskErrorCode::SourceFileNotFound => "The source file does not exist.",
            TaskErrorCode::FileMd5Mismatch => "The MD5 of the file does not match FileMd5.",
            TaskErrorCode::DownloadFailed => "The file could not be downloaded.",
            TaskErrorCode::FileTooLarge => "The file is larger than the server's download limit.",
            TaskErrorCode::FetchFileFailed => "The file could not be fetched.",
            TaskErrorCode::InstallAppFailed => "The app could not be installed.",
            TaskErrorCode::UninstallAppFailed => "The app could not be uninstalled.",
            TaskErrorCode::OperateAppFailed => "The app could not be operated.",
            TaskErrorCode::BackupFileFailed => "The backup failed.",
            TaskErrorCode::RecoverFileFailed => "The recovery failed.",
            TaskErrorCode::ScreenshotFailed => "The screenshot failed.",
            TaskErrorCode::OperationFailed => "The operation failed on the instance.",
            TaskErrorCode::UnsupportedOperation => {
                "The phone's backend does not support this operation."
            }
            TaskErrorCode::InternalError => "An internal error occurred.",
            TaskErrorCode::InvalidTaskParameters => {
                "The task's parameters are not valid for its type."
            }
            TaskErrorCode::Cancelled => "The task was cancelled.",
            TaskErrorCode::MaxErrorsExceeded => {
                "The batch had more failures than its MaxErrors allows; this task never started."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ErrorMsg` a failed task shows when its backend gave none: a sentence of its own for
    /// every code.
    #[test]
    fn every_code_has_its_own_message() {
        let mut seen = std::collections::HashSet::new();
        for &code in TaskErrorCode::ALL {
            let message = code.default_message();
            assert!(
                message.len() > 10 && message.ends_with('.'),
                "{code}: {message}"
            );
            assert!(seen.insert(message), "{code} shares {message:?}");
        }
        assert_eq!(
            TaskErrorCode::Cancelled.default_message(),
            "The task was cancelled."
        );
        assert!(
            TaskErrorCode::MaxErrorsExceeded
                .default_message()
                .contains("MaxErrors")
        );
    }
}
