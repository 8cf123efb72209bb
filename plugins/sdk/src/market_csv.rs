//! The market CSV layout of strata's real-data sets and extract
//! (`coin_id,timestamp,price,volume,market_cap`, a header line, timestamps in ms): the one
//! reader of it that the SDK's test helpers, the host's conformance suite and the codec
//! benchmarks share. (The host's `source` module reads this layout and many others for
//! ingest, with per-row errors.)

use crate::{Batch, CoinDict, Row};

/// Reads the CSV from `input` into a batch; empty cells are unknown (NaN), supply and rank are
/// unknown. `path` names the input in errors, which give the line.
pub fn read(path: &str, input: impl std::io::Read) -> std::io::Result<Batch> {
    use std::io::{BufRead, BufReader};
    let reader = BufReader::new(input);
    let bad = |line: usize, what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{path}: line {line}: {what}"),
        )
    };
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    for (n, line) in reader.lines().enumerate().skip(1) {
        let line = line?;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 {
            return Err(bad(n + 1, "expected 5 fields"));
        }
        let num = |s: &str| -> std::io::Result<f64> {
            if s.is_empty() {
                Ok(f64::NAN)
            } else {
                s.parse().map_err(|_| bad(n + 1, "bad number"))
            }
        };
        let row = Row {
            coin: f[0],
            ts: f[1].parse().map_err(|_| bad(n + 1, "bad timestamp"))?,
            price: num(f[2])?,
            volume: num(f[3])?,
            market_cap: num(f[4])?,
            supply: f64::NAN,
            rank: 0,
        };
        b.push_row(&row, &mut d);
    }
    Ok(b)
}
