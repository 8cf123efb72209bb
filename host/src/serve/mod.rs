//! `strata serve`: one long-running process that collects, tiers and answers.
//!
//! Three parts share one data directory:
//!
//! - **the writer** ([`writer`]): one thread owning the locked [`Store`]; it runs the
//!   collection and tier schedules and the ingests `POST /v1/ingest` hands it, one at a time,
//!   through the same library functions the CLI calls;
//! - **the readers**: every request thread keeps its own read-only store
//!   ([`Store::open_reader`]) and answers from one SQLite snapshot per request
//!   ([`Store::consistent`]), so reads never wait for a transition and never see half of one
//!   (a transition commits its catalog change and its hot-row deletes in one transaction);
//! - **the HTTP front** ([`api`]): axum on a small tokio runtime, with the JSON/CSV API, the
//!   OpenAPI description (`docs/openapi.json`), Prometheus metrics ([`metrics`]) and the
//!   dashboard (`dashboard.html`, embedded in the binary).
//!
//! [`Server::start`] binds and starts all three; [`Server::stop`] (or SIGTERM/Ctrl-C in
//! [`Server::run_until_signal`]) stops accepting, lets the writer finish its running step and
//! returns.

pub mod api;
pub(crate) mod metrics;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::plugin::Runtime;
use crate::policy::Policy;
use crate::store::{Store, StoreOptions};
use crate::tiering::Plan;

/// How to run the service.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// Collect Coinpaprika tickers this often (off: `None`).
    pub collect_every: Option<Duration>,
    /// The Coinpaprika API base URL.
    pub collect_url: String,
    /// When to run the tier transitions (off: `None`).
    pub tier: Option<writer::Schedule>,
    /// The policy the transitions and `/v1/plan` use.
    pub policy: Policy,
    /// The bearer token `POST /v1/ingest` needs; without one the server takes no writes.
    pub write_token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most rows one range answer may hold.
    pub max_range_rows: usize,
    /// Options for the writer's store (readers get a smaller page cache).
    pub store_options: StoreOptions,
}

impl ServeConfig {
    /// The defaults for data directory `data`: listen on 127.0.0.1:8080, no schedules, no
    /// writes, the default policy, 64 MiB bodies, 1 M rows per range.
    pub fn new(data: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            data: data.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            collect_every: None,
            collect_url: crate::source::coinpaprika::DEFAULT_BASE_URL.to_string(),
            tier: None,
            policy: crate::policy::default_policy(),
            write_token: None,
            max_body_bytes: 64 << 20,
            max_range_rows: 1 << 20,
            store_options: StoreOptions::default(),
        }
    }
}

/// A running service.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<std::thread::JoinHandle<Result<()>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    jobs: std::sync::mpsc::Sender<writer::Job>,
}

impl Server {
    /// Opens the store (taking its lock), binds `cfg.listen` and starts the writer and the
    /// HTTP front. Returns once the port is bound.
    pub fn start(cfg: ServeConfig, rt: Runtime) -> Result<Server> {
        let metrics = Arc::new(metrics::Metrics::new());
        let status = Arc::new(Mutex::new(writer::Status::default()));
        // The writer publishes each commit's newest rows here; readers answer `latest` from it.
        let latest = Arc::new(crate::latest::SharedLatest::default());
        let (jobs, rx) = std::sync::mpsc::channel();
        // The store and its codecs live on the writer thread (they are not `Send`): it opens
        // them and says whether that worked before it takes jobs.
        let (opened_tx, opened) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let open = {
            let (cfg, rt, status, metrics, latest) = (
                cfg.clone(),
                rt.clone(),
                status.clone(),
                metrics.clone(),
                latest.clone(),
            );
            move || -> Result<writer::Writer> {
                let mut store = Store::open_with(&cfg.data, cfg.store_options.clone())?;
                store.publish_latest(latest);
                store.set_runtime(rt.clone());
                let plan = Plan::from_policy(&rt, &cfg.policy)?;
                let client = match cfg.collect_every {
                    Some(_) => Some(crate::source::coinpaprika::Client::new(
                        &cfg.collect_url,
                        Default::default(),
                    )?),
                    None => None,
                };
                Ok(writer::Writer {
                    store,
                    plan,
                    client,
                    collect: cfg.collect_every.map(writer::Schedule::Every),
                    tier: cfg.tier,
                    status,
                    metrics,
                })
            }
        };
        let writer = std::thread::Builder::new()
            .name("strata-writer".into())
            .spawn(move || {
                background_priority();
                match open() {
                    Ok(w) => {
                        let first = w.publish_schedules();
                        let _ = opened_tx.send(Ok(()));
                        w.run(rx, first)
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })?;
        opened
            .recv()
            .context("the writer thread stopped while opening the store")??;

        let listener = std::net::TcpListener::bind(cfg.listen)
            .with_context(|| format!("listening on {}", cfg.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = api::AppState::new(
            &cfg,
            rt,
            metrics,
            status,
            writer::WriterHandle { jobs: jobs.clone() },
            latest,
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let http = std::thread::Builder::new()
            .name("strata-http".into())
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(crate::tiering::cores())
                    .max_blocking_threads(4)
                    .thread_name("strata-http")
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, api::router(state))
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await?;
                    Ok(())
                })
            })?;
        tracing::info!("serving on http://{addr}");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            http: Some(http),
            writer: Some(writer),
            jobs,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Hands the writer a batch to ingest, as a collection would (the bench's load).
    pub fn ingest_chunk(&self, chunk: crate::source::Chunk) -> Result<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(writer::Job::Ingest {
                chunks: vec![Ok(chunk)],
                mode: crate::ingest::Mode::SkipInvalid,
                reply,
            })
            .ok()
            .context("the writer has stopped")?;
        rx.blocking_recv().context("the writer has stopped")??;
        Ok(())
    }

    /// Stops accepting, finishes open requests and the writer's running step, and returns.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let http = self.http.take().map(|h| h.join());
        let _ = self.jobs.send(writer::Job::Stop);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        match http {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the HTTP thread panicked"),
            None => Ok(()),
        }
    }

    /// Runs until SIGTERM or Ctrl-C, then stops as [`stop`](Self::stop) does.
    pub fn run_until_signal(self) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            anyhow::Ok(())
        })?;
        tracing::info!("stopping: finishing open requests and the running step");
        self.stop()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Lowers the calling thread's CPU priority (nice 10; the threads it starts inherit it), so the
/// writer's collections and transitions take the cores requests leave idle: on a small server
/// an hourly batch or a day's transition then costs readers throughput but little latency.
/// Best effort: without it the service works the same, with slower reads while it writes.
pub(crate) fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::debug!("could not lower the writer thread's priority");
        }
    }
}
