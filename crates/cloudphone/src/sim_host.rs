//! The simulated fleet as a host of the farm (docs/design.md §4.1): the pseudo-host `sim`,
//! unlimited unless `--sim-capacity-phones` says how many phones it holds, recorded in the
//! store at start so that placement finds room for simulated phones; and the placement policy
//! the API follows, which says which images' phones go on which kind of host.

use std::collections::HashMap;

use cloudphone_api::Placement;
use cloudphone_backends::{SimBackend, SimConfig};
use cloudphone_core::placement::{Limits, Strategy};
use cloudphone_engine::Backend;
use cloudphone_store::{HostConfig, HostKind};
use sha2::{Digest, Sha256};

use crate::Config;

/// The pseudo-host's name.
pub const SIM_HOST: &str = "sim";

/// Whether the node runs the simulated fleet (always without a backends file).
pub fn sim_on(config: &Config) -> bool {
    config.backends.as_ref().is_none_or(|f| f.sim)
}

/// The images of the simulated fleet.
pub fn sim_images() -> Vec<String> {
    // The sim's catalogue is fixed; a backend built only to read it touches nothing.
    let sim = SimBackend::new(SimConfig {
        root: Default::default(),
        delay: None,
        record_executions: false,
    });
    sim.images().into_iter().map(|i| i.id).collect()
}

/// The `sim` host as the store records it (its capacity, `None`: unlimited); phones of the
/// sim from before hosts existed become the host's.
pub fn sim_host_config(capacity: Option<u64>) -> HostConfig {
    let limits = Limits {
        phones: capacity,
        ..Limits::default()
    };
    let digest = hex::encode(Sha256::digest(format!("{SIM_HOST}|{capacity:?}")));
    HostConfig {
        name: SIM_HOST.into(),
        kind: HostKind::Sim,
        address: "sim://".into(),
        limits,
        images: Vec::new(),
        ports: None,
        digest,
        adopt_images: sim_images(),
    }
}

/// Which images' phones the API places, and how: the sim's on the `sim` host (when the node
/// runs it), the backends file's docker images on its engines with its `[docker] placement`;
/// an ADB server's devices never.
pub fn placement(config: &Config) -> Placement {
    let mut kinds = HashMap::new();
    if sim_on(config) {
        kinds.extend(sim_images().into_iter().map(|i| (i, HostKind::Sim)));
    }
    let mut strategy = Strategy::default();
    if let Some(docker) = config.backends.as_ref().and_then(|f| f.docker.as_ref()) {
        kinds.extend(
            docker
                .images
                .iter()
                .map(|i| (i.id.clone(), HostKind::Docker)),
        );
        // Checked when the file was read.
        strategy = docker.placement.parse().unwrap_or_default();
    }
    Placement { kinds, strategy }
}
