//! `protobuf`: each segment is one `strata.v1.Batch` Protocol Buffers message, the schema of
//! record being `plugins/protobuf/strata.proto` (shipped beside this crate). The message is
//! columnar with packed repeated fields, so a batch costs about 5 + 8×4 + 2 bytes a row before
//! any compression, encodes and decodes at memory speed, and any protobuf tool reads it:
//! `protoc --decode=strata.v1.Batch strata.proto < segment.pb`.
//!
//! The structs are derived by hand with `prost` (prost-build needs `protoc`); the tests compile
//! `strata.proto` with `protox` and decode this codec's output through it, so the two cannot
//! drift apart unnoticed.

use prost::Message;
use strata_plugin_sdk::{Batch, Codec, CodecInfo, Error, Options, PluginInfo, Result};

/// The layout version this codec writes and reads (`Batch.version` in strata.proto).
const VERSION: u32 = 1;

/// `strata.v1.Batch`; field numbers and types as in strata.proto.
#[derive(Clone, PartialEq, Message)]
pub struct BatchMessage {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, repeated, tag = "2")]
    pub coins: Vec<String>,
    #[prost(uint32, repeated, packed = "true", tag = "3")]
    pub coin_index: Vec<u32>,
    #[prost(sint64, repeated, packed = "true", tag = "4")]
    pub ts: Vec<i64>,
    #[prost(double, repeated, packed = "true", tag = "5")]
    pub price: Vec<f64>,
    #[prost(double, repeated, packed = "true", tag = "6")]
    pub market_cap: Vec<f64>,
    #[prost(double, repeated, packed = "true", tag = "7")]
    pub volume: Vec<f64>,
    #[prost(double, repeated, packed = "true", tag = "8")]
    pub supply: Vec<f64>,
    #[prost(uint32, repeated, packed = "true", tag = "9")]
    pub rank: Vec<u32>,
}

#[derive(Default)]
pub struct Protobuf;

impl Codec for Protobuf {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "protobuf".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "one columnar protobuf message (strata.v1.Batch in strata.proto); \
                              readable with protoc --decode"
                    .into(),
                options: vec![],
            },
            extension: "pb".into(),
            media_type: "application/x-protobuf".into(),
            lossless: true,
            sorts_rows: false,
            filter_pushdown: false,
            extra_columns: false,
        }
    }

    fn encode(&self, batch: &Batch, _opts: &Options) -> Result<Vec<u8>> {
        // prost encodes from owned structs; copying the columns costs far less than encoding.
        let msg = BatchMessage {
            version: VERSION,
            coins: batch.coins.clone(),
            coin_index: batch.coin_index.clone(),
            ts: batch.ts.clone(),
            price: batch.price.clone(),
            market_cap: batch.market_cap.clone(),
            volume: batch.volume.clone(),
            supply: batch.supply.clone(),
            rank: batch.rank.clone(),
        };
        Ok(msg.encode_to_vec())
    }

    fn decode(&self, bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
        let msg =
            BatchMessage::decode(bytes).map_err(|e| Error::corrupt(format!("protobuf: {e}")))?;
        if msg.version != VERSION {
            return Err(Error::corrupt(format!(
                "protobuf: strata.v1.Batch version {} (this codec reads {VERSION}); \
                 is this a strata protobuf segment?",
                msg.version
            )));
        }
        let batch = Batch {
            coins: msg.coins,
            coin_index: msg.coin_index,
            ts: msg.ts,
            price: msg.price,
            market_cap: msg.market_cap,
            volume: msg.volume,
            supply: msg.supply,
            rank: msg.rank,
            extra: Vec::new(),
        };
        // Column lengths and coin indices are checked before anything indexes by them.
        batch.validate()?;
        Ok(match coins {
            Some(wanted) => batch.filter_coins(wanted),
            None => batch,
        })
    }
}

strata_plugin_sdk::export_codec!(Protobuf);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
    use strata_plugin_sdk::{decode_checked, encode_checked, testing};

    use super::*;

    /// `strata.v1.Batch` as compiled from the shipped strata.proto.
    fn schema() -> MessageDescriptor {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"));
        let files = protox::compile(["strata.proto"], [dir]).expect("strata.proto compiles");
        let pool = DescriptorPool::from_file_descriptor_set(files).unwrap();
        pool.get_message_by_name("strata.v1.Batch").unwrap()
    }

    #[test]
    fn schema_fields_match_the_structs() {
        let desc = schema();
        let expect = [
            (1, "version", Kind::Uint32, false),
            (2, "coins", Kind::String, true),
            (3, "coin_index", Kind::Uint32, true),
            (4, "ts", Kind::Sint64, true),
            (5, "price", Kind::Double, true),
            (6, "market_cap", Kind::Double, true),
            (7, "volume", Kind::Double, true),
            (8, "supply", Kind::Double, true),
            (9, "rank", Kind::Uint32, true),
        ];
        assert_eq!(desc.fields().count(), expect.len());
        for (number, name, kind, list) in expect {
            let f = desc.get_field(number).unwrap();
            assert_eq!(
                (f.name(), f.kind(), f.is_list()),
                (name, kind.clone(), list)
            );
            assert_eq!(f.is_packed(), list && kind != Kind::String, "{name}");
        }
    }

    /// The codec's bytes, decoded through strata.proto, hold the batch's values.
    #[test]
    fn output_decodes_with_the_shipped_schema() {
        let desc = schema();
        for (name, batch) in testing::edge_cases() {
            let bytes = encode_checked(&Protobuf, &batch, &[]).unwrap();
            let msg = DynamicMessage::decode(desc.clone(), &bytes[..]).unwrap();
            let field = |n: &str| msg.get_field_by_name(n).unwrap().into_owned();
            let list = |n: &str| field(n).as_list().unwrap().to_vec();
            assert_eq!(field("version"), Value::U32(1));
            let coins: Vec<String> = list("coins")
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(coins, batch.coins, "{name}");
            let ts: Vec<i64> = list("ts").iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(ts, batch.ts, "{name}");
            let idx: Vec<u32> = list("coin_index")
                .iter()
                .map(|v| v.as_u32().unwrap())
                .collect();
            assert_eq!(idx, batch.coin_index, "{name}");
            let rank: Vec<u32> = list("rank").iter().map(|v| v.as_u32().unwrap()).collect();
            assert_eq!(rank, batch.rank, "{name}");
            for (col, values) in [
                ("price", &batch.price),
                ("market_cap", &batch.market_cap),
                ("volume", &batch.volume),
                ("supply", &batch.supply),
            ] {
                let got: Vec<u64> = list(col)
                    .iter()
                    .map(|v| v.as_f64().unwrap().to_bits())
                    .collect();
                let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{name}: {col}");
            }
            // And back: what a schema-driven writer produces, this codec reads.
            let again = decode_checked(&Protobuf, &msg.encode_to_vec(), None).unwrap();
            assert!(again.bit_eq(&batch), "{name}");
        }
    }

    #[test]
    fn edge_cases_round_trip() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_round_trip(&Protobuf, &batch, &[]);
        }
    }

    #[test]
    fn damaged_input_is_an_error_or_a_subset() {
        for (_, batch) in testing::edge_cases() {
            testing::assert_rejects_damage(&Protobuf, &batch, &[]);
        }
        // A valid message of another kind is not a segment.
        let other = BatchMessage {
            version: 0,
            ..BatchMessage::default()
        };
        let err = decode_checked(&Protobuf, &other.encode_to_vec(), None).unwrap_err();
        assert!(err.to_string().contains("version 0"), "{err}");
    }

    #[test]
    fn coin_filter_keeps_only_wanted_rows() {
        let (_, batch) = testing::edge_cases().swap_remove(5);
        let bytes = encode_checked(&Protobuf, &batch, &[]).unwrap();
        let wanted = ["b".to_string()];
        let got = decode_checked(&Protobuf, &bytes, Some(&wanted)).unwrap();
        assert!(got.bit_eq(&batch.filter_coins(&wanted)));
        assert!(!got.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_any_batch(batch in testing::arb_batch(200)) {
            testing::assert_round_trip(&Protobuf, &batch, &[]);
        }
    }
}
