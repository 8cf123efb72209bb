//! The service's one writer: a thread that owns the data directory (its lock, its `Store`)
//! and runs, one at a time, the scheduled collections and tier transitions and the ingests
//! that `POST /v1/ingest` hands it. Readers never wait for it: they read their own snapshots
//! ([`Store::consistent`]).
//!
//! Schedules resume across restarts: the time of each schedule's last successful run is kept
//! in the store's `meta` table, and the next run is that plus the period (or now, if that has
//! passed). A failed run is logged, counted and tried again at the next tick.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::metrics::Metrics;
use crate::ingest::{IngestReport, Mode};
use crate::source::Chunk;
use crate::source::coinpaprika::Client;
use crate::store::Store;
use crate::tiering::Plan;

/// Work for the writer.
pub(crate) enum Job {
    /// Ingest `chunks` (already parsed), answering on `reply`.
    Ingest {
        chunks: Vec<Result<Chunk>>,
        mode: Mode,
        reply: tokio::sync::oneshot::Sender<Result<IngestReport>>,
    },
    /// Finish the running step and stop.
    Stop,
}

/// When a scheduled job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// This long after the end of its previous run.
    Every(Duration),
    /// Once a day at this time of day (UTC), like a daily cron entry.
    DailyAt(chrono::NaiveTime),
}

impl Schedule {
    /// The first time after `t` (ms UTC) the schedule fires.
    pub fn after(&self, t: i64) -> i64 {
        match *self {
            Schedule::Every(d) => t + d.as_millis() as i64,
            Schedule::DailyAt(at) => {
                let day = chrono::DateTime::from_timestamp_millis(t)
                    .unwrap_or_default()
                    .date_naive();
                let today = day.and_time(at).and_utc().timestamp_millis();
                if today > t { today } else { today + 86_400_000 }
            }
        }
    }

    /// When to run first after a (re)start at `now`: at the time the schedule fired after the
    /// last successful run, or now if that passed while the server was down. A period with no
    /// run yet starts now; a time of day waits for it.
    pub fn first(&self, last_success: Option<i64>, now: i64) -> i64 {
        match (self, last_success) {
            (_, Some(last)) => self.after(last).max(now),
            (Schedule::Every(_), None) => now,
            (Schedule::DailyAt(_), None) => self.after(now),
        }
    }
}

/// One schedule's state, as `GET /v1/status` and the dashboard show it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScheduleState {
    /// The period, in seconds (`null`: off or a time of day).
    pub every_secs: Option<f64>,
    /// The time of day it runs at, `HH:MM` UTC (`null`: off or a period).
    pub daily_at_utc: Option<String>,
    pub runs: u64,
    pub failures: u64,
    /// Times in ms UTC.
    pub last_run_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub next_run_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Whether it is running now.
    pub running: bool,
}

/// The writer's state: both schedules.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub collect: ScheduleState,
    pub tier: ScheduleState,
}

/// What the writer thread needs.
pub(crate) struct Writer {
    pub store: Store,
    pub plan: Plan,
    pub client: Option<Client>,
    pub collect: Option<Schedule>,
    pub tier: Option<Schedule>,
    pub status: Arc<Mutex<Status>>,
    pub metrics: Arc<Metrics>,
}

const COLLECT_KEY: &str = "serve.collect.last_success_ms";
const TIER_KEY: &str = "serve.tier.last_success_ms";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Writer {
    /// Publishes both schedules' state (period or time of day, last success, first run) in
    /// the status, and returns the first runs `(collect, tier)` for [`run`](Self::run). Called
    /// before the server answers, so its first `/v1/status` already shows them.
    pub fn publish_schedules(&self) -> (Option<i64>, Option<i64>) {
        let next_collect = self.first_run(COLLECT_KEY, self.collect);
        let next_tier = self.first_run(TIER_KEY, self.tier);
        {
            let mut guard = self.status.lock().expect("status lock");
            let st = &mut *guard;
            for (s, st) in [(self.collect, &mut st.collect), (self.tier, &mut st.tier)] {
                match s {
                    Some(Schedule::Every(d)) => st.every_secs = Some(d.as_secs_f64()),
                    Some(Schedule::DailyAt(t)) => {
                        st.daily_at_utc = Some(t.format("%H:%M").to_string())
                    }
                    None => {}
                }
            }
            st.collect.next_run_ms = next_collect;
            st.tier.next_run_ms = next_tier;
            st.collect.last_success_ms = self.last_success(COLLECT_KEY);
            st.tier.last_success_ms = self.last_success(TIER_KEY);
        }
        (next_collect, next_tier)
    }

    /// Runs jobs and schedules until [`Job::Stop`] or every sender is gone, starting from the
    /// first runs [`publish_schedules`](Self::publish_schedules) returned.
    pub fn run(mut self, jobs: Receiver<Job>, first: (Option<i64>, Option<i64>)) {
        let (mut next_collect, mut next_tier) = first;
        loop {
            let due = [next_collect, next_tier].into_iter().flatten().min();
            let wait = due.map(|d| Duration::from_millis((d - now_ms()).max(0) as u64));
            let job = match wait {
                Some(w) => match jobs.recv_timeout(w) {
                    Ok(j) => Some(j),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match jobs.recv() {
                    Ok(j) => Some(j),
                    Err(_) => return,
                },
            };
            match job {
                Some(Job::Stop) => return,
                Some(Job::Ingest {
                    chunks,
                    mode,
                    reply,
                }) => {
                    let r = self.store.ingest_chunks(chunks.into_iter(), mode);
                    let _ = reply.send(r);
                }
                None => {}
            }
            let now = now_ms();
            if let (Some(at), Some(s)) = (next_collect, self.collect)
                && at <= now
            {
                self.collect();
                next_collect = Some(s.after(now_ms()));
            }
            if let (Some(at), Some(s)) = (next_tier, self.tier)
                && at <= now
            {
                self.tier();
                next_tier = Some(s.after(now_ms()));
            }
            let mut st = self.status.lock().expect("status lock");
            st.collect.next_run_ms = next_collect;
            st.tier.next_run_ms = next_tier;
        }
    }

    fn last_success(&self, key: &str) -> Option<i64> {
        self.store.meta(key).ok().flatten()?.parse().ok()
    }

    /// When a schedule runs first (see [`Schedule::first`]).
    fn first_run(&self, key: &str, s: Option<Schedule>) -> Option<i64> {
        Some(s?.first(self.last_success(key), now_ms()))
    }

    /// Marks a schedule running, or done (with the time it succeeded), keeping the books.
    fn book(&self, which: fn(&mut Status) -> &mut ScheduleState, result: Option<&Result<i64>>) {
        let mut st = self.status.lock().expect("status lock");
        let s = which(&mut st);
        match result {
            None => {
                s.running = true;
                s.last_run_ms = Some(now_ms());
            }
            Some(r) => {
                s.running = false;
                s.runs += 1;
                match r {
                    Ok(at) => {
                        s.last_success_ms = Some(*at);
                        s.last_error = None;
                    }
                    Err(e) => {
                        s.failures += 1;
                        s.last_error = Some(format!("{e:#}"));
                    }
                }
            }
        }
    }

    fn collect(&mut self) {
        self.book(|s| &mut s.collect, None);
        let r = self.collect_once().map(|()| now_ms());
        match &r {
            Ok(at) => {
                let _ = self.store.set_meta(COLLECT_KEY, &at.to_string());
            }
            Err(e) => {
                self.metrics.collections_failed.inc();
                tracing::error!("collection failed (next try at the next tick): {e:#}");
            }
        }
        self.metrics.collections.inc();
        self.book(|s| &mut s.collect, Some(&r));
    }

    fn collect_once(&mut self) -> Result<()> {
        let client = self
            .client
            .as_ref()
            .context("no collector configured (--collect-url)")?;
        let chunk = client.fetch_tickers()?;
        let coins = chunk.batch.coins.len();
        let rep = self
            .store
            .ingest_chunks(std::iter::once(Ok(chunk)), Mode::SkipInvalid)?;
        for e in rep.errors.iter().take(5) {
            tracing::warn!("collection skipped {e}");
        }
        self.metrics.collection_coins.observe(coins as f64);
        self.metrics
            .last_collection
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
        tracing::info!("collected {} rows of {coins} coins", rep.rows);
        Ok(())
    }

    fn tier(&mut self) {
        self.book(|s| &mut s.tier, None);
        let started = Instant::now();
        let r = self.store.tier(&self.plan, now_ms(), false);
        self.metrics
            .transition_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.transitions.inc();
        let r = match r {
            Ok(moves) => {
                let moved: u64 = moves.iter().map(|m| m.rows_read).sum();
                self.metrics.records_moved.inc_by(moved);
                self.metrics
                    .last_transition
                    .set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
                let at = now_ms();
                let _ = self.store.set_meta(TIER_KEY, &at.to_string());
                tracing::info!("tier transitions moved {moved} rows");
                Ok(at)
            }
            Err(e) => {
                self.metrics.transitions_failed.inc();
                tracing::error!("tier transition failed (next try at the next tick): {e:#}");
                Err(e)
            }
        };
        self.book(|s| &mut s.tier, Some(&r));
    }
}

/// A handle for sending the writer work.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    pub jobs: Sender<Job>,
}

impl WriterHandle {
    /// Ingests `chunks` on the writer and waits for it.
    pub async fn ingest(&self, chunks: Vec<Result<Chunk>>, mode: Mode) -> Result<IngestReport> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job::Ingest {
                chunks,
                mode,
                reply,
            })
            .ok()
            .context("the writer has stopped")?;
        rx.await.context("the writer has stopped")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: &str) -> i64 {
        crate::source::parse_time(t).unwrap()
    }

    #[test]
    fn a_period_runs_now_then_counts_from_the_last_success() {
        let hour = Schedule::Every(Duration::from_secs(3600));
        let now = ms("2026-01-02T10:00:00Z");
        assert_eq!(hour.first(None, now), now);
        assert_eq!(hour.first(Some(now - 600_000), now), now + 3_000_000);
        // Down for longer than the period: the missed run happens at once.
        assert_eq!(hour.first(Some(now - 7_200_000), now), now);
        assert_eq!(hour.after(now), now + 3_600_000);
    }

    #[test]
    fn a_time_of_day_waits_for_it_and_catches_up_a_missed_day() {
        let at = Schedule::DailyAt(chrono::NaiveTime::from_hms_opt(3, 30, 0).unwrap());
        let now = ms("2026-01-02T10:00:00Z");
        assert_eq!(at.after(now), ms("2026-01-03T03:30:00Z"));
        assert_eq!(
            at.after(ms("2026-01-02T03:29:59Z")),
            ms("2026-01-02T03:30:00Z")
        );
        assert_eq!(
            at.after(ms("2026-01-02T03:30:00Z")),
            ms("2026-01-03T03:30:00Z")
        );
        assert_eq!(at.first(None, now), ms("2026-01-03T03:30:00Z"));
        // Ran this morning: next is tomorrow's.
        let today = ms("2026-01-02T03:30:05Z");
        assert_eq!(at.first(Some(today), now), ms("2026-01-03T03:30:00Z"));
        // Last ran the day before yesterday: today's 03:30 was missed, so now.
        assert_eq!(at.first(Some(ms("2025-12-31T03:30:05Z")), now), now);
    }
}
