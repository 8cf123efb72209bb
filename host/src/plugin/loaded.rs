//! Loaded plugins: a [`CodecPlugin`] or [`PolicyPlugin`] is a component the [`Runtime`] has
//! compiled and checked, with its identity ([`PluginMeta`]) and what it declared; each method
//! is one sandboxed call, with the host's checks of what the plugin returns.

use super::*;

/// Identity of a loaded plugin.
#[derive(Clone)]
pub struct PluginMeta {
    /// The name the plugin gives itself (`describe`).
    pub name: String,
    /// Where it was loaded from: `built-in \`name\`` or a path.
    pub origin: String,
    pub sha256: String,
    pub size: usize,
    pub kind: PluginKind,
    /// The component's bytes.
    pub(super) component: Arc<Cow<'static, [u8]>>,
}

impl fmt::Debug for PluginMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginMeta")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PluginMeta {
    /// The component's bytes, exactly as loaded (their sha256 is [`sha256`](Self::sha256)).
    pub fn component(&self) -> &[u8] {
        &self.component
    }
}

/// A loaded plugin of either kind.
pub enum Plugin {
    Codec(CodecPlugin),
    Policy(PolicyPlugin),
}

impl Plugin {
    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        self.meta().component()
    }

    pub fn meta(&self) -> &PluginMeta {
        match self {
            Plugin::Codec(c) => &c.meta,
            Plugin::Policy(p) => &p.meta,
        }
    }

    /// Name, version, description and options.
    pub fn info(&self) -> &sdk::PluginInfo {
        match self {
            Plugin::Codec(c) => &c.info.info,
            Plugin::Policy(p) => &p.info.info,
        }
    }
}

/// A loaded codec component.
pub struct CodecPlugin {
    pub(super) runtime: Runtime,
    pub meta: PluginMeta,
    pub info: sdk::CodecInfo,
    pub(super) pre: codec::CodecPre<HostState>,
}

impl CodecPlugin {
    pub(super) fn call_describe(&self) -> Result<sdk::CodecInfo, CallError> {
        let cap = self.runtime.limits().output_floor;
        let i = self.runtime.call(&self.meta, "describe", cap, |store| {
            let c = self.pre.instantiate(&mut *store)?;
            c.strata_plugin_tier_codec().call_describe(&mut *store)
        })?;
        Ok(sdk::CodecInfo {
            info: codec_conv::info_from_wit(i.info),
            extension: i.extension,
            media_type: clean_text(&i.media_type),
            lossless: i.lossless,
            sorts_rows: i.sorts_rows,
            filter_pushdown: i.filter_pushdown,
            extra_columns: i.extra_columns,
        })
    }

    /// Whether `decode` is handed a coin filter: only when the codec says it uses one and the
    /// component is byte for byte one of this binary's built-ins.
    pub fn filter_is_trusted(&self) -> bool {
        self.info.filter_pushdown && builtin_sha256s().contains(self.meta.sha256.as_str())
    }

    fn plugin_error(&self, function: &'static str, e: sdk::Error) -> CallError {
        CallError {
            plugin: self.meta.name.clone(),
            function,
            kind: CallErrorKind::Plugin(e),
        }
    }

    /// Encodes one segment. The output may be at most [`Limits::output_ratio`] times the
    /// batch's raw bytes (with the floor and ceiling of [`Limits`]).
    pub fn encode(
        &self,
        batch: &sdk::Batch,
        opts: &[(String, String)],
    ) -> Result<Vec<u8>, CallError> {
        let opts = str_pairs(opts);
        let cap = self
            .runtime
            .limits()
            .output_cap(Some(batch_raw_bytes(batch)));
        let out = codec_conv::with_wit_batch(batch, |data| {
            self.runtime.call(&self.meta, "encode", cap, |store| {
                let c = self.pre.instantiate(&mut *store)?;
                c.strata_plugin_tier_codec()
                    .call_encode(&mut *store, data, &opts)
            })
        })?;
        out.map_err(|e| self.plugin_error("encode", codec_conv::error_from_wit(e)))
    }

    /// Decodes one segment; the result is checked, since the plugin is not trusted. Its output
    /// is capped by [`Limits::output_bytes`] only: see [`decode_expecting`](Self::decode_expecting).
    pub fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<sdk::Batch, CallError> {
        self.decode_expecting(bytes, coins, None)
    }

    /// Decodes a segment expected to hold `expected_raw` raw bytes of rows (see
    /// [`raw_bytes`]; from the catalog), so the output is capped relative to that.
    pub fn decode_expecting(
        &self,
        bytes: &[u8],
        coins: Option<&[String]>,
        expected_raw: Option<usize>,
    ) -> Result<sdk::Batch, CallError> {
        // A filtered decode is never compared with the rows a segment was made from (the check
        // before delete decodes everything), so only a codec shipped in this binary, whose
        // filtered decodes are fuzzed against its whole ones, is given the filter. Any other
        // codec decodes the whole segment, and the caller keeps the rows it asked for.
        let coins = coins.filter(|_| self.filter_is_trusted());
        let coins: Option<Vec<&str>> = coins.map(|c| c.iter().map(String::as_str).collect());
        let cap = self.runtime.limits().output_cap(expected_raw);
        let out = self.runtime.call(&self.meta, "decode", cap, |store| {
            let c = self.pre.instantiate(&mut *store)?;
            c.strata_plugin_tier_codec()
                .call_decode(&mut *store, bytes, coins.as_deref())
        })?;
        let batch = codec_conv::batch_from_wit(
            out.map_err(|e| self.plugin_error("decode", codec_conv::error_from_wit(e)))?,
        );
        batch.validate().map_err(|e| {
            self.plugin_error(
                "decode",
                sdk::Error::Internal(format!("returned an invalid batch: {e}")),
            )
        })?;
        Ok(batch)
    }
}

/// A loaded retention-policy component.
pub struct PolicyPlugin {
    pub(super) runtime: Runtime,
    pub meta: PluginMeta,
    pub info: sdk::PolicyInfo,
    pub(super) pre: policy::PolicyPre<HostState>,
}

impl PolicyPlugin {
    pub(super) fn call_describe(&self) -> Result<sdk::PolicyInfo, CallError> {
        let cap = self.runtime.limits().output_floor;
        let i = self.runtime.call(&self.meta, "describe", cap, |store| {
            let p = self.pre.instantiate(&mut *store)?;
            p.strata_plugin_retention_policy()
                .call_describe(&mut *store)
        })?;
        Ok(sdk::PolicyInfo {
            info: policy_conv::info_from_wit(i.info),
            rolls_up: i.rolls_up,
        })
    }

    fn plugin_error(&self, function: &'static str, e: sdk::Error) -> CallError {
        CallError {
            plugin: self.meta.name.clone(),
            function,
            kind: CallErrorKind::Plugin(e),
        }
    }

    /// A broken contract: what the plugin returned is refused.
    fn refused(&self, function: &'static str, why: String) -> CallError {
        self.plugin_error(function, sdk::Error::Internal(why))
    }

    /// Validates options before any data moves.
    pub fn check_options(&self, opts: &[(String, String)]) -> Result<(), CallError> {
        let opts = str_pairs(opts);
        let cap = self.runtime.limits().output_floor;
        let out = self
            .runtime
            .call(&self.meta, "check-options", cap, |store| {
                let p = self.pre.instantiate(&mut *store)?;
                p.strata_plugin_retention_policy()
                    .call_check_options(&mut *store, &opts)
            })?;
        out.map_err(|e| self.plugin_error("check-options", policy_conv::error_from_wit(e)))
    }

    /// Bucket starts for each timestamp, checked: one per timestamp, each at or before it,
    /// and equal timestamps with equal starts.
    pub fn bucket_starts(
        &self,
        ts: &[i64],
        opts: &[(String, String)],
    ) -> Result<Vec<i64>, CallError> {
        let opts = str_pairs(opts);
        let cap = self.runtime.limits().output_cap(Some(ts.len() * 8));
        let out = self
            .runtime
            .call(&self.meta, "bucket-starts", cap, |store| {
                let p = self.pre.instantiate(&mut *store)?;
                p.strata_plugin_retention_policy()
                    .call_bucket_starts(&mut *store, ts, &opts)
            })?;
        let starts =
            out.map_err(|e| self.plugin_error("bucket-starts", policy_conv::error_from_wit(e)))?;
        if starts.len() != ts.len() {
            return Err(self.refused(
                "bucket-starts",
                format!(
                    "returned {} starts for {} timestamps",
                    starts.len(),
                    ts.len()
                ),
            ));
        }
        if let Some(i) = (0..ts.len()).find(|&i| starts[i] > ts[i]) {
            return Err(self.refused(
                "bucket-starts",
                format!(
                    "returned start {} for timestamp {} (index {i}): a bucket cannot start after \
                     its timestamp",
                    starts[i], ts[i]
                ),
            ));
        }
        let mut first: HashMap<i64, (usize, i64)> = HashMap::new();
        for (i, (&t, &s)) in ts.iter().zip(&starts).enumerate() {
            let (j, s0) = *first.entry(t).or_insert((i, s));
            if s0 != s {
                return Err(self.refused(
                    "bucket-starts",
                    format!(
                        "returned different starts for equal timestamps {t} (index {j}: {s0}, \
                         index {i}: {s})"
                    ),
                ));
            }
        }
        Ok(starts)
    }

    /// The survivors of `batch` (sorted by (coin, ts)), checked against the contract: kept
    /// indices strictly increasing and in range; a rollup only from a policy that declares
    /// `rolls-up`, valid, sorted, holding only the input's coins, each row at a bucket start
    /// within its coin's span in the input (from the bucket of its first row to its last row).
    pub fn select(
        &self,
        batch: &sdk::Batch,
        last_kept: &[Option<i64>],
        opts: &[(String, String)],
    ) -> Result<sdk::Selection, CallError> {
        let sopts = str_pairs(opts);
        let cap = self
            .runtime
            .limits()
            .output_cap(Some(batch_raw_bytes(batch)));
        let out = policy_conv::with_wit_batch(batch, |data| {
            self.runtime.call(&self.meta, "select", cap, |store| {
                let p = self.pre.instantiate(&mut *store)?;
                p.strata_plugin_retention_policy()
                    .call_select(&mut *store, data, last_kept, &sopts)
            })
        })?;
        let selection =
            match out.map_err(|e| self.plugin_error("select", policy_conv::error_from_wit(e)))? {
                policy::exports::strata::plugin::retention_policy::Selection::Keep(k) => {
                    sdk::Selection::Keep(k)
                }
                policy::exports::strata::plugin::retention_policy::Selection::Rollup(b) => {
                    sdk::Selection::Rollup(policy_conv::batch_from_wit(b))
                }
            };
        sdk::verify_selection(batch, &selection).map_err(|e| self.plugin_error("select", e))?;
        if let sdk::Selection::Rollup(r) = &selection {
            self.check_rollup(batch, r, opts)?;
        }
        Ok(selection)
    }

    fn check_rollup(
        &self,
        input: &sdk::Batch,
        rollup: &sdk::Batch,
        opts: &[(String, String)],
    ) -> Result<(), CallError> {
        if !self.info.rolls_up {
            return Err(self.refused(
                "select",
                "returned a rollup, but its `describe` says it does not roll up (rolls-up = false)"
                    .into(),
            ));
        }
        if rollup.is_empty() {
            return Ok(());
        }
        // Each input coin's span: (first ts, last ts).
        let mut span: HashMap<&str, (i64, i64)> = HashMap::new();
        for r in 0..input.len() {
            let c = input.coins[input.coin_index[r] as usize].as_str();
            let e = span.entry(c).or_insert((input.ts[r], input.ts[r]));
            e.0 = e.0.min(input.ts[r]);
            e.1 = e.1.max(input.ts[r]);
        }
        let firsts: Vec<i64> = span.values().map(|s| s.0).collect();
        let first_starts: HashMap<i64, i64> = firsts
            .iter()
            .copied()
            .zip(self.bucket_starts(&firsts, opts)?)
            .collect();
        let starts = self.bucket_starts(&rollup.ts, opts)?;
        for (r, &start) in starts.iter().enumerate().take(rollup.len()) {
            let coin = rollup.coins[rollup.coin_index[r] as usize].as_str();
            let ts = rollup.ts[r];
            let Some(&(lo, hi)) = span.get(coin) else {
                return Err(self.refused(
                    "select",
                    format!(
                        "rollup row {r} is of coin `{}`, which is not in its input",
                        clean_text(coin)
                    ),
                ));
            };
            if start != ts {
                return Err(self.refused(
                    "select",
                    format!(
                        "rollup row {r} (coin `{coin}`) is dated {ts}, not at a bucket start (its \
                         bucket starts at {start})"
                    ),
                ));
            }
            if ts < first_starts[&lo] || ts > hi {
                return Err(self.refused(
                    "select",
                    format!(
                        "rollup row {r} (coin `{coin}`) is dated {ts}, outside the coin's input \
                         ({lo}..={hi})"
                    ),
                ));
            }
        }
        Ok(())
    }
}
