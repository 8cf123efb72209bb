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
//!   segment straddling the cut waits for a later run, so segments are never split), a group
//!   of whole source windows at a time (consecutive windows starting in the same destination
//!   window, up to 2 M rows): decode, split by destination coin bucket, select, split by
//!   destination window, encode, write every new file, then ONE transaction inserts the new
//!   catalog rows and deletes the old ones; the old files are deleted after the commit.
//!
//! A crash before the commit leaves the source visible and the new segments unreferenced;
//! after it, the new segments visible and the old ones unreferenced. Startup recovery deletes
//! unreferenced segments (see [`Store::recover`](crate::store::Store::recover)), so the next run
//! picks up where this one stopped. Running twice with the same `now` moves nothing the second
//! time.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::{Batch, Selection};

use crate::catalog::SegmentInfo;
use crate::plugin::{CodecPlugin, PluginRef, PolicyPlugin, Runtime};
use crate::segment;
use crate::segment_store::SegmentStore;
use crate::store::Store;

/// Plugin options, as in a policy file.
pub type Options = Vec<(String, String)>;

/// One tier as the engine needs it (the fields of a policy file's tier).
#[derive(Clone, Debug)]
pub struct TierDef {
    pub name: String,
    /// Rows older than `now - keep` (ms) move to the next tier; `None` = forever.
    pub keep: Option<i64>,
    /// `None` only for the hot tier.
    pub retention: Option<(PluginRef, Options)>,
    /// `None` only for the hot tier.
    pub codec: Option<(PluginRef, Options)>,
    /// Segment time window, ms.
    pub window: i64,
    /// Coin buckets per window.
    pub coin_buckets: u32,
}

/// A tier with its plugins loaded.
pub struct PlanTier {
    pub def: TierDef,
    pub retention: Option<(PolicyPlugin, Options)>,
    pub codec: Option<(Rc<CodecPlugin>, Options)>,
}

impl PlanTier {
    /// The codec and its options (a tier after hot always has one: see [`Plan::load`]).
    fn codec_ref(&self) -> (&CodecPlugin, &Options) {
        let (codec, opts) = self.codec.as_ref().expect("checked by Plan::load");
        (codec, opts)
    }
}

/// Every tier of a policy with its plugins loaded, hottest first.
pub struct Plan {
    pub tiers: Vec<PlanTier>,
}

impl Plan {
    /// Loads every tier's plugins and checks the plan's shape: the first tier is the hot tier
    /// (no plugins), every other tier has both, keeps grow colder, only the last keeps forever.
    pub fn load(rt: &Runtime, defs: &[TierDef]) -> Result<Plan> {
        if defs.len() < 2 {
            bail!("a policy needs the hot tier and at least one more");
        }
        let mut tiers = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            if i == 0 && (d.retention.is_some() || d.codec.is_some()) {
                bail!(
                    "tier `{}`: the hot tier has no retention or codec plugin",
                    d.name
                );
            }
            if i > 0 && (d.retention.is_none() || d.codec.is_none()) {
                bail!(
                    "tier `{}`: needs both a retention and a codec plugin",
                    d.name
                );
            }
            if i + 1 < defs.len() && d.keep.is_none() {
                bail!(
                    "tier `{}`: only the last tier may keep rows forever",
                    d.name
                );
            }
            if i > 0 && (d.window <= 0 || d.coin_buckets == 0) {
                bail!(
                    "tier `{}`: segment window and coin buckets must be positive",
                    d.name
                );
            }
            if i > 0
                && let (Some(prev), Some(k)) = (defs[i - 1].keep, d.keep)
                && k <= prev
            {
                bail!(
                    "tier `{}`: keep ({k} ms) must be longer than tier `{}`'s ({prev} ms)",
                    d.name,
                    defs[i - 1].name
                );
            }
            let retention = match &d.retention {
                Some((r, o)) => {
                    let p = rt
                        .policy(r)
                        .with_context(|| format!("tier `{}`: retention", d.name))?;
                    p.check_options(o)
                        .with_context(|| format!("tier `{}`: retention options", d.name))?;
                    Some((p, o.clone()))
                }
                None => None,
            };
            let codec = match &d.codec {
                Some((r, o)) => Some((
                    Rc::new(
                        rt.codec(r)
                            .with_context(|| format!("tier `{}`: codec", d.name))?,
                    ),
                    o.clone(),
                )),
                None => None,
            };
            tiers.push(PlanTier {
                def: d.clone(),
                retention,
                codec,
            });
        }
        Ok(Plan { tiers })
    }
}

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

/// Survivors of a coin bucket held before they are written, and rows of source segments read
/// at once: bounds memory when a bucket holds more (a large bulk import); its rows then go to
/// more than one segment per window.
const GROUP_ROWS: usize = 1 << 21;

/// One group of a transition: rows of coins of one destination coin bucket, sorted by
/// (coin, ts), any number of destination windows.
struct Group {
    bucket: u32,
    batch: Batch,
    /// `ids[c]` is the store id of `batch.coins[c]`.
    ids: Vec<i64>,
    /// Time spent reading it.
    read: std::time::Duration,
}

impl Group {
    fn new(bucket: u32) -> Group {
        Group {
            bucket,
            batch: Batch::default(),
            ids: Vec::new(),
            read: std::time::Duration::ZERO,
        }
    }
}

/// Hot-tier readers of a transition, each on a connection of its own.
const HOT_READERS: usize = 2;

/// Reads every hot row older than `cut` of the coins of each bucket and sends them as groups
/// of about `read_rows` rows (whole coins), in bucket order. [`HOT_READERS`] threads read the
/// coins in turn, each on its own connection to `db`; this thread puts the coins back in order.
fn read_hot_groups(
    db: &std::path::Path,
    recent: bool,
    by_bucket: Vec<Vec<(String, i64)>>,
    cut: i64,
    read_rows: usize,
    tx: &std::sync::mpsc::SyncSender<Result<Group>>,
) -> Result<()> {
    let coins: Vec<(u32, String, i64)> = by_bucket
        .into_iter()
        .enumerate()
        .flat_map(|(b, members)| members.into_iter().map(move |(k, id)| (b as u32, k, id)))
        .collect();
    let range = crate::hot::HotRange {
        from: i64::MIN,
        to: cut - 1,
        newest_first: false,
        limit: None,
    };
    std::thread::scope(|scope| -> Result<()> {
        let mut readers = Vec::with_capacity(HOT_READERS);
        for r in 0..HOT_READERS {
            let (piece_tx, piece_rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(16);
            readers.push(piece_rx);
            let (coins, range) = (&coins, &range);
            scope.spawn(move || {
                let conn = match rusqlite::Connection::open_with_flags(
                    db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = piece_tx.send(Err(anyhow::Error::from(e)
                            .context(format!("opening {} to read the hot tier", db.display()))));
                        return;
                    }
                };
                // One read transaction for all its coins: one snapshot, and no per-query
                // transaction set-up.
                if let Err(e) = conn.execute_batch("BEGIN;") {
                    let _ = piece_tx.send(Err(e.into()));
                    return;
                }
                for (_, key, id) in coins.iter().skip(r).step_by(HOT_READERS) {
                    let mut piece = Batch::default();
                    piece.coins.push(key.clone());
                    let read = crate::hot::read_hot(&conn, recent, *id, range, &mut piece);
                    let failed = read.is_err();
                    // A closed channel: the transition stopped.
                    if piece_tx.send(read.map(|()| piece)).is_err() || failed {
                        return;
                    }
                }
            });
        }
        let mut group: Option<Group> = None;
        for (i, (bucket, key, id)) in coins.iter().enumerate() {
            let t = std::time::Instant::now();
            let mut piece = readers[i % HOT_READERS]
                .recv()
                .context("a hot-tier reader stopped")??;
            if group.as_ref().is_some_and(|g| g.bucket != *bucket)
                && let Some(full) = group.take().filter(|g| !g.batch.is_empty())
                && tx.send(Ok(full)).is_err()
            {
                return Ok(());
            }
            let g = group.get_or_insert_with(|| {
                let mut g = Group::new(*bucket);
                // Room for a full group up front: no copying as it grows (pages not written
                // are never touched).
                g.batch = Batch::with_capacity(read_rows + read_rows / 8);
                g
            });
            g.read += t.elapsed();
            if piece.is_empty() {
                continue;
            }
            g.batch.coins.push(key.clone());
            g.ids.push(*id);
            // The piece holds one coin: point its rows at the group's entry, append them whole.
            piece.coin_index.fill((g.batch.coins.len() - 1) as u32);
            g.batch.append_rows(&piece);
            if g.batch.len() >= read_rows
                && let Some(full) = group.take()
                && tx.send(Ok(full)).is_err()
            {
                return Ok(());
            }
        }
        if let Some(last) = group.filter(|g| !g.batch.is_empty()) {
            let _ = tx.send(Ok(last));
        }
        Ok(())
    })
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
            if i == 0 {
                self.move_hot(dst, cut, dry_run, &mut report)
                    .with_context(|| format!("moving `{}` to `{}`", report.from, report.to))?;
            } else {
                self.move_segments(src, dst, cut, dry_run, &mut report)
                    .with_context(|| format!("moving `{}` to `{}`", report.from, report.to))?;
            }
            if !dry_run {
                self.set_watermark(&src.def.name, cut)?;
            }
            report.warn_empty_windows(&policy.meta.name);
            reports.push(report);
        }
        if !dry_run {
            let t = std::time::Instant::now();
            self.checkpoint()?;
            tracing::debug!(
                checkpoint_ms = t.elapsed().as_secs_f64() * 1e3,
                "checkpointed"
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
    ) -> Result<()> {
        if !self.hot_has_rows_before(cut)? {
            return Ok(());
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
        let mut moved = Moved::default();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Group>>(1);
        // A writer thread encodes and writes each coin bucket's segments while this thread
        // selects the next groups: encoding and fsyncs overlap reading and selecting.
        let (wtx, wrx) = std::sync::mpsc::sync_channel::<Vec<Piece>>(1);
        let store = self.segments.clone();
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
                    let pieces = self.plan_pieces(dst, last, &mut moved.seqs)?;
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
        check_written(&*self.segments, &results, selected)?;
        sync_pieces(&*self.segments, done.iter().flat_map(|(pieces, _)| pieces))?;
        for (pieces, files) in done {
            let written = self.written(dst, pieces, files, report)?;
            moved.written.extend(written);
        }
        if dry_run || moved.coins.is_empty() {
            return Ok(());
        }
        let t = std::time::Instant::now();
        self.write_txn(|s| {
            for w in &moved.written {
                s.commit_written(w)?;
            }
            s.drop_hot_before(cut, &moved.coins, report.rows_read)?;
            s.latest.borrow_mut().clear();
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
                    let pieces = self.plan_pieces(dst, full, &mut moved.seqs)?;
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

    /// Splits the survivors of one destination coin bucket by destination window into the
    /// segments to write, numbered after the catalog's and `seqs`' (this move's segments not
    /// yet in the catalog).
    fn plan_pieces(
        &self,
        dst: &PlanTier,
        sel: Selected,
        seqs: &mut HashMap<(i64, u32), u32>,
    ) -> Result<Vec<Piece>> {
        let (codec, _) = dst.codec.as_ref().expect("checked by Plan::load");
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
        let mut pieces = Vec::with_capacity(windows.len());
        for (window, rows) in windows {
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
            let seq = match seqs.get(&(window, bucket)) {
                Some(&s) => s,
                None => self.next_seq(&dst.def.name, window, bucket)?,
            };
            seqs.insert((window, bucket), seq + 1);
            let path =
                segment::relative_path(&dst.def.name, window, bucket, seq, &codec.info.extension)?;
            pieces.push(Piece {
                window,
                bucket,
                seq,
                path,
                batch,
                last_kept,
            });
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
    ) -> Result<()> {
        let groups = chunk_by_destination(
            self.segments_before(&src.def.name, cut)?,
            dst.def.window,
            GROUP_ROWS as u64,
        );
        for group in groups {
            // Decode the group's source windows (on every core), later segments (higher seq)
            // winning on equal keys.
            let t0 = std::time::Instant::now();
            let mut all = Batch::default();
            for b in self.read_segments(&group, &[])? {
                all.extend_from(&b);
            }
            tracing::debug!(
                segments = group.len(),
                rows = all.len(),
                decode_ms = t0.elapsed().as_secs_f64() * 1e3,
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
                let ids: Vec<i64> = batch
                    .coins
                    .iter()
                    .map(|c| {
                        self.coin_id(c).with_context(|| {
                            format!("segment holds coin `{c}`, not in the coin table")
                        })
                    })
                    .collect::<Result<_>>()?;
                let group = Group {
                    bucket,
                    batch,
                    ids,
                    read: std::time::Duration::ZERO,
                };
                let sel = self.select(dst, group, report)?;
                if !dry_run {
                    pieces.extend(self.plan_pieces(dst, sel, &mut seqs)?);
                }
            }
            if dry_run {
                continue;
            }
            let files = encode_and_write(
                dst.codec_ref(),
                &*self.segments,
                &pieces,
                &AtomicBool::new(false),
            );
            let results: Vec<_> = pieces.iter().zip(&files).collect();
            check_written(&*self.segments, &results, Ok(()))?;
            sync_pieces(&*self.segments, &pieces)?;
            let written = self.written(dst, pieces, files, report)?;
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
            for old in &group {
                segment::check_relative(&old.path)?;
                self.segments.delete(&old.path)?;
            }
            crate::crash::point("old-files-deleted").context("removing moved segments")?;
            tracing::debug!(
                commit_ms = t0.elapsed().as_secs_f64() * 1e3,
                "committed a segment move"
            );
        }
        Ok(())
    }

    /// The codec that wrote segment `s`, by the component sha256 the catalog records: one
    /// the store has loaded already, else the store's own copy of it
    /// ([`components`](crate::components)), else (a store from before strata kept copies)
    /// a built-in or installed plugin of that name with that sha256.
    pub(crate) fn codec_for(&self, s: &SegmentInfo) -> Result<Rc<CodecPlugin>> {
        if let Some(c) = self.codecs.borrow().get(&s.codec_sha256) {
            return Ok(c.clone());
        }
        let rt = self.runtime()?;
        let c = match self.load_kept(&rt, &s.codec_sha256)? {
            Some(c) => c,
            None => {
                let c = rt
                    .codec(&PluginRef::parse(&s.codec))
                    .with_context(|| format!("segment {}: loading codec `{}`", s.path, s.codec))?;
                if c.meta.sha256 != s.codec_sha256 {
                    bail!(
                        "segment {} was written by codec `{}` with sha256 {}, which this store \
                         does not keep (no {}), and the available `{}` has sha256 {}",
                        s.path,
                        s.codec,
                        s.codec_sha256,
                        self.kept_component_path(&s.codec_sha256)?.display(),
                        s.codec,
                        c.meta.sha256
                    );
                }
                c
            }
        };
        let c = Rc::new(c);
        self.codecs
            .borrow_mut()
            .insert(s.codec_sha256.clone(), c.clone());
        Ok(c)
    }

    /// Reads and decodes segment `s`, optionally only the rows of `coins`.
    pub fn read_segment(&self, s: &SegmentInfo, coins: Option<&[String]>) -> Result<Batch> {
        read_segment_with(&*self.segments, s, &*self.codec_for(s)?, coins)
    }
}

/// Segment bytes below which [`Store::read_segments`] decodes on one thread (about 10 ms of
/// decoding for the slowest codecs).
const PARALLEL_READ_BYTES: u64 = 256 << 10;

impl Store {
    /// Reads and decodes `segments` on every core, in order; with a non-empty `coins`, only
    /// their rows (as far as each codec filters). The first segment that cannot be read fails
    /// the whole read, naming it.
    pub fn read_segments(&self, segments: &[SegmentInfo], coins: &[String]) -> Result<Vec<Batch>> {
        self.read_segments_each(segments, coins)
            .into_iter()
            .collect()
    }

    /// [`read_segments`](Self::read_segments), with one result per segment: a reader that
    /// skips damaged segments keeps the rest.
    pub fn read_segments_each(
        &self,
        segments: &[SegmentInfo],
        coins: &[String],
    ) -> Vec<Result<Batch>> {
        let codecs: Vec<Result<Rc<CodecPlugin>>> =
            segments.iter().map(|s| self.codec_for(s)).collect();
        // Rc is not Sync: the threads get plain references (and errors as text).
        type Job<'a> = (&'a SegmentInfo, Result<&'a CodecPlugin, String>);
        let jobs: Vec<Job<'_>> = segments
            .iter()
            .zip(
                codecs
                    .iter()
                    .map(|c| c.as_deref().map_err(|e| format!("{e:#}"))),
            )
            .collect();
        let (segs, filter) = (&*self.segments, (!coins.is_empty()).then_some(coins));
        let read = |(s, codec): &Job<'_>| match codec {
            Ok(codec) => read_segment_with(segs, s, codec, filter),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        // Threads pay off only when there is real decoding to share out.
        let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        if bytes < PARALLEL_READ_BYTES {
            jobs.iter().map(read).collect()
        } else {
            parallel_map(&jobs, cores(), read)
        }
    }
}

/// Reads and decodes segment `s` of the store in `dir` with its codec.
fn read_segment_with(
    segs: &dyn SegmentStore,
    s: &SegmentInfo,
    codec: &CodecPlugin,
    coins: Option<&[String]>,
) -> Result<Batch> {
    segment::check_relative(&s.path)?;
    let bytes = segs
        .get(&s.path)
        .with_context(|| format!("reading segment {}", s.path))?;
    let sum = segment::checksum(&bytes);
    if sum != s.sha256 {
        bail!(
            "segment {} is damaged: its sha256 is {sum}, the catalog says {} ({} bytes, the \
             catalog says {})",
            s.path,
            s.sha256,
            bytes.len(),
            s.bytes
        );
    }
    let raw = crate::plugin::raw_bytes(s.rows as usize, s.coins as usize, 8);
    codec
        .decode_expecting(&bytes, coins, Some(raw))
        .with_context(|| format!("decoding segment {}", s.path))
}

/// One segment to write: survivors of one coin bucket in one destination window.
struct Piece {
    window: i64,
    bucket: u32,
    seq: u32,
    /// Relative path of the segment file.
    path: String,
    batch: Batch,
    /// `(coin id, newest ts)` of every coin in `batch`, by id.
    last_kept: Vec<(i64, i64)>,
}

/// Encodes every piece with the destination's codec, decodes the bytes again with a fresh
/// instance and checks they give back the piece's rows ([`roundtrip`](crate::roundtrip)), then
/// puts them into the segment store under the piece's key (durable only after [`sync_pieces`]),
/// on every core. Returns each file's size and checksum. The first failure sets `abort`, and
/// every piece not yet started is then skipped ([`Skipped`]), so a failing plugin costs one
/// call's time limit, not one per piece.
fn encode_and_write(
    (codec, copts): (&CodecPlugin, &Options),
    segs: &dyn SegmentStore,
    pieces: &[Piece],
    abort: &AtomicBool,
) -> Vec<Result<(u64, String)>> {
    let t = std::time::Instant::now();
    // Two threads per core: a segment waits on its fsync about as long as it takes to encode,
    // and another can encode meanwhile (+10% with the bench's 976 small segments).
    let files = parallel_map(pieces, 2 * cores(), |p| -> Result<(u64, String)> {
        if abort.load(Ordering::Relaxed) {
            return Err(Skipped.into());
        }
        let written = encode_checked(codec, copts, p).and_then(|bytes| {
            segment::check_relative(&p.path)?;
            segs.put(&p.path, &bytes)?;
            Ok((bytes.len() as u64, segment::checksum(&bytes)))
        });
        if written.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        written
    });
    tracing::debug!(
        codec = %codec.meta.name,
        rows = pieces.iter().map(|p| p.batch.len()).sum::<usize>(),
        segments = pieces.len(),
        encode_and_write_ms = t.elapsed().as_secs_f64() * 1e3,
        "wrote"
    );
    files
}

/// Encodes a piece and checks that a fresh instance decodes the bytes back into its rows.
fn encode_checked(codec: &CodecPlugin, copts: &Options, p: &Piece) -> Result<Vec<u8>> {
    let bytes = codec.encode(&p.batch, copts)?;
    let raw = crate::plugin::batch_raw_bytes(&p.batch);
    let back = codec
        .decode_expecting(&bytes, None, Some(raw))
        .with_context(|| format!("reading back new segment {} before it is used", p.path))?;
    if let Some(d) = crate::roundtrip::first_difference(&p.batch, &back, codec.info.lossless) {
        bail!(
            "plugin `{}`: new segment {} does not decode to the rows it was encoded from \
             (checked before anything is deleted): {d}",
            codec.meta.name,
            p.path
        );
    }
    Ok(bytes)
}

/// A piece not written because an earlier one failed.
#[derive(Debug)]
struct Skipped;

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not written: an earlier segment of this transition failed")
    }
}

impl std::error::Error for Skipped {}

/// Checks a set of written pieces (`results`) together with `selected`, how the selection
/// that fed them ended. On any failure, removes the files that were written (no catalog
/// names them; startup recovery would remove them too) and returns the error to report: a
/// plugin's or the disk's failure first, then the selection's, and only then "skipped".
fn check_written(
    segs: &dyn SegmentStore,
    results: &[(&Piece, &Result<(u64, String)>)],
    selected: Result<()>,
) -> Result<()> {
    let errors = || results.iter().filter_map(|(_, r)| r.as_ref().err());
    let real = errors().find(|e| e.downcast_ref::<Skipped>().is_none());
    let failure = match (real, selected) {
        (Some(e), _) => anyhow::anyhow!("{e:#}"),
        (None, Err(e)) => e,
        (None, Ok(())) => match errors().next() {
            Some(e) => anyhow::anyhow!("{e:#}"),
            None => return Ok(()),
        },
    };
    for (p, r) in results {
        if r.is_ok() && segment::check_relative(&p.path).is_ok() {
            let _ = segs.delete(&p.path);
        }
    }
    Err(failure)
}

/// Makes the written pieces durable ([`SegmentStore::sync`]) before the catalog names them.
fn sync_pieces<'a>(
    segs: &dyn SegmentStore,
    pieces: impl IntoIterator<Item = &'a Piece>,
) -> Result<()> {
    let keys: Vec<&str> = pieces.into_iter().map(|p| p.path.as_str()).collect();
    if keys.is_empty() {
        return Ok(());
    }
    segs.sync(&keys).inspect_err(|_| {
        // Not committed, so no catalog row names them: remove them now rather than at the
        // next open.
        for k in &keys {
            let _ = segs.delete(k);
        }
    })
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` applied to every item, on up to `threads` threads; results in the items' order.
fn parallel_map<T: Sync, R: Send>(
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

/// One day, in ms.
pub const DAY_MS: i64 = 86_400_000;

/// The tier definitions of a policy file (see [`crate::policy`]).
pub fn tiers_from_policy(policy: &crate::policy::Policy) -> Vec<TierDef> {
    let spec = |s: &Option<crate::policy::PluginSpec>| {
        s.as_ref().map(|s| (s.plugin.clone(), s.options.clone()))
    };
    policy
        .tiers
        .iter()
        .map(|t| TierDef {
            name: t.name.clone(),
            keep: t.keep,
            retention: spec(&t.retention),
            codec: spec(&t.codec),
            window: t.segment.window,
            coin_buckets: t.segment.coin_buckets,
        })
        .collect()
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
