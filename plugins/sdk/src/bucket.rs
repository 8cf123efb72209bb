//! Calendar buckets for retention rules: "every 6 hours", "every day", "ISO week", "month",
//! "quarter", "year", all in UTC. Shared by every policy so that `sample` and `rollup` agree on
//! what a bucket is.

use chrono::{Datelike, NaiveDate};

use crate::{Error, OptionSpec, Options, Result};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// A bucket width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// A fixed width in milliseconds, aligned to the Unix epoch (`6h`, `1d`, `7d`...).
    Fixed(i64),
    /// ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// Calendar month.
    Month,
    /// Calendar quarter (Jan, Apr, Jul, Oct).
    Quarter,
    /// Calendar year.
    Year,
}

/// The text form of buckets accepted by [`Bucket::parse`], for option specs.
pub const BUCKET_SYNTAX: &str = "Nh | Nd | week | month | quarter | year";

/// The `every` option every bucketed policy takes.
pub fn every_option() -> OptionSpec {
    OptionSpec::new(
        "every",
        BUCKET_SYNTAX,
        "1d",
        "bucket width: 6h, 1d, 7d, week (ISO, Monday), month, quarter, year",
    )
}

/// The bucket the `every` option names (default `1d`).
pub fn from_options(opts: &Options) -> Result<Bucket> {
    Bucket::parse(opts.get("every").unwrap_or("1d"))
        .map_err(|e| Error::InvalidOptions(format!("option `every`: {e}")))
}

/// The bucket start of each timestamp under the `every` option.
pub fn starts(ts: &[i64], opts: &Options) -> Result<Vec<i64>> {
    let b = from_options(opts)?;
    ts.iter().map(|&t| b.start(t)).collect()
}

impl Bucket {
    /// Parses `6h`, `1d`, `7d`, `week`, `month`, `quarter` or `year`.
    pub fn parse(s: &str) -> Result<Bucket> {
        let s = s.trim();
        let named = match s {
            "hour" | "hourly" => Some(Bucket::Fixed(HOUR_MS)),
            "day" | "daily" => Some(Bucket::Fixed(DAY_MS)),
            "week" | "weekly" | "iso-week" => Some(Bucket::Week),
            "month" | "monthly" => Some(Bucket::Month),
            "quarter" | "quarterly" => Some(Bucket::Quarter),
            "year" | "yearly" => Some(Bucket::Year),
            _ => None,
        };
        if let Some(b) = named {
            return Ok(b);
        }
        let bad = || {
            Error::InvalidOptions(format!(
                "`{s}` is not a bucket (expected {BUCKET_SYNTAX}, e.g. `6h` or `1d`)"
            ))
        };
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: i64 = num.parse().map_err(|_| bad())?;
        let unit_ms = match unit {
            "h" => HOUR_MS,
            "d" => DAY_MS,
            _ => return Err(bad()),
        };
        if n == 0 || n > 366 * 24 {
            return Err(bad());
        }
        Ok(Bucket::Fixed(n * unit_ms))
    }

    /// The start (ms, UTC) of the bucket holding `ts`.
    pub fn start(self, ts: i64) -> Result<i64> {
        let days = ts.div_euclid(DAY_MS);
        let to_ms = |d: NaiveDate| (d.num_days_from_ce() as i64 - UNIX_EPOCH_DAYS_FROM_CE) * DAY_MS;
        let date = || {
            i32::try_from(days + UNIX_EPOCH_DAYS_FROM_CE)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| {
                    Error::Unsupported(format!("timestamp {ts} is outside the calendar range"))
                })
        };
        Ok(match self {
            Bucket::Fixed(w) => ts.div_euclid(w) * w,
            // 1970-01-01 was a Thursday: Monday is 3 days before it.
            Bucket::Week => (days - (days + 3).rem_euclid(7)) * DAY_MS,
            Bucket::Month => {
                let d = date()?;
                to_ms(d.with_day(1).expect("day 1 exists"))
            }
            Bucket::Quarter => {
                let d = date()?;
                let month = (d.month0() / 3) * 3 + 1;
                to_ms(NaiveDate::from_ymd_opt(d.year(), month, 1).expect("quarter start exists"))
            }
            Bucket::Year => {
                let d = date()?;
                to_ms(NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("1 January exists"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, m: u32, d: u32, h: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn parses_widths() {
        assert_eq!(Bucket::parse("6h").unwrap(), Bucket::Fixed(6 * HOUR_MS));
        assert_eq!(Bucket::parse("1d").unwrap(), Bucket::Fixed(DAY_MS));
        assert_eq!(Bucket::parse("quarter").unwrap(), Bucket::Quarter);
        for bad in ["", "0d", "h", "3w", "x1d", "-1d"] {
            assert!(Bucket::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn calendar_starts() {
        let t = ms(2024, 8, 14, 17) + 123; // a Wednesday
        assert_eq!(Bucket::Fixed(DAY_MS).start(t).unwrap(), ms(2024, 8, 14, 0));
        assert_eq!(
            Bucket::Fixed(6 * HOUR_MS).start(t).unwrap(),
            ms(2024, 8, 14, 12)
        );
        assert_eq!(Bucket::Week.start(t).unwrap(), ms(2024, 8, 12, 0));
        assert_eq!(Bucket::Month.start(t).unwrap(), ms(2024, 8, 1, 0));
        assert_eq!(Bucket::Quarter.start(t).unwrap(), ms(2024, 7, 1, 0));
        assert_eq!(Bucket::Year.start(t).unwrap(), ms(2024, 1, 1, 0));
        // Before the epoch, and on a Monday boundary.
        assert_eq!(
            Bucket::Week.start(ms(1969, 12, 31, 5)).unwrap(),
            ms(1969, 12, 29, 0)
        );
        assert_eq!(
            Bucket::Week.start(ms(2024, 8, 12, 0)).unwrap(),
            ms(2024, 8, 12, 0)
        );
        assert!(Bucket::Month.start(i64::MAX).is_err());
    }
}
