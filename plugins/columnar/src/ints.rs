//! The rank column (`u32`, 0 = unknown): per block either 1 bit saying every rank repeats the
//! previous one (0 before the first), or the zigzagged difference from the previous rank, coded like any other residual (family `RANK`).

use strata_plugin_sdk::{Error, Result};

use crate::bitio::{BitReader, BitWriter};
use crate::entropy::{SymSink, SymSource, get_code, put_code, symbol_of, unzigzag, zigzag};

/// Encodes `ranks[lo..hi]`; `prev` is the coin's previous rank (0 before the first).
pub fn encode_block(
    ranks: &[u32],
    lo: usize,
    hi: usize,
    fam: usize,
    ctx: &mut usize,
    sink: &mut impl SymSink,
    bits: &mut BitWriter,
) {
    let block = &ranks[lo..hi];
    let mut prev = if lo == 0 { 0 } else { ranks[lo - 1] };
    if block.iter().all(|&r| r == prev) {
        bits.write(0, 1);
        return;
    }
    bits.write(1, 1);
    for &r in block {
        let c = zigzag(i64::from(r) - i64::from(prev));
        put_code(sink, bits, fam, ctx, symbol_of(c), c);
        prev = r;
    }
}

/// Decodes `n` ranks, appending to `out` (the coin's rows start at `start`).
pub fn decode_block(
    out: &mut Vec<u32>,
    start: usize,
    n: usize,
    fam: usize,
    ctx: &mut usize,
    src: &mut impl SymSource,
    bits: &mut BitReader<'_>,
) -> Result<()> {
    let mut prev = if out.len() > start {
        out.last().copied().unwrap_or(0)
    } else {
        0
    };
    if bits.read(1) == 0 {
        out.extend(std::iter::repeat_n(prev, n));
        return Ok(());
    }
    for _ in 0..n {
        let d = unzigzag(get_code(src, bits, fam, ctx)?.1);
        prev = u32::try_from(i64::from(prev).wrapping_add(d))
            .map_err(|_| Error::corrupt("rank out of range"))?;
        out.push(prev);
    }
    Ok(())
}
