//! The segment read path: finding the codec that wrote a segment, fetching its bytes from the
//! segment store, checking them against the catalog and decoding them, on every core. Queries,
//! `verify` and transitions all read segments through it.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::Batch;

use super::{cores, parallel_map};
use crate::catalog::SegmentInfo;
use crate::plugin::{CodecPlugin, PluginRef};
use crate::segment;
use crate::segment_store::SegmentStore;
use crate::store::Store;

impl Store {
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
        read_segment_with(&*self.store_at(&s.store)?, s, &*self.codec_for(s)?, coins)
    }
}

/// Segment bytes below which [`Store::read_segments`] decodes on one thread (about 10 ms of
/// decoding for the slowest codecs).
pub(super) const PARALLEL_READ_BYTES: u64 = 256 << 10;

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
        let stores: Vec<Result<Arc<dyn SegmentStore>>> =
            segments.iter().map(|s| self.store_at(&s.store)).collect();
        // Rc is not Sync: the threads get plain references (and errors as text).
        type Job<'a> = (
            &'a SegmentInfo,
            Result<(&'a CodecPlugin, &'a dyn SegmentStore), String>,
        );
        let jobs: Vec<Job<'_>> = segments
            .iter()
            .zip(codecs.iter().zip(&stores).map(|(c, st)| match (c, st) {
                (Ok(c), Ok(st)) => Ok((&**c, &**st)),
                (Err(e), _) | (_, Err(e)) => Err(format!("{e:#}")),
            }))
            .collect();
        let filter = (!coins.is_empty()).then_some(coins);
        let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        let remote = segments.iter().any(|s| !s.store.is_empty());
        if !remote {
            let read = |(s, job): &Job<'_>| match job {
                Ok((codec, segs)) => read_segment_with(*segs, s, codec, filter),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            // Threads pay off when there is real decoding to share out.
            return if bytes < PARALLEL_READ_BYTES {
                jobs.iter().map(read).collect()
            } else {
                parallel_map(&jobs, cores(), read)
            };
        }
        // A bucket: every object is requested at once (one round trip for all of them, not
        // one per segment), then decoded on every core.
        type Fetched = Option<Result<Vec<u8>>>;
        let mut fetched: Vec<Fetched> = (0..jobs.len()).map(|_| None).collect();
        for (i, (_, job)) in jobs.iter().enumerate() {
            let Ok((_, segs)) = job else { continue };
            if fetched[i].is_some() {
                continue;
            }
            let location = segs.location();
            let same: Vec<usize> = (i..jobs.len())
                .filter(|&j| matches!(&jobs[j].1, Ok((_, st)) if st.location() == location))
                .collect();
            let keys: Vec<&str> = same.iter().map(|&j| segments[j].path.as_str()).collect();
            for (j, got) in same.into_iter().zip(segs.get_many(&keys)) {
                fetched[j] = Some(got);
            }
        }
        // Each decoding thread takes the bytes it decodes (no copy).
        let work: Vec<(&Job<'_>, Mutex<Fetched>)> = jobs
            .iter()
            .zip(fetched.into_iter().map(Mutex::new))
            .collect();
        parallel_map(&work, cores(), |((s, job), got)| {
            let got = got.lock().expect("one thread per segment").take();
            match (job, got) {
                (Ok((codec, segs)), Some(Ok(b))) => decode_checked(*segs, s, codec, filter, b),
                (Ok(_), Some(Err(e))) => {
                    Err(e.context(format!("reading segment {}", s.display_name())))
                }
                (Err(e), _) => Err(anyhow::anyhow!("{e}")),
                (Ok(_), None) => unreachable!("every readable segment was fetched"),
            }
        })
    }
}

/// Reads and decodes segment `s` of the store in `dir` with its codec.
pub(super) fn read_segment_with(
    segs: &dyn SegmentStore,
    s: &SegmentInfo,
    codec: &CodecPlugin,
    coins: Option<&[String]>,
) -> Result<Batch> {
    segment::check_relative(&s.path)?;
    let bytes = segs
        .get(&s.path)
        .with_context(|| format!("reading segment {}", s.display_name()))?;
    decode_checked(segs, s, codec, coins, bytes)
}

/// Checks `bytes`, as read for segment `s`, against the catalog's sha256 (reading the segment
/// again where it is kept if a cached copy was damaged) and decodes them with its codec.
fn decode_checked(
    segs: &dyn SegmentStore,
    s: &SegmentInfo,
    codec: &CodecPlugin,
    coins: Option<&[String]>,
    mut bytes: Vec<u8>,
) -> Result<Batch> {
    segment::check_relative(&s.path)?;
    let mut sum = segment::checksum(&bytes);
    if sum != s.sha256 {
        // A cached copy may be what is damaged: read the segment where it is kept.
        bytes = segs
            .get_fresh(&s.path)
            .with_context(|| format!("reading segment {}", s.display_name()))?;
        sum = segment::checksum(&bytes);
    }
    if sum != s.sha256 {
        bail!(
            "segment {} is damaged: its sha256 is {sum}, the catalog says {} ({} bytes, the \
             catalog says {})",
            s.display_name(),
            s.sha256,
            bytes.len(),
            s.bytes
        );
    }
    let raw = crate::plugin::raw_bytes(s.rows as usize, s.coins as usize, 8);
    codec
        .decode_expecting(&bytes, coins, Some(raw))
        .with_context(|| format!("decoding segment {}", s.display_name()))
}
