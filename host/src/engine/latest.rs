//! The latest-rows cache: the newest hot rows of the coins `Store::latest` has read, kept up
//! to date by ingest and cleared by anything that removes hot rows.

use std::collections::HashMap;

use strata_plugin_sdk::Batch;

/// Rows per coin in the latest-rows cache (see `Store::latest`).
pub const LATEST_CACHE_ROWS: usize = 32;

/// One hot row without its coin: `(ts, [price, market_cap, volume, supply], rank)`, NaN
/// canonical, exactly as a read of the hot tables returns it.
pub(crate) type HotRow = (i64, [f64; 4], u32);

/// The newest hot rows of the coins `latest` has read, so that the dashboard query — a coin's
/// last few rows — costs a hash lookup instead of two SQLite searches.
///
/// Invariant: an entry holds the newest `min(LATEST_CACHE_ROWS, n)` of the coin's `n` hot rows,
/// newest first. Collection batches update the entries of their coins in place (a new row either
/// enters the newest rows or is older than all of them); a bulk import, a tier transition
/// (rows leave the hot tier) and a rolled-back write clear the whole cache.
#[derive(Debug, Default)]
pub(crate) struct LatestCache {
    rows: HashMap<i64, Vec<HotRow>>,
}

impl LatestCache {
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
    }

    pub(crate) fn get(&self, coin: i64) -> Option<&[HotRow]> {
        self.rows.get(&coin).map(Vec::as_slice)
    }

    /// Records the newest rows of `coin`, newest first, as read from the hot tables.
    pub(crate) fn fill(&mut self, coin: i64, rows: Vec<HotRow>) {
        debug_assert!(rows.len() <= LATEST_CACHE_ROWS);
        self.rows.insert(coin, rows);
    }

    /// Applies the upserts of `batch` (in order, so a later duplicate wins) to the entries of
    /// its coins; `ids[c]` is the store id of `batch.coins[c]`.
    pub(crate) fn upsert_batch(&mut self, batch: &Batch, ids: &[i64]) {
        if self.rows.is_empty() {
            return;
        }
        for i in 0..batch.len() {
            self.upsert(ids[batch.coin_index[i] as usize], row_of(batch, i));
        }
    }

    /// Applies an upsert of `row` to `coin`'s entry, if it has one.
    pub(crate) fn upsert(&mut self, coin: i64, row: HotRow) {
        if let Some(rows) = self.rows.get_mut(&coin) {
            upsert_rows(rows, row);
        }
    }
}

/// Applies an upsert of `row` to a coin's newest rows (newest first).
fn upsert_rows(rows: &mut Vec<HotRow>, row: HotRow) {
    // Newest first: search with the order reversed.
    match rows.binary_search_by(|r| row.0.cmp(&r.0)) {
        Ok(i) => rows[i] = row,
        Err(i) if i < LATEST_CACHE_ROWS => {
            rows.insert(i, row);
            rows.truncate(LATEST_CACHE_ROWS);
        }
        Err(_) => {}
    }
}

/// One process's latest-rows cache, shared by its writer and every reader (`strata serve`), so
/// that a collection batch updates the rows readers answer from instead of emptying the cache of
/// every reader.
///
/// Protocol: the writer applies a transaction's changes here only after it committed: it bumps
/// `epoch`, then applies them. A reader stores rows it read from SQLite only if `epoch` is the
/// value it saw before its snapshot began: a commit in between might have changed those rows
/// after the writer's update was applied, so they are dropped instead. The cache therefore only
/// ever holds rows of a committed state no older than the newest commit it has applied.
///
/// Readers never wait for the writer, which runs at a lower CPU priority and may be descheduled
/// while it holds a lock: each coin's rows have a lock of their own, the writer updates them
/// under the map's shared lock, and a reader that finds a lock taken reads SQLite instead. Only
/// adding an entry (a reader's fill) and clearing take the map's exclusive lock.
#[derive(Debug, Default)]
pub struct SharedLatest {
    epoch: std::sync::atomic::AtomicU64,
    entries: std::sync::RwLock<Entries>,
}

type Entries = HashMap<i64, std::sync::Mutex<Vec<HotRow>>>;

/// `Some` guard unless the lock is taken (a poisoned lock is taken back: every update leaves
/// an entry whole).
fn try_lock<G>(r: std::sync::TryLockResult<G>) -> Option<G> {
    match r {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl SharedLatest {
    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The newest `n` rows of `coin`, unless the cache lacks them or is busy.
    fn get(&self, coin: i64, n: usize) -> Option<Vec<HotRow>> {
        let entries = try_lock(self.entries.try_read())?;
        let rows = try_lock(entries.get(&coin)?.try_lock())?;
        (n <= rows.len()).then(|| rows[..n].to_vec())
    }

    fn has(&self, coin: i64) -> bool {
        try_lock(self.entries.try_read()).is_some_and(|e| e.contains_key(&coin))
    }

    /// Adds `coin`'s rows read from a snapshot that began at epoch `token`, unless a commit
    /// came since or the map is busy (a fill is only ever an optimisation).
    fn fill(&self, coin: i64, rows: Vec<HotRow>, token: u64) {
        if let Some(mut entries) = try_lock(self.entries.try_write())
            && token == self.epoch()
        {
            debug_assert!(rows.len() <= LATEST_CACHE_ROWS);
            entries.insert(coin, std::sync::Mutex::new(rows));
        }
    }

    /// The writer's side: applies one committed transaction's changes.
    fn publish(&self, ops: &[LatestOp]) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        // Everything before the last clear is moot.
        let start = ops
            .iter()
            .rposition(|op| matches!(op, LatestOp::Clear))
            .map_or(0, |i| {
                self.write_entries().clear();
                i + 1
            });
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        for op in &ops[start..] {
            if let LatestOp::Upsert(coin, row) = *op
                && let Some(rows) = entries.get(&coin)
            {
                upsert_rows(&mut rows.lock().unwrap_or_else(|e| e.into_inner()), row);
            }
        }
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A change to the latest rows made inside a write transaction, published when it commits.
#[derive(Debug, Clone, Copy)]
enum LatestOp {
    Clear,
    Upsert(i64, HotRow),
}

/// Whose latest-rows cache a [`Store`](crate::store::Store) uses.
#[derive(Debug, Default)]
enum Role {
    /// Its own (the CLI, the library).
    #[default]
    Local,
    /// A writer that also publishes its committed changes to a shared cache.
    Writer(std::sync::Arc<SharedLatest>),
    /// A reader answering from a shared cache.
    Reader(std::sync::Arc<SharedLatest>),
}

/// A store's view of the latest-rows cache: its own, or a process's [`SharedLatest`].
#[derive(Debug, Default)]
pub(crate) struct Latest {
    local: std::cell::RefCell<LatestCache>,
    role: Role,
    /// A writer's changes in the open write transaction.
    pending: std::cell::RefCell<Vec<LatestOp>>,
    /// The shared epoch seen before the current read snapshot began (see [`SharedLatest`]).
    snapshot_epoch: std::cell::Cell<Option<u64>>,
}

impl Latest {
    pub(crate) fn writer_of(shared: std::sync::Arc<SharedLatest>) -> Latest {
        Latest {
            role: Role::Writer(shared),
            ..Latest::default()
        }
    }

    pub(crate) fn reader_of(shared: std::sync::Arc<SharedLatest>) -> Latest {
        Latest {
            role: Role::Reader(shared),
            ..Latest::default()
        }
    }

    /// The newest `n` rows of `coin`, newest first, if the cache has them (and, shared, is not
    /// busy).
    pub(crate) fn get(&self, coin: i64, n: usize) -> Option<Vec<HotRow>> {
        match &self.role {
            Role::Reader(s) => s.get(coin, n),
            _ => {
                let local = self.local.borrow();
                let rows = local.get(coin)?;
                (n <= rows.len()).then(|| rows[..n].to_vec())
            }
        }
    }

    /// Whether the cache has an entry for `coin`.
    pub(crate) fn has(&self, coin: i64) -> bool {
        match &self.role {
            Role::Reader(s) => s.has(coin),
            _ => self.local.borrow().get(coin).is_some(),
        }
    }

    /// The token to pass to [`fill`](Self::fill) for rows about to be read: taken before the
    /// read's snapshot begins.
    pub(crate) fn before_read(&self) -> Option<u64> {
        match &self.role {
            Role::Reader(s) => Some(self.snapshot_epoch.get().unwrap_or_else(|| s.epoch())),
            _ => None,
        }
    }

    /// Records the newest rows of `coin` read from the hot tables, newest first; `token` is
    /// what [`before_read`](Self::before_read) returned before the read.
    pub(crate) fn fill(&self, coin: i64, rows: Vec<HotRow>, token: Option<u64>) {
        match &self.role {
            Role::Reader(s) => {
                if let Some(token) = token {
                    s.fill(coin, rows, token);
                }
            }
            _ => self.local.borrow_mut().fill(coin, rows),
        }
    }

    /// A read transaction is about to begin (see [`SharedLatest`]).
    pub(crate) fn snapshot_begins(&self) {
        if let Role::Reader(s) = &self.role {
            self.snapshot_epoch.set(Some(s.epoch()));
        }
    }

    pub(crate) fn snapshot_ends(&self) {
        self.snapshot_epoch.set(None);
    }

    /// Hot rows were removed or replaced wholesale (inside a write transaction).
    pub(crate) fn clear(&self) {
        self.local.borrow_mut().clear();
        if let Role::Writer(_) = self.role {
            let mut p = self.pending.borrow_mut();
            p.clear();
            p.push(LatestOp::Clear);
        }
    }

    /// A collection batch was upserted (inside a write transaction); `ids[c]` is the store id
    /// of `batch.coins[c]`.
    pub(crate) fn upsert_batch(&self, batch: &Batch, ids: &[i64]) {
        self.local.borrow_mut().upsert_batch(batch, ids);
        if let Role::Writer(_) = self.role {
            let mut p = self.pending.borrow_mut();
            p.extend((0..batch.len()).map(|i| {
                let coin = ids[batch.coin_index[i] as usize];
                LatestOp::Upsert(coin, row_of(batch, i))
            }));
        }
    }

    /// The write transaction committed: publishes its changes to the shared cache.
    ///
    /// The epoch moves first, so no read whose snapshot may predate the commit fills an entry
    /// from here on. A reader that fills an entry while the changes are applied read it after
    /// the commit, and applying the same upserts to it again changes nothing.
    pub(crate) fn committed(&self) {
        let ops = std::mem::take(&mut *self.pending.borrow_mut());
        if let Role::Writer(s) = &self.role {
            s.publish(&ops);
        }
    }

    /// The write transaction rolled back: nothing it did is published; the local cache, which
    /// saw its changes, is emptied.
    pub(crate) fn rolled_back(&self) {
        self.pending.borrow_mut().clear();
        self.local.borrow_mut().clear();
    }

    /// Another connection committed: a local cache forgets everything (a shared one is kept
    /// current by its writer).
    pub(crate) fn others_committed(&self) {
        if !matches!(self.role, Role::Reader(_)) {
            self.local.borrow_mut().clear();
        }
    }
}

/// Row `i` of `batch` as the cache holds it (NaN canonical).
fn row_of(batch: &Batch, i: usize) -> HotRow {
    let canon = |v: f64| if v.is_nan() { f64::NAN } else { v };
    let values = [
        batch.price[i],
        batch.market_cap[i],
        batch.volume[i],
        batch.supply[i],
    ];
    (batch.ts[i], values.map(canon), batch.rank[i])
}
