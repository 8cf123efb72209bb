//! CoinMarketCap weekly snapshots: newline-delimited JSON of display strings.
//!
//! One object per coin per week, as scraped from CMC's historical snapshot pages:
//!
//! ```text
//! {"Rank":1,"Name":"BTCBitcoin","Symbol":"BTC","Market Cap":"$1,488,566,971.96","Price":"$134.21",
//!  "Circulating Supply":"11,091,325 BTC","volume (24h)":0,"% 1h":"0.64%",...,"date":1367107200000}
//! ```
//!
//! - `date` (epoch ms) is the timestamp and `Rank` the rank.
//! - `Price`, `Market Cap`, `volume (24h)`: `$` and thousands separators are dropped; `--`
//!   (or empty) means unknown. `volume (24h)` as the *number* 0 (the first weeks of the
//!   scrape) also means unknown, while the string `"$0.00"` stays 0.
//! - `Circulating Supply`: `"120,503,369 ETH *"` — the unit and CMC's `*` (not mineable) are
//!   dropped.
//! - `Name` has the symbol glued on the front (`"BTCBitcoin"`); it is removed.
//! - The coin id is `symbol-name` in lower case with every run of other characters turned into
//!   one `-` (`btc-bitcoin`, `pol-pol-ex-matic`), the scheme Coinpaprika ids follow. It depends
//!   on the row alone, so it is the same in every file and run, and two coins that used the
//!   same ticker (ETC: Ethercoin in 2014, Ethereum Classic later) stay apart. A coin CMC
//!   renamed (`USDTTether` → `USDTTether USDt`) gets a second id; symbol and name are kept as
//!   [`CoinMeta`](super::CoinMeta) to join them if wanted.
//! - The `% 1h`/`% 24h`/`% 7d` changes and the empty `""` key are ignored.

use std::io::BufRead;

use anyhow::{Result, anyhow};
use serde_json::{Map, Value};

use super::value::{self, canonical};
use super::{Chunk, ChunkBuilder, Input, ReadOptions};

pub(crate) struct CmcReader {
    input: Input,
    name: String,
    chunk_rows: usize,
    line_no: u64,
    line: Vec<u8>,
    builder: ChunkBuilder,
    pending: Option<anyhow::Error>,
    done: bool,
}

impl CmcReader {
    pub(crate) fn new(input: Input, name: String, opts: &ReadOptions) -> CmcReader {
        CmcReader {
            input,
            builder: ChunkBuilder::new(name.clone(), opts.chunk_rows.min(1 << 16)),
            name,
            chunk_rows: opts.chunk_rows,
            line_no: 0,
            line: Vec::new(),
            pending: None,
            done: false,
        }
    }
}

impl Iterator for CmcReader {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Result<Chunk>> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        while self.builder.len() < self.chunk_rows {
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {
                    self.line_no += 1;
                    if !self.line.trim_ascii().is_empty()
                        && let Err((field, message)) = row(&mut self.builder, &self.line)
                    {
                        self.builder.error(self.line_no, field, message);
                    }
                }
                Err(e) => {
                    self.done = true;
                    self.pending = Some(anyhow!(e).context(format!(
                        "{}:{}: cannot read",
                        self.name,
                        self.line_no + 1
                    )));
                    break;
                }
            }
        }
        if self.builder.len() > 0 {
            Some(Ok(self.builder.take(self.chunk_rows.min(1 << 16))))
        } else {
            self.pending.take().map(Err)
        }
    }
}

type RowResult<T> = Result<T, (Option<&'static str>, String)>;

fn row(b: &mut ChunkBuilder, line: &[u8]) -> RowResult<()> {
    let v: Value =
        serde_json::from_slice(line).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err((
            None,
            format!("expected a JSON object, got {}", value::json_shown(&v)),
        ));
    };
    let symbol = text(&obj, "Symbol")?;
    let glued = text(&obj, "Name")?;
    let name = glued
        .strip_prefix(symbol)
        .filter(|rest| !rest.is_empty())
        .unwrap_or(glued)
        .trim();
    let id = coin_id(symbol, name);
    if id.is_empty() {
        return Err((
            Some("Symbol"),
            "no letters or digits in symbol and name".into(),
        ));
    }
    let ts = match obj.get("date") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("expected integer milliseconds, got {n}")),
        Some(Value::String(s)) => value::rfc3339_ms(s)
            .or_else(|| s.parse().ok())
            .ok_or_else(|| format!("expected a timestamp, got {}", value::shown(s.as_bytes()))),
        None | Some(Value::Null) => Err("missing".into()),
        Some(other) => Err(format!(
            "expected a timestamp, got {}",
            value::json_shown(other)
        )),
    }
    .map_err(|m| (Some("date"), m))?;
    let rank = value::json_rank(obj.get("Rank")).map_err(|m| (Some("Rank"), m))?;
    let price = money(&obj, "Price")?;
    let market_cap = money(&obj, "Market Cap")?;
    let volume = match obj.get("volume (24h)") {
        // The integer 0 stands for "not scraped" in the first weeks.
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => f64::NAN,
        _ => money(&obj, "volume (24h)")?,
    };
    let supply = money(&obj, "Circulating Supply")?;
    let c = b.coin(&id, Some(symbol), Some(name));
    b.chunk
        .batch
        .push(c, ts, price, market_cap, volume, supply, rank);
    Ok(())
}

fn text<'a>(obj: &'a Map<String, Value>, key: &'static str) -> RowResult<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err((Some(key), "missing".into())),
        Some(other) => Err((
            Some(key),
            format!("expected text, got {}", value::json_shown(other)),
        )),
    }
}

/// A display amount: `"$1,488,566,971.96"`, `"11,091,325 BTC *"`, `"--"`, or a plain number.
fn money(obj: &Map<String, Value>, key: &'static str) -> RowResult<f64> {
    match obj.get(key) {
        Some(Value::String(s)) => display_number(s).map_err(|m| (Some(key), m)),
        other => value::json_float(other).map_err(|m| (Some(key), m)),
    }
}

fn display_number(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().all(|c| c == '-') {
        return Ok(f64::NAN);
    }
    // The number is the first word; a unit (`BTC`) and CMC's `*` may follow.
    let word = t.split_whitespace().next().unwrap_or_default();
    let word = word.strip_prefix('$').unwrap_or(word);
    let digits: String = word.chars().filter(|&c| c != ',').collect();
    if digits.is_empty() || digits.starts_with('+') {
        return Err(format!(
            "expected an amount, got {}",
            value::shown(s.as_bytes())
        ));
    }
    digits
        .parse::<f64>()
        .map(canonical)
        .map_err(|_| format!("expected an amount, got {}", value::shown(s.as_bytes())))
}

/// `symbol-name`, lower case, runs of anything but ASCII letters and digits as one `-`.
pub(crate) fn coin_id(symbol: &str, name: &str) -> String {
    let mut id = String::with_capacity(symbol.len() + name.len() + 1);
    for part in [symbol, name] {
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c.to_ascii_lowercase());
            } else if !id.is_empty() && !id.ends_with('-') {
                id.push('-');
            }
        }
        if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    while id.ends_with('-') {
        id.pop();
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_numbers() {
        assert_eq!(
            display_number("$1,488,566,971.96").unwrap(),
            1_488_566_971.96
        );
        assert_eq!(display_number("$0.0003261").unwrap(), 0.0003261);
        assert_eq!(display_number("11,091,325 BTC").unwrap(), 11_091_325.0);
        assert_eq!(display_number("120,503,369 ETH *").unwrap(), 120_503_369.0);
        assert!(display_number("--").unwrap().is_nan());
        assert!(display_number("").unwrap().is_nan());
        let err = display_number("$abc").unwrap_err();
        assert!(err.contains("`$abc`"), "{err}");
        assert!(display_number("0.64%").is_err());
    }

    #[test]
    fn coin_ids_are_stable_slugs() {
        assert_eq!(coin_id("BTC", "Bitcoin"), "btc-bitcoin");
        assert_eq!(coin_id("SHIB", "SHIBA INU"), coin_id("SHIB", "Shiba Inu"));
        assert_eq!(coin_id("POL", "POL (ex-MATIC)"), "pol-pol-ex-matic");
        assert_eq!(coin_id("PPY", "Peerplays [old]"), "ppy-peerplays-old");
        assert_ne!(
            coin_id("ETC", "Ethercoin"),
            coin_id("ETC", "Ethereum Classic")
        );
        assert_eq!(coin_id("", "!!"), "");
    }
}
