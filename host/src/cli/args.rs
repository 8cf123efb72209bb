//! The command line's arguments: every subcommand and its options, parsed by clap.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

/// strata: tiered storage for crypto market history, with codecs and retention rules as
/// WebAssembly plugins.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args)]
pub(crate) struct Global {
    /// Directory for compiled plugins (default: $STRATA_CACHE_DIR, $XDG_CACHE_HOME/strata or
    /// ~/.cache/strata).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Memory limit per plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 1024, value_name = "MIB")]
    pub(crate) plugin_memory: usize,
    /// Time limit per plugin call, in seconds.
    #[arg(long, global = true, default_value_t = 60.0, value_name = "SECS")]
    pub(crate) plugin_time: f64,
    /// Largest output of any plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 1024, value_name = "MIB")]
    pub(crate) plugin_output: usize,
    /// A plugin call's output may be at most this many times the raw bytes of its input rows
    /// (at least 16 MiB, at most --plugin-output).
    #[arg(long, global = true, default_value_t = 16, value_name = "RATIO")]
    pub(crate) plugin_output_ratio: usize,
    /// Log level filter (e.g. `info`, `strata=debug`); also read from RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log: Option<String>,
    /// Data directory (default: $STRATA_DATA, else ./strata-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List plugins: the built-ins and the components in --plugin-dir.
    Plugins(PluginsArgs),
    /// Work with one plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Run every codec on the same data: size, speed through wasm and natively, plugin tax.
    Compare(CompareArgs),
    /// Storage per tier per year, and its cost, for a policy.
    Plan(PlanArgs),
    /// Read a data file without storing it: print what was read, the rejected rows and the speed.
    Parse(ParseArgs),
    /// Ingest files: canonical CSV or JSONL, the CoinGecko CSVs, CMC ndjson, Coinpaprika
    /// responses, or any CSV through --map (gzip is detected).
    Ingest(IngestArgs),
    /// The main job end to end, at full scale, no network: generate 13,532 coins (hourly for
    /// the last 30 days, daily back to 1 year, weekly back to 6 years), ingest, age through
    /// every tier of the default policy, query a few coins, compare codecs, plan 5 years.
    /// Uses a temporary store unless --data is given.
    Demo(DemoArgs),
    /// Write synthetic market data (canonical CSV, or JSONL when FILE ends in .jsonl).
    Generate(GenerateArgs),
    /// Collect Coinpaprika tickers (every coin, one request), ingest them, then run any tier
    /// transitions that are due.
    Collect(CollectArgs),
    /// Move everything that has aged past its tier into the next tier.
    Tier(TierArgs),
    /// Merge each tier's small segments into larger ones (up to the policy's `compact-rows`
    /// and `compact-span`); `tier` does this for runs worth it after every move.
    Compact(CompactArgs),
    /// One coin's rows from every tier, oldest first.
    Query(QueryArgs),
    /// A coin's newest rows.
    Latest(LatestArgs),
    /// Rows, segments, bytes and time range per tier.
    Stats,
    /// Check checksums, the catalog against the files and objects, and decode every segment.
    Verify(VerifyArgs),
    /// Copy the whole store (database snapshot, segments wherever they live, kept codecs) to a
    /// directory or an s3:// URL; incremental, and safe while `collect` or `tier` runs.
    Backup(BackupArgs),
    /// Rebuild a store in --data from a backup, checking every object against its checksum.
    Restore(RestoreArgs),
    /// Measure the engine's figures against their targets (use a release build).
    Bench(BenchArgs),
    /// Run as a service: collect and tier on schedules while answering an HTTP API, Prometheus
    /// metrics and a dashboard (stops cleanly on SIGTERM or Ctrl-C).
    Serve(ServeArgs),
}

/// How to read an input file (see `strata::source`).
#[derive(Args)]
pub(crate) struct SourceArgs {
    /// Input format: auto, csv, jsonl, coingecko-csv, coingecko-2021-csv, cmc-ndjson,
    /// coinpaprika-tickers, coinpaprika-historical.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub(crate) format: strata::source::Format,
    /// Column mapping for other CSVs, e.g. `coin=Symbol,ts=Date,price=Close`.
    #[arg(long, value_name = "FIELD=COLUMN,...")]
    pub(crate) map: Option<strata::source::ColumnMap>,
    /// Unit of numeric timestamps in CSV input: s, ms, us or ns.
    #[arg(long, default_value = "ms", value_name = "UNIT")]
    pub(crate) ts_unit: strata::source::TsUnit,
    /// strftime format of text timestamps in CSV input, e.g. `%Y-%m-%d` (UTC unless it has %z).
    #[arg(long, value_name = "FORMAT")]
    pub(crate) ts_format: Option<String>,
    /// Coin id for inputs without one (a CSV without a coin column, a Coinpaprika historical
    /// response).
    #[arg(long, value_name = "ID")]
    pub(crate) coin: Option<String>,
    /// CSV field delimiter (one ASCII character).
    #[arg(long, default_value = ",", value_name = "CHAR")]
    pub(crate) delimiter: char,
    /// Rows per chunk.
    #[arg(long, default_value_t = 65_536, value_name = "ROWS")]
    pub(crate) chunk_rows: usize,
}

impl SourceArgs {
    pub(crate) fn options(&self) -> Result<strata::source::ReadOptions> {
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
pub(crate) enum PluginCommand {
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
pub(crate) enum NewKind {
    Codec,
    Policy,
}

/// Arguments of `strata plugins`.
#[derive(Args)]
pub(crate) struct PluginsArgs {
    /// Also list every `.wasm` component in this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) plugin_dir: Option<PathBuf>,
}

/// Arguments of `strata compare`.
#[derive(Args)]
pub(crate) struct CompareArgs {
    /// Input data: CSV or JSONL (canonical, CoinGecko, ...), gzip-compressed or not.
    #[arg(long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Codecs to compare (built-in or installed names, .wasm paths), comma-separated; `all` is
    /// every built-in (`all,my-codec.wasm` adds one).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "all",
        value_name = "A,B,..."
    )]
    pub(crate) codecs: Vec<String>,
    /// A codec option, `codec.key=value` (e.g. `parquet.compression=brotli`); repeatable.
    #[arg(long = "option", short = 'o', value_name = "CODEC.KEY=VALUE")]
    pub(crate) options: Vec<String>,
    /// Use only the first N rows of the input.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    /// Timed runs per operation (the best is reported).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write a bar chart (bytes per record and throughput) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) chart: Option<PathBuf>,
}

/// Arguments of `strata plan`.
#[derive(Args)]
pub(crate) struct PlanArgs {
    /// Policy file (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Number of coins collected.
    #[arg(long, default_value_t = 13_532)]
    pub(crate) coins: u64,
    /// Collection interval.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub(crate) interval: humantime::Duration,
    /// Years to plan for.
    #[arg(long, default_value_t = 5)]
    pub(crate) years: u32,
    /// Storage price, `class=USD per GB-month`; repeatable. Defaults: local-ssd=0.08,
    /// object-standard=0.023, object-infrequent=0.0125, object-archive=0.00099.
    #[arg(long = "price-per-gb", value_name = "CLASS=USD")]
    pub(crate) prices: Vec<String>,
    /// Data to measure each tier codec on (default: strata's real-data extract).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `strata parse`.
#[derive(Args)]
pub(crate) struct ParseArgs {
    /// The file (gzip is detected).
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Rejected rows to print.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) show_errors: usize,
}

/// Arguments of `strata ingest`.
#[derive(Args)]
pub(crate) struct IngestArgs {
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Report invalid rows and load the rest (default: strict, nothing is applied if any
    /// row is invalid).
    #[arg(long)]
    pub(crate) skip_invalid: bool,
}

/// Arguments of `strata demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Coins to generate.
    #[arg(long, default_value_t = 13_532)]
    pub(crate) coins: usize,
    /// Days of hourly history before "now" (2026-01-01).
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub(crate) hourly_days: i64,
    #[arg(long, default_value_t = 2026)]
    pub(crate) seed: u64,
    /// Age through this policy instead of the default one (to compare policies).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// Arguments of `strata generate`.
#[derive(Args)]
pub(crate) struct GenerateArgs {
    #[arg(long, default_value_t = 100)]
    pub(crate) coins: usize,
    #[arg(long, default_value_t = 30)]
    pub(crate) days: usize,
    /// Step between observations: Nh or Nm (e.g. 1h).
    #[arg(long, default_value = "1h")]
    pub(crate) interval: String,
    /// First timestamp (RFC 3339, a date, or ms).
    #[arg(long, default_value = "2024-01-01")]
    pub(crate) start: String,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
}

/// Arguments of `strata collect`.
#[derive(Args)]
pub(crate) struct CollectArgs {
    /// API base URL.
    #[arg(long, default_value = strata::source::coinpaprika::DEFAULT_BASE_URL, value_name = "BASE")]
    pub(crate) url: String,
    /// Poll once and exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub(crate) once: bool,
    /// Poll forever at this interval, e.g. `1h`.
    #[arg(long, value_name = "DURATION")]
    pub(crate) every: Option<humantime::Duration>,
    /// Instead of tickers, backfill one coin from /v1/tickers/{COIN}/historical.
    #[arg(long, value_name = "COIN", requires = "from")]
    pub(crate) backfill: Option<String>,
    /// Backfill start (RFC 3339, a date, or ms).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Backfill end (default: now).
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Backfill interval as the API names it (`5m`, `1h`, `1d`, ...).
    #[arg(long, default_value = "1h")]
    pub(crate) interval: String,
    /// Policy for the tier transitions (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// Arguments of `strata serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub(crate) listen: std::net::SocketAddr,
    /// Collect Coinpaprika tickers at this interval, e.g. `1h` (default: no collection).
    #[arg(long, value_name = "DURATION")]
    pub(crate) collect_every: Option<humantime::Duration>,
    /// The Coinpaprika API base URL the collector polls.
    #[arg(long, default_value = strata::source::coinpaprika::DEFAULT_BASE_URL, value_name = "BASE")]
    pub(crate) url: String,
    /// Run the tier transitions at this interval, e.g. `1d` (default: none).
    #[arg(long, value_name = "DURATION", conflicts_with = "tier_at")]
    pub(crate) tier_every: Option<humantime::Duration>,
    /// Run the tier transitions once a day at this time, UTC, e.g. `03:30` (a daily cron
    /// entry; a run missed while the server was down happens at startup).
    #[arg(long, value_name = "HH:MM", value_parser = parse_time_of_day)]
    pub(crate) tier_at: Option<chrono::NaiveTime>,
    /// Policy for the transitions and /v1/plan (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// A file holding the bearer token POST /v1/ingest requires (also $STRATA_WRITE_TOKEN);
    /// without one the server takes no writes. Never given on the command line, where other
    /// users could read it.
    #[arg(long, value_name = "FILE")]
    pub(crate) write_token_file: Option<PathBuf>,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub(crate) max_body_mib: usize,
    /// Most rows one range answer may hold.
    #[arg(long, default_value_t = 1 << 20, value_name = "ROWS")]
    pub(crate) max_range_rows: usize,
}

/// Arguments of `strata tier`.
#[derive(Args)]
pub(crate) struct TierArgs {
    /// Policy file (default: the built-in default policy, policies/default.toml).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// The time to age against (RFC 3339, a date, or ms; default: now).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// Show what would move, change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Arguments of `strata compact`.
#[derive(Args)]
pub(crate) struct CompactArgs {
    /// Policy file (default: the built-in default policy, policies/default.toml).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Show what would be merged, change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Arguments of `strata verify`.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Also remove segment files and bucket objects the catalog does not name (what an
    /// interrupted transition left); never a segment the catalog names.
    #[arg(long)]
    pub(crate) repair: bool,
}

/// Arguments of `strata backup`.
#[derive(Args)]
pub(crate) struct BackupArgs {
    /// A directory, or s3://bucket/prefix (credentials from AWS_* environment variables).
    pub(crate) dest: String,
}

/// Arguments of `strata restore`.
#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// The backup: a directory, or s3://bucket/prefix.
    pub(crate) src: String,
    /// A manifest key (`manifests/….json`) to restore instead of the newest.
    #[arg(long, value_name = "KEY")]
    pub(crate) manifest: Option<String>,
}

/// Arguments of `strata query`.
#[derive(Args)]
pub(crate) struct QueryArgs {
    pub(crate) coin: String,
    #[arg(long)]
    pub(crate) from: Option<String>,
    #[arg(long)]
    pub(crate) to: Option<String>,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub(crate) format: OutFormat,
    /// Leave out segments that cannot be read (named on stderr) instead of failing.
    #[arg(long)]
    pub(crate) skip_damaged: bool,
}

/// Arguments of `strata latest`.
#[derive(Args)]
pub(crate) struct LatestArgs {
    pub(crate) coin: String,
    #[arg(short = 'n', default_value_t = 10)]
    pub(crate) n: usize,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub(crate) format: OutFormat,
    /// Leave out segments that cannot be read (named on stderr) instead of failing.
    #[arg(long)]
    pub(crate) skip_damaged: bool,
}

/// Arguments of `strata bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// A smaller scale (seconds instead of minutes).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Also time importing this CoinGecko CSV (coin_id,timestamp,price,volume,market_cap).
    #[arg(long, value_name = "FILE")]
    pub(crate) coingecko: Option<PathBuf>,
    /// Build the benchmark stores under this directory (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Only the tier-transition and cross-tier range figures.
    #[arg(long)]
    pub(crate) transition_only: bool,
    /// Also measure tiers and backups in this bucket (s3://bucket/prefix; credentials and
    /// endpoint from AWS_* variables): the transition into it, a cross-tier range with cold
    /// and archive in it, and an incremental backup to it.
    #[arg(long, value_name = "URL")]
    pub(crate) bucket: Option<String>,
    /// Also the `strata serve` load figures: GET latest over loopback from wrk (needs wrk).
    #[arg(long)]
    pub(crate) serve: bool,
    /// The policy of the transition and range figures (default: policies/all-columnar.toml).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// `HH:MM` (or `HH:MM:SS`), a time of day.
fn parse_time_of_day(s: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .map_err(|_| format!("`{s}` is not a time of day like 03:30"))
}
