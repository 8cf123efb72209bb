//! Coinpaprika: parsing its API responses, fetching them over HTTP, and the periodic collector.
//!
//! - [`parse_tickers`] reads `GET /v1/tickers` (every coin in one JSON array; one ticker object
//!   from `/v1/tickers/{id}` works too): per coin `id`, `symbol`, `name`, `rank`,
//!   `circulating_supply`, `last_updated` (RFC 3339, the row's timestamp) and
//!   `quotes.USD.{price, market_cap, volume_24h}`.
//! - [`parse_historical`] reads `GET /v1/tickers/{id}/historical`: `timestamp`, `price`,
//!   `volume_24h`, `market_cap` (supply and rank unknown).
//! - [`Client`] fetches both with timeouts and retries; [`collect`] polls the tickers.
//!
//! The schema has shifted over the years, so the parsers are lenient where the meaning is
//! clear and precise where it is not: numbers quoted as strings (older API versions) are read as
//! numbers, `null` and missing values are NaN (rank 0), and `max_supply`, `total_supply`,
//! `beta_value` and the percent changes are not stored (so `max_supply: 0`, the API's
//! "unknown", does not matter). Zeros are kept as zeros: Coinpaprika sends `market_cap: 0` and
//! `circulating_supply: 0` for coins whose supply it does not know, and strata stores what the
//! source said. A coin with no usable id, timestamp or USD quote, or with a value that is not a
//! number, is left out with a [`RowError`](super::RowError) naming the coin and the field; the
//! other coins are kept. A response that is not an array of objects (an API error such as
//! `{"error":"..."}`) fails as a whole.

mod client;

pub use client::{Client, ClientOptions, DEFAULT_BASE_URL, collect};

use anyhow::{Result, bail};
use serde_json::{Map, Value};

use super::value::{self, json_float};
use super::{Chunk, ChunkBuilder};

/// The quote currency strata stores.
const QUOTE: &str = "USD";

/// Parses a `/v1/tickers` response. `source` (a URL or file name) is named in errors.
pub fn parse_tickers(text: &[u8], source: &str) -> Result<Chunk> {
    let entries = entries(text, source)?;
    let mut b = ChunkBuilder::new(source.to_owned(), entries.len());
    for (i, entry) in entries.iter().enumerate() {
        if let Err((field, message)) = ticker(&mut b, entry) {
            b.error(i as u64 + 1, Some(field), message);
        }
    }
    Ok(b.take(0))
}

/// Parses a `/v1/tickers/{coin}/historical` response, whose rows are all `coin`'s.
pub fn parse_historical(text: &[u8], source: &str, coin: &str) -> Result<Chunk> {
    if coin.is_empty() {
        bail!("{source}: empty coin id");
    }
    let entries = entries(text, source)?;
    let mut b = ChunkBuilder::new(source.to_owned(), entries.len());
    b.coin(coin, None, None);
    for (i, entry) in entries.iter().enumerate() {
        if let Err((field, message)) = tick(&mut b, coin, entry) {
            b.error(
                i as u64 + 1,
                Some(field),
                format!("coin `{coin}`: {message}"),
            );
        }
    }
    Ok(b.take(0))
}

/// The objects of a response: a JSON array, or one object (a single ticker).
fn entries(text: &[u8], source: &str) -> Result<Vec<Map<String, Value>>> {
    let doc: Value = match serde_json::from_slice(text) {
        Ok(doc) => doc,
        Err(e) => bail!("{source}: the response is not valid JSON: {e}"),
    };
    let items = match doc {
        Value::Array(items) => items,
        Value::Object(obj) if obj.contains_key("error") => bail!(
            "{source}: the API answered with an error: {}",
            value::json_shown(&obj["error"])
        ),
        Value::Object(obj) if obj.contains_key("id") || obj.contains_key("timestamp") => {
            vec![Value::Object(obj)]
        }
        other => bail!(
            "{source}: expected a JSON array of entries, got {}",
            value::json_shown(&other)
        ),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(obj) => Ok(obj),
            other => bail!(
                "{source}: entry {} is not a JSON object but {}",
                i + 1,
                value::json_shown(&other)
            ),
        })
        .collect()
}

type EntryResult<T> = Result<T, (&'static str, String)>;

fn ticker(b: &mut ChunkBuilder, t: &Map<String, Value>) -> EntryResult<()> {
    let id = match t.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        Some(other) => {
            return Err((
                "id",
                format!("expected a coin id, got {}", value::json_shown(other)),
            ));
        }
        None => return Err(("id", "missing coin id".into())),
    };
    let at = |field: &'static str| move |m: String| (field, format!("coin `{id}`: {m}"));
    let ts = timestamp(t.get("last_updated")).map_err(at("last_updated"))?;
    let rank = value::json_rank(t.get("rank")).map_err(at("rank"))?;
    let supply = json_float(t.get("circulating_supply")).map_err(at("circulating_supply"))?;
    let quote = match t.get("quotes").and_then(|q| q.get(QUOTE)) {
        Some(Value::Object(q)) => q,
        Some(other) => {
            return Err((
                "quotes.USD",
                format!(
                    "coin `{id}`: expected an object, got {}",
                    value::json_shown(other)
                ),
            ));
        }
        None => {
            let has = match t.get("quotes") {
                Some(Value::Object(q)) if !q.is_empty() => {
                    let keys: Vec<&str> = q.keys().map(String::as_str).collect();
                    format!("the response has quotes in {}", keys.join(", "))
                }
                _ => "the entry has no quotes".to_string(),
            };
            return Err((
                "quotes.USD",
                format!("coin `{id}`: no USD quote ({has}); request the tickers with quotes=USD"),
            ));
        }
    };
    let price = json_float(quote.get("price")).map_err(at("quotes.USD.price"))?;
    let market_cap = json_float(quote.get("market_cap")).map_err(at("quotes.USD.market_cap"))?;
    let volume = json_float(quote.get("volume_24h")).map_err(at("quotes.USD.volume_24h"))?;
    let symbol = t.get("symbol").and_then(Value::as_str);
    let name = t.get("name").and_then(Value::as_str);
    let c = b.coin(id, symbol, name);
    b.chunk
        .batch
        .push(c, ts, price, market_cap, volume, supply, rank);
    Ok(())
}

fn tick(b: &mut ChunkBuilder, coin: &str, t: &Map<String, Value>) -> EntryResult<()> {
    let ts = timestamp(t.get("timestamp")).map_err(|m| ("timestamp", m))?;
    let price = json_float(t.get("price")).map_err(|m| ("price", m))?;
    let market_cap = json_float(t.get("market_cap")).map_err(|m| ("market_cap", m))?;
    let volume = json_float(t.get("volume_24h")).map_err(|m| ("volume_24h", m))?;
    let c = b.coin(coin, None, None);
    b.chunk
        .batch
        .push(c, ts, price, market_cap, volume, f64::NAN, 0);
    Ok(())
}

/// An RFC 3339 timestamp (`2019-09-06T12:40:34Z`) as milliseconds; integer seconds also pass.
fn timestamp(v: Option<&Value>) -> Result<i64, String> {
    match v {
        Some(Value::String(s)) => value::rfc3339_ms(s.trim()).ok_or_else(|| {
            format!(
                "expected an RFC 3339 time, got {}",
                value::shown(s.as_bytes())
            )
        }),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| format!("expected an RFC 3339 time, got {n}")),
        None | Some(Value::Null) => Err("missing timestamp".into()),
        Some(other) => Err(format!(
            "expected an RFC 3339 time, got {}",
            value::json_shown(other)
        )),
    }
}

#[cfg(test)]
mod tests;
