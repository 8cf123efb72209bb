//! The entropy stage: static rANS over the per-value *symbols* (bit lengths of residual codes),
//! with one frequency table per (stream family, context).
//!
//! Every coded value is split in two: a symbol in `0..NSYM` (the bit length of its residual code,
//! or [`ESC`]) and the residual's low bits, which are written raw to the bit stream. Only the
//! symbols are entropy coded; their distributions are skewed and depend on recent history, so
//! each family (a column, or one half of the timestamp code) has [`NCTX`] tables selected by the
//! previous symbol of the same family. Tables are counted over the whole segment and stored once
//! in its header, so each coin's section stays independently decodable.
//!
//! The coder is byte-wise rANS with 32-bit states (Duda's ANS as in Giesen's `ryg_rans`), 12-bit
//! probabilities; since format version 2 a coin's symbols alternate between two states, so
//! that consecutive symbols decode independently. It is written here rather than taken from a
//! crate because its exact byte stream is part of this on-disk format: it must never change
//! with a dependency update.
//!
//! With `entropy=false` the same symbols are written as plain 7-bit fields into the bit stream
//! ([`RawSymbols`]), which is faster and shows what the entropy stage buys.

use strata_plugin_sdk::{Error, Result};

use crate::bitio::{BitReader, BitWriter, ByteReader, put_varint};

/// Symbols: 0..=64 are residual bit lengths, 65 is an escape (a value stored raw).
pub const NSYM: usize = 129;
pub const ESC: u8 = 128;
/// Contexts per family, selected by the family's recent symbols (see [`context`]).
pub const NCTX: usize = 48;

/// The running context state of a family: an exponential moving average of its recent
/// symbols in 1/8 units (`ema += (8*sym - ema) / 4`, in integers so that every build agrees).
/// It tracks the local volatility of a series, which sets the size of its next residual.
#[inline]
pub fn advance(state: usize, sym: u8) -> usize {
    state - state / 4 + 2 * usize::from(length_of(sym))
}

/// The context of a state: coarse buckets for small averages, one per bit length from 24 bits
/// up, where the residuals of full-precision doubles live.
#[inline(always)]
pub fn context(state: usize) -> usize {
    let ema = state / 8;
    if ema < 24 {
        ema / 4
    } else {
        (ema - 18).min(NCTX - 1)
    }
}

/// Stream families, each with its own tables.
pub const NFAM: usize = 8;

const SCALE: u32 = 12;
const M: u32 = 1 << SCALE;
const L: u32 = 1 << 23;

/// The table index of family `fam` in context `ctx`.
#[inline]
pub fn table(fam: usize, ctx: usize) -> usize {
    fam * NCTX + ctx
}

/// Where an encoder sends its symbols.
pub trait SymSink {
    fn put(&mut self, table: usize, sym: u8, bits: &mut BitWriter);
}

/// Where a decoder gets its symbols.
pub trait SymSource {
    fn get(&mut self, table: usize, bits: &mut BitReader<'_>) -> Result<u8>;
}

/// Symbols as 8-bit fields in the bit stream (`entropy=false`).
pub struct RawSymbols;

impl SymSink for RawSymbols {
    #[inline]
    fn put(&mut self, _table: usize, sym: u8, bits: &mut BitWriter) {
        bits.write(u64::from(sym), 8);
    }
}

impl SymSource for RawSymbols {
    #[inline]
    fn get(&mut self, _table: usize, bits: &mut BitReader<'_>) -> Result<u8> {
        let s = bits.read(8) as u8;
        if usize::from(s) >= NSYM {
            return Err(Error::corrupt(format!("symbol {s} is out of range")));
        }
        Ok(s)
    }
}

/// Symbols collected for the rANS pass: `table << 8 | sym`, in coding order.
#[derive(Default)]
pub struct SymbolLog {
    pub syms: Vec<u32>,
}

impl SymSink for SymbolLog {
    #[inline]
    fn put(&mut self, table: usize, sym: u8, _bits: &mut BitWriter) {
        self.syms.push(((table as u32) << 8) | u32::from(sym));
    }
}

/// Symbol counts per table, gathered before the tables are normalised.
pub struct Counts {
    counts: Vec<[u32; NSYM]>,
    /// Which tables have a count: a segment uses a few dozen of them, and the rest need not
    /// be looked at.
    used: Vec<bool>,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            counts: vec![[0; NSYM]; NFAM * NCTX],
            used: vec![false; NFAM * NCTX],
        }
    }
}

impl Counts {
    pub fn add(&mut self, log: &[u32]) {
        for &s in log {
            let t = (s >> 8) as usize;
            self.counts[t][(s & 0xFF) as usize] += 1;
            self.used[t] = true;
        }
    }
}

/// Family names, for size reports.
pub const FAMILY_NAMES: [&str; NFAM] = [
    "ts-steps",
    "ts-jitter",
    "price",
    "supply",
    "market-cap",
    "volume",
    "rank",
    "extra",
];

/// Normalised frequencies of every table (all zero for an unused table).
pub struct Tables {
    freq: Vec<[u16; NSYM]>,
    start: Vec<[u16; NSYM]>,
    /// Which tables have frequencies.
    used: Vec<bool>,
}

/// Scales `counts` to frequencies summing to `M`, every used symbol keeping at least 1.
fn normalize(counts: &[u32; NSYM]) -> [u16; NSYM] {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let mut f = [0u32; NSYM];
    if total == 0 {
        return [0; NSYM];
    }
    for (fi, &c) in f.iter_mut().zip(counts) {
        if c > 0 {
            *fi = ((u64::from(c) * u64::from(M) / total) as u32).max(1);
        }
    }
    let mut sum: u32 = f.iter().sum();
    while sum != M {
        // Give or take from the most frequent symbol (never below 1).
        let (i, _) = f
            .iter()
            .enumerate()
            .max_by_key(|&(_, &v)| v)
            .unwrap_or((0, &0));
        if sum < M {
            f[i] += M - sum;
            sum = M;
        } else {
            let take = (sum - M).min(f[i] - 1);
            f[i] -= take;
            sum -= take;
        }
    }
    f.map(|v| v as u16)
}

impl Tables {
    pub fn from_counts(counts: &Counts) -> Tables {
        let mut freq = vec![[0u16; NSYM]; counts.counts.len()];
        let mut start = vec![[0u16; NSYM]; counts.counts.len()];
        for (t, c) in counts.counts.iter().enumerate() {
            if counts.used[t] {
                freq[t] = normalize(c);
                start[t] = starts(&freq[t]);
            }
        }
        Tables {
            freq,
            start,
            used: counts.used.clone(),
        }
    }

    /// Writes the used tables: count, then per table its index, used symbols and frequencies.
    pub fn write(&self, out: &mut Vec<u8>) {
        let used: Vec<usize> = (0..self.freq.len()).filter(|&t| self.used[t]).collect();
        put_varint(out, used.len() as u64);
        for t in used {
            put_varint(out, t as u64);
            let syms: Vec<usize> = (0..NSYM).filter(|&s| self.freq[t][s] > 0).collect();
            put_varint(out, syms.len() as u64);
            for s in syms {
                out.push(s as u8);
                put_varint(out, u64::from(self.freq[t][s]));
            }
        }
    }

    /// Reads tables written by [`Tables::write`], checking every field.
    pub fn read(r: &mut ByteReader<'_>) -> Result<Tables> {
        let n = r.varint_max((NFAM * NCTX) as u64, "entropy table count")?;
        let mut freq = vec![[0u16; NSYM]; NFAM * NCTX];
        let mut used = vec![false; NFAM * NCTX];
        for _ in 0..n {
            let t = r.varint_max((NFAM * NCTX - 1) as u64, "entropy table index")? as usize;
            if std::mem::replace(&mut used[t], true) {
                return Err(Error::corrupt(format!("entropy table {t} appears twice")));
            }
            let k = r.varint_max(NSYM as u64, "entropy table size")?;
            let mut sum = 0u32;
            for _ in 0..k {
                let s = usize::from(r.u8("entropy table symbol")?);
                let f = r.varint_max(u64::from(M), "entropy table frequency")? as u16;
                if s >= NSYM || f == 0 || freq[t][s] != 0 {
                    return Err(Error::corrupt(format!(
                        "entropy table {t}: bad entry for symbol {s}"
                    )));
                }
                freq[t][s] = f;
                sum += u32::from(f);
            }
            if sum != M {
                return Err(Error::corrupt(format!(
                    "entropy table {t}: frequencies sum to {sum}, not {M}"
                )));
            }
        }
        let start = freq
            .iter()
            .zip(&used)
            .map(|(f, &u)| if u { starts(f) } else { [0; NSYM] })
            .collect();
        Ok(Tables { freq, start, used })
    }

    /// Per-symbol encoder constants for every used table (Giesen's reciprocal form, which
    /// replaces the division of each rANS step by a multiply and a shift). Unused tables get
    /// none: a segment of a few coins uses a few dozen of the [`NFAM`]` * `[`NCTX`] tables, and
    /// constants for all of them would be a megabyte to fill for every segment.
    pub fn encoder(&self) -> Encoder {
        let mut slot = vec![u32::MAX; self.freq.len()];
        let mut tables = Vec::new();
        for (t, (freq, start)) in self.freq.iter().zip(&self.start).enumerate() {
            if !self.used[t] {
                continue;
            }
            slot[t] = tables.len() as u32;
            tables.push(std::array::from_fn(|s| {
                EncSymbol::new(u32::from(start[s]), u32::from(freq[s]))
            }));
        }
        Encoder { slot, tables }
    }

    /// rANS-encodes a coin's symbol log with the constants from [`Tables::encoder`], symbol `i`
    /// with state `i % lanes` (1 for format version 1, [`LANES`] since version 2); the result
    /// is read forward by [`RansDecoder`].
    pub fn encode(enc: &Encoder, log: &[u32], lanes: usize) -> Result<Vec<u8>> {
        assert!(
            lanes.is_power_of_two() && lanes <= LANES,
            "{lanes} rANS lanes"
        );
        let lane_mask = lanes - 1;
        let mut out = Vec::with_capacity(log.len() / 2 + 4 * lanes);
        let mut x = [L; LANES];
        for (i, &s) in log.iter().enumerate().rev() {
            let sym = enc
                .slot
                .get((s >> 8) as usize)
                .and_then(|&t| enc.tables.get(t as usize))
                .and_then(|t| t.get((s & 0xFF) as usize))
                .filter(|e| e.x_max != 0)
                .ok_or_else(|| Error::Internal(format!("symbol {s:#x} has no frequency")))?;
            let x = &mut x[i & lane_mask];
            while *x >= sym.x_max {
                out.push(*x as u8);
                *x >>= 8;
            }
            let q = (((u64::from(*x) * u64::from(sym.rcp_freq)) >> 32) as u32) >> sym.rcp_shift;
            *x = x
                .wrapping_add(sym.bias)
                .wrapping_add(q.wrapping_mul(sym.cmpl_freq));
        }
        for x in x[..lanes].iter().rev() {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.reverse();
        Ok(out)
    }

    /// Bits per family the symbols of `log` cost under these tables, and the raw bits that go
    /// with them (for size reports; encoding does not need this).
    pub fn family_bits(&self, log: &[u32]) -> [(f64, u64); NFAM] {
        let mut out = [(0.0, 0); NFAM];
        for &s in log {
            let (t, sym) = ((s >> 8) as usize, (s & 0xFF) as usize);
            let f = f64::from(self.freq[t][sym]).max(1.0);
            let fam = &mut out[t / NCTX];
            fam.0 += (f64::from(M) / f).log2();
            fam.1 += raw_bits_of(sym as u8);
        }
        out
    }

    /// Decoding tables: a slot-to-symbol map for every used table.
    pub fn decoder_tables(&self) -> Vec<DecTable> {
        self.freq
            .iter()
            .zip(&self.start)
            .zip(&self.used)
            .map(|((freq, start), &used)| {
                if !used {
                    return None;
                }
                let mut t = Box::new(DecSlots {
                    lut: [0; M as usize],
                    freq: [0; 256],
                    start: [0; 256],
                });
                for s in 0..NSYM {
                    let (a, b) = (usize::from(start[s]), usize::from(start[s] + freq[s]));
                    t.lut[a..b].fill(s as u8);
                    t.freq[s] = freq[s];
                    t.start[s] = start[s];
                }
                Some(t)
            })
            .collect()
    }
}

fn starts(freq: &[u16; NSYM]) -> [u16; NSYM] {
    let mut start = [0u16; NSYM];
    let mut acc = 0u32;
    for s in 0..NSYM {
        start[s] = acc as u16;
        acc += u32::from(freq[s]);
    }
    start
}

/// The encoding constants of a segment's used tables (see [`Tables::encoder`]).
pub struct Encoder {
    /// Per table: its index in `tables`, `u32::MAX` when unused.
    slot: Vec<u32>,
    tables: Vec<[EncSymbol; NSYM]>,
}

/// A symbol's rANS encoding constants (`x_max == 0`: the symbol has no frequency).
#[derive(Clone, Copy, Default)]
pub struct EncSymbol {
    x_max: u32,
    rcp_freq: u32,
    rcp_shift: u32,
    bias: u32,
    cmpl_freq: u32,
}

impl EncSymbol {
    fn new(start: u32, freq: u32) -> EncSymbol {
        if freq == 0 {
            return EncSymbol::default();
        }
        let (rcp_freq, rcp_shift, bias) = if freq < 2 {
            (u32::MAX, 0, start + M - 1)
        } else {
            let shift = 32 - (freq - 1).leading_zeros(); // ceil(log2(freq))
            let rcp = (1u64 << (shift + 31)).div_ceil(u64::from(freq));
            (rcp as u32, shift - 1, start)
        };
        EncSymbol {
            x_max: ((L >> SCALE) << 8) * freq,
            rcp_freq,
            rcp_shift,
            bias,
            cmpl_freq: M - freq,
        }
    }
}

/// One table ready for decoding, `None` when unused.
pub type DecTable = Option<Box<DecSlots>>;

/// A slot-to-symbol map and the symbols' frequencies and starts, sized so that no lookup needs
/// a bounds check (slots are masked to 12 bits, symbols are bytes).
pub struct DecSlots {
    lut: [u8; M as usize],
    freq: [u16; 256],
    start: [u16; 256],
}

/// rANS states a coin's symbols alternate between (format version 2): consecutive symbols
/// then decode independently, so two decoding steps overlap in the processor.
pub const LANES: usize = 2;

/// Reads one coin's rANS stream, written with `N` states (1 or [`LANES`]).
pub struct RansDecoder<'a, const N: usize> {
    tables: &'a [DecTable],
    data: &'a [u8],
    pos: usize,
    /// The state of the next symbol's lane, and the other lane's (equal to `L` with one lane).
    x: u32,
    other: u32,
}

impl<'a, const N: usize> RansDecoder<'a, N> {
    pub fn new(tables: &'a [DecTable], data: &'a [u8]) -> Result<RansDecoder<'a, N>> {
        const { assert!(N == 1 || N == LANES) };
        let mut x = [L; LANES];
        for (k, x) in x[..N].iter_mut().enumerate() {
            let head: [u8; 4] = data
                .get(4 * k..4 * k + 4)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| Error::corrupt("rANS stream shorter than its states"))?;
            *x = u32::from_be_bytes(head);
            if !(L..(L << 8)).contains(x) {
                return Err(Error::corrupt("rANS state out of range"));
            }
        }
        Ok(RansDecoder {
            tables,
            data,
            pos: 4 * N,
            x: x[0],
            other: x[1],
        })
    }

    /// Errors unless the stream was consumed exactly and ended in the initial states.
    pub fn finish(&self) -> Result<()> {
        if self.x != L || self.other != L || self.pos != self.data.len() {
            return Err(Error::corrupt("rANS stream does not end where it should"));
        }
        Ok(())
    }
}

impl<const N: usize> SymSource for RansDecoder<'_, N> {
    #[inline(always)]
    fn get(&mut self, table: usize, _bits: &mut BitReader<'_>) -> Result<u8> {
        let t = self
            .tables
            .get(table)
            .and_then(|t| t.as_deref())
            .ok_or_else(|| Error::corrupt(format!("entropy table {table} is missing")))?;
        let slot = self.x & (M - 1);
        let s = t.lut[slot as usize];
        // `lut` maps a slot to the symbol whose range holds it: the subtraction cannot wrap.
        let mut x = u32::from(t.freq[usize::from(s)]) * (self.x >> SCALE) + slot
            - u32::from(t.start[usize::from(s)]);
        // `x >= L` before the step, so `x >= 2^11` after it: at most two bytes renormalise.
        // Whether one is needed is a coin toss per symbol, so take `n` bytes without a branch
        // on `n` (a mispredicted branch would stall the overlapping work on other columns).
        let n = u32::from(x < L) + u32::from(x < L >> 8);
        if let Some(&[b0, b1]) = self.data.get(self.pos..self.pos + 2) {
            let next = u32::from(u16::from_be_bytes([b0, b1]));
            x = x << (8 * n) | next >> (16 - 8 * n);
            self.pos += n as usize;
        } else {
            while x < L {
                let b = *self
                    .data
                    .get(self.pos)
                    .ok_or_else(|| Error::corrupt("rANS stream is truncated"))?;
                x = (x << 8) | u32::from(b);
                self.pos += 1;
            }
        }
        // The next symbol is the other lane's (a swap of registers, when there are two).
        if N == 1 {
            self.x = x;
        } else {
            (self.x, self.other) = (self.other, x);
        }
        Ok(s)
    }
}

/// Zigzag: small magnitudes of either sign become small codes.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(c: u64) -> i64 {
    ((c >> 1) as i64) ^ -((c & 1) as i64)
}

/// The symbol of a residual code: its bit length `n` and, from `n >= 2` on, the bit below the
/// leading one (`2n - 2 + bit`), which is far from uniform for peaked residuals.
#[inline]
pub fn symbol_of(code: u64) -> u8 {
    let n = 64 - code.leading_zeros();
    if n <= 1 {
        n as u8
    } else {
        (2 * n - 2 + ((code >> (n - 2)) & 1) as u32) as u8
    }
}

/// The bit length of the codes of symbol `sym` (65 for [`ESC`]).
#[inline(always)]
pub fn length_of(sym: u8) -> u8 {
    SYMBOL_LENGTH[usize::from(sym)]
}

/// [`length_of`] as a table (a load instead of branches in the decoder's hot loop).
static SYMBOL_LENGTH: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut s = 0;
    while s < 256 {
        t[s] = match s {
            0 | 1 => s as u8,
            128 => 65,
            _ => (s / 2 + 1) as u8,
        };
        s += 1;
    }
    t
};

/// Per symbol (but [`ESC`]), how [`read_code`] rebuilds its code: the number of raw low bits
/// (low 6 bits) and the code's leading bits above them (`sym` for 0 and 1, `1x` from 2 on).
static CODE_SHAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut s = 0;
    while s < 256 {
        t[s] = if s < 2 {
            (s as u8) << 6
        } else {
            ((2 | (s & 1)) as u8) << 6 | (s / 2 - 1) as u8
        };
        s += 1;
    }
    t
};

/// Writes one code: its symbol through `sink` (table chosen by the family's context, which is
/// then advanced) and the bits below its leading one raw. [`ESC`] carries 64 raw bits.
#[inline(always)]
pub fn put_code(
    sink: &mut impl SymSink,
    bits: &mut BitWriter,
    fam: usize,
    ctx: &mut usize,
    sym: u8,
    code: u64,
) {
    sink.put(table(fam, context(*ctx)), sym, bits);
    *ctx = advance(*ctx, sym);
    match sym {
        0 | 1 => {}
        ESC => bits.write(code, 64),
        _ => bits.write(code, u32::from(length_of(sym)) - 2),
    }
}

/// Reads what [`put_code`] wrote: the symbol and the code (for [`ESC`], the raw 64 bits).
#[inline(always)]
pub fn get_code(
    src: &mut impl SymSource,
    bits: &mut BitReader<'_>,
    fam: usize,
    ctx: &mut usize,
) -> Result<(u8, u64)> {
    let sym = src.get(table(fam, context(*ctx)), bits)?;
    *ctx = advance(*ctx, sym);
    Ok((sym, read_code(sym, bits)))
}

/// The code of a symbol already read: its leading bits from the symbol, the rest raw from
/// `bits` (for [`ESC`], all 64 bits raw).
#[inline(always)]
pub fn read_code(sym: u8, bits: &mut BitReader<'_>) -> u64 {
    if sym == ESC {
        return bits.read(64);
    }
    // Symbols 0 and 1 are their own code; from 2 on, `10` or `11` followed by `sym/2 - 1` bits.
    let shape = CODE_SHAPE[usize::from(sym)];
    let low = u32::from(shape & 63);
    u64::from(shape >> 6) << low | bits.read(low)
}

/// `c * log2(c)`, from a table for counts up to 1024, so that estimating a block costs no
/// logarithms. Entries are computed when first needed: a plugin instance encodes one segment,
/// and filling the whole table would cost every segment 1,025 logarithms.
#[inline]
fn c_log2_c(c: u32) -> f64 {
    static TABLE: [std::sync::OnceLock<f64>; 1025] = [const { std::sync::OnceLock::new() }; 1025];
    let compute = || {
        if c == 0 {
            0.0
        } else {
            f64::from(c) * f64::from(c).log2()
        }
    };
    match TABLE.get(c as usize) {
        Some(cell) => *cell.get_or_init(compute),
        None => compute(),
    }
}

/// Estimated size in bits of a value stream: its raw bits plus the order-0 entropy of its
/// symbols (`n log2 n - sum c log2 c`). Used to pick an encoding per column per block without
/// coding each candidate. Unused symbols add exactly 0.0 to the sum, so they are skipped.
/// Encoding computes it through [`SparseHist`]; this dense form is the reference it is tested
/// against (a different sum would pick different encodings and change the bytes).
#[cfg(test)]
fn estimate_bits(hist: &[u32; NSYM], raw_bits: u64) -> f64 {
    let n: u32 = hist.iter().sum();
    let used: f64 = hist.iter().filter(|&&c| c != 0).map(|&c| c_log2_c(c)).sum();
    let ent = c_log2_c(n) - used;
    raw_bits as f64 + ent.max(0.0)
}

/// A symbol histogram for [`estimate_bits`] that remembers which symbols it has seen, so that
/// estimating and clearing it cost the handful of symbols a block uses rather than all
/// [`NSYM`]: a block of a few dozen rows is tried under a dozen encodings.
pub struct SparseHist {
    counts: [u32; NSYM],
    /// Bit `s` set: symbol `s` has a count. Walking the set bits visits the used symbols in
    /// symbol order, as the dense sum does, without sorting them.
    used: [u64; NSYM.div_ceil(64)],
    /// Raw bits of the symbols added.
    pub raw: u64,
}

impl Default for SparseHist {
    fn default() -> SparseHist {
        SparseHist {
            counts: [0; NSYM],
            used: [0; NSYM.div_ceil(64)],
            raw: 0,
        }
    }
}

impl SparseHist {
    /// Counts one symbol and its raw bits.
    #[inline(always)]
    pub fn add(&mut self, sym: u8) {
        let s = usize::from(sym);
        self.counts[s] += 1;
        self.used[s / 64] |= 1 << (s % 64);
        self.raw += raw_bits_of(sym);
    }

    /// [`estimate_bits`] of the counts and `self.raw`, to the bit: the same sum in the same
    /// (symbol) order. Then empties the histogram.
    pub fn take_estimate(&mut self) -> f64 {
        let mut n = 0u32;
        let mut used = 0.0;
        self.drain(|c| {
            n += c;
            used += c_log2_c(c);
        });
        let ent = c_log2_c(n) - used;
        std::mem::take(&mut self.raw) as f64 + ent.max(0.0)
    }

    /// Empties the histogram.
    pub fn clear(&mut self) {
        self.drain(|_| {});
        self.raw = 0;
    }

    /// Calls `f` with each used symbol's count, in symbol order, zeroing them.
    #[inline(always)]
    fn drain(&mut self, mut f: impl FnMut(u32)) {
        for (w, word) in self.used.iter_mut().enumerate() {
            let mut bits = std::mem::take(word);
            while bits != 0 {
                let s = 64 * w + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                f(std::mem::take(&mut self.counts[s]));
            }
        }
    }
}

/// Raw bits that accompany a symbol.
#[inline]
pub fn raw_bits_of(sym: u8) -> u64 {
    match sym {
        0 | 1 => 0,
        ESC => 64,
        s => u64::from(length_of(s)) - 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_histogram_estimates_exactly_as_the_dense_one() {
        let mut seed = 7u64;
        let mut sparse = SparseHist::default();
        for round in 0..2_000 {
            let mut dense = [0u32; NSYM];
            let mut raw = 0;
            // From one symbol repeated to many symbols, some with counts past the log table.
            let (distinct, rows) = (1 + round % 40, 1 + (round * 7) % 3_000);
            for _ in 0..rows {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let sym = ((seed >> 33) % distinct as u64 * 3 % NSYM as u64) as u8;
                dense[usize::from(sym)] += 1;
                raw += raw_bits_of(sym);
                sparse.add(sym);
            }
            let want = estimate_bits(&dense, raw);
            // Reused: emptied by the previous estimate.
            assert_eq!(
                sparse.take_estimate().to_bits(),
                want.to_bits(),
                "round {round}"
            );
        }
        assert_eq!(sparse.take_estimate(), 0.0);
    }

    #[test]
    fn normalize_sums_to_m_and_keeps_rare_symbols() {
        let mut c = [0u32; NSYM];
        c[0] = 1_000_000;
        c[5] = 1;
        c[64] = 3;
        let f = normalize(&c);
        assert_eq!(f.iter().map(|&v| u32::from(v)).sum::<u32>(), M);
        assert!(f[5] >= 1 && f[64] >= 1 && f[1] == 0);
        let all = normalize(&[1; NSYM]);
        assert_eq!(all.iter().map(|&v| u32::from(v)).sum::<u32>(), M);
    }

    #[test]
    fn rans_round_trips_through_written_tables() {
        let mut log = SymbolLog::default();
        let mut w = BitWriter::default();
        let mut seed = 7u64;
        for i in 0..10_000u32 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let sym = if seed >> 60 == 0 {
                (seed >> 32) as u8 % 66
            } else {
                3
            };
            log.put(table((i % 3) as usize, (i % 5) as usize), sym, &mut w);
        }
        let mut counts = Counts::default();
        counts.add(&log.syms);
        let tables = Tables::from_counts(&counts);
        let mut head = Vec::new();
        tables.write(&mut head);
        let back = Tables::read(&mut ByteReader::new(&head)).unwrap();
        let dec = back.decoder_tables();
        fn check<const N: usize>(dec: &[DecTable], tables: &Tables, log: &[u32]) {
            let bytes = Tables::encode(&tables.encoder(), log, N).unwrap();
            assert!(bytes.len() < 2000, "skewed symbols should code small");
            let mut d = RansDecoder::<N>::new(dec, &bytes).unwrap();
            let mut bits = BitReader::new(&[]);
            for &s in log {
                let got = d.get((s >> 8) as usize, &mut bits).unwrap();
                assert_eq!(got, (s & 0xFF) as u8);
            }
            d.finish().unwrap();
        }
        check::<1>(&dec, &back, &log.syms);
        check::<LANES>(&dec, &back, &log.syms);
    }

    #[test]
    fn bad_tables_are_rejected() {
        // One table, index 0, one symbol with frequency 4095 (must sum to 4096).
        let mut b = vec![1, 0, 1, 3];
        put_varint(&mut b, 4095);
        assert!(Tables::read(&mut ByteReader::new(&b)).is_err());
        let mut b = vec![1, 0, 1, 3];
        put_varint(&mut b, 4096);
        assert!(Tables::read(&mut ByteReader::new(&b)).is_ok());
        b[3] = NSYM as u8;
        assert!(Tables::read(&mut ByteReader::new(&b)).is_err());
    }
}
