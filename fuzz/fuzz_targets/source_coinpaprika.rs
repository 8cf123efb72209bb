//! Fuzzes the Coinpaprika response readers: the same input as a `/v1/tickers` response and as
//! a `/v1/tickers/{id}/historical` response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::source::{Format, ReadOptions};

fuzz_target!(|data: &[u8]| {
    strata_fuzz::source::read_all(data, Format::CoinpaprikaTickers, ReadOptions::default());
    strata_fuzz::source::read_all(
        data,
        Format::CoinpaprikaHistorical,
        ReadOptions {
            coin: Some("btc-bitcoin".into()),
            ..ReadOptions::default()
        },
    );
});
