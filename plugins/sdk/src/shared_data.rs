//! Where the real market data sets are found by tests, benchmarks and examples: the shared data
//! directory beside the repository (`../shared/data/`, each set with its SOURCE.md licence
//! note), or wherever `STRATA_SHARED_DATA` points. One resolver, so a checkout that keeps the
//! data elsewhere sets one variable and every consumer follows.

use std::path::PathBuf;

/// The environment variable that overrides the shared data directory.
pub const ENV: &str = "STRATA_SHARED_DATA";

/// The shared data directory: `$STRATA_SHARED_DATA`, else `shared/data` beside the repository
/// this SDK was built in.
pub fn dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(p) => p.into(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// A file of the shared data sets, e.g. `coinpaprika-samples/v1_tickers_2019-09-06.json.gz`.
pub fn path(rel: &str) -> PathBuf {
    dir().join(rel)
}

/// Like [`path`], or `None` with a note on stderr when the file is absent, for tests that skip
/// on a checkout without the shared data.
pub fn find(rel: &str) -> Option<PathBuf> {
    let p = path(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} not found (shared data sets absent; set {ENV})",
            p.display()
        );
        None
    }
}
