//! What the server's accept loop tells a request's handler about its connection, in the
//! request's extensions: the caller's address ([`PeerAddr`]; the audit log records it), and,
//! for a request that asks to upgrade its connection (a WebSocket), the hold that keeps the
//! connection's slot taken while the upgraded socket lives ([`Held`]). Here, below every
//! crate that serves or reads them, so the API and the stream server name the same types.

use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Keeps an upgraded connection counted (busy, never shed, never idle-closed) until every
/// copy is dropped: the handler of an upgrade moves it into the task that serves the
/// upgraded socket. What the hold does when it is dropped is the accept loop's business.
#[derive(Clone)]
pub struct Held {
    _guard: Arc<dyn Send + Sync>,
}

impl Held {
    pub fn new(guard: impl Send + Sync + 'static) -> Held {
        Held {
            _guard: Arc::new(guard),
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}
