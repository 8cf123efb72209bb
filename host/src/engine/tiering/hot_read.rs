//! Reading the hot rows a transition moves: groups of whole coins of one destination coin
//! bucket, read by [`HOT_READERS`] threads on connections of their own.

use anyhow::{Context, Result};
use strata_plugin_sdk::Batch;

/// Survivors of a coin bucket held before they are written, and rows of source segments read
/// at once: bounds memory when a bucket holds more (a large bulk import); its rows then go to
/// more than one segment per window.
pub(super) const GROUP_ROWS: usize = 1 << 21;

/// One group of a transition: rows of coins of one destination coin bucket, sorted by
/// (coin, ts), any number of destination windows.
pub(super) struct Group {
    pub(super) bucket: u32,
    pub(super) batch: Batch,
    /// `ids[c]` is the store id of `batch.coins[c]`.
    pub(super) ids: Vec<i64>,
    /// Time spent reading it.
    pub(super) read: std::time::Duration,
}

impl Group {
    fn new(bucket: u32) -> Group {
        Group {
            bucket,
            batch: Batch::default(),
            ids: Vec::new(),
            read: std::time::Duration::ZERO,
        }
    }
}

/// Hot-tier readers of a transition, each on a connection of its own.
pub(super) const HOT_READERS: usize = 2;

/// Reads every hot row older than `cut` of the coins of each bucket and sends them as groups
/// of about `read_rows` rows (whole coins), in bucket order. [`HOT_READERS`] threads read the
/// coins in turn, each on its own connection to `db`; this thread puts the coins back in order.
pub(super) fn read_hot_groups(
    db: &std::path::Path,
    recent: bool,
    by_bucket: Vec<Vec<(String, i64)>>,
    cut: i64,
    read_rows: usize,
    tx: &std::sync::mpsc::SyncSender<Result<Group>>,
) -> Result<()> {
    let coins: Vec<(u32, String, i64)> = by_bucket
        .into_iter()
        .enumerate()
        .flat_map(|(b, members)| members.into_iter().map(move |(k, id)| (b as u32, k, id)))
        .collect();
    let range = crate::hot::HotRange {
        from: i64::MIN,
        to: cut - 1,
        newest_first: false,
        limit: None,
    };
    std::thread::scope(|scope| -> Result<()> {
        let mut readers = Vec::with_capacity(HOT_READERS);
        for r in 0..HOT_READERS {
            let (piece_tx, piece_rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(16);
            readers.push(piece_rx);
            let (coins, range) = (&coins, &range);
            scope.spawn(move || {
                let conn = match rusqlite::Connection::open_with_flags(
                    db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = piece_tx.send(Err(anyhow::Error::from(e)
                            .context(format!("opening {} to read the hot tier", db.display()))));
                        return;
                    }
                };
                // One read transaction for all its coins: one snapshot, and no per-query
                // transaction set-up.
                if let Err(e) = conn.execute_batch("BEGIN;") {
                    let _ = piece_tx.send(Err(e.into()));
                    return;
                }
                for (_, key, id) in coins.iter().skip(r).step_by(HOT_READERS) {
                    let mut piece = Batch::default();
                    piece.coins.push(key.clone());
                    let read = crate::hot::hot_read_on(&conn, recent, *id, range, &mut piece);
                    let failed = read.is_err();
                    // A closed channel: the transition stopped.
                    if piece_tx.send(read.map(|()| piece)).is_err() || failed {
                        return;
                    }
                }
            });
        }
        let mut group: Option<Group> = None;
        for (i, (bucket, key, id)) in coins.iter().enumerate() {
            let t = std::time::Instant::now();
            let mut piece = readers[i % HOT_READERS]
                .recv()
                .context("a hot-tier reader stopped")??;
            if group.as_ref().is_some_and(|g| g.bucket != *bucket)
                && let Some(full) = group.take().filter(|g| !g.batch.is_empty())
                && tx.send(Ok(full)).is_err()
            {
                return Ok(());
            }
            let g = group.get_or_insert_with(|| {
                let mut g = Group::new(*bucket);
                // Room for a full group up front: no copying as it grows (pages not written
                // are never touched).
                g.batch = Batch::with_capacity(read_rows + read_rows / 8);
                g
            });
            g.read += t.elapsed();
            if piece.is_empty() {
                continue;
            }
            g.batch.coins.push(key.clone());
            g.ids.push(*id);
            // The piece holds one coin: point its rows at the group's entry, append them whole.
            piece.coin_index.fill((g.batch.coins.len() - 1) as u32);
            g.batch.append_rows(&piece);
            if g.batch.len() >= read_rows
                && let Some(full) = group.take()
                && tx.send(Ok(full)).is_err()
            {
                return Ok(());
            }
        }
        if let Some(last) = group.filter(|g| !g.batch.is_empty()) {
            let _ = tx.send(Ok(last));
        }
        Ok(())
    })
}
