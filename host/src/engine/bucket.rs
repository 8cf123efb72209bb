//! Segments in an object-storage bucket: the [`SegmentStore`] for tiers whose policy says
//! `store = "s3://bucket/prefix"` (AWS S3, MinIO, R2, any S3-compatible server), through the
//! `object_store` crate.
//!
//! Credentials, endpoint and region come from the environment the way `object_store` and the
//! AWS tools read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ALLOW_HTTP`, …), never from a policy file; the store's
//! [`location`](SegmentStore::location) is the URL alone, so nothing strata prints holds a
//! secret. Retries of failed or throttled requests (503 SlowDown, dropped connections) back off
//! as `object_store`'s `RetryConfig` does, for up to `STRATA_S3_RETRY_TIMEOUT` (default 3 min,
//! a humantime span) and `STRATA_S3_MAX_RETRIES` (default 10). With `STRATA_S3_CACHE_MIB` (or
//! `StoreOptions::bucket_cache_bytes`) objects read are also kept under the data directory's
//! `cache/`, up to that size.
//!
//! How the engine stays crash-safe without rename (design.md, "Segments in a bucket"): every
//! put is one conditional `PUT` (`If-None-Match: *`, `PutMode::Create`) under a key never
//! used before, which S3 applies whole or not at all; a successful put is durable, so
//! [`sync`](SegmentStore::sync) has nothing to do; the catalog commits only after it, and
//! objects no catalog row names are removed by [`Store::recover_bucket`](crate::store::Store)
//! before the next transition into the bucket and by `verify --repair`. A bucket prefix belongs
//! to one data directory: the first use writes `strata-store-id` there, and a store whose id
//! differs is refused, so one store's recovery never removes another's segments.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

use crate::segment_store::{Listed, SegmentStore};

/// Requests [`SegmentStore::get_many`] keeps in flight at once: a query across years touches
/// tens of segments, and against a real bucket each GET is a round trip of 10–50 ms.
const GETS_IN_FLIGHT: usize = 16;

/// A checked `s3://bucket[/prefix]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    /// `/`-separated, without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl BucketUrl {
    /// Parses `s3://bucket[/prefix]`. Refuses anything that could carry a secret (a user or
    /// password, a query) or leave the prefix (`.`, `..`, empty parts).
    pub fn parse(url: &str) -> Result<BucketUrl> {
        let Some(rest) = url.strip_prefix("s3://") else {
            bail!("store `{url}` is not an object-storage URL: expected s3://bucket[/prefix]");
        };
        if rest.contains(['@', '?', '#', '\\']) {
            bail!(
                "store URL `s3://…` must not hold credentials, a query or a fragment: \
                 credentials come from the environment (AWS_ACCESS_KEY_ID, …)"
            );
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            bail!("store `{url}`: `{bucket}` is not a bucket name (3-63 of a-z 0-9 . -)");
        }
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            bail!("store `{url}`: the prefix has an empty, `.` or `..` part");
        }
        Ok(BucketUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Whether `e` says an object does not exist (not that the bucket is missing or the server
/// refused).
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<object_store::Error>(),
            Some(object_store::Error::NotFound { .. })
        )
    })
}

/// Segments as objects under a bucket prefix. See the [module docs](self).
pub struct BucketSegmentStore {
    url: BucketUrl,
    objects: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    cache: Option<ReadCache>,
}

/// A local copy of objects read, bounded in bytes: segment keys are never reused, so a cached
/// key never goes stale; every read is still checked against the catalog's sha256, and a copy
/// that fails the check is dropped and fetched again ([`SegmentStore::get_fresh`]). Oldest
/// files (by modification time) go first when the bound is passed.
struct ReadCache {
    dir: std::path::PathBuf,
    limit: u64,
    used: std::sync::Mutex<u64>,
}

impl ReadCache {
    fn open(dir: std::path::PathBuf, limit: u64) -> Result<ReadCache> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let used = files_under(&dir).iter().map(|(_, len, _)| len).sum();
        Ok(ReadCache {
            dir,
            limit,
            used: std::sync::Mutex::new(used),
        })
    }

    fn path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(key)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)).ok()
    }

    /// Keeps a copy (best effort: a cache that cannot write is only slower).
    fn put(&self, key: &str, bytes: &[u8]) {
        if bytes.len() as u64 > self.limit {
            return;
        }
        let p = self.path(key);
        let tmp = p.with_extension("cache-tmp");
        let written = p
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &p));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let mut used = self.used.lock().expect("cache lock");
        *used += bytes.len() as u64;
        if *used > self.limit {
            let mut files = files_under(&self.dir);
            files.sort_by_key(|(_, _, t)| *t);
            *used = files.iter().map(|(_, len, _)| len).sum();
            for (f, len, _) in files {
                if *used <= self.limit * 9 / 10 {
                    break;
                }
                if std::fs::remove_file(&f).is_ok() {
                    *used -= len;
                }
            }
        }
    }

    fn forget(&self, key: &str) {
        if let Ok(m) = std::fs::metadata(self.path(key))
            && std::fs::remove_file(self.path(key)).is_ok()
        {
            let mut used = self.used.lock().expect("cache lock");
            *used = used.saturating_sub(m.len());
        }
    }
}

/// Every file under `dir`: path, length, modification time.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let t = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((e.path(), m.len(), t));
            }
        }
    }
    out
}

impl std::fmt::Debug for BucketSegmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the URL: the client holds credentials.
        f.debug_struct("BucketSegmentStore")
            .field("url", &self.url.to_string())
            .finish()
    }
}

/// `STRATA_S3_*` retry settings (from `overrides`, else the environment) over
/// `object_store`'s defaults.
fn retry_config(overrides: &[(String, String)]) -> Result<RetryConfig> {
    let var = |name: &str| {
        overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let mut c = RetryConfig::default();
    if let Some(v) = var("STRATA_S3_RETRY_TIMEOUT") {
        c.retry_timeout = humantime::parse_duration(&v)
            .with_context(|| format!("STRATA_S3_RETRY_TIMEOUT=`{v}` is not a duration"))?;
        c.backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50).min(c.retry_timeout),
            ..BackoffConfig::default()
        };
    }
    if let Some(v) = var("STRATA_S3_MAX_RETRIES") {
        c.max_retries = v
            .parse()
            .with_context(|| format!("STRATA_S3_MAX_RETRIES=`{v}` is not a number"))?;
    }
    Ok(c)
}

impl BucketSegmentStore {
    /// Connects to `url` with credentials and endpoint from the environment. Nothing is sent
    /// yet: a wrong key or a missing bucket shows at the first request.
    pub fn open(url: &str) -> Result<BucketSegmentStore> {
        BucketSegmentStore::open_with(url, &[])
    }

    /// [`open`](Self::open), with `overrides` (`AWS_*` names and values, as the environment
    /// gives them) taking precedence over the environment: for tests and tools that talk to
    /// more than one server from one process.
    pub fn open_with(url: &str, overrides: &[(String, String)]) -> Result<BucketSegmentStore> {
        let url = BucketUrl::parse(url)?;
        // reqwest is built without a default TLS provider (no aws-lc C build): use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env();
        for (k, v) in overrides.iter().filter(|(k, _)| !k.starts_with("STRATA_")) {
            let key = k
                .to_ascii_lowercase()
                .parse()
                .with_context(|| format!("`{k}` is not an S3 setting"))?;
            builder = builder.with_config(key, v);
        }
        let s3 = builder
            .with_bucket_name(&url.bucket)
            .with_retry(retry_config(overrides)?)
            .build()
            .with_context(|| format!("connecting to {url}"))?;
        let objects: Arc<dyn ObjectStore> = if url.prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, url.prefix.as_str()))
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-s3")
            .enable_all()
            .build()
            .context("starting the object-storage client's runtime")?;
        Ok(BucketSegmentStore {
            url,
            objects,
            rt,
            cache: None,
        })
    }

    /// Keeps up to `limit` bytes of what it reads under `dir` (see [`ReadCache`]).
    pub fn with_read_cache(mut self, dir: std::path::PathBuf, limit: u64) -> Result<Self> {
        if limit > 0 {
            self.cache = Some(ReadCache::open(dir, limit)?);
        }
        Ok(self)
    }

    fn fetch(&self, key: &str) -> Result<Vec<u8>> {
        self.run(self.fetch_async(key))
    }

    async fn fetch_async(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let got = async {
            let r = self.objects.get(&path).await?;
            r.bytes().await
        }
        .await;
        match got {
            Ok(b) => Ok(b.to_vec()),
            Err(e @ object_store::Error::NotFound { .. }) => {
                Err(e).with_context(|| format!("{}/{key} is missing from the bucket", self.url))
            }
            Err(e) => Err(e).with_context(|| format!("getting {}/{key}", self.url)),
        }
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        crate::segment_store::check_key(key)?;
        ObjectPath::parse(key).with_context(|| format!("`{key}` is not an object key"))
    }

    /// Runs `f` on the client's runtime, from any thread not itself inside a runtime.
    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// The URL's text, the way errors and listings name it.
    pub fn url(&self) -> &BucketUrl {
        &self.url
    }
}

impl SegmentStore for BucketSegmentStore {
    fn location(&self) -> String {
        self.url.to_string()
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        match self.run(self.objects.put_opts(&path, payload, opts)) {
            Ok(_) => crate::crash::point("object-put")
                .with_context(|| format!("putting {}/{key}", self.url)),
            Err(object_store::Error::AlreadyExists { .. }) => bail!(
                "{}/{key} already exists: strata never overwrites an object",
                self.url
            ),
            Err(e) => Err(e).with_context(|| format!("putting {}/{key}", self.url)),
        }
    }

    fn sync(&self, _keys: &[&str]) -> Result<()> {
        // A PUT that returned success is durable in the bucket.
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        crate::segment_store::check_key(key)?;
        if let Some(b) = self.cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(b);
        }
        let b = self.fetch(key)?;
        if let Some(c) = &self.cache {
            c.put(key, &b);
        }
        Ok(b)
    }

    fn get_many(&self, keys: &[&str]) -> Vec<Result<Vec<u8>>> {
        let cached: Vec<Option<Vec<u8>>> = keys
            .iter()
            .map(|k| {
                crate::segment_store::check_key(k).ok()?;
                self.cache.as_ref().and_then(|c| c.get(k))
            })
            .collect();
        let fetched: Vec<Option<Result<Vec<u8>>>> = self.run(
            futures::stream::iter(keys.iter().zip(&cached).map(|(k, c)| async move {
                match c {
                    Some(_) => None,
                    None => Some(self.fetch_async(k).await),
                }
            }))
            .buffered(GETS_IN_FLIGHT)
            .collect(),
        );
        keys.iter()
            .zip(cached.into_iter().zip(fetched))
            .map(|(k, (c, f))| match (c, f) {
                (Some(b), _) => Ok(b),
                (None, Some(Ok(b))) => {
                    if let Some(c) = &self.cache {
                        c.put(k, &b);
                    }
                    Ok(b)
                }
                (None, Some(Err(e))) => Err(e),
                (None, None) => unreachable!("every key not cached was fetched"),
            })
            .collect()
    }

    fn get_fresh(&self, key: &str) -> Result<Vec<u8>> {
        if let Some(c) = &self.cache {
            c.forget(key);
        }
        self.fetch(key)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let want = range.end.saturating_sub(range.start);
        let b = self
            .run(self.objects.get_range(&path, range.clone()))
            .with_context(|| format!("getting bytes {range:?} of {}/{key}", self.url))?;
        if b.len() as u64 != want {
            bail!("{}/{key}: range {range:?} is past the end", self.url);
        }
        Ok(b.to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let p = prefix.trim_end_matches('/');
        let p = if p.is_empty() {
            None
        } else {
            Some(self.path(p)?)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .run(self.objects.list(p.as_ref()).try_collect())
            .with_context(|| format!("listing {}/{prefix}", self.url))?;
        Ok(metas
            .into_iter()
            .map(|m| Listed {
                key: m.location.to_string(),
                size: m.size,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        if let Some(c) = &self.cache {
            c.forget(key);
        }
        match self.run(self.objects.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}/{key}", self.url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_are_checked() {
        let u = BucketUrl::parse("s3://my-bucket/strata/prod/").unwrap();
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.prefix, "strata/prod");
        assert_eq!(u.to_string(), "s3://my-bucket/strata/prod");
        assert_eq!(BucketUrl::parse("s3://abc").unwrap().prefix, "");
        for bad in [
            "my-bucket/x",
            "s3://AK:SECRET@bucket/x",
            "s3://bucket/x?X-Amz-Signature=1",
            "s3://b/x",
            "s3://bucket/a/../b",
            "s3://bucket//a",
            "s3://Bucket/a",
        ] {
            assert!(BucketUrl::parse(bad).is_err(), "{bad} was accepted");
        }
        let e = BucketUrl::parse("s3://AK:SECRET@bucket").unwrap_err();
        assert!(!format!("{e:#}").contains("SECRET"), "{e:#}");
    }
}
