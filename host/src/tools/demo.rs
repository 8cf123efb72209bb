//! `strata demo`: the main job end to end, at full scale, on generated data and the built-in
//! default policy — no network, no files, no arguments.
//!
//! It generates a market of 13,532 coins whose history is dense where the default policy keeps
//! every row and sparser where it keeps samples anyway (hourly for the last 30 days, daily back
//! to one year, weekly back to six years, so that every tier fills), ingests it into a fresh
//! store, runs the tier transitions, queries a few coins across tiers, and measures the codecs
//! and the 5-year storage plan on a sample of the store's own rows. The CLI draws progress bars
//! from [`Event`]s and prints the [`Report`].

use std::time::Instant;

use anyhow::{Context, Result};
use strata_plugin_sdk::Batch;

use crate::compare::{self, CompareOptions, Figures};
use crate::generate::{GenConfig, Generator};
use crate::plugin::Runtime;
use crate::policy;
use crate::store::Store;
use crate::tiering::{DAY_MS, MoveReport, Plan};
use crate::verify::TierStats;

const HOUR_MS: i64 = 3_600_000;

/// What the demo generates.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub coins: usize,
    /// Days of hourly rows before `now`.
    pub hourly_days: i64,
    /// Days of daily rows before the hourly ones start (back to `daily_until` days ago).
    pub daily_until: i64,
    /// Weekly rows from this many days ago up to the daily ones.
    pub weekly_from: i64,
    /// The demo's "now" (ms UTC, a midnight): data ends just before it and tiers age against it.
    pub now: i64,
    pub seed: u64,
    /// Coins whose hot-tier rows make the sample for `compare` and `plan`.
    pub sample_coins: usize,
    /// The policy the store ages through (default: the default policy).
    pub policy: Option<crate::policy::Policy>,
}

impl Default for DemoConfig {
    fn default() -> DemoConfig {
        DemoConfig {
            coins: 13_532,
            hourly_days: 30,
            daily_until: 365,
            weekly_from: 6 * 365,
            now: 1_767_225_600_000, // 2026-01-01T00:00Z
            seed: 2026,
            sample_coins: 150,
            policy: None,
        }
    }
}

impl DemoConfig {
    /// The timestamps of every generated step, oldest first: weekly, then daily, then hourly.
    pub fn schedule(&self) -> Vec<i64> {
        let hourly_from = self.now - self.hourly_days * DAY_MS;
        let daily_from = self.now - self.daily_until * DAY_MS;
        let mut t = self.now - self.weekly_from * DAY_MS;
        let mut out = Vec::new();
        while t < daily_from {
            out.push(t);
            t += 7 * DAY_MS;
        }
        t = t.max(daily_from);
        while t < hourly_from {
            out.push(t);
            t += DAY_MS;
        }
        t = t.max(hourly_from);
        while t < self.now {
            out.push(t);
            t += HOUR_MS;
        }
        out
    }
}

/// Progress, for the CLI's bars.
#[derive(Clone, Debug)]
pub enum Event {
    /// A step begins; `total` units (rows, codecs, ...) when known.
    Start { step: &'static str, total: u64 },
    /// `n` more units done.
    Advance(u64),
    /// The step is done.
    Finish,
}

/// A query of one coin across every tier.
#[derive(Clone, Debug)]
pub struct CoinQuery {
    pub coin: String,
    /// Why this coin: `largest`, `median` or `smallest` by rank at the end.
    pub label: &'static str,
    /// Rows per tier, hottest first, tiers without rows left out.
    pub rows_by_tier: Vec<(String, usize)>,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub last_price: f64,
    pub millis: f64,
}

/// Everything the demo did and measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: DemoConfig,
    pub steps: usize,
    pub rows_generated: u64,
    pub generate_secs: f64,
    pub ingest_secs: f64,
    pub tier: Vec<MoveReport>,
    pub tier_secs: f64,
    pub stats: Vec<TierStats>,
    pub queries: Vec<CoinQuery>,
    pub sample_rows: usize,
    pub compare: Vec<Figures>,
    pub plan: crate::plan::Forecast,
    pub total_secs: f64,
}

/// Rows per ingest call: big enough to be a bulk import, small enough to bound memory.
const INGEST_CHUNK: usize = 1 << 22;

/// Runs the demo in `store` (which should be empty).
pub fn run(
    cfg: &DemoConfig,
    rt: &Runtime,
    store: &mut Store,
    progress: &mut dyn FnMut(Event),
) -> Result<Report> {
    let started = Instant::now();
    store.set_runtime(rt.clone());
    // Every built-in plugin is compiled (into the runtime's cache; a first run's is empty) on
    // the core the generator leaves idle, not when the transitions and the comparison first
    // need one. A plugin that fails to load fails there again, with its error.
    let warm_up = std::thread::spawn({
        let rt = rt.clone();
        move || {
            for b in crate::plugin::BUILTINS {
                let _ = rt.load(&crate::plugin::PluginRef::parse(b.name));
            }
        }
    });
    let schedule = cfg.schedule();
    let mut generator = Generator::new(GenConfig {
        coins: cfg.coins,
        start: schedule[0],
        steps: schedule.len(),
        interval: HOUR_MS,
        seed: cfg.seed,
    });
    let meta = generator.coin_meta();

    // Generate and ingest, a chunk of steps at a time.
    let expect = (schedule.len() * cfg.coins) as u64 * 94 / 100;
    progress(Event::Start {
        step: "generate and ingest",
        total: expect,
    });
    let (mut generate_secs, mut ingest_secs) = (0.0, 0.0);
    let mut rows_generated = 0u64;
    let mut chunk = Batch::with_capacity(INGEST_CHUNK + cfg.coins);
    chunk.coins = meta.iter().map(|m| m.id.clone()).collect();
    let mut first = true;
    let mut flush = |chunk: &mut Batch, secs: &mut f64, first: &mut bool| -> Result<()> {
        let t = Instant::now();
        store
            .ingest(chunk, if *first { &meta } else { &[] })
            .context("ingesting generated rows")?;
        *first = false;
        *secs += t.elapsed().as_secs_f64();
        let coins = std::mem::take(&mut chunk.coins);
        *chunk = Batch::with_capacity(INGEST_CHUNK + coins.len());
        chunk.coins = coins;
        Ok(())
    };
    let mut newest = Batch::default();
    for &ts in &schedule {
        let t = Instant::now();
        newest = generator
            .next_batch_at(ts)
            .expect("one batch per scheduled step");
        chunk.append_rows(&newest);
        generate_secs += t.elapsed().as_secs_f64();
        rows_generated += newest.len() as u64;
        progress(Event::Advance(newest.len() as u64));
        if chunk.len() >= INGEST_CHUNK {
            flush(&mut chunk, &mut ingest_secs, &mut first)?;
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut ingest_secs, &mut first)?;
    }
    drop(chunk);
    progress(Event::Finish);

    warm_up.join().expect("loading a plugin does not panic");

    // Age everything against the demo's "now".
    let policy = cfg.policy.clone().unwrap_or_else(policy::default_policy);
    let plan = Plan::from_policy(rt, &policy)?;
    progress(Event::Start {
        step: "tier transitions",
        total: 0,
    });
    let t = Instant::now();
    let tier = store.tier(&plan, cfg.now, false)?;
    let tier_secs = t.elapsed().as_secs_f64();
    progress(Event::Finish);
    let t = Instant::now();
    let stats = store.stats()?;
    let stats_ms = t.elapsed().as_secs_f64() * 1e3;

    let queries = query_picks(store, &newest, &stats)?;
    tracing::debug!(
        stats_ms,
        queries_ms = t.elapsed().as_secs_f64() * 1e3 - stats_ms,
        "demo: stats and queries"
    );
    let t = Instant::now();

    // Codecs and the plan, on the hot-tier rows of a sample of coins.
    let mut sample = Batch::default();
    let step = (cfg.coins / cfg.sample_coins.max(1)).max(1);
    for m in meta.iter().step_by(step).take(cfg.sample_coins) {
        if store.coin_id(&m.id).is_none() {
            continue;
        }
        let a = store.query(&m.id, cfg.now - cfg.hourly_days * DAY_MS, cfg.now)?;
        sample.extend_from(&a.rows);
    }
    tracing::debug!(
        sample_ms = t.elapsed().as_secs_f64() * 1e3,
        "demo: the sample's rows"
    );
    let t = Instant::now();
    let codecs = compare::builtin_codecs();
    progress(Event::Start {
        step: "compare codecs",
        total: codecs.len() as u64,
    });
    let figures = compare::compare(rt, &sample, &CompareOptions::default(), |_| {
        progress(Event::Advance(1))
    });
    progress(Event::Finish);
    tracing::debug!(
        compare_ms = t.elapsed().as_secs_f64() * 1e3,
        "demo: codecs compared"
    );
    let t = Instant::now();
    let hot_bytes_per_record = stats
        .first()
        .and_then(TierStats::bytes_per_record)
        .unwrap_or(crate::plan::PlanOptions::default().hot_bytes_per_record);
    let plan = crate::plan::plan(
        rt,
        &policy,
        &sample,
        &crate::plan::PlanOptions {
            hot_bytes_per_record,
            ..Default::default()
        },
    )?;
    tracing::debug!(plan_ms = t.elapsed().as_secs_f64() * 1e3, "demo: plan");

    Ok(Report {
        config: cfg.clone(),
        steps: schedule.len(),
        rows_generated,
        generate_secs,
        ingest_secs,
        tier,
        tier_secs,
        stats,
        queries,
        sample_rows: sample.len(),
        compare: figures,
        plan,
        total_secs: started.elapsed().as_secs_f64(),
    })
}

/// One coin's whole history across tiers, for a few coins of `newest` (the last batch): the
/// largest, one from the middle and the smallest by rank, timed.
fn query_picks(store: &Store, newest: &Batch, stats: &[TierStats]) -> Result<Vec<CoinQuery>> {
    let mut by_rank: Vec<(u32, &str)> = (0..newest.len())
        .filter(|&r| newest.rank[r] > 0)
        .map(|r| {
            let coin = &newest.coins[newest.coin_index[r] as usize];
            (newest.rank[r], coin.as_str())
        })
        .collect();
    by_rank.sort_unstable();
    let picks: Vec<(&'static str, String)> = [
        ("largest", 0),
        ("median", by_rank.len() / 2),
        ("smallest", by_rank.len().saturating_sub(1)),
    ]
    .into_iter()
    .filter_map(|(label, i)| by_rank.get(i).map(|(_, c)| (label, c.to_string())))
    .collect();
    let mut queries = Vec::new();
    for (label, coin) in picks {
        let t = Instant::now();
        let a = store.query(&coin, i64::MIN, i64::MAX)?;
        let millis = t.elapsed().as_secs_f64() * 1e3;
        let mut rows_by_tier: Vec<(String, usize)> = Vec::new();
        for tier in &a.tier {
            match rows_by_tier.iter_mut().find(|(n, _)| **n == **tier) {
                Some(slot) => slot.1 += 1,
                None => rows_by_tier.push((tier.to_string(), 1)),
            }
        }
        let order = |n: &str| stats.iter().position(|s| s.tier == n).unwrap_or(usize::MAX);
        rows_by_tier.sort_by_key(|(n, _)| order(n));
        queries.push(CoinQuery {
            rows_by_tier,
            first_ts: a.rows.ts.first().copied(),
            last_ts: a.rows.ts.last().copied(),
            last_price: a.rows.price.last().copied().unwrap_or(f64::NAN),
            millis,
            coin,
            label,
        });
    }
    Ok(queries)
}
