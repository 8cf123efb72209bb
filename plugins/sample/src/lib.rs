//! `sample`: keeps the first row of each coin in each calendar bucket (every N hours or days,
//! ISO week, month, quarter, year; UTC). A warm tier of daily samples is `every = "1d"`.
//!
//! Rule, per coin, over rows sorted by time: a row is kept when its bucket is later than the
//! bucket of the last row kept for that coin (in this batch or, through `last-kept`, in the
//! destination tier). Rows at or before the last kept timestamp are never kept: a tier only
//! grows forward in time, which is what makes any split into windows give the same answer.

use strata_plugin_sdk::bucket;
use strata_plugin_sdk::{Batch, Options, PluginInfo, Policy, PolicyInfo, Result, Selection};

#[derive(Default)]
pub struct Sample;

impl Policy for Sample {
    fn describe(&self) -> PolicyInfo {
        PolicyInfo {
            info: PluginInfo {
                name: "sample".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "keep the first row per coin per calendar bucket".into(),
                options: vec![bucket::every_option()],
            },
            rolls_up: false,
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
        // Per coin: (last kept ts, its bucket start), seeded from the destination tier.
        let mut last: Vec<Option<(i64, i64)>> = last_kept
            .iter()
            .map(|l| l.map(|t| b.start(t).map(|s| (t, s))).transpose())
            .collect::<Result<_>>()?;
        let mut keep = Vec::new();
        for i in 0..batch.len() {
            let c = batch.coin_index[i] as usize;
            let ts = batch.ts[i];
            let start = b.start(ts)?;
            let kept = match last[c] {
                None => true,
                Some((t, s)) => ts > t && start > s,
            };
            if kept {
                keep.push(i as u32);
                last[c] = Some((ts, start));
            }
        }
        Ok(Selection::Keep(keep))
    }
}

strata_plugin_sdk::export_policy!(Sample);

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plugin_sdk::select_checked;

    const HOUR: i64 = 3_600_000;

    fn hourly(coins: &[&str], hours: i64) -> Batch {
        let mut b = Batch::default();
        for (c, name) in coins.iter().enumerate() {
            b.coins.push(name.to_string());
            for h in 0..hours {
                b.push(c as u32, h * HOUR + 17, h as f64, 0.0, 0.0, 0.0, 0);
            }
        }
        b
    }

    fn keep(b: &Batch, last: &[Option<i64>], every: &str) -> Vec<u32> {
        let opts = [("every".to_string(), every.to_string())];
        match select_checked(&Sample, b, last, &opts).unwrap() {
            Selection::Keep(k) => k,
            Selection::Rollup(_) => unreachable!("sample never rolls up"),
        }
    }

    #[test]
    fn keeps_first_row_of_each_day_per_coin() {
        let b = hourly(&["a", "b"], 72);
        assert_eq!(keep(&b, &[None, None], "1d"), [0, 24, 48, 72, 96, 120]);
        assert_eq!(keep(&b, &[None, None], "6h").len(), 2 * 12);
        // A coin whose day 0 is already kept starts at day 1.
        assert_eq!(keep(&b, &[Some(5), None], "1d"), [24, 48, 72, 96, 120]);
    }

    #[test]
    fn rejects_bad_bucket() {
        let opts = [("every".to_string(), "fortnight".to_string())];
        let err = strata_plugin_sdk::check_checked(&Sample, &opts).unwrap_err();
        assert!(err.to_string().contains("option `every`"), "{err}");
    }
}
