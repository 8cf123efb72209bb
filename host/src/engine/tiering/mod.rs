//! Tier transitions: moving what has aged past its tier into the next one, through the next
//! tier's retention rule and codec, without ever losing or duplicating a row.
//!
//! For each pair of neighbouring tiers, hottest first, with `cut = now - keep` of the source
//! (moved to a bucket start of the destination's retention rule when it rolls up, so a bucket
//! is never aggregated from a partial window):
//!
//! - **hot → next**: per destination coin bucket, the hot rows with `ts < cut` of its coins,
//!   sorted by (coin, ts), in read groups of whole coins (`StoreOptions::transition_read_rows`)
//!   read by `HOT_READERS` threads on connections of their own while this thread selects the
//!   previous group. The destination's retention plugin picks the survivors of each group given
//!   the destination's `last_kept` per coin; a bucket's survivors gather (up to 2 M rows), are
//!   split by destination window and each piece is encoded and put into the segment store
//!   ([`SegmentStore::put`], then one [`SegmentStore::sync`]) by a writer thread (two threads
//!   per core) while this thread selects the next groups. When every bucket is written, ONE
//!   SQLite transaction inserts all the catalog rows, raises `last_kept` and removes the moved
//!   hot rows (`Store::drop_hot_before`).
//! - **segments → next**: source segments *wholly* older than the cut (`max_ts < cut`; a
//!   segment of one window straddling the cut waits for a later run), a group of whole source
//!   windows at a time (consecutive windows starting in the same destination window, up to
//!   2 M rows): decode, split by destination coin bucket, select, split by destination
//!   window, encode, write every new file, then ONE transaction inserts the new catalog rows
//!   and deletes the old ones; the old files are deleted after the commit. A segment spanning
//!   several windows that holds rows of a window wholly older than the cut's is split at the
//!   cut: its older rows move, the rest stays in a new segment committed in the same
//!   transaction.
//!
//! A bucket's survivors are split by destination window, but consecutive windows share one
//! segment (up to the tier's `compact-rows`) where no segment of their coins overlaps them in
//! time: a backfill of years writes one segment per bucket, as compaction would leave it.
//!
//! A crash before the commit leaves the source visible and the new segments unreferenced;
//! after it, the new segments visible and the old ones unreferenced. Startup recovery deletes
//! unreferenced segments (see [`Store::recover`](crate::store::Store::recover)), so the next run
//! picks up where this one stopped. Running twice with the same `now` moves nothing the second
//! time.
//!
//! The parts: [`model`](self::model) (the tiers as the engine runs them, plugins loaded once),
//! `hot_read` (the hot rows a transition moves, read on threads of their own), `write`
//! (encode, read back, put, sync) and `read` (the segment read path that queries and `verify`
//! share); this file is the pipeline that drives them.
//!
//! [`SegmentStore::put`]: crate::segment_store::SegmentStore::put
//! [`SegmentStore::sync`]: crate::segment_store::SegmentStore::sync

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::{Batch, Selection};

use crate::catalog::SegmentInfo;
use crate::segment;
use crate::store::Store;

mod compact;
mod hot_read;
pub mod model;
mod read;
mod write;

pub use compact::{CompactMode, CompactReport, Compaction, DEFAULT_COMPACT_ROWS};
use hot_read::{GROUP_ROWS, Group, read_hot_groups};
pub use model::{DAY_MS, Plan, PlanTier, PluginOptions, TierDef, tiers_from_policy};
use write::{Piece, check_written, encode_and_write, sync_pieces};

/// What one transition (source tier → destination tier) did or, in a dry run, would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveReport {
    pub from: String,
    pub to: String,
    /// Rows older than this left the source.
    pub cut: i64,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub segments_written: u64,
    pub segments_removed: u64,
    /// Source segments split at the cut (ones spanning several windows, holding rows of a
    /// window wholly older than the cut's): their younger rows stay in the source tier in a
    /// new segment each.
    pub segments_split: u64,
    pub bytes_written: u64,
    /// What the command should tell the user: each destination window of which the retention
    /// rule kept none of the rows that had it as their destination.
    pub warnings: Vec<String>,
    /// Per destination window: rows that left for it, rows kept in it.
    pub(crate) windows: std::collections::BTreeMap<i64, (u64, u64)>,
}

impl MoveReport {
    /// Turns `windows` into `warnings` once a transition is done.
    fn warn_empty_windows(&mut self, retention: &str) {
        let empty: Vec<(i64, u64)> = self
            .windows
            .iter()
            .filter(|&(_, &(rows, kept))| rows > 0 && kept == 0)
            .map(|(&w, &(rows, _))| (w, rows))
            .collect();
        const SHOWN: usize = 5;
        for &(w, rows) in empty.iter().take(SHOWN) {
            self.warnings.push(format!(
                "retention `{retention}` of tier `{}` kept none of the {rows} rows of the window starting {}",
                self.to,
                chrono::DateTime::from_timestamp_millis(w).map_or_else(|| format!("{w} ms"), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            ));
        }
        if empty.len() > SHOWN {
            self.warnings.push(format!(
                "… and {} more windows of tier `{}` of which `{retention}` kept nothing",
                empty.len() - SHOWN,
                self.to
            ));
        }
    }
}

/// What a move from the hot tier has written so far, all committed at once at its end.
#[derive(Default)]
struct Moved {
    written: Vec<Written>,
    /// Store ids of the coins whose rows older than the cut move.
    coins: Vec<i64>,
    /// Next sequence number per destination (window, bucket) among `written`.
    seqs: HashMap<(i64, u32), u32>,
    /// Survivors of the current coin bucket, not yet written.
    selected: Option<Selected>,
    /// The destination's segments per coin, for pieces spanning several windows.
    taken: Taken,
}

/// The time ranges (min_ts, max_ts) of a destination tier's segments per coin store id: the
/// catalog's (read when a move first wants a piece of several windows, so a move of one
/// window never reads it) and those of the pieces this move planned.
///
/// A piece may span several destination windows only where no segment holding one of its
/// coins overlaps its time range: the invariant compaction keeps too (see `compact`), so a
/// multi-window segment never competes with another for a row.
#[derive(Default)]
struct Taken {
    catalog: Option<HashMap<i64, Vec<(i64, i64)>>>,
    planned: HashMap<i64, Vec<(i64, i64)>>,
    /// The start of the window of the destination's own cut in this run, if it has one: no
    /// piece spans it, so what moves on at once leaves in whole segments (no split rewrites
    /// the rows that stay, just written).
    boundary: Option<i64>,
}

impl Taken {
    /// For a move into `dst` at `now`.
    fn new(dst: &PlanTier, now: i64) -> Taken {
        Taken {
            boundary: dst
                .def
                .keep
                .map(|k| segment::window_start(now.saturating_sub(k), dst.def.window)),
            ..Taken::default()
        }
    }

    /// Whether no segment holding one of `coins` overlaps `[lo, hi]`; `catalog` reads the
    /// catalog's ranges the first time they are needed.
    fn free(
        &mut self,
        coins: &[i64],
        (lo, hi): (i64, i64),
        catalog: impl FnOnce() -> Result<HashMap<i64, Vec<(i64, i64)>>>,
    ) -> Result<bool> {
        if self.catalog.is_none() {
            self.catalog = Some(catalog()?);
        }
        let catalog = self.catalog.as_ref().expect("read above");
        let overlaps = |m: &HashMap<i64, Vec<(i64, i64)>>, c: &i64| {
            m.get(c)
                .is_some_and(|v| v.iter().any(|&(a, b)| a <= hi && b >= lo))
        };
        Ok(!coins
            .iter()
            .any(|c| overlaps(catalog, c) || overlaps(&self.planned, c)))
    }

    /// Records a planned piece of `coins` over `[lo, hi]`.
    fn plan(&mut self, coins: &[i64], (lo, hi): (i64, i64)) {
        for &c in coins {
            self.planned.entry(c).or_default().push((lo, hi));
        }
    }
}

/// What a retention rule kept of a group (or of several groups of one coin bucket).
struct Selected {
    bucket: u32,
    kept: Batch,
    /// Store id of every coin of the input.
    id_of: HashMap<String, i64>,
}

impl Selected {
    /// Appends `other`'s survivors (coins later in key order, so the result stays sorted).
    fn append(&mut self, other: Selected) {
        self.kept.extend_from(&other.kept);
        self.id_of.extend(other.id_of);
    }
}

/// A segment written to disk but not yet in the catalog.
struct Written {
    info: SegmentInfo,
    coin_ids: Vec<i64>,
    last_kept: Vec<(i64, i64)>,
}

impl Store {
    /// Runs every transition due at `now` (ms UTC). With `dry_run`, reads and selects but
    /// writes nothing.
    pub fn tier(&mut self, plan: &Plan, now: i64, dry_run: bool) -> Result<Vec<MoveReport>> {
        for t in &plan.tiers {
            if let Some((c, _)) = &t.codec {
                // The store keeps every component that may write a segment before it writes
                // one, so it can always read what it wrote.
                if !dry_run {
                    self.keep_component(c)?;
                }
                self.codecs
                    .borrow_mut()
                    .insert(c.meta.sha256.clone(), c.clone());
            }
        }
        if !dry_run {
            // Every bucket the store or the plan uses is reached before anything moves (a wrong
            // key or a missing bucket changes nothing), and what an interrupted run left in
            // them goes first (local leftovers went when the store was opened).
            let mut buckets = self.buckets()?;
            for t in &plan.tiers {
                if !t.def.store.is_empty() && !buckets.contains(&t.def.store) {
                    buckets.push(t.def.store.clone());
                }
            }
            for b in buckets {
                self.claim_bucket(&b)?;
            }
        }
        let mut reports = Vec::new();
        for i in 0..plan.tiers.len() - 1 {
            let (src, dst) = (&plan.tiers[i], &plan.tiers[i + 1]);
            let Some(keep) = src.def.keep else { break };
            let (policy, popts) = dst.retention.as_ref().expect("checked by Plan::load");
            // The host decides what may move: nothing younger than the source's `keep`. A
            // rollup's bucket start may only move the cut earlier (`bucket_starts` refuses a
            // start after its timestamp), never later.
            let limit = now.saturating_sub(keep);
            let mut cut = limit;
            if policy.info.rolls_up {
                cut = policy.bucket_starts(&[limit], popts).with_context(|| {
                    format!("tier `{}`: the cut of `{}`", dst.def.name, src.def.name)
                })?[0];
            }
            if cut > limit {
                bail!(
                    "tier `{}`: cut {cut} is younger than `{}` keeps ({limit}); refusing to move",
                    dst.def.name,
                    src.def.name
                );
            }
            let mut report = MoveReport {
                from: src.def.name.clone(),
                to: dst.def.name.clone(),
                cut,
                ..MoveReport::default()
            };
            let taken = Taken::new(dst, now);
            if i == 0 {
                self.move_hot(dst, cut, dry_run, &mut report, taken)
                    .with_context(|| format!("moving `{}` to `{}`", report.from, report.to))?;
            } else {
                self.move_segments(src, dst, cut, dry_run, &mut report, taken)
                    .with_context(|| format!("moving `{}` to `{}`", report.from, report.to))?;
            }
            if !dry_run {
                self.set_watermark(&src.def.name, cut)?;
            }
            report.warn_empty_windows(&policy.meta.name);
            reports.push(report);
        }
        if !dry_run {
            // The hot rows of closed days that stay are sealed into blocks (`sealed`).
            let t = std::time::Instant::now();
            let sealed = self.seal_hot(crate::sealed::floor_day(now))?;
            tracing::debug!(
                rows = sealed.rows,
                blocks = sealed.blocks,
                seal_ms = t.elapsed().as_secs_f64() * 1e3,
                "sealed closed days of the hot tier"
            );
            // Small segments the moves left (one per run, window and bucket) are merged.
            for c in self.compact_tiers(plan, CompactMode::Incremental, false)? {
                if c.runs > 0 {
                    tracing::info!(
                        tier = %c.tier,
                        segments = c.segments_read,
                        into = c.runs,
                        bytes_before = c.bytes_before,
                        bytes_after = c.bytes_after,
                        "compacted"
                    );
                }
            }
            let t = std::time::Instant::now();
            let freed = self.reclaim_free_pages()?;
            self.checkpoint()?;
            tracing::debug!(
                freed,
                reclaim_and_checkpoint_ms = t.elapsed().as_secs_f64() * 1e3,
                "gave free pages back and checkpointed"
            );
        }
        Ok(reports)
    }

    fn move_hot(
        &mut self,
        dst: &PlanTier,
        cut: i64,
        dry_run: bool,
        report: &mut MoveReport,
        taken: Taken,
    ) -> Result<()> {
        if !self.hot_has_rows_before(cut)? {
            return Ok(());
        }
        if !dry_run {
            self.claim_bucket(&dst.def.store)?;
        }
        let buckets = dst.def.coin_buckets;
        // Coins per bucket, in key order so each group is sorted by (coin, ts).
        let mut by_bucket: Vec<Vec<(String, i64)>> = vec![Vec::new(); buckets as usize];
        let mut coins: Vec<(&String, &i64)> = self.coin_ids.iter().collect();
        coins.sort();
        for (k, &id) in coins {
            by_bucket[segment::coin_bucket(k, buckets) as usize].push((k.clone(), id));
        }
        // Reader threads with connections of their own read the groups while this thread
        // selects and writes the previous one: nothing changes the hot tables until the
        // commit below.
        let db = self.db_path();
        let recent = self.recent_rows > 0;
        let read_rows = self.options.transition_read_rows.max(1);
        let mut moved = Moved {
            taken,
            ..Moved::default()
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Group>>(1);
        // A writer thread encodes and writes each coin bucket's segments while this thread
        // selects the next groups: encoding and fsyncs overlap reading and selecting.
        let (wtx, wrx) = std::sync::mpsc::sync_channel::<Vec<Piece>>(1);
        let store = self.store_at(&dst.def.store)?;
        let (codec, segs) = (dst.codec_ref(), &*store);
        // Set by the first failure, on either side: the others stop at their next step.
        let abort = AtomicBool::new(false);
        let (selected, done) = std::thread::scope(|scope| {
            scope.spawn(move || {
                if let Err(e) = read_hot_groups(&db, recent, by_bucket, cut, read_rows, &tx) {
                    let _ = tx.send(Err(e));
                }
            });
            let abort = &abort;
            let writer = scope.spawn(move || {
                wrx.into_iter()
                    .map(|pieces| {
                        let files = encode_and_write(codec, segs, &pieces, abort);
                        (pieces, files)
                    })
                    .collect::<Vec<_>>()
            });
            let selected = (|| -> Result<()> {
                for group in rx {
                    if abort.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    self.move_hot_group(dst, group?, dry_run, report, &mut moved, &wtx)?;
                }
                if let Some(last) = moved.selected.take() {
                    let pieces = self.plan_pieces(dst, last, &mut moved.seqs, &mut moved.taken)?;
                    wtx.send(pieces).context("the segment writer stopped")?;
                }
                Ok(())
            })();
            if selected.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            drop(wtx);
            (
                selected,
                writer.join().expect("the segment writer does not panic"),
            )
        });
        let results: Vec<(&Piece, &Result<(u64, String)>)> = done
            .iter()
            .flat_map(|(pieces, files)| pieces.iter().zip(files))
            .collect();
        check_written(&*store, &results, selected)?;
        sync_pieces(&*store, done.iter().flat_map(|(pieces, _)| pieces))?;
        for (pieces, files) in done {
            let written = self.written(dst, pieces, files, report)?;
            moved.written.extend(written);
        }
        if dry_run || moved.coins.is_empty() {
            return Ok(());
        }
        let t = std::time::Instant::now();
        self.write_txn(|s| {
            // A coin is in a segment per destination window: its `last_kept` is raised once,
            // to the newest of them (a backfill writes ~1 M (segment, coin) pairs).
            let mut kept: std::collections::BTreeMap<i64, i64> = Default::default();
            for w in &moved.written {
                s.insert_segment(&w.info, &w.coin_ids)?;
                for &(id, ts) in &w.last_kept {
                    let k = kept.entry(id).or_insert(ts);
                    *k = (*k).max(ts);
                }
            }
            for (id, ts) in kept {
                s.raise_last_kept(&dst.def.name, id, ts)?;
            }
            let catalog_ms = t.elapsed().as_secs_f64() * 1e3;
            s.drop_hot_before(cut, &moved.coins, report.rows_read)?;
            tracing::debug!(
                catalog_ms,
                drop_ms = t.elapsed().as_secs_f64() * 1e3 - catalog_ms,
                "catalog rows written, hot rows dropped"
            );
            s.latest.clear();
            Ok(())
        })?;
        tracing::debug!(
            rows = report.rows_read,
            segments = moved.written.len(),
            commit_ms = t.elapsed().as_secs_f64() * 1e3,
            "committed the move of hot rows"
        );
        Ok(())
    }

    /// Selects and writes one group of hot rows (every row older than the cut of its coins);
    /// its segments are committed with the rest of the move.
    fn move_hot_group(
        &mut self,
        dst: &PlanTier,
        group: Group,
        dry_run: bool,
        report: &mut MoveReport,
        moved: &mut Moved,
        writer: &std::sync::mpsc::SyncSender<Vec<Piece>>,
    ) -> Result<()> {
        report.rows_read += group.batch.len() as u64;
        let (read, rows) = (group.read, group.batch.len());
        moved.coins.extend_from_slice(&group.ids);
        let t = std::time::Instant::now();
        let sel = self.select(dst, group, report)?;
        if dry_run {
            return Ok(());
        }
        // Survivors of one coin bucket gather (up to GROUP_ROWS) before they are written, so
        // a bucket's segments are as large as its survivors, however its rows were read.
        let mut segments = 0;
        match &mut moved.selected {
            Some(acc)
                if acc.bucket == sel.bucket && acc.kept.len() + sel.kept.len() <= GROUP_ROWS =>
            {
                acc.append(sel);
            }
            acc => {
                if let Some(full) = acc.replace(sel) {
                    let pieces = self.plan_pieces(dst, full, &mut moved.seqs, &mut moved.taken)?;
                    segments = pieces.len();
                    writer.send(pieces).context("the segment writer stopped")?;
                }
            }
        }
        tracing::debug!(
            rows,
            read_ms = read.as_secs_f64() * 1e3,
            segments,
            select_ms = t.elapsed().as_secs_f64() * 1e3,
            "moved a group of hot rows"
        );
        Ok(())
    }

    /// Runs the destination's retention on a group. The rule sees each coin's rows of the
    /// group at once, so a sampling or rollup bucket that straddles two windows is decided once.
    fn select(&self, dst: &PlanTier, group: Group, report: &mut MoveReport) -> Result<Selected> {
        let (policy, popts) = dst.retention.as_ref().expect("checked by Plan::load");
        let Group {
            bucket, batch, ids, ..
        } = group;
        let last: Vec<Option<i64>> = ids
            .iter()
            .map(|&id| self.last_kept(&dst.def.name, id))
            .collect::<Result<_>>()?;
        let t = std::time::Instant::now();
        let kept = match policy.select(&batch, &last, popts)? {
            Selection::Keep(idx) => batch.take(&idx),
            Selection::Rollup(b) => b,
        };
        tracing::debug!(
            tier = %dst.def.name,
            rows = batch.len(),
            kept = kept.len(),
            select_ms = t.elapsed().as_secs_f64() * 1e3,
            "selected"
        );
        report.rows_kept += kept.len() as u64;
        for &ts in &batch.ts {
            report
                .windows
                .entry(segment::window_start(ts, dst.def.window))
                .or_default()
                .0 += 1;
        }
        for &ts in &kept.ts {
            report
                .windows
                .entry(segment::window_start(ts, dst.def.window))
                .or_default()
                .1 += 1;
        }
        // Ids of the kept coins (the dictionary of `take`/rollup may differ from the input's).
        let id_of: HashMap<String, i64> = batch.coins.into_iter().zip(ids).collect();
        if let Some(key) = kept.coins.iter().find(|k| !id_of.contains_key(k.as_str())) {
            bail!("retention returned coin `{key}`, not in its input");
        }
        Ok(Selected {
            bucket,
            kept,
            id_of,
        })
    }

    /// Splits the survivors of one destination coin bucket into the segments to write, by
    /// destination window, numbered after the catalog's and `seqs`' (this move's segments not
    /// yet in the catalog). Consecutive windows share a segment, as compaction would merge
    /// them, while it holds at most the tier's `compact-rows` and covers at most its
    /// `compact-span`, and no other segment of its coins overlaps it in time (`Taken`): so a
    /// backfill of years writes a segment per bucket and a few hundred thousand rows, not one
    /// per window to be merged afterwards.
    fn plan_pieces(
        &self,
        dst: &PlanTier,
        sel: Selected,
        seqs: &mut HashMap<(i64, u32), u32>,
        taken: &mut Taken,
    ) -> Result<Vec<Piece>> {
        let Selected {
            bucket,
            mut kept,
            id_of,
        } = sel;
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        if !kept.is_sorted_by_coin_ts() {
            kept = kept.sorted();
        }
        let mut windows: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
        for (r, &ts) in kept.ts.iter().enumerate() {
            windows
                .entry(segment::window_start(ts, dst.def.window))
                .or_default()
                .push(r as u32);
        }
        // Runs of consecutive windows, each a piece at its first window: (window, rows,
        // coins, time range).
        let ids: Vec<i64> = kept.coins.iter().map(|c| id_of[c]).collect();
        let (limit, max_span) = (
            dst.def.compact.rows,
            dst.def.compact.span.unwrap_or(i64::MAX),
        );
        type Run = (i64, Vec<u32>, Vec<i64>, (i64, i64));
        let mut runs: Vec<Run> = Vec::new();
        for (window, rows) in windows {
            let mut coins: Vec<i64> = rows
                .iter()
                .map(|&r| ids[kept.coin_index[r as usize] as usize])
                .collect();
            coins.sort_unstable();
            coins.dedup();
            let span = rows
                .iter()
                .map(|&r| kept.ts[r as usize])
                .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
            let crosses = |first: i64| taken.boundary.is_some_and(|b| first < b && window >= b);
            if let Some((first, run_rows, run_coins, run_span)) = runs.last_mut()
                && !crosses(*first)
            {
                let joined = (run_span.0.min(span.0), run_span.1.max(span.1));
                if (run_rows.len() + rows.len()) as u64 <= limit && joined.1 - joined.0 <= max_span
                {
                    let mut all = run_coins.clone();
                    all.extend_from_slice(&coins);
                    all.sort_unstable();
                    all.dedup();
                    if taken.free(&all, joined, || self.tier_coin_extents(&dst.def.name))? {
                        run_rows.extend_from_slice(&rows);
                        *run_coins = all;
                        *run_span = joined;
                        continue;
                    }
                }
            }
            runs.push((window, rows, coins, span));
        }
        let mut pieces = Vec::with_capacity(runs.len());
        for (window, mut rows, coins, span) in runs {
            // A coin's rows come from several windows: back into (coin, ts) order.
            rows.sort_unstable();
            taken.plan(&coins, span);
            let batch = if rows.len() == kept.len() {
                std::mem::take(&mut kept)
            } else {
                kept.take(&rows)
            };
            let mut newest: HashMap<u32, i64> = HashMap::new();
            for r in 0..batch.len() {
                let e = newest.entry(batch.coin_index[r]).or_insert(i64::MIN);
                *e = (*e).max(batch.ts[r]);
            }
            let mut last_kept: Vec<(i64, i64)> = newest
                .into_iter()
                .map(|(c, ts)| (id_of[&batch.coins[c as usize]], ts))
                .collect();
            last_kept.sort_unstable();
            pieces.push(self.numbered_piece(dst, (window, bucket), batch, last_kept, seqs)?);
        }
        Ok(pieces)
    }

    /// The catalog rows of written pieces (`files`: each one's size and checksum).
    fn written(
        &self,
        dst: &PlanTier,
        pieces: Vec<Piece>,
        files: Vec<Result<(u64, String)>>,
        report: &mut MoveReport,
    ) -> Result<Vec<Written>> {
        let (codec, copts) = dst.codec.as_ref().expect("checked by Plan::load");
        let options = serde_json::to_string(copts)?;
        let mut out = Vec::with_capacity(pieces.len());
        for (p, file) in pieces.into_iter().zip(files) {
            let (bytes, sha256) = file?;
            report.segments_written += 1;
            report.bytes_written += bytes;
            let coin_ids: Vec<i64> = p.last_kept.iter().map(|&(id, _)| id).collect();
            let info = SegmentInfo {
                id: 0,
                tier: dst.def.name.clone(),
                path: p.path,
                window_start: p.window,
                bucket: p.bucket,
                seq: p.seq,
                codec: codec.meta.name.clone(),
                codec_version: codec.info.info.version.clone(),
                codec_sha256: codec.meta.sha256.clone(),
                options: options.clone(),
                rows: p.batch.len() as u64,
                min_ts: *p.batch.ts.iter().min().expect("not empty"),
                max_ts: *p.batch.ts.iter().max().expect("not empty"),
                coins: coin_ids.len() as u64,
                bytes,
                sha256,
                store: dst.def.store.clone(),
            };
            out.push(Written {
                info,
                coin_ids,
                last_kept: p.last_kept,
            });
        }
        Ok(out)
    }

    fn commit_written(&self, w: &Written) -> Result<()> {
        self.insert_segment(&w.info, &w.coin_ids)?;
        for &(id, ts) in &w.last_kept {
            self.raise_last_kept(&w.info.tier, id, ts)?;
        }
        Ok(())
    }

    fn move_segments(
        &mut self,
        src: &PlanTier,
        dst: &PlanTier,
        cut: i64,
        dry_run: bool,
        report: &mut MoveReport,
        mut taken: Taken,
    ) -> Result<()> {
        let groups = chunk_by_destination(
            self.segments_before(&src.def.name, cut)?,
            dst.def.window,
            GROUP_ROWS as u64,
        );
        // A segment that straddles the cut moves as a whole later, when all of it is older;
        // but one holding rows of a window wholly older than the cut's (one spanning several
        // windows: compacted, or written so by a transition) is split at the cut now, so its
        // rows leave no later than from a segment per window (and it is split once a window).
        let cut_window = segment::window_start(cut, src.def.window);
        let straddling: Vec<SegmentInfo> = self
            .tier_segments(&src.def.name)?
            .into_iter()
            .filter(|s| s.max_ts >= cut && s.min_ts < cut_window)
            .collect();
        let nothing = groups.is_empty() && straddling.is_empty();
        if !dry_run && !nothing {
            self.claim_bucket(&dst.def.store)?;
            self.claim_bucket(&src.def.store)?;
        }
        for group in groups {
            self.move_group((src, dst), group, None, dry_run, report, &mut taken)?;
        }
        // A compacted segment overlaps in time no other segment holding one of its coins, so
        // these rows are newer than every row of their coins just moved: the rule sees each
        // coin's rows in time order. (So at most one of them holds a coin: they go together.)
        let mut rows = 0;
        let mut group: Vec<SegmentInfo> = Vec::new();
        for s in straddling {
            if !group.is_empty() && rows + s.rows > GROUP_ROWS as u64 {
                let full = std::mem::take(&mut group);
                self.move_group((src, dst), full, Some(cut), dry_run, report, &mut taken)?;
                rows = 0;
            }
            rows += s.rows;
            group.push(s);
        }
        if !group.is_empty() {
            self.move_group((src, dst), group, Some(cut), dry_run, report, &mut taken)?;
        }
        Ok(())
    }

    /// Moves one group of source segments: decode, split by destination coin bucket, select,
    /// split by destination window, encode, write, then ONE transaction. With `split_at`, the
    /// rows at or after it stay in the source tier, in a new segment per source segment
    /// written and committed in the same transaction.
    fn move_group(
        &mut self,
        (src, dst): (&PlanTier, &PlanTier),
        group: Vec<SegmentInfo>,
        split_at: Option<i64>,
        dry_run: bool,
        report: &mut MoveReport,
        taken: &mut Taken,
    ) -> Result<()> {
        // Decode the group's source windows (on every core), later segments (higher seq)
        // winning on equal keys.
        let t0 = std::time::Instant::now();
        let mut all = Batch::default();
        let mut stay: Vec<(&SegmentInfo, Batch)> = Vec::new();
        for (s, b) in group.iter().zip(self.read_segments(&group, &[])?) {
            match split_at {
                None => all.extend_from(&b),
                Some(cut) => {
                    let (old, young): (Vec<u32>, Vec<u32>) =
                        (0..b.len() as u32).partition(|&r| b.ts[r as usize] < cut);
                    all.extend_from(&b.take(&old));
                    stay.push((s, b.take(&young)));
                }
            }
        }
        tracing::debug!(
            segments = group.len(),
            rows = all.len(),
            decode_ms = t0.elapsed().as_secs_f64() * 1e3,
            split = split_at.is_some(),
            "decoded source segments"
        );
        report.rows_read += all.len() as u64;
        let mut by_bucket: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
        let bucket_of: Vec<u32> = all
            .coins
            .iter()
            .map(|c| segment::coin_bucket(c, dst.def.coin_buckets))
            .collect();
        for r in 0..all.len() {
            by_bucket
                .entry(bucket_of[all.coin_index[r] as usize])
                .or_default()
                .push(r as u32);
        }
        // Select per bucket, then encode and write every bucket's segments at once.
        let (mut pieces, mut seqs) = (Vec::new(), HashMap::new());
        for (bucket, rows) in by_bucket {
            let mut batch = all.take(&rows).sorted();
            dedup_sorted(&mut batch);
            let ids = self.ids_of(&batch)?;
            let group = Group {
                bucket,
                batch,
                ids,
                read: std::time::Duration::ZERO,
            };
            let sel = self.select(dst, group, report)?;
            if !dry_run {
                pieces.extend(self.plan_pieces(dst, sel, &mut seqs, taken)?);
            }
        }
        if dry_run {
            return Ok(());
        }
        // What stays of split segments: one new source segment each, in its window and bucket.
        let (mut kept_pieces, mut kept_seqs) = (Vec::new(), HashMap::new());
        for (s, mut batch) in stay {
            if batch.is_empty() {
                continue;
            }
            batch = batch.sorted();
            dedup_sorted(&mut batch);
            let last_kept = newest_per_coin(&batch, &self.ids_of(&batch)?);
            let at = (s.window_start, s.bucket);
            kept_pieces.push(self.numbered_piece(src, at, batch, last_kept, &mut kept_seqs)?);
        }
        let store = self.store_at(&dst.def.store)?;
        let src_store = self.store_at(&src.def.store)?;
        let files = encode_and_write(dst.codec_ref(), &*store, &pieces, &AtomicBool::new(false));
        let kept_files = encode_and_write(
            src.codec_ref(),
            &*src_store,
            &kept_pieces,
            &AtomicBool::new(false),
        );
        let results: Vec<_> = pieces.iter().zip(&files).collect();
        let kept_results: Vec<_> = kept_pieces.iter().zip(&kept_files).collect();
        // Each check removes its own side's files on failure; the other side's go too.
        let moved_ok = check_written(&*store, &results, Ok(()));
        let kept_ok = check_written(&*src_store, &kept_results, Ok(()));
        if moved_ok.is_err() || kept_ok.is_err() {
            if moved_ok.is_ok() {
                pieces.iter().for_each(|p| drop(store.delete(&p.path)));
            }
            if kept_ok.is_ok() {
                kept_pieces
                    .iter()
                    .for_each(|p| drop(src_store.delete(&p.path)));
            }
            return moved_ok.and(kept_ok);
        }
        sync_pieces(&*store, &pieces).inspect_err(|_| {
            for p in &kept_pieces {
                let _ = src_store.delete(&p.path);
            }
        })?;
        sync_pieces(&*src_store, &kept_pieces).inspect_err(|_| {
            for p in &pieces {
                let _ = store.delete(&p.path);
            }
        })?;
        let mut written = self.written(dst, pieces, files, report)?;
        written.extend(self.written(src, kept_pieces, kept_files, &mut MoveReport::default())?);
        let t0 = std::time::Instant::now();
        self.write_txn(|s| {
            for w in &written {
                s.commit_written(w)?;
            }
            for old in &group {
                s.delete_segment(old.id)?;
            }
            Ok(())
        })?;
        report.segments_removed += group.len() as u64;
        if split_at.is_some() {
            report.segments_split += group.len() as u64;
        }
        for old in &group {
            segment::check_relative(&old.path)?;
            self.store_at(&old.store)?.delete(&old.path)?;
        }
        crate::crash::point("old-files-deleted").context("removing moved segments")?;
        tracing::debug!(
            commit_ms = t0.elapsed().as_secs_f64() * 1e3,
            "committed a segment move"
        );
        Ok(())
    }

    /// A piece of `tier` for (window, bucket), numbered after the catalog's segments there and
    /// `seqs` (this step's pieces not yet in the catalog), which it updates.
    fn numbered_piece(
        &self,
        tier: &PlanTier,
        (window, bucket): (i64, u32),
        batch: Batch,
        last_kept: Vec<(i64, i64)>,
        seqs: &mut HashMap<(i64, u32), u32>,
    ) -> Result<Piece> {
        let (codec, _) = tier.codec.as_ref().expect("checked by Plan::load");
        let seq = match seqs.get(&(window, bucket)) {
            Some(&s) => s,
            None => self.next_seq(&tier.def.name, window, bucket)?,
        };
        seqs.insert((window, bucket), seq + 1);
        let ext = &codec.info.extension;
        Ok(Piece {
            window,
            bucket,
            seq,
            path: segment::relative_path(&tier.def.name, window, bucket, seq, ext)?,
            batch,
            last_kept,
        })
    }

    /// The store id of every coin of `batch`'s dictionary.
    fn ids_of(&self, batch: &Batch) -> Result<Vec<i64>> {
        batch
            .coins
            .iter()
            .map(|c| {
                self.coin_id(c)
                    .with_context(|| format!("segment holds coin `{c}`, not in the coin table"))
            })
            .collect()
    }
}

/// `(coin id, newest ts)` of every coin with rows in `batch` (`ids`: the id of each of its
/// dictionary's coins), by id.
pub(super) fn newest_per_coin(batch: &Batch, ids: &[i64]) -> Vec<(i64, i64)> {
    let mut newest: HashMap<u32, i64> = HashMap::new();
    for r in 0..batch.len() {
        let e = newest.entry(batch.coin_index[r]).or_insert(i64::MIN);
        *e = (*e).max(batch.ts[r]);
    }
    let mut v: Vec<(i64, i64)> = newest
        .into_iter()
        .map(|(c, ts)| (ids[c as usize], ts))
        .collect();
    v.sort_unstable();
    v
}

/// The machine's cores.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` applied to every item, on up to `threads` threads; results in the items' order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a transition worker does not panic"))
            .collect()
    });
    done.sort_unstable_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Splits source segments (in catalog order: window, bucket, seq) into the groups a segment
/// move reads at once: whole source windows, consecutive ones together while they start in the
/// same destination window and hold at most `max_rows` rows (a single larger window is a group
/// of its own). So twelve 30-day windows moving to a 365-day tier make one destination segment
/// per coin bucket, not twelve, and a rule sees a coin's rows of the whole span at once.
fn chunk_by_destination(
    segments: Vec<SegmentInfo>,
    dst_window: i64,
    max_rows: u64,
) -> Vec<Vec<SegmentInfo>> {
    let mut groups: Vec<Vec<SegmentInfo>> = Vec::new();
    let mut rows = 0u64;
    for s in segments {
        let joins = groups.last().is_some_and(|g| {
            let last = g.last().expect("groups are not empty");
            last.window_start == s.window_start
                || (segment::window_start(last.window_start, dst_window)
                    == segment::window_start(s.window_start, dst_window)
                    && rows + s.rows <= max_rows)
        });
        if joins {
            rows += s.rows;
            groups.last_mut().expect("checked").push(s);
        } else {
            rows = s.rows;
            groups.push(vec![s]);
        }
    }
    groups
}

/// Drops all but the last row of each run of equal (coin, ts) in a sorted batch.
fn dedup_sorted(b: &mut Batch) {
    let n = b.len();
    let keep: Vec<u32> = (0..n as u32)
        .filter(|&i| {
            let i = i as usize;
            i + 1 == n || b.coin_index[i] != b.coin_index[i + 1] || b.ts[i] != b.ts[i + 1]
        })
        .collect();
    if keep.len() != n {
        *b = b.take(&keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(window_start: i64, bucket: u32, rows: u64) -> SegmentInfo {
        SegmentInfo {
            window_start,
            bucket,
            rows,
            ..SegmentInfo::default()
        }
    }

    fn shape(groups: &[Vec<SegmentInfo>]) -> Vec<Vec<(i64, u32)>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| (s.window_start, s.bucket)).collect())
            .collect()
    }

    #[test]
    fn a_piece_spans_windows_only_where_no_segment_of_its_coins_is() {
        let mut taken = Taken::default();
        let catalog = || Ok(HashMap::from([(1, vec![(100, 200)])]));
        // Coin 1 has a segment over [100, 200]; coin 2 none.
        assert!(!taken.free(&[1], (150, 300), catalog).unwrap());
        assert!(!taken.free(&[2, 1], (0, 100), || unreachable!()).unwrap());
        assert!(taken.free(&[1], (201, 300), || unreachable!()).unwrap());
        assert!(taken.free(&[2], (0, 1000), || unreachable!()).unwrap());
        // A piece this move planned counts like a catalog segment.
        taken.plan(&[2, 3], (500, 600));
        assert!(!taken.free(&[3], (600, 700), || unreachable!()).unwrap());
        assert!(taken.free(&[3], (601, 700), || unreachable!()).unwrap());
    }

    #[test]
    fn source_windows_group_by_destination_window_and_size() {
        // Source windows of 10 starting at 0..50, two buckets each; destination windows of 30.
        let segs: Vec<SegmentInfo> = (0..5)
            .flat_map(|w| [seg(w * 10, 0, 4), seg(w * 10, 1, 4)])
            .collect();
        let g = chunk_by_destination(segs.clone(), 30, 100);
        assert_eq!(
            shape(&g),
            [
                vec![(0, 0), (0, 1), (10, 0), (10, 1), (20, 0), (20, 1)],
                vec![(30, 0), (30, 1), (40, 0), (40, 1)],
            ]
        );
        // A row cap splits between windows, never inside one.
        let g = chunk_by_destination(segs, 30, 16);
        assert_eq!(
            shape(&g),
            [
                vec![(0, 0), (0, 1), (10, 0), (10, 1)],
                vec![(20, 0), (20, 1)],
                vec![(30, 0), (30, 1), (40, 0), (40, 1)],
            ]
        );
        let g = chunk_by_destination(vec![seg(0, 0, 50), seg(0, 1, 50)], 30, 10);
        assert_eq!(shape(&g), [vec![(0, 0), (0, 1)]]);
    }
}
