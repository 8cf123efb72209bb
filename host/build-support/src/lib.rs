//! Build-script support shared by `host/build.rs` (the built-in plugins) and `tests/build.rs`
//! (the misbehaving test guests): finds plugin crates, builds each into a `wasm32-wasip2`
//! component and generates Rust that embeds them, in the spirit of wasmtime's
//! `crates/test-programs/artifacts/build.rs`.
//!
//! A plugin crate is a directory with a `Cargo.toml` holding `[package.metadata.strata]` with
//! `plugin = "<name>"` and `kind = "codec" | "policy"` (test guests may use any kind string).
//! Each crate is built with the `plugin` profile into `<target-dir>/plugins`, a target directory
//! of its own so the nested cargo never waits on the outer one's lock, and one crate at a time
//! so that each component carries only its own crate's features.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// One plugin crate found under a directory.
#[derive(Debug, Clone)]
pub struct PluginCrate {
    /// Cargo package name, e.g. `strata-codec-jsonl-gzip`.
    pub package: String,
    /// The plugin's name, e.g. `jsonl-gzip`.
    pub plugin: String,
    /// `codec` or `policy` (or anything, for test guests).
    pub kind: String,
}

impl PluginCrate {
    /// `JSONL_GZIP` for `jsonl-gzip`.
    pub fn const_name(&self) -> String {
        self.plugin.to_uppercase().replace('-', "_")
    }

    /// `jsonl_gzip` for `jsonl-gzip`.
    pub fn ident(&self) -> String {
        self.plugin.replace('-', "_")
    }
}

/// The workspace root: the parent of the calling crate's directory (`host/`, `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("run from a build script"));
    manifest_dir
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists() && d.join("wit").exists())
        .expect("the workspace root holds Cargo.lock and wit/")
        .to_path_buf()
}

/// Finds the plugin crates directly under `dir`, sorted by plugin name, and asks cargo to rerun
/// the build script when anything under `dir` or `wit/` changes.
pub fn discover(dir: &Path) -> Vec<PluginCrate> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let package = &doc["package"];
        let Some(meta) = package.get("metadata").and_then(|m| m.get("strata")) else {
            continue;
        };
        let field = |t: &toml::Value, k: &str| {
            t.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{}: missing string `{k}`", manifest.display()))
                .to_string()
        };
        found.push(PluginCrate {
            package: field(package, "name"),
            plugin: field(meta, "plugin"),
            kind: field(meta, "kind"),
        });
    }
    found.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    found
}

/// Builds `p` into a component and returns the path of the `.wasm` file.
pub fn build(p: &PluginCrate) -> PathBuf {
    let root = workspace_root();
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    ensure_target_installed();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["rustc", "--quiet", "--package", &p.package, "--lib"])
        .args([
            "--target",
            TARGET,
            "--profile",
            "plugin",
            "--crate-type",
            "cdylib",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // The host's flags are not the plugins'; wasm SIMD (which wasmtime runs natively)
        // lets the plugins' loops vectorise as the native twins' do.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("running cargo to build a plugin");
    assert!(
        status.success(),
        "building plugin crate `{}` for {TARGET} failed",
        p.package
    );
    let wasm = target_dir
        .join(TARGET)
        .join("plugin")
        .join(format!("{}.wasm", p.package.replace('-', "_")));
    assert!(wasm.exists(), "expected component at {}", wasm.display());
    wasm
}

/// Installs the wasm target through rustup when the toolchain lacks it, saying so.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} target is missing; installing it with `rustup target add {TARGET}`"
    );
    match Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
    {
        Ok(s) if s.success() => {}
        _ => panic!(
            "the {TARGET} target is needed to build strata's plugins and `rustup target add {TARGET}` \
             failed; install it and build again"
        ),
    }
}
