//! The object routes under `/files/{bucket}/{key}` (docs/design.md §7):
//!
//! - `GET` with `?Account=<id>&Expires=<unix secs>&Signature=<hex>`: a signed, expiring link
//!   (from a task's `Result`) to an object of that account's namespace; the link is the
//!   authorisation. A bad or expired link is a 403. With objects on S3 and `presign` on, a
//!   valid link answers `302 Found` to a presigned GET of the service (a few minutes long).
//! - `GET` and `PUT` signed with ACS3-HMAC-SHA256 like any API call, for `cloudphone cp`. The
//!   canonical request's path is the real path, each segment percent-encoded ([`signed_path`]);
//!   `x-acs-action` is `GetObject` / `PutObject`. An upload's body is streamed to a staging file
//!   while it is hashed, held to the signed `x-acs-content-sha256`, and only then stored: it is
//!   never held in memory, and its size is bounded by [`crate::Limits::max_upload_bytes`].
//!
//! Objects stream out in bounded chunks. Errors are the vendor's JSON bodies.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;
use cloudphone_core::{ApiError, ids};
use cloudphone_objects::{
    ByteStream, ObjectError, ObjectInfo, OssPath, encode_key, encode_segment,
};
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::auth::{Target, authenticate_for};
use crate::reply;
use crate::request::{RawRequest, decode_form};
use crate::state::AppState;

/// Where the object routes live.
pub const PREFIX: &str = "/files/";
/// `x-acs-action` of an authenticated download.
pub const GET_OBJECT: &str = "GetObject";
/// `x-acs-action` of an upload.
pub const PUT_OBJECT: &str = "PutObject";

/// The object routes, to merge into the API's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/files/{bucket}/{*key}",
        get(download).put(upload).fallback(other_method),
    )
}

/// The path of `path`'s object route, as sent and as signed: `/files/<bucket>/<key>`, each
/// segment percent-encoded (RFC 3986 unreserved characters stay), the `/` between them kept.
pub fn signed_path(path: &OssPath) -> String {
    format!(
        "{PREFIX}{}/{}",
        encode_segment(&path.bucket),
        encode_key(&path.key)
    )
}

/// The object a request path names: `/files/<bucket>/<key>`, each segment percent-decoded,
/// then validated as an `oss://` path (no `..`, no empty segments, no NUL, ...).
pub fn object_path(uri_path: &str) -> Result<OssPath, ApiError> {
    let rest = uri_path
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApiError::ActionNotFound(uri_path.to_string()))?;
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let segment = percent_decode_str(raw).decode_utf8().map_err(|_| {
            ApiError::invalid("Path", "a path segment is not percent-encoded UTF-8")
        })?;
        segments.push(segment.into_owned());
    }
    let (bucket, key) = segments
        .split_first()
        .ok_or_else(|| ApiError::invalid("Path", "the path names no bucket"))?;
    OssPath::new(bucket, &key.join("/")).map_err(object_error)
}

/// An object-store failure as an API error.
pub fn object_error(e: ObjectError) -> ApiError {
    match e {
        ObjectError::InvalidPath(why) => ApiError::invalid("Path", why),
        ObjectError::NotFound(what) => ApiError::not_found("Object", what),
        ObjectError::Io(_) => ApiError::Internal,
    }
}

fn finish(
    state: &AppState,
    request_id: &str,
    started: Instant,
    what: &str,
    result: Result<Response, ApiError>,
) -> Response {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(mut response) => {
            info!(%request_id, %what, elapsed_ms, "ok");
            if let Ok(value) = HeaderValue::from_str(request_id) {
                response.headers_mut().insert("x-acs-request-id", value);
            }
            response
        }
        Err(e) => {
            info!(%request_id, %what, code = %e.code(), status = e.http_status(), elapsed_ms, "refused");
            reply::failure(&e, request_id, &state.host_id)
        }
    }
}

// ---- downloads ----

async fn download(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = ids::request_id();
    let started = Instant::now();
    let result = serve_download(&state, request).await;
    finish(&state, &request_id, started, "download", result)
}

async fn serve_download(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = object_path(parts.uri.path())?;
    let account = if parts.headers.contains_key(header::AUTHORIZATION) {
        let body = axum::body::to_bytes(body, state.limits.max_body_bytes)
            .await
            .map_err(|_| ApiError::RequestTooLarge(state.limits.max_body_bytes))?;
        let raw = RawRequest::from_parts(
            parts.method.as_str(),
            &parts.headers,
            parts.uri.query(),
            body.to_vec(),
            state.limits.max_params,
        )?;
        let caller = authenticate(state, &raw, &path, false).await?.account_id;
        require_action(&raw, GET_OBJECT)?;
        caller
    } else {
        let account = check_link(state, parts.uri.query(), &path)?;
        // On S3 with `presign`, the bytes go straight from the service to the client: only
        // after our own checks, so the link's rules stay ours (docs/design.md §7).
        if let Some(url) = state
            .objects
            .presigned_get(&account, &path)
            .await
            .map_err(object_error)?
        {
            return redirect(&url);
        }
        account
    };
    let (info, stream) = state
        .objects
        .open(&account, &path)
        .await
        .map_err(object_error)?;
    Ok(object_response(&info, stream))
}

/// A link's `Expires` and `Signature` must sign its `Account` and this path and not have
/// expired; the account whose namespace the link opens.
fn check_link(state: &AppState, query: Option<&str>, path: &OssPath) -> Result<String, ApiError> {
    let pairs = decode_form(query.unwrap_or("").as_bytes(), 16)?;
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(account), Some(expires), Some(signature)) =
        (param("Account"), param("Expires"), param("Signature"))
    else {
        return Err(ApiError::IncompleteSignature(
            "a download needs a signed link (Account, Expires and Signature) or an ACS3 signature"
                .into(),
        ));
    };
    let now_secs = now_ms().div_euclid(1000);
    let valid = expires.parse::<i64>().is_ok_and(|expires| {
        state.objects.verify_link(
            account,
            &path.bucket,
            &path.key,
            expires,
            signature,
            now_secs,
        )
    });
    if valid {
        Ok(account.to_string())
    } else {
        // One answer for altered and expired links: either way the link does not grant access.
        Err(ApiError::SignatureDoesNotMatch)
    }
}

/// `302 Found` to a presigned URL of the object service.
fn redirect(url: &str) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(url).map_err(|_| {
        warn!("a presigned URL that is not a header value");
        ApiError::Internal
    })?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = axum::http::StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

fn object_response(info: &ObjectInfo, stream: ByteStream) -> Response {
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    if let Ok(md5) = hex::decode(&info.md5_hex)
        && let Ok(value) =
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(md5))
    {
        headers.insert("content-md5", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", info.md5_hex)) {
        headers.insert(header::ETAG, value);
    }
    response
}

// ---- uploads ----

async fn upload(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = ids::request_id();
    let started = Instant::now();
    let result = receive_upload(&state, &request_id, request)
        .await
        .map(|body| reply::success(&request_id, body));
    finish(&state, &request_id, started, "upload", result)
}

/// An upload is a mutating call: once its caller is known, it is audited like the API's.
async fn receive_upload(
    state: &AppState,
    request_id: &str,
    request: Request,
) -> Result<Value, ApiError> {
    let (parts, body) = request.into_parts();
    let path = object_path(parts.uri.path())?;
    let raw = RawRequest::from_parts(
        parts.method.as_str(),
        &parts.headers,
        parts.uri.query(),
        Vec::new(),
        state.limits.max_params,
    )?;
    let key = authenticate(state, &raw, &path, true).await?;
    let source = crate::peer::source(&parts.extensions);
    let stored = store_upload(state, &raw, &path, &key.account_id, body).await;
    let outcome = match &stored {
        Ok(_) => "Success".to_string(),
        Err(e) => e.code(),
    };
    let entry = crate::audit::entry(
        &key,
        PUT_OBJECT,
        vec![path.to_string()],
        Vec::new(),
        request_id,
        &source,
        outcome,
        now_ms(),
    );
    if let Err(e) = state.store.append_audit(&[entry]).await {
        warn!(error = %e, "the audit entry of an upload could not be written");
    }
    stored
}

async fn store_upload(
    state: &AppState,
    raw: &RawRequest,
    path: &OssPath,
    caller: &str,
    body: axum::body::Body,
) -> Result<Value, ApiError> {
    let caller = caller.to_string();
    require_action(raw, PUT_OBJECT)?;
    let claimed = raw
        .header("x-acs-content-sha256")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // Refused before a byte is stored: an announced oversize body.
    let max = state.limits.max_upload_bytes;
    let too_large = || ApiError::RequestTooLarge(usize::try_from(max).unwrap_or(usize::MAX));
    if let Some(length) = raw.header("content-length") {
        let length: u64 = length
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid("Content-Length", "must be a number"))?;
        if length > max {
            return Err(too_large());
        }
    }

    let mut sha = Sha256::new();
    let (staged_path, _) = stage_body(state, body, "upload-", |chunk| sha.update(chunk)).await?;
    if hex::encode(sha.finalize()) != claimed {
        // The signature covered the claimed hash; a body that does not match it was altered.
        return Err(ApiError::SignatureDoesNotMatch);
    }
    let info = state
        .objects
        .put_file(&caller, path, &staged_path)
        .await
        .map_err(object_error)?;
    // `staged_path` is removed when dropped, stored or not.
    Ok(json!({
        "Path": path.to_string(),
        "Size": info.size,
        "Md5": info.md5_hex,
    }))
}

// ---- shared ----

/// Streams `body` into a new staging file of the object store (named `prefix...`), at most
/// `--max-upload-bytes` of it (more: `RequestTooLarge`, nothing kept), showing each chunk to
/// `seen` on the way; the file (removed when the path is dropped) and its size. For every
/// upload the server takes: `PUT /files/...` and the console's dropped files.
pub async fn stage_body(
    state: &AppState,
    body: Body,
    prefix: &str,
    mut seen: impl FnMut(&[u8]),
) -> Result<(tempfile::TempPath, u64), ApiError> {
    let max = state.limits.max_upload_bytes;
    let staged = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(state.objects.staging_dir())
        .map_err(|e| {
            warn!(error = %e, "creating a staging file failed");
            ApiError::Internal
        })?;
    let (file, staged_path) = staged.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let disk_error = |e: std::io::Error| {
        warn!(error = %e, "writing a staging file failed");
        ApiError::Internal
    };
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid("Body", format!("the upload was interrupted: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::RequestTooLarge(
                usize::try_from(max).unwrap_or(usize::MAX),
            ));
        }
        seen(&chunk);
        file.write_all(&chunk).await.map_err(disk_error)?;
    }
    file.flush().await.map_err(disk_error)?;
    Ok((staged_path, size))
}

/// The caller's key, from an ACS3 signature over the real path.
async fn authenticate(
    state: &AppState,
    raw: &RawRequest,
    path: &OssPath,
    streamed_body: bool,
) -> Result<AccessKey, ApiError> {
    let signed = signed_path(path);
    let target = Target {
        path: &signed,
        streamed_body,
    };
    let key = authenticate_for(state.store.as_ref(), &state.keys, raw, target, now_ms()).await?;
    state.throttle.check(&key.key_id)?;
    Ok(key)
}

/// The signed `x-acs-action` must say what the request does.
fn require_action(raw: &RawRequest, expected: &str) -> Result<(), ApiError> {
    match raw.header("x-acs-action").map(str::trim) {
        Some(action) if action == expected => Ok(()),
        Some(action) => Err(ApiError::invalid(
            "x-acs-action",
            format!("is {action}, but this request is a {expected}"),
        )),
        None => Err(ApiError::missing("x-acs-action")),
    }
}

/// Any other method on an object route.
async fn other_method(
    State(state): State<Arc<AppState>>,
    method: Method,
    request: Request,
) -> Response {
    let e = ApiError::ActionNotFound(format!("{method} {}", request.uri().path()));
    reply::failure(&e, &ids::request_id(), &state.host_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_their_route() {
        for s in [
            "oss://bucket/a.txt",
            "oss://bucket/dir/a b+c/中.apk",
            "oss://b-1/we%ird#1?x",
            "oss://bucket/a%2Fb",
        ] {
            let p = OssPath::parse(s).unwrap();
            let route = signed_path(&p);
            assert!(route.starts_with("/files/"));
            assert!(!route.contains(' ') && !route.contains('?') && !route.contains('#'));
            assert_eq!(object_path(&route).unwrap(), p, "{route}");
        }
        assert_eq!(
            signed_path(&OssPath::parse("oss://bucket/dir/a b").unwrap()),
            "/files/bucket/dir/a%20b"
        );
    }

    #[test]
    fn bad_route_paths() {
        for route in [
            "/files/bucket/../x",
            "/files/bucket/%2E%2E/x",
            "/files/bucket/a//b",
            "/files/bucket/a%00b",
            "/files/bucket/dir/",
            "/files/BUCKET/x",
            "/files/bucket/%FF",
            "/files/bucket/a%5Cb",
        ] {
            assert_eq!(
                object_path(route).unwrap_err().code(),
                "InvalidParameter.Path",
                "{route}"
            );
        }
    }

    #[test]
    fn object_errors_map_to_api_errors() {
        assert_eq!(
            object_error(ObjectError::NotFound("oss://b/k".into())).http_status(),
            404
        );
        assert_eq!(
            object_error(ObjectError::InvalidPath("x".into())).http_status(),
            400
        );
        assert_eq!(
            object_error(ObjectError::Io("x".into())),
            ApiError::Internal
        );
    }
}
