//! Sources: every way market data gets into strata — file readers and the Coinpaprika collector.
//!
//! A source turns outside data into [`Chunk`]s: a columnar [`Batch`] of about
//! [`ReadOptions::chunk_rows`] rows, the metadata of its coins ([`CoinMeta`]) and the rows it
//! could not read ([`RowError`], naming file, line and field). Readers never stop at a bad row:
//! they report it in the chunk and go on, and the engine decides whether any error fails the
//! import (strict) or the good rows go in (skip-invalid). An I/O error, a corrupt gzip stream or
//! an unusable header ends the reader with an `Err` item instead.
//!
//! [`open`] reads a file in any [`Format`], streaming: memory stays at one chunk however big the
//! file is (Coinpaprika API responses, which are single JSON documents, are the exception and are
//! read whole). Gzip is detected by its magic bytes, for every format. [`Format::Auto`] picks the
//! format from the first bytes and the CSV header.
//!
//! [`coinpaprika`] parses the Coinpaprika API's responses and fetches them over HTTP, with
//! retries, and runs the periodic collector.
//!
//! # The canonical format
//!
//! strata's own interchange format, as CSV ([`Format::Csv`]) or JSON Lines ([`Format::Jsonl`]),
//! has one row per observation with these columns (CSV header) or keys (JSONL):
//!
//! | column | meaning | when empty or absent |
//! |---|---|---|
//! | `coin` | coin id, e.g. `bitcoin` (any non-empty UTF-8 text) | required (or [`ReadOptions::coin`]) |
//! | `ts` | time, UTC: integer milliseconds since 1970 or RFC 3339 (`2024-01-01T00:00:00Z`) | required |
//! | `price` | price in USD | NaN (unknown) |
//! | `market_cap` | market capitalisation in USD | NaN |
//! | `volume` | 24-hour traded volume in USD | NaN |
//! | `supply` | circulating supply, in coins | NaN |
//! | `rank` | market-cap rank, a positive integer | 0 (unknown) |
//!
//! ```text
//! coin,ts,price,market_cap,volume,supply,rank
//! bitcoin,1367107200000,135.3,1500517590,0,,1
//! bitcoin,2013-04-29T00:00:00Z,141.96,1575032004,0,,1
//! ```
//!
//! CSV columns may come in any order and unknown columns are ignored. Floats are decimal or
//! scientific text; `NaN`, `inf` and `-inf` are accepted, and every NaN becomes the canonical
//! quiet NaN (`0x7ff8000000000000`) the WIT contract requires. The JSONL form is the SDK's row
//! format ([`strata_plugin_sdk::jsonl`]: `null` = unknown, `"Infinity"`/`"-Infinity"`), read
//! leniently: keys in any order, missing float keys are NaN, `ts` may also be an RFC 3339 string.
//!
//! Other CSVs load through a column mapping ([`ReadOptions::map`], `coin=Symbol,ts=Date,...`)
//! and a timestamp unit or format ([`TsUnit`], [`ReadOptions::ts_format`]); see [`ColumnMap`].

mod cmc;
pub mod coinpaprika;
mod csv;
mod jsonl;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::Batch;

pub use value::TsUnit;

/// The layout of an input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Decide from the first bytes: a JSON array is a Coinpaprika response, JSON lines are CMC
    /// snapshots or canonical JSONL (by their keys), anything else is CSV told apart by header.
    Auto,
    /// Canonical CSV (see the module docs), or any CSV through [`ReadOptions::map`].
    Csv,
    /// Canonical JSON Lines, the SDK's row format.
    Jsonl,
    /// CoinGecko daily CSV: `coin_id,timestamp,price,volume,market_cap`, timestamps in ms.
    CoinGeckoCsv,
    /// CoinGecko 2021 CSV: `timestamp,readableTimestamp,coinId,price,marketCap,totalVolume`.
    CoinGecko2021Csv,
    /// CoinMarketCap weekly snapshots as newline-delimited JSON of display strings.
    CmcNdjson,
    /// A Coinpaprika `GET /v1/tickers` response (or a single `/v1/tickers/{id}`).
    CoinpaprikaTickers,
    /// A Coinpaprika `GET /v1/tickers/{id}/historical` response; needs [`ReadOptions::coin`].
    CoinpaprikaHistorical,
}

impl Format {
    /// Every format with its command-line name, for help texts and parsing.
    pub const ALL: [(Format, &'static str); 8] = [
        (Format::Auto, "auto"),
        (Format::Csv, "csv"),
        (Format::Jsonl, "jsonl"),
        (Format::CoinGeckoCsv, "coingecko-csv"),
        (Format::CoinGecko2021Csv, "coingecko-2021-csv"),
        (Format::CmcNdjson, "cmc-ndjson"),
        (Format::CoinpaprikaTickers, "coinpaprika-tickers"),
        (Format::CoinpaprikaHistorical, "coinpaprika-historical"),
    ];

    /// The command-line name, e.g. `coingecko-csv`.
    pub fn name(self) -> &'static str {
        Format::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .expect("every format is listed in Format::ALL")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(f, _)| *f)
            .with_context(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown format `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// What a source knows about a coin besides its id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoinMeta {
    pub id: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
}

/// A row that could not be read. `line` is the 1-based line of the file (CSV, JSON lines) or
/// the 1-based position of the entry in a JSON array (Coinpaprika responses, where `file` is
/// the file path or URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    /// The canonical field (`price`, `ts`, ...) or source field (`quotes.USD.price`) at fault,
    /// when the problem is one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RowError {}

/// A piece of a source: rows, their coins' metadata and the rows that were rejected.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    /// The rows read, NaN canonical. Rows keep the source's order.
    pub batch: Batch,
    /// Parallel to `batch.coins`: `coins[i].id == batch.coins[i]`, with the symbol and name
    /// where the source has them (CMC, Coinpaprika; `None` for the CSV formats).
    pub coins: Vec<CoinMeta>,
    /// Rows left out of `batch`, in source order.
    pub errors: Vec<RowError>,
}

impl Chunk {
    /// True when the chunk holds neither rows nor errors.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.errors.is_empty()
    }

    /// Appends `other`'s rows and errors, merging the coin dictionaries and their metadata.
    pub fn append(&mut self, other: Chunk) {
        let known = self.batch.coins.len();
        self.batch.extend_from(&other.batch);
        let mut meta: HashMap<&str, &CoinMeta> =
            other.coins.iter().map(|m| (m.id.as_str(), m)).collect();
        for m in &mut self.coins {
            if let Some(o) = meta.remove(m.id.as_str()) {
                m.symbol = m.symbol.take().or_else(|| o.symbol.clone());
                m.name = m.name.take().or_else(|| o.name.clone());
            }
        }
        for id in &self.batch.coins[known..] {
            self.coins.push(
                meta.remove(id.as_str())
                    .cloned()
                    .unwrap_or_else(|| CoinMeta {
                        id: id.clone(),
                        ..CoinMeta::default()
                    }),
            );
        }
        self.errors.extend(other.errors);
    }
}

/// Which input column holds each canonical field, for CSVs of other layouts.
///
/// Written `field=Column,field=Column`, e.g. `coin=Symbol,ts=Date,price=Close`. Fields are
/// `coin`, `ts`, `price`, `market_cap`, `volume`, `supply` and `rank`. A mapped column must
/// exist in the header (exact name, else the only case-insensitive match); fields not mapped
/// are read from the format's own column names (for [`Format::Csv`], the canonical ones) when
/// the header has them, and are unknown (NaN, rank 0) otherwise. Without a `coin` column, give
/// [`ReadOptions::coin`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnMap {
    entries: Vec<(Field, String)>,
}

impl ColumnMap {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Maps `field` to `column`, replacing an earlier mapping of the same field.
    pub fn set(&mut self, field: Field, column: impl Into<String>) {
        self.entries.retain(|(f, _)| *f != field);
        self.entries.push((field, column.into()));
    }

    /// The column mapped to `field`, if any.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.entries
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| c.as_str())
    }
}

impl FromStr for ColumnMap {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<ColumnMap> {
        let mut map = ColumnMap::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((field, column)) = part.split_once('=') else {
                bail!("column map entry `{part}` is not `field=Column`");
            };
            let field: Field = field.trim().parse()?;
            let column = column.trim();
            if column.is_empty() {
                bail!("column map entry `{part}` names no column");
            }
            if map.get(field).is_some() {
                bail!("column map maps `{field}` twice");
            }
            map.set(field, column);
        }
        Ok(map)
    }
}

/// A canonical field, the target of a [`ColumnMap`] entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Coin,
    Ts,
    Price,
    MarketCap,
    Volume,
    Supply,
    Rank,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Coin,
        Field::Ts,
        Field::Price,
        Field::MarketCap,
        Field::Volume,
        Field::Supply,
        Field::Rank,
    ];

    /// The canonical column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Coin => "coin",
            Field::Ts => "ts",
            Field::Price => "price",
            Field::MarketCap => "market_cap",
            Field::Volume => "volume",
            Field::Supply => "supply",
            Field::Rank => "rank",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Field {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Field> {
        let norm = s.to_ascii_lowercase().replace('-', "_");
        Field::ALL
            .into_iter()
            .find(|f| f.name() == norm)
            .with_context(|| {
                format!(
                    "unknown field `{s}`; expected one of coin, ts, price, market_cap, volume, supply, rank"
                )
            })
    }
}

/// How to read a source.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Rows per chunk (rows plus rejected rows; at least 1). Default 65,536.
    pub chunk_rows: usize,
    /// Column mapping for CSV input; see [`ColumnMap`]. With [`Format::Auto`] a non-empty map
    /// means CSV.
    pub map: ColumnMap,
    /// The unit of numeric timestamps in CSV input (all formats; JSON sources have fixed units).
    pub ts_unit: TsUnit,
    /// A `chrono` strftime format for text timestamps in CSV input, e.g. `%Y-%m-%d` or
    /// `%d/%m/%Y %H:%M`. Times without an offset are UTC; a date alone is midnight UTC. Without
    /// it, text timestamps must be RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or `YYYY-MM-DD`.
    pub ts_format: Option<String>,
    /// The coin id for inputs that do not name one: a CSV without a coin column, or a
    /// Coinpaprika historical response (e.g. `btc-bitcoin`).
    pub coin: Option<String>,
    /// The CSV field delimiter. Default `,`.
    pub delimiter: u8,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            chunk_rows: 65_536,
            map: ColumnMap::default(),
            ts_unit: TsUnit::Ms,
            ts_format: None,
            coin: None,
            delimiter: b',',
        }
    }
}

/// A streaming reader over one source: an iterator of chunks. After an `Err` item it ends.
pub struct Reader {
    format: Format,
    inner: Box<dyn Iterator<Item = Result<Chunk>> + Send>,
    done: bool,
}

impl Reader {
    /// The format being read (what [`Format::Auto`] resolved to).
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Iterator for Reader {
    type Item = Result<Chunk>;
    fn next(&mut self) -> Option<Result<Chunk>> {
        if self.done {
            return None;
        }
        let item = self.inner.next();
        match &item {
            None | Some(Err(_)) => self.done = true,
            Some(Ok(_)) => {}
        }
        item
    }
}

/// The boxed byte stream readers work on: the file, gunzipped when it starts with gzip magic.
pub(crate) type Input = Box<dyn BufRead + Send>;

/// Milliseconds from `ms`, RFC 3339 or `YYYY-MM-DD` (UTC).
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    bail!("`{s}` is not a time (use ms since 1970, RFC 3339 or YYYY-MM-DD)")
}

/// Opens `path` for reading in `format`. Fails when the file cannot be opened, the format cannot
/// be detected, or (for CSV) the header lacks a required column.
pub fn open(path: &Path, format: Format, opts: &ReadOptions) -> Result<Reader> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    open_reader(Box::new(file), &path.display().to_string(), format, opts)
}

/// Like [`open`], for any byte stream; `name` stands for the file in errors.
pub fn open_reader(
    input: Box<dyn Read + Send>,
    name: &str,
    format: Format,
    opts: &ReadOptions,
) -> Result<Reader> {
    if opts.chunk_rows == 0 {
        bail!("chunk size must be at least 1 row");
    }
    let mut input = maybe_gunzip(input).with_context(|| format!("cannot read {name}"))?;
    let format = match format {
        Format::Auto => detect(&mut input, opts).with_context(|| format!("reading {name}"))?,
        f => f,
    };
    let name = name.to_owned();
    let inner: Box<dyn Iterator<Item = Result<Chunk>> + Send> = match format {
        Format::Auto => unreachable!("detect resolves Auto"),
        Format::Csv | Format::CoinGeckoCsv | Format::CoinGecko2021Csv => {
            Box::new(csv::CsvReader::new(input, name, format, opts)?)
        }
        Format::Jsonl => Box::new(jsonl::JsonlReader::new(input, name, opts)),
        Format::CmcNdjson => Box::new(cmc::CmcReader::new(input, name, opts)),
        Format::CoinpaprikaTickers | Format::CoinpaprikaHistorical => {
            let mut text = Vec::new();
            input
                .read_to_end(&mut text)
                .with_context(|| format!("cannot read {name}"))?;
            let chunk = if format == Format::CoinpaprikaTickers {
                coinpaprika::parse_tickers(&text, &name)?
            } else {
                let coin = opts.coin.as_deref().with_context(|| {
                    format!(
                        "{name}: a Coinpaprika historical response does not name its coin; \
                         give its coin id (e.g. `btc-bitcoin`; `--coin` on the command line)"
                    )
                })?;
                coinpaprika::parse_historical(&text, &name, coin)?
            };
            Box::new(std::iter::once(Ok(chunk)))
        }
    };
    Ok(Reader {
        format,
        inner,
        done: false,
    })
}

/// Wraps `input` in a gzip decoder (multi-member, as `gzip` concatenates) when it starts with
/// the gzip magic bytes. The decoder runs on its own thread, a few blocks ahead of the parser,
/// so decompression and parsing use two cores.
fn maybe_gunzip(input: Box<dyn Read + Send>) -> Result<Input> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok(Box::new(Prefetch::spawn(Box::new(decoder))))
    } else {
        Ok(Box::new(buffered))
    }
}

/// A reader fed by a thread that reads its source ahead, in blocks, through a bounded channel.
/// Dropping it stops the thread (its next send fails).
struct Prefetch {
    blocks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    block: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Prefetch {
    const BLOCK: usize = 1 << 20;
    const AHEAD: usize = 4;

    fn spawn(mut source: Box<dyn Read + Send>) -> Prefetch {
        let (tx, rx) = std::sync::mpsc::sync_channel(Prefetch::AHEAD);
        std::thread::Builder::new()
            .name("strata-gunzip".into())
            .spawn(move || {
                loop {
                    let mut block = vec![0u8; Prefetch::BLOCK];
                    let mut filled = 0;
                    let result = loop {
                        match source.read(&mut block[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == block.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    block.truncate(filled);
                    let last = filled < Prefetch::BLOCK || result.is_err();
                    if filled > 0 && tx.send(Ok(block)).is_err() {
                        return;
                    }
                    if let Err(e) = result {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if last {
                        return;
                    }
                }
            })
            .expect("spawning the gunzip thread");
        Prefetch {
            blocks: rx,
            block: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.block.len() && !self.done {
            match self.blocks.recv() {
                Ok(Ok(block)) => {
                    self.block = block;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        Ok(&self.block[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.block.len());
    }
}

/// The first `n` bytes of `input` (fewer at its end), left unconsumed.
fn peek(input: &mut Input, n: usize) -> Result<Vec<u8>> {
    // A buffered reader may hold less than `n` bytes after one read; put what was taken back
    // in front of the rest, so nothing is lost.
    let mut seen = Vec::new();
    let mut taken: Input = std::mem::replace(input, Box::new(std::io::empty()));
    let result = loop {
        let buf = match taken.fill_buf() {
            Ok(buf) => buf,
            Err(e) => break Err(e),
        };
        if buf.is_empty() {
            break Ok(());
        }
        let k = buf.len().min(n - seen.len());
        seen.extend_from_slice(&buf[..k]);
        taken.consume(k);
        if seen.len() >= n {
            break Ok(());
        }
    };
    *input = Box::new(std::io::Cursor::new(seen.clone()).chain(taken));
    result?;
    Ok(seen)
}

/// Decides the format of `input` from its first bytes: the first JSON entry or CSV header.
fn detect(input: &mut Input, opts: &ReadOptions) -> Result<Format> {
    if !opts.map.is_empty() {
        return Ok(Format::Csv);
    }
    let head = peek(input, 64 * 1024)?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(first);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.is_empty() {
        bail!("cannot detect the format of an empty input; give the format explicitly");
    }
    if trimmed.starts_with('[') || trimmed.trim_end() == "{" {
        // Possibly pretty-printed: look at everything peeked, not just the first line.
        let all = String::from_utf8_lossy(&head);
        return Ok(
            if all.contains("\"quotes\"") || all.contains("\"last_updated\"") {
                Format::CoinpaprikaTickers
            } else {
                Format::CoinpaprikaHistorical
            },
        );
    }
    if trimmed.starts_with('{') {
        if trimmed.contains("\"Market Cap\"") || trimmed.contains("\"Circulating Supply\"") {
            return Ok(Format::CmcNdjson);
        }
        if trimmed.contains("\"quotes\"") {
            return Ok(Format::CoinpaprikaTickers);
        }
        return Ok(Format::Jsonl);
    }
    let header: Vec<&str> = trimmed
        .trim_end()
        .split(opts.delimiter as char)
        .map(|h| h.trim().trim_matches('"'))
        .collect();
    let has = |name: &str| header.contains(&name);
    if has("coin_id") && has("timestamp") {
        Ok(Format::CoinGeckoCsv)
    } else if has("coinId") && has("timestamp") {
        Ok(Format::CoinGecko2021Csv)
    } else if has("ts") && (has("coin") || opts.coin.is_some()) {
        Ok(Format::Csv)
    } else {
        bail!(
            "unrecognised CSV header `{}`; expected the canonical columns \
             (coin,ts,price,market_cap,volume,supply,rank), a CoinGecko header, or a column \
             mapping such as `coin=Symbol,ts=Date,price=Close`",
            trimmed.trim_end()
        )
    }
}

/// Builds chunks: interns coins, keeps `coins` parallel to the batch dictionary, collects errors.
pub(crate) struct ChunkBuilder {
    pub(crate) chunk: Chunk,
    index: HashMap<String, u32>,
    /// The last coin interned, to skip the hash lookup for runs of one coin (sorted inputs).
    last: Option<(Vec<u8>, u32)>,
    file: String,
}

impl ChunkBuilder {
    pub(crate) fn new(file: String, rows: usize) -> ChunkBuilder {
        ChunkBuilder {
            chunk: Chunk {
                batch: Batch::with_capacity(rows),
                coins: Vec::new(),
                errors: Vec::new(),
            },
            index: HashMap::new(),
            last: None,
            file,
        }
    }

    /// Rows plus errors so far.
    pub(crate) fn len(&self) -> usize {
        self.chunk.batch.len() + self.chunk.errors.len()
    }

    /// The dictionary index of the coin `id` (UTF-8 bytes, already checked non-empty).
    pub(crate) fn coin_bytes(&mut self, id: &[u8]) -> Result<u32, String> {
        if let Some((last, i)) = &self.last
            && last.as_slice() == id
        {
            return Ok(*i);
        }
        let s = std::str::from_utf8(id).map_err(|_| "coin id is not UTF-8".to_string())?;
        let i = self.coin(s, None, None);
        self.last = Some((id.to_vec(), i));
        Ok(i)
    }

    /// The dictionary index of coin `id`, recording `symbol` and `name` when given.
    pub(crate) fn coin(&mut self, id: &str, symbol: Option<&str>, name: Option<&str>) -> u32 {
        let i = match self.index.get(id) {
            Some(&i) => i,
            None => {
                let i = self.chunk.batch.coins.len() as u32;
                self.chunk.batch.coins.push(id.to_owned());
                self.chunk.coins.push(CoinMeta {
                    id: id.to_owned(),
                    symbol: None,
                    name: None,
                });
                self.index.insert(id.to_owned(), i);
                i
            }
        };
        let meta = &mut self.chunk.coins[i as usize];
        if let Some(s) = symbol {
            meta.symbol = Some(s.to_owned());
        }
        if let Some(n) = name {
            meta.name = Some(n.to_owned());
        }
        i
    }

    pub(crate) fn error(&mut self, line: u64, field: Option<&str>, message: impl Into<String>) {
        self.chunk.errors.push(RowError {
            file: self.file.clone(),
            line,
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    /// Hands out the chunk built so far and starts a new one.
    pub(crate) fn take(&mut self, rows: usize) -> Chunk {
        self.index.clear();
        self.last = None;
        std::mem::replace(
            &mut self.chunk,
            Chunk {
                batch: Batch::with_capacity(rows),
                coins: Vec::new(),
                errors: Vec::new(),
            },
        )
    }
}

#[cfg(test)]
mod tests;
