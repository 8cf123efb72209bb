//! The Coinpaprika HTTP client (blocking, `ureq` with rustls) and the collector loop.
//!
//! Every request has a connect timeout and an overall timeout. Transport failures (refused
//! connections, timeouts, resets), HTTP 5xx and HTTP 429 are retried up to
//! [`ClientOptions::retries`] times: after a 429 the client waits as long as its `Retry-After`
//! header says (seconds or an HTTP date; refusing waits above
//! [`ClientOptions::max_retry_after`]), otherwise with exponential backoff (`backoff`, doubled
//! each time, at most `max_backoff`). Other 4xx answers fail at once. Errors name the URL, the
//! number of attempts and the last failure, with the start of the response body.

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::{info, warn};

use super::{parse_historical, parse_tickers};
use crate::source::{Chunk, CoinMeta};

/// The public API. The paid plans use `https://api-pro.coinpaprika.com` with an API key.
pub const DEFAULT_BASE_URL: &str = "https://api.coinpaprika.com";

/// Timeouts, retries and credentials of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time to establish a connection (DNS, TCP, TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Time for a whole request, body included. Default 60 s.
    pub timeout: Duration,
    /// Retries after the first attempt. Default 5.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one. Default 1 s.
    pub backoff: Duration,
    /// Longest backoff wait. Default 60 s.
    pub max_backoff: Duration,
    /// Longest `Retry-After` the client waits; a longer one fails the request. Default 10 min.
    pub max_retry_after: Duration,
    /// Sent as the `Authorization` header (the paid API's key).
    pub api_key: Option<String>,
    pub user_agent: String,
    /// Largest response body accepted, in bytes. Default 512 MiB.
    pub max_body: u64,
    /// Rows asked for per historical request (the API allows 1..=5000). Default 5000.
    pub page_limit: u32,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            retries: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            api_key: None,
            user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")).to_string(),
            max_body: 512 << 20,
            page_limit: 5000,
        }
    }
}

/// A Coinpaprika API client.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    opts: ClientOptions,
}

/// Why one attempt failed, and whether to try again.
struct Failure {
    message: String,
    retry: Retry,
}

enum Retry {
    No,
    /// After the exponential backoff wait.
    Backoff,
    /// After this wait (a `Retry-After`).
    After(Duration),
}

impl Client {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_BASE_URL`] or a local test server).
    pub fn new(base_url: &str, opts: ClientOptions) -> Result<Client> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("Coinpaprika base URL `{base_url}` must start with http:// or https://");
        }
        if opts.page_limit == 0 || opts.page_limit > 5000 {
            bail!("page limit {} is outside 1..=5000", opts.page_limit);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .user_agent(opts.user_agent.as_str())
            .build()
            .new_agent();
        Ok(Client { base, agent, opts })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET base + path_and_query`, retried as the module docs say; the response body.
    pub fn get(&self, path_and_query: &str) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut attempt = 0u32;
        loop {
            let failure = match self.attempt(&url) {
                Ok(body) => return Ok(body),
                Err(f) => f,
            };
            attempt += 1;
            let wait = match failure.retry {
                Retry::No => None,
                Retry::Backoff => Some(self.backoff(attempt - 1)),
                Retry::After(wait) => Some(wait),
            };
            match wait {
                Some(wait) if attempt <= self.opts.retries => {
                    warn!(
                        url = %url,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "request failed, retrying: {}",
                        failure.message
                    );
                    sleep(wait);
                }
                _ => bail!(
                    "GET {url} failed after {attempt} attempt{}: {}",
                    if attempt == 1 { "" } else { "s" },
                    failure.message
                ),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.opts
            .backoff
            .saturating_mul(factor)
            .min(self.opts.max_backoff)
    }

    /// One request.
    fn attempt(&self, url: &str) -> Result<Vec<u8>, Failure> {
        let mut req = self.agent.get(url).header("Accept", "application/json");
        if let Some(key) = &self.opts.api_key {
            req = req.header("Authorization", key.as_str());
        }
        let transient = |message: String| Failure {
            message,
            retry: Retry::Backoff,
        };
        let mut resp = match req.call() {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match e {
                    ureq::Error::Timeout(_)
                    | ureq::Error::Io(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Protocol(_)
                    | ureq::Error::BodyStalled => transient(e.to_string()),
                    other => Failure {
                        message: other.to_string(),
                        retry: Retry::No,
                    },
                });
            }
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return resp
                .body_mut()
                .with_config()
                .limit(self.opts.max_body)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(n) => Failure {
                        message: format!("the response is larger than {n} bytes"),
                        retry: Retry::No,
                    },
                    e => transient(format!("reading the response: {e}")),
                });
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        let snippet = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_string();
        let message = if snippet.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {snippet}")
        };
        Err(match status {
            429 => match retry_after.as_deref().map(parse_retry_after) {
                Some(Some(wait)) if wait > self.opts.max_retry_after => Failure {
                    message: format!(
                        "{message} (rate limited; Retry-After asks for {} s, more than the {} s allowed)",
                        wait.as_secs(),
                        self.opts.max_retry_after.as_secs()
                    ),
                    retry: Retry::No,
                },
                Some(Some(wait)) => Failure {
                    message: format!("{message} (rate limited)"),
                    retry: Retry::After(wait),
                },
                _ => transient(format!("{message} (rate limited)")),
            },
            500..=599 => transient(message),
            _ => Failure {
                message,
                retry: Retry::No,
            },
        })
    }

    /// All tickers (`GET /v1/tickers?quotes=USD`), one row per coin at its `last_updated`.
    pub fn fetch_tickers(&self) -> Result<Chunk> {
        let path = "/v1/tickers?quotes=USD";
        let body = self.get(path)?;
        parse_tickers(&body, &format!("{}{path}", self.base))
    }

    /// The historical ticks of `coin` (a Coinpaprika id such as `btc-bitcoin`) from `from_ms`
    /// to `to_ms` (ms since 1970, UTC, inclusive) at `interval` (`5m`, `1h`, `1d`, ...; what
    /// the API plan allows), following pages until the range is covered.
    pub fn fetch_historical(
        &self,
        coin: &str,
        from_ms: i64,
        to_ms: i64,
        interval: &str,
    ) -> Result<Chunk> {
        if coin.is_empty()
            || !coin
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        {
            bail!("`{coin}` is not a Coinpaprika coin id (like `btc-bitcoin`)");
        }
        if interval.is_empty() || !interval.bytes().all(|c| c.is_ascii_alphanumeric()) {
            bail!("`{interval}` is not a Coinpaprika interval (like `5m`, `1h`, `1d`)");
        }
        if from_ms > to_ms {
            bail!("historical range starts ({from_ms} ms) after it ends ({to_ms} ms)");
        }
        let end = to_ms.div_euclid(1000);
        let mut start = from_ms.div_euclid(1000);
        let mut out = Chunk::default();
        loop {
            let path = format!(
                "/v1/tickers/{coin}/historical?start={start}&end={end}&interval={interval}&limit={}&quote=usd",
                self.opts.page_limit
            );
            let body = self.get(&path)?;
            let url = format!("{}{path}", self.base);
            let page = parse_historical(&body, &url, coin)
                .with_context(|| format!("historical ticks of `{coin}`"))?;
            let entries = page.batch.len() + page.errors.len();
            let last = page.batch.ts.iter().copied().max();
            out.append(page);
            match last {
                Some(last) if entries >= self.opts.page_limit as usize => {
                    let next = last.div_euclid(1000) + 1;
                    if next <= start || next > end {
                        break;
                    }
                    start = next;
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

/// `Retry-After`: delay seconds, or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Some(Duration::from_millis(
        (when.timestamp_millis() - now).max(0) as u64,
    ))
}

/// Polls the tickers: once when `every` is `None`, else every `every` (measured from the
/// start of one poll to the next) until `sink` fails. Each poll's chunk goes to `sink`, less
/// the rows whose coin and `last_updated` equal the previous poll's (Coinpaprika updates a coin
/// every few minutes; polling faster would repeat rows). Rows whose time goes backwards are
/// passed on: out-of-order data is the store's to handle. A failed poll fails a single run; in
/// a periodic run it is logged and the next poll goes ahead.
pub fn collect(
    client: &Client,
    every: Option<Duration>,
    sink: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    let mut last_seen: HashMap<String, i64> = HashMap::new();
    loop {
        let started = Instant::now();
        match client.fetch_tickers() {
            Ok(chunk) => {
                let fetched = chunk.batch.len();
                let chunk = drop_repeats(chunk, &mut last_seen);
                info!(
                    fetched,
                    new = chunk.batch.len(),
                    rejected = chunk.errors.len(),
                    "collected Coinpaprika tickers"
                );
                for e in &chunk.errors {
                    warn!("{e}");
                }
                sink(chunk)?;
            }
            Err(e) if every.is_some() => warn!("Coinpaprika poll failed: {e:#}"),
            Err(e) => return Err(e),
        }
        let Some(every) = every else {
            return Ok(());
        };
        sleep(every.saturating_sub(started.elapsed()));
    }
}

/// Removes rows whose coin's timestamp equals the last one seen, and records the new ones.
fn drop_repeats(chunk: Chunk, last_seen: &mut HashMap<String, i64>) -> Chunk {
    let b = &chunk.batch;
    let keep: Vec<u32> = (0..b.len() as u32)
        .filter(|&i| {
            let coin = &b.coins[b.coin_index[i as usize] as usize];
            last_seen.get(coin) != Some(&b.ts[i as usize])
        })
        .collect();
    for &i in &keep {
        let coin = &b.coins[b.coin_index[i as usize] as usize];
        last_seen.insert(coin.clone(), b.ts[i as usize]);
    }
    if keep.len() == b.len() {
        return chunk;
    }
    let batch = b.take(&keep);
    // `take` keeps only the coins in use, so rebuild the parallel metadata.
    let mut meta: HashMap<&str, &CoinMeta> =
        chunk.coins.iter().map(|m| (m.id.as_str(), m)).collect();
    let coins = batch
        .coins
        .iter()
        .map(|id| meta.remove(id.as_str()).cloned().unwrap_or_default())
        .collect();
    Chunk {
        batch,
        coins,
        errors: chunk.errors,
    }
}
