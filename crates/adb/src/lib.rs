//! The device side of the ADB protocol, as the ADB gateway speaks it to a user's stock `adb`
//! client (issue 22): the adb key formats (`keys`) and, on top of them, the wire protocol.
//! No part of this crate knows about phones, accounts or the store: the gateway hands it the
//! keys a connection may use and the services a phone offers.

pub mod keys;
pub mod proto;
pub mod relay;
pub mod services;
pub mod session;
