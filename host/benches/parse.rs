//! Parsing throughput of `strata::source` on the real CoinGecko set (1.14 M rows, 36 MB gzip).
//!
//! `cargo bench -p strata --bench parse [-- FILE]`. Prints gunzip alone, then gunzip + parse,
//! best of three runs each. Skips with a note when the shared data set is absent.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use strata::source::{Format, ReadOptions, open};

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            strata::sdk::shared_data::path(
                "coingecko-daily-1010coins/coins_daily_2013-04-28_2025-07-14.csv.gz",
            )
        });
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let best = |f: &dyn Fn() -> usize| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let n = f();
                (t.elapsed().as_secs_f64(), n)
            })
            .fold((f64::MAX, 0), |a, b| if b.0 < a.0 { b } else { a })
    };
    let (secs, bytes) = best(&|| {
        let file = std::fs::File::open(&path).unwrap();
        let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            let n = gz.read(&mut buf).unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    println!(
        "gunzip only:    {:.3} s, {:.0} MB/s ({} bytes)",
        secs,
        bytes as f64 / secs / 1e6,
        bytes
    );
    let (secs, rows) = best(&|| {
        open(&path, Format::Auto, &ReadOptions::default())
            .unwrap()
            .map(|c| {
                let c = c.unwrap();
                assert!(c.errors.is_empty());
                c.batch.len()
            })
            .sum()
    });
    println!(
        "gunzip + parse: {:.3} s, {:.2} M rows/s ({} rows)",
        secs,
        rows as f64 / secs / 1e6,
        rows
    );
}
