//! Connections the server makes on a tenant's behalf: SendFile's `DOWNLOAD_URL` and
//! `OSS_BRIDGED` sources, CreateApp's `OssAppUrl`, InstallApp's `CustomAppInfo.DownloadUrl`,
//! and webhook deliveries (docs/design.md §8). A tenant names the URL, so the server must not
//! become the tenant's way into the server's own network:
//!
//! - **the address connected to is the address checked**: names are resolved once, by a
//!   resolver that hands the connection only addresses the [`AddressPolicy`] allows
//!   ([`resolver`]); hosts written as addresses are checked before the request and on every
//!   redirect ([`redirect`]); no proxy is ever used;
//! - **public addresses only** by default: every IANA special-purpose range, IPv4 and IPv6, with
//!   the IPv6 forms of an IPv4 address judged by that address ([`ranges`]);
//! - **redirects** are followed only after the same checks, a few hops at most;
//! - **bounded**: connect, idle and total timeouts, and a byte cap enforced while streaming;
//! - **one answer for "not fetched"**: a refused address, a closed port and a silent one fail
//!   with the same message ([`FetchError::Unreachable`]).
//!
//! Its own crate so that the engine (downloads, webhooks) and the API (CreateApp, CreateWebhook)
//! share it without either depending on the other's parts; it depends on reqwest alone, and
//! takes the TLS setup (`cloudphone_client::tls::builder`) from the binary that builds it.

mod client;
mod error;
pub mod policy;
pub mod ranges;
pub mod redirect;
pub mod resolver;

#[cfg(test)]
mod tests;

pub use client::{BuildError, Downloaded, Outbound, OutboundConfig};
pub use error::{FetchError, UNREACHABLE};
pub use policy::{AddressPolicy, Refused};
pub use ranges::{Net, is_public};
pub use resolver::{Lookup, SystemLookup};
