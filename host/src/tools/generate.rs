//! A synthetic market generator: realistic, deterministic for a seed. Tests and the benchmark
//! use it, and `strata generate` writes its output as canonical CSV or JSONL for users.
//!
//! The model, per coin (each coin has its own random stream derived from the seed and its
//! index, so coin `i` is the same whatever the number of coins or the order of generation):
//!
//! - a market cap drawn from a log-normal spread (median ≈ $5 M, σ = 2.5 in log space, so a
//!   few coins are worth billions and most are small), and a starting price log-uniform between
//!   $0.0001 and $1000; circulating supply = cap / price;
//! - price: a geometric random walk with a per-coin hourly volatility (0.3 %–3 %);
//! - supply: grows slowly, changing at a few random hours a month;
//! - volume: a log-normal fraction (≈ 1–20 %) of market cap, varying hourly;
//! - listings and delistings: about 20 % of coins list during the period, about 10 % delist;
//! - missing hours: each row is absent with probability 1 %, and a value is unknown (NaN) with
//!   probability 0.5 % (volume) or 0.2 % (supply, then market cap too);
//! - Coinpaprika-like precision: prices with at most 8 decimals (10 significant digits below
//!   $0.01), market caps, volumes and supplies as whole numbers;
//! - rank: the coin's position by market cap among the coins listed at that hour.

use rand::rngs::Xoshiro256PlusPlus as StdRng;
use rand::{RngExt, SeedableRng};
use strata_plugin_sdk::Batch;

use crate::source::CoinMeta;

const HOUR_MS: i64 = 3_600_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub coins: usize,
    /// First timestamp, ms UTC.
    pub start: i64,
    /// Number of steps.
    pub steps: usize,
    /// Step between observations, ms (1 h by default).
    pub interval: i64,
    pub seed: u64,
}

impl GenConfig {
    /// `coins` coins, `days` days of hourly data from 2024-01-01T00:00Z.
    pub fn hourly(coins: usize, days: usize, seed: u64) -> GenConfig {
        GenConfig {
            coins,
            start: 1_704_067_200_000,
            steps: days * 24,
            interval: HOUR_MS,
            seed,
        }
    }
}

struct CoinState {
    rng: StdRng,
    price: f64,
    supply: f64,
    vol: f64,
    listed: usize,
    delisted: usize,
}

/// Generates one batch per time step, all coins, in time order.
pub struct Generator {
    cfg: GenConfig,
    coins: Vec<CoinState>,
    ids: Vec<String>,
    step: usize,
    /// Timestamp of the previous step (`None` before the first).
    last_ts: Option<i64>,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn round_price(p: f64) -> f64 {
    if p >= 0.01 {
        (p * 1e8).round() / 1e8
    } else {
        let digits = 9 - p.log10().floor() as i32;
        let scale = 10f64.powi(digits);
        (p * scale).round() / scale
    }
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Generator {
        let mut coins = Vec::with_capacity(cfg.coins);
        let mut ids = Vec::with_capacity(cfg.coins);
        for i in 0..cfg.coins {
            let mut rng =
                StdRng::seed_from_u64(cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let cap = (15.4 + 2.5 * normal(&mut rng)).exp();
            let price = 10f64.powf(rng.random_range(-4.0..3.0));
            let vol = rng.random_range(0.003..0.03);
            let steps = cfg.steps.max(1);
            let listed = if rng.random_bool(0.2) {
                rng.random_range(0..steps)
            } else {
                0
            };
            let delisted = if rng.random_bool(0.1) {
                rng.random_range(listed..=steps)
            } else {
                usize::MAX
            };
            coins.push(CoinState {
                rng,
                price,
                supply: (cap / price).round().max(1.0),
                vol,
                listed,
                delisted,
            });
            ids.push(format!("coin-{i:05}"));
        }
        Generator {
            cfg,
            coins,
            ids,
            step: 0,
            last_ts: None,
        }
    }

    /// Symbol and name of every coin.
    pub fn coin_meta(&self) -> Vec<CoinMeta> {
        (0..self.cfg.coins)
            .map(|i| CoinMeta {
                id: self.ids[i].clone(),
                symbol: Some(format!("C{i}")),
                name: Some(format!("Coin {i}")),
            })
            .collect()
    }

    /// The next step's batch (every listed coin, minus missing rows), or `None` at the end.
    /// The dictionary holds every coin, in index order.
    pub fn next_batch(&mut self) -> Option<Batch> {
        let ts = self.cfg.start + self.step as i64 * self.cfg.interval;
        self.next_batch_at(ts)
    }

    /// Like [`next_batch`](Generator::next_batch), but the step is at `ts`, which must be
    /// after the previous step's: for schedules of uneven density (hourly recently, daily or
    /// weekly before). The walk's variance and the chance of a supply change grow with the
    /// time since the previous step, so a sparse series looks like a sample of a dense one.
    pub fn next_batch_at(&mut self, ts: i64) -> Option<Batch> {
        if self.step >= self.cfg.steps {
            return None;
        }
        let step = self.step;
        self.step += 1;
        let hours = match self.last_ts {
            Some(prev) => {
                assert!(ts > prev, "generator steps must move forward in time");
                (ts - prev) as f64 / HOUR_MS as f64
            }
            None => self.cfg.interval as f64 / HOUR_MS as f64,
        };
        self.last_ts = Some(ts);
        let scale = hours.sqrt();
        let supply_change = (0.005 * hours).min(1.0);
        let mut b = Batch::with_capacity(self.coins.len());
        b.coins = self.ids.clone();
        let mut caps: Vec<(f64, u32)> = Vec::with_capacity(self.coins.len());
        for (i, c) in self.coins.iter_mut().enumerate() {
            // The walk advances every step, listed or not, so a coin's path is fixed by its seed.
            let z = normal(&mut c.rng);
            let vol = c.vol * scale;
            c.price *= (vol * z - 0.5 * vol * vol).exp();
            if c.rng.random_bool(supply_change) {
                c.supply = (c.supply * c.rng.random_range(1.0..1.01)).round();
            }
            let vol_frac = (-3.0 + 0.8 * normal(&mut c.rng)).exp();
            let missing = c.rng.random_bool(0.01);
            let no_volume = c.rng.random_bool(0.005);
            let no_supply = c.rng.random_bool(0.002);
            if step < c.listed || step >= c.delisted || missing {
                continue;
            }
            let price = round_price(c.price);
            let (supply, cap) = if no_supply {
                (f64::NAN, f64::NAN)
            } else {
                (c.supply, (price * c.supply).round())
            };
            let volume = if no_volume {
                f64::NAN
            } else {
                (price * c.supply * vol_frac).round()
            };
            caps.push((if cap.is_nan() { 0.0 } else { cap }, i as u32));
            b.push(i as u32, ts, price, cap, volume, supply, 0);
        }
        // Rank by market cap, largest first; unknown caps get no rank.
        let mut by_cap: Vec<usize> = (0..caps.len()).collect();
        by_cap.sort_by(|&x, &y| {
            caps[y]
                .0
                .total_cmp(&caps[x].0)
                .then(caps[x].1.cmp(&caps[y].1))
        });
        for (r, &row) in by_cap.iter().enumerate() {
            if caps[row].0 > 0.0 {
                b.rank[row] = r as u32 + 1;
            }
        }
        Some(b)
    }

    /// Everything at once, in time order.
    pub fn all(mut self) -> Batch {
        let mut out = Batch::with_capacity(self.cfg.coins * self.cfg.steps);
        out.coins = self.ids.clone();
        while let Some(b) = self.next_batch() {
            out.append_rows(&b);
        }
        out
    }
}

/// Writes `batch` as canonical CSV (`coin,ts,price,market_cap,volume,supply,rank`; empty =
/// unknown; floats in shortest round-trip form).
pub fn write_csv(batch: &Batch, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "coin,ts,price,market_cap,volume,supply,rank")?;
    let mut line = String::new();
    for r in batch.rows() {
        use std::fmt::Write as _;
        line.clear();
        let _ = write!(line, "{},{}", r.coin, r.ts);
        for v in [r.price, r.market_cap, r.volume, r.supply] {
            line.push(',');
            if !v.is_nan() {
                let _ = write!(line, "{v:?}");
            }
        }
        line.push(',');
        if r.rank > 0 {
            let _ = write!(line, "{}", r.rank);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_realistic() {
        let a = Generator::new(GenConfig::hourly(200, 10, 7)).all();
        let b = Generator::new(GenConfig::hourly(200, 10, 7)).all();
        assert!(a.bit_eq(&b));
        let c = Generator::new(GenConfig::hourly(200, 10, 8)).all();
        assert!(!a.bit_eq(&c));
        // Coin 3's path does not depend on how many coins there are (its rank does).
        let small = Generator::new(GenConfig::hourly(5, 10, 7)).all();
        let pick = |x: &Batch| {
            let mut b = x.filter_coins(&["coin-00003".to_string()]);
            b.rank.iter_mut().for_each(|r| *r = 0);
            b
        };
        assert!(pick(&a).bit_eq(&pick(&small)));

        let n = a.len();
        let full = 200 * 240;
        assert!(n < full && n > full * 8 / 10, "{n} of {full}");
        assert!(a.volume.iter().any(|v| v.is_nan()));
        assert!(
            a.price
                .iter()
                .all(|&p| p > 0.0 && (p * 1e8).round() / 1e8 == p || p < 0.01)
        );
        assert!(
            a.market_cap
                .iter()
                .filter(|m| !m.is_nan())
                .all(|m| m.fract() == 0.0)
        );
        // Market caps spread over orders of magnitude.
        let mut caps: Vec<f64> = a.market_cap.iter().copied().filter(|m| *m > 0.0).collect();
        caps.sort_by(f64::total_cmp);
        assert!(caps[caps.len() * 99 / 100] / caps[caps.len() / 100] > 1e4);
        // Rank 1 exists at every hour that has rows.
        assert!(a.rank.iter().filter(|&&r| r == 1).count() >= 240);
    }

    #[test]
    fn csv_has_header_and_empty_unknowns() {
        let mut b = Batch::default();
        b.coins.push("x".into());
        b.push(0, 5, 1.5, f64::NAN, -0.0, 2.0, 0);
        let mut out = Vec::new();
        write_csv(&b, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "coin,ts,price,market_cap,volume,supply,rank\nx,5,1.5,,-0.0,2.0,\n"
        );
    }
}
