//! `strata backup` and `strata restore`: a consistent, incremental copy of a whole store in a
//! directory or a bucket, and a working store rebuilt from it.
//!
//! A backup destination holds content-addressed objects and manifests:
//!
//! - `objects/<sha256>`: a segment (its sha256 is the catalog's), a kept codec component, or a
//!   64 KiB chunk of the database snapshot; written once, never overwritten, shared by every
//!   backup at the destination, so a backup copies only what no earlier one holds;
//! - `manifests/<ms>-<n>.json`: one backup: the store's id and schema version, the database
//!   snapshot as its list of chunk hashes, every segment (tier, key, sha256, bytes) and every
//!   component; and `manifests/<ms>-<n>.json.sha256`, the manifest's own sha256.
//!
//! Consistency while `collect` or `tier` runs (the data directory's lock is theirs; a backup
//! does not take it): the database is copied through SQLite's online backup API in one step,
//! which reads one snapshot; the segments are the ones that snapshot's catalog names. A
//! transition that commits after the snapshot may delete one of them before it is copied (it
//! only deletes segments after its own commit): then the backup starts over from a new
//! snapshot (objects already copied stay and are not copied again).
//!
//! Restore reads the newest manifest (or a named one), checks the manifest against its
//! sha256 and every object against its name before it is used, and refuses on the first one
//! that fails, naming it. The restored store holds every segment in its own data directory
//! (whatever bucket it came from), under a new store id, so it never claims the original's
//! buckets.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::bucket::BucketSegmentStore;
use crate::segment;
use crate::segment_store::{FsSegmentStore, SegmentStore};
use crate::store::{COMPONENTS_DIR, DB_FILE};
use crate::tiering::{cores, parallel_map};

/// Bytes of a database snapshot chunk: small enough that an hour of collection changes few of
/// them, large enough that a 1 GB database is 16 K objects.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Backups per destination are told apart by this manifest format.
const FORMAT: u32 = 1;

/// One backup.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// When it was taken, ms UTC.
    pub created_ms: i64,
    /// The backed-up store's id.
    pub store_id: String,
    pub schema_version: i64,
    /// The database snapshot: its length and its chunks' sha256 in order.
    pub db_bytes: u64,
    pub db_chunks: Vec<String>,
    pub segments: Vec<ManifestSegment>,
    /// Kept codec components (`plugins/<sha256>.wasm` in the data directory).
    pub components: Vec<String>,
}

/// A segment in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestSegment {
    pub tier: String,
    /// Where it lived (`""` the data directory) and its key there.
    pub store: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What a backup did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupReport {
    /// The manifest's key at the destination.
    pub manifest: String,
    pub segments: u64,
    pub db_bytes: u64,
    /// Objects and bytes written by this backup (the rest were at the destination already).
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub objects_present: u64,
    /// Times the backup started over because a segment moved while it copied.
    pub restarts: u32,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoreReport {
    pub manifest: String,
    pub segments: u64,
    pub bytes: u64,
}

/// The store behind a backup location: a bucket URL or a directory.
pub fn open_location(
    location: &str,
    settings: &[(String, String)],
) -> Result<Arc<dyn SegmentStore>> {
    if location.starts_with("s3://") {
        Ok(Arc::new(BucketSegmentStore::open_with(location, settings)?))
    } else if location.contains("://") {
        bail!("`{location}`: a backup goes to a directory or an s3:// URL")
    } else {
        std::fs::create_dir_all(location)
            .with_context(|| format!("creating backup directory {location}"))?;
        Ok(Arc::new(FsSegmentStore::new(location)))
    }
}

fn object_key(sha256: &str) -> String {
    format!("objects/{sha256}")
}

/// Backs up the store in `data` to `dest`. `settings` are `AWS_*` overrides for buckets (the
/// store's and the destination's).
pub fn backup(
    data: &Path,
    dest: &dyn SegmentStore,
    settings: &[(String, String)],
) -> Result<BackupReport> {
    let db_path = data.join(DB_FILE);
    if !db_path.is_file() {
        bail!(
            "{} is not a strata data directory (no {DB_FILE})",
            data.display()
        );
    }
    let mut copy = Copier {
        dest,
        present: present_objects(dest)?,
        written: Vec::new(),
        report: BackupReport::default(),
    };
    let mut sources: std::collections::HashMap<String, Arc<dyn SegmentStore>> = Default::default();
    loop {
        // The database, in chunks hashed on every core, a batch at a time, as one snapshot
        // read of it yields them; and the catalog of that same snapshot.
        let mut chunks = Vec::new();
        let mut db_bytes = 0u64;
        let snap = snapshot_db(&db_path, |batch| {
            let pieces: Vec<&[u8]> = batch.chunks(CHUNK_BYTES).collect();
            let sums: Vec<String> = parallel_map(&pieces, cores(), |c| segment::checksum(c));
            let todo: Vec<(String, &[u8])> = sums
                .iter()
                .zip(&pieces)
                .map(|(sum, c)| (object_key(sum), *c))
                .collect();
            copy.put_all(&todo)?;
            chunks.extend(sums);
            db_bytes += batch.len() as u64;
            Ok(())
        })?;
        let SnapshotCatalog {
            store_id,
            schema_version,
            segments,
        } = snap;
        // Kept components.
        let mut components = Vec::new();
        if let Ok(rd) = std::fs::read_dir(data.join(COMPONENTS_DIR)) {
            for e in rd {
                let p = e?.path();
                let Some(sha) = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".wasm"))
                else {
                    continue;
                };
                let bytes =
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                if segment::checksum(&bytes) != sha {
                    bail!("{}: its sha256 does not match its name", p.display());
                }
                copy.put(object_key(sha), &bytes)?;
                components.push(sha.to_string());
            }
        }
        components.sort();
        // Segments not at the destination yet, read from where they live and checked.
        for s in &segments {
            segment::check_relative(&s.path)?;
            if !sources.contains_key(&s.store) {
                let x: Arc<dyn SegmentStore> = if s.store.is_empty() {
                    Arc::new(FsSegmentStore::new(data))
                } else {
                    Arc::new(BucketSegmentStore::open_with(&s.store, settings)?)
                };
                sources.insert(s.store.clone(), x);
            }
        }
        let mut wanted = HashSet::new();
        let missing: Vec<&ManifestSegment> = segments
            .iter()
            .filter(|s| {
                let key = object_key(&s.sha256);
                !copy.present.contains(&key) && wanted.insert(key)
            })
            .collect();
        copy.report.objects_present += (segments.len() - missing.len()) as u64;
        let fetched = parallel_map(&missing, PUT_THREADS, |s| -> Result<Option<Vec<u8>>> {
            let Ok(bytes) = sources[&s.store].get(&s.path) else {
                return Ok(None);
            };
            if segment::checksum(&bytes) != s.sha256 {
                bail!(
                    "segment {} does not match its catalog sha256: run `strata verify`; \
                     not backing up a damaged store",
                    s.path
                );
            }
            let key = object_key(&s.sha256);
            if let Err(e) = copy.dest.put(&key, &bytes)
                && !copy.exists(&key)?
            {
                return Err(e.context(format!(
                    "writing segment {} to {}",
                    s.path,
                    copy.dest.location()
                )));
            }
            Ok(Some(bytes))
        });
        let mut vanished = None;
        for (s, got) in missing.iter().zip(fetched) {
            match got? {
                Some(bytes) => copy.record(object_key(&s.sha256), bytes.len()),
                None => {
                    vanished = Some(anyhow::anyhow!(
                        "segment {} is gone from {}",
                        s.path,
                        if s.store.is_empty() {
                            "the data directory"
                        } else {
                            &s.store
                        }
                    ))
                }
            }
        }
        if let Some(e) = vanished {
            // Moved by a transition that committed after the snapshot, or really missing:
            // a few fresh snapshots tell the two apart.
            copy.report.restarts += 1;
            if copy.report.restarts > 5 {
                return Err(e.context("a segment stayed missing over 5 fresh snapshots"));
            }
            tracing::info!("a segment moved during the backup; starting over: {e:#}");
            continue;
        }
        let manifest = Manifest {
            format: FORMAT,
            created_ms: chrono::Utc::now().timestamp_millis(),
            store_id,
            schema_version,
            db_bytes,
            db_chunks: chunks,
            segments,
            components,
        };
        // Every object durable before the manifest that names them.
        dest.sync(&copy.written.iter().map(String::as_str).collect::<Vec<_>>())?;
        let text = serde_json::to_vec_pretty(&manifest)?;
        let name = manifest_name(dest, manifest.created_ms)?;
        dest.put(&name, &text)?;
        dest.put(
            &format!("{name}.sha256"),
            segment::checksum(&text).as_bytes(),
        )?;
        let sidecar = format!("{name}.sha256");
        dest.sync(&[name.as_str(), sidecar.as_str()])?;
        let mut report = copy.report;
        report.manifest = name;
        report.segments = manifest.segments.len() as u64;
        report.db_bytes = manifest.db_bytes;
        report.bytes_copied += text.len() as u64;
        return Ok(report);
    }
}

/// Writes objects not yet at the destination, counting what it copies.
struct Copier<'a> {
    dest: &'a dyn SegmentStore,
    present: HashSet<String>,
    written: Vec<String>,
    report: BackupReport,
}

impl Copier<'_> {
    fn put(&mut self, key: String, bytes: &[u8]) -> Result<()> {
        self.put_all(&[(key, bytes)])
    }

    /// Writes the objects not at the destination yet (each key once), several at a time.
    fn put_all(&mut self, objects: &[(String, &[u8])]) -> Result<()> {
        let mut wanted = HashSet::new();
        let todo: Vec<&(String, &[u8])> = objects
            .iter()
            .filter(|(k, _)| !self.present.contains(k) && wanted.insert(k.clone()))
            .collect();
        self.report.objects_present += (objects.len() - todo.len()) as u64;
        let dest = self.dest;
        let results = parallel_map(&todo, PUT_THREADS, |(key, bytes)| {
            dest.put(key, bytes)
                .with_context(|| format!("writing {key} to {}", dest.location()))
        });
        for ((key, bytes), r) in todo.iter().zip(results) {
            match r {
                Ok(()) => self.record(key.clone(), bytes.len()),
                // Left by an interrupted backup, or named only by an older manifest: the
                // same name is the same content (restore checks it).
                Err(_) if self.exists(key)? => {
                    self.present.insert(key.clone());
                    self.report.objects_present += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether `key` is at the destination.
    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.dest.list(key)?.iter().any(|l| l.key == key))
    }

    /// Counts an object written.
    fn record(&mut self, key: String, len: usize) {
        self.report.objects_copied += 1;
        self.report.bytes_copied += len as u64;
        self.present.insert(key.clone());
        self.written.push(key);
    }
}

/// Objects put at once: requests to a bucket spend most of their time waiting.
const PUT_THREADS: usize = 8;

/// A manifest key not used yet at `dest`, sorting after every earlier one.
fn manifest_name(dest: &dyn SegmentStore, created_ms: i64) -> Result<String> {
    let taken: HashSet<String> = dest
        .list("manifests/")?
        .into_iter()
        .map(|l| l.key)
        .collect();
    (0..1000)
        .map(|n| format!("manifests/{created_ms:015}-{n:03}.json"))
        .find(|k| !taken.contains(k))
        .context("no free manifest name")
}

/// Copies the database at `db` (live, in WAL mode) to `to` through SQLite's online backup API,
/// in one step: one read transaction, so one consistent snapshot.
/// What a database snapshot's catalog says: the store's id and schema, and its segments.
struct SnapshotCatalog {
    store_id: String,
    schema_version: i64,
    segments: Vec<ManifestSegment>,
}

/// Bytes of the database handed to [`snapshot_db`]'s callback at once (whole chunks).
const SNAPSHOT_BATCH: usize = 256 * CHUNK_BYTES;

/// Reads one consistent snapshot of the database at `db` while other connections keep
/// writing to it: the catalog, then every page in order (through the `sqlite_dbpage` virtual
/// table, which strata's SQLite is built with, see `.cargo/config.toml`), handed to `f` in
/// batches of [`SNAPSHOT_BATCH`] bytes. All of it inside one read transaction, so a commit
/// during the read is not part of it; memory stays at one batch, whatever the database's
/// size, and a page that cannot be read fails the backup.
fn snapshot_db(db: &Path, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<SnapshotCatalog> {
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", db.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(30))?;
    src.execute_batch("BEGIN")?;
    let (store_id, schema_version) = store_identity(&src)?;
    let segments = catalog_segments(&src)?;
    {
        let mut st = src
            .prepare("SELECT data FROM sqlite_dbpage('main') ORDER BY pgno")
            .context("reading database pages (is SQLite built with SQLITE_ENABLE_DBPAGE_VTAB?)")?;
        let mut rows = st.query([])?;
        let mut batch = Vec::with_capacity(SNAPSHOT_BATCH);
        while let Some(r) = rows
            .next()
            .with_context(|| format!("snapshotting {}", db.display()))?
        {
            batch.extend_from_slice(r.get_ref(0)?.as_blob()?);
            if batch.len() >= SNAPSHOT_BATCH {
                f(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            f(&batch)?;
        }
    }
    src.execute_batch("COMMIT")?;
    Ok(SnapshotCatalog {
        store_id,
        schema_version,
        segments,
    })
}

/// The objects at `dest`: those the newest manifest names (each backup writes its objects
/// before its manifest), else, with no readable manifest there, a listing. Listing every
/// object is one request per 1,000 keys — seconds for a large database — where reading the
/// manifest is two; an object that is there but not named is found when its put is refused.
fn present_objects(dest: &dyn SegmentStore) -> Result<HashSet<String>> {
    let newest = dest
        .list("manifests/")?
        .into_iter()
        .map(|l| l.key)
        .filter(|k| k.ends_with(".json"))
        .max();
    if let Some(name) = newest {
        match read_manifest(dest, &name) {
            Ok(m) => {
                return Ok(m
                    .db_chunks
                    .iter()
                    .chain(m.segments.iter().map(|s| &s.sha256))
                    .chain(&m.components)
                    .map(|sha| object_key(sha))
                    .collect());
            }
            Err(e) => tracing::warn!("listing the backup's objects instead: {e:#}"),
        }
    }
    Ok(dest.list("objects/")?.into_iter().map(|l| l.key).collect())
}

fn store_identity(conn: &Connection) -> Result<(String, i64)> {
    let id: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
            r.get(0)
        })
        .context("reading the store id (is this store from an older strata? open it once)")?;
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok((id, v))
}

fn catalog_segments(conn: &Connection) -> Result<Vec<ManifestSegment>> {
    let mut st =
        conn.prepare("SELECT tier, store, path, sha256, bytes FROM segment ORDER BY id")?;
    let v = st
        .query_map([], |r| {
            Ok(ManifestSegment {
                tier: r.get(0)?,
                store: r.get(1)?,
                path: r.get(2)?,
                sha256: r.get(3)?,
                bytes: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The newest manifest at `src`.
pub fn latest_manifest(src: &dyn SegmentStore) -> Result<String> {
    src.list("manifests/")?
        .into_iter()
        .map(|l| l.key)
        .filter(|k| k.ends_with(".json"))
        .max()
        .with_context(|| format!("{} holds no backup (no manifests/*.json)", src.location()))
}

/// Reads and checks manifest `name` at `src`.
pub fn read_manifest(src: &dyn SegmentStore, name: &str) -> Result<Manifest> {
    let text = src.get(name)?;
    let want = src
        .get(&format!("{name}.sha256"))
        .with_context(|| format!("manifest {name} has no checksum"))?;
    let sum = segment::checksum(&text);
    if sum.as_bytes() != want.trim_ascii() {
        bail!(
            "manifest {name} at {} fails its checksum (sha256 {sum}, {name}.sha256 says {}): \
             not restoring from it",
            src.location(),
            String::from_utf8_lossy(&want).trim()
        );
    }
    let m: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("manifest {name} does not parse"))?;
    if m.format != FORMAT {
        bail!(
            "manifest {name} has format {}, this strata reads {FORMAT}",
            m.format
        );
    }
    Ok(m)
}

/// An object of a backup, checked against its name.
fn get_checked(src: &dyn SegmentStore, sha256: &str, what: &str) -> Result<Vec<u8>> {
    let mut v = get_checked_many(src, &[(sha256, what.to_string())])?;
    Ok(v.remove(0))
}

/// Objects of a backup, each checked against its name (`what` names each in errors), all
/// requested at once.
fn get_checked_many(src: &dyn SegmentStore, objects: &[(&str, String)]) -> Result<Vec<Vec<u8>>> {
    for (sha256, what) in objects {
        if !crate::components::is_sha256(sha256) {
            bail!("{what}: `{sha256}` is not a sha256");
        }
    }
    let keys: Vec<String> = objects.iter().map(|(sha, _)| object_key(sha)).collect();
    let got = src.get_many(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    objects
        .iter()
        .zip(keys.iter().zip(got))
        .map(|((sha256, what), (key, bytes))| {
            let bytes = bytes.with_context(|| format!("{what}: reading {key}"))?;
            let sum = segment::checksum(&bytes);
            if sum != *sha256 {
                bail!(
                    "{what}: object {key} at {} fails its checksum (its sha256 is {sum}): the \
                     backup is damaged; not restoring",
                    src.location()
                );
            }
            Ok(bytes)
        })
        .collect()
}

/// Objects restore requests at once.
const RESTORE_BATCH: usize = 32;

/// Rebuilds a store in `data` (which must not hold one) from manifest `name` (or the newest)
/// at `src`. Every segment lands in the data directory.
pub fn restore(src: &dyn SegmentStore, name: Option<&str>, data: &Path) -> Result<RestoreReport> {
    if data.join(DB_FILE).exists() {
        bail!(
            "{} already holds a store; restore into a new directory",
            data.display()
        );
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => latest_manifest(src)?,
    };
    let m = read_manifest(src, &name)?;
    // Check everything before writing anything a store could be opened from: the database
    // goes to its place last.
    let mut db = Vec::with_capacity(m.db_bytes as usize);
    let chunks: Vec<(&str, String)> = m
        .db_chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), format!("database chunk {i}")))
        .collect();
    for batch in chunks.chunks(RESTORE_BATCH) {
        for c in get_checked_many(src, batch)? {
            db.extend_from_slice(&c);
        }
    }
    if db.len() as u64 != m.db_bytes {
        bail!(
            "the database chunks of {name} add up to {} bytes, the manifest says {}",
            db.len(),
            m.db_bytes
        );
    }
    std::fs::create_dir_all(data.join(COMPONENTS_DIR))
        .with_context(|| format!("creating {}", data.display()))?;
    for sha in &m.components {
        let bytes = get_checked(src, sha, &format!("component {sha}"))?;
        segment::write_renamed(
            &data.join(COMPONENTS_DIR).join(format!("{sha}.wasm")),
            &bytes,
        )?;
    }
    segment::sync_dir(&data.join(COMPONENTS_DIR))?;
    let local = FsSegmentStore::new(data);
    let mut report = RestoreReport {
        manifest: name.clone(),
        ..RestoreReport::default()
    };
    let mut keys = Vec::new();
    for batch in m.segments.chunks(RESTORE_BATCH) {
        let wanted: Vec<(&str, String)> = batch
            .iter()
            .map(|s| (s.sha256.as_str(), format!("segment {}", s.path)))
            .collect();
        for (s, bytes) in batch.iter().zip(get_checked_many(src, &wanted)?) {
            segment::check_relative(&s.path)?;
            // A restore that stopped (a damaged object) and is run again finds its own copies.
            let there = local.get(&s.path).ok();
            if there.is_none_or(|b| segment::checksum(&b) != s.sha256) {
                local.put(&s.path, &bytes)?;
            }
            report.segments += 1;
            report.bytes += bytes.len() as u64;
            keys.push(s.path.as_str());
        }
    }
    local.sync(&keys)?;
    let tmp = data.join(format!("{DB_FILE}.restore.tmp"));
    std::fs::write(&tmp, &db)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    {
        let conn = Connection::open(&tmp)?;
        // Every segment is local now; a new id, so the copy never claims the original's buckets.
        conn.execute_batch(
            "BEGIN;
             UPDATE segment SET store = '';
             DELETE FROM bucket;
             UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'store_id';
             COMMIT;",
        )?;
    }
    std::fs::rename(&tmp, data.join(DB_FILE)).context("moving the restored database in place")?;
    segment::sync_dir(data)?;
    report.bytes += db.len() as u64;
    Ok(report)
}
