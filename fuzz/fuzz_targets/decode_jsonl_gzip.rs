//! Fuzzes the `jsonl-gzip` codec's `decode` (its native twin): arbitrary bytes must decode to a
//! valid, usable batch or fail with an error; see `strata_fuzz::fuzz_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::fuzz_decode(strata_fuzz::codec("jsonl-gzip").as_ref(), data);
});
