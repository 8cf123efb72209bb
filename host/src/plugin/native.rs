//! Built-in plugins compiled natively into the host, to measure what running in wasm costs
//! (the "plugin tax") and to cross-check wasm results. Never used to store data: tiers always
//! go through the sandboxed components, so the bytes on disk come from exactly the code a
//! policy names.

use strata_plugin_sdk as sdk;

/// A built-in plugin's native twin.
pub enum Native {
    Codec(fn() -> Box<dyn sdk::Codec>),
    Policy(fn() -> Box<dyn sdk::Policy>),
}
