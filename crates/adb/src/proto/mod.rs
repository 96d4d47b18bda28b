//! The protocol without I/O: what travels on the wire and the handshake's decisions, each
//! checked by unit tests and reachable by the fuzz target `adb_packets`.

pub mod banner;
pub mod handshake;
pub mod packet;
pub mod service;
pub mod shell;
pub mod sync;
