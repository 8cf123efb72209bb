//! The latest-rows cache: the newest hot rows of the coins `Store::latest` has read, kept up
//! to date by ingest and cleared by anything that removes hot rows.

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
    rows: std::collections::HashMap<i64, Vec<HotRow>>,
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
        let canon = |v: f64| if v.is_nan() { f64::NAN } else { v };
        for i in 0..batch.len() {
            let values = [
                batch.price[i],
                batch.market_cap[i],
                batch.volume[i],
                batch.supply[i],
            ];
            let row = (batch.ts[i], values.map(canon), batch.rank[i]);
            self.upsert(ids[batch.coin_index[i] as usize], row);
        }
    }

    /// Applies an upsert of `row` to `coin`'s entry, if it has one.
    pub(crate) fn upsert(&mut self, coin: i64, row: HotRow) {
        let Some(rows) = self.rows.get_mut(&coin) else {
            return;
        };
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
}
