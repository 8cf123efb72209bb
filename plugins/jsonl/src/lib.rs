//! `jsonl`: plain JSON Lines, one object per row (the SDK's [`jsonl`](strata_plugin_sdk::jsonl)
//! format), uncompressed. The most readable segment there is: `jq`, `grep` and any JSON
//! library read it as it is. Meant for hot or debugging tiers; it is large (~150 B/row).

use strata_plugin_sdk::{Batch, Codec, CodecInfo, Options, PluginInfo, Result, jsonl};

#[derive(Default)]
pub struct Jsonl;

impl Codec for Jsonl {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "jsonl".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "JSON Lines, uncompressed; readable with jq".into(),
                options: vec![],
            },
            extension: "jsonl".into(),
            media_type: "application/jsonl".into(),
            lossless: true,
            sorts_rows: false,
            filter_pushdown: false,
            extra_columns: true,
        }
    }

    fn encode(&self, batch: &Batch, _opts: &Options) -> Result<Vec<u8>> {
        let mut text = Vec::with_capacity(batch.len() * 140);
        jsonl::write(batch, &mut text);
        Ok(text)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        jsonl::read(bytes, coins)
    }
}

strata_plugin_sdk::export_codec!(Jsonl);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_plugin_sdk::{Error, decode_checked, encode_checked, testing};

    use super::*;

    #[test]
    fn output_is_one_json_object_per_line() {
        let mut b = Batch::default();
        b.coins.push("bitcoin".into());
        b.push(0, 1_367_107_200_000, 135.3, 1.5e9, -0.0, f64::NAN, 1);
        b.push(0, 1_367_110_800_000, f64::INFINITY, 0.0, 1e-36, 5e-324, 0);
        let text = String::from_utf8(encode_checked(&Jsonl, &b, &[]).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\"coin\":\"bitcoin\",\"ts\":1367107200000,\"price\":135.3,\"market_cap\":1500000000.0,\"volume\":-0.0,\"supply\":null,\"rank\":1}\n\
             {\"coin\":\"bitcoin\",\"ts\":1367110800000,\"price\":\"Infinity\",\"market_cap\":0.0,\"volume\":1e-36,\"supply\":5e-324,\"rank\":0}\n"
        );
        let opts = [("level".to_string(), "1".to_string())];
        assert!(matches!(
            encode_checked(&Jsonl, &b, &opts),
            Err(Error::InvalidOptions(_))
        ));
    }

    #[test]
    fn edge_cases_round_trip() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_round_trip(&Jsonl, &batch, &[]);
        }
    }

    #[test]
    fn damaged_input_is_an_error_or_a_subset() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_rejects_damage(&Jsonl, &batch, &[]);
        }
        let err = decode_checked(&Jsonl, b"{\"coin\":\"a\",\"ts\":1}\n", None).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn coin_filter_keeps_only_wanted_rows() {
        let (_, batch) = testing::edge_cases().swap_remove(5);
        let bytes = encode_checked(&Jsonl, &batch, &[]).unwrap();
        let wanted = ["a".to_string()];
        let got = decode_checked(&Jsonl, &bytes, Some(&wanted)).unwrap();
        assert!(got.bit_eq(&batch.filter_coins(&wanted)));
        assert!(!got.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_any_batch(batch in testing::arb_batch(200)) {
            testing::assert_round_trip(&Jsonl, &batch, &[]);
        }
    }
}
