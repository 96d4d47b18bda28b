//! What the tests that drive Debian's stock `adb` (29.0.6) share: [`StockAdb`], a private ADB
//! server with its own port and a temporary HOME (so its own `~/.android/adbkey`, or one the
//! test gives it), and [`pseudo_random`] data for transfers. A dev-dependency of
//! cloudphone-adb's `stock_adb` tests and cloudphone-gateway's `gateway` tests, never of a
//! crate that ships (`publish = false`).
//!
//! It does not depend on cloudphone-adb (whose tests use it): keys are given as the texts adb
//! reads, the PKCS#8 PEM of `adbkey` and the `adbkey.pub` line.

mod stock;

pub use stock::StockAdb;

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
