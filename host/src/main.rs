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
    /// Data directory (default: $STRATA_DATA, else ./strata-data).
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OutFormat {
    Table,
    Csv,
    Json,
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
    /// Ingest files (canonical CSV or JSONL, or the CoinGecko CSV; gzip is detected).
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Report invalid rows and load the rest (default: strict, nothing is applied if any
        /// row is invalid).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write synthetic market data (canonical CSV, or JSONL when FILE ends in .jsonl).
    Generate {
        #[arg(long, default_value_t = 100)]
        coins: usize,
        #[arg(long, default_value_t = 30)]
        days: usize,
        /// Step between observations: Nh or Nm (e.g. 1h).
        #[arg(long, default_value = "1h")]
        interval: String,
        /// First timestamp (RFC 3339, a date, or ms).
        #[arg(long, default_value = "2024-01-01")]
        start: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Move everything that has aged past its tier into the next tier.
    Tier {
        /// The time to age against (RFC 3339, a date, or ms; default: now).
        #[arg(long)]
        now: Option<String>,
        /// Show what would move, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// One coin's rows from every tier, oldest first.
    Query {
        coin: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = OutFormat::Table)]
        format: OutFormat,
    },
    /// A coin's newest rows.
    Latest {
        coin: String,
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
        #[arg(long, value_enum, default_value_t = OutFormat::Table)]
        format: OutFormat,
    },
    /// Rows, segments, bytes and time range per tier.
    Stats,
    /// Check checksums, the catalog against the files, and decode every segment.
    Verify,
    /// Measure the engine's figures against their targets (use a release build).
    Bench {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// A smaller scale (seconds instead of minutes).
        #[arg(long)]
        quick: bool,
        /// Also time importing this CoinGecko CSV (coin_id,timestamp,price,volume,market_cap).
        #[arg(long, value_name = "FILE")]
        coingecko: Option<PathBuf>,
        /// Build the benchmark stores under this directory (default: the system temp dir).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
        Command::Ingest {
            files,
            skip_invalid,
        } => {
            let mut store = open_store(&cli.global)?;
            let mode = if skip_invalid {
                strata::ingest::Mode::SkipInvalid
            } else {
                strata::ingest::Mode::Strict
            };
            let t = std::time::Instant::now();
            let rep = store.ingest_files(&files, mode)?;
            for e in &rep.errors {
                eprintln!("skipped {e}");
            }
            println!(
                "ingested {} rows in {:.2} s ({} invalid rows skipped)",
                rep.rows,
                t.elapsed().as_secs_f64(),
                rep.errors.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate {
            coins,
            days,
            interval,
            start,
            seed,
            out,
        } => {
            let step = match interval.strip_suffix('h') {
                Some(h) => h.parse::<i64>().ok().map(|h| h * 3_600_000),
                None => interval
                    .strip_suffix('m')
                    .and_then(|m| m.parse::<i64>().ok())
                    .map(|m| m * 60_000),
            }
            .filter(|&s| s > 0)
            .with_context(|| format!("--interval `{interval}`: expected Nh or Nm, e.g. 1h"))?;
            let cfg = strata::generate::GenConfig {
                coins,
                start: parse_time(&start).context("--start")?,
                steps: (days as i64 * 86_400_000 / step) as usize,
                interval: step,
                seed,
            };
            let batch = strata::generate::Generator::new(cfg).all();
            let f = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let mut w = std::io::BufWriter::new(f);
            if out.extension().is_some_and(|e| e == "jsonl") {
                use std::io::Write;
                let mut buf = Vec::new();
                strata::sdk::jsonl::write(&batch, &mut buf);
                w.write_all(&buf)?;
            } else {
                strata::generate::write_csv(&batch, &mut w)?;
            }
            std::io::Write::flush(&mut w)?;
            println!("wrote {} rows to {}", batch.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tier { now, dry_run } => {
            let mut store = open_store(&cli.global)?;
            let rt = runtime(&cli.global)?;
            let plan = strata::tiering::Plan::load(&rt, &strata::tiering::default_tiers())?;
            let now = match now {
                Some(n) => parse_time(&n).context("--now")?,
                None => chrono::Utc::now().timestamp_millis(),
            };
            let reports = store.tier(&plan, now, dry_run)?;
            for r in reports {
                println!(
                    "{} -> {}: rows older than {} : {} read, {} kept, {} segments written ({} bytes), {} removed{}",
                    r.from,
                    r.to,
                    format_time(r.cut),
                    r.rows_read,
                    r.rows_kept,
                    r.segments_written,
                    r.bytes_written,
                    r.segments_removed,
                    if dry_run { " (dry run)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            coin,
            from,
            to,
            format,
        } => {
            let store = open_store(&cli.global)?;
            let from = from
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or(i64::MIN);
            let to = to
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or(i64::MAX);
            print_answer(&store.query(&coin, from, to)?, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Latest { coin, n, format } => {
            let store = open_store(&cli.global)?;
            print_answer(&store.latest(&coin, n)?, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats => {
            let store = open_store(&cli.global)?;
            println!(
                "{:<10} {:>12} {:>9} {:>14} {:>9} {:<20} {:<20} CODEC",
                "TIER", "ROWS", "SEGMENTS", "BYTES", "B/REC", "OLDEST", "NEWEST"
            );
            for t in store.stats()? {
                println!(
                    "{:<10} {:>12} {:>9} {:>14} {:>9} {:<20} {:<20} {}",
                    t.tier,
                    t.rows,
                    t.segments,
                    t.bytes,
                    t.bytes_per_record()
                        .map(|b| format!("{b:.1}"))
                        .unwrap_or_default(),
                    t.oldest.map(format_time).unwrap_or_default(),
                    t.newest.map(format_time).unwrap_or_default(),
                    t.codecs.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            json,
            quick,
            coingecko,
            dir,
        } => {
            let mut cfg = if quick {
                strata::bench::BenchConfig::quick()
            } else {
                strata::bench::BenchConfig::full()
            };
            cfg.coingecko = coingecko;
            cfg.dir = dir;
            let rt = runtime(&cli.global)?;
            let figures = strata::bench::run(&cfg, &rt, &mut |m| eprintln!("bench: {m}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                for f in &figures {
                    println!(
                        "{:<70} {:>14.3} {:<6} target {} {} {:<6} prototype {:<12} {}",
                        f.name,
                        f.value,
                        f.unit,
                        if f.higher_is_better { ">=" } else { "<=" },
                        f.target,
                        if f.meets_target() { "MET" } else { "MISSED" },
                        f.prototype
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into()),
                        f.scale
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let store = open_store(&cli.global)?;
            let rep = store.verify()?;
            for f in &rep.faults {
                println!("FAULT {f}");
            }
            println!(
                "checked {} segments, {} rows: {} faults",
                rep.segments,
                rep.rows,
                rep.faults.len()
            );
            Ok(if rep.faults.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn data_dir(g: &Global) -> PathBuf {
    g.data
        .clone()
        .or_else(|| std::env::var_os("STRATA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(strata::store::DEFAULT_DATA_DIR))
}

fn open_store(g: &Global) -> Result<strata::Store> {
    let store = strata::Store::open(data_dir(g))?;
    store.set_runtime(runtime(g)?);
    Ok(store)
}

/// Milliseconds from `ms`, RFC 3339 or `YYYY-MM-DD` (UTC).
fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    bail!("`{s}` is not a time (use ms since 1970, RFC 3339 or YYYY-MM-DD)")
}

fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn print_answer(a: &strata::query::Answer, format: OutFormat) -> Result<()> {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let coin = a.rows.coins.first().map(String::as_str).unwrap_or("");
    let num = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v:?}")
        }
    };
    match format {
        OutFormat::Table => {
            writeln!(
                out,
                "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                "TIME", "TIER", "PRICE", "MARKET_CAP", "VOLUME", "SUPPLY", "RANK"
            )?;
            for (r, tier) in a.rows.rows().zip(&a.tier) {
                writeln!(
                    out,
                    "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                    format_time(r.ts),
                    tier,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    if r.rank == 0 {
                        String::new()
                    } else {
                        r.rank.to_string()
                    }
                )?;
            }
        }
        OutFormat::Csv => {
            writeln!(out, "coin,ts,price,market_cap,volume,supply,rank,tier")?;
            for (r, tier) in a.rows.rows().zip(&a.tier) {
                writeln!(
                    out,
                    "{coin},{},{},{},{},{},{},{tier}",
                    r.ts,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    if r.rank == 0 {
                        String::new()
                    } else {
                        r.rank.to_string()
                    }
                )?;
            }
        }
        OutFormat::Json => {
            let f = |v: f64| {
                if v.is_finite() {
                    serde_json::json!(v)
                } else if v.is_nan() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
                }
            };
            let rows: Vec<serde_json::Value> = a
                .rows
                .rows()
                .zip(&a.tier)
                .map(|(r, tier)| {
                    serde_json::json!({
                        "coin": coin, "ts": r.ts, "price": f(r.price), "market_cap": f(r.market_cap),
                        "volume": f(r.volume), "supply": f(r.supply), "rank": r.rank, "tier": &**tier,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
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
        "{:<14} {:<7} {:<8} {:>9}  {:<16}  {}",
        "NAME", "KIND", "VERSION", "SIZE", "SHA256", "SOURCE"
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
