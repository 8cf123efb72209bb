//! Tests of the Coinpaprika parsers on the real recorded responses, and of the client against
//! a local HTTP server (a `TcpListener` thread) that serves them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::source::tests::shared;

const NAN: u64 = 0x7ff8_0000_0000_0000;

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn tickers_2019() -> Option<Vec<u8>> {
    shared("coinpaprika-samples/v1_tickers_2019-09-06.json.gz").map(|p| gunzip(&p))
}

fn historical_2019() -> Option<Vec<u8>> {
    shared("coinpaprika-samples/v1_tickers_btc-bitcoin_historical_2019-01-01_5m.json")
        .map(|p| std::fs::read(p).unwrap())
}

fn row<'a>(c: &'a Chunk, coin: &str) -> (usize, strata_plugin_sdk::Row<'a>) {
    let i = c
        .batch
        .rows()
        .position(|r| r.coin == coin)
        .unwrap_or_else(|| panic!("{coin} missing"));
    (i, c.batch.row(i))
}

/// (id, symbol, name, rank, supply, last_updated ms, price, market_cap, volume_24h)
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    u32,
    f64,
    i64,
    f64,
    f64,
    f64,
);

/// Checks the recorded 2019 tickers: every coin, and several coins field by field, bit for
/// bit against the values in the JSON text.
fn check_tickers_2019(c: &Chunk) {
    assert!(
        c.errors.is_empty(),
        "{:?}",
        &c.errors[..c.errors.len().min(3)]
    );
    assert_eq!(c.batch.len(), 2541);
    assert_eq!(c.batch.coins.len(), 2541);
    c.batch.validate().unwrap();
    // (id, symbol, name, rank, supply, last_updated ms, price, market_cap, volume_24h)
    let expect: [Expected; 4] = [
        (
            "btc-bitcoin",
            "BTC",
            "Bitcoin",
            1,
            17919100.0,
            1567773634000,
            10913.27425377,
            195556052680.0,
            15497171907.63,
        ),
        (
            "eth-ethereum",
            "ETH",
            "Ethereum",
            2,
            107629352.0,
            1567773634000,
            177.21333903,
            19073348693.0,
            5218942622.329,
        ),
        (
            "miota-iota",
            "MIOTA",
            "IOTA",
            18,
            2779530283.0,
            1567773634000,
            0.24393702,
            678030334.0,
            6310790.1663739,
        ),
        (
            "eos-eos",
            "EOS",
            "EOS",
            8,
            1018578880.0,
            1567773634000,
            3.33850223,
            3400527862.0,
            1344033021.4783,
        ),
    ];
    for (id, symbol, name, rank, supply, ts, price, mcap, vol) in expect {
        let (i, r) = row(c, id);
        let meta = &c.coins[c.batch.coin_index[i] as usize];
        assert_eq!(
            (
                meta.id.as_str(),
                meta.symbol.as_deref(),
                meta.name.as_deref()
            ),
            (id, Some(symbol), Some(name))
        );
        assert_eq!((r.rank, r.ts), (rank, ts), "{id}");
        for (got, want, what) in [
            (r.supply, supply, "supply"),
            (r.price, price, "price"),
            (r.market_cap, mcap, "market_cap"),
            (r.volume, vol, "volume"),
        ] {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{id} {what}: {got} vs {want}"
            );
        }
    }
    // Every coin against a second, independent reading of the JSON.
    let doc: serde_json::Value = {
        let path = shared("coinpaprika-samples/v1_tickers_2019-09-06.json.gz").unwrap();
        serde_json::from_slice(&gunzip(&path)).unwrap()
    };
    for (i, t) in doc.as_array().unwrap().iter().enumerate() {
        let r = c.batch.row(i);
        let usd = &t["quotes"]["USD"];
        assert_eq!(r.coin, t["id"].as_str().unwrap());
        assert_eq!(
            r.price.to_bits(),
            usd["price"].as_f64().unwrap().to_bits(),
            "{}",
            r.coin
        );
        assert_eq!(
            r.market_cap.to_bits(),
            usd["market_cap"].as_f64().unwrap().to_bits()
        );
        assert_eq!(
            r.volume.to_bits(),
            usd["volume_24h"].as_f64().unwrap().to_bits()
        );
        assert_eq!(
            r.supply.to_bits(),
            t["circulating_supply"].as_f64().unwrap().to_bits()
        );
    }
    assert_eq!(
        c.batch.price.iter().copied().fold(f64::INFINITY, f64::min),
        1e-8
    );
}

#[test]
fn recorded_tickers_parse_bit_exactly() {
    let Some(text) = tickers_2019() else { return };
    check_tickers_2019(&parse_tickers(&text, "tickers.json").unwrap());
}

#[test]
fn a_btc_quoted_response_is_a_clear_per_coin_error() {
    let Some(path) = shared("coinpaprika-samples/v1_tickers_quotes-BTC_2019-09-06.json.gz") else {
        return;
    };
    let c = parse_tickers(&gunzip(&path), "btc.json").unwrap();
    assert_eq!(c.batch.len(), 0);
    assert_eq!(c.errors.len(), 2542);
    assert_eq!(
        c.errors[0].to_string(),
        "btc.json:1: field `quotes.USD`: coin `btc-bitcoin`: no USD quote (the response has \
         quotes in BTC); request the tickers with quotes=USD"
    );
}

#[test]
fn schema_surprises_are_handled_per_coin() {
    let text = br#"[
      {"id":"old-coin","symbol":"OLD","name":"Old","rank":"7","circulating_supply":"1000.5","max_supply":0,
       "last_updated":"2018-01-01T00:00:00Z","quotes":{"USD":{"price":"0.00001234","market_cap":"12340","volume_24h":null}}},
      {"id":"no-quotes","last_updated":"2019-09-06T12:40:34Z"},
      {"id":"bad-price","last_updated":"2019-09-06T12:40:34Z","quotes":{"USD":{"price":"n/a"}}},
      {"id":"bad-time","last_updated":"yesterday","quotes":{"USD":{"price":1}}},
      {"symbol":"NOID","last_updated":"2019-09-06T12:40:34Z","quotes":{"USD":{"price":1}}},
      {"id":"nulls","rank":null,"circulating_supply":null,"last_updated":"2019-09-06T12:40:34+02:00","quotes":{"USD":{"price":2}}}
    ]"#;
    let c = parse_tickers(text, "t.json").unwrap();
    assert_eq!(c.batch.coins, ["old-coin", "nulls"]);
    let r = c.batch.row(0);
    assert_eq!((r.rank, r.ts), (7, 1_514_764_800_000));
    assert_eq!(r.supply.to_bits(), 1000.5f64.to_bits());
    assert_eq!(r.price.to_bits(), 0.00001234f64.to_bits());
    assert_eq!(r.market_cap, 12340.0);
    assert_eq!(r.volume.to_bits(), NAN);
    let r = c.batch.row(1);
    assert_eq!((r.rank, r.ts), (0, 1_567_766_434_000));
    assert_eq!(r.supply.to_bits(), NAN);
    let shown: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert!(
        shown[0].starts_with(
            "t.json:2: field `quotes.USD`: coin `no-quotes`: no USD quote (the entry has no quotes)"
        ),
        "{}",
        shown[0]
    );
    assert_eq!(
        shown[1],
        "t.json:3: field `quotes.USD.price`: coin `bad-price`: expected a number, got `n/a`"
    );
    assert_eq!(
        shown[2],
        "t.json:4: field `last_updated`: coin `bad-time`: expected an RFC 3339 time, got `yesterday`"
    );
    assert_eq!(shown[3], "t.json:5: field `id`: missing coin id");

    let err = parse_tickers(br#"{"error":"id not found"}"#, "u")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "u: the API answered with an error: `\"id not found\"`");
    let err = parse_tickers(b"[1]", "u").unwrap_err().to_string();
    assert!(err.contains("entry 1 is not a JSON object"), "{err}");
    assert!(
        parse_tickers(b"<html>", "u")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON")
    );
}

#[test]
fn recorded_historical_ticks_parse() {
    let Some(text) = historical_2019() else {
        return;
    };
    let c = parse_historical(&text, "h.json", "btc-bitcoin").unwrap();
    assert!(c.errors.is_empty());
    assert_eq!(c.batch.len(), 1000);
    assert_eq!(c.batch.coins, ["btc-bitcoin"]);
    assert_eq!(c.batch.ts[0], 1_546_300_800_000);
    assert_eq!(c.batch.ts[999], 1_546_600_500_000);
    assert!(c.batch.ts.windows(2).all(|w| w[1] - w[0] == 300_000));
    let r = c.batch.row(0);
    assert_eq!(r.price.to_bits(), 3743.13f64.to_bits());
    assert_eq!(
        (r.volume, r.market_cap),
        (3_364_796_028.0, 65_338_972_677.0)
    );
    assert_eq!((r.supply.to_bits(), r.rank), (NAN, 0));
}

// ---- the client, against a local server ----

/// What the test server does with one request.
enum Reply {
    /// Status, extra headers, body.
    Send(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Read the request, then say nothing for this long and hang up.
    Stall(Duration),
}

struct Server {
    base: String,
    /// The request paths seen, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

/// Serves on 127.0.0.1, one thread per connection; `handler` gets the request number (from 0)
/// and the path with query.
fn serve(handler: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(stream) = stream else { continue };
            let (handler, log) = (handler.clone(), log.clone());
            std::thread::spawn(move || answer(stream, &*handler, &log));
        }
    });
    Server { base, seen }
}

fn answer(mut stream: TcpStream, handler: &dyn Fn(usize, &str) -> Reply, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let n = {
        let mut log = log.lock().unwrap();
        log.push(path.clone());
        log.len() - 1
    };
    match handler(n, &path) {
        Reply::Stall(d) => std::thread::sleep(d),
        Reply::Send(status, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    }
}

fn fast_opts() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(400),
        retries: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

#[test]
fn fetches_all_recorded_tickers() {
    let Some(text) = tickers_2019() else { return };
    let server = serve(move |_, _| Reply::Send(200, vec![], text.clone()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let c = client.fetch_tickers().unwrap();
    check_tickers_2019(&c);
    assert_eq!(*server.seen.lock().unwrap(), ["/v1/tickers?quotes=USD"]);
}

#[test]
fn rate_limit_waits_for_retry_after_then_succeeds() {
    let Some(text) = tickers_2019() else { return };
    let server = serve(move |n, _| {
        if n == 0 {
            Reply::Send(
                429,
                vec![("Retry-After", "1".into())],
                b"{\"error\":\"slow down\"}".to_vec(),
            )
        } else {
            Reply::Send(200, vec![], text.clone())
        }
    });
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let started = Instant::now();
    let c = client.fetch_tickers().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was not honoured"
    );
    assert_eq!(c.batch.len(), 2541);
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}

#[test]
fn a_retry_after_beyond_the_limit_fails_at_once() {
    let server = serve(|_, _| Reply::Send(429, vec![("Retry-After", "86400".into())], Vec::new()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let err = client.fetch_tickers().unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "GET {}/v1/tickers?quotes=USD failed after 1 attempt: HTTP 429",
            server.base
        )),
        "{err}"
    );
    assert!(err.contains("86400 s"), "{err}");
}

#[test]
fn a_timeout_is_retried() {
    let Some(text) = tickers_2019() else { return };
    let server = serve(move |n, _| {
        if n == 0 {
            Reply::Stall(Duration::from_millis(1500))
        } else {
            Reply::Send(200, vec![], text.clone())
        }
    });
    let opts = ClientOptions {
        timeout: Duration::from_millis(2000),
        ..fast_opts()
    };
    // The overall timeout must exceed the time to send 1 MB locally; the stall must exceed it.
    let client = Client::new(
        &server.base,
        ClientOptions {
            timeout: Duration::from_millis(700),
            ..opts
        },
    )
    .unwrap();
    let c = client.fetch_tickers().unwrap();
    assert_eq!(c.batch.len(), 2541);
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}

#[test]
fn server_errors_are_retried_then_reported_with_the_url() {
    let server = serve(|_, _| Reply::Send(503, vec![], b"upstream down".to_vec()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let err = client.fetch_tickers().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "GET {}/v1/tickers?quotes=USD failed after 4 attempts: HTTP 503: upstream down",
            server.base
        )
    );
    assert_eq!(server.seen.lock().unwrap().len(), 4);
}

#[test]
fn client_errors_are_not_retried() {
    let server = serve(|_, _| Reply::Send(404, vec![], br#"{"error":"id not found"}"#.to_vec()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let err = client
        .fetch_historical("nope-coin", 0, 1000, "1h")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/v1/tickers/nope-coin/historical?start=0&end=1&interval=1h"),
        "{err}"
    );
    assert!(
        err.ends_with("failed after 1 attempt: HTTP 404: {\"error\":\"id not found\"}"),
        "{err}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    assert!(client.fetch_historical("a/../b", 0, 1, "1h").is_err());
    assert!(
        client
            .fetch_historical("btc-bitcoin", 0, 1, "1h&x=1")
            .is_err()
    );
}

#[test]
fn a_schema_surprise_over_http_names_the_url() {
    let server =
        serve(|_, _| Reply::Send(200, vec![], br#"{"error":"invalid parameters"}"#.to_vec()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let err = client.fetch_tickers().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}/v1/tickers?quotes=USD: the API answered with an error: `\"invalid parameters\"`",
            server.base
        )
    );
}

#[test]
fn connection_refused_is_retried_and_reported() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), fast_opts()).unwrap();
    let err = client.fetch_tickers().unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "GET http://127.0.0.1:{port}/v1/tickers?quotes=USD failed after 4 attempts"
        )),
        "{err}"
    );
}

#[test]
fn historical_fetch_follows_pages() {
    let Some(text) = historical_2019() else {
        return;
    };
    let all: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
    // Serves the recorded ticks from `start` on, at most `limit` of them, like the API.
    let server = serve(move |_, path| {
        let q = |key: &str| -> i64 {
            path.split(['?', '&'])
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        let (start, end, limit) = (q("start"), q("end"), q("limit") as usize);
        let page: Vec<&serde_json::Value> = all
            .iter()
            .filter(|t| {
                let s = chrono::DateTime::parse_from_rfc3339(t["timestamp"].as_str().unwrap())
                    .unwrap()
                    .timestamp();
                s >= start && s <= end
            })
            .take(limit)
            .collect();
        Reply::Send(200, vec![], serde_json::to_vec(&page).unwrap())
    });
    let client = Client::new(
        &server.base,
        ClientOptions {
            page_limit: 400,
            ..fast_opts()
        },
    )
    .unwrap();
    let c = client
        .fetch_historical("btc-bitcoin", 1_546_300_800_000, 1_546_600_500_000, "5m")
        .unwrap();
    let direct = parse_historical(&text, "h", "btc-bitcoin").unwrap();
    assert!(
        c.batch.bit_eq(&direct.batch),
        "{:?}",
        c.batch.first_difference(&direct.batch)
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with(
        "/v1/tickers/btc-bitcoin/historical?start=1546300800&end=1546600500&interval=5m&limit=400"
    ));
    // The next page starts a second after the last tick of the previous one.
    assert!(
        seen[1].contains(&format!("start={}&", 1_546_300_800 + 399 * 300 + 1)),
        "{seen:?}"
    );
}

#[test]
fn collect_once_and_periodically() {
    let Some(text) = tickers_2019() else { return };
    let server = serve(move |_, _| Reply::Send(200, vec![], text.clone()));
    let client = Client::new(&server.base, fast_opts()).unwrap();
    let mut got = Vec::new();
    collect(&client, None, &mut |c| {
        got.push(c.batch.len());
        Ok(())
    })
    .unwrap();
    assert_eq!(got, [2541]);

    // Periodic: the second poll sees the same `last_updated`s, so it adds no rows; the sink's
    // error stops the loop and comes back.
    let mut polls = Vec::new();
    let err = collect(&client, Some(Duration::from_millis(10)), &mut |c| {
        polls.push((c.batch.len(), c.coins.len()));
        if polls.len() == 2 {
            anyhow::bail!("enough")
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "enough");
    assert_eq!(polls, [(2541, 2541), (0, 0)]);
}
