//! Compaction: merging a tier's small segments into larger ones, so a colder tier costs close
//! to what its codec costs on one file of the same rows.
//!
//! Segments come out small in two ways: a transition that runs every hour or day writes one
//! new segment per destination (window, coin bucket) each time, and a codec pays per segment
//! and per coin in it (headers, the first value of each delta run), which adds up when a coin
//! has 30 rows in a segment. Compaction takes *runs* of a tier's segments: consecutive in the
//! catalog's order within one coin bucket (window, then seq), each smaller than half of the
//! tier's `compact-rows`, together at most `compact-rows` rows and covering at most
//! `compact-span` of time (default: no limit), and overlapping in time no other segment
//! holding one of their coins. A run of two or more is decoded, its rows sorted with later segments winning
//! on equal (coin, ts) as in a transition, encoded with the tier's codec, read back and
//! compared, put under a new key (window of the run's first segment, the next seq there) and
//! made durable; then ONE transaction inserts it into the catalog and deletes the run's rows
//! (several runs, up to 2 M rows, are decoded and encoded on every core and committed
//! together), and the old files go after the commit. A crash before the commit leaves the run and an
//! unreferenced new file (removed by startup recovery); after it, the new segment and
//! unreferenced old files. Every query answers the same before and after.
//!
//! Because a run is consecutive in the order that decides which copy of a row wins, and the
//! new segment takes the last seq of its first window, it wins and loses against every other
//! segment exactly as the run's members did.
//!
//! A merged segment may cover many windows. Transitions move segments wholly older than their
//! cut, and split one that holds rows of a window wholly older than the cut's (the rows older
//! than the cut move, the rest stay in a new segment; see `move_segments`), so compaction
//! never keeps a row in its tier longer than an unmerged segment would: at most to the end of
//! the window in which it passes `keep`.
//!
//! [`Store::compact`] with [`CompactMode::Full`] (`strata compact`) merges every run that
//! fits; [`CompactMode::Incremental`] (after each `tier`) only a run whose largest segment is
//! at most twice the rest together, so a segment that grows by a day at a time is rewritten a
//! logarithmic number of times, not once a day, or a run small enough to rewrite at any time
//! (a sixteenth of `compact-rows`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use strata_plugin_sdk::Batch;

use super::hot_read::GROUP_ROWS;
use super::write::{check_written, encode_and_write, sync_pieces};
use super::{MoveReport, Plan, PlanTier, dedup_sorted, newest_per_coin};
use crate::catalog::SegmentInfo;
use crate::segment;
use crate::store::Store;

/// Which runs [`Store::compact`] merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactMode {
    /// Every run of two or more small segments that fits (`strata compact`).
    Full,
    /// Only runs whose largest segment is at most twice the others together (after `tier`).
    Incremental,
}

/// What compaction did (or, in a dry run, would do) in one tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub tier: String,
    /// Runs merged, each into one segment.
    pub runs: u64,
    pub segments_read: u64,
    pub rows: u64,
    pub bytes_before: u64,
    /// Bytes of the new segments (0 in a dry run).
    pub bytes_after: u64,
}

/// How a tier's segments are compacted (the policy's `compact-rows`, `compact-span`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compaction {
    /// Rows of a merged segment at most; segments of half this or more are left as they are.
    /// 0 turns compaction off for the tier.
    pub rows: u64,
    /// Time a merged segment covers at most (max_ts - min_ts), ms; `None` = no limit.
    pub span: Option<i64>,
}

impl Default for Compaction {
    fn default() -> Compaction {
        Compaction {
            rows: DEFAULT_COMPACT_ROWS,
            span: None,
        }
    }
}

/// `compact-rows` when a policy does not set it: about 4–10 MB of raw rows, a few hundred KB
/// to a few MB encoded, which one coin's query still reads in about a millisecond.
pub const DEFAULT_COMPACT_ROWS: u64 = 250_000;

impl Store {
    /// Merges runs of small segments in every tier after the hot one (see the module doc),
    /// then gives the database's free pages back and checkpoints.
    pub fn compact(
        &mut self,
        plan: &Plan,
        mode: CompactMode,
        dry_run: bool,
    ) -> Result<Vec<CompactReport>> {
        let reports = self.compact_tiers(plan, mode, dry_run)?;
        if !dry_run && reports.iter().any(|r| r.runs > 0) {
            self.reclaim_free_pages()?;
            self.checkpoint()?;
        }
        Ok(reports)
    }

    /// [`compact`](Self::compact) without the vacuum and checkpoint (`tier` does those once).
    pub(super) fn compact_tiers(
        &mut self,
        plan: &Plan,
        mode: CompactMode,
        dry_run: bool,
    ) -> Result<Vec<CompactReport>> {
        let mut reports = Vec::new();
        for t in &plan.tiers[1..] {
            let mut report = CompactReport {
                tier: t.def.name.clone(),
                ..CompactReport::default()
            };
            let span = t.def.compact.span.unwrap_or(i64::MAX);
            let segments = self.tier_segments(&t.def.name)?;
            let mut runs = plan_runs(segments.clone(), t.def.compact.rows, span, mode);
            if !runs.is_empty() {
                // Read only when something may merge, not at every hourly `tier`.
                let coins = self.tier_segment_coins(&t.def.name)?;
                runs = keep_disjoint(runs, &segments, &coins);
            }
            if !dry_run && !runs.is_empty() {
                if let Some((c, _)) = &t.codec {
                    self.keep_component(c)?;
                }
                self.claim_bucket(&t.def.store)?;
            }
            for run in &runs {
                report.runs += 1;
                report.segments_read += run.len() as u64;
                report.rows += run.iter().map(|s| s.rows).sum::<u64>();
                report.bytes_before += run.iter().map(|s| s.bytes).sum::<u64>();
            }
            if !dry_run {
                // Several runs at a time (up to GROUP_ROWS rows), decoded and encoded on every
                // core, committed together.
                let mut batch: Vec<Vec<SegmentInfo>> = Vec::new();
                let mut rows = 0;
                for run in runs {
                    let n: u64 = run.iter().map(|s| s.rows).sum();
                    if !batch.is_empty() && rows + n > GROUP_ROWS as u64 {
                        report.bytes_after += self
                            .merge_runs(t, &std::mem::take(&mut batch))
                            .with_context(|| format!("compacting tier `{}`", t.def.name))?;
                        rows = 0;
                    }
                    rows += n;
                    batch.push(run);
                }
                if !batch.is_empty() {
                    report.bytes_after += self
                        .merge_runs(t, &batch)
                        .with_context(|| format!("compacting tier `{}`", t.def.name))?;
                }
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// Merges each run into one segment, all in one transaction; returns their bytes.
    fn merge_runs(&mut self, t: &PlanTier, runs: &[Vec<SegmentInfo>]) -> Result<u64> {
        let members: Vec<SegmentInfo> = runs.iter().flatten().cloned().collect();
        let mut decoded = self.read_segments(&members, &[])?.into_iter();
        let mut seqs: HashMap<(i64, u32), u32> = HashMap::new();
        let mut pieces = Vec::with_capacity(runs.len());
        for run in runs {
            let mut all = Batch::default();
            for b in decoded.by_ref().take(run.len()) {
                all.extend_from(&b);
            }
            // Stable: on equal (coin, ts) the later segment's row comes last and is kept.
            let mut batch = all.sorted();
            dedup_sorted(&mut batch);
            let last_kept = newest_per_coin(&batch, &self.ids_of(&batch)?);
            let at = (run[0].window_start, run[0].bucket);
            pieces.push(self.numbered_piece(t, at, batch, last_kept, &mut seqs)?);
        }
        let store = self.store_at(&t.def.store)?;
        let files = encode_and_write(t.codec_ref(), &*store, &pieces, &AtomicBool::new(false));
        let results: Vec<_> = pieces.iter().zip(&files).collect();
        check_written(&*store, &results, Ok(()))?;
        sync_pieces(&*store, &pieces)?;
        let written = self.written(t, pieces, files, &mut MoveReport::default())?;
        let bytes = written.iter().map(|w| w.info.bytes).sum();
        self.write_txn(|s| {
            for w in &written {
                s.commit_written(w)?;
            }
            for old in &members {
                s.delete_segment(old.id)?;
            }
            Ok(())
        })?;
        for old in &members {
            segment::check_relative(&old.path)?;
            self.store_at(&old.store)?.delete(&old.path)?;
        }
        crate::crash::point("compacted-files-deleted").context("removing compacted segments")?;
        Ok(bytes)
    }
}

/// A run of at most `compact-rows / CHEAP_RUN_FRACTION` rows (15,625 by default) is cheap
/// enough to rewrite whenever it gains a segment, after `tier` too.
const CHEAP_RUN_FRACTION: u64 = 16;

/// The runs to merge among a tier's segments, given in catalog order (bucket, window, seq),
/// before [`keep_disjoint`].
fn plan_runs(
    segments: Vec<SegmentInfo>,
    max_rows: u64,
    span: i64,
    mode: CompactMode,
) -> Vec<Vec<SegmentInfo>> {
    if max_rows == 0 {
        return Vec::new();
    }
    let mut runs: Vec<Vec<SegmentInfo>> = Vec::new();
    let mut run: Vec<SegmentInfo> = Vec::new();
    let close = |run: &mut Vec<SegmentInfo>, runs: &mut Vec<Vec<SegmentInfo>>| {
        let run = std::mem::take(run);
        let total: u64 = run.iter().map(|s| s.rows).sum();
        let largest = run.iter().map(|s| s.rows).max().unwrap_or(0);
        let worth = match mode {
            CompactMode::Full => true,
            CompactMode::Incremental => {
                largest <= 2 * (total - largest) || total <= max_rows / CHEAP_RUN_FRACTION
            }
        };
        if run.len() >= 2 && worth {
            runs.push(run);
        }
    };
    for s in segments {
        let small = s.rows < max_rows / 2;
        let fits = run.last().is_some_and(|last| {
            let rows: u64 = run.iter().map(|r| r.rows).sum::<u64>() + s.rows;
            let from = run.iter().map(|r| r.min_ts).min().unwrap_or(s.min_ts);
            let to = run.iter().map(|r| r.max_ts).max().unwrap_or(s.max_ts);
            last.bucket == s.bucket
                && last.store == s.store
                && rows <= max_rows
                && s.max_ts.max(to).saturating_sub(s.min_ts.min(from)) <= span
        });
        if !fits {
            close(&mut run, &mut runs);
        }
        if small {
            run.push(s);
        } else {
            close(&mut run, &mut runs);
        }
    }
    close(&mut run, &mut runs);
    runs
}

/// The runs that overlap in time no segment outside them (of `all`, the tier's) holding one
/// of their coins; `coins`: each segment's coin ids, sorted (a segment missing from it counts
/// as holding every coin).
fn keep_disjoint(
    mut runs: Vec<Vec<SegmentInfo>>,
    all: &[SegmentInfo],
    coins: &HashMap<i64, Vec<i64>>,
) -> Vec<Vec<SegmentInfo>> {
    // A merged segment never overlaps in time another segment holding one of its coins (one
    // left out of the run at the edge of a window): a transition can then split it at its cut
    // and still hand the rule every coin's rows in time order (see `move_segments`).
    let range = |r: &[SegmentInfo]| {
        (
            r.iter().map(|s| s.min_ts).min().unwrap_or(0),
            r.iter().map(|s| s.max_ts).max().unwrap_or(0),
        )
    };
    let shares_coin = |a: i64, b: i64| match (coins.get(&a), coins.get(&b)) {
        (Some(a), Some(b)) => a.iter().any(|c| b.binary_search(c).is_ok()),
        _ => true,
    };
    runs.retain(|run| {
        let (lo, hi) = range(run);
        !all.iter().any(|s| {
            !run.iter().any(|m| m.id == s.id)
                && s.min_ts <= hi
                && s.max_ts >= lo
                && run.iter().any(|m| shares_coin(m.id, s.id))
        })
    });
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: i64, bucket: u32, min_ts: i64, max_ts: i64, rows: u64) -> SegmentInfo {
        SegmentInfo {
            id,
            bucket,
            window_start: min_ts / 100 * 100,
            min_ts,
            max_ts,
            rows,
            ..SegmentInfo::default()
        }
    }

    /// Every segment (ids 1..=99) holds coin 7.
    fn one_coin() -> HashMap<i64, Vec<i64>> {
        (1..100).map(|id| (id, vec![7])).collect()
    }

    #[test]
    fn a_run_never_overlaps_in_time_another_segment_of_its_coins() {
        // Segment 3 (not small) overlaps the time of 1 and 2; 4 is a later one.
        let segs = vec![
            seg(1, 0, 0, 9, 10),
            seg(2, 0, 10, 19, 10),
            seg(3, 0, 5, 15, 60),
            seg(4, 0, 20, 29, 10),
            seg(5, 0, 30, 39, 10),
        ];
        let runs = |coins: &HashMap<i64, Vec<i64>>| {
            let all = plan_runs(segs.clone(), 100, 1000, CompactMode::Full);
            ids(&keep_disjoint(all, &segs, coins))
        };
        assert_eq!(runs(&one_coin()), [vec![4, 5]]);
        // Other coins in segment 3: it does not matter.
        let mut coins = one_coin();
        coins.insert(3, vec![8]);
        assert_eq!(runs(&coins), [vec![1, 2], vec![4, 5]]);
    }

    fn ids(runs: &[Vec<SegmentInfo>]) -> Vec<Vec<i64>> {
        runs.iter()
            .map(|r| r.iter().map(|s| s.id).collect())
            .collect()
    }

    #[test]
    fn runs_are_consecutive_small_segments_of_one_bucket_within_rows_and_span() {
        let segs = vec![
            seg(1, 0, 0, 9, 10),
            seg(2, 0, 10, 19, 10),
            seg(3, 0, 20, 29, 60), // not small (>= 100 / 2): breaks the run
            seg(4, 0, 30, 39, 10),
            seg(5, 0, 40, 49, 10),
            seg(6, 1, 50, 59, 10), // another bucket
            seg(7, 1, 60, 69, 10),
            seg(8, 1, 70, 79, 10),
        ];
        assert_eq!(
            ids(&plan_runs(segs.clone(), 100, 1000, CompactMode::Full)),
            [vec![1, 2], vec![4, 5], vec![6, 7, 8]]
        );
        // A span of 20 fits two of these segments, not three.
        assert_eq!(
            ids(&plan_runs(segs.clone(), 100, 20, CompactMode::Full)),
            [vec![1, 2], vec![4, 5], vec![6, 7]]
        );
        // Rows: at most 25 per run.
        assert_eq!(
            ids(&plan_runs(segs, 25, 1000, CompactMode::Full)),
            [vec![1, 2], vec![4, 5], vec![6, 7]]
        );
    }

    #[test]
    fn incremental_waits_until_the_small_ones_add_up() {
        // A grown segment of 400 rows and one day of 100: not yet (compact-rows 2000, so a
        // run is cheap up to 125 rows); with 100 rows more, yes.
        let grown = seg(1, 0, 0, 39, 400);
        let day = |id, t| seg(id, 0, t, t + 9, 100);
        let one = vec![grown.clone(), day(2, 40)];
        let runs =
            |segs: &[SegmentInfo], rows, mode| ids(&plan_runs(segs.to_vec(), rows, 1000, mode));
        assert!(runs(&one, 2000, CompactMode::Incremental).is_empty());
        assert_eq!(runs(&one, 2000, CompactMode::Full), [vec![1, 2]]);
        // With compact-rows 100,000 the run is cheap (at most 6,250 rows): merged at once.
        assert_eq!(runs(&one, 100_000, CompactMode::Incremental), [vec![1, 2]]);
        let two = vec![grown, day(2, 40), day(3, 50)];
        assert_eq!(runs(&two, 2000, CompactMode::Incremental), [vec![1, 2, 3]]);
        assert!(runs(&[day(1, 0), day(2, 10)], 0, CompactMode::Full).is_empty());
    }
}
