//! The plugin conformance suite: what `strata plugin test PATH.wasm` runs, and what the test
//! suite runs on every built-in.
//!
//! Codecs must round-trip bit for bit (compared with `f64::to_bits`) on edge cases and on real
//! data, honour the coin filter, and answer truncated or garbage input with an error, never a
//! trap. Policies must return sorted, in-range indices and give the same survivors whatever the
//! split of the data into windows.

use strata_plugin_sdk::{Batch, CoinDict, Row, Selection};

use super::{CallError, CallErrorKind, CodecPlugin, Plugin, PolicyPlugin};

/// The outcome of one check.
#[derive(Debug)]
pub struct Check {
    pub name: String,
    /// `Err` says what was wrong.
    pub outcome: Result<(), String>,
}

/// Everything the suite found about one plugin.
#[derive(Debug)]
pub struct Report {
    pub plugin: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome.is_err())
    }

    fn check(&mut self, name: impl Into<String>, outcome: Result<(), String>) {
        self.checks.push(Check {
            name: name.into(),
            outcome,
        });
    }
}

/// Runs the suite on a loaded plugin with the given options (empty = the plugin's defaults).
pub fn run(plugin: &Plugin, opts: &[(String, String)]) -> Report {
    let mut report = Report {
        plugin: plugin.meta().name.clone(),
        checks: Vec::new(),
    };
    let info = plugin.info();
    report.check(
        "describe",
        if info.name.is_empty() || info.version.is_empty() {
            Err("name and version must not be empty".into())
        } else {
            Ok(())
        },
    );
    match plugin {
        Plugin::Codec(c) => run_codec(c, opts, &mut report),
        Plugin::Policy(p) => run_policy(p, opts, &mut report),
    }
    report
}

// ---------------------------------------------------------------------------------------------
// Test data

/// A small deterministic generator (SplitMix64), so the suite needs no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
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

fn batch_of<'a>(rows: impl IntoIterator<Item = Row<'a>>) -> Batch {
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    for r in rows {
        b.push_row(&r, &mut d);
    }
    b
}

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

/// Hourly rows for `coins` coins over `hours` hours, random walks, some gaps.
fn series(coins: usize, hours: i64, seed: u64) -> Batch {
    let mut rng = Rng(seed);
    let names: Vec<String> = (0..coins).map(|i| format!("coin-{i:05}")).collect();
    let mut b = Batch {
        coins: names,
        ..Batch::default()
    };
    for c in 0..coins {
        let mut price = 10f64.powf(rng.unit() * 8.0 - 4.0);
        let supply = (rng.unit() * 1e9).round();
        for h in 0..hours {
            if rng.next().is_multiple_of(17) {
                continue; // a missing hour
            }
            price *= 1.0 + (rng.unit() - 0.5) * 0.02;
            let p = (price * 1e8).round() / 1e8;
            b.push(
                c as u32,
                T0 + h * HOUR + (rng.next() % 5000) as i64,
                p,
                (p * supply).round(),
                (rng.unit() * 1e7).round() / 100.0,
                supply,
                (c + 1) as u32,
            );
        }
    }
    b
}

/// The real-data extract shipped with strata (see `host/data/SOURCE.md`).
pub fn real_extract() -> Batch {
    let text = include_str!("../../data/coingecko-extract.csv");
    strata_plugin_sdk::market_csv::read("coingecko-extract.csv", text.as_bytes())
        .expect("the extract is well-formed")
}

/// The codec edge cases: name and batch.
pub fn codec_cases() -> Vec<(&'static str, Batch)> {
    let floats = [
        ("NaN", f64::NAN),
        ("+inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("-0.0", -0.0),
        ("subnormal", 5e-324),
        ("subnormal-large", 2.2250738585072e-308),
        ("1e-36", 1e-36),
        ("huge", f64::MAX),
        ("-huge", -1.7e308),
    ];
    let mut cases = vec![
        ("empty batch", Batch::default()),
        ("one row", batch_of([row("bitcoin", T0, 97_123.45)])),
    ];
    for (name, v) in floats {
        let rows = (0..4).map(move |i| Row {
            coin: "edge",
            ts: T0 + i * HOUR,
            price: if i % 2 == 0 { v } else { 1.5 },
            market_cap: v,
            volume: if i == 3 { v } else { 0.0 },
            supply: v,
            rank: if i == 0 { 0 } else { u32::MAX },
        });
        cases.push((name, batch_of(rows)));
    }
    cases.push((
        "extreme timestamps",
        batch_of([
            row("t", i64::MIN, 1.0),
            row("t", -1, 2.0),
            row("t", 0, 3.0),
            row("t", i64::MAX, 4.0),
        ]),
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
        batch_of(
            unicode
                .iter()
                .enumerate()
                .map(|(i, c)| row(c, T0 + i as i64, i as f64)),
        ),
    ));
    let ids: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    cases.push((
        "10,000 coins",
        batch_of(
            ids.iter()
                .enumerate()
                .map(|(i, c)| row(c, T0, i as f64 * 0.37)),
        ),
    ));
    let mut unsorted = series(5, 48, 7);
    let order: Vec<u32> = {
        let mut rng = Rng(99);
        let mut o: Vec<u32> = (0..unsorted.len() as u32).collect();
        for i in (1..o.len()).rev() {
            o.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        o
    };
    unsorted = unsorted.take(&order);
    cases.push(("unsorted input", unsorted));
    cases.push(("hourly series (50 coins, 10 days)", series(50, 240, 1)));
    cases.push(("real data extract", real_extract()));
    cases
}

// ---------------------------------------------------------------------------------------------
// Codecs

fn describe_call_error(e: &CallError) -> String {
    e.to_string()
}

fn is_trap(e: &CallError) -> bool {
    !matches!(e.kind, CallErrorKind::Plugin(_))
}

fn run_codec(codec: &CodecPlugin, opts: &[(String, String)], report: &mut Report) {
    let info = &codec.info;
    report.check(
        "describe: extension and media type",
        if info.extension.is_empty() || info.media_type.is_empty() {
            Err("extension and media-type must not be empty".into())
        } else {
            Ok(())
        },
    );
    let mut encoded_real = None;
    for (name, batch) in codec_cases() {
        let outcome = round_trip(codec, &batch, opts);
        if name == "real data extract"
            && let Ok(bytes) = &outcome
        {
            encoded_real = Some(bytes.clone());
        }
        report.check(format!("round trip: {name}"), outcome.map(|_| ()));
    }

    // Extra columns (a rollup's aggregates): stored bit for bit, or refused, never dropped.
    let mut with_extra = series(3, 30, 4);
    for (k, name) in ["open", "high", "low"].iter().enumerate() {
        let c = with_extra.add_extra(name);
        for (i, v) in with_extra.extra[c].values.iter_mut().enumerate() {
            *v = if i % 7 == k {
                f64::NAN
            } else {
                i as f64 * 1.25 - k as f64
            };
        }
    }
    let outcome = if info.extra_columns {
        round_trip(codec, &with_extra, opts).map(|_| ())
    } else {
        match codec.encode(&with_extra, opts) {
            Err(CallError {
                kind: CallErrorKind::Plugin(strata_plugin_sdk::Error::Unsupported(_)),
                ..
            }) => Ok(()),
            Err(e) => Err(format!("expected `unsupported`, got: {e}")),
            Ok(_) => Err("accepted extra columns although it says it does not store them".into()),
        }
    };
    report.check("extra columns", outcome);

    // Coin filter: whatever the codec does with it, the rows of the wanted coins come back.
    let real = real_extract();
    if let Some(bytes) = &encoded_real {
        let wanted = vec!["bitcoin".to_string()];
        let outcome = codec
            .decode(bytes, Some(&wanted))
            .map_err(|e| describe_call_error(&e))
            .and_then(|got| {
                let expect = canonical(&real.filter_coins(&wanted), info.sorts_rows);
                let got = canonical(&got.filter_coins(&wanted), info.sorts_rows);
                compare(&expect, &got)
            });
        report.check("coin filter", outcome);

        // Truncated input: an error or a subset of the real rows, never a trap.
        let mut trunc = Ok(());
        for cut in [
            0,
            1,
            7,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
        ] {
            if let Err(msg) = decode_garbage(codec, &bytes[..cut.min(bytes.len())], &real) {
                trunc = Err(format!(
                    "truncated to {cut} of {} bytes: {msg}",
                    bytes.len()
                ));
                break;
            }
        }
        report.check("truncated input", trunc);

        // Flipped bits inside a valid encoding.
        let mut flips = Ok(());
        let mut rng = Rng(5);
        for _ in 0..32 {
            let mut b = bytes.clone();
            if b.is_empty() {
                break;
            }
            let at = (rng.next() % b.len() as u64) as usize;
            b[at] ^= 1 << (rng.next() % 8);
            if let Err(msg) = decode_no_trap(codec, &b) {
                flips = Err(format!("bit flip at byte {at}: {msg}"));
                break;
            }
        }
        report.check("corrupted input", flips);
    }

    // Garbage: random bytes must give an error.
    let mut garbage = Ok(());
    let mut rng = Rng(11);
    for len in [16usize, 100, 4096, 65_536] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match codec.decode(&bytes, None) {
            Ok(b) => {
                garbage = Err(format!(
                    "{len} random bytes decoded to {} rows instead of an error",
                    b.len()
                ));
                break;
            }
            Err(e) if is_trap(&e) => {
                garbage = Err(format!("{len} random bytes: {e}"));
                break;
            }
            Err(_) => {}
        }
    }
    report.check("garbage input", garbage);
}

/// Encodes and decodes `batch`, comparing bit for bit. Returns the encoding.
fn round_trip(
    codec: &CodecPlugin,
    batch: &Batch,
    opts: &[(String, String)],
) -> Result<Vec<u8>, String> {
    let bytes = codec
        .encode(batch, opts)
        .map_err(|e| describe_call_error(&e))?;
    let back = codec
        .decode(&bytes, None)
        .map_err(|e| describe_call_error(&e))?;
    if codec.info.lossless {
        compare(
            &canonical(batch, codec.info.sorts_rows),
            &canonical(&back, codec.info.sorts_rows),
        )?;
    } else if back.len() != batch.len() {
        return Err(format!("{} rows in, {} rows out", batch.len(), back.len()));
    }
    Ok(bytes)
}

fn canonical(b: &Batch, sorted: bool) -> Batch {
    if sorted { b.sorted() } else { b.clone() }
}

/// Bit for bit, naming the first row and column that differ.
fn compare(expect: &Batch, got: &Batch) -> Result<(), String> {
    match crate::roundtrip::first_difference(expect, got, true) {
        None => Ok(()),
        Some(d) => Err(format!("decoded data differs: {}", super::clean_text(&d))),
    }
}

fn decode_no_trap(codec: &CodecPlugin, bytes: &[u8]) -> Result<(), String> {
    match codec.decode(bytes, None) {
        Err(e) if is_trap(&e) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// A decode of damaged bytes must fail cleanly or return only rows that were really there.
fn decode_garbage(codec: &CodecPlugin, bytes: &[u8], original: &Batch) -> Result<(), String> {
    match codec.decode(bytes, None) {
        Err(e) if is_trap(&e) => Err(e.to_string()),
        Err(_) => Ok(()),
        Ok(b) => {
            let invented = b.rows().find(|r| !original.rows().any(|o| o.bit_eq(r)));
            match invented {
                Some(r) => Err(format!("decoded a row that was never encoded: {r:?}")),
                None => Ok(()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Policies

fn run_policy(policy: &PolicyPlugin, opts: &[(String, String)], report: &mut Report) {
    report.check(
        "check-options",
        policy.check_options(opts).map_err(|e| e.to_string()),
    );
    let empty = policy.select(&Batch::default(), &[], opts);
    report.check(
        "empty batch",
        match empty {
            Ok(Selection::Keep(k)) if k.is_empty() => Ok(()),
            Ok(Selection::Rollup(b)) if b.is_empty() => Ok(()),
            Ok(_) => Err("selected rows from an empty batch".into()),
            Err(e) => Err(e.to_string()),
        },
    );

    // 12 coins over 120 days, hourly, sorted by (coin, ts).
    let data = series(12, 24 * 120, 3).sorted();
    let whole = policy
        .select(&data, &vec![None; data.coins.len()], opts)
        .map_err(|e| e.to_string());
    report.check(
        "select: indices sorted and in range",
        whole.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let Ok(whole) = whole else { return };
    if let Selection::Keep(k) = &whole {
        report.check(
            "select: keeps something, drops something",
            if k.is_empty() || k.len() == data.len() {
                Err(format!(
                    "kept {} of {} hourly rows over 120 days",
                    k.len(),
                    data.len()
                ))
            } else {
                Ok(())
            },
        );
    }

    if let Selection::Rollup(r) = &whole {
        let outcome = policy
            .bucket_starts(&data.ts, opts)
            .map_err(|e| e.to_string())
            .and_then(|starts| {
                let mut keys: Vec<(u32, i64)> =
                    data.coin_index.iter().copied().zip(starts).collect();
                keys.dedup();
                let got: Vec<(&str, i64)> = r.rows().map(|row| (row.coin, row.ts)).collect();
                let expect: Vec<(&str, i64)> = keys
                    .iter()
                    .map(|&(c, s)| (data.coins[c as usize].as_str(), s))
                    .collect();
                if got == expect {
                    Ok(())
                } else {
                    Err(format!(
                        "{} rollup rows for {} (coin, bucket) pairs, or not at bucket starts",
                        got.len(),
                        expect.len()
                    ))
                }
            });
        report.check(
            "rollup: one row per coin per bucket, at the bucket start",
            outcome,
        );
    }

    // Window splits: cut the series at several times, feed windows in order.
    for windows in [2usize, 5, 17] {
        let outcome = split_equivalence(policy, &data, &whole, windows, opts);
        report.check(
            format!("same survivors when split into {windows} windows"),
            outcome,
        );
    }
}

fn survivors(data: &Batch, sel: &Selection) -> Batch {
    match sel {
        Selection::Keep(k) => data.take(k),
        Selection::Rollup(b) => b.clone(),
    }
}

fn split_equivalence(
    policy: &PolicyPlugin,
    data: &Batch,
    whole: &Selection,
    windows: usize,
    opts: &[(String, String)],
) -> Result<(), String> {
    let (lo, hi) = (
        *data.ts.iter().min().unwrap_or(&0),
        *data.ts.iter().max().unwrap_or(&0) + 1,
    );
    let mut cuts: Vec<i64> = (1..windows as i64)
        .map(|i| lo + (hi - lo) * i / windows as i64)
        .collect();
    if policy.info.rolls_up {
        // Rollups are only ever handed whole buckets: cut at bucket starts.
        cuts = policy
            .bucket_starts(&cuts, opts)
            .map_err(|e| e.to_string())?;
    }
    let mut bounds = vec![i64::MIN];
    bounds.extend(cuts);
    bounds.push(i64::MAX);
    let mut got = Batch::default();
    let mut last_kept: std::collections::HashMap<String, i64> = Default::default();
    for w in bounds.windows(2) {
        let idx: Vec<u32> = (0..data.len() as u32)
            .filter(|&i| (w[0]..w[1]).contains(&data.ts[i as usize]))
            .collect();
        let part = data.take(&idx);
        let lk: Vec<Option<i64>> = part
            .coins
            .iter()
            .map(|c| last_kept.get(c).copied())
            .collect();
        let sel = policy.select(&part, &lk, opts).map_err(|e| e.to_string())?;
        let kept = survivors(&part, &sel);
        for r in kept.rows() {
            let e = last_kept.entry(r.coin.to_string()).or_insert(r.ts);
            *e = (*e).max(r.ts);
        }
        got.extend_from(&kept);
    }
    compare(&survivors(data, whole).sorted(), &got.sorted())
}
