//! Float columns (price, supply, market cap, volume): per block, the cheapest of several
//! lossless encodings, each a *prediction* plus a *residual code*.
//!
//! Methods (3 bits in the block header):
//! - `Constant`: every value in the block has the same bits: 1 bit saying it repeats the
//!   previous value, else 64 raw bits; no per-value data.
//! - `Raw`: 64 raw bits per value (the fallback for noise).
//! - `Delta`: the residual is the wrapping difference of the IEEE bit patterns of value and
//!   prediction, zigzagged. For positive doubles the bit pattern is monotonic in the value, so a
//!   good prediction gives a small residual; this beats XOR for random walks.
//! - `Xor`: Gorilla/Chimp-style XOR of the bit patterns.
//! - `Decimal(e)`: ALP/VictoriaMetrics-style exact decimal scaling: `d = round(v * 10^e)` with
//!   `d / 10^e == v` bit for bit; the residual is `d - round(pred * 10^e)`. Values that do not
//!   scale exactly (NaN, -0.0, too many digits) are escaped with their 64 raw bits.
//!
//! Predictors (2 bits): `Prev` (the column's previous value in the coin), `Ratio`
//! (`price * prev / prev_price`: market cap from price and the previous implied supply),
//! `Product` (`price * supply` of the same row) and `RatioMedian` (price times the median of the
//! last five implied supplies, robust to the noise in CoinGecko's market caps). The encoder tries every allowed combination and
//! keeps the one with the smallest estimated size.

use strata_plugin_sdk::{Error, Result};

use crate::bitio::{BitReader, BitWriter};
use crate::entropy::{
    ESC, SparseHist, SymSink, SymSource, get_code, put_code, symbol_of, unzigzag, zigzag,
};

/// Exact powers of ten up to the largest decimal exponent the format uses.
const P10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];
const MAX_E: usize = P10.len() - 1;
/// Magnitudes below 2^53 convert between f64 and i64 exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Constant = 0,
    Raw = 1,
    Delta = 2,
    Xor = 3,
    Decimal = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pred {
    Prev = 0,
    Ratio = 1,
    Product = 2,
    RatioMedian = 3,
}

impl Pred {
    fn from_bits(b: u64) -> Result<Pred> {
        Ok(match b {
            0 => Pred::Prev,
            1 => Pred::Ratio,
            2 => Pred::Product,
            3 => Pred::RatioMedian,
            _ => return Err(Error::corrupt(format!("unknown float predictor {b}"))),
        })
    }
}

/// The other columns a prediction may use, coin-relative: row `r` of the coin is index `r`.
#[derive(Clone, Copy)]
pub struct Refs<'a> {
    pub price: &'a [f64],
    pub supply: &'a [f64],
}

/// The prediction for row `r`, given the column's previous value `prev` (0.0 before the first)
/// and `median`, the [`Window`] median of its last five implied ratios (used by `RatioMedian`).
#[inline]
fn predict(pred: Pred, r: usize, prev: f64, median: f64, refs: Refs<'_>) -> f64 {
    let price = refs.price.get(r).copied().unwrap_or(f64::NAN);
    let p = match pred {
        Pred::Prev => return prev,
        Pred::Ratio => match r.checked_sub(1).and_then(|q| refs.price.get(q)) {
            Some(&prev_price) => price * (prev / prev_price),
            None => return prev,
        },
        Pred::Product => price * refs.supply.get(r).copied().unwrap_or(f64::NAN),
        Pred::RatioMedian => price * median,
    };
    if p.is_finite() { p } else { prev }
}

/// The last five ratios `value / price` of a column (implied supplies for market cap).
struct Window {
    v: [f64; 5],
    n: usize,
}

impl Window {
    /// The window before row `r`, from the column's earlier values `hist`.
    fn before(r: usize, hist: &[f64], refs: Refs<'_>) -> Window {
        let mut w = Window { v: [0.0; 5], n: 0 };
        for q in r.saturating_sub(5)..r {
            w.push(q, hist.get(q).copied().unwrap_or(f64::NAN), refs);
        }
        w
    }

    /// Adds the ratio of row `q`, dropping the oldest (`v` stays oldest first).
    #[inline]
    fn push(&mut self, q: usize, value: f64, refs: Refs<'_>) {
        self.v.copy_within(1.., 0);
        self.v[4] = value / refs.price.get(q).copied().unwrap_or(f64::NAN);
        self.n += 1;
    }

    /// The median of the five, or NaN (so the prediction falls back to `Prev`) when there are
    /// fewer or any is NaN.
    #[inline]
    fn median(&self) -> f64 {
        if self.n < 5 || self.v.iter().any(|x| x.is_nan()) {
            return f64::NAN;
        }
        median5(self.v)
    }
}

/// The median of five non-NaN values in IEEE total order, on integer keys: branch-free, and the
/// same on every platform (float `min`/`max` may pick either zero when comparing -0.0 with +0.0).
///
/// The first four are sorted (5 comparators) and the median is the last one clamped between
/// their middle two. When decoding, the last is the ratio of the row just decoded while the
/// other four are older, so only the clamp waits for the newest value.
#[inline]
fn median5(v: [f64; 5]) -> f64 {
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        b ^ (((b >> 63) as u64) >> 1) as i64
    };
    let mut k = [v[0], v[1], v[2], v[3]].map(key);
    for (a, b) in [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)] {
        let (lo, hi) = (k[a].min(k[b]), k[a].max(k[b]));
        k[a] = lo;
        k[b] = hi;
    }
    let m = key(v[4]).max(k[1]).min(k[2]);
    // `key` is an involution: applying it again gives back the bits.
    f64::from_bits(key(f64::from_bits(m as u64)) as u64)
}

/// `v` as a decimal with `e` digits after the point, if that is exact.
#[inline]
fn to_decimal(v: f64, e: usize) -> Option<i64> {
    let x = v * P10[e];
    // NaN fails this test too.
    if x.abs().partial_cmp(&EXACT) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let d = x.round() as i64;
    ((d as f64 / P10[e]).to_bits() == v.to_bits()).then_some(d)
}

/// A prediction in decimal units (any deterministic integer will do: the residual absorbs it).
#[inline]
fn pred_decimal(p: f64, e: usize) -> i64 {
    let x = p * P10[e];
    if x.abs() < EXACT { x.round() as i64 } else { 0 }
}

/// The smallest exponent at which a sample of the block's values is exactly decimal.
fn find_exponent(vals: &[f64]) -> Option<usize> {
    let step = (vals.len() / 16).max(1);
    let sample: Vec<f64> = vals
        .iter()
        .step_by(step)
        .copied()
        .filter(|v| v.is_finite() && *v != 0.0)
        .take(16)
        .collect();
    if sample.is_empty() {
        return None;
    }
    (0..=MAX_E).find(|&e| sample.iter().all(|&v| to_decimal(v, e).is_some()))
}

/// A per-value encoding: method, predictor and (for `Decimal`) exponent.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Choice {
    method: Method,
    pred: Pred,
    e: usize,
}

/// Calls `f` with the symbol and code of each of rows `lo..hi` of `col` under `choice`, until
/// `f` returns false.
#[inline(always)]
fn each_code(
    choice: Choice,
    col: &[f64],
    lo: usize,
    hi: usize,
    refs: Refs<'_>,
    mut f: impl FnMut(u8, u64) -> bool,
) {
    let mut prev = if lo == 0 { 0.0 } else { col[lo - 1] };
    let windowed = choice.pred == Pred::RatioMedian;
    let mut window = Window::before(if windowed { lo } else { 0 }, col, refs);
    for (r, &v) in col.iter().enumerate().take(hi).skip(lo) {
        let p = predict(choice.pred, r, prev, window.median(), refs);
        if windowed {
            window.push(r, v, refs);
        }
        let (sym, code) = match choice.method {
            Method::Delta => {
                let c = zigzag(v.to_bits().wrapping_sub(p.to_bits()) as i64);
                (symbol_of(c), c)
            }
            Method::Xor => {
                let c = v.to_bits() ^ p.to_bits();
                (symbol_of(c), c)
            }
            Method::Decimal => match to_decimal(v, choice.e) {
                Some(d) => {
                    let c = zigzag(d.wrapping_sub(pred_decimal(p, choice.e)));
                    (symbol_of(c), c)
                }
                None => (ESC, v.to_bits()),
            },
            Method::Constant | Method::Raw => unreachable!("not a per-value method"),
        };
        if !f(sym, code) {
            return;
        }
        prev = v;
    }
}

/// The estimated size of rows `lo..hi` under `choice`, in bits; their (symbol, code) pairs go
/// to `codes`, so that the winner need not be computed again. `None` when the candidate cannot
/// beat `best` bits: the estimate is raw bits plus a non-negative entropy, so once the raw bits
/// alone pass `best` the rest of the block need not be tried (the choice is the same).
#[allow(clippy::too_many_arguments)]
fn trial(
    choice: Choice,
    col: &[f64],
    lo: usize,
    hi: usize,
    refs: Refs<'_>,
    codes: &mut Vec<(u8, u64)>,
    hist: &mut SparseHist,
    best: Option<f64>,
) -> Option<f64> {
    // raw > best  <=>  raw > floor(best), for integer raw.
    let limit = best.map_or(u64::MAX, |b| b.floor() as u64);
    codes.clear();
    let mut beaten = false;
    each_code(choice, col, lo, hi, refs, |sym, code| {
        hist.add(sym);
        codes.push((sym, code));
        beaten = hist.raw > limit;
        !beaten
    });
    if beaten {
        hist.clear();
        return None;
    }
    Some(hist.take_estimate())
}

/// How a block of a float column is coded, as chosen by [`encode_header`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plan {
    /// No per-value data.
    Constant,
    /// 64 raw bits per value.
    Raw,
    /// A residual code per value.
    Coded(Choice),
}

/// Chooses how to code rows `lo..hi` of the coin-relative column `col` and writes the block
/// header into `bits`. For a `Coded` plan, `codes` receives each row's (symbol, code), which
/// [`put_value`] writes; `spare` is scratch space.
#[allow(clippy::too_many_arguments)]
pub fn encode_header(
    col: &[f64],
    lo: usize,
    hi: usize,
    preds: &[Pred],
    refs: Refs<'_>,
    bits: &mut BitWriter,
    codes: &mut Vec<(u8, u64)>,
    spare: &mut Vec<(u8, u64)>,
) -> Plan {
    codes.clear();
    let block = &col[lo..hi];
    let first = block[0].to_bits();
    if block.iter().all(|v| v.to_bits() == first) {
        bits.write(Method::Constant as u64, 3);
        // 1 bit: the constant is the column's previous value (0.0 before the first).
        let prev = if lo == 0 { 0 } else { col[lo - 1].to_bits() };
        bits.write(u64::from(first != prev), 1);
        if first != prev {
            bits.write(first, 64);
        }
        return Plan::Constant;
    }
    let mut best: Option<(Choice, f64)> = None;
    let mut hist = SparseHist::default();
    let mut consider = |choice: Choice| {
        let cost = trial(
            choice,
            col,
            lo,
            hi,
            refs,
            spare,
            &mut hist,
            best.map(|b| b.1),
        );
        if let Some(cost) = cost
            && best.is_none_or(|(_, c)| cost < c)
        {
            best = Some((choice, cost));
            std::mem::swap(codes, spare);
        }
    };
    // `Product` without a supply in the block would only repeat `Prev`.
    let has_supply = refs
        .supply
        .get(lo..hi)
        .is_some_and(|s| s.iter().any(|v| v.is_finite()));
    let preds = || {
        preds
            .iter()
            .copied()
            .filter(move |&p| p != Pred::Product || has_supply)
    };
    for pred in preds() {
        consider(Choice {
            method: Method::Delta,
            pred,
            e: 0,
        });
    }
    consider(Choice {
        method: Method::Xor,
        pred: Pred::Prev,
        e: 0,
    });
    if let Some(e) = find_exponent(block) {
        for pred in preds() {
            consider(Choice {
                method: Method::Decimal,
                pred,
                e,
            });
        }
    }
    let (choice, cost) = best.expect("at least one candidate");
    // Raw costs 64 bits a value; the symbol streams cost at least a little more than estimated.
    if cost > (block.len() * 64) as f64 {
        bits.write(Method::Raw as u64, 3);
        codes.clear();
        return Plan::Raw;
    }
    bits.write(choice.method as u64, 3);
    bits.write(choice.pred as u64, 2);
    if choice.method == Method::Decimal {
        bits.write(choice.e as u64, 5);
    }
    Plan::Coded(choice)
}

/// Writes the value of one row under `plan`: its code (from [`encode_header`]) or its raw bits.
#[inline(always)]
pub fn put_value(
    plan: Plan,
    value: f64,
    code: Option<&(u8, u64)>,
    fam: usize,
    ctx: &mut usize,
    sink: &mut impl SymSink,
    bits: &mut BitWriter,
) {
    match (plan, code) {
        (Plan::Raw, _) => bits.write(value.to_bits(), 64),
        (Plan::Coded(_), Some(&(sym, code))) => put_code(sink, bits, fam, ctx, sym, code),
        _ => {}
    }
}

/// How a block is decoded, from its header.
#[derive(Clone, Copy)]
enum Kind {
    Constant(f64),
    Raw,
    Coded {
        method: Method,
        pred: Pred,
        e: usize,
    },
}

/// Decodes one float column of a block value by value: [`Cursor::header`] reads the block
/// header, [`Cursor::next`] each value. Version 1 segments read a column's values right after
/// its header, version 2 segments a row of every column at a time.
pub struct Cursor {
    kind: Kind,
    /// The coin-relative row of the next value.
    r: usize,
    prev: f64,
    window: Window,
}

impl Cursor {
    /// Reads a block header. `col` holds the coin's values so far, `refs` the other columns'
    /// (the window of `RatioMedian` starts from them).
    pub fn header(col: &[f64], refs: Refs<'_>, bits: &mut BitReader<'_>) -> Result<Cursor> {
        let r = col.len();
        let prev = col.last().copied().unwrap_or(0.0);
        let method = bits.read(3);
        let kind = match method {
            m if m == Method::Constant as u64 => {
                let v = if bits.read(1) == 0 {
                    prev
                } else {
                    f64::from_bits(bits.read(64))
                };
                Kind::Constant(v)
            }
            m if m == Method::Raw as u64 => Kind::Raw,
            m if m == Method::Delta as u64 || m == Method::Xor as u64 => Kind::Coded {
                method: if m == Method::Delta as u64 {
                    Method::Delta
                } else {
                    Method::Xor
                },
                pred: Pred::from_bits(bits.read(2))?,
                e: 0,
            },
            m if m == Method::Decimal as u64 => {
                let pred = Pred::from_bits(bits.read(2))?;
                let e = bits.read(5) as usize;
                if e > MAX_E {
                    return Err(Error::corrupt(format!("decimal exponent {e} is too large")));
                }
                Kind::Coded {
                    method: Method::Decimal,
                    pred,
                    e,
                }
            }
            m => return Err(Error::corrupt(format!("unknown float method {m}"))),
        };
        let windowed = matches!(
            kind,
            Kind::Coded {
                pred: Pred::RatioMedian,
                ..
            }
        );
        let window = Window::before(if windowed { r } else { 0 }, col, refs);
        Ok(Cursor {
            kind,
            r,
            prev,
            window,
        })
    }

    /// The block's value when it is `Constant` (every row has it).
    pub fn constant(&self) -> Option<f64> {
        match self.kind {
            Kind::Constant(v) => Some(v),
            _ => None,
        }
    }

    /// The next value. `refs` must hold the other columns' rows up to this one.
    #[inline(always)]
    pub fn next(
        &mut self,
        refs: Refs<'_>,
        fam: usize,
        ctx: &mut usize,
        src: &mut impl SymSource,
        bits: &mut BitReader<'_>,
    ) -> Result<f64> {
        let r = self.r;
        self.r += 1;
        let v = match self.kind {
            Kind::Constant(v) => v,
            Kind::Raw => f64::from_bits(bits.read(64)),
            Kind::Coded { method, pred, e } => {
                let windowed = pred == Pred::RatioMedian;
                let median = if windowed {
                    self.window.median()
                } else {
                    f64::NAN
                };
                let p = predict(pred, r, self.prev, median, refs);
                let (sym, code) = get_code(src, bits, fam, ctx)?;
                let v = match method {
                    Method::Decimal if sym == ESC => f64::from_bits(code),
                    Method::Decimal => {
                        let d = pred_decimal(p, e).wrapping_add(unzigzag(code));
                        d as f64 / P10[e]
                    }
                    _ if sym == ESC => {
                        return Err(Error::corrupt("escape symbol in a delta/xor block"));
                    }
                    Method::Xor => f64::from_bits(p.to_bits() ^ code),
                    _ => f64::from_bits(p.to_bits().wrapping_add(unzigzag(code) as u64)),
                };
                if windowed {
                    self.window.push(r, v, refs);
                }
                v
            }
        };
        self.prev = v;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_detection_is_exact() {
        assert_eq!(to_decimal(0.1, 1), Some(1));
        assert_eq!(to_decimal(123.456_789_01, 8), Some(12_345_678_901));
        assert_eq!(to_decimal(0.1, 0), None);
        assert_eq!(
            to_decimal(-0.0, 3),
            None,
            "-0.0 must escape, not decode as +0.0"
        );
        assert_eq!(to_decimal(f64::NAN, 2), None);
        assert_eq!(to_decimal(1e300, 0), None);
        assert_eq!(find_exponent(&[1.5, 2.25, 0.125]), Some(3));
        assert_eq!(find_exponent(&[0.220_802_220_124_483_22]), None);
        assert_eq!(find_exponent(&[0.0, f64::NAN]), None);
    }

    #[test]
    fn median5_matches_a_sort() {
        let mut seed = 3u64;
        let vals = [
            -1.5,
            -0.0,
            0.0,
            1.0,
            2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
        ];
        for _ in 0..20_000 {
            let v: [f64; 5] = std::array::from_fn(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                vals[(seed >> 60) as usize % vals.len()]
            });
            let mut sorted = v;
            sorted.sort_by(f64::total_cmp);
            assert_eq!(median5(v).to_bits(), sorted[2].to_bits(), "{v:?}");
        }
    }

    #[test]
    fn predictors_fall_back_to_prev_when_not_finite() {
        let price = [2.0, 4.0];
        let supply = [f64::NAN, 10.0];
        let refs = Refs {
            price: &price,
            supply: &supply,
        };
        assert_eq!(predict(Pred::Ratio, 1, 20.0, f64::NAN, refs), 40.0);
        assert_eq!(predict(Pred::Ratio, 0, 7.0, f64::NAN, refs), 7.0);
        assert_eq!(predict(Pred::Product, 1, 0.0, f64::NAN, refs), 40.0);
        assert_eq!(predict(Pred::Product, 0, 5.0, f64::NAN, refs), 5.0);
        let zero = [0.0, 4.0];
        let refs = Refs {
            price: &zero,
            supply: &supply,
        };
        assert_eq!(predict(Pred::Ratio, 1, 3.0, f64::NAN, refs), 3.0);
        let price = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let cap = [10.0, 20.0, 40.0, 88.0, 160.0];
        let refs = Refs {
            price: &price,
            supply: &[],
        };
        let w = Window::before(5, &cap, refs);
        assert_eq!(w.median(), 10.0, "median of 10, 10, 10, 11, 10");
        assert_eq!(
            predict(Pred::RatioMedian, 5, 160.0, w.median(), refs),
            320.0
        );
        assert!(
            Window::before(4, &cap, refs).median().is_nan(),
            "needs five rows"
        );
    }
}
