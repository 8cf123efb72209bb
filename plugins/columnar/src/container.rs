//! The segment container: header, checksum, entropy tables, coin directory and per-coin
//! sections; and the drivers that run the column coders block by block.
//!
//! ```text
//! "STRCOL" version:u8 flags:u8 crc32:u32le | payload
//! payload = block:varint entropy:u8 coins:varint rows:varint
//!           [extras:varint (per extra column: name_len:varint name)]   (flag EXTRA)
//!           [tables]
//!           directory (per coin: id_len:varint id rows:varint section_len:varint)
//!           sections  (per coin: [rans_len:varint rans] bits)
//! ```
//!
//! Rows are sorted by (coin id, ts); each coin's section is independent, so a coin filter skips
//! the sections of other coins by their lengths in the directory. Extra columns (a rollup's
//! `open`, `high`, ...) are named in the payload header and coded in every block after the
//! fixed columns, with the float coders.
//!
//! Within a section, version 2 (written now) stores each block as every column's header, then
//! the rows one by one (each with every column's value), so that the decoder overlaps the work
//! of a row's columns; version 1 (still read) stored each block column after column. The
//! column coders decode value by value through cursors, which serve both layouts. See
//! `docs/columnar.md`.

use std::borrow::Cow;
use std::collections::HashSet;

use strata_plugin_sdk::{Batch, Column, Error, FIXED_COLUMNS, Result};

use crate::bitio::{BitReader, BitWriter, ByteReader, put_varint};
use crate::entropy::{
    Counts, LANES, NFAM, RansDecoder, RawSymbols, SymSink, SymSource, SymbolLog, Tables,
};
use crate::floats::{self, Pred, Refs};
use crate::{ints, timestamps};

pub const MAGIC: &[u8; 6] = b"STRCOL";
/// The version this build writes. Version 1 (each block column after column, one rANS state)
/// is still read.
pub const VERSION: u8 = 2;
/// Header flag: the payload names extra columns and every block codes them. Segments without
/// extra columns leave it clear, so they stay readable by readers that predate it.
pub const FLAG_EXTRA: u8 = 1;
const HEADER_LEN: usize = 12;
/// The largest block a segment may declare.
pub const MAX_BLOCK: usize = 1 << 20;

const FAM_PRICE: usize = 2;
const FAM_SUPPLY: usize = 3;
const FAM_MCAP: usize = 4;
const FAM_VOLUME: usize = 5;
const FAM_RANK: usize = 6;
const FAM_EXTRA: usize = 7;

/// Predictors each float column may use (price and supply come first in a row, so only
/// market cap and volume can lean on them).
const PRICE_PREDS: &[Pred] = &[Pred::Prev];
const SUPPLY_PREDS: &[Pred] = &[Pred::Prev];
const MCAP_PREDS: &[Pred] = &[Pred::Prev, Pred::Ratio, Pred::Product, Pred::RatioMedian];
const VOLUME_PREDS: &[Pred] = &[Pred::Prev, Pred::Ratio];
/// Extra columns are often price-like (`open`, `high`, `low`), so they may scale with price.
const EXTRA_PREDS: &[Pred] = &[Pred::Prev, Pred::Ratio];

/// Encoder settings (the codec's options).
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub block: usize,
    pub entropy: bool,
}

/// One coin's rows, columns sliced from the sorted batch.
struct CoinCols<'a> {
    ts: &'a [i64],
    price: &'a [f64],
    supply: &'a [f64],
    mcap: &'a [f64],
    volume: &'a [f64],
    rank: &'a [u32],
    extra: Vec<&'a [f64]>,
}

/// Buffers reused from block to block while encoding.
#[derive(Default)]
struct Scratch {
    ts: [Vec<[u64; 2]>; 2],
    /// Per float column (fixed ones, then extras): the block's (symbol, code) per row, and
    /// scratch space for the candidates' codes.
    codes: Vec<[Vec<(u8, u64)>; 2]>,
}

/// A float column being encoded: values, allowed predictors, family, running context, and
/// the current block's plan.
struct FloatCol<'a> {
    values: &'a [f64],
    preds: &'static [Pred],
    fam: usize,
    ctx: usize,
    plan: floats::Plan,
}

impl FloatCol<'_> {
    fn header(
        &mut self,
        lo: usize,
        hi: usize,
        refs: Refs<'_>,
        bits: &mut BitWriter,
        s: &mut [Vec<(u8, u64)>; 2],
    ) {
        let [codes, spare] = s;
        self.plan =
            floats::encode_header(self.values, lo, hi, self.preds, refs, bits, codes, spare);
    }

    #[inline(always)]
    fn put(
        &mut self,
        r: usize,
        code: Option<&(u8, u64)>,
        sink: &mut impl SymSink,
        bits: &mut BitWriter,
    ) {
        let v = self.values[r];
        floats::put_value(self.plan, v, code, self.fam, &mut self.ctx, sink, bits);
    }
}

/// Encodes one coin's rows: per block, every column's header, then the rows one after
/// another, each with every column's value (format version 2).
fn encode_coin(
    c: &CoinCols<'_>,
    block: usize,
    sink: &mut impl SymSink,
    s: &mut Scratch,
) -> Vec<u8> {
    let mut bits = BitWriter::default();
    let mut ts_state = timestamps::TsState::default();
    let mut rank_ctx = 0;
    let refs = Refs {
        price: c.price,
        supply: c.supply,
    };
    let col = |values, preds, fam| FloatCol {
        values,
        preds,
        fam,
        ctx: 0,
        plan: floats::Plan::Constant,
    };
    let mut fixed = [
        col(c.price, PRICE_PREDS, FAM_PRICE),
        col(c.supply, SUPPLY_PREDS, FAM_SUPPLY),
        col(c.mcap, MCAP_PREDS, FAM_MCAP),
        col(c.volume, VOLUME_PREDS, FAM_VOLUME),
    ];
    let mut extra: Vec<FloatCol<'_>> = c
        .extra
        .iter()
        .map(|v| col(v, EXTRA_PREDS, FAM_EXTRA))
        .collect();
    s.codes
        .resize_with(fixed.len() + extra.len(), Default::default);
    let (fixed_codes, extra_codes) = s.codes.split_at_mut(fixed.len());
    let n = c.ts.len();
    for lo in (0..n).step_by(block) {
        let hi = (lo + block).min(n);
        // Headers: timestamps, the fixed float columns, rank, extra columns.
        let tsb = timestamps::encode_header(c.ts, lo, hi, &mut ts_state, &mut bits, &mut s.ts);
        for (f, codes) in fixed.iter_mut().zip(fixed_codes.iter_mut()) {
            f.header(lo, hi, refs, &mut bits, codes);
        }
        let rank_coded = ints::encode_header(c.rank, lo, hi, &mut bits);
        for (f, codes) in extra.iter_mut().zip(extra_codes.iter_mut()) {
            f.header(lo, hi, refs, &mut bits, codes);
        }
        // Rows, each column's value in the same order.
        for r in lo..hi {
            if r >= tsb.from {
                let codes = s.ts[0][r - tsb.from];
                timestamps::put_row(tsb, codes, &mut ts_state.ctx_j, sink, &mut bits);
            }
            for (f, [codes, _]) in fixed.iter_mut().zip(fixed_codes.iter()) {
                f.put(r, codes.get(r - lo), sink, &mut bits);
            }
            if rank_coded {
                ints::put_value(c.rank, r, FAM_RANK, &mut rank_ctx, sink, &mut bits);
            }
            for (f, [codes, _]) in extra.iter_mut().zip(extra_codes.iter()) {
                f.put(r, codes.get(r - lo), sink, &mut bits);
            }
        }
    }
    bits.finish()
}

/// The batch's rows in (coin id, ts) order, borrowing when it is sorted already.
struct Sorted<'a> {
    coin_index: Cow<'a, [u32]>,
    ts: Cow<'a, [i64]>,
    price: Cow<'a, [f64]>,
    supply: Cow<'a, [f64]>,
    mcap: Cow<'a, [f64]>,
    volume: Cow<'a, [f64]>,
    rank: Cow<'a, [u32]>,
    extra: Vec<Cow<'a, [f64]>>,
}

fn sort(batch: &Batch) -> Sorted<'_> {
    let mut by_name: Vec<u32> = (0..batch.coins.len() as u32).collect();
    by_name.sort_unstable_by(|&a, &b| batch.coins[a as usize].cmp(&batch.coins[b as usize]));
    let mut rank = vec![0u32; batch.coins.len()];
    for (r, &c) in by_name.iter().enumerate() {
        rank[c as usize] = r as u32;
    }
    let key = |i: usize| (rank[batch.coin_index[i] as usize], batch.ts[i]);
    if (1..batch.len()).all(|i| key(i - 1) <= key(i)) {
        return Sorted {
            coin_index: Cow::Borrowed(&batch.coin_index),
            ts: Cow::Borrowed(&batch.ts),
            price: Cow::Borrowed(&batch.price),
            supply: Cow::Borrowed(&batch.supply),
            mcap: Cow::Borrowed(&batch.market_cap),
            volume: Cow::Borrowed(&batch.volume),
            rank: Cow::Borrowed(&batch.rank),
            extra: batch
                .extra
                .iter()
                .map(|c| Cow::Borrowed(c.values.as_slice()))
                .collect(),
        };
    }
    // Stable sort by (coin rank, ts): a counting sort by coin keeps input order within a coin,
    // and a coin's rows then need a (stable) sort by ts only when they are not in order already
    // (inputs usually come in time order).
    let mut start = vec![0usize; batch.coins.len() + 1];
    for &c in &batch.coin_index {
        start[rank[c as usize] as usize + 1] += 1;
    }
    for r in 1..start.len() {
        start[r] += start[r - 1];
    }
    let mut next = start.clone();
    let mut order = vec![0usize; batch.len()];
    for (i, &c) in batch.coin_index.iter().enumerate() {
        let at = &mut next[rank[c as usize] as usize];
        order[*at] = i;
        *at += 1;
    }
    for w in start.windows(2) {
        let rows = &mut order[w[0]..w[1]];
        if !rows.is_sorted_by_key(|&i| batch.ts[i]) {
            rows.sort_by_key(|&i| batch.ts[i]);
        }
    }
    fn gather<T: Copy>(col: &[T], order: &[usize]) -> Cow<'static, [T]> {
        Cow::Owned(order.iter().map(|&i| col[i]).collect())
    }
    Sorted {
        coin_index: gather(&batch.coin_index, &order),
        ts: gather(&batch.ts, &order),
        price: gather(&batch.price, &order),
        supply: gather(&batch.supply, &order),
        mcap: gather(&batch.market_cap, &order),
        volume: gather(&batch.volume, &order),
        rank: gather(&batch.rank, &order),
        extra: batch
            .extra
            .iter()
            .map(|c| gather(&c.values, &order))
            .collect(),
    }
}

/// Encodes a validated batch.
///
/// The entropy tables cost a few hundred bytes, which a small segment may not earn back; below
/// [`SMALL`] rows an entropy-coded encoding is compared with plain symbols and the smaller kept.
pub fn encode(batch: &Batch, p: Params) -> Result<Vec<u8>> {
    let coded = encode_with_report(batch, p, None)?;
    if p.entropy && batch.len() <= SMALL {
        let plain = encode_with_report(
            batch,
            Params {
                entropy: false,
                ..p
            },
            None,
        )?;
        if plain.len() < coded.len() {
            return Ok(plain);
        }
    }
    Ok(coded)
}

/// Segments up to this many rows also try plain symbols (see [`encode`]).
pub const SMALL: usize = 20_000;

/// How many bytes each part of an encoding takes (for the benchmark and tuning).
#[derive(Debug, Default)]
pub struct SizeReport {
    /// Per entropy family: (name, bytes of rANS-coded symbols, bytes of raw residual bits).
    pub families: Vec<(&'static str, f64, f64)>,
    /// Bytes of the bit streams not accounted to families (block headers, first timestamps,
    /// constant and raw blocks).
    pub headers: f64,
    /// Bytes of header, tables and directory.
    pub container: usize,
}

/// [`encode`], filling `report` with a size breakdown when given.
pub fn encode_with_report(
    batch: &Batch,
    p: Params,
    mut report: Option<&mut SizeReport>,
) -> Result<Vec<u8>> {
    let s = sort(batch);
    // Runs of one coin, in coin-id order.
    let mut runs: Vec<(u32, usize, usize)> = Vec::new();
    let mut lo = 0;
    for i in 1..=s.ts.len() {
        if i == s.ts.len() || s.coin_index[i] != s.coin_index[lo] {
            runs.push((s.coin_index[lo], lo, i));
            lo = i;
        }
    }
    let mut scratch = Scratch::default();
    let mut log = SymbolLog::default();
    let mut sections: Vec<(Vec<u8>, usize, usize)> = Vec::with_capacity(runs.len());
    for &(_, lo, hi) in &runs {
        let cols = CoinCols {
            ts: &s.ts[lo..hi],
            price: &s.price[lo..hi],
            supply: &s.supply[lo..hi],
            mcap: &s.mcap[lo..hi],
            volume: &s.volume[lo..hi],
            rank: &s.rank[lo..hi],
            extra: s.extra.iter().map(|c| &c[lo..hi]).collect(),
        };
        let first = log.syms.len();
        let bits = if p.entropy {
            encode_coin(&cols, p.block, &mut log, &mut scratch)
        } else {
            encode_coin(&cols, p.block, &mut RawSymbols, &mut scratch)
        };
        sections.push((bits, first, log.syms.len()));
    }

    // Header with a checksum placeholder, then the payload in place (no copies of sections).
    let bit_bytes: usize = sections.iter().map(|s| s.0.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + bit_bytes + log.syms.len() / 2 + runs.len() * 24);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(if batch.extra.is_empty() {
        0
    } else {
        FLAG_EXTRA
    });
    out.extend_from_slice(&[0; 4]);
    put_varint(&mut out, p.block as u64);
    out.push(u8::from(p.entropy));
    put_varint(&mut out, runs.len() as u64);
    put_varint(&mut out, s.ts.len() as u64);
    if !batch.extra.is_empty() {
        put_varint(&mut out, batch.extra.len() as u64);
        for c in &batch.extra {
            put_varint(&mut out, c.name.len() as u64);
            out.extend_from_slice(c.name.as_bytes());
        }
    }
    let mut rans = Vec::with_capacity(sections.len());
    if p.entropy {
        let mut counts = Counts::default();
        counts.add(&log.syms);
        let tables = Tables::from_counts(&counts);
        tables.write(&mut out);
        if let Some(rep) = report.as_deref_mut() {
            let fam = tables.family_bits(&log.syms);
            let raw: u64 = fam.iter().map(|f| f.1).sum();
            rep.families = crate::entropy::FAMILY_NAMES
                .iter()
                .zip(fam)
                .map(|(n, (sym, raw))| (*n, sym / 8.0, raw as f64 / 8.0))
                .collect();
            rep.headers = bit_bytes as f64 - raw as f64 / 8.0;
        }
        let enc = tables.encoder();
        for (_, a, b) in &sections {
            rans.push(Tables::encode(&enc, &log.syms[*a..*b], LANES)?);
        }
    }
    let mut len_prefix = Vec::new();
    for (i, &(coin, lo, hi)) in runs.iter().enumerate() {
        let id = batch.coins[coin as usize].as_bytes();
        put_varint(&mut out, id.len() as u64);
        out.extend_from_slice(id);
        put_varint(&mut out, (hi - lo) as u64);
        let mut len = sections[i].0.len();
        if let Some(r) = rans.get(i) {
            len_prefix.clear();
            put_varint(&mut len_prefix, r.len() as u64);
            len += len_prefix.len() + r.len();
        }
        put_varint(&mut out, len as u64);
    }
    if let Some(rep) = report {
        rep.container = out.len();
    }
    for (i, (bits, _, _)) in sections.iter().enumerate() {
        if let Some(r) = rans.get(i) {
            put_varint(&mut out, r.len() as u64);
            out.extend_from_slice(r);
        }
        out.extend_from_slice(bits);
    }
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[8..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes one coin's rows of a version-1 segment, where each block holds one column after
/// another (a column's header, then its values).
fn decode_coin_v1(
    bits: &mut BitReader<'_>,
    src: &mut impl SymSource,
    rows: usize,
    block: usize,
    coin: u32,
    out: &mut Batch,
) -> Result<()> {
    let start = out.len();
    let mut ts_state = timestamps::TsState::default();
    let mut ctx = [0usize; NFAM];
    let mut extra_ctx = vec![0usize; out.extra.len()];
    let mut done = 0;
    /// Decodes a column's header and then its `n` values.
    #[allow(clippy::too_many_arguments)]
    fn column(
        col: &mut Vec<f64>,
        start: usize,
        n: usize,
        refs: Refs<'_>,
        fam: usize,
        ctx: &mut usize,
        src: &mut impl SymSource,
        bits: &mut BitReader<'_>,
    ) -> Result<()> {
        let mut cur = floats::Cursor::header(&col[start..], refs, bits)?;
        for _ in 0..n {
            col.push(cur.next(refs, fam, ctx, src, bits)?);
        }
        Ok(())
    }
    while done < rows {
        let n = block.min(rows - done);
        let (coded, h) =
            timestamps::decode_header(1, &mut out.ts, n, done == 0, &mut ts_state, bits)?;
        for _ in 0..coded {
            out.ts
                .push(timestamps::decode_row(h, &mut ts_state, src, bits)?);
        }
        let none = Refs {
            price: &[],
            supply: &[],
        };
        let fam = FAM_PRICE;
        column(
            &mut out.price,
            start,
            n,
            none,
            fam,
            &mut ctx[fam],
            src,
            bits,
        )?;
        let price_only = Refs {
            price: &out.price[start..],
            supply: &[],
        };
        let fam = FAM_SUPPLY;
        column(
            &mut out.supply,
            start,
            n,
            price_only,
            fam,
            &mut ctx[fam],
            src,
            bits,
        )?;
        let refs = Refs {
            price: &out.price[start..],
            supply: &out.supply[start..],
        };
        let fam = FAM_MCAP;
        column(
            &mut out.market_cap,
            start,
            n,
            refs,
            fam,
            &mut ctx[fam],
            src,
            bits,
        )?;
        let fam = FAM_VOLUME;
        column(
            &mut out.volume,
            start,
            n,
            refs,
            fam,
            &mut ctx[fam],
            src,
            bits,
        )?;
        let prev_rank = if out.rank.len() > start {
            out.rank.last().copied().unwrap_or(0)
        } else {
            0
        };
        let mut rank = ints::Cursor::header(prev_rank, bits);
        for _ in 0..n {
            out.rank
                .push(rank.next(FAM_RANK, &mut ctx[FAM_RANK], src, bits)?);
        }
        for (col, ctx) in out.extra.iter_mut().zip(&mut extra_ctx) {
            column(&mut col.values, start, n, refs, FAM_EXTRA, ctx, src, bits)?;
        }
        out.coin_index.extend(std::iter::repeat_n(coin, n));
        done += n;
    }
    Ok(())
}

/// Decodes one coin's rows of a version-2 segment: per block, every column's header, then the
/// rows one by one. Each row's columns depend on each other only through price and supply, so
/// the processor works on several columns' values (and their symbols, which alternate between
/// two rANS states) at once.
fn decode_coin_v2(
    bits: &mut BitReader<'_>,
    src: &mut impl SymSource,
    rows: usize,
    block: usize,
    coin: u32,
    out: &mut Batch,
) -> Result<()> {
    let start = out.len();
    let mut ts_state = timestamps::TsState::default();
    let mut ctx = [0usize; NFAM];
    let mut extra_ctx = vec![0usize; out.extra.len()];
    let mut extra = Vec::with_capacity(out.extra.len());
    let mut done = 0;
    while done < rows {
        let n = block.min(rows - done);
        let (coded, h) =
            timestamps::decode_header(2, &mut out.ts, n, done == 0, &mut ts_state, bits)?;
        let refs = Refs {
            price: &out.price[start..],
            supply: &out.supply[start..],
        };
        let mut price = floats::Cursor::header(&out.price[start..], refs, bits)?;
        let mut supply = floats::Cursor::header(&out.supply[start..], refs, bits)?;
        let mut mcap = floats::Cursor::header(&out.market_cap[start..], refs, bits)?;
        let mut volume = floats::Cursor::header(&out.volume[start..], refs, bits)?;
        let prev_rank = if out.rank.len() > start {
            out.rank.last().copied().unwrap_or(0)
        } else {
            0
        };
        let mut rank = ints::Cursor::header(prev_rank, bits);
        extra.clear();
        for col in &out.extra {
            extra.push(floats::Cursor::header(&col.values[start..], refs, bits)?);
        }
        // A column constant over the block is filled now, and the rows skip it.
        let fill = |col: &mut Vec<f64>, cur: &floats::Cursor| {
            cur.constant()
                .map(|v| col.extend(std::iter::repeat_n(v, n)))
                .is_none()
        };
        let coded_price = fill(&mut out.price, &price);
        let coded_supply = fill(&mut out.supply, &supply);
        let coded_mcap = fill(&mut out.market_cap, &mcap);
        let coded_volume = fill(&mut out.volume, &volume);
        let coded_rank = match rank.constant() {
            Some(r) => {
                out.rank.extend(std::iter::repeat_n(r, n));
                false
            }
            None => true,
        };
        for i in 0..n {
            if i >= n - coded {
                out.ts
                    .push(timestamps::decode_row(h, &mut ts_state, src, bits)?);
            }
            if coded_price {
                let none = Refs {
                    price: &[],
                    supply: &[],
                };
                let fam = FAM_PRICE;
                out.price
                    .push(price.next(none, fam, &mut ctx[fam], src, bits)?);
            }
            if coded_supply {
                let price_only = Refs {
                    price: &out.price[start..],
                    supply: &[],
                };
                let fam = FAM_SUPPLY;
                out.supply
                    .push(supply.next(price_only, fam, &mut ctx[fam], src, bits)?);
            }
            let refs = Refs {
                price: &out.price[start..],
                supply: &out.supply[start..],
            };
            if coded_mcap {
                let fam = FAM_MCAP;
                out.market_cap
                    .push(mcap.next(refs, fam, &mut ctx[fam], src, bits)?);
            }
            if coded_volume {
                let fam = FAM_VOLUME;
                out.volume
                    .push(volume.next(refs, fam, &mut ctx[fam], src, bits)?);
            }
            if coded_rank {
                out.rank
                    .push(rank.next(FAM_RANK, &mut ctx[FAM_RANK], src, bits)?);
            }
            for ((cur, col), ctx) in extra.iter_mut().zip(&mut out.extra).zip(&mut extra_ctx) {
                col.values.push(cur.next(refs, FAM_EXTRA, ctx, src, bits)?);
            }
        }
        out.coin_index.extend(std::iter::repeat_n(coin, n));
        done += n;
    }
    Ok(())
}

/// Reads the names of the extra columns, which must be what [`Batch::validate`] accepts.
fn read_extra_names(r: &mut ByteReader<'_>) -> Result<Vec<String>> {
    // Every name takes at least 2 bytes.
    let n = r.varint_max(r.remaining() as u64 / 2, "extra column count")? as usize;
    if n == 0 {
        return Err(Error::corrupt(
            "the extra-columns flag is set but no column is named",
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        let len = r.varint("extra column name length")?;
        let name = std::str::from_utf8(r.bytes(len, "extra column name")?)
            .map_err(|_| Error::corrupt(format!("extra column {i}: name is not UTF-8")))?;
        if name.is_empty() || FIXED_COLUMNS.contains(&name) || names.iter().any(|o| o == name) {
            return Err(Error::corrupt(format!(
                "extra column {i}: name `{name}` is empty, repeated or a fixed column's"
            )));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

struct Entry<'a> {
    id: &'a str,
    rows: usize,
    section: &'a [u8],
}

/// Decodes a segment, only the sections of `coins` when given.
pub fn decode(bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
    if bytes.len() < HEADER_LEN || &bytes[..6] != MAGIC {
        return Err(Error::corrupt("not a strata columnar segment (bad magic)"));
    }
    let version = bytes[6];
    if !(1..=VERSION).contains(&version) {
        return Err(Error::corrupt(format!(
            "columnar format version {version} is not supported (this build reads versions 1 to {VERSION})"
        )));
    }
    if bytes[7] & !FLAG_EXTRA != 0 {
        return Err(Error::corrupt(format!(
            "unknown header flags {:#04x}",
            bytes[7]
        )));
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let payload = &bytes[HEADER_LEN..];
    if crc32fast::hash(payload) != crc {
        return Err(Error::corrupt("checksum mismatch: the segment is damaged"));
    }
    let mut r = ByteReader::new(payload);
    let block = r.varint_max(MAX_BLOCK as u64, "block size")? as usize;
    if block == 0 {
        return Err(Error::corrupt("block size is 0"));
    }
    let entropy = match r.u8("entropy flag")? {
        0 => false,
        1 => true,
        f => return Err(Error::corrupt(format!("entropy flag {f} is not 0 or 1"))),
    };
    // Every directory entry takes at least 3 bytes.
    let n_coins = r.varint_max(r.remaining() as u64 / 3, "coin count")? as usize;
    let total = r.varint_max(u64::from(u32::MAX), "row count")? as usize;
    let extra = if bytes[7] & FLAG_EXTRA != 0 {
        read_extra_names(&mut r)?
    } else {
        Vec::new()
    };
    let tables = if entropy {
        Tables::read(&mut r)?.decoder_tables()
    } else {
        Vec::new()
    };
    let mut dir: Vec<(&[u8], usize, usize)> = Vec::with_capacity(n_coins);
    let (mut rows_sum, mut len_sum) = (0usize, 0usize);
    for i in 0..n_coins {
        let len = r.varint("coin id length")?;
        let id = r.bytes(len, "coin id")?;
        let rows = r.varint_max(u64::from(u32::MAX), "coin row count")? as usize;
        let section = r.varint_max(payload.len() as u64, "section length")? as usize;
        if rows == 0 || id.is_empty() {
            return Err(Error::corrupt(format!("directory entry {i} is empty")));
        }
        if let Some(&(prev, _, _)) = dir.last()
            && prev >= id
        {
            return Err(Error::corrupt(format!(
                "directory entry {i}: coin ids are not strictly increasing"
            )));
        }
        rows_sum += rows;
        len_sum += section;
        dir.push((id, rows, section));
    }
    if rows_sum != total || len_sum != r.remaining() {
        return Err(Error::corrupt(format!(
            "directory says {rows_sum} rows in {len_sum} bytes; header says {total} rows, {} bytes follow",
            r.remaining()
        )));
    }
    let mut entries = Vec::with_capacity(dir.len());
    for (i, (id, rows, len)) in dir.into_iter().enumerate() {
        let id = std::str::from_utf8(id)
            .map_err(|_| Error::corrupt(format!("directory entry {i}: coin id is not UTF-8")))?;
        entries.push(Entry {
            id,
            rows,
            section: r.bytes(len as u64, "coin section")?,
        });
    }

    let wanted: Option<HashSet<&str>> = coins.map(|c| c.iter().map(String::as_str).collect());
    let keep = |e: &Entry<'_>| wanted.as_ref().is_none_or(|w| w.contains(e.id));
    let rows: usize = entries.iter().filter(|e| keep(e)).map(|e| e.rows).sum();
    // Cap the up-front reservation: a crafted header must not allocate before it decodes.
    let reserve = rows.min(payload.len().saturating_mul(16));
    let mut out = Batch::with_capacity(reserve);
    out.extra = extra
        .into_iter()
        .map(|name| Column {
            name,
            values: Vec::with_capacity(reserve),
        })
        .collect();
    for e in entries.iter().filter(|e| keep(e)) {
        let coin = out.coins.len() as u32;
        out.coins.push(e.id.to_owned());
        let mut sr = ByteReader::new(e.section);
        let what = |m: &str| format!("coin `{}`: {m}", e.id);
        if entropy {
            let rans_len = sr.varint("rANS length")?;
            let rans = sr.bytes(rans_len, "rANS stream")?;
            let bits_bytes = sr.bytes(sr.remaining() as u64, "bit stream")?;
            let mut bits = BitReader::new(bits_bytes);
            let decoded = if version == 1 {
                let mut src = RansDecoder::<1>::new(&tables, rans)?;
                decode_coin_v1(&mut bits, &mut src, e.rows, block, coin, &mut out)
                    .and_then(|()| src.finish())
            } else {
                let mut src = RansDecoder::<LANES>::new(&tables, rans)?;
                decode_coin_v2(&mut bits, &mut src, e.rows, block, coin, &mut out)
                    .and_then(|()| src.finish())
            };
            decoded.map_err(|err| Error::corrupt(what(&err.to_string())))?;
            bits.finish(&what("bits"))?;
        } else {
            let mut bits = BitReader::new(e.section);
            let mut src = RawSymbols;
            if version == 1 {
                decode_coin_v1(&mut bits, &mut src, e.rows, block, coin, &mut out)
            } else {
                decode_coin_v2(&mut bits, &mut src, e.rows, block, coin, &mut out)
            }
            .map_err(|err| Error::corrupt(what(&err.to_string())))?;
            bits.finish(&what("bits"))?;
        }
    }
    Ok(out)
}
