//! `parquet`: each segment is one Apache Parquet file with a single row group, readable by
//! DuckDB, pyarrow, polars, Spark and every other Parquet reader.
//!
//! Columns (Parquet physical type / logical type):
//!
//! | column | type | encoding |
//! |--------|------|----------|
//! | `coin` | BYTE_ARRAY / STRING, required, no min/max statistics | dictionary when `dictionary=true` |
//! | `ts` | INT64 / TIMESTAMP(MILLIS, UTC), required | DELTA_BINARY_PACKED when `delta_ts=true` |
//! | `price`, `market_cap`, `volume`, `supply` | DOUBLE, optional | BYTE_STREAM_SPLIT when `byte_stream_split=true` |
//! | `rank` | INT32 / INTEGER(32, unsigned), optional | plain / RLE |
//!
//! "Unknown" is written the way Parquet readers expect, as null: a canonical NaN float and a 0
//! rank become nulls, and nulls decode back to canonical NaN and 0, so the round trip is bit
//! exact while `avg(price)` in DuckDB skips unknowns instead of returning NaN. (A NaN with any
//! other bit pattern is kept as a value.) Rows keep their input order.
//!
//! Both directions use the `parquet` crate's column API directly (no arrow): encoding writes
//! each column with its definition levels, decoding reads the `coin` column first and, with a
//! coin filter, reads the other columns only for runs of matching rows and skips the rest.
//! Files are checked against the schema above before any column is read.
//!
//! **Integrity.** The Parquet reader panics on some damaged files (division by zero, bounds
//! checks), and inside wasm a panic is a trap. So each segment carries a CRC-32 of the whole
//! file in a 12-byte block (`strata\0\x01` + CRC, little-endian) placed right before the
//! footer. Parquet readers locate the footer from the end of the file and column chunks by
//! absolute offsets, so they never look at those bytes; this decoder checks the CRC first, so
//! damaged segments (any single-bit flip, any truncation) are `corrupt-input` before the Parquet
//! reader sees them. A file without the block (not written by this codec) is refused.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{BrotliLevel, Compression, Encoding, GzipLevel, Type as Physical};
use parquet::column::reader::{ColumnReaderImpl, get_typed_column_reader};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use strata_plugin_sdk::{
    Batch, Codec, CodecInfo, CoinDict, Error, OptionSpec, Options, PluginInfo, Result,
};

const FLOAT_COLUMNS: [&str; 4] = ["price", "market_cap", "volume", "supply"];
const COMPRESSIONS: [&str; 6] = ["snappy", "gzip", "brotli", "lz4", "zstd", "none"];
/// The default `compression` (index into [`COMPRESSIONS`]); see the option's description.
const DEFAULT_COMPRESSION: usize = 0;
/// Rows handed to the column writers and readers at a time.
const CHUNK_ROWS: usize = 64 * 1024;
/// The integrity block before the footer: this tag, then the CRC-32 (LE) of the file without
/// the block.
const CHECK_TAG: &[u8; 8] = b"strata\0\x01";
const CHECK_LEN: usize = CHECK_TAG.len() + 4;
/// The Parquet trailer: footer length (u32 LE) and the magic `PAR1`.
const TRAILER_LEN: usize = 8;

/// The Parquet schema of a segment (see the table in the crate docs).
const SCHEMA: &str = "message strata_segment {
    required binary coin (STRING);
    required int64 ts (TIMESTAMP(MILLIS, true));
    optional double price;
    optional double market_cap;
    optional double volume;
    optional double supply;
    optional int32 rank (INTEGER(32, false));
}";

/// Each column's name, physical type and whether it may hold nulls, in file order.
const COLUMNS: [(&str, Physical, bool); 7] = [
    ("coin", Physical::BYTE_ARRAY, false),
    ("ts", Physical::INT64, false),
    ("price", Physical::DOUBLE, true),
    ("market_cap", Physical::DOUBLE, true),
    ("volume", Physical::DOUBLE, true),
    ("supply", Physical::DOUBLE, true),
    ("rank", Physical::INT32, true),
];

#[derive(Default)]
pub struct Parquet;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("parquet: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::CorruptInput(format!("parquet: {e}"))
}

/// The `compression` and `level` options as a Parquet compression.
fn compression(opts: &Options) -> Result<Compression> {
    let which = opts.choice("compression", &COMPRESSIONS, DEFAULT_COMPRESSION)?;
    let no_level = |name: &str| match opts.get("level") {
        Some(_) => Err(Error::InvalidOptions(format!(
            "option `level` does not apply to compression `{name}` (only gzip and brotli)"
        ))),
        None => Ok(()),
    };
    Ok(match COMPRESSIONS[which] {
        "gzip" => {
            let level = opts.int("level", 0, 9, 6)? as u32;
            Compression::GZIP(GzipLevel::try_new(level).map_err(internal)?)
        }
        "brotli" => {
            let level = opts.int("level", 0, 11, 1)? as u32;
            Compression::BROTLI(BrotliLevel::try_new(level).map_err(internal)?)
        }
        "zstd" => {
            return Err(Error::Unsupported(
                "zstd needs C code that does not build for wasm32-wasip2 here".into(),
            ));
        }
        name => {
            no_level(name)?;
            match name {
                "snappy" => Compression::SNAPPY,
                "lz4" => Compression::LZ4_RAW,
                _ => Compression::UNCOMPRESSED,
            }
        }
    })
}

/// Writes the next column of `rg`, one value per row of `rows` (`None` for a null, in a
/// nullable column), a chunk at a time.
fn write_column<T: DataType, R>(
    rg: &mut SerializedRowGroupWriter<'_, &mut Vec<u8>>,
    rows: &[R],
    nullable: bool,
    value: impl Fn(&R) -> Option<T::T>,
) -> Result<()> {
    let mut col = rg
        .next_column()
        .map_err(internal)?
        .ok_or_else(|| internal("the schema has fewer columns than written"))?;
    let w = col.typed::<T>();
    let (mut values, mut levels) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(CHUNK_ROWS) {
        values.clear();
        levels.clear();
        for r in chunk {
            let v = value(r);
            levels.push(i16::from(v.is_some()));
            values.extend(v);
        }
        if !nullable && values.len() != chunk.len() {
            return Err(internal("a null in a required column"));
        }
        w.write_batch(&values, nullable.then_some(&levels[..]), None)
            .map_err(internal)?;
    }
    col.close().map_err(internal)
}

/// Checks that a file has this codec's columns, with their types, before any is read (the
/// typed column readers panic on a type they do not expect, and a panic in wasm is a trap).
fn check_schema(schema: &SchemaDescriptor) -> Result<()> {
    if schema.num_columns() != COLUMNS.len() {
        return Err(corrupt(format!(
            "{} columns, expected {}",
            schema.num_columns(),
            COLUMNS.len()
        )));
    }
    for (i, &(name, physical, nullable)) in COLUMNS.iter().enumerate() {
        let c = schema.column(i);
        if c.name() != name
            || c.physical_type() != physical
            || c.max_rep_level() != 0
            || c.max_def_level() > i16::from(nullable)
        {
            return Err(corrupt(format!(
                "column {i} is `{}` {:?}{}, expected `{name}` {physical:?}{}",
                c.name(),
                c.physical_type(),
                if c.max_def_level() > 0 {
                    " (nullable)"
                } else {
                    ""
                },
                if nullable { " (nullable)" } else { "" },
            )));
        }
    }
    Ok(())
}

/// Which rows of a row group to read: runs of `(keep, rows)`, alternating.
type Runs = Vec<(bool, usize)>;

/// Reads column `i` of `rg` into `out` for the rows `runs` keeps: nulls become `null`, and
/// every run must be there in full.
fn read_column<T: DataType>(
    rg: &dyn RowGroupReader,
    i: usize,
    runs: &Runs,
    null: T::T,
    out: &mut Vec<T::T>,
) -> Result<()>
where
    T::T: Copy,
{
    let mut r: ColumnReaderImpl<T> =
        get_typed_column_reader(rg.get_column_reader(i).map_err(corrupt)?);
    let nullable = rg.metadata().column(i).column_descr().max_def_level() > 0;
    let name = COLUMNS[i].0;
    let short = || corrupt(format!("column `{name}` ends before the row group does"));
    let (mut values, mut levels) = (Vec::new(), Vec::new());
    for &(keep, mut rows) in runs {
        if !keep {
            if r.skip_records(rows).map_err(corrupt)? != rows {
                return Err(short());
            }
            continue;
        }
        while rows > 0 {
            let want = rows.min(CHUNK_ROWS);
            if !nullable {
                let (got, _, _) = r.read_records(want, None, None, out).map_err(corrupt)?;
                if got == 0 {
                    return Err(short());
                }
                rows -= got;
                continue;
            }
            values.clear();
            levels.clear();
            let (got, n_values, _) = r
                .read_records(want, Some(&mut levels), None, &mut values)
                .map_err(corrupt)?;
            if got == 0 || n_values != values.len() || levels.len() != got {
                return Err(short());
            }
            let mut next = values.iter();
            for &l in &levels {
                out.push(if l > 0 {
                    *next.next().ok_or_else(short)?
                } else {
                    null
                });
            }
            rows -= got;
        }
    }
    Ok(())
}

/// Reads the `coin` column of a row group: interns each row's coin into `dict` (appending to
/// `coin_index`) for the rows `wanted` keeps, and returns the runs of kept rows.
fn read_coins(
    rg: &dyn RowGroupReader,
    rows: usize,
    wanted: Option<&std::collections::HashSet<&str>>,
    batch: &mut Batch,
    dict: &mut CoinDict,
) -> Result<Runs> {
    let mut r: ColumnReaderImpl<ByteArrayType> =
        get_typed_column_reader(rg.get_column_reader(0).map_err(corrupt)?);
    let mut runs: Runs = Vec::new();
    let mut values: Vec<ByteArray> = Vec::new();
    // Rows of one coin come together in a segment: the previous row's answer is usually it.
    let mut last: Option<(ByteArray, Option<u32>)> = None;
    let mut seen: HashMap<Vec<u8>, Option<u32>> = HashMap::new();
    let mut left = rows;
    while left > 0 {
        values.clear();
        let (got, _, _) = r
            .read_records(left.min(CHUNK_ROWS), None, None, &mut values)
            .map_err(corrupt)?;
        if got == 0 || values.len() != got {
            return Err(corrupt("column `coin` ends before the row group does"));
        }
        left -= got;
        for v in values.drain(..) {
            let slot = match &last {
                Some((prev, slot)) if same_id(prev, &v) => *slot,
                _ => {
                    let slot = match seen.get(v.data()) {
                        Some(&slot) => slot,
                        None => {
                            let id = std::str::from_utf8(v.data())
                                .ok()
                                .filter(|id| !id.is_empty())
                                .ok_or_else(|| {
                                    corrupt("column `coin`: an empty or non-UTF-8 coin id")
                                })?;
                            let slot = match wanted {
                                Some(w) if !w.contains(id) => None,
                                _ => Some(dict.intern(&mut batch.coins, id)),
                            };
                            seen.insert(v.data().to_vec(), slot);
                            slot
                        }
                    };
                    last = Some((v, slot));
                    slot
                }
            };
            if let Some(c) = slot {
                batch.coin_index.push(c);
            }
            match runs.last_mut() {
                Some((keep, n)) if *keep == slot.is_some() => *n += 1,
                _ => runs.push((slot.is_some(), 1)),
            }
        }
    }
    Ok(runs)
}

/// Whether two coin ids are equal. A dictionary-encoded column hands out every row of one
/// entry as the same bytes in memory, so the pointers usually answer without comparing (a
/// byte-by-byte `memcmp` in wasm).
fn same_id(a: &ByteArray, b: &ByteArray) -> bool {
    let (a, b) = (a.data(), b.data());
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

impl Codec for Parquet {
    fn describe(&self) -> CodecInfo {
        let flag = |name: &str, what: &str| OptionSpec::new(name, "true | false", "true", what);
        CodecInfo {
            info: PluginInfo {
                name: "parquet".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Apache Parquet, one row group per segment; readable with DuckDB, \
                              pyarrow, polars"
                    .into(),
                options: vec![
                    OptionSpec::new(
                        "compression",
                        "snappy | gzip | brotli | lz4 | zstd | none",
                        COMPRESSIONS[DEFAULT_COMPRESSION],
                        "page compression (lz4 is LZ4_RAW). zstd is accepted but answers \
                         `unsupported`: it needs C code that does not build for wasm32-wasip2 \
                         here",
                    ),
                    OptionSpec::new(
                        "level",
                        "integer: gzip 0..=9, brotli 0..=11",
                        "gzip 6, brotli 1",
                        "compression level, for gzip and brotli only",
                    ),
                    flag("dictionary", "dictionary-encode the coin ids"),
                    flag("delta_ts", "DELTA_BINARY_PACKED timestamps"),
                    flag(
                        "byte_stream_split",
                        "BYTE_STREAM_SPLIT for the float columns",
                    ),
                ],
            },
            extension: "parquet".into(),
            media_type: "application/vnd.apache.parquet".into(),
            lossless: true,
            sorts_rows: false,
            filter_pushdown: true,
            extra_columns: false,
        }
    }

    fn encode(&self, batch: &Batch, opts: &Options) -> Result<Vec<u8>> {
        let compression = compression(opts)?;
        let dictionary = opts.flag("dictionary", true)?;
        let delta_ts = opts.flag("delta_ts", true)?;
        let split = opts.flag("byte_stream_split", true)?;

        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("coin"), dictionary)
            // A segment is one row group of every coin in its time range, so the coin column's
            // min and max would span nearly all ids and prune nothing; computing them compared
            // every row's id twice, a sixth of the wasm encode.
            .set_column_statistics_enabled(ColumnPath::from("coin"), EnabledStatistics::None)
            .set_created_by(concat!("strata-codec-parquet ", env!("CARGO_PKG_VERSION")).into());
        if delta_ts {
            props =
                props.set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED);
        }
        if split {
            for c in FLOAT_COLUMNS {
                props = props.set_column_encoding(ColumnPath::from(c), Encoding::BYTE_STREAM_SPLIT);
            }
        }
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(internal)?);
        let mut out = Vec::with_capacity(batch.len() * 24 + 4096);
        let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(props.build()))
            .map_err(internal)?;
        // One row group holding the whole batch.
        let mut rg = writer.next_row_group().map_err(internal)?;
        let ids: Vec<ByteArray> = batch
            .coins
            .iter()
            .map(|c| ByteArray::from(Bytes::copy_from_slice(c.as_bytes())))
            .collect();
        write_column::<ByteArrayType, u32>(&mut rg, &batch.coin_index, false, |&c| {
            Some(ids[c as usize].clone())
        })?;
        write_column::<Int64Type, i64>(&mut rg, &batch.ts, false, |&t| Some(t))?;
        for values in [
            &batch.price,
            &batch.market_cap,
            &batch.volume,
            &batch.supply,
        ] {
            // Unknown (the canonical NaN) is a null; any other NaN is a value.
            write_column::<DoubleType, f64>(&mut rg, values, true, |&v| {
                (v.to_bits() != f64::NAN.to_bits()).then_some(v)
            })?;
        }
        write_column::<Int32Type, u32>(&mut rg, &batch.rank, true, |&r| {
            (r != 0).then_some(r as i32)
        })?;
        rg.close().map_err(internal)?;
        writer.close().map_err(internal)?;
        add_checksum(out)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        let file = verify_checksum(bytes)?;
        let reader = SerializedFileReader::new(file).map_err(corrupt)?;
        let meta = reader.metadata();
        check_schema(meta.file_metadata().schema_descr())?;
        let rows = meta.file_metadata().num_rows();
        let wanted: Option<std::collections::HashSet<&str>> =
            coins.map(|c| c.iter().map(String::as_str).collect());

        let mut batch = Batch::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 20));
        let mut dict = CoinDict::default();
        for g in 0..reader.num_row_groups() {
            let rg = reader.get_row_group(g).map_err(corrupt)?;
            let n = usize::try_from(rg.metadata().num_rows())
                .map_err(|_| corrupt(format!("row group {g} has a negative row count")))?;
            let runs = read_coins(rg.as_ref(), n, wanted.as_ref(), &mut batch, &mut dict)?;
            if runs.iter().all(|&(keep, _)| !keep) {
                continue;
            }
            let rg = rg.as_ref();
            read_column::<Int64Type>(rg, 1, &runs, 0, &mut batch.ts)?;
            let dest = [
                &mut batch.price,
                &mut batch.market_cap,
                &mut batch.volume,
                &mut batch.supply,
            ];
            for (i, dest) in dest.into_iter().enumerate() {
                read_column::<DoubleType>(rg, 2 + i, &runs, f64::NAN, dest)?;
            }
            // INTEGER(32, unsigned) is stored as INT32: the same bits.
            let mut rank: Vec<i32> = Vec::new();
            read_column::<Int32Type>(rg, 6, &runs, 0, &mut rank)?;
            batch.rank.extend(rank.iter().map(|&r| r as u32));
        }
        if coins.is_none() && i64::try_from(batch.len()) != Ok(rows) {
            return Err(corrupt(format!(
                "footer says {rows} rows, the row groups held {}",
                batch.len()
            )));
        }
        Ok(batch)
    }
}

/// Where the footer of a Parquet file starts, from its trailer.
fn footer_start(file: &[u8], min_start: usize) -> Result<usize> {
    let n = file.len();
    if n < min_start + TRAILER_LEN || &file[n - 4..] != b"PAR1" {
        return Err(corrupt("not a Parquet file (no PAR1 trailer)"));
    }
    let footer = u32::from_le_bytes(file[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    (n - TRAILER_LEN)
        .checked_sub(footer)
        .filter(|&start| start >= min_start)
        .ok_or_else(|| {
            corrupt(format!(
                "footer length {footer} does not fit a {n}-byte file"
            ))
        })
}

/// Inserts the integrity block (see the crate docs) before the footer of a Parquet file.
fn add_checksum(mut file: Vec<u8>) -> Result<Vec<u8>> {
    let at = footer_start(&file, 4).map_err(|e| Error::Internal(e.to_string()))?;
    let crc = crc32fast::hash(&file);
    let mut block = CHECK_TAG.to_vec();
    block.extend_from_slice(&crc.to_le_bytes());
    file.splice(at..at, block);
    Ok(file)
}

/// Checks the integrity block and returns the Parquet file without it.
fn verify_checksum(bytes: &[u8]) -> Result<Bytes> {
    // The smallest file: `PAR1`, the block, a footer, the trailer.
    let at = footer_start(bytes, 4 + CHECK_LEN)? - CHECK_LEN;
    let (head, rest) = bytes.split_at(at);
    let (block, tail) = rest.split_at(CHECK_LEN);
    if &block[..CHECK_TAG.len()] != CHECK_TAG {
        return Err(corrupt(
            "no strata integrity block before the footer: damaged, or not written by this codec",
        ));
    }
    let stored = u32::from_le_bytes(block[CHECK_TAG.len()..].try_into().expect("4 bytes"));
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    crc.update(tail);
    let actual = crc.finalize();
    if actual != stored {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the segment is damaged"
        )));
    }
    let mut file = Vec::with_capacity(bytes.len() - CHECK_LEN);
    file.extend_from_slice(head);
    file.extend_from_slice(tail);
    Ok(Bytes::from(file))
}

strata_plugin_sdk::export_codec!(Parquet);

#[cfg(test)]
mod tests;
