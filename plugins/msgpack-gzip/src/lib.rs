//! `msgpack-gzip`: the batch as one columnar MessagePack map, gzip-compressed.
//!
//! The layout (after `gunzip`) is a single map with string keys, in this order:
//!
//! | key          | value                                                          |
//! |--------------|----------------------------------------------------------------|
//! | `version`    | `1`                                                            |
//! | `coins`      | array of strings: the coin dictionary                          |
//! | `coin`       | array of uints, one per row: index into `coins`                |
//! | `ts`         | array of ints, one per row: ms since the Unix epoch, UTC       |
//! | `price`, `market_cap`, `volume`, `supply` | arrays of float 64, one per row; NaN = unknown |
//! | `rank`       | array of uints, one per row; 0 = unknown                       |
//!
//! Floats are always written as MessagePack float 64 (never narrowed to float 32 or ints), so
//! every bit survives, NaN, infinities and `-0.0` included. Integers use MessagePack's shortest
//! form. Rows keep their input order. In Python:
//! `m = msgpack.unpackb(gzip.decompress(data)); coin_of_row = [m["coins"][i] for i in m["coin"]]`.
//! Columns of like values side by side compress better under gzip than rows, and decode faster.

use serde::{Deserialize, Serialize};
use strata_plugin_sdk::{Batch, Codec, CodecInfo, Error, Options, PluginInfo, Result, gzip};

/// The layout version this codec writes and reads.
const VERSION: u32 = 1;

#[derive(Default)]
pub struct MsgpackGzip;

/// The map as written: borrowed columns, serialised with field names as keys.
#[derive(Serialize)]
struct ColumnsOut<'a> {
    version: u32,
    coins: &'a [String],
    coin: &'a [u32],
    ts: &'a [i64],
    price: &'a [f64],
    market_cap: &'a [f64],
    volume: &'a [f64],
    supply: &'a [f64],
    rank: &'a [u32],
}

/// The map as read. Unknown keys are ignored, for forward compatibility.
#[derive(Deserialize)]
struct ColumnsIn {
    version: u32,
    coins: Vec<String>,
    coin: Vec<u32>,
    ts: Vec<i64>,
    price: Vec<f64>,
    market_cap: Vec<f64>,
    volume: Vec<f64>,
    supply: Vec<f64>,
    rank: Vec<u32>,
}

impl Codec for MsgpackGzip {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "msgpack-gzip".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "a columnar MessagePack map (float 64 columns), gzip-compressed"
                    .into(),
                options: vec![gzip::level_option()],
            },
            extension: "msgpack.gz".into(),
            media_type: "application/gzip".into(),
            lossless: true,
            sorts_rows: false,
            filter_pushdown: false,
            extra_columns: false,
        }
    }

    fn encode(&self, batch: &Batch, opts: &Options) -> Result<Vec<u8>> {
        let level = gzip::level(opts)?;
        let columns = ColumnsOut {
            version: VERSION,
            coins: &batch.coins,
            coin: &batch.coin_index,
            ts: &batch.ts,
            price: &batch.price,
            market_cap: &batch.market_cap,
            volume: &batch.volume,
            supply: &batch.supply,
            rank: &batch.rank,
        };
        let mut packed = Vec::with_capacity(batch.len() * 48 + 64);
        rmp_serde::encode::write_named(&mut packed, &columns)
            .map_err(|e| Error::Internal(format!("msgpack: {e}")))?;
        gzip::compress(&packed, level)
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        let packed = gzip::decompress(bytes)?;
        let mut rest = &packed[..];
        let c: ColumnsIn =
            rmp_serde::from_read(&mut rest).map_err(|e| Error::corrupt(format!("msgpack: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::corrupt(format!(
                "msgpack: {} bytes after the map",
                rest.len()
            )));
        }
        if c.version != VERSION {
            return Err(Error::corrupt(format!(
                "msgpack: layout version {} (this codec reads {VERSION})",
                c.version
            )));
        }
        let batch = Batch {
            coins: c.coins,
            coin_index: c.coin,
            ts: c.ts,
            price: c.price,
            market_cap: c.market_cap,
            volume: c.volume,
            supply: c.supply,
            rank: c.rank,
            extra: Vec::new(),
        };
        // Check column lengths and indices before anything indexes by them.
        batch.validate()?;
        Ok(match coins {
            Some(wanted) => batch.filter_coins(wanted),
            None => batch,
        })
    }
}

strata_plugin_sdk::export_codec!(MsgpackGzip);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_plugin_sdk::{decode_checked, encode_checked, testing};

    use super::*;

    fn one_row() -> Batch {
        let mut b = Batch::default();
        b.coins.push("bitcoin".into());
        b.push(0, 1_367_107_200_000, 1.5, -0.0, 0.0, f64::NAN, 1);
        b
    }

    #[test]
    fn layout_is_the_documented_columnar_map() {
        let bytes = encode_checked(&MsgpackGzip, &one_row(), &[]).unwrap();
        let packed = gzip::decompress(&bytes).unwrap();
        let value = rmpv::decode::read_value(&mut &packed[..]).unwrap();
        let map = value.as_map().expect("a map");
        let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "version",
                "coins",
                "coin",
                "ts",
                "price",
                "market_cap",
                "volume",
                "supply",
                "rank"
            ]
        );
        let col = |i: usize| map[i].1.as_array().unwrap()[0].clone();
        assert_eq!(map[0].1.as_u64(), Some(1));
        assert_eq!(col(1).as_str(), Some("bitcoin"));
        assert_eq!(col(3).as_i64(), Some(1_367_107_200_000));
        // Floats stay float 64, even when they would fit smaller types.
        assert!(matches!(col(4), rmpv::Value::F64(v) if v == 1.5));
        assert!(matches!(col(5), rmpv::Value::F64(v) if v.to_bits() == (-0.0f64).to_bits()));
        assert!(matches!(col(6), rmpv::Value::F64(v) if v.to_bits() == 0));
        assert!(matches!(col(7), rmpv::Value::F64(v) if v.is_nan()));
        assert_eq!(col(8).as_u64(), Some(1));
    }

    #[test]
    fn edge_cases_round_trip() {
        for (_, batch) in testing::edge_cases() {
            for level in ["1", "6"] {
                testing::assert_round_trip(&MsgpackGzip, &batch, &[("level", level)]);
            }
        }
    }

    #[test]
    fn damaged_input_is_an_error_or_a_subset() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_rejects_damage(&MsgpackGzip, &batch, &[]);
        }
    }

    #[test]
    fn inconsistent_columns_are_corrupt_input() {
        let b = one_row();
        let bad = ColumnsOut {
            version: VERSION,
            coins: &b.coins,
            coin: &[0, 0],
            ts: &b.ts,
            price: &b.price,
            market_cap: &b.market_cap,
            volume: &b.volume,
            supply: &b.supply,
            rank: &b.rank,
        };
        let packed = rmp_serde::to_vec_named(&bad).unwrap();
        let err = decode_checked(&MsgpackGzip, &gzip::compress(&packed, 1).unwrap(), None);
        assert!(matches!(err, Err(Error::CorruptInput(m)) if m.contains("coin-index")));
        let future = ColumnsOut {
            version: 2,
            coin: &b.coin_index,
            ..bad
        };
        let packed = rmp_serde::to_vec_named(&future).unwrap();
        let err = decode_checked(&MsgpackGzip, &gzip::compress(&packed, 1).unwrap(), None);
        assert!(matches!(err, Err(Error::CorruptInput(m)) if m.contains("version 2")));
    }

    #[test]
    fn coin_filter_keeps_only_wanted_rows() {
        let (_, batch) = testing::edge_cases().swap_remove(5);
        let bytes = encode_checked(&MsgpackGzip, &batch, &[]).unwrap();
        let wanted = ["c".to_string()];
        let got = decode_checked(&MsgpackGzip, &bytes, Some(&wanted)).unwrap();
        assert!(got.bit_eq(&batch.filter_coins(&wanted)));
        assert!(!got.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_any_batch(batch in testing::arb_batch(200)) {
            testing::assert_round_trip(&MsgpackGzip, &batch, &[("level", "1")]);
        }
    }
}
