//! Fuzzes both CoinGecko CSV readers (the daily `coin_id,timestamp,...` layout and the 2021
//! layout) on the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::source::{Format, ReadOptions};

fuzz_target!(|data: &[u8]| {
    strata_fuzz::source::read_all(data, Format::CoinGeckoCsv, ReadOptions::default());
    strata_fuzz::source::read_all(data, Format::CoinGecko2021Csv, ReadOptions::default());
});
