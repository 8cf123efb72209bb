//! `columnar`: strata's own codec for market series, built to be smaller than any general format
//! on real price histories while encoding and decoding at millions of rows per second.
//!
//! Rows are sorted by (coin, ts) and stored per coin, in blocks of `block` rows. Timestamps are
//! predicted on a grid ([`timestamps`]); each float column picks, per block, the cheapest of
//! exact decimal scaling, bit-pattern deltas and XOR against the previous value or a cross-column
//! prediction (market cap from price × implied supply) ([`floats`]); ranks are deltas ([`ints`]).
//! A batch's extra columns (a rollup's `open`, `high`, ...) go through the same float coders.
//! Every value becomes a symbol (its residual's bit length), entropy coded with context-selected
//! static rANS tables ([`entropy`]), plus raw low bits ([`bitio`]). The segment has a versioned
//! header, a CRC-32 over the payload and a coin directory so a coin filter skips other coins'
//! bytes ([`container`]). The format is written down in `docs/columnar.md`.

pub mod bitio;
pub mod container;
pub mod entropy;
pub mod floats;
pub mod ints;
pub mod timestamps;

use strata_plugin_sdk::{Batch, Codec, CodecInfo, OptionSpec, Options, PluginInfo, Result};

/// Default rows per block: large enough that per-block headers are noise, small enough that the
/// per-block choice follows changes in a long series.
pub const DEFAULT_BLOCK: i64 = 128;

#[derive(Default)]
pub struct Columnar;

impl Columnar {
    fn params(opts: &Options) -> Result<container::Params> {
        Ok(container::Params {
            block: opts.int("block", 16, container::MAX_BLOCK as i64, DEFAULT_BLOCK)? as usize,
            entropy: opts.flag("entropy", true)?,
        })
    }
}

impl Codec for Columnar {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "columnar".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "strata's columnar market-series format: sorted by (coin, ts), \
                              grid timestamps, per-block decimal/delta/XOR float coding with \
                              cross-column prediction, rANS entropy stage; bit-exact"
                    .into(),
                options: vec![
                    OptionSpec::new(
                        "block",
                        &format!("integer 16..={}", container::MAX_BLOCK),
                        &DEFAULT_BLOCK.to_string(),
                        "rows per block: each block picks its own encoding per column",
                    ),
                    OptionSpec::new(
                        "entropy",
                        "boolean",
                        "true",
                        "rANS-code the per-value symbols when it pays (false: plain 8-bit fields, faster, larger)",
                    ),
                ],
            },
            extension: "strata-col".into(),
            media_type: "application/vnd.strata.columnar".into(),
            lossless: true,
            sorts_rows: true,
            filter_pushdown: true,
            extra_columns: true,
        }
    }

    fn encode(&self, batch: &Batch, opts: &Options) -> Result<Vec<u8>> {
        container::encode(batch, Self::params(opts)?)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        container::decode(bytes, coins)
    }
}

strata_plugin_sdk::export_codec!(Columnar);
