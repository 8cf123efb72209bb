//! Round trip of every built-in lossless codec: an arbitrary valid batch (awkward floats,
//! arbitrary coin ids, many coins, extra columns where the codec stores them), encoded with
//! options chosen by the input, must decode to the same rows bit for bit (`f64::to_bits`), in
//! the same order unless the codec declares `sorts_rows`; and decoding with a coin filter must
//! give exactly the wanted coins' rows.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use strata_fuzz::{CODECS, arb_batch, row_keys_pair};
use strata_plugin_sdk::{Batch, Codec, decode_checked, encode_checked};

/// Options for `codec` chosen by the input (only values the codec documents as valid).
fn options(u: &mut Unstructured<'_>, codec: &str) -> Result<Vec<(String, String)>> {
    let mut opts: Vec<(&str, String)> = Vec::new();
    match codec {
        "jsonl-gzip" | "msgpack-gzip" => opts.push(("level", u.int_in_range(0..=9u8)?.to_string())),
        // Qualities above 5 are slow enough to starve the fuzzer; they share the format.
        "jsonl-brotli" => opts.push(("quality", u.int_in_range(0..=5u8)?.to_string())),
        "columnar" => {
            let block = *u.choose(&[16u32, 17, 100, 128, 1024, 4096])?;
            opts.push(("block", block.to_string()));
            opts.push(("entropy", u.arbitrary::<bool>()?.to_string()));
        }
        "parquet" => {
            let compression = *u.choose(&["snappy", "gzip", "brotli", "lz4", "none"])?;
            opts.push(("compression", compression.to_string()));
            match compression {
                "gzip" => opts.push(("level", u.int_in_range(0..=9u8)?.to_string())),
                "brotli" => opts.push(("level", u.int_in_range(0..=5u8)?.to_string())),
                _ => {}
            }
            for flag in ["dictionary", "delta_ts", "byte_stream_split"] {
                opts.push((flag, u.arbitrary::<bool>()?.to_string()));
            }
        }
        _ => {}
    }
    Ok(opts.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn round_trip(codec: &dyn Codec, name: &str, batch: &Batch, opts: &[(String, String)]) {
    let info = codec.describe();
    assert!(info.lossless, "{name} is not lossless");
    let mut batch = batch.clone();
    if !info.extra_columns {
        batch.extra.clear();
    }
    let bytes = encode_checked(codec, &batch, opts)
        .unwrap_or_else(|e| panic!("{name} {opts:?}: encode failed: {e}"));
    let back = decode_checked(codec, &bytes, None)
        .unwrap_or_else(|e| panic!("{name} {opts:?}: decode of its own encoding failed: {e}"));
    let sort = info.sorts_rows;
    if let Err((want, got)) = row_keys_pair(&batch, &back, sort) {
        let i = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        panic!(
            "{name} {opts:?}: round trip differs ({} rows in, {} out); first difference at row {i}: {:?} vs {:?}",
            want.len(),
            got.len(),
            want.get(i),
            got.get(i)
        );
    }
    if let Some(first) = batch.coins.first() {
        let wanted = vec![first.clone(), "no-such-coin".to_string()];
        let filtered = decode_checked(codec, &bytes, Some(&wanted))
            .unwrap_or_else(|e| panic!("{name} {opts:?}: filtered decode failed: {e}"));
        let (want, got) = (batch.filter_coins(&wanted), filtered.filter_coins(&wanted));
        if row_keys_pair(&want, &got, sort).is_err() {
            panic!(
                "{name} {opts:?}: decode with a coin filter differs: {:?}",
                want.first_difference(&got)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(opts) = CODECS
        .iter()
        .map(|(name, _)| options(&mut u, name))
        .collect::<Result<Vec<_>>>()
    else {
        return;
    };
    let Ok(batch) = arb_batch(&mut u, true) else {
        return;
    };
    for ((name, make), opts) in CODECS.iter().zip(&opts) {
        round_trip(make().as_ref(), name, &batch, opts);
    }
});
