//! The segment catalog: which segment files exist, what each holds, and per-tier watermarks.
//!
//! Tables (in `strata.db`, see [`store`](crate::store)): `segment` (one row per file: tier,
//! path, window, bucket, seq, codec name/version/sha256, options as JSON, rows, time range,
//! number of coins, bytes, sha256 of the file), `segment_coin` (exactly which coins a segment
//! holds, indexed by coin, so a query opens only segments that can hold its coin), `last_kept`
//! (per tier and coin, the newest timestamp the tier holds: what its retention rule is given)
//! and `watermark` (per tier, the last cut a transition out of it applied).
//!
//! Invariant: a catalog row exists exactly when its file is complete and durable on disk; both
//! change in the same SQLite transaction as the source rows they replace.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use crate::store::Store;

/// One catalog row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: i64,
    pub tier: String,
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub window_start: i64,
    pub bucket: u32,
    pub seq: u32,
    pub codec: String,
    pub codec_version: String,
    pub codec_sha256: String,
    /// The codec options, as a JSON array of `[key, value]` pairs.
    pub options: String,
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub coins: u64,
    pub bytes: u64,
    /// sha256 of the file.
    pub sha256: String,
    /// Where the segment lives: `''` for the data directory, else a bucket URL
    /// (`s3://bucket/prefix`, see [`bucket`](crate::bucket)); `path` is its key there.
    pub store: String,
}

impl SegmentInfo {
    /// The segment's key, behind its bucket URL when it lives in one: how messages name it.
    pub fn display_name(&self) -> String {
        if self.store.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.store, self.path)
        }
    }
}

const COLS: &str = "id, tier, path, window_start, bucket, seq, codec, codec_version, codec_sha256, \
                    options, rows, min_ts, max_ts, coins, bytes, sha256, store";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentInfo> {
    Ok(SegmentInfo {
        id: r.get(0)?,
        tier: r.get(1)?,
        path: r.get(2)?,
        window_start: r.get(3)?,
        bucket: r.get(4)?,
        seq: r.get(5)?,
        codec: r.get(6)?,
        codec_version: r.get(7)?,
        codec_sha256: r.get(8)?,
        options: r.get(9)?,
        rows: r.get::<_, i64>(10)? as u64,
        min_ts: r.get(11)?,
        max_ts: r.get(12)?,
        coins: r.get::<_, i64>(13)? as u64,
        bytes: r.get::<_, i64>(14)? as u64,
        sha256: r.get(15)?,
        store: r.get(16)?,
    })
}

impl Store {
    /// Every segment, by tier then time.
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM segment ORDER BY tier, min_ts, bucket, seq"
        ))?;
        let v = st
            .query_map([], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Every segment of `tier`, by coin bucket, then window and seq (the order in which a later
    /// segment's copy of a row wins within a bucket).
    pub(crate) fn tier_segments(&self, tier: &str) -> Result<Vec<SegmentInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM segment WHERE tier = ?1 ORDER BY bucket, window_start, seq"
        ))?;
        let v = st
            .query_map(params![tier], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// The coins (store ids, sorted) of every segment of `tier`, by segment id.
    pub(crate) fn tier_segment_coins(
        &self,
        tier: &str,
    ) -> Result<std::collections::HashMap<i64, Vec<i64>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT sc.segment, sc.coin FROM segment_coin sc JOIN segment s ON s.id = sc.segment
             WHERE s.tier = ?1 ORDER BY sc.segment, sc.coin",
        )?;
        let mut out: std::collections::HashMap<i64, Vec<i64>> = Default::default();
        let mut rows = st.query(params![tier])?;
        while let Some(r) = rows.next()? {
            out.entry(r.get(0)?).or_default().push(r.get(1)?);
        }
        Ok(out)
    }

    /// The time range (min_ts, max_ts) of every segment of `tier`, per coin (store id).
    pub(crate) fn tier_coin_extents(
        &self,
        tier: &str,
    ) -> Result<std::collections::HashMap<i64, Vec<(i64, i64)>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT sc.coin, s.min_ts, s.max_ts FROM segment_coin sc JOIN segment s ON s.id = sc.segment
             WHERE s.tier = ?1",
        )?;
        let mut out: std::collections::HashMap<i64, Vec<(i64, i64)>> = Default::default();
        let mut rows = st.query(params![tier])?;
        while let Some(r) = rows.next()? {
            out.entry(r.get(0)?)
                .or_default()
                .push((r.get(1)?, r.get(2)?));
        }
        Ok(out)
    }

    /// Segments of `tier` whose newest row is older than `cut`, oldest first.
    pub(crate) fn segments_before(&self, tier: &str, cut: i64) -> Result<Vec<SegmentInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM segment WHERE tier = ?1 AND max_ts < ?2
             ORDER BY window_start, bucket, seq"
        ))?;
        let v = st
            .query_map(params![tier, cut], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Segments holding coin `coin` with rows in `[from, to]`.
    pub(crate) fn segments_for_coin(
        &self,
        coin: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<SegmentInfo>> {
        let cols: Vec<String> = COLS.split(", ").map(|c| format!("s.{c}")).collect();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} FROM segment_coin sc JOIN segment s ON s.id = sc.segment
             WHERE sc.coin = ?1 AND s.max_ts >= ?2 AND s.min_ts <= ?3
             ORDER BY s.max_ts DESC",
            cols.join(", ")
        ))?;
        let v = st
            .query_map(params![coin, from, to], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// The next free `seq` for (tier, window, bucket): above every segment there and every
    /// seq a committed segment ever had, so a segment key is never reused, even after the
    /// segments of a window moved on (an object store's key, once deleted, is not written
    /// again; a put that did not commit may reuse its key, after recovery removed it).
    pub(crate) fn next_seq(&self, tier: &str, window_start: i64, bucket: u32) -> Result<u32> {
        let n: Option<i64> = self.conn.query_row(
            "SELECT max(m) FROM (
               SELECT max(seq) AS m FROM segment
                WHERE tier = ?1 AND window_start = ?2 AND bucket = ?3
               UNION ALL
               SELECT seq FROM segment_seq
                WHERE tier = ?1 AND window_start = ?2 AND bucket = ?3)",
            params![tier, window_start, bucket],
            |r| r.get(0),
        )?;
        Ok(n.map_or(0, |n| n as u32 + 1))
    }

    /// Adds a catalog row and its coin list (inside the caller's transaction); returns its id.
    pub(crate) fn insert_segment(&self, s: &SegmentInfo, coin_ids: &[i64]) -> Result<i64> {
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO segment (tier, path, window_start, bucket, seq, codec, codec_version,
               codec_sha256, options, rows, min_ts, max_ts, coins, bytes, sha256, store)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             RETURNING id",
            )?
            .query_row(
                params![
                    s.tier,
                    s.path,
                    s.window_start,
                    s.bucket,
                    s.seq,
                    s.codec,
                    s.codec_version,
                    s.codec_sha256,
                    s.options,
                    s.rows as i64,
                    s.min_ts,
                    s.max_ts,
                    s.coins as i64,
                    s.bytes as i64,
                    s.sha256,
                    s.store
                ],
                |r| r.get(0),
            )?;
        // The highest seq ever used, so a key is never used twice (see `next_seq`).
        self.conn
            .prepare_cached(
                "INSERT INTO segment_seq (tier, window_start, bucket, seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute(params![s.tier, s.window_start, s.bucket, s.seq])?;
        let mut st = self
            .conn
            .prepare_cached("INSERT INTO segment_coin (coin, segment) VALUES (?1, ?2)")?;
        for &c in coin_ids {
            st.execute(params![c, id])?;
        }
        Ok(id)
    }

    /// Removes a catalog row and its coin list (inside the caller's transaction).
    pub(crate) fn delete_segment(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM segment_coin WHERE segment = ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM segment WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// The newest timestamp `tier` holds for `coin`.
    pub(crate) fn last_kept(&self, tier: &str, coin: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT ts FROM last_kept WHERE tier = ?1 AND coin = ?2")?
            .query_row(params![tier, coin], |r| r.get(0))
            .optional()?)
    }

    /// Raises `tier`'s last-kept timestamp for `coin` to `ts` (never lowers it).
    pub(crate) fn raise_last_kept(&self, tier: &str, coin: i64, ts: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO last_kept (tier, coin, ts) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET ts = max(ts, excluded.ts)",
            )?
            .execute(params![tier, coin, ts])?;
        Ok(())
    }

    /// Records that a transition out of `tier` applied `cut`.
    pub(crate) fn set_watermark(&self, tier: &str, cut: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO watermark (tier, cut) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET cut = max(cut, excluded.cut)",
            )?
            .execute(params![tier, cut])?;
        Ok(())
    }

    /// The last cut applied leaving `tier`.
    pub fn watermark(&self, tier: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT cut FROM watermark WHERE tier = ?1", [tier], |r| {
                r.get(0)
            })
            .optional()?)
    }
}
