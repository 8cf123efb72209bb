//! `jsonl-gzip`: one JSON object per row (the SDK's [`jsonl`](strata_plugin_sdk::jsonl) format),
//! gzip-compressed. The original prototype's recommended format, kept for readability:
//! `zcat segment.jsonl.gz | jq` works on any segment.

use std::io::{Read, Write};

use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};
use strata_plugin_sdk::{
    Batch, Codec, CodecInfo, Error, OptionSpec, Options, PluginInfo, Result, jsonl,
};

#[derive(Default)]
pub struct JsonlGzip;

impl Codec for JsonlGzip {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "jsonl-gzip".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "JSON Lines, gzip-compressed; readable with zcat | jq".into(),
                options: vec![OptionSpec::new(
                    "level",
                    "integer 0..=9",
                    "6",
                    "gzip compression level (0 = store, 9 = smallest)",
                )],
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
        let level = opts.int("level", 0, 9, 6)? as u32;
        let mut text = Vec::with_capacity(batch.len() * 140);
        jsonl::write(batch, &mut text);
        let mut gz = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::new(level));
        gz.write_all(&text)
            .and_then(|()| gz.finish())
            .map_err(|e| Error::Internal(format!("gzip: {e}")))
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        let mut text = Vec::with_capacity(bytes.len() * 4);
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(|e| Error::corrupt(format!("gzip: {e}")))?;
        jsonl::read(&text, coins)
    }
}

strata_plugin_sdk::export_codec!(JsonlGzip);

#[cfg(test)]
mod tests {
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
}
