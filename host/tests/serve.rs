//! `strata serve` as its users meet it: the real binary on a loopback port, over HTTP.
//!
//! What these tests expect: every route answers what the library answers for the same store
//! (a reader opened beside the server); every bad parameter is a 400 naming it, an unknown
//! coin a 404; writes need the token and change nothing without it; `/metrics` parses with a
//! Prometheus text-format parser and agrees with `stats`; reads during a tier transition
//! answer from the state before it or after it, never from half of it; SIGTERM exits 0 and a
//! restart resumes the schedules; a failing collector is counted and retried while the
//! server keeps serving; and the dashboard, in headless Chromium, shows the tiers `/v1/tiers`
//! reports and draws a coin from every tier without a console error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata::Store;

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const TOKEN: &str = "test-token-0123456789abcdef";
const START: i64 = 1_704_067_200_000; // 2024-01-01
const DAY: i64 = 86_400_000;

/// Hot 30 days, then warm, cold and archive (short keeps, so 420 days reach every tier).
const POLICY: &str = r#"name = "serve-test"
[[tier]]
name = "hot"
keep = "30d"
[[tier]]
name = "warm"
keep = "90d"
retention = { plugin = "sample", options = { every = "1d" } }
codec = { plugin = "columnar" }
segment = { window = "30d", coin-buckets = 2 }
[[tier]]
name = "cold"
keep = "200d"
retention = { plugin = "sample", options = { every = "week" } }
codec = { plugin = "columnar" }
segment = { window = "90d", coin-buckets = 1 }
[[tier]]
name = "archive"
retention = { plugin = "sample", options = { every = "month" } }
codec = { plugin = "columnar" }
segment = { window = "365d", coin-buckets = 1 }
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A store of `coins` coins over `days` days of hourly rows, tiered at `now` with [`POLICY`]
/// (or not tiered, with `now` = `None`).
fn store(root: &Path, name: &str, coins: u32, days: u32, now: Option<i64>) -> (PathBuf, PathBuf) {
    let data = root.join(name);
    let csv = root.join(format!("{name}.csv"));
    let policy = root.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    cli(
        &data,
        &[
            "generate",
            "--coins",
            &coins.to_string(),
            "--days",
            &days.to_string(),
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    cli(&data, &["ingest", csv.to_str().unwrap()]);
    if let Some(now) = now {
        cli(
            &data,
            &[
                "tier",
                "--policy",
                policy.to_str().unwrap(),
                "--now",
                &now.to_string(),
            ],
        );
    }
    (data, policy)
}

/// A running `strata serve`, killed on drop.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Served {
    fn start(data: &Path, args: &[&str]) -> Served {
        let port = free_port();
        let log = data.with_extension(format!("serve-{port}.log"));
        let child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("STRATA_WRITE_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Served { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not start: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> (u16, String) {
        http("GET", &self.url(path), &[], b"")
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sends a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status and body.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    try_http(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// [`http`], with the client's error (the server may answer and close before a body is sent).
fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), ureq::Error> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = agent.run(req.body(body.to_vec()).unwrap())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Ok((status, text))
}

fn error_of(status_body: (u16, String), status: u16, parameter: Option<&str>) -> String {
    let (s, body) = status_body;
    assert_eq!(s, status, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    let e = v["error"].as_str().expect("an error message").to_string();
    if let Some(p) = parameter {
        assert_eq!(v["parameter"], p, "{body}");
    }
    e
}

/// The rows of a JSON answer as (ts, price bits, tier).
fn rows(v: &Value) -> Vec<(i64, u64, String)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ts"].as_i64().unwrap(),
                r["price"].as_f64().map_or(u64::MAX, f64::to_bits),
                r["tier"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The same from the library.
fn lib_rows(a: &strata::query::Answer) -> Vec<(i64, u64, String)> {
    (0..a.len())
        .map(|r| {
            let p = a.rows.price[r];
            (
                a.rows.ts[r],
                if p.is_nan() { u64::MAX } else { p.to_bits() },
                a.tier[r].to_string(),
            )
        })
        .collect()
}

fn reader(data: &Path) -> Store {
    Store::open_reader(data, Default::default()).unwrap()
}

#[test]
fn the_api_answers_what_the_library_answers_and_names_every_error() {
    let root = tempfile::tempdir().unwrap();
    let now = START + 420 * DAY;
    let (data, policy) = store(root.path(), "api", 6, 420, Some(now));
    let token_file = root.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let s = Served::start(
        &data,
        &[
            "--write-token-file",
            token_file.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--max-body-mib",
            "1",
        ],
    );
    let mut lib = reader(&data);

    assert_eq!(s.json("/healthz")["status"], "ok");
    let coins = s.json("/v1/coins");
    let ids: Vec<&str> = coins["coins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..6).map(|i| format!("coin-{i:05}")).collect::<Vec<_>>()
    );
    assert_eq!(coins["coins"][1]["first_ts"], START);

    // Every coin's latest rows and full range, as the library gives them.
    for id in &ids {
        let a = lib.consistent(|l| l.latest(id, 7)).unwrap();
        assert_eq!(
            rows(&s.json(&format!("/v1/coins/{id}/latest?n=7"))),
            lib_rows(&a)
        );
        let a = lib.consistent(|l| l.query(id, i64::MIN, i64::MAX)).unwrap();
        let got = rows(&s.json(&format!("/v1/coins/{id}/range")));
        assert_eq!(got, lib_rows(&a));
        // Coins listed from the start have rows in every tier.
        if got[0].0 == START {
            for tier in ["hot", "warm", "cold", "archive"] {
                assert!(got.iter().any(|r| r.2 == tier), "{id}: no {tier} rows");
            }
        }
    }
    let from = START + 100 * DAY;
    let to = START + 300 * DAY;
    let a = lib.consistent(|l| l.query("coin-00002", from, to)).unwrap();
    let v = s.json(&format!(
        "/v1/coins/coin-00002/range?from={from}&to=2024-10-27"
    ));
    assert_eq!(rows(&v), lib_rows(&a));
    let (status, csv) = s.get("/v1/coins/coin-00002/range?format=csv&from=2024-04-10");
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("coin,ts,time,tier,price"),
        "{}",
        lines[0]
    );
    let a = lib
        .consistent(|l| l.query("coin-00002", from, i64::MAX))
        .unwrap();
    assert_eq!(lines.len(), a.len() + 1);

    // Bad parameters are 400s naming them; an unknown coin and route are 404s.
    for (path, param) in [
        ("/v1/coins/coin-00001/latest?n=0", "n"),
        ("/v1/coins/coin-00001/latest?n=abc", "n"),
        ("/v1/coins/coin-00001/latest?n=10001", "n"),
        ("/v1/coins/coin-00001/latest?format=xml", "format"),
        ("/v1/coins/coin-00001/range?from=yesterday", "from"),
        ("/v1/coins/coin-00001/range?to=2024-13-45", "to"),
        (
            "/v1/coins/coin-00001/range?from=2025-01-01&to=2024-01-01",
            "from",
        ),
        ("/v1/coins?format=yaml", "format"),
    ] {
        error_of(s.get(path), 400, Some(param));
    }
    let e = error_of(s.get("/v1/coins/no-such-coin/latest"), 404, None);
    assert!(e.contains("no-such-coin"), "{e}");
    error_of(s.get("/v1/coins/no-such-coin/range"), 404, None);
    error_of(s.get("/v2/nothing"), 404, None);

    // Tiers as stats reports them; plan, plugins, status and the OpenAPI description.
    let tiers = s.json("/v1/tiers");
    let stats = lib.consistent(|l| l.stats()).unwrap();
    assert_eq!(tiers["tiers"].as_array().unwrap().len(), stats.len());
    for (t, st) in tiers["tiers"].as_array().unwrap().iter().zip(&stats) {
        assert_eq!(t["tier"], st.tier.as_str());
        assert_eq!(t["rows"], st.rows);
        assert_eq!(t["bytes"], st.bytes);
        assert_eq!(t["segments"], st.segments);
    }
    let plan = s.json("/v1/plan");
    let names: Vec<&str> = plan["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hot", "warm", "cold", "archive"]);
    let plugins = s.json("/v1/plugins");
    assert!(
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "columnar" && p["kind"] == "codec")
    );
    let status = s.json("/v1/status");
    assert!(status["collect"]["every_secs"].is_null());
    let spec = s.json("/v1/openapi.json");
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(spec, on_disk);
    let mut documented: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort();
    let mut served = vec![
        "/healthz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/coins",
        "/v1/coins/{id}/latest",
        "/v1/coins/{id}/range",
        "/v1/tiers",
        "/v1/plan",
        "/v1/plugins",
        "/v1/status",
        "/v1/ingest",
    ];
    served.sort();
    assert_eq!(documented, served);
    for p in &served {
        let path = p.replace("{id}", "coin-00001");
        if *p != "/v1/ingest" {
            assert_eq!(s.get(&path).0, 200, "{p}");
        }
    }

    // Writes: the token, strict and skip-invalid rows, the body limit.
    let newest = START + 421 * DAY;
    let good =
        format!("coin,ts,price,market_cap,volume,supply,rank\ncoin-00001,{newest},1.25,2,3,4,1\n");
    let bad = format!("{good}coin-00001,{},oops,2,3,4,1\n", newest + 3_600_000);
    let csv_type = ("Content-Type", "text/csv");
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let before = rows(&s.json("/v1/coins/coin-00001/latest?n=3"));
    let ingest = s.url("/v1/ingest");
    error_of(
        http("POST", &ingest, &[csv_type], good.as_bytes()),
        401,
        None,
    );
    error_of(
        http(
            "POST",
            &ingest,
            &[csv_type, ("Authorization", "Bearer not-the-token-at-all")],
            good.as_bytes(),
        ),
        401,
        None,
    );
    let (st, body) = http("POST", &ingest, &[csv_type, auth], bad.as_bytes());
    assert_eq!(st, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rows"][0]["line"], 3, "{body}");
    assert_eq!(v["rows"][0]["field"], "price", "{body}");
    error_of(
        http("POST", &ingest, &[auth], good.as_bytes()),
        400,
        Some("format"),
    );
    error_of(
        http(
            "POST",
            &format!("{ingest}?format=csv&skip_invalid=maybe"),
            &[auth],
            good.as_bytes(),
        ),
        400,
        Some("skip_invalid"),
    );
    assert_eq!(rows(&s.json("/v1/coins/coin-00001/latest?n=3")), before);
    let big = vec![b'x'; 2 << 20];
    // The server answers 413 as soon as the body passes its limit and closes the connection:
    // the client may see the answer, or a broken pipe while it is still sending.
    match try_http("POST", &ingest, &[csv_type, auth], &big) {
        Ok((status, body)) => assert_eq!(status, 413, "{body}"),
        Err(ureq::Error::Io(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
        Err(e) => panic!("an oversized body: {e}"),
    }
    let (st, body) = http(
        "POST",
        &format!("{ingest}?skip_invalid=true"),
        &[csv_type, auth],
        bad.as_bytes(),
    );
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rows"], 1);
    assert_eq!(v["skipped"][0]["line"], 3);
    let after = rows(&s.json("/v1/coins/coin-00001/latest?n=3"));
    assert_eq!(after[2], (newest, 1.25f64.to_bits(), "hot".to_string()));
    assert_eq!(after[..2], before[1..]);
    // JSON Lines too.
    let line = format!(
        "{{\"coin\":\"coin-00005\",\"ts\":{newest},\"price\":7.5,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":9}}\n"
    );
    let (st, body) = http(
        "POST",
        &ingest,
        &[("Content-Type", "application/x-ndjson"), auth],
        line.as_bytes(),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        rows(&s.json("/v1/coins/coin-00005/latest?n=1"))[0],
        (newest, 7.5f64.to_bits(), "hot".to_string())
    );

    // A server started without a write token takes no writes.
    drop(s);
    let s = Served::start(&data, &[]);
    error_of(
        http(
            "POST",
            &s.url("/v1/ingest"),
            &[csv_type, auth],
            good.as_bytes(),
        ),
        403,
        None,
    );
}

#[test]
fn metrics_parse_as_prometheus_text_and_agree_with_stats() {
    let root = tempfile::tempdir().unwrap();
    let (data, _) = store(root.path(), "metrics", 4, 420, Some(START + 420 * DAY));
    let s = Served::start(&data, &[]);
    for _ in 0..3 {
        s.json("/v1/coins/coin-00001/range");
    }
    s.get("/v1/coins/coin-00001/latest?n=0");
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200);

    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let number = |v: &prometheus_parse::Value| match v {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        _ => f64::NAN,
    };
    let value = |name: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| number(&s.value))
            .unwrap_or_else(|| panic!("no {name}{{{}={}}} in\n{text}", label.0, label.1))
    };
    let stats = reader(&data).consistent(|l| l.stats()).unwrap();
    for t in &stats {
        assert_eq!(value("strata_tier_rows", ("tier", &t.tier)), t.rows as f64);
        assert_eq!(
            value("strata_tier_bytes", ("tier", &t.tier)),
            t.bytes as f64
        );
        assert_eq!(
            value("strata_tier_segments", ("tier", &t.tier)),
            t.segments as f64
        );
    }
    let ranges = scrape
        .samples
        .iter()
        .find(|x| {
            x.metric == "strata_http_requests_total"
                && x.labels.get("route") == Some("/v1/coins/:id/range")
                && x.labels.get("status") == Some("200")
        })
        .expect("range requests counted");
    assert_eq!(number(&ranges.value), 3.0);
    assert!(scrape.samples.iter().any(|x| {
        x.metric == "strata_http_requests_total" && x.labels.get("status") == Some("400")
    }));
    // Decoding the range's segments called the codec (in this server process).
    assert!(value("strata_plugin_calls_total", ("plugin", "columnar")) >= 1.0);
    for name in [
        "strata_plugin_traps_total",
        "strata_plugin_timeouts_total",
        "strata_plugin_memory_limit_hits_total",
        "strata_collections_total",
        "strata_transitions_total",
        "strata_records_moved_total",
    ] {
        assert!(
            scrape.samples.iter().any(|x| x.metric == name),
            "no {name} in\n{text}"
        );
    }
}

#[test]
fn reads_during_a_transition_see_the_state_before_or_after_it() {
    let root = tempfile::tempdir().unwrap();
    // Two tiers: a hot -> warm move commits once, so there are exactly two states.
    let two = "name = \"two\"\n[[tier]]\nname = \"hot\"\nkeep = \"30d\"\n[[tier]]\nname = \"warm\"\n\
               retention = { plugin = \"sample\", options = { every = \"1d\" } }\n\
               codec = { plugin = \"columnar\" }\nsegment = { window = \"30d\", coin-buckets = 2 }\n";
    let (data, _) = store(root.path(), "moving", 120, 300, None);
    let policy = root.path().join("two.toml");
    std::fs::write(&policy, two).unwrap();
    let coin = "coin-00003";
    let answer = |d: &Path| {
        let mut r = reader(d);
        lib_rows(&r.consistent(|l| l.query(coin, i64::MIN, i64::MAX)).unwrap())
    };
    let before = answer(&data);
    // The state after: a copy, tiered now (every row is older than the hot tier keeps).
    let copy = root.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(data.join("strata.db"), copy.join("strata.db")).unwrap();
    cli(&copy, &["tier", "--policy", policy.to_str().unwrap()]);
    let after = answer(&copy);
    assert_ne!(before, after);

    // The server's first transition starts at once; reads run beside it.
    let s = Served::start(
        &data,
        &["--tier-every", "1h", "--policy", policy.to_str().unwrap()],
    );
    let path = format!("/v1/coins/{coin}/range");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Four readers at once until the transition is done and each has seen its result.
    let counts: Vec<(u32, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (mut saw_before, mut saw_after) = (0, 0);
                    loop {
                        let got = rows(&s.json(&path));
                        if got == before {
                            saw_before += 1;
                        } else if got == after {
                            saw_after += 1;
                        } else {
                            panic!(
                                "an answer from neither state: {} rows ({} before, {} after)",
                                got.len(),
                                before.len(),
                                after.len()
                            );
                        }
                        let status = s.json("/v1/status");
                        if status["tier"]["runs"].as_u64() == Some(1) && saw_after >= 3 {
                            return (saw_before, saw_after);
                        }
                        assert!(Instant::now() < deadline, "no transition: {}", s.log());
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let saw_before: u32 = counts.iter().map(|c| c.0).sum();
    let saw_after: u32 = counts.iter().map(|c| c.1).sum();
    eprintln!("{saw_before} answers before the transition committed, {saw_after} after");
    assert_eq!(s.json("/v1/status")["tier"]["failures"], 0);
}

#[test]
fn sigterm_exits_cleanly_and_a_restart_resumes_the_schedules() {
    let root = tempfile::tempdir().unwrap();
    let (data, policy) = store(root.path(), "restart", 3, 60, None);
    let args = ["--tier-every", "1h", "--policy", policy.to_str().unwrap()];
    let s = Served::start(&data, &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let st = s.json("/v1/status");
        if let Some(t) = st["tier"]["last_success_ms"].as_i64() {
            break t;
        }
        assert!(Instant::now() < deadline, "no transition: {}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    // Restarted within the hour: the next transition is an hour after the last, not now.
    let s = Served::start(&data, &args);
    let st = s.json("/v1/status");
    assert_eq!(st["tier"]["last_success_ms"], first);
    assert_eq!(st["tier"]["next_run_ms"], first + 3_600_000);
    assert_eq!(st["tier"]["runs"], 0);
    assert!(s.terminate().success());
    // Restarted as a daily job at a time of day two hours on: it waits for that time.
    let at = (first + 2 * 3_600_000) / 60_000 * 60_000;
    let hh_mm = chrono::DateTime::from_timestamp_millis(at)
        .unwrap()
        .format("%H:%M")
        .to_string();
    let args = ["--tier-at", &hh_mm, "--policy", policy.to_str().unwrap()];
    let s = Served::start(&data, &args);
    let st = s.json("/v1/status");
    assert_eq!(st["tier"]["daily_at_utc"], hh_mm.as_str());
    assert!(st["tier"]["every_secs"].is_null());
    assert_eq!(st["tier"]["next_run_ms"], at);
    assert_eq!(st["tier"]["runs"], 0);
}

/// A minimal HTTP server answering every request with `status` and `body`.
fn responder(status: u16, body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

const TICKERS: &str = r#"[{"id":"btc-bitcoin","name":"Bitcoin","symbol":"BTC","rank":1,"circulating_supply":17919100,"total_supply":17919100,"max_supply":21000000,"last_updated":"2019-09-06T12:40:34Z","quotes":{"USD":{"price":10913.27425377,"volume_24h":15497171907.63,"market_cap":195556052680}}},{"id":"eth-ethereum","name":"Ethereum","symbol":"ETH","rank":2,"circulating_supply":107563000,"total_supply":107563000,"max_supply":0,"last_updated":"2019-09-06T12:40:34Z","quotes":{"USD":{"price":178.1,"volume_24h":7000000000.5,"market_cap":19160000000}}}]"#;

#[test]
fn collections_run_on_schedule_and_failures_are_counted_and_retried() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("collect");
    let ok = responder(200, TICKERS);
    let s = Served::start(
        &data,
        &[
            "--collect-every",
            "1s",
            "--url",
            &format!("http://127.0.0.1:{ok}"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.json("/v1/status")["collect"]["runs"].as_u64() < Some(2) {
        assert!(Instant::now() < deadline, "no collection: {}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let coins = s.json("/v1/coins");
    let btc = &coins["coins"][0];
    assert_eq!(btc["id"], "btc-bitcoin");
    assert_eq!(btc["symbol"], "BTC");
    let latest = s.json("/v1/coins/eth-ethereum/latest");
    assert_eq!(latest["rows"][0]["price"], 178.1);
    drop(s);

    // A source answering 404: each tick fails, is counted and retried; reads go on.
    let bad = responder(404, "{\"error\":\"gone\"}");
    let s = Served::start(
        &data,
        &[
            "--collect-every",
            "1s",
            "--url",
            &format!("http://127.0.0.1:{bad}"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = s.json("/v1/status");
        if st["collect"]["failures"].as_u64() >= Some(2) {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no failed collection: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        st["collect"]["last_error"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{st}"
    );
    assert_eq!(s.json("/healthz")["status"], "ok");
    assert_eq!(
        s.json("/v1/coins/eth-ethereum/latest")["rows"][0]["price"],
        178.1
    );
    let (_, text) = s.get("/metrics");
    assert!(
        text.lines()
            .any(|l| l.starts_with("strata_collections_failed_total ") && !l.ends_with(" 0")),
        "{text}"
    );
}

/// The dashboard in headless Chromium (Debian's `chromium` and `chromium-driver`, which
/// `.ci/run` installs): skipped without them unless `STRATA_REQUIRE_BROWSER=1`. With
/// `STRATA_SCREENSHOT=FILE` it also saves a screenshot there.
#[test]
fn the_dashboard_shows_the_tiers_and_draws_a_coin_from_every_tier() {
    let (chromium, driver) = (
        Path::new("/usr/bin/chromium"),
        Path::new("/usr/bin/chromedriver"),
    );
    if !chromium.exists() || !driver.exists() {
        assert!(
            std::env::var("STRATA_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "STRATA_REQUIRE_BROWSER=1 but no /usr/bin/chromium and /usr/bin/chromedriver"
        );
        eprintln!(
            "skipped: no chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (data, policy) = store(root.path(), "dash", 5, 420, Some(START + 420 * DAY));
    let s = Served::start(&data, &["--policy", policy.to_str().unwrap()]);
    let tiers = s.json("/v1/tiers");

    let port = free_port();
    let mut chromedriver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = root.path().join("chromium-profile");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let c = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromedriver session");
        let checked = check_dashboard(&c, &s.url("/"), &tiers).await;
        if let Ok(p) = std::env::var("STRATA_SCREENSHOT") {
            std::fs::write(p, c.screenshot().await.unwrap()).unwrap();
        }
        let _ = c.close().await;
        checked
    });
    let _ = chromedriver.kill();
    let _ = chromedriver.wait();
    result.unwrap();
}

async fn check_dashboard(c: &fantoccini::Client, url: &str, tiers: &Value) -> Result<(), String> {
    use fantoccini::Locator;
    c.goto(url).await.map_err(|e| e.to_string())?;
    let wait = |css: &'static str| async move {
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("waiting for {css}: {e}"))
    };
    wait("body[data-ready='1']").await?;
    // The tier table holds what /v1/tiers says.
    for t in tiers["tiers"].as_array().unwrap() {
        let tier = t["tier"].as_str().unwrap();
        let row = c
            .find(Locator::Css(&format!("#tiers tr[data-tier='{tier}']")))
            .await
            .map_err(|e| format!("no row for tier {tier}: {e}"))?;
        let cells = row
            .find_all(Locator::Css("td"))
            .await
            .map_err(|e| e.to_string())?;
        let rows_cell = cells[1]
            .attr("data-value")
            .await
            .map_err(|e| e.to_string())?;
        let bytes_cell = cells[2]
            .attr("data-value")
            .await
            .map_err(|e| e.to_string())?;
        if rows_cell.as_deref() != Some(&t["rows"].to_string())
            || bytes_cell.as_deref() != Some(&t["bytes"].to_string())
        {
            return Err(format!(
                "tier {tier}: the table says {rows_cell:?} rows, {bytes_cell:?} bytes; /v1/tiers {t}"
            ));
        }
        let text = cells[1].text().await.map_err(|e| e.to_string())?;
        if text.replace(',', "").parse::<u64>().ok() != t["rows"].as_u64() {
            return Err(format!("tier {tier}: rows shown as {text}"));
        }
    }
    // Pick a coin: its price and market cap are drawn from every tier.
    let select = c
        .find(Locator::Css("#coin"))
        .await
        .map_err(|e| e.to_string())?;
    select
        .select_by_value("coin-00003")
        .await
        .map_err(|e| e.to_string())?;
    wait("body[data-coin-loaded='coin-00003']").await?;
    for chart in ["price", "mcap"] {
        let mut drawn = std::collections::BTreeSet::new();
        for p in c
            .find_all(Locator::Css(&format!("#{chart} path[data-tier]")))
            .await
            .map_err(|e| e.to_string())?
        {
            let tier = p.attr("data-tier").await.map_err(|e| e.to_string())?;
            let points: u64 = p
                .attr("data-points")
                .await
                .map_err(|e| e.to_string())?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if points > 0 {
                drawn.extend(tier);
            }
        }
        let want: std::collections::BTreeSet<String> =
            ["archive", "cold", "hot", "warm"].map(String::from).into();
        if drawn != want {
            return Err(format!("#{chart} draws tiers {drawn:?}"));
        }
    }
    let errors = c
        .execute("return window.__strataErrors;", vec![])
        .await
        .map_err(|e| e.to_string())?;
    if errors.as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("console errors: {errors}"));
    }
    Ok(())
}
