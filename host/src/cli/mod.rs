//! The `strata` command line: [`args`] declares every command and option, [`run`] hands each
//! command to its function in [`commands`] (or [`plugins`]), and the helpers here are what the commands share
//! (the plugin runtime from the global options, the data directory and store, the policy, time
//! parsing). [`print`] formats answers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use strata::plugin::{self, Limits, Runtime, RuntimeConfig};

pub(crate) mod args;
mod commands;
mod plugins;
mod print;

use args::*;

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Parse(a) => commands::parse(g, a),
        Command::Compare(a) => commands::compare(g, a),
        Command::Plan(a) => commands::plan(g, a),
        Command::Plugins(a) => plugins::plugins(g, a),
        Command::Plugin {
            command: PluginCommand::Install { path },
        } => plugins::install_plugin(g, &path),
        Command::Plugin {
            command: PluginCommand::New { kind, name, dir },
        } => plugins::new_plugin(kind, &name, dir),
        Command::Plugin {
            command: PluginCommand::Build { dir },
        } => plugins::build_plugin(&dir).map(|_| ExitCode::SUCCESS),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    plugin,
                    sha256,
                    options,
                },
        } => plugins::test_plugin(g, &plugin, sha256, &options),
        Command::Ingest(a) => commands::ingest(g, a),
        Command::Demo(a) => commands::demo(g, a),
        Command::Generate(a) => commands::generate(g, a),
        Command::Collect(a) => commands::collect(g, a),
        Command::Tier(a) => commands::tier(g, a),
        Command::Compact(a) => commands::compact(g, a),
        Command::Serve(a) => commands::serve(g, a),
        Command::Query(a) => commands::query(g, a),
        Command::Latest(a) => commands::latest(g, a),
        Command::Stats => commands::stats(g),
        Command::Bench(a) => commands::bench(g, a),
        Command::Verify(a) => commands::verify(g, a),
        Command::Backup(a) => commands::backup(g, a),
        Command::Restore(a) => commands::restore(g, a),
    }
}

pub(crate) fn runtime(g: &Global) -> Result<Runtime> {
    if !(g.plugin_time > 0.0 && g.plugin_time.is_finite()) {
        bail!(
            "--plugin-time must be a positive number of seconds, not {}",
            g.plugin_time
        );
    }
    Runtime::new(RuntimeConfig {
        limits: Limits {
            memory_bytes: g.plugin_memory << 20,
            time: Duration::from_secs_f64(g.plugin_time),
            output_bytes: g.plugin_output << 20,
            output_ratio: g.plugin_output_ratio,
            ..Limits::default()
        },
        cache_dir: g
            .cache_dir
            .clone()
            .or_else(plugin::CompileCache::default_dir),
        plugin_dir: plugin::default_plugin_dir(),
    })
}

/// `strata parse`: reads a file through `strata::source` and summarises it.
/// Reads a whole input file into one batch, reporting (and skipping) rows it cannot read.
pub(crate) fn read_input(path: &std::path::Path, args: &SourceArgs) -> Result<strata::sdk::Batch> {
    let mut batch = strata::sdk::Batch::default();
    let mut rejected = 0usize;
    for chunk in strata::source::open(path, args.format, &args.options()?)? {
        let chunk = chunk?;
        for e in chunk.errors.iter().take(5usize.saturating_sub(rejected)) {
            eprintln!("skipping: {e}");
        }
        rejected += chunk.errors.len();
        batch.extend_from(&chunk.batch);
    }
    if rejected > 0 {
        eprintln!("skipped {rejected} rows that could not be read");
    }
    if batch.is_empty() {
        bail!("{}: no rows to work on", path.display());
    }
    Ok(batch)
}

/// The policy file at `path`, or the built-in default policy.
pub(crate) fn load_policy(path: Option<&std::path::Path>) -> Result<strata::policy::Policy> {
    match path {
        Some(p) => strata::policy::load(p),
        None => Ok(strata::policy::default_policy()),
    }
}

/// The checked policy at `path` (or the default), with its plugins loaded for tiering.
pub(crate) fn tier_plan(
    rt: &Runtime,
    path: Option<&std::path::Path>,
) -> Result<strata::tiering::Plan> {
    strata::tiering::Plan::from_policy(rt, &load_policy(path)?)
}

/// Peak resident memory of this process (Linux), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn data_dir(g: &Global) -> PathBuf {
    g.data
        .clone()
        .or_else(|| std::env::var_os("STRATA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(strata::store::DEFAULT_DATA_DIR))
}

pub(crate) fn open_store(g: &Global) -> Result<strata::Store> {
    let dir = data_dir(g);
    let options = strata::store::StoreOptions {
        segment_store: strata::segment_store::from_env(&dir)?,
        ..Default::default()
    };
    let store = strata::Store::open_with(&dir, options)?;
    store.set_runtime(runtime(g)?);
    Ok(store)
}

pub(crate) use strata::source::parse_time;

pub(crate) fn parse_options(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("option `{o}` is not KEY=VALUE"))
        })
        .collect()
}
