//! Measures this codec on the real data set: `cargo run --release -p strata-codec-jsonl
//! --example measure_jsonl [key=value ...]` prints bytes per row and encode/decode rates.

fn main() {
    strata_plugin_sdk::testing::measure_main(&strata_codec_jsonl::Jsonl);
}
