//! Host bindings: one `bindgen!` per WIT world, and conversions between the generated types and
//! the SDK's plain [`Batch`](strata_plugin_sdk::Batch) types the rest of strata uses.

use strata_plugin_sdk as sdk;

pub mod codec {
    wasmtime::component::bindgen!({ path: "../wit", world: "codec", ownership: Borrowing { duplicate_if_necessary: true } });
}

pub mod policy {
    wasmtime::component::bindgen!({ path: "../wit", world: "policy", ownership: Borrowing { duplicate_if_necessary: true } });
}

/// Conversions for one world's copy of the `types` interface.
macro_rules! conversions {
    ($types:path) => {
        use $types as wit;

        /// Lends `b` to a call: the generated parameter type borrows every column, so the
        /// only copy of the rows is the one into the guest's memory.
        pub fn with_wit_batch<R>(b: &sdk::Batch, f: impl FnOnce(wit::BatchParam<'_>) -> R) -> R {
            let coins: Vec<&str> = b.coins.iter().map(String::as_str).collect();
            let extra: Vec<wit::ColumnParam<'_>> = b
                .extra
                .iter()
                .map(|c| wit::ColumnParam {
                    name: &c.name,
                    values: &c.values,
                })
                .collect();
            f(wit::BatchParam {
                coins: &coins,
                coin_index: &b.coin_index,
                ts: &b.ts,
                price: &b.price,
                market_cap: &b.market_cap,
                volume: &b.volume,
                supply: &b.supply,
                rank: &b.rank,
                extra: &extra,
            })
        }

        pub fn batch_from_wit(b: wit::BatchResult) -> sdk::Batch {
            sdk::Batch {
                coins: b.coins,
                coin_index: b.coin_index,
                ts: b.ts,
                price: b.price,
                market_cap: b.market_cap,
                volume: b.volume,
                supply: b.supply,
                rank: b.rank,
                extra: b
                    .extra
                    .into_iter()
                    .map(|c: wit::ColumnResult| sdk::Column {
                        name: c.name,
                        values: c.values,
                    })
                    .collect(),
            }
        }

        pub fn error_from_wit(e: wit::Error) -> sdk::Error {
            match e {
                wit::Error::InvalidOptions(m) => {
                    sdk::Error::InvalidOptions(crate::plugin::clean_text(&m))
                }
                wit::Error::CorruptInput(m) => {
                    sdk::Error::CorruptInput(crate::plugin::clean_text(&m))
                }
                wit::Error::Unsupported(m) => {
                    sdk::Error::Unsupported(crate::plugin::clean_text(&m))
                }
                wit::Error::Internal(m) => sdk::Error::Internal(crate::plugin::clean_text(&m)),
            }
        }

        pub fn info_from_wit(i: wit::PluginInfo) -> sdk::PluginInfo {
            sdk::PluginInfo {
                name: i.name,
                version: i.version,
                description: crate::plugin::clean_text(&i.description),
                options: i
                    .options
                    .into_iter()
                    .map(|o| sdk::OptionSpec {
                        name: crate::plugin::clean_text(&o.name),
                        kind: crate::plugin::clean_text(&o.kind),
                        default_value: crate::plugin::clean_text(&o.default_value),
                        description: crate::plugin::clean_text(&o.description),
                    })
                    .collect(),
            }
        }
    };
}

pub mod codec_conv {
    use super::*;
    conversions!(super::codec::strata::plugin::types);
}

pub mod policy_conv {
    use super::*;
    conversions!(super::policy::strata::plugin::types);
}
