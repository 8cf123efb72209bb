//! A rollup policy written by an attacker. It declares `rolls-up = true`; in `honest` mode it is
//! a correct daily rollup: `bucket-starts` gives the start of each timestamp's UTC day, and
//! `select` returns one row per (coin, day) at the day's start carrying the values of the day's
//! last row, with the extra columns the built-in `rollup` writes (`open`, `high`, `low`,
//! `count`), and leaves out days at or before the coin's `last-kept`. The option `mode` breaks
//! one rule at a time:
//!
//! | `mode` | what it does | what the host must do |
//! |---|---|---|
//! | `honest` | the daily rollup above | move the rows; rows younger than the tier's `keep` stay hot |
//! | `late-starts` | `bucket-starts` returns each timestamp + 10 years (after it) | refuse (an error naming `bucket-starts`); every hot row stays |
//! | `unequal-starts` | `bucket-starts` returns the day start minus the position in the list, so equal timestamps get different starts | the same |
//! | `future-rows` | the honest rollup plus, per coin, a row at the day start 100 years after the input's last row | refuse (an error naming `select`), `last_kept` untouched |
//! | `foreign-coin` | the honest rollup plus a row of a coin that is not in the input | the same |
//! | `off-bucket` | the honest rollup with every row 1 ms after its bucket start | the same |
//!
//! In every mode but `late-starts` and `unequal-starts`, `bucket-starts` is honest; `select`
//! always buckets by the honest day start.
//!
//! The component is bound to the WIT world by hand rather than through the SDK's
//! `export_policy!`, so nothing on the guest side stands between the attack and the host.

use strata_plugin_sdk::{
    Batch, Error, OptionSpec, Options, PluginInfo, PolicyInfo, Result, Selection,
};

/// Every `mode` the policy takes.
pub const MODES: [&str; 6] = [
    "honest",
    "late-starts",
    "unequal-starts",
    "future-rows",
    "foreign-coin",
    "off-bucket",
];

/// The coin `foreign-coin` adds (it sorts after the test data's `coin-NNNNN` ids).
pub const FOREIGN_COIN: &str = "zz-foreign-coin";

const DAY_MS: i64 = 86_400_000;
/// Ten and a hundred years of 365 days.
const TEN_YEARS_MS: i64 = 3650 * DAY_MS;
const CENTURY_MS: i64 = 36_500 * DAY_MS;

/// What the policy says about itself: it rolls up.
pub fn describe() -> PolicyInfo {
    PolicyInfo {
        info: PluginInfo {
            name: "hostile-rollup".into(),
            version: "0.0.0".into(),
            description: "test guest: a daily rollup that breaks its contract on request".into(),
            options: vec![OptionSpec::new(
                "mode",
                &MODES.join("|"),
                "honest",
                "how to misbehave (see the crate's documentation)",
            )],
        },
        rolls_up: true,
    }
}

/// The `mode` option, checked.
fn mode(opts: &[(String, String)]) -> Result<String> {
    let opts = Options::parse(opts, &describe().info.options)?;
    let mode = opts.get("mode").unwrap_or("honest");
    if !MODES.contains(&mode) {
        return Err(Error::InvalidOptions(format!(
            "option `mode`: `{mode}` is not one of {}",
            MODES.join(", ")
        )));
    }
    Ok(mode.to_string())
}

/// The start of the UTC day holding `ts`.
pub fn day_start(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS) * DAY_MS
}

pub fn check_options(opts: &[(String, String)]) -> Result<()> {
    mode(opts).map(|_| ())
}

pub fn bucket_starts(ts: &[i64], opts: &[(String, String)]) -> Result<Vec<i64>> {
    let mode = mode(opts)?;
    Ok(ts
        .iter()
        .enumerate()
        .map(|(i, &t)| match mode.as_str() {
            "late-starts" => t.saturating_add(TEN_YEARS_MS),
            "unequal-starts" => day_start(t) - i as i64,
            _ => day_start(t),
        })
        .collect())
}

/// The honest daily rollup of `batch` (sorted by (coin, ts)), skipping days at or before each
/// coin's `last_kept`. Rows keep the input's dictionary.
pub fn rollup(batch: &Batch, last_kept: &[Option<i64>]) -> Batch {
    let mut out = Batch {
        coins: batch.coins.clone(),
        ..Batch::default()
    };
    let cols = ["open", "high", "low", "count"].map(|n| out.add_extra(n));
    // (first row, last row, high, low, count) of the (coin, day) being summed up.
    let mut acc: Option<(usize, usize, f64, f64, f64)> = None;
    let emit = |out: &mut Batch, (first, last, high, low, count): (usize, usize, f64, f64, f64)| {
        out.push(
            batch.coin_index[last],
            day_start(batch.ts[last]),
            batch.price[last],
            batch.market_cap[last],
            batch.volume[last],
            batch.supply[last],
            batch.rank[last],
        );
        for (c, v) in cols.iter().zip([batch.price[first], high, low, count]) {
            *out.extra[*c].values.last_mut().expect("just pushed") = v;
        }
    };
    for i in 0..batch.len() {
        let (coin, start) = (batch.coin_index[i], day_start(batch.ts[i]));
        if last_kept
            .get(coin as usize)
            .copied()
            .flatten()
            .is_some_and(|t| start <= t)
        {
            continue;
        }
        let same = acc
            .is_some_and(|(f, ..)| batch.coin_index[f] == coin && day_start(batch.ts[f]) == start);
        if !same && let Some(done) = acc.take() {
            emit(&mut out, done);
        }
        let p = batch.price[i];
        let a = acc.get_or_insert((i, i, f64::NAN, f64::NAN, 0.0));
        // `max`/`min` skip NaN ("unknown") unless both are.
        *a = (a.0, i, a.2.max(p), a.3.min(p), a.4 + 1.0);
    }
    if let Some(done) = acc {
        emit(&mut out, done);
    }
    out
}

/// The honest rollup, then broken as the `mode` option says.
pub fn select(
    batch: &Batch,
    last_kept: &[Option<i64>],
    opts: &[(String, String)],
) -> Result<Selection> {
    let mode = mode(opts)?;
    let mut out = rollup(batch, last_kept);
    match mode.as_str() {
        "future-rows" => {
            let when = batch
                .ts
                .iter()
                .max()
                .map_or(0, |&t| day_start(t + CENTURY_MS));
            // One more row after each coin's last (rows stay sorted by (coin, ts)).
            let mut with_future = Batch {
                coins: out.coins.clone(),
                ..Batch::default()
            };
            for c in &out.extra {
                with_future.add_extra(&c.name);
            }
            for i in 0..out.len() {
                let row = out.row(i);
                with_future.push(
                    out.coin_index[i],
                    row.ts,
                    row.price,
                    row.market_cap,
                    row.volume,
                    row.supply,
                    row.rank,
                );
                for (k, c) in out.extra.iter().enumerate() {
                    *with_future.extra[k].values.last_mut().expect("just pushed") = c.values[i];
                }
                if i + 1 == out.len() || out.coin_index[i + 1] != out.coin_index[i] {
                    with_future.push(
                        out.coin_index[i],
                        when,
                        row.price,
                        row.market_cap,
                        row.volume,
                        row.supply,
                        row.rank,
                    );
                }
            }
            out = with_future;
        }
        "foreign-coin" => {
            let at = batch.ts.first().map_or(0, |&t| day_start(t));
            out.coins.push(FOREIGN_COIN.into());
            let c = (out.coins.len() - 1) as u32;
            out.push(c, at, 1.0, 1.0e9, 1.0e6, 1.0e9, 1);
        }
        "off-bucket" => {
            for t in &mut out.ts {
                *t += 1;
            }
        }
        _ => {}
    }
    Ok(Selection::Rollup(out))
}

/// The component: the WIT `retention-policy` bound straight to the functions above.
#[cfg(target_arch = "wasm32")]
mod component {
    use strata_plugin_sdk::Selection;
    use strata_plugin_sdk::guest::policy_world::exports::strata::plugin::retention_policy as api;
    use strata_plugin_sdk::guest::policy_world::strata::plugin::types as wit;

    struct HostileRollup;

    impl api::Guest for HostileRollup {
        fn describe() -> api::PolicyInfo {
            let i = super::describe();
            api::PolicyInfo {
                info: i.info.into(),
                rolls_up: i.rolls_up,
            }
        }

        fn check_options(opts: wit::Options) -> Result<(), wit::Error> {
            Ok(super::check_options(&opts)?)
        }

        fn bucket_starts(ts: Vec<i64>, opts: wit::Options) -> Result<Vec<i64>, wit::Error> {
            Ok(super::bucket_starts(&ts, &opts)?)
        }

        fn select(
            data: wit::Batch,
            last_kept: Vec<Option<i64>>,
            opts: wit::Options,
        ) -> Result<api::Selection, wit::Error> {
            Ok(match super::select(&data.into(), &last_kept, &opts)? {
                Selection::Keep(k) => api::Selection::Keep(k),
                Selection::Rollup(b) => api::Selection::Rollup(b.into()),
            })
        }
    }

    strata_plugin_sdk::guest::policy_world::__export_policy_world!(
        HostileRollup with_types_in strata_plugin_sdk::guest::policy_world
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: &str) -> Vec<(String, String)> {
        vec![("mode".into(), mode.into())]
    }

    /// Two coins, 3 days of 8-hourly rows.
    fn sample() -> Batch {
        let mut b = Batch {
            coins: vec!["coin-a".into(), "coin-b".into()],
            ..Batch::default()
        };
        for c in 0..2u32 {
            for k in 0..9i64 {
                b.push(
                    c,
                    10 * DAY_MS + k * 8 * 3_600_000,
                    (c * 100) as f64 + k as f64,
                    1.0,
                    2.0,
                    3.0,
                    c + 1,
                );
            }
        }
        b
    }

    #[test]
    fn honest_is_a_daily_rollup_of_the_last_rows() {
        let b = sample();
        let Selection::Rollup(r) = select(&b, &[None, Some(10 * DAY_MS)], &opts("honest")).unwrap()
        else {
            panic!("not a rollup");
        };
        r.validate().unwrap();
        assert!(r.is_sorted_by_coin_ts());
        // coin-a: 3 days; coin-b: day 10 is already kept.
        assert_eq!(r.len(), 5);
        assert_eq!(r.ts[..3], [10 * DAY_MS, 11 * DAY_MS, 12 * DAY_MS]);
        assert_eq!(r.price[..3], [2.0, 5.0, 8.0]);
        assert_eq!(r.extra("open").unwrap()[..3], [0.0, 3.0, 6.0]);
        assert_eq!(r.extra("count").unwrap()[..3], [3.0, 3.0, 3.0]);
        assert_eq!(r.ts[3..], [11 * DAY_MS, 12 * DAY_MS]);
    }

    #[test]
    fn each_mode_breaks_its_rule() {
        let b = sample();
        let none = [None, None];
        let rolled = |m: &str| match select(&b, &none, &opts(m)).unwrap() {
            Selection::Rollup(r) => r,
            Selection::Keep(_) => panic!("not a rollup"),
        };
        let future = rolled("future-rows");
        assert_eq!(future.len(), 8);
        assert!(future.is_sorted_by_coin_ts());
        assert!(future.ts.iter().filter(|&&t| t > 36_000 * DAY_MS).count() == 2);
        let foreign = rolled("foreign-coin");
        assert_eq!(foreign.coins.last().unwrap(), FOREIGN_COIN);
        assert!(foreign.is_sorted_by_coin_ts());
        assert!(rolled("off-bucket").ts.iter().all(|t| t % DAY_MS == 1));
        let ts = [5 * DAY_MS + 7, 5 * DAY_MS + 7];
        assert!(
            bucket_starts(&ts, &opts("late-starts"))
                .unwrap()
                .iter()
                .all(|&s| s > ts[0])
        );
        let unequal = bucket_starts(&ts, &opts("unequal-starts")).unwrap();
        assert_ne!(unequal[0], unequal[1]);
    }
}
