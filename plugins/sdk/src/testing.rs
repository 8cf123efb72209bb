//! Test helpers for codec crates (feature `testing`, for `[dev-dependencies]` only): the edge-case
//! batches every lossless codec must carry bit for bit, a proptest strategy for arbitrary
//! batches, and checks for round trips and damaged input. The host's conformance suite runs
//! similar checks on the built component; these let a codec crate find the same bugs with a plain
//! `cargo test`, natively, with a backtrace.

use proptest::prelude::*;

use crate::{Batch, Codec, CoinDict, Error, Row, decode_checked, encode_checked};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Floats that break naive encodings: canonical NaN (unknown), infinities, signed zero,
/// subnormals, tiny and huge magnitudes.
pub const AWKWARD_FLOATS: [f64; 11] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -0.0,
    0.0,
    5e-324,
    2.225_073_858_507_201e-308,
    1e-36,
    f64::MAX,
    -f64::MAX,
    0.1 + 0.2,
];

/// Builds a batch from rows, interning coins in order of first use.
pub fn batch_of<'a>(rows: impl IntoIterator<Item = Row<'a>>) -> Batch {
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    for r in rows {
        b.push_row(&r, &mut d);
    }
    b
}

/// Named edge-case batches: empty, awkward floats in every column, extreme timestamps and
/// ranks, unicode coin ids, 10,000 coins, unsorted rows.
pub fn edge_cases() -> Vec<(&'static str, Batch)> {
    let mut cases = vec![("empty batch", Batch::default())];
    cases.push((
        "awkward floats",
        batch_of(AWKWARD_FLOATS.iter().enumerate().map(|(i, &v)| Row {
            coin: "edge",
            ts: T0 + i as i64 * HOUR,
            price: v,
            market_cap: AWKWARD_FLOATS[(i + 1) % AWKWARD_FLOATS.len()],
            volume: AWKWARD_FLOATS[(i + 2) % AWKWARD_FLOATS.len()],
            supply: AWKWARD_FLOATS[(i + 3) % AWKWARD_FLOATS.len()],
            rank: [0, 1, u32::MAX][i % 3],
        })),
    ));
    cases.push((
        "extreme timestamps",
        batch_of([i64::MIN, -1, 0, 1, i64::MAX].into_iter().map(|ts| Row {
            coin: "t",
            ts,
            price: 1.0,
            market_cap: 2.0,
            volume: 3.0,
            supply: 4.0,
            rank: u32::MAX,
        })),
    ));
    let unicode = [
        "比特币",
        "эфир",
        "🦀-crab",
        "a\"quote",
        "back\\slash",
        "tab\tnew\nline",
        "é",
    ];
    cases.push((
        "unicode coin ids",
        batch_of(unicode.iter().enumerate().map(|(i, &coin)| Row {
            coin,
            ts: T0 + i as i64,
            price: i as f64,
            market_cap: f64::NAN,
            volume: -(i as f64),
            supply: 1e9,
            rank: i as u32,
        })),
    ));
    let ids: Vec<String> = (0..10_000).map(|i| format!("coin-{i}")).collect();
    cases.push((
        "10,000 coins",
        batch_of(ids.iter().enumerate().map(|(i, coin)| Row {
            coin,
            ts: T0 + (i as i64 % 24) * HOUR,
            price: i as f64 * 0.37,
            market_cap: i as f64 * 1.0e7,
            volume: 1.0 / (i as f64 + 1.0),
            supply: 1.0e7,
            rank: i as u32 + 1,
        })),
    ));
    // Rows interleaved across coins and going back in time: a row-order-keeping codec must
    // keep this order.
    cases.push((
        "unsorted rows",
        batch_of((0..200).map(|i| Row {
            coin: ["b", "a", "c"][i % 3],
            ts: T0 - (i as i64 * 7919 % 200) * HOUR,
            price: 1.0 + i as f64 / 3.0,
            market_cap: 1e9 + i as f64,
            volume: 5.5,
            supply: 1e6,
            rank: (i % 3) as u32 + 1,
        })),
    ));
    cases
}

/// A float with any bit pattern, NaN canonicalised (NaN means "unknown" in a batch).
pub fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(|b| canonical(f64::from_bits(b))),
        proptest::sample::select(AWKWARD_FLOATS.to_vec()),
        (0u64..1_000_000_000).prop_map(|n| n as f64 / 1e4),
    ]
}

fn canonical(v: f64) -> f64 {
    if v.is_nan() { f64::NAN } else { v }
}

/// Arbitrary valid batches of up to `max_rows` rows over up to 8 coins with arbitrary unicode
/// ids, in arbitrary row order.
pub fn arb_batch(max_rows: usize) -> impl Strategy<Value = Batch> {
    let coins = proptest::collection::hash_set("\\PC{1,12}", 1..8)
        .prop_map(|s| s.into_iter().collect::<Vec<String>>());
    coins.prop_flat_map(move |coins| {
        let n = coins.len() as u32;
        let row = (
            0..n,
            prop_oneof![any::<i64>(), (0i64..1_000_000).prop_map(|h| T0 + h * HOUR)],
            arb_f64(),
            arb_f64(),
            arb_f64(),
            arb_f64(),
            prop_oneof![any::<u32>(), 0u32..20_000],
        );
        proptest::collection::vec(row, 0..=max_rows).prop_map(move |rows| {
            let mut b = Batch::with_capacity(rows.len());
            b.coins = coins.clone();
            for (c, ts, p, m, v, s, r) in rows {
                b.push(c, ts, p, m, v, s, r);
            }
            b
        })
    })
}

/// Encodes and decodes `batch` through the SDK's checks and compares bit for bit (after sorting
/// both by (coin, ts) when the codec sorts rows). Returns the encoding.
pub fn assert_round_trip(codec: &dyn Codec, batch: &Batch, opts: &[(&str, &str)]) -> Vec<u8> {
    let opts: Vec<(String, String)> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bytes =
        encode_checked(codec, batch, &opts).unwrap_or_else(|e| panic!("encode with {opts:?}: {e}"));
    let back =
        decode_checked(codec, &bytes, None).unwrap_or_else(|e| panic!("decode with {opts:?}: {e}"));
    let (expect, got) = if codec.describe().sorts_rows {
        (batch.sorted(), back.sorted())
    } else {
        (batch.clone(), back)
    };
    if let Some(d) = expect.first_difference(&got) {
        panic!("round trip with {opts:?} differs: {d}");
    }
    bytes
}

/// A row as hashable bits, for "was this row encoded?" checks.
type RowBits = (String, i64, [u64; 4], u32);

fn row_bits(r: Row<'_>) -> RowBits {
    let f = [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits);
    (r.coin.to_string(), r.ts, f, r.rank)
}

/// Checks that damaged encodings of `batch` never panic and never invent data: every truncation
/// of the encoding (all of them for short encodings, a sample otherwise) and single-bit flips
/// either fail with `CorruptInput` or decode to a valid batch; truncations that decode must
/// hold only rows of `batch`. Random bytes must fail with `CorruptInput`.
pub fn assert_rejects_damage(codec: &dyn Codec, batch: &Batch, opts: &[(&str, &str)]) {
    let bytes = assert_round_trip(codec, batch, opts);
    let encoded: std::collections::HashSet<RowBits> = batch.rows().map(row_bits).collect();
    let step = (bytes.len() / 120).max(1);
    for cut in (0..bytes.len()).step_by(step) {
        match decode_checked(codec, &bytes[..cut], None) {
            Err(Error::CorruptInput(_)) => {}
            Err(e) => panic!("truncated to {cut} bytes: expected corrupt-input, got {e}"),
            Ok(got) => {
                if let Some(r) = got.rows().find(|r| !encoded.contains(&row_bits(*r))) {
                    panic!("truncated to {cut} bytes: decoded a row never encoded: {r:?}");
                }
            }
        }
    }
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..200 {
        if bytes.is_empty() {
            break;
        }
        let mut b = bytes.clone();
        let at = (next() % b.len() as u64) as usize;
        b[at] ^= 1 << (next() % 8);
        if let Err(e) = decode_checked(codec, &b, None)
            && !matches!(e, Error::CorruptInput(_))
        {
            panic!("bit flip at byte {at}: expected corrupt-input, got {e}");
        }
    }
    for len in [16usize, 100, 4096, 65_536] {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match decode_checked(codec, &garbage, None) {
            Err(Error::CorruptInput(_)) => {}
            other => panic!("{len} random bytes: expected corrupt-input, got {other:?}"),
        }
    }
}

/// The real data set the speed figures in codec docs refer to: CoinGecko daily history of 1010
/// coins, 1,143,478 rows, as a path under the shared data directory ([`crate::shared_data`]).
/// [`real_data_path`] resolves it.
pub const REAL_DATA: &str = "coingecko-daily-1010coins/coins_daily_2013-04-28_2025-07-14.csv.gz";

/// Where [`REAL_DATA`] is read from: `STRATA_BENCH_DATA` (another CSV of the same layout) when
/// set, else its place in the shared data directory.
pub fn real_data_path() -> std::path::PathBuf {
    match std::env::var_os("STRATA_BENCH_DATA") {
        Some(p) => p.into(),
        None => crate::shared_data::path(REAL_DATA),
    }
}

/// Reads a gzipped `coin_id,timestamp,price,volume,market_cap` CSV (the layout of
/// [`REAL_DATA`]) into a batch; empty cells are unknown (NaN), supply and rank are unknown.
pub fn read_market_csv_gz(path: &str) -> std::io::Result<Batch> {
    let file = std::fs::File::open(path)?;
    read_market_csv_from(path, flate2::read::MultiGzDecoder::new(file))
}

/// Like [`read_market_csv_gz`], for a CSV that is gzip-compressed or not (told by its first
/// bytes): e.g. the real-data extract a scaffolded plugin crate ships in `data/`, read from a
/// test as `read_market_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/coingecko-extract.csv"))`.
pub fn read_market_csv(path: impl AsRef<std::path::Path>) -> std::io::Result<Batch> {
    use std::io::Read;
    let path = path.as_ref();
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let name = path.display().to_string();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_market_csv_from(&name, flate2::read::MultiGzDecoder::new(&bytes[..]))
    } else {
        read_market_csv_from(&name, &bytes[..])
    }
}

fn read_market_csv_from(path: &str, input: impl std::io::Read) -> std::io::Result<Batch> {
    crate::market_csv::read(path, input)
}

/// The body of a codec crate's `examples/measure_*.rs`: encodes and decodes the real data set
/// (or `STRATA_BENCH_DATA`; only its first `STRATA_BENCH_ROWS` rows when set) with the options
/// given as `key=value` arguments, checks the round trip, and prints bytes per row and rates. Run it with `--release`; it is a measurement, not
/// a test.
pub fn measure_main(codec: &dyn Codec) {
    use std::time::Instant;
    let path = real_data_path();
    let mut batch = read_market_csv(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set STRATA_BENCH_DATA to the CoinGecko daily CSV)",
            path.display()
        )
    });
    if let Ok(rows) = std::env::var("STRATA_BENCH_ROWS") {
        let rows: u32 = rows.parse().expect("STRATA_BENCH_ROWS is a row count");
        batch = batch.take(&(0..rows.min(batch.len() as u32)).collect::<Vec<_>>());
    }
    let opts: Vec<(String, String)> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => panic!("arguments are key=value options, not `{a}`"),
        })
        .collect();
    let rows = batch.len() as f64;
    let t = Instant::now();
    let bytes = encode_checked(codec, &batch, &opts).unwrap_or_else(|e| panic!("encode: {e}"));
    let enc = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = decode_checked(codec, &bytes, None).unwrap_or_else(|e| panic!("decode: {e}"));
    let dec = t.elapsed().as_secs_f64();
    let (expect, got) = if codec.describe().sorts_rows {
        (batch.sorted(), back.sorted())
    } else {
        (batch, back)
    };
    if let Some(d) = expect.first_difference(&got) {
        panic!("round trip differs: {d}");
    }
    println!(
        "{} {:?}: {} rows, {:.2} B/row, encode {:.2} M rows/s, decode {:.2} M rows/s",
        codec.describe().info.name,
        opts,
        rows,
        bytes.len() as f64 / rows,
        rows / enc / 1e6,
        rows / dec / 1e6
    );
}
