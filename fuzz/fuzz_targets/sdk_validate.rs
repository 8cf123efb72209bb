//! The SDK's batch checks on arbitrary, possibly malformed batches (column lengths that
//! disagree, coin indices out of range, empty or repeated coin ids and extra-column names):
//! `Batch::validate` and `verify_selection` must never panic, and whatever they accept must be
//! safe to use (`rows`, `sorted`, `take` of the kept indices, filters, merges).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use strata_plugin_sdk::{Batch, Column, Selection, verify_selection};

/// A length near `n`: usually `n`, sometimes off by a little.
fn len_near(u: &mut Unstructured<'_>, n: usize) -> Result<usize> {
    Ok(if u.ratio(1u8, 8u8)? {
        n.saturating_add_signed(u.int_in_range(-2isize..=2)?)
    } else {
        n
    })
}

fn floats(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<f64>> {
    (0..n).map(|_| Ok(f64::from_bits(u.arbitrary()?))).collect()
}

/// A batch whose shape is chosen by the input, valid or not.
fn raw_batch(u: &mut Unstructured<'_>) -> Result<Batch> {
    let coins: Vec<String> = (0..u.int_in_range(0..=8)?)
        .map(|_| u.arbitrary())
        .collect::<Result<_>>()?;
    let n: usize = u.int_in_range(0..=64)?;
    let idx_max = coins.len() as u32 + 1;
    let mut b = Batch {
        coins,
        ..Batch::default()
    };
    for _ in 0..len_near(u, n)? {
        b.coin_index.push(if u.ratio(1u8, 32u8)? {
            u.arbitrary()?
        } else {
            u.int_in_range(0..=idx_max)?
        });
    }
    b.ts = (0..n).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    let len = len_near(u, n)?;
    b.price = floats(u, len)?;
    let len = len_near(u, n)?;
    b.market_cap = floats(u, len)?;
    let len = len_near(u, n)?;
    b.volume = floats(u, len)?;
    let len = len_near(u, n)?;
    b.supply = floats(u, len)?;
    let n_rank = len_near(u, n)?;
    b.rank = (0..n_rank).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    for _ in 0..u.int_in_range(0..=3)? {
        let name = match u.int_in_range(0u8..=3)? {
            0 => "price".to_string(),
            1 => "open".to_string(),
            _ => u.arbitrary()?,
        };
        let len = len_near(u, n)?;
        let values = floats(u, len)?;
        b.extra.push(Column { name, values });
    }
    Ok(b)
}

/// Kept indices chosen by the input: often increasing and in range, sometimes not.
fn indices(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<u32>> {
    let mut idx = Vec::new();
    let mut at = 0u32;
    for _ in 0..u.int_in_range(0..=n + 2)? {
        at = match u.int_in_range(0u8..=7)? {
            0 => u.arbitrary()?,
            1 => at,
            2 => at.saturating_sub(1),
            _ => at.saturating_add(u.int_in_range(1..=3)?),
        };
        idx.push(at);
    }
    Ok(idx)
}

fn fuzz(u: &mut Unstructured<'_>) -> Result<()> {
    let input = raw_batch(u)?;
    let valid = input.validate().is_ok();
    if valid {
        strata_fuzz::use_batch(&input);
    }
    let idx = indices(u, input.len())?;
    let keep = Selection::Keep(idx.clone());
    if verify_selection(&input, &keep).is_ok() && valid {
        let kept = input.take(&idx);
        kept.validate()
            .expect("a kept subset of a valid batch is valid");
        strata_fuzz::use_batch(&kept);
    }
    let rollup = raw_batch(u)?;
    let accepted = verify_selection(&input, &Selection::Rollup(rollup.clone())).is_ok();
    if accepted {
        assert!(rollup.validate().is_ok(), "an accepted rollup is invalid");
        assert!(rollup.is_sorted_by_coin_ts());
        strata_fuzz::use_batch(&rollup);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = fuzz(&mut Unstructured::new(data));
});
