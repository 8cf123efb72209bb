//! The `strata` command line. Each subcommand is a thin layer over the library.

use std::path::{Path, PathBuf};
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
    /// Largest output of any plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 1024, value_name = "MIB")]
    plugin_output: usize,
    /// A plugin call's output may be at most this many times the raw bytes of its input rows
    /// (at least 16 MiB, at most --plugin-output).
    #[arg(long, global = true, default_value_t = 16, value_name = "RATIO")]
    plugin_output_ratio: usize,
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
    /// Run every codec on the same data: size, speed through wasm and natively, plugin tax.
    Compare {
        /// Input data: CSV or JSONL (canonical, CoinGecko, ...), gzip-compressed or not.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Codecs to compare (built-in or installed names, .wasm paths), comma-separated; `all` is
        /// every built-in (`all,my-codec.wasm` adds one).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "all",
            value_name = "A,B,..."
        )]
        codecs: Vec<String>,
        /// A codec option, `codec.key=value` (e.g. `parquet.compression=brotli`); repeatable.
        #[arg(long = "option", short = 'o', value_name = "CODEC.KEY=VALUE")]
        options: Vec<String>,
        /// Use only the first N rows of the input.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Timed runs per operation (the best is reported).
        #[arg(long, default_value_t = 1, value_name = "N")]
        runs: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write a bar chart (bytes per record and throughput) to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
    },
    /// Storage per tier per year, and its cost, for a policy.
    Plan {
        /// Policy file (default: the built-in default policy).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Number of coins collected.
        #[arg(long, default_value_t = 13_532)]
        coins: u64,
        /// Collection interval.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        interval: humantime::Duration,
        /// Years to plan for.
        #[arg(long, default_value_t = 5)]
        years: u32,
        /// Storage price, `class=USD per GB-month`; repeatable. Defaults: local-ssd=0.08,
        /// object-standard=0.023, object-infrequent=0.0125, object-archive=0.00099.
        #[arg(long = "price-per-gb", value_name = "CLASS=USD")]
        prices: Vec<String>,
        /// Data to measure each tier codec on (default: strata's real-data extract).
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Ingest files: canonical CSV or JSONL, the CoinGecko CSVs, CMC ndjson, Coinpaprika
    /// responses, or any CSV through --map (gzip is detected).
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        /// Report invalid rows and load the rest (default: strict, nothing is applied if any
        /// row is invalid).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// The main job end to end, at full scale, no network: generate 13,532 coins (hourly for
    /// the last 30 days, daily back to 1 year, weekly back to 6 years), ingest, age through
    /// every tier of the default policy, query a few coins, compare codecs, plan 5 years.
    /// Uses a temporary store unless --data is given.
    Demo {
        /// Coins to generate.
        #[arg(long, default_value_t = 13_532)]
        coins: usize,
        /// Days of hourly history before "now" (2026-01-01).
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        hourly_days: i64,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
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
    /// Collect Coinpaprika tickers (every coin, one request), ingest them, then run any tier
    /// transitions that are due.
    Collect {
        /// API base URL.
        #[arg(long, default_value = strata::source::coinpaprika::DEFAULT_BASE_URL, value_name = "BASE")]
        url: String,
        /// Poll once and exit (the default).
        #[arg(long, conflicts_with = "every")]
        once: bool,
        /// Poll forever at this interval, e.g. `1h`.
        #[arg(long, value_name = "DURATION")]
        every: Option<humantime::Duration>,
        /// Instead of tickers, backfill one coin from /v1/tickers/{COIN}/historical.
        #[arg(long, value_name = "COIN", requires = "from")]
        backfill: Option<String>,
        /// Backfill start (RFC 3339, a date, or ms).
        #[arg(long)]
        from: Option<String>,
        /// Backfill end (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Backfill interval as the API names it (`5m`, `1h`, `1d`, ...).
        #[arg(long, default_value = "1h")]
        interval: String,
        /// Policy for the tier transitions (default: the built-in default policy).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Move everything that has aged past its tier into the next tier.
    Tier {
        /// Policy file (default: the built-in default policy, policies/default.toml).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
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
        /// Leave out segments that cannot be read (named on stderr) instead of failing.
        #[arg(long)]
        skip_damaged: bool,
    },
    /// A coin's newest rows.
    Latest {
        coin: String,
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
        #[arg(long, value_enum, default_value_t = OutFormat::Table)]
        format: OutFormat,
        /// Leave out segments that cannot be read (named on stderr) instead of failing.
        #[arg(long)]
        skip_damaged: bool,
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
        /// Only the tier-transition and cross-tier range figures.
        #[arg(long)]
        transition_only: bool,
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
    /// Install a .wasm component into the plugin directory ($STRATA_PLUGIN_DIR, else
    /// ~/.local/share/strata/plugins) under the name it gives itself, so policies and commands
    /// can name it like a built-in.
    Install {
        /// Path to the .wasm component.
        path: PathBuf,
    },
    /// Write a new plugin crate (a working example, its tests, the SDK and the WIT contract)
    /// into DIR, ready for `cargo test` and `strata plugin build`.
    New {
        /// `codec` or `policy`.
        kind: NewKind,
        /// The plugin's name: a-z, 0-9, `-`, `_`, starting with a letter.
        name: String,
        /// Where to write the crate (new or empty); default: ./NAME.
        dir: Option<PathBuf>,
    },
    /// Build the plugin crate in DIR into a component, DIR/NAME.wasm (adds the wasm32-wasip2
    /// target through rustup when it is missing).
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the conformance suite on a plugin: a built-in name, a .wasm path, or a plugin
    /// crate's directory (built first). For a codec, also its size and speed on the real-data
    /// extract beside the built-in codecs.
    Test {
        /// Built-in name, path to a .wasm component, or a plugin crate's directory.
        #[arg(default_value = ".")]
        plugin: String,
        /// Expected sha256 of the component; refuse to load on mismatch.
        #[arg(long)]
        sha256: Option<String>,
        /// A plugin option, `key=value`; repeatable.
        #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum NewKind {
    Codec,
    Policy,
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

/// Prints an answer, naming on stderr the segments it skipped; exits 2 if it skipped any, so
/// a script notices the answer is partial.
fn answer_with_skips(answer: &strata::query::Answer, format: OutFormat) -> Result<ExitCode> {
    print_answer(answer, format)?;
    for s in &answer.skipped {
        eprintln!("strata: skipped damaged segment {s}");
    }
    Ok(if answer.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Parse {
            file,
            source,
            show_errors,
        } => parse_file(&file, &source, show_errors),
        Command::Compare {
            input,
            source,
            codecs,
            options,
            limit,
            runs,
            json,
            chart,
        } => {
            // Whole data sets go through one call: give plugins room for them.
            let rt = runtime(&cli.global)?;
            let rt = rt.with_limits(plugin::Limits {
                time: rt.limits().time.max(Duration::from_secs(900)),
                memory_bytes: rt.limits().memory_bytes.max(3 << 30),
                output_bytes: rt.limits().output_bytes.max(2 << 30),
                ..rt.limits().clone()
            });
            let mut batch = read_input(&input, &source)?;
            if let Some(n) = limit.filter(|&n| n < batch.len()) {
                batch = batch.take(&(0..n as u32).collect::<Vec<_>>());
            }
            let options = options
                .iter()
                .map(|o| {
                    let (k, v) = o
                        .split_once('=')
                        .with_context(|| format!("option `{o}` is not CODEC.KEY=VALUE"))?;
                    let (c, k) = k
                        .split_once('.')
                        .with_context(|| format!("option `{o}` is not CODEC.KEY=VALUE"))?;
                    Ok((
                        c.trim().to_string(),
                        k.trim().to_string(),
                        v.trim().to_string(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let opts = strata::compare::CompareOptions {
                codecs,
                options,
                runs,
            };
            eprintln!(
                "comparing codecs on {} rows of {}",
                batch.len(),
                input.display()
            );
            let figures = strata::compare::compare(&rt, &batch, &opts, |c| eprintln!("  {c}..."));
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                print!("{}", strata::compare::table(&figures));
            }
            if let Some(path) = chart {
                let title = input
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::write(&path, strata::compare::chart_svg(&figures, &title)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("chart written to {}", path.display());
            }
            let bad = figures
                .iter()
                .filter(|f| f.error.is_some() || !f.round_trip_ok)
                .count();
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Plan {
            policy,
            coins,
            interval,
            years,
            prices,
            input,
            source,
            json,
        } => {
            let rt = runtime(&cli.global)?;
            let policy = load_policy(policy.as_deref())?;
            let mut opts = strata::plan::PlanOptions {
                coins,
                interval: interval.as_millis() as i64,
                years,
                ..Default::default()
            };
            for p in &prices {
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("--price-per-gb `{p}` is not CLASS=USD"))?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .with_context(|| format!("--price-per-gb `{p}`: `{v}` is not a number"))?;
                match opts.prices.iter_mut().find(|(c, _)| c == k.trim()) {
                    Some(slot) => slot.1 = v,
                    None => opts.prices.push((k.trim().to_string(), v)),
                }
            }
            let sample = match input {
                Some(path) => read_input(&path, &source)?,
                None => plugin::conformance::real_extract(),
            };
            let plan = strata::plan::plan(&rt, &policy, &sample, &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", strata::plan::table(&plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { plugin_dir } => {
            let rt = runtime(&cli.global)?;
            list_plugins(&rt, plugin_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Install { path },
        } => install_plugin(&cli.global, &path),
        Command::Plugin {
            command: PluginCommand::New { kind, name, dir },
        } => new_plugin(kind, &name, dir),
        Command::Plugin {
            command: PluginCommand::Build { dir },
        } => build_plugin(&dir).map(|_| ExitCode::SUCCESS),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    plugin,
                    sha256,
                    options,
                },
        } => test_plugin(&cli.global, &plugin, sha256, &options),
        Command::Ingest {
            files,
            source,
            skip_invalid,
        } => {
            let mut store = open_store(&cli.global)?;
            let mode = if skip_invalid {
                strata::ingest::Mode::SkipInvalid
            } else {
                strata::ingest::Mode::Strict
            };
            let t = std::time::Instant::now();
            let rep = store.ingest_files(&files, source.format, &source.options()?, mode)?;
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
        Command::Demo {
            coins,
            hourly_days,
            seed,
        } => {
            let cfg = strata::demo::DemoConfig {
                coins,
                hourly_days,
                seed,
                ..Default::default()
            };
            demo(&cli.global, &cfg)?;
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
        Command::Collect {
            url,
            once: _,
            every,
            backfill,
            from,
            to,
            interval,
            policy,
        } => {
            let mut store = open_store(&cli.global)?;
            let rt = runtime(&cli.global)?;
            let plan = tier_plan(&rt, policy.as_deref())?;
            let client = strata::source::coinpaprika::Client::new(&url, Default::default())?;
            let mut sink = |chunk: strata::source::Chunk| -> Result<()> {
                let rep = store.ingest_chunks(
                    std::iter::once(Ok(chunk.into())),
                    strata::ingest::Mode::SkipInvalid,
                )?;
                for e in &rep.errors {
                    eprintln!("skipped {e}");
                }
                let moved = store.tier(&plan, chrono::Utc::now().timestamp_millis(), false)?;
                let kept: u64 = moved.iter().map(|r| r.rows_kept).sum();
                println!(
                    "ingested {} rows ({} skipped); {} rows moved to colder tiers",
                    rep.rows,
                    rep.errors.len(),
                    kept
                );
                Ok(())
            };
            match backfill {
                Some(coin) => {
                    let from = parse_time(from.as_deref().unwrap_or_default()).context("--from")?;
                    let to = match to {
                        Some(t) => parse_time(&t).context("--to")?,
                        None => chrono::Utc::now().timestamp_millis(),
                    };
                    let chunk = client.fetch_historical(&coin, from, to, &interval)?;
                    sink(chunk)?;
                }
                None => {
                    strata::source::coinpaprika::collect(&client, every.map(Into::into), &mut sink)?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tier {
            policy,
            now,
            dry_run,
        } => {
            let mut store = open_store(&cli.global)?;
            let rt = runtime(&cli.global)?;
            let plan = tier_plan(&rt, policy.as_deref())?;
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
                for w in &r.warnings {
                    println!("  note: {w}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            coin,
            from,
            to,
            format,
            skip_damaged,
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
            answer_with_skips(&store.query_with(&coin, from, to, skip_damaged)?, format)
        }
        Command::Latest {
            coin,
            n,
            format,
            skip_damaged,
        } => {
            let store = open_store(&cli.global)?;
            answer_with_skips(&store.latest_with(&coin, n, skip_damaged)?, format)
        }
        Command::Stats => {
            let store = open_store(&cli.global)?;
            print!("{}", strata::verify::stats_table(&store.stats()?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            json,
            quick,
            coingecko,
            dir,
            transition_only,
        } => {
            let mut cfg = if quick {
                strata::bench::BenchConfig::quick()
            } else {
                strata::bench::BenchConfig::full()
            };
            cfg.coingecko = coingecko;
            cfg.dir = dir;
            cfg.transition_only = transition_only;
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

/// `strata parse`: reads a file through `strata::source` and summarises it.
/// Reads a whole input file into one batch, reporting (and skipping) rows it cannot read.
fn read_input(path: &std::path::Path, args: &SourceArgs) -> Result<strata::sdk::Batch> {
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

/// The policy file at `path`, or the built-in default policy.
fn load_policy(path: Option<&std::path::Path>) -> Result<strata::policy::Policy> {
    match path {
        Some(p) => strata::policy::load(p),
        None => Ok(strata::policy::default_policy()),
    }
}

/// The checked policy at `path` (or the default), with its plugins loaded for tiering.
fn tier_plan(rt: &Runtime, path: Option<&std::path::Path>) -> Result<strata::tiering::Plan> {
    let policy = load_policy(path)?;
    policy.check(rt)?;
    strata::tiering::Plan::load(rt, &strata::tiering::tiers_from_policy(&policy))
}

/// A rank as printed: empty when unknown (0).
fn rank_text(rank: u32) -> String {
    if rank == 0 {
        String::new()
    } else {
        rank.to_string()
    }
}

/// `strata demo`: runs [`strata::demo`] with progress bars and prints its summary.
fn demo(g: &Global, cfg: &strata::demo::DemoConfig) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use strata::plan::human_bytes;

    // Without --data, a temporary store removed when the demo ends.
    let temp = match &g.data {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("strata-demo-").tempdir()?),
    };
    let (dir, keep) = match (&g.data, &temp) {
        (Some(d), _) => (d.clone(), true),
        (None, t) => (t.as_ref().expect("made above").path().to_path_buf(), false),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty: the demo needs a new or empty data directory",
            dir.display()
        );
    }
    let rt = runtime(g)?;
    let mut store = strata::Store::open(&dir)?;
    let days = |d: i64| {
        if d == 1 {
            "1 day".to_string()
        } else {
            format!("{d} days")
        }
    };
    println!(
        "strata demo: {} coins, hourly for the last {}, daily back to {}, weekly back to {} \
         (each tier of the default policy fills at the density it keeps); now = {}",
        cfg.coins,
        days(cfg.hourly_days),
        days(cfg.daily_until),
        days(cfg.weekly_from),
        format_time(cfg.now)
    );
    println!("store: {}", dir.display());

    let style = ProgressStyle::with_template(
        "{prefix:>20} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    let spin = ProgressStyle::with_template("{prefix:>20} {spinner} {elapsed}").expect("valid");
    let mut bar: Option<ProgressBar> = None;
    let report = strata::demo::run(cfg, &rt, &mut store, &mut |e| match e {
        strata::demo::Event::Start { step, total } => {
            let b = if total > 0 {
                ProgressBar::new(total).with_style(style.clone())
            } else {
                let b = ProgressBar::new_spinner().with_style(spin.clone());
                b.enable_steady_tick(Duration::from_millis(100));
                b
            };
            bar = Some(b.with_prefix(step));
        }
        strata::demo::Event::Advance(n) => {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
        strata::demo::Event::Finish => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
    })?;

    let r = &report;
    let rate = |rows: u64, secs: f64| format!("{:.2} M rows/s", rows as f64 / secs.max(1e-9) / 1e6);
    println!();
    println!(
        "generated {} rows in {} steps ({:.1} s); ingested at {} ({:.1} s)",
        r.rows_generated,
        r.steps,
        r.generate_secs,
        rate(r.rows_generated, r.ingest_secs),
        r.ingest_secs
    );
    for m in &r.tier {
        println!(
            "tier {:>4} -> {:<7}: {:>10} rows read, {:>9} kept, {:>4} segments, {:>10}",
            m.from,
            m.to,
            m.rows_read,
            m.rows_kept,
            m.segments_written,
            human_bytes(m.bytes_written as f64)
        );
    }
    let moved: u64 = r.tier.first().map_or(0, |m| m.rows_read);
    println!(
        "tier transitions took {:.1} s ({} through wasm plugins)",
        r.tier_secs,
        rate(moved, r.tier_secs)
    );
    println!();
    print!("{}", strata::verify::stats_table(&r.stats));
    println!();
    for q in &r.queries {
        let tiers: Vec<String> = q
            .rows_by_tier
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!(
            "query {:<11} ({:<8}) {:>5} rows ({}) from {} to {}, last price {} ({:.1} ms)",
            q.coin,
            q.label,
            q.rows_by_tier.iter().map(|(_, n)| n).sum::<usize>(),
            tiers.join(", "),
            q.first_ts.map(format_time).unwrap_or_default(),
            q.last_ts.map(format_time).unwrap_or_default(),
            q.last_price,
            q.millis
        );
    }
    println!(
        "\ncodecs on {} hot-tier rows of {} coins:",
        r.sample_rows, cfg.sample_coins
    );
    print!("{}", strata::compare::table(&r.compare));
    println!();
    print!("{}", strata::plan::table(&r.plan));
    println!(
        "\ndone in {:.1} s{}",
        r.total_secs,
        peak_rss()
            .map(|b| format!(", peak memory {}", human_bytes(b as f64)))
            .unwrap_or_default()
    );
    if keep {
        println!(
            "the store is in {0}: try `strata --data {0} query {1}`",
            dir.display(),
            r.queries.first().map_or("coin-00000", |q| q.coin.as_str())
        );
    }
    Ok(())
}

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
    // Extra columns (a rollup's open/high/low/count) follow the fixed ones.
    let extras = &a.rows.extra;
    match format {
        OutFormat::Table => {
            write!(
                out,
                "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                "TIME", "TIER", "PRICE", "MARKET_CAP", "VOLUME", "SUPPLY", "RANK"
            )?;
            for c in extras {
                write!(out, " {:>18}", c.name.to_uppercase())?;
            }
            writeln!(out)?;
            for (i, (r, tier)) in a.rows.rows().zip(&a.tier).enumerate() {
                write!(
                    out,
                    "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                    format_time(r.ts),
                    tier,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    rank_text(r.rank)
                )?;
                for c in extras {
                    write!(out, " {:>18}", num(c.values[i]))?;
                }
                writeln!(out)?;
            }
        }
        OutFormat::Csv => {
            write!(out, "coin,ts,price,market_cap,volume,supply,rank,tier")?;
            for c in extras {
                write!(out, ",{}", c.name)?;
            }
            writeln!(out)?;
            for (i, (r, tier)) in a.rows.rows().zip(&a.tier).enumerate() {
                write!(
                    out,
                    "{coin},{},{},{},{},{},{},{tier}",
                    r.ts,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    rank_text(r.rank)
                )?;
                for c in extras {
                    write!(out, ",{}", num(c.values[i]))?;
                }
                writeln!(out)?;
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
                .enumerate()
                .map(|(i, (r, tier))| {
                    let mut row = serde_json::json!({
                        "coin": coin, "ts": r.ts, "price": f(r.price), "market_cap": f(r.market_cap),
                        "volume": f(r.volume), "supply": f(r.supply), "rank": r.rank, "tier": &**tier,
                    });
                    for c in extras {
                        row[c.name.as_str()] = f(c.values[i]);
                    }
                    row
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

/// `strata plugin install PATH.wasm`.
fn install_plugin(g: &Global, path: &Path) -> Result<ExitCode> {
    let rt = runtime(g)?;
    let (p, dest, replaced) = rt.install(path)?;
    let m = p.meta();
    println!(
        "installed {} `{}` {} ({} bytes, sha256 {}) as {}",
        m.kind,
        m.name,
        p.info().version,
        m.size,
        m.sha256,
        dest.display()
    );
    if let Some(old) = replaced {
        println!(
            "replaced the component with sha256 {old} (stores that used it keep their own copy)"
        );
    }
    println!(
        "use it in a policy as plugin = \"{}\" (pin it with sha256 = \"{}\")",
        m.name, m.sha256
    );
    Ok(ExitCode::SUCCESS)
}

fn list_plugins(rt: &Runtime, dir: Option<PathBuf>) -> Result<()> {
    let mut rows: Vec<(String, Plugin)> = Vec::new();
    for b in plugin::BUILTINS {
        rows.push(("built-in".into(), rt.load(&PluginRef::parse(b.name))?));
    }
    for (name, path) in rt.installed() {
        match rt.load(&PluginRef::parse(&name)) {
            Ok(pl) => rows.push((format!("installed: {}", path.display()), pl)),
            Err(e) => eprintln!("skipping installed {}: {e:#}", path.display()),
        }
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

/// `strata plugin new`: writes the crate and says what to do next.
fn new_plugin(kind: NewKind, name: &str, dir: Option<PathBuf>) -> Result<ExitCode> {
    let kind = match kind {
        NewKind::Codec => plugin::PluginKind::Codec,
        NewKind::Policy => plugin::PluginKind::Policy,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = strata::authoring::scaffold(kind, name, &dir)?;
    println!(
        "wrote the {kind} plugin `{name}` to {} ({} files)",
        dir.display(),
        files.len()
    );
    println!(
        "next: cd {} && cargo test && strata plugin build && strata plugin test",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `strata plugin build`: builds the component and prints its path, size and sha256.
fn build_plugin(dir: &Path) -> Result<strata::authoring::Built> {
    let built = strata::authoring::build(dir, |msg| eprintln!("strata: {msg}"))?;
    println!(
        "built {} ({} bytes, sha256 {})",
        built.wasm.display(),
        built.size,
        built.sha256
    );
    Ok(built)
}

/// `strata plugin test`: the conformance suite, naming the first failing check; for a codec,
/// its figures on the real-data extract beside the built-in codecs'.
fn test_plugin(
    g: &Global,
    plugin: &str,
    sha256: Option<String>,
    options: &[String],
) -> Result<ExitCode> {
    let rt = runtime(g)?;
    let mut r = if strata::authoring::is_crate_dir(Path::new(plugin)) {
        let built = build_plugin(Path::new(plugin))?;
        PluginRef::parse(&built.wasm.to_string_lossy())
    } else {
        PluginRef::parse(plugin)
    };
    r.sha256 = sha256;
    let opts = parse_options(options)?;
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
    if let Some(first) = report.failures().next() {
        println!(
            "first failure: {}: {}",
            first.name,
            first.outcome.as_ref().unwrap_err()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Plugin::Codec(_) = loaded {
        let extract = plugin::conformance::real_extract();
        let mut codecs = vec![r.to_string()];
        codecs.extend(strata::compare::builtin_codecs());
        let figures = strata::compare::compare(
            &rt,
            &extract,
            &strata::compare::CompareOptions {
                codecs,
                options: opts
                    .iter()
                    .map(|(k, v)| (r.to_string(), k.clone(), v.clone()))
                    .collect(),
                runs: 20,
            },
            |_| {},
        );
        println!(
            "\non the real-data extract ({} rows; best of 20 calls, each in a fresh sandbox):",
            extract.len()
        );
        println!(
            "{:<16} {:>8} {:>12} {:>12}",
            "codec", "B/rec", "enc rows/s", "dec rows/s"
        );
        for (i, f) in figures.iter().enumerate() {
            match &f.error {
                Some(e) => println!("{:<16} error: {e}", f.codec),
                None => println!(
                    "{:<16} {:>8.2} {:>12.0} {:>12.0}{}",
                    f.codec,
                    f.bytes_per_record,
                    f.wasm_encode_rps,
                    f.wasm_decode_rps,
                    if i == 0 { "  <- this plugin" } else { "" }
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
