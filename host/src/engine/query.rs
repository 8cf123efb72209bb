//! Queries across tiers: one coin's rows in a time range, or its latest rows, wherever they
//! live. The hot tier is read from SQLite; segments are found through the catalog's per-coin
//! index (a segment that cannot hold the coin is never opened) and decoded with the coin filter
//! pushed down to the codec. Rows come back sorted by time, each tagged with its tier. Should
//! the same timestamp be in two tiers (rows re-ingested after their originals moved on), the
//! hottest copy wins.

use std::rc::Rc;

use anyhow::{Context, Result};
use strata_plugin_sdk::Batch;

use crate::latest::LATEST_CACHE_ROWS;
use crate::store::Store;

/// One coin's rows, oldest first, with the tier each came from.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// A batch whose dictionary is just the coin.
    pub rows: Batch,
    /// Per row: the tier that holds it.
    pub tier: Vec<Rc<str>>,
    /// Segments left out because they could not be read (only when asked to skip damaged
    /// segments): each as "path: why".
    pub skipped: Vec<String>,
}

impl Answer {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn single(coin: &str) -> Batch {
    let mut b = Batch::default();
    b.coins.push(coin.to_string());
    b
}

/// A coin the store knows, with the time span of its rows: exact for the hot tier, at
/// segment granularity for colder tiers (a segment's first and last row, of any coin).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CoinEntry {
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

impl Store {
    /// Every coin, by id, with its symbol, name and time span.
    pub fn coin_list(&self) -> Result<Vec<CoinEntry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT c.key, c.symbol, c.name,
               (SELECT min(ts) FROM hot WHERE coin = c.id),
               (SELECT max(ts) FROM hot WHERE coin = c.id),
               (SELECT min(ts) FROM hot_recent WHERE coin = c.id),
               (SELECT max(ts) FROM hot_recent WHERE coin = c.id),
               (SELECT live_from FROM hot_block WHERE coin = c.id ORDER BY win_start LIMIT 1),
               (SELECT last_ts FROM hot_block WHERE coin = c.id ORDER BY win_start DESC LIMIT 1),
               (SELECT min(s.min_ts) FROM segment_coin sc JOIN segment s ON s.id = sc.segment
                 WHERE sc.coin = c.id),
               (SELECT max(s.max_ts) FROM segment_coin sc JOIN segment s ON s.id = sc.segment
                 WHERE sc.coin = c.id)
             FROM coin c ORDER BY c.key",
        )?;
        let rows = st.query_map([], |r| {
            let t = |i: usize| r.get::<_, Option<i64>>(i);
            let first = [t(3)?, t(5)?, t(7)?, t(9)?].into_iter().flatten().min();
            let last = [t(4)?, t(6)?, t(8)?, t(10)?].into_iter().flatten().max();
            Ok(CoinEntry {
                id: r.get(0)?,
                symbol: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                first_ts: first,
                last_ts: last,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn known(&self, coin: &str) -> Result<i64> {
        self.coin_id(coin)
            .with_context(|| format!("unknown coin `{coin}` (no row of it was ever ingested)"))
    }

    /// Rows of `coin` with `from <= ts <= to`, from every tier. A segment that cannot be read
    /// (missing, damaged, its codec failing) fails the query, naming it.
    pub fn query(&self, coin: &str, from: i64, to: i64) -> Result<Answer> {
        self.query_with(coin, from, to, false)
    }

    /// [`query`](Self::query); with `skip_damaged`, a segment that cannot be read is left out
    /// and named in [`Answer::skipped`], and every row that can be read is returned.
    pub fn query_with(&self, coin: &str, from: i64, to: i64, skip_damaged: bool) -> Result<Answer> {
        let id = self.known(coin)?;
        let hot: Rc<str> = Rc::from("hot");
        let mut parts: Vec<(Batch, Rc<str>)> = Vec::new();
        let mut h = single(coin);
        self.hot_read(id, from, to, false, None, &mut h)?;
        parts.push((h, hot));
        let filter = [coin.to_string()];
        let segments = self.segments_for_coin(id, from, to)?;
        let mut skipped = Vec::new();
        for (s, b) in segments
            .iter()
            .zip(self.read_segments_each(&segments, &filter))
        {
            match b {
                Ok(b) => parts.push((only(&b, coin, from, to), Rc::from(s.tier.as_str()))),
                Err(e) if skip_damaged => skipped.push(format!("{}: {e:#}", s.path)),
                Err(e) => return Err(damaged(e)),
            }
        }
        let mut answer = merge(coin, parts, None);
        answer.skipped = skipped;
        Ok(answer)
    }

    /// The newest `n` rows of `coin`, oldest first.
    pub fn latest(&self, coin: &str, n: usize) -> Result<Answer> {
        self.latest_with(coin, n, false)
    }

    /// [`latest`](Self::latest) when the latest-rows cache alone can answer it (no SQLite
    /// read): the coin's entry is there and holds `n` rows.
    pub fn latest_cached(&self, coin: &str, n: usize) -> Option<Answer> {
        let id = self.coin_id(coin)?;
        if n > LATEST_CACHE_ROWS {
            return None;
        }
        let rows = self.latest.get(id, n)?;
        let mut b = Batch::with_capacity(n);
        b.coins.push(coin.to_string());
        for &(ts, f, rank) in rows.iter().rev() {
            b.push(0, ts, f[0], f[1], f[2], f[3], rank);
        }
        let hot: Rc<str> = Rc::from("hot");
        Some(Answer {
            rows: b,
            tier: vec![hot; n],
            skipped: Vec::new(),
        })
    }

    /// [`latest`](Self::latest), skipping damaged segments as [`query_with`](Self::query_with)
    /// does.
    pub fn latest_with(&self, coin: &str, n: usize, skip_damaged: bool) -> Result<Answer> {
        let id = self.known(coin)?;
        if n <= LATEST_CACHE_ROWS {
            if !self.latest.has(id) {
                let token = self.latest.before_read();
                let mut h = single(coin);
                self.hot_read(
                    id,
                    i64::MIN,
                    i64::MAX,
                    true,
                    Some(LATEST_CACHE_ROWS),
                    &mut h,
                )?;
                let rows = (0..h.len())
                    .map(|r| {
                        let f = [h.price[r], h.market_cap[r], h.volume[r], h.supply[r]];
                        (h.ts[r], f, h.rank[r])
                    })
                    .collect();
                self.latest.fill(id, rows, token);
            }
            if let Some(a) = self.latest_cached(coin, n) {
                return Ok(a);
            }
            // Fewer than n hot rows: the rest comes from colder tiers.
        }
        let mut h = single(coin);
        self.hot_read(id, i64::MIN, i64::MAX, true, Some(n), &mut h)?;
        if h.len() == n {
            h.reverse_rows();
            let tier = vec![Rc::<str>::from("hot"); n];
            return Ok(Answer {
                rows: h,
                tier,
                skipped: Vec::new(),
            });
        }
        let mut parts = vec![(h, Rc::<str>::from("hot"))];
        let filter = [coin.to_string()];
        let mut have: Vec<i64> = parts[0].0.ts.clone();
        let mut skipped = Vec::new();
        for s in self.segments_for_coin(id, i64::MIN, i64::MAX)? {
            // Segments come newest first by max_ts: stop once n rows are newer than this one.
            have.sort_unstable_by(|a, b| b.cmp(a));
            if have.len() >= n && have[n - 1] > s.max_ts {
                break;
            }
            let b = match self.read_segment(&s, Some(&filter)) {
                Ok(b) => only(&b, coin, i64::MIN, i64::MAX),
                Err(e) if skip_damaged => {
                    skipped.push(format!("{}: {e:#}", s.path));
                    continue;
                }
                Err(e) => return Err(damaged(e)),
            };
            have.extend_from_slice(&b.ts);
            parts.push((b, Rc::from(s.tier.as_str())));
        }
        let mut answer = merge(coin, parts, Some(n));
        answer.skipped = skipped;
        Ok(answer)
    }
}

/// A segment read failure, with the way around it.
fn damaged(e: anyhow::Error) -> anyhow::Error {
    e.context(
        "a segment this query needs cannot be read (`strata verify` checks them all; \
         `--skip-damaged` returns every row that can be read and names what was skipped)",
    )
}

/// The rows of `coin` in `[from, to]`, in a one-coin batch.
fn only(b: &Batch, coin: &str, from: i64, to: i64) -> Batch {
    let mut out = single(coin);
    let Some(c) = b.coins.iter().position(|x| x == coin) else {
        return out;
    };
    for col in &b.extra {
        out.add_extra(&col.name);
    }
    for r in 0..b.len() {
        if b.coin_index[r] as usize == c && b.ts[r] >= from && b.ts[r] <= to {
            push_row(&mut out, b, r);
        }
    }
    out
}

/// Appends row `r` of `b` to `out` (coin 0), with the extra columns both have; `out`'s other
/// extras get NaN.
fn push_row(out: &mut Batch, b: &Batch, r: usize) {
    out.push(
        0,
        b.ts[r],
        b.price[r],
        b.market_cap[r],
        b.volume[r],
        b.supply[r],
        b.rank[r],
    );
    for col in &b.extra {
        if let Some(k) = out.extra.iter().position(|c| c.name == col.name) {
            *out.extra[k].values.last_mut().expect("just pushed") = col.values[r];
        }
    }
}

/// Sorts the parts' rows by time; on equal time the earlier part (hotter) wins. With `last`,
/// only the newest `last` rows are kept.
fn merge(coin: &str, parts: Vec<(Batch, Rc<str>)>, last: Option<usize>) -> Answer {
    let mut idx: Vec<(i64, usize, usize)> = Vec::new();
    for (p, (b, _)) in parts.iter().enumerate() {
        idx.extend((0..b.len()).map(|r| (b.ts[r], p, r)));
    }
    idx.sort_unstable();
    idx.dedup_by_key(|x| x.0);
    if let Some(n) = last {
        let skip = idx.len().saturating_sub(n);
        idx.drain(..skip);
    }
    let mut out = Answer {
        rows: single(coin),
        tier: Vec::with_capacity(idx.len()),
        skipped: Vec::new(),
    };
    // Extra columns (e.g. a rollup's open/high/low/count) of any part; NaN where a row has none.
    for (b, _) in &parts {
        for col in &b.extra {
            out.rows.add_extra(&col.name);
        }
    }
    for (_, p, r) in idx {
        push_row(&mut out.rows, &parts[p].0, r);
        out.tier.push(parts[p].1.clone());
    }
    out
}

trait ReverseRows {
    fn reverse_rows(&mut self);
}

impl ReverseRows for Batch {
    fn reverse_rows(&mut self) {
        for c in &mut self.extra {
            c.values.reverse();
        }
        self.coin_index.reverse();
        self.ts.reverse();
        self.price.reverse();
        self.market_cap.reverse();
        self.volume.reverse();
        self.supply.reverse();
        self.rank.reverse();
    }
}
