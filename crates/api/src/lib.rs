//! The Alibaba Cloud RPC protocol of eds-aic 2023-09-30 over HTTP: requests are decoded
//! (`request`, `params`), authenticated (`auth`, [`signature`]), routed to one module per
//! action (`actions`) and answered as JSON, errors included (`reply`).
//!
//! The public surface is what the binary, the console, the command-line tools and the fuzz
//! targets use: the re-exports below (the router, the shared state and its parts, a call made on
//! a key's behalf, a decoded request and its parameters), [`signature`] (request signing),
//! [`files`] (the signed object routes `cp` speaks), [`adb`] (the ADB gateway's settings and
//! the signal that ends its connections), [`watch`] (the task stream, which the
//! console serves too) and [`auth`] (the parsing of signed requests, which the fuzz targets
//! drive). [`server`] is public for `VERSION`, which the command-line tools still take from it,
//! and `label_of`, which a fuzz target drives. Every other module is the crate's own.

mod actions;
pub mod adb;
mod audit;
pub mod auth;
mod controls;
pub mod files;
mod idempotency;
mod params;
mod peer;
mod placement;
mod reply;
mod request;
pub mod server;
pub mod signature;
mod state;
mod store_error;
mod throttle;
mod token;
pub mod watch;

pub use adb::{AdbGateway, AdbRevocation, AdbRevocations, RevocationReason};
pub use params::Params;
pub use peer::PeerAddr;
pub use placement::Placement;
/// For the fuzz targets, which drive the decoding of what a client sends.
pub use request::RawRequest;
pub use server::{call_as, call_as_from, router};
pub use state::{AppState, Limits};
pub use throttle::Throttle;
pub use token::TokenKey;
