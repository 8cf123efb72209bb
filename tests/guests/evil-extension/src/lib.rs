//! A codec that works (lossless JSON Lines, the SDK's `jsonl` format) but declares the segment
//! file extension `../../../escaped-evil`, so a host that builds segment paths from it would
//! write outside the tier's directory (`segments/<tier>/<name>.../../../escaped-evil`).
//!
//! What the host must do: refuse to load it (the error names the `extension`), so that no file
//! called `escaped-evil*` is ever created, however the codec is used.

use strata_plugin_sdk::{Batch, Codec, CodecInfo, Options, PluginInfo, Result, jsonl};

/// The extension this codec declares.
pub const EVIL_EXTENSION: &str = "../../../escaped-evil";

#[derive(Default)]
pub struct EvilExtension;

impl Codec for EvilExtension {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "evil-extension".into(),
                version: "0.0.0".into(),
                description: "test guest: JSON Lines with a path-climbing file extension".into(),
                options: vec![],
            },
            extension: EVIL_EXTENSION.into(),
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

strata_plugin_sdk::export_codec!(EvilExtension);
