//! The segment-store seam: where the bytes of a tier's segments live.
//!
//! Every segment byte the engine writes or reads — a transition's new segments, the read path
//! of queries and transitions, `verify`, startup recovery of orphans, the clean-up of moved
//! segments — goes through a [`SegmentStore`]. The catalog in `strata.db` stays the single
//! source of truth of which segments exist; a segment store only holds bytes under keys.
//!
//! The contract is shaped after object storage (the `object_store` crate's `ObjectStore` with
//! `PutMode::Create`), where a put can fail halfway, a list is slow and there is no rename:
//!
//! - **keys** are relative, `/`-separated (`segments/<tier>/<window>-<bucket>-<seq>.<ext>`,
//!   checked by [`segment::check_relative`](crate::segment::check_relative) before any call);
//!   a key is never reused for other bytes;
//! - [`put`](SegmentStore::put) creates a key and never overwrites one: after a crash the key
//!   holds the whole object or nothing (an unfinished put may leave something [`list`]
//!   returns under another name, which startup recovery removes);
//! - [`sync`](SegmentStore::sync) makes the given puts durable; the engine calls it once per
//!   batch of puts, before the catalog transaction that names them commits;
//! - [`delete`](SegmentStore::delete) of a missing key succeeds (a clean-up re-run after a
//!   crash deletes what is already gone);
//! - [`list`](SegmentStore::list) returns every key under a prefix, unfinished puts included.
//!
//! The engine's order on top of it: put every new segment, read it back through the codec,
//! `sync`, commit the catalog, and only then delete the source rows or segments. So a crash or
//! an error at any step loses nothing: before the commit the old copy is still the one the
//! catalog names, after it the new one is durable.
//!
//! Implementations: [`FsSegmentStore`] (the data directory; what `strata` uses),
//! [`DirectSegmentStore`] (the same directory written in place, without rename, as an object
//! store would; the crash tests' second implementation) and [`MemSegmentStore`] (in memory,
//! with faults on chosen calls; for tests).
//!
//! [`list`]: SegmentStore::list

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

/// A key [`SegmentStore::list`] found, and its size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// Where segment bytes live. See the [module docs](self) for the contract.
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// Where the store is, for messages (a directory, a URL).
    fn location(&self) -> String;

    /// Stores `bytes` under `key`, which must not exist yet.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Makes the puts of `keys` durable.
    fn sync(&self, keys: &[&str]) -> Result<()>;

    /// The whole object under `key`.
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// The whole object under `key`, read from where it is kept even if a copy is cached
    /// (`verify`, and a read whose cached copy failed its checksum).
    fn get_fresh(&self, key: &str) -> Result<Vec<u8>> {
        self.get(key)
    }

    /// The whole objects under `keys`, in order, each its own result. A store with a
    /// round trip per request (a bucket) has them all in flight at once; the default reads
    /// one after the other.
    fn get_many(&self, keys: &[&str]) -> Vec<Result<Vec<u8>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Bytes `range` of the object under `key`.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>>;

    /// Every key under `prefix` (a `/`-terminated folder, or empty for all), unfinished puts
    /// included, in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>>;

    /// Removes `key`; a key that is not there is not an error.
    fn delete(&self, key: &str) -> Result<()>;
}

/// Refuses keys that could leave the store's root: absolute, empty parts, `.` or `..`.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        bail!("`{key}` is not a segment-store key");
    }
    Ok(())
}

/// Segments as files under a directory (the data directory): a put writes `KEY.tmp`, fsyncs
/// it and renames it to `KEY` without replacing (`renameat2(RENAME_NOREPLACE)`, or a hard link
/// and unlink where that is missing; either fails if `KEY` exists, so nothing is overwritten); [`sync`](SegmentStore::sync) fsyncs the directories of the keys, which
/// makes the new names durable. What this assumes of the filesystem is in `docs/design.md`.
#[derive(Debug)]
pub struct FsSegmentStore {
    root: PathBuf,
}

impl FsSegmentStore {
    pub fn new(root: impl Into<PathBuf>) -> FsSegmentStore {
        FsSegmentStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

impl SegmentStore for FsSegmentStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let tmp = crate::segment::write_synced_tmp(&path, bytes)?;
        rename_noreplace(&tmp, &path)
            .with_context(|| format!("creating {} from {}", path.display(), tmp.display()))
    }

    fn sync(&self, keys: &[&str]) -> Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for k in keys {
            let p = self.path(k)?;
            let d = p.parent().context("segment key has no directory")?;
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
        for d in &dirs {
            File::open(d)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing directory {}", d.display()))?;
        }
        for _ in keys {
            crate::crash::point("segment-renamed").context("syncing the tier directory")?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = File::open(&p)?;
            f.seek(SeekFrom::Start(range.start))?;
            let mut out = Vec::new();
            f.take(range.end.saturating_sub(range.start))
                .read_to_end(&mut out)?;
            Ok(out)
        };
        let out = read().with_context(|| format!("reading {}", p.display()))?;
        if out.len() as u64 != range.end.saturating_sub(range.start) {
            bail!("{}: range {range:?} is past the end", p.display());
        }
        Ok(out)
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.path(prefix.trim_end_matches('/'))?
        };
        let mut out = Vec::new();
        if !start.exists() {
            return Ok(out);
        }
        if start.is_file() {
            // A whole key as the prefix: that key alone, as a bucket lists it.
            out.push(Listed {
                key: key_of(start.strip_prefix(&self.root).unwrap_or(&start)),
                size: start.metadata()?.len(),
            });
            return Ok(out);
        }
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(&self.root).unwrap_or(&p);
                let key = key_of(rel);
                out.push(Listed {
                    key,
                    size: e.metadata()?.len(),
                });
            }
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
}

/// Segments as files written in place under their final names, the way an object store takes
/// a put: no temporary name and no rename, so the engine's crash safety rests on its protocol
/// alone. A put creates the file exclusively (an existing key fails), writes and fsyncs it; a
/// crash or an error part way leaves a partial file under a key no catalog row names (an error
/// removes it at once, a crash leaves it to startup recovery, which removes every key the
/// catalog does not reference). Same layout as [`FsSegmentStore`], which serves its reads.
///
/// strata uses it when `STRATA_SEGMENT_STORE=direct` (see [`from_env`]); the crash tests run
/// against it as the second implementation of this seam, with the same crash points.
#[derive(Debug)]
pub struct DirectSegmentStore {
    fs: FsSegmentStore,
}

impl DirectSegmentStore {
    pub fn new(root: impl Into<PathBuf>) -> DirectSegmentStore {
        DirectSegmentStore {
            fs: FsSegmentStore::new(root),
        }
    }
}

impl SegmentStore for DirectSegmentStore {
    fn location(&self) -> String {
        self.fs.location()
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.fs.path(key)?;
        let dir = path.parent().context("segment key has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let written = crate::segment::write_and_sync(&mut f, &path, bytes);
        if written.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        written
    }

    fn sync(&self, keys: &[&str]) -> Result<()> {
        self.fs.sync(keys)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.fs.get(key)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.fs.get_range(key, range)
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.fs.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.fs.delete(key)
    }
}

/// The segment store `STRATA_SEGMENT_STORE` asks for over the data directory `root`: unset or
/// `fs` is the default ([`FsSegmentStore`], `None` here), `direct` is [`DirectSegmentStore`].
pub fn from_env(root: &Path) -> Result<Option<std::sync::Arc<dyn SegmentStore>>> {
    match std::env::var("STRATA_SEGMENT_STORE").as_deref() {
        Err(_) | Ok("") | Ok("fs") => Ok(None),
        Ok("direct") => Ok(Some(std::sync::Arc::new(DirectSegmentStore::new(root)))),
        Ok(other) => bail!("STRATA_SEGMENT_STORE=`{other}`: expected `fs` or `direct`"),
    }
}

/// Renames `from` to `to` unless `to` exists (then an error; never an overwrite). On Linux
/// with glibc, one `renameat2(RENAME_NOREPLACE)`; elsewhere, or on a filesystem that lacks it,
/// a hard link (which also fails if the name exists) and the removal of `from`.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call; AT_FDCWD makes
        // them relative to the working directory, like std::fs::rename.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            let _ = std::fs::remove_file(from);
            return Err(e);
        }
    }
    let linked = std::fs::hard_link(from, to);
    let _ = std::fs::remove_file(from);
    linked
}

/// A relative path as a key: its parts joined with `/`.
pub(crate) fn key_of(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A call of [`MemSegmentStore`] that can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Sync,
    Get,
    List,
    Delete,
}

/// Segments in memory, for tests: the second implementation of the seam, which the engine's
/// model test also runs against. [`fail`](MemSegmentStore::fail) makes a chosen call fail
/// (as a full disk or an unreachable server would), and [`lose_unsynced`] drops every put not
/// yet synced, as a power cut would.
///
/// [`lose_unsynced`]: MemSegmentStore::lose_unsynced
#[derive(Debug, Default)]
pub struct MemSegmentStore {
    inner: Mutex<Mem>,
}

#[derive(Debug, Default)]
struct Mem {
    objects: BTreeMap<String, Vec<u8>>,
    unsynced: Vec<String>,
    calls: Vec<(Op, u64)>,
    faults: Vec<(Op, u64)>,
}

impl MemSegmentStore {
    pub fn new() -> MemSegmentStore {
        MemSegmentStore::default()
    }

    /// Makes the `n`-th call (1-based, counted from now) of `op` fail.
    pub fn fail(&self, op: Op, n: u64) {
        let mut m = self.inner.lock().unwrap();
        let done = m.count(op);
        m.faults.push((op, done + n));
    }

    /// Drops every put that was not synced.
    pub fn lose_unsynced(&self) {
        let mut m = self.inner.lock().unwrap();
        for k in std::mem::take(&mut m.unsynced) {
            m.objects.remove(&k);
        }
    }

    /// Replaces the bytes under `key` behind the engine's back (a damaged segment).
    pub fn tamper(&self, key: &str, bytes: Vec<u8>) {
        self.inner
            .lock()
            .unwrap()
            .objects
            .insert(key.to_string(), bytes);
    }

    /// Every key and its bytes.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.inner.lock().unwrap().objects.clone()
    }

    /// Counts a call of `op` on `key` (checked unless the call takes none: list and sync) and
    /// fails it if a fault was asked for.
    fn call(&self, op: Op, key: &str) -> Result<std::sync::MutexGuard<'_, Mem>> {
        if !matches!(op, Op::List | Op::Sync) {
            check_key(key)?;
        }
        let mut m = self.inner.lock().unwrap();
        let n = m.count(op) + 1;
        match m.calls.iter_mut().find(|(o, _)| *o == op) {
            Some(c) => c.1 = n,
            None => m.calls.push((op, n)),
        }
        if m.faults.contains(&(op, n)) {
            bail!("injected fault: {op:?} call {n} ({key}) failed");
        }
        Ok(m)
    }
}

impl Mem {
    fn count(&self, op: Op) -> u64 {
        self.calls
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, n)| *n)
    }
}

impl SegmentStore for MemSegmentStore {
    fn location(&self) -> String {
        "memory".into()
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let mut m = self.call(Op::Put, key)?;
        if m.objects.contains_key(key) {
            bail!("segment {key} exists already");
        }
        m.objects.insert(key.to_string(), bytes.to_vec());
        m.unsynced.push(key.to_string());
        Ok(())
    }

    fn sync(&self, keys: &[&str]) -> Result<()> {
        for k in keys {
            check_key(k)?;
        }
        let mut m = self.call(Op::Sync, "")?;
        m.unsynced.retain(|k| !keys.contains(&k.as_str()));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let m = self.call(Op::Get, key)?;
        m.objects
            .get(key)
            .cloned()
            .with_context(|| format!("segment {key} is not in the store"))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let all = self.get(key)?;
        let (a, b) = (range.start as usize, range.end as usize);
        if a > b || b > all.len() {
            bail!(
                "{key}: range {range:?} is past the end ({} bytes)",
                all.len()
            );
        }
        Ok(all[a..b].to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let m = self.call(Op::List, "")?;
        Ok(m.objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Listed {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let mut m = self.call(Op::Delete, key)?;
        m.objects.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract, checked on both implementations.
    fn contract(s: &dyn SegmentStore) {
        let k = "segments/warm/0-000-0.bin";
        s.put(k, b"hello world").unwrap();
        assert!(s.put(k, b"other").is_err(), "a put never overwrites");
        s.sync(&[k]).unwrap();
        assert_eq!(s.get(k).unwrap(), b"hello world");
        assert_eq!(s.get_range(k, 6..11).unwrap(), b"world");
        assert!(s.get_range(k, 6..12).is_err());
        s.put("segments/cold/1-001-0.bin", b"x").unwrap();
        let mut keys: Vec<String> = s
            .list("segments/")
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        keys.sort();
        assert_eq!(keys, ["segments/cold/1-001-0.bin", k]);
        assert_eq!(
            s.list("segments/warm/").unwrap(),
            [Listed {
                key: k.into(),
                size: 11
            }]
        );
        assert!(s.list("segments/none/").unwrap().is_empty());
        s.delete(k).unwrap();
        s.delete(k).unwrap();
        assert!(s.get(k).is_err());
        for bad in ["/etc/passwd", "segments/../strata.db", "a//b", ""] {
            assert!(s.put(bad, b"x").is_err(), "{bad:?}");
            assert!(s.get(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_filesystem_store_keeps_the_contract() {
        let d = tempfile::tempdir().unwrap();
        contract(&FsSegmentStore::new(d.path()));
        // No temporary file is left by a put.
        let names: Vec<_> = std::fs::read_dir(d.path().join("segments/cold"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["1-001-0.bin"]);
    }

    #[test]
    fn the_direct_store_keeps_the_contract() {
        let d = tempfile::tempdir().unwrap();
        contract(&DirectSegmentStore::new(d.path()));
    }

    #[test]
    fn the_memory_store_keeps_the_contract_and_fails_on_request() {
        contract(&MemSegmentStore::new());
        let s = MemSegmentStore::new();
        s.fail(Op::Put, 2);
        s.put("a/1", b"1").unwrap();
        assert!(
            s.put("a/2", b"2")
                .unwrap_err()
                .to_string()
                .contains("injected")
        );
        s.put("a/3", b"3").unwrap();
        s.sync(&["a/1"]).unwrap();
        s.lose_unsynced();
        assert_eq!(s.objects().keys().collect::<Vec<_>>(), ["a/1"]);
    }
}
