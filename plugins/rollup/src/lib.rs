//! `rollup`: replaces each coin's rows in a calendar bucket (every N hours or days, ISO week,
//! month, quarter, year; UTC) with one row that summarises them. Field by field:
//!
//! | column | rolled-up value |
//! |---|---|
//! | `ts` | the bucket's start |
//! | `price` | close: the last known price in the bucket |
//! | extra `open` | the first known price (the first `open`, when rolling up rollups) |
//! | extra `high` | the highest price (highest `high`) |
//! | extra `low` | the lowest price (lowest `low`) |
//! | `market_cap` | the largest known market cap |
//! | `volume` | the mean of the known 24h volumes (weighted by `count` for rollups of rollups) |
//! | `supply` | the last known circulating supply |
//! | `rank` | the last known rank (non-zero) |
//! | extra `count` | how many observations the row summarises |
//!
//! "Known" skips NaN (and rank 0); a bucket with no known value gets NaN (rank 0). A bucket is
//! emitted once: rows whose bucket starts at or before the coin's last kept row in the
//! destination (`last-kept`, itself a bucket start) are dropped. The host only hands over whole
//! buckets (the policy says `rolls-up`), so windows never split one.

use strata_plugin_sdk::bucket;
use strata_plugin_sdk::{Batch, Options, PluginInfo, Policy, PolicyInfo, Result, Selection};

#[derive(Default)]
pub struct Rollup;

/// The running summary of one (coin, bucket).
struct Acc {
    coin: u32,
    start: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    cap: f64,
    vol_sum: f64,
    vol_n: f64,
    supply: f64,
    rank: u32,
    count: f64,
}

impl Acc {
    fn new(coin: u32, start: i64) -> Acc {
        Acc {
            coin,
            start,
            open: f64::NAN,
            high: f64::NAN,
            low: f64::NAN,
            close: f64::NAN,
            cap: f64::NAN,
            vol_sum: 0.0,
            vol_n: 0.0,
            supply: f64::NAN,
            rank: 0,
            count: 0.0,
        }
    }
}

/// `f64::max`/`min` that treat NaN as "unknown" rather than as a value.
fn known(a: f64, b: f64, pick: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        pick(a, b)
    }
}

/// Column `name` of `b`, or `fallback` when the input has no such column (raw observations).
fn column<'a>(b: &'a Batch, name: &str, fallback: &'a [f64]) -> &'a [f64] {
    b.extra(name).unwrap_or(fallback)
}

impl Policy for Rollup {
    fn describe(&self) -> PolicyInfo {
        PolicyInfo {
            info: PluginInfo {
                name: "rollup".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "one row per coin per bucket: OHLC price, max market cap, mean volume, last supply and rank"
                    .into(),
                options: vec![bucket::every_option()],
            },
            rolls_up: true,
        }
    }

    fn check(&self, opts: &Options) -> Result<()> {
        bucket::from_options(opts).map(|_| ())
    }

    fn bucket_starts(&self, ts: &[i64], opts: &Options) -> Result<Vec<i64>> {
        bucket::starts(ts, opts)
    }

    fn select(
        &self,
        batch: &Batch,
        last_kept: &[Option<i64>],
        opts: &Options,
    ) -> Result<Selection> {
        let b = bucket::from_options(opts)?;
        let ones = vec![1.0; batch.len()];
        let (open, high, low) = (
            column(batch, "open", &batch.price),
            column(batch, "high", &batch.price),
            column(batch, "low", &batch.price),
        );
        let count = column(batch, "count", &ones);

        let mut out = Batch {
            coins: batch.coins.clone(),
            ..Batch::default()
        };
        let cols = ["open", "high", "low", "count"].map(|n| out.add_extra(n));
        let emit = |a: Acc, out: &mut Batch| {
            let mean = if a.vol_n > 0.0 {
                a.vol_sum / a.vol_n
            } else {
                f64::NAN
            };
            out.push(a.coin, a.start, a.close, a.cap, mean, a.supply, a.rank);
            for (c, v) in cols.iter().zip([a.open, a.high, a.low, a.count]) {
                *out.extra[*c].values.last_mut().expect("just pushed") = v;
            }
        };

        let mut acc: Option<Acc> = None;
        for i in 0..batch.len() {
            let coin = batch.coin_index[i];
            let start = b.start(batch.ts[i])?;
            if last_kept[coin as usize].is_some_and(|t| start <= t) {
                continue; // this bucket is already in the destination
            }
            if acc
                .as_ref()
                .is_some_and(|a| a.coin != coin || a.start != start)
                && let Some(done) = acc.take()
            {
                emit(done, &mut out);
            }
            let a = acc.get_or_insert_with(|| Acc::new(coin, start));
            let n = if count[i].is_nan() { 1.0 } else { count[i] };
            if a.open.is_nan() {
                a.open = open[i];
            }
            a.high = known(a.high, high[i], f64::max);
            a.low = known(a.low, low[i], f64::min);
            if !batch.price[i].is_nan() {
                a.close = batch.price[i];
            }
            a.cap = known(a.cap, batch.market_cap[i], f64::max);
            if !batch.volume[i].is_nan() {
                a.vol_sum += batch.volume[i] * n;
                a.vol_n += n;
            }
            if !batch.supply[i].is_nan() {
                a.supply = batch.supply[i];
            }
            if batch.rank[i] != 0 {
                a.rank = batch.rank[i];
            }
            a.count += n;
        }
        if let Some(done) = acc {
            emit(done, &mut out);
        }
        Ok(Selection::Rollup(out))
    }
}

strata_plugin_sdk::export_policy!(Rollup);

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plugin_sdk::select_checked;

    const HOUR: i64 = 3_600_000;

    fn rollup(b: &Batch, last: &[Option<i64>], every: &str) -> Batch {
        let opts = [("every".to_string(), every.to_string())];
        match select_checked(&Rollup, b, last, &opts).unwrap() {
            Selection::Rollup(r) => r,
            Selection::Keep(_) => unreachable!("rollup always rolls up"),
        }
    }

    fn day() -> Batch {
        let mut b = Batch::default();
        b.coins.push("btc".into());
        let prices = [10.0, 14.0, f64::NAN, 7.0, 11.0];
        for (h, p) in prices.iter().enumerate() {
            let vol = if h == 1 { f64::NAN } else { h as f64 * 2.0 };
            b.push(
                0,
                h as i64 * HOUR,
                *p,
                100.0 + h as f64,
                vol,
                21.0 + h as f64,
                if h == 4 { 0 } else { 3 },
            );
        }
        b.push(0, 25 * HOUR, 99.0, 1.0, 1.0, 1.0, 1);
        b
    }

    #[test]
    fn summarises_each_bucket_field_by_field() {
        let r = rollup(&day(), &[None], "1d");
        assert_eq!(r.len(), 2);
        assert_eq!(r.ts, [0, 24 * HOUR]);
        assert_eq!(r.extra("open").unwrap()[0], 10.0);
        assert_eq!(r.extra("high").unwrap()[0], 14.0);
        assert_eq!(r.extra("low").unwrap()[0], 7.0);
        assert_eq!(r.price[0], 11.0, "close");
        assert_eq!(r.market_cap[0], 104.0);
        assert_eq!(r.volume[0], (0.0 + 4.0 + 6.0 + 8.0) / 4.0);
        assert_eq!(r.supply[0], 25.0);
        assert_eq!(r.rank[0], 3, "last non-zero rank");
        assert_eq!(r.extra("count").unwrap(), [5.0, 1.0]);
    }

    #[test]
    fn rollups_of_rollups_keep_extremes_and_weights() {
        let daily = rollup(&day(), &[None], "1d");
        let weekly = rollup(&daily, &[None], "week");
        assert_eq!(weekly.len(), 1);
        assert_eq!(weekly.extra("high").unwrap()[0], 99.0);
        assert_eq!(weekly.extra("low").unwrap()[0], 7.0);
        assert_eq!(weekly.extra("open").unwrap()[0], 10.0);
        assert_eq!(weekly.extra("count").unwrap()[0], 6.0);
        // Daily means weighted by the observations each summarises: (4.5 × 5 + 1 × 1) / 6.
        assert_eq!(weekly.volume[0], (4.5 * 5.0 + 1.0) / 6.0);
    }

    #[test]
    fn buckets_already_kept_are_not_emitted_again() {
        let r = rollup(&day(), &[Some(0)], "1d");
        assert_eq!(r.ts, [24 * HOUR]);
    }
}
