//! Fault injection for the crash and I/O-fault tests: named points where the process can be
//! made to abort, or the I/O step just before the point made to fail.
//!
//! `STRATA_CRASH_AT=<point>:<n>` aborts the process (no unwinding, no destructors, like a power
//! cut for everything not yet fsynced) the `n`-th time execution reaches `point` (1-based).
//! `STRATA_FAIL_AT=<point>:<n>:<ENOSPC|EIO>` makes that step fail with that error instead, as
//! a full or failing disk would (the write, fsync, directory fsync or commit just before the
//! point), so the caller's error handling runs for real.
//! Without the variables a point costs two relaxed loads. The points are listed in [`POINTS`];
//! the crash tests in `tests/` kill the binary at each of them, and fail each of them, and
//! check that the store comes back with nothing lost and nothing duplicated.

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
    "seal-round",
    "compacted-files-deleted",
    "object-put",
];

struct Target {
    point: String,
    n: u64,
    hits: AtomicU64,
    /// For `STRATA_FAIL_AT`: the OS error to fail with.
    errno: i32,
}

impl Target {
    fn from_env(var: &str) -> Option<Target> {
        let v = std::env::var(var).ok()?;
        let mut parts = v.split(':');
        let point = parts.next()?.to_string();
        let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        let errno = match parts.next() {
            Some("EIO") => libc::EIO,
            _ => libc::ENOSPC,
        };
        Some(Target {
            point,
            n,
            hits: AtomicU64::new(0),
            errno,
        })
    }

    /// True the chosen time execution reaches `name`.
    fn hit(&self, name: &str) -> bool {
        self.point == name && self.hits.fetch_add(1, Ordering::Relaxed) + 1 == self.n
    }
}

fn crash_target() -> Option<&'static Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| Target::from_env("STRATA_CRASH_AT"))
        .as_ref()
}

fn fail_target() -> Option<&'static Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| Target::from_env("STRATA_FAIL_AT"))
        .as_ref()
}

/// Aborts here when `STRATA_CRASH_AT` names this point and this is the chosen hit; fails with
/// the chosen OS error when `STRATA_FAIL_AT` does.
pub fn point(name: &str) -> std::io::Result<()> {
    if let Some(t) = crash_target()
        && t.hit(name)
    {
        eprintln!("strata: STRATA_CRASH_AT={name}:{}: aborting", t.n);
        std::process::abort();
    }
    if let Some(t) = fail_target()
        && t.hit(name)
    {
        return Err(std::io::Error::from_raw_os_error(t.errno));
    }
    Ok(())
}
