//! The store's own copy of every codec component that wrote one of its segments, so a store
//! reads what it wrote forever: with no policy or plugin directory at hand, after the `.wasm`
//! a policy named was deleted or rebuilt, and after a newer strata changed a built-in.
//!
//! Components live content-addressed at `DIR/plugins/<sha256>.wasm`. A transition keeps the
//! component of every codec it may write with *before* it writes any segment (written
//! durably: temporary name, fsync, rename, directory fsync), so by the time a catalog row
//! names a `codec_sha256`, the bytes with that hash are on disk. Loading one checks its hash
//! (the name is the pin). Nothing here is ever deleted: a component is small next to the
//! history it can read, and the catalog may name it again after a restore.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::plugin::{CodecPlugin, PluginRef, Runtime};
use crate::segment;
use crate::store::Store;

/// The directory of kept components, relative to the data directory (the store owns the name:
/// its startup recovery clears interrupted copies there).
pub use crate::store::COMPONENTS_DIR as DIR;

/// True for a lowercase hex sha256 (64 characters): the only file names this module builds.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
    /// Where the component with `sha256` is kept (whether or not it is there yet).
    pub fn kept_component_path(&self, sha256: &str) -> Result<PathBuf> {
        if !is_sha256(sha256) {
            bail!("refusing component hash {sha256:?}: not a lowercase hex sha256");
        }
        Ok(self.dir().join(DIR).join(format!("{sha256}.wasm")))
    }

    /// Keeps a copy of `codec`'s component in the store (durably), unless it has one.
    pub fn keep_component(&self, codec: &CodecPlugin) -> Result<()> {
        let path = self.kept_component_path(&codec.meta.sha256)?;
        if path.is_file() && crate::plugin::sha256_file(&path)? == codec.meta.sha256 {
            return Ok(());
        }
        segment::write_renamed(&path, codec.meta.component())
            .with_context(|| format!("keeping codec `{}` in the store", codec.meta.name))?;
        segment::sync_dir(path.parent().expect("under the data directory"))?;
        Ok(())
    }

    /// The kept component with `sha256`, loaded (its hash checked), if the store has it.
    pub(crate) fn load_kept(&self, rt: &Runtime, sha256: &str) -> Result<Option<CodecPlugin>> {
        let path = self.kept_component_path(sha256)?;
        if !path.is_file() {
            return Ok(None);
        }
        let r = PluginRef {
            source: crate::plugin::PluginSource::Path(path.clone()),
            sha256: Some(sha256.to_string()),
        };
        rt.codec(&r)
            .with_context(|| format!("loading the store's copy {}", path.display()))
            .map(Some)
    }
}
