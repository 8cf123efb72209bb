//! The `strata` command line. Each subcommand is a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use strata::plugin::{self, Limits, Plugin, PluginRef, Runtime, RuntimeConfig};

/// strata: tiered storage for crypto market history, with codecs and retention rules as
/// WebAssembly plugins.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Directory for compiled plugins (default: $STRATA_CACHE_DIR, $XDG_CACHE_HOME/strata or
    /// ~/.cache/strata).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Memory limit per plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 1024, value_name = "MIB")]
    plugin_memory: usize,
    /// Time limit per plugin call, in seconds.
    #[arg(long, global = true, default_value_t = 60.0, value_name = "SECS")]
    plugin_time: f64,
    /// Largest output of one plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 1024, value_name = "MIB")]
    plugin_output: usize,
    /// Log level filter (e.g. `info`, `strata=debug`); also read from RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// List plugins: the built-ins and the components in --plugin-dir.
    Plugins {
        /// Also list every `.wasm` component in this directory.
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Work with one plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Read a data file without storing it: print what was read, the rejected rows and the speed.
    Parse {
        /// The file (gzip is detected).
        file: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Rejected rows to print.
        #[arg(long, default_value_t = 10, value_name = "N")]
        show_errors: usize,
    },
}

/// How to read an input file (see `strata::source`).
#[derive(Args)]
struct SourceArgs {
    /// Input format: auto, csv, jsonl, coingecko-csv, coingecko-2021-csv, cmc-ndjson,
    /// coinpaprika-tickers, coinpaprika-historical.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    format: strata::source::Format,
    /// Column mapping for other CSVs, e.g. `coin=Symbol,ts=Date,price=Close`.
    #[arg(long, value_name = "FIELD=COLUMN,...")]
    map: Option<strata::source::ColumnMap>,
    /// Unit of numeric timestamps in CSV input: s, ms, us or ns.
    #[arg(long, default_value = "ms", value_name = "UNIT")]
    ts_unit: strata::source::TsUnit,
    /// strftime format of text timestamps in CSV input, e.g. `%Y-%m-%d` (UTC unless it has %z).
    #[arg(long, value_name = "FORMAT")]
    ts_format: Option<String>,
    /// Coin id for inputs without one (a CSV without a coin column, a Coinpaprika historical
    /// response).
    #[arg(long, value_name = "ID")]
    coin: Option<String>,
    /// CSV field delimiter (one ASCII character).
    #[arg(long, default_value = ",", value_name = "CHAR")]
    delimiter: char,
    /// Rows per chunk.
    #[arg(long, default_value_t = 65_536, value_name = "ROWS")]
    chunk_rows: usize,
}

impl SourceArgs {
    fn options(&self) -> Result<strata::source::ReadOptions> {
        if !self.delimiter.is_ascii() {
            bail!(
                "--delimiter must be one ASCII character, not `{}`",
                self.delimiter
            );
        }
        Ok(strata::source::ReadOptions {
            chunk_rows: self.chunk_rows,
            map: self.map.clone().unwrap_or_default(),
            ts_unit: self.ts_unit,
            ts_format: self.ts_format.clone(),
            coin: self.coin.clone(),
            delimiter: self.delimiter as u8,
        })
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run the conformance suite on a plugin (a built-in name or a .wasm path).
    Test {
        /// Built-in name or path to a .wasm component.
        plugin: String,
        /// Expected sha256 of the component; refuse to load on mismatch.
        #[arg(long)]
        sha256: Option<String>,
        /// A plugin option, `key=value`; repeatable.
        #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log.as_deref());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(tracing_subscriber::EnvFilter::new)
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime(g: &Global) -> Result<Runtime> {
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
        },
        cache_dir: g
            .cache_dir
            .clone()
            .or_else(plugin::CompileCache::default_dir),
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Parse {
            file,
            source,
            show_errors,
        } => parse_file(&file, &source, show_errors),
        Command::Plugins { plugin_dir } => {
            let rt = runtime(&cli.global)?;
            list_plugins(&rt, plugin_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Test {
                    plugin,
                    sha256,
                    options,
                },
        } => {
            let rt = runtime(&cli.global)?;
            let mut r = PluginRef::parse(&plugin);
            r.sha256 = sha256;
            let opts = parse_options(&options)?;
            let loaded = rt.load(&r)?;
            let report = plugin::conformance::run(&loaded, &opts);
            for c in &report.checks {
                match &c.outcome {
                    Ok(()) => println!("ok    {}", c.name),
                    Err(e) => println!("FAIL  {}: {e}", c.name),
                }
            }
            let failed = report.failures().count();
            println!("{} passed, {} failed", report.checks.len() - failed, failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `strata parse`: reads a file through `strata::source` and summarises it.
fn parse_file(file: &std::path::Path, args: &SourceArgs, show_errors: usize) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let reader = strata::source::open(file, args.format, &args.options()?)?;
    let format = reader.format();
    let (mut rows, mut errors, mut chunks) = (0usize, 0usize, 0usize);
    let mut coins = std::collections::HashSet::new();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for chunk in reader {
        let chunk = chunk?;
        chunks += 1;
        rows += chunk.batch.len();
        for e in &chunk.errors {
            if errors < show_errors {
                println!("rejected: {e}");
            }
            errors += 1;
        }
        coins.extend(chunk.batch.coins);
        if let (Some(lo), Some(hi)) = (chunk.batch.ts.iter().min(), chunk.batch.ts.iter().max()) {
            min_ts = min_ts.min(*lo);
            max_ts = max_ts.max(*hi);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("format:   {format}");
    println!("rows:     {rows} in {chunks} chunks, {} coins", coins.len());
    println!("rejected: {errors}");
    if rows > 0 {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
        };
        println!("time:     {} .. {}", time(min_ts), time(max_ts));
    }
    println!(
        "speed:    {secs:.3} s, {:.2} M rows/s",
        (rows + errors) as f64 / secs.max(1e-9) / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_options(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("option `{o}` is not KEY=VALUE"))
        })
        .collect()
}

fn list_plugins(rt: &Runtime, dir: Option<PathBuf>) -> Result<()> {
    let mut rows: Vec<(String, Plugin)> = Vec::new();
    for b in plugin::BUILTINS {
        rows.push(("built-in".into(), rt.load(&PluginRef::parse(b.name))?));
    }
    if let Some(dir) = dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading plugin directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        for p in paths {
            match rt.load(&PluginRef {
                source: plugin::PluginSource::Path(p.clone()),
                sha256: None,
            }) {
                Ok(pl) => rows.push((p.display().to_string(), pl)),
                Err(e) => eprintln!("skipping {}: {e:#}", p.display()),
            }
        }
    }
    println!(
        "{:<14} {:<7} {:<8} {:>9}  {:<16}  SOURCE",
        "NAME", "KIND", "VERSION", "SIZE", "SHA256"
    );
    for (source, p) in &rows {
        let m = p.meta();
        let info = p.info();
        println!(
            "{:<14} {:<7} {:<8} {:>9}  {:<16}  {}",
            info.name,
            m.kind.to_string(),
            info.version,
            format!("{:.1} KiB", m.size as f64 / 1024.0),
            &m.sha256[..16],
            source
        );
        println!("    {}", info.description);
        for o in &info.options {
            println!(
                "    --option {}=<{}>  (default {}) {}",
                o.name, o.kind, o.default_value, o.description
            );
        }
    }
    Ok(())
}
