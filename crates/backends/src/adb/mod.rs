//! ADB: the `adb` program as a client of an ADB server ([`client`]), the in-phone operations
//! over it ([`phone`]) and the live screens ([`screen`]: scrcpy, or screencap and `input`),
//! which the docker and adb backends share, and the adb backend itself ([`devices`]: the
//! devices an ADB server sees), whose devices [`discovery`] records.

pub mod client;
pub mod devices;
pub mod discovery;
pub mod phone;
pub mod screen;

pub use client::{AdbError, AdbServer};
pub use devices::{AdbBackend, AdbGroupConfig, Device};
pub use discovery::{DeviceSink, Discovery, SinkError};
pub use phone::AdbPhone;
pub use screen::{ScrcpyJarError, ScrcpyServer, Screens};
