//! Reused instance slots for plugin calls: wasmtime's pooling allocator, and the gate that
//! makes a call wait for a free slot instead of failing.
//!
//! Every call still gets a fresh instance (see the module docs of [`super`]); what the pool
//! reuses is the memory behind it. With wasmtime's default allocator each call maps a new
//! linear memory and every page it touches is a page fault that zeroes 4 KiB; a codec
//! encoding a million rows touches a few hundred megabytes that way. The pool keeps a fixed
//! set of slots mapped, lays each module's copy-on-write data image over the slot it gets, and
//! when an instance ends resets the first [`KEEP_RESIDENT`] bytes of its memory to zero with
//! `memset` (the rest is handed back to the kernel). The next call in that slot finds those
//! pages already present. No byte of one call is visible to the next: the reset is
//! wasmtime's, done before the slot is reused.
//!
//! The price is resident memory: each slot that has run a large call keeps up to
//! [`KEEP_RESIDENT`] bytes, so the slots are few ([`slots`]) and a call beyond them waits
//! ([`Gate`]). Plugin calls are CPU-bound, so a few more slots than cores keep every core busy.

use std::sync::{Condvar, Mutex};

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each slot's linear memory kept mapped, and zeroed with `memset`, between calls.
const KEEP_RESIDENT: usize = 128 << 20;

/// How many plugin calls may run at once: one per core, and one more so a short call (a
/// query's decode) need not wait behind a transition that keeps every core busy.
pub(super) fn slots() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores + 1).unwrap_or(u32::MAX).clamp(2, 64)
}

/// The pooling allocator for `slots` concurrent component instances. The per-instance
/// counts leave room for components built by other toolchains (componentize-py's hold a
/// dozen core modules, several memories and large tables), so a plugin that fits wasmtime's
/// defaults fits here.
pub(super) fn strategy(slots: u32) -> InstanceAllocationStrategy {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 32)
        .total_memories(slots * 4)
        .total_tables(slots * 32)
        .max_memories_per_module(4)
        .max_tables_per_module(8)
        .table_elements(1 << 20)
        // Any size a 32-bit memory can have; the store's limiter enforces `Limits`.
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(KEEP_RESIDENT);
    InstanceAllocationStrategy::Pooling(pool)
}

/// A counting semaphore over the pool's slots: [`Gate::enter`] blocks until a slot is free.
pub(super) struct Gate {
    free: Mutex<u32>,
    freed: Condvar,
}

/// A slot held by one call; given back on drop.
pub(super) struct Slot<'a>(&'a Gate);

impl Gate {
    pub(super) fn new(slots: u32) -> Gate {
        Gate {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    pub(super) fn enter(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_gate_never_lets_more_calls_in_than_slots() {
        let gate = Arc::new(Gate::new(3));
        let (inside, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (gate, inside, most) = (gate.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _slot = gate.enter();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(*gate.free.lock().unwrap(), 3, "every slot given back");
    }
}
