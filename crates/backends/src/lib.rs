//! Backends that carry out operations on phones. `sim` is a simulated fleet: the default, and a
//! faithful local endpoint for tests. `docker` runs redroid-style Android containers, with the
//! in-phone work over ADB ([`adb`]); the adb backend drives the devices an ADB server sees;
//! [`Fleet`] routes each phone to the backend of its image.

pub mod adb;
mod archive_check;
pub mod docker;
mod fleet;
pub mod sim;

pub use adb::{AdbBackend, AdbGroupConfig};
pub use docker::{
    ContainerEvent, ContainerSeen, DEFAULT_HOST, DockerBackend, DockerConfig, DockerImage, Engine,
    HostEvent, HostSpec, Network,
};
pub use fleet::Fleet;
pub use sim::{
    DEFAULT_STORAGE_BYTES, EXECUTIONS_LEDGER, Package, PhoneState, SimBackend, SimConfig,
};
