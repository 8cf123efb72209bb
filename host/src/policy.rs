//! Tier policies: which tiers exist, how long each keeps data, and which retention plugin and
//! codec plugin each uses. Written by users as TOML (see `policies/`), checked before any data
//! moves, with errors that name the file, the line and the key.
//!
//! ```toml
//! name = "default"
//!
//! [[tier]]
//! name = "hot"            # the first tier is always the hot SQLite tier: no codec, every row
//! keep = "30d"            # rows older than this move on to the next tier
//!
//! [[tier]]
//! name = "warm"
//! keep = "365d"
//! retention = { plugin = "sample", options = { every = "1d" } }
//! codec = { plugin = "jsonl-gzip", options = { level = 6 } }
//! segment = { window = "30d", coin-buckets = 64 }
//!
//! [[tier]]
//! name = "archive"        # the last tier has no `keep`: it keeps forever
//! retention = { plugin = "sample", options = { every = "quarter" } }
//! codec = { plugin = "./plugins/my-codec.wasm", sha256 = "9f2c…" }
//! ```
//!
//! Durations are `humantime` spans (`12h`, `30d`, `1y` = 365.25 days). A plugin is a built-in
//! name or a path to a `.wasm` component (relative paths are relative to the policy file),
//! optionally pinned by `sha256`. Option values may be strings, numbers or booleans; they reach
//! the plugin as text.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml::Spanned;

use crate::plugin::{PluginRef, PluginSource};

/// One day, in ms.
pub const DAY_MS: i64 = 86_400_000;

/// The default policy: `policies/default.toml`, embedded.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

/// A checked policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    /// Where it came from (a path, or `built-in default`), for error messages.
    pub origin: String,
    /// `tiers[0]` is the hot tier; each later tier receives what ages out of the one before.
    pub tiers: Vec<Tier>,
}

/// One tier of a policy.
#[derive(Clone, Debug)]
pub struct Tier {
    pub name: String,
    /// Milliseconds: rows older than `now - keep` move to the next tier. `None` = forever
    /// (only the last tier).
    pub keep: Option<i64>,
    /// `None` only for the hot tier, which keeps every row.
    pub retention: Option<PluginSpec>,
    /// `None` only for the hot tier, which is SQLite.
    pub codec: Option<PluginSpec>,
    pub segment: SegmentSpec,
    /// Where the tier's segments live: `None` for the data directory, else a bucket URL
    /// (`s3://bucket/prefix`, checked by [`BucketUrl`](crate::bucket::BucketUrl)).
    pub store: Option<String>,
    /// The bucket's storage class, for `strata plan`'s prices (the bucket's lifecycle rules
    /// decide the real one).
    pub storage_class: StorageClass,
}

/// Where a tier's bytes are priced: the local disk, or a bucket's storage class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageClass {
    /// The data directory's disk.
    #[default]
    Local,
    /// S3 Standard and its peers.
    Standard,
    /// S3 Standard-IA and its peers (cheaper to keep, a fee per GB read).
    Infrequent,
    /// Glacier-class storage (cheapest to keep, slow and costly to read).
    Archive,
}

impl StorageClass {
    pub fn name(self) -> &'static str {
        match self {
            StorageClass::Local => "local",
            StorageClass::Standard => "standard",
            StorageClass::Infrequent => "infrequent",
            StorageClass::Archive => "archive",
        }
    }
}

/// How a segment-based tier partitions its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpec {
    /// Width of a segment's time window, in ms.
    pub window: i64,
    /// Coins are spread over this many buckets (a stable hash of the id), one segment each per
    /// window, so one coin's query reads about 1/coin_buckets of a window.
    pub coin_buckets: u32,
    /// Compaction merges small segments into ones of at most this many rows (0: never).
    pub compact_rows: u64,
    /// Time a merged segment covers at most, ms (`None`: the window). Its oldest rows stay in
    /// the tier up to this much longer than `keep`.
    pub compact_span: Option<i64>,
}

impl Default for SegmentSpec {
    fn default() -> SegmentSpec {
        SegmentSpec {
            window: 30 * DAY_MS,
            coin_buckets: 16,
            compact_rows: crate::tiering::DEFAULT_COMPACT_ROWS,
            compact_span: None,
        }
    }
}

/// A plugin and the options it is called with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    pub plugin: PluginRef,
    pub options: Vec<(String, String)>,
    /// `file:line` of the spec, for errors found after parsing.
    pub location: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<String>,
    #[serde(default)]
    tier: Vec<Spanned<RawTier>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    keep: Option<Spanned<String>>,
    retention: Option<Spanned<RawPlugin>>,
    codec: Option<Spanned<RawPlugin>>,
    segment: Option<Spanned<RawSegment>>,
    store: Option<Spanned<String>>,
    #[serde(rename = "storage-class")]
    storage_class: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    plugin: Spanned<String>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    options: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSegment {
    window: Option<Spanned<String>>,
    coin_buckets: Option<Spanned<i64>>,
    compact_rows: Option<Spanned<i64>>,
    compact_span: Option<Spanned<String>>,
}

/// Turns byte offsets into `file:line` locations.
struct Locator<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize) -> String {
        let line = self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        format!("{}:{line}", self.origin)
    }

    fn of<T>(&self, s: &Spanned<T>) -> String {
        self.at(s.span().start)
    }
}

/// Reads and parses a policy file.
pub fn load(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))?;
    let mut policy = parse(&text, &path.display().to_string())?;
    // Plugin paths are relative to the policy file.
    let base = path.parent().unwrap_or(Path::new("."));
    for tier in &mut policy.tiers {
        for spec in [&mut tier.retention, &mut tier.codec].into_iter().flatten() {
            if let PluginSource::Path(p) = &mut spec.plugin.source
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
    }
    Ok(policy)
}

/// The embedded default policy.
pub fn default_policy() -> Policy {
    parse(DEFAULT_POLICY, "policies/default.toml").expect("the embedded default policy parses")
}

/// The embedded `all-columnar` policy (the default's tiers, every one in `columnar`): the
/// benchmark's tier transitions use it.
pub fn all_columnar_policy() -> Policy {
    parse(
        include_str!("../../policies/all-columnar.toml"),
        "policies/all-columnar.toml",
    )
    .expect("the embedded all-columnar policy parses")
}

/// Parses policy text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Policy> {
    let loc = Locator { origin, text };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| loc.at(s.start))
            .unwrap_or_else(|| origin.to_string());
        anyhow::anyhow!("{at}: {}", e.message())
    })?;
    if raw.tier.is_empty() {
        bail!("{origin}: a policy needs at least one [[tier]] (the hot tier)");
    }
    let mut tiers: Vec<Tier> = Vec::new();
    // Where each tier and its `keep` are written, for the shape rules checked at the end.
    let (mut at_tier, mut at_keep, mut has_segment) = (Vec::new(), Vec::new(), Vec::new());
    for spanned in raw.tier {
        let at = loc.of(&spanned);
        let t = spanned.into_inner();
        let name = t.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!(
                "{}: tier name `{name}` must be lowercase letters, digits and `-`",
                loc.of(&t.name)
            );
        }
        if tiers.iter().any(|p| p.name == name) {
            bail!("{}: tier `{name}` is defined twice", loc.of(&t.name));
        }
        let keep = t
            .keep
            .as_ref()
            .map(|k| duration_ms(k, &loc, "keep"))
            .transpose()?;
        let plugin = |p: &Option<Spanned<RawPlugin>>, what: &str| -> Result<Option<PluginSpec>> {
            p.as_ref()
                .map(|p| plugin_spec(p, &loc, &name, what))
                .transpose()
        };
        let retention = plugin(&t.retention, "retention")?;
        let codec = plugin(&t.codec, "codec")?;
        has_segment.push(t.segment.is_some());
        at_tier.push(at.clone());
        at_keep.push(t.keep.as_ref().map(|k| loc.of(k)).unwrap_or(at));
        let mut segment = SegmentSpec::default();
        if let Some(s) = &t.segment {
            let s = s.get_ref();
            if let Some(w) = &s.window {
                segment.window = duration_ms(w, &loc, "segment.window")?;
            }
            if let Some(b) = &s.coin_buckets {
                let v = *b.get_ref();
                if !(1..=4096).contains(&v) {
                    bail!(
                        "{}: `coin-buckets` must be within 1..=4096, not {v}",
                        loc.of(b)
                    );
                }
                segment.coin_buckets = v as u32;
            }
            if let Some(r) = &s.compact_rows {
                let v = *r.get_ref();
                if !(0..=100_000_000).contains(&v) {
                    bail!(
                        "{}: `compact-rows` must be within 0..=100000000 (0: no compaction), not {v}",
                        loc.of(r)
                    );
                }
                segment.compact_rows = v as u64;
            }
            if let Some(w) = &s.compact_span {
                segment.compact_span = Some(duration_ms(w, &loc, "segment.compact-span")?);
            }
        }
        let store = match &t.store {
            Some(u) if tiers.is_empty() => bail!(
                "{}: the hot tier lives in the data directory's database; `store` is for later tiers",
                loc.of(u)
            ),
            Some(u) => {
                crate::bucket::BucketUrl::parse(u.get_ref())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", loc.of(u)))?;
                Some(u.get_ref().trim_end_matches('/').to_string())
            }
            None => None,
        };
        let storage_class = match (&t.storage_class, &store) {
            (None, None) => StorageClass::Local,
            (None, Some(_)) => StorageClass::Standard,
            (Some(c), None) => bail!(
                "{}: `storage-class` needs a `store` (a bucket URL)",
                loc.of(c)
            ),
            (Some(c), Some(_)) => match c.get_ref().as_str() {
                "standard" => StorageClass::Standard,
                "infrequent" => StorageClass::Infrequent,
                "archive" => StorageClass::Archive,
                other => bail!(
                    "{}: storage-class `{other}` is not one of standard, infrequent, archive",
                    loc.of(c)
                ),
            },
        };
        tiers.push(Tier {
            name,
            keep,
            retention,
            codec,
            segment,
            store,
            storage_class,
        });
    }
    let shapes: Vec<Shape<'_>> = tiers
        .iter()
        .zip(&has_segment)
        .map(|(t, &segment)| Shape {
            name: &t.name,
            keep: t.keep,
            retention: t.retention.is_some(),
            codec: t.codec.is_some(),
            segment,
        })
        .collect();
    if let Err(e) = check_shape(&shapes) {
        let at = if e.at_keep { &at_keep } else { &at_tier };
        bail!("{}: {}", at[e.tier], e.message);
    }
    Ok(Policy {
        name: raw.name.unwrap_or_else(|| origin.to_string()),
        origin: origin.to_string(),
        tiers,
    })
}

/// What the shape rules look at in one tier.
pub(crate) struct Shape<'a> {
    pub name: &'a str,
    pub keep: Option<i64>,
    pub retention: bool,
    pub codec: bool,
    /// Whether a `segment` table was given.
    pub segment: bool,
}

/// A broken shape rule: the tier, whether the fault is its `keep` (else the tier as a whole),
/// and what is wrong.
pub(crate) struct ShapeError {
    pub tier: usize,
    pub at_keep: bool,
    pub message: String,
}

/// The rules every list of tiers obeys, whether it comes from a policy file ([`parse`]) or is
/// built in code ([`crate::tiering::Plan::load`]): the first tier is the hot SQLite tier (no
/// plugins, no segments), every later tier has a retention and a codec plugin, every tier but
/// the last has a `keep` and the last has none, and `keep` grows tier by tier.
pub(crate) fn check_shape(tiers: &[Shape<'_>]) -> std::result::Result<(), ShapeError> {
    let last = tiers.len().saturating_sub(1);
    let fail = |tier: usize, at_keep: bool, message: String| {
        Err(ShapeError {
            tier,
            at_keep,
            message,
        })
    };
    let age = |ms: i64| humantime::format_duration(std::time::Duration::from_millis(ms as u64));
    for (i, t) in tiers.iter().enumerate() {
        let name = t.name;
        match t.keep {
            None if i != last => {
                return fail(
                    i,
                    false,
                    format!("tier `{name}` needs `keep` (only the last tier keeps forever)"),
                );
            }
            Some(_) if i == last => {
                return fail(
                    i,
                    true,
                    format!(
                        "tier `{name}` is the last tier and keeps forever; remove its `keep` or add a tier after it"
                    ),
                );
            }
            _ => {}
        }
        if i > 0
            && let (Some(k), Some(pk)) = (t.keep, tiers[i - 1].keep)
            && k <= pk
        {
            return fail(
                i,
                true,
                format!(
                    "tier `{name}` keeps data to age {} but the tier before it, `{}`, already keeps it to {}: ages must grow tier by tier",
                    age(k),
                    tiers[i - 1].name,
                    age(pk)
                ),
            );
        }
        if i == 0 {
            if t.retention || t.codec || t.segment {
                return fail(
                    i,
                    false,
                    format!(
                        "the first tier (`{name}`) is the hot SQLite tier: it takes no retention, codec or segment"
                    ),
                );
            }
        } else if !t.retention {
            return fail(
                i,
                false,
                format!("tier `{name}` needs `retention = {{ plugin = \"...\" }}` (e.g. `sample`)"),
            );
        } else if !t.codec {
            return fail(
                i,
                false,
                format!("tier `{name}` needs `codec = {{ plugin = \"...\" }}` (e.g. `columnar`)"),
            );
        }
    }
    Ok(())
}

fn duration_ms(s: &Spanned<String>, loc: &Locator<'_>, key: &str) -> Result<i64> {
    let d = humantime::parse_duration(s.get_ref()).map_err(|e| {
        anyhow::anyhow!(
            "{}: `{key} = \"{}\"` is not a duration ({e}); write e.g. \"12h\", \"30d\" or \"5y\"",
            loc.of(s),
            s.get_ref()
        )
    })?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ms <= 0 {
        bail!("{}: `{key}` must be longer than zero", loc.of(s));
    }
    Ok(ms)
}

fn plugin_spec(
    p: &Spanned<RawPlugin>,
    loc: &Locator<'_>,
    tier: &str,
    what: &str,
) -> Result<PluginSpec> {
    let location = loc.of(p);
    let raw = p.get_ref();
    let mut plugin = PluginRef::parse(raw.plugin.get_ref());
    if let Some(sha) = &raw.sha256 {
        let s = sha.get_ref();
        if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "{}: tier `{tier}` {what}: `sha256` must be 64 hex digits",
                loc.of(sha)
            );
        }
        plugin.sha256 = Some(s.to_ascii_lowercase());
    }
    let mut options = Vec::new();
    for (k, v) in &raw.options {
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "{location}: tier `{tier}` {what} option `{k}`: expected a string, number or boolean, found {}",
                other.type_str()
            ),
        };
        options.push((k.clone(), text));
    }
    Ok(PluginSpec {
        plugin,
        options,
        location,
    })
}

impl Policy {
    /// The tier called `name`.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }
}

/// Every policy file in a directory, for `strata plugins`-like listings and tests.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"

[[tier]]
name = "hot"
keep = "30d"

[[tier]]
name = "warm"
keep = "1y"
retention = { plugin = "sample", options = { every = "1d" } }
codec = { plugin = "jsonl-gzip", options = { level = 6 } }
segment = { window = "7d", coin-buckets = 4 }

[[tier]]
name = "archive"
retention = { plugin = "./x.wasm", sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789" }
codec = { plugin = "jsonl-gzip" }
"#;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, "p.toml").unwrap_err())
    }

    #[test]
    fn parses_tiers_ages_plugins_and_options() {
        let p = parse(GOOD, "p.toml").unwrap();
        assert_eq!(p.name, "t");
        let names: Vec<&str> = p.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["hot", "warm", "archive"]);
        assert_eq!(p.tiers[0].keep, Some(30 * DAY_MS));
        assert_eq!(p.tiers[1].keep, Some(365 * DAY_MS + DAY_MS / 4));
        assert_eq!(p.tiers[2].keep, None);
        let warm = &p.tiers[1];
        assert_eq!(
            warm.codec.as_ref().unwrap().options,
            [("level".to_string(), "6".to_string())]
        );
        assert_eq!(
            warm.segment,
            SegmentSpec {
                window: 7 * DAY_MS,
                coin_buckets: 4,
                ..SegmentSpec::default()
            }
        );
        assert_eq!(warm.retention.as_ref().unwrap().location, "p.toml:11");
        let arch = p.tiers[2].retention.as_ref().unwrap();
        assert_eq!(arch.plugin.source, PluginSource::Path("./x.wasm".into()));
        assert!(arch.plugin.sha256.as_ref().unwrap().starts_with("abcdef"));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err(&GOOD.replace("keep = \"1y\"", "keep = \"1 fortnight\""));
        assert!(
            e.starts_with("p.toml:10: `keep = \"1 fortnight\"` is not a duration"),
            "{e}"
        );
        let e = err(&GOOD.replace("keep = \"1y\"", "keep = \"20d\""));
        assert!(
            e.starts_with("p.toml:10: tier `warm` keeps data to age 20days"),
            "{e}"
        );
        assert!(e.contains("ages must grow"), "{e}");
        let e = err(&GOOD.replace("coin-buckets = 4", "coin-bucket = 4"));
        assert!(e.starts_with("p.toml:13:"), "{e}");
        assert!(e.contains("coin-bucket"), "{e}");
        let e = err(&GOOD.replace("name = \"archive\"", "name = \"archive\"\nkeep = \"9y\""));
        assert!(
            e.contains("p.toml:17: tier `archive` is the last tier"),
            "{e}"
        );
        let e = err(&GOOD.replace("sha256 = \"ABCDEF", "sha256 = \"XYZ"));
        assert!(e.contains("must be 64 hex digits"), "{e}");
        let e = err(&GOOD.replace("name = \"warm\"", "name = \"hot\""));
        assert!(e.contains("defined twice"), "{e}");
        let e = err(&GOOD.replace(
            "retention = { plugin = \"sample\", options = { every = \"1d\" } }\n",
            "",
        ));
        assert!(e.contains("tier `warm` needs `retention"), "{e}");
    }

    #[test]
    fn a_tier_may_live_in_a_bucket() {
        let text = GOOD.replace(
            "codec = { plugin = \"jsonl-gzip\" }\n",
            "codec = { plugin = \"jsonl-gzip\" }\nstore = \"s3://my-bucket/strata/\"\nstorage-class = \"archive\"\n",
        );
        let p = parse(&text, "p.toml").unwrap();
        assert_eq!(p.tiers[2].store.as_deref(), Some("s3://my-bucket/strata"));
        assert_eq!(p.tiers[2].storage_class, StorageClass::Archive);
        assert_eq!(p.tiers[1].store, None);
        assert_eq!(p.tiers[1].storage_class, StorageClass::Local);
        let e = err(&text.replace("s3://my-bucket/strata/", "s3://KEY:SECRET@my-bucket"));
        let line = text.lines().position(|l| l.starts_with("store")).unwrap() + 1;
        assert!(e.starts_with(&format!("p.toml:{line}:")), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        let e = err(&text.replace("\"archive\"\n", "\"glacier\"\n"));
        assert!(e.contains("storage-class `glacier`"), "{e}");
        let e = err(&GOOD.replace("keep = \"30d\"", "keep = \"30d\"\nstore = \"s3://abc/x\""));
        assert!(
            e.contains("the hot tier lives in the data directory"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "segment = { window",
            "storage-class = \"standard\"\nsegment = { window",
        ));
        assert!(e.contains("`storage-class` needs a `store`"), "{e}");
    }

    #[test]
    fn the_shipped_policies_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let files = policy_files(&dir).unwrap();
        assert!(files.len() >= 4, "{files:?}");
        for f in files {
            let p = load(&f).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
            assert!(p.tiers.len() >= 2, "{}", f.display());
        }
        assert_eq!(default_policy().tiers.len(), 4);
    }
}
