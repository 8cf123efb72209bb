//! The rank column (`u32`, 0 = unknown): per block either 1 bit saying every rank repeats the
//! previous one (0 before the first), or the zigzagged difference from the previous rank, coded
//! like any other residual (family `RANK`).

use strata_plugin_sdk::{Error, Result};

use crate::bitio::{BitReader, BitWriter};
use crate::entropy::{SymSink, SymSource, get_code, put_code, symbol_of, unzigzag, zigzag};

/// Writes the header of `ranks[lo..hi]` and returns whether the block codes its values (with
/// [`put_value`]); `ranks[lo - 1]` is the coin's previous rank (0 before the first).
pub fn encode_header(ranks: &[u32], lo: usize, hi: usize, bits: &mut BitWriter) -> bool {
    let prev = if lo == 0 { 0 } else { ranks[lo - 1] };
    let coded = ranks[lo..hi].iter().any(|&r| r != prev);
    bits.write(u64::from(coded), 1);
    coded
}

/// Writes the rank of row `r` of a coded block.
#[inline]
pub fn put_value(
    ranks: &[u32],
    r: usize,
    fam: usize,
    ctx: &mut usize,
    sink: &mut impl SymSink,
    bits: &mut BitWriter,
) {
    let prev = if r == 0 { 0 } else { ranks[r - 1] };
    let c = zigzag(i64::from(ranks[r]) - i64::from(prev));
    put_code(sink, bits, fam, ctx, symbol_of(c), c);
}

/// Decodes the ranks of a block value by value (see [`crate::floats::Cursor`]).
pub struct Cursor {
    coded: bool,
    prev: u32,
}

impl Cursor {
    /// Reads a block header; `prev` is the coin's previous rank (0 before the first).
    pub fn header(prev: u32, bits: &mut BitReader<'_>) -> Cursor {
        Cursor {
            coded: bits.read(1) == 1,
            prev,
        }
    }

    /// The block's rank when every row repeats the previous one.
    pub fn constant(&self) -> Option<u32> {
        (!self.coded).then_some(self.prev)
    }

    /// The next rank.
    #[inline(always)]
    pub fn next(
        &mut self,
        fam: usize,
        ctx: &mut usize,
        src: &mut impl SymSource,
        bits: &mut BitReader<'_>,
    ) -> Result<u32> {
        if self.coded {
            let d = unzigzag(get_code(src, bits, fam, ctx)?.1);
            self.prev = u32::try_from(i64::from(self.prev).wrapping_add(d))
                .map_err(|_| Error::corrupt("rank out of range"))?;
        }
        Ok(self.prev)
    }
}
