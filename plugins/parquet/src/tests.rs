//! Tests of the `parquet` codec: bit-exact round trips under every option, the file layout
//! standard readers see, and damaged input.

use parquet::basic::{ConvertedType, Encoding, LogicalType, TimeUnit as PqTimeUnit, Type};
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;
use strata_plugin_sdk::{decode_checked, encode_checked, testing};

use super::*;

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An hourly series with unknowns: 30 coins × 200 hours.
fn series() -> Batch {
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    for c in 0..30u32 {
        let coin = format!("coin-{c}");
        for h in 0..200i64 {
            let p = 1.0 + (c as f64) * 0.173 + (h as f64).sin();
            let row = strata_plugin_sdk::Row {
                coin: &coin,
                ts: 1_700_000_000_000 + h * 3_600_000,
                price: p,
                market_cap: if h % 7 == 0 { f64::NAN } else { p * 1e9 },
                volume: p * 3.3e6,
                supply: 1e9,
                rank: if h % 5 == 0 { 0 } else { c + 1 },
            };
            b.push_row(&row, &mut d);
        }
    }
    b
}

#[test]
fn edge_cases_round_trip_under_every_option() {
    let mut cases = testing::edge_cases();
    cases.push(("series", series()));
    for compression in ["snappy", "gzip", "brotli", "lz4", "none"] {
        for flags in ["true", "false"] {
            let o = [
                ("compression", compression),
                ("dictionary", flags),
                ("delta_ts", flags),
                ("byte_stream_split", flags),
            ];
            for (_, batch) in &cases {
                testing::assert_round_trip(&Parquet, batch, &o);
            }
        }
    }
    for (compression, level) in [
        ("gzip", "1"),
        ("gzip", "9"),
        ("brotli", "0"),
        ("brotli", "9"),
    ] {
        testing::assert_round_trip(
            &Parquet,
            &series(),
            &[("compression", compression), ("level", level)],
        );
    }
}

#[test]
fn options_are_checked() {
    let b = series();
    let err = |o: &[(&str, &str)]| encode_checked(&Parquet, &b, &opts(o)).unwrap_err();
    assert!(
        matches!(err(&[("compression", "zstd")]), Error::Unsupported(m) if m.contains("C code"))
    );
    assert!(matches!(
        err(&[("compression", "lzo")]),
        Error::InvalidOptions(_)
    ));
    assert!(matches!(err(&[("level", "3")]), Error::InvalidOptions(m) if m.contains("snappy")));
    assert!(matches!(
        err(&[("compression", "gzip"), ("level", "10")]),
        Error::InvalidOptions(_)
    ));
    assert!(matches!(
        err(&[("dictionary", "yes")]),
        Error::InvalidOptions(_)
    ));
}

/// What a standard reader sees: one row group, the documented types, encodings and nulls.
#[test]
fn file_layout_is_standard_parquet() {
    let b = series();
    let bytes = encode_checked(&Parquet, &b, &[]).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    let file = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
    let meta = file.metadata();
    assert_eq!(meta.file_metadata().num_rows(), b.len() as i64);
    assert_eq!(meta.num_row_groups(), 1, "one row group per segment");
    let schema = meta.file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "coin",
            "ts",
            "price",
            "market_cap",
            "volume",
            "supply",
            "rank"
        ]
    );
    let col = |i: usize| schema.column(i);
    assert_eq!(col(0).physical_type(), Type::BYTE_ARRAY);
    assert_eq!(col(0).logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(col(1).physical_type(), Type::INT64);
    assert_eq!(
        col(1).logical_type_ref(),
        Some(&LogicalType::timestamp(true, PqTimeUnit::MILLIS))
    );
    for i in 2..6 {
        assert_eq!(col(i).physical_type(), Type::DOUBLE);
    }
    assert_eq!(col(6).physical_type(), Type::INT32);
    assert_eq!(col(6).converted_type(), ConvertedType::UINT_32);

    let rg = meta.row_group(0);
    let encodings = |i: usize| rg.column(i).encodings().collect::<Vec<_>>();
    assert!(
        encodings(0).contains(&Encoding::RLE_DICTIONARY),
        "{:?}",
        encodings(0)
    );
    assert!(
        encodings(1).contains(&Encoding::DELTA_BINARY_PACKED),
        "{:?}",
        encodings(1)
    );
    for i in 2..6 {
        assert!(
            encodings(i).contains(&Encoding::BYTE_STREAM_SPLIT),
            "{:?}",
            encodings(i)
        );
    }
    assert_eq!(rg.column(2).compression(), Compression::SNAPPY);
    // No min/max for the coin column: over one row group of every coin they prune nothing.
    assert!(rg.column(0).statistics().is_none());
    // Unknowns are nulls: market_cap every 7th hour, rank every 5th.
    let nulls = |i: usize| rg.column(i).statistics().unwrap().null_count_opt().unwrap();
    assert_eq!(
        nulls(3),
        (0..200).filter(|h| h % 7 == 0).count() as u64 * 30
    );
    assert_eq!(
        nulls(6),
        (0..200).filter(|h| h % 5 == 0).count() as u64 * 30
    );
    assert_eq!(nulls(2), 0);

    let plain = opts(&[
        ("dictionary", "false"),
        ("delta_ts", "false"),
        ("byte_stream_split", "false"),
    ]);
    let bytes = encode_checked(&Parquet, &b, &plain).unwrap();
    let file = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
    let rg = file.metadata().row_group(0);
    for i in 0..6 {
        let e: Vec<_> = rg.column(i).encodings().collect();
        assert!(e.contains(&Encoding::PLAIN), "column {i}: {e:?}");
        assert!(!e.contains(&Encoding::RLE_DICTIONARY), "column {i}: {e:?}");
    }
}

/// Segments written before this codec dropped arrow (by parquet's `ArrowWriter`, with its
/// `ARROW:schema` metadata) still decode bit for bit: stores hold them. The fixtures are
/// `testing::edge_cases()` encoded by that version with default options.
#[test]
fn segments_written_through_arrow_still_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut checked = 0;
    for (name, batch) in testing::edge_cases() {
        let path = dir.join(format!("arrow-writer-{}.parquet", name.replace(' ', "-")));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let back = decode_checked(&Parquet, &bytes, None).unwrap();
        assert!(back.bit_eq(&batch), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 4, "one fixture per small edge case");
}

#[test]
fn coin_filter_is_pushed_down() {
    let b = series();
    let bytes = encode_checked(&Parquet, &b, &[]).unwrap();
    let wanted = [
        "coin-3".to_string(),
        "coin-17".to_string(),
        "absent".to_string(),
    ];
    let got = decode_checked(&Parquet, &bytes, Some(&wanted)).unwrap();
    assert_eq!(got.len(), 400);
    assert!(got.bit_eq(&b.filter_coins(&wanted)));
    let none = decode_checked(&Parquet, &bytes, Some(&["absent".to_string()])).unwrap();
    assert!(none.is_empty());
}

#[test]
fn damaged_input_is_an_error_or_a_subset() {
    let mut cases = testing::edge_cases();
    cases.push(("series", series()));
    for (_, batch) in &cases {
        testing::assert_rejects_damage(&Parquet, batch, &[]);
        testing::assert_rejects_damage(
            &Parquet,
            batch,
            &[("compression", "none"), ("dictionary", "false")],
        );
    }
}

/// Every single-bit flip of a small file is caught by the integrity block, before the Parquet
/// reader (which panics on some damaged files; a panic in wasm is a trap) sees it.
#[test]
fn every_bit_flip_of_a_small_file_is_corrupt_input() {
    let (_, b) = testing::edge_cases().swap_remove(1);
    for o in [opts(&[]), opts(&[("compression", "none")])] {
        let bytes = encode_checked(&Parquet, &b, &o).unwrap();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                match decode_checked(&Parquet, &damaged, None) {
                    Err(Error::CorruptInput(_)) => {}
                    other => panic!("{o:?} byte {at} bit {bit}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn integrity_block_sits_before_the_footer() {
    let bytes = encode_checked(&Parquet, &series(), &[]).unwrap();
    let at = footer_start(&bytes, 4).unwrap() - CHECK_LEN;
    assert_eq!(&bytes[at..at + CHECK_TAG.len()], CHECK_TAG);
    // A Parquet file without the block is refused, with a message that says why.
    let mut plain = bytes.clone();
    plain.drain(at..at + CHECK_LEN);
    let err = decode_checked(&Parquet, &plain, None).unwrap_err();
    assert!(err.to_string().contains("integrity block"), "{err}");
    // ... while the Parquet reader itself reads both.
    for file in [bytes, plain] {
        let reader = SerializedFileReader::new(Bytes::from(file)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 6000);
    }
}

/// Reads a segment with pyarrow, the reference reader, and with DuckDB and polars when they are
/// installed. Ignored by default: it needs `python3` with `pyarrow` (`pip install pyarrow`).
#[test]
#[ignore]
fn pyarrow_reads_the_segment() {
    let b = series();
    let dir = std::env::temp_dir().join(format!("strata-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for compression in ["snappy", "gzip", "brotli", "lz4", "none"] {
        let path = dir.join(format!("{compression}.parquet"));
        let bytes = encode_checked(&Parquet, &b, &opts(&[("compression", compression)])).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let script = r#"
import sys, math, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.num_rows == 6000, t.num_rows
assert str(t.schema.field("ts").type) == "timestamp[ms, tz=UTC]", t.schema
assert str(t.schema.field("rank").type) == "uint32", t.schema
coins = t.column("coin").to_pylist()
assert coins[0] == "coin-0" and coins[-1] == "coin-29"
assert t.column("market_cap").null_count == 29 * 30, t.column("market_cap").null_count
price = t.column("price").to_pylist()
assert abs(price[1] - (1.0 + math.sin(1.0))) == 0.0, price[1]
# DuckDB and polars too, when installed (`pip install duckdb polars`).
try:
    import duckdb
    [(n, nulls, avg)] = duckdb.sql(
        f"select count(*), count(*) - count(market_cap), avg(price) from '{sys.argv[1]}'"
    ).fetchall()
    assert (n, nulls) == (6000, 29 * 30) and not math.isnan(avg), (n, nulls, avg)
except ImportError:
    pass
try:
    import polars
    df = polars.read_parquet(sys.argv[1])
    assert df.height == 6000 and df["rank"].null_count() == 40 * 30, df
except ImportError:
    pass
print("ok", t.num_rows)
"#;
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{compression}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn round_trips_any_batch(
        batch in testing::arb_batch(200),
        compression in proptest::sample::select(vec!["snappy", "gzip", "brotli", "lz4", "none"]),
        flags in any::<(bool, bool, bool)>(),
    ) {
        let (d, t, s) = (flags.0.to_string(), flags.1.to_string(), flags.2.to_string());
        testing::assert_round_trip(
            &Parquet,
            &batch,
            &[("compression", compression), ("dictionary", &d), ("delta_ts", &t), ("byte_stream_split", &s)],
        );
    }
}

/// A file with a valid integrity block but other columns (here `ts` as DOUBLE, or a column
/// missing) is `corrupt-input` naming the column, not a panic of the typed column readers.
#[test]
fn a_file_with_other_columns_is_refused_by_name() {
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let write = |schema: &str| {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let mut out = Vec::new();
        let mut w =
            SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::default()))
                .unwrap();
        let mut rg = w.next_row_group().unwrap();
        while let Some(mut col) = rg.next_column().unwrap() {
            match col.untyped() {
                parquet::column::writer::ColumnWriter::DoubleColumnWriter(c) => {
                    c.write_batch(&[1.0], Some(&[1]), None).unwrap();
                }
                parquet::column::writer::ColumnWriter::ByteArrayColumnWriter(c) => {
                    c.write_batch(&["btc".into()], Some(&[1]), None).unwrap();
                }
                _ => panic!("the test writes only DOUBLE and BYTE_ARRAY columns"),
            }
            col.close().unwrap();
        }
        rg.close().unwrap();
        w.close().unwrap();
        add_checksum(out).unwrap()
    };
    let ts_as_double = SCHEMA.replace(
        "required int64 ts (TIMESTAMP(MILLIS, true));",
        "required double ts;",
    );
    let ts_as_double = ts_as_double.replace("optional int32 rank (INTEGER(32, false));", "");
    let err = decode_checked(&Parquet, &write(&ts_as_double), None).unwrap_err();
    assert!(
        matches!(&err, Error::CorruptInput(m) if m.contains("6 columns, expected 7")),
        "{err}"
    );
    let with_rank_as_double = ts_as_double.replace("}", "optional double rank;\n}");
    let err = decode_checked(&Parquet, &write(&with_rank_as_double), None).unwrap_err();
    assert!(
        matches!(&err, Error::CorruptInput(m) if m.contains("column 1 is `ts`")),
        "{err}"
    );
}
