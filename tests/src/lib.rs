//! Shared helpers for strata's end-to-end tests: the test guest components and one plugin
//! runtime per test process (compiling a component is the slow part; the runtime caches it).

use std::sync::OnceLock;

use strata::plugin::{Runtime, RuntimeConfig};

pub mod s3_server;

/// The components under `tests/guests/`, built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// One runtime for the whole test process, with the default limits and a compile cache under
/// the target directory (so test runs never write to the user's home).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let cache = std::path::Path::new(env!("OUT_DIR")).join("component-cache");
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache),
            ..RuntimeConfig::default()
        })
        .expect("creating the plugin runtime")
    })
}
