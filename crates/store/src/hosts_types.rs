//! The plain data of the farm's hosts ([`crate::HostStore`]): a host as a backends file
//! configures it, as the store knows it (state, owner, usage), its health, the nodes alive,
//! what a placement asks for, and drains.

use cloudphone_core::InstanceStatus;
use cloudphone_core::placement::{Limits, Room, Strategy, Usage};
use cloudphone_core::resources::Spec;
use cloudphone_core::task_params::MigrateMode;

/// How long placement trusts a host's last confirmed health.
pub const HEALTH_TRUST_MS: i64 = 10_000;
/// A host no node has refreshed for this long is not schedulable (it left every file).
pub const SEEN_TRUST_MS: i64 = 30_000;

/// What runs a host's phones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// A Docker engine of a backends file.
    Docker,
    /// The pseudo-host of the simulated phones: never leased, schedulable unless cordoned.
    Sim,
}

impl HostKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Docker => "docker",
            HostKind::Sim => "sim",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<HostKind> {
        match s {
            "docker" => Some(HostKind::Docker),
            "sim" => Some(HostKind::Sim),
            _ => None,
        }
    }
}

/// A host as a node's backends file describes it (the file is the truth for these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// `[a-z0-9][a-z0-9-]{0,62}`; phones are recorded on it.
    pub name: String,
    pub kind: HostKind,
    /// For display: `unix:///...`, `tcp://...`.
    pub address: String,
    pub limits: Limits,
    /// The images it runs; empty: every image of its kind.
    pub images: Vec<String>,
    /// Host network: the ADB ports handed to its phones, inclusive.
    pub ports: Option<(u16, u16)>,
    /// SHA-256 of the normalised entry, to tell nodes whose files differ.
    pub digest: String,
    /// Unplaced phones (host NULL, not DELETED) of these images become this host's as it is
    /// synced: the phones of a node from before hosts existed.
    pub adopt_images: Vec<String>,
}

/// A host's health as its owner last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
    /// No live node has it in its file.
    Missing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Missing => "missing",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Health> {
        match s {
            "unknown" => Some(Health::Unknown),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            "missing" => Some(Health::Missing),
            _ => None,
        }
    }
}

/// A health report of a host's owner; versions `None` keep the stored ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostHealth {
    pub health: Health,
    pub reason: String,
    pub engine_version: Option<String>,
    pub api_version: Option<String>,
}

/// A host as the store knows it: configuration, runtime state and what its phones take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRow {
    pub name: String,
    pub kind: HostKind,
    pub address: String,
    pub limits: Limits,
    pub images: Vec<String>,
    pub ports: Option<(u16, u16)>,
    pub digest: String,
    pub seen_ms: i64,
    pub cordoned: bool,
    pub drain_id: Option<String>,
    pub health: Health,
    pub health_reason: String,
    pub health_ms: i64,
    pub engine_version: String,
    pub api_version: String,
    pub owner_node: Option<String>,
    pub lease_until_ms: i64,
    pub lease_epoch: i64,
    /// Every phone not DELETED placed on it or moving to it.
    pub used: Usage,
    /// Phones moving to it, and away from it.
    pub moving_in: u64,
    pub moving_out: u64,
    /// ADB ports held on it.
    pub ports_used: u32,
}

impl HostRow {
    /// Whether the host may take phones of `image` now, room aside: healthy within the last
    /// [`HEALTH_TRUST_MS`] and seen within [`SEEN_TRUST_MS`] (the sim: always), not
    /// cordoned, not draining, running the image.
    pub fn schedulable(&self, kind: HostKind, image: &str, now_ms: i64) -> bool {
        let alive = match self.kind {
            HostKind::Sim => true,
            HostKind::Docker => {
                self.health == Health::Healthy
                    && self.health_ms >= now_ms - HEALTH_TRUST_MS
                    && self.seen_ms >= now_ms - SEEN_TRUST_MS
            }
        };
        self.kind == kind
            && alive
            && !self.cordoned
            && self.drain_id.is_none()
            && (self.images.is_empty() || self.images.iter().any(|i| i == image))
    }

    /// ADB ports not held yet (`None`: its phones need none).
    pub fn free_ports(&self) -> Option<u32> {
        self.ports.map(|(low, high)| {
            let all = u32::from(high.saturating_sub(low)) + 1;
            all.saturating_sub(self.ports_used)
        })
    }

    /// The host as placement sees it for phones of `image`.
    pub fn room(&self, kind: HostKind, image: &str, now_ms: i64) -> Room {
        Room {
            name: self.name.clone(),
            limits: self.limits,
            used: self.used,
            free_ports: self.free_ports(),
            schedulable: self.schedulable(kind, image, now_ms),
        }
    }
}

/// What a creation asks of placement: the kind of host its image runs on, how to spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacementAsk {
    pub kind: HostKind,
    pub strategy: Strategy,
    pub now_ms: i64,
}

/// A node as it announces itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub started_ms: i64,
    pub version: String,
}

/// A node alive, with the hosts of its file (name, config digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub version: String,
    pub hosts: Vec<(String, String)>,
}

/// A phone on a host, for its owner's reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneOnHost {
    pub id: String,
    pub status: InstanceStatus,
    pub modified_ms: i64,
    pub image_id: String,
    /// The phone's host (the one asked, or the one it moves from).
    pub host: String,
    /// Its ADB port on the host asked.
    pub port: Option<u16>,
    pub moving_to: Option<String>,
}

/// A drain to start: every phone of `host` moves elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDrain {
    /// `dr-` + 16; the InvokeId of its tasks.
    pub id: String,
    pub host: String,
    pub mode: MigrateMode,
    /// Move what fits when not everything does (else nothing moves).
    pub partial: bool,
    pub strategy: Strategy,
    pub operator: String,
    pub now_ms: i64,
}

/// One phone a drain moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMove {
    pub instance_id: String,
    pub account_id: String,
    pub task_id: String,
    pub to: String,
    pub port: Option<u16>,
}

/// What [`crate::HostStore::start_drain`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainPlan {
    pub id: String,
    pub moves: Vec<PlannedMove>,
    /// Phones left where they are (`partial` only: no room for them).
    pub left: u64,
}

/// The tasks of a drain, by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainProgress {
    pub phones: u64,
    pub waiting: u64,
    pub processing: u64,
    pub finished: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// What a phone of `spec` takes (an unknown spec: one phone, nothing else).
pub(crate) fn spec_of(name: &str) -> &'static Spec {
    const NONE: Spec = Spec {
        name: "",
        cpu: 0,
        memory_mib: 0,
        width: 0,
        height: 0,
        system_disk_gib: 0,
        describe: "",
    };
    cloudphone_core::resources::spec(name).unwrap_or(&NONE)
}
