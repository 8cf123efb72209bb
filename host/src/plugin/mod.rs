//! The plugin runtime: loads codec and retention components and calls them in a sandbox.
//!
//! One [`Runtime`] owns one wasmtime `Engine` for the whole process. Loading a plugin hashes its
//! bytes (sha256; a pinned hash that does not match refuses to load), fetches the compiled
//! artifact from the [`CompileCache`] or compiles it, checks which WIT world it exports and
//! pre-instantiates it. Every call then gets a fresh `Store` and instance, so no state leaks
//! between calls (the instance lives in one of a few reused, reset slots: see `pool`), with:
//!
//! - **no grants**: WASI with no preopened directories, no network, no environment, no
//!   arguments; the plugin's stdout and stderr are captured and logged under its name;
//! - **a memory limit** on its linear memory;
//! - **a time limit** through epoch interruption (a ticker thread bumps the epoch every 10 ms);
//! - **an output cap** on the bytes lifted out of the guest (wasmtime's hostcall fuel).
//!
//! A trap, a limit or a plugin error becomes a [`CallError`] naming the plugin and the function,
//! and the host carries on: a store that trapped is dropped, never reused.

mod bindings;
mod cache;
mod checks;
pub mod conformance;
mod loaded;
pub mod native;
mod pool;
pub mod roundtrip;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use sha2::{Digest, Sha256};
use strata_plugin_sdk as sdk;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use cache::CompileCache;
pub use checks::{batch_raw_bytes, clean_text, raw_bytes};
use checks::{check_identity, trap_summary};
pub use loaded::{CodecPlugin, Plugin, PluginMeta, PolicyPlugin};

use bindings::{codec, codec_conv, policy, policy_conv};

mod builtins {
    use super::native::Native;
    use super::{Builtin, PluginKind};
    include!(concat!(env!("OUT_DIR"), "/builtins.rs"));
}
pub use builtins::*;

/// The WIT export that makes a component a codec.
pub const CODEC_EXPORT: &str = "strata:plugin/tier-codec@0.1.0";
/// The WIT export that makes a component a retention policy.
pub const POLICY_EXPORT: &str = "strata:plugin/retention-policy@0.1.0";

const TICK: Duration = Duration::from_millis(10);
const LOG_CAPACITY: usize = 64 * 1024;
/// The seed of every plugin call's `wasi:random` streams: the same bytes on every call.
const RANDOM_SEED: u64 = 0x5354_5241_5441;

/// The two kinds of plugin, one per WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    Codec,
    Policy,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Codec => "codec",
            PluginKind::Policy => "policy",
        })
    }
}

/// A plugin compiled into the strata binary.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: PluginKind,
    /// The crate under `plugins/` it was built from.
    pub package: &'static str,
    pub wasm: &'static [u8],
}

/// The built-in plugin called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The sha256 of every built-in component, hex, computed once.
fn builtin_sha256s() -> &'static std::collections::HashSet<String> {
    static SUMS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    SUMS.get_or_init(|| {
        BUILTINS
            .iter()
            .map(|b| hex::encode(Sha256::digest(b.wasm)))
            .collect()
    })
}

/// Resource limits for every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest linear memory a plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Longest a single call may run.
    pub time: Duration,
    /// Most bytes any call may hand back to the host, whatever its input.
    pub output_bytes: usize,
    /// A call's output cap relative to its input: at most this many times the raw bytes of
    /// the rows it was given (`encode`) or of the rows the catalog says a segment holds
    /// (`decode`), but never less than [`output_floor`](Limits::output_floor) and never more
    /// than [`output_bytes`](Limits::output_bytes).
    pub output_ratio: usize,
    /// The smallest output cap of a call, however small its input.
    pub output_floor: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 1 << 30,
            time: Duration::from_secs(60),
            output_bytes: 1 << 30,
            output_ratio: 16,
            output_floor: 16 << 20,
        }
    }
}

impl Limits {
    /// The output cap of a call whose input is `raw` bytes of rows (`None`: unknown, so only
    /// the absolute cap applies).
    pub fn output_cap(&self, raw: Option<usize>) -> usize {
        match raw {
            Some(raw) => raw
                .saturating_mul(self.output_ratio)
                .max(self.output_floor)
                .min(self.output_bytes),
            None => self.output_bytes,
        }
    }
}

/// Where a plugin comes from: a built-in name or a `.wasm` path, optionally pinned by sha256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    pub source: PluginSource,
    /// Expected sha256 of the component bytes, lowercase hex. A mismatch refuses to load.
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// A built-in, else a plugin installed under that name (see [`RuntimeConfig::plugin_dir`]).
    Named(String),
    Path(PathBuf),
}

impl PluginRef {
    /// A name with a `/` or ending in `.wasm` is a path; anything else names a built-in or an
    /// installed plugin.
    pub fn parse(s: &str) -> PluginRef {
        let source = if s.contains('/') || s.ends_with(".wasm") {
            PluginSource::Path(PathBuf::from(s))
        } else {
            PluginSource::Named(s.to_string())
        };
        PluginRef {
            source,
            sha256: None,
        }
    }

    pub fn pinned(mut self, sha256: impl Into<String>) -> PluginRef {
        self.sha256 = Some(sha256.into());
        self
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            PluginSource::Named(n) => write!(f, "{n}"),
            PluginSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What went wrong in one plugin call.
#[derive(Debug)]
pub struct CallError {
    pub plugin: String,
    pub function: &'static str,
    pub kind: CallErrorKind,
}

#[derive(Debug)]
pub enum CallErrorKind {
    /// The plugin returned an error.
    Plugin(sdk::Error),
    /// The call ran past the time limit and was interrupted.
    Timeout(Duration),
    /// The plugin tried to grow its memory past the limit.
    Memory(usize),
    /// The plugin tried to hand back more than the output cap.
    Output(usize),
    /// The plugin trapped (a panic, an out-of-bounds access, ...) or broke the contract.
    Trap(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}`, function `{}`: ",
            self.plugin, self.function
        )?;
        match &self.kind {
            CallErrorKind::Plugin(e) => write!(f, "{e}"),
            CallErrorKind::Timeout(t) => write!(f, "stopped at its time limit of {t:?}"),
            CallErrorKind::Memory(m) => write!(f, "stopped at its memory limit of {} MiB", m >> 20),
            CallErrorKind::Output(o) => write!(f, "its output passed the cap of {o} bytes"),
            CallErrorKind::Trap(t) => write!(f, "trapped: {t}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Per-call store state: the sandbox's WASI context and the memory limiter.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the limit and remembers that it did, so the error can say so.
struct MemoryLimiter {
    limit: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes reached",
                self.limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Settings for a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Compiled-component cache directory; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Where `strata plugin install` puts components, and where a plugin named in a policy
    /// that is not a built-in is looked up (`<dir>/<name>.wasm`); `None`: nowhere.
    pub plugin_dir: Option<PathBuf>,
}

/// The user's plugin directory: `$STRATA_PLUGIN_DIR`, else `$XDG_DATA_HOME/strata/plugins`,
/// else `~/.local/share/strata/plugins`.
pub fn default_plugin_dir() -> Option<PathBuf> {
    std::env::var_os("STRATA_PLUGIN_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("strata/plugins"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".local/share/strata/plugins"))
        })
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            limits: Limits::default(),
            cache_dir: CompileCache::default_dir(),
            plugin_dir: default_plugin_dir(),
        }
    }
}

/// The process's plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: CompileCache,
    limits: Limits,
    plugin_dir: Option<PathBuf>,
    /// The engine's instance slots: every call holds one (see `pool`).
    gate: Arc<pool::Gate>,
    _ticker: Arc<Ticker>,
}

/// The thread that advances the engine's epoch every [`TICK`]; stops when the last runtime
/// sharing the engine is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("strata-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .context("starting the plugin epoch ticker")?;
        Ok(Ticker { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        wasm.epoch_interruption(true);
        let slots = pool::slots();
        wasm.allocation_strategy(pool::strategy(slots));
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        withhold_clocks(&mut linker)?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                cache: CompileCache::new(&engine, config.cache_dir),
                _ticker: Arc::new(Ticker::start(&engine)?),
                engine,
                linker,
                limits: config.limits,
                plugin_dir: config.plugin_dir,
                gate: Arc::new(pool::Gate::new(slots)),
            }),
        })
    }

    /// The directory installed plugins live in, if any.
    pub fn plugin_dir(&self) -> Option<&Path> {
        self.inner.plugin_dir.as_deref()
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The same runtime with other limits (same engine, cache and ticker).
    pub fn with_limits(&self, limits: Limits) -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                engine: self.inner.engine.clone(),
                linker: self.inner.linker.clone(),
                cache: self.inner.cache.clone(),
                limits,
                plugin_dir: self.inner.plugin_dir.clone(),
                gate: self.inner.gate.clone(),
                _ticker: self.inner._ticker.clone(),
            }),
        }
    }

    /// Loads a plugin of either kind: a built-in or installed plugin by name, or a `.wasm`
    /// file by path.
    pub fn load(&self, r: &PluginRef) -> Result<Plugin> {
        let (bytes, origin) = match &r.source {
            PluginSource::Named(name) => match builtin(name) {
                Some(b) => (Cow::Borrowed(b.wasm), format!("built-in `{name}`")),
                None => {
                    let path = self.installed_path(name).with_context(|| {
                        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
                        format!(
                            "no plugin `{}`: not a built-in ({}) nor installed{}",
                            clean_text(name),
                            names.join(", "),
                            match self.plugin_dir() {
                                Some(d) => format!(" in {}", d.display()),
                                None => String::new(),
                            }
                        )
                    })?;
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading plugin {}", path.display()))?;
                    (Cow::Owned(bytes), format!("installed `{name}`"))
                }
            },
            PluginSource::Path(p) => (
                Cow::Owned(
                    std::fs::read(p).with_context(|| format!("reading plugin {}", p.display()))?,
                ),
                p.display().to_string(),
            ),
        };
        self.load_component(bytes, &origin, r.sha256.as_deref())
    }

    /// The installed component called `name`, if there is one (a name that is not a valid
    /// plugin name is never looked up).
    pub fn installed_path(&self, name: &str) -> Option<PathBuf> {
        check_identity("", name, "", None).ok()?;
        let p = self.plugin_dir()?.join(format!("{name}.wasm"));
        p.is_file().then_some(p)
    }

    /// Installs the component at `path` into the plugin directory under the name it gives
    /// itself, so policies and commands can name it. Refuses a name a built-in has. Returns
    /// the installed plugin and the sha256 it replaced, if any.
    pub fn install(&self, path: &Path) -> Result<(Plugin, PathBuf, Option<String>)> {
        let dir = self
            .plugin_dir()
            .context("no plugin directory: set STRATA_PLUGIN_DIR or HOME")?;
        let plugin = self.load(&PluginRef {
            source: PluginSource::Path(path.to_path_buf()),
            sha256: None,
        })?;
        let name = plugin.meta().name.clone();
        if builtin(&name).is_some() {
            bail!(
                "{} calls itself `{name}`, the name of a built-in plugin; give it another name in \
                 its `describe`",
                path.display()
            );
        }
        let dest = dir.join(format!("{name}.wasm"));
        let replaced = dest
            .is_file()
            .then(|| sha256_file(&dest))
            .transpose()?
            .filter(|old| *old != plugin.meta().sha256);
        crate::segment::write_renamed(&dest, plugin.component())?;
        crate::segment::sync_dir(dir)?;
        Ok((plugin, dest, replaced))
    }

    /// Every installed plugin: (name, path), sorted by name.
    pub fn installed(&self) -> Vec<(String, PathBuf)> {
        let Some(Ok(entries)) = self.plugin_dir().map(std::fs::read_dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, PathBuf)> = entries
            .filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_str()?.strip_suffix(".wasm")?.to_string();
                check_identity("", &name, "", None).ok()?;
                Some((name, p))
            })
            .collect();
        out.sort();
        out
    }

    /// Loads a plugin from its component bytes; `origin` names it in errors.
    pub fn load_bytes(&self, bytes: &[u8], origin: &str, pin: Option<&str>) -> Result<Plugin> {
        self.load_component(Cow::Owned(bytes.to_vec()), origin, pin)
    }

    /// Loads a plugin, keeping its bytes (a store keeps a copy of every codec that writes).
    fn load_component(
        &self,
        bytes: Cow<'static, [u8]>,
        origin: &str,
        pin: Option<&str>,
    ) -> Result<Plugin> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pin) = pin
            && !pin.eq_ignore_ascii_case(&sha256)
        {
            bail!(
                "plugin {origin}: sha256 mismatch, refusing to load (pinned {pin}, file has {sha256}); \
                 the component changed since it was pinned"
            );
        }
        let engine = &self.inner.engine;
        let component = self
            .inner
            .cache
            .load(engine, &sha256, &bytes)
            .with_context(|| format!("plugin {origin}: not a valid WebAssembly component"))?;
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let kind = if exports.iter().any(|e| e == CODEC_EXPORT) {
            PluginKind::Codec
        } else if exports.iter().any(|e| e == POLICY_EXPORT) {
            PluginKind::Policy
        } else {
            bail!(
                "plugin {origin} exports neither `{CODEC_EXPORT}` (world `codec`) nor `{POLICY_EXPORT}` \
                 (world `policy`); it exports [{}]. Is it built against strata's wit/ at this version?",
                exports.join(", ")
            );
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "plugin {origin} imports something strata does not provide \
                 (plugins get WASI with no files, network or environment)"
                )
            })?;
        let meta = PluginMeta {
            name: origin.to_string(),
            origin: origin.to_string(),
            sha256,
            size: bytes.len(),
            kind,
            component: Arc::new(bytes),
        };
        match kind {
            PluginKind::Codec => {
                let pre = codec::CodecPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!("plugin {origin}: exports do not match world `codec`")
                    })?;
                let mut plugin = CodecPlugin {
                    runtime: self.clone(),
                    meta,
                    pre,
                    info: placeholder_codec_info(),
                };
                plugin.info = plugin.call_describe()?;
                let i = &plugin.info;
                check_identity(origin, &i.info.name, &i.info.version, Some(&i.extension))?;
                plugin.meta.name = plugin.info.info.name.clone();
                Ok(Plugin::Codec(plugin))
            }
            PluginKind::Policy => {
                let pre = policy::PolicyPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!("plugin {origin}: exports do not match world `policy`")
                    })?;
                let mut plugin = PolicyPlugin {
                    runtime: self.clone(),
                    meta,
                    pre,
                    info: sdk::PolicyInfo {
                        info: placeholder_codec_info().info,
                        rolls_up: false,
                    },
                };
                plugin.info = plugin.call_describe()?;
                let i = &plugin.info.info;
                check_identity(origin, &i.name, &i.version, None)?;
                plugin.meta.name = plugin.info.info.name.clone();
                Ok(Plugin::Policy(plugin))
            }
        }
    }

    /// Loads a codec; a policy component here is an error.
    pub fn codec(&self, r: &PluginRef) -> Result<CodecPlugin> {
        match self.load(r)? {
            Plugin::Codec(c) => Ok(c),
            Plugin::Policy(p) => bail!(
                "plugin {r} is a retention policy (`{}`), not a codec",
                p.meta.name
            ),
        }
    }

    /// Loads a retention policy; a codec component here is an error.
    pub fn policy(&self, r: &PluginRef) -> Result<PolicyPlugin> {
        match self.load(r)? {
            Plugin::Policy(p) => Ok(p),
            Plugin::Codec(c) => bail!(
                "plugin {r} is a codec (`{}`), not a retention policy",
                c.meta.name
            ),
        }
    }

    /// Runs `call` in a fresh sandboxed store, mapping traps and limits to a [`CallError`].
    /// `cap` is the most bytes the call may hand back (see [`Limits::output_cap`]).
    fn call<T>(
        &self,
        meta: &PluginMeta,
        function: &'static str,
        cap: usize,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let limits = &self.inner.limits;
        // Held until the store below is dropped (locals drop in reverse order), so the slot
        // is free again before the next call may take it.
        let _slot = self.inner.gate.enter();
        let stdout = MemoryOutputPipe::new(LOG_CAPACITY);
        let stderr = MemoryOutputPipe::new(LOG_CAPACITY);
        // Plugins are pure functions of their inputs: a codec drawing fresh randomness could
        // pass the read-back check of a new segment and decode it differently later. Every
        // call draws the same streams from fixed seeds.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .secure_random(Xoshiro256PlusPlus::seed_from_u64(RANDOM_SEED))
            .insecure_random(Xoshiro256PlusPlus::seed_from_u64(RANDOM_SEED ^ 1))
            .insecure_random_seed(u128::from(RANDOM_SEED))
            .build();
        let mut store = Store::new(
            &self.inner.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryLimiter {
                    limit: limits.memory_bytes,
                    hit: false,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = (limits.time.as_millis() / TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store.set_hostcall_fuel(cap);

        let result = call(&mut store);
        let mut stderr_lines = Vec::new();
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let text = pipe.contents();
            for line in String::from_utf8_lossy(&text).lines() {
                let line = clean_text(line);
                tracing::info!(plugin = %meta.name, stream, "{line}");
                if stream == "stderr" {
                    stderr_lines.push(line);
                }
            }
        }
        let result = result.map_err(|e| {
            let kind = if store.data().limiter.hit {
                CallErrorKind::Memory(limits.memory_bytes)
            } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                CallErrorKind::Timeout(limits.time)
            } else if format!("{e:?}").contains("fuel allocated for hostcalls") {
                CallErrorKind::Output(cap)
            } else {
                tracing::debug!(plugin = %meta.name, function, "trap in full: {e:?}");
                CallErrorKind::Trap(trap_summary(&e, &stderr_lines))
            };
            CallError {
                plugin: meta.name.clone(),
                function,
                kind,
            }
        });
        count_call(&meta.name, function, result.as_ref().err().map(|e| &e.kind));
        result
    }
}

/// Calls of one plugin function since the process started, and how the failed ones ended
/// (see [`call_counts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub calls: u64,
    /// Ended by a trap (a panic, an out-of-bounds access, a broken contract).
    pub traps: u64,
    /// Stopped at the time limit.
    pub timeouts: u64,
    /// Stopped at the memory limit.
    pub memory_limit: u64,
    /// Stopped at the output cap.
    pub output_limit: u64,
}

type CallTable = std::collections::BTreeMap<(String, &'static str), CallCounts>;

static CALLS: std::sync::Mutex<CallTable> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count_call(plugin: &str, function: &'static str, failed: Option<&CallErrorKind>) {
    let mut t = CALLS.lock().unwrap_or_else(|p| p.into_inner());
    let c = t.entry((plugin.to_string(), function)).or_default();
    c.calls += 1;
    match failed {
        Some(CallErrorKind::Trap(_)) => c.traps += 1,
        Some(CallErrorKind::Timeout(_)) => c.timeouts += 1,
        Some(CallErrorKind::Memory(_)) => c.memory_limit += 1,
        Some(CallErrorKind::Output(_)) => c.output_limit += 1,
        Some(CallErrorKind::Plugin(_)) | None => {}
    }
}

/// Every plugin function called in this process so far, by plugin name (as the component
/// describes itself, cleaned) and function: what `strata serve` exports as metrics.
pub fn call_counts() -> Vec<(String, &'static str, CallCounts)> {
    let t = CALLS.lock().unwrap_or_else(|p| p.into_inner());
    t.iter()
        .map(|((p, f), c)| (p.clone(), *f, c.clone()))
        .collect()
}

/// The WASI clock interfaces as strata's host links them, and their functions.
const CLOCKS: &[(&str, &[&str])] = &[
    (
        "wasi:clocks/monotonic-clock@0.2.12",
        &[
            "now",
            "resolution",
            "subscribe-instant",
            "subscribe-duration",
        ],
    ),
    ("wasi:clocks/wall-clock@0.2.12", &["now", "resolution"]),
];

/// Plugins get no clock (see `wit/strata.wit`): every function of the WASI clock interfaces
/// traps. A plugin that reads the time, or sleeps or waits on a timer (which would block the
/// host thread where the epoch deadline cannot reach it), is stopped at that call. WASI's
/// other interfaces stay linked with nothing granted (no preopened directory, no network, no
/// environment), so a component built with a standard toolchain still loads.
fn withhold_clocks(linker: &mut Linker<HostState>) -> Result<()> {
    linker.allow_shadowing(true);
    for &(interface, functions) in CLOCKS {
        let mut instance = linker.instance(interface)?;
        for &function in functions {
            let what = format!("{interface}#{function}");
            instance.func_new(function, move |_, _, _, _| {
                Err(wasmtime::Error::msg(format!(
                    "plugins have no clock: it called `{what}`"
                )))
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

fn placeholder_codec_info() -> sdk::CodecInfo {
    sdk::CodecInfo {
        info: sdk::PluginInfo {
            name: String::new(),
            version: String::new(),
            description: String::new(),
            options: Vec::new(),
        },
        extension: String::new(),
        media_type: String::new(),
        lossless: false,
        sorts_rows: false,
        filter_pushdown: false,
        extra_columns: false,
    }
}

/// Options as the bindings take them: borrowed, nothing copied.
fn str_pairs(opts: &[(String, String)]) -> Vec<(&str, &str)> {
    opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// sha256 of a file, lowercase hex, for pinning plugins in policy files.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
