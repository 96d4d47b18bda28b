//! The benchmark's API client: RPC calls signed with ACS3-HMAC-SHA256 exactly as the SDK signs
//! them (headers `x-acs-action`, `x-acs-version`, `x-acs-date`, `x-acs-signature-nonce`,
//! `x-acs-content-sha256`, parameters in the query), over one keep-alive HTTP/1.1 client.
//!
//! Signing is a pure function of the call, the date and the nonce ([`sign`]), so the same
//! request can be sent here or written out pre-signed for `wrk` ([`super::wrk`]).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cloudphone_api::server::VERSION;
use cloudphone_api::signature::{canonical_request_v3_at, pct, sign_v3, string_to_sign_v3};
use serde_json::Value;

/// The SHA-256 of an empty body: every call here carries its parameters in the query.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The access key the benchmark signs with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
}

/// One signed call, ready to send: `POST {target}` with `headers` (names in lower case, sorted,
/// `authorization` last) and an empty body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCall {
    /// Path and query: `/?Name=value&...`, values percent-encoded.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// A fresh nonce: 32 hex characters, as the SDK sends (the server refuses a nonce seen before).
pub fn nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Signs `action` with `params` for the server at `host` (`ip:port`, as sent in `Host`).
pub fn sign(
    creds: &Credentials,
    host: &str,
    action: &str,
    params: &[(String, String)],
    date: &str,
    nonce: &str,
) -> SignedCall {
    let request = Request {
        method: "POST",
        path: "/",
        accept: "application/json",
    };
    sign_request(creds, host, &request, action, params, date, nonce)
}

/// What is signed beside the action and its parameters.
pub struct Request<'a> {
    pub method: &'a str,
    /// The canonical path (`/` for the RPC API).
    pub path: &'a str,
    pub accept: &'a str,
}

/// Signs `action` with `params` as `request`; the target is the path with the query.
pub fn sign_request(
    creds: &Credentials,
    host: &str,
    request: &Request<'_>,
    action: &str,
    params: &[(String, String)],
    date: &str,
    nonce: &str,
) -> SignedCall {
    let mut headers: Vec<(String, String)> = vec![
        ("accept".into(), request.accept.to_string()),
        ("host".into(), host.to_string()),
        ("x-acs-action".into(), action.to_string()),
        ("x-acs-content-sha256".into(), EMPTY_SHA256.into()),
        ("x-acs-date".into(), date.to_string()),
        ("x-acs-signature-nonce".into(), nonce.to_string()),
        ("x-acs-version".into(), VERSION.into()),
    ];
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let canonical = canonical_request_v3_at(
        request.method,
        request.path,
        params,
        &headers,
        &names,
        EMPTY_SHA256,
    );
    let signature = sign_v3(&creds.secret, &string_to_sign_v3(&canonical));
    let authorization = format!(
        "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={signature}",
        creds.key_id,
        names.join(";")
    );
    headers.push(("authorization".into(), authorization));
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    let target = if query.is_empty() {
        request.path.to_string()
    } else {
        format!("{}?{query}", request.path)
    };
    SignedCall { target, headers }
}

/// The current time as `x-acs-date` wants it.
pub fn date_now() -> String {
    cloudphone_core::time::iso(cloudphone_core::time::now_ms())
}

/// Parameters from string pairs.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A list parameter: `Name.1=a&Name.2=b...`.
pub fn push_list(params: &mut Vec<(String, String)>, name: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        params.push((format!("{name}.{}", i + 1), v.clone()));
    }
}

/// An answer: status, body, and how long the call took until the body was read in full.
pub struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
    pub elapsed: Duration,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }

    /// The JSON body of a 2xx answer, else an error with the server's `Code` and `Message`.
    pub fn ok_json(&self) -> anyhow::Result<Value> {
        if !(200..300).contains(&self.status) {
            bail!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            );
        }
        self.json()
    }
}

/// Calls one server, keeping its connections alive between calls.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For streams: no overall timeout.
    streaming: reqwest::Client,
    base: String,
    host: String,
    creds: Credentials,
}

impl Client {
    /// `address` is `ip:port`.
    pub fn new(address: &str, creds: Credentials) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .context("creating the HTTP client")?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("creating the HTTP client")?;
        Ok(Client {
            http,
            streaming,
            base: format!("http://{address}"),
            host: address.to_string(),
            creds,
        })
    }

    /// Signs (now, with a fresh nonce) and sends one call; the elapsed time covers the round
    /// trip and reading the whole body, not the client's signing.
    pub async fn call(&self, action: &str, params: &[(String, String)]) -> anyhow::Result<Answer> {
        let signed = sign(
            &self.creds,
            &self.host,
            action,
            params,
            &date_now(),
            &nonce(),
        );
        self.send(&signed, Instant::now()).await
    }

    /// A GET of `path` with `query`, signed with ACS3 for `action` (the watch stream), with
    /// `extra` headers sent unsigned (`last-event-id`); the response as it starts, its body
    /// not yet read, and no overall timeout (a stream stays open).
    pub async fn get_signed(
        &self,
        path: &str,
        action: &str,
        query: &[(String, String)],
        extra: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        let request = Request {
            method: "GET",
            path,
            accept: "text/event-stream",
        };
        let signed = sign_request(
            &self.creds,
            &self.host,
            &request,
            action,
            query,
            &date_now(),
            &nonce(),
        );
        let mut builder = self
            .streaming
            .get(format!("{}{}", self.base, signed.target));
        // reqwest sends Host itself, from the same address.
        for (name, value) in signed.headers.iter().filter(|(n, _)| n != "host") {
            builder = builder.header(name, value);
        }
        for (name, value) in extra {
            builder = builder.header(*name, value);
        }
        builder
            .send()
            .await
            .with_context(|| format!("opening {path} on {}", self.base))
    }

    /// Sends a call signed beforehand.
    pub async fn send(&self, signed: &SignedCall, started: Instant) -> anyhow::Result<Answer> {
        let mut request = self
            .http
            .post(format!("{}{}", self.base, signed.target))
            .header(reqwest::header::CONTENT_LENGTH, "0");
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.context("reading the answer")?;
        Ok(Answer {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// Calls and returns the JSON of a successful answer.
    pub async fn ok(&self, action: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
        self.call(action, params)
            .await?
            .ok_json()
            .with_context(|| format!("{action} failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_api::signature::canonical_request_v3;
    use cloudphone_api::signature::{parse_acs3_authorization, verify_v3};

    fn creds() -> Credentials {
        Credentials {
            key_id: "testid".into(),
            secret: "testsecret".into(),
        }
    }

    #[test]
    fn signs_like_the_server_verifies() {
        let p = params(&[("InvokeId", "inv-1"), ("Param", "a b*c~d/中")]);
        let call = sign(
            &creds(),
            "127.0.0.1:9",
            "DescribeTasks",
            &p,
            "2025-01-01T00:00:00Z",
            "0123456789abcdef0123456789abcdef",
        );
        assert_eq!(
            call.target,
            "/?InvokeId=inv-1&Param=a%20b%2Ac~d%2F%E4%B8%AD"
        );
        let (_, auth) = call.headers.last().unwrap();
        let auth = parse_acs3_authorization(auth).unwrap();
        assert_eq!(auth.access_key_id, "testid");
        for required in cloudphone_api::auth::REQUIRED_SIGNED_HEADERS {
            assert!(
                auth.signed_headers.iter().any(|h| h == required),
                "{required}"
            );
        }
        // Rebuild the string to sign from what a server receives, as `auth` does.
        let names: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
        let received: Vec<(String, String)> = call.headers[..call.headers.len() - 1].to_vec();
        let canonical = canonical_request_v3("POST", &p, &received, &names, EMPTY_SHA256);
        assert!(verify_v3(
            "testsecret",
            &string_to_sign_v3(&canonical),
            &auth.signature
        ));
        assert!(!verify_v3(
            "other",
            &string_to_sign_v3(&canonical),
            &auth.signature
        ));
    }

    #[test]
    fn the_contract_vector_a_signature() {
        // Vector A of the API contract, with the SDK's full header set.
        let p = params(&[
            ("InvokeId", "inv-1"),
            ("MaxResults", "10"),
            ("Param", "a b*c~d/中"),
            ("ResourceIds.1", "acp-1"),
            ("ResourceIds.2", "acp-2"),
            ("TaskStatuses.1", "Finished"),
            ("TaskStatuses.2", "Failed"),
        ]);
        let call = sign(
            &creds(),
            "127.0.0.1:18096",
            "DescribeTasks",
            &p,
            "2025-01-01T00:00:00Z",
            "0123456789abcdef0123456789abcdef",
        );
        // Our header set is smaller than the SDK's (no user-agent, no credentials provider),
        // so the signature differs from the vector's; the canonical query line must not.
        assert!(
            call.target
                .starts_with("/?InvokeId=inv-1&MaxResults=10&Param=a%20b")
        );
        assert!(
            call.target
                .ends_with("TaskStatuses.1=Finished&TaskStatuses.2=Failed")
        );
    }

    #[test]
    fn nonces_are_32_hex_and_fresh() {
        let a = nonce();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, nonce());
    }

    #[test]
    fn list_parameters_are_one_based() {
        let mut p = Vec::new();
        push_list(
            &mut p,
            "TaskStatuses",
            &["Waiting".into(), "Processing".into()],
        );
        assert_eq!(
            p,
            params(&[
                ("TaskStatuses.1", "Waiting"),
                ("TaskStatuses.2", "Processing")
            ])
        );
    }
}
