//! The strata plugin SDK: everything a codec or retention plugin needs that is not its format.
//!
//! A plugin crate implements [`Codec`] or [`Policy`] over plain Rust types ([`Batch`],
//! [`Options`], [`Error`]) and calls [`export_codec!`] or [`export_policy!`] once. The same code
//! then runs two ways:
//!
//! - built for `wasm32-wasip2`, the macro binds it to the WIT world in `wit/strata.wit`, and the
//!   result is a component the strata host loads in a sandbox;
//! - built natively, the macro expands to nothing and the crate is an ordinary library, so the
//!   format logic is tested with `cargo test` and the host can run it natively to measure the
//!   "plugin tax".
//!
//! The SDK checks what is not format specific, once: batch invariants on the way in and out,
//! unknown or repeated option keys, and the calendar buckets retention rules are made of.

mod batch;
pub mod bucket;
mod error;
pub mod market_csv;
mod options;
pub mod shared_data;

#[cfg(feature = "gzip")]
pub mod gzip;
#[cfg(feature = "jsonl")]
pub mod jsonl;
#[cfg(feature = "testing")]
pub mod testing;

pub use batch::{Batch, CoinDict, Column, FIXED_COLUMNS, Row};
pub use error::{Error, Result};
pub use options::Options;

#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod guest;

/// One option a plugin accepts (the WIT `option-spec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: String,
    /// Short type description, e.g. `integer 0..=9`.
    pub kind: String,
    /// The value used when absent, as text.
    pub default_value: String,
    pub description: String,
}

impl OptionSpec {
    pub fn new(name: &str, kind: &str, default_value: &str, description: &str) -> OptionSpec {
        OptionSpec {
            name: name.into(),
            kind: kind.into(),
            default_value: default_value.into(),
            description: description.into(),
        }
    }
}

/// What every plugin says about itself (the WIT `plugin-info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub options: Vec<OptionSpec>,
}

/// What a codec says about itself (the WIT `codec-info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecInfo {
    pub info: PluginInfo,
    pub extension: String,
    pub media_type: String,
    pub lossless: bool,
    pub sorts_rows: bool,
    pub filter_pushdown: bool,
    /// Whether the codec stores [`Batch::extra`] columns.
    pub extra_columns: bool,
}

/// What a retention policy says about itself (the WIT `policy-info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInfo {
    pub info: PluginInfo,
    pub rolls_up: bool,
}

/// What a retention policy returns (the WIT `selection`).
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// Strictly increasing indices of the rows to keep.
    Keep(Vec<u32>),
    /// Aggregated rows replacing the input, sorted by (coin, ts).
    Rollup(Batch),
}

/// A tier codec: turns batches into the bytes of one segment and back.
///
/// Implementations get validated input: `encode` sees a batch that passed [`Batch::validate`]
/// and options whose keys are all in `describe().info.options`.
pub trait Codec: Send + Sync {
    fn describe(&self) -> CodecInfo;
    /// Encodes one self-describing segment.
    fn encode(&self, batch: &Batch, opts: &Options) -> Result<Vec<u8>>;
    /// Decodes a segment; may skip rows of coins not in `coins` when given. Must return an
    /// error, never panic, on any input.
    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch>;
}

/// A retention rule: picks the rows that survive into a colder tier.
pub trait Policy: Send + Sync {
    fn describe(&self) -> PolicyInfo;
    /// Format-specific option checks beyond known keys (the SDK checks those).
    fn check(&self, opts: &Options) -> Result<()>;
    /// The bucket start of each timestamp.
    fn bucket_starts(&self, ts: &[i64], opts: &Options) -> Result<Vec<i64>>;
    /// See the WIT `select`: `batch` is sorted by (coin, ts) without duplicates.
    fn select(&self, batch: &Batch, last_kept: &[Option<i64>], opts: &Options)
    -> Result<Selection>;
}

/// `encode` with the SDK's checks around it: batch invariants and option keys.
pub fn encode_checked(
    codec: &dyn Codec,
    batch: &Batch,
    opts: &[(String, String)],
) -> Result<Vec<u8>> {
    let info = codec.describe();
    let opts = Options::parse(opts, &info.info.options)?;
    batch.validate()?;
    if !batch.extra.is_empty() && !info.extra_columns {
        return Err(Error::Unsupported(format!(
            "`{}` does not store extra columns (this batch has {}); use a codec that does, e.g. jsonl-gzip",
            info.info.name,
            batch.extra.len()
        )));
    }
    codec.encode(batch, &opts)
}

/// `decode` with the SDK's checks around it: the decoded batch must be valid.
pub fn decode_checked(codec: &dyn Codec, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
    let batch = codec.decode(bytes, coins)?;
    batch
        .validate()
        .map_err(|e| Error::CorruptInput(format!("decoded batch is invalid: {e}")))?;
    Ok(batch)
}

/// `check` with the SDK's option-key checks first.
pub fn check_checked(policy: &dyn Policy, opts: &[(String, String)]) -> Result<()> {
    let opts = Options::parse(opts, &policy.describe().info.options)?;
    policy.check(&opts)
}

/// `bucket_starts` with the SDK's option-key checks first.
pub fn bucket_starts_checked(
    policy: &dyn Policy,
    ts: &[i64],
    opts: &[(String, String)],
) -> Result<Vec<i64>> {
    let opts = Options::parse(opts, &policy.describe().info.options)?;
    policy.bucket_starts(ts, &opts)
}

/// `select` with the SDK's checks around it: the input must be a valid batch sorted by
/// (coin, ts) with one `last_kept` per coin; the output indices must be strictly increasing and
/// in range, and a rollup must be a valid, sorted batch.
pub fn select_checked(
    policy: &dyn Policy,
    batch: &Batch,
    last_kept: &[Option<i64>],
    opts: &[(String, String)],
) -> Result<Selection> {
    let opts = Options::parse(opts, &policy.describe().info.options)?;
    batch.validate()?;
    if last_kept.len() != batch.coins.len() {
        return Err(Error::CorruptInput(format!(
            "last-kept has {} entries for {} coins",
            last_kept.len(),
            batch.coins.len()
        )));
    }
    if !batch.is_sorted_by_coin_ts() {
        return Err(Error::CorruptInput(
            "batch is not sorted by (coin, ts)".into(),
        ));
    }
    let selection = policy.select(batch, last_kept, &opts)?;
    verify_selection(batch, &selection)?;
    Ok(selection)
}

/// Checks what a policy returned for `input`: kept indices strictly increasing and in range; a
/// rollup a valid batch sorted by (coin, ts). The host runs this again on what a plugin returns.
pub fn verify_selection(input: &Batch, selection: &Selection) -> Result<()> {
    match selection {
        Selection::Keep(idx) => {
            if let Some(w) = idx.windows(2).find(|w| w[0] >= w[1]) {
                return Err(Error::Internal(format!(
                    "kept indices are not strictly increasing ({} then {})",
                    w[0], w[1]
                )));
            }
            if let Some(&last) = idx.last().filter(|&&i| i as usize >= input.len()) {
                return Err(Error::Internal(format!(
                    "kept index {last} is out of range for {} rows",
                    input.len()
                )));
            }
        }
        Selection::Rollup(b) => {
            b.validate()
                .map_err(|e| Error::Internal(format!("rollup batch is invalid: {e}")))?;
            if !b.is_sorted_by_coin_ts() {
                return Err(Error::Internal(
                    "rollup batch is not sorted by (coin, ts)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Exports a [`Codec`] (a type with `Default`) as the component's `tier-codec`. Natively it
/// defines `pub fn native_codec()` instead, through which the host runs the same code without
/// wasm (to measure the plugin tax).
#[macro_export]
macro_rules! export_codec {
    ($codec:ty) => {
        /// This crate's codec, run natively.
        #[cfg(not(target_arch = "wasm32"))]
        pub fn native_codec() -> ::std::boxed::Box<dyn $crate::Codec> {
            ::std::boxed::Box::new(<$codec as ::std::default::Default>::default())
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type StrataCodecComponent = $crate::guest::CodecComponent<$codec>;
            $crate::guest::codec_world::__export_codec_world!(StrataCodecComponent with_types_in $crate::guest::codec_world);
        };
    };
}

/// Exports a [`Policy`] (a type with `Default`) as the component's `retention-policy`. Natively
/// it defines `pub fn native_policy()`.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        /// This crate's policy, run natively.
        #[cfg(not(target_arch = "wasm32"))]
        pub fn native_policy() -> ::std::boxed::Box<dyn $crate::Policy> {
            ::std::boxed::Box::new(<$policy as ::std::default::Default>::default())
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type StrataPolicyComponent = $crate::guest::PolicyComponent<$policy>;
            $crate::guest::policy_world::__export_policy_world!(StrataPolicyComponent with_types_in $crate::guest::policy_world);
        };
    };
}
