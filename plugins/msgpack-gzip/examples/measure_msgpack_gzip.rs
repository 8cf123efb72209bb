//! Measures this codec on the real data set: `cargo run --release -p strata-codec-msgpack-gzip
//! --example measure_msgpack_gzip [key=value ...]` prints bytes per row and encode/decode rates.

fn main() {
    strata_plugin_sdk::testing::measure_main(&strata_codec_msgpack_gzip::MsgpackGzip);
}
