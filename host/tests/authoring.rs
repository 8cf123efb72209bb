//! The plugin authoring guide, run: every `sh` block of `docs/plugins.md`, in order, as one
//! bash script in a temporary directory outside the checkout, with the guide's `rust` block
//! applied as the edit it describes. It scaffolds a codec and a policy, tests them natively,
//! builds them, passes conformance, tiers a store with them, queries it back with no policy —
//! also after the built components are deleted — and compares the codec with built-ins.
//!
//! The plugin crates build into `$STRATA_CACHE_DIR/authoring-target` (else
//! `$CARGO_TARGET_DIR/authoring-target`, else the system temp directory), never the repo, so
//! a second run is warm.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fenced blocks of `lang` in a markdown text, in order.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match &mut cur {
            None if line.trim_end() == format!("```{lang}") => cur = Some(String::new()),
            Some(b) if line.starts_with("```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

fn target_dir() -> PathBuf {
    std::env::var_os("STRATA_CACHE_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("authoring-target")
}

fn strata(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_plugin_guide_runs_start_to_finish() {
    let guide = include_str!("../../docs/plugins.md");
    let sh = blocks(guide, "sh");
    let rust = blocks(guide, "rust");
    assert!(
        sh.len() >= 6 && rust.len() == 1,
        "{} sh, {} rust blocks",
        sh.len(),
        rust.len()
    );

    let work = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(
        !work.path().starts_with(repo),
        "the guide must run outside the checkout"
    );
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_strata"), bin.join("strata")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = work.path().join("guide");
    std::fs::create_dir(&dir).unwrap();

    // The first block scaffolds; then the edit of section 2; then the rest.
    let mut script = String::from("set -euxo pipefail\n");
    script.push_str(&sh[0]);
    let run = |script: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&dir)
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("STRATA_DATA")
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "the guide failed:\n{o}\n{e}");
        o
    };
    run(&script);
    let scaffolded_lock = std::fs::read_to_string(dir.join("mycodec/Cargo.lock")).unwrap();

    let lib_path = dir.join("mycodec/src/lib.rs");
    let lib = std::fs::read_to_string(&lib_path).unwrap();
    let (start, end) = (
        lib.find("/// Writes the timestamp column")
            .expect("write_ts in the template"),
        lib.find("/// The unread rest of a segment.")
            .expect("Reader in the template"),
    );
    std::fs::write(
        &lib_path,
        format!("{}{}\n{}", &lib[..start], rust[0], &lib[end..]),
    )
    .unwrap();

    let mut script = String::from("set -euxo pipefail\n");
    for (i, b) in sh.iter().enumerate().skip(1) {
        script.push_str(&format!("echo '=== block {i}'\n{b}"));
    }
    let out = run(&script);
    let block = |i: usize| {
        let from = out.find(&format!("=== block {i}\n")).unwrap();
        let rest = &out[from..];
        let to = rest[1..].find("=== block").map_or(rest.len(), |p| p + 1);
        rest[..to].to_string()
    };

    // The lock file as scaffolded was complete: cargo had nothing to change in it.
    assert_eq!(
        std::fs::read_to_string(dir.join("mycodec/Cargo.lock")).unwrap(),
        scaffolded_lock
    );
    // Built and conformant, with figures beside the built-ins.
    let conformance = block(2);
    assert_eq!(
        conformance.matches(", 0 failed").count(),
        2,
        "{conformance}"
    );
    assert!(conformance.contains("built "), "{conformance}");
    let mine = conformance
        .lines()
        .find(|l| l.ends_with("<- this plugin"))
        .expect("the codec's figures");
    let bpr: f64 = mine.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(bpr > 40.0 && bpr < 48.0, "delta timestamps: {mine}");
    assert!(conformance.lines().any(|l| l.starts_with("columnar ")));
    // The store answers from the plugin-written tier, before and after the .wasm is gone.
    let before = block(4);
    let after = block(5);
    for answer in [&before, &after] {
        assert!(answer.contains("warm"), "{answer}");
    }
    let rows = |s: &str| s.lines().filter(|l| l.contains(" warm ")).count();
    // Two days at every = "6h" (and the first row of the third).
    assert_eq!(rows(&before), 9, "{before}");
    assert_eq!(rows(&after), 9, "{after}");
    assert!(
        before.contains(" 0 faults") && after.contains(" 0 faults"),
        "{after}"
    );

    // And again with no policy, from another directory, by the library's own CLI.
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let verify = strata(work.path(), &["--data", store, "verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let latest = strata(
        work.path(),
        &["--data", store, "latest", "coin-00003", "-n", "2"],
    );
    assert!(latest.status.success(), "{latest:?}");
    // Comparison ran the scaffolded codec and the built-ins.
    let compare = block(6);
    assert!(
        compare.contains("mycodec") && compare.contains("columnar"),
        "{compare}"
    );
}

/// A toolchain without the wasm target: `plugin build` runs `rustup target add` and says so;
/// with no rustup either, it says what to install. Fake `rustc` and `rustup` scripts stand in.
#[test]
fn a_missing_wasm_target_is_added_through_rustup_or_explained() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("c");
    let new = strata(
        work.path(),
        &["plugin", "new", "codec", "c", crate_dir.to_str().unwrap()],
    );
    assert!(new.status.success(), "{new:?}");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(work.path().join("sysroot/lib/rustlib")).unwrap();
    std::fs::create_dir(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(
        "rustc",
        &format!("echo {}", work.path().join("sysroot").display()),
    );
    let build = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(&crate_dir)
            .args(["plugin", "build"])
            .env("PATH", path)
            .env("RUSTC", bin.join("rustc"))
            .env("CARGO", bin.join("false-cargo"))
            .output()
            .unwrap()
    };
    let out = build(bin.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the wasm32-wasip2 target is missing; installing it: rustup target add")
            && err.contains("rustup was not found")
            && err.contains("https://rustup.rs"),
        "{err}"
    );

    let log = work.path().join("rustup.log");
    script("rustup", &format!("echo \"$@\" >> {}", log.display()));
    script("false-cargo", "exit 1");
    let out = build(bin.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("installing it: rustup target add wasm32-wasip2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "target add wasm32-wasip2"
    );
    // The fake cargo fails the build itself, and the error says so.
    assert!(err.contains("building") && err.contains("failed"), "{err}");
}

/// A codec that changes one value on decode fails conformance, and `plugin test` names the
/// first failing check with the row and the column that differ.
#[test]
fn plugin_test_names_the_first_failing_check_row_and_column() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("wrong");
    let new = strata(
        work.path(),
        &["plugin", "new", "codec", "wrong", dir.to_str().unwrap()],
    );
    assert!(new.status.success(), "{new:?}");
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    let anchor = "        if !r.0.is_empty() {";
    assert!(text.contains(anchor));
    let text = text.replacen(
        anchor,
        &format!(
            "        if n > 5 {{\n            b.volume[5] *= 1.0000001;\n        }}\n{anchor}"
        ),
        1,
    );
    std::fs::write(&lib, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(&dir)
        .args(["plugin", "test"])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let first = stdout
        .lines()
        .find(|l| l.starts_with("first failure: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        first.contains("first failure: round trip: ")
            && first.contains("row 5 (coin `")
            && first.contains("column `volume`"),
        "{first}"
    );
    assert!(
        !stdout.contains("<- this plugin"),
        "no figures for a failing codec"
    );
}
