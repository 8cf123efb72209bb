//! Verify before delete: every segment a transition writes is decoded again, by a fresh
//! instance of its codec, and compared with the rows it was made from before the catalog
//! commits it and the source rows are removed.
//!
//! A codec is a plugin, and a plugin may be wrong or hostile: it may encode fine and decode
//! something else (a flipped bit, a scaled price on some dates, a dropped row), trap, loop or
//! return an invalid batch on decode. Any of those must abort the transition with nothing
//! deleted. For a lossless codec the comparison is bit for bit (`f64::to_bits`) on every
//! column, extra columns by name; for a lossy one, the same rows — coin and timestamp, in
//! order — and the same extra columns. The rows a transition encodes are sorted by
//! (coin, ts), which is also the order of a codec that sorts rows, so one in-order comparison
//! serves both kinds.

use std::collections::HashMap;

use strata_plugin_sdk::Batch;

/// The first difference between the rows written (`want`) and the rows decoded (`got`), as
/// "row R (coin `C`, ts T): column `X`: wrote A, read B"; `None` when they agree.
pub fn first_difference(want: &Batch, got: &Batch, lossless: bool) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!(
            "{} rows read back, {} written",
            got.len(),
            want.len()
        ));
    }
    let at = |r: usize| {
        format!(
            "row {r} (coin `{}`, ts {})",
            want.coins[want.coin_index[r] as usize], want.ts[r]
        )
    };
    // Decoded dictionary index -> written dictionary index, once per coin, not per row.
    let index: HashMap<&str, u32> = want
        .coins
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let map: Vec<Option<u32>> = got
        .coins
        .iter()
        .map(|c| index.get(c.as_str()).copied())
        .collect();
    for r in 0..want.len() {
        if map[got.coin_index[r] as usize] != Some(want.coin_index[r]) {
            return Some(format!(
                "{}: column `coin`: read `{}`",
                at(r),
                crate::plugin::clean_text(&got.coins[got.coin_index[r] as usize])
            ));
        }
    }
    if let Some(r) = (0..want.len()).find(|&r| want.ts[r] != got.ts[r]) {
        return Some(format!("{}: column `ts`: read {}", at(r), got.ts[r]));
    }
    let mut names: Vec<&str> = want.extra.iter().map(|c| c.name.as_str()).collect();
    let mut theirs: Vec<&str> = got.extra.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    theirs.sort_unstable();
    if names != theirs {
        return Some(format!(
            "extra columns {names:?} written, {:?} read",
            theirs
                .iter()
                .map(|n| crate::plugin::clean_text(n))
                .collect::<Vec<_>>()
        ));
    }
    if !lossless {
        return None;
    }
    let floats = [
        ("price", &want.price, &got.price),
        ("market-cap", &want.market_cap, &got.market_cap),
        ("volume", &want.volume, &got.volume),
        ("supply", &want.supply, &got.supply),
    ];
    let extras = want.extra.iter().map(|c| {
        let read = got.extra(&c.name).expect("same names");
        (c.name.as_str(), &c.values, read)
    });
    for (name, a, b) in floats
        .into_iter()
        .map(|(n, a, b)| (n, a.as_slice(), b.as_slice()))
        .chain(extras.map(|(n, a, b)| (n, a.as_slice(), b)))
    {
        if let Some(r) = (0..a.len()).find(|&r| a[r].to_bits() != b[r].to_bits()) {
            return Some(format!(
                "{}: column `{name}`: wrote {:?}, read {:?}",
                at(r),
                a[r],
                b[r]
            ));
        }
    }
    if let Some(r) = (0..want.len()).find(|&r| want.rank[r] != got.rank[r]) {
        return Some(format!(
            "{}: column `rank`: wrote {}, read {}",
            at(r),
            want.rank[r],
            got.rank[r]
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let mut b = Batch {
            coins: vec!["a".into(), "b".into()],
            ..Batch::default()
        };
        for (c, ts, p) in [(0, 1, 1.0), (0, 2, -0.0), (1, 1, f64::NAN), (1, 5, 3.5)] {
            b.push(c, ts, p, 2.0, 3.0, 4.0, 7);
        }
        b
    }

    #[test]
    fn equal_rows_with_another_dictionary_agree() {
        let want = batch();
        let mut got = batch();
        got.coins = vec!["b".into(), "a".into(), "unused".into()];
        got.coin_index = vec![1, 1, 0, 0];
        assert_eq!(first_difference(&want, &got, true), None);
    }

    /// A change to a batch, and the words its difference must contain.
    type Case = (&'static str, fn(&mut Batch));

    #[test]
    fn every_kind_of_change_is_named() {
        let want = batch();
        let cases: [Case; 6] = [
            ("column `price`", |b| b.price[1] = 0.0),
            ("column `ts`", |b| b.ts[3] = 6),
            ("column `coin`", |b| b.coin_index[0] = 1),
            ("column `rank`", |b| b.rank[2] = 1),
            ("rows read back", |b| *b = b.take(&[0, 1, 2])),
            ("extra columns", |b| {
                b.add_extra("open");
            }),
        ];
        for (what, change) in cases {
            let mut got = batch();
            change(&mut got);
            let d = first_difference(&want, &got, true).expect(what);
            assert!(d.contains(what), "{what}: {d}");
        }
        // A lossy codec may change values, never rows.
        let mut got = batch();
        got.price[0] = 1.5;
        assert_eq!(first_difference(&want, &got, false), None);
        got.ts[0] = 0;
        assert!(first_difference(&want, &got, false).is_some());
    }
}
