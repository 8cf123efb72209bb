//! Tools over the library, each behind a command: `compare` (every codec on the same data),
//! `plan` (the storage forecast of a policy), `generate` (the synthetic market), `demo` (the
//! main job end to end) and `bench` (the engine's figures against their targets).

pub mod bench;
pub mod compare;
pub mod demo;
pub mod generate;
pub mod plan;
