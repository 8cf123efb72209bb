//! strata: keeps crypto market history for years at a small fraction of the naive cost.
//!
//! Records (price, market cap, volume, supply, rank per coin per hour) arrive in a hot SQLite
//! tier and age into warm, cold and archive tiers. What each tier keeps and how it stores it
//! are WebAssembly components — codecs and retention policies — behind the versioned WIT
//! contract in `wit/strata.wit`, so formats and rules are swapped per policy file without
//! recompiling strata.
//!
//! - [`plugin`]: the sandboxed plugin runtime, the built-in plugins and their conformance suite.
//! - [`authoring`]: writing plugins outside the repo: `strata plugin new` (a standalone crate
//!   with the SDK and WIT) and `strata plugin build`.
//! - [`policy`]: tier policies (TOML): ages, retention plugins, codecs, segment layout.
//! - [`compare`]: every codec on the same data, through wasm and natively (`strata compare`).
//! - [`plan`]: storage and cost per tier per year for a policy (`strata plan`).
//! - [`source`]: the ways data gets in — file readers (canonical CSV/JSONL, CoinGecko, CMC,
//!   mapped CSVs) and the Coinpaprika client and collector.
//! - [`store`]: the data directory (open, lock, coins, write transactions, startup recovery),
//!   with [`schema`] (tables, migrations, packed hot values), [`hot`] (the hot tier's reads and
//!   writes) and [`latest`] (the latest-rows cache), [`ingest`], [`segment`] and [`catalog`]
//!   (segment names and their index), [`segment_store`] (the seam where segment bytes live:
//!   the data directory, or memory with injected faults for tests), [`tiering`] (the tier
//!   model and transitions), [`query`] (cross-tier reads) and [`verify`] (stats and checks)
//!   adding to [`Store`].
//! - [`collect`]: the collect loop (ingest what a source delivers, then tier what is due),
//!   which `strata collect` runs and a long-running service can call.
//! - [`generate`]: the synthetic market generator; [`crash`]: fault injection for crash tests.
//! - [`demo`]: the main job end to end on generated data (`strata demo`); [`bench`](mod@bench): the
//!   engine's figures against their targets (`strata bench`).
//!
//! The batch type every layer shares is the SDK's [`Batch`](strata_plugin_sdk::Batch).

pub mod authoring;
pub mod bench;
pub mod catalog;
pub mod collect;
pub mod compare;
pub mod components;
pub mod crash;
pub mod demo;
pub mod generate;
pub mod hot;
pub mod ingest;
pub mod latest;
pub mod plan;
pub mod plugin;
pub mod policy;
pub mod query;
pub mod roundtrip;
pub mod schema;
pub mod segment;
pub mod segment_store;
pub mod source;
pub mod store;
pub mod tiering;
pub mod verify;

pub use store::{CoinMeta, Store};

pub use strata_plugin_sdk as sdk;
