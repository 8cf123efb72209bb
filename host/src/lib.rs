//! strata: keeps crypto market history for years at a small fraction of the naive cost.
//!
//! Records (price, market cap, volume, supply, rank per coin per hour) arrive in a hot SQLite
//! tier and age into warm, cold and archive tiers. What each tier keeps and how it stores it
//! are WebAssembly components — codecs and retention policies — behind the versioned WIT
//! contract in `wit/strata.wit`, so formats and rules are swapped per policy file without
//! recompiling strata.
//!
//! The house, top-down:
//!
//! - [`engine`]: the storage engine, everything behind a data directory. [`store`] (open,
//!   lock, coins, write transactions, startup recovery) with [`schema`] (tables, migrations,
//!   packed hot values), [`hot`] (the hot tier's reads and writes), [`latest`] (the
//!   latest-rows cache), [`ingest`], [`segment`] and [`catalog`] (segment names and their
//!   index), [`segment_store`] (the seam where segment bytes live: the data directory, or
//!   memory with injected faults for tests; a new backend goes here), [`tiering`] (the tier
//!   model and transitions), [`query`] (cross-tier reads), [`verify`] (stats and checks),
//!   [`components`] (the store's own copies of the components that wrote its segments),
//!   [`collect`] (ingest what a source delivers, then tier what is due) and [`crash`] (fault
//!   injection for the crash tests).
//! - [`policy`]: tier policies (TOML): ages, retention plugins, codecs, segment layout.
//! - [`plugin`]: the sandboxed plugin runtime, the built-in plugins, their conformance suite and
//!   [`roundtrip`] (the bit-exact comparison behind conformance and verify-before-delete);
//!   [`authoring`]: writing plugins outside the repo (`strata plugin new`, `strata plugin build`).
//! - [`source`]: the ways data gets in — file readers (canonical CSV/JSONL, CoinGecko, CMC,
//!   mapped CSVs) and the Coinpaprika client and collector; a new source goes here.
//! - [`tools`]: tools over the library: [`compare`] (every codec on the same data), [`plan`]
//!   (the storage forecast), [`generate`] (the synthetic market), [`demo`] and
//!   [`bench`](mod@bench).
//!
//! Each engine and tool module is also at the crate root (`strata::store`, `strata::tiering`,
//! `strata::compare`, ...), the paths the tests and docs use. The command line (`src/cli/`)
//! is a thin layer over all of it. The batch type every layer shares is the SDK's
//! [`Batch`](strata_plugin_sdk::Batch).

pub mod authoring;
pub mod engine;
pub mod plugin;
pub mod policy;
pub mod serve;
pub mod source;
pub mod tools;

pub use engine::{
    backup, bucket, catalog, collect, components, crash, hot, ingest, latest, locations, query,
    schema, sealed, segment, segment_store, store, tiering, verify,
};
pub use plugin::roundtrip;
pub use tools::{bench, compare, demo, generate, plan};

pub use store::{CoinMeta, Store};

pub use strata_plugin_sdk as sdk;
