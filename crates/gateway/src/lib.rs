//! The ADB gateway (issue 22; docs/design.md, "ADB gateway"): stock `adb` clients reach
//! phones at `HOST:PORT`, one port of a range per phone, through any node.
//!
//! On each connection the port is looked up in the store (`AdbStore::adb_endpoint`): no
//! phone, an endpoint that is not started, or a phone that is not RUNNING, and it is closed at
//! once. Otherwise the device side of ADB (cloudphone-adb) is spoken to the client, with
//! authentication by the phone's attached key when the endpoint is secure ([`auth`]), and the
//! phone served as its backend says ([`device`]): a simulated phone's own adbd, or a relay to a
//! real adbd through an ADB server. Live connections are kept by phone ([`registry`]) and
//! dropped when their access goes ([`recheck`]): at once on this node's revocation signal,
//! within a second on other nodes' changes. Every connection that reached a phone is audited
//! when its client gets in and when it ends ([`audit`]; those that never got in capped per
//! account). Caps on connections ([`admission`]), the handshake deadline and an
//! idle timeout bound what clients can hold.

mod admission;
pub mod audit;
mod auth;
mod config;
mod connection;
mod device;
mod gateway;
mod recheck;
mod registry;
mod store;
pub mod verdict;

pub use config::GatewayConfig;
pub use gateway::{Gateway, GatewayError, GatewayHandle};
pub use store::GatewayStore;
