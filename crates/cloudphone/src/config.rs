//! The settings of a node, as `cloudphone serve` takes them.

use std::path::PathBuf;
use std::time::Duration;

use cloudphone_api::Limits;
use cloudphone_engine::{EngineConfig, SweeperConfig};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub region: String,
    /// Every simulated operation takes this long; `None`: realistic durations.
    pub sim_delay: Option<Duration>,
    /// The root access key (id, secret) from the environment, if given.
    pub root_key: Option<(String, String)>,
    pub engine: EngineConfig,
    pub sweeper: SweeperConfig,
    pub limits: Limits,
}

impl Config {
    /// The embedded defaults: SQLite and the simulated fleet under `./cloudphone-data`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            listen: "127.0.0.1:9723".into(),
            data_dir,
            region: "cn-hangzhou".into(),
            sim_delay: None,
            root_key: None,
            engine: EngineConfig::default(),
            sweeper: SweeperConfig::default(),
            limits: Limits::default(),
        }
    }
}
