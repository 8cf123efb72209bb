//! Crash campaign (issue 11, section 6): the `strata` binary is killed with SIGKILL at random
//! moments of `ingest` (strict and `--skip-invalid`), `collect --once` and tier transitions
//! that move hot → warm, warm → cold and cold → archive, over and over, and after every kill
//! the store is checked against a model:
//!
//! - `strata verify` (the first reopen, so startup recovery runs) is clean;
//! - every coin's answer (`Store::query`, rows bit for bit with `f64::to_bits`, and the tier of
//!   each row) equals one of the states the command may leave behind. For `ingest` these come
//!   from an in-test model of the rows ingested so far: the atomicity unit is a transaction,
//!   which is the whole input in strict mode and one chunk (`--chunk-rows`) with
//!   `--skip-invalid`, so the allowed states are "the base store plus the first k chunks, each
//!   row exactly once". For `tier` and `collect` they are the states after each commit of an
//!   uninterrupted run, found beforehand by stopping the binary after its n-th commit
//!   (`STRATA_CRASH_AT=after-commit:n`), and each checked to hold every surviving row once;
//! - no row is lost (every row the start and the end state both hold is visible), none is stored
//!   twice (the tiers' row counts add up to the rows the queries see) and none has values of
//!   neither state;
//! - once the interrupted command is run again, the store equals the store an uninterrupted
//!   run leaves, bit for bit, and verifies clean.
//!
//! Kill times are drawn from each command's measured duration `d` (the median of three
//! uninterrupted runs): half uniform over `[0, d]`, half over `[d/2, d]`, where the commits
//! are; run times vary, so kills land from process start to just before exit (a run that ends
//! before its kill is checked the same way but not counted as a kill). The campaign is `#[ignore]`d (it takes a while):
//!
//! ```sh
//! cargo test -p strata --test crash_campaign -- --ignored --nocapture
//! STRATA_CRASH_KILLS=5000 STRATA_CRASH_SEED=7 cargo test -p strata --test crash_campaign -- --ignored --nocapture
//! ```
//!
//! A small run of the same harness (20 kills) is an ordinary test. A failing store is kept
//! under the system temp directory and named in the output.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata::Store;
use strata::generate::{GenConfig, Generator};

const BIN: &str = env!("CARGO_BIN_EXE_strata");

thread_local! {
    /// The binary this campaign runs: [`BIN`] as it was at the start, so a rebuild of the
    /// workspace during a long campaign does not swap the program under it.
    static BIN_COPY: std::cell::RefCell<PathBuf> = std::cell::RefCell::new(PathBuf::from(BIN));
}

fn bin() -> PathBuf {
    BIN_COPY.with(|b| b.borrow().clone())
}
const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000; // 2024-01-01
const TIERS: [&str; 4] = ["hot", "warm", "cold", "archive"];
/// Generated coins; the collect command adds as many Coinpaprika tickers.
const COINS: usize = 50;
const TICKERS: usize = 40;

/// A small policy with short keeps, so a year of data reaches every tier: three codecs, a few
/// buckets, so a transition writes a few dozen segments.
const POLICY: &str = r#"
name = "crash-campaign"

[[tier]]
name = "hot"
keep = "30d"

[[tier]]
name = "warm"
keep = "60d"
retention = { plugin = "sample", options = { every = "1d" } }
codec = { plugin = "jsonl-gzip" }
segment = { window = "30d", coin-buckets = 3 }

[[tier]]
name = "cold"
keep = "120d"
retention = { plugin = "sample", options = { every = "week" } }
codec = { plugin = "parquet" }
segment = { window = "90d", coin-buckets = 2 }

[[tier]]
name = "archive"
retention = { plugin = "sample", options = { every = "quarter" } }
codec = { plugin = "columnar" }
segment = { window = "365d", coin-buckets = 1 }
"#;

/// One stored row as the model compares it: ts, the four values by their bits, rank, and the
/// tier holding it (an index into [`TIERS`]).
type R = (i64, [u64; 4], u32, u8);
/// Every coin's answer, in the campaign's coin order.
type Snap = Vec<Vec<R>>;

fn strata(data: &Path, args: &[String]) -> Output {
    Command::new(bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("STRATA_CRASH_AT")
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn fresh_copy(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    copy_dir(from, to);
}

fn bits(v: [f64; 4]) -> [u64; 4] {
    v.map(|x| if x.is_nan() { f64::NAN } else { x }.to_bits())
}

fn tier_index(t: &str) -> u8 {
    TIERS.iter().position(|x| *x == t).expect("a known tier") as u8
}

/// Every coin's answer and the rows the tiers hold in total (a row in two tiers counts twice).
fn snapshot(data: &Path, coins: &[String], rt: &strata::plugin::Runtime) -> (Snap, u64) {
    let store = Store::open(data).unwrap();
    store.set_runtime(rt.clone());
    let snap = coins
        .iter()
        .map(|c| match store.coin_id(c) {
            None => Vec::new(),
            Some(_) => {
                let a = store.query(c, i64::MIN, i64::MAX).unwrap();
                a.rows
                    .rows()
                    .zip(&a.tier)
                    .map(|(r, t)| {
                        (
                            r.ts,
                            bits([r.price, r.market_cap, r.volume, r.supply]),
                            r.rank,
                            tier_index(t),
                        )
                    })
                    .collect()
            }
        })
        .collect();
    let stored = store.stats().unwrap().iter().map(|t| t.rows).sum();
    (snap, stored)
}

fn visible(s: &Snap) -> u64 {
    s.iter().map(|c| c.len() as u64).sum()
}

fn fingerprint(s: &Snap) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn tier_counts(s: &Snap) -> [u64; 4] {
    let mut n = [0; 4];
    for r in s.iter().flatten() {
        n[r.3 as usize] += 1;
    }
    n
}

/// What the commit from `a` to `b` did: `ingest` (hot rows added) or the transition whose
/// source tier lost rows.
fn commit_label(a: &Snap, b: &Snap) -> String {
    let (x, y) = (tier_counts(a), tier_counts(b));
    match (0..3).find(|&t| y[t] < x[t]) {
        Some(t) => format!("{}→{}", TIERS[t], TIERS[t + 1]),
        None if y[0] > x[0] => "ingest".into(),
        None => "other".into(),
    }
}

/// A tiny deterministic generator (splitmix64) for kill times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Serves `body` as the answer to every HTTP request on 127.0.0.1; returns the base URL.
fn serve(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(read) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(read);
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

/// The first `n` tickers of the recorded Coinpaprika response, if the shared data is there.
fn recorded_tickers(n: usize) -> Option<Vec<u8>> {
    let path = strata::sdk::shared_data::path("coinpaprika-samples/v1_tickers_2019-09-06.json.gz");
    let gz = std::fs::read(&path).ok()?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut body).unwrap();
    let mut tickers: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    tickers.truncate(n);
    Some(serde_json::to_vec(&tickers).unwrap())
}

/// Generated rows as a batch (canonical CSV written to `out`).
fn generate(cfg: GenConfig, out: &Path) -> strata::sdk::Batch {
    let batch = Generator::new(cfg).all();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    strata::generate::write_csv(&batch, &mut w).unwrap();
    std::io::Write::flush(&mut w).unwrap();
    batch
}

/// One command of the campaign, with the states a kill may leave.
struct Cmd {
    name: String,
    base: PathBuf,
    args: Vec<String>,
    /// The allowed states in commit order: `states[0]` is the base, the last is the end state.
    states: Vec<Snap>,
    /// `labels[k]`: what the commit into `states[k]` did (`labels[0]` is empty).
    labels: Vec<String>,
    by_print: HashMap<u64, Vec<usize>>,
    /// Per coin: timestamps both the base and the end state hold (they must never go missing).
    must_stay: Vec<HashSet<i64>>,
    /// Per coin: every row (without tier) of the base or the end state.
    known: Vec<HashSet<(i64, [u64; 4], u32)>>,
    duration: Duration,
    // Figures.
    runs: u64,
    kills: u64,
    completed: u64,
    hits: Vec<u64>,
}

impl Cmd {
    fn new(name: &str, base: PathBuf, args: Vec<String>, states: Vec<Snap>) -> Cmd {
        let mut labels = vec![String::new()];
        for w in states.windows(2) {
            labels.push(commit_label(&w[0], &w[1]));
        }
        let mut by_print: HashMap<u64, Vec<usize>> = HashMap::new();
        for (k, s) in states.iter().enumerate() {
            by_print.entry(fingerprint(s)).or_default().push(k);
        }
        let (first, last) = (&states[0], states.last().unwrap());
        let must_stay = first
            .iter()
            .zip(last)
            .map(|(a, b)| {
                let b: HashSet<i64> = b.iter().map(|r| r.0).collect();
                a.iter().map(|r| r.0).filter(|t| b.contains(t)).collect()
            })
            .collect();
        let known = first
            .iter()
            .zip(last)
            .map(|(a, b)| a.iter().chain(b).map(|r| (r.0, r.1, r.2)).collect())
            .collect();
        let hits = vec![0; states.len()];
        Cmd {
            name: name.into(),
            base,
            args,
            states,
            labels,
            by_print,
            must_stay,
            known,
            duration: Duration::ZERO,
            runs: 0,
            kills: 0,
            completed: 0,
            hits,
        }
    }

    /// The index of the allowed state `s` is, if any.
    fn state_of(&self, s: &Snap) -> Option<usize> {
        self.by_print
            .get(&fingerprint(s))?
            .iter()
            .copied()
            .find(|&k| self.states[k] == *s)
    }

    /// What was in progress when a kill left state `k`: the next commit's work.
    fn in_progress(&self, k: usize) -> &str {
        match self.labels.get(k + 1) {
            Some(l) => l,
            None => "after the last commit",
        }
    }

    /// Rows lost and rows with values of neither end state.
    fn lost_and_foreign(&self, s: &Snap) -> (u64, u64) {
        let mut lost = 0;
        let mut foreign = 0;
        for (c, rows) in s.iter().enumerate() {
            let have: HashSet<i64> = rows.iter().map(|r| r.0).collect();
            lost += self.must_stay[c]
                .iter()
                .filter(|t| !have.contains(t))
                .count() as u64;
            foreign += rows
                .iter()
                .filter(|r| !self.known[c].contains(&(r.0, r.1, r.2)))
                .count() as u64;
        }
        (lost, foreign)
    }
}

/// Describes how `s` differs from the nearest allowed state (for a failure report).
fn describe_difference(cmd: &Cmd, s: &Snap, coins: &[String]) -> String {
    let (k, d) = cmd
        .states
        .iter()
        .enumerate()
        .map(|(k, st)| {
            let d: usize = st
                .iter()
                .zip(s)
                .map(|(a, b)| {
                    let a: HashSet<&R> = a.iter().collect();
                    let b: HashSet<&R> = b.iter().collect();
                    a.symmetric_difference(&b).count()
                })
                .sum();
            (k, d)
        })
        .min_by_key(|x| x.1)
        .unwrap();
    let st = &cmd.states[k];
    let mut out = format!(
        "nearest allowed state {k} of {} ({} rows differ); tiers {:?} vs {:?}",
        cmd.states.len(),
        d,
        tier_counts(st),
        tier_counts(s)
    );
    for (c, (a, b)) in st.iter().zip(s).enumerate() {
        let sa: HashSet<&R> = a.iter().collect();
        let sb: HashSet<&R> = b.iter().collect();
        let missing: Vec<_> = sa.difference(&sb).take(3).collect();
        let extra: Vec<_> = sb.difference(&sa).take(3).collect();
        if !missing.is_empty() || !extra.is_empty() {
            out += &format!(
                "\n  {}: {} rows vs {}; missing e.g. {missing:?}; extra e.g. {extra:?}",
                coins[c],
                a.len(),
                b.len()
            );
        }
    }
    out
}

/// The states of `args` run on a copy of `base`, one per commit: the binary is stopped after
/// its n-th commit for n = 1, 2, … until a run completes. Returns them with the end state and
/// the median duration of three uninterrupted runs.
fn committed_states(
    scratch: &Path,
    base: &Path,
    args: &[String],
    coins: &[String],
    rt: &strata::plugin::Runtime,
) -> (Vec<Snap>, Duration) {
    let mut states = vec![snapshot(base, coins, rt).0];
    for n in 1.. {
        fresh_copy(base, scratch);
        let out = Command::new(bin())
            .arg("--data")
            .arg(scratch)
            .args(args)
            .env("STRATA_CRASH_AT", format!("after-commit:{n}"))
            .output()
            .unwrap();
        let (s, stored) = snapshot(scratch, coins, rt);
        assert_eq!(
            stored,
            visible(&s),
            "{args:?} stopped after commit {n}: a row stored twice"
        );
        if s != *states.last().unwrap() {
            states.push(s);
        }
        if out.status.success() {
            break;
        }
        assert!(n < 10_000, "{args:?}: no end in sight");
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        fresh_copy(base, scratch);
        let t = Instant::now();
        let out = strata(scratch, args);
        times.push(t.elapsed());
        ok(&out, &format!("{args:?}"));
    }
    assert!(
        snapshot(scratch, coins, rt).0 == *states.last().unwrap(),
        "{args:?}: two uninterrupted runs differ"
    );
    times.sort();
    (states, times[1])
}

/// The campaign's figures.
#[derive(Default)]
struct Figures {
    kills: u64,
    runs: u64,
    recoveries_verified: u64,
    reruns_equal: u64,
    lost: u64,
    duplicates: u64,
    foreign: u64,
    failures: Vec<String>,
    /// Seconds spent per phase of an iteration.
    phases: [f64; 6],
}

const PHASES: [&str; 6] = [
    "copy", "run+kill", "verify", "snapshot", "re-run", "re-check",
];

fn campaign(kills_wanted: u64) -> Figures {
    let t0 = Instant::now();
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let copy = root.join("strata");
    // A hard link keeps the old file when a build replaces BIN (the linker writes a new file);
    // across file systems it is a copy.
    std::fs::hard_link(BIN, &copy)
        .or_else(|_| std::fs::copy(BIN, &copy).map(drop))
        .unwrap();
    BIN_COPY.with(|b| *b.borrow_mut() = copy);
    let policy = root.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.to_str().unwrap().to_string();
    let rt = strata::plugin::Runtime::new(Default::default()).unwrap();
    let scratch = root.join("scratch");
    let s = |x: &str| x.to_string();

    // A year of rows every 12 hours for COINS coins, and ten more days, hourly, to ingest.
    let history = root.join("history.csv");
    generate(
        GenConfig {
            coins: COINS,
            start: START,
            steps: 360 * 2,
            interval: DAY / 2,
            seed: 11,
        },
        &history,
    );
    let new_csv = root.join("new.csv");
    let new_rows = generate(
        GenConfig {
            coins: COINS,
            start: START + 360 * DAY,
            steps: 10 * 24,
            interval: DAY / 24,
            seed: 12,
        },
        &new_csv,
    );
    let tickers = recorded_tickers(TICKERS);
    let mut coins: Vec<String> = (0..COINS).map(|i| format!("coin-{i:05}")).collect();
    if let Some(body) = &tickers {
        let v: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        coins.extend(v.iter().map(|t| t["id"].as_str().unwrap().to_string()));
    }

    // Base stores: b0 holds the history in hot; b1, b2, b3 after tier runs at day 60, 150, 300.
    let b: Vec<PathBuf> = (0..4).map(|i| root.join(format!("b{i}"))).collect();
    ok(
        &strata(&b[0], &[s("ingest"), s(history.to_str().unwrap())]),
        "ingest history",
    );
    let tier_args = |day: i64| {
        vec![
            s("tier"),
            s("--policy"),
            policy.clone(),
            s("--now"),
            (START + day * DAY).to_string(),
        ]
    };
    let days = [60, 150, 300];
    for i in 0..3 {
        copy_dir(&b[i], &b[i + 1]);
        ok(&strata(&b[i + 1], &tier_args(days[i])), "tier");
    }
    let b3 = snapshot(&b[3], &coins, &rt).0;
    let counts = tier_counts(&b3);
    assert!(
        counts.iter().all(|&n| n > 0),
        "every tier holds rows: {counts:?}"
    );

    let mut cmds = Vec::new();

    // ingest, strict (one transaction) and skip-invalid (one per chunk), into b3. The model:
    // b3 plus the first k chunks of the new rows, in hot.
    let chunk_rows = 1_500;
    let index: HashMap<&str, usize> = coins
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut prefix = vec![b3.clone()];
    let rows: Vec<_> = new_rows.rows().collect();
    for chunk in rows.chunks(chunk_rows) {
        let mut next = prefix.last().unwrap().clone();
        for r in chunk {
            next[index[r.coin]].push((
                r.ts,
                bits([r.price, r.market_cap, r.volume, r.supply]),
                r.rank,
                0,
            ));
        }
        for c in &mut next {
            c.sort_by_key(|r| r.0);
        }
        prefix.push(next);
    }
    let all = prefix.last().unwrap().clone();
    for (name, extra, model) in [
        ("ingest", vec![], vec![b3.clone(), all]),
        (
            "ingest --skip-invalid",
            vec![
                s("--skip-invalid"),
                s("--chunk-rows"),
                chunk_rows.to_string(),
            ],
            prefix,
        ),
    ] {
        let mut args = vec![s("ingest"), s(new_csv.to_str().unwrap())];
        args.extend(extra);
        let (seen, d) = committed_states(&scratch, &b[3], &args, &coins, &rt);
        // The engine's commits are exactly the model's states.
        assert!(
            seen == model,
            "{name}: the states after each commit ({}) are not the model's ({})",
            seen.len(),
            model.len()
        );
        let mut c = Cmd::new(name, b[3].clone(), args, model);
        c.duration = d;
        cmds.push(c);
    }

    // Tier transitions: hot → warm (b0 at day 60), + warm → cold (b1 at day 150),
    // + cold → archive (b2 at day 300).
    for (i, name) in [
        "tier (hot→warm)",
        "tier (hot→warm→cold)",
        "tier (hot→warm→cold→archive)",
    ]
    .into_iter()
    .enumerate()
    {
        let args = tier_args(days[i]);
        let (states, d) = committed_states(&scratch, &b[i], &args, &coins, &rt);
        assert!(states.len() > 1, "{name} commits something");
        let mut c = Cmd::new(name, b[i].clone(), args, states);
        c.duration = d;
        cmds.push(c);
    }

    // collect --once against recorded tickers, into b3: one ingest, then every transition due
    // at the wall clock (the 2019 tickers and the 2024 history all age into colder tiers).
    match &tickers {
        Some(body) => {
            let url = serve(body.clone());
            let args = vec![
                s("collect"),
                s("--once"),
                s("--url"),
                url,
                s("--policy"),
                policy.clone(),
            ];
            let (states, d) = committed_states(&scratch, &b[3], &args, &coins, &rt);
            assert!(states.len() > 2, "collect ingests and moves rows");
            let mut c = Cmd::new("collect --once", b[3].clone(), args, states);
            c.duration = d;
            cmds.push(c);
        }
        None => eprintln!("crash campaign: recorded Coinpaprika tickers not found, no collect"),
    }
    let prepared = t0.elapsed();
    println!(
        "crash campaign: seed {seed}, {} coins; prepared in {:.1} s",
        coins.len(),
        prepared.as_secs_f64()
    );
    for c in &cmds {
        println!(
            "  {:<30} {:>4} allowed states, runs in {:>4} ms; commits: {}",
            c.name,
            c.states.len(),
            c.duration.as_millis(),
            c.labels[1..].join(", ")
        );
    }

    let keep_dir =
        std::env::temp_dir().join(format!("strata-crash-campaign-{}", std::process::id()));
    let mut f = Figures::default();
    let mut by_step: HashMap<String, u64> = HashMap::new();
    'campaign: while f.kills < kills_wanted {
        for c in &mut cmds {
            if f.kills >= kills_wanted {
                break 'campaign;
            }
            if f.failures.len() >= 5 {
                break 'campaign;
            }
            f.runs += 1;
            c.runs += 1;
            let mut lap = Instant::now();
            let mut phase = |f: &mut Figures, i: usize| {
                f.phases[i] += lap.elapsed().as_secs_f64();
                lap = Instant::now();
            };
            fresh_copy(&c.base, &scratch);
            phase(&mut f, 0);
            let d = c.duration.as_secs_f64();
            let u = rng.unit();
            let delay = if rng.unit() < 0.5 {
                u * d
            } else {
                d * (0.5 + 0.5 * u)
            };
            let mut child = Command::new(bin())
                .arg("--data")
                .arg(&scratch)
                .args(&c.args)
                .env_remove("STRATA_CRASH_AT")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_secs_f64(delay));
            let killed = match child.try_wait().unwrap() {
                Some(_) => false,
                None => {
                    child.kill().unwrap();
                    true
                }
            };
            let status = child.wait().unwrap();
            phase(&mut f, 1);
            let what = format!("{} killed at {:.0} ms", c.name, delay * 1e3);
            let fail = |f: &mut Figures, msg: String| {
                let kept = keep_dir.join(format!("failure-{}", f.failures.len()));
                copy_dir(&scratch, &kept);
                f.failures.push(format!(
                    "{what} (seed {seed}): {msg}\n  store kept in {}",
                    kept.display()
                ));
                eprintln!("FAILURE: {}", f.failures.last().unwrap());
            };
            if killed && status.signal() == Some(9) {
                f.kills += 1;
                c.kills += 1;
            } else if status.success() {
                c.completed += 1;
            } else {
                fail(&mut f, format!("exited with {status} before the kill"));
                continue;
            }

            // Recovery: the first reopen is `strata verify`.
            let v = strata(&scratch, &[s("verify")]);
            phase(&mut f, 2);
            if !v.status.success() {
                fail(
                    &mut f,
                    format!(
                        "verify after the kill: {}\n{}{}",
                        v.status,
                        String::from_utf8_lossy(&v.stdout),
                        String::from_utf8_lossy(&v.stderr)
                    ),
                );
                continue;
            }
            let (snap, stored) = snapshot(&scratch, &coins, &rt);
            phase(&mut f, 3);
            let dup = stored.saturating_sub(visible(&snap));
            let (lost, foreign) = c.lost_and_foreign(&snap);
            f.duplicates += dup;
            f.lost += lost;
            f.foreign += foreign;
            match c.state_of(&snap) {
                Some(k) if dup == 0 && lost == 0 && foreign == 0 => {
                    c.hits[k] += 1;
                    if killed {
                        *by_step.entry(c.in_progress(k).to_string()).or_default() += 1;
                    }
                    f.recoveries_verified += 1;
                }
                _ => {
                    let diff = describe_difference(c, &snap, &coins);
                    fail(
                        &mut f,
                        format!(
                            "after recovery: no allowed state ({dup} duplicates, {lost} lost, {foreign} in neither state); {diff}"
                        ),
                    );
                    continue;
                }
            }

            // Run the command again: the store must equal an uninterrupted run's.
            let again = strata(&scratch, &c.args);
            phase(&mut f, 4);
            if !again.status.success() {
                fail(
                    &mut f,
                    format!(
                        "re-running: {}\n{}",
                        again.status,
                        String::from_utf8_lossy(&again.stderr)
                    ),
                );
                continue;
            }
            let (snap, stored) = snapshot(&scratch, &coins, &rt);
            let dup = stored.saturating_sub(visible(&snap));
            f.duplicates += dup;
            if snap != *c.states.last().unwrap() || dup > 0 {
                let (lost, _) = c.lost_and_foreign(&snap);
                f.lost += lost;
                let diff = describe_difference(c, &snap, &coins);
                fail(
                    &mut f,
                    format!(
                        "after re-running: not the uninterrupted end state ({dup} duplicates); {diff}"
                    ),
                );
                continue;
            }
            let v = strata(&scratch, &[s("verify")]);
            if !v.status.success() {
                fail(
                    &mut f,
                    format!(
                        "verify after re-running: {}",
                        String::from_utf8_lossy(&v.stdout)
                    ),
                );
                continue;
            }
            phase(&mut f, 5);
            f.reruns_equal += 1;
            if f.runs.is_multiple_of(100) {
                println!(
                    "  … {} kills, {} runs, {:.0} s",
                    f.kills,
                    f.runs,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }

    let wall = t0.elapsed();
    println!(
        "crash campaign: {} kills (SIGKILL) in {} runs, {:.1} s ({:.1} s preparing); seed {seed}",
        f.kills,
        f.runs,
        wall.as_secs_f64(),
        prepared.as_secs_f64()
    );
    println!(
        "  {:<30} {:>6} {:>6} {:>9}  kills per state reached (state 0 = untouched)",
        "command", "runs", "kills", "finished"
    );
    for c in &cmds {
        let hits: Vec<String> = c.hits.iter().map(|h| h.to_string()).collect();
        println!(
            "  {:<30} {:>6} {:>6} {:>9}  [{}]",
            c.name,
            c.runs,
            c.kills,
            c.completed,
            hits.join(" ")
        );
    }
    let mut steps: Vec<_> = by_step.into_iter().collect();
    steps.sort();
    println!("  kills by the work in progress (the next commit's):");
    for (step, n) in steps {
        println!("    {step:<26} {n:>6}");
    }
    println!(
        "  recoveries verified: {} (verify clean, every coin's answer an allowed state)",
        f.recoveries_verified
    );
    println!(
        "  re-runs equal to an uninterrupted run, bit for bit: {}",
        f.reruns_equal
    );
    println!(
        "  rows lost: {}, duplicated: {}, with values of neither state: {}",
        f.lost, f.duplicates, f.foreign
    );
    let phases: Vec<String> = PHASES
        .iter()
        .zip(f.phases)
        .map(|(p, t)| format!("{p} {t:.1} s"))
        .collect();
    println!(
        "  wall time: {:.1} s (runs: {})",
        wall.as_secs_f64(),
        phases.join(", ")
    );
    f
}

fn check(f: &Figures, kills: u64) {
    assert!(
        f.failures.is_empty(),
        "{} failures:\n{}",
        f.failures.len(),
        f.failures.join("\n")
    );
    assert_eq!((f.lost, f.duplicates, f.foreign), (0, 0, 0));
    assert!(f.kills >= kills);
    assert_eq!(f.recoveries_verified, f.runs);
    assert_eq!(f.reruns_equal, f.runs);
}

/// The campaign: `STRATA_CRASH_KILLS` kills (default 1,000).
#[test]
#[ignore = "long: run with --ignored --nocapture"]
fn crash_campaign() {
    let kills = std::env::var("STRATA_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let f = campaign(kills);
    check(&f, kills);
}

/// The same harness, 20 kills: keeps it working.
#[test]
fn crash_campaign_small() {
    let f = campaign(20);
    check(&f, 20);
}
