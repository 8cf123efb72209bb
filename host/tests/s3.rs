//! Tiers in a bucket, tested against a real S3 server on loopback (`s3s-fs`, which checks
//! every request's signature; see `tests/src/s3_server.rs`), through the `strata` binary as a
//! user runs it: credentials and endpoint only in `AWS_*` environment variables.
//!
//! The policy keeps warm in the data directory and puts cold and archive in the bucket. What
//! must hold: a crash at any point of a transition into the bucket, a put that fails, or the
//! server going away loses and duplicates nothing, and running `tier` again completes the move
//! to the same answers as a store that never failed; wrong credentials and a missing bucket
//! are clear errors that change nothing; `verify` names an object deleted or altered behind
//! strata's back; a backup restores to a store that verifies, is incremental, and a tampered
//! backup is refused.

#[path = "../../tests/src/s3_server.rs"]
mod s3_server;

#[path = "common/answers.rs"]
mod answers;
use answers::{same, stored_rows};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use s3_server::{FaultyProxy, S3Server};
use strata::Store;
use strata::backup::CHUNK_BYTES;
use strata::query::Answer;

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000; // 2024-01-01, where `strata generate` starts
const BUCKET: &str = "strata-test";

fn policy(dir: &Path, prefix: &str) -> PathBuf {
    let p = dir.join(format!("policy-{prefix}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"name = "bucket-test"
[[tier]]
name = "hot"
keep = "30d"
[[tier]]
name = "warm"
keep = "90d"
retention = {{ plugin = "sample", options = {{ every = "1d" }} }}
codec = {{ plugin = "columnar" }}
segment = {{ window = "30d", coin-buckets = 4 }}
[[tier]]
name = "cold"
keep = "200d"
retention = {{ plugin = "sample", options = {{ every = "week" }} }}
codec = {{ plugin = "columnar" }}
segment = {{ window = "90d", coin-buckets = 2 }}
store = "s3://{BUCKET}/{prefix}"
[[tier]]
name = "archive"
retention = {{ plugin = "sample", options = {{ every = "month" }} }}
codec = {{ plugin = "columnar" }}
segment = {{ window = "365d", coin-buckets = 1 }}
store = "s3://{BUCKET}/{prefix}"
storage-class = "archive"
"#
        ),
    )
    .unwrap();
    p
}

struct Env<'a> {
    server: &'a S3Server,
    settings: Vec<(String, String)>,
}

impl Env<'_> {
    fn run(&self, data: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--data").arg(data).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.starts_with("STRATA_CRASH") || k == "STRATA_FAIL_AT" {
                c.env_remove(k);
            }
        }
        c.envs(self.settings.iter().map(|(k, v)| (k, v)));
        c.envs(extra.iter().copied());
        c.output().unwrap()
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} should fail\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn coins() -> Vec<String> {
    (0..6).map(|i| format!("coin-{i:05}")).collect()
}

/// Every coin's answer across every tier (bucket settings from `settings`).
fn snapshot(data: &Path, settings: &[(String, String)]) -> Vec<Answer> {
    let options = strata::store::StoreOptions {
        bucket_settings: settings.to_vec(),
        ..Default::default()
    };
    answers::answers(data, &coins(), options)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    csv: PathBuf,
}

fn fixture(env: &Env<'_>) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let csv = root.join("data.csv");
    let args = [
        "generate",
        "--coins",
        "6",
        "--days",
        "400",
        "--seed",
        "5",
        "--out",
        csv.to_str().unwrap(),
    ];
    ok(&env.run(&root.join("unused"), &args, &[]), "generate");
    Fixture {
        _tmp: tmp,
        root,
        csv,
    }
}

/// A store at `root/<name>` with the CSV ingested and tiered once at day 250 (warm and cold
/// hold data, cold in the bucket under prefix `name`), with its policy file.
fn prepared(env: &Env<'_>, f: &Fixture, name: &str) -> (PathBuf, PathBuf) {
    let data = f.root.join(name);
    let pol = policy(&f.root, name);
    ok(
        &env.run(&data, &["ingest", f.csv.to_str().unwrap()], &[]),
        "ingest",
    );
    let first = (START + 250 * DAY).to_string();
    ok(
        &env.run(
            &data,
            &["tier", "--policy", pol.to_str().unwrap(), "--now", &first],
            &[],
        ),
        "first tier run",
    );
    (data, pol)
}

fn server() -> Option<S3Server> {
    S3Server::start(&[BUCKET])
}

const FINAL_DAY: i64 = 420;

#[test]
fn crashes_and_failed_puts_into_the_bucket_lose_and_duplicate_nothing() {
    let Some(server) = server() else { return };
    let env = Env {
        settings: server.settings(),
        server: &server,
    };
    let f = fixture(&env);
    let now = (START + FINAL_DAY * DAY).to_string();
    let (reference, ref_pol) = prepared(&env, &f, "ref");
    let before = snapshot(&reference, &env.settings);
    ok(
        &env.run(
            &reference,
            &["tier", "--policy", ref_pol.to_str().unwrap(), "--now", &now],
            &[],
        ),
        "reference run",
    );
    let want = snapshot(&reference, &env.settings);
    assert!(!same(&before, &want));
    assert!(
        want.iter()
            .flat_map(|a| a.tier.iter())
            .any(|t| &**t == "archive"),
        "the reference run must reach the archive tier in the bucket"
    );
    ok(&env.run(&reference, &["verify"], &[]), "verify reference");

    let cases: Vec<(&str, &str)> = vec![
        // A real SIGKILL as soon as the first object of the run lands in the bucket.
        ("SIGKILL", "first object"),
        ("STRATA_CRASH_AT", "object-put:1"),
        ("STRATA_CRASH_AT", "object-put:4"),
        ("STRATA_CRASH_AT", "before-commit:2"),
        ("STRATA_CRASH_AT", "after-commit:2"),
        ("STRATA_CRASH_AT", "old-files-deleted:1"),
        ("STRATA_FAIL_AT", "object-put:3:EIO"),
    ];
    for (i, (var, at)) in cases.iter().enumerate() {
        let name = format!("case{i}");
        let (d, pol) = prepared(&env, &f, &name);
        let args = ["tier", "--policy", pol.to_str().unwrap(), "--now", &now];
        if *var == "SIGKILL" {
            kill_at_first_object(&env, &d, &args, &name);
        } else {
            let out = env.run(&d, &args, &[(var, at)]);
            assert!(!out.status.success(), "{var}={at} did not stop the run");
        }
        // Nothing duplicated: every row is in one tier (the catalog and hot tier count them
        // without the bucket).
        let mid = snapshot(&d, &env.settings);
        let rows: usize = mid.iter().map(Answer::len).sum();
        assert_eq!(
            stored_rows(&d),
            rows as u64,
            "{var}={at}: a row is stored twice"
        );
        for (c, a) in mid.iter().enumerate() {
            let have: std::collections::HashSet<i64> = a.rows.ts.iter().copied().collect();
            for ts in &want[c].rows.ts {
                assert!(have.contains(ts), "{var}={at}: coin {c} lost ts {ts}");
            }
        }
        // `verify --repair` removes what the interrupted run left in the bucket and then
        // finds the store sound.
        let v = ok(
            &env.run(&d, &["verify", "--repair"], &[]),
            &format!("{var}={at}: verify --repair"),
        );
        assert!(v.contains(": 0 faults"), "{var}={at}: {v}");
        ok(&env.run(&d, &args, &[]), &format!("{var}={at}: tier again"));
        assert!(
            same(&snapshot(&d, &env.settings), &want),
            "{var}={at}: after resuming"
        );
        let v = ok(&env.run(&d, &["verify"], &[]), "verify after resuming");
        assert!(v.contains(": 0 faults"), "{v}");
        // The bucket holds exactly what the catalog names under this store's prefix.
        let store = Store::open(&d).unwrap();
        let mut named: Vec<String> = store
            .segments()
            .unwrap()
            .into_iter()
            .filter(|s| !s.store.is_empty())
            .map(|s| format!("{name}/{}", s.path))
            .collect();
        named.sort();
        assert_eq!(
            env.server.keys(BUCKET, &format!("{name}/segments")),
            named,
            "{var}={at}: objects the catalog does not name were left"
        );
    }
}

/// Runs `strata tier` and kills it (SIGKILL) the moment a new object appears under this
/// store's prefix (the run may finish first on a fast machine: the checks after it hold
/// either way).
fn kill_at_first_object(env: &Env<'_>, data: &Path, args: &[&str], name: &str) {
    let before = env.server.keys(BUCKET, &format!("{name}/segments")).len();
    let mut c = Command::new(BIN);
    c.arg("--data").arg(data).args(args);
    c.envs(env.settings.iter().map(|(k, v)| (k, v)));
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            eprintln!("the run finished before an object appeared");
            return;
        }
        if env.server.keys(BUCKET, &format!("{name}/segments")).len() > before {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

#[test]
fn a_stopped_server_fails_the_move_into_the_bucket_and_a_rerun_completes_it() {
    let Some(mut server) = server() else { return };
    let settings = server.settings();
    let f = {
        let env = Env {
            settings: settings.clone(),
            server: &server,
        };
        fixture(&env)
    };
    let now = (START + FINAL_DAY * DAY).to_string();
    let (d, pol) = {
        let env = Env {
            settings: settings.clone(),
            server: &server,
        };
        prepared(&env, &f, "stopped")
    };
    let rows_before = stored_rows(&d);
    server.stop();
    let args = ["tier", "--policy", pol.to_str().unwrap(), "--now", &now];
    let env = Env {
        settings: settings.clone(),
        server: &server,
    };
    let err = failed(&env.run(&d, &args, &[]), "tier with the server down");
    assert!(err.contains(&format!("s3://{BUCKET}/stopped")), "{err}");
    // Hot to warm is local and may have committed; nothing is lost or doubled.
    let rows_mid = stored_rows(&d);
    assert!(rows_mid <= rows_before);
    drop(env);
    server.resume();
    let env = Env {
        settings: settings.clone(),
        server: &server,
    };
    let mid = snapshot(&d, &settings);
    assert_eq!(
        mid.iter().map(Answer::len).sum::<usize>() as u64,
        rows_mid,
        "a row is stored twice"
    );
    ok(&env.run(&d, &args, &[]), "tier once the server is back");
    let v = ok(&env.run(&d, &["verify"], &[]), "verify");
    assert!(v.contains(": 0 faults"), "{v}");
    // The same answers as a store that never saw the server go.
    let (r, rpol) = prepared(&env, &f, "stopped-ref");
    ok(
        &env.run(
            &r,
            &["tier", "--policy", rpol.to_str().unwrap(), "--now", &now],
            &[],
        ),
        "reference",
    );
    assert!(same(&snapshot(&d, &settings), &snapshot(&r, &settings)));
}

/// Through a proxy: the server goes away after the second segment put of a transition (the
/// rest of its puts and the clean-up of the first two fail), then comes back; and a server
/// that throttles (503 SlowDown on the first three puts) is retried with backoff.
#[test]
fn the_server_vanishing_mid_transition_or_throttling_loses_nothing() {
    let Some(server) = server() else { return };
    let env = Env {
        settings: server.settings(),
        server: &server,
    };
    let f = fixture(&env);
    let now = (START + FINAL_DAY * DAY).to_string();
    let (r, rpol) = prepared(&env, &f, "vanish-ref");
    let rargs = ["tier", "--policy", rpol.to_str().unwrap(), "--now", &now];
    ok(&env.run(&r, &rargs, &[]), "reference");
    let want = snapshot(&r, &env.settings);

    let (d, pol) = prepared(&env, &f, "vanish");
    let args = ["tier", "--policy", pol.to_str().unwrap(), "--now", &now];
    let proxy = FaultyProxy::start(server.port, 0, Some(2));
    let via = Env {
        settings: proxy.settings(&server),
        server: &server,
    };
    let err = failed(&via.run(&d, &args, &[]), "tier while the server goes away");
    assert!(proxy.is_down(), "the proxy never cut: {err}");
    assert!(err.contains("s3://strata-test/vanish"), "{err}");
    let mid = snapshot(&d, &env.settings);
    let rows: usize = mid.iter().map(Answer::len).sum();
    assert_eq!(stored_rows(&d), rows as u64, "a row is stored twice");
    for (c, a) in mid.iter().enumerate() {
        let have: std::collections::HashSet<i64> = a.rows.ts.iter().copied().collect();
        for ts in &want[c].rows.ts {
            assert!(have.contains(ts), "coin {c} lost ts {ts}");
        }
    }
    proxy.restore();
    ok(&via.run(&d, &args, &[]), "tier once the server is back");
    assert!(same(&snapshot(&d, &env.settings), &want));
    let v = ok(&via.run(&d, &["verify"], &[]), "verify");
    assert!(v.contains(": 0 faults"), "{v}");

    let (t, tpol) = prepared(&env, &f, "throttled");
    let targs = ["tier", "--policy", tpol.to_str().unwrap(), "--now", &now];
    let throttle = FaultyProxy::start(server.port, 3, None);
    let via = Env {
        settings: throttle.settings(&server),
        server: &server,
    };
    ok(
        &via.run(&t, &targs, &[]),
        "tier against a throttling server",
    );
    assert_eq!(throttle.slowed(), 3);
    assert!(throttle.puts() > 3);
    assert!(same(&snapshot(&t, &env.settings), &want));
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_clear_errors_that_change_nothing() {
    let Some(server) = server() else { return };
    let good = Env {
        settings: server.settings(),
        server: &server,
    };
    let f = fixture(&good);
    let data = f.root.join("creds");
    ok(
        &good.run(&data, &["ingest", f.csv.to_str().unwrap()], &[]),
        "ingest",
    );
    let now = (START + FINAL_DAY * DAY).to_string();
    let pol = policy(&f.root, "creds");
    let args = ["tier", "--policy", pol.to_str().unwrap(), "--now", &now];
    let rows = stored_rows(&data);
    let bad = Env {
        settings: server.settings_with_secret("not-the-secret"),
        server: &server,
    };
    let err = failed(&bad.run(&data, &args, &[]), "tier with a wrong secret");
    assert!(err.contains(&format!("s3://{BUCKET}/creds")), "{err}");
    assert!(
        err.contains("Signature") || err.contains("403") || err.contains("Forbidden"),
        "the error should say the server refused the signature: {err}"
    );
    assert!(
        !err.contains("not-the-secret"),
        "the secret was printed: {err}"
    );
    assert_eq!(stored_rows(&data), rows);
    assert!(server.keys(BUCKET, "creds").is_empty());

    let missing = f.root.join("policy-missing.toml");
    std::fs::write(
        &missing,
        std::fs::read_to_string(&pol)
            .unwrap()
            .replace(&format!("s3://{BUCKET}/"), "s3://no-such-bucket/"),
    )
    .unwrap();
    let args = ["tier", "--policy", missing.to_str().unwrap(), "--now", &now];
    let err = failed(&good.run(&data, &args, &[]), "tier into a missing bucket");
    assert!(err.contains("s3://no-such-bucket/creds"), "{err}");
    assert!(
        err.contains("NoSuchBucket") || err.contains("404") || err.contains("not found"),
        "{err}"
    );
    // Both buckets are reached before anything moves: nothing changed.
    assert_eq!(stored_rows(&data), rows);
    let store = Store::open(&data).unwrap();
    assert!(store.segments().unwrap().is_empty());
    drop(store);
    ok(&good.run(&data, &["verify"], &[]), "verify");
    // With the right key and bucket, the same run completes.
    let args = ["tier", "--policy", pol.to_str().unwrap(), "--now", &now];
    ok(&good.run(&data, &args, &[]), "tier");
    assert!(!server.keys(BUCKET, "creds/segments").is_empty());
}

#[test]
fn verify_names_objects_deleted_or_altered_behind_stratas_back() {
    let Some(server) = server() else { return };
    let env = Env {
        settings: server.settings(),
        server: &server,
    };
    let f = fixture(&env);
    let (d, _) = prepared(&env, &f, "tamper");
    let store = Store::open(&d).unwrap();
    let remote: Vec<_> = store
        .segments()
        .unwrap()
        .into_iter()
        .filter(|s| !s.store.is_empty())
        .collect();
    drop(store);
    assert!(remote.len() >= 2, "{remote:?}");
    let gone = &remote[0];
    let altered = &remote[1];
    std::fs::remove_file(server.object_path(BUCKET, &format!("tamper/{}", gone.path))).unwrap();
    let p = server.object_path(BUCKET, &format!("tamper/{}", altered.path));
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    let out = env.run(&d, &["verify"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("s3://{BUCKET}/tamper/{}", gone.path)),
        "{text}"
    );
    assert!(
        text.contains(&format!("s3://{BUCKET}/tamper/{}", altered.path)) && text.contains("sha256"),
        "{text}"
    );
}

#[test]
fn backup_is_incremental_and_restores_to_a_store_that_verifies_and_refuses_tampering() {
    let Some(server) = server() else { return };
    let env = Env {
        settings: server.settings(),
        server: &server,
    };
    let f = fixture(&env);
    let (d, pol) = prepared(&env, &f, "backed");

    // While a transition runs (it holds the data directory's lock; the backup does not need
    // it): the backup is one consistent state, so its restore verifies.
    let now = (START + FINAL_DAY * DAY).to_string();
    let mut tier = Command::new(BIN);
    tier.arg("--data")
        .arg(&d)
        .args(["tier", "--policy", pol.to_str().unwrap(), "--now", &now]);
    tier.envs(env.settings.iter().map(|(k, v)| (k, v)));
    let mut running = tier.spawn().unwrap();
    let during = f.root.join("backup-during");
    let out = env.run(&d, &["backup", during.to_str().unwrap()], &[]);
    assert!(running.wait().unwrap().success());
    ok(&out, "backup during a transition");
    let restored = f.root.join("restored-during");
    let v = ok(
        &env.run(&restored, &["restore", during.to_str().unwrap()], &[]),
        "restore of the backup taken during a transition",
    );
    assert!(v.contains(": 0 faults"), "{v}");

    for dest in [
        f.root.join("backup-dir").to_str().unwrap().to_string(),
        format!("s3://{BUCKET}/backups/one"),
    ] {
        let first = ok(&env.run(&d, &["backup", &dest], &[]), "first backup");
        let copied = |s: &str| -> u64 {
            let at = s.find(" bytes (").expect(s);
            s[..at].rsplit(' ').next().unwrap().parse().unwrap()
        };
        // One more hour of collection: a small ingest.
        let hour = f.root.join("hour.csv");
        std::fs::write(
            &hour,
            format!(
                "coin,ts,price,market_cap,volume,supply,rank\ncoin-00000,{},1.5,2,3,4,1\n",
                START + 401 * DAY
            ),
        )
        .unwrap();
        ok(
            &env.run(&d, &["ingest", hour.to_str().unwrap()], &[]),
            "ingest an hour",
        );
        let second = ok(&env.run(&d, &["backup", &dest], &[]), "second backup");
        // Only the database chunks the hour changed (the header page's and the row's, perhaps
        // a pointer-map page's) and the manifest: a few 64 KiB chunks, whatever the store's size.
        let chunk = strata::backup::CHUNK_BYTES as u64;
        assert!(
            copied(&second) <= 3 * chunk + 16 * 1024 && copied(&second) * 2 < copied(&first),
            "the second backup copied {} bytes, the first {}",
            copied(&second),
            copied(&first)
        );
        let restored = f.root.join(format!("restored-{}", dest.len()));
        let out = ok(&env.run(&restored, &["restore", &dest], &[]), "restore");
        assert!(out.contains(": 0 faults"), "{out}");
        assert!(same(
            &snapshot(&restored, &[]),
            &snapshot(&d, &env.settings)
        ));
        let store = Store::open(&restored).unwrap();
        assert!(store.segments().unwrap().iter().all(|s| s.store.is_empty()));
    }
    // Tampering: an altered object is named and the restore stops; so is an altered manifest.
    let dir = f.root.join("backup-dir");
    let store = Store::open(&d).unwrap();
    let seg = store.segments().unwrap().remove(0);
    drop(store);
    let obj = dir.join("objects").join(&seg.sha256);
    let good = std::fs::read(&obj).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 1;
    std::fs::write(&obj, &bad).unwrap();
    let target = f.root.join("restored-tampered");
    let err = failed(
        &env.run(&target, &["restore", dir.to_str().unwrap()], &[]),
        "restore of a tampered backup",
    );
    assert!(err.contains(&format!("objects/{}", seg.sha256)), "{err}");
    assert!(!target.join("strata.db").exists());
    std::fs::write(&obj, &good).unwrap();
    let manifests: Vec<PathBuf> = std::fs::read_dir(dir.join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    let newest = manifests.iter().max().unwrap();
    let text = std::fs::read_to_string(newest).unwrap();
    std::fs::write(newest, text.replacen("\"bytes\": ", "\"bytes\": 1", 1)).unwrap();
    let err = failed(
        &env.run(&target, &["restore", dir.to_str().unwrap()], &[]),
        "restore from a tampered manifest",
    );
    assert!(err.contains("fails its checksum"), "{err}");
    assert!(!target.join("strata.db").exists());

    // A backup cut off before its manifest leaves objects no manifest names: the next backup
    // finds them there (its puts are refused), copies little and restores.
    std::fs::write(newest, &text).unwrap();
    let bytes_before = dir_bytes(&dir.join("objects"));
    std::fs::remove_file(newest).unwrap();
    std::fs::remove_file(format!("{}.sha256", newest.display())).unwrap();
    let out = ok(
        &env.run(&d, &["backup", dir.to_str().unwrap()], &[]),
        "backup over an interrupted one",
    );
    // What changed since (opening the store above wrote to one chunk of its database) is all
    // it adds.
    let added = dir_bytes(&dir.join("objects")) - bytes_before;
    assert!(
        added <= CHUNK_BYTES as u64 && added * 4 < bytes_before,
        "{added} bytes added: {out}"
    );
    let out = ok(
        &env.run(&target, &["restore", dir.to_str().unwrap()], &[]),
        "restore after the interrupted backup",
    );
    assert!(out.contains(": 0 faults"), "{out}");
}

/// Bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
