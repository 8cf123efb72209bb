//! Fuzzes the CoinMarketCap weekly-snapshot reader (NDJSON of display strings such as
//! `"$1,488,566,971.96"`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::source::{Format, ReadOptions};

fuzz_target!(|data: &[u8]| {
    strata_fuzz::source::read_all(data, Format::CmcNdjson, ReadOptions::default());
});
