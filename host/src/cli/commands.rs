//! One function per command: each takes the global options and its own arguments
//! ([`super::args`]), does its job through the library and says what the exit code is.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use strata::plugin;

use super::args::*;
use super::print::*;
use super::*;

/// Read a data file without storing it: print what was read, the rejected rows and the speed.
pub(crate) fn parse(_: &Global, a: ParseArgs) -> Result<ExitCode> {
    let ParseArgs {
        file,
        source,
        show_errors,
    } = a;
    parse_file(&file, &source, show_errors)
}

/// Run every codec on the same data: size, speed through wasm and natively, plugin tax.
pub(crate) fn compare(g: &Global, a: CompareArgs) -> Result<ExitCode> {
    let CompareArgs {
        input,
        source,
        codecs,
        options,
        limit,
        runs,
        json,
        chart,
    } = a;
    // Whole data sets go through one call: give plugins room for them.
    let rt = runtime(g)?;
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

/// Storage per tier per year, and its cost, for a policy.
pub(crate) fn plan(g: &Global, a: PlanArgs) -> Result<ExitCode> {
    let PlanArgs {
        policy,
        coins,
        interval,
        years,
        prices,
        input,
        source,
        json,
    } = a;
    let rt = runtime(g)?;
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

/// Ingest files: canonical CSV or JSONL, the CoinGecko CSVs, CMC ndjson, Coinpaprika
/// responses, or any CSV through --map (gzip is detected).
pub(crate) fn ingest(g: &Global, a: IngestArgs) -> Result<ExitCode> {
    let IngestArgs {
        files,
        source,
        skip_invalid,
    } = a;
    let mut store = open_store(g)?;
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

/// The main job end to end, at full scale, no network: generate 13,532 coins (hourly for
/// the last 30 days, daily back to 1 year, weekly back to 6 years), ingest, age through
/// every tier of the default policy, query a few coins, compare codecs, plan 5 years.
/// Uses a temporary store unless --data is given.
pub(crate) fn demo(g: &Global, a: DemoArgs) -> Result<ExitCode> {
    let DemoArgs {
        coins,
        hourly_days,
        seed,
        policy,
    } = a;
    let cfg = strata::demo::DemoConfig {
        coins,
        hourly_days,
        seed,
        policy: policy.map(|p| load_policy(Some(&p))).transpose()?,
        ..Default::default()
    };
    run_demo(g, &cfg)?;
    Ok(ExitCode::SUCCESS)
}

/// Write synthetic market data (canonical CSV, or JSONL when FILE ends in .jsonl).
pub(crate) fn generate(_: &Global, a: GenerateArgs) -> Result<ExitCode> {
    let GenerateArgs {
        coins,
        days,
        interval,
        start,
        seed,
        out,
    } = a;
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
        steps: (days as i64 * strata::tiering::DAY_MS / step) as usize,
        interval: step,
        seed,
    };
    let batch = strata::generate::Generator::new(cfg).all();
    let f = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
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

/// Collect Coinpaprika tickers (every coin, one request), ingest them, then run any tier
/// transitions that are due.
pub(crate) fn collect(g: &Global, a: CollectArgs) -> Result<ExitCode> {
    let CollectArgs {
        url,
        once: _,
        every,
        backfill,
        from,
        to,
        interval,
        policy,
    } = a;
    let mut store = open_store(g)?;
    let rt = runtime(g)?;
    let plan = tier_plan(&rt, policy.as_deref())?;
    let client = strata::source::coinpaprika::Client::new(&url, Default::default())?;
    let print = |c: &strata::collect::Collected| {
        for e in &c.errors {
            eprintln!("skipped {e}");
        }
        println!(
            "ingested {} rows ({} skipped); {} rows moved to colder tiers",
            c.rows,
            c.errors.len(),
            c.rows_moved()
        );
    };
    match backfill {
        Some(coin) => {
            let from = parse_time(from.as_deref().unwrap_or_default()).context("--from")?;
            let to = match to {
                Some(t) => parse_time(&t).context("--to")?,
                None => chrono::Utc::now().timestamp_millis(),
            };
            let chunk = client.fetch_historical(&coin, from, to, &interval)?;
            let now = chrono::Utc::now().timestamp_millis();
            print(&store.ingest_and_tier(chunk, &plan, now)?);
        }
        None => strata::collect::collect_tickers(
            &mut store,
            &plan,
            &client,
            every.map(Into::into),
            &mut |c| print(c),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Move everything that has aged past its tier into the next tier.
pub(crate) fn tier(g: &Global, a: TierArgs) -> Result<ExitCode> {
    let TierArgs {
        policy,
        now,
        dry_run,
    } = a;
    let mut store = open_store(g)?;
    let rt = runtime(g)?;
    let plan = tier_plan(&rt, policy.as_deref())?;
    let now = match now {
        Some(n) => parse_time(&n).context("--now")?,
        None => chrono::Utc::now().timestamp_millis(),
    };
    let reports = store.tier(&plan, now, dry_run)?;
    for r in reports {
        println!(
            "{} -> {}: rows older than {} : {} read, {} kept, {} segments written ({} bytes), {} removed{}{}",
            r.from,
            r.to,
            format_time(r.cut),
            r.rows_read,
            r.rows_kept,
            r.segments_written,
            r.bytes_written,
            r.segments_removed,
            if r.segments_split > 0 {
                format!(" ({} split at the cut)", r.segments_split)
            } else {
                String::new()
            },
            if dry_run { " (dry run)" } else { "" }
        );
        for w in &r.warnings {
            println!("  note: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Merge small segments, tier by tier.
pub(crate) fn compact(g: &Global, a: CompactArgs) -> Result<ExitCode> {
    let CompactArgs { policy, dry_run } = a;
    let mut store = open_store(g)?;
    let rt = runtime(g)?;
    let plan = tier_plan(&rt, policy.as_deref())?;
    let mode = strata::tiering::CompactMode::Full;
    for r in store.compact(&plan, mode, dry_run)? {
        if dry_run {
            println!(
                "{}: {} segments ({} rows, {} bytes) would become {} (dry run)",
                r.tier, r.segments_read, r.rows, r.bytes_before, r.runs
            );
        } else {
            println!(
                "{}: {} segments ({} rows, {} bytes) merged into {} ({} bytes)",
                r.tier, r.segments_read, r.rows, r.bytes_before, r.runs, r.bytes_after
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run as a service until SIGTERM or Ctrl-C.
pub(crate) fn serve(g: &Global, a: ServeArgs) -> Result<ExitCode> {
    let ServeArgs {
        listen,
        collect_every,
        url,
        tier_every,
        tier_at,
        policy,
        write_token_file,
        max_body_mib,
        max_range_rows,
    } = a;
    let write_token = match write_token_file {
        Some(p) => Some(
            std::fs::read_to_string(&p)
                .with_context(|| format!("reading the write token from {}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("STRATA_WRITE_TOKEN").ok(),
    };
    if write_token.as_ref().is_some_and(|t| t.len() < 16) {
        anyhow::bail!("the write token must be at least 16 characters");
    }
    let dir = data_dir(g);
    let mut cfg = strata::serve::ServeConfig::new(&dir);
    cfg.listen = listen;
    cfg.collect_every = collect_every.map(Into::into);
    cfg.collect_url = url;
    cfg.tier = match (tier_every, tier_at) {
        (Some(d), _) => Some(strata::serve::writer::Schedule::Every(d.into())),
        (None, Some(t)) => Some(strata::serve::writer::Schedule::DailyAt(t)),
        (None, None) => None,
    };
    cfg.policy = load_policy(policy.as_deref())?;
    cfg.write_token = write_token;
    cfg.max_body_bytes = max_body_mib << 20;
    cfg.max_range_rows = max_range_rows;
    cfg.store_options.segment_store = strata::segment_store::from_env(&dir)?;
    let server = strata::serve::Server::start(cfg, runtime(g)?)?;
    eprintln!(
        "strata: serving {} on http://{}",
        dir.display(),
        server.addr()
    );
    server.run_until_signal()?;
    eprintln!("strata: stopped");
    Ok(ExitCode::SUCCESS)
}

/// One coin's rows from every tier, oldest first.
pub(crate) fn query(g: &Global, a: QueryArgs) -> Result<ExitCode> {
    let QueryArgs {
        coin,
        from,
        to,
        format,
        skip_damaged,
    } = a;
    let store = open_store(g)?;
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

/// A coin's newest rows.
pub(crate) fn latest(g: &Global, a: LatestArgs) -> Result<ExitCode> {
    let LatestArgs {
        coin,
        n,
        format,
        skip_damaged,
    } = a;
    let store = open_store(g)?;
    answer_with_skips(&store.latest_with(&coin, n, skip_damaged)?, format)
}

/// Measure the engine's figures against their targets (use a release build).
pub(crate) fn bench(g: &Global, a: BenchArgs) -> Result<ExitCode> {
    let BenchArgs {
        json,
        quick,
        coingecko,
        dir,
        transition_only,
        bucket,
        serve,
        policy,
    } = a;
    let mut cfg = if quick {
        strata::bench::BenchConfig::quick()
    } else {
        strata::bench::BenchConfig::full()
    };
    cfg.coingecko = coingecko;
    cfg.dir = dir;
    cfg.transition_only = transition_only;
    cfg.bucket = bucket;
    cfg.serve = serve;
    if let Some(p) = policy {
        cfg.policy = load_policy(Some(&p))?;
    }
    let rt = runtime(g)?;
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

/// Per-tier rows, bytes and segments.
pub(crate) fn stats(g: &Global) -> Result<ExitCode> {
    let store = open_store(g)?;
    print!("{}", strata::verify::stats_table(&store.stats()?));
    println!("{}", store.disk_usage()?.line());
    Ok(ExitCode::SUCCESS)
}

/// Check every segment against the catalog.
pub(crate) fn verify(g: &Global, a: VerifyArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    if a.repair {
        for k in store.repair()? {
            println!("removed {k} (not in the catalog)");
        }
    }
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

pub(crate) fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let data = data_dir(g);
    let dest = strata::backup::open_location(&a.dest, &[])?;
    let t = std::time::Instant::now();
    let r = strata::backup::backup(&data, &*dest, &[])?;
    println!(
        "backed up {} to {}: {} segments, database {} bytes; copied {} objects, {} bytes \
         ({} already there) in {:.2} s; manifest {}",
        data.display(),
        dest.location(),
        r.segments,
        r.db_bytes,
        r.objects_copied,
        r.bytes_copied,
        r.objects_present,
        t.elapsed().as_secs_f64(),
        r.manifest
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let data = data_dir(g);
    let src = strata::backup::open_location(&a.src, &[])?;
    let r = strata::backup::restore(&*src, a.manifest.as_deref(), &data)?;
    println!(
        "restored {} from {} into {}: {} segments, {} bytes",
        r.manifest,
        src.location(),
        data.display(),
        r.segments,
        r.bytes
    );
    // A restore is done when the result verifies.
    verify(g, VerifyArgs { repair: false })
}

pub(crate) fn parse_file(
    file: &std::path::Path,
    args: &SourceArgs,
    show_errors: usize,
) -> Result<ExitCode> {
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

/// `strata demo`: runs [`strata::demo`] with progress bars and prints its summary.
pub(crate) fn run_demo(g: &Global, cfg: &strata::demo::DemoConfig) -> Result<()> {
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
    // A smaller page cache than a long-lived store's: the demo's writes append and its
    // transitions read each page once, and its memory stays under 1 GiB.
    let mut store = strata::Store::open_with(
        &dir,
        strata::store::StoreOptions {
            cache_mib: 128,
            ..Default::default()
        },
    )?;
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
