//! The plugin commands: `strata plugins`, and `strata plugin install|new|build|test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use strata::plugin::{self, Plugin, PluginRef};

use super::args::*;
use super::*;

/// List plugins: the built-ins and the components in --plugin-dir.
pub(crate) fn plugins(g: &Global, a: PluginsArgs) -> Result<ExitCode> {
    let PluginsArgs { plugin_dir } = a;
    let rt = runtime(g)?;
    list_plugins(&rt, plugin_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// `strata plugin install PATH.wasm`.
pub(crate) fn install_plugin(g: &Global, path: &Path) -> Result<ExitCode> {
    let rt = runtime(g)?;
    let (p, dest, replaced) = rt.install(path)?;
    let m = p.meta();
    println!(
        "installed {} `{}` {} ({} bytes, sha256 {}) as {}",
        m.kind,
        m.name,
        p.info().version,
        m.size,
        m.sha256,
        dest.display()
    );
    if let Some(old) = replaced {
        println!(
            "replaced the component with sha256 {old} (stores that used it keep their own copy)"
        );
    }
    println!(
        "use it in a policy as plugin = \"{}\" (pin it with sha256 = \"{}\")",
        m.name, m.sha256
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list_plugins(rt: &Runtime, dir: Option<PathBuf>) -> Result<()> {
    let mut rows: Vec<(String, Plugin)> = Vec::new();
    for b in plugin::BUILTINS {
        rows.push(("built-in".into(), rt.load(&PluginRef::parse(b.name))?));
    }
    for (name, path) in rt.installed() {
        match rt.load(&PluginRef::parse(&name)) {
            Ok(pl) => rows.push((format!("installed: {}", path.display()), pl)),
            Err(e) => eprintln!("skipping installed {}: {e:#}", path.display()),
        }
    }
    if let Some(dir) = dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading plugin directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        for p in paths {
            match rt.load(&PluginRef {
                source: plugin::PluginSource::Path(p.clone()),
                sha256: None,
            }) {
                Ok(pl) => rows.push((p.display().to_string(), pl)),
                Err(e) => eprintln!("skipping {}: {e:#}", p.display()),
            }
        }
    }
    println!(
        "{:<14} {:<7} {:<8} {:>9}  {:<16}  SOURCE",
        "NAME", "KIND", "VERSION", "SIZE", "SHA256"
    );
    for (source, p) in &rows {
        let m = p.meta();
        let info = p.info();
        println!(
            "{:<14} {:<7} {:<8} {:>9}  {:<16}  {}",
            info.name,
            m.kind.to_string(),
            info.version,
            format!("{:.1} KiB", m.size as f64 / 1024.0),
            &m.sha256[..16],
            source
        );
        println!("    {}", info.description);
        for o in &info.options {
            println!(
                "    --option {}=<{}>  (default {}) {}",
                o.name, o.kind, o.default_value, o.description
            );
        }
    }
    Ok(())
}

/// `strata plugin new`: writes the crate and says what to do next.
pub(crate) fn new_plugin(kind: NewKind, name: &str, dir: Option<PathBuf>) -> Result<ExitCode> {
    let kind = match kind {
        NewKind::Codec => plugin::PluginKind::Codec,
        NewKind::Policy => plugin::PluginKind::Policy,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = strata::authoring::scaffold(kind, name, &dir)?;
    println!(
        "wrote the {kind} plugin `{name}` to {} ({} files)",
        dir.display(),
        files.len()
    );
    println!(
        "next: cd {} && cargo test && strata plugin build && strata plugin test",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `strata plugin build`: builds the component and prints its path, size and sha256.
pub(crate) fn build_plugin(dir: &Path) -> Result<strata::authoring::Built> {
    let built = strata::authoring::build(dir, |msg| eprintln!("strata: {msg}"))?;
    println!(
        "built {} ({} bytes, sha256 {})",
        built.wasm.display(),
        built.size,
        built.sha256
    );
    Ok(built)
}

/// `strata plugin test`: the conformance suite, naming the first failing check; for a codec,
/// its figures on the real-data extract beside the built-in codecs'.
pub(crate) fn test_plugin(
    g: &Global,
    plugin: &str,
    sha256: Option<String>,
    options: &[String],
) -> Result<ExitCode> {
    let rt = runtime(g)?;
    let mut r = if strata::authoring::is_crate_dir(Path::new(plugin)) {
        let built = build_plugin(Path::new(plugin))?;
        PluginRef::parse(&built.wasm.to_string_lossy())
    } else {
        PluginRef::parse(plugin)
    };
    r.sha256 = sha256;
    let opts = parse_options(options)?;
    let loaded = rt.load(&r)?;
    let report = plugin::conformance::run(&loaded, &opts);
    for c in &report.checks {
        match &c.outcome {
            Ok(()) => println!("ok    {}", c.name),
            Err(e) => println!("FAIL  {}: {e}", c.name),
        }
    }
    let failed = report.failures().count();
    println!("{} passed, {} failed", report.checks.len() - failed, failed);
    if let Some(first) = report.failures().next() {
        println!(
            "first failure: {}: {}",
            first.name,
            first.outcome.as_ref().unwrap_err()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Plugin::Codec(_) = loaded {
        let extract = plugin::conformance::real_extract();
        let mut codecs = vec![r.to_string()];
        codecs.extend(strata::compare::builtin_codecs());
        let figures = strata::compare::compare(
            &rt,
            &extract,
            &strata::compare::CompareOptions {
                codecs,
                options: opts
                    .iter()
                    .map(|(k, v)| (r.to_string(), k.clone(), v.clone()))
                    .collect(),
                runs: 20,
            },
            |_| {},
        );
        println!(
            "\non the real-data extract ({} rows; best of 20 calls, each in a fresh sandbox):",
            extract.len()
        );
        println!(
            "{:<16} {:>8} {:>12} {:>12}",
            "codec", "B/rec", "enc rows/s", "dec rows/s"
        );
        for (i, f) in figures.iter().enumerate() {
            match &f.error {
                Some(e) => println!("{:<16} error: {e}", f.codec),
                None => println!(
                    "{:<16} {:>8.2} {:>12.0} {:>12.0}{}",
                    f.codec,
                    f.bytes_per_record,
                    f.wasm_encode_rps,
                    f.wasm_decode_rps,
                    if i == 0 { "  <- this plugin" } else { "" }
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
