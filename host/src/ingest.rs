//! Ingesting files: read chunks in one thread, write them in another, strict or skip-invalid.
//!
//! The reader here is deliberately minimal — canonical CSV (`coin,ts,price,market_cap,volume,
//! supply,rank`, columns in any order, `ts` in ms, empty = unknown), the CoinGecko CSV
//! (`coin_id,timestamp,price,volume,market_cap`) and canonical JSONL, each optionally gzipped
//! — until the full readers of `source` are wired in; the engine side ([`Store::ingest_chunks`])
//! takes any iterator of [`Chunk`]s.
//!
//! Modes: [`Mode::Strict`] applies nothing if any row is invalid (the whole input is one
//! transaction); [`Mode::SkipInvalid`] reports invalid rows and commits the rest, one
//! transaction per chunk.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::{Batch, CoinDict};

use crate::store::{CoinMeta, Store};

/// Rows per chunk read from a file.
pub const CHUNK_ROWS: usize = 65_536;

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

    /// Ingests files, reading in a second thread while this one writes.
    pub fn ingest_files(&mut self, paths: &[PathBuf], mode: Mode) -> Result<IngestReport> {
        let (tx, rx) = mpsc::sync_channel::<Result<Chunk>>(2);
        let paths = paths.to_vec();
        let reader = std::thread::spawn(move || {
            for p in &paths {
                if let Err(e) = read_file(p, &mut |c| tx.send(Ok(c)).is_ok()) {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        });
        let r = self.ingest_chunks(rx.into_iter(), mode);
        reader.join().expect("the reader thread does not panic");
        r
    }
}

#[derive(Clone, Copy)]
enum Col {
    Coin,
    Ts,
    Price,
    Cap,
    Volume,
    Supply,
    Rank,
    Ignore,
}

/// Reads one file into chunks, calling `emit` for each; stops early when `emit` returns false.
pub fn read_file(path: &Path, emit: &mut dyn FnMut(Chunk) -> bool) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = BufReader::with_capacity(1 << 20, f);
    let gz = buf.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut text: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(buf),
        ))
    } else {
        Box::new(buf)
    };
    let mut first = String::new();
    text.read_line(&mut first)
        .with_context(|| format!("reading {}", path.display()))?;
    if first.trim_start().starts_with('{') {
        return read_jsonl(path, first, text, emit);
    }
    let header: Vec<&str> = first.trim_end().split(',').map(str::trim).collect();
    let cols: Vec<Col> = header
        .iter()
        .map(|h| match *h {
            "coin" | "coin_id" => Col::Coin,
            "ts" | "timestamp" => Col::Ts,
            "price" => Col::Price,
            "market_cap" => Col::Cap,
            "volume" => Col::Volume,
            "supply" => Col::Supply,
            "rank" => Col::Rank,
            _ => Col::Ignore,
        })
        .collect();
    for (need, name) in [(Col::Coin, "coin"), (Col::Ts, "ts")] {
        if !cols
            .iter()
            .any(|c| std::mem::discriminant(c) == std::mem::discriminant(&need))
        {
            bail!(
                "{}:1: no `{name}` column in the header `{}`",
                path.display(),
                first.trim_end()
            );
        }
    }
    let mut chunk = Chunk::default();
    let mut dict = CoinDict::default();
    let mut line_no = 1u64;
    let mut line = String::new();
    loop {
        line.clear();
        if text
            .read_line(&mut line)
            .with_context(|| format!("reading {} after line {line_no}", path.display()))?
            == 0
        {
            break;
        }
        line_no += 1;
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            continue;
        }
        match parse_csv_row(l, &cols) {
            Ok((coin, row)) => {
                let c = dict.intern(&mut chunk.batch.coins, coin);
                chunk
                    .batch
                    .push(c, row.0, row.1, row.2, row.3, row.4, row.5);
            }
            Err((field, message)) => chunk.errors.push(RowError {
                file: path.to_path_buf(),
                line: line_no,
                field,
                message,
            }),
        }
        if chunk.batch.len() >= CHUNK_ROWS {
            if !emit(std::mem::take(&mut chunk)) {
                return Ok(());
            }
            dict = CoinDict::default();
        }
    }
    if !chunk.batch.is_empty() || !chunk.errors.is_empty() {
        emit(chunk);
    }
    Ok(())
}

type Parsed = (i64, f64, f64, f64, f64, u32);

fn parse_csv_row<'a>(l: &'a str, cols: &[Col]) -> Result<(&'a str, Parsed), (String, String)> {
    let mut coin = "";
    let mut r: Parsed = (i64::MIN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0);
    let mut n = 0;
    let float = |name: &str, v: &str| -> Result<f64, (String, String)> {
        if v.is_empty() {
            return Ok(f64::NAN);
        }
        let f: f64 = v
            .parse()
            .map_err(|_| (name.to_string(), format!("`{v}` is not a number")))?;
        Ok(if f.is_nan() { f64::NAN } else { f })
    };
    for (i, v) in l.split(',').enumerate() {
        n = i + 1;
        let v = v.trim();
        match cols.get(i).copied().unwrap_or(Col::Ignore) {
            Col::Coin => coin = v,
            Col::Ts => {
                r.0 = v.parse().map_err(|_| {
                    (
                        "ts".to_string(),
                        format!("`{v}` is not integer milliseconds"),
                    )
                })?
            }
            Col::Price => r.1 = float("price", v)?,
            Col::Cap => r.2 = float("market_cap", v)?,
            Col::Volume => r.3 = float("volume", v)?,
            Col::Supply => r.4 = float("supply", v)?,
            Col::Rank => {
                r.5 = if v.is_empty() {
                    0
                } else {
                    v.parse()
                        .map_err(|_| ("rank".to_string(), format!("`{v}` is not a rank")))?
                }
            }
            Col::Ignore => {}
        }
    }
    if n != cols.len() {
        return Err((
            "-".into(),
            format!("{n} fields, the header has {}", cols.len()),
        ));
    }
    if coin.is_empty() {
        return Err(("coin".into(), "empty coin id".into()));
    }
    let (lo, hi) = crate::hot::TS_RANGE;
    if !(lo..=hi).contains(&r.0) {
        return Err((
            "ts".into(),
            format!("{} is outside 1970-01-01 .. 9999-12-31", r.0),
        ));
    }
    Ok((coin, r))
}

fn read_jsonl(
    path: &Path,
    first: String,
    mut text: Box<dyn BufRead>,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> Result<()> {
    let mut chunk = Chunk::default();
    let mut line = first;
    let mut line_no = 1u64;
    loop {
        let l = line.trim();
        if !l.is_empty() {
            match strata_plugin_sdk::jsonl::read(l.as_bytes(), None) {
                Ok(b) => chunk.batch.extend_from(&b),
                Err(e) => chunk.errors.push(RowError {
                    file: path.to_path_buf(),
                    line: line_no,
                    field: "-".into(),
                    message: e.to_string(),
                }),
            }
        }
        if chunk.batch.len() >= CHUNK_ROWS && !emit(std::mem::take(&mut chunk)) {
            return Ok(());
        }
        line.clear();
        if text.read_line(&mut line)? == 0 {
            break;
        }
        line_no += 1;
    }
    if !chunk.batch.is_empty() || !chunk.errors.is_empty() {
        emit(chunk);
    }
    Ok(())
}

/// Reads a whole file into one batch (tests, small files); errors fail.
pub fn read_all(path: &Path) -> Result<Batch> {
    let mut out = Batch::default();
    let mut errors = Vec::new();
    read_file(path, &mut |c| {
        out.extend_from(&c.batch);
        errors.extend(c.errors);
        true
    })?;
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    Ok(out)
}
