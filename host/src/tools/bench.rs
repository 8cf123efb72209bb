//! `strata bench`: the engine's figures at a stated scale, each beside its target and the
//! original prototype's figure. Data comes from the synthetic generator (and, for the import
//! figure, the CoinGecko CSV when its path is given). Run it from a release build; the figures
//! of a debug build mean nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use strata_plugin_sdk::Batch;

use crate::generate::{GenConfig, Generator};
use crate::ingest::Mode;
use crate::plugin::Runtime;
use crate::policy::{Policy, all_columnar_policy};
use crate::store::{Store, StoreOptions};
use crate::tiering::{Plan, tiers_from_policy};

/// Coins in the hourly collection: the scale policies are designed for.
const FULL_SCALE_COINS: usize = 13_532;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Coins in an hourly batch (13,532 in the issue).
    pub hourly_coins: usize,
    /// Days of hourly history already in the hot tier when batches arrive (30).
    pub hot_days: usize,
    /// Hourly batches to time.
    pub batches: usize,
    /// Coins × days of hourly history for the cross-tier figures (5 years).
    pub history_coins: usize,
    pub history_days: usize,
    /// The CoinGecko CSV for the import figure, if available.
    pub coingecko: Option<PathBuf>,
    /// Where to build the stores (a temporary directory by default).
    pub dir: Option<PathBuf>,
    /// Only the tier-transition and cross-tier range figures (skips the 13,532-coin store).
    pub transition_only: bool,
    /// A bucket (`s3://bucket/prefix`) for the object-storage figures; none without it.
    pub bucket: Option<String>,
    /// Also the `strata serve` load figures (needs `wrk` on PATH).
    pub serve: bool,
    /// The policy of the transition and range figures (all-columnar unless set).
    pub policy: Policy,
}

impl BenchConfig {
    pub fn full() -> BenchConfig {
        BenchConfig {
            hourly_coins: 13_532,
            hot_days: 30,
            batches: 48,
            history_coins: 100,
            history_days: 5 * 365,
            coingecko: None,
            dir: None,
            transition_only: false,
            bucket: None,
            serve: false,
            policy: all_columnar_policy(),
        }
    }

    pub fn quick() -> BenchConfig {
        BenchConfig {
            hourly_coins: 2_000,
            hot_days: 7,
            batches: 12,
            history_coins: 20,
            history_days: 2 * 365,
            coingecko: None,
            dir: None,
            transition_only: false,
            bucket: None,
            serve: false,
            policy: all_columnar_policy(),
        }
    }
}

/// One figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The target, in `unit`.
    pub target: f64,
    /// Whether more is better (`rec/s`) or less (`ms`, `µs`).
    pub higher_is_better: bool,
    /// The prototype's figure in `unit`, when known.
    pub prototype: Option<f64>,
    /// What was measured, at what scale.
    pub scale: String,
}

impl Figure {
    pub fn meets_target(&self) -> bool {
        if self.higher_is_better {
            self.value >= self.target
        } else {
            self.value <= self.target
        }
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn hourly_history(coins: usize, days: usize, seed: u64) -> (Batch, Generator) {
    let mut g = Generator::new(GenConfig::hourly(coins, days + 30, seed));
    let mut all = Batch::with_capacity(coins * days * 24);
    all.coins = g.coin_meta().into_iter().map(|m| m.id).collect();
    for _ in 0..days * 24 {
        let b = g.next_batch().expect("enough steps");
        all.append_rows(&b);
    }
    (all, g)
}

/// Runs every figure; `progress` gets a line per step.
pub fn run(cfg: &BenchConfig, rt: &Runtime, progress: &mut dyn FnMut(&str)) -> Result<Vec<Figure>> {
    let parent = cfg.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    // Removed (with the stores) when the benchmark ends.
    let tmp = tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in(&parent)?;
    let root = tmp.path();
    let mut figures = Vec::new();
    if !cfg.transition_only {
        hot_figures(cfg, rt, root, &mut figures, progress)?;
    }
    transition_figures(cfg, rt, root, &mut figures, progress)?;
    Ok(figures)
}

/// Figures 1 to 3: imports, hourly batches and latest rows, on a store of `hourly_coins`; then
/// the shipped all-columnar policy moving that store's hot tier into warm.
fn hot_figures(
    cfg: &BenchConfig,
    rt: &Runtime,
    root: &std::path::Path,
    figures: &mut Vec<Figure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    // 1. Bulk import of sorted history.
    progress(&format!(
        "generating {} days of hourly history for {} coins",
        cfg.hot_days, cfg.hourly_coins
    ));
    let (history, mut generator) = hourly_history(cfg.hourly_coins, cfg.hot_days, 1);
    let sorted = history.sorted();
    let mut store = Store::open_with(root.join("hot"), StoreOptions::default())?;
    progress(&format!("importing {} rows", sorted.len()));
    let t = Instant::now();
    store.ingest(&sorted, &[])?;
    let secs = t.elapsed().as_secs_f64();
    figures.push(Figure {
        name: "bulk import of sorted history (library, one batch)".into(),
        value: sorted.len() as f64 / secs,
        unit: "rec/s".into(),
        target: 1.5e6,
        higher_is_better: true,
        prototype: Some(157_648.0),
        scale: format!(
            "{} rows ({} coins x {} days hourly), synthetic, durable at commit",
            sorted.len(),
            cfg.hourly_coins,
            cfg.hot_days
        ),
    });
    drop(sorted);
    if let Some(csv) = &cfg.coingecko {
        progress(&format!("importing {}", csv.display()));
        let mut s = Store::open(root.join("coingecko"))?;
        let t = Instant::now();
        let rep = s.ingest_files(
            std::slice::from_ref(csv),
            crate::source::Format::Auto,
            &Default::default(),
            Mode::SkipInvalid,
        )?;
        let secs = t.elapsed().as_secs_f64();
        figures.push(Figure {
            name: "bulk import of the CoinGecko CSV (parse + insert)".into(),
            value: rep.rows as f64 / secs,
            unit: "rec/s".into(),
            target: 1.5e6,
            higher_is_better: true,
            prototype: Some(157_648.0),
            scale: format!("{} rows from {}", rep.rows, csv.display()),
        });
        bytes_at_rest_figures(cfg, rt, &mut s, rep.rows, figures, progress)?;
        drop(s);
        std::fs::remove_dir_all(root.join("coingecko"))?;
    }

    // 2. Hourly batches into a hot tier holding `hot_days` days.
    progress(&format!("timing {} hourly batches", cfg.batches));
    let mut times = Vec::new();
    let mut merges = 0;
    for _ in 0..cfg.batches {
        let b = generator.next_batch().expect("enough steps");
        let t = Instant::now();
        let st = store.ingest(&b, &[])?;
        times.push(t.elapsed());
        merges += usize::from(st.merged);
    }
    let max = *times.iter().max().expect("at least one batch");
    let p50 = pct(&mut times, 0.5);
    let scale = format!(
        "{} coins per batch into {} rows ({} days hourly), synchronous=FULL; max {:.1} ms ({} merges of hot_recent)",
        cfg.hourly_coins,
        history.len(),
        cfg.hot_days,
        max.as_secs_f64() * 1e3,
        merges
    );
    figures.push(Figure {
        name: "one hourly batch, durable at commit (p50)".into(),
        value: p50.as_secs_f64() * 1e3,
        unit: "ms".into(),
        target: 50.0,
        higher_is_better: false,
        prototype: None,
        scale,
    });

    // 2b. What the hot tier costs on disk: closed days in sealed blocks, the open day row by
    // row. Before the seal, the import's last day and the hourly batches are rows; `tier` seals
    // every day before the day of `now`, as here.
    store.checkpoint()?;
    let unsealed = store.stats()?.remove(0);
    let newest = history.ts.iter().copied().max().unwrap_or(0) + cfg.batches as i64 * 3_600_000;
    let sealed_at = |store: &mut Store, day: i64| -> Result<crate::verify::TierStats> {
        store.seal_hot(day)?;
        store.reclaim_free_pages()?;
        store.checkpoint()?;
        Ok(store.stats()?.remove(0))
    };
    // Just before midnight (the day's rows open), then just after the day's `tier`.
    let evening = sealed_at(&mut store, crate::sealed::floor_day(newest))?;
    let hot = sealed_at(
        &mut store,
        crate::sealed::floor_day(newest) + crate::tiering::DAY_MS,
    )?;
    figures.push(Figure {
        name: "hot tier on disk after the daily tier run (closed days sealed)".into(),
        value: hot.bytes_per_record().unwrap_or(0.0),
        unit: "B/rec".into(),
        target: 16.0,
        higher_is_better: false,
        prototype: Some(61.3),
        scale: format!(
            "{} bytes of SQLite pages for {} rows ({} coins x {} days hourly and {} hourly batches, sealed at the next midnight); with the last day's rows open {:.1} B/rec, with every batch open {:.1}; prototype column: row per row",
            hot.bytes,
            hot.rows,
            cfg.hourly_coins,
            cfg.hot_days,
            cfg.batches,
            evening.bytes_per_record().unwrap_or(0.0),
            unsealed.bytes_per_record().unwrap_or(0.0)
        ),
    });

    // 3. Latest 10 rows of a coin; a coin's last 30 days.
    figures.push(latest_figure(&store, &history)?);
    figures.push(hot_range_figure(&store, &history)?);

    // 3b. The same over HTTP, from `strata serve` on a copy of this store.
    if cfg.serve {
        drop(store);
        let dir = root.join("serve");
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(
            root.join("hot").join(crate::store::DB_FILE),
            dir.join(crate::store::DB_FILE),
        )?;
        serve_figures(rt, &dir, &history.coins, &mut generator, figures, progress)?;
        std::fs::remove_dir_all(&dir)?;
        store = Store::open_with(root.join("hot"), StoreOptions::default())?;
    }

    // 4a. The shipped policy at full coin scale: the whole hot tier ages into warm at once,
    // ~846 coins per warm segment as in production.
    store.set_runtime(rt.clone());
    let shipped = tiers_from_policy(&cfg.policy);
    let hot_keep = shipped[0].keep.unwrap_or(0);
    let newest = history.ts.iter().copied().max().unwrap_or(0) + cfg.batches as i64 * 3_600_000;
    progress("tier transition of the whole hot tier, policy as shipped");
    figures.push(transition_figure(
        &mut store,
        &Plan::load(rt, &shipped)?,
        newest + 3_600_000 + hot_keep,
        "all coins, policy as shipped",
        |t| {
            format!(
                "{} hot rows ({} coins x {} days hourly and {} hourly batches) through the {} policy as shipped (warm {} buckets), hot -> warm in {:.2} s ({:.2} CPU s), {} warm segments",
                t.moved,
                cfg.hourly_coins,
                cfg.hot_days,
                cfg.batches,
                cfg.policy.name,
                shipped[1].coin_buckets,
                t.secs,
                t.cpu,
                t.segments
            )
        },
    )?);
    // Removed now, so that writing back its pages does not slow the figures that follow.
    drop(store);
    std::fs::remove_dir_all(root.join("hot"))?;
    if let Some(url) = &cfg.bucket {
        bucket_hot_figures(
            cfg,
            rt,
            root,
            url,
            &history,
            &mut generator,
            figures,
            progress,
        )?;
    }
    Ok(())
}

/// Bytes at rest on the imported CoinGecko store: the data directory per record right after
/// the import; then, after tiering with the bench's policy (at a day after its newest row),
/// the directory against `stats`' total, and each colder tier's bytes per record against its
/// codec's on one file of the same rows.
fn bytes_at_rest_figures(
    cfg: &BenchConfig,
    rt: &Runtime,
    store: &mut Store,
    rows: u64,
    figures: &mut Vec<Figure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    store.checkpoint()?;
    let disk = store.disk_usage()?;
    figures.push(Figure {
        name: "data directory after importing the CoinGecko CSV".into(),
        value: disk.total() as f64 / rows as f64,
        unit: "B/rec".into(),
        target: 28.0,
        higher_is_better: false,
        prototype: Some(28.4),
        scale: format!(
            "{} bytes for {rows} rows (database {} incl. {} free, WAL {}); prototype column: DuckDB's table of the same rows",
            disk.total(),
            disk.db_file,
            disk.free_pages,
            disk.wal_file
        ),
    });
    progress(&format!(
        "tiering the CoinGecko store ({})",
        cfg.policy.name
    ));
    store.set_runtime(rt.clone());
    let plan = Plan::from_policy(rt, &cfg.policy)?;
    let newest = store
        .stats()?
        .iter()
        .filter_map(|t| t.newest)
        .max()
        .unwrap_or(0);
    store.tier(&plan, newest + crate::tiering::DAY_MS, false)?;
    let stats = store.stats()?;
    let disk = store.disk_usage()?;
    // `stats` lists the codec components the store keeps beside the tiers.
    let books: u64 = stats.iter().map(|t| t.bytes).sum::<u64>() + disk.components;
    figures.push(Figure {
        name: "data directory after tiering the CoinGecko store, / stats' total".into(),
        value: disk.total() as f64 / books as f64,
        unit: "x".into(),
        target: 1.05,
        higher_is_better: false,
        prototype: Some(72.7 / 5.0),
        scale: format!(
            "{} bytes on disk, {books} in stats (tiers and {} bytes of kept codecs), {} policy; prototype column: before free pages were given back",
            disk.total(),
            disk.components,
            cfg.policy.name
        ),
    });
    for t in &plan.tiers[1..] {
        let segs: Vec<_> = store
            .segments()?
            .into_iter()
            .filter(|s| s.tier == t.def.name)
            .collect();
        if segs.is_empty() {
            continue;
        }
        let mut all = Batch::default();
        for b in store.read_segments(&segs, &[])? {
            all.extend_from(&b);
        }
        let all = all.sorted();
        let (codec, opts) = t.codec.as_ref().expect("a colder tier has a codec");
        let one_file = codec.encode(&all, opts)?.len() as f64 / all.len() as f64;
        let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
        let per_rec = bytes as f64 / all.len() as f64;
        figures.push(Figure {
            name: format!("CoinGecko tier `{}` / its codec on one file", t.def.name),
            value: per_rec / one_file,
            unit: "x".into(),
            target: 1.10,
            higher_is_better: false,
            prototype: None,
            scale: format!(
                "{:.2} B/rec in {} segments, {:.2} B/rec as one `{}` file of the same {} rows",
                per_rec,
                segs.len(),
                one_file,
                codec.meta.name,
                all.len()
            ),
        });
    }
    Ok(())
}

/// What `wrk` measured.
struct WrkRun {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

/// Runs `wrk` (one thread, 32 keep-alive connections) with `script` against `url` for `secs`.
fn run_wrk(script: &std::path::Path, url: &str, secs: u32) -> Result<WrkRun> {
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw failed requests:\n{text}"
    );
    let ms = |v: &str| -> Option<f64> {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            _ => return None,
        })
    };
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let parse = || -> Option<WrkRun> {
        Some(WrkRun {
            requests_per_sec: field("Requests/sec:")?.parse().ok()?,
            p50_ms: ms(&field("50%")?)?,
            p99_ms: ms(&field("99%")?)?,
            requests: text
                .lines()
                .find(|l| l.contains("requests in"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?,
        })
    };
    anyhow::Context::with_context(parse(), || format!("could not read wrk's output:\n{text}"))
}

/// `strata serve` on a copy of the full-scale hot store: `GET /v1/coins/{id}/latest?n=10` for
/// random coins from `wrk`, quiet and while hourly batches are ingested back to back.
fn serve_figures(
    rt: &Runtime,
    dir: &std::path::Path,
    coins: &[String],
    generator: &mut Generator,
    figures: &mut Vec<Figure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let has_wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if !has_wrk {
        progress("no wrk on PATH: skipping the serve figures (apt-get install wrk)");
        return Ok(());
    }
    let mut sc = crate::serve::ServeConfig::new(dir);
    sc.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = crate::serve::Server::start(sc, rt.clone())?;
    let script = dir.join("latest.lua");
    let ids: Vec<String> = coins.iter().map(|c| format!("\"{c}\"")).collect();
    std::fs::write(
        &script,
        format!(
            "local ids = {{{}}}\nmath.randomseed(42)\nrequest = function()\n  return \
             wrk.format(\"GET\", \"/v1/coins/\" .. ids[math.random(#ids)] .. \"/latest?n=10\")\nend\n",
            ids.join(",")
        ),
    )?;
    let url = format!("http://{}", server.addr());
    progress("serve: warming up (every reader opens its store)");
    run_wrk(&script, &url, 2)?;
    progress("serve: wrk, latest 10 rows, 10 s");
    let quiet = run_wrk(&script, &url, 10)?;
    progress("serve: wrk, latest 10 rows, 10 s, while hourly batches are ingested");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (loaded, batches) = std::thread::scope(|scope| -> Result<(WrkRun, Vec<Duration>)> {
        let writer = scope.spawn(|| -> Result<Vec<Duration>> {
            // This thread stands in for the collector (fetching and parsing a batch), which
            // runs on the writer thread at its priority.
            crate::serve::background_priority();
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch = generator.next_batch().expect("enough steps");
                let t = Instant::now();
                server.ingest_chunk(crate::source::Chunk {
                    batch,
                    ..Default::default()
                })?;
                times.push(t.elapsed());
            }
            Ok(times)
        });
        let run = run_wrk(&script, &url, 10);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let times = writer.join().expect("the ingest thread does not panic")?;
        Ok((run?, times))
    })?;
    server.stop()?;
    let scale = |r: &WrkRun, extra: &str| {
        format!(
            "{} requests from wrk (1 thread, 32 keep-alive connections) for random coins of {} \
             in a hot tier of 30 days hourly; p50 {:.2} ms{extra}",
            r.requests,
            coins.len(),
            r.p50_ms
        )
    };
    let during = format!(
        "; meanwhile {} hourly batches of {} coins ingested back to back (p50 {:.1} ms each)",
        batches.len(),
        coins.len(),
        pct(&mut batches.clone(), 0.5).as_secs_f64() * 1e3
    );
    for (r, what, extra) in [
        (&quiet, "", String::new()),
        (&loaded, ", while ingesting hourly batches", during),
    ] {
        figures.push(Figure {
            name: format!("serve: GET latest 10 rows over HTTP{what}"),
            value: r.requests_per_sec,
            unit: "req/s".into(),
            target: 20_000.0,
            higher_is_better: true,
            prototype: None,
            scale: scale(r, &extra),
        });
        figures.push(Figure {
            name: format!("serve: GET latest 10 rows over HTTP{what} (p99)"),
            value: r.p99_ms,
            unit: "ms".into(),
            target: 5.0,
            higher_is_better: false,
            prototype: None,
            scale: scale(r, &extra),
        });
    }
    Ok(())
}

/// A prefix of its own under `url` for one benchmark store (each data directory claims its
/// prefix).
fn bench_prefix(url: &str, what: &str) -> String {
    format!(
        "{}/strata-bench-{}-{what}",
        url.trim_end_matches('/'),
        chrono::Utc::now().timestamp_millis()
    )
}

/// With a bucket: the shipped all-columnar policy moving the full hot tier into a warm tier in
/// the bucket; then a backup of the store to the bucket, one hourly batch, and the incremental
/// backup after it.
#[allow(clippy::too_many_arguments)]
fn bucket_hot_figures(
    cfg: &BenchConfig,
    rt: &Runtime,
    root: &std::path::Path,
    url: &str,
    history: &Batch,
    generator: &mut Generator,
    figures: &mut Vec<Figure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    progress("importing again for the transition into the bucket");
    let dir = root.join("hot-bucket");
    let mut store = Store::open(&dir)?;
    store.set_runtime(rt.clone());
    store.ingest(&history.sorted(), &[])?;
    let mut defs = tiers_from_policy(&cfg.policy);
    let prefix = bench_prefix(url, "warm");
    for d in &mut defs[1..] {
        d.store = prefix.clone();
    }
    let newest = history.ts.iter().copied().max().unwrap_or(0);
    progress("tier transition of the whole hot tier into the bucket");
    let mut fig = transition_figure(
        &mut store,
        &Plan::load(rt, &defs)?,
        newest + 3_600_000 + defs[0].keep.unwrap_or(0),
        "all coins, warm in a bucket",
        |t| {
            format!(
                "{} hot rows ({} coins x {} days hourly) through the {} policy with warm at {prefix}, hot -> warm in {:.2} s ({:.2} CPU s), {} segments put",
                t.moved, cfg.hourly_coins, cfg.hot_days, cfg.policy.name, t.secs, t.cpu, t.segments
            )
        },
    )?;
    fig.target = 1e6;
    fig.prototype = None;
    figures.push(fig);
    // Backups: a full one, an hour of collection, then the incremental one.
    let dest = crate::backup::open_location(&bench_prefix(url, "backup"), &[])?;
    let b = generator.next_batch().expect("enough steps");
    progress("backing up the store to the bucket");
    let first = crate::backup::backup(&dir, &*dest, &[])?;
    store.ingest(&b, &[])?;
    store.checkpoint()?;
    progress("incremental backup after one hourly batch");
    let t = Instant::now();
    let second = crate::backup::backup(&dir, &*dest, &[])?;
    let secs = t.elapsed().as_secs_f64();
    figures.push(Figure {
        name: "incremental backup to a bucket after one hourly batch".into(),
        value: secs * 1e3,
        unit: "ms".into(),
        target: 1000.0,
        higher_is_better: false,
        prototype: None,
        scale: format!(
            "{} coins: copied {} objects, {} bytes (of a {} byte database and {} segments; the \
             first backup copied {} bytes)",
            cfg.hourly_coins,
            second.objects_copied,
            second.bytes_copied,
            second.db_bytes,
            second.segments,
            first.bytes_copied
        ),
    });
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Latest 10 rows of a coin: the first read of each coin goes to SQLite and fills the
/// latest-rows cache, later reads are served from it until a write touches the coin.
fn latest_figure(store: &Store, history: &Batch) -> Result<Figure> {
    let coins: Vec<String> = history.coins.clone();
    let mut cold = Vec::with_capacity(coins.len());
    for coin in &coins {
        let t = Instant::now();
        let a = store.latest(coin, 10)?;
        cold.push(t.elapsed());
        std::hint::black_box(a);
    }
    let mut times = Vec::with_capacity(20_000);
    for i in 0..20_000usize {
        let coin = &coins[(i * 7919) % coins.len()];
        let t = Instant::now();
        let a = store.latest(coin, 10)?;
        times.push(t.elapsed());
        std::hint::black_box(a);
    }
    Ok(Figure {
        name: "latest 10 rows of a coin, library API (p50)".into(),
        value: pct(&mut times, 0.5).as_secs_f64() * 1e6,
        unit: "µs".into(),
        target: 5.0,
        higher_is_better: false,
        prototype: Some(10.0),
        scale: format!(
            "20,000 calls over {} coins after one read of each (latest-rows cache warm), hot tier of {} rows; the first read of a coin (SQLite): p50 {:.1} µs",
            coins.len(),
            history.len(),
            pct(&mut cold, 0.5).as_secs_f64() * 1e6
        ),
    })
}

/// One coin's newest 30 days from the hot tier (sealed blocks and the open day's rows), through
/// the query API, over coins in a scattered order.
fn hot_range_figure(store: &Store, history: &Batch) -> Result<Figure> {
    let newest = history.ts.iter().copied().max().unwrap_or(0);
    let from = newest - 30 * crate::tiering::DAY_MS;
    let coins = &history.coins;
    let mut times = Vec::with_capacity(5_000);
    let mut rows = 0;
    for i in 0..5_000usize {
        let coin = &coins[(i * 7919) % coins.len()];
        let t = Instant::now();
        let a = store.query(coin, from, i64::MAX)?;
        times.push(t.elapsed());
        rows += a.rows.len();
    }
    Ok(Figure {
        name: "one coin's last 30 days from the hot tier (p50)".into(),
        value: pct(&mut times, 0.5).as_secs_f64() * 1e3,
        unit: "ms".into(),
        target: 1.0,
        higher_is_better: false,
        prototype: None,
        scale: format!(
            "5,000 queries over {} coins, {:.0} rows each on average, hot tier of {} rows (closed days sealed)",
            coins.len(),
            rows as f64 / 5_000.0,
            history.len()
        ),
    })
}

/// What one timed transition did, for its figure's scale text.
struct Timed {
    /// Hot rows moved.
    moved: u64,
    secs: f64,
    cpu: f64,
    /// Segments written by the move out of hot.
    segments: u64,
}

/// Runs every transition due at `now` on `store` and returns its figure: hot rows moved per
/// second, against the target of 3 M. The store is checkpointed first: its history was
/// collected long before it ages out, so the transition is not billed for flushing the import.
fn transition_figure(
    store: &mut Store,
    plan: &Plan,
    now: i64,
    what: &str,
    scale: impl FnOnce(&Timed) -> String,
) -> Result<Figure> {
    store.checkpoint()?;
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let reports = store.tier(plan, now, false)?;
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let first = reports.first();
    let timed = Timed {
        moved: first.map_or(0, |r| r.rows_read),
        secs,
        cpu,
        segments: first.map_or(0, |r| r.segments_written),
    };
    Ok(Figure {
        name: format!("tier transition through a wasm codec, {what}"),
        value: timed.moved as f64 / secs,
        unit: "rec/s".into(),
        target: 3e6,
        higher_is_better: true,
        prototype: Some(4_280.0),
        scale: scale(&timed),
    })
}

/// CPU time (user + system) of this process so far, in seconds (NaN where not measured).
#[cfg(not(unix))]
fn cpu_seconds() -> f64 {
    f64::NAN
}

/// CPU time (user + system) of this process so far, in seconds (NaN where not measured).
#[cfg(unix)]
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Figures 4 and 5: a tier transition of years of hourly history and one coin's range.
fn transition_figures(
    cfg: &BenchConfig,
    rt: &Runtime,
    root: &std::path::Path,
    figures: &mut Vec<Figure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    // 4 and 5. Tier transition and a 5-year cross-tier range.
    progress(&format!(
        "building {} days of hourly history for {} coins",
        cfg.history_days, cfg.history_coins
    ));
    let (long, _) = hourly_history(cfg.history_coins, cfg.history_days, 2);
    let start = long.ts.iter().copied().min().unwrap_or(0);
    let end = long.ts.iter().copied().max().unwrap_or(0);
    let sorted = long.sorted();
    let shipped = tiers_from_policy(&cfg.policy);
    // The same policy with as many coins per segment as it has at full scale: at 100 coins,
    // 16 warm buckets make segments of ~6 coins where 13,532 coins make ~846.
    let mut scaled = shipped.clone();
    for d in &mut scaled {
        d.coin_buckets =
            (d.coin_buckets as usize * cfg.history_coins / FULL_SCALE_COINS).max(1) as u32;
    }
    let buckets = |defs: &[crate::tiering::TierDef]| {
        defs[1..]
            .iter()
            .map(|d| format!("{} {}", d.name, d.coin_buckets))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut store = None;
    for (defs, what, dir) in [
        (
            &scaled,
            "coin buckets scaled to the coin count",
            "tiers-scaled",
        ),
        (&shipped, "coin buckets as shipped", "tiers"),
    ] {
        let dir = root.join(dir);
        let mut s = Store::open(&dir)?;
        s.set_runtime(rt.clone());
        s.ingest(&sorted, &[])?;
        progress(&format!("tier transition, {what}"));
        figures.push(transition_figure(
            &mut s,
            &Plan::load(rt, defs)?,
            end + 3_600_000,
            what,
            |t| {
                format!(
                    "{} hot rows ({} coins x {} days hourly) through the {} policy (buckets: {}), hot -> warm -> cold -> archive in {:.2} s ({:.2} CPU s)",
                    t.moved,
                    cfg.history_coins,
                    cfg.history_days,
                    cfg.policy.name,
                    buckets(defs),
                    t.secs,
                    t.cpu
                )
            },
        )?);
        if let Some(done) = store.replace(s) {
            let dir = done.dir().to_path_buf();
            drop(done);
            std::fs::remove_dir_all(dir)?;
        }
    }
    let store = store.expect("two transitions ran");
    figures.push(range_figure(&store, &long, (start, end), cfg, "", 5.0)?);
    if let Some(url) = &cfg.bucket {
        let dir = root.join("tiers-bucket");
        let mut s = Store::open(&dir)?;
        s.set_runtime(rt.clone());
        s.ingest(&sorted, &[])?;
        let mut defs = shipped.clone();
        let prefix = bench_prefix(url, "cold");
        for d in &mut defs[2..] {
            d.store = prefix.clone();
        }
        progress("tier transition with cold and archive in the bucket");
        s.tier(&Plan::load(rt, &defs)?, end + 3_600_000, false)?;
        let what = format!(", cold and archive at {prefix}");
        figures.push(range_figure(&s, &long, (start, end), cfg, &what, 20.0)?);
    }
    Ok(())
}

/// One coin's full range across tiers, p50 of 50 coins.
fn range_figure(
    store: &Store,
    long: &Batch,
    (start, end): (i64, i64),
    cfg: &BenchConfig,
    what: &str,
    target: f64,
) -> Result<Figure> {
    let mut times = Vec::new();
    for i in 0..50usize {
        let coin = &long.coins[(i * 31) % long.coins.len()];
        let t = Instant::now();
        let a = store.query(coin, start, end)?;
        times.push(t.elapsed());
        std::hint::black_box(a);
    }
    let name = if what.is_empty() {
        "one coin's full range across tiers (p50)".to_string()
    } else {
        "one coin's full range across tiers, cold and archive in a bucket (p50)".to_string()
    };
    Ok(Figure {
        name,
        value: pct(&mut times, 0.5).as_secs_f64() * 1e3,
        unit: "ms".into(),
        target,
        higher_is_better: false,
        prototype: None,
        scale: format!(
            "{} days, {} coins, tiers {}{what}",
            cfg.history_days,
            cfg.history_coins,
            store
                .stats()?
                .iter()
                .map(|t| format!("{}={} rows/{} segs", t.tier, t.rows, t.segments))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}
