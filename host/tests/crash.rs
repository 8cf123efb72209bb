//! Crash test: the `strata` binary is killed (`STRATA_CRASH_AT`, see `strata::crash`) at every
//! named point during ingest and during tier transitions. After each crash the store must
//! reopen clean (`strata verify` passes), hold every row exactly once, and — once the
//! interrupted command is run again — equal a store that never crashed, bit for bit.
//!
//! It lives in `host/tests/` because only a package's own integration tests can run its
//! binary (`CARGO_BIN_EXE_strata`).

use std::path::{Path, PathBuf};
use std::process::Command;

use strata::query::Answer;

#[path = "common/answers.rs"]
mod answers;
use answers::{same, stored_rows};

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000; // 2024-01-01

thread_local! {
    /// The segment store the binary runs with (`STRATA_SEGMENT_STORE`), per test thread: `fs`
    /// (tmp + rename, the default) or `direct` (in place, no rename, as an object store).
    static SEGMENT_STORE: std::cell::Cell<&'static str> = const { std::cell::Cell::new("fs") };
}

fn strata(data: &Path, args: &[&str], crash: Option<&str>) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.arg("--data").arg(data).args(args);
    c.env("STRATA_SEGMENT_STORE", SEGMENT_STORE.get());
    c.env_remove("STRATA_CRASH_AT");
    if let Some(at) = crash {
        c.env("STRATA_CRASH_AT", at);
    }
    c.output().unwrap()
}

fn ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every coin's full answer.
fn snapshot(data: &Path, coins: &[String]) -> Vec<Answer> {
    answers::answers(data, coins, Default::default())
}

/// A row as a hashable key, floats by their bits.
fn key(r: strata::sdk::Row<'_>) -> (i64, [u64; 4], u32) {
    (
        r.ts,
        [r.price, r.market_cap, r.volume, r.supply].map(f64::to_bits),
        r.rank,
    )
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

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    csv: PathBuf,
    coins: Vec<String>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let csv = root.join("data.csv");
    ok(
        strata(
            &root.join("unused"),
            &[
                "generate",
                "--coins",
                "8",
                "--days",
                "400",
                "--seed",
                "3",
                "--out",
                csv.to_str().unwrap(),
            ],
            None,
        ),
        "generate",
    );
    let coins = (0..8).map(|i| format!("coin-{i:05}")).collect();
    Fixture {
        _tmp: tmp,
        root,
        csv,
        coins,
    }
}

#[test]
fn crash_during_ingest_loses_and_duplicates_nothing() {
    let f = fixture();
    let csv = f.csv.to_str().unwrap();
    let reference = f.root.join("ref");
    ok(
        strata(&reference, &["ingest", csv], None),
        "reference ingest",
    );
    let want = snapshot(&reference, &f.coins);
    assert!(want.iter().map(Answer::len).sum::<usize>() > 60_000);

    for mode in [&[][..], &["--skip-invalid"][..]] {
        for at in [
            "ingest-chunk:1",
            "ingest-chunk:2",
            "before-commit:1",
            "after-commit:1",
            "before-commit:2",
        ] {
            let d = f
                .root
                .join(format!("ingest-{}-{at}", mode.len()).replace(':', "-"));
            let mut args = vec!["ingest", csv];
            args.extend_from_slice(mode);
            let out = strata(&d, &args, Some(at));
            // Strict mode is one transaction: a crash leaves nothing or everything.
            let after = snapshot(&d, &f.coins);
            let rows: usize = after.iter().map(Answer::len).sum();
            if mode.is_empty() {
                assert!(
                    rows == 0 || same(&after, &want),
                    "strict ingest crashed at {at}: {rows} rows visible"
                );
            }
            assert_eq!(stored_rows(&d), rows as u64, "{at}: a row is stored twice");
            if out.status.success() {
                assert!(same(&after, &want), "{at}: completed but differs");
            }
            ok(strata(&d, &args, None), "ingest again");
            assert!(
                same(&snapshot(&d, &f.coins), &want),
                "{at} {mode:?}: after re-ingest"
            );
            ok(strata(&d, &["verify"], None), "verify");
        }
    }
}

#[test]
fn crash_during_tier_transitions_loses_and_duplicates_nothing() {
    tier_crashes();
}

/// The same crash points, with the segment store that writes in place (no temporary name, no
/// rename): the engine's protocol alone must keep every row.
#[test]
fn crash_during_tier_transitions_with_the_direct_segment_store() {
    SEGMENT_STORE.set("direct");
    tier_crashes();
}

fn tier_crashes() {
    let f = fixture();
    let csv = f.csv.to_str().unwrap();
    let base = f.root.join("base");
    ok(strata(&base, &["ingest", csv], None), "ingest");
    let first = (START + 200 * DAY).to_string();
    ok(
        strata(&base, &["tier", "--now", &first], None),
        "first tier run",
    );
    let before = snapshot(&base, &f.coins);
    let now = (START + 400 * DAY).to_string();
    let reference = f.root.join("ref");
    copy_dir(&base, &reference);
    ok(
        strata(&reference, &["tier", "--now", &now], None),
        "reference tier run",
    );
    let want = snapshot(&reference, &f.coins);
    assert!(!same(&before, &want), "the second run must move something");
    assert!(
        want.iter()
            .flat_map(|a| a.tier.iter())
            .any(|t| &**t == "cold"),
        "the second run must reach the cold tier"
    );

    let mut crashed = 0;
    for point in strata::crash::POINTS
        .iter()
        // `object-put` is reached only with a tier in a bucket (tests/s3.rs).
        .filter(|p| !["ingest-chunk", "object-put"].contains(p))
    {
        for n in [1, 3, 9] {
            let at = format!("{point}:{n}");
            let d = f.root.join(format!("tier-{point}-{n}"));
            copy_dir(&base, &d);
            let out = strata(&d, &["tier", "--now", &now], Some(&at));
            if !out.status.success() {
                crashed += 1;
            }
            // Reopening cleans up, and every row is in exactly one tier.
            ok(
                strata(&d, &["verify"], None),
                &format!("verify after crash at {at}"),
            );
            let mid = snapshot(&d, &f.coins);
            let rows: usize = mid.iter().map(Answer::len).sum();
            assert_eq!(stored_rows(&d), rows as u64, "{at}: a row is stored twice");
            for (c, a) in mid.iter().enumerate() {
                // Every row visible is an original row (a row moved part way, e.g. into
                // warm but not yet on to cold, may sit in a tier neither end state has).
                let originals: std::collections::HashSet<_> = [&before[c], &want[c]]
                    .iter()
                    .flat_map(|s| s.rows.rows().map(key))
                    .collect();
                for (i, r) in a.rows.rows().enumerate() {
                    assert!(
                        originals.contains(&key(r)),
                        "{at}: row {r:?} in {} is in neither state",
                        a.tier[i]
                    );
                }
                // Nothing lost: every row that survives the full run is still somewhere.
                let have: std::collections::HashSet<i64> = a.rows.ts.iter().copied().collect();
                for ts in &want[c].rows.ts {
                    assert!(have.contains(ts), "{at}: coin {c} lost ts {ts}");
                }
            }
            ok(strata(&d, &["tier", "--now", &now], None), "tier again");
            assert!(same(&snapshot(&d, &f.coins), &want), "{at}: after resuming");
            ok(strata(&d, &["verify"], None), "verify after resuming");
        }
    }
    assert!(crashed >= 12, "only {crashed} runs actually crashed");
}

/// Runs strata with `STRATA_FAIL_AT` set: the I/O step before a point fails with an OS error.
fn strata_failing(data: &Path, args: &[&str], fail: &str) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.arg("--data").arg(data).args(args);
    c.env("STRATA_SEGMENT_STORE", SEGMENT_STORE.get());
    c.env_remove("STRATA_CRASH_AT").env("STRATA_FAIL_AT", fail);
    c.output().unwrap()
}

#[test]
fn io_faults_during_tier_transitions_are_reported_and_lose_nothing() {
    io_faults();
}

#[test]
fn io_faults_with_the_direct_segment_store_are_reported_and_lose_nothing() {
    SEGMENT_STORE.set("direct");
    io_faults();
}

fn io_faults() {
    let f = fixture();
    let csv = f.csv.to_str().unwrap();
    let base = f.root.join("base");
    ok(strata(&base, &["ingest", csv], None), "ingest");
    let first = (START + 200 * DAY).to_string();
    ok(
        strata(&base, &["tier", "--now", &first], None),
        "first tier run",
    );
    let before = snapshot(&base, &f.coins);
    let now = (START + 400 * DAY).to_string();
    let reference = f.root.join("ref");
    copy_dir(&base, &reference);
    ok(
        strata(&reference, &["tier", "--now", &now], None),
        "reference tier run",
    );
    let want = snapshot(&reference, &f.coins);

    // Each step of a transition that touches the disk: a segment's write, its fsync, the
    // directory fsync that makes its name durable, the catalog commit, removing moved files.
    let steps = [
        ("segment-written", "writing"),
        ("segment-synced", "syncing"),
        ("segment-renamed", "syncing the tier directory"),
        ("before-commit", "committing"),
        ("old-files-deleted", "removing moved segments"),
    ];
    let mut failed = 0;
    for (point, step) in steps {
        for (errno, text) in [
            ("ENOSPC", "No space left on device"),
            ("EIO", "Input/output error"),
        ] {
            for n in [1, 2] {
                let at = format!("{point}:{n}:{errno}");
                let d = f.root.join(format!("fail-{point}-{n}-{errno}"));
                copy_dir(&base, &d);
                let out = strata_failing(&d, &["tier", "--now", &now], &at);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() {
                    failed += 1;
                    assert!(
                        stderr.contains(text) && stderr.contains(step),
                        "{at}: the error should name the step ({step}) and the OS error ({text}):\n{stderr}"
                    );
                }
                // Whatever failed, the store is whole: verify passes, every row is in one
                // tier, every row visible is an original, none is lost.
                ok(strata(&d, &["verify"], None), &format!("verify after {at}"));
                let mid = snapshot(&d, &f.coins);
                let rows: usize = mid.iter().map(Answer::len).sum();
                assert_eq!(stored_rows(&d), rows as u64, "{at}: a row is stored twice");
                if n == 1 && point != "old-files-deleted" && point != "before-commit" {
                    // The first segment of the first transition failed: nothing moved at all.
                    assert!(
                        same(&mid, &before),
                        "{at}: a failed transition changed the store"
                    );
                }
                for (c, a) in mid.iter().enumerate() {
                    let originals: std::collections::HashSet<_> = [&before[c], &want[c]]
                        .iter()
                        .flat_map(|s| s.rows.rows().map(key))
                        .collect();
                    assert!(
                        a.rows.rows().all(|r| originals.contains(&key(r))),
                        "{at}: coin {c}"
                    );
                    let have: std::collections::HashSet<i64> = a.rows.ts.iter().copied().collect();
                    assert!(
                        want[c].rows.ts.iter().all(|ts| have.contains(ts)),
                        "{at}: coin {c} lost a row"
                    );
                }
                // The next run completes the work.
                ok(strata(&d, &["tier", "--now", &now], None), "tier again");
                assert!(
                    same(&snapshot(&d, &f.coins), &want),
                    "{at}: after the next run"
                );
                ok(strata(&d, &["verify"], None), "verify after the next run");
            }
        }
    }
    assert!(failed >= 16, "only {failed} runs met their fault");
}
