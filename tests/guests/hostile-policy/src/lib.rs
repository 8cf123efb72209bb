//! A retention policy written by an attacker. It declares `rolls-up = false` and daily buckets
//! (`bucket-starts` is honest); the option `mode` chooses what `select` returns:
//!
//! | `mode` | `select` returns | what the host must do |
//! |---|---|---|
//! | `honest` | `keep` of every row | move every row |
//! | `undeclared-rollup` | `rollup` of the input batch, though it said it does not roll up | refuse it (an error naming `select`), nothing lost |
//! | `keep-nothing` | `keep([])` | accept it (a policy may keep nothing) but report it; rows younger than the tier's `keep` stay |
//! | `bad-indices` | `keep` with indices out of range and not increasing | refuse it (an error naming `select`), nothing lost |
//! | `out-of-range` | `keep` of row 0 and of one past the last row | the same |
//! | `unsorted-indices` | `keep` of rows 1 then 0 | the same |
//!
//! The component is bound to the WIT world by hand rather than through the SDK's
//! `export_policy!`, so nothing on the guest side (the SDK checks what `select` returns) stands
//! between the attack and the host.

use strata_plugin_sdk::{
    Batch, Error, OptionSpec, Options, PluginInfo, PolicyInfo, Result, Selection,
};

/// Every `mode` the policy takes.
pub const MODES: [&str; 6] = [
    "honest",
    "undeclared-rollup",
    "keep-nothing",
    "bad-indices",
    "out-of-range",
    "unsorted-indices",
];

const DAY_MS: i64 = 86_400_000;

/// What the policy says about itself: it does not roll up.
pub fn describe() -> PolicyInfo {
    PolicyInfo {
        info: PluginInfo {
            name: "hostile-policy".into(),
            version: "0.0.0".into(),
            description: "test guest: a retention policy that breaks its contract on request"
                .into(),
            options: vec![OptionSpec::new(
                "mode",
                &MODES.join("|"),
                "honest",
                "how to misbehave (see the crate's documentation)",
            )],
        },
        rolls_up: false,
    }
}

/// The `mode` option, checked.
fn mode(opts: &[(String, String)]) -> Result<String> {
    let opts = Options::parse(opts, &describe().info.options)?;
    let mode = opts.get("mode").unwrap_or("honest");
    if !MODES.contains(&mode) {
        return Err(Error::InvalidOptions(format!(
            "option `mode`: `{mode}` is not one of {}",
            MODES.join(", ")
        )));
    }
    Ok(mode.to_string())
}

pub fn check_options(opts: &[(String, String)]) -> Result<()> {
    mode(opts).map(|_| ())
}

/// Honest daily buckets (UTC days).
pub fn bucket_starts(ts: &[i64], opts: &[(String, String)]) -> Result<Vec<i64>> {
    mode(opts)?;
    Ok(ts.iter().map(|t| t.div_euclid(DAY_MS) * DAY_MS).collect())
}

/// What the `mode` option says to return.
pub fn select(
    batch: &Batch,
    _last_kept: &[Option<i64>],
    opts: &[(String, String)],
) -> Result<Selection> {
    let n = batch.len() as u32;
    Ok(match mode(opts)?.as_str() {
        "undeclared-rollup" => Selection::Rollup(batch.clone()),
        "keep-nothing" => Selection::Keep(Vec::new()),
        "bad-indices" => Selection::Keep(vec![1, 0, n, n.saturating_add(5), u32::MAX]),
        "out-of-range" => Selection::Keep(vec![0, n]),
        "unsorted-indices" => Selection::Keep(vec![1, 0]),
        _ => Selection::Keep((0..n).collect()),
    })
}

/// The component: the WIT `retention-policy` bound straight to the functions above.
#[cfg(target_arch = "wasm32")]
mod component {
    use strata_plugin_sdk::Selection;
    use strata_plugin_sdk::guest::policy_world::exports::strata::plugin::retention_policy as api;
    use strata_plugin_sdk::guest::policy_world::strata::plugin::types as wit;

    struct HostilePolicy;

    impl api::Guest for HostilePolicy {
        fn describe() -> api::PolicyInfo {
            let i = super::describe();
            api::PolicyInfo {
                info: i.info.into(),
                rolls_up: i.rolls_up,
            }
        }

        fn check_options(opts: wit::Options) -> Result<(), wit::Error> {
            Ok(super::check_options(&opts)?)
        }

        fn bucket_starts(ts: Vec<i64>, opts: wit::Options) -> Result<Vec<i64>, wit::Error> {
            Ok(super::bucket_starts(&ts, &opts)?)
        }

        fn select(
            data: wit::Batch,
            last_kept: Vec<Option<i64>>,
            opts: wit::Options,
        ) -> Result<api::Selection, wit::Error> {
            Ok(match super::select(&data.into(), &last_kept, &opts)? {
                Selection::Keep(k) => api::Selection::Keep(k),
                Selection::Rollup(b) => api::Selection::Rollup(b.into()),
            })
        }
    }

    strata_plugin_sdk::guest::policy_world::__export_policy_world!(
        HostilePolicy with_types_in strata_plugin_sdk::guest::policy_world
    );
}
