//! The HTTP API of `strata serve` (described in `docs/openapi.json`, served at
//! `/v1/openapi.json`): routes, parameters and their errors, JSON and CSV answers, the write
//! token, and the per-request metrics. Reads run on the request's thread against that
//! thread's own read-only store; ingests go to the writer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ServeConfig;
use super::metrics::{Metrics, RouteLabel, RouteOnly};
use super::writer::{Status, WriterHandle};
use crate::ingest::Mode;
use crate::plugin::Runtime;
use crate::policy::Policy;
use crate::query::Answer;
use crate::source::{Format, ReadOptions};
use crate::store::{Store, StoreOptions};

/// The OpenAPI description, kept in the repository.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The dashboard: one page, its script and styles inline, nothing fetched from elsewhere.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// Most rows `latest` answers with.
pub const MAX_LATEST: usize = 10_000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    data: PathBuf,
    reader_options: StoreOptions,
    runtime: Runtime,
    policy: Policy,
    write_token: Option<String>,
    max_range_rows: usize,
    max_body: usize,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Status>>,
    writer: WriterHandle,
    /// The writer's latest rows, shared by every reader.
    latest: Arc<crate::latest::SharedLatest>,
    plan: OnceLock<Result<Value, String>>,
    plugins: OnceLock<Result<Value, String>>,
}

impl AppState {
    pub(crate) fn new(
        cfg: &ServeConfig,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        status: Arc<Mutex<Status>>,
        writer: WriterHandle,
        latest: Arc<crate::latest::SharedLatest>,
    ) -> AppState {
        let reader_options = StoreOptions {
            cache_mib: 32,
            ..cfg.store_options.clone()
        };
        AppState {
            inner: Arc::new(Inner {
                data: cfg.data.clone(),
                reader_options,
                runtime,
                policy: cfg.policy.clone(),
                write_token: cfg.write_token.clone(),
                max_range_rows: cfg.max_range_rows,
                max_body: cfg.max_body_bytes,
                metrics,
                status,
                writer,
                latest,
                plan: OnceLock::new(),
                plugins: OnceLock::new(),
            }),
        }
    }
}

/// The routes, their body limit and the metrics layer.
pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.inner.max_body;
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/coins", get(coins))
        .route("/v1/coins/{id}/latest", get(latest))
        .route("/v1/coins/{id}/range", get(range))
        .route("/v1/tiers", get(tiers))
        .route("/v1/plan", get(plan))
        .route("/v1/plugins", get(plugins))
        .route("/v1/status", get(status))
        .route("/v1/ingest", post(ingest))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .with_state(state)
}

/// An error answer: a status and a JSON body naming the problem (and the parameter at fault).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    parameter: Option<&'static str>,
}

impl ApiError {
    fn bad(parameter: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter),
        }
    }

    fn status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            parameter: None,
        }
    }

    fn internal(e: anyhow::Error) -> ApiError {
        tracing::error!("request failed: {e:#}");
        ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(p) = self.parameter {
            body["parameter"] = json!(p);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

thread_local! {
    /// This thread's read-only store for each data directory served from this process.
    static READERS: RefCell<HashMap<PathBuf, Store>> = RefCell::new(HashMap::new());
}

/// Runs `f` with this thread's reader of the served store, opening it on first use.
fn with_reader<T>(
    state: &AppState,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    READERS.with(|r| {
        let mut r = r.borrow_mut();
        let s = &state.inner;
        if !r.contains_key(&s.data) {
            let mut store = Store::open_reader(&s.data, s.reader_options.clone())
                .map_err(ApiError::internal)?;
            store.use_shared_latest(s.latest.clone());
            store.set_runtime(s.runtime.clone());
            r.insert(s.data.clone(), store);
        }
        f(r.get_mut(&s.data).expect("just opened"))
    })
}

/// Runs a read that may take a while (decoding segments) off the request threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || with_reader(&state, f))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("a read task failed: {e}")))?
}

/// Counts every request by route, method and status, and times it by route.
async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // `/v1/coins/:id/range`: braces in label values trip some Prometheus parsers.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .replace('{', ":")
        .replace('}', "");
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let m = &state.inner.metrics;
    m.http_requests
        .get_or_create(&RouteLabel {
            route: route.clone(),
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    m.http_seconds
        .get_or_create(&RouteOnly { route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn not_found() -> ApiError {
    ApiError::status(
        StatusCode::NOT_FOUND,
        "no such route (see /v1/openapi.json)",
    )
}

async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DASHBOARD,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz(State(state): State<AppState>) -> ApiResult {
    with_reader(&state, |s| {
        s.refresh().map_err(ApiError::internal)?;
        Ok(axum::Json(json!({ "status": "ok" })).into_response())
    })
}

async fn status(State(state): State<AppState>) -> ApiResult {
    let st = state.inner.status.lock().expect("status lock").clone();
    Ok(axum::Json(st).into_response())
}

async fn metrics(State(state): State<AppState>) -> ApiResult {
    let (stats, disk) = blocking(&state, |s| {
        s.consistent(|s| Ok((s.stats()?, s.disk_usage()?)))
            .map_err(ApiError::internal)
    })
    .await?;
    let m = &state.inner.metrics;
    m.set_tiers(&stats, &disk);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response())
}

/// `?format=json|csv` of a read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum OutFormat {
    #[default]
    Json,
    Csv,
}

fn out_format(raw: Option<&str>) -> Result<OutFormat, ApiError> {
    match raw {
        None | Some("json") => Ok(OutFormat::Json),
        Some("csv") => Ok(OutFormat::Csv),
        Some(f) => Err(ApiError::bad(
            "format",
            format!("`{f}` is not a format (json or csv)"),
        )),
    }
}

fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A coin's rows as JSON or CSV: time, tier, the five fields, then extra (rollup) columns.
fn answer_response(a: &Answer, coin: &str, format: OutFormat) -> Response {
    let b = &a.rows;
    match format {
        OutFormat::Json => {
            let body = serde_json::to_vec(&RowsJson { coin, a }).expect("rows serialize");
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        OutFormat::Csv => {
            use std::fmt::Write;
            let f = |v: f64| {
                if v.is_nan() {
                    String::new()
                } else {
                    format!("{v:?}")
                }
            };
            let mut out = String::from("coin,ts,time,tier,price,market_cap,volume,supply,rank");
            for c in &b.extra {
                out.push(',');
                out.push_str(&c.name);
            }
            out.push('\n');
            for r in 0..b.len() {
                let _ = write!(
                    out,
                    "{coin},{},{},{},{},{},{},{},{}",
                    b.ts[r],
                    time_text(b.ts[r]),
                    a.tier[r],
                    f(b.price[r]),
                    f(b.market_cap[r]),
                    f(b.volume[r]),
                    f(b.supply[r]),
                    b.rank[r]
                );
                for c in &b.extra {
                    out.push(',');
                    out.push_str(&f(c.values[r]));
                }
                out.push('\n');
            }
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
        }
    }
}

/// `{"coin": …, "rows": [{"ts", "time", "tier", "price", …, extra columns}], "skipped"?}`,
/// written straight from the answer's columns.
struct RowsJson<'a> {
    coin: &'a str,
    a: &'a Answer,
}

struct RowJson<'a> {
    a: &'a Answer,
    r: usize,
}

struct RowList<'a>(&'a Answer);

/// A float, or `null` for NaN (JSON has no NaN).
fn num(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl serde::Serialize for RowsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("coin", self.coin)?;
        m.serialize_entry("rows", &RowList(self.a))?;
        if !self.a.skipped.is_empty() {
            m.serialize_entry("skipped", &self.a.skipped)?;
        }
        m.end()
    }
}

impl serde::Serialize for RowList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0..self.0.len()).map(|r| RowJson { a: self.0, r }))
    }
}

impl serde::Serialize for RowJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (b, r) = (&self.a.rows, self.r);
        let mut m = s.serialize_map(Some(8 + b.extra.len()))?;
        m.serialize_entry("ts", &b.ts[r])?;
        m.serialize_entry("time", &time_text(b.ts[r]))?;
        m.serialize_entry("tier", &*self.a.tier[r])?;
        m.serialize_entry("price", &num(b.price[r]))?;
        m.serialize_entry("market_cap", &num(b.market_cap[r]))?;
        m.serialize_entry("volume", &num(b.volume[r]))?;
        m.serialize_entry("supply", &num(b.supply[r]))?;
        m.serialize_entry("rank", &b.rank[r])?;
        for c in &b.extra {
            m.serialize_entry(&c.name, &num(c.values[r]))?;
        }
        m.end()
    }
}

fn unknown_coin(s: &Store, coin: &str) -> Result<(), ApiError> {
    match s.coin_id(coin) {
        Some(_) => Ok(()),
        None => Err(ApiError::status(
            StatusCode::NOT_FOUND,
            format!("unknown coin `{coin}`"),
        )),
    }
}

#[derive(Deserialize)]
struct LatestParams {
    n: Option<String>,
    format: Option<String>,
}

async fn latest(
    State(state): State<AppState>,
    Path(coin): Path<String>,
    Query(p): Query<LatestParams>,
) -> ApiResult {
    let n = match p.n.as_deref() {
        None => 1,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_LATEST).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "n",
                    format!("`{t}` is not a row count from 1 to {MAX_LATEST}"),
                ));
            }
        },
    };
    let format = out_format(p.format.as_deref())?;
    // The newest rows are nearly always in the shared latest-rows cache, which the writer keeps
    // current: answered on this thread, without SQLite. A coin this reader has not seen yet may
    // have been added since its coin table was read.
    with_reader(&state, |s| {
        if s.coin_id(&coin).is_none() {
            s.refresh().map_err(ApiError::internal)?;
        }
        unknown_coin(s, &coin)?;
        let a = match s.latest_cached(&coin, n) {
            Some(a) => a,
            None => s
                .consistent(|s| s.latest(&coin, n))
                .map_err(ApiError::internal)?,
        };
        Ok(answer_response(&a, &coin, format))
    })
}

#[derive(Deserialize)]
struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

async fn range(
    State(state): State<AppState>,
    Path(coin): Path<String>,
    Query(p): Query<RangeParams>,
) -> ApiResult {
    let time = |name: &'static str, v: Option<&str>, default: i64| match v {
        None => Ok(default),
        Some(t) => crate::source::parse_time(t).map_err(|e| ApiError::bad(name, format!("{e}"))),
    };
    let from = time("from", p.from.as_deref(), i64::MIN)?;
    let to = time("to", p.to.as_deref(), i64::MAX)?;
    if from > to {
        return Err(ApiError::bad("from", "`from` is after `to`"));
    }
    let format = out_format(p.format.as_deref())?;
    let max = state.inner.max_range_rows;
    blocking(&state, move |s| {
        s.refresh().map_err(ApiError::internal)?;
        unknown_coin(s, &coin)?;
        let a = s
            .consistent(|s| s.query(&coin, from, to))
            .map_err(ApiError::internal)?;
        if a.len() > max {
            return Err(ApiError::bad(
                "from",
                format!(
                    "the range holds {} rows, more than the {max} one answer may hold: narrow \
                     `from` and `to`",
                    a.len()
                ),
            ));
        }
        Ok(answer_response(&a, &coin, format))
    })
    .await
}

#[derive(Deserialize)]
struct ListParams {
    format: Option<String>,
}

async fn coins(State(state): State<AppState>, Query(p): Query<ListParams>) -> ApiResult {
    let format = out_format(p.format.as_deref())?;
    let rows = blocking(&state, |s| {
        s.consistent(|s| s.coin_list()).map_err(ApiError::internal)
    })
    .await?;
    Ok(match format {
        OutFormat::Json => axum::Json(json!({ "coins": rows })).into_response(),
        OutFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(["id", "symbol", "name", "first_ts", "last_ts"]);
            for c in &rows {
                let t = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
                let _ = w.write_record([
                    c.id.as_str(),
                    &c.symbol,
                    &c.name,
                    &t(c.first_ts),
                    &t(c.last_ts),
                ]);
            }
            let body = w.into_inner().unwrap_or_default();
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
        }
    })
}

async fn tiers(State(state): State<AppState>, Query(p): Query<ListParams>) -> ApiResult {
    let format = out_format(p.format.as_deref())?;
    let (stats, disk) = blocking(&state, |s| {
        s.consistent(|s| Ok((s.stats()?, s.disk_usage()?)))
            .map_err(ApiError::internal)
    })
    .await?;
    let tiers: Vec<Value> = stats
        .iter()
        .map(|t| {
            json!({
                "tier": t.tier,
                "rows": t.rows,
                "segments": t.segments,
                "bytes": t.bytes,
                "bytes_per_record": t.bytes_per_record(),
                "oldest_ms": t.oldest,
                "newest_ms": t.newest,
                "codecs": t.codecs,
                "buckets": t.buckets,
            })
        })
        .collect();
    Ok(match format {
        OutFormat::Json => axum::Json(json!({
            "tiers": tiers,
            "disk": {
                "database_bytes": disk.db_file,
                "wal_bytes": disk.wal_file,
                "free_page_bytes": disk.free_pages,
                "segment_file_bytes": disk.segment_files,
                "kept_codec_bytes": disk.components,
                "total_bytes": disk.total(),
            }
        }))
        .into_response(),
        OutFormat::Csv => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::verify::stats_table(&stats),
        )
            .into_response(),
    })
}

/// A value computed once (plugin calls), or its error.
async fn once(
    state: &AppState,
    pick: fn(&Inner) -> &OnceLock<Result<Value, String>>,
    make: fn(&Inner) -> anyhow::Result<Value>,
) -> ApiResult {
    let st = state.clone();
    let v = tokio::task::spawn_blocking(move || {
        let inner = &st.inner;
        pick(inner)
            .get_or_init(|| make(inner).map_err(|e| format!("{e:#}")))
            .clone()
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    match v {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(e) => Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

async fn plan(State(state): State<AppState>) -> ApiResult {
    once(
        &state,
        |i| &i.plan,
        |i| {
            let sample = crate::plugin::conformance::real_extract();
            let f = crate::plan::plan(
                &i.runtime,
                &i.policy,
                &sample,
                &crate::plan::PlanOptions::default(),
            )?;
            Ok(serde_json::to_value(f)?)
        },
    )
    .await
}

async fn plugins(State(state): State<AppState>) -> ApiResult {
    once(
        &state,
        |i| &i.plugins,
        |i| {
            let mut out = Vec::new();
            let mut add = |source: String, p: crate::plugin::Plugin| {
                let m = p.meta();
                out.push(json!({
                    "name": m.name,
                    "kind": m.kind.to_string(),
                    "version": p.info().version,
                    "sha256": m.sha256,
                    "size": m.size,
                    "source": source,
                }));
            };
            for b in crate::plugin::BUILTINS {
                add(
                    "built-in".into(),
                    i.runtime.load(&crate::plugin::PluginRef::parse(b.name))?,
                );
            }
            for (name, _) in i.runtime.installed() {
                if let Ok(p) = i.runtime.load(&crate::plugin::PluginRef::parse(&name)) {
                    add("installed".into(), p);
                }
            }
            Ok(json!({ "plugins": out }))
        },
    )
    .await
}

#[derive(Deserialize)]
struct IngestParams {
    format: Option<String>,
    skip_invalid: Option<String>,
}

async fn ingest(
    State(state): State<AppState>,
    Query(p): Query<IngestParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let Some(token) = &state.inner.write_token else {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            "this server takes no writes (start it with --write-token-file)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        let mut r = ApiError::status(
            StatusCode::UNAUTHORIZED,
            "POST /v1/ingest needs `Authorization: Bearer <write token>`",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    let format = match p.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl") => Format::Jsonl,
        Some(f) => {
            return Err(ApiError::bad(
                "format",
                format!("`{f}` is not an ingest format (csv or jsonl)"),
            ));
        }
        None => match headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim())
        {
            Some("text/csv") => Format::Csv,
            Some("application/x-ndjson" | "application/jsonl" | "application/jsonlines") => {
                Format::Jsonl
            }
            _ => {
                return Err(ApiError::bad(
                    "format",
                    "say what the body is: Content-Type text/csv or application/x-ndjson, or \
                     ?format=csv|jsonl",
                ));
            }
        },
    };
    let mode = match p.skip_invalid.as_deref() {
        None | Some("false") => Mode::Strict,
        Some("true") => Mode::SkipInvalid,
        Some(v) => {
            return Err(ApiError::bad(
                "skip_invalid",
                format!("`{v}` is not true or false"),
            ));
        }
    };
    let chunks: Vec<anyhow::Result<crate::source::Chunk>> =
        tokio::task::spawn_blocking(move || {
            match crate::source::open_reader(
                Box::new(std::io::Cursor::new(body)),
                "request body",
                format,
                &ReadOptions::default(),
            ) {
                Ok(r) => r.collect(),
                Err(e) => vec![Err(e)],
            }
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    // The body's own problems are the client's: 400, naming each row, nothing ingested.
    let mut errors = Vec::new();
    for c in &chunks {
        match c {
            Ok(c) => errors.extend(c.errors.iter().cloned()),
            Err(e) => return Err(ApiError::bad("body", format!("{e:#}"))),
        }
    }
    let row_error = |e: &crate::source::RowError| json!({ "line": e.line, "field": e.field, "message": e.message });
    if mode == Mode::Strict && !errors.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": format!(
                    "{} invalid rows, nothing ingested (skip_invalid=true loads the rest)",
                    errors.len()
                ),
                "parameter": "body",
                "rows": errors.iter().take(100).map(row_error).collect::<Vec<_>>(),
            })),
        )
            .into_response());
    }
    let rep = state
        .inner
        .writer
        .ingest(chunks, mode)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(json!({
        "rows": rep.rows,
        "skipped": rep.errors.iter().map(row_error).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
