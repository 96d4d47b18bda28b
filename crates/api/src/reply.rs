//! JSON answers: a success body with its `RequestId`, and the vendor's error body
//! (`RequestId`, `HostId`, `Code`, `Message`, `Recommend`) with a status of at least 400.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudphone_core::ApiError;
use serde_json::{Map, Value, json};

/// A success body without its `RequestId`: a JSON object as a value, or already written out
/// (the large listings, which serialise straight from their rows instead of building a value).
#[derive(Debug)]
pub enum Body {
    Value(Value),
    /// The text of one JSON object.
    Json(String),
}

impl From<Value> for Body {
    fn from(v: Value) -> Body {
        Body::Value(v)
    }
}

/// A 200 answer: `body` (an object) with `RequestId` added.
pub fn success(request_id: &str, body: impl Into<Body>) -> Response {
    match body.into() {
        Body::Value(body) => {
            let mut map = match body {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            map.insert("RequestId".into(), Value::String(request_id.into()));
            json_response(StatusCode::OK, Value::Object(map).to_string())
        }
        Body::Json(text) => json_response(StatusCode::OK, with_request_id(request_id, &text)),
    }
}

/// `{"RequestId":..,` and the members of the object `text`.
fn with_request_id(request_id: &str, text: &str) -> String {
    let id = Value::String(request_id.into()).to_string();
    let members = text.trim().strip_prefix('{').unwrap_or("}").trim_start();
    let mut out = String::with_capacity(text.len() + id.len() + 16);
    out.push_str("{\"RequestId\":");
    out.push_str(&id);
    if members != "}" {
        out.push(',');
    }
    out.push_str(members);
    out
}

/// An error answer in the vendor's shape.
pub fn failure(err: &ApiError, request_id: &str, host_id: &str) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code(),
        "Message": err.to_string(),
        "Recommend": "",
    });
    json_response(status, body.to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_body_gets_the_request_id_first() {
        let v: Value = serde_json::from_str(&with_request_id("R-1", r#"{"A":1,"B":[2]}"#)).unwrap();
        assert_eq!(v, json!({"RequestId": "R-1", "A": 1, "B": [2]}));
        let v: Value = serde_json::from_str(&with_request_id("R-2", "{}")).unwrap();
        assert_eq!(v, json!({"RequestId": "R-2"}));
    }
}
