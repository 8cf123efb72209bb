//! Fuzzes the policy TOML loader (`strata::policy::parse`): any text must parse into a policy
//! or fail with an error naming where; never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = strata::policy::parse(text, "fuzz.toml") {
        assert!(!policy.tiers.is_empty(), "a parsed policy has no tiers");
        for t in &policy.tiers {
            assert!(policy.tier(&t.name).is_some());
        }
    }
});
