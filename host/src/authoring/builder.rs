//! `strata plugin build`: turns a plugin crate into a WebAssembly component with cargo, adding
//! the `wasm32-wasip2` target through rustup first when the toolchain lacks it.
//!
//! The component is built with `cargo rustc --lib --crate-type cdylib --profile plugin` (as
//! `host/build-support` builds the built-ins) and copied to `DIR/NAME.wasm`, a path that does
//! not depend on `CARGO_TARGET_DIR`, for policy files to name.

use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::plugin::sha256_file;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// A built component.
#[derive(Clone, Debug)]
pub struct Built {
    /// The crate's package name (the plugin's name, for a scaffolded crate).
    pub package: String,
    /// `DIR/NAME.wasm`.
    pub wasm: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Builds the plugin crate in `dir`; `say` gets one line for each thing done besides the build
/// itself (installing the target). Cargo's own progress goes to stderr.
pub fn build(dir: &Path, mut say: impl FnMut(&str)) -> Result<Built> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", dir.display()))?;
    let manifest = dir.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| {
        format!(
            "reading {}: `strata plugin build DIR` builds the plugin crate in DIR (default: the \
             current directory); `strata plugin new` makes one",
            manifest.display()
        )
    })?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("{}", manifest.display()))?;
    let package = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{}: no [package] name", manifest.display()))?
        .to_string();
    ensure_target(dir, &mut say)?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .current_dir(dir)
        .args(["rustc", "--lib", "--crate-type", "cdylib"])
        .args(["--target", TARGET, "--profile", "plugin"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "running `{}`: is Rust installed? (https://rustup.rs)",
                cargo.to_string_lossy()
            )
        })?;
    let mut artifact = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && let Some(files) = msg["filenames"].as_array()
        {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    artifact = Some(PathBuf::from(f));
                }
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "building {} for {TARGET} failed (cargo's errors above)",
            dir.display()
        );
    }
    let artifact = artifact.context("cargo built no .wasm file: is the crate a library?")?;
    let wasm = dir.join(format!("{package}.wasm"));
    let tmp = dir.join(format!(".{package}.wasm.tmp"));
    fs::copy(&artifact, &tmp)
        .with_context(|| format!("copying {} to {}", artifact.display(), tmp.display()))?;
    fs::rename(&tmp, &wasm).with_context(|| format!("writing {}", wasm.display()))?;
    Ok(Built {
        package,
        size: fs::metadata(&wasm)?.len(),
        sha256: sha256_file(&wasm)?,
        wasm,
    })
}

/// Makes sure the toolchain cargo uses in `dir` has the wasm target, installing it through
/// rustup when it does not.
fn ensure_target(dir: &Path, say: &mut impl FnMut(&str)) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| {
            format!(
                "running `{} --print sysroot`: is Rust installed? (https://rustup.rs)",
                rustc.to_string_lossy()
            )
        })?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Ok(());
    }
    say(&format!(
        "the {TARGET} target is missing; installing it: rustup target add {TARGET}"
    ));
    match Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", TARGET])
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`rustup target add {TARGET}` failed ({s}); plugins are built for {TARGET}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the {TARGET} target is not installed and rustup was not found to add it: install \
             Rust with rustup (https://rustup.rs) and run `rustup target add {TARGET}`, or add \
             the {TARGET} standard library to your toolchain another way"
        ),
        Err(e) => Err(e).context("running rustup"),
    }
}
