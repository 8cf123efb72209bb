//! What a store answers, for tests that compare two stores (`crash.rs`, `s3.rs`): every coin's
//! full answer across the tiers, compared bit for bit, and the rows the tiers hold.

#![allow(dead_code)]

use std::path::Path;

use strata::Store;
use strata::query::Answer;
use strata::store::StoreOptions;

/// Every coin's full answer across every tier (an empty answer for a coin the store never
/// saw), opening the store with `options` (bucket settings, say).
pub fn answers(data: &Path, coins: &[String], options: StoreOptions) -> Vec<Answer> {
    let store = Store::open_with(data, options).unwrap();
    coins
        .iter()
        .map(|c| match store.coin_id(c) {
            Some(_) => store.query(c, i64::MIN, i64::MAX).unwrap(),
            None => Answer::default(),
        })
        .collect()
}

/// The same rows, bit for bit, from the same tiers.
pub fn same(a: &[Answer], b: &[Answer]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.rows.bit_eq(&y.rows) && x.tier == y.tier)
}

/// Rows the tiers hold in total (a row in two tiers counts twice); reads only the catalog and
/// the hot tier, so it works with a bucket's server down.
pub fn stored_rows(data: &Path) -> u64 {
    Store::open(data)
        .unwrap()
        .stats()
        .unwrap()
        .iter()
        .map(|t| t.rows)
        .sum()
}
