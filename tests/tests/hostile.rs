//! Plugins written by an attacker (the guests under `tests/guests/`: `evil-extension`,
//! `evil-name`, `hostile-codec`, `hostile-policy`, `hostile-rollup`) against a real store: one
//! test per attack, each showing the attack is impossible by the store's data, not just by an
//! error message.
//!
//! Every store test ingests a few coins × 60 days of generated rows (so 30 days are older than
//! the hot tier's `keep` of 30 days), snapshots every coin's full query answer bit for bit,
//! attempts the transition into a `warm` tier that uses the hostile plugin, and then checks:
//! the attempt failed with an error naming the plugin (or, where the contract allows it,
//! succeeded with a report); every answer is still the snapshot, in the store that ran the
//! transition and after it is dropped and reopened; `warm` has no segment, no file is left
//! under `segments/`, `verify` is clean; and an honest transition afterwards puts every row
//! where it belongs (so nothing the attack touched, `last_kept` included, stayed changed).
//!
//! Store work runs on a worker thread and is given [`BOUND`] to answer, so a plugin that
//! blocks the host fails the test instead of hanging it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata::Store;
use strata::generate::{GenConfig, Generator};
use strata::plugin::{CallErrorKind, CodecPlugin, Limits, Plugin, PluginRef, Runtime};
use strata::tiering::{MoveReport, Plan, PluginOptions, TierDef};
use strata_plugin_sdk::Batch;
use strata_tests::guests;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2024-01-01T00:00Z, where the generated data starts.
const START: i64 = 1_704_067_200_000;
/// Days of data in every store.
const DAYS: i64 = 60;
/// What the hot tier keeps.
const KEEP: i64 = 30 * DAY;
/// When every transition runs: the end of the data plus 5 hours, so the cut falls inside a
/// day and a rollup's cut (a day start) is earlier than `NOW - KEEP`.
const NOW: i64 = START + DAYS * DAY + 5 * HOUR;
/// Rows older than this leave the hot tier (for a policy that does not roll up).
const CUT: i64 = NOW - KEEP;
/// How long any store operation of a test may take before it counts as hung.
const BOUND: Duration = Duration::from_secs(60);
/// The time limit of plugin calls in tests of plugins that loop or sleep.
const LIMIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Fixture

/// A temporary root holding the data directory (`data/`) and the plugin files (`plugins/`).
struct Fixture {
    root: tempfile::TempDir,
    data: PathBuf,
    coins: Vec<String>,
}

impl Fixture {
    /// `coins` coins × [`DAYS`] days of generated rows every `interval` ms, ingested.
    fn new(coins: usize, interval: i64) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let generator = Generator::new(GenConfig {
            coins,
            start: START,
            steps: (DAYS * DAY / interval) as usize,
            interval,
            seed: 11,
        });
        let meta = generator.coin_meta();
        let batch = generator.all();
        let mut store = Store::open(&data).unwrap();
        store.ingest(&batch, &meta).unwrap();
        Fixture {
            root,
            data,
            coins: meta.into_iter().map(|m| m.id).collect(),
        }
    }

    /// Writes a guest component under `plugins/` and returns a reference to the file.
    fn plugin(&self, file: &str, bytes: &[u8]) -> PluginRef {
        let dir = self.root.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, bytes).unwrap();
        PluginRef::parse(path.to_str().unwrap())
    }

    /// Opens the store (startup recovery included) with `rt` on a worker thread and runs `f`
    /// on it, within [`BOUND`].
    fn with_store<R: Send + 'static>(
        &self,
        rt: &Runtime,
        what: &str,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> R {
        let (data, rt) = (self.data.clone(), rt.clone());
        bounded(what, move || {
            let mut store =
                Store::open(&data).unwrap_or_else(|e| panic!("opening the store: {e:#}"));
            store.set_runtime(rt);
            f(&mut store)
        })
    }

    /// Every coin's full answer.
    fn snapshot(&self, rt: &Runtime, what: &str) -> Snapshot {
        let coins = self.coins.clone();
        self.with_store(rt, what, move |s| snapshot(s, &coins))
    }

    /// Loads `defs` and runs the transition due at [`NOW`], in a store of its own. When it
    /// fails (or `look_if_ok`), the same store, before it is dropped, is looked at too.
    fn attempt(&self, rt: &Runtime, what: &str, defs: Vec<TierDef>, look_if_ok: bool) -> Attempt {
        let (rt2, coins) = (rt.clone(), self.coins.clone());
        self.with_store(rt, what, move |store| {
            let mut took = Duration::ZERO;
            let result = Plan::load(&rt2, &defs)
                .and_then(|plan| {
                    let t = Instant::now();
                    let r = store.tier(&plan, NOW, false);
                    took = t.elapsed();
                    r
                })
                .map_err(|e| format!("{e:#}"));
            let look = result.is_err() || look_if_ok;
            Attempt {
                result,
                took,
                after: look.then(|| snapshot(store, &coins)),
                warm_segments: look.then(|| warm_segments(store)),
                verify: look.then(|| verify_faults(store)),
            }
        })
    }

    /// The attempt of `what` must fail with an error containing every one of `needles`; the
    /// store must then be exactly as `before`, in the store that ran it and after a reopen.
    fn assert_refused(
        &self,
        rt: &Runtime,
        what: &str,
        defs: Vec<TierDef>,
        needles: &[&str],
        before: &Snapshot,
    ) -> String {
        let a = self.attempt(rt, what, defs, false);
        let err = match a.result {
            Ok(reports) => panic!(
                "{what}: the transition succeeded ({reports:?}); it had to fail with an error naming {needles:?}"
            ),
            Err(e) => e,
        };
        for n in needles {
            assert!(
                err.contains(n),
                "{what}: the error does not say {n:?}: {err}"
            );
        }
        assert_printable(what, &err);
        assert_same(
            &format!("{what}, same store"),
            a.after.as_ref().unwrap(),
            before,
        );
        assert_eq!(a.warm_segments, Some(0), "{what}: segments in `warm`");
        self.assert_intact(rt, &format!("{what}, reopened"), before);
        err
    }

    /// After a reopen: every answer is `before`, `warm` has no segment, nothing is left under
    /// `segments/`, `verify` is clean.
    fn assert_intact(&self, rt: &Runtime, what: &str, before: &Snapshot) {
        let coins = self.coins.clone();
        let (after, warm, faults) = self.with_store(rt, what, move |s| {
            (snapshot(s, &coins), warm_segments(s), verify_faults(s))
        });
        assert_same(what, &after, before);
        assert_eq!(warm, 0, "{what}: segments in `warm`");
        assert_eq!(
            files_under(&self.data.join("segments")),
            Vec::<PathBuf>::new(),
            "{what}: files under segments/"
        );
        assert!(faults.is_empty(), "{what}: verify: {faults:?}");
    }

    /// An honest transition with `defs` succeeds and leaves exactly `want`, in the same store
    /// and after a reopen.
    fn assert_honest(&self, rt: &Runtime, what: &str, defs: Vec<TierDef>, want: &Snapshot) {
        let a = self.attempt(rt, what, defs, true);
        if let Err(e) = &a.result {
            panic!("{what}: the honest transition failed: {e}");
        }
        assert_same(what, a.after.as_ref().unwrap(), want);
        assert!(
            a.warm_segments.unwrap() > 0,
            "{what}: nothing reached `warm`"
        );
        assert_eq!(a.verify.unwrap(), Vec::<String>::new(), "{what}: verify");
        // The same after a reopen, with no plan at hand to name the codec.
        let coins = self.coins.clone();
        let (after, faults) =
            self.with_store(rt, what, move |s| (snapshot(s, &coins), verify_faults(s)));
        assert_same(&format!("{what}, reopened"), &after, want);
        assert_eq!(faults, Vec::<String>::new(), "{what}, reopened: verify");
    }
}

/// What one attempted transition did.
struct Attempt {
    result: Result<Vec<MoveReport>, String>,
    /// How long `tier` took (not counting `Plan::load`).
    took: Duration,
    /// Answers, `warm` segments and verify faults right after, in the same store.
    after: Option<Snapshot>,
    warm_segments: Option<u64>,
    verify: Option<Vec<String>>,
}

/// Runs `f` on a worker thread and waits at most [`BOUND`] for it. A panic in `f` is the
/// caller's; a hang fails the test (the worker is left behind, still blocked).
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .unwrap();
    match rx.recv_timeout(BOUND) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!(
            "{what}: no answer after {BOUND:?}: a plugin call blocked the host past its time limit"
        ),
    }
}

/// The runtime of the test process with a short time limit.
fn limited() -> Runtime {
    strata_tests::runtime().with_limits(Limits {
        time: LIMIT,
        ..Limits::default()
    })
}

fn opts(pairs: &[(&str, &str)]) -> PluginOptions {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mode(m: &str) -> PluginOptions {
    opts(&[("mode", m)])
}

/// Hot (keeps 30 days) → warm (keeps forever, 30-day segments in `buckets` coin buckets).
fn defs(
    policy: (PluginRef, PluginOptions),
    codec: (PluginRef, PluginOptions),
    buckets: u32,
) -> Vec<TierDef> {
    vec![
        TierDef {
            name: "hot".into(),
            keep: Some(KEEP),
            retention: None,
            codec: None,
            window: 0,
            coin_buckets: 0,
            store: String::new(),
            compact: Default::default(),
        },
        TierDef {
            name: "warm".into(),
            keep: None,
            retention: Some(policy),
            codec: Some(codec),
            window: 30 * DAY,
            coin_buckets: buckets,
            store: String::new(),
            compact: Default::default(),
        },
    ]
}

fn builtin(name: &str, o: PluginOptions) -> (PluginRef, PluginOptions) {
    (PluginRef::parse(name), o)
}

/// The built-in daily `sample` policy.
fn daily_sample() -> (PluginRef, PluginOptions) {
    builtin("sample", opts(&[("every", "1d")]))
}

// ---------------------------------------------------------------------------------------------
// Answers and models

/// One row of an answer: bits of every value, and the tier it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Obs {
    ts: i64,
    bits: [u64; 4],
    rank: u32,
    tier: String,
}

/// Every coin's full answer, by coin.
type Snapshot = BTreeMap<String, Vec<Obs>>;

fn snapshot(store: &Store, coins: &[String]) -> Snapshot {
    let mut out = Snapshot::new();
    for c in coins {
        if store.coin_id(c).is_none() {
            continue;
        }
        let a = store
            .query(c, i64::MIN, i64::MAX)
            .unwrap_or_else(|e| panic!("query of {c}: {e:#}"));
        out.insert(c.clone(), snapshot_answer(&a));
    }
    out
}

/// The rows of one query answer.
fn snapshot_answer(a: &strata::query::Answer) -> Vec<Obs> {
    (0..a.len())
        .map(|i| {
            let r = a.rows.row(i);
            Obs {
                ts: r.ts,
                bits: [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits),
                rank: r.rank,
                tier: a.tier[i].to_string(),
            }
        })
        .collect()
}

fn warm_segments(store: &Store) -> u64 {
    let stats = store.stats().unwrap_or_else(|e| panic!("stats: {e:#}"));
    stats
        .iter()
        .filter(|t| t.tier == "warm")
        .map(|t| t.segments)
        .sum()
}

fn verify_faults(store: &Store) -> Vec<String> {
    let v = store.verify().unwrap_or_else(|e| panic!("verify: {e:#}"));
    v.faults
        .iter()
        .map(|f| format!("{}: {}", f.what, f.problem))
        .collect()
}

/// Asserts two snapshots are equal, naming the first difference.
fn assert_same(what: &str, got: &Snapshot, want: &Snapshot) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: coins"
    );
    for (coin, w) in want {
        let g = &got[coin];
        if let Some(i) = (0..g.len().min(w.len())).find(|&i| g[i] != w[i]) {
            panic!(
                "{what}: coin {coin} row {i}: got {:?}, want {:?}",
                g[i], w[i]
            );
        }
        assert_eq!(
            g.len(),
            w.len(),
            "{what}: coin {coin}: row count (first extra row: got {:?}, want {:?})",
            g.get(w.len()),
            w.get(g.len())
        );
    }
}

/// `before` restricted to rows with `ts >= from` (what stays hot).
fn hot_from(before: &Snapshot, from: i64) -> Snapshot {
    before
        .iter()
        .map(|(c, rows)| {
            (
                c.clone(),
                rows.iter().filter(|r| r.ts >= from).cloned().collect(),
            )
        })
        .collect()
}

/// `before` after a first transition at [`CUT`] through a policy that keeps, of the rows
/// older than the cut, those `keep` says (given a coin's rows older than the cut, by time).
fn moved(before: &Snapshot, cut: i64, keep: impl Fn(&[Obs]) -> Vec<Obs>) -> Snapshot {
    before
        .iter()
        .map(|(c, rows)| {
            let old: Vec<Obs> = rows.iter().filter(|r| r.ts < cut).cloned().collect();
            let mut out: Vec<Obs> = keep(&old)
                .into_iter()
                .map(|r| Obs {
                    tier: "warm".into(),
                    ..r
                })
                .collect();
            out.extend(rows.iter().filter(|r| r.ts >= cut).cloned());
            (c.clone(), out)
        })
        .collect()
}

/// The daily sample of a coin's rows: the first of each UTC day.
fn first_of_each_day(rows: &[Obs]) -> Vec<Obs> {
    let mut out: Vec<Obs> = Vec::new();
    for r in rows {
        if out
            .last()
            .is_none_or(|l| l.ts.div_euclid(DAY) < r.ts.div_euclid(DAY))
        {
            out.push(r.clone());
        }
    }
    out
}

/// The honest `hostile-rollup`: per UTC day, the day's last row dated at the day's start.
fn daily_rollup(rows: &[Obs]) -> Vec<Obs> {
    let mut out: Vec<Obs> = Vec::new();
    for r in rows {
        let start = r.ts.div_euclid(DAY) * DAY;
        let row = Obs {
            ts: start,
            ..r.clone()
        };
        match out.last_mut() {
            Some(l) if l.ts == start => *l = row,
            _ => out.push(row),
        }
    }
    out
}

/// Every file (not directory) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Every file or directory under `dir` whose name starts with `prefix`.
fn named_under(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Text shown to a user holds no control character (no escape, bell, newline, DEL, C1).
fn assert_printable(what: &str, text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "{what}: control characters in {text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Codecs that lie about themselves

/// What became of a codec that lies in `describe`, loaded directly and as the warm codec of a
/// plan (with which a transition is run when the plan loads anyway, to show what it does).
struct LoadAttempt {
    fx: Fixture,
    before: Snapshot,
    direct: Result<String, String>,
    plan: Attempt,
}

fn try_load(file: &str, bytes: &'static [u8]) -> LoadAttempt {
    let fx = Fixture::new(3, HOUR);
    let rt = strata_tests::runtime();
    let before = fx.snapshot(rt, "before");
    let direct = rt
        .load_bytes(bytes, file, None)
        .map(|p| p.meta().name.clone())
        .map_err(|e| format!("{e:#}"));
    let codec = fx.plugin(file, bytes);
    let plan = fx.attempt(rt, file, defs(daily_sample(), (codec, vec![]), 2), true);
    LoadAttempt {
        fx,
        before,
        direct,
        plan,
    }
}

/// Both ways of loading failed with a printable error saying `what_is_wrong`, and the store
/// is as it was.
fn assert_load_refused(la: LoadAttempt, what_is_wrong: &str) {
    let LoadAttempt {
        fx,
        before,
        direct,
        plan,
    } = la;
    for (how, result) in [
        ("Runtime::load_bytes", direct.map(|_| ())),
        ("Plan::load + tier", plan.result.map(|_| ())),
    ] {
        let e = result.expect_err(&format!("{how}: the plugin was accepted"));
        assert!(e.contains(what_is_wrong), "{how}: {e}");
        assert_printable(how, &e);
    }
    fx.assert_intact(strata_tests::runtime(), "reopened", &before);
}

#[test]
fn a_codec_extension_that_climbs_out_of_the_tier_is_refused() {
    let la = try_load("evil-extension.wasm", guests::EVIL_EXTENSION);
    // Whatever happened, nothing named after the extension exists anywhere under the root.
    let escaped = named_under(la.fx.root.path(), "escaped-evil");
    assert!(
        escaped.is_empty(),
        "files written through the extension: {escaped:?}"
    );
    assert_load_refused(la, "extension");
}

#[test]
fn a_codec_name_with_escapes_and_a_path_is_refused() {
    let la = try_load("evil-name.wasm", guests::EVIL_NAME);
    // Nothing of it reached the catalog, where its name would be printed and resolved later.
    let names = la.fx.with_store(strata_tests::runtime(), "catalog", |s| {
        s.segments()
            .unwrap()
            .into_iter()
            .map(|s| s.codec)
            .collect::<Vec<_>>()
    });
    assert_eq!(names, Vec::<String>::new(), "codec names in the catalog");
    assert_load_refused(la, "name");
}

// ---------------------------------------------------------------------------------------------
// Codecs that lie on decode: verify before delete

/// `hostile-codec` in `mode` as the warm codec (daily samples, 2 coin buckets) must fail the
/// transition with an error naming the plugin (and `more`), leave the store as it was, and
/// let an honest transition complete afterwards. Returns the error.
fn decode_attack(mode_name: &str, more: &[&str]) -> String {
    let fx = Fixture::new(4, HOUR);
    let rt = limited();
    let codec = fx.plugin("hostile-codec.wasm", guests::HOSTILE_CODEC);
    let before = fx.snapshot(&rt, "before");
    let mut needles = vec!["hostile-codec"];
    needles.extend_from_slice(more);
    let d = defs(daily_sample(), (codec.clone(), mode(mode_name)), 2);
    let err = fx.assert_refused(&rt, mode_name, d, &needles, &before);
    let honest = defs(daily_sample(), (codec, mode("honest")), 2);
    let want = moved(&before, CUT, first_of_each_day);
    fx.assert_honest(&rt, &format!("honest after {mode_name}"), honest, &want);
    err
}

#[test]
fn a_codec_that_flips_a_bit_on_decode_moves_nothing() {
    decode_attack("bitflip", &["row"]);
}

#[test]
fn a_codec_that_scales_prices_on_some_dates_moves_nothing() {
    decode_attack("scale-dates", &["row"]);
}

#[test]
fn a_codec_that_drops_rows_on_decode_moves_nothing() {
    decode_attack("drop-rows", &["row"]);
}

#[test]
fn a_codec_that_traps_on_decode_moves_nothing() {
    let err = decode_attack("decode-trap", &["decode panicked on purpose", "decode"]);
    // The panic text and a few frames, not a backtrace of hundreds of lines.
    assert!(err.len() < 2000, "{} bytes of error: {err}", err.len());
}

#[test]
fn a_codec_that_decodes_an_invalid_batch_moves_nothing() {
    decode_attack("decode-invalid", &[]);
}

#[test]
fn a_codec_that_loops_on_decode_is_stopped_and_moves_nothing() {
    decode_attack("decode-loop", &["time limit"]);
}

#[test]
fn a_codec_that_sleeps_on_decode_is_stopped_and_moves_nothing() {
    decode_attack("decode-sleep", &[]);
}

/// With 16 coin buckets of segments to verify, a decoder that loops stops the transition at the
/// first: it does not cost every bucket its time limit.
#[test]
fn the_first_failing_bucket_stops_the_transition() {
    let buckets = 16;
    let fx = Fixture::new(64, DAY);
    let rt = limited();
    let codec = fx.plugin("hostile-codec.wasm", guests::HOSTILE_CODEC);
    let before = fx.snapshot(&rt, "before");
    let moving: std::collections::BTreeSet<u32> = before
        .iter()
        .filter(|(_, rows)| rows.iter().any(|o| o.ts < CUT))
        .map(|(c, _)| strata::segment::coin_bucket(c, buckets))
        .collect();
    assert_eq!(
        moving.len(),
        buckets as usize,
        "every coin bucket has rows to move"
    );
    let d = defs(daily_sample(), (codec, mode("decode-loop")), buckets);
    let a = fx.attempt(&rt, "decode-loop × 16 buckets", d, false);
    let err = a.result.expect_err("the transition succeeded");
    assert!(err.contains("hostile-codec"), "{err}");
    let most = LIMIT * buckets / 2;
    assert!(
        a.took < most,
        "the transition took {:?}, more than half of {buckets} buckets × {LIMIT:?}: it did not stop at the first failure",
        a.took
    );
    assert_same("same store", a.after.as_ref().unwrap(), &before);
    fx.assert_intact(&rt, "reopened", &before);
}

/// What became of a transition with a codec that misbehaves only in queries (decodes with a
/// coin filter), and of the queries after it.
struct QueryAttack {
    fx: Fixture,
    rt: Runtime,
    before: Snapshot,
    /// The transition's error, if it was refused.
    refused: Option<String>,
    /// Otherwise, per coin: the query's answer (or error) and how long it took.
    queries: BTreeMap<String, (Result<Vec<Obs>, String>, Duration)>,
    /// An ingest into the same store after the queries, and `verify`.
    ingest: Result<(), String>,
    verify: Vec<String>,
}

/// `hostile-codec` in a `filter-*` mode as the warm codec: its decode is faithful without a coin
/// filter, so a check that decodes new segments without one lets the transition through.
fn query_attack(mode_name: &str) -> QueryAttack {
    let fx = Fixture::new(4, HOUR);
    let rt = limited();
    let codec = fx.plugin("hostile-codec.wasm", guests::HOSTILE_CODEC);
    let before = fx.snapshot(&rt, "before");
    let d = defs(daily_sample(), (codec, mode(mode_name)), 2);
    let (rt2, coins) = (rt.clone(), fx.coins.clone());
    let (refused, queries, ingest, verify) = fx.with_store(&rt, mode_name, move |store| {
        let plan = Plan::load(&rt2, &d).unwrap();
        if let Err(e) = store.tier(&plan, NOW, false) {
            return (Some(format!("{e:#}")), BTreeMap::new(), Ok(()), Vec::new());
        }
        let mut queries = BTreeMap::new();
        for c in coins.iter().filter(|c| store.coin_id(c).is_some()) {
            let t = Instant::now();
            let answer = store
                .query(c, i64::MIN, i64::MAX)
                .map(|a| snapshot_answer(&a))
                .map_err(|e| format!("{e:#}"));
            queries.insert(c.clone(), (answer, t.elapsed()));
        }
        let mut row = Batch::default();
        row.coins.push(coins[0].clone());
        row.push(0, NOW, 1.0, 2.0, 3.0, 4.0, 5);
        let ingest = store
            .ingest(&row, &[])
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        (None, queries, ingest, verify_faults(store))
    });
    QueryAttack {
        fx,
        rt,
        before,
        refused,
        queries,
        ingest,
        verify,
    }
}

/// A decoder that sleeps only when given a coin filter passes a check without one. Every query
/// that meets it answers right (the host gives a coin filter only to its own built-ins) or fails
/// within the time limit naming the plugin and the segment, and the store stays usable (or the
/// transition is refused outright, nothing lost).
#[test]
fn a_codec_that_sleeps_only_in_queries_fails_the_query_not_the_store() {
    let q = query_attack("filter-sleep");
    if let Some(err) = q.refused {
        assert!(err.contains("hostile-codec"), "{err}");
        q.fx.assert_intact(&q.rt, "filter-sleep refused, reopened", &q.before);
        return;
    }
    let want = moved(&q.before, CUT, first_of_each_day);
    assert!(want.values().any(|rows| rows.iter().any(|r| r.ts < CUT)));
    for (c, (answer, took)) in &q.queries {
        assert!(
            *took < LIMIT * 3,
            "{c}: the query took {took:?}, limit {LIMIT:?}"
        );
        match answer {
            Ok(rows) => {
                let got = Snapshot::from([(c.clone(), rows.clone())]);
                let w = Snapshot::from([(c.clone(), want[c].clone())]);
                assert_same(&format!("filter-sleep: query of {c}"), &got, &w);
            }
            Err(err) => {
                assert!(err.contains("hostile-codec"), "{c}: {err}");
                assert!(
                    err.contains("segment"),
                    "{c}: the error names no segment: {err}"
                );
                assert_printable(c, err);
            }
        }
    }
    assert_eq!(q.ingest, Ok(()), "ingest after the queries");
    assert_eq!(q.verify, Vec::<String>::new(), "verify");
}

/// A decoder that lies only when given a coin filter passes a check without one; a query must
/// still never return rows other than those stored: it answers right or fails naming the plugin
/// (or the transition is refused outright, nothing lost).
#[test]
fn a_codec_that_lies_only_in_queries_is_caught() {
    let q = query_attack("filter-lie");
    if let Some(err) = q.refused {
        assert!(err.contains("hostile-codec"), "{err}");
        q.fx.assert_intact(&q.rt, "filter-lie refused, reopened", &q.before);
        return;
    }
    let want = moved(&q.before, CUT, first_of_each_day);
    for (c, (answer, _)) in &q.queries {
        match answer {
            Ok(rows) => {
                let got = Snapshot::from([(c.clone(), rows.clone())]);
                let w = Snapshot::from([(c.clone(), want[c].clone())]);
                assert_same(&format!("filter-lie: query of {c}"), &got, &w);
            }
            Err(e) => assert!(e.contains("hostile-codec"), "{c}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codecs that misbehave on encode

/// A 10-row batch of one coin.
fn ten_rows() -> Batch {
    let mut b = Batch::default();
    b.coins.push("coin-a".into());
    for i in 0..10 {
        b.push(0, START + i * HOUR, 1.0 + i as f64, 1e9, 1e6, 1e9, 1);
    }
    b
}

fn hostile_codec(rt: &Runtime) -> CodecPlugin {
    match rt
        .load_bytes(guests::HOSTILE_CODEC, "hostile-codec.wasm", None)
        .unwrap()
    {
        Plugin::Codec(c) => c,
        Plugin::Policy(_) => panic!("hostile-codec is a codec"),
    }
}

/// A transition whose encode fails in `mode` leaves the store as it was.
fn encode_attack_in_store(rt: &Runtime, mode_name: &str) {
    let fx = Fixture::new(3, HOUR);
    let codec = fx.plugin("hostile-codec.wasm", guests::HOSTILE_CODEC);
    let before = fx.snapshot(rt, "before");
    let d = defs(daily_sample(), (codec, mode(mode_name)), 2);
    fx.assert_refused(rt, mode_name, d, &["hostile-codec", "encode"], &before);
}

#[test]
fn plugins_cannot_read_the_clock() {
    let rt = strata_tests::runtime().clone();
    let err = bounded("encode clock", move || {
        hostile_codec(&rt)
            .encode(&ten_rows(), &mode("clock"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| e.to_string())
    })
    .expect_err("the codec read the clock");
    assert!(err.to_lowercase().contains("clock"), "{err}");
    encode_attack_in_store(strata_tests::runtime(), "clock");
}

#[test]
fn a_codec_that_sleeps_on_encode_is_stopped_at_its_time_limit() {
    let rt = limited();
    let rt2 = rt.clone();
    let (result, took) = bounded("encode-sleep", move || {
        let codec = hostile_codec(&rt2);
        let t = Instant::now();
        let result = codec
            .encode(&ten_rows(), &mode("encode-sleep"))
            .map(|b| b.len())
            .map_err(|e| e.to_string());
        (result, t.elapsed())
    });
    let err = result.expect_err("a sleep of an hour returned Ok");
    assert!(
        err.contains("time limit") || err.to_lowercase().contains("clock"),
        "{err}"
    );
    assert!(took < LIMIT * 3, "stopped after {took:?}, limit {LIMIT:?}");
    encode_attack_in_store(&rt, "encode-sleep");
}

#[test]
fn a_plugin_error_message_reaches_the_user_without_control_characters() {
    let err = hostile_codec(strata_tests::runtime())
        .encode(&ten_rows(), &mode("escape"))
        .map(|b| b.len())
        .expect_err("escape mode fails");
    let text = err.to_string();
    assert_printable("escape", &text);
    assert!(text.contains("red"), "{text}");
    assert!(text.contains("text"), "{text}");
    encode_attack_in_store(strata_tests::runtime(), "escape");
}

#[test]
fn output_far_larger_than_the_input_is_refused_with_default_limits() {
    let err = hostile_codec(strata_tests::runtime())
        .encode(&ten_rows(), &mode("flood"))
        .map(|b| b.len())
        .expect_err("64 MiB for 10 rows was accepted");
    assert!(matches!(err.kind, CallErrorKind::Output(_)), "{err}");
    encode_attack_in_store(strata_tests::runtime(), "flood");
}

/// Plugins are pure functions of their inputs (the WIT says so): a codec drawing on fresh
/// randomness could pass the check of a new segment and decode it differently later. Two
/// calls that draw randomness return the same bytes (a fixed seed), or fail.
#[test]
fn plugins_draw_no_fresh_randomness() {
    let codec = hostile_codec(strata_tests::runtime());
    let draw = || {
        codec
            .encode(&ten_rows(), &mode("random"))
            .map_err(|e| e.to_string())
    };
    match (draw(), draw()) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "two calls drew different random bytes"),
        (Err(e), _) | (_, Err(e)) => assert!(e.contains("random"), "{e}"),
    }
}

/// Calls reuse memory slots (`plugin/pool.rs`), never contents: a plugin scanning its whole
/// linear memory finds nothing an earlier call held there, while the same scan finds the word
/// when it is in the call's own input (so the scan works).
#[test]
fn a_call_finds_nothing_an_earlier_call_left_in_memory() {
    // The hostile codec's `snoop` looks for `price[0].to_bits() ^ SNOOP_KEY`.
    const SNOOP_KEY: u64 = 0x0000_ffff_0000_ffff;
    const SECRET: u64 = 0x4123_4567_89ab_cdef;
    let codec = hostile_codec(strata_tests::runtime());
    let rows = |prices: &[u64]| {
        let mut b = Batch::default();
        b.coins.push("coin-a".into());
        for (i, &p) in prices.iter().enumerate() {
            b.push(
                0,
                START + i as i64 * HOUR,
                f64::from_bits(p),
                1e9,
                1e6,
                1e9,
                1,
            );
        }
        b
    };
    let snoop = |b: &Batch| {
        let out = codec.encode(b, &mode("snoop")).unwrap();
        u64::from_le_bytes(out.try_into().expect("snoop returns a u64"))
    };
    let probe = rows(&[SECRET ^ SNOOP_KEY]);
    let own = snoop(&rows(&[SECRET ^ SNOOP_KEY, SECRET, SECRET]));
    assert!(
        own >= 2,
        "the scan did not find the word in its own input ({own})"
    );
    let secrets = rows(&vec![SECRET; 100_000]);
    for _ in 0..3 {
        codec.encode(&secrets, &mode("honest")).unwrap();
        assert_eq!(snoop(&probe), 0, "a call saw an earlier call's data");
    }
}

// ---------------------------------------------------------------------------------------------
// Retention policies: the host decides what may move

fn hostile_policy(fx: &Fixture, m: &str) -> (PluginRef, PluginOptions) {
    (
        fx.plugin("hostile-policy.wasm", guests::HOSTILE_POLICY),
        mode(m),
    )
}

fn hostile_rollup(fx: &Fixture, m: &str) -> (PluginRef, PluginOptions) {
    (
        fx.plugin("hostile-rollup.wasm", guests::HOSTILE_ROLLUP),
        mode(m),
    )
}

fn jsonl_gzip() -> (PluginRef, PluginOptions) {
    builtin("jsonl-gzip", vec![])
}

#[test]
fn a_rollup_from_a_policy_that_does_not_roll_up_is_refused() {
    let fx = Fixture::new(4, HOUR);
    let rt = strata_tests::runtime();
    let before = fx.snapshot(rt, "before");
    let d = defs(hostile_policy(&fx, "undeclared-rollup"), jsonl_gzip(), 2);
    fx.assert_refused(
        rt,
        "undeclared-rollup",
        d,
        &["hostile-policy", "select"],
        &before,
    );
    // Keeping every row is honest: all of them move.
    let want = moved(&before, CUT, <[Obs]>::to_vec);
    let d = defs(hostile_policy(&fx, "honest"), jsonl_gzip(), 2);
    fx.assert_honest(rt, "honest after undeclared-rollup", d, &want);
}

#[test]
fn kept_indices_out_of_range_or_out_of_order_are_refused() {
    let fx = Fixture::new(4, HOUR);
    let rt = strata_tests::runtime();
    let before = fx.snapshot(rt, "before");
    for m in ["bad-indices", "out-of-range", "unsorted-indices"] {
        let d = defs(hostile_policy(&fx, m), jsonl_gzip(), 2);
        fx.assert_refused(rt, m, d, &["hostile-policy", "select"], &before);
    }
    let want = moved(&before, CUT, first_of_each_day);
    fx.assert_honest(
        rt,
        "sample after bad indices",
        defs(daily_sample(), jsonl_gzip(), 2),
        &want,
    );
}

/// A policy may keep nothing; the rows it dropped are gone, but only those older than the hot
/// tier's `keep`, and the report says so.
#[test]
fn a_policy_that_keeps_nothing_drops_only_what_it_may_and_is_reported() {
    let fx = Fixture::new(4, HOUR);
    let rt = strata_tests::runtime();
    let before = fx.snapshot(rt, "before");
    let d = defs(hostile_policy(&fx, "keep-nothing"), jsonl_gzip(), 2);
    let a = fx.attempt(rt, "keep-nothing", d, true);
    let reports = a
        .result
        .unwrap_or_else(|e| panic!("keep-nothing failed: {e}"));
    let want = hot_from(&before, CUT);
    assert_same("keep-nothing", a.after.as_ref().unwrap(), &want);
    assert_eq!(a.warm_segments, Some(0));
    assert_eq!(a.verify.unwrap(), Vec::<String>::new());
    let warm = reports
        .iter()
        .find(|r| r.to == "warm")
        .expect("a report of the move to warm");
    assert!(warm.rows_read > 0 && warm.rows_kept == 0, "{warm:?}");
    assert!(
        warm.warnings.iter().any(|w| w.contains("warm")),
        "no warning names the tier: {warm:?}"
    );
    for w in &warm.warnings {
        assert_printable("warning", w);
    }
}

fn rollup_attack(m: &str, function: &str) -> (Fixture, Snapshot) {
    let fx = Fixture::new(4, HOUR);
    let rt = strata_tests::runtime();
    let before = fx.snapshot(rt, "before");
    let d = defs(hostile_rollup(&fx, m), jsonl_gzip(), 2);
    fx.assert_refused(rt, m, d, &["hostile-rollup", function], &before);
    (fx, before)
}

/// A bucket start after its timestamp would move the cut years ahead and empty the hot tier.
#[test]
fn bucket_starts_after_their_timestamps_are_refused() {
    let (fx, before) = rollup_attack("late-starts", "bucket-starts");
    // The honest rollup of the same store moves what it should, no more.
    let want = moved(&before, CUT.div_euclid(DAY) * DAY, daily_rollup);
    let d = defs(hostile_rollup(&fx, "honest"), jsonl_gzip(), 2);
    fx.assert_honest(
        strata_tests::runtime(),
        "honest rollup after late-starts",
        d,
        &want,
    );
}

#[test]
fn unequal_bucket_starts_for_equal_timestamps_are_refused() {
    let (fx, before) = rollup_attack("unequal-starts", "bucket-starts");
    let want = moved(&before, CUT.div_euclid(DAY) * DAY, daily_rollup);
    let d = defs(hostile_rollup(&fx, "honest"), jsonl_gzip(), 2);
    fx.assert_honest(
        strata_tests::runtime(),
        "honest rollup after unequal-starts",
        d,
        &want,
    );
}

/// After a refused rollup, the built-in `sample` keeps every day of the moved window: nothing
/// of the refused rollup (a `last_kept` in the future, say) survived.
fn sample_still_keeps_everything(fx: &Fixture, before: &Snapshot, after: &str) {
    let want = moved(before, CUT, first_of_each_day);
    let d = defs(daily_sample(), jsonl_gzip(), 2);
    fx.assert_honest(
        strata_tests::runtime(),
        &format!("sample after {after}"),
        d,
        &want,
    );
}

#[test]
fn rollup_rows_dated_a_century_ahead_are_refused() {
    let (fx, before) = rollup_attack("future-rows", "select");
    sample_still_keeps_everything(&fx, &before, "future-rows");
}

#[test]
fn rollup_rows_of_a_coin_not_in_the_input_are_refused() {
    let (fx, before) = rollup_attack("foreign-coin", "select");
    sample_still_keeps_everything(&fx, &before, "foreign-coin");
}

#[test]
fn rollup_rows_off_their_bucket_start_are_refused() {
    let (fx, before) = rollup_attack("off-bucket", "select");
    sample_still_keeps_everything(&fx, &before, "off-bucket");
}

/// Whatever the policy, no row younger than the hot tier's `keep` leaves it; and the honest
/// policies move exactly what they should.
#[test]
fn no_row_younger_than_keep_leaves_hot_whatever_the_policy() {
    let day_cut = CUT.div_euclid(DAY) * DAY;
    type Model = fn(&[Obs]) -> Vec<Obs>;
    let cases: [(&str, Option<(i64, Model)>); 5] = [
        ("hostile-rollup honest", Some((day_cut, daily_rollup))),
        ("hostile-policy honest", Some((CUT, <[Obs]>::to_vec))),
        ("hostile-policy keep-nothing", None),
        ("sample", Some((CUT, first_of_each_day))),
        ("rollup", None),
    ];
    for (case, model) in cases {
        let fx = Fixture::new(4, HOUR);
        let rt = strata_tests::runtime();
        let before = fx.snapshot(rt, "before");
        let policy = match case {
            "hostile-rollup honest" => hostile_rollup(&fx, "honest"),
            "hostile-policy honest" => hostile_policy(&fx, "honest"),
            "hostile-policy keep-nothing" => hostile_policy(&fx, "keep-nothing"),
            "sample" => daily_sample(),
            _ => builtin("rollup", opts(&[("every", "1d")])),
        };
        let a = fx.attempt(rt, case, defs(policy, jsonl_gzip(), 2), true);
        if let Err(e) = &a.result {
            panic!("{case}: {e}");
        }
        let after = a.after.unwrap();
        // Every row of the last `keep` is still hot, bit for bit.
        let young = hot_from(&before, CUT);
        let still_hot: Snapshot = after
            .iter()
            .map(|(c, rows)| {
                let rows = rows.iter().filter(|r| r.ts >= CUT && r.tier == "hot");
                (c.clone(), rows.cloned().collect())
            })
            .collect();
        assert_same(
            &format!("{case}: the last `keep` of hot"),
            &still_hot,
            &young,
        );
        assert!(
            young.values().map(Vec::len).sum::<usize>() > 1000,
            "{case}: too few young rows to mean anything"
        );
        if let Some((cut, keep)) = model {
            assert_same(case, &after, &moved(&before, cut, keep));
        }
        assert_eq!(a.verify.unwrap(), Vec::<String>::new(), "{case}: verify");
    }
}
