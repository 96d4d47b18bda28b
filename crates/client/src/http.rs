//! The client: signed calls to one server over keep-alive HTTP/1.1 connections (HTTPS through
//! [`crate::tls`]). [`Client::call`] returns the answer as a type or a typed refusal;
//! [`Client::call_raw`] and [`Client::send`] return the status, the body and the time taken
//! (the benchmark times them); [`Client::signed`] signs any request whose body the caller sends
//! (the object routes, streams).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::protocol::{EMPTY_SHA256, WATCH_ACTION, WATCH_PATH};
use crate::signer::{Credentials, Request, SignedCall, nonce, sign, sign_request};
use crate::time::date_now;

/// How long the body of an error answer may be in an [`Error::Http`].
const ERROR_BODY_BYTES: usize = 500;

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct Options {
    /// PEM certificates of CAs trusted besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The longest a call may take, answer included (not [`Client::signed`] requests, which
    /// may stream).
    pub timeout: Duration,
    /// Idle connections kept per host for the next calls.
    pub pool_max_idle_per_host: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(120),
            pool_max_idle_per_host: 64,
        }
    }
}

/// An answer: status, body, and how long the call took until the body was read in full.
pub struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
    pub elapsed: Duration,
}

impl Answer {
    /// The body as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            status: self.status,
            source,
        })
    }

    /// The body of a 2xx answer as `T`; any other answer as the server's refusal.
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if (200..300).contains(&self.status) {
            self.json()
        } else {
            Err(refusal(self.status, &self.body))
        }
    }
}

/// The error an answer of `status` with `body` stands for: the protocol's error body when it
/// is one, else the start of the body.
fn refusal(status: u16, body: &[u8]) -> Error {
    let text = |v: &serde_json::Value, field: &str| v[field].as_str().map(str::to_string);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["Code"].is_string() => Error::Api {
            status,
            code: text(&v, "Code").unwrap_or_default(),
            message: text(&v, "Message").unwrap_or_else(|| "the server refused the call".into()),
            request_id: text(&v, "RequestId").unwrap_or_default(),
        },
        _ => Error::Http {
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).into_owned(),
        },
    }
}

/// Calls one server with one access key, keeping its connections alive between calls.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For requests that may stream (uploads, downloads, the watch stream): no overall timeout.
    streaming: reqwest::Client,
    endpoint: Endpoint,
    creds: Credentials,
}

impl Client {
    /// A client of `endpoint` (`http://host:port`, `https://host:port`, or a bare `host:port`
    /// for plain HTTP) with the default [`Options`].
    pub fn new(endpoint: &str, creds: Credentials) -> Result<Client, Error> {
        Client::with_options(endpoint, creds, &Options::default())
    }

    pub fn with_options(
        endpoint: &str,
        creds: Credentials,
        options: &Options,
    ) -> Result<Client, Error> {
        let endpoint = Endpoint::parse(endpoint)?;
        let tls = crate::tls::config(options.ca_file.as_deref())?;
        let built = |b: reqwest::ClientBuilder| {
            b.tls_backend_preconfigured(tls.clone())
                .connect_timeout(options.connect_timeout)
                .build()
                .map_err(|e| Error::TlsSetup(e.to_string()))
        };
        Ok(Client {
            http: built(
                reqwest::Client::builder()
                    .timeout(options.timeout)
                    .pool_max_idle_per_host(options.pool_max_idle_per_host),
            )?,
            streaming: built(reqwest::Client::builder())?,
            endpoint,
            creds,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Calls `action` with `params` and returns the answer as `T`, or the server's refusal as
    /// [`Error::Api`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<T, Error> {
        self.call_raw(action, params).await?.result()
    }

    /// Signs (now, with a fresh nonce) and sends one call; the elapsed time covers the round
    /// trip and reading the whole body, not the signing.
    pub async fn call_raw(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Answer, Error> {
        let signed = sign(
            &self.creds,
            self.endpoint.host(),
            action,
            params,
            &date_now(),
            &nonce(),
        );
        self.send(&signed, Instant::now()).await
    }

    /// Sends an RPC call signed beforehand (`POST`, empty body); `started` is when its clock
    /// started.
    pub async fn send(&self, signed: &SignedCall, started: Instant) -> Result<Answer, Error> {
        let url = self.endpoint.url(&signed.target);
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport(&url, e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(&url, e))?;
        Ok(Answer {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// A request signed now as `request`, for `action` with `params` in its query, ready for a
    /// body and [`Client::execute`]; no overall timeout. The signed headers are set on it
    /// (`host` as the HTTP stack sends it, which is what was signed).
    pub fn signed(
        &self,
        request: &Request<'_>,
        action: &str,
        params: &[(String, String)],
    ) -> Result<reqwest::RequestBuilder, Error> {
        let signed = sign_request(
            &self.creds,
            self.endpoint.host(),
            request,
            action,
            params,
            &date_now(),
            &nonce(),
        );
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::Endpoint(format!("no such HTTP method: {}", request.method)))?;
        let mut builder = self
            .streaming
            .request(method, self.endpoint.url(&signed.target));
        for (name, value) in signed.headers.iter().filter(|(n, _)| n != "host") {
            builder = builder.header(name, value);
        }
        Ok(builder)
    }

    /// Sends a request and returns the response as it starts (its body not yet read), or the
    /// server's refusal when its status is not 2xx.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| Error::transport(&self.endpoint.to_string(), e))?;
        let url = request.url().to_string();
        let response = client
            .execute(request)
            .await
            .map_err(|e| Error::transport(&url, e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(refusal(status, &body))
    }

    /// Opens the watch stream (`GET /tasks/watch`, signed) with `query` filters, resuming after
    /// `last_event_id` when given (sent unsigned, as browsers do).
    pub async fn open_watch(
        &self,
        query: &[(String, String)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, Error> {
        let request = Request {
            method: "GET",
            path: WATCH_PATH,
            accept: Some("text/event-stream"),
            body_sha256: EMPTY_SHA256,
        };
        let mut builder = self.signed(&request, WATCH_ACTION, query)?;
        if let Some(id) = last_event_id {
            builder = builder.header("last-event-id", id);
        }
        self.execute(builder).await
    }

    /// An unsigned GET of a full URL (a download link, which carries its own signature),
    /// through the same TLS settings; the response as it starts, whatever its status.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, Error> {
        self.streaming
            .get(url)
            .send()
            .await
            .map_err(|e| Error::transport(url, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_servers_fields() {
        let body = br#"{"Code":"InvalidParameter","Message":"bad","RequestId":"r-1"}"#;
        match refusal(400, body) {
            Error::Api {
                status,
                code,
                message,
                request_id,
            } => assert_eq!(
                (status, code.as_str(), message.as_str(), request_id.as_str()),
                (400, "InvalidParameter", "bad", "r-1")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            refusal(400, br#"{"Code":"X"}"#).to_string(),
            "X: the server refused the call"
        );
        let long = vec![b'x'; 2000];
        match refusal(502, &long) {
            Error::Http { status, body } => assert_eq!((status, body.len()), (502, 500)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_is_typed() {
        let answer = |status, body: &'static [u8]| Answer {
            status,
            body: bytes::Bytes::from_static(body),
            elapsed: Duration::ZERO,
        };
        #[derive(serde::Deserialize)]
        struct Total {
            #[serde(rename = "TotalCount")]
            total: u32,
        }
        let ok: Total = answer(200, br#"{"TotalCount":3}"#).result().unwrap();
        assert_eq!(ok.total, 3);
        assert!(matches!(
            answer(200, b"[]").result::<Total>(),
            Err(Error::Decode { status: 200, .. })
        ));
        assert!(matches!(
            answer(404, br#"{"Code":"NotFound","Message":"m"}"#).result::<Total>(),
            Err(Error::Api { status: 404, .. })
        ));
    }
}
