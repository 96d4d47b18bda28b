//! How a fetch fails. Everything before an answer arrived (a refused address or redirect, a
//! name that does not resolve, a closed port, a silent one, a TLS failure) is one
//! [`FetchError::Unreachable`] with one message, so that the tenant who named the URL cannot
//! tell a closed port from a filtered one or from an address the server refuses; the detail is
//! for the operator's log.

use std::error::Error as StdError;
use std::time::Duration;

use crate::policy::Refused;

/// The one message of [`FetchError::Unreachable`].
pub const UNREACHABLE: &str =
    "could not be fetched: the address is not allowed, refused the connection or did not answer";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an http(s) URL with a host.
    #[error("not an http(s) URL with a host")]
    BadUrl,
    /// No answer: refused by the address filter (`refused`), or no connection or response.
    #[error("{UNREACHABLE}")]
    Unreachable {
        /// What happened, for the operator's log only.
        detail: String,
        /// Set when the filter refused the address (or a redirect) before any connection.
        refused: Option<Refused>,
    },
    /// The server answered, with a status that is not a success.
    #[error("the server answered HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The body (announced or received) is over the byte cap; nothing was kept.
    #[error("the file is larger than the download limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The server stopped sending for longer than the idle timeout.
    #[error("the server sent nothing for {} s", secs(*.0))]
    Stalled(Duration),
    /// The whole transfer took longer than the total timeout.
    #[error("the transfer took longer than {} s", secs(*.0))]
    TooSlow(Duration),
    /// The connection broke off in the middle of the body.
    #[error("the connection broke off: {0}")]
    Interrupted(String),
    /// Writing the local copy failed: the server's fault, not the source's.
    #[error("writing the downloaded file: {0}")]
    Local(#[source] std::io::Error),
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

impl FetchError {
    /// The error from sending a request that got no answer.
    pub(crate) fn unreachable(e: &reqwest::Error) -> FetchError {
        FetchError::Unreachable {
            detail: chain(e),
            refused: refused_in(e),
        }
    }

    /// For the operator's log: what the tenant's message leaves out.
    pub fn detail(&self) -> String {
        match self {
            FetchError::Unreachable { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    /// The filter's refusal, when that is why nothing was fetched.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            FetchError::Unreachable { refused, .. } => refused.as_ref(),
            _ => None,
        }
    }
}

/// `e` and its sources, joined.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The filter's refusal somewhere in `e`'s sources (from the resolver or the redirect policy).
fn refused_in(e: &(dyn StdError + 'static)) -> Option<Refused> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_before_an_answer_reads_the_same() {
        let a = FetchError::Unreachable {
            detail: "tcp connect error: Connection refused (os error 111)".into(),
            refused: None,
        };
        let b = FetchError::Unreachable {
            detail: "127.0.0.1 is not a public address (loopback)".into(),
            refused: Some(Refused::Address {
                ip: "127.0.0.1".parse().unwrap(),
                block: "loopback",
            }),
        };
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.to_string(), UNREACHABLE);
        assert!(b.detail().contains("loopback"));
    }

    #[test]
    fn other_failures_say_what_happened() {
        assert_eq!(
            FetchError::TooLarge { limit: 100 }.to_string(),
            "the file is larger than the download limit of 100 bytes"
        );
        assert_eq!(
            FetchError::Stalled(Duration::from_millis(1500)).to_string(),
            "the server sent nothing for 1.5 s"
        );
        assert_eq!(
            FetchError::TooSlow(Duration::from_secs(600)).to_string(),
            "the transfer took longer than 600 s"
        );
    }
}
