//! Shared code of strata's fuzz targets (see `docs/fuzzing.md`): the built-in codecs' native
//! twins, the checks run on whatever a decoder returns, arbitrary batches built from fuzz
//! input for the round-trip and SDK targets, and (feature `host`) the driver of the source
//! readers.

use std::collections::HashSet;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use strata_plugin_sdk::{Batch, Codec, Column, FIXED_COLUMNS, decode_checked};

/// Every built-in codec by its plugin name, natively (each crate's `native_codec`).
pub const CODECS: [(&str, fn() -> Box<dyn Codec>); 7] = [
    ("jsonl", strata_codec_jsonl::native_codec),
    ("jsonl-gzip", strata_codec_jsonl_gzip::native_codec),
    ("jsonl-brotli", strata_codec_jsonl_brotli::native_codec),
    ("columnar", strata_codec_columnar::native_codec),
    ("msgpack-gzip", strata_codec_msgpack_gzip::native_codec),
    ("parquet", strata_codec_parquet::native_codec),
    ("protobuf", strata_codec_protobuf::native_codec),
];

/// The codec called `name`.
pub fn codec(name: &str) -> Box<dyn Codec> {
    let (_, make) = CODECS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no built-in codec `{name}`"));
    make()
}

/// The decode target of one codec: any bytes must decode to a valid batch or fail with an
/// error (a panic, a hang or an unbounded allocation is a finding). When the bytes decode, the
/// batch must be safe to use, and decoding again with a coin filter must give the same rows of
/// the wanted coins (the filter may only leave rows out).
pub fn fuzz_decode(codec: &dyn Codec, data: &[u8]) {
    let Ok(batch) = decode_checked(codec, data, None) else {
        return;
    };
    use_batch(&batch);
    let mut wanted: Vec<String> = batch.coins.iter().step_by(2).cloned().collect();
    wanted.push("no-such-coin".into());
    match decode_checked(codec, data, Some(&wanted)) {
        Ok(filtered) => {
            use_batch(&filtered);
            let (a, b) = (batch.filter_coins(&wanted), filtered.filter_coins(&wanted));
            let sort = codec.describe().sorts_rows;
            if row_keys_pair(&a, &b, sort).is_err() {
                panic!(
                    "decode with a coin filter differs from decode then filter: {:?}",
                    a.first_difference(&b)
                );
            }
        }
        Err(e) => panic!("decodes without a coin filter but not with one: {e}"),
    }
}

/// Uses a batch that passed [`Batch::validate`] every way the host does: every row, sorting,
/// `take`, coin filters, merging. None of it may panic.
pub fn use_batch(b: &Batch) {
    assert_eq!(b.rows().count(), b.len());
    let sorted = b.sorted();
    assert!(sorted.is_sorted_by_coin_ts(), "sorted() is not sorted");
    sorted
        .validate()
        .expect("sorted() of a valid batch is valid");
    assert_eq!(sorted.len(), b.len());
    let _ = b.is_sorted_by_coin_ts();
    let reversed: Vec<u32> = (0..b.len() as u32).rev().collect();
    let taken = b.take(&reversed);
    taken.validate().expect("take() of a valid batch is valid");
    if let Some(c) = b.coins.first() {
        let _ = b.filter_coins(std::slice::from_ref(c));
    }
    let mut merged = b.clone();
    merged.extend_from(b);
    assert_eq!(merged.len(), 2 * b.len());
    assert!(b.bit_eq(b), "a batch differs from itself");
}

/// Compares the rows of two batches bit for bit, in order or (`sort`) as multisets. An extra
/// column one batch lacks counts as all NaN (unknown) there: a row format such as JSONL cannot
/// tell an absent column from one that is unknown in every row it kept. `Err` holds both
/// sides' keys.
pub fn row_keys_pair(
    a: &Batch,
    b: &Batch,
    sort: bool,
) -> std::result::Result<(), (Vec<RowKey>, Vec<RowKey>)> {
    let (mut a, mut b) = (a.clone(), b.clone());
    for name in a.extra.iter().map(|c| c.name.clone()).collect::<Vec<_>>() {
        b.add_extra(&name);
    }
    for name in b.extra.iter().map(|c| c.name.clone()).collect::<Vec<_>>() {
        a.add_extra(&name);
    }
    let (ka, kb) = (row_keys(&a, sort), row_keys(&b, sort));
    if ka == kb { Ok(()) } else { Err((ka, kb)) }
}

/// A row as comparable bits: coin, ts, the four floats' bits, rank, then each extra column's
/// (name, bits) in name order.
pub type RowKey = (String, i64, [u64; 4], u32, Vec<(String, u64)>);

/// The rows of `b` as bit patterns, in batch order or (`sort`) in a canonical order, for
/// comparisons where a codec may reorder rows (ties in (coin, ts) included).
pub fn row_keys(b: &Batch, sort: bool) -> Vec<RowKey> {
    let mut extra: Vec<&Column> = b.extra.iter().collect();
    extra.sort_by(|x, y| x.name.cmp(&y.name));
    let mut keys: Vec<RowKey> = b
        .rows()
        .enumerate()
        .map(|(i, r)| {
            (
                r.coin.to_string(),
                r.ts,
                [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits),
                r.rank,
                extra
                    .iter()
                    .map(|c| (c.name.clone(), c.values[i].to_bits()))
                    .collect(),
            )
        })
        .collect();
    if sort {
        keys.sort();
    }
    keys
}

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Floats that break naive encodings: canonical NaN, infinities, signed zeros, subnormals,
/// the extremes.
const AWKWARD: [f64; 13] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -0.0,
    0.0,
    5e-324,
    -5e-324,
    2.225_073_858_507_201e-308,
    f64::MIN_POSITIVE,
    1e-36,
    f64::MAX,
    -f64::MAX,
    0.1 + 0.2,
];

/// One float: any bit pattern (NaN canonicalised, as the WIT contract requires of a batch), an
/// awkward value, a decimal-looking value, or the previous value of the column.
fn arb_f64(u: &mut Unstructured<'_>, prev: f64) -> Result<f64> {
    let v = match u.int_in_range(0u8..=4)? {
        0 => f64::from_bits(u.arbitrary()?),
        1 => *u.choose(&AWKWARD)?,
        2 => f64::from(u.arbitrary::<u32>()?) / 1e4,
        3 => prev,
        _ => prev * (1.0 + f64::from(u.arbitrary::<i8>()?) / 1000.0),
    };
    Ok(if v.is_nan() { f64::NAN } else { v })
}

/// A non-empty string from the input, or `fallback` when the input gives an empty one.
fn arb_name(u: &mut Unstructured<'_>, fallback: String) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(if s.is_empty() { fallback } else { s })
}

/// An arbitrary valid batch: 1 to 40 coins with arbitrary non-empty unique ids (now and then
/// 100 to 3,000 generated ones), rows in any order with arbitrary or grid-like timestamps
/// (duplicates of (coin, ts) included), awkward floats in every column, any rank, and (when
/// `extras`) up to three extra columns with arbitrary names.
pub fn arb_batch(u: &mut Unstructured<'_>, extras: bool) -> Result<Batch> {
    let mut b = Batch::default();
    let many = u.ratio(1u8, 16u8)?;
    let n_coins: usize = if many {
        u.int_in_range(100..=3000)?
    } else {
        u.int_in_range(1..=40)?
    };
    let mut seen = HashSet::new();
    for i in 0..n_coins {
        let mut id = if many {
            format!("coin-{i}")
        } else {
            arb_name(u, format!("c{i}"))?
        };
        while !seen.insert(id.clone()) {
            id.push('#');
        }
        b.coins.push(id);
    }
    if extras && u.ratio(1u8, 4u8)? {
        for k in 0..u.int_in_range(1..=3)? {
            let mut name = arb_name(u, format!("x{k}"))?;
            while FIXED_COLUMNS.contains(&name.as_str()) || b.extra(&name).is_some() {
                name.push('_');
            }
            b.add_extra(&name);
        }
    }
    let max_rows: usize = u.int_in_range(0..=4000)?;
    let (mut ts, mut prev) = (T0, [1.0f64; 4]);
    let mut prev_extra = vec![1.0f64; b.extra.len()];
    while b.len() < max_rows && !u.is_empty() {
        let coin = if many && u.ratio(1u8, 2u8)? {
            (b.len() % n_coins) as u32
        } else {
            u.choose_index(n_coins)? as u32
        };
        ts = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            1 => T0 + i64::from(u.arbitrary::<u16>()?) * HOUR,
            2 => ts,
            _ => ts.wrapping_add(i64::from(u.arbitrary::<i16>()?) * 1000),
        };
        for p in &mut prev {
            *p = arb_f64(u, *p)?;
        }
        let rank = if u.arbitrary()? {
            u.arbitrary()?
        } else {
            u32::from(u.arbitrary::<u8>()?)
        };
        b.push(coin, ts, prev[0], prev[1], prev[2], prev[3], rank);
        for (k, p) in prev_extra.iter_mut().enumerate() {
            *p = arb_f64(u, *p)?;
            *b.extra[k].values.last_mut().expect("push added a value") = *p;
        }
    }
    debug_assert!(b.validate().is_ok());
    Ok(b)
}

#[cfg(feature = "host")]
pub mod source {
    //! The source readers' fuzz driver.

    use std::io::Cursor;

    use strata::source::{Format, ReadOptions, open_reader};

    /// Reads `data` as `format` to the end, in small chunks so chunk boundaries are exercised.
    /// Any error is fine; a panic is not, and every chunk a reader returns must hold a valid
    /// batch whose NaNs are all canonical (what ingest stores as it is).
    pub fn read_all(data: &[u8], format: Format, mut opts: ReadOptions) {
        opts.chunk_rows = 7;
        let Ok(reader) = open_reader(Box::new(Cursor::new(data.to_vec())), "fuzz", format, &opts)
        else {
            return;
        };
        for chunk in reader {
            let Ok(chunk) = chunk else { break };
            let b = &chunk.batch;
            if let Err(e) = b.validate() {
                panic!("{format} reader returned an invalid batch: {e}");
            }
            for col in [&b.price, &b.market_cap, &b.volume, &b.supply] {
                if let Some(v) = col
                    .iter()
                    .find(|v| v.is_nan() && v.to_bits() != f64::NAN.to_bits())
                {
                    panic!(
                        "{format} reader returned a non-canonical NaN {:#x}",
                        v.to_bits()
                    );
                }
            }
            crate::use_batch(b);
        }
    }
}
