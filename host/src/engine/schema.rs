//! The database schema of a data directory: the tables (`coin`, the two hot tables, the
//! segment catalog, `last_kept`, `watermark`), their migrations, and how a hot row's values
//! are packed into one column. `store` applies it on open; `hot` reads and writes rows in it.

use anyhow::{Result, bail};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

/// The schema version this build reads and writes (`PRAGMA user_version`). Version 1 stored
/// each hot value in a column of its own; opening such a store converts it (see
/// [`migrate_v1`]). Version 3 added where each segment lives (`segment.store`), the buckets a
/// store has written to, the highest `seq` ever used and the store's id ([`migrate_v2`]).
/// Version 4 added the hot tier's sealed blocks (`hot_block`, see
/// [`sealed`](crate::sealed)); a version-3 store gains the empty table, and its rows are sealed
/// by the next `tier`.
pub const SCHEMA_VERSION: i64 = 4;

/// The hot tier's main table (also the shape of the table that replaces it when most of its
/// rows leave at once, see `Store::drop_hot_before`). `vals` is a row's values packed as
/// [`pack_values`] writes them: one column instead of five makes a row about 40% cheaper
/// for SQLite to read, and a tier transition reads every row it moves.
pub(crate) const HOT_TABLE: &str = "CREATE TABLE IF NOT EXISTS hot (
    coin INTEGER NOT NULL, ts INTEGER NOT NULL, vals BLOB NOT NULL,
    PRIMARY KEY (coin, ts)
) WITHOUT ROWID;";

/// The hot tier's table of collection batches (see `hot`), clustered by time.
pub(crate) const HOT_RECENT_TABLE: &str = "CREATE TABLE IF NOT EXISTS hot_recent (
    ts INTEGER NOT NULL, coin INTEGER NOT NULL, vals BLOB NOT NULL,
    PRIMARY KEY (ts, coin)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hot_recent_coin ON hot_recent (coin, ts);";

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS coin (
    id     INTEGER PRIMARY KEY,
    key    TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL DEFAULT '',
    name   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS segment (
    id            INTEGER PRIMARY KEY,
    tier          TEXT NOT NULL,
    path          TEXT NOT NULL UNIQUE,
    window_start  INTEGER NOT NULL,
    bucket        INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    codec         TEXT NOT NULL,
    codec_version TEXT NOT NULL,
    codec_sha256  TEXT NOT NULL,
    options       TEXT NOT NULL,
    rows          INTEGER NOT NULL,
    min_ts        INTEGER NOT NULL,
    max_ts        INTEGER NOT NULL,
    coins         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    store         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS segment_tier ON segment (tier, max_ts);
CREATE TABLE IF NOT EXISTS segment_coin (
    coin INTEGER NOT NULL, segment INTEGER NOT NULL,
    PRIMARY KEY (coin, segment)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segment_coin_segment ON segment_coin (segment);
CREATE TABLE IF NOT EXISTS last_kept (
    tier TEXT NOT NULL, coin INTEGER NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (tier, coin)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermark (
    tier TEXT PRIMARY KEY,
    cut  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_seq (
    tier TEXT NOT NULL, window_start INTEGER NOT NULL, bucket INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tier, window_start, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket (
    url TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
"#;

/// Converts a version-2 store to version 3: segments gain `store` (`''`, the data directory,
/// for every existing one); the new tables are created by [`SCHEMA`] after it. Idempotent.
pub(crate) fn migrate_v2(conn: &Connection) -> Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('segment') WHERE name = 'store'",
        [],
        |r| r.get(0),
    )?;
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'segment'",
        [],
        |r| r.get(0),
    )?;
    if exists && !has {
        conn.execute_batch("ALTER TABLE segment ADD COLUMN store TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// Converts a version-1 store, whose hot tables held each value in a column of its own (NULL
/// = NaN), to packed `vals`, in one transaction: a crash leaves version 1 to convert again.
pub(crate) fn migrate_v1(conn: &Connection) -> Result<()> {
    tracing::info!("converting the hot tier to schema version {SCHEMA_VERSION}");
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(&format!(
        "DROP INDEX IF EXISTS hot_recent_coin;
         ALTER TABLE hot RENAME TO hot_v1;
         ALTER TABLE hot_recent RENAME TO hot_recent_v1;
         {HOT_TABLE} {HOT_RECENT_TABLE}"
    ))?;
    for table in ["hot", "hot_recent"] {
        let mut read = tx.prepare(&format!(
            "SELECT coin, ts, price, market_cap, volume, supply, rank FROM {table}_v1"
        ))?;
        let mut write = tx.prepare(&format!(
            "INSERT INTO {table} (coin, ts, vals) VALUES (?1, ?2, ?3)"
        ))?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let mut values = [0.0; 4];
            for (k, v) in values.iter_mut().enumerate() {
                *v = match r.get_ref(2 + k)? {
                    rusqlite::types::ValueRef::Null => f64::NAN,
                    rusqlite::types::ValueRef::Real(f) => f,
                    rusqlite::types::ValueRef::Integer(i) => i as f64,
                    other => bail!("hot row has a {} value", other.data_type()),
                };
            }
            let vals = pack_values(values, r.get(6)?);
            write.execute(rusqlite::params![
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                &vals[..]
            ])?;
        }
    }
    tx.execute_batch(&format!(
        "DROP TABLE hot_v1; DROP TABLE hot_recent_v1; PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    tx.commit()?;
    Ok(())
}

/// Bytes of a packed hot row's values (`vals`).
pub(crate) const VALS_LEN: usize = 36;

/// A row's values as the hot tables store them (`vals`): price, market cap, volume and supply
/// as f64, then rank as u32, all little-endian. NaN is written as the canonical NaN, so every
/// value reads back bit for bit, -0.0 and NaN alike.
pub(crate) fn pack_values(values: [f64; 4], rank: u32) -> [u8; VALS_LEN] {
    let mut out = [0u8; VALS_LEN];
    for (k, v) in values.into_iter().enumerate() {
        let v = if v.is_nan() { f64::NAN } else { v };
        out[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
    }
    out[32..].copy_from_slice(&rank.to_le_bytes());
    out
}

/// The values and rank of a `vals` blob.
pub(crate) fn unpack_values(v: ValueRef<'_>) -> rusqlite::Result<([f64; 4], u32)> {
    let bytes: &[u8; VALS_LEN] = match v {
        ValueRef::Blob(b) => b.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Blob,
                format!("hot row values are {} bytes, not {VALS_LEN}", b.len()).into(),
            )
        })?,
        other => {
            return Err(rusqlite::Error::InvalidColumnType(
                1,
                "vals".into(),
                other.data_type(),
            ));
        }
    };
    let f = |k: usize| f64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().expect("8 bytes"));
    let rank = u32::from_le_bytes(bytes[32..].try_into().expect("4 bytes"));
    Ok(([f(0), f(1), f(2), f(3)], rank))
}
