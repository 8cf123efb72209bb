//! Fuzzes the canonical JSON Lines source reader (the SDK's row format, read leniently).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::source::{Format, ReadOptions};

fuzz_target!(|data: &[u8]| {
    strata_fuzz::source::read_all(data, Format::Jsonl, ReadOptions::default());
});
