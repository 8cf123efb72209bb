//! Storage planning: how many bytes each tier of a policy will hold, year by year, and what that
//! costs on local disk and object storage. What `strata plan` prints; it replaces the original
//! prototype's storage-analysis script.
//!
//! The model, per tier `i` with ages `[keep(i-1), keep(i))` (the hot tier starts at age 0, the
//! last tier never ends):
//!
//! - rows per coin per year = how many buckets the tier's retention plugin makes of a year of
//!   timestamps at the collection interval (asked of the plugin itself through
//!   `bucket-starts`, so a new rule needs no change here), or every row for the hot tier;
//! - bytes per record = the tier codec's size on a sample of the data after that tier's
//!   retention (measured, not assumed); the hot tier uses an estimate of SQLite's row cost;
//! - at the end of year `y` the tier holds the part of its age range that is younger than `y`.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::plugin::{PluginRef, Runtime};
use crate::policy::{Policy, Tier};
use crate::sdk::{Batch, Selection};

const HOUR_MS: i64 = 3_600_000;
const YEAR_MS: i64 = 31_557_600_000; // 365.25 days

/// What to plan for.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub coins: u64,
    /// Collection interval, ms.
    pub interval: i64,
    pub years: u32,
    /// Bytes per hot-tier row in SQLite (tables, index and free space in pages). The default
    /// is what `strata demo` measures on a full hot tier (13,532 coins × 30 days hourly,
    /// ingested in bulk: 65 B); `demo` passes its own store's figure.
    pub hot_bytes_per_record: f64,
    /// Storage prices in USD per GB-month: (class, price).
    pub prices: Vec<(String, f64)>,
}

/// Default storage prices, USD per GB-month (list prices of common classes, late 2025).
pub fn default_prices() -> Vec<(String, f64)> {
    [
        ("local-ssd", 0.08),
        ("object-standard", 0.023),
        ("object-infrequent", 0.0125),
        ("object-archive", 0.00099),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            coins: 13_532,
            interval: HOUR_MS,
            years: 5,
            hot_bytes_per_record: 65.0,
            prices: default_prices(),
        }
    }
}

/// One tier's figures.
#[derive(Clone, Debug, Serialize)]
pub struct TierPlan {
    pub tier: String,
    pub codec: String,
    /// Rows per coin per year this tier keeps.
    pub rows_per_coin_year: f64,
    pub bytes_per_record: f64,
    /// Bytes held at the end of each year, 1..=years.
    pub bytes_by_year: Vec<f64>,
    /// Where the tier lives: `local` or its bucket URL.
    pub location: String,
    /// The price class it is charged at (`local-ssd`, `object-standard`, …).
    pub price_class: String,
    /// Monthly cost of the final year's bytes at that class's price, USD.
    pub monthly_cost: f64,
}

/// A storage forecast: every tier's bytes by year and their cost (`strata plan`). Not to be
/// confused with [`tiering::Plan`](crate::tiering::Plan), a policy's tiers with plugins loaded.
#[derive(Clone, Debug, Serialize)]
pub struct Forecast {
    pub policy: String,
    pub coins: u64,
    pub interval_ms: i64,
    pub years: u32,
    pub tiers: Vec<TierPlan>,
    /// Total bytes at the end of each year.
    pub total_by_year: Vec<f64>,
    /// Bytes if every hourly row were kept as raw JSON Lines, for scale.
    pub naive_jsonl_bytes: f64,
    /// Monthly cost of the final year's total per price class.
    pub monthly_cost: Vec<(String, f64)>,
    /// Monthly cost of the final year with each tier priced where the policy puts it, USD.
    pub policy_monthly_cost: f64,
}

/// The price class of a tier: the local disk, or its bucket's storage class.
pub fn price_class(tier: &Tier) -> &'static str {
    use crate::policy::StorageClass;
    match tier.storage_class {
        StorageClass::Local => "local-ssd",
        StorageClass::Standard => "object-standard",
        StorageClass::Infrequent => "object-infrequent",
        StorageClass::Archive => "object-archive",
    }
}

/// Hourly-or-so timestamps over one year, for asking a retention plugin how many buckets it
/// makes of a year.
fn one_year_of_ts(interval: i64) -> Vec<i64> {
    let start = 1_704_067_200_000; // 2024-01-01, a leap year: the plugin sees a real calendar
    (0..YEAR_MS / interval)
        .map(|i| start + i * interval)
        .collect()
}

/// Builds the plan. `sample` is representative data (sorted or not) used to measure each tier
/// codec's bytes per record after that tier's retention.
pub fn plan(rt: &Runtime, policy: &Policy, sample: &Batch, opts: &PlanOptions) -> Result<Forecast> {
    let sample = sample.sorted();
    let year_ts = one_year_of_ts(opts.interval);
    let mut tiers = Vec::new();
    let mut start_age = 0i64;
    for (i, tier) in policy.tiers.iter().enumerate() {
        let end_age = tier.keep.unwrap_or(i64::MAX);
        let (rows_per_year, bpr, codec) = if i == 0 {
            (
                year_ts.len() as f64,
                opts.hot_bytes_per_record,
                "sqlite".to_string(),
            )
        } else {
            tier_figures(rt, tier, &sample, &year_ts)
                .with_context(|| format!("planning tier `{}`", tier.name))?
        };
        let bytes_by_year = (1..=opts.years as i64)
            .map(|y| {
                let held_ms = (end_age.min(y * YEAR_MS) - start_age).max(0);
                opts.coins as f64 * rows_per_year * (held_ms as f64 / YEAR_MS as f64) * bpr
            })
            .collect::<Vec<f64>>();
        let class = price_class(tier);
        let price = opts
            .prices
            .iter()
            .find(|(k, _)| k == class)
            .map_or(0.0, |(_, p)| *p);
        let monthly_cost = bytes_by_year.last().copied().unwrap_or(0.0) / 1e9 * price;
        tiers.push(TierPlan {
            tier: tier.name.clone(),
            codec,
            rows_per_coin_year: rows_per_year,
            bytes_per_record: bpr,
            bytes_by_year,
            location: tier.store.clone().unwrap_or_else(|| "local".into()),
            price_class: class.to_string(),
            monthly_cost,
        });
        start_age = end_age;
    }
    let total_by_year: Vec<f64> = (0..opts.years as usize)
        .map(|y| tiers.iter().map(|t| t.bytes_by_year[y]).sum())
        .collect();
    let last = total_by_year.last().copied().unwrap_or(0.0);
    let jsonl_bpr = crate::compare::jsonl_bytes(&sample) as f64 / sample.len().max(1) as f64;
    Ok(Forecast {
        policy: policy.name.clone(),
        coins: opts.coins,
        interval_ms: opts.interval,
        years: opts.years,
        naive_jsonl_bytes: opts.coins as f64 * year_ts.len() as f64 * opts.years as f64 * jsonl_bpr,
        monthly_cost: opts
            .prices
            .iter()
            .map(|(k, p)| (k.clone(), last / 1e9 * p))
            .collect(),
        policy_monthly_cost: tiers.iter().map(|t| t.monthly_cost).sum(),
        tiers,
        total_by_year,
    })
}

/// Rows per coin per year, bytes per record and codec name of one segment tier.
fn tier_figures(
    rt: &Runtime,
    tier: &Tier,
    sample: &Batch,
    year_ts: &[i64],
) -> Result<(f64, f64, String)> {
    let retention = tier.retention.as_ref().context("tier has no retention")?;
    let codec_spec = tier.codec.as_ref().context("tier has no codec")?;
    let policy = rt.policy(&retention.plugin)?;
    let mut starts = policy.bucket_starts(year_ts, &retention.options)?;
    starts.dedup();
    let rows_per_year = starts.len() as f64;
    let kept = match policy.select(sample, &vec![None; sample.coins.len()], &retention.options)? {
        Selection::Keep(k) => sample.take(&k),
        Selection::Rollup(b) => b,
    };
    let codec = rt.codec(&PluginRef {
        source: codec_spec.plugin.source.clone(),
        sha256: codec_spec.plugin.sha256.clone(),
    })?;
    let bytes = codec.encode(&kept, &codec_spec.options)?;
    Ok((
        rows_per_year,
        bytes.len() as f64 / kept.len().max(1) as f64,
        codec.meta.name.clone(),
    ))
}

/// Human units: 1.23 GB.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}

/// The plan as an aligned table.
pub fn table(p: &Forecast) -> String {
    let mut out = format!(
        "policy `{}`: {} coins every {}, {} years\n\n",
        p.policy,
        p.coins,
        humantime::format_duration(std::time::Duration::from_millis(p.interval_ms as u64)),
        p.years
    );
    out += &format!(
        "{:<10} {:<12} {:>12} {:>8}",
        "tier", "codec", "rows/coin/y", "B/rec"
    );
    for y in 1..=p.years {
        out += &format!(" {:>11}", format!("year {y}"));
    }
    out += "\n";
    for t in &p.tiers {
        out += &format!(
            "{:<10} {:<12} {:>12.1} {:>8.2}",
            t.tier, t.codec, t.rows_per_coin_year, t.bytes_per_record
        );
        for b in &t.bytes_by_year {
            out += &format!(" {:>11}", human_bytes(*b));
        }
        out += "\n";
    }
    out += &format!("{:<10} {:<12} {:>12} {:>8}", "total", "", "", "");
    for b in &p.total_by_year {
        out += &format!(" {:>11}", human_bytes(*b));
    }
    out += &format!(
        "\n\nevery hourly row as raw JSONL for {} years would take {}; this policy keeps {} ({:.0}x less)\n",
        p.years,
        human_bytes(p.naive_jsonl_bytes),
        human_bytes(*p.total_by_year.last().unwrap_or(&0.0)),
        p.naive_jsonl_bytes / p.total_by_year.last().copied().unwrap_or(1.0).max(1.0)
    );
    out += "monthly cost of the final year's data, all in one class:";
    for (k, c) in &p.monthly_cost {
        out += &format!("  {k} ${c:.2}");
    }
    out += "\nmonthly cost where the policy keeps each tier:";
    for t in &p.tiers {
        out += &format!(
            "  {} ({} at {}) ${:.2}",
            t.tier, t.price_class, t.location, t.monthly_cost
        );
    }
    out + &format!("  = ${:.2}\n", p.policy_monthly_cost)
}
