//! Where each segment lives: the data directory (location `""`) or a bucket (`s3://…`, see
//! [`bucket`](crate::bucket)). The catalog records a segment's location beside its key
//! (`segment.store`); reads and deletes go to that location, writes to the location the
//! destination tier names in its policy. A policy may move a tier to a bucket at any time: old
//! segments stay where they were written and are read there, new ones go to the bucket.
//!
//! Before the first segment is put into a bucket, the bucket is recorded in the `bucket` table
//! (committed), so recovery knows to look there even if strata dies mid-put; and the bucket
//! prefix is claimed for this data directory by a `strata-store-id` object (see
//! [`Store::claim_bucket`]).

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::bucket::BucketSegmentStore;
use crate::segment_store::SegmentStore;
use crate::store::Store;

/// The object that claims a bucket prefix for one data directory: its store id.
pub const STORE_ID_KEY: &str = "strata-store-id";

impl Store {
    /// The segment store at `location`: the data directory's for `""`, else the bucket's
    /// (connected once per store and location).
    pub(crate) fn store_at(&self, location: &str) -> Result<Arc<dyn SegmentStore>> {
        if location.is_empty() {
            return Ok(self.segments.clone());
        }
        if let Some(s) = self.buckets.borrow().get(location) {
            return Ok(s.clone());
        }
        let cache = self
            .dir
            .join("cache")
            .join(&crate::segment::checksum(location.as_bytes())[..16]);
        let s: Arc<dyn SegmentStore> = Arc::new(
            BucketSegmentStore::open_with(location, &self.options.bucket_settings)?
                .with_read_cache(cache, self.options.bucket_cache_bytes)?,
        );
        self.buckets
            .borrow_mut()
            .insert(location.to_string(), s.clone());
        Ok(s)
    }

    /// This data directory's id (random, made when the store was created).
    pub fn store_id(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })?)
    }

    /// A value of the `meta` table.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value of the `meta` table (its own transaction).
    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Every bucket this store has written segments to (or begun to).
    pub fn buckets(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT url FROM bucket ORDER BY url")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(v)
    }

    /// Makes `location` ready to take this store's segments: records it (so recovery looks
    /// there), claims its prefix for this store, and removes what an interrupted transition
    /// into it left (objects no catalog row names). Called for every known bucket at the start
    /// of each `tier` run and before the first put into a new one; once per bucket per open
    /// store (later failures remove their own puts). Returns the keys removed.
    pub(crate) fn claim_bucket(&self, location: &str) -> Result<Vec<String>> {
        if location.is_empty() || self.claimed.borrow().contains(location) {
            return Ok(Vec::new());
        }
        let s = self.store_at(location)?;
        let id = self.store_id()?;
        // A listing fails on a missing bucket (some servers create one on the first put).
        s.list(&format!("{STORE_ID_KEY}/"))
            .with_context(|| format!("reaching {location}"))?;
        let claimed = match s.get(STORE_ID_KEY) {
            Ok(b) if b == id.as_bytes() => true,
            Ok(b) => bail!(
                "{location} belongs to another strata store (its {STORE_ID_KEY} is `{}`, this \
                 store's is `{id}`): give each data directory a prefix of its own",
                String::from_utf8_lossy(&b)
            ),
            Err(e) if crate::bucket::is_not_found(&e) => false,
            Err(e) => return Err(e),
        };
        // Recorded (committed) before anything is put there, so recovery always looks there.
        self.conn
            .execute("INSERT OR IGNORE INTO bucket (url) VALUES (?1)", [location])?;
        if !claimed {
            s.put(STORE_ID_KEY, id.as_bytes())
                .with_context(|| format!("claiming {location} for this store"))?;
        }
        let removed = self.recover_bucket(location)?;
        self.claimed.borrow_mut().insert(location.to_string());
        Ok(removed)
    }

    /// Removes the objects under `segments/` at `location` that no catalog row names: what a
    /// put left whose transition never committed. Never touches a key the catalog references.
    pub(crate) fn recover_bucket(&self, location: &str) -> Result<Vec<String>> {
        let s = self.store_at(location)?;
        let known = self.keys_at(location)?;
        let mut removed = Vec::new();
        for l in s.list("segments/")? {
            if !known.contains(&l.key) {
                s.delete(&l.key)?;
                tracing::warn!("recovery removed {location}/{}", l.key);
                removed.push(l.key);
            }
        }
        Ok(removed)
    }

    /// `verify --repair`: removes what interrupted writes left in the data directory and in
    /// every bucket the store has written to, never a key the catalog names. Returns what it
    /// removed, bucket keys behind their URL.
    pub fn repair(&self) -> Result<Vec<String>> {
        let rec = self.recover()?;
        let mut removed: Vec<String> = rec.temp_files.into_iter().chain(rec.orphans).collect();
        for b in self.buckets()? {
            let keys = self.recover_bucket(&b)?;
            removed.extend(keys.into_iter().map(|k| format!("{b}/{k}")));
        }
        Ok(removed)
    }

    /// The keys the catalog names at `location`.
    pub(crate) fn keys_at(&self, location: &str) -> Result<std::collections::HashSet<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path FROM segment WHERE store = ?1")?;
        let v = st
            .query_map([location], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }
}
