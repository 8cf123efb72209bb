//! Sizes on real Coinpaprika data from `shared/data` (beside the repository), which the
//! CoinGecko benchmark does not cover: prices with few decimals, integer volumes and caps.
//! Ignored by default because the data set lives outside the repository; run with
//! `cargo test -p strata-codec-columnar --test real_data -- --ignored --nocapture`.

use std::path::PathBuf;

use strata_codec_columnar::Columnar;
use strata_plugin_sdk::{Batch, decode_checked, encode_checked};

fn shared(file: &str) -> PathBuf {
    strata_plugin_sdk::shared_data::path(&format!("coinpaprika-samples/{file}"))
}

#[test]
#[ignore = "needs shared/data beside the repository"]
fn coinpaprika_5_minute_bitcoin_compresses_to_a_few_bytes() {
    let path = shared("v1_tickers_btc-bitcoin_historical_2019-01-01_5m.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON array");
    let mut b = Batch {
        coins: vec!["btc-bitcoin".into()],
        ..Batch::default()
    };
    for (i, r) in rows.iter().enumerate() {
        let ts = chrono::DateTime::parse_from_rfc3339(r["timestamp"].as_str().expect("timestamp"))
            .unwrap_or_else(|e| panic!("row {i}: timestamp: {e}"))
            .timestamp_millis();
        let num = |k: &str| {
            r[k].as_f64()
                .unwrap_or_else(|| panic!("row {i}: {k} is not a number"))
        };
        b.push(
            0,
            ts,
            num("price"),
            num("market_cap"),
            num("volume_24h"),
            f64::NAN,
            1,
        );
    }
    let bytes = encode_checked(&Columnar, &b, &[]).unwrap();
    let back = decode_checked(&Columnar, &bytes, None).unwrap();
    assert!(back.bit_eq(&b.sorted()));
    let per_row = bytes.len() as f64 / b.len() as f64;
    println!(
        "coinpaprika 5-minute BTC: {} rows, {} bytes, {per_row:.2} B/row",
        b.len(),
        bytes.len()
    );
    assert!(per_row < 8.0, "{per_row:.2} B/row");
}
