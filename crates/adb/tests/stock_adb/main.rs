//! The crate against Debian's stock `adb` (29.0.6) and against raw protocol bytes, all on
//! loopback: a device built from the crate's helpers (`device`), served by `serve_connection`
//! (`harness::Gateway`) and driven through a private ADB server (cloudphone-adb-testkit's
//! `StockAdb`, which the gateway's tests share).

mod device;
mod harness;
mod raw;

mod abuse;
mod auth;
mod relay;
mod stock;
mod streams;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::session::Config;

pub fn config() -> Config {
    Config::new(DeviceBanner::new("cloudphone_sim", "Cloud Phone", "cp_sim"))
}
