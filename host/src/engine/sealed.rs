//! The hot tier's sealed blocks: rows of closed days, compressed per coin, the way TimescaleDB
//! compresses a chunk after `compress_after`.
//!
//! A row-per-row SQLite table costs ~60 bytes a record; the same rows in strata's columnar
//! format cost ~10. So the hot tier keeps only the open day row by row (`hot_recent`, `hot`:
//! the hourly upsert lands there unchanged) and every closed day in `hot_block`: one row per
//! coin and *window*, its rows encoded with the columnar codec's container, natively, entropy
//! stage off (it halves encode speed for ~25% of size; the colder tiers use it).
//!
//! Why a fixed internal format and not the tier's codec component: the hot tier is the engine's
//! own (it exists before any policy and is read by every query and by the hourly `latest`
//! path), so it must not depend on a plugin or pay an instance per read; and the columnar
//! container is bit-exact, checksummed (CRC-32) and documented in `docs/columnar.md`.
//!
//! Rules (see `docs/design.md`, "Sealed blocks"):
//!
//! - A window is an aligned span of 2^k days (k ≤ [`MAX_SPAN_LOG2`]) from 1970-01-01, chosen
//!   when a coin's first rows in it are sealed, so that it holds about [`TARGET_ROWS`] rows at
//!   the coin's density (8 days of hourly rows, 256 of daily). Aligned power-of-two windows
//!   either nest or are disjoint, so a coin's windows never overlap. A block that would pass
//!   [`MAX_ROWS`] is split into its two halves.
//! - Precedence: `hot_recent` over `hot` over `hot_block`. A late or corrected row for a sealed
//!   day is ingested row by row and wins over the block until the next seal folds it in.
//! - `live_from`: a transition that cuts through a block does not rewrite it; rows older than
//!   `live_from` are dead (already moved), and a rewrite drops them. `live_from` and `last_ts`
//!   are the first and last live rows' timestamps, `rows` the live count.
//! - Sealing (rows older than a day boundary: in a bulk import, before the batch's last day;
//!   in `tier`, before the day of `now`) reads the rows and the blocks they fall in, encodes on
//!   every core, and replaces blocks and deletes rows in one transaction per round.

use anyhow::{Context, Result, bail};
use rusqlite::OptionalExtension;
use strata_codec_columnar::container::{self, Params};
use strata_plugin_sdk::Batch;

use crate::hot::HotRange;
use crate::latest::HotRow;
use crate::policy::DAY_MS;
use crate::schema::unpack_values;
use crate::store::Store;

/// The table of sealed blocks (schema version 4).
pub(crate) const BLOCK_TABLE: &str = "CREATE TABLE IF NOT EXISTS hot_block (
    coin INTEGER NOT NULL, win_start INTEGER NOT NULL, win_end INTEGER NOT NULL,
    live_from INTEGER NOT NULL, last_ts INTEGER NOT NULL, rows INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (coin, win_start)
);";

/// Rows a new window is sized for.
pub const TARGET_ROWS: usize = 256;
/// A day with at least this many rows is a window of its own. Such blocks cost ~12% more than
/// 8-day ones (11.7 against 10.4 B/rec on hourly rows) but a transition's daily cut never goes
/// through one (a block it cuts keeps its dead rows until rewritten: half a window on average,
/// +13% over a 30-day hot tier) and SQLite packs ~300-byte rows ~14 to a page, where a 2 KB
/// block fills half of one.
pub const DENSE_DAY_ROWS: usize = 16;
/// A block with more rows than this is split into its window's halves.
pub const MAX_ROWS: usize = 512;
/// The widest window: 2^10 = 1024 days.
pub const MAX_SPAN_LOG2: u32 = 10;
/// The narrowest window a split makes: 1/32 day (45 minutes).
const MIN_SPAN: i64 = DAY_MS >> 5;
/// The container's settings: 128-row blocks, no entropy stage (see the module doc).
const PARAMS: Params = Params {
    block: 128,
    entropy: false,
};
/// Rows sealed per round: one transaction, encoded on every core.
pub(crate) const ROUND_ROWS: usize = 1 << 20;

/// The start of `t`'s UTC day.
pub fn floor_day(t: i64) -> i64 {
    t.div_euclid(DAY_MS) * DAY_MS
}

/// A block about to be written.
struct NewBlock {
    win: (i64, i64),
    live_from: i64,
    last_ts: i64,
    rows: usize,
    data: Vec<u8>,
}

/// One window's seal: the rows going in, and the block already there (its `live_from` and
/// bytes), if any.
struct Job {
    coin: i64,
    win: (i64, i64),
    old: Option<(i64, Vec<u8>)>,
    rows: Vec<HotRow>,
}

/// What a job produced: the blocks replacing its window's old one.
struct Sealed {
    coin: i64,
    replaces: Option<i64>,
    blocks: Vec<NewBlock>,
}

/// What one seal did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Row-table rows folded into blocks.
    pub rows: u64,
    /// Blocks written (new or rewritten).
    pub blocks: u64,
}

fn label(coin: i64, win: (i64, i64)) -> String {
    format!("hot block of coin {coin}, window {}..{}", win.0, win.1)
}

fn encode(coin: i64, rows: &[HotRow]) -> Result<Vec<u8>> {
    let mut b = Batch::with_capacity(rows.len());
    b.coins.push(coin.to_string());
    for &(ts, f, rank) in rows {
        b.push(0, ts, f[0], f[1], f[2], f[3], rank);
    }
    container::encode(&b, PARAMS).map_err(|e| anyhow::anyhow!("encoding a hot block: {e}"))
}

/// Decodes a block and checks it is what its key says: one coin (its id), timestamps rising
/// strictly inside the window.
pub(crate) fn decode(coin: i64, win: (i64, i64), data: &[u8]) -> Result<Vec<HotRow>> {
    let what = || label(coin, win);
    let b = container::decode(data, None).map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
    if !b.extra.is_empty() || b.coins.len() != 1 || b.coins[0] != coin.to_string() {
        bail!("{}: holds {:?}, not the coin's rows", what(), b.coins);
    }
    let mut prev = win.0 - 1;
    let mut out = Vec::with_capacity(b.len());
    for i in 0..b.len() {
        let ts = b.ts[i];
        if ts <= prev || ts >= win.1 {
            bail!(
                "{}: row {i} at {ts} is out of order or outside the window",
                what()
            );
        }
        prev = ts;
        let f = [b.price[i], b.market_cap[i], b.volume[i], b.supply[i]];
        out.push((ts, f, b.rank[i]));
    }
    Ok(out)
}

/// Merges two lists sorted in the same direction (`newest_first`: descending), at most `limit`
/// rows; on an equal timestamp the row of `newer` wins.
pub(crate) fn merge_rows(
    older: Vec<HotRow>,
    newer: Vec<HotRow>,
    newest_first: bool,
    limit: Option<usize>,
    mut emit: impl FnMut(HotRow),
) {
    let (mut a, mut b) = (older.into_iter().peekable(), newer.into_iter().peekable());
    let before = |x: i64, y: i64| if newest_first { x > y } else { x < y };
    let mut n = 0;
    while limit.is_none_or(|l| n < l) {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (Some(x), Some(y)) => {
                if x.0 == y.0 {
                    a.next();
                    b.next()
                } else if before(x.0, y.0) {
                    a.next()
                } else {
                    b.next()
                }
            }
        };
        emit(next.expect("one side has a row"));
        n += 1;
    }
}

/// The sealed rows of coin `id` in `range`, in its order, at most its limit.
pub(crate) fn read_blocks(
    conn: &rusqlite::Connection,
    id: i64,
    range: &HotRange,
) -> Result<Vec<HotRow>> {
    let sql = if range.newest_first {
        "SELECT win_start, win_end, live_from, data FROM hot_block
         WHERE coin = ?1 AND win_start <= ?3 AND last_ts >= ?2 AND live_from <= ?3
         ORDER BY win_start DESC"
    } else {
        "SELECT win_start, win_end, live_from, data FROM hot_block
         WHERE coin = ?1 AND win_start <= ?3 AND last_ts >= ?2 AND live_from <= ?3
         ORDER BY win_start"
    };
    let mut st = conn.prepare_cached(sql)?;
    let mut q = st.query(rusqlite::params![id, range.from, range.to])?;
    let mut out = Vec::new();
    while let Some(r) = q.next()? {
        let win = (r.get(0)?, r.get(1)?);
        let live_from: i64 = r.get(2)?;
        let rows = decode(id, win, r.get_ref(3)?.as_blob()?)?;
        let lo = range.from.max(live_from);
        let keep = rows.into_iter().filter(|r| r.0 >= lo && r.0 <= range.to);
        if range.newest_first {
            let mut v: Vec<HotRow> = keep.collect();
            v.reverse();
            out.extend(v);
        } else {
            out.extend(keep);
        }
        if range.limit.is_some_and(|l| out.len() >= l) {
            out.truncate(range.limit.unwrap_or(usize::MAX));
            break;
        }
    }
    Ok(out)
}

/// The window for the first unplaced row at `t`: the widest aligned window (≤ 2^MAX_SPAN_LOG2
/// days) that overlaps no window in `taken` and that, at the density of `pending` (the coin's
/// sorted timestamps being sealed) around it, holds at most [`TARGET_ROWS`] rows.
fn choose_window(t: i64, pending: &[i64], taken: &[(i64, i64)]) -> (i64, i64) {
    let (first, last) = (pending[0], pending[pending.len() - 1]);
    let day = (floor_day(t), floor_day(t) + DAY_MS);
    if pending.partition_point(|&x| x < day.1) >= DENSE_DAY_ROWS {
        return day;
    }
    for k in (1..=MAX_SPAN_LOG2).rev() {
        let span = DAY_MS << k;
        let start = t.div_euclid(span) * span;
        let end = start + span;
        if taken.iter().any(|&(s, e)| s < end && start < e) {
            continue;
        }
        let n = pending.partition_point(|&x| x < end) - pending.partition_point(|&x| x < start);
        let covered = (end.min(last + 1) - start.max(first)) as f64 / DAY_MS as f64;
        if n as f64 / covered.max(1.0) * (1u64 << k) as f64 <= TARGET_ROWS as f64 {
            return (start, end);
        }
    }
    // One day never overlaps a taken window that does not hold `t` (windows nest).
    (floor_day(t), floor_day(t) + DAY_MS)
}

/// Rows sorted by ts, with equal timestamps collapsed to the last one.
fn dedup_last(rows: &mut Vec<HotRow>) {
    let mut out: Vec<HotRow> = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        match out.last_mut() {
            Some(l) if l.0 == r.0 => *l = r,
            _ => out.push(r),
        }
    }
    *rows = out;
}

/// Runs one job: the old block's live rows, overridden by the new ones, in blocks of at most
/// [`MAX_ROWS`] rows (halving the window while it has more).
fn run_job(job: Job) -> Result<Sealed> {
    let Job {
        coin,
        win,
        old,
        rows,
    } = job;
    let mut all = Vec::new();
    let replaces = match old {
        Some((live_from, data)) => {
            let old_rows: Vec<HotRow> = decode(coin, win, &data)?
                .into_iter()
                .filter(|r| r.0 >= live_from)
                .collect();
            merge_rows(old_rows, rows, false, None, |r| all.push(r));
            Some(win.0)
        }
        None => {
            all = rows;
            None
        }
    };
    let mut blocks = Vec::new();
    split(coin, win, &all, &mut blocks)?;
    Ok(Sealed {
        coin,
        replaces,
        blocks,
    })
}

fn split(coin: i64, win: (i64, i64), rows: &[HotRow], out: &mut Vec<NewBlock>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if rows.len() > MAX_ROWS && win.1 - win.0 > MIN_SPAN {
        let mid = win.0 + (win.1 - win.0) / 2;
        let at = rows.partition_point(|r| r.0 < mid);
        split(coin, (win.0, mid), &rows[..at], out)?;
        return split(coin, (mid, win.1), &rows[at..], out);
    }
    out.push(NewBlock {
        win,
        live_from: rows[0].0,
        last_ts: rows[rows.len() - 1].0,
        rows: rows.len(),
        data: encode(coin, rows)?,
    });
    Ok(())
}

/// Runs `jobs` on every core, results in job order.
fn run_jobs(jobs: Vec<Job>) -> Result<Vec<Sealed>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if threads <= 1 {
        return jobs.into_iter().map(run_job).collect();
    }
    let jobs: Vec<std::sync::Mutex<Option<Job>>> = jobs
        .into_iter()
        .map(|j| std::sync::Mutex::new(Some(j)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<Sealed>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(slot) = jobs.get(i) else { break };
                        let job = slot
                            .lock()
                            .expect("not poisoned")
                            .take()
                            .expect("taken once");
                        mine.push((i, run_job(job)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a seal worker does not panic"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

impl Store {
    /// Seals every row-table row older than `before` (a day boundary) into blocks, in rounds of
    /// about [`ROUND_ROWS`] rows, one transaction each. Answers are unchanged.
    pub fn seal_hot(&mut self, before: i64) -> Result<SealReport> {
        let mut report = SealReport::default();
        self.merge_recent()?;
        let coins: Vec<i64> = {
            let mut st = self
                .conn
                .prepare("SELECT DISTINCT coin FROM hot WHERE ts < ?1")?;
            st.query_map([before], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut rest = &coins[..];
        while !rest.is_empty() {
            let done = self.write_txn(|s| {
                let mut pending = Vec::new();
                let mut rows = 0;
                let mut taken = 0;
                for &coin in rest {
                    let r = s.row_table_rows(coin, before)?;
                    rows += r.len();
                    taken += 1;
                    pending.push((coin, r));
                    if rows >= ROUND_ROWS {
                        break;
                    }
                }
                crate::crash::point("seal-round").context("sealing hot rows")?;
                let r = s.seal_in_txn(pending, before)?;
                report.rows += rows as u64;
                report.blocks += r;
                Ok(taken)
            })?;
            rest = &rest[done..];
        }
        if report.rows > 0 {
            self.latest.clear();
            // Deleting sealed days from `hot` (clustered by coin, then ts) leaves the open day's
            // rows spread thinly over its pages: when most of it went, it is rebuilt.
            let left: i64 = self
                .conn
                .query_row("SELECT count(*) FROM hot", [], |r| r.get(0))?;
            if (left as u64) < report.rows {
                self.write_txn(|s| s.rebuild_hot_table())?;
            }
        }
        Ok(report)
    }

    /// The `hot` rows of `coin` older than `before`, oldest first.
    fn row_table_rows(&self, coin: i64, before: i64) -> Result<Vec<HotRow>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT ts, vals FROM hot WHERE coin = ?1 AND ts < ?2 ORDER BY ts")?;
        let rows = st.query_map(rusqlite::params![coin, before], |r| {
            let (f, rank) = unpack_values(r.get_ref(1)?)?;
            Ok((r.get(0)?, f, rank))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Seals a bulk import's rows older than `before` (inside the ingest's transaction, after
    /// `hot_recent` was merged): per coin, `rows` sorted by ts (a later duplicate wins) over
    /// the coin's `hot` rows older than `before`, into its blocks.
    pub(crate) fn seal_import(
        &mut self,
        per_coin: Vec<(i64, Vec<HotRow>)>,
        before: i64,
    ) -> Result<()> {
        let mut pending = Vec::new();
        let mut rows = 0;
        for (coin, mut new) in per_coin {
            dedup_last(&mut new);
            let table = self.row_table_rows(coin, before)?;
            let merged = if table.is_empty() {
                new
            } else {
                let mut m = Vec::with_capacity(table.len() + new.len());
                merge_rows(table, new, false, None, |r| m.push(r));
                m
            };
            rows += merged.len();
            pending.push((coin, merged));
            if rows >= ROUND_ROWS {
                self.seal_in_txn(std::mem::take(&mut pending), before)?;
                rows = 0;
            }
        }
        self.seal_in_txn(pending, before)?;
        Ok(())
    }

    /// Seals `pending` (per coin, rows older than `before`, sorted, unique, already winning over
    /// the coin's row-table rows older than `before`) and deletes those row-table rows; inside
    /// the caller's transaction. Returns the blocks written.
    fn seal_in_txn(&mut self, pending: Vec<(i64, Vec<HotRow>)>, before: i64) -> Result<u64> {
        let t = std::time::Instant::now();
        let mut jobs = Vec::new();
        let mut coins = Vec::with_capacity(pending.len());
        for (coin, rows) in pending {
            coins.push(coin);
            if !rows.is_empty() {
                self.plan_coin(coin, rows, &mut jobs)?;
            }
        }
        let plan_ms = t.elapsed().as_secs_f64() * 1e3;
        let sealed = run_jobs(jobs)?;
        let encode_ms = t.elapsed().as_secs_f64() * 1e3 - plan_ms;
        let mut blocks = 0;
        {
            let mut drop_block = self
                .conn
                .prepare_cached("DELETE FROM hot_block WHERE coin = ?1 AND win_start = ?2")?;
            let mut put = self.conn.prepare_cached(
                "INSERT INTO hot_block (coin, win_start, win_end, live_from, last_ts, rows, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for s in &sealed {
                if let Some(w) = s.replaces {
                    drop_block.execute(rusqlite::params![s.coin, w])?;
                }
                for b in &s.blocks {
                    put.execute(rusqlite::params![
                        s.coin,
                        b.win.0,
                        b.win.1,
                        b.live_from,
                        b.last_ts,
                        b.rows as i64,
                        b.data
                    ])
                    .with_context(|| format!("writing the {}", label(s.coin, b.win)))?;
                    blocks += 1;
                }
            }
            let mut drop_rows = self
                .conn
                .prepare_cached("DELETE FROM hot WHERE coin = ?1 AND ts < ?2")?;
            for coin in coins {
                drop_rows.execute(rusqlite::params![coin, before])?;
            }
        }
        tracing::trace!(
            blocks,
            plan_ms,
            encode_ms,
            write_ms = t.elapsed().as_secs_f64() * 1e3 - plan_ms - encode_ms,
            "seal round"
        );
        Ok(blocks)
    }

    /// Splits one coin's rows (sorted, unique) into jobs, one per window: an existing block's,
    /// or a new one from [`choose_window`].
    fn plan_coin(&self, coin: i64, rows: Vec<HotRow>, jobs: &mut Vec<Job>) -> Result<()> {
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let reach = DAY_MS << MAX_SPAN_LOG2;
        let mut taken: Vec<(i64, i64)> = {
            let mut st = self.conn.prepare_cached(
                "SELECT win_start, win_end FROM hot_block
                 WHERE coin = ?1 AND win_end > ?2 AND win_start <= ?3 ORDER BY win_start",
            )?;
            st.query_map(
                rusqlite::params![
                    coin,
                    ts[0].saturating_sub(reach),
                    ts[ts.len() - 1].saturating_add(reach)
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?
        };
        let existing = taken.len();
        let mut rows = rows.into_iter().peekable();
        let mut i = 0;
        while let Some(&(t, _, _)) = rows.peek() {
            let old = taken[..existing].iter().position(|&(s, e)| s <= t && t < e);
            let win = match old {
                Some(k) => taken[k],
                None => {
                    let w = choose_window(t, &ts[i..], &taken);
                    taken.push(w);
                    w
                }
            };
            let mut part = Vec::new();
            while let Some(r) = rows.next_if(|r| r.0 < win.1) {
                part.push(r);
            }
            i += part.len();
            let old = match old {
                Some(_) => Some(self.conn.query_row(
                    "SELECT live_from, data FROM hot_block WHERE coin = ?1 AND win_start = ?2",
                    rusqlite::params![coin, win.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?),
                None => None,
            };
            jobs.push(Job {
                coin,
                win,
                old,
                rows: part,
            });
        }
        Ok(())
    }

    /// Removes sealed rows older than `cut` of `coins` (inside the caller's transaction): blocks
    /// wholly older go, a block the cut goes through keeps its bytes and moves `live_from`.
    ///
    /// When most blocks go (a backfill ageing out at once), the survivors are copied into a new
    /// table that replaces `hot_block`: dropping a table frees its pages without rebalancing the
    /// B-tree block by block (as `drop_hot_before` does for `hot`).
    pub(crate) fn drop_sealed_before(&mut self, cut: i64, coins: &[i64]) -> Result<()> {
        // Blocks that start before the cut, counted on the key's index.
        let mut before = self
            .conn
            .prepare_cached("SELECT count(*) FROM hot_block WHERE coin = ?1 AND win_start < ?2")?;
        let mut older = 0i64;
        for &coin in coins {
            older += before.query_row(rusqlite::params![coin, cut], |r| r.get::<_, i64>(0))?;
        }
        drop(before);
        let all: i64 = self
            .conn
            .query_row("SELECT count(*) FROM hot_block", [], |r| r.get(0))?;
        if older == 0 {
            return Ok(());
        }
        let swap = older * 2 > all;
        if swap {
            self.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS moved_coin (id INTEGER PRIMARY KEY);
                 DELETE FROM temp.moved_coin;
                 DROP TABLE IF EXISTS hot_block_swap;",
            )?;
            {
                let mut put = self
                    .conn
                    .prepare("INSERT OR IGNORE INTO temp.moved_coin (id) VALUES (?1)")?;
                for c in coins {
                    put.execute([c])?;
                }
            }
            let create = BLOCK_TABLE
                .split(';')
                .next()
                .expect("the table comes first")
                .replace("hot_block (", "hot_block_swap (");
            self.conn.execute_batch(&create)?;
            self.conn.execute(
                "INSERT INTO hot_block_swap SELECT * FROM hot_block
                 WHERE last_ts >= ?1 OR coin NOT IN (SELECT id FROM temp.moved_coin)
                 ORDER BY coin, win_start",
                [cut],
            )?;
            self.conn.execute_batch(&format!(
                "DROP TABLE hot_block; ALTER TABLE hot_block_swap RENAME TO hot_block;
                 DELETE FROM temp.moved_coin; {BLOCK_TABLE}"
            ))?;
        }
        let mut gone = self
            .conn
            .prepare_cached("DELETE FROM hot_block WHERE coin = ?1 AND last_ts < ?2")?;
        let mut cut_through = self.conn.prepare_cached(
            "SELECT win_start, win_end, live_from, data FROM hot_block
             WHERE coin = ?1 AND live_from < ?2",
        )?;
        let mut update = self.conn.prepare_cached(
            "UPDATE hot_block SET live_from = ?3, rows = ?4 WHERE coin = ?1 AND win_start = ?2",
        )?;
        for &coin in coins {
            if !swap {
                gone.execute(rusqlite::params![coin, cut])?;
            }
            let blocks: Vec<((i64, i64), Vec<u8>)> = cut_through
                .query_map(rusqlite::params![coin, cut], |r| {
                    Ok(((r.get(0)?, r.get(1)?), r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (win, data) in blocks {
                let rows = decode(coin, win, &data)?;
                let live: Vec<&HotRow> = rows.iter().filter(|r| r.0 >= cut).collect();
                // `last_ts >= cut`, so some row is live.
                let first = live.first().map_or(cut, |r| r.0);
                update.execute(rusqlite::params![coin, win.0, first, live.len() as i64])?;
            }
        }
        Ok(())
    }

    /// The first and last live timestamps of all blocks: per coin, its first block's
    /// `live_from` and its last block's `last_ts` (windows are disjoint), two seeks a coin.
    pub(crate) fn sealed_span(&self) -> Result<(Option<i64>, Option<i64>)> {
        let mut first = self.conn.prepare_cached(
            "SELECT live_from FROM hot_block WHERE coin = ?1 ORDER BY win_start LIMIT 1",
        )?;
        let mut last = self.conn.prepare_cached(
            "SELECT last_ts FROM hot_block WHERE coin = ?1 ORDER BY win_start DESC LIMIT 1",
        )?;
        let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
        for &coin in self.coin_ids.values() {
            if let Some(f) = first.query_row([coin], |r| r.get::<_, i64>(0)).optional()? {
                lo = Some(lo.map_or(f, |l| l.min(f)));
                let l: i64 = last.query_row([coin], |r| r.get(0))?;
                hi = Some(hi.map_or(l, |h| h.max(l)));
            }
        }
        Ok((lo, hi))
    }

    /// Live rows in blocks, and row-table rows that override one of them (counted twice by a
    /// plain sum).
    pub(crate) fn sealed_rows(&self) -> Result<(u64, u64)> {
        let n: i64 =
            self.conn
                .query_row("SELECT coalesce(sum(rows), 0) FROM hot_block", [], |r| {
                    r.get(0)
                })?;
        if n == 0 {
            return Ok((0, 0));
        }
        // Per coin, row-table rows no newer than its newest block's last row are candidates
        // (a few seeks a coin; usually none); each is checked against the one block whose
        // window may hold it.
        let mut newest = self.conn.prepare_cached(
            "SELECT last_ts FROM hot_block WHERE coin = ?1 ORDER BY win_start DESC LIMIT 1",
        )?;
        let mut candidates = self.conn.prepare_cached(
            "SELECT ts FROM hot WHERE coin = ?1 AND ts <= ?2
             UNION SELECT ts FROM hot_recent WHERE coin = ?1 AND ts <= ?2",
        )?;
        let mut holder = self.conn.prepare_cached(
            "SELECT win_start, win_end, live_from, last_ts, data FROM hot_block
             WHERE coin = ?1 AND win_start <= ?2 ORDER BY win_start DESC LIMIT 1",
        )?;
        let mut shadowed = 0u64;
        for &coin in self.coin_ids.values() {
            let Some(last) = newest
                .query_row([coin], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                continue;
            };
            let ts: Vec<i64> = candidates
                .query_map([coin, last], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut decoded: Option<(i64, Vec<HotRow>)> = None;
            for t in ts {
                let Some((win, live_from, last_ts, data)) = holder
                    .query_row([coin, t], |r| {
                        Ok((
                            (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                        ))
                    })
                    .optional()?
                else {
                    continue;
                };
                if t >= win.1 || t < live_from || t > last_ts {
                    continue;
                }
                if decoded.as_ref().is_none_or(|(w, _)| *w != win.0) {
                    decoded = Some((win.0, decode(coin, win, &data)?));
                }
                let rows = &decoded.as_ref().expect("decoded just now").1;
                if rows.binary_search_by_key(&t, |r| r.0).is_ok() {
                    shadowed += 1;
                }
            }
        }
        Ok((n as u64, shadowed))
    }

    /// Every block decodes to what its row says (coin, window, live rows, first and last).
    pub(crate) fn verify_blocks(&self, fault: &mut dyn FnMut(&str, String)) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT coin, win_start, win_end, live_from, last_ts, rows, data FROM hot_block
             ORDER BY coin, win_start",
        )?;
        let mut q = st.query([])?;
        let mut prev: Option<(i64, i64)> = None;
        while let Some(r) = q.next()? {
            let (coin, win): (i64, (i64, i64)) = (r.get(0)?, (r.get(1)?, r.get(2)?));
            let (live_from, last_ts, n): (i64, i64, i64) = (r.get(3)?, r.get(4)?, r.get(5)?);
            let what = label(coin, win);
            if prev.is_some_and(|(c, end)| c == coin && end > win.0) {
                fault(&what, "overlaps the coin's previous window".into());
            }
            prev = Some((coin, win.1));
            match decode(coin, win, r.get_ref(6)?.as_blob()?) {
                Err(e) => fault(&what, format!("{e:#}")),
                Ok(rows) => {
                    let live: Vec<&HotRow> = rows.iter().filter(|r| r.0 >= live_from).collect();
                    let (first, last) = (live.first().map(|r| r.0), live.last().map(|r| r.0));
                    if live.len() as i64 != n || first != Some(live_from) || last != Some(last_ts) {
                        fault(
                            &what,
                            format!(
                                "holds {} live rows from {first:?} to {last:?}; its row says {n} \
                                 from {live_from} to {last_ts}",
                                live.len()
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeMap;

    const H: i64 = 3_600_000;

    /// Rows `(coin, ts, price)` as a batch; the other values follow from the price.
    fn batch(rows: &[(&str, i64, f64)]) -> Batch {
        let mut b = Batch::default();
        let mut dict = strata_plugin_sdk::CoinDict::default();
        for &(coin, ts, price) in rows {
            b.push_row(
                &strata_plugin_sdk::Row {
                    coin,
                    ts,
                    price,
                    market_cap: price * 1e6,
                    volume: if price > 1.0 { f64::NAN } else { -0.0 },
                    supply: 1e6,
                    rank: (ts / H) as u32 % 7,
                },
                &mut dict,
            );
        }
        b
    }

    type Model = BTreeMap<(String, i64), f64>;

    fn check(s: &Store, model: &Model, coins: &[&str], when: &str) {
        for coin in coins {
            let want: Vec<(i64, f64)> = model
                .range((coin.to_string(), i64::MIN)..=(coin.to_string(), i64::MAX))
                .map(|((_, t), p)| (*t, *p))
                .collect();
            if s.coin_id(coin).is_none() {
                assert!(want.is_empty(), "{when}: {coin}");
                continue;
            }
            let a = s.query(coin, i64::MIN, i64::MAX).unwrap().rows;
            let got: Vec<(i64, f64)> = a.ts.iter().copied().zip(a.price.iter().copied()).collect();
            assert_eq!(got.len(), want.len(), "{when}: rows of {coin}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.0, g.1.to_bits()), (w.0, w.1.to_bits()), "{when}: {coin}");
            }
            for (i, &ts) in a.ts.iter().enumerate() {
                assert_eq!(a.market_cap[i].to_bits(), (a.price[i] * 1e6).to_bits());
                assert_eq!(a.rank[i], (ts / H) as u32 % 7);
            }
            let newest = s.latest(coin, 5).unwrap().rows;
            let mut want_newest: Vec<i64> = want.iter().rev().take(5).map(|w| w.0).collect();
            want_newest.reverse();
            assert_eq!(newest.ts, want_newest, "{when}: latest of {coin}");
        }
        assert_eq!(
            s.hot_rows().unwrap(),
            model.len() as u64,
            "{when}: hot_rows"
        );
        let v = s.verify().unwrap();
        assert!(v.faults.is_empty(), "{when}: {:?}", v.faults);
    }

    #[test]
    fn sealed_blocks_answer_like_rows_through_imports_corrections_seals_and_cuts() {
        // Random bulk imports (hourly and daily rows, overlapping earlier ones), hourly
        // corrections of any day, seals and cuts, against a map of what each key holds.
        let coins = ["a", "b", "c"];
        for seed in 0..6u64 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let d = tempfile::tempdir().unwrap();
            let mut s = Store::open(d.path()).unwrap();
            let mut model = Model::new();
            let mut cut = 0i64;
            let mut version = 0.0;
            for step in 0..25 {
                version += 1.0;
                let op = rng.random_range(0..10u32);
                let when = format!("seed {seed} step {step} op {op}");
                let mut rows = Vec::new();
                match op {
                    0..=3 => {
                        // A bulk import: some coins, a span of days, hourly or daily.
                        let from = rng.random_range(0..60i64) * DAY_MS;
                        let days = rng.random_range(1..40i64);
                        let every = if rng.random_bool(0.5) { H } else { DAY_MS };
                        for coin in coins {
                            if rng.random_bool(0.3) {
                                continue;
                            }
                            let mut t = from;
                            while t < from + days * DAY_MS {
                                rows.push((coin, t, version + t as f64 / 1e12));
                                t += every;
                            }
                        }
                    }
                    4..=6 => {
                        // A collection batch: a few coins at up to 2 timestamps, any day.
                        let t = rng.random_range(0..100i64) * H * 7;
                        for coin in coins {
                            rows.push((coin, t, -version));
                            if rng.random_bool(0.5) {
                                rows.push((coin, t + H, version * 0.5));
                            }
                        }
                    }
                    7 | 8 => {
                        let day = rng.random_range(0..100i64) * DAY_MS;
                        s.seal_hot(day).unwrap();
                    }
                    _ => {
                        // Rows older than a later cut leave the hot tier, as a transition does.
                        cut += rng.random_range(0..10i64) * DAY_MS + rng.random_range(0..24) * H;
                        let ids: Vec<i64> = coins.iter().filter_map(|c| s.coin_id(c)).collect();
                        s.write_txn(|s| {
                            s.drop_hot_before(cut, &ids, 0)?;
                            s.latest.clear();
                            Ok(())
                        })
                        .unwrap();
                        model.retain(|(_, t), _| *t >= cut);
                    }
                }
                if !rows.is_empty() {
                    s.ingest(&batch(&rows), &[]).unwrap();
                    for &(c, t, p) in &rows {
                        model.insert((c.to_string(), t), p);
                    }
                }
                check(&s, &model, &coins, &when);
            }
            let blocks: i64 = s
                .conn
                .query_row("SELECT count(*) FROM hot_block", [], |r| r.get(0))
                .unwrap();
            assert!(blocks > 0, "seed {seed}: some rows were sealed");
            drop(s);
            let s = Store::open(d.path()).unwrap();
            check(&s, &model, &coins, "reopened");
        }
    }

    #[test]
    fn a_correction_to_a_sealed_day_wins_before_and_after_the_next_seal() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let history: Vec<(&str, i64, f64)> = (0..24 * 20)
            .map(|h| ("btc", h * H, 100.0 + h as f64))
            .collect();
        s.ingest(&batch(&history), &[]).unwrap();
        let sealed: i64 = s
            .conn
            .query_row("SELECT coalesce(sum(rows), 0) FROM hot_block", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            sealed,
            24 * 19,
            "every day but the last is sealed by the import"
        );
        // An hourly batch corrects day 3, 05:00.
        s.ingest(&batch(&[("btc", 3 * DAY_MS + 5 * H, 7.5)]), &[])
            .unwrap();
        let at = |s: &Store| {
            let a = s
                .query("btc", 3 * DAY_MS + 5 * H, 3 * DAY_MS + 5 * H)
                .unwrap();
            (a.rows.len(), a.rows.price[0])
        };
        assert_eq!(at(&s), (1, 7.5));
        assert_eq!(s.hot_rows().unwrap(), 24 * 20);
        let r = s.seal_hot(20 * DAY_MS).unwrap();
        assert_eq!(r.rows, 25, "the last day and the correction");
        assert_eq!(at(&s), (1, 7.5));
        assert_eq!(s.hot_rows().unwrap(), 24 * 20);
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM hot", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // The same import again is the later write: it wins over the correction.
        s.ingest(&batch(&history), &[]).unwrap();
        assert_eq!(at(&s), (1, 100.0 + (3 * 24 + 5) as f64));
    }

    #[test]
    fn windows_fit_the_density_and_never_overlap() {
        let hourly: Vec<i64> = (0..24 * 40).map(|h| 100 * DAY_MS + h * 3_600_000).collect();
        let w = choose_window(hourly[0], &hourly, &[]);
        assert_eq!(
            w,
            (100 * DAY_MS, 101 * DAY_MS),
            "hourly rows: a window a day"
        );
        let two_hourly: Vec<i64> = hourly.iter().copied().step_by(2).collect();
        let w = choose_window(two_hourly[0], &two_hourly, &[]);
        assert_eq!(
            w.1 - w.0,
            16 * DAY_MS,
            "2-hourly rows: 16-day windows (192 rows)"
        );
        let daily: Vec<i64> = (0..2000).map(|d| d * DAY_MS).collect();
        let w = choose_window(0, &daily, &[]);
        assert_eq!(w.1 - w.0, 256 * DAY_MS, "daily rows: 256-day windows");
        // A taken window inside the widest candidate: the chosen one avoids it.
        let taken = [(8 * DAY_MS, 16 * DAY_MS)];
        let w = choose_window(0, &daily, &taken);
        assert!(w.1 <= 8 * DAY_MS, "{w:?}");
        let w = choose_window(20 * DAY_MS, &daily[20..], &taken);
        assert!(w.0 >= 16 * DAY_MS, "{w:?}");
    }

    #[test]
    fn a_block_over_max_rows_is_split_into_window_halves() {
        let rows: Vec<HotRow> = (0..1000)
            .map(|i| (i * 60_000, [i as f64, -0.0, f64::NAN, 1e300], 7))
            .collect();
        let sealed = run_job(Job {
            coin: 3,
            win: (0, DAY_MS),
            old: None,
            rows: rows.clone(),
        })
        .unwrap();
        assert!(sealed.blocks.len() > 1);
        let mut back = Vec::new();
        for b in &sealed.blocks {
            assert!(b.rows <= MAX_ROWS);
            back.extend(decode(3, b.win, &b.data).unwrap());
        }
        assert_eq!(back.len(), rows.len());
        for (a, b) in back.iter().zip(&rows) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.2, b.2);
            for k in 0..4 {
                assert_eq!(a.1[k].to_bits(), b.1[k].to_bits());
            }
        }
        assert!(decode(4, sealed.blocks[0].win, &sealed.blocks[0].data).is_err());
    }
}
