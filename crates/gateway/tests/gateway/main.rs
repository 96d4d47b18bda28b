//! The gateway against Debian's stock `adb` (29.0.6), all on loopback: a real SQLite store, the
//! simulated fleet, gateways on ranges of loopback ports (two "nodes" on 127.0.0.1 and
//! 127.0.0.2 sharing one store), and private ADB servers with their own HOME and keys.

mod fake_store;
mod harness;
mod wire;

mod audit;
mod auth;
mod limits;
mod relay;
mod revoke;
mod serve;
