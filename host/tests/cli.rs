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
