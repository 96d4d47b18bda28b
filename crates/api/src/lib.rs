//! The Alibaba Cloud RPC protocol of eds-aic 2023-09-30 over HTTP: requests are decoded
//! ([`request`], [`params`]), authenticated ([`auth`], [`signature`]), routed to one module per
//! action ([`actions`]) and answered as JSON, errors included ([`reply`]).

pub mod actions;
pub mod audit;
pub mod auth;
pub mod controls;
pub mod files;
pub mod idempotency;
pub mod params;
pub mod reply;
pub mod request;
pub mod server;
pub mod signature;
pub mod state;
pub mod throttle;
pub mod token;
pub mod watch;

pub use server::router;
pub use state::{AppState, Limits};
pub use token::TokenKey;
