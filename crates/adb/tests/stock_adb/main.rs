//! The crate against Debian's stock `adb` (29.0.6) and against raw protocol bytes, all on
//! loopback: a device built from the crate's helpers (`device`), served by `serve_connection`
//! (`harness::Gateway`) and driven through a private ADB server (`harness::AdbServer`).

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

/// `n` bytes that are not a repetition of a short pattern (a shifted or dropped chunk shows).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
