//! A codec that works (lossless JSON Lines, the SDK's `jsonl` format) but calls itself
//! `ESC[31mevil BEL/../x.wasm`: a name with ANSI escapes, a bell and a path, and a description
//! full of control characters. The name is recorded in the catalog and printed in logs, errors
//! and `strata plugins`, and a host that resolves a segment's codec by name would read it as a
//! path.
//!
//! What the host must do: refuse to load it (the error names the `name`), and print nothing of
//! it raw: the error's text holds no control character.

use strata_plugin_sdk::{Batch, Codec, CodecInfo, Options, PluginInfo, Result, jsonl};

/// The name this codec declares.
pub const EVIL_NAME: &str = "\u{1b}[31mevil\u{7}/../x.wasm";

#[derive(Default)]
pub struct EvilName;

impl Codec for EvilName {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: EVIL_NAME.into(),
                version: "0.0.0".into(),
                description: "\u{1b}[2J\u{1b}[Hcleared your screen\r\u{8}\u{7}\u{0}\u{7f}".into(),
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

strata_plugin_sdk::export_codec!(EvilName);
