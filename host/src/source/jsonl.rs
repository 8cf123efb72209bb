//! The canonical JSON Lines reader.
//!
//! Lines are gathered a chunk at a time. A chunk in the SDK's exact row format goes through
//! [`strata_plugin_sdk::jsonl::read`] in one call; a chunk it rejects (an RFC 3339 `ts`, a
//! missing key, a bad row) is read again line by line, leniently, so each bad row becomes a
//! [`RowError`](super::RowError) naming its line and field and the others are kept.

use std::io::BufRead;
use std::ops::Range;

use anyhow::{Result, anyhow};
use serde_json::Value;

use super::value::{self, TsParser, TsUnit};
use super::{Chunk, ChunkBuilder, CoinMeta, Input, ReadOptions};

pub(crate) struct JsonlReader {
    input: Input,
    name: String,
    chunk_rows: usize,
    line_no: u64,
    text: Vec<u8>,
    lines: Vec<(u64, Range<usize>)>,
    ts: TsParser,
    pending: Option<anyhow::Error>,
    done: bool,
}

impl JsonlReader {
    pub(crate) fn new(input: Input, name: String, opts: &ReadOptions) -> JsonlReader {
        JsonlReader {
            input,
            name,
            chunk_rows: opts.chunk_rows,
            line_no: 0,
            text: Vec::new(),
            lines: Vec::new(),
            // JSON timestamps are milliseconds or RFC 3339 text, whatever the CSV options say.
            ts: TsParser::new(TsUnit::Ms, None),
            pending: None,
            done: false,
        }
    }

    /// The chunk through the SDK's reader, when every line is in its exact format.
    fn fast(&self) -> Option<Chunk> {
        let batch = strata_plugin_sdk::jsonl::read(&self.text, None).ok()?;
        if batch.len() != self.lines.len()
            || batch.coins.iter().any(String::is_empty)
            || batch.validate().is_err()
        {
            return None;
        }
        let coins = batch
            .coins
            .iter()
            .map(|id| CoinMeta {
                id: id.clone(),
                ..CoinMeta::default()
            })
            .collect();
        Some(Chunk {
            batch,
            coins,
            errors: Vec::new(),
        })
    }

    fn slow(&self) -> Chunk {
        let mut b = ChunkBuilder::new(self.name.clone(), self.lines.len());
        for (line, range) in &self.lines {
            if let Err((field, message)) = self.line(&mut b, &self.text[range.clone()]) {
                b.error(*line, field, message);
            }
        }
        b.take(0)
    }

    fn line(
        &self,
        b: &mut ChunkBuilder,
        text: &[u8],
    ) -> Result<(), (Option<&'static str>, String)> {
        let row: Value =
            serde_json::from_slice(text).map_err(|e| (None, format!("not valid JSON: {e}")))?;
        let Value::Object(row) = row else {
            return Err((
                None,
                format!("expected a JSON object, got {}", value::json_shown(&row)),
            ));
        };
        let coin = match row.get("coin") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(Value::String(_)) => return Err((Some("coin"), "empty coin id".into())),
            None | Some(Value::Null) => return Err((Some("coin"), "missing".into())),
            Some(other) => {
                return Err((
                    Some("coin"),
                    format!("expected a string, got {}", value::json_shown(other)),
                ));
            }
        };
        let ts = match row.get("ts") {
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(v), _) => Ok(v),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(format!(
                    "timestamp {n} is not an integer number of milliseconds"
                )),
            },
            Some(Value::String(s)) => self.ts.parse(s.as_bytes()),
            None | Some(Value::Null) => Err("missing".into()),
            Some(other) => Err(format!(
                "expected integer milliseconds or RFC 3339 text, got {}",
                value::json_shown(other)
            )),
        }
        .map_err(|m| (Some("ts"), m))?;
        let float = |key: &'static str| value::json_float(row.get(key)).map_err(|m| (Some(key), m));
        let price = float("price")?;
        let market_cap = float("market_cap")?;
        let volume = float("volume")?;
        let supply = float("supply")?;
        let rank = value::json_rank(row.get("rank")).map_err(|m| (Some("rank"), m))?;
        let c = b.coin(coin, None, None);
        b.chunk
            .batch
            .push(c, ts, price, market_cap, volume, supply, rank);
        Ok(())
    }
}

impl Iterator for JsonlReader {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Result<Chunk>> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        self.text.clear();
        self.lines.clear();
        while self.lines.len() < self.chunk_rows {
            let start = self.text.len();
            match self.input.read_until(b'\n', &mut self.text) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {
                    self.line_no += 1;
                    if self.text[start..].trim_ascii().is_empty() {
                        self.text.truncate(start);
                    } else {
                        self.lines.push((self.line_no, start..self.text.len()));
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
        if self.lines.is_empty() {
            return self.pending.take().map(Err);
        }
        Some(Ok(self.fast().unwrap_or_else(|| self.slow())))
    }
}
