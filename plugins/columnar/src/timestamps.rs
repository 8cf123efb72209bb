//! Timestamps: a grid prediction, so that both regular series and their exceptions are cheap.
//!
//! A coin's first timestamp is stored raw (64 bits). After that each block has a step `S` (the
//! median gap in the block) and each timestamp is predicted as `g + S`, where `g` is the coin's
//! running grid position. The residual `r = ts - (g + S)` is split as `r = k*S + j` with `k` the
//! nearest whole number of steps (a gap of `k` missing points) and `j` the jitter, `|j| <= S/2`.
//! `k` and `j` are coded as a step code (family `TS_K`: 0 for a point exactly on the grid, else
//! `zigzag(k) + 1`) and, unless the step code is 0, the jitter `zigzag(j)` (family `TS_J`).
//!
//! Two modes per block (1 bit): `Grid` advances `g` to `g + (k+1)*S`, ignoring jitter, so a daily
//! series with one odd fetch time costs one residual and snaps back; `Prev` sets `g = ts`, which
//! suits series whose jitter accumulates (hourly polls timed from the previous poll). The encoder
//! keeps the cheaper. All arithmetic wraps, so any `i64` sequence round-trips exactly.

use strata_plugin_sdk::Result;

use crate::bitio::{BitReader, BitWriter};
use crate::entropy::{
    SparseHist, SymSink, SymSource, advance, get_code, put_code, symbol_of, unzigzag, zigzag,
};

pub const FAM_K: usize = 0;
pub const FAM_J: usize = 1;

/// Steps larger than this are not used as a grid (keeps `k` and `j` within `i64`).
const MAX_STEP: i64 = 1 << 62;

/// A coin's timestamp state, carried from block to block.
#[derive(Clone, Copy, Default)]
pub struct TsState {
    pub grid: i64,
    /// The previous block's step (0 before the first).
    pub step: i64,
    pub ctx_j: usize,
}

/// `r = k*s + j` with `k` the nearest multiple (`s > 0`).
#[inline]
fn split(r: i64, s: i64) -> (i64, i64) {
    if let Some(shifted) = r.checked_add(s / 2) {
        let k = shifted.div_euclid(s);
        // `k*s` may leave the i64 range (r near i64::MIN) but `r - k*s` is within s/2, so the
        // wrapping result is exact.
        return (k, r.wrapping_sub(k.wrapping_mul(s)));
    }
    let k = (i128::from(r) + i128::from(s / 2)).div_euclid(i128::from(s));
    let j = i128::from(r) - k * i128::from(s);
    (k as i64, j as i64)
}

/// Codes for one mode: (k symbol, k code, j symbol, j code) per row.
fn trial(
    ts: &[i64],
    lo: usize,
    hi: usize,
    step: i64,
    grid_mode: bool,
    state: TsState,
    out: &mut Vec<[u64; 2]>,
) -> f64 {
    out.clear();
    let (mut hk, mut hj) = (SparseHist::default(), SparseHist::default());
    let mut g = state.grid;
    for &t in &ts[lo..hi] {
        let pred = g.wrapping_add(step);
        let r = t.wrapping_sub(pred);
        let (k, j) = if step > 0 { split(r, step) } else { (0, r) };
        let (ck, cj) = (step_code(k, j), zigzag(j));
        if step > 0 {
            hk.add(symbol_of(ck));
        }
        if step == 0 || ck != 0 {
            hj.add(symbol_of(cj));
        }
        out.push([ck, cj]);
        g = if grid_mode {
            pred.wrapping_add(k.wrapping_mul(step))
        } else {
            t
        };
    }
    // Both raw parts count once, as the sum of the two streams' raw bits (`hj` carries them).
    hj.raw += std::mem::take(&mut hk.raw);
    hk.take_estimate() + hj.take_estimate()
}

/// The step code: 0 when the timestamp is exactly on the grid (`k == 0 && j == 0`, and no
/// jitter code follows), else `zigzag(k) + 1`. With steps of at least 2, `|k| <= 2^62 + 1`, so
/// this cannot overflow.
#[inline]
fn step_code(k: i64, j: i64) -> u64 {
    if k == 0 && j == 0 { 0 } else { zigzag(k) + 1 }
}

/// The block's step: the median gap of at least 2, or 0 (no grid).
fn block_step(ts: &[i64], lo: usize, hi: usize) -> i64 {
    let mut gaps: Vec<i64> = (lo.max(1)..hi)
        .map(|i| ts[i].wrapping_sub(ts[i - 1]))
        .filter(|&d| (2..=MAX_STEP).contains(&d))
        .collect();
    if gaps.is_empty() {
        return 0;
    }
    let mid = gaps.len() / 2;
    *gaps.select_nth_unstable(mid).1
}

/// A block of timestamps as chosen by [`encode_header`]: its rows from `from` on are coded
/// with the step `step`, their codes in the first scratch vector; `on_grid` says every one is
/// exactly on the grid, and then no codes are written at all.
#[derive(Clone, Copy)]
pub struct TsBlock {
    pub from: usize,
    pub step: i64,
    pub on_grid: bool,
}

/// Writes the header of rows `lo..hi` of the coin's timestamps (after the coin's first
/// timestamp, raw, when `lo == 0`), leaves the (step code, jitter code) of each coded row in
/// `scratch[0]` and moves the grid to the block's end.
pub fn encode_header(
    ts: &[i64],
    mut lo: usize,
    hi: usize,
    state: &mut TsState,
    bits: &mut BitWriter,
    scratch: &mut [Vec<[u64; 2]>; 2],
) -> TsBlock {
    if lo == 0 {
        bits.write(ts[0] as u64, 64);
        state.grid = ts[0];
        lo = 1;
    }
    if lo >= hi {
        scratch[0].clear();
        return TsBlock {
            from: hi,
            step: 0,
            on_grid: false,
        };
    }
    let step = block_step(ts, lo, hi);
    let [grid_codes, prev_codes] = scratch;
    let grid_cost = trial(ts, lo, hi, step, true, *state, grid_codes);
    let prev_cost = trial(ts, lo, hi, step, false, *state, prev_codes);
    let grid_mode = grid_cost <= prev_cost;
    if !grid_mode {
        std::mem::swap(grid_codes, prev_codes);
    }
    bits.write(u64::from(grid_mode), 1);
    bits.write(u64::from(step != state.step), 1);
    if step != state.step {
        let len = 64 - (step as u64).leading_zeros();
        bits.write(u64::from(len), 6);
        bits.write(step as u64, len);
        state.step = step;
    }
    // With a step, 1 bit: every row is exactly on the grid (a regular series' usual block).
    let on_grid = step > 0 && scratch[0].iter().all(|&[ck, _]| ck == 0);
    if step > 0 {
        bits.write(u64::from(on_grid), 1);
    }
    for (&t, &[ck, _]) in ts[lo..hi].iter().zip(scratch[0].iter()) {
        let k = if ck == 0 { 0 } else { unzigzag(ck - 1) };
        let pred = state.grid.wrapping_add(step);
        state.grid = if grid_mode {
            pred.wrapping_add(k.wrapping_mul(step))
        } else {
            t
        };
    }
    TsBlock {
        from: lo,
        step,
        on_grid,
    }
}

/// Writes one row's codes (from [`encode_header`]).
#[inline]
pub fn put_row(
    block: TsBlock,
    [ck, cj]: [u64; 2],
    ctx_j: &mut usize,
    sink: &mut impl SymSink,
    bits: &mut BitWriter,
) {
    if block.on_grid {
        // As if step code 0 had been coded.
        *ctx_j = advance(*ctx_j, 0);
        return;
    }
    if block.step > 0 {
        // The step code is coded in the jitter's context: the jitter's recent sizes say
        // whether the series is in an irregular stretch.
        let mut ctx = *ctx_j;
        put_code(sink, bits, FAM_K, &mut ctx, symbol_of(ck), ck);
    }
    if block.step == 0 || ck != 0 {
        put_code(sink, bits, FAM_J, ctx_j, symbol_of(cj), cj);
    } else {
        *ctx_j = advance(*ctx_j, 0);
    }
}

/// A block header as read by [`decode_header`].
#[derive(Clone, Copy)]
pub struct TsHeader {
    grid_mode: bool,
    step: i64,
    /// Every row is exactly on the grid (version 2 only).
    on_grid: bool,
}

/// Reads the header of a block of `n` timestamps of a segment of format `version`; `first`
/// says this is the coin's first block, whose first timestamp (raw) is pushed to `out`. Returns
/// how many rows follow.
pub fn decode_header(
    version: u8,
    out: &mut Vec<i64>,
    n: usize,
    first: bool,
    state: &mut TsState,
    bits: &mut BitReader<'_>,
) -> Result<(usize, TsHeader)> {
    let mut coded = n;
    if first {
        let t = bits.read(64) as i64;
        out.push(t);
        state.grid = t;
        coded = n.saturating_sub(1);
    }
    if coded == 0 {
        let h = TsHeader {
            grid_mode: false,
            step: state.step,
            on_grid: false,
        };
        return Ok((0, h));
    }
    let grid_mode = bits.read(1) == 1;
    let step = if bits.read(1) == 1 {
        let len = bits.read(6) as u32;
        bits.read(len) as i64
    } else {
        state.step
    };
    state.step = step;
    if !(0..=MAX_STEP).contains(&step) {
        return Err(strata_plugin_sdk::Error::corrupt(format!(
            "timestamp step {step} is out of range"
        )));
    }
    let on_grid = version >= 2 && step > 0 && bits.read(1) == 1;
    Ok((
        coded,
        TsHeader {
            grid_mode,
            step,
            on_grid,
        },
    ))
}

/// Decodes one coded timestamp of a block with header `h`.
#[inline(always)]
pub fn decode_row(
    h: TsHeader,
    state: &mut TsState,
    src: &mut impl SymSource,
    bits: &mut BitReader<'_>,
) -> Result<i64> {
    let step = h.step;
    if h.on_grid {
        // No codes: as if step code 0 had been read.
        state.ctx_j = advance(state.ctx_j, 0);
        state.grid = state.grid.wrapping_add(step);
        return Ok(state.grid);
    }
    let (k, j) = if step == 0 {
        (0, unzigzag(get_code(src, bits, FAM_J, &mut state.ctx_j)?.1))
    } else {
        let mut ctx = state.ctx_j;
        match get_code(src, bits, FAM_K, &mut ctx)?.1 {
            0 => {
                state.ctx_j = advance(state.ctx_j, 0);
                (0, 0)
            }
            ck => (
                unzigzag(ck - 1),
                unzigzag(get_code(src, bits, FAM_J, &mut state.ctx_j)?.1),
            ),
        }
    };
    let pred = state.grid.wrapping_add(step);
    let at_grid = pred.wrapping_add(k.wrapping_mul(step));
    let t = at_grid.wrapping_add(j);
    state.grid = if h.grid_mode { at_grid } else { t };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_picks_nearest_multiple() {
        assert_eq!(split(0, 10), (0, 0));
        assert_eq!(split(4, 10), (0, 4));
        assert_eq!(split(6, 10), (1, -4));
        assert_eq!(split(-6, 10), (-1, 4));
        assert_eq!(split(35, 10), (4, -5));
        for (r, s) in [
            (i64::MIN, MAX_STEP),
            (i64::MIN, 10),
            (i64::MAX, 10),
            (i64::MAX, MAX_STEP),
        ] {
            let (k, j) = split(r, s);
            assert!(j.unsigned_abs() <= (s / 2) as u64, "{r} {s}");
            assert_eq!(k.wrapping_mul(s).wrapping_add(j), r);
        }
        let (k, j) = split(i64::MIN, MAX_STEP);
        assert_eq!(
            i128::from(k) * i128::from(MAX_STEP) + i128::from(j),
            i128::from(i64::MIN)
        );
    }

    #[test]
    fn step_is_the_median_gap() {
        let day = 86_400_000;
        let ts = [0, day, 2 * day, 2 * day + 5, 4 * day, 5 * day];
        assert_eq!(block_step(&ts, 1, ts.len()), day);
        assert_eq!(block_step(&[5, 5, 5], 1, 3), 0);
        assert_eq!(block_step(&[5, 6, 7], 1, 3), 0, "a step of 1 is no grid");
    }
}
