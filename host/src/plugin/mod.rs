//! The plugin runtime: loads codec and retention components and calls them in a sandbox.
//!
//! One [`Runtime`] owns one wasmtime `Engine` for the whole process. Loading a plugin hashes its
//! bytes (sha256; a pinned hash that does not match refuses to load), fetches the compiled
//! artifact from the [`CompileCache`] or compiles it, checks which WIT world it exports and
//! pre-instantiates it. Every call then gets a fresh `Store` and instance, so no state leaks
//! between calls, with:
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
pub mod conformance;
pub mod native;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use strata_plugin_sdk as sdk;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use cache::CompileCache;

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

/// Resource limits for every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest linear memory a plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Longest a single call may run.
    pub time: Duration,
    /// Most bytes a call may hand back to the host.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 1 << 30,
            time: Duration::from_secs(60),
            output_bytes: 1 << 30,
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
    Builtin(String),
    Path(PathBuf),
}

impl PluginRef {
    /// A name with a `/` or ending in `.wasm` is a path; anything else names a built-in.
    pub fn parse(s: &str) -> PluginRef {
        let source = if s.contains('/') || s.ends_with(".wasm") {
            PluginSource::Path(PathBuf::from(s))
        } else {
            PluginSource::Builtin(s.to_string())
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
            PluginSource::Builtin(n) => write!(f, "{n}"),
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
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            limits: Limits::default(),
            cache_dir: CompileCache::default_dir(),
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
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                cache: CompileCache::new(&engine, config.cache_dir),
                _ticker: Arc::new(Ticker::start(&engine)?),
                engine,
                linker,
                limits: config.limits,
            }),
        })
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
                _ticker: self.inner._ticker.clone(),
            }),
        }
    }

    /// Loads a plugin of either kind.
    pub fn load(&self, r: &PluginRef) -> Result<Plugin> {
        let (bytes, origin) = match &r.source {
            PluginSource::Builtin(name) => {
                let b = builtin(name).with_context(|| {
                    let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
                    format!(
                        "no built-in plugin `{name}` (built-ins: {})",
                        names.join(", ")
                    )
                })?;
                (
                    std::borrow::Cow::Borrowed(b.wasm),
                    format!("built-in `{name}`"),
                )
            }
            PluginSource::Path(p) => (
                std::borrow::Cow::Owned(
                    std::fs::read(p).with_context(|| format!("reading plugin {}", p.display()))?,
                ),
                p.display().to_string(),
            ),
        };
        self.load_bytes(&bytes, &origin, r.sha256.as_deref())
    }

    /// Loads a plugin from its component bytes; `origin` names it in errors.
    pub fn load_bytes(&self, bytes: &[u8], origin: &str, pin: Option<&str>) -> Result<Plugin> {
        let sha256 = hex::encode(Sha256::digest(bytes));
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
            .load(engine, &sha256, bytes)
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
    fn call<T>(
        &self,
        meta: &PluginMeta,
        function: &'static str,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let limits = &self.inner.limits;
        let stdout = MemoryOutputPipe::new(LOG_CAPACITY);
        let stderr = MemoryOutputPipe::new(LOG_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
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
        store.set_hostcall_fuel(limits.output_bytes);

        let result = call(&mut store);
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let text = pipe.contents();
            for line in String::from_utf8_lossy(&text).lines() {
                tracing::info!(plugin = %meta.name, stream, "{line}");
            }
        }
        result.map_err(|e| {
            let kind = if store.data().limiter.hit {
                CallErrorKind::Memory(limits.memory_bytes)
            } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                CallErrorKind::Timeout(limits.time)
            } else if format!("{e:?}").contains("fuel allocated for hostcalls") {
                CallErrorKind::Output(limits.output_bytes)
            } else {
                CallErrorKind::Trap(format!("{e:?}"))
            };
            CallError {
                plugin: meta.name.clone(),
                function,
                kind,
            }
        })
    }
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

/// Identity of a loaded plugin.
#[derive(Clone, Debug)]
pub struct PluginMeta {
    /// The name the plugin gives itself (`describe`).
    pub name: String,
    /// Where it was loaded from: `built-in \`name\`` or a path.
    pub origin: String,
    pub sha256: String,
    pub size: usize,
    pub kind: PluginKind,
}

/// A loaded plugin of either kind.
pub enum Plugin {
    Codec(CodecPlugin),
    Policy(PolicyPlugin),
}

impl Plugin {
    pub fn meta(&self) -> &PluginMeta {
        match self {
            Plugin::Codec(c) => &c.meta,
            Plugin::Policy(p) => &p.meta,
        }
    }

    /// Name, version, description and options.
    pub fn info(&self) -> &sdk::PluginInfo {
        match self {
            Plugin::Codec(c) => &c.info.info,
            Plugin::Policy(p) => &p.info.info,
        }
    }
}

/// A loaded codec component.
pub struct CodecPlugin {
    runtime: Runtime,
    pub meta: PluginMeta,
    pub info: sdk::CodecInfo,
    pre: codec::CodecPre<HostState>,
}

impl CodecPlugin {
    fn call_describe(&self) -> Result<sdk::CodecInfo, CallError> {
        let i = self.runtime.call(&self.meta, "describe", |store| {
            let c = self.pre.instantiate(&mut *store)?;
            c.strata_plugin_tier_codec().call_describe(&mut *store)
        })?;
        Ok(sdk::CodecInfo {
            info: codec_conv::info_from_wit(i.info),
            extension: i.extension,
            media_type: i.media_type,
            lossless: i.lossless,
            sorts_rows: i.sorts_rows,
            filter_pushdown: i.filter_pushdown,
            extra_columns: i.extra_columns,
        })
    }

    fn plugin_error(&self, function: &'static str, e: sdk::Error) -> CallError {
        CallError {
            plugin: self.meta.name.clone(),
            function,
            kind: CallErrorKind::Plugin(e),
        }
    }

    /// Encodes one segment.
    pub fn encode(
        &self,
        batch: &sdk::Batch,
        opts: &[(String, String)],
    ) -> Result<Vec<u8>, CallError> {
        let opts = str_pairs(opts);
        let out = codec_conv::with_wit_batch(batch, |data| {
            self.runtime.call(&self.meta, "encode", |store| {
                let c = self.pre.instantiate(&mut *store)?;
                c.strata_plugin_tier_codec()
                    .call_encode(&mut *store, data, &opts)
            })
        })?;
        out.map_err(|e| self.plugin_error("encode", codec_conv::error_from_wit(e)))
    }

    /// Decodes one segment; the result is checked, since the plugin is not trusted.
    pub fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<sdk::Batch, CallError> {
        let coins: Option<Vec<&str>> = coins.map(|c| c.iter().map(String::as_str).collect());
        let out = self.runtime.call(&self.meta, "decode", |store| {
            let c = self.pre.instantiate(&mut *store)?;
            c.strata_plugin_tier_codec()
                .call_decode(&mut *store, bytes, coins.as_deref())
        })?;
        let batch = codec_conv::batch_from_wit(
            out.map_err(|e| self.plugin_error("decode", codec_conv::error_from_wit(e)))?,
        );
        batch.validate().map_err(|e| {
            self.plugin_error(
                "decode",
                sdk::Error::Internal(format!("returned an invalid batch: {e}")),
            )
        })?;
        Ok(batch)
    }
}

/// A loaded retention-policy component.
pub struct PolicyPlugin {
    runtime: Runtime,
    pub meta: PluginMeta,
    pub info: sdk::PolicyInfo,
    pre: policy::PolicyPre<HostState>,
}

impl PolicyPlugin {
    fn call_describe(&self) -> Result<sdk::PolicyInfo, CallError> {
        let i = self.runtime.call(&self.meta, "describe", |store| {
            let p = self.pre.instantiate(&mut *store)?;
            p.strata_plugin_retention_policy()
                .call_describe(&mut *store)
        })?;
        Ok(sdk::PolicyInfo {
            info: policy_conv::info_from_wit(i.info),
            rolls_up: i.rolls_up,
        })
    }

    fn plugin_error(&self, function: &'static str, e: sdk::Error) -> CallError {
        CallError {
            plugin: self.meta.name.clone(),
            function,
            kind: CallErrorKind::Plugin(e),
        }
    }

    /// Validates options before any data moves.
    pub fn check_options(&self, opts: &[(String, String)]) -> Result<(), CallError> {
        let opts = str_pairs(opts);
        let out = self.runtime.call(&self.meta, "check-options", |store| {
            let p = self.pre.instantiate(&mut *store)?;
            p.strata_plugin_retention_policy()
                .call_check_options(&mut *store, &opts)
        })?;
        out.map_err(|e| self.plugin_error("check-options", policy_conv::error_from_wit(e)))
    }

    /// Bucket starts for each timestamp.
    pub fn bucket_starts(
        &self,
        ts: &[i64],
        opts: &[(String, String)],
    ) -> Result<Vec<i64>, CallError> {
        let opts = str_pairs(opts);
        let out = self.runtime.call(&self.meta, "bucket-starts", |store| {
            let p = self.pre.instantiate(&mut *store)?;
            p.strata_plugin_retention_policy()
                .call_bucket_starts(&mut *store, ts, &opts)
        })?;
        let starts =
            out.map_err(|e| self.plugin_error("bucket-starts", policy_conv::error_from_wit(e)))?;
        if starts.len() != ts.len() {
            return Err(self.plugin_error(
                "bucket-starts",
                sdk::Error::Internal(format!(
                    "returned {} starts for {} timestamps",
                    starts.len(),
                    ts.len()
                )),
            ));
        }
        Ok(starts)
    }

    /// The survivors of `batch` (sorted by (coin, ts)); the result is checked.
    pub fn select(
        &self,
        batch: &sdk::Batch,
        last_kept: &[Option<i64>],
        opts: &[(String, String)],
    ) -> Result<sdk::Selection, CallError> {
        let opts = str_pairs(opts);
        let out = policy_conv::with_wit_batch(batch, |data| {
            self.runtime.call(&self.meta, "select", |store| {
                let p = self.pre.instantiate(&mut *store)?;
                p.strata_plugin_retention_policy()
                    .call_select(&mut *store, data, last_kept, &opts)
            })
        })?;
        let selection =
            match out.map_err(|e| self.plugin_error("select", policy_conv::error_from_wit(e)))? {
                policy::exports::strata::plugin::retention_policy::Selection::Keep(k) => {
                    sdk::Selection::Keep(k)
                }
                policy::exports::strata::plugin::retention_policy::Selection::Rollup(b) => {
                    sdk::Selection::Rollup(policy_conv::batch_from_wit(b))
                }
            };
        sdk::verify_selection(batch, &selection).map_err(|e| self.plugin_error("select", e))?;
        Ok(selection)
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
