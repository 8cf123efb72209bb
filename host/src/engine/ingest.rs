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

use crate::source::{self, Format, ReadOptions};
use crate::store::Store;

/// A chunk of an input and a rejected row are the reader's own types: see
/// [`source::Chunk`] and [`source::RowError`].
pub use crate::source::{Chunk, RowError};

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
                    if tx.send(c).is_err() || failed {
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
