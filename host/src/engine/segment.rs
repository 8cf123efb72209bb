//! Segment files: naming, coin buckets and the crash-safe write (temporary name, fsync, rename,
//! fsync of the directory).
//!
//! A segment is the bytes a tier codec returned for one (time window × coin bucket) piece of a
//! tier, stored at `segments/<tier>/<window-start-ms>-<bucket>-<seq>.<ext>`. It is immutable:
//! adding rows to a window that already has segments writes a new one with the next `seq`. What
//! the engine knows about a segment lives in the catalog ([`catalog`](crate::catalog)), not in
//! the file, so any codec's format works.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The bucket of coin `id` among `buckets`: FNV-1a (64-bit) of the id's UTF-8 bytes, mod
/// `buckets`. Stable across versions and platforms (it names files).
pub fn coin_bucket(id: &str, buckets: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(buckets.max(1))) as u32
}

/// The start of the window of length `window` (ms) holding `ts`, aligned to the Unix epoch.
pub fn window_start(ts: i64, window: i64) -> i64 {
    ts.div_euclid(window) * window
}

/// The relative path of a segment (with `/`). Checked (see [`check_relative`]): the tier name
/// comes from a policy file and the extension from a plugin, so neither may steer the path.
pub fn relative_path(
    tier: &str,
    window_start: i64,
    bucket: u32,
    seq: u32,
    ext: &str,
) -> Result<String> {
    let rel = format!("segments/{tier}/{window_start}-{bucket:03}-{seq}.{ext}");
    check_relative(&rel)?;
    Ok(rel)
}

/// Checks that `rel` has the shape of a segment path, `segments/<tier>/<window>-<bucket>-<seq>.<ext>`
/// with a tier of `a-z 0-9 - _`, decimal numbers and an extension of `a-z 0-9 . - _` without
/// `..`: so it names a file directly inside a tier's directory under `segments/`, and can
/// neither climb out of the data directory nor be absolute nor name a temporary file. Every
/// path the engine reads, writes or deletes from the catalog is checked with this first.
pub fn check_relative(rel: &str) -> Result<()> {
    let bad = || {
        anyhow::anyhow!(
            "refusing segment path {rel:?}: not of the form segments/<tier>/<window>-<bucket>-<seq>.<ext>"
        )
    };
    let mut parts = rel.split('/');
    let (Some("segments"), Some(tier), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let tier_ok = !tier.is_empty()
        && tier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let (stem, ext) = file.split_once('.').ok_or_else(bad)?;
    let stem = stem.strip_prefix('-').unwrap_or(stem);
    let nums: Vec<&str> = stem.split('-').collect();
    let stem_ok = nums.len() == 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()));
    let ext_ok = !ext.is_empty()
        && !ext.contains("..")
        && !ext.ends_with('.')
        && !ext.ends_with(".tmp")
        && ext != "tmp"
        && ext.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_'
        });
    if tier_ok && stem_ok && ext_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The file of segment `rel` in the data directory `dir`, after [`check_relative`].
pub fn resolve(dir: &Path, rel: &str) -> Result<PathBuf> {
    check_relative(rel)?;
    Ok(dir.join(rel))
}

/// sha256 of `bytes`, lowercase hex (the segment checksum).
pub fn checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` so that after a crash either the whole file is there under its name
/// or nothing is (a leftover `*.tmp` is removed at startup): `path.tmp` is written, fsynced and
/// renamed to `path`. The rename is durable only once the directory is fsynced ([`sync_dir`]):
/// a caller writing many files into one directory syncs it once, after the last, before it
/// relies on any of them (commits them to the catalog).
pub fn write_renamed(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_synced_tmp(path, bytes)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Writes `bytes` to `path.tmp` (creating `path`'s directory) and fsyncs it, with the crash
/// points `segment-written` and `segment-synced`; returns `path.tmp`. The caller gives it its
/// name: [`write_renamed`] by rename, the filesystem segment store by a hard link.
pub(crate) fn write_synced_tmp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = path.parent().context("segment path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    write_and_sync(&mut f, &tmp, bytes)?;
    Ok(tmp)
}

/// Writes `bytes` to the open file `f` (at `path`, for messages) and fsyncs it, with the crash
/// points `segment-written` and `segment-synced` after each step.
pub(crate) fn write_and_sync(f: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::crash::point("segment-written")
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    crate::crash::point("segment-synced").with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// fsync of a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        // Fixed values: a change here renames every segment of an existing store.
        assert_eq!(coin_bucket("bitcoin", 16), coin_bucket("bitcoin", 16));
        assert_eq!(coin_bucket("", 16), (0xcbf2_9ce4_8422_2325u64 % 16) as u32);
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[coin_bucket(&format!("coin-{i}"), 16) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn windows_align_to_epoch() {
        let day = 86_400_000;
        assert_eq!(window_start(day * 30 + 5, day * 30), day * 30);
        assert_eq!(window_start(-1, day), -day);
    }

    #[test]
    fn segment_paths_cannot_leave_their_tier_directory() {
        assert_eq!(
            relative_path("warm", -86_400_000, 3, 7, "jsonl.gz").unwrap(),
            "segments/warm/-86400000-003-7.jsonl.gz"
        );
        for ext in [
            "../../x", "a/b", "", ".", "x..y", "tmp", "gz.tmp", "a\\b", "ü", "x.",
        ] {
            assert!(relative_path("warm", 0, 0, 0, ext).is_err(), "{ext:?}");
        }
        for tier in ["..", "", "a/b", "Warm"] {
            assert!(relative_path(tier, 0, 0, 0, "bin").is_err(), "{tier:?}");
        }
        for rel in [
            "/etc/passwd",
            "segments/warm/../../strata.db",
            "segments/warm/0-000-0.bin/x",
            "segments/../strata.db",
            "strata.db",
            "segments/warm/a-000-0.bin",
            "segments/warm/0-000-0.bin.tmp",
        ] {
            assert!(check_relative(rel).is_err(), "{rel:?}");
            assert!(resolve(Path::new("/data"), rel).is_err(), "{rel:?}");
        }
        assert!(check_relative("segments/cold-2/1704067200000-012-3.parquet").is_ok());
    }

    #[test]
    fn atomic_write_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("segments/warm/0-000-0.bin");
        write_renamed(&p, b"hello").unwrap();
        sync_dir(p.parent().unwrap()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
