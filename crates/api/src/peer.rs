//! The caller's address, put in a request's extensions by whoever accepted the connection (the
//! binary, for plain TCP and TLS alike); the audit log records it.

use std::net::SocketAddr;

use axum::http::Extensions;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The caller's address as the audit log writes it; empty when nobody recorded it.
pub fn source(extensions: &Extensions) -> String {
    extensions
        .get::<PeerAddr>()
        .map_or_else(String::new, |p| p.0.to_string())
}
