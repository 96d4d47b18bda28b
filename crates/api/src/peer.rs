//! The caller's address, put in a request's extensions by whoever accepted the connection (the
//! binary, for plain TCP and TLS alike); the audit log records it. The type is core's, shared
//! with the stream server.

use axum::http::Extensions;

pub use cloudphone_core::peer::PeerAddr;

/// The caller's address as the audit log writes it; empty when nobody recorded it.
pub fn source(extensions: &Extensions) -> String {
    extensions
        .get::<PeerAddr>()
        .map_or_else(String::new, |p| p.0.to_string())
}
