//! `parquet`: each segment is one Apache Parquet file with a single row group, readable by
//! DuckDB, pyarrow, polars, Spark and every other Parquet reader.
//!
//! Columns (Parquet physical type / logical type):
//!
//! | column | type | encoding |
//! |--------|------|----------|
//! | `coin` | BYTE_ARRAY / STRING, required | dictionary when `dictionary=true` |
//! | `ts` | INT64 / TIMESTAMP(MILLIS, UTC), required | DELTA_BINARY_PACKED when `delta_ts=true` |
//! | `price`, `market_cap`, `volume`, `supply` | DOUBLE, optional | BYTE_STREAM_SPLIT when `byte_stream_split=true` |
//! | `rank` | INT32 / INTEGER(32, unsigned), optional | plain / RLE |
//!
//! "Unknown" is written the way Parquet readers expect, as null: a canonical NaN float and a 0
//! rank become nulls, and nulls decode back to canonical NaN and 0, so the round trip is bit
//! exact while `avg(price)` in DuckDB skips unknowns instead of returning NaN. (A NaN with any
//! other bit pattern is kept as a value.) Rows keep their input order.
//!
//! Decoding goes through the arrow reader with the expected schema; with a coin filter, a row
//! filter on `coin` runs first and the other columns are decoded only for matching rows.
//!
//! **Integrity.** The Parquet reader panics on some damaged files (division by zero, bounds
//! checks), and inside wasm a panic is a trap. So each segment carries a CRC-32 of the whole
//! file in a 12-byte block (`strata\0\x01` + CRC, little-endian) placed right before the
//! footer. Parquet readers locate the footer from the end of the file and column chunks by
//! absolute offsets, so they never look at those bytes; this decoder checks the CRC first, so
//! damaged segments (any single-bit flip, any truncation) are `corrupt-input` before the Parquet
//! reader sees them. A file without the block (not written by this codec) is refused.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType, UInt32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, RecordBatch,
    StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowFilter,
};
use parquet::basic::{BrotliLevel, Compression, Encoding, GzipLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use strata_plugin_sdk::{
    Batch, Codec, CodecInfo, CoinDict, Error, OptionSpec, Options, PluginInfo, Result,
};

const FLOAT_COLUMNS: [&str; 4] = ["price", "market_cap", "volume", "supply"];
const COMPRESSIONS: [&str; 6] = ["snappy", "gzip", "brotli", "lz4", "zstd", "none"];
/// The default `compression` (index into [`COMPRESSIONS`]); see the option's description.
const DEFAULT_COMPRESSION: usize = 0;
/// Rows per arrow record batch while decoding.
const READ_BATCH_ROWS: usize = 64 * 1024;
/// The integrity block before the footer: this tag, then the CRC-32 (LE) of the file without
/// the block.
const CHECK_TAG: &[u8; 8] = b"strata\0\x01";
const CHECK_LEN: usize = CHECK_TAG.len() + 4;
/// The Parquet trailer: footer length (u32 LE) and the magic `PAR1`.
const TRAILER_LEN: usize = 8;

#[derive(Default)]
pub struct Parquet;

/// The arrow schema of a segment, as written and as read.
fn schema() -> SchemaRef {
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![Field::new("coin", dict, false), Field::new("ts", ts, false)];
    fields.extend(FLOAT_COLUMNS.map(|c| Field::new(c, DataType::Float64, true)));
    fields.push(Field::new("rank", DataType::UInt32, true));
    Arc::new(Schema::new(fields))
}

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

/// Nulls where `unknown` holds, or none when nothing is unknown.
fn nulls<T>(values: &[T], unknown: impl Fn(&T) -> bool) -> Option<NullBuffer> {
    values
        .iter()
        .any(&unknown)
        .then(|| NullBuffer::from_iter(values.iter().map(|v| !unknown(v))))
}

fn float_column(values: &[f64]) -> ArrayRef {
    let canonical_nan = f64::NAN.to_bits();
    let nulls = nulls(values, |v| v.to_bits() == canonical_nan);
    Arc::new(Float64Array::new(
        ScalarBuffer::from(values.to_vec()),
        nulls,
    ))
}

/// A float column back to values, nulls as canonical NaN.
fn floats(col: &ArrayRef, name: &str) -> Result<Vec<f64>> {
    let a = col
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| corrupt(format!("column `{name}` is not DOUBLE")))?;
    Ok(match a.nulls() {
        None => a.values().to_vec(),
        Some(n) => a
            .values()
            .iter()
            .zip(n.iter())
            .map(|(&v, valid)| if valid { v } else { f64::NAN })
            .collect(),
    })
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

        let keys: Vec<i32> = batch
            .coin_index
            .iter()
            .map(|&c| i32::try_from(c))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::Unsupported("more than 2^31 coins".into()))?;
        let coin = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from_iter_values(&batch.coins)),
        )
        .map_err(internal)?;
        let ts = TimestampMillisecondArray::new(ScalarBuffer::from(batch.ts.clone()), None)
            .with_timezone("UTC");
        let rank = UInt32Array::new(
            ScalarBuffer::from(batch.rank.clone()),
            nulls(&batch.rank, |&r| r == 0),
        );
        let mut columns: Vec<ArrayRef> = vec![Arc::new(coin), Arc::new(ts)];
        for values in [
            &batch.price,
            &batch.market_cap,
            &batch.volume,
            &batch.supply,
        ] {
            columns.push(float_column(values));
        }
        columns.push(Arc::new(rank));
        let record = RecordBatch::try_new(schema(), columns).map_err(internal)?;

        let mut props = WriterProperties::builder()
            .set_compression(compression)
            // One row group holding the whole batch.
            .set_max_row_group_row_count(Some(batch.len().max(1)))
            .set_max_row_group_bytes(None)
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("coin"), dictionary)
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
        let mut out = Vec::with_capacity(batch.len() * 24 + 4096);
        let mut writer =
            ArrowWriter::try_new(&mut out, schema(), Some(props.build())).map_err(internal)?;
        writer.write(&record).map_err(internal)?;
        writer.close().map_err(internal)?;
        add_checksum(out)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        let file = verify_checksum(bytes)?;
        let options = ArrowReaderOptions::new().with_schema(schema());
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .map_err(corrupt)?;
        let rows = builder.metadata().file_metadata().num_rows();
        let mut builder = builder.with_batch_size(READ_BATCH_ROWS);
        if let Some(wanted) = coins {
            let wanted: std::collections::HashSet<String> = wanted.iter().cloned().collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), [0]);
            let predicate = ArrowPredicateFn::new(mask, move |rb: RecordBatch| {
                coin_mask(rb.column(0), &wanted)
            });
            builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
        }
        let reader = builder.build().map_err(corrupt)?;

        let mut batch = Batch::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 20));
        let mut dict = CoinDict::default();
        for record in reader {
            append(&mut batch, &mut dict, &record.map_err(corrupt)?)?;
        }
        if coins.is_none() && i64::try_from(batch.len()) != Ok(rows) {
            return Err(corrupt(format!(
                "footer says {rows} rows, the row group held {}",
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

/// Which rows of a `coin` column are in `wanted`: one lookup per dictionary value.
fn coin_mask(
    col: &ArrayRef,
    wanted: &std::collections::HashSet<String>,
) -> std::result::Result<BooleanArray, ArrowError> {
    let dict = col
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| ArrowError::SchemaError("coin is not a dictionary column".into()))?;
    let values = dict.values().as_string::<i32>();
    let hit: Vec<bool> = values
        .iter()
        .map(|v| v.is_some_and(|v| wanted.contains(v)))
        .collect();
    Ok(dict
        .keys()
        .iter()
        .map(|k| {
            Some(
                k.and_then(|k| hit.get(k as usize).copied())
                    .unwrap_or(false),
            )
        })
        .collect())
}

/// Appends one decoded record batch to `batch`, mapping its coin dictionary into `dict`.
fn append(batch: &mut Batch, dict: &mut CoinDict, rb: &RecordBatch) -> Result<()> {
    let col = |i: usize| rb.column(i);
    if let Some(i) = (0..2).find(|&i| col(i).null_count() > 0) {
        return Err(corrupt(format!(
            "required column `{}` has nulls",
            ["coin", "ts"][i]
        )));
    }
    let coin = col(0)
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| corrupt("column `coin` is not a string column"))?;
    let values = coin
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| corrupt("column `coin` is not a string column"))?;
    let mut map = Vec::with_capacity(values.len());
    for v in values.iter() {
        match v {
            Some(id) if !id.is_empty() => map.push(dict.intern(&mut batch.coins, id)),
            _ => map.push(u32::MAX), // a dictionary slot no row may use
        }
    }
    for &k in coin.keys().values() {
        match map.get(k as usize) {
            Some(&c) if c != u32::MAX => batch.coin_index.push(c),
            _ => return Err(corrupt(format!("column `coin`: bad dictionary key {k}"))),
        }
    }
    let ts = col(1)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| corrupt("column `ts` is not a millisecond timestamp"))?;
    batch.ts.extend_from_slice(ts.values());
    for (i, name) in FLOAT_COLUMNS.iter().enumerate() {
        let v = floats(col(2 + i), name)?;
        match i {
            0 => batch.price.extend(v),
            1 => batch.market_cap.extend(v),
            2 => batch.volume.extend(v),
            _ => batch.supply.extend(v),
        }
    }
    let rank = col(6)
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| corrupt("column `rank` is not UINT32"))?;
    match rank.nulls() {
        None => batch.rank.extend_from_slice(rank.values()),
        Some(n) => batch.rank.extend(
            rank.values()
                .iter()
                .zip(n.iter())
                .map(|(&r, valid)| if valid { r } else { 0 }),
        ),
    }
    Ok(())
}

strata_plugin_sdk::export_codec!(Parquet);

#[cfg(test)]
mod tests;
