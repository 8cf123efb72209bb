//! The columnar batch every plugin reads and writes: the Rust twin of the WIT `batch` record.

use crate::Error;

/// A columnar batch of market observations; see `wit/strata.wit` for the meaning of each column.
///
/// Row `i` is `(coins[coin_index[i]], ts[i], price[i], market_cap[i], volume[i], supply[i],
/// rank[i])`. NaN in a float column and 0 in `rank` mean "unknown".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub coins: Vec<String>,
    pub coin_index: Vec<u32>,
    pub ts: Vec<i64>,
    pub price: Vec<f64>,
    pub market_cap: Vec<f64>,
    pub volume: Vec<f64>,
    pub supply: Vec<f64>,
    pub rank: Vec<u32>,
    /// Extra per-row float columns (a rollup's `open`, `high`, `low`, `count`). Empty for raw
    /// observations. [`Batch::push`] appends NaN to each, so lengths always agree.
    pub extra: Vec<Column>,
}

/// A named extra column of the batch (the WIT `column`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<f64>,
}

/// The names of the fixed columns, which an extra column may not take.
pub const FIXED_COLUMNS: [&str; 7] = [
    "coin",
    "ts",
    "price",
    "market_cap",
    "volume",
    "supply",
    "rank",
];

/// One row of a batch, by value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row<'a> {
    pub coin: &'a str,
    pub ts: i64,
    pub price: f64,
    pub market_cap: f64,
    pub volume: f64,
    pub supply: f64,
    pub rank: u32,
}

impl Row<'_> {
    /// True when both rows hold the same bits in every column (NaN == NaN, 0.0 != -0.0).
    pub fn bit_eq(&self, other: &Row<'_>) -> bool {
        self.coin == other.coin
            && self.ts == other.ts
            && self.price.to_bits() == other.price.to_bits()
            && self.market_cap.to_bits() == other.market_cap.to_bits()
            && self.volume.to_bits() == other.volume.to_bits()
            && self.supply.to_bits() == other.supply.to_bits()
            && self.rank == other.rank
    }
}

impl Batch {
    /// An empty batch with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Batch {
        Batch {
            coins: Vec::new(),
            coin_index: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            price: Vec::with_capacity(rows),
            market_cap: Vec::with_capacity(rows),
            volume: Vec::with_capacity(rows),
            supply: Vec::with_capacity(rows),
            rank: Vec::with_capacity(rows),
            extra: Vec::new(),
        }
    }

    /// The extra column called `name`, if any.
    pub fn extra(&self, name: &str) -> Option<&[f64]> {
        self.extra
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.values.as_slice())
    }

    /// Adds an extra column `name`, NaN for every existing row, and returns its position.
    pub fn add_extra(&mut self, name: &str) -> usize {
        if let Some(i) = self.extra.iter().position(|c| c.name == name) {
            return i;
        }
        self.extra.push(Column {
            name: name.to_string(),
            values: vec![f64::NAN; self.len()],
        });
        self.extra.len() - 1
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Row `i`. Panics when out of range, like slice indexing.
    pub fn row(&self, i: usize) -> Row<'_> {
        Row {
            coin: &self.coins[self.coin_index[i] as usize],
            ts: self.ts[i],
            price: self.price[i],
            market_cap: self.market_cap[i],
            volume: self.volume[i],
            supply: self.supply[i],
            rank: self.rank[i],
        }
    }

    /// All rows in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Appends a row whose coin is already in the dictionary at `coin`.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        coin: u32,
        ts: i64,
        price: f64,
        market_cap: f64,
        volume: f64,
        supply: f64,
        rank: u32,
    ) {
        self.coin_index.push(coin);
        self.ts.push(ts);
        self.price.push(price);
        self.market_cap.push(market_cap);
        self.volume.push(volume);
        self.supply.push(supply);
        self.rank.push(rank);
        for c in &mut self.extra {
            c.values.push(f64::NAN);
        }
    }

    /// Appends a copy of `row`, adding its coin to the dictionary through `dict` when new.
    pub fn push_row(&mut self, row: &Row<'_>, dict: &mut CoinDict) {
        let c = dict.intern(&mut self.coins, row.coin);
        self.push(
            c,
            row.ts,
            row.price,
            row.market_cap,
            row.volume,
            row.supply,
            row.rank,
        );
    }

    /// Checks the invariants of the WIT `batch` record: equal column lengths, coin indices in
    /// range, no duplicate or empty coin ids.
    pub fn validate(&self) -> Result<(), Error> {
        let n = self.ts.len();
        let columns = [
            ("coin-index", self.coin_index.len()),
            ("price", self.price.len()),
            ("market-cap", self.market_cap.len()),
            ("volume", self.volume.len()),
            ("supply", self.supply.len()),
            ("rank", self.rank.len()),
        ];
        for (name, len) in columns {
            if len != n {
                return Err(Error::CorruptInput(format!(
                    "column `{name}` has {len} rows but `ts` has {n}"
                )));
            }
        }
        for (k, c) in self.extra.iter().enumerate() {
            if c.values.len() != n {
                return Err(Error::CorruptInput(format!(
                    "extra column `{}` has {} rows but `ts` has {n}",
                    c.name,
                    c.values.len()
                )));
            }
            if c.name.is_empty()
                || FIXED_COLUMNS.contains(&c.name.as_str())
                || self.extra[..k].iter().any(|o| o.name == c.name)
            {
                return Err(Error::CorruptInput(format!(
                    "extra column name `{}` is empty, repeated or a fixed column's",
                    c.name
                )));
            }
        }
        if let Some((row, &c)) = self
            .coin_index
            .iter()
            .enumerate()
            .find(|&(_, &c)| c as usize >= self.coins.len())
        {
            return Err(Error::CorruptInput(format!(
                "row {row}: coin index {c} is out of range (dictionary has {} coins)",
                self.coins.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.coins.len());
        for coin in &self.coins {
            if coin.is_empty() {
                return Err(Error::CorruptInput("empty coin id in dictionary".into()));
            }
            if !seen.insert(coin.as_str()) {
                return Err(Error::CorruptInput(format!(
                    "coin id `{coin}` appears twice in the dictionary"
                )));
            }
        }
        Ok(())
    }

    /// The row order that sorts this batch by (coin id, ts), stable for equal keys.
    pub fn sorted_order(&self) -> Vec<u32> {
        // Rank coins by id once, then sort rows by (rank, ts): no string compares per row.
        let mut by_name: Vec<u32> = (0..self.coins.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| self.coins[a as usize].cmp(&self.coins[b as usize]));
        let mut coin_rank = vec![0u32; self.coins.len()];
        for (r, &c) in by_name.iter().enumerate() {
            coin_rank[c as usize] = r as u32;
        }
        self.order_by_rank(&coin_rank)
    }

    /// The row order that sorts this batch by (`coin_rank[coin_index]`, ts), stable for equal
    /// keys; `coin_rank` maps each dictionary entry to a rank below its length (equal ranks
    /// allowed).
    pub fn order_by_rank(&self, coin_rank: &[u32]) -> Vec<u32> {
        // A counting sort by coin (stable, O(rows + coins)), then each coin's rows by ts,
        // stably: they are usually in time order already (a batch of hourly steps, a time-ordered
        // file), and checking that is one pass.
        let mut start = vec![0usize; coin_rank.len() + 1];
        for &c in &self.coin_index {
            start[coin_rank[c as usize] as usize + 1] += 1;
        }
        for r in 1..start.len() {
            start[r] += start[r - 1];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; self.len()];
        for (i, &c) in self.coin_index.iter().enumerate() {
            let slot = &mut next[coin_rank[c as usize] as usize];
            order[*slot] = i as u32;
            *slot += 1;
        }
        for w in start.windows(2) {
            let rows = &mut order[w[0]..w[1]];
            if !rows.is_sorted_by_key(|&i| self.ts[i as usize]) {
                rows.sort_by_key(|&i| self.ts[i as usize]);
            }
        }
        order
    }

    /// True when rows are sorted by (coin id, ts), ties allowed.
    pub fn is_sorted_by_coin_ts(&self) -> bool {
        (1..self.len()).all(|i| {
            let (a, b) = (self.coin_index[i - 1], self.coin_index[i]);
            if a == b {
                self.ts[i - 1] <= self.ts[i]
            } else {
                self.coins[a as usize] < self.coins[b as usize]
            }
        })
    }

    /// A new batch with the rows at `indices`, in that order. The dictionary keeps only the
    /// coins those rows use, in order of first use.
    pub fn take(&self, indices: &[u32]) -> Batch {
        let mut out = Batch::with_capacity(indices.len());
        out.extra = self
            .extra
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: indices.iter().map(|&i| c.values[i as usize]).collect(),
            })
            .collect();
        let mut remap = vec![u32::MAX; self.coins.len()];
        for &i in indices {
            let i = i as usize;
            let old = self.coin_index[i] as usize;
            if remap[old] == u32::MAX {
                remap[old] = out.coins.len() as u32;
                out.coins.push(self.coins[old].clone());
            }
            out.coin_index.push(remap[old]);
            out.ts.push(self.ts[i]);
            out.price.push(self.price[i]);
            out.market_cap.push(self.market_cap[i]);
            out.volume.push(self.volume[i]);
            out.supply.push(self.supply[i]);
            out.rank.push(self.rank[i]);
        }
        out
    }

    /// This batch sorted by (coin id, ts), with a dictionary in coin-id order.
    pub fn sorted(&self) -> Batch {
        self.take(&self.sorted_order())
    }

    /// Only the rows whose coin is in `coins`.
    pub fn filter_coins(&self, coins: &[String]) -> Batch {
        let wanted: Vec<bool> = self.coins.iter().map(|c| coins.contains(c)).collect();
        let keep: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| wanted[self.coin_index[i as usize] as usize])
            .collect();
        self.take(&keep)
    }

    /// Appends all rows of `other` as they are: its coin indices must already refer to this
    /// batch's dictionary (both share one, or the caller set them so). Neither batch may have
    /// extra columns. The fast path of [`Batch::extend_from`], a copy of each column.
    pub fn append_rows(&mut self, other: &Batch) {
        debug_assert!(self.extra.is_empty() && other.extra.is_empty());
        debug_assert!(
            other
                .coin_index
                .iter()
                .all(|&c| (c as usize) < self.coins.len())
        );
        self.coin_index.extend_from_slice(&other.coin_index);
        self.ts.extend_from_slice(&other.ts);
        self.price.extend_from_slice(&other.price);
        self.market_cap.extend_from_slice(&other.market_cap);
        self.volume.extend_from_slice(&other.volume);
        self.supply.extend_from_slice(&other.supply);
        self.rank.extend_from_slice(&other.rank);
    }

    /// Appends all rows of `other`, merging dictionaries and extra columns (a column one side
    /// lacks is NaN there).
    pub fn extend_from(&mut self, other: &Batch) {
        let before = self.len();
        let targets: Vec<usize> = other
            .extra
            .iter()
            .map(|c| self.add_extra(&c.name))
            .collect();
        let mut dict = CoinDict::from_coins(&self.coins);
        let map: Vec<u32> = other
            .coins
            .iter()
            .map(|c| dict.intern(&mut self.coins, c))
            .collect();
        for i in 0..other.len() {
            self.push(
                map[other.coin_index[i] as usize],
                other.ts[i],
                other.price[i],
                other.market_cap[i],
                other.volume[i],
                other.supply[i],
                other.rank[i],
            );
        }
        for (c, &t) in other.extra.iter().zip(&targets) {
            self.extra[t].values[before..].copy_from_slice(&c.values);
        }
    }

    /// True when both batches hold the same rows, bit for bit, in the same order (dictionaries
    /// may differ in order and unused entries).
    pub fn bit_eq(&self, other: &Batch) -> bool {
        self.first_difference(other).is_none()
    }

    /// The first row where the two batches differ, for test failure messages.
    pub fn first_difference(&self, other: &Batch) -> Option<String> {
        if self.len() != other.len() {
            return Some(format!("{} rows vs {} rows", self.len(), other.len()));
        }
        if let Some(d) = self
            .rows()
            .zip(other.rows())
            .enumerate()
            .find(|(_, (a, b))| !a.bit_eq(b))
            .map(|(i, (a, b))| format!("row {i}: {a:?} vs {b:?}"))
        {
            return Some(d);
        }
        fn names(b: &Batch) -> Vec<&str> {
            let mut n: Vec<&str> = b.extra.iter().map(|c| c.name.as_str()).collect();
            n.sort_unstable();
            n
        }
        if names(self) != names(other) {
            return Some(format!(
                "extra columns {:?} vs {:?}",
                names(self),
                names(other)
            ));
        }
        for c in &self.extra {
            let theirs = other.extra(&c.name).expect("same names");
            if let Some(i) =
                (0..c.values.len()).find(|&i| c.values[i].to_bits() != theirs[i].to_bits())
            {
                return Some(format!(
                    "row {i}: extra column `{}`: {:?} vs {:?}",
                    c.name, c.values[i], theirs[i]
                ));
            }
        }
        None
    }
}

/// Maps coin ids to dictionary indices while a batch is being built.
#[derive(Default, Debug, Clone)]
pub struct CoinDict {
    index: std::collections::HashMap<String, u32>,
}

impl CoinDict {
    /// A dictionary that already knows `coins` at their positions.
    pub fn from_coins(coins: &[String]) -> CoinDict {
        CoinDict {
            index: coins
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i as u32))
                .collect(),
        }
    }

    /// The index of `coin` in `coins`, pushing it when new.
    pub fn intern(&mut self, coins: &mut Vec<String>, coin: &str) -> u32 {
        if let Some(&i) = self.index.get(coin) {
            return i;
        }
        let i = coins.len() as u32;
        coins.push(coin.to_owned());
        self.index.insert(coin.to_owned(), i);
        i
    }

    pub fn get(&self, coin: &str) -> Option<u32> {
        self.index.get(coin).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        let mut b = Batch::default();
        let mut d = CoinDict::default();
        for (coin, ts) in [("b", 2), ("a", 5), ("b", 1), ("a", 3)] {
            let row = Row {
                coin,
                ts,
                price: ts as f64,
                market_cap: f64::NAN,
                volume: -0.0,
                supply: 1.0,
                rank: 0,
            };
            b.push_row(&row, &mut d);
        }
        b
    }

    #[test]
    fn sorts_by_coin_then_ts() {
        let s = sample().sorted();
        let keys: Vec<(&str, i64)> = s.rows().map(|r| (r.coin, r.ts)).collect();
        assert_eq!(keys, [("a", 3), ("a", 5), ("b", 1), ("b", 2)]);
        assert!(s.is_sorted_by_coin_ts());
        assert!(!sample().is_sorted_by_coin_ts());
        assert_eq!(s.coins, ["a", "b"]);
    }

    /// The counting sort gives the order of a stable comparison sort by (coin id, ts), on
    /// batches in time order, in none, with ties and with unused dictionary entries.
    #[test]
    fn sorted_order_is_the_stable_sort_by_coin_id_and_ts() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % m
        };
        for case in 0..200 {
            let coins = 1 + next(12) as usize;
            let mut b = Batch {
                coins: (0..coins)
                    .map(|c| format!("c{}", next(50) + c as u64 * 50))
                    .collect(),
                ..Batch::default()
            };
            let rows = next(300) as usize;
            let mut ts = 0;
            for _ in 0..rows {
                // Half the cases in time order, the rest not; few distinct ts, so ties.
                ts = if case % 2 == 0 {
                    ts + next(2) as i64
                } else {
                    next(20) as i64
                };
                b.push(next(coins as u64) as u32, ts, 0.0, 0.0, 0.0, 0.0, 0);
            }
            let mut want: Vec<u32> = (0..b.len() as u32).collect();
            want.sort_by(|&x, &y| {
                let key = |i: u32| {
                    (
                        &b.coins[b.coin_index[i as usize] as usize],
                        b.ts[i as usize],
                    )
                };
                key(x).cmp(&key(y))
            });
            assert_eq!(b.sorted_order(), want, "case {case}");
        }
    }

    #[test]
    fn validate_catches_bad_batches() {
        let mut b = sample();
        assert!(b.validate().is_ok());
        b.coin_index[0] = 9;
        assert!(matches!(b.validate(), Err(Error::CorruptInput(m)) if m.contains("out of range")));
        let mut b = sample();
        b.price.pop();
        assert!(matches!(b.validate(), Err(Error::CorruptInput(m)) if m.contains("price")));
        let mut b = sample();
        b.coins.push("a".into());
        assert!(b.validate().is_err());
    }

    #[test]
    fn bit_eq_distinguishes_signed_zero_and_matches_nan() {
        let a = sample();
        let mut b = a.clone();
        assert!(a.bit_eq(&b));
        b.volume[1] = 0.0;
        assert!(!a.bit_eq(&b));
        assert!(a.first_difference(&b).unwrap().starts_with("row 1"));
    }

    #[test]
    fn append_rows_is_extend_from_within_one_dictionary() {
        let b = sample();
        let (mut fast, mut general) = (b.clone(), b.clone());
        fast.append_rows(&b);
        general.extend_from(&b);
        assert!(fast.bit_eq(&general));
        assert_eq!(fast.len(), 2 * b.len());
        assert_eq!(fast.coins, b.coins);
    }

    #[test]
    fn extra_columns_follow_rows() {
        let mut a = sample();
        let k = a.add_extra("high");
        a.extra[k].values = vec![1.0, 2.0, 3.0, 4.0];
        assert!(a.validate().is_ok());
        let s = a.sorted();
        assert_eq!(s.extra("high").unwrap(), [4.0, 2.0, 3.0, 1.0]);
        let mut b = sample();
        b.extend_from(&a);
        assert_eq!(b.extra("high").unwrap().len(), 8);
        assert!(b.extra("high").unwrap()[0].is_nan());
        assert_eq!(b.extra("high").unwrap()[7], 4.0);
        assert!(!b.bit_eq(&{
            let mut c = b.clone();
            c.extra[0].values[7] = 5.0;
            c
        }));
        a.extra[k].name = "price".into();
        assert!(a.validate().is_err());
    }

    #[test]
    fn filter_and_extend() {
        let a = sample();
        let only_a = a.filter_coins(&["a".to_string()]);
        assert_eq!(only_a.len(), 2);
        assert_eq!(only_a.coins, ["a"]);
        let mut both = only_a.clone();
        both.extend_from(&a.filter_coins(&["b".to_string()]));
        assert_eq!(both.len(), 4);
        assert!(both.sorted().bit_eq(&a.sorted()));
    }
}
