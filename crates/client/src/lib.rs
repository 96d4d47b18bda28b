//! Everything a program needs to call a cloudphone (or Alibaba Cloud eds-aic) server.
//!
//! Always built, with no I/O: the protocol's constants ([`protocol`]), the two signing schemes
//! as pure functions ([`signature`]), whole requests signed with ACS3 ([`signer`]) or the
//! legacy HMAC-SHA1 ([`legacy`]), the date they sign ([`time`]) and the parser of the watch
//! stream's server-sent events ([`sse`]). The server's verifier uses these, so both sides sign
//! the same bytes.
//!
//! With the default feature `http`: a [`Client`] over HTTP and HTTPS (reqwest with rustls on
//! the ring provider, an optional extra CA), a typed [`Client::call`] whose refusals carry the
//! server's `Code`, `Message` and `RequestId` ([`Error`]), and the resumable watch stream
//! ([`Watch`]).

pub mod legacy;
pub mod protocol;
pub mod signature;
pub mod signer;
pub mod sse;
pub mod time;
pub mod vectors;

#[cfg(feature = "http")]
mod endpoint;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
pub mod tls;
#[cfg(feature = "http")]
mod watch;

pub use legacy::sign_legacy;
pub use protocol::VERSION;
pub use signature::{pct, sha256_hex};
pub use signer::{Credentials, Request, SignedCall, nonce, params, push_list, sign, sign_request};
pub use time::date_now;

#[cfg(feature = "http")]
pub use endpoint::Endpoint;
#[cfg(feature = "http")]
pub use error::Error;
#[cfg(feature = "http")]
pub use http::{Answer, Client, Options};
#[cfg(feature = "http")]
pub use watch::{Event, Watch};
