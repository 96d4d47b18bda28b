//! What can go wrong calling a server, typed: a refusal carries the server's `Code`, `Message`,
//! `RequestId` and HTTP status; connection failures say whether TLS was the reason and what to
//! do about it.

use std::path::PathBuf;

/// An error of the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the call (its error body).
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    /// An error status without the protocol's error body (a proxy's page, say).
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// A successful answer that is not the type asked for.
    #[error("the answer (HTTP {status}) is not what was expected")]
    Decode {
        status: u16,
        #[source]
        source: serde_json::Error,
    },
    /// An event of the watch stream whose data is not JSON.
    #[error("an event of the watch stream is not JSON")]
    Event(#[source] serde_json::Error),
    #[error("{0}")]
    Endpoint(String),
    /// The extra CA file could not be used.
    #[error("the CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    /// The TLS configuration could not be built.
    #[error("setting up TLS: {0}")]
    TlsSetup(String),
    /// The server's certificate does not lead to a trusted CA (or does not name the host).
    #[error(
        "the certificate of {url} is not trusted ({reason}): give the certificate of the CA \
         that signed it as a CA file (the CLI's --ca-file)"
    )]
    Untrusted { url: String, reason: String },
    /// The TLS handshake failed for another reason.
    #[error("the TLS handshake with {url} failed ({reason}): does the server speak plain http://?")]
    Handshake { url: String, reason: String },
    /// The request could not be sent, or its answer not read.
    #[error("calling {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    /// Classifies a failed request to `url`: a TLS failure says why, anything else is
    /// [`Error::Transport`].
    pub(crate) fn transport(url: &str, source: reqwest::Error) -> Error {
        // The query says nothing about the failure and may be long.
        let url = url.split('?').next().unwrap_or(url).to_string();
        match tls_failure(&source) {
            Some(TlsFailure::Certificate(reason)) if reason.contains("CaUsedAsEndEntity") => {
                Error::Untrusted {
                    url,
                    reason: format!(
                        "{reason}: the server's own certificate is a CA certificate, which is \
                         refused; serve a certificate signed by that CA, or a self-signed one \
                         with basicConstraints CA:FALSE"
                    ),
                }
            }
            Some(TlsFailure::Certificate(reason)) => Error::Untrusted { url, reason },
            Some(TlsFailure::Other(reason)) => Error::Handshake { url, reason },
            None => Error::Transport { url, source },
        }
    }

    /// The HTTP status of an answer that was an error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

enum TlsFailure {
    Certificate(String),
    Other(String),
}

/// The rustls error somewhere in `e`'s chain. An `io::Error` hides the error it wraps from
/// `source()` (it forwards to that error's own source), and the HTTP stack nests them, so each
/// one is opened with `get_ref` as well.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(err) = pending.pop() {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(_) => TlsFailure::Certificate(tls.to_string()),
                other => TlsFailure::Other(other.to_string()),
            });
        }
        pending.extend(err.source());
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
    }
    None
}
