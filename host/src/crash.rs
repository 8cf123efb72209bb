//! Fault injection for the crash tests: named points where the process can be made to abort.
//!
//! `STRATA_CRASH_AT=<point>:<n>` aborts the process (no unwinding, no destructors, like a power
//! cut for everything not yet fsynced) the `n`-th time execution reaches `point` (1-based).
//! Without the variable a point costs one relaxed atomic load. The points are listed in
//! [`POINTS`]; the crash test in `tests/` kills the binary at each of them and checks that the
//! store comes back with nothing lost and nothing duplicated.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every named point, in the order a tier transition or an ingest reaches them.
pub const POINTS: &[&str] = &[
    "ingest-chunk",
    "segment-written",
    "segment-synced",
    "segment-renamed",
    "before-commit",
    "after-commit",
    "old-files-deleted",
];

struct Target {
    point: String,
    n: u64,
    hits: AtomicU64,
}

fn target() -> Option<&'static Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| {
        let v = std::env::var("STRATA_CRASH_AT").ok()?;
        let (point, n) = v.rsplit_once(':').unwrap_or((&v, "1"));
        Some(Target {
            point: point.to_string(),
            n: n.parse().unwrap_or(1),
            hits: AtomicU64::new(0),
        })
    })
    .as_ref()
}

/// Aborts here when `STRATA_CRASH_AT` names this point and this is the chosen hit.
pub fn point(name: &str) {
    if let Some(t) = target()
        && t.point == name
        && t.hits.fetch_add(1, Ordering::Relaxed) + 1 == t.n
    {
        eprintln!("strata: STRATA_CRASH_AT={name}:{}: aborting", t.n);
        std::process::abort();
    }
}
