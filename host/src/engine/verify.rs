//! `strata stats` and `strata verify`: what each tier holds, and whether the store is intact.
//!
//! Stats come from the catalog and the hot tables (cheap). Verify reads everything: SQLite's
//! integrity check, then for every catalog row the file's presence, size and sha256, a full
//! decode through the codec that wrote it, and the decoded rows against the catalog (count, time
//! range, coin list); plus any segment file the catalog does not name.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::Result;

use crate::segment;
use crate::store::Store;

/// What one tier holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierStats {
    pub tier: String,
    pub rows: u64,
    pub segments: u64,
    /// Bytes on disk: segment files, or for the hot tier its share of the SQLite pages.
    pub bytes: u64,
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// Codec names (`sqlite` for the hot tier).
    pub codecs: Vec<String>,
    /// Bucket URLs holding some of its segments (none: all in the data directory).
    pub buckets: Vec<String>,
}

impl TierStats {
    pub fn bytes_per_record(&self) -> Option<f64> {
        (self.rows > 0).then(|| self.bytes as f64 / self.rows as f64)
    }
}

/// `stats` as an aligned table, one line per tier (times in UTC).
pub fn stats_table(stats: &[TierStats]) -> String {
    use std::fmt::Write as _;
    let time = |t: Option<i64>| {
        t.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let mut out = format!(
        "{:<10} {:>12} {:>9} {:>14} {:>7} {:<16} {:<16} CODEC\n",
        "TIER", "ROWS", "SEGMENTS", "BYTES", "B/REC", "OLDEST", "NEWEST"
    );
    for t in stats {
        let _ = writeln!(
            out,
            "{:<10} {:>12} {:>9} {:>14} {:>7} {:<16} {:<16} {}",
            t.tier,
            t.rows,
            t.segments,
            t.bytes,
            t.bytes_per_record()
                .map(|b| format!("{b:.1}"))
                .unwrap_or_default(),
            time(t.oldest),
            time(t.newest),
            t.codecs.join(",")
        );
        if !t.buckets.is_empty() {
            out.pop();
            let _ = writeln!(out, " in {}", t.buckets.join(", "));
        }
    }
    out
}

/// What the data directory holds on disk, beside the catalog's logical bytes ([`TierStats`]).
/// Free pages are given back after every transition (`Store::reclaim_free_pages`), so the
/// database file is the hot tier's share of it, and this matches `stats` but for the codec
/// components the store keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// The SQLite database file.
    pub db_file: u64,
    /// Its write-ahead log.
    pub wal_file: u64,
    /// Bytes of the database file on SQLite's free list (held, reused, not returned).
    pub free_pages: u64,
    /// Everything under `segments/` in the segment store, as listed there.
    pub segment_files: u64,
    /// The codec components the store keeps so it can always read its segments (`plugins/`).
    pub components: u64,
}

impl DiskUsage {
    pub fn total(&self) -> u64 {
        self.db_file + self.wal_file + self.segment_files + self.components
    }

    /// One line for `strata stats`.
    pub fn line(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        format!(
            "disk: {:.1} MB in all = database {:.1} MB (of it {:.1} MB free pages) + WAL {:.1} MB + segment files {:.1} MB + kept codecs {:.1} MB",
            mb(self.total()),
            mb(self.db_file),
            mb(self.free_pages),
            mb(self.wal_file),
            mb(self.segment_files),
            mb(self.components)
        )
    }
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The file or table concerned.
    pub what: String,
    pub problem: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.problem)
    }
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub segments: u64,
    pub rows: u64,
    pub faults: Vec<Fault>,
}

impl Store {
    /// Per tier: rows, segments, bytes, time range, codecs. The hot tier comes first.
    pub fn stats(&self) -> Result<Vec<TierStats>> {
        let (rows_oldest, rows_newest): (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT min(a), max(b) FROM (SELECT min(ts) a, max(ts) b FROM hot
             UNION ALL SELECT min(ts), max(ts) FROM hot_recent)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (sealed_oldest, sealed_newest) = self.sealed_span()?;
        let oldest = rows_oldest.into_iter().chain(sealed_oldest).min();
        let newest = rows_newest.into_iter().chain(sealed_newest).max();
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        // Pages in use: freed pages (rows that moved to colder tiers) are reused, not counted.
        let pages: i64 = self.conn.query_row(
            "SELECT page_count - freelist_count FROM pragma_page_count, pragma_freelist_count",
            [],
            |r| r.get(0),
        )?;
        let mut out = vec![TierStats {
            tier: "hot".into(),
            rows: self.hot_rows()?,
            segments: 0,
            bytes: (page_size * pages) as u64,
            oldest,
            newest,
            codecs: vec!["sqlite".into()],
            buckets: Vec::new(),
        }];
        let mut by_tier: BTreeMap<String, TierStats> = BTreeMap::new();
        for s in self.segments()? {
            let t = by_tier.entry(s.tier.clone()).or_insert_with(|| TierStats {
                tier: s.tier.clone(),
                ..TierStats::default()
            });
            t.rows += s.rows;
            t.segments += 1;
            t.bytes += s.bytes;
            t.oldest = Some(t.oldest.map_or(s.min_ts, |o| o.min(s.min_ts)));
            t.newest = Some(t.newest.map_or(s.max_ts, |o| o.max(s.max_ts)));
            if !t.codecs.contains(&s.codec) {
                t.codecs.push(s.codec.clone());
            }
            if !s.store.is_empty() && !t.buckets.contains(&s.store) {
                t.buckets.push(s.store.clone());
            }
        }
        // Colder tiers hold older data: order by newest row, newest first.
        let mut rest: Vec<TierStats> = by_tier.into_values().collect();
        rest.sort_by_key(|t| std::cmp::Reverse(t.newest));
        out.extend(rest);
        Ok(out)
    }

    /// What the data directory really holds: database file, WAL, free pages, segment files.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let len = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let db = self.db_path();
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        let free_pages: i64 = self.conn.query_row(
            "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size",
            [],
            |r| r.get(0),
        )?;
        Ok(DiskUsage {
            db_file: len(db),
            wal_file: len(wal.into()),
            free_pages: free_pages as u64,
            segment_files: self
                .segments
                .list("segments/")?
                .iter()
                .map(|l| l.size)
                .sum(),
            components: std::fs::read_dir(self.dir().join(crate::store::COMPONENTS_DIR))
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .filter(|m| m.is_file())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0),
        })
    }

    /// Checks everything; `faults` is empty on a sound store.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut faults = Vec::new();
        let mut fault = |what: &str, problem: String| {
            faults.push(Fault {
                what: what.to_string(),
                problem,
            })
        };
        let integrity: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if integrity != "ok" {
            fault("strata.db", format!("SQLite integrity check: {integrity}"));
        }
        self.verify_blocks(&mut fault)?;
        let segs = self.segments()?;
        let mut known = HashSet::new();
        let mut seg_rows = 0;
        for s in &segs {
            known.insert((s.store.clone(), s.path.clone()));
            let name = s.display_name();
            if let Err(e) = segment::check_relative(&s.path) {
                fault(&name, format!("{e:#}"));
                continue;
            }
            let bytes = match self.store_at(&s.store).and_then(|st| st.get_fresh(&s.path)) {
                Ok(b) => b,
                Err(e) => {
                    fault(&name, format!("cannot read: {e:#}"));
                    continue;
                }
            };
            if bytes.len() as u64 != s.bytes {
                fault(
                    &name,
                    format!("{} bytes, the catalog says {}", bytes.len(), s.bytes),
                );
            }
            let sum = segment::checksum(&bytes);
            if sum != s.sha256 {
                fault(
                    &name,
                    format!("sha256 {sum}, the catalog says {}", s.sha256),
                );
                continue;
            }
            let codec = match self.codec_for(s) {
                Ok(c) => c,
                Err(e) => {
                    fault(&name, format!("{e:#}"));
                    continue;
                }
            };
            let raw = crate::plugin::raw_bytes(s.rows as usize, s.coins as usize, 8);
            let b = match codec.decode_expecting(&bytes, None, Some(raw)) {
                Ok(b) => b,
                Err(e) => {
                    fault(&name, format!("does not decode: {e}"));
                    continue;
                }
            };
            seg_rows += b.len() as u64;
            if b.len() as u64 != s.rows {
                fault(
                    &name,
                    format!("{} rows, the catalog says {}", b.len(), s.rows),
                );
            }
            let (lo, hi) = (b.ts.iter().min(), b.ts.iter().max());
            if (lo, hi) != (Some(&s.min_ts), Some(&s.max_ts)) {
                fault(
                    &name,
                    format!(
                        "rows span {lo:?}..{hi:?}, the catalog says {}..{}",
                        s.min_ts, s.max_ts
                    ),
                );
            }
            let used: BTreeSet<u32> = b.coin_index.iter().copied().collect();
            let coins: BTreeSet<i64> = used
                .iter()
                .filter_map(|&c| self.coin_id(&b.coins[c as usize]))
                .collect();
            let listed: BTreeSet<i64> = {
                let mut st = self
                    .conn
                    .prepare_cached("SELECT coin FROM segment_coin WHERE segment = ?1")?;
                st.query_map([s.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            if coins.len() != used.len() || coins != listed {
                fault(
                    &name,
                    format!(
                        "holds {} coins, the catalog lists {} (or a coin is not in the coin table)",
                        used.len(),
                        listed.len()
                    ),
                );
            }
        }
        // Files the catalog does not name (startup recovery removes them; a new one means
        // something else writes here).
        let mut locations = vec![String::new()];
        locations.extend(self.buckets()?);
        for loc in locations {
            let listed = match self.store_at(&loc).and_then(|st| st.list("segments/")) {
                Ok(l) => l,
                Err(e) => {
                    fault(&loc, format!("cannot list: {e:#}"));
                    continue;
                }
            };
            for l in listed {
                if !known.contains(&(loc.clone(), l.key.clone())) {
                    let what = if loc.is_empty() {
                        l.key
                    } else {
                        format!("{loc}/{}", l.key)
                    };
                    fault(&what, "segment not in the catalog".into());
                }
            }
        }
        Ok(VerifyReport {
            segments: segs.len() as u64,
            rows: seg_rows + self.hot_rows()?,
            faults,
        })
    }
}
