//! The segment write path of a transition: encode each piece, decode it again with a fresh
//! instance and compare, put it into the segment store, and make the puts durable before the
//! catalog names them.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use strata_plugin_sdk::Batch;

use super::{PluginOptions, cores, parallel_map};
use crate::plugin::CodecPlugin;
use crate::segment;
use crate::segment_store::SegmentStore;

/// One segment to write: survivors of one coin bucket in one destination window.
pub(super) struct Piece {
    pub(super) window: i64,
    pub(super) bucket: u32,
    pub(super) seq: u32,
    /// Relative path of the segment file.
    pub(super) path: String,
    pub(super) batch: Batch,
    /// `(coin id, newest ts)` of every coin in `batch`, by id.
    pub(super) last_kept: Vec<(i64, i64)>,
}

/// Encodes every piece with the destination's codec, decodes the bytes again with a fresh
/// instance and checks they give back the piece's rows ([`roundtrip`](crate::roundtrip)), then
/// puts them into the segment store under the piece's key (durable only after [`sync_pieces`]),
/// on every core. Returns each file's size and checksum. The first failure sets `abort`, and
/// every piece not yet started is then skipped ([`Skipped`]), so a failing plugin costs one
/// call's time limit, not one per piece.
pub(super) fn encode_and_write(
    (codec, copts): (&CodecPlugin, &PluginOptions),
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
pub(super) fn encode_checked(
    codec: &CodecPlugin,
    copts: &PluginOptions,
    p: &Piece,
) -> Result<Vec<u8>> {
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
pub(super) struct Skipped;

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
pub(super) fn check_written(
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
pub(super) fn sync_pieces<'a>(
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
