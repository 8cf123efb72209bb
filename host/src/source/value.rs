//! Field parsing shared by the readers: floats (fast, NaN canonical), timestamps, ranks.
//!
//! Each function returns the value or a message saying what was expected and what was found;
//! the caller adds file, line and field.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// The unit of numeric timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TsUnit {
    /// Seconds since 1970-01-01 UTC.
    S,
    /// Milliseconds (the default, and strata's own unit).
    #[default]
    Ms,
    /// Microseconds; truncated to whole milliseconds (towards the past).
    Us,
    /// Nanoseconds; truncated to whole milliseconds (towards the past).
    Ns,
}

impl FromStr for TsUnit {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<TsUnit> {
        Ok(match s {
            "s" => TsUnit::S,
            "ms" => TsUnit::Ms,
            "us" => TsUnit::Us,
            "ns" => TsUnit::Ns,
            _ => bail!("unknown timestamp unit `{s}`; expected s, ms, us or ns"),
        })
    }
}

impl fmt::Display for TsUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsUnit::S => "s",
            TsUnit::Ms => "ms",
            TsUnit::Us => "us",
            TsUnit::Ns => "ns",
        })
    }
}

/// `bytes` quoted for an error message, cut to a readable length.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 40 {
        format!("`{}…`", s.chars().take(40).collect::<String>())
    } else {
        format!("`{s}`")
    }
}

/// NaN with any payload or sign becomes the canonical quiet NaN (bits 0x7ff8000000000000).
#[inline]
pub(crate) fn canonical(v: f64) -> f64 {
    if v.is_nan() { f64::NAN } else { v }
}

/// A float field: decimal or scientific text, `NaN`, `inf`, `-inf`; empty means unknown (NaN).
#[inline]
pub(crate) fn float(bytes: &[u8]) -> Result<f64, String> {
    if bytes.is_empty() {
        return Ok(f64::NAN);
    }
    match fast_float2::parse::<f64, _>(bytes) {
        Ok(v) => Ok(canonical(v)),
        Err(_) => float_slow(bytes),
    }
}

#[cold]
fn float_slow(bytes: &[u8]) -> Result<f64, String> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Ok(f64::NAN);
    }
    if trimmed.len() < bytes.len()
        && let Ok(v) = fast_float2::parse::<f64, _>(trimmed)
    {
        return Ok(canonical(v));
    }
    Err(format!("expected a number, got {}", shown(bytes)))
}

/// A rank field: a non-negative integer (`12`, or `12.0` as pandas writes integer columns with
/// gaps); empty means unknown (0).
#[inline]
pub(crate) fn rank(bytes: &[u8]) -> Result<u32, String> {
    let bytes = bytes.trim_ascii();
    if bytes.is_empty() {
        return Ok(0);
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| format!("rank {} is out of range", shown(bytes)));
    }
    match fast_float2::parse::<f64, _>(bytes) {
        Ok(v) if v.is_nan() => Ok(0),
        Ok(v) if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) => Ok(v as u32),
        _ => Err(format!(
            "expected a non-negative integer rank, got {}",
            shown(bytes)
        )),
    }
}

/// Reads timestamps as [`crate::source::ReadOptions`] says: numbers in a unit, text by a
/// strftime format or by the default text forms.
#[derive(Clone, Debug)]
pub(crate) struct TsParser {
    unit: TsUnit,
    format: Option<String>,
}

const TEXT_FORMS: &str =
    "integer milliseconds, RFC 3339 (2024-01-31T00:00:00Z), `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`";

impl TsParser {
    pub(crate) fn new(unit: TsUnit, format: Option<String>) -> TsParser {
        TsParser { unit, format }
    }

    /// Milliseconds since 1970-01-01 UTC.
    #[inline]
    pub(crate) fn parse(&self, bytes: &[u8]) -> Result<i64, String> {
        if self.format.is_none()
            && let Some(v) = int(bytes)
        {
            return self
                .scale(v)
                .ok_or_else(|| format!("timestamp {} is out of range", shown(bytes)));
        }
        self.parse_slow(bytes)
    }

    #[inline]
    fn scale(&self, v: i64) -> Option<i64> {
        match self.unit {
            TsUnit::S => v.checked_mul(1000),
            TsUnit::Ms => Some(v),
            TsUnit::Us => Some(v.div_euclid(1000)),
            TsUnit::Ns => Some(v.div_euclid(1_000_000)),
        }
    }

    #[cold]
    fn parse_slow(&self, bytes: &[u8]) -> Result<i64, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("timestamp {} is not UTF-8", shown(bytes)))?
            .trim();
        if text.is_empty() {
            return Err("missing timestamp".into());
        }
        if let Some(format) = &self.format {
            return text_with_format(text, format).ok_or_else(|| {
                format!(
                    "timestamp {} does not match the format `{format}`",
                    shown(bytes)
                )
            });
        }
        if let Some(v) = int(text.as_bytes()) {
            return self
                .scale(v)
                .ok_or_else(|| format!("timestamp {} is out of range", shown(bytes)));
        }
        // A fractional number, e.g. seconds with a decimal part.
        if let Ok(v) = text.parse::<f64>()
            && v.is_finite()
        {
            let per_ms = match self.unit {
                TsUnit::S => 1e-3,
                TsUnit::Ms => 1.0,
                TsUnit::Us => 1e3,
                TsUnit::Ns => 1e6,
            };
            let ms = (v / per_ms).floor();
            if ms.abs() < 9.0e15 {
                return Ok(ms as i64);
            }
            return Err(format!("timestamp {} is out of range", shown(bytes)));
        }
        text_default(text)
            .ok_or_else(|| format!("expected a timestamp ({TEXT_FORMS}), got {}", shown(bytes)))
    }
}

/// An optionally signed decimal integer that fits i64.
#[inline]
fn int(bytes: &[u8]) -> Option<i64> {
    let (neg, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

/// RFC 3339 text to milliseconds.
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn text_default(text: &str) -> Option<i64> {
    if let Some(v) = rfc3339_ms(text) {
        return Some(v);
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis()
    })
}

fn text_with_format(text: &str, format: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_str(text, format) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(t.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(text, format).ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis()
    })
}

/// A JSON float: number, numeric string (old API versions quote numbers), `null`, missing,
/// `""`, or the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. Absent values are NaN.
pub(crate) fn json_float(v: Option<&serde_json::Value>) -> Result<f64, String> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(f64::NAN),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(canonical)
            .ok_or_else(|| format!("number {n} does not fit a 64-bit float")),
        Some(Value::String(s)) => match s.trim() {
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            t => float(t.as_bytes()),
        },
        Some(other) => Err(format!("expected a number, got {}", json_shown(other))),
    }
}

/// A JSON rank: a non-negative integer (number or string); `null` or missing is 0 (unknown).
pub(crate) fn json_rank(v: Option<&serde_json::Value>) -> Result<u32, String> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u32::try_from(u).map_err(|_| format!("rank {n} is out of range")),
            (None, Some(f)) => rank(f.to_string().as_bytes()),
            _ => Err(format!("expected a non-negative integer rank, got {n}")),
        },
        Some(Value::String(s)) => rank(s.as_bytes()),
        Some(other) => Err(format!(
            "expected a non-negative integer rank, got {}",
            json_shown(other)
        )),
    }
}

/// A JSON value for an error message, cut to a readable length.
pub(crate) fn json_shown(v: &serde_json::Value) -> String {
    shown(v.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_parse_exactly_and_nan_is_canonical() {
        for text in [
            "97569.95169430465",
            "8.97e-36",
            "1.895E8",
            "-0.0",
            "5e-324",
            "0.1",
        ] {
            let want: f64 = text.parse().unwrap();
            assert_eq!(
                float(text.as_bytes()).unwrap().to_bits(),
                want.to_bits(),
                "{text}"
            );
        }
        assert_eq!(float(b"").unwrap().to_bits(), f64::NAN.to_bits());
        assert_eq!(float(b"NaN").unwrap().to_bits(), f64::NAN.to_bits());
        assert_eq!(float(b"-nan").unwrap().to_bits(), 0x7ff8_0000_0000_0000);
        assert_eq!(float(b"inf").unwrap(), f64::INFINITY);
        assert_eq!(float(b" 2.5 ").unwrap(), 2.5);
        let err = float(b"12abc").unwrap_err();
        assert!(err.contains("`12abc`"), "{err}");
        assert!(float(b"1,5").is_err());
    }

    #[test]
    fn ranks() {
        assert_eq!(rank(b"").unwrap(), 0);
        assert_eq!(rank(b"17").unwrap(), 17);
        assert_eq!(rank(b"17.0").unwrap(), 17);
        assert!(rank(b"-1").is_err());
        assert!(rank(b"1.5").is_err());
        assert!(rank(b"99999999999").unwrap_err().contains("out of range"));
    }

    #[test]
    fn timestamps_in_units_and_text() {
        let ms = TsParser::new(TsUnit::Ms, None);
        assert_eq!(ms.parse(b"1367107200000").unwrap(), 1_367_107_200_000);
        assert_eq!(ms.parse(b"-5").unwrap(), -5);
        assert_eq!(
            ms.parse(b"2013-04-28T00:00:00Z").unwrap(),
            1_367_107_200_000
        );
        assert_eq!(
            ms.parse(b"2013-04-28T02:00:00+02:00").unwrap(),
            1_367_107_200_000
        );
        assert_eq!(ms.parse(b"2013-04-28").unwrap(), 1_367_107_200_000);
        assert_eq!(
            ms.parse(b"2013-04-28 00:00:01.5").unwrap(),
            1_367_107_201_500
        );
        let err = ms.parse(b"yesterday").unwrap_err();
        assert!(
            err.contains("`yesterday`") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(ms.parse(b"").is_err());

        let s = TsParser::new(TsUnit::S, None);
        assert_eq!(s.parse(b"1690971978").unwrap(), 1_690_971_978_000);
        assert_eq!(s.parse(b"1690971978.25").unwrap(), 1_690_971_978_250);
        assert_eq!(TsParser::new(TsUnit::Us, None).parse(b"-1").unwrap(), -1);
        assert_eq!(
            TsParser::new(TsUnit::Ns, None).parse(b"1999999").unwrap(),
            1
        );

        let us = TsParser::new(TsUnit::Ms, Some("%m/%d/%Y".into()));
        assert_eq!(us.parse(b"04/28/2013").unwrap(), 1_367_107_200_000);
        assert!(us.parse(b"2013-04-28").unwrap_err().contains("%m/%d/%Y"));
        let compact = TsParser::new(TsUnit::Ms, Some("%Y%m%d".into()));
        assert_eq!(compact.parse(b"20130428").unwrap(), 1_367_107_200_000);
        let with_time = TsParser::new(TsUnit::Ms, Some("%m/%d/%Y, %I:%M:%S %p".into()));
        assert_eq!(
            with_time.parse(b"1/1/2021, 12:00:00 AM").unwrap(),
            1_609_459_200_000
        );
    }
}
