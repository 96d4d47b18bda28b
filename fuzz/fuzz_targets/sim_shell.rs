//! Fuzz target `sim_shell`: the simulated phone shell's parser (`sim::shell::fuzz_parse`, which
//! calls `parse` in crates/backends/src/sim/shell/parse.rs) on any text, as RunCommand's
//! `CommandContent` would carry it. Must never panic. The interpreter is not fuzzed: it reads
//! and writes the phone's files on disk.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = String::from_utf8_lossy(data);
    let _ = cloudphone_backends::sim::shell::fuzz_parse(&script);
});
