//! `jsonl-gzip`: one JSON object per row (the SDK's [`jsonl`](strata_plugin_sdk::jsonl) format),
//! gzip-compressed. The original prototype's recommended format, kept for readability:
//! `zcat segment.jsonl.gz | jq` works on any segment.

use strata_plugin_sdk::{Batch, Codec, CodecInfo, Options, PluginInfo, Result, gzip, jsonl};

#[derive(Default)]
pub struct JsonlGzip;

impl Codec for JsonlGzip {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "jsonl-gzip".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "JSON Lines, gzip-compressed; readable with zcat | jq".into(),
                options: vec![gzip::level_option()],
            },
            extension: "jsonl.gz".into(),
            media_type: "application/gzip".into(),
            lossless: true,
            sorts_rows: false,
            filter_pushdown: false,
            extra_columns: true,
        }
    }

    fn encode(&self, batch: &Batch, opts: &Options) -> Result<Vec<u8>> {
        let level = gzip::level(opts)?;
        let mut text = Vec::with_capacity(batch.len() * 140);
        jsonl::write(batch, &mut text);
        gzip::compress(&text, level)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        jsonl::read(&gzip::decompress(bytes)?, coins)
    }
}

strata_plugin_sdk::export_codec!(JsonlGzip);

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;
    use strata_plugin_sdk::testing;

    use super::*;

    #[test]
    fn output_is_plain_gzip_of_jsonl() {
        let mut b = Batch::default();
        b.coins.push("bitcoin".into());
        b.push(0, 1_367_107_200_000, 135.3, 1.5e9, 0.0, f64::NAN, 1);
        let bytes = strata_plugin_sdk::encode_checked(&JsonlGzip, &b, &[]).unwrap();
        let mut text = String::new();
        MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            "{\"coin\":\"bitcoin\",\"ts\":1367107200000,\"price\":135.3,\"market_cap\":1500000000.0,\"volume\":0.0,\"supply\":null,\"rank\":1}\n"
        );
        let level = [("level".to_string(), "10".to_string())];
        assert!(strata_plugin_sdk::encode_checked(&JsonlGzip, &b, &level).is_err());
    }

    #[test]
    fn edge_cases_round_trip_at_every_level() {
        for (name, batch) in testing::edge_cases() {
            for level in ["0", "1", "6", "9"] {
                let bytes = testing::assert_round_trip(&JsonlGzip, &batch, &[("level", level)]);
                assert!(!bytes.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn damaged_input_is_an_error_or_a_subset() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_rejects_damage(&JsonlGzip, &batch, &[]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_any_batch(batch in testing::arb_batch(200)) {
            testing::assert_round_trip(&JsonlGzip, &batch, &[("level", "1")]);
        }
    }
}
