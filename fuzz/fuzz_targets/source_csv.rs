//! Fuzzes the CSV source reader: canonical CSV, CSV read by format detection, and any CSV
//! through a column mapping with a text timestamp format, a fixed coin and `;` as delimiter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::source::{ColumnMap, Format, ReadOptions, TsUnit};
use strata_fuzz::source::read_all;

fuzz_target!(|data: &[u8]| {
    read_all(data, Format::Csv, ReadOptions::default());
    read_all(data, Format::Auto, ReadOptions::default());
    let map: ColumnMap = "ts=Date,price=Close,volume=Volume,market_cap=Cap"
        .parse()
        .expect("a valid column map");
    read_all(
        data,
        Format::Csv,
        ReadOptions {
            map: map.clone(),
            ts_format: Some("%Y-%m-%d".into()),
            coin: Some("fuzz-coin".into()),
            ..ReadOptions::default()
        },
    );
    read_all(
        data,
        Format::Csv,
        ReadOptions {
            map,
            ts_unit: TsUnit::Ns,
            coin: Some("fuzz-coin".into()),
            delimiter: b';',
            ..ReadOptions::default()
        },
    );
});
