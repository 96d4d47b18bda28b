//! Files dropped on a phone's screen: `POST /console/phones/{id}/apk` and
//! `POST /console/phones/{id}/file`, the file's bytes as the body and its name in `X-File-Name`
//! (percent-encoded, as a header holds ASCII only). The body is streamed to a staging file with
//! the same cap as `PUT /files/...` (`--max-upload-bytes`), never held in memory, and stored as
//! `oss://<the caller's bucket>/console/<id>/<name>`, exactly as an upload through `/files`
//! would be. Then, through the API's own actions as the signed-in key:
//!
//! - an APK: CreateApp from that object, then InstallApp of the new app on this phone;
//! - any other file: SendFile into `/sdcard/Download` of this phone.
//!
//! The answer names the child task to follow (and the app made).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use cloudphone_api::AppState;
use cloudphone_api::files::{object_error, stage_body};
use cloudphone_core::resources::default_bucket;
use cloudphone_core::{ApiError, ids};
use cloudphone_objects::OssPath;
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::phone::{first_child, upload_endpoint};
use crate::post::{Caller, api_failure, failure, json_reply};

/// The header naming a dropped file.
pub const FILE_NAME_HEADER: &str = "x-file-name";
/// Where a dropped file lands on the phone.
pub const DOWNLOADS: &str = "/sdcard/Download";
/// The longest file name taken, in bytes.
const MAX_NAME: usize = 200;

/// A dropped file's name from its header: one path segment, no control characters, no
/// characters a phone's file name or an object key cannot hold.
pub fn file_name(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers
        .get(FILE_NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::missing("X-File-Name"))?;
    let name = percent_decode_str(raw.trim())
        .decode_utf8()
        .map_err(|_| ApiError::invalid("X-File-Name", "It is not percent-encoded UTF-8."))?
        .into_owned();
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name == "."
        || name == ".."
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '\'' | '"' | '`' | '$'));
    if bad {
        return Err(ApiError::invalid(
            "X-File-Name",
            format!(
                "A file name is 1 to {MAX_NAME} bytes, not starting with '-', without '/', '\\', \
                 quotes, '$' or control characters."
            ),
        ));
    }
    Ok(name)
}

/// Streams the body to a staging file and stores it in the caller's bucket; the path stored.
async fn stage(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    body: Body,
) -> Result<OssPath, ApiError> {
    let max = state.limits.max_upload_bytes;
    let too_large = || ApiError::RequestTooLarge(usize::try_from(max).unwrap_or(usize::MAX));
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let bucket = default_bucket(&state.region, &caller.key.account_id);
    let path = OssPath::new(&bucket, &format!("console/{}/{name}", ids::new_id("up-")))
        .map_err(object_error)?;
    let (staged_path, size) = stage_body(state, body, "console-", |_| {}).await?;
    if size == 0 {
        return Err(ApiError::invalid("Body", "The file is empty."));
    }
    state
        .objects
        .put_file(&caller.key.account_id, &path, &staged_path)
        .await
        .map_err(object_error)?;
    // `staged_path` is removed when dropped.
    Ok(path)
}

/// The file's name and the stored object, or the refusal.
async fn received(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, OssPath), Response> {
    let name = file_name(headers).map_err(|e| api_failure(&e))?;
    let path = stage(state, caller, headers, &name, body)
        .await
        .map_err(|e| api_failure(&e))?;
    Ok((name, path))
}

/// `POST /console/phones/{id}/apk`: the APK stored, made an app (CreateApp) and installed on
/// this phone (InstallApp).
pub async fn apk(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (name, path) = match received(&state, &caller, &headers, body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    if !name.to_ascii_lowercase().ends_with(".apk") {
        return failure(
            StatusCode::BAD_REQUEST,
            "InvalidParameter.X-File-Name",
            "An app is a file whose name ends with .apk.",
        );
    }
    let app = match caller
        .act(&state, "CreateApp", vec![("OssAppUrl", path.to_string())])
        .await
    {
        Ok(body) => body["AppId"].to_string().trim_matches('"').to_string(),
        Err(e) => return api_failure(&e),
    };
    let installed = caller
        .act(
            &state,
            "InstallApp",
            vec![("AppIdList.1", app.clone()), ("InstanceIdList.1", id)],
        )
        .await;
    match installed {
        Ok(body) => json_reply(
            StatusCode::OK,
            &json!({
                "AppId": app,
                "Path": path.to_string(),
                "TaskId": first_child(&body),
                "BatchId": body["TaskId"].as_str(),
            }),
        ),
        Err(e) => api_failure(&e),
    }
}

/// `POST /console/phones/{id}/file`: the file stored and sent into `/sdcard/Download` of this
/// phone (SendFile).
pub async fn file(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (name, path) = match received(&state, &caller, &headers, body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let params = vec![
        ("AndroidInstanceIdList.1", id),
        ("UploadType", "OSS".into()),
        ("UploadUrl", path.to_string()),
        ("UploadEndpoint", upload_endpoint(&state)),
        ("SourceFilePath", DOWNLOADS.into()),
        ("TargetFileName", name.clone()),
    ];
    match caller.act(&state, "SendFile", params).await {
        Ok(body) => json_reply(
            StatusCode::OK,
            &json!({
                "Path": path.to_string(),
                "Target": format!("{DOWNLOADS}/{name}"),
                "TaskId": first_child(&body),
                "BatchId": body["TaskId"].as_str(),
            }),
        ),
        Err(e) => api_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(raw: &str) -> Result<String, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(FILE_NAME_HEADER, raw.parse().unwrap());
        file_name(&h)
    }

    #[test]
    fn a_dropped_file_s_name_is_one_plain_segment() {
        assert_eq!(named("app-release.apk").unwrap(), "app-release.apk");
        assert_eq!(named("r%C3%A9sum%C3%A9%20v2.pdf").unwrap(), "résumé v2.pdf");
        for bad in [
            "", "..", "a%2Fb", "a%5Cb", "-rf", "%00x", "a%0Ab", "it%27s", "%24HOME", "%FF",
        ] {
            assert!(named(bad).is_err(), "{bad}");
        }
        assert!(named(&"a".repeat(201)).is_err());
        assert!(file_name(&HeaderMap::new()).is_err());
    }
}
