//! The CSV readers: canonical CSV, the two CoinGecko layouts and any CSV through a column map.
//!
//! All of them are one reader: each format is a default column name per canonical field,
//! which a [`ColumnMap`](super::ColumnMap) can override. Rows are read as `csv::ByteRecord`s
//! (no UTF-8 check except on coin ids, once per run of equal ids) and floats with
//! `fast-float2`.

use anyhow::{Context, Result, anyhow, bail};
use csv::ByteRecord;

use super::value::{self, TsParser};
use super::{Chunk, ChunkBuilder, Field, Format, Input, ReadOptions};

/// The column name each format uses for each field (`None`: the format has no such column).
fn default_column(format: Format, field: Field) -> Option<&'static str> {
    match format {
        Format::CoinGeckoCsv => match field {
            Field::Coin => Some("coin_id"),
            Field::Ts => Some("timestamp"),
            Field::Price => Some("price"),
            Field::MarketCap => Some("market_cap"),
            Field::Volume => Some("volume"),
            Field::Supply | Field::Rank => None,
        },
        Format::CoinGecko2021Csv => match field {
            Field::Coin => Some("coinId"),
            Field::Ts => Some("timestamp"),
            Field::Price => Some("price"),
            Field::MarketCap => Some("marketCap"),
            Field::Volume => Some("totalVolume"),
            Field::Supply | Field::Rank => None,
        },
        _ => Some(field.name()),
    }
}

/// Where each field is in a record, with the column's name for error messages.
struct Column {
    index: usize,
    /// The header name when it differs from the canonical field name.
    renamed: Option<String>,
}

pub(crate) struct CsvReader {
    rdr: csv::Reader<Input>,
    record: ByteRecord,
    columns: [Option<Column>; 7],
    /// The coin id for every row when the input has no coin column.
    fixed_coin: Option<String>,
    /// Fewest fields a record needs to hold every mapped column.
    min_fields: usize,
    header_len: usize,
    ts: TsParser,
    builder: ChunkBuilder,
    chunk_rows: usize,
    name: String,
    pending: Option<anyhow::Error>,
    done: bool,
}

impl CsvReader {
    pub(crate) fn new(
        input: Input,
        name: String,
        format: Format,
        opts: &ReadOptions,
    ) -> Result<CsvReader> {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(opts.delimiter)
            .has_headers(true)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(input);
        let header = rdr
            .byte_headers()
            .with_context(|| format!("{name}: cannot read the CSV header"))?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            bail!("{name}: empty input, expected a CSV header");
        }
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        let find = |wanted: &str| -> Option<usize> {
            names.iter().position(|h| h == wanted).or_else(|| {
                let mut ci = names
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.eq_ignore_ascii_case(wanted));
                match (ci.next(), ci.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            })
        };
        let mut columns: [Option<Column>; 7] = Default::default();
        for (slot, field) in columns.iter_mut().zip(Field::ALL) {
            let index = if let Some(mapped) = opts.map.get(field) {
                Some(find(mapped).with_context(|| {
                    format!(
                        "{name}: column `{mapped}` (mapped to `{field}`) is not in the header: {}",
                        names.join(",")
                    )
                })?)
            } else if field == Field::Coin && opts.coin.is_some() {
                // Mapped columns win; otherwise a fixed coin id replaces the default column.
                None
            } else {
                default_column(format, field).and_then(find)
            };
            *slot = index.map(|index| Column {
                index,
                renamed: (names[index] != field.name()).then(|| names[index].clone()),
            });
        }
        let looked_for = |field: Field| match (opts.map.get(field), default_column(format, field)) {
            (Some(c), _) | (None, Some(c)) => format!(" (looked for `{c}`)"),
            (None, None) => String::new(),
        };
        if columns[1].is_none() {
            bail!(
                "{name}: no timestamp column{}; header: {}; map one with `ts=Column`",
                looked_for(Field::Ts),
                names.join(",")
            );
        }
        if columns[0].is_none() && opts.coin.is_none() {
            bail!(
                "{name}: no coin column{}; header: {}; map one with `coin=Column` or give a \
                 fixed coin id",
                looked_for(Field::Coin),
                names.join(",")
            );
        }
        let min_fields = columns
            .iter()
            .flatten()
            .map(|c| c.index + 1)
            .max()
            .unwrap_or(0);
        Ok(CsvReader {
            rdr,
            record: ByteRecord::new(),
            columns,
            fixed_coin: opts.coin.clone(),
            min_fields,
            header_len: names.len(),
            ts: TsParser::new(opts.ts_unit, opts.ts_format.clone()),
            builder: ChunkBuilder::new(name.clone(), opts.chunk_rows),
            chunk_rows: opts.chunk_rows,
            name,
            pending: None,
            done: false,
        })
    }

    /// Parses the current record into the chunk, or records why not.
    fn row(&mut self) {
        let line = self.record.position().map_or(0, |p| p.line());
        let rec = &self.record;
        if rec.len() < self.min_fields {
            if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
                return; // a blank line
            }
            let message = format!(
                "the row has {} fields, the header has {}",
                rec.len(),
                self.header_len
            );
            self.builder.error(line, None, message);
            return;
        }
        match self.parse() {
            Ok(()) => {}
            Err((field, message)) => {
                let column = self.columns[field as usize].as_ref();
                let message = match column.and_then(|c| c.renamed.as_deref()) {
                    Some(col) => format!("column `{col}`: {message}"),
                    None => message,
                };
                self.builder.error(line, Some(field.name()), message);
            }
        }
    }

    #[inline]
    fn parse(&mut self) -> Result<(), (Field, String)> {
        let rec = &self.record;
        let get = |c: &Option<Column>| -> &[u8] {
            match c {
                Some(c) => &rec[c.index],
                None => b"",
            }
        };
        let [coin, ts, price, market_cap, volume, supply, rank] = &self.columns;
        let coin_id: &[u8] = match coin {
            Some(c) => rec[c.index].trim_ascii(),
            None => self.fixed_coin.as_deref().unwrap_or_default().as_bytes(),
        };
        if coin_id.is_empty() {
            return Err((Field::Coin, "empty coin id".into()));
        }
        let ts_v = self.ts.parse(get(ts)).map_err(|m| (Field::Ts, m))?;
        let price_v = value::float(get(price)).map_err(|m| (Field::Price, m))?;
        let mcap_v = value::float(get(market_cap)).map_err(|m| (Field::MarketCap, m))?;
        let volume_v = value::float(get(volume)).map_err(|m| (Field::Volume, m))?;
        let supply_v = value::float(get(supply)).map_err(|m| (Field::Supply, m))?;
        let rank_v = value::rank(get(rank)).map_err(|m| (Field::Rank, m))?;
        let c = self
            .builder
            .coin_bytes(coin_id)
            .map_err(|m| (Field::Coin, m))?;
        self.builder
            .chunk
            .batch
            .push(c, ts_v, price_v, mcap_v, volume_v, supply_v, rank_v);
        Ok(())
    }
}

impl Iterator for CsvReader {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Result<Chunk>> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        loop {
            if self.builder.len() >= self.chunk_rows {
                return Some(Ok(self.builder.take(self.chunk_rows)));
            }
            match self.rdr.read_byte_record(&mut self.record) {
                Ok(true) => self.row(),
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    let line = e.position().map_or(0, |p| p.line());
                    self.pending = Some(anyhow!(e).context(if line > 0 {
                        format!("{}:{line}: cannot read the CSV", self.name)
                    } else {
                        format!("{}: cannot read the CSV", self.name)
                    }));
                    break;
                }
            }
        }
        if self.builder.len() > 0 {
            Some(Ok(self.builder.take(0)))
        } else {
            self.pending.take().map(Err)
        }
    }
}
