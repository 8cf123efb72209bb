//! The hot tier: every recent observation, in SQLite, written for the hourly collection pattern.
//!
//! Two tables hold it (schema in [`schema`](crate::schema)):
//!
//! - `hot_recent`, clustered by `(ts, coin)`: an hourly batch touches every coin once, and here
//!   those rows land side by side at the end of the B-tree, so a commit writes a few hundred
//!   pages instead of one page per coin (a `(coin, ts)` table dirties ≈13.5k pages, ≈55 MB of
//!   WAL, per hourly batch). A `(coin, ts)` index serves per-coin reads.
//! - `hot`, clustered by `(coin, ts)`: the bulk of the tier, where one coin's history is
//!   contiguous. `hot_recent` is merged into it in bulk (many rows per coin at once) when it
//!   passes [`StoreOptions::hot_merge_rows`](crate::store::StoreOptions) rows and before a bulk
//!   import. A tier transition reads both tables and deletes the rows that left from both, so
//!   rows about to leave are never merged first.
//!
//! Ingest rule: upsert by `(coin, ts)`, last write wins (within a batch, the later row wins), so
//! ingesting the same data twice changes nothing. A `(coin, ts)` in `hot_recent` is always newer
//! than the same key in `hot`. A batch with at most [`RECENT_MAX_TIMES`] distinct timestamps is
//! a collection batch and goes to `hot_recent`; anything larger is a bulk import into `hot`.
//! NaN payloads are canonicalised. A row's values are stored packed in one blob column, `vals`
//! ([`pack_values`]): SQLite reads one column far faster than five.

use anyhow::{Context, Result, bail};
use rusqlite::OptionalExtension;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use strata_plugin_sdk::Batch;

use crate::latest::HotRow;
use crate::schema::{HOT_TABLE, VALS_LEN, pack_values, unpack_values};
use crate::sealed::ROUND_ROWS;
use crate::store::{CoinMeta, Store};

/// A batch with at most this many distinct timestamps goes to `hot_recent`.
pub const RECENT_MAX_TIMES: usize = 4;

/// Rows per multi-row INSERT statement in a bulk import.
const ROWS_PER_INSERT: usize = 128;

/// Earliest and latest timestamp accepted (1970-01-01 .. 9999-12-31, ms).
pub const TS_RANGE: (i64, i64) = (0, 253_402_300_799_999);

/// What one ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Rows written (inserted or updated).
    pub rows: u64,
    /// Rows rejected by the engine's own checks (see [`Store::ingest`]).
    pub rejected: u64,
    /// Whether `hot_recent` was merged into `hot` afterwards.
    pub merged: bool,
}

const UPSERT_TAIL: &str = " ON CONFLICT DO UPDATE SET vals = excluded.vals";

fn insert_sql(table: &str, rows: usize) -> String {
    let mut s = format!("INSERT INTO {table} (coin, ts, vals) VALUES ");
    for i in 0..rows {
        if i > 0 {
            s.push(',');
        }
        s.push_str("(?,?,?)");
    }
    s.push_str(UPSERT_TAIL);
    s
}

macro_rules! sql_read {
    ($table:literal, $dir:literal) => {
        concat!(
            "SELECT ts, vals FROM ",
            $table,
            " WHERE coin = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts ",
            $dir,
            " LIMIT ?4"
        )
    };
}

impl Store {
    /// Ingests one batch (any order, any coins) in one transaction, durable when it returns.
    ///
    /// `meta` may carry symbol and name for some coins. A row whose timestamp is outside
    /// [`TS_RANGE`] is an error naming its row index; use
    /// [`ingest_rows_checked`](Store::ingest_rows_checked) to find such rows beforehand.
    pub fn ingest(&mut self, batch: &Batch, meta: &[CoinMeta]) -> Result<IngestStats> {
        let stats = self.write_txn(|s| s.ingest_in_txn(batch, meta))?;
        let mut stats = stats;
        if self.recent_rows >= self.options.hot_merge_rows {
            self.merge_recent()?;
            stats.merged = true;
        }
        Ok(stats)
    }

    /// The indices of rows the engine would reject, with the reason (timestamp out of range).
    pub fn ingest_rows_checked(batch: &Batch) -> Vec<(usize, String)> {
        batch
            .ts
            .iter()
            .enumerate()
            .filter(|&(_, &t)| !(TS_RANGE.0..=TS_RANGE.1).contains(&t))
            .map(|(i, &t)| {
                (
                    i,
                    format!("field `ts`: {t} is outside 1970-01-01 .. 9999-12-31"),
                )
            })
            .collect()
    }

    /// The body of [`ingest`](Store::ingest), inside an open write transaction.
    pub(crate) fn ingest_in_txn(
        &mut self,
        batch: &Batch,
        meta: &[CoinMeta],
    ) -> Result<IngestStats> {
        batch.validate().context("invalid batch")?;
        if let Some((i, why)) = Store::ingest_rows_checked(batch).into_iter().next() {
            bail!(
                "row {i} (coin `{}`): {why}",
                batch.coins[batch.coin_index[i] as usize]
            );
        }
        let ids = self.intern_coins(&batch.coins, meta)?;
        crate::crash::point("ingest-chunk").context("ingesting a chunk")?;
        if batch.is_empty() {
            return Ok(IngestStats::default());
        }
        let mut times: Vec<i64> = Vec::new();
        let recent = batch.ts.iter().all(|t| {
            if !times.contains(t) {
                times.push(*t);
            }
            times.len() <= RECENT_MAX_TIMES
        });
        // Sorted by the destination's clustering key, so inserts append.
        // A bulk import seals every day but its last straight into blocks.
        let seal_before = if recent {
            i64::MIN
        } else {
            crate::sealed::floor_day(batch.ts.iter().copied().max().unwrap_or(0))
        };
        // Stable: equal keys keep input order, so the later row of a duplicate wins.
        let mut order: Vec<u32> = if recent {
            let mut order: Vec<u32> = (0..batch.len() as u32).collect();
            order.sort_by_key(|&i| {
                let i = i as usize;
                (batch.ts[i], ids[batch.coin_index[i] as usize])
            });
            order
        } else {
            // By (coin id, ts): a counting sort by the coins' ranks in id order.
            let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
            by_id.sort_unstable_by_key(|&c| ids[c as usize]);
            let mut rank = vec![0u32; ids.len()];
            for (r, &c) in by_id.iter().enumerate() {
                rank[c as usize] = r as u32;
            }
            batch.order_by_rank(&rank)
        };
        let table = if recent {
            "hot_recent"
        } else {
            self.merge_recent_in_txn()?;
            "hot"
        };
        if !recent {
            let t = std::time::Instant::now();
            let sealed = self.seal_batch(batch, &ids, &order, seal_before)?;
            tracing::trace!(
                sealed,
                seal_ms = t.elapsed().as_secs_f64() * 1e3,
                "sealed an import"
            );
            order.retain(|&i| batch.ts[i as usize] >= seal_before);
            tracing::trace!(
                sealed,
                rows = order.len(),
                "bulk import: sealed and row rows"
            );
        }
        // Values are packed a statement's worth at a time (a whole import at once would be
        // 36 bytes a row more of peak memory).
        let mut vals = [[0u8; VALS_LEN]; ROWS_PER_INSERT];
        let mut full = self
            .conn
            .prepare_cached(&insert_sql(table, ROWS_PER_INSERT))?;
        let mut single = self.conn.prepare_cached(&insert_sql(table, 1))?;
        for chunk in order.chunks(ROWS_PER_INSERT) {
            for (v, &i) in vals.iter_mut().zip(chunk) {
                let i = i as usize;
                let values = [
                    batch.price[i],
                    batch.market_cap[i],
                    batch.volume[i],
                    batch.supply[i],
                ];
                *v = pack_values(values, batch.rank[i]);
            }
            let row = |(&i, v)| row_params(&ids, batch, i, v);
            if chunk.len() == ROWS_PER_INSERT {
                full.execute(rusqlite::params_from_iter(
                    chunk.iter().zip(&vals).flat_map(row),
                ))?;
            } else {
                for r in chunk.iter().zip(&vals) {
                    single.execute(rusqlite::params_from_iter(row(r)))?;
                }
            }
        }
        if recent {
            self.recent_rows += batch.len() as u64;
            self.latest.upsert_batch(batch, &ids);
        } else {
            self.latest.clear();
        }
        Ok(IngestStats {
            rows: batch.len() as u64,
            rejected: 0,
            merged: false,
        })
    }

    /// Seals the rows of `batch` older than `before` (`order`: its rows sorted by (coin id,
    /// ts), a later duplicate after an earlier one) into blocks; returns how many.
    fn seal_batch(
        &mut self,
        batch: &Batch,
        ids: &[i64],
        order: &[u32],
        before: i64,
    ) -> Result<usize> {
        let mut per_coin: Vec<(i64, Vec<HotRow>)> = Vec::new();
        let (mut n, mut round) = (0, 0);
        for &i in order {
            let i = i as usize;
            if batch.ts[i] >= before {
                continue;
            }
            let coin = ids[batch.coin_index[i] as usize];
            if per_coin.last().is_none_or(|(c, _)| *c != coin) {
                // A round's rows at a time (whole coins), not a copy of the whole import.
                if round >= ROUND_ROWS {
                    self.seal_import(std::mem::take(&mut per_coin), before)?;
                    round = 0;
                }
                per_coin.push((coin, Vec::new()));
            }
            let f = [
                batch.price[i],
                batch.market_cap[i],
                batch.volume[i],
                batch.supply[i],
            ];
            per_coin
                .last_mut()
                .expect("pushed")
                .1
                .push((batch.ts[i], f, batch.rank[i]));
            n += 1;
            round += 1;
        }
        if !per_coin.is_empty() {
            self.seal_import(per_coin, before)?;
        }
        Ok(n)
    }

    /// Moves every row of `hot_recent` into `hot` (one transaction).
    pub fn merge_recent(&mut self) -> Result<()> {
        if self.recent_rows == 0 {
            return Ok(());
        }
        self.write_txn(|s| s.merge_recent_in_txn())
    }

    pub(crate) fn merge_recent_in_txn(&mut self) -> Result<()> {
        if self.recent_rows == 0 {
            return Ok(());
        }
        self.conn.execute_batch(&format!(
            "INSERT INTO hot (coin, ts, vals)
               SELECT coin, ts, vals FROM hot_recent
               WHERE true ORDER BY coin, ts {UPSERT_TAIL};
             DELETE FROM hot_recent;"
        ))?;
        self.recent_rows = 0;
        Ok(())
    }

    /// Removes every `hot` row older than `cut` of `coins`, and every `hot_recent` row older
    /// than `cut` (inside the caller's transaction), `moving` rows in all. A transition reads
    /// every coin, from both tables, so no row older than the cut stays behind; `hot_recent`
    /// rows that are about to leave are not merged into `hot` first.
    ///
    /// When more rows leave than stay (a backfill ageing out in one go), the survivors are
    /// copied into a new table that replaces `hot`: dropping a table frees its pages without
    /// rebalancing the B-tree row by row, so it costs a fraction of a range delete per coin.
    pub(crate) fn drop_hot_before(&mut self, cut: i64, coins: &[i64], moving: u64) -> Result<()> {
        self.drop_sealed_before(cut, coins)?;
        if self.recent_rows > 0 {
            // Clustered by time: the leaving rows are the start of the table.
            let gone = self
                .conn
                .execute("DELETE FROM hot_recent WHERE ts < ?1", [cut])?;
            self.recent_rows = self.recent_rows.saturating_sub(gone as u64);
        }
        // Per coin, the oldest timestamp that stays: the cut for the coins that moved, all of
        // their rows for the others.
        let listed: std::collections::HashSet<i64> = coins.iter().copied().collect();
        let mut stay_from: Vec<(i64, i64)> = self
            .coin_ids
            .values()
            .map(|&id| (id, if listed.contains(&id) { cut } else { i64::MIN }))
            .collect();
        stay_from.sort_unstable();
        if self.staying_at_least(&stay_from, moving)? {
            let mut del = self
                .conn
                .prepare_cached("DELETE FROM hot WHERE coin = ?1 AND ts < ?2")?;
            for id in coins {
                del.execute(rusqlite::params![id, cut])?;
            }
            return Ok(());
        }
        self.conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS hot_swap; {}",
            HOT_TABLE.replace("hot (", "hot_swap (")
        ))?;
        {
            let mut copy = self
                .conn
                .prepare("INSERT INTO hot_swap SELECT * FROM hot WHERE coin = ?1 AND ts >= ?2")?;
            for (id, from) in stay_from {
                copy.execute(rusqlite::params![id, from])?;
            }
        }
        self.conn
            .execute_batch("DROP TABLE hot; ALTER TABLE hot_swap RENAME TO hot;")?;
        Ok(())
    }

    /// Copies `hot` into a new table that replaces it (inside the caller's transaction): after
    /// most of its rows left, the rest fill a few pages instead of a thin share of each.
    pub(crate) fn rebuild_hot_table(&mut self) -> Result<()> {
        self.conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS hot_swap; {}
             INSERT INTO hot_swap SELECT * FROM hot ORDER BY coin, ts;
             DROP TABLE hot; ALTER TABLE hot_swap RENAME TO hot;",
            HOT_TABLE.replace("hot (", "hot_swap (")
        ))?;
        Ok(())
    }

    /// Whether the hot tier holds any row older than `cut`. `hot` has no index on `ts` alone
    /// (`min(ts)` would read the whole table), so it looks at each coin's oldest row along the
    /// key, and stops at the first that is old enough.
    pub(crate) fn hot_has_rows_before(&self, cut: i64) -> Result<bool> {
        let recent: Option<i64> =
            self.conn
                .query_row("SELECT min(ts) FROM hot_recent", [], |r| r.get(0))?;
        if recent.is_some_and(|t| t < cut) {
            return Ok(true);
        }
        if self.sealed_span()?.0.is_some_and(|t| t < cut) {
            return Ok(true);
        }
        let mut oldest = self
            .conn
            .prepare_cached("SELECT ts FROM hot WHERE coin = ?1 ORDER BY ts LIMIT 1")?;
        for &id in self.coin_ids.values() {
            let ts: Option<i64> = oldest.query_row([id], |r| r.get(0)).optional()?;
            if ts.is_some_and(|t| t < cut) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether at least `moving` `hot` rows stay, `stay_from` giving each coin's oldest
    /// timestamp that stays. Counts along the primary key, coin by coin, and stops as soon as it
    /// knows: the cost follows the smaller side, where `count(*)` would read the whole table.
    fn staying_at_least(&self, stay_from: &[(i64, i64)], moving: u64) -> Result<bool> {
        let mut count = self
            .conn
            .prepare_cached("SELECT count(*) FROM hot WHERE coin = ?1 AND ts >= ?2")?;
        let mut staying = 0u64;
        for &(id, from) in stay_from {
            let n: i64 = count.query_row(rusqlite::params![id, from], |r| r.get(0))?;
            staying += n as u64;
            if staying >= moving {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rows in the hot tier (row tables and sealed blocks; a key in more than one counts once).
    pub fn hot_rows(&self) -> Result<u64> {
        let (sealed, shadowed) = self.sealed_rows()?;
        Ok(self.row_table_count()? + sealed - shadowed)
    }

    fn row_table_count(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM hot) + (SELECT count(*) FROM hot_recent r
               WHERE NOT EXISTS (SELECT 1 FROM hot h WHERE h.coin = r.coin AND h.ts = r.ts))",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Hot rows of coin `id` with `from <= ts <= to`, oldest first (`newest_first`: newest first,
    /// at most `limit`). Appends them to `out` as rows of the last coin in its dictionary.
    pub(crate) fn hot_read(
        &self,
        id: i64,
        from: i64,
        to: i64,
        newest_first: bool,
        limit: Option<usize>,
        out: &mut Batch,
    ) -> Result<()> {
        let range = HotRange {
            from,
            to,
            newest_first,
            limit,
        };
        hot_read_on(&self.conn, self.recent_rows > 0, id, &range, out)
    }
}

/// The parameters of one row of an `insert_sql` statement: coin id, ts and packed values.
fn row_params<'a>(
    ids: &[i64],
    batch: &Batch,
    i: u32,
    vals: &'a [u8; VALS_LEN],
) -> [ToSqlOutput<'a>; 3] {
    let i = i as usize;
    [
        ToSqlOutput::Owned(Value::Integer(ids[batch.coin_index[i] as usize])),
        ToSqlOutput::Owned(Value::Integer(batch.ts[i])),
        ToSqlOutput::Borrowed(ValueRef::Blob(vals)),
    ]
}

/// The `sql_read!` query of `hot_recent` (or `hot`), newest rows first (or oldest).
fn read_sql(recent: bool, newest_first: bool) -> &'static str {
    match (recent, newest_first) {
        (false, false) => sql_read!("hot", "ASC"),
        (false, true) => sql_read!("hot", "DESC"),
        (true, false) => sql_read!("hot_recent", "ASC"),
        (true, true) => sql_read!("hot_recent", "DESC"),
    }
}

/// One row of a `sql_read!` query.
fn hot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HotRow> {
    let (values, rank) = unpack_values(r.get_ref(1)?)?;
    Ok((r.get(0)?, values, rank))
}

/// Which hot rows of a coin [`hot_read_on`] reads.
pub(crate) struct HotRange {
    pub from: i64,
    pub to: i64,
    pub newest_first: bool,
    pub limit: Option<usize>,
}

/// [`Store::hot_read`] on any connection to the store's database (a transition reads on a
/// second one, on its own thread); `recent`: whether `hot_recent` may hold rows.
pub(crate) fn hot_read_on(
    conn: &rusqlite::Connection,
    recent: bool,
    id: i64,
    range: &HotRange,
    out: &mut Batch,
) -> Result<()> {
    let (newest_first, limit) = (range.newest_first, range.limit);
    let coin = out
        .coins
        .len()
        .checked_sub(1)
        .context("hot_read needs the coin in the output's dictionary")? as u32;
    let sealed = crate::sealed::read_blocks(conn, id, range)?;
    if !sealed.is_empty() {
        // Blocks, overridden by the row tables' rows (late rows and corrections).
        let mut rows = Batch::default();
        rows.coins.push(String::new());
        read_row_tables(conn, recent, id, range, &mut rows)?;
        let rows: Vec<HotRow> = (0..rows.len())
            .map(|i| {
                let f = [
                    rows.price[i],
                    rows.market_cap[i],
                    rows.volume[i],
                    rows.supply[i],
                ];
                (rows.ts[i], f, rows.rank[i])
            })
            .collect();
        crate::sealed::merge_rows(sealed, rows, newest_first, limit, |(ts, f, rank)| {
            out.push(coin, ts, f[0], f[1], f[2], f[3], rank)
        });
        return Ok(());
    }
    read_row_tables(conn, recent, id, range, out)
}

/// The row tables' part of [`hot_read_on`].
fn read_row_tables(
    conn: &rusqlite::Connection,
    recent: bool,
    id: i64,
    range: &HotRange,
    out: &mut Batch,
) -> Result<()> {
    let &HotRange {
        from,
        to,
        newest_first,
        limit,
    } = range;
    let lim = limit.map(|l| l as i64).unwrap_or(-1);
    let coin = (out.coins.len() - 1) as u32;
    if !recent {
        // Only `hot`: its rows go straight to `out` (a transition reads millions this way).
        let mut st = conn.prepare_cached(read_sql(false, newest_first))?;
        let mut rows = st.query(rusqlite::params![id, from, to, lim])?;
        while let Some(r) = rows.next()? {
            let (ts, f, rank) = hot_row(r)?;
            out.push(coin, ts, f[0], f[1], f[2], f[3], rank);
        }
        return Ok(());
    }
    let read = |recent: bool| -> Result<Vec<HotRow>> {
        let mut st = conn.prepare_cached(read_sql(recent, newest_first))?;
        let mut rows = st.query(rusqlite::params![id, from, to, lim])?;
        let mut v = Vec::with_capacity(limit.unwrap_or(16).min(4096));
        while let Some(r) = rows.next()? {
            v.push(hot_row(r)?);
        }
        Ok(v)
    };
    let main = read(false)?;
    let recent = read(true)?;
    // On equal ts the recent copy wins.
    crate::sealed::merge_rows(main, recent, newest_first, limit, |(ts, f, rank)| {
        out.push(coin, ts, f[0], f[1], f[2], f[3], rank)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plugin_sdk::CoinDict;
    use strata_plugin_sdk::Row;

    fn batch(rows: &[(&str, i64, f64)]) -> Batch {
        let mut b = Batch::default();
        let mut d = CoinDict::default();
        for &(coin, ts, price) in rows {
            b.push_row(
                &Row {
                    coin,
                    ts,
                    price,
                    market_cap: f64::NAN,
                    volume: -0.0,
                    supply: f64::INFINITY,
                    rank: 3,
                },
                &mut d,
            );
        }
        b
    }

    fn read_all(s: &Store, coin: &str) -> Batch {
        let mut out = Batch::default();
        out.coins.push(coin.into());
        s.hot_read(
            s.coin_id(coin).unwrap(),
            i64::MIN,
            i64::MAX,
            false,
            None,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn a_reader_sees_each_commit_of_the_writer_and_forgets_stale_latest_rows() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Store::open(d.path()).unwrap();
        w.ingest(&batch(&[("a", 1, 1.0), ("a", 2, 2.0)]), &[])
            .unwrap();
        let mut r = Store::open_reader(d.path(), Default::default()).unwrap();
        assert!(!r.refresh().unwrap());
        let newest = |r: &mut Store| {
            let a = r.consistent(|s| s.latest("a", 1)).unwrap();
            (a.rows.ts[0], a.rows.price[0])
        };
        assert_eq!(newest(&mut r), (2, 2.0));
        // A collection batch (hot_recent), a correction of the newest row, a new coin.
        w.ingest(&batch(&[("a", 3, 3.0)]), &[]).unwrap();
        assert_eq!(newest(&mut r), (3, 3.0));
        w.ingest(&batch(&[("a", 3, 4.0), ("b", 1, 5.0)]), &[])
            .unwrap();
        assert_eq!(newest(&mut r), (3, 4.0));
        assert!(r.coin_id("b").is_some());
        assert!(!r.refresh().unwrap());
        // A reader takes no lock and writes nothing.
        assert!(Store::open(d.path()).is_err());
        assert!(r.connection().execute("DELETE FROM hot", []).is_err());
    }

    #[test]
    fn readers_sharing_the_writers_latest_rows_see_each_commit_and_nothing_uncommitted() {
        let d = tempfile::tempdir().unwrap();
        let shared = std::sync::Arc::new(crate::latest::SharedLatest::default());
        let mut w = Store::open(d.path()).unwrap();
        w.publish_latest(shared.clone());
        w.ingest(&batch(&[("a", 1, 1.0), ("a", 2, 2.0)]), &[])
            .unwrap();
        let mut r = Store::open_reader(d.path(), Default::default()).unwrap();
        r.use_shared_latest(shared.clone());
        let mut r2 = Store::open_reader(d.path(), Default::default()).unwrap();
        r2.use_shared_latest(shared);
        let newest = |r: &mut Store| {
            let a = r.consistent(|s| s.latest("a", 2)).unwrap();
            (a.rows.ts.clone(), a.rows.price.clone())
        };
        let cached = |r: &Store| {
            r.latest_cached("a", 2)
                .map(|a| (a.rows.ts.clone(), a.rows.price.clone()))
        };
        assert_eq!(cached(&r2), None);
        // One reader's read fills the cache for all; each collection batch the writer commits
        // is then in it, for every reader, without a read of SQLite.
        assert_eq!(newest(&mut r), (vec![1, 2], vec![1.0, 2.0]));
        assert_eq!(cached(&r2), Some((vec![1, 2], vec![1.0, 2.0])));
        w.ingest(&batch(&[("a", 3, 3.0)]), &[]).unwrap();
        assert_eq!(cached(&r2), Some((vec![2, 3], vec![2.0, 3.0])));
        w.ingest(&batch(&[("a", 3, 4.0)]), &[]).unwrap();
        assert_eq!(cached(&r), Some((vec![2, 3], vec![2.0, 4.0])));
        // A write that rolls back publishes nothing.
        let failed: Result<()> = w.write_txn(|s| {
            s.ingest_in_txn(&batch(&[("a", 9, 9.0)]), &[])?;
            anyhow::bail!("given up")
        });
        assert!(failed.is_err());
        assert_eq!(cached(&r), Some((vec![2, 3], vec![2.0, 4.0])));
        assert_eq!(newest(&mut r2), (vec![2, 3], vec![2.0, 4.0]));
        // Rows removed from the hot tier empty the cache; the next read fills it again.
        w.write_txn(|s| {
            s.drop_hot_before(3, &[s.coin_id("a").unwrap()], 2)?;
            s.latest.clear();
            Ok(())
        })
        .unwrap();
        assert_eq!(cached(&r), None);
        let a = r.consistent(|s| s.latest("a", 1)).unwrap();
        assert_eq!((a.rows.ts[0], a.rows.price[0]), (3, 4.0));
    }

    #[test]
    fn a_shared_latest_fill_that_a_commit_overtook_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let shared = std::sync::Arc::new(crate::latest::SharedLatest::default());
        let mut w = Store::open(d.path()).unwrap();
        w.publish_latest(shared.clone());
        w.ingest(&batch(&[("a", 1, 1.0)]), &[]).unwrap();
        let mut r = Store::open_reader(d.path(), Default::default()).unwrap();
        r.use_shared_latest(shared);
        let a = r.coin_id("a").unwrap();
        r.consistent(|s| s.latest("a", 1)).unwrap();
        w.write_txn(|s| {
            s.latest.clear();
            Ok(())
        })
        .unwrap();
        // A reader read the old rows, then the writer committed a newer one: the old rows
        // never enter the cache.
        let token = r.latest.before_read();
        let old = vec![(1, [1.0, f64::NAN, f64::NAN, f64::NAN], 0)];
        w.ingest(&batch(&[("a", 2, 2.0)]), &[]).unwrap();
        r.latest.fill(a, old.clone(), token);
        assert!(!r.latest.has(a));
        // Without a commit in between, they do.
        let token = r.latest.before_read();
        r.latest.fill(a, old, token);
        assert!(r.latest.has(a));
    }

    #[test]
    fn floats_survive_bit_for_bit() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let odd = [
            -0.0,
            0.0,
            f64::MIN_POSITIVE / 2.0,
            f64::NEG_INFINITY,
            1e-36,
            2.0,
            -3.0,
            f64::MAX,
        ];
        // A collection batch (4 timestamps) goes to hot_recent.
        let small: Vec<(&str, i64, f64)> = odd
            .iter()
            .enumerate()
            .map(|(i, &v)| (if i < 4 { "a" } else { "c" }, i as i64 % 4, v))
            .collect();
        let small = batch(&small);
        s.ingest(&small, &[]).unwrap();
        assert_eq!(s.recent_rows, 8);
        let check = |s: &Store| {
            for coin in ["a", "c"] {
                let want = small.filter_coins(&[coin.to_string()]).sorted();
                let got = read_all(s, coin);
                assert!(got.bit_eq(&want), "{:?}", got.first_difference(&want));
            }
        };
        check(&s);
        // A bulk import goes to hot, after merging hot_recent into it.
        let mut rows = Vec::new();
        for t in 0..50 {
            for (i, &v) in odd.iter().enumerate() {
                rows.push(("b", t * 100 + i as i64, v));
            }
        }
        let bulk = batch(&rows);
        s.ingest(&bulk, &[]).unwrap();
        assert_eq!(s.recent_rows, 0);
        assert!(read_all(&s, "b").bit_eq(&bulk));
        check(&s);
    }

    #[test]
    fn dropping_old_rows_keeps_exactly_the_newer_ones_either_way() {
        // 3 coins x 100 timestamps; the cut at 90 removes most rows (the table is replaced), at
        // 10 a few (range deletes); rows of coins not listed as moving stay either way.
        for cut in [90, 10] {
            let d = tempfile::tempdir().unwrap();
            let mut s = Store::open(d.path()).unwrap();
            let mut rows = Vec::new();
            for coin in ["a", "b", "c"] {
                for t in 0..100 {
                    rows.push((coin, t, t as f64 * 1.5 - 7.0));
                }
            }
            let all = batch(&rows);
            s.ingest(&all, &[]).unwrap();
            let moving = [s.coin_id("a").unwrap(), s.coin_id("c").unwrap()];
            s.write_txn(|s| s.drop_hot_before(cut, &moving, 2 * cut as u64))
                .unwrap();
            for coin in ["a", "b", "c"] {
                let from = if coin == "b" { 0 } else { cut };
                let want: Vec<(&str, i64, f64)> = rows
                    .iter()
                    .copied()
                    .filter(|&(c, t, _)| c == coin && t >= from)
                    .collect();
                let got = read_all(&s, coin);
                assert!(got.bit_eq(&batch(&want)), "cut {cut}, coin {coin}");
            }
            // The store still takes writes and reopens.
            s.ingest(&batch(&[("a", 500, 1.0)]), &[]).unwrap();
            drop(s);
            let s = Store::open(d.path()).unwrap();
            assert_eq!(read_all(&s, "a").ts.last(), Some(&500));
        }
    }

    #[test]
    fn upsert_last_write_wins_and_reingest_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        s.ingest(
            &batch(&[("a", 10, 1.0), ("a", 10, 2.0), ("b", 10, 5.0)]),
            &[],
        )
        .unwrap();
        assert_eq!(read_all(&s, "a").price, [2.0]);
        // A later hourly batch corrects a value; bulk data older and newer.
        s.ingest(&batch(&[("a", 10, 3.0)]), &[]).unwrap();
        let bulk: Vec<(&str, i64, f64)> = (0..20).map(|t| ("a", t, t as f64 * 10.0)).collect();
        s.ingest(&batch(&bulk), &[]).unwrap();
        let once = read_all(&s, "a");
        assert_eq!(once.len(), 20);
        assert_eq!(once.price[10], 100.0, "bulk import is the later write");
        s.ingest(&batch(&bulk), &[]).unwrap();
        assert!(read_all(&s, "a").bit_eq(&once));
        assert_eq!(s.hot_rows().unwrap(), 21);
    }

    #[test]
    fn recent_copy_wins_until_merged() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let bulk: Vec<(&str, i64, f64)> = (0..10).map(|t| ("a", t, 1.0)).collect();
        s.ingest(&batch(&bulk), &[]).unwrap();
        s.ingest(&batch(&[("a", 5, 9.0), ("a", 10, 9.0)]), &[])
            .unwrap();
        let before = read_all(&s, "a");
        assert_eq!(before.len(), 11);
        assert_eq!(before.price[5], 9.0);
        let mut newest = Batch::default();
        newest.coins.push("a".into());
        s.hot_read(s.coin_id("a").unwrap(), 0, 100, true, Some(3), &mut newest)
            .unwrap();
        assert_eq!(newest.ts, [10, 9, 8]);
        s.merge_recent().unwrap();
        assert_eq!(s.recent_rows, 0);
        assert!(read_all(&s, "a").bit_eq(&before));
    }

    #[test]
    fn out_of_range_timestamp_is_rejected_whole() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let err = s
            .ingest(&batch(&[("a", 1, 1.0), ("zz", -5, 1.0)]), &[])
            .unwrap_err();
        assert!(err.to_string().contains("row 1 (coin `zz`)"), "{err}");
        assert_eq!(s.hot_rows().unwrap(), 0);
        assert_eq!(s.coin_id("a"), None, "the rolled-back coin is forgotten");
    }

    #[test]
    fn latest_from_the_cache_equals_a_fresh_read() {
        let d = tempfile::tempdir().unwrap();
        let history: Vec<(&str, i64, f64)> = (0..60)
            .map(|t| ("a", 1000 + t * 10, t as f64 + 0.5))
            .chain((0..5).map(|t| ("b", 1000 + t * 10, -(t as f64))))
            .collect();
        let batches: [&[(&str, i64, f64)]; 4] = [
            // A new newest row, and an update of a row among the newest.
            &[("a", 1600, 1.0), ("a", 1550, f64::NAN), ("b", 1600, 2.0)],
            // Older than every cached row of `a` (dropped by the cache), but `b` has few rows.
            &[("a", 990, 3.0), ("b", 990, 4.0)],
            // Duplicates within a batch: the later wins.
            &[("a", 1610, 5.0), ("a", 1610, 6.0), ("b", 1610, -0.0)],
            &[("a", 1605, 7.0)],
        ];
        let answers = |s: &Store| -> Vec<Batch> {
            ["a", "b"]
                .iter()
                .flat_map(|c| [1, 10, 32].map(|n| s.latest(c, n).unwrap().rows))
                .collect()
        };
        let mut cached = Vec::new();
        {
            let mut s = Store::open(d.path()).unwrap();
            s.ingest(&batch(&history), &[]).unwrap();
            answers(&s); // fills the cache
            for b in batches {
                s.ingest(&batch(b), &[]).unwrap();
                cached.push(answers(&s));
            }
            // A failed write clears the cache rather than leaving it ahead of the tables.
            let mut bad = batch(&[("a", 1700, 1.0)]);
            bad.ts[0] = -1;
            assert!(s.ingest(&bad, &[]).is_err());
            assert!(!s.latest.has(s.coin_id("a").unwrap()));
        }
        // Replay on a fresh store, reading without a warm cache after each batch.
        let d2 = tempfile::tempdir().unwrap();
        let mut s = Store::open(d2.path()).unwrap();
        s.ingest(&batch(&history), &[]).unwrap();
        for (b, want) in batches.iter().zip(&cached) {
            s.ingest(&batch(b), &[]).unwrap();
            let got = answers(&s);
            s.latest.clear();
            for (g, w) in got.iter().zip(want) {
                assert!(g.bit_eq(w), "{g:?}\n{w:?}");
            }
        }
        // `b` has fewer rows than asked for: all 8 of them, the last the cache saw at 1610.
        let b = s.latest("b", 32).unwrap().rows;
        assert_eq!(
            (b.len(), b.ts[7], b.price[7].to_bits()),
            (8, 1610, (-0.0f64).to_bits())
        );
    }
}
