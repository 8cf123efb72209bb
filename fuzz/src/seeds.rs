//! Writes the seed corpora of the codec decode targets: the real CoinGecko extract in the repo
//! (`host/data/coingecko-extract.csv`, MIT, see its SOURCE.md) encoded by every built-in codec,
//! whole and cut to a few rows, with a rollup-like extra column where the codec stores them,
//! under several option sets. Run by `seeds.sh`; writes to `corpus/decode_<codec>/`.

use std::fs;
use std::path::{Path, PathBuf};

use strata_fuzz::CODECS;
use strata_plugin_sdk::{Batch, CoinDict, Row, encode_checked};

/// The extract: `coin_id,timestamp,price,volume,market_cap`; empty cells are unknown.
fn read_extract(path: &Path) -> Batch {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut b, mut dict) = (Batch::default(), CoinDict::default());
    let float = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "unexpected line `{line}`");
        let row = Row {
            coin: f[0],
            ts: f[1].parse().expect("millisecond timestamp"),
            price: float(f[2]),
            market_cap: float(f[4]),
            volume: float(f[3]),
            supply: f64::NAN,
            rank: 0,
        };
        b.push_row(&row, &mut dict);
    }
    b
}

/// Option sets worth a seed each, per codec (the default first).
fn option_sets(codec: &str) -> Vec<Vec<(&'static str, &'static str)>> {
    let mut sets = vec![vec![]];
    match codec {
        "columnar" => {
            sets.push(vec![("entropy", "false")]);
            sets.push(vec![("block", "16")]);
        }
        "parquet" => {
            for c in ["none", "gzip", "brotli", "lz4"] {
                sets.push(vec![("compression", c)]);
            }
            sets.push(vec![
                ("dictionary", "false"),
                ("delta_ts", "false"),
                ("byte_stream_split", "false"),
            ]);
        }
        "jsonl-gzip" | "msgpack-gzip" => sets.push(vec![("level", "0")]),
        _ => {}
    }
    sets
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let full = read_extract(&root.join("../host/data/coingecko-extract.csv"));
    let few = full.take(&[0, 1, 2, 150, 151, 210, 211]);
    let mut rolled = few.clone();
    let open = rolled.add_extra("open");
    for (i, v) in rolled.extra[open].values.iter_mut().enumerate() {
        *v = if i % 3 == 0 { f64::NAN } else { i as f64 * 0.5 };
    }
    let batches = [("extract", &full), ("few", &few), ("extra", &rolled)];
    for (name, make) in CODECS {
        let codec = make();
        let dir = root
            .join("corpus")
            .join(format!("decode_{}", name.replace('-', "_")));
        fs::create_dir_all(&dir).expect("create the corpus directory");
        let mut written = 0;
        for (k, opts) in option_sets(name).iter().enumerate() {
            let opts: Vec<(String, String)> = opts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            for (what, batch) in batches {
                if !batch.extra.is_empty() && !codec.describe().extra_columns {
                    continue;
                }
                let bytes = encode_checked(codec.as_ref(), batch, &opts)
                    .unwrap_or_else(|e| panic!("{name} {opts:?}: {e}"));
                fs::write(dir.join(format!("seed-{what}-{k}")), bytes).expect("write a seed");
                written += 1;
            }
        }
        println!("{}: {written} seeds", dir.display());
    }
}
