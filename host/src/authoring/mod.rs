//! Plugin authoring: what `strata plugin new` and `strata plugin build` do.
//!
//! `plugin new codec|policy NAME DIR` writes a standalone crate that builds with rustup's
//! stable Rust and crates.io alone, wherever it is: the SDK and the WIT contract are written
//! out from this binary (embedded at build time, see [`SDK_FILES`]), so the crate needs no
//! strata checkout, git or path outside itself. Its layout keeps the SDK's
//! `path: "../../wit"` working unchanged:
//!
//! ```text
//! DIR/Cargo.toml                 the plugin crate, a [workspace] of its own, [profile.plugin]
//! DIR/Cargo.lock                 every dependency at the version strata's own Cargo.lock has
//! DIR/src/lib.rs                 a working example that passes conformance, with native tests
//! DIR/vendor/strata-plugin-sdk/  the SDK, with a standalone Cargo.toml (exact versions)
//! DIR/wit/strata.wit             the contract
//! DIR/data/                      the real-data extract the tests read, and its attribution
//! DIR/README.md, DIR/.gitignore
//! ```
//!
//! The lock file is `template/Cargo.lock.tmpl` with the crate's name put in (and its entry
//! moved to where cargo sorts it); a unit test checks that every version in it is the one in
//! strata's own `Cargo.lock`. To regenerate it after a dependency change: scaffold a codec,
//! copy strata's `Cargo.lock` over the crate's, run `cargo metadata --format-version 1
//! >/dev/null` in the crate (cargo prunes what the crate does not use and keeps the versions),
//! and copy it back with the crate's name replaced by `{{name}}`.

mod builder;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use builder::{Built, TARGET, build};

use crate::plugin::{self, PluginKind};

/// Every file of the SDK crate (`plugins/sdk`), by path inside it. A unit test compares this
/// list with the directory, so a new SDK file cannot be left out.
pub const SDK_FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../plugins/sdk/Cargo.toml"),
    ),
    (
        "src/batch.rs",
        include_str!("../../../plugins/sdk/src/batch.rs"),
    ),
    (
        "src/bucket.rs",
        include_str!("../../../plugins/sdk/src/bucket.rs"),
    ),
    (
        "src/error.rs",
        include_str!("../../../plugins/sdk/src/error.rs"),
    ),
    (
        "src/guest.rs",
        include_str!("../../../plugins/sdk/src/guest.rs"),
    ),
    (
        "src/gzip.rs",
        include_str!("../../../plugins/sdk/src/gzip.rs"),
    ),
    (
        "src/jsonl.rs",
        include_str!("../../../plugins/sdk/src/jsonl.rs"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/market_csv.rs",
        include_str!("../../../plugins/sdk/src/market_csv.rs"),
    ),
    (
        "src/options.rs",
        include_str!("../../../plugins/sdk/src/options.rs"),
    ),
    (
        "src/shared_data.rs",
        include_str!("../../../plugins/sdk/src/shared_data.rs"),
    ),
    (
        "src/testing.rs",
        include_str!("../../../plugins/sdk/src/testing.rs"),
    ),
];

/// Every file of `wit/`, by path inside it.
pub const WIT_FILES: &[(&str, &str)] = &[("strata.wit", include_str!("../../../wit/strata.wit"))];

const ROOT_MANIFEST: &str = include_str!("../../../Cargo.toml");
const ROOT_LOCK: &str = include_str!("../../../Cargo.lock");
const EXTRACT: &str = include_str!("../../data/coingecko-extract.csv");
const EXTRACT_SOURCE: &str = include_str!("../../data/SOURCE.md");

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const CARGO_LOCK: &str = include_str!("template/Cargo.lock.tmpl");
const README: &str = include_str!("template/README.md.tmpl");
const GITIGNORE: &str = include_str!("template/gitignore.tmpl");
const CODEC_RS: &str = include_str!("template/codec.rs.tmpl");
const POLICY_RS: &str = include_str!("template/policy.rs.tmpl");

/// Where the SDK goes inside a scaffolded crate.
pub const SDK_DIR: &str = "vendor/strata-plugin-sdk";

/// Checks a new plugin's name: what the host accepts as a plugin name and cargo as a package
/// name (a letter first), and no built-in's or dependency's name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        bail!(
            "`{}` cannot name a plugin: use 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter",
            plugin::clean_text(name)
        );
    }
    if plugin::builtin(name).is_some() {
        bail!("`{name}` is the name of a built-in plugin; choose another");
    }
    if lock_packages(CARGO_LOCK).iter().any(|(n, _)| n == name) || name == "strata-plugin-sdk" {
        bail!("`{name}` is the name of a crate the plugin depends on; choose another");
    }
    Ok(())
}

/// `MyCodec` for `my-codec`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The files of a new plugin crate, by path inside it.
pub fn files(kind: PluginKind, name: &str) -> Result<Vec<(String, String)>> {
    check_name(name)?;
    let root: toml::Table = ROOT_MANIFEST.parse().context("strata's Cargo.toml")?;
    let lock = lock_packages(ROOT_LOCK);
    let ws_package = root
        .get("workspace")
        .and_then(|w| w.get("package"))
        .context("strata's Cargo.toml has no [workspace.package]")?;
    let ws_str = |k: &str| -> Result<String> {
        ws_package
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("strata's Cargo.toml has no workspace.package.{k}"))
    };
    let kind_s = kind.to_string();
    let ty = type_name(name);
    let (what, test_extra, policy_snippet) = match kind {
        PluginKind::Codec => (
            "a little-endian columnar codec",
            ", and its size and speed on the extract beside the built-ins",
            format!(
                "[[tier]]\nname = \"warm\"\nkeep = \"365d\"\nretention = {{ plugin = \"sample\", options = {{ every = \"1d\" }} }}\ncodec = {{ plugin = \"./{name}.wasm\" }}"
            ),
        ),
        PluginKind::Policy => (
            "keep the first row per coin per calendar bucket",
            "",
            format!(
                "[[tier]]\nname = \"warm\"\nkeep = \"365d\"\nretention = {{ plugin = \"./{name}.wasm\", options = {{ every = \"1d\" }} }}\ncodec = {{ plugin = \"columnar\" }}"
            ),
        ),
    };
    let fill = |t: &str| -> Result<String> {
        Ok(t.replace("{{name}}", name)
            .replace("{{type}}", &ty)
            .replace("{{kind}}", &kind_s)
            .replace("{{strata_version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{edition}}", &ws_str("edition")?)
            .replace("{{rust_version}}", &ws_str("rust-version")?)
            .replace(
                "{{proptest_version}}",
                &locked_version(&lock, "proptest", "1")?,
            )
            .replace("{{profile}}", &profile_section(ROOT_MANIFEST, "plugin")?)
            .replace("{{what}}", what)
            .replace("{{test_extra}}", test_extra)
            .replace("{{policy_snippet}}", &policy_snippet))
    };
    let mut out = vec![
        ("Cargo.toml".to_string(), fill(CARGO_TOML)?),
        ("Cargo.lock".to_string(), lock_for(name)),
        (
            "src/lib.rs".to_string(),
            fill(match kind {
                PluginKind::Codec => CODEC_RS,
                PluginKind::Policy => POLICY_RS,
            })?,
        ),
        ("README.md".to_string(), fill(README)?),
        (".gitignore".to_string(), GITIGNORE.to_string()),
        (
            "data/coingecko-extract.csv".to_string(),
            EXTRACT.to_string(),
        ),
        ("data/SOURCE.md".to_string(), EXTRACT_SOURCE.to_string()),
    ];
    for (path, text) in WIT_FILES {
        out.push((format!("wit/{path}"), text.to_string()));
    }
    for (path, text) in SDK_FILES {
        let text = if *path == "Cargo.toml" {
            standalone_sdk_manifest(text, &root, &lock)?
        } else {
            text.to_string()
        };
        out.push((format!("{SDK_DIR}/{path}"), text));
    }
    Ok(out)
}

/// Writes a new plugin crate into `dir` (which must not exist or be empty) and returns the
/// paths written.
pub fn scaffold(kind: PluginKind, name: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = files(kind, name)?;
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        bail!(
            "{} is not empty: `strata plugin new` writes a new crate into an empty or new directory",
            dir.display()
        );
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The `[profile.NAME]` section of a manifest, as written there.
fn profile_section(manifest: &str, name: &str) -> Result<String> {
    let header = format!("[profile.{name}]");
    let start = manifest
        .lines()
        .position(|l| l.trim() == header)
        .with_context(|| format!("strata's Cargo.toml has no {header}"))?;
    let lines: Vec<&str> = manifest.lines().skip(start).collect();
    let end = lines[1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |p| p + 1);
    let mut s = lines[..end].join("\n");
    s.truncate(s.trim_end().len());
    s.push('\n');
    Ok(s)
}

/// (name, version) of every `[[package]]` of a lock file.
fn lock_packages(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |k: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(k)
                    .and_then(|r| r.trim().strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(n), Some(v)) = (field("name "), field("version ")) {
            out.push((n, v));
        }
    }
    out
}

/// The version of `name` in `lock` that meets the caret requirement `req` (`1`, `0.46`, ...).
fn locked_version(lock: &[(String, String)], name: &str, req: &str) -> Result<String> {
    let req = req.trim_start_matches('^');
    let found: Vec<&String> = lock
        .iter()
        .filter(|(n, v)| n == name && (v == req || v.starts_with(&format!("{req}."))))
        .map(|(_, v)| v)
        .collect();
    match found.as_slice() {
        [v] => Ok((*v).clone()),
        [] => bail!("strata's Cargo.lock has no `{name}` {req}"),
        _ => bail!("strata's Cargo.lock has several `{name}` {req}: {found:?}"),
    }
}

/// The SDK's manifest with every `workspace = true` replaced by what strata's workspace says,
/// and every dependency pinned (`=x.y.z`) to the version in strata's `Cargo.lock`.
fn standalone_sdk_manifest(
    text: &str,
    root: &toml::Table,
    lock: &[(String, String)],
) -> Result<String> {
    let mut doc: toml::Table = text.parse().context("plugins/sdk/Cargo.toml")?;
    let ws = root
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("strata's Cargo.toml has no [workspace]")?;
    let ws_package = ws.get("package").and_then(|p| p.as_table());
    let ws_deps = ws.get("dependencies").and_then(|d| d.as_table());
    if let Some(package) = doc.get_mut("package").and_then(|p| p.as_table_mut()) {
        for (key, value) in package.iter_mut() {
            if value.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
                *value = ws_package
                    .and_then(|p| p.get(key))
                    .with_context(|| format!("workspace.package.{key}"))?
                    .clone();
            }
        }
    }
    // Every dependency table: [dependencies], [dev-dependencies], [build-dependencies] and
    // their [target.'cfg(..)'.*] forms.
    let mut tables: Vec<&mut toml::Table> = Vec::new();
    for (key, value) in doc.iter_mut() {
        if key.ends_with("dependencies") {
            tables.extend(value.as_table_mut());
        } else if key == "target" {
            for (_, cfg) in value.as_table_mut().into_iter().flat_map(|t| t.iter_mut()) {
                for (k, v) in cfg.as_table_mut().into_iter().flat_map(|t| t.iter_mut()) {
                    if k.ends_with("dependencies") {
                        tables.extend(v.as_table_mut());
                    }
                }
            }
        }
    }
    for table in tables {
        for (name, spec) in table.iter_mut() {
            let mut merged = toml::Table::new();
            let local = match spec {
                toml::Value::String(v) => {
                    merged.insert("version".into(), v.clone().into());
                    toml::Table::new()
                }
                toml::Value::Table(t) => t.clone(),
                _ => bail!(
                    "plugins/sdk/Cargo.toml: dependency `{name}` is neither a string nor a table"
                ),
            };
            if local.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
                match ws_deps.and_then(|d| d.get(name.as_str())) {
                    Some(toml::Value::String(v)) => {
                        merged.insert("version".into(), v.clone().into());
                    }
                    Some(toml::Value::Table(t)) => merged.extend(t.clone()),
                    _ => bail!("workspace.dependencies.{name} is missing"),
                }
            }
            for (k, v) in local {
                match (k.as_str(), merged.get_mut("features")) {
                    ("workspace", _) => {}
                    ("features", Some(toml::Value::Array(have))) => {
                        for f in v.as_array().into_iter().flatten() {
                            if !have.contains(f) {
                                have.push(f.clone());
                            }
                        }
                    }
                    _ => {
                        merged.insert(k, v);
                    }
                }
            }
            if merged.contains_key("path") || merged.contains_key("git") {
                bail!("plugins/sdk/Cargo.toml: dependency `{name}` is not from crates.io");
            }
            let req = merged
                .get("version")
                .and_then(|v| v.as_str())
                .with_context(|| format!("dependency `{name}` has no version"))?
                .to_string();
            let package = merged
                .get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(name)
                .to_string();
            merged.insert(
                "version".into(),
                format!("={}", locked_version(lock, &package, &req)?).into(),
            );
            *spec = toml::Value::Table(merged);
        }
    }
    let mut out = String::from(
        "# The strata plugin SDK, written out by `strata plugin new` from the strata binary:\n\
         # plugins/sdk/Cargo.toml with strata's workspace settings filled in and every\n\
         # dependency pinned to the version strata itself is built with.\n\n",
    );
    out.push_str(&toml::to_string(&doc).context("writing the SDK's Cargo.toml")?);
    Ok(out)
}

/// The lock file for a crate named `name`: the template with the name put in and the crate's
/// entry where cargo sorts it (by name, then version), so `cargo build --locked` accepts it.
fn lock_for(name: &str) -> String {
    let text = CARGO_LOCK.replace("{{name}}", name);
    let mut parts = text.split("\n[[package]]\n");
    let head = parts.next().unwrap_or_default().to_string();
    let mut blocks: Vec<String> = parts.map(|b| b.trim_end().to_string()).collect();
    let key = |b: &String| {
        let pkgs = lock_packages(&format!("[[package]]\n{b}"));
        let (n, v) = pkgs.into_iter().next().unwrap_or_default();
        let v: Vec<u64> = v
            .split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        (n, v)
    };
    blocks.sort_by_key(key);
    let mut out = head;
    for b in blocks {
        let _ = write!(out, "\n[[package]]\n{b}\n");
    }
    out
}

/// Where `strata plugin build` and `strata plugin test` look for a plugin crate: `dir` itself
/// when it holds a `Cargo.toml`.
pub fn is_crate_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join("Cargo.toml").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn listing(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                listing(&e.path(), &format!("{name}/"), out);
            } else {
                out.insert(name);
            }
        }
    }

    #[test]
    fn every_sdk_and_wit_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, embedded) in [("plugins/sdk", SDK_FILES), ("wit", WIT_FILES)] {
            let mut on_disk = BTreeSet::new();
            listing(&root.join(dir), "", &mut on_disk);
            let embedded: BTreeSet<String> = embedded.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(
                on_disk, embedded,
                "{dir}: the files on disk and SDK_FILES/WIT_FILES in host/src/authoring/mod.rs differ"
            );
        }
    }

    #[test]
    fn the_lock_template_has_strata_own_versions() {
        let ours: BTreeSet<(String, String)> = lock_packages(ROOT_LOCK).into_iter().collect();
        let template = lock_packages(CARGO_LOCK);
        assert!(template.len() > 10, "{template:?}");
        for p in template {
            if p.0 == "{{name}}" || p.0 == "strata-plugin-sdk" {
                continue;
            }
            assert!(
                ours.contains(&p),
                "template/Cargo.lock.tmpl has {p:?}, strata's Cargo.lock does not: regenerate it \
                 (see the module doc)"
            );
        }
    }

    #[test]
    fn the_sdk_manifest_stands_alone_with_exact_versions() {
        let files = files(PluginKind::Codec, "my-codec").unwrap();
        let sdk = &files
            .iter()
            .find(|(p, _)| p == "vendor/strata-plugin-sdk/Cargo.toml")
            .unwrap()
            .1;
        assert!(!sdk.contains("workspace = true"), "{sdk}");
        let doc: toml::Table = sdk.parse().unwrap();
        assert_eq!(doc["package"]["edition"].as_str(), Some("2024"));
        let chrono = &doc["dependencies"]["chrono"];
        assert!(
            chrono["version"].as_str().unwrap().starts_with("=0.4."),
            "{sdk}"
        );
        let serde = &doc["dependencies"]["serde"];
        assert_eq!(serde["optional"].as_bool(), Some(true));
        assert!(
            serde["features"]
                .as_array()
                .unwrap()
                .contains(&"derive".into())
        );
        let flate2 = doc["dependencies"]["flate2"]["features"]
            .as_array()
            .unwrap();
        assert!(flate2.contains(&"zlib-rs".into()), "{sdk}");
        let wit = doc["target"]["cfg(target_arch = \"wasm32\")"]["dependencies"]["wit-bindgen"]
            ["version"]
            .as_str()
            .unwrap();
        assert!(wit.starts_with("=0.46."), "{wit}");
        let main: toml::Table = files[0].1.parse().unwrap();
        assert_eq!(main["package"]["name"].as_str(), Some("my-codec"));
        assert_eq!(
            main["profile"]["plugin"]["inherits"].as_str(),
            Some("release")
        );
        let lib = &files.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("pub struct MyCodec;") && lib.contains("name: \"my-codec\""));
        assert!(
            !files.iter().any(|(_, t)| t.contains("{{")),
            "a placeholder left"
        );
    }

    #[test]
    fn the_lock_is_sorted_whatever_the_name() {
        for name in ["aaa", "mycodec", "zzz", "proptest-x", "my-policy"] {
            let lock = lock_for(name);
            let pkgs = lock_packages(&lock);
            assert!(pkgs.iter().any(|(n, _)| n == name), "{name}");
            let names: Vec<&String> = pkgs.iter().map(|(n, _)| n).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{name}");
            assert!(lock.starts_with("# This file is automatically @generated by Cargo."));
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "",
            "My",
            "1abc",
            "a/b",
            "columnar",
            "serde",
            "strata-plugin-sdk",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("mycodec").unwrap();
        assert_eq!(type_name("my-codec_x"), "MyCodecX");
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), "").unwrap();
        let err = scaffold(PluginKind::Codec, "mine", dir.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
