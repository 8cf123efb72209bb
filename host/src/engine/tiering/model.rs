//! The tier model: a policy's tiers as the engine runs them ([`TierDef`]), checked and with
//! their plugins loaded ([`Plan`], loaded once per `strata tier`).

use std::rc::Rc;

use anyhow::{Context, Result, bail};

use crate::plugin::{CodecPlugin, PluginRef, PolicyPlugin, Runtime};

/// A plugin's options as a policy file gives them (key, value as text); the SDK parses them into
/// its `Options` inside the plugin.
pub type PluginOptions = Vec<(String, String)>;

/// One tier as the engine needs it (the fields of a policy file's tier).
#[derive(Clone, Debug)]
pub struct TierDef {
    pub name: String,
    /// Rows older than `now - keep` (ms) move to the next tier; `None` = forever.
    pub keep: Option<i64>,
    /// `None` only for the hot tier.
    pub retention: Option<(PluginRef, PluginOptions)>,
    /// `None` only for the hot tier.
    pub codec: Option<(PluginRef, PluginOptions)>,
    /// Segment time window, ms.
    pub window: i64,
    /// Coin buckets per window.
    pub coin_buckets: u32,
    /// Where its segments go: `""` for the data directory, else a bucket URL.
    pub store: String,
    /// How its small segments are merged (see [`compact`](super::compact)).
    pub compact: super::Compaction,
}

/// A tier with its plugins loaded.
pub struct PlanTier {
    pub def: TierDef,
    pub retention: Option<(PolicyPlugin, PluginOptions)>,
    pub codec: Option<(Rc<CodecPlugin>, PluginOptions)>,
}

impl PlanTier {
    /// The codec and its options (a tier after hot always has one: see [`Plan::load`]).
    pub(super) fn codec_ref(&self) -> (&CodecPlugin, &PluginOptions) {
        let (codec, opts) = self.codec.as_ref().expect("checked by Plan::load");
        (codec, opts)
    }
}

/// Every tier of a policy with its plugins loaded, hottest first.
pub struct Plan {
    pub tiers: Vec<PlanTier>,
}

impl Plan {
    /// Loads every tier's plugins and checks the plan's shape by the policy file's rules
    /// ([`crate::policy::check_shape`]): the first tier is the hot tier (no plugins), every
    /// other tier has both, keeps grow colder, only the last keeps forever.
    pub fn load(rt: &Runtime, defs: &[TierDef]) -> Result<Plan> {
        Plan::load_with(rt, defs, &|i, what| {
            format!("tier `{}`: {what}", defs[i].name)
        })
    }

    /// The policy's tiers with every plugin loaded once, checked as [`Plan::load`] does and
    /// more: each codec encodes nothing with its options (so it validates them in its own
    /// terms), and a tier that rolls up has a codec that stores extra columns. Errors name the
    /// policy file and line of the plugin at fault. `strata tier`, `plan` and `demo` all load
    /// a policy through here.
    pub fn from_policy(rt: &Runtime, policy: &crate::policy::Policy) -> Result<Plan> {
        let ctx = |i: usize, what: &str| {
            let t = &policy.tiers[i];
            let spec = if what == "codec" {
                &t.codec
            } else {
                &t.retention
            };
            match spec {
                Some(s) => format!("{}: tier `{}` {what} `{}`", s.location, t.name, s.plugin),
                None => format!("tier `{}`: {what}", t.name),
            }
        };
        let plan = Plan::load_with(rt, &tiers_from_policy(policy), &ctx)?;
        for (i, t) in plan.tiers.iter().enumerate() {
            let rolls_up = t.retention.as_ref().is_some_and(|(p, _)| p.info.rolls_up);
            if let Some((codec, opts)) = &t.codec {
                codec
                    .encode(&strata_plugin_sdk::Batch::default(), opts)
                    .with_context(|| ctx(i, "codec"))?;
                if rolls_up && !codec.info.extra_columns {
                    bail!(
                        "{}: rolls up, which adds columns (open, high, low, count), but the codec \
                         does not store extra columns; pick one that does (e.g. jsonl-gzip)",
                        ctx(i, "codec")
                    );
                }
            }
        }
        Ok(plan)
    }

    /// [`Plan::load`], with `ctx(tier index, "retention" | "codec")` naming where a plugin
    /// was asked for in errors.
    fn load_with(
        rt: &Runtime,
        defs: &[TierDef],
        ctx: &dyn Fn(usize, &str) -> String,
    ) -> Result<Plan> {
        if defs.len() < 2 {
            bail!("a policy needs the hot tier and at least one more");
        }
        let shapes: Vec<crate::policy::Shape<'_>> = defs
            .iter()
            .map(|d| crate::policy::Shape {
                name: &d.name,
                keep: d.keep,
                retention: d.retention.is_some(),
                codec: d.codec.is_some(),
                segment: false,
            })
            .collect();
        if let Err(e) = crate::policy::check_shape(&shapes) {
            bail!("{}", e.message);
        }
        let mut tiers = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            if i > 0 && (d.window <= 0 || d.coin_buckets == 0) {
                bail!(
                    "tier `{}`: segment window and coin buckets must be positive",
                    d.name
                );
            }
            let retention = match &d.retention {
                Some((r, o)) => {
                    let p = rt.policy(r).with_context(|| ctx(i, "retention"))?;
                    p.check_options(o)
                        .with_context(|| format!("{}: options", ctx(i, "retention")))?;
                    Some((p, o.clone()))
                }
                None => None,
            };
            let codec = match &d.codec {
                Some((r, o)) => Some((
                    Rc::new(rt.codec(r).with_context(|| ctx(i, "codec"))?),
                    o.clone(),
                )),
                None => None,
            };
            tiers.push(PlanTier {
                def: d.clone(),
                retention,
                codec,
            });
        }
        Ok(Plan { tiers })
    }
}

pub use crate::policy::DAY_MS;

/// The tier definitions of a policy file (see [`crate::policy`]).
pub fn tiers_from_policy(policy: &crate::policy::Policy) -> Vec<TierDef> {
    let spec = |s: &Option<crate::policy::PluginSpec>| {
        s.as_ref().map(|s| (s.plugin.clone(), s.options.clone()))
    };
    policy
        .tiers
        .iter()
        .map(|t| TierDef {
            name: t.name.clone(),
            keep: t.keep,
            retention: spec(&t.retention),
            codec: spec(&t.codec),
            window: t.segment.window,
            coin_buckets: t.segment.coin_buckets,
            store: t.store.clone().unwrap_or_default(),
            compact: super::Compaction {
                rows: t.segment.compact_rows,
                span: t.segment.compact_span,
            },
        })
        .collect()
}
