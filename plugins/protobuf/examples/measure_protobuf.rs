//! Measures this codec on the real data set: `cargo run --release -p strata-codec-protobuf
//! --example measure_protobuf [key=value ...]` prints bytes per row and encode/decode rates.

fn main() {
    strata_plugin_sdk::testing::measure_main(&strata_codec_protobuf::Protobuf);
}
