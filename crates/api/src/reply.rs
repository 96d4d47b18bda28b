//! JSON answers: a success body with its `RequestId`, and the vendor's error body
//! (`RequestId`, `HostId`, `Code`, `Message`, `Recommend`) with a status of at least 400.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudphone_core::ApiError;
use serde_json::{Map, Value, json};

/// A success body: a JSON object as a value (its `RequestId` added on the way out), or the
/// whole answer already written (DescribeTasks, written straight from its rows).
#[derive(Debug)]
pub enum Body {
    Value(Value),
    /// The whole answer, its `RequestId` included (written so to save copying a large one).
    Complete(Vec<u8>),
}

impl From<Value> for Body {
    fn from(v: Value) -> Body {
        Body::Value(v)
    }
}

/// A 200 answer: `body` (an object) with `RequestId` added.
pub fn success(request_id: &str, body: impl Into<Body>) -> Response {
    json_response(StatusCode::OK, success_bytes(request_id, body.into()))
}

/// The bytes of a success answer, `RequestId` included, as [`success`] sends them.
pub fn success_bytes(request_id: &str, body: Body) -> Vec<u8> {
    match body {
        Body::Value(body) => {
            let mut map = match body {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            map.insert("RequestId".into(), Value::String(request_id.into()));
            Value::Object(map).to_string().into_bytes()
        }
        Body::Complete(bytes) => bytes,
    }
}

/// An error answer in the vendor's shape.
pub fn failure(err: &ApiError, request_id: &str, host_id: &str) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code(),
        "Message": err.to_string(),
        "Recommend": "",
    });
    if let (Some((name, value)), Some(map)) = (err.extra(), body.as_object_mut()) {
        map.insert(name.into(), value.clone());
    }
    let mut response = json_response(status, body.to_string());
    if let Some(ms) = err.retry_after_ms() {
        // The SDK checks this header first and raises its ThrottlingException with it.
        response
            .headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    response
}

fn json_response(status: StatusCode, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}
