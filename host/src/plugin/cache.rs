//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes ~0.3 s in a release host (~2 s in a debug one), so
//! each component is compiled once and its native artifact kept in
//! `<cache-dir>/<sha256 of the component>-<engine compatibility hash>.cwasm`. The engine hash
//! changes with the wasmtime version and every setting that affects code generation, so a stale
//! artifact is never loaded; it is simply not found. Files are written to a temporary name and
//! renamed, so a crash or a concurrent writer never leaves a torn artifact.
//!
//! Trust: an artifact is native code. The cache directory must be as trusted as the `strata`
//! binary itself (it is the user's own cache directory by default).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept, or `None` to compile on every load.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> CompileCache {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CompileCache {
            dir,
            engine_hash: format!("{:016x}", h.finish()),
        }
    }

    /// The default cache directory: `$STRATA_CACHE_DIR`, else `$XDG_CACHE_HOME/strata`, else
    /// `~/.cache/strata`, each with `components/` under it.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("STRATA_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("strata")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/strata")))?;
        Some(base.join("components"))
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled component for `wasm` (whose sha256 is `sha256`), from the cache when there,
    /// else compiled and stored.
    pub fn load(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return Ok(Component::new(engine, wasm)?);
        };
        let path = dir.join(format!("{sha256}-{}.cwasm", self.engine_hash));
        if path.exists() {
            // SAFETY: artifacts in the cache were written by `precompile_component` of an engine
            // with this compatibility hash (see the module docs on trust).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "ignoring unreadable cached component {}: {e:#}",
                    path.display()
                ),
            }
        }
        let artifact = engine.precompile_component(wasm)?;
        if let Err(e) = write_atomically(dir, &path, &artifact) {
            tracing::warn!(
                "could not cache compiled component at {}: {e:#}",
                path.display()
            );
        }
        // SAFETY: the bytes were produced by `precompile_component` on this very engine.
        Ok(unsafe { Component::deserialize(engine, &artifact) }?)
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
