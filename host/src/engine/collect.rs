//! The collect loop a long-running strata runs: each chunk a source delivers is ingested (bad
//! rows skipped and reported), then every tier transition that is due runs. The CLI's
//! `strata collect` is this loop over the Coinpaprika collector; a service calls the same
//! functions on its own schedule.

use std::time::Duration;

use anyhow::Result;

use crate::ingest::{Mode, RowError};
use crate::source::Chunk;
use crate::source::coinpaprika::Client;
use crate::store::Store;
use crate::tiering::{MoveReport, Plan};

/// What one collected chunk did to the store.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Rows ingested into the hot tier.
    pub rows: u64,
    /// Rows of the chunk that were skipped, and why.
    pub errors: Vec<RowError>,
    /// The tier transitions that ran after the ingest.
    pub moved: Vec<MoveReport>,
}

impl Collected {
    /// Rows the transitions kept in colder tiers.
    pub fn rows_moved(&self) -> u64 {
        self.moved.iter().map(|r| r.rows_kept).sum()
    }
}

impl Store {
    /// Ingests `chunk` (skipping its invalid rows), then runs every transition of `plan` due
    /// at `now` (ms UTC).
    pub fn ingest_and_tier(&mut self, chunk: Chunk, plan: &Plan, now: i64) -> Result<Collected> {
        let rep = self.ingest_chunks(std::iter::once(Ok(chunk)), Mode::SkipInvalid)?;
        let moved = self.tier(plan, now, false)?;
        Ok(Collected {
            rows: rep.rows,
            errors: rep.errors,
            moved,
        })
    }
}

/// Polls Coinpaprika's tickers once (`every` = `None`) or every `every`, ingesting each poll
/// and tiering what is due at the time (see [`coinpaprika::collect`] for polling and
/// failures); `report` hears about each poll.
///
/// [`coinpaprika::collect`]: crate::source::coinpaprika::collect
pub fn collect_tickers(
    store: &mut Store,
    plan: &Plan,
    client: &Client,
    every: Option<Duration>,
    report: &mut dyn FnMut(&Collected),
) -> Result<()> {
    crate::source::coinpaprika::collect(client, every, &mut |chunk| {
        let c = store.ingest_and_tier(chunk, plan, chrono::Utc::now().timestamp_millis())?;
        report(&c);
        Ok(())
    })
}
