//! The storage engine: a data directory's SQLite hot tier, segment catalog and segment store,
//! and the operations on them (ingest, tier transitions, queries, verify, recovery). Each part
//! adds its operations to [`Store`](store::Store); `docs/design.md` states the on-disk format,
//! the invariants and what the engine assumes of the disk.

pub mod backup;
pub mod bucket;
pub mod catalog;
pub mod collect;
pub mod components;
pub mod crash;
pub mod hot;
pub mod ingest;
pub mod latest;
pub mod locations;
pub mod query;
pub mod schema;
pub mod sealed;
pub mod segment;
pub mod segment_store;
pub mod store;
pub mod tiering;
pub mod verify;
