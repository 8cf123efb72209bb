//! Behaviour of the `columnar` codec through its public `Codec` interface: bit-exact round trips
//! on edge cases and random batches, option checks, the coin filter, and damaged input (which
//! must give `CorruptInput`, never a panic).

use proptest::prelude::*;
use strata_codec_columnar::{Columnar, container};
use strata_plugin_sdk::{Batch, CoinDict, Error, Row, decode_checked, encode_checked};

/// A segment written by the version-1 encoder before extra columns existed, and the same batch
/// written by the first version-2 encoder (see [`v1_fixture_batch`]).
const V1_FIXTURE: &[u8] = include_bytes!("data/v1-no-extras.strata-col");
const V2_FIXTURE: &[u8] = include_bytes!("data/v2-no-extras.strata-col");

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Encodes with `o`, decodes, and checks the result is the sorted input, bit for bit.
fn round_trip_with(batch: &Batch, o: &[(String, String)]) -> Vec<u8> {
    let bytes = encode_checked(&Columnar, batch, o).expect("encode");
    let back = decode_checked(&Columnar, &bytes, None).expect("decode");
    if let Some(d) = batch.sorted().first_difference(&back) {
        panic!("round trip differs with {o:?}: {d}");
    }
    bytes
}

fn round_trip(batch: &Batch) -> Vec<u8> {
    for o in [
        opts(&[]),
        opts(&[("block", "16")]),
        opts(&[("entropy", "false")]),
    ] {
        round_trip_with(batch, &o);
    }
    round_trip_with(batch, &[])
}

fn batch_of(rows: &[Row<'_>]) -> Batch {
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    for r in rows {
        b.push_row(r, &mut d);
    }
    b
}

fn row(coin: &str, ts: i64, v: f64) -> Row<'_> {
    Row {
        coin,
        ts,
        price: v,
        market_cap: v * 1.0e7,
        volume: v * 3.5,
        supply: 1.0e7,
        rank: 1,
    }
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_367_107_200_000;

/// Coinpaprika-like: prices with at most 8 decimals, integer caps, supply and rank present.
fn decimal_series(coins: usize, days: i64) -> Batch {
    let mut b = Batch::default();
    let mut seed = 42u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for c in 0..coins {
        b.coins.push(format!("coin-{c}"));
        let mut price = 0.01 + rnd() * 100.0;
        let mut supply = (1e6 + rnd() * 1e9).round();
        for d in 0..days {
            price *= 1.0 + (rnd() - 0.5) * 0.08;
            let p = (price * 1e8).round() / 1e8;
            if d % 30 == 0 {
                supply += (rnd() * 1e4).round();
            }
            let vol = (rnd() * 1e9).round() / 100.0;
            b.push(
                c as u32,
                T0 + d * DAY,
                p,
                (p * supply).round(),
                vol,
                supply,
                (c + 1) as u32,
            );
        }
    }
    b
}

#[test]
fn special_floats_round_trip_bit_exactly() {
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN payload
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        5e-324,
        2.225_073_858_507_2e-308,
        1e-36,
        f64::MAX,
        f64::MIN,
        0.1,
        1.5,
    ];
    let mut rows = Vec::new();
    for (i, &v) in specials.iter().enumerate() {
        for (j, &w) in specials.iter().enumerate() {
            rows.push(Row {
                coin: "edge",
                ts: T0 + (i * specials.len() + j) as i64 * DAY,
                price: v,
                market_cap: w,
                volume: if j % 2 == 0 { v } else { w },
                supply: w,
                rank: if i % 3 == 0 { 0 } else { u32::MAX },
            });
        }
    }
    round_trip(&batch_of(&rows));
}

#[test]
fn extreme_timestamps_and_duplicates_round_trip() {
    let b = batch_of(&[
        row("t", i64::MAX, 4.0),
        row("t", i64::MIN, 1.0),
        row("t", -1, 2.0),
        row("t", 0, 3.0),
        row("t", 0, 5.0), // duplicate key: order kept (stable)
        row("t", i64::MIN + 1, 6.0),
        row("u", i64::MAX, 7.0),
        row("u", i64::MAX, 8.0),
    ]);
    round_trip(&b);
}

#[test]
fn empty_batch_and_unused_coins() {
    round_trip(&Batch::default());
    let mut b = batch_of(&[row("used", T0, 1.0)]);
    b.coins.push("unused".into());
    let bytes = round_trip(&b);
    let back = decode_checked(&Columnar, &bytes, None).unwrap();
    assert_eq!(back.coins, ["used"]);
}

#[test]
fn many_coins_unicode_ids_and_unsorted_input() {
    let ids: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    let rows: Vec<Row<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, c)| row(c, T0 + (i % 7) as i64, i as f64 * 0.37))
        .collect();
    round_trip(&batch_of(&rows));

    let names = [
        "比特币",
        "эфир",
        "🦀-crab",
        "a\"quote",
        "tab\tnew\nline",
        "é",
    ];
    let mut rows = Vec::new();
    for d in (0..40).rev() {
        for n in names {
            rows.push(row(n, T0 + d * DAY + (d % 3) * 977, d as f64 + 0.25));
        }
    }
    let b = batch_of(&rows);
    assert!(!b.is_sorted_by_coin_ts());
    round_trip(&b);
}

#[test]
fn timestamps_exactly_on_the_grid_cost_no_symbols() {
    // Plain symbols are 8-bit fields, so the size shows how many there are. A regular daily
    // series has no timestamp symbols; one late point makes its block of 128 rows code a step
    // code per row (and a jitter code for the late one), the other blocks stay without.
    let plain = opts(&[("entropy", "false")]);
    let b = decimal_series(3, 400);
    let mut late = b.clone();
    late.ts[200] += 60_000;
    let regular = encode_checked(&Columnar, &b, &plain).unwrap().len();
    let one_late = round_trip_with(&late, &plain).len();
    let extra = one_late - regular;
    assert!((127..200).contains(&extra), "{extra} more bytes");
    round_trip(&late);
}

#[test]
fn irregular_and_hourly_timestamps() {
    let mut rows = Vec::new();
    let mut t = T0;
    for i in 0..3000i64 {
        t += match i % 50 {
            0 => DAY + 323_749, // an odd fetch time, then back on the grid
            1 => DAY - 323_749,
            2..=9 => 3_600_000 + (i * 7919) % 400_000 - 200_000, // jittered hourly burst
            17 => 5 * DAY,                                       // a gap
            _ => DAY,
        };
        rows.push(row("x", t, 1.0 + i as f64 * 1e-3));
    }
    round_trip(&batch_of(&rows));
}

#[test]
fn decimal_data_compresses_far_better_than_full_doubles() {
    let b = decimal_series(20, 400);
    let bytes = round_trip(&b);
    let per_row = bytes.len() as f64 / b.len() as f64;
    // Full-precision doubles need ~18 B/row; decimals, integer caps from price × supply, and
    // constant ranks must do much better.
    assert!(per_row < 11.0, "{per_row:.2} B/row on decimal data");
    let raw = encode_checked(&Columnar, &b, &opts(&[("entropy", "false")])).unwrap();
    assert!(bytes.len() < raw.len(), "the entropy stage must pay");
}

#[test]
fn small_segments_skip_entropy_tables_that_do_not_pay() {
    let b = decimal_series(2, 20);
    let auto = encode_checked(&Columnar, &b, &[]).unwrap();
    let plain = encode_checked(&Columnar, &b, &opts(&[("entropy", "false")])).unwrap();
    assert_eq!(auto, plain, "40 rows cannot pay for entropy tables");
    round_trip(&b);
}

#[test]
fn coin_filter_decodes_only_wanted_coins() {
    let b = decimal_series(5, 50);
    let bytes = encode_checked(&Columnar, &b, &[]).unwrap();
    let wanted = vec![
        "coin-3".to_string(),
        "coin-1".to_string(),
        "absent".to_string(),
    ];
    let got = decode_checked(&Columnar, &bytes, Some(&wanted)).unwrap();
    assert_eq!(got.coins, ["coin-1", "coin-3"]);
    assert!(got.bit_eq(&b.filter_coins(&wanted).sorted()));
    assert!(
        decode_checked(&Columnar, &bytes, Some(&[]))
            .unwrap()
            .is_empty()
    );
}

/// Adds rollup-style extra columns to `b`: `open`/`high`/`low` around the price, a `count`,
/// and every special float (NaN with payloads, ±0.0, ±inf, subnormals) sprinkled in.
fn with_extras(mut b: Batch) -> Batch {
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001),
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
    ];
    for (k, name) in ["open", "high", "low", "count"].into_iter().enumerate() {
        let c = b.add_extra(name);
        for i in 0..b.len() {
            let p = b.price[i];
            b.extra[c].values[i] = if i % 11 == k {
                specials[(i / 11 + k) % specials.len()]
            } else {
                match name {
                    "open" => p * 0.99,
                    "high" => p * 1.03,
                    "low" => (p * 0.97 * 1e6).round() / 1e6,
                    _ => (24 - i % 3) as f64,
                }
            };
        }
    }
    b
}

#[test]
fn extra_columns_round_trip_bit_exactly() {
    // Unsorted input: the extras must move with their rows.
    let mut rows = Vec::new();
    for d in (0..300).rev() {
        for n in ["b", "a", "c"] {
            rows.push(row(n, T0 + d * DAY, 1.0 + d as f64 * 0.013));
        }
    }
    let b = with_extras(batch_of(&rows));
    assert!(!b.is_sorted_by_coin_ts());
    let bytes = round_trip(&b);
    assert_eq!(bytes[7], container::FLAG_EXTRA);
    let back = decode_checked(&Columnar, &bytes, None).unwrap();
    let names: Vec<&str> = back.extra.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["open", "high", "low", "count"],
        "names keep their order"
    );
    let neg_zero = back
        .extra("open")
        .unwrap()
        .iter()
        .filter(|v| v.to_bits() == (-0.0f64).to_bits());
    assert!(neg_zero.count() > 0, "the test data must contain -0.0");

    // Big enough for the entropy tables, with the extra family in them.
    let big = with_extras(decimal_series(8, 3000));
    let bytes = round_trip(&big);
    let plain = encode_checked(&Columnar, &big, &opts(&[("entropy", "false")])).unwrap();
    assert!(bytes.len() < plain.len(), "the entropy stage must pay");
}

#[test]
fn extra_columns_survive_empty_and_single_row_batches() {
    let mut empty = Batch::default();
    empty.add_extra("high");
    let bytes = round_trip(&empty);
    let back = decode_checked(&Columnar, &bytes, None).unwrap();
    assert_eq!(back.extra.len(), 1);
    assert_eq!(back.extra[0].name, "high");
    round_trip(&with_extras(batch_of(&[row("one", T0, -0.0)])));
}

#[test]
fn extra_columns_are_cheap_when_they_follow_price() {
    let b = decimal_series(10, 1000);
    let base = encode_checked(&Columnar, &b, &[]).unwrap().len();
    let mut x = b.clone();
    for (name, f) in [("open", 1.0), ("high", 1.02), ("low", 0.98)] {
        let c = x.add_extra(name);
        for i in 0..x.len() {
            x.extra[c].values[i] = (x.price[i] * f * 1e8).round() / 1e8;
        }
    }
    let more = round_trip(&x).len() - base;
    // Three columns that are decimal and track the price: well under the ~6 B/row a
    // full-precision price column costs.
    let per = more as f64 / (3 * x.len()) as f64;
    assert!(per < 3.0, "{per:.2} B per extra value");
}

#[test]
fn coin_filter_keeps_extra_columns_aligned() {
    let b = with_extras(decimal_series(5, 50));
    let bytes = encode_checked(&Columnar, &b, &[]).unwrap();
    let wanted = vec!["coin-4".to_string(), "coin-0".to_string()];
    let got = decode_checked(&Columnar, &bytes, Some(&wanted)).unwrap();
    assert_eq!(got.coins, ["coin-0", "coin-4"]);
    assert_eq!(got.extra.len(), 4);
    if let Some(d) = b.filter_coins(&wanted).sorted().first_difference(&got) {
        panic!("filtered decode differs: {d}");
    }
    let none = decode_checked(&Columnar, &bytes, Some(&[])).unwrap();
    assert!(none.is_empty());
    assert_eq!(
        none.extra.len(),
        4,
        "an empty result still names the columns"
    );
}

#[test]
fn version_1_segments_still_decode() {
    // The fixture was written by the version-1 encoder (before extra columns existed).
    let b = v1_fixture_batch();
    assert_eq!(V1_FIXTURE[6], 1, "a version-1 segment");
    assert_eq!(V1_FIXTURE[7], 0, "no flags");
    let back = decode_checked(&Columnar, V1_FIXTURE, None).unwrap();
    if let Some(d) = b.sorted().first_difference(&back) {
        panic!("old segment decodes differently: {d}");
    }
    let one = ["mid".to_string()];
    let back = decode_checked(&Columnar, V1_FIXTURE, Some(&one)).unwrap();
    assert!(back.bit_eq(&b.filter_coins(&one).sorted()));
}

#[test]
fn segments_keep_the_version_2_layout() {
    // The same batch written by the first version-2 encoder: today's encoder must write
    // exactly these bytes (a layout change needs a new version).
    let b = v1_fixture_batch();
    let now = encode_checked(&Columnar, &b, &[]).unwrap();
    assert_eq!(now[6], container::VERSION);
    assert!(now == V2_FIXTURE, "the version-2 encoding changed");
    let back = decode_checked(&Columnar, V2_FIXTURE, None).unwrap();
    assert!(back.bit_eq(&b.sorted()));
}

#[test]
fn bad_extra_column_headers_are_refused() {
    let bytes = encode_checked(&Columnar, &with_extras(decimal_series(1, 20)), &[]).unwrap();
    // Unknown flag bits.
    let mut m = bytes.clone();
    m[7] |= 0x80;
    fix_crc(&mut m);
    let err = Columnar::decode_raw(&m).unwrap_err();
    assert!(err.to_string().contains("flags"), "{err}");
    // Rename the first extra column to a fixed column's name, then to the second one's.
    let at = bytes.windows(4).position(|w| w == b"open").unwrap();
    for (to, at_column) in [
        (&b"rank"[..], "extra column 0"),
        (&b"high"[..], "extra column 1"),
    ] {
        let mut m = bytes.clone();
        m[at..at + 4].copy_from_slice(to);
        fix_crc(&mut m);
        let err = Columnar::decode_raw(&m).unwrap_err();
        assert!(err.to_string().contains(at_column), "{err}");
    }
}

#[test]
fn options_are_validated() {
    let b = batch_of(&[row("a", T0, 1.0)]);
    for bad in [
        opts(&[("block", "0")]),
        opts(&[("block", "x")]),
        opts(&[("entropy", "yes")]),
        opts(&[("level", "3")]),
    ] {
        assert!(
            matches!(
                encode_checked(&Columnar, &b, &bad),
                Err(Error::InvalidOptions(_))
            ),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_is_an_error() {
    let b = decimal_series(3, 40);
    let bytes = encode_checked(&Columnar, &b, &[]).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                Columnar::decode_raw(&bytes[..cut]),
                Err(Error::CorruptInput(_))
            ),
            "truncation to {cut} bytes was accepted"
        );
    }
    for bit in 0..bytes.len() * 8 {
        let mut m = bytes.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(Columnar::decode_raw(&m), Err(Error::CorruptInput(_))),
            "flip of bit {bit} was accepted"
        );
    }
}

#[test]
fn newer_versions_are_refused_by_name() {
    let bytes = encode_checked(&Columnar, &batch_of(&[row("a", T0, 1.0)]), &[]).unwrap();
    let mut v2 = bytes.clone();
    v2[6] = container::VERSION + 1;
    let err = Columnar::decode_raw(&v2).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}

/// The batch behind the fixtures in `tests/data`: two coins of decimal data plus one of full
/// doubles with gaps.
fn v1_fixture_batch() -> Batch {
    let mut b = Batch {
        coins: vec!["zeta".into(), "alpha".into(), "mid".into()],
        ..Batch::default()
    };
    let mut seed = 7u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut price = [3.5, 0.012, 1234.5];
    for d in 0..700i64 {
        for (c, p) in price.iter_mut().enumerate() {
            *p *= 1.0 + (rnd() - 0.5) * 0.06;
            let (v, ts) = if c == 2 {
                (*p, T0 + d * DAY + if d % 97 == 0 { 3_600_000 } else { 0 })
            } else {
                ((*p * 1e6).round() / 1e6, T0 + d * DAY)
            };
            let supply = if c == 0 { 21e6 } else { f64::NAN };
            let cap = if d % 50 == 3 {
                f64::NAN
            } else {
                (v * 1.9e7).round()
            };
            b.push(
                c as u32,
                ts,
                v,
                cap,
                (rnd() * 1e8).round() / 100.0,
                supply,
                (c + 1) as u32,
            );
        }
    }
    b
}

/// Recomputes the checksum so mutations reach the decoder proper.
fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= 12 {
        let crc = crc32fast::hash(&bytes[12..]);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

trait DecodeRaw {
    fn decode_raw(bytes: &[u8]) -> Result<Batch, Error>;
}

impl DecodeRaw for Columnar {
    fn decode_raw(bytes: &[u8]) -> Result<Batch, Error> {
        decode_checked(&Columnar, bytes, None)
    }
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1e6f64..1e6).prop_map(|v| (v * 1e4).round() / 1e4),
        Just(f64::NAN),
        Just(-0.0),
        Just(0.0),
    ]
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    let row = (
        0u32..4,
        prop_oneof![any::<i64>(), (0i64..400).prop_map(|d| T0 + d * DAY)],
        arb_f64(),
        arb_f64(),
        arb_f64(),
        arb_f64(),
        prop_oneof![Just(0u32), any::<u32>(), 1u32..50],
    );
    proptest::collection::vec(row, 0..300).prop_map(|rows| {
        let mut b = Batch {
            coins: ["btc", "eth", "ümlaut", "z"].map(String::from).to_vec(),
            ..Batch::default()
        };
        for (c, ts, p, m, v, s, r) in rows {
            b.push(c, ts, p, m, v, s, r);
        }
        b
    })
}

/// Random walks: the shape real series have, so the predictive methods get exercised.
fn arb_walk() -> impl Strategy<Value = Batch> {
    (
        proptest::collection::vec((-0.1f64..0.1, 0u8..20), 1..400),
        1e-9f64..1e5,
    )
        .prop_map(|(steps, start)| {
            let mut b = Batch {
                coins: vec!["w".into()],
                ..Batch::default()
            };
            let mut p = start;
            for (i, (r, odd)) in steps.into_iter().enumerate() {
                p *= 1.0 + r;
                let ts = T0 + i as i64 * DAY + if odd == 0 { 12_345 } else { 0 };
                let cap = if odd == 1 {
                    0.0
                } else {
                    p * 1.9e7 * (1.0 + r * 1e-3)
                };
                b.push(0, ts, p, cap, p * 1e6 * (1.5 + r), f64::NAN, 0);
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_batches_round_trip(b in arb_batch(), block in 16usize..64, entropy: bool) {
        let o = vec![
            ("block".to_string(), block.to_string()),
            ("entropy".to_string(), entropy.to_string()),
        ];
        round_trip_with(&b, &o);
    }

    #[test]
    fn random_batches_with_extras_round_trip(
        b in arb_batch(),
        extra in proptest::collection::vec(arb_f64(), 0..600),
        entropy: bool,
    ) {
        let mut b = b;
        for (k, name) in ["x", "y"].into_iter().enumerate() {
            let c = b.add_extra(name);
            for i in 0..b.len() {
                b.extra[c].values[i] = extra.get(2 * i + k).copied().unwrap_or(b.price[i]);
            }
        }
        round_trip_with(&b, &[("entropy".to_string(), entropy.to_string())]);
    }

    #[test]
    fn random_walks_round_trip(b in arb_walk()) {
        round_trip_with(&b, &[]);
        round_trip_with(&b, &opts(&[("block", "16")]));
    }

    /// Mutations with a valid checksum reach every parser; none may panic, and whatever
    /// decodes must be a valid batch.
    #[test]
    fn mutated_encodings_never_panic(
        b in arb_walk(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
        entropy: bool,
        extras: bool,
    ) {
        let b = if extras { with_extras(b) } else { b };
        let o = vec![("entropy".to_string(), entropy.to_string())];
        let mut bytes = encode_checked(&Columnar, &b, &o).unwrap();
        for (at, val, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = val,
                1 => bytes.insert(at, val),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        fix_crc(&mut bytes);
        match Columnar::decode_raw(&bytes) {
            Ok(got) => prop_assert!(got.validate().is_ok()),
            Err(e) => prop_assert!(matches!(e, Error::CorruptInput(_)), "{e}"),
        }
    }
}
