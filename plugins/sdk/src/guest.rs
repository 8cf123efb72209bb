//! Component glue, compiled only for wasm: binds [`Codec`] and [`Policy`] implementations to the
//! WIT worlds. Plugin crates reach it through [`export_codec!`](crate::export_codec) and
//! [`export_policy!`](crate::export_policy), never directly.

use std::marker::PhantomData;

#[allow(unused_imports)]
use crate::{Batch, Codec, Error, OptionSpec, PluginInfo, Policy, Selection};

/// Converts between the SDK's plain types and one world's generated WIT types. Each world gets
/// its own copy of the `types` interface, so this is stamped out once per world.
macro_rules! conversions {
    ($types:path) => {
        use $types as wit;

        impl From<Batch> for wit::Batch {
            fn from(b: Batch) -> wit::Batch {
                wit::Batch {
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
                        .map(|c| wit::Column {
                            name: c.name,
                            values: c.values,
                        })
                        .collect(),
                }
            }
        }

        impl From<wit::Batch> for Batch {
            fn from(b: wit::Batch) -> Batch {
                Batch {
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
                        .map(|c| crate::Column {
                            name: c.name,
                            values: c.values,
                        })
                        .collect(),
                }
            }
        }

        impl From<Error> for wit::Error {
            fn from(e: Error) -> wit::Error {
                match e {
                    Error::InvalidOptions(m) => wit::Error::InvalidOptions(m),
                    Error::CorruptInput(m) => wit::Error::CorruptInput(m),
                    Error::Unsupported(m) => wit::Error::Unsupported(m),
                    Error::Internal(m) => wit::Error::Internal(m),
                }
            }
        }

        impl From<PluginInfo> for wit::PluginInfo {
            fn from(i: PluginInfo) -> wit::PluginInfo {
                wit::PluginInfo {
                    name: i.name,
                    version: i.version,
                    description: i.description,
                    options: i
                        .options
                        .into_iter()
                        .map(|o: OptionSpec| wit::OptionSpec {
                            name: o.name,
                            kind: o.kind,
                            default_value: o.default_value,
                            description: o.description,
                        })
                        .collect(),
                }
            }
        }
    };
}

#[cfg(feature = "codec")]
pub mod codec_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "codec",
        pub_export_macro: true,
        export_macro_name: "__export_codec_world",
        default_bindings_module: "strata_plugin_sdk::guest::codec_world",
    });
}

#[cfg(feature = "codec")]
mod codec_glue {
    use super::*;
    use codec_world::exports::strata::plugin::tier_codec as api;
    conversions!(super::codec_world::strata::plugin::types);

    impl<C: Codec + Default> api::Guest for CodecComponent<C> {
        fn describe() -> api::CodecInfo {
            let i = C::default().describe();
            api::CodecInfo {
                info: i.info.into(),
                extension: i.extension,
                media_type: i.media_type,
                lossless: i.lossless,
                sorts_rows: i.sorts_rows,
                filter_pushdown: i.filter_pushdown,
                extra_columns: i.extra_columns,
            }
        }

        fn encode(data: wit::Batch, opts: wit::Options) -> Result<Vec<u8>, wit::Error> {
            Ok(crate::encode_checked(&C::default(), &data.into(), &opts)?)
        }

        fn decode(bytes: Vec<u8>, coins: Option<Vec<String>>) -> Result<wit::Batch, wit::Error> {
            Ok(crate::decode_checked(&C::default(), &bytes, coins.as_deref())?.into())
        }
    }
}

/// The component type [`export_codec!`](crate::export_codec) exports for codec `C`.
pub struct CodecComponent<C>(PhantomData<C>);

#[cfg(feature = "policy")]
pub mod policy_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "strata_plugin_sdk::guest::policy_world",
    });
}

#[cfg(feature = "policy")]
mod policy_glue {
    use super::*;
    use policy_world::exports::strata::plugin::retention_policy as api;
    conversions!(super::policy_world::strata::plugin::types);

    impl<P: Policy + Default> api::Guest for PolicyComponent<P> {
        fn describe() -> api::PolicyInfo {
            let i = P::default().describe();
            api::PolicyInfo {
                info: i.info.into(),
                rolls_up: i.rolls_up,
            }
        }

        fn check_options(opts: wit::Options) -> Result<(), wit::Error> {
            Ok(crate::check_checked(&P::default(), &opts)?)
        }

        fn bucket_starts(ts: Vec<i64>, opts: wit::Options) -> Result<Vec<i64>, wit::Error> {
            Ok(crate::bucket_starts_checked(&P::default(), &ts, &opts)?)
        }

        fn select(
            data: wit::Batch,
            last_kept: Vec<Option<i64>>,
            opts: wit::Options,
        ) -> Result<api::Selection, wit::Error> {
            let batch: Batch = data.into();
            Ok(
                match crate::select_checked(&P::default(), &batch, &last_kept, &opts)? {
                    Selection::Keep(idx) => api::Selection::Keep(idx),
                    Selection::Rollup(b) => api::Selection::Rollup(b.into()),
                },
            )
        }
    }
}

/// The component type [`export_policy!`](crate::export_policy) exports for policy `P`.
pub struct PolicyComponent<P>(PhantomData<P>);
