//! Measures this codec on the real data set: `cargo run --release -p strata-codec-parquet
//! --example measure_parquet [key=value ...]` prints bytes per row and encode/decode rates.

fn main() {
    strata_plugin_sdk::testing::measure_main(&strata_codec_parquet::Parquet);
}
