//! Ingesting files: chunks read by [`source`](mod@crate::source) in one thread (every format it
//! knows: canonical CSV/JSONL, the CoinGecko CSVs, CMC ndjson, mapped CSVs, Coinpaprika
//! responses; gzip or not) are written in another, strict or skip-invalid. The engine side
//! ([`Store::ingest_chunks`]) takes any iterator of [`Chunk`]s.
//!
//! Modes: [`Mode::Strict`] applies nothing if any row is invalid (the whole input is one
//! transaction); [`Mode::SkipInvalid`] reports invalid rows and commits the rest, one
//! transaction per chunk.

use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Result, bail};
use strata_plugin_sdk::Batch;

use crate::source::{self, Format, ReadOptions};
use crate::store::{CoinMeta, Store};

/// A row the reader or the engine rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: field `{}`: {}",
            self.file.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// Some rows of an input, with the coins' metadata and the rows that could not be read.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    pub batch: Batch,
    pub coins: Vec<CoinMeta>,
    pub errors: Vec<RowError>,
}

impl From<crate::source::Chunk> for Chunk {
    fn from(c: crate::source::Chunk) -> Chunk {
        Chunk {
            batch: c.batch,
            coins: c
                .coins
                .into_iter()
                .map(|m| CoinMeta {
                    symbol: m.symbol.unwrap_or_default(),
                    name: m.name.unwrap_or_default(),
                    id: m.id,
                })
                .collect(),
            errors: c
                .errors
                .into_iter()
                .map(|e| RowError {
                    file: PathBuf::from(e.file),
                    line: e.line,
                    field: e.field.unwrap_or_default(),
                    message: e.message,
                })
                .collect(),
        }
    }
}

/// What to do with invalid rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Any invalid row fails the whole input; nothing is applied.
    #[default]
    Strict,
    /// Invalid rows are reported and skipped; the rest is applied.
    SkipInvalid,
}

/// What an ingest did.
#[derive(Clone, Debug, Default)]
pub struct IngestReport {
    pub rows: u64,
    pub errors: Vec<RowError>,
}

impl Store {
    /// Ingests chunks (see [`Mode`]). In strict mode an invalid row is an error listing the
    /// first invalid rows, and the store is unchanged.
    pub fn ingest_chunks(
        &mut self,
        chunks: impl Iterator<Item = Result<Chunk>>,
        mode: Mode,
    ) -> Result<IngestReport> {
        let mut report = IngestReport::default();
        match mode {
            Mode::Strict => {
                self.write_txn(|s| {
                    for c in chunks {
                        let c = c?;
                        if !c.errors.is_empty() {
                            report.errors.extend(c.errors);
                            continue;
                        }
                        if report.errors.is_empty() {
                            report.rows += s.ingest_in_txn(&c.batch, &c.coins)?.rows;
                        }
                    }
                    if !report.errors.is_empty() {
                        let shown: Vec<String> =
                            report.errors.iter().take(10).map(|e| e.to_string()).collect();
                        bail!(
                            "{} invalid rows, nothing ingested (use skip-invalid to load the rest):\n  {}",
                            report.errors.len(),
                            shown.join("\n  ")
                        );
                    }
                    Ok(())
                })?;
                if self.recent_rows >= self.options.hot_merge_rows {
                    self.merge_recent()?;
                }
            }
            Mode::SkipInvalid => {
                for c in chunks {
                    let c = c?;
                    report.errors.extend(c.errors);
                    report.rows += self.ingest(&c.batch, &c.coins)?.rows;
                }
            }
        }
        Ok(report)
    }

    /// Ingests files read by [`source`](mod@crate::source) (any format it reads; `format` may be
    /// [`Format::Auto`]), reading in a second thread while this one writes.
    pub fn ingest_files(
        &mut self,
        paths: &[PathBuf],
        format: Format,
        opts: &ReadOptions,
        mode: Mode,
    ) -> Result<IngestReport> {
        let (tx, rx) = mpsc::sync_channel::<Result<Chunk>>(2);
        let paths = paths.to_vec();
        let opts = opts.clone();
        let reader = std::thread::spawn(move || {
            for p in &paths {
                let chunks = match source::open(p, format, &opts) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for c in chunks {
                    let failed = c.is_err();
                    if tx.send(c.map(Chunk::from)).is_err() || failed {
                        return;
                    }
                }
            }
        });
        let r = self.ingest_chunks(rx.into_iter(), mode);
        reader.join().expect("the reader thread does not panic");
        r
    }
}
