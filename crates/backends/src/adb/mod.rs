//! ADB: the `adb` program as a client of an ADB server ([`client`]), the in-phone operations
//! over it ([`phone`]), which the docker and adb backends share, and the adb backend itself
//! ([`devices`]: the devices an ADB server sees), whose devices [`discovery`] records.

pub mod client;
pub mod devices;
pub mod discovery;
pub mod phone;

pub use client::{AdbError, AdbServer};
pub use devices::{AdbBackend, AdbGroupConfig, Device};
pub use discovery::{DeviceSink, Discovery, SinkError};
pub use phone::AdbPhone;
