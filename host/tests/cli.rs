//! The engine's commands end to end through the `strata` binary: generate, ingest (strict and
//! skip-invalid), tier, query, latest, stats, and verify passing on a good store and failing
//! on a corrupted segment.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_strata");

fn strata(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("STRATA_CRASH_AT")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn ingest_tier_query_verify_and_detect_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csv = tmp.path().join("in.csv");
    let csv_s = csv.to_str().unwrap();
    stdout(&strata(
        &data,
        &["generate", "--coins", "5", "--days", "100", "--out", csv_s],
    ));

    // A bad row: strict applies nothing and names file, line and field; skip-invalid loads
    // the rest.
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("coin-00001,12x,1.0,,,,\n");
    let lines = text.lines().count();
    std::fs::write(&csv, text).unwrap();
    let o = strata(&data, &["ingest", csv_s]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("in.csv:{lines}: field `ts`")),
        "{err}"
    );
    assert!(stdout(&strata(&data, &["stats"])).contains("hot                   0"));
    let out = stdout(&strata(&data, &["ingest", "--skip-invalid", csv_s]));
    assert!(out.contains("1 invalid rows skipped"), "{out}");

    stdout(&strata(&data, &["tier", "--now", "2024-04-05"]));
    let stats = stdout(&strata(&data, &["stats"]));
    assert!(stats.contains("warm"), "{stats}");
    assert!(
        stats.contains("\ndisk: ") && stats.contains("free pages"),
        "{stats}"
    );
    let q = stdout(&strata(
        &data,
        &[
            "query",
            "coin-00002",
            "--from",
            "2024-01-01",
            "--format",
            "csv",
        ],
    ));
    assert!(q.starts_with("coin,ts,price,market_cap,volume,supply,rank,tier\n"));
    assert!(q.contains(",warm\n") && q.contains(",hot\n"), "{q}");
    let latest = stdout(&strata(
        &data,
        &["latest", "coin-00002", "-n", "3", "--format", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&latest).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);

    assert!(stdout(&strata(&data, &["verify"])).contains(" 0 faults"));
    // Flip one byte in the middle of a segment.
    let seg = walk(&data.join("segments"))
        .into_iter()
        .next()
        .expect("a segment");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    let o = strata(&data, &["verify"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(name) && out.contains("sha256"), "{out}");
    // A deleted segment is a fault too.
    std::fs::remove_file(&seg).unwrap();
    let o = strata(&data, &["verify"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("cannot read"));
}

#[test]
fn a_damaged_segment_fails_a_query_by_name_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csv = tmp.path().join("in.csv");
    let csv_s = csv.to_str().unwrap();
    stdout(&strata(
        &data,
        &["generate", "--coins", "3", "--days", "60", "--out", csv_s],
    ));
    stdout(&strata(&data, &["ingest", csv_s]));
    stdout(&strata(&data, &["tier", "--now", "2024-02-20"]));
    let all = stdout(&strata(&data, &["query", "coin-00001", "--format", "csv"]));
    let hot_rows = all.lines().filter(|l| l.ends_with(",hot")).count();
    assert!(hot_rows > 0 && all.contains(",warm"), "{all}");
    // Damage every segment: same size, other bytes.
    let segments = walk(&data.join("segments"));
    for seg in &segments {
        let n = std::fs::metadata(seg).unwrap().len() as usize;
        std::fs::write(seg, vec![0x5a; n]).unwrap();
    }
    let o = strata(&data, &["query", "coin-00001"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("damaged") && err.contains("--skip-damaged") && err.contains("segments/warm/"),
        "{err}"
    );
    for cmd in [
        &["query", "coin-00001", "--format", "csv", "--skip-damaged"][..],
        &[
            "latest",
            "coin-00001",
            "-n",
            "100000",
            "--format",
            "csv",
            "--skip-damaged",
        ][..],
    ] {
        let o = strata(&data, cmd);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{cmd:?}: a partial answer exits 2"
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            out.lines().filter(|l| l.ends_with(",hot")).count(),
            hot_rows,
            "{cmd:?}"
        );
        assert!(!out.contains(",warm"), "{cmd:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("skipped damaged segment segments/warm/"),
            "{cmd:?}: {err}"
        );
    }
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Serves `body` as the answer to every HTTP request on 127.0.0.1; returns the base URL.
fn serve(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

#[test]
fn collect_once_stores_every_recorded_coinpaprika_ticker() {
    let path = strata::sdk::shared_data::path("coinpaprika-samples/v1_tickers_2019-09-06.json.gz");
    let Ok(gz) = std::fs::read(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return;
    };
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut body).unwrap();
    let base = serve(body.clone());

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = stdout(&strata(&data, &["collect", "--once", "--url", &base]));
    assert!(out.contains("ingested 2541 rows (0 skipped)"), "{out}");

    // Every ticker, read independently from the JSON, against the store (the rows have aged
    // into colder tiers by now: the tickers are from 2019).
    let tickers: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(tickers.len(), 2541);
    let store = strata::Store::open(&data).unwrap();
    store.set_runtime(strata::plugin::Runtime::new(Default::default()).unwrap());
    let bits = |v: &serde_json::Value| v.as_f64().map_or(f64::NAN, |f| f).to_bits();
    for t in &tickers {
        let id = t["id"].as_str().unwrap();
        let a = store.latest(id, 2).unwrap();
        assert_eq!(a.len(), 1, "{id}: one row");
        let r = a.rows.row(0);
        let usd = &t["quotes"]["USD"];
        let ts = chrono::DateTime::parse_from_rfc3339(t["last_updated"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            (r.ts, r.rank as u64),
            (ts, t["rank"].as_u64().unwrap()),
            "{id}"
        );
        assert_eq!(r.price.to_bits(), bits(&usd["price"]), "{id} price");
        assert_eq!(
            r.market_cap.to_bits(),
            bits(&usd["market_cap"]),
            "{id} market cap"
        );
        assert_eq!(r.volume.to_bits(), bits(&usd["volume_24h"]), "{id} volume");
        assert_eq!(
            r.supply.to_bits(),
            bits(&t["circulating_supply"]),
            "{id} supply"
        );
        let meta = store.coin_meta(id).unwrap().unwrap();
        assert_eq!(
            meta.symbol.as_deref(),
            Some(t["symbol"].as_str().unwrap()),
            "{id}"
        );
        assert_eq!(
            meta.name.as_deref(),
            Some(t["name"].as_str().unwrap()),
            "{id}"
        );
    }
    drop(store);
    assert!(stdout(&strata(&data, &["verify"])).contains(" 0 faults"));
}

#[test]
fn demo_fills_every_tier_of_the_default_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let out = stdout(&strata(
        &data,
        &["demo", "--coins", "24", "--hourly-days", "2"],
    ));
    assert!(out.contains("hourly for the last 2 days"), "{out}");
    // Every tier holds rows, and so does the biggest coin's query.
    let stats = stdout(&strata(&data, &["stats"]));
    for tier in ["hot", "warm", "cold", "archive"] {
        let line = stats
            .lines()
            .find(|l| l.starts_with(tier))
            .unwrap_or_else(|| panic!("no {tier} in\n{stats}"));
        let rows: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(rows > 0, "{line}");
    }
    let query = out.lines().find(|l| l.starts_with("query ")).expect(&out);
    for tier in ["hot", "warm", "cold", "archive"] {
        assert!(query.contains(&format!("{tier} ")), "{query}");
    }
    // Every codec round-tripped and the plan was printed.
    assert_eq!(out.matches("bit-exact").count(), 7, "{out}");
    assert!(out.contains("policy `default`: 13532 coins"), "{out}");
    assert!(stdout(&strata(&data, &["verify"])).contains(" 0 faults"));
    // A second run refuses a store that is not empty.
    let o = strata(&data, &["demo", "--coins", "24"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}

#[test]
fn rollup_policy_stores_daily_ohlc_that_queries_return() {
    use strata::generate::{GenConfig, Generator, write_csv};
    const DAY: i64 = 86_400_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = GenConfig::hourly(6, 40, 3);
    let start = cfg.start;
    let batch = Generator::new(cfg).all();
    let csv = tmp.path().join("in.csv");
    write_csv(&batch, &mut std::fs::File::create(&csv).unwrap()).unwrap();
    stdout(&strata(&data, &["ingest", csv.to_str().unwrap()]));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/rollup.toml");
    let now = (start + 40 * DAY).to_string();
    stdout(&strata(
        &data,
        &["tier", "--policy", policy.to_str().unwrap(), "--now", &now],
    ));
    let cut = start + 10 * DAY;

    for coin in ["coin-00000", "coin-00003"] {
        let out = stdout(&strata(&data, &["query", coin, "--format", "json"]));
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let mine: Vec<_> = batch.rows().filter(|r| r.coin == coin).collect();
        // The hot tier still holds every row from the cut on, untouched.
        let hot = rows.iter().filter(|r| r["tier"] == "hot").count();
        assert_eq!(hot, mine.iter().filter(|r| r.ts >= cut).count(), "{coin}");
        // Before the cut: one warm row per day that had rows, summarising that day.
        let warm: Vec<_> = rows.iter().filter(|r| r["tier"] == "warm").collect();
        let days: std::collections::BTreeSet<i64> = mine
            .iter()
            .filter(|r| r.ts < cut)
            .map(|r| r.ts - (r.ts - start) % DAY)
            .collect();
        assert_eq!(warm.len(), days.len(), "{coin}");
        for (w, day) in warm.iter().zip(&days) {
            let ts = w["ts"].as_i64().unwrap();
            assert_eq!(ts, *day, "{coin}: a daily row starts its day");
            let in_day: Vec<_> = mine
                .iter()
                .filter(|r| r.ts >= ts && r.ts < ts + DAY)
                .collect();
            let known = |field: usize| -> Vec<f64> {
                in_day
                    .iter()
                    .map(|r| [r.price, r.market_cap, r.volume, r.supply][field])
                    .filter(|v| !v.is_nan())
                    .collect()
            };
            let (prices, caps, vols, supplies) = (known(0), known(1), known(2), known(3));
            let bits = |a: f64, b: f64, what: &str| {
                assert_eq!(a.to_bits(), b.to_bits(), "{coin} {ts} {what}: {a} vs {b}")
            };
            bits(f(&w["price"]), *prices.last().unwrap(), "close");
            bits(f(&w["open"]), prices[0], "open");
            bits(
                f(&w["high"]),
                prices.iter().copied().fold(f64::MIN, f64::max),
                "high",
            );
            bits(
                f(&w["low"]),
                prices.iter().copied().fold(f64::MAX, f64::min),
                "low",
            );
            bits(
                f(&w["market_cap"]),
                caps.iter().copied().fold(f64::MIN, f64::max),
                "cap",
            );
            bits(f(&w["supply"]), *supplies.last().unwrap(), "supply");
            let mean = vols.iter().sum::<f64>() / vols.len() as f64;
            assert!(
                (f(&w["volume"]) - mean).abs() <= mean.abs() * 1e-12,
                "{coin} {ts} volume"
            );
            assert_eq!(f(&w["count"]), in_day.len() as f64, "{coin} {ts} count");
            let rank = in_day
                .iter()
                .rev()
                .map(|r| r.rank)
                .find(|&r| r > 0)
                .unwrap_or(0);
            assert_eq!(
                w["rank"].as_u64().unwrap(),
                u64::from(rank),
                "{coin} {ts} rank"
            );
        }
    }
    assert!(stdout(&strata(&data, &["verify"])).contains(" 0 faults"));
}

/// `strata plan` prices each tier where its policy keeps it: the local disk, or its bucket's
/// storage class.
#[test]
fn plan_prices_each_tier_where_it_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("p.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/all-columnar.toml"),
    )
    .unwrap()
    .replace(
        "segment = { window = \"1826d\", coin-buckets = 1 }",
        "segment = { window = \"1826d\", coin-buckets = 1 }\nstore = \"s3://archive-bucket/strata\"\nstorage-class = \"archive\"",
    );
    std::fs::write(&policy, text).unwrap();
    let o = strata(
        &tmp.path().join("data"),
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--coins",
            "100",
            "--years",
            "7",
            "--json",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tiers = plan["tiers"].as_array().unwrap();
    let class: Vec<&str> = tiers
        .iter()
        .map(|t| t["price_class"].as_str().unwrap())
        .collect();
    assert_eq!(
        class,
        ["local-ssd", "local-ssd", "local-ssd", "object-archive"]
    );
    assert_eq!(tiers[3]["location"], "s3://archive-bucket/strata");
    let price = |k: &str| {
        plan["monthly_cost"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == k)
            .unwrap()[1]
            .as_f64()
            .unwrap()
    };
    // The final year of a per-year series.
    let last = |v: &serde_json::Value| v.as_array().unwrap().last().unwrap().as_f64().unwrap();
    let total = last(&plan["total_by_year"]);
    // Each tier's cost is its final-year bytes at its class's price, and they add up.
    let mut sum = 0.0;
    for t in tiers {
        let bytes = last(&t["bytes_by_year"]);
        let class = t["price_class"].as_str().unwrap();
        let per_gb = price(class) / (total / 1e9);
        let cost = t["monthly_cost"].as_f64().unwrap();
        assert!((cost - bytes / 1e9 * per_gb).abs() < 1e-9, "{t}");
        sum += cost;
    }
    assert!((plan["policy_monthly_cost"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert!(
        sum < price("local-ssd"),
        "with the archive tier holding data (years 6-7), it must cost less than all-local"
    );
}
