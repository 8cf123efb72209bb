//! The JSON Lines row format shared by the `jsonl`, `jsonl-gzip` and `jsonl-brotli` codecs.
//!
//! One object per row, keys in this order:
//! `{"coin":"bitcoin","ts":1367107200000,"price":135.3,"market_cap":1.5e9,"volume":0.0,"supply":null,"rank":1}`
//!
//! - floats are written in the shortest form that parses back to the same bits (`-0.0` keeps
//!   its sign, subnormals and `1e-36` survive);
//! - NaN ("unknown") is `null`; ±infinity, which JSON numbers cannot hold, are the strings
//!   `"Infinity"` and `"-Infinity"`;
//! - `rank` 0 means unknown, as in the batch;
//! - extra columns (a rollup's `open`, `high`, ...) follow as further keys, written like floats.
//!
//! `jq` reads it as it is; the reader accepts keys in any order and ignores unknown keys.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{Batch, CoinDict, Error, Result};

/// Appends the JSONL text of `batch` to `out`.
pub fn write(batch: &Batch, out: &mut Vec<u8>) {
    let mut coin_json: Vec<Vec<u8>> = Vec::with_capacity(batch.coins.len());
    for c in &batch.coins {
        coin_json.push(serde_json::to_vec(c).expect("a string always serialises"));
    }
    let extra_keys: Vec<Vec<u8>> = batch
        .extra
        .iter()
        .map(|c| {
            let mut k = b",".to_vec();
            k.extend(serde_json::to_vec(&c.name).expect("a string always serialises"));
            k.push(b':');
            k
        })
        .collect();
    let mut num = ryu::Buffer::new();
    let mut int = itoa::Buffer::new();
    let mut float = |out: &mut Vec<u8>, v: f64| {
        if v.is_nan() {
            out.extend_from_slice(b"null");
        } else if v.is_infinite() {
            out.extend_from_slice(if v > 0.0 {
                b"\"Infinity\""
            } else {
                b"\"-Infinity\""
            });
        } else {
            out.extend_from_slice(num.format_finite(v).as_bytes());
        }
    };
    for i in 0..batch.len() {
        out.extend_from_slice(b"{\"coin\":");
        out.extend_from_slice(&coin_json[batch.coin_index[i] as usize]);
        out.extend_from_slice(b",\"ts\":");
        out.extend_from_slice(int.format(batch.ts[i]).as_bytes());
        out.extend_from_slice(b",\"price\":");
        float(out, batch.price[i]);
        out.extend_from_slice(b",\"market_cap\":");
        float(out, batch.market_cap[i]);
        out.extend_from_slice(b",\"volume\":");
        float(out, batch.volume[i]);
        out.extend_from_slice(b",\"supply\":");
        float(out, batch.supply[i]);
        out.extend_from_slice(b",\"rank\":");
        out.extend_from_slice(int.format(batch.rank[i]).as_bytes());
        for (key, col) in extra_keys.iter().zip(&batch.extra) {
            out.extend_from_slice(key);
            float(out, col.values[i]);
        }
        out.extend_from_slice(b"}\n");
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    coin: Cow<'a, str>,
    ts: i64,
    price: Float,
    market_cap: Float,
    volume: Float,
    supply: Float,
    #[serde(default)]
    rank: u32,
    /// Any other key is an extra column.
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, Float>,
}

/// A JSON float as this format writes it: number, `null` or an infinity string.
struct Float(f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Float, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Num(f64),
            Str(#[serde(borrow)] Cow<'a, str>),
            Null(()),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(Float(v)),
            Raw::Null(()) => Ok(Float(f64::NAN)),
            Raw::Str(s) => match s.as_ref() {
                "Infinity" => Ok(Float(f64::INFINITY)),
                "-Infinity" => Ok(Float(f64::NEG_INFINITY)),
                "NaN" => Ok(Float(f64::NAN)),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, null, \"Infinity\" or \"-Infinity\", got \"{other}\""
                ))),
            },
        }
    }
}

/// Parses JSONL text into a batch, keeping only `coins` when given. Errors name the line.
pub fn read(text: &[u8], coins: Option<&[String]>) -> Result<Batch> {
    let text = std::str::from_utf8(text).map_err(|e| Error::corrupt(format!("not UTF-8: {e}")))?;
    let mut batch = Batch::default();
    let mut dict = CoinDict::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Line<'_> = serde_json::from_str(line)
            .map_err(|e| Error::corrupt(format!("line {}: {e}", n + 1)))?;
        if let Some(wanted) = coins
            && !wanted.iter().any(|c| *c == row.coin)
        {
            continue;
        }
        let c = dict.intern(&mut batch.coins, &row.coin);
        batch.push(
            c,
            row.ts,
            row.price.0,
            row.market_cap.0,
            row.volume.0,
            row.supply.0,
            row.rank,
        );
        for (name, v) in row.extra {
            if name.is_empty() {
                // An extra column needs a name (found by fuzzing: `"":1` made an invalid batch).
                return Err(Error::corrupt(format!(
                    "line {}: an extra column's key is empty",
                    n + 1
                )));
            }
            let k = batch.add_extra(&name);
            *batch.extra[k]
                .values
                .last_mut()
                .expect("a row was just pushed") = v.0;
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Row;

    #[test]
    fn round_trips_awkward_floats_bit_exactly() {
        let mut b = Batch::default();
        let mut d = CoinDict::default();
        let vals = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            5e-324,
            1e-36,
            f64::MAX,
            0.1 + 0.2,
        ];
        for (i, v) in vals.iter().enumerate() {
            let row = Row {
                coin: "\u{1F980} \"crab\"\n",
                ts: i as i64 - 3,
                price: *v,
                market_cap: if v.is_nan() { *v } else { -v },
                volume: *v,
                supply: *v,
                rank: u32::MAX,
            };
            b.push_row(&row, &mut d);
        }
        let k = b.add_extra("high");
        b.extra[k].values[2] = -0.0;
        b.extra[k].values[3] = 7.25;
        let mut text = Vec::new();
        write(&b, &mut text);
        let back = read(&text, None).unwrap();
        assert!(back.bit_eq(&b), "{:?}", back.first_difference(&b));
    }

    #[test]
    fn errors_name_the_line() {
        let text = b"{\"coin\":\"a\",\"ts\":1,\"price\":1,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":1}\n{\"coin\":\"a\"}\n";
        let err = read(text, None).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(read(b"\xff\xfe", None).is_err());
    }

    /// Found by fuzzing (`source_jsonl`): a key `""` became an extra column with an empty name,
    /// a batch `validate` rejects.
    #[test]
    fn an_empty_key_is_an_error_not_a_nameless_column() {
        let text = b"{\"coin\":\"a\",\"ts\":1,\"price\":1,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":1}\n{\"coin\":\"a\",\"ts\":2,\"price\":1,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":1,\"\":3}\n";
        let err = read(text, None).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("empty"), "{err}");
    }
}
