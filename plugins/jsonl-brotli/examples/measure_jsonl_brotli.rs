//! Measures this codec on the real data set: `cargo run --release -p strata-codec-jsonl-brotli
//! --example measure_jsonl_brotli [key=value ...]` prints bytes per row and encode/decode rates.

fn main() {
    strata_plugin_sdk::testing::measure_main(&strata_codec_jsonl_brotli::JsonlBrotli);
}
