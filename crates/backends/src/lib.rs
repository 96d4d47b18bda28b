//! Backends that carry out operations on phones. `sim` is a simulated fleet: the default, and a
//! faithful local endpoint for tests.

pub mod sim;

pub use sim::{EXECUTIONS_LEDGER, Package, PhoneState, SimBackend, SimConfig};
