//! What SendFile and FetchFile share: paths on the phone, `oss://` sources and destinations, and
//! the checks made before anything is queued.

use cloudphone_core::ApiError;
use cloudphone_objects::{ObjectError, OssPath};

use crate::params::Params;
use crate::state::Ctx;

/// The vendor's limit of phones per file call.
pub const MAX_INSTANCES: usize = 100;

/// An absolute path on the phone: no NUL, no `.` or `..` segment, at most 1024 bytes.
pub fn phone_path(name: &str, path: &str) -> Result<String, ApiError> {
    let bad = |why: &str| Err(ApiError::invalid(name, why.to_string()));
    if !path.starts_with('/') {
        return bad("The path on the phone must be absolute.");
    }
    if path.contains('\0') {
        return bad("The path contains a NUL byte.");
    }
    if path.len() > 1024 {
        return bad("The path is longer than 1024 bytes.");
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return bad("The path may not contain '.' or '..' segments.");
    }
    Ok(path.to_string())
}

/// A file name: no `/`, no NUL, not `.` or `..`, not empty.
pub fn file_name(name: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty()
        || value == "."
        || value == ".."
        || value.contains('/')
        || value.contains('\0')
    {
        return Err(ApiError::invalid(name, "It must be a plain file name."));
    }
    Ok(value.to_string())
}

/// Joins a directory on the phone and a file name.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Parses an `oss://` parameter.
pub fn oss_path(name: &str, value: &str) -> Result<OssPath, ApiError> {
    OssPath::parse(value).map_err(|e| ApiError::invalid(name, e.to_string()))
}

/// `oss://bucket` or `oss://bucket/folder[/]`: the bucket and the folder without slashes at its ends.
pub fn oss_folder(name: &str, value: &str) -> Result<(String, String), ApiError> {
    let rest = value
        .strip_prefix("oss://")
        .ok_or_else(|| ApiError::invalid(name, "It must look like oss://bucket/folder."))?;
    let (bucket, folder) = rest.split_once('/').unwrap_or((rest, ""));
    let folder = folder.trim_matches('/').to_string();
    // Validates bucket and folder with the object store's own rules.
    let probe = if folder.is_empty() {
        format!("oss://{bucket}/probe")
    } else {
        format!("oss://{bucket}/{folder}/probe")
    };
    oss_path(name, &probe)?;
    Ok((bucket.to_string(), folder))
}

/// The object `path` exists and the caller may read it.
pub async fn readable_object(
    ctx: &Ctx<'_>,
    name: &str,
    value: &str,
    path: &OssPath,
) -> Result<(), ApiError> {
    match ctx.state.objects.head(ctx.account(), path).await {
        Ok(_) => Ok(()),
        Err(ObjectError::NotFound(_)) => Err(ApiError::not_found(name, value)),
        Err(ObjectError::InvalidPath(why)) => Err(ApiError::invalid(name, why)),
        Err(ObjectError::Io(why)) => {
            tracing::error!(error = %why, "object store failure");
            Err(ApiError::Internal)
        }
    }
}

/// `ClientToken`, recorded in the task's `Param` (the server checked its length and answers
/// repeats with it before the action runs, [`crate::idempotency`]).
pub fn client_token(p: &Params) -> Result<Option<String>, ApiError> {
    match p.string("ClientToken") {
        Some(t) if t.chars().count() > 100 => {
            Err(ApiError::invalid("ClientToken", "At most 100 characters."))
        }
        other => Ok(other),
    }
}
