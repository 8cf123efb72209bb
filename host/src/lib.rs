//! strata: keeps crypto market history for years at a small fraction of the naive cost.
//!
//! Records (price, market cap, volume, supply, rank per coin per hour) arrive in a hot SQLite
//! tier and age into warm, cold and archive tiers. What each tier keeps and how it stores it
//! are WebAssembly components — codecs and retention policies — behind the versioned WIT
//! contract in `wit/strata.wit`, so formats and rules are swapped per policy file without
//! recompiling strata.
//!
//! - [`plugin`]: the sandboxed plugin runtime, the built-in plugins and their conformance suite.
//! - [`store`]: the data directory (SQLite hot tier, segment catalog, startup recovery), with
//!   [`hot`] (ingest and the hot tier's layout), [`segment`] and [`catalog`] (segment files and
//!   their index), [`tiering`] (tier transitions) and [`query`] (cross-tier reads) adding to
//!   [`Store`](store::Store).
//! - [`generate`]: the synthetic market generator; [`crash`]: fault injection for crash tests.
//!
//! The batch type every layer shares is the SDK's [`Batch`](strata_plugin_sdk::Batch).

pub mod bench;
pub mod catalog;
pub mod crash;
pub mod generate;
pub mod hot;
pub mod ingest;
pub mod plugin;
pub mod query;
pub mod segment;
pub mod store;
pub mod tiering;
pub mod verify;

pub use store::{CoinMeta, Store};

pub use strata_plugin_sdk as sdk;
