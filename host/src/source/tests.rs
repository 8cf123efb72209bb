//! Tests of the file readers, on small inline inputs and on slices of the real data sets.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use strata_plugin_sdk::{Batch, CoinDict, Row};

use super::*;

/// A shared data file, or `None` with a note when this checkout has no shared data.
pub(crate) fn shared(rel: &str) -> Option<PathBuf> {
    strata_plugin_sdk::shared_data::find(rel)
}

fn reader(text: &str, name: &str, format: Format, opts: &ReadOptions) -> Result<Reader> {
    open_reader(
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        name,
        format,
        opts,
    )
}

fn read_str(text: &str, format: Format, opts: &ReadOptions) -> Result<Vec<Chunk>> {
    reader(text, "in.csv", format, opts)?.collect()
}

fn read_all(text: &str, format: Format) -> Chunk {
    merge(read_str(text, format, &ReadOptions::default()).unwrap())
}

fn merge(chunks: Vec<Chunk>) -> Chunk {
    let mut all = Chunk::default();
    for c in chunks {
        all.append(c);
    }
    all
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn bits(v: f64) -> u64 {
    v.to_bits()
}

const NAN: u64 = 0x7ff8_0000_0000_0000;

#[test]
fn canonical_csv_reads_every_column() {
    let text = "coin,ts,price,market_cap,volume,supply,rank\n\
                bitcoin,1367107200000,135.3,1500517590,0,,1\n\
                ethereum,2015-08-07T00:00:00Z,2.83,,-0.0,72049306.5,2\n\
                bitcoin,1367193600000,NaN,1.5e9,1e-36,21000000,\n";
    let c = read_all(text, Format::Csv);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.batch.len(), 3);
    assert_eq!(c.batch.coins, ["bitcoin", "ethereum"]);
    assert_eq!(
        c.coins.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        c.batch.coins
    );
    let r = c.batch.row(1);
    assert_eq!(r.coin, "ethereum");
    assert_eq!(r.ts, 1_438_905_600_000);
    assert_eq!(bits(r.price), bits(2.83));
    assert_eq!(bits(r.market_cap), NAN);
    assert_eq!(bits(r.volume), bits(-0.0));
    assert_eq!(bits(r.supply), bits(72_049_306.5));
    assert_eq!(r.rank, 2);
    let r = c.batch.row(2);
    assert_eq!(bits(r.price), NAN);
    assert_eq!(bits(r.volume), bits(1e-36));
    assert_eq!(r.rank, 0);
    assert_eq!(bits(c.batch.row(0).supply), NAN);
}

#[test]
fn columns_in_any_order_and_missing_optional_columns() {
    let text = "extra,price,ts,coin\nx,1.5,10,a\n";
    let c = read_all(text, Format::Csv);
    let r = c.batch.row(0);
    assert_eq!((r.coin, r.ts, r.price, r.rank), ("a", 10, 1.5, 0));
    assert_eq!(bits(r.market_cap), NAN);
    assert_eq!(bits(r.supply), NAN);
}

#[test]
fn bad_rows_are_reported_with_file_line_and_field_and_skipped() {
    let text = "coin,ts,price,market_cap,volume,supply,rank\n\
                a,1,1.0,2,3,4,5\n\
                a,2,abc,2,3,4,5\n\
                a,yesterday,1,2,3,4,5\n\
                ,4,1,2,3,4,5\n\
                a,5\n\
                a,6,1,2,3,4,-3\n\
                a,7,1,2,3,4,5\n";
    let c = read_all(text, Format::Csv);
    assert_eq!(c.batch.ts, [1, 7]);
    let shown: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert_eq!(
        shown[0],
        "in.csv:3: field `price`: expected a number, got `abc`"
    );
    assert!(
        shown[1].starts_with("in.csv:4: field `ts`: "),
        "{}",
        shown[1]
    );
    assert!(shown[1].contains("`yesterday`"), "{}", shown[1]);
    assert_eq!(shown[2], "in.csv:5: field `coin`: empty coin id");
    assert_eq!(shown[3], "in.csv:6: the row has 2 fields, the header has 7");
    assert!(
        shown[4].starts_with("in.csv:7: field `rank`: "),
        "{}",
        shown[4]
    );
    assert_eq!(c.errors[0].field.as_deref(), Some("price"));
    assert_eq!(c.errors[0].line, 3);
}

#[test]
fn chunks_hold_at_most_chunk_rows_and_keep_coins_parallel() {
    let mut text = String::from("coin,ts,price\n");
    for i in 0..7 {
        text.push_str(&format!("c{},{i},{i}.5\n", i % 3));
    }
    text.push_str("c0,x,1\n");
    let opts = ReadOptions {
        chunk_rows: 3,
        ..ReadOptions::default()
    };
    let chunks = read_str(&text, Format::Auto, &opts).unwrap();
    let sizes: Vec<usize> = chunks
        .iter()
        .map(|c| c.batch.len() + c.errors.len())
        .collect();
    assert_eq!(sizes, [3, 3, 2]);
    for c in &chunks {
        c.batch.validate().unwrap();
        let ids: Vec<&str> = c.coins.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, c.batch.coins);
    }
    assert_eq!(chunks[2].errors[0].line, 9);
    let all = merge(chunks);
    assert_eq!(all.batch.ts, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(all.batch.price[6], 6.5);
}

#[test]
fn gzip_is_detected_by_magic_bytes_for_any_format() {
    let csv = "coin,ts,price\na,1,2.5\n";
    let jsonl = "{\"coin\":\"a\",\"ts\":1,\"price\":2.5,\"market_cap\":null,\"volume\":null,\"supply\":null,\"rank\":0}\n";
    for (text, format) in [
        (csv, Format::Csv),
        (jsonl, Format::Jsonl),
        (csv, Format::Auto),
    ] {
        let gz = gzip(text.as_bytes());
        let r = open_reader(
            Box::new(std::io::Cursor::new(gz)),
            "x.gz",
            format,
            &ReadOptions::default(),
        )
        .unwrap();
        let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
        assert_eq!(c.batch.len(), 1, "{format}");
        assert_eq!(c.batch.price[0], 2.5);
    }
}

#[test]
fn truncated_gzip_delivers_the_rows_before_the_damage_then_fails() {
    let mut text = String::from("coin,ts,price\n");
    for i in 0..20_000 {
        text.push_str(&format!("coin{},{i},{i}.25\n", i % 50));
    }
    let gz = gzip(text.as_bytes());
    let cut = gz[..gz.len() * 2 / 3].to_vec();
    let opts = ReadOptions {
        chunk_rows: 1000,
        ..ReadOptions::default()
    };
    let items: Vec<Result<Chunk>> = open_reader(
        Box::new(std::io::Cursor::new(cut)),
        "cut.csv.gz",
        Format::Csv,
        &opts,
    )
    .unwrap()
    .collect();
    let (last, good) = items.split_last().unwrap();
    assert!(good.len() > 3 && good.iter().all(Result::is_ok));
    let err = format!("{:#}", last.as_ref().unwrap_err());
    assert!(err.contains("cut.csv.gz"), "{err}");
}

#[test]
fn auto_detects_every_format() {
    let cases = [
        (
            "coin_id,timestamp,price,volume,market_cap\nx,1,2,3,4\n",
            Format::CoinGeckoCsv,
        ),
        (
            "timestamp,readableTimestamp,coinId,price,marketCap,totalVolume\n1,\"1/1/2021, 12:00:00 AM\",x,2,3,4\n",
            Format::CoinGecko2021Csv,
        ),
        ("coin,ts,price\nx,1,2\n", Format::Csv),
        ("\u{feff}coin,ts\nx,1\n", Format::Csv),
        ("{\"coin\":\"x\",\"ts\":1}\n", Format::Jsonl),
        (
            "{\"Rank\":1,\"Name\":\"BTCBitcoin\",\"Symbol\":\"BTC\",\"Market Cap\":\"$1\",\"Price\":\"$1\",\"Circulating Supply\":\"1 BTC\",\"volume (24h)\":0,\"date\":1}\n",
            Format::CmcNdjson,
        ),
        (
            "[{\"id\":\"btc-bitcoin\",\"last_updated\":\"2019-09-06T12:40:34Z\",\"quotes\":{\"USD\":{\"price\":1}}}]",
            Format::CoinpaprikaTickers,
        ),
    ];
    for (text, want) in cases {
        let r = reader(text, "in", Format::Auto, &ReadOptions::default()).unwrap();
        assert_eq!(r.format(), want, "{text}");
        let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
        assert_eq!(
            (c.batch.len(), c.errors.len()),
            (1, 0),
            "{want}: {:?}",
            c.errors
        );
        assert_eq!(
            c.batch.coins[0].chars().next(),
            Some(
                if want == Format::CmcNdjson || want == Format::CoinpaprikaTickers {
                    'b'
                } else {
                    'x'
                }
            )
        );
    }
    // Pretty-printed responses: the first line alone says nothing.
    let pretty = "[\n  {\n    \"id\": \"btc-bitcoin\",\n    \"last_updated\": \"2019-09-06T12:40:34Z\",\n    \"quotes\": {\"USD\": {\"price\": 1}}\n  }\n]\n";
    let r = reader(pretty, "p.json", Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(r.format(), Format::CoinpaprikaTickers);
    assert_eq!(merge(r.collect::<Result<Vec<_>>>().unwrap()).batch.len(), 1);
    let pretty = "[\n {\n  \"timestamp\": \"2019-01-01T00:00:00Z\", \"price\": 3743.13\n }\n]";
    let opts = ReadOptions {
        coin: Some("btc-bitcoin".into()),
        ..ReadOptions::default()
    };
    let r = reader(pretty, "h.json", Format::Auto, &opts).unwrap();
    assert_eq!(r.format(), Format::CoinpaprikaHistorical);
    let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
    assert_eq!(
        (c.batch.coins[0].as_str(), c.batch.ts[0], c.batch.price[0]),
        ("btc-bitcoin", 1_546_300_800_000, 3743.13)
    );
    let err = reader(pretty, "h.json", Format::Auto, &ReadOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not name its coin"), "{err}");

    let err = read_str(
        "Date,Close\n2024-01-01,5\n",
        Format::Auto,
        &ReadOptions::default(),
    )
    .err()
    .unwrap();
    let err = format!("{err:#}");
    assert!(
        err.contains("unrecognised CSV header `Date,Close`") && err.contains("coin=Symbol"),
        "{err}"
    );
    assert!(read_str("", Format::Auto, &ReadOptions::default()).is_err());
}

#[test]
fn column_map_loads_other_csvs() {
    let text = "Date,Symbol,Open,Close,Volume\n\
                01/02/2024,BTC,1,45000.5,123\n\
                01/03/2024,ETH,2,2300.25,\n";
    let opts = ReadOptions {
        map: "coin=Symbol, ts=Date, price=Close, volume=Volume"
            .parse()
            .unwrap(),
        ts_format: Some("%m/%d/%Y".into()),
        ..ReadOptions::default()
    };
    let c = merge(read_str(text, Format::Auto, &opts).unwrap());
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.batch.coins, ["BTC", "ETH"]);
    assert_eq!(c.batch.ts, [1_704_153_600_000, 1_704_240_000_000]);
    assert_eq!(c.batch.price, [45000.5, 2300.25]);
    assert_eq!(c.batch.volume[0], 123.0);
    assert_eq!(bits(c.batch.volume[1]), NAN);

    // Bad values name the field and the column they came from.
    let c = merge(
        read_str(
            "Date,Symbol,Close,Volume\n01/02/2024,BTC,n/a,1\n",
            Format::Csv,
            &opts,
        )
        .unwrap(),
    );
    assert_eq!(
        c.errors[0].to_string(),
        "in.csv:2: field `price`: column `Close`: expected a number, got `n/a`"
    );

    // A fixed coin and seconds.
    let opts = ReadOptions {
        map: "ts=time,price=close".parse().unwrap(),
        ts_unit: TsUnit::S,
        coin: Some("btc-bitcoin".into()),
        delimiter: b';',
        ..ReadOptions::default()
    };
    let c = merge(read_str("time;Close\n1690971978;29459.483105\n", Format::Csv, &opts).unwrap());
    assert_eq!(c.batch.coins, ["btc-bitcoin"]);
    assert_eq!(
        (c.batch.ts[0], c.batch.price[0]),
        (1_690_971_978_000, 29459.483105)
    );

    let err = read_str(
        "Date,Close\n",
        Format::Csv,
        &ReadOptions {
            map: "coin=Ticker,ts=Date".parse().unwrap(),
            ..ReadOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        format!("{err}")
            .contains("column `Ticker` (mapped to `coin`) is not in the header: Date,Close"),
        "{err}"
    );
    let err = read_str("Date,Close\n", Format::Csv, &ReadOptions::default())
        .err()
        .unwrap();
    assert!(
        format!("{err}").contains("no timestamp column (looked for `ts`)"),
        "{err}"
    );
}

#[test]
fn column_map_syntax_errors_are_clear() {
    let m: ColumnMap = "coin=Symbol,market-cap=MCap".parse().unwrap();
    assert_eq!(m.get(Field::MarketCap), Some("MCap"));
    let e = "coin=Symbol,cost=Close"
        .parse::<ColumnMap>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `cost`"), "{e}");
    assert!(
        "coin"
            .parse::<ColumnMap>()
            .unwrap_err()
            .to_string()
            .contains("field=Column")
    );
    assert!(
        "coin=a,coin=b"
            .parse::<ColumnMap>()
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    assert_eq!(
        "coingecko-csv".parse::<Format>().unwrap(),
        Format::CoinGeckoCsv
    );
    assert!(
        "xml"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("cmc-ndjson")
    );
}

/// An awkward batch through the SDK's JSONL writer and back: the fast path, bit for bit.
#[test]
fn jsonl_round_trips_the_sdk_format_bit_exactly() {
    let mut b = Batch::default();
    let mut d = CoinDict::default();
    let vals = [
        f64::NAN,
        f64::INFINITY,
        -0.0,
        5e-324,
        1e-36,
        f64::MAX,
        0.1 + 0.2,
    ];
    for (i, v) in vals.iter().enumerate() {
        let row = Row {
            coin: if i % 2 == 0 { "a \"quoted\" coin" } else { "b" },
            ts: i as i64 * 1000 - 2000,
            price: *v,
            market_cap: -v,
            volume: *v,
            supply: 1.0,
            rank: i as u32,
        };
        b.push_row(&row, &mut d);
    }
    // `-NaN` is a NaN with another payload; the reader must hand back the canonical one.
    let mut canonical_b = b.clone();
    canonical_b.market_cap[0] = f64::NAN;
    let mut text = Vec::new();
    strata_plugin_sdk::jsonl::write(&b, &mut text);
    let c = merge(
        read_str(
            std::str::from_utf8(&text).unwrap(),
            Format::Auto,
            &ReadOptions::default(),
        )
        .unwrap(),
    );
    assert!(c.errors.is_empty());
    assert!(
        c.batch.bit_eq(&canonical_b),
        "{:?}",
        c.batch.first_difference(&canonical_b)
    );
    assert_eq!(bits(c.batch.market_cap[0]), NAN);
}

#[test]
fn jsonl_reads_leniently_and_reports_bad_lines() {
    let text = "{\"coin\":\"a\",\"ts\":\"2024-01-01T00:00:00Z\",\"price\":1.5}\n\
                \n\
                {\"coin\":\"a\",\"ts\":2,\"price\":\"oops\"}\n\
                [1,2]\n\
                {\"coin\":\"b\",\"ts\":3,\"volume\":\"7.25\",\"rank\":4,\"price\":null,\"other\":true}\n\
                {\"ts\":4}\n\
                {not json\n";
    let c = read_all(text, Format::Jsonl);
    assert_eq!(c.batch.len(), 2);
    assert_eq!(c.batch.ts, [1_704_067_200_000, 3]);
    assert_eq!(c.batch.price[0], 1.5);
    assert_eq!(bits(c.batch.price[1]), NAN);
    assert_eq!(c.batch.volume[1], 7.25);
    assert_eq!(c.batch.rank, [0, 4]);
    let shown: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert_eq!(
        shown[0],
        "in.csv:3: field `price`: expected a number, got `oops`"
    );
    assert!(
        shown[1].starts_with("in.csv:4: expected a JSON object"),
        "{}",
        shown[1]
    );
    assert_eq!(shown[2], "in.csv:6: field `coin`: missing");
    assert!(
        shown[3].starts_with("in.csv:7: not valid JSON"),
        "{}",
        shown[3]
    );
}

/// Found by fuzzing (`source_jsonl`): a line in the SDK's exact format plus a key `""` made
/// the reader return a batch with a nameless extra column. Unknown keys are ignored, as in any
/// other line the lenient path reads.
#[test]
fn jsonl_with_an_empty_key_reads_a_valid_batch() {
    let text = "{\"coin\":\"a\",\"ts\":1,\"price\":1.5,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":1,\"\":2}\n\
                {\"coin\":\"a\",\"ts\":2,\"price\":2.5,\"market_cap\":1,\"volume\":1,\"supply\":1,\"rank\":1}\n";
    let c = read_all(text, Format::Jsonl);
    c.batch.validate().unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.batch.ts, [1, 2]);
    assert_eq!(c.batch.price, [1.5, 2.5]);
    assert!(c.batch.extra.is_empty());
}

#[test]
fn cmc_display_strings_are_normalised() {
    let text = concat!(
        r#"{"Rank":1,"Name":"BTCBitcoin","Symbol":"BTC","Market Cap":"$1,488,566,971.96","Price":"$134.21","Circulating Supply":"11,091,325 BTC","volume (24h)":0,"% 1h":"0.64%","% 24h":"--","% 7d":"--","":"","date":1367107200000}"#,
        "\n",
        r#"{"Rank":2,"Name":"ETHEthereum","Symbol":"ETH","Market Cap":"--","Price":"$0.0003261","Circulating Supply":"120,503,369 ETH *","volume (24h)":"$1,405,868,727.07","date":1737244800000}"#,
        "\n",
        r#"{"Rank":3,"Name":"XRPXRP","Symbol":"XRP","Market Cap":"$1","Price":"$1.00","Circulating Supply":"1 XRP","volume (24h)":"$0.00","date":1737244800000}"#,
        "\n",
        r#"{"Rank":4,"Name":"DOGEDogecoin","Symbol":"DOGE","Market Cap":"$1","Price":"cheap","Circulating Supply":"1 DOGE","volume (24h)":0,"date":1737244800000}"#,
        "\n",
    );
    let c = read_all(text, Format::CmcNdjson);
    assert_eq!(c.batch.coins, ["btc-bitcoin", "eth-ethereum", "xrp-xrp"]);
    assert_eq!(
        c.coins[0],
        CoinMeta {
            id: "btc-bitcoin".into(),
            symbol: Some("BTC".into()),
            name: Some("Bitcoin".into())
        }
    );
    assert_eq!(c.coins[2].name.as_deref(), Some("XRP"));
    let r = c.batch.row(0);
    assert_eq!((r.ts, r.rank), (1_367_107_200_000, 1));
    assert_eq!(bits(r.price), bits(134.21));
    assert_eq!(bits(r.market_cap), bits(1_488_566_971.96));
    assert_eq!(bits(r.supply), bits(11_091_325.0));
    assert_eq!(bits(r.volume), NAN, "integer 0 volume means missing");
    let r = c.batch.row(1);
    assert_eq!(bits(r.market_cap), NAN);
    assert_eq!(bits(r.price), bits(0.0003261));
    assert_eq!(bits(r.volume), bits(1_405_868_727.07));
    assert_eq!(bits(r.supply), bits(120_503_369.0));
    assert_eq!(c.batch.volume[2], 0.0, "the string $0.00 is a real zero");
    assert_eq!(c.errors.len(), 1);
    assert_eq!(
        c.errors[0].to_string(),
        "in.csv:4: field `Price`: expected an amount, got `cheap`"
    );
}

#[test]
fn cmc_real_file_reads_whole_without_errors() {
    let Some(path) = shared("cmc-weekly-top20/cmc_weekly_snapshots_2013-2025.ndjson.gz") else {
        return;
    };
    let r = open(&path, Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(r.format(), Format::CmcNdjson);
    let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
    assert!(
        c.errors.is_empty(),
        "{:?}",
        &c.errors[..c.errors.len().min(5)]
    );
    assert_eq!(c.batch.len(), 11_000);
    c.batch.validate().unwrap();
    // ETC was two coins; SHIB's two spellings are one.
    assert!(c.batch.coins.contains(&"etc-ethercoin".to_string()));
    assert!(c.batch.coins.contains(&"etc-ethereum-classic".to_string()));
    assert_eq!(
        c.batch
            .coins
            .iter()
            .filter(|id| id.starts_with("shib-"))
            .count(),
        1
    );
    // The first weeks (the first 596 rows: 35 weeks, not the 34 SOURCE.md says) have the
    // integer 0 as volume, which is "missing"; every later row has one.
    for (i, v) in c.batch.volume.iter().enumerate() {
        assert_eq!(v.is_nan(), i < 596, "row {i}");
        assert!(c.batch.price[i] > 0.0 && c.batch.supply[i] > 0.0 && c.batch.rank[i] > 0);
    }
    // The last row, checked against its JSON text.
    let last = c.batch.row(c.batch.len() - 1);
    assert_eq!(last.coin, "trump-official-trump");
    assert_eq!((last.ts, last.rank), (1_737_244_800_000, 18));
    assert_eq!(bits(last.market_cap), bits(9_100_600_206.56));
    assert_eq!(bits(last.volume), bits(39_063_698_884.55));
    assert_eq!(bits(last.supply), bits(200_000_000.0));
}

/// Rows of a CoinGecko-style CSV parsed the plain way (`str::parse`), to check the reader.
fn plain_parse(lines: &[String], cols: [usize; 5]) -> Vec<(String, i64, [u64; 3])> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| -> u64 {
                if f[i].is_empty() {
                    NAN
                } else {
                    f[i].parse::<f64>().unwrap().to_bits()
                }
            };
            (
                f[cols[0]].to_string(),
                f[cols[1]].parse().unwrap(),
                [num(cols[2]), num(cols[3]), num(cols[4])],
            )
        })
        .collect()
}

fn as_plain(b: &Batch) -> Vec<(String, i64, [u64; 3])> {
    b.rows()
        .map(|r| {
            (
                r.coin.to_string(),
                r.ts,
                [bits(r.price), bits(r.market_cap), bits(r.volume)],
            )
        })
        .collect()
}

#[test]
fn coingecko_extract_in_the_repository_reads_bit_exactly() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/coingecko-extract.csv"
    ));
    let r = open(&path, Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(r.format(), Format::CoinGeckoCsv);
    let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
    assert!(c.errors.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    // coin_id,timestamp,price,volume,market_cap
    assert_eq!(as_plain(&c.batch), plain_parse(&lines, [0, 1, 2, 4, 3]));
    assert_eq!(c.batch.len(), 300);
    assert!(c.batch.supply.iter().all(|v| v.to_bits() == NAN));
}

#[test]
fn coingecko_daily_first_chunk_of_the_real_file_reads_bit_exactly() {
    let Some(path) = shared("coingecko-daily-1010coins/coins_daily_2013-04-28_2025-07-14.csv.gz")
    else {
        return;
    };
    let opts = ReadOptions {
        chunk_rows: 20_000,
        ..ReadOptions::default()
    };
    let mut r = open(&path, Format::Auto, &opts).unwrap();
    assert_eq!(r.format(), Format::CoinGeckoCsv);
    // Only the first chunk: the reader streams, so this reads a slice of the 90 MB file.
    let c = r.next().unwrap().unwrap();
    assert_eq!(c.batch.len(), 20_000);
    assert!(c.errors.is_empty());
    let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap());
    let lines: Vec<String> = BufReader::new(gz)
        .lines()
        .skip(1)
        .take(20_000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(as_plain(&c.batch), plain_parse(&lines, [0, 1, 2, 4, 3]));
}

#[test]
fn coingecko_2021_real_file_reads_whole() {
    let Some(path) = shared("coingecko-2021-daily/coins_2021_daily_top500-not-in-2025-set.csv.gz")
    else {
        return;
    };
    let r = open(&path, Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(r.format(), Format::CoinGecko2021Csv);
    let c = merge(r.collect::<Result<Vec<_>>>().unwrap());
    assert!(
        c.errors.is_empty(),
        "{:?}",
        &c.errors[..c.errors.len().min(3)]
    );
    assert_eq!(c.batch.len(), 65_432);
    assert_eq!(c.batch.coins.len(), 224);
    // timestamp,readableTimestamp,coinId,price,marketCap,totalVolume; the quoted readable
    // timestamp holds a comma, so check the first rows by their unquoted tail.
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
        .take(4096)
        .read_to_string(&mut text)
        .unwrap_or_default();
    for (i, line) in text.lines().skip(1).take(10).enumerate() {
        let (ts, rest) = line.split_once(',').unwrap();
        let tail = rest.rsplitn(5, ',').collect::<Vec<_>>();
        let (coin, price, mcap, vol) = (tail[3], tail[2], tail[1], tail[0]);
        let r = c.batch.row(i);
        assert_eq!((r.coin, r.ts), (coin, ts.parse().unwrap()));
        assert_eq!(bits(r.price), bits(price.parse().unwrap()));
        assert_eq!(bits(r.market_cap), bits(mcap.parse().unwrap()));
        assert_eq!(bits(r.volume), bits(vol.parse().unwrap()));
    }
}

#[test]
fn chunk_append_merges_dictionaries_and_metadata() {
    let mut a = read_all("coin,ts\nx,1\ny,2\n", Format::Csv);
    let mut b = read_all(
        r#"{"Rank":1,"Name":"BTCBitcoin","Symbol":"BTC","Market Cap":"$1","Price":"$1","Circulating Supply":"1 BTC","volume (24h)":0,"date":5}"#,
        Format::CmcNdjson,
    );
    b.errors.push(RowError {
        file: "f".into(),
        line: 9,
        field: None,
        message: "m".into(),
    });
    a.append(b);
    assert_eq!(a.batch.coins, ["x", "y", "btc-bitcoin"]);
    assert_eq!(a.coins[2].symbol.as_deref(), Some("BTC"));
    assert_eq!(a.batch.ts, [1, 2, 5]);
    assert_eq!(a.errors.len(), 1);
    assert_eq!(a.errors[0].to_string(), "f:9: m");
}

/// The polled Coinpaprika CSV through column maps: epoch seconds in one column, Go's time
/// format in another; both must give the same times, out-of-order rows kept in file order.
#[test]
fn column_map_on_the_real_polled_coinpaprika_csv() {
    let Some(path) = shared("coinpaprika-samples/v1_tickers_btc-bitcoin_polled_10s_2023-08-02.csv")
    else {
        return;
    };
    let by_seconds = ReadOptions {
        map: "coin=ticker_id,ts=last_update_timestamp".parse().unwrap(),
        ts_unit: TsUnit::S,
        ..ReadOptions::default()
    };
    let by_text = ReadOptions {
        map: "coin=ticker_id,ts=last_update".parse().unwrap(),
        ts_format: Some("%Y-%m-%d %H:%M:%S %z UTC".into()),
        ..ReadOptions::default()
    };
    let a = merge(
        open(&path, Format::Auto, &by_seconds)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap(),
    );
    let b = merge(
        open(&path, Format::Csv, &by_text)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap(),
    );
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors.first(),
        b.errors.first()
    );
    let lines = std::fs::read_to_string(&path).unwrap().lines().count() - 1;
    assert_eq!(a.batch.len(), lines);
    assert!(
        a.batch.bit_eq(&b.batch),
        "{:?}",
        a.batch.first_difference(&b.batch)
    );
    assert_eq!(a.batch.coins, ["btc-bitcoin"]);
    assert_eq!(
        (a.batch.ts[0], a.batch.price[0]),
        (1_690_971_978_000, 29459.483105)
    );
    assert!(
        a.batch.ts.windows(2).any(|w| w[1] < w[0]),
        "the file's backward step is kept"
    );
}
