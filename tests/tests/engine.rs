//! End to end: 100 coins × 400 days of hourly data go through ingest and four tier runs, and
//! every query answer is checked against a model of the tiers computed here, independently of
//! the store (plain vectors, its own calendar arithmetic), bit for bit.
//!
//! The policy: hot 30 days; warm 120 days, daily samples, 30-day segments in 4 coin buckets;
//! cold 300 days, weekly samples (ISO weeks), 90-day segments in 2 buckets; archive forever,
//! monthly samples, 365-day segments, 1 bucket. Every colder tier uses `jsonl-gzip`. Hot rows
//! are read for a transition in groups of ~5,000 rows, so each bucket takes several groups.
//! `STRATA_E2E_COINS` / `STRATA_E2E_DAYS` change the scale.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono::{Datelike, NaiveDate};
use strata::generate::{GenConfig, Generator};
use strata::plugin::{PluginRef, Runtime, RuntimeConfig};
use strata::segment_store::{MemSegmentStore, Op, SegmentStore};
use strata::store::StoreOptions;
use strata::tiering::{CompactMode, Compaction, Plan, TierDef};
use strata::{CoinMeta, Store};
use strata_plugin_sdk::Batch;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(RuntimeConfig::default()).unwrap())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Every {
    Day,
    Week,
    Month,
}

struct ModelTier {
    name: &'static str,
    keep: Option<i64>,
    every: Every,
    window: i64,
    buckets: u32,
}

fn tiers() -> Vec<ModelTier> {
    vec![
        ModelTier {
            name: "hot",
            keep: Some(30 * DAY),
            every: Every::Day,
            window: 0,
            buckets: 0,
        },
        ModelTier {
            name: "warm",
            keep: Some(120 * DAY),
            every: Every::Day,
            window: 30 * DAY,
            buckets: 4,
        },
        ModelTier {
            name: "cold",
            keep: Some(300 * DAY),
            every: Every::Week,
            window: 90 * DAY,
            buckets: 2,
        },
        ModelTier {
            name: "archive",
            keep: None,
            every: Every::Month,
            window: 365 * DAY,
            buckets: 1,
        },
    ]
}

fn plan() -> Plan {
    plan_storing_cold_in("")
}

/// The plan with cold and archive segments at `store` (`""`: the data directory). Compaction
/// is off: the model moves segments as transitions write them (a merged segment leaves its
/// tier with its newest row), and compaction has tests of its own below.
fn plan_storing_cold_in(store: &str) -> Plan {
    plan_with(
        store,
        Compaction {
            rows: 0,
            span: None,
        },
    )
}

fn plan_with(store: &str, compact: Compaction) -> Plan {
    let defs: Vec<TierDef> = tiers()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let every = match t.every {
                Every::Day => "1d",
                Every::Week => "week",
                Every::Month => "month",
            };
            TierDef {
                name: t.name.into(),
                keep: t.keep,
                retention: (i > 0).then(|| {
                    (
                        PluginRef::parse("sample"),
                        vec![("every".into(), every.into())],
                    )
                }),
                codec: (i > 0).then(|| (PluginRef::parse("jsonl-gzip"), vec![])),
                window: t.window,
                coin_buckets: t.buckets,
                store: if i >= 2 { store.into() } else { String::new() },
                compact,
            }
        })
        .collect();
    Plan::load(runtime(), &defs).unwrap()
}

/// The model's own calendar: the start of the bucket holding `ts`.
fn bucket_start(every: Every, ts: i64) -> i64 {
    let day = ts.div_euclid(DAY);
    let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(day as u64);
    let start = match every {
        Every::Day => date,
        Every::Week => date - chrono::Days::new(date.weekday().num_days_from_monday() as u64),
        Every::Month => date.with_day(1).unwrap(),
    };
    (start - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() * DAY
}

/// One model row: (coin, ts, value bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MRow {
    coin: u32,
    ts: i64,
    bits: [u64; 4],
    rank: u32,
}

struct MSeg {
    window: i64,
    rows: Vec<MRow>,
}

struct Model {
    coins: Vec<String>,
    hot: BTreeMap<(u32, i64), MRow>,
    segs: Vec<Vec<MSeg>>, // per tier (index 0 unused)
    last_kept: Vec<BTreeMap<u32, i64>>,
}

fn fnv_bucket(id: &str, buckets: u32) -> u32 {
    // The documented rule: FNV-1a 64 of the id, mod buckets.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (h % buckets as u64) as u32
}

impl Model {
    /// An empty store of `coins`, with `tiers` tiers.
    fn new(coins: &[CoinMeta], tiers: usize) -> Model {
        Model {
            coins: coins.iter().map(|m| m.id.clone()).collect(),
            hot: BTreeMap::new(),
            segs: (0..tiers).map(|_| Vec::new()).collect(),
            last_kept: (0..tiers).map(|_| BTreeMap::new()).collect(),
        }
    }

    fn ingest(&mut self, b: &Batch) {
        for r in 0..b.len() {
            let coin = self
                .coins
                .iter()
                .position(|c| *c == b.coins[b.coin_index[r] as usize])
                .unwrap() as u32;
            let row = MRow {
                coin,
                ts: b.ts[r],
                bits: [b.price[r], b.market_cap[r], b.volume[r], b.supply[r]].map(f64::to_bits),
                rank: b.rank[r],
            };
            self.hot.insert((coin, row.ts), row);
        }
    }

    /// Forward-only sampling of `rows` (sorted by coin then ts) into tier `t`.
    fn select(&mut self, t: usize, every: Every, rows: &[MRow]) -> Vec<MRow> {
        let mut kept = Vec::new();
        for r in rows {
            let keep = match self.last_kept[t].get(&r.coin) {
                None => true,
                Some(&l) => r.ts > l && bucket_start(every, r.ts) > bucket_start(every, l),
            };
            if keep {
                self.last_kept[t].insert(r.coin, r.ts);
                kept.push(*r);
            }
        }
        kept
    }

    /// Splits `rows` by (window, bucket) of tier `t`, samples each piece in order, appends
    /// the non-empty results as segments.
    fn place(&mut self, t: usize, tiers: &[ModelTier], rows: Vec<MRow>) {
        let mut pieces: BTreeMap<(i64, u32), Vec<MRow>> = BTreeMap::new();
        for r in rows {
            let w = r.ts.div_euclid(tiers[t].window) * tiers[t].window;
            let b = fnv_bucket(&self.coins[r.coin as usize], tiers[t].buckets);
            pieces.entry((w, b)).or_default().push(r);
        }
        for ((w, _), mut rows) in pieces {
            rows.sort();
            let kept = self.select(t, tiers[t].every, &rows);
            if !kept.is_empty() {
                self.segs[t].push(MSeg {
                    window: w,
                    rows: kept,
                });
            }
        }
    }

    fn run(&mut self, tiers: &[ModelTier], now: i64) {
        // hot -> warm: by destination window ascending, then bucket.
        let cut = now - tiers[0].keep.unwrap();
        let moving: Vec<MRow> = self.hot.values().filter(|r| r.ts < cut).copied().collect();
        self.hot.retain(|_, r| r.ts >= cut);
        let mut by_window: BTreeMap<i64, Vec<MRow>> = BTreeMap::new();
        for r in moving {
            by_window
                .entry(r.ts.div_euclid(tiers[1].window))
                .or_default()
                .push(r);
        }
        for (_, rows) in by_window {
            self.place(1, tiers, rows);
        }
        // Segment tiers: segments wholly older than the cut, grouped by source window.
        for t in 1..tiers.len() - 1 {
            let cut = now - tiers[t].keep.unwrap();
            let segs = std::mem::take(&mut self.segs[t]);
            let (old, young): (Vec<MSeg>, Vec<MSeg>) = segs
                .into_iter()
                .partition(|s| s.rows.iter().map(|r| r.ts).max().unwrap() < cut);
            self.segs[t] = young;
            let mut groups: BTreeMap<i64, Vec<MRow>> = BTreeMap::new();
            for s in old {
                groups.entry(s.window).or_default().extend(s.rows);
            }
            for (_, rows) in groups {
                self.place(t + 1, tiers, rows);
            }
        }
    }

    /// Every row of coin `c` with the tier holding it, by time.
    fn answer(&self, tiers: &[ModelTier], c: u32) -> Vec<(MRow, &'static str)> {
        let mut v: Vec<(MRow, &'static str)> = self
            .hot
            .values()
            .filter(|r| r.coin == c)
            .map(|r| (*r, "hot"))
            .collect();
        for (tier, segs) in tiers.iter().zip(&self.segs).skip(1) {
            for s in segs {
                v.extend(
                    s.rows
                        .iter()
                        .filter(|r| r.coin == c)
                        .map(|r| (*r, tier.name)),
                );
            }
        }
        v.sort_by_key(|(r, _)| r.ts);
        v
    }
}

fn check(store: &Store, model: &Model, tiers: &[ModelTier], when: &str) {
    let mut per_tier: BTreeMap<&str, u64> = BTreeMap::new();
    for (c, coin) in model.coins.iter().enumerate() {
        let want = model.answer(tiers, c as u32);
        for (_, t) in &want {
            *per_tier.entry(t).or_default() += 1;
        }
        if want.is_empty() && store.coin_id(coin).is_none() {
            continue;
        }
        let got = store.query(coin, i64::MIN, i64::MAX).unwrap();
        assert_eq!(got.len(), want.len(), "{when}: coin {coin}: row count");
        for (i, (w, t)) in want.iter().enumerate() {
            let r = got.rows.row(i);
            let bits = [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits);
            assert!(
                r.ts == w.ts && bits == w.bits && r.rank == w.rank && &*got.tier[i] == *t,
                "{when}: coin {coin} row {i}: got {r:?} in {}, want ts {} in {t}",
                got.tier[i],
                w.ts
            );
        }
        // A sub-range and the latest rows agree with the same model.
        if let Some(mid) = want.get(want.len() / 2) {
            let from = mid.0.ts - 40 * DAY;
            let part = store.query(coin, from, mid.0.ts).unwrap();
            let n = want
                .iter()
                .filter(|(r, _)| r.ts >= from && r.ts <= mid.0.ts)
                .count();
            assert_eq!(part.len(), n, "{when}: coin {coin}: range query");
        }
        let latest = store.latest(coin, 10).unwrap();
        let tail = &want[want.len().saturating_sub(10)..];
        assert_eq!(
            latest.rows.ts,
            tail.iter().map(|(r, _)| r.ts).collect::<Vec<_>>(),
            "{when}: {coin} latest"
        );
    }
    let stats = store.stats().unwrap();
    for s in &stats {
        assert_eq!(
            s.rows,
            per_tier.get(s.tier.as_str()).copied().unwrap_or(0),
            "{when}: rows in tier {}",
            s.tier
        );
    }
    let v = store.verify().unwrap();
    assert!(v.faults.is_empty(), "{when}: verify: {:?}", v.faults);
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn ingest_tier_query_against_model() {
    let dir = tempfile::tempdir().unwrap();
    run_against_model(dir.path(), None);
}

/// The same run with segments in the second segment-store implementation (in memory): the
/// engine behaves the same whatever holds the bytes, and nothing reaches the data directory's
/// `segments/`.
#[test]
fn ingest_tier_query_against_model_with_segments_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mem = Arc::new(MemSegmentStore::new());
    run_against_model(dir.path(), Some(mem.clone()));
    assert!(!mem.objects().is_empty());
    let on_disk = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 0, "segment files on disk");
}

/// The same run with cold and archive in a bucket of a real S3 server on loopback (`s3s-fs`,
/// which checks signatures): every query answer crosses tiers in two places, and verify reads
/// every object back.
#[test]
fn ingest_tier_query_against_model_with_cold_and_archive_in_a_bucket() {
    let Some(server) = strata_tests::s3_server::S3Server::start(&["strata-e2e"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = "s3://strata-e2e/stores/model";
    let options = StoreOptions {
        bucket_settings: server.settings(),
        ..Default::default()
    };
    run_with(dir.path(), options.clone(), &plan_storing_cold_in(url));
    let keys = server.keys("strata-e2e", "stores/model/segments");
    let store = Store::open_with(dir.path(), options).unwrap();
    store.set_runtime(runtime().clone());
    let segs = store.segments().unwrap();
    let in_bucket: Vec<String> = segs
        .iter()
        .filter(|s| s.store == url)
        .map(|s| format!("stores/model/{}", s.path))
        .collect();
    assert!(segs.iter().any(|s| s.tier == "archive" && s.store == url));
    assert!(segs.iter().all(|s| (s.store == url) == (s.tier != "warm")));
    let mut want = in_bucket.clone();
    want.sort();
    assert_eq!(
        keys, want,
        "the bucket holds exactly the catalog's cold and archive segments"
    );
    let report = store.verify().unwrap();
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    let coins: Vec<String> = (0..10).map(|i| format!("coin-{i:05}")).collect();
    let answers: Vec<_> = coins
        .iter()
        .map(|c| store.query(c, i64::MIN, i64::MAX).unwrap())
        .collect();
    drop(store);

    // With the read cache: answers unchanged, objects kept locally within the bound, and a
    // damaged cached copy is dropped and read again from the bucket.
    let bound = 64 << 10;
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            bucket_settings: server.settings(),
            bucket_cache_bytes: bound,
            ..Default::default()
        },
    )
    .unwrap();
    store.set_runtime(runtime().clone());
    for _ in 0..2 {
        for (c, want) in coins.iter().zip(&answers) {
            let a = store.query(c, i64::MIN, i64::MAX).unwrap();
            assert!(a.rows.bit_eq(&want.rows) && a.tier == want.tier, "{c}");
        }
    }
    let cached = files(&dir.path().join("cache"));
    assert!(!cached.is_empty(), "nothing was cached");
    let held: u64 = cached
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        held <= bound,
        "the cache holds {held} bytes, over its bound {bound}"
    );
    for p in &cached {
        std::fs::write(p, b"damaged").unwrap();
    }
    for (c, want) in coins.iter().zip(&answers) {
        let a = store.query(c, i64::MIN, i64::MAX).unwrap();
        assert!(a.rows.bit_eq(&want.rows), "{c} after the cache was damaged");
    }
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn run_against_model(dir: &std::path::Path, segment_store: Option<Arc<MemSegmentStore>>) {
    let options = StoreOptions {
        segment_store: segment_store.map(|s| s as Arc<dyn SegmentStore>),
        ..Default::default()
    };
    run_with(dir, options, &plan());
}

fn run_with(dir: &std::path::Path, options: StoreOptions, plan: &Plan) {
    let coins = env_or("STRATA_E2E_COINS", 100);
    let days = env_or("STRATA_E2E_DAYS", 400);
    let cfg = GenConfig::hourly(coins, days, 42);
    let start = cfg.start;
    let mut generator = Generator::new(cfg);
    let meta: Vec<CoinMeta> = generator.coin_meta();
    let tiers = tiers();
    // Small transition read groups: every coin bucket is read and selected in several groups
    // whose survivors gather before they are written.
    let options = StoreOptions {
        transition_read_rows: 5_000,
        ..options
    };
    let mut store = Store::open_with(dir, options.clone()).unwrap();
    store.set_runtime(runtime().clone());
    let mut model = Model::new(&meta, tiers.len());

    // Tier runs at these days; data up to each is ingested first: in bulk (one batch per
    // 10 days), except the last two days before each run, ingested hour by hour.
    let runs = [
        days as i64 / 4,
        days as i64 * 5 / 8,
        days as i64,
        days as i64,
    ];
    let mut ingested_to = 0i64; // hours
    for (k, &run_day) in runs.iter().enumerate() {
        let end = run_day * 24;
        let hourly_from = (end - 48).max(ingested_to);
        let mut bulk = Batch::default();
        while ingested_to < end {
            let b = generator.next_batch().unwrap();
            ingested_to += 1;
            model.ingest(&b);
            if ingested_to <= hourly_from {
                bulk.extend_from(&b);
                if bulk.len() > 240 * coins {
                    store.ingest(&bulk, &meta).unwrap();
                    bulk = Batch::default();
                }
            } else {
                if !bulk.is_empty() {
                    store.ingest(&bulk, &meta).unwrap();
                    bulk = Batch::default();
                }
                store.ingest(&b, &[]).unwrap();
            }
        }
        if !bulk.is_empty() {
            store.ingest(&bulk, &meta).unwrap();
        }
        if k == 0 {
            check(&store, &model, &tiers, "before any tier run");
            // Re-ingesting what is there changes nothing.
            let again = Generator::new(GenConfig::hourly(coins, days, 42));
            let mut again = again;
            let mut b = Batch::default();
            for _ in 0..end {
                b.extend_from(&again.next_batch().unwrap());
            }
            store.ingest(&b, &[]).unwrap();
            check(&store, &model, &tiers, "after re-ingest");
        }
        let now = start + run_day * DAY;
        let dry = store.tier(plan, now, true).unwrap();
        assert!(dry.iter().all(|r| r.segments_written == 0));
        check(&store, &model, &tiers, &format!("after dry run {k}"));
        let reports = store.tier(plan, now, false).unwrap();
        model.run(&tiers, now);
        if k == runs.len() - 1 {
            // The same `now` again: nothing left to move.
            assert!(
                reports.is_empty() || reports.iter().all(|r| r.rows_read == 0),
                "{reports:?}"
            );
        } else {
            assert_eq!(
                dry.iter().map(|r| r.rows_kept).sum::<u64>() > 0,
                reports.iter().map(|r| r.rows_kept).sum::<u64>() > 0
            );
        }
        check(
            &store,
            &model,
            &tiers,
            &format!("after tier run {k} at day {run_day}"),
        );
    }
    // Every colder tier ended up holding something, so the test exercised each transition.
    for (tier, segs) in tiers.iter().zip(&model.segs).skip(1) {
        assert!(!segs.is_empty(), "tier {} is empty in the model", tier.name);
    }
    // Reopening (startup recovery) changes nothing.
    drop(store);
    let store = Store::open_with(dir, options).unwrap();
    store.set_runtime(runtime().clone());
    check(&store, &model, &tiers, "after reopen");
}

/// Collection batches wait in `hot_recent` until it is merged into `hot`. A transition moves
/// those older than the cut straight out of it (nothing is merged first) and leaves the rest.
#[test]
fn recent_hot_rows_age_out_without_a_merge() {
    let (coins, days) = (6, 40);
    let Small {
        start,
        mut generator,
        meta,
        tiers,
        plan,
        dir: _dir,
        mut store,
        mut model,
    } = Small::new(coins, days, 7);
    // One timestamp per batch: every row lands in `hot_recent`, and 6 coins × 960 hours stay
    // far below the merge threshold (a day of 13.6k coins), so none reaches `hot`.
    for hour in 0..days * 24 {
        let b = generator.next_batch().unwrap();
        model.ingest(&b);
        let m: &[CoinMeta] = if hour == 0 { &meta } else { &[] };
        store.ingest(&b, m).unwrap();
    }
    let before = store.hot_rows().unwrap();
    // The hot tier keeps 30 days: the first 10 days leave, from `hot_recent`.
    let now = start + days as i64 * DAY;
    let reports = store.tier(&plan, now, false).unwrap();
    model.run(&tiers, now);
    let moved = reports[0].rows_read;
    assert!(moved > 0 && moved < before, "{reports:?}");
    assert_eq!(store.hot_rows().unwrap(), before - moved);
    check(&store, &model, &tiers, "after rows left hot_recent");
    // Again at the same `now`: nothing left to move.
    let again = store.tier(&plan, now, false).unwrap();
    assert!(again.iter().all(|r| r.rows_read == 0), "{again:?}");
    check(&store, &model, &tiers, "after a second run");
}

/// Segment-store faults, injected through the in-memory store: a put or a sync that fails
/// fails the transition with the store's error and changes nothing (no row lost, no stray
/// segment); a read that fails fails the query naming the segment; a delete that fails after
/// the commit leaves only an orphan, which a re-run and the next open clear. Each time, the
/// answers are checked against the model.
#[test]
fn segment_store_faults_lose_nothing_and_a_rerun_completes() {
    let (coins, days) = (12, 200);
    let cfg = GenConfig::hourly(coins, days, 11);
    let start = cfg.start;
    let mut generator = Generator::new(cfg);
    let meta: Vec<CoinMeta> = generator.coin_meta();
    let tiers = tiers();
    let plan = plan();
    let dir = tempfile::tempdir().unwrap();
    let mem = Arc::new(MemSegmentStore::new());
    let options = StoreOptions {
        segment_store: Some(mem.clone() as Arc<dyn SegmentStore>),
        ..Default::default()
    };
    let mut store = Store::open_with(dir.path(), options.clone()).unwrap();
    store.set_runtime(runtime().clone());
    let mut model = Model::new(&meta, tiers.len());
    let mut all = Batch::default();
    for _ in 0..days * 24 {
        let b = generator.next_batch().unwrap();
        model.ingest(&b);
        all.extend_from(&b);
    }
    store.ingest(&all, &meta).unwrap();

    // Day 100: hot → warm, one commit. Each fault fails it and leaves everything as it was.
    let now = start + 100 * DAY;
    for (op, n) in [(Op::Put, 1), (Op::Put, 3), (Op::Sync, 1)] {
        mem.fail(op, n);
        let err = store.tier(&plan, now, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("injected"),
            "{op:?} {n}: {err:#}"
        );
        check(
            &store,
            &model,
            &tiers,
            &format!("after a failed {op:?} {n}"),
        );
        assert!(mem.objects().is_empty(), "{op:?} {n}: segments left behind");
    }
    store.tier(&plan, now, false).unwrap();
    model.run(&tiers, now);
    check(&store, &model, &tiers, "after the re-run at day 100");

    // A read that fails fails the query, naming the segment; the next read works.
    let coin = &model.coins[0];
    mem.fail(Op::Get, 1);
    let err = store.query(coin, i64::MIN, i64::MAX).unwrap_err();
    assert!(format!("{err:#}").contains("segments/warm/"), "{err:#}");
    check(&store, &model, &tiers, "after a failed read");

    // Day 200: warm → cold moves segments; the first delete of a moved one fails after its
    // commit. The rows are where the commit put them; a re-run finishes the move and the next
    // open removes the orphan.
    let now = start + 200 * DAY;
    mem.fail(Op::Delete, 1);
    let err = store.tier(&plan, now, false).unwrap_err();
    assert!(format!("{err:#}").contains("injected"), "{err:#}");
    store.tier(&plan, now, false).unwrap();
    model.run(&tiers, now);
    let orphans = store.verify().unwrap().faults;
    assert!(!orphans.is_empty());
    for f in &orphans {
        assert!(
            format!("{f:?}").contains("not in the catalog"),
            "{orphans:?}"
        );
    }
    drop(store);
    let store = Store::open_with(dir.path(), options).unwrap();
    store.set_runtime(runtime().clone());
    check(
        &store,
        &model,
        &tiers,
        "after the re-run at day 200 and a reopen",
    );
}

/// The collect loop's step (`strata collect`, and a service's): a chunk with a bad row is
/// ingested less that row, which the report names, and what is due moves at once; checked
/// against the model.
#[test]
fn ingest_and_tier_ingests_a_chunk_and_moves_what_is_due() {
    let (coins, days) = (5, 45);
    let Small {
        start,
        mut generator,
        meta,
        tiers,
        plan,
        dir: _dir,
        mut store,
        mut model,
    } = Small::new(coins, days, 3);
    let mut all = Batch::default();
    while let Some(b) = generator.next_batch() {
        all.extend_from(&b);
    }
    model.ingest(&all);
    let rows = all.len() as u64;
    let bad = strata::ingest::RowError {
        file: "poll".into(),
        line: 7,
        field: Some("price".into()),
        message: "not a number".into(),
    };
    let chunk = strata::source::Chunk {
        batch: all,
        coins: meta.clone(),
        errors: vec![bad.clone()],
    };
    let now = start + days as i64 * DAY;
    let c = store.ingest_and_tier(chunk, &plan, now).unwrap();
    model.run(&tiers, now);
    assert_eq!(c.rows, rows);
    assert_eq!(c.errors, [bad]);
    let left = c.moved[0].rows_read;
    assert!(left > 0 && left < rows, "{:?}", c.moved);
    assert_eq!(store.hot_rows().unwrap(), rows - left);
    assert!(c.rows_moved() > 0, "{:?}", c.moved);
    check(&store, &model, &tiers, "after one collect step");
    assert_eq!(
        store.coin_meta(&meta[0].id).unwrap().unwrap().symbol,
        meta[0].symbol
    );
}

/// `disk_usage` reports what the data directory holds, measured here from the filesystem: the
/// database file and its WAL, and every file under `segments/`; after rows leave the hot tier
/// their pages go back to the filesystem, so the file holds only the pages `stats` counts.
#[test]
fn disk_usage_is_what_the_filesystem_holds() {
    let Small {
        start,
        mut generator,
        meta,
        plan,
        dir,
        mut store,
        ..
    } = Small::new(5, 90, 4);
    let mut all = Batch::default();
    while let Some(b) = generator.next_batch() {
        all.extend_from(&b);
    }
    let chunk = strata::source::Chunk {
        batch: all,
        coins: meta,
        errors: vec![],
    };
    store.ingest_and_tier(chunk, &plan, start).unwrap();
    store.checkpoint().unwrap();
    let ingested = store.disk_usage().unwrap();
    assert_eq!(ingested.wal_file, 0);
    let moved = store.tier(&plan, start + 90 * DAY, false).unwrap();
    assert!(moved[0].rows_read > 0, "{moved:?}");
    let u = store.disk_usage().unwrap();
    let len = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert_eq!(u.db_file, len(dir.path().join("strata.db")));
    assert_eq!(u.wal_file, len(dir.path().join("strata.db-wal")));
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|d| {
                d.map(|e| {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        walk(&e.path())
                    } else {
                        e.metadata().unwrap().len()
                    }
                })
                .sum()
            })
            .unwrap_or(0)
    }
    let segs = walk(&dir.path().join("segments"));
    assert!(segs > 0);
    assert_eq!(u.segment_files, segs);
    // The codecs the store keeps (one: jsonl-gzip).
    let kept = files(&dir.path().join("plugins"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(u.components, std::fs::metadata(&kept[0]).unwrap().len());
    assert_eq!(u.total(), u.db_file + u.wal_file + segs + u.components);
    // Two thirds of the rows left: the file shrank (by less than their share: most of it is
    // now tables' and indexes' fixed pages, the rows being sealed), and holds no free page.
    assert_eq!(u.free_pages, 0, "{u:?}");
    assert_eq!(u.wal_file, 0, "{u:?}");
    assert!(u.db_file < ingested.db_file, "{ingested:?} -> {u:?}");
    let hot = &store.stats().unwrap()[0];
    assert_eq!(hot.tier, "hot");
    assert_eq!(hot.bytes, u.db_file, "stats' hot bytes are the file's");
}

/// A small generated market, an empty store on the in-test tiers, and the model beside it.
struct Small {
    start: i64,
    generator: Generator,
    meta: Vec<CoinMeta>,
    tiers: Vec<ModelTier>,
    plan: Plan,
    dir: tempfile::TempDir,
    store: Store,
    model: Model,
}

impl Small {
    fn new(coins: usize, days: usize, seed: u64) -> Small {
        let cfg = GenConfig::hourly(coins, days, seed);
        let start = cfg.start;
        let generator = Generator::new(cfg);
        let meta: Vec<CoinMeta> = generator.coin_meta();
        let tiers = tiers();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_runtime(runtime().clone());
        let model = Model::new(&meta, tiers.len());
        Small {
            start,
            generator,
            meta,
            plan: plan(),
            tiers,
            dir,
            store,
            model,
        }
    }
}

/// Every coin's whole answer (rows bit for bit, each with its tier) and its latest 10.
fn answers_of(store: &Store, model: &Model) -> Vec<(Vec<String>, Vec<String>)> {
    let row = |r: strata::sdk::Row<'_>, tier: &str| {
        format!(
            "{} {:?} {} {tier}",
            r.ts,
            [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits),
            r.rank
        )
    };
    model
        .coins
        .iter()
        .map(|c| {
            let all = store.query(c, i64::MIN, i64::MAX).unwrap();
            let latest = store.latest(c, 10).unwrap();
            (
                (0..all.len())
                    .map(|i| row(all.rows.row(i), &all.tier[i]))
                    .collect(),
                (0..latest.len())
                    .map(|i| row(latest.rows.row(i), &latest.tier[i]))
                    .collect(),
            )
        })
        .collect()
}

/// Segments of `tier` in the catalog.
fn segments_in(store: &Store, tier: &str) -> Vec<strata::catalog::SegmentInfo> {
    store
        .segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.tier == tier)
        .collect()
}

/// Daily transitions leave one small warm segment per day and coin bucket. `strata compact`
/// merges them into a few per bucket: fewer bytes, and every answer the same bit for bit, each row in the same tier;
/// verify passes; a second compaction finds nothing to do.
#[test]
fn compaction_merges_small_segments_and_changes_no_answer() {
    let (coins, days) = (20, 120);
    let Small {
        start,
        mut generator,
        meta,
        tiers,
        plan,
        dir,
        mut store,
        mut model,
    } = Small::new(coins, days, 5);
    let mut all = Batch::default();
    while let Some(b) = generator.next_batch() {
        all.extend_from(&b);
    }
    model.ingest(&all);
    store.ingest(&all, &meta).unwrap();
    // Warm keeps 120 days: nothing leaves it before day 120, so the model holds throughout.
    for day in 31..=days as i64 {
        store.tier(&plan, start + day * DAY, false).unwrap();
        model.run(&tiers, start + day * DAY);
    }
    check(&store, &model, &tiers, "after daily transitions");
    let before = segments_in(&store, "warm");
    let windows: std::collections::BTreeSet<(i64, u32)> =
        before.iter().map(|s| (s.window_start, s.bucket)).collect();
    assert!(
        before.len() > 5 * windows.len(),
        "{} segments",
        before.len()
    );
    let answers = answers_of(&store, &model);

    let on = plan_with("", Compaction::default());
    let dry = store.compact(&on, CompactMode::Full, true).unwrap();
    assert!(
        dry[0].runs > 0 && dry[0].segments_read > dry[0].runs,
        "{dry:?}"
    );
    assert_eq!(
        segments_in(&store, "warm"),
        before,
        "a dry run changes nothing"
    );

    let done = store.compact(&on, CompactMode::Full, false).unwrap();
    assert_eq!(done[0].tier, "warm");
    assert_eq!(done[0].runs, dry[0].runs);
    let after = segments_in(&store, "warm");
    assert!(after.len() < windows.len(), "{} segments", after.len());
    assert_eq!(
        before.iter().map(|s| s.rows).sum::<u64>(),
        after.iter().map(|s| s.rows).sum::<u64>()
    );
    let bytes = |v: &[strata::catalog::SegmentInfo]| v.iter().map(|s| s.bytes).sum::<u64>();
    assert!(
        bytes(&after) < bytes(&before),
        "{} -> {}",
        bytes(&before),
        bytes(&after)
    );
    assert_eq!(
        bytes(&after) + done[0].bytes_before,
        bytes(&before) + done[0].bytes_after
    );
    assert!(
        answers_of(&store, &model) == answers,
        "compaction changed an answer"
    );
    check(&store, &model, &tiers, "after compaction");
    // The old files are gone from the disk.
    let on_disk = files(&dir.path().join("segments/warm")).len();
    assert_eq!(on_disk, after.len());

    let again = store.compact(&on, CompactMode::Full, false).unwrap();
    assert_eq!(again[0].runs, 0, "{again:?}");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    store.set_runtime(runtime().clone());
    check(&store, &model, &tiers, "after reopen");
}

/// With compaction on, `tier` merges as it goes: after 90 daily transitions the warm tier has
/// a few segments per window and bucket, not one per day, and answers as the model says.
#[test]
fn transitions_compact_as_they_go() {
    let (coins, days) = (20, 120);
    let Small {
        start,
        mut generator,
        meta,
        tiers,
        dir: _dir,
        mut store,
        mut model,
        ..
    } = Small::new(coins, days, 5);
    let plan = plan_with("", Compaction::default());
    let mut all = Batch::default();
    while let Some(b) = generator.next_batch() {
        all.extend_from(&b);
    }
    model.ingest(&all);
    store.ingest(&all, &meta).unwrap();
    for day in 31..=days as i64 {
        store.tier(&plan, start + day * DAY, false).unwrap();
        model.run(&tiers, start + day * DAY);
    }
    check(&store, &model, &tiers, "after daily transitions");
    // Each of the 4 buckets got a segment a day for 90 days; a few remain.
    let warm = segments_in(&store, "warm");
    assert!(warm.len() <= 40, "{} segments", warm.len());
}

/// Two stores holding the same generated rows: `Small`'s, whose plan (`off`) has compaction
/// off, and one for the same tiers with compaction on (`on`, `Compaction::default()`).
struct Twins {
    start: i64,
    tiers: Vec<ModelTier>,
    model: Model,
    off: Plan,
    on: Plan,
    plain: Store,
    compacting: Store,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Twins {
    fn new(coins: usize, days: usize, seed: u64) -> Twins {
        let Small {
            start,
            mut generator,
            meta,
            tiers,
            plan: off,
            dir,
            store: mut plain,
            model,
        } = Small::new(coins, days, seed);
        let compacting_dir = tempfile::tempdir().unwrap();
        let mut compacting = Store::open(compacting_dir.path()).unwrap();
        compacting.set_runtime(runtime().clone());
        let mut all = Batch::default();
        while let Some(b) = generator.next_batch() {
            all.extend_from(&b);
        }
        plain.ingest(&all, &meta).unwrap();
        compacting.ingest(&all, &meta).unwrap();
        Twins {
            start,
            tiers,
            model,
            off,
            on: plan_with("", Compaction::default()),
            plain,
            compacting,
            _dirs: (dir, compacting_dir),
        }
    }
}

/// Compacted segments span many windows, yet no row stays in a tier past the window in which it
/// passes its `keep` (as in a tier of one segment per window): a transition splits such a
/// segment at its cut. Two stores take the same data
/// and the same transitions every 5 days, one compacting and one not; the compacting one never
/// holds a row older than that bound, passes verify, and once everything has aged into the
/// last tier both answer every coin the same, bit for bit.
#[test]
fn compacted_segments_split_at_the_cut_and_end_like_uncompacted_ones() {
    let (coins, days) = (12, 420);
    let Twins {
        start,
        tiers,
        model,
        off,
        on,
        mut plain,
        mut compacting,
        _dirs,
    } = Twins::new(coins, days, 9);
    let mut splits = 0;
    for day in (31..=days as i64).step_by(5) {
        let now = start + day * DAY;
        plain.tier(&off, now, false).unwrap();
        let moved = compacting.tier(&on, now, false).unwrap();
        splits += moved.iter().map(|r| r.segments_split).sum::<u64>();
        for t in &tiers[1..tiers.len() - 1] {
            let oldest_allowed = strata::segment::window_start(now - t.keep.unwrap(), t.window);
            for s in segments_in(&compacting, t.name) {
                assert!(
                    s.min_ts >= oldest_allowed,
                    "day {day}: {} holds rows {} ms before the window of its cut: {s:?}",
                    t.name,
                    oldest_allowed - s.min_ts
                );
            }
        }
    }
    assert!(splits > 0, "no transition split a compacted segment");
    let v = compacting.verify().unwrap();
    assert!(v.faults.is_empty(), "{:?}", v.faults);
    assert!(
        segments_in(&compacting, "warm").len() < segments_in(&plain, "warm").len(),
        "compaction merged nothing"
    );
    // Everything ages into the archive: the same rows there, either way.
    let far = start + 4000 * DAY;
    plain.tier(&off, far, false).unwrap();
    compacting.tier(&on, far, false).unwrap();
    assert!(answers_of(&compacting, &model) == answers_of(&plain, &model));
    assert!(segments_in(&compacting, "archive").len() <= segments_in(&plain, "archive").len());
}

/// A backfill writes a tier's consecutive windows into one segment per coin bucket, as
/// compaction would leave them, instead of one per window; daily runs then split them as their
/// windows age out, so no tier holds a row before the window of its cut. Once everything has
/// aged into the archive, every answer equals that of a store writing one segment per window
/// (compaction off), bit for bit and tier for tier; verify passes.
#[test]
fn a_backfill_writes_merged_segments_and_answers_like_one_per_window() {
    let (coins, days) = (12, 400);
    let Twins {
        start,
        tiers,
        model,
        off,
        on,
        mut plain,
        compacting: mut merged,
        _dirs,
    } = Twins::new(coins, days, 13);
    let mut now = start + days as i64 * DAY;
    plain.tier(&off, now, false).unwrap();
    let moved = merged.tier(&on, now, false).unwrap();
    // Warm holds 120 days (4+ windows) and cold the rest: a segment per bucket in each.
    for (i, t) in tiers.iter().enumerate().take(3).skip(1) {
        let segs = segments_in(&merged, t.name);
        assert!(
            !segs.is_empty() && segs.len() <= t.buckets as usize,
            "{}: {} segments",
            t.name,
            segs.len()
        );
        assert!(
            segs.iter()
                .any(|s| strata::segment::window_start(s.max_ts, t.window) > s.window_start),
            "{}: no segment spans windows",
            t.name
        );
        assert!(segments_in(&plain, t.name).len() > segs.len());
        assert!(
            moved[i - 1].segments_written <= t.buckets as u64 * 2,
            "{moved:?}"
        );
    }
    // Daily runs for two cold windows: merged segments are split as their windows age out.
    let mut splits = 0;
    for day in 1..=180 {
        now += DAY;
        plain.tier(&off, now, false).unwrap();
        let moved = merged.tier(&on, now, false).unwrap();
        splits += moved.iter().map(|r| r.segments_split).sum::<u64>();
        for t in &tiers[1..tiers.len() - 1] {
            let oldest = strata::segment::window_start(now - t.keep.unwrap(), t.window);
            for s in segments_in(&merged, t.name) {
                assert!(s.min_ts >= oldest, "day {day}: {} holds {s:?}", t.name);
            }
        }
    }
    assert!(splits > 0, "no merged segment was split");
    let v = merged.verify().unwrap();
    assert!(v.faults.is_empty(), "{:?}", v.faults);
    let far = now + 4000 * DAY;
    plain.tier(&off, far, false).unwrap();
    merged.tier(&on, far, false).unwrap();
    assert!(answers_of(&merged, &model) == answers_of(&plain, &model));
}
