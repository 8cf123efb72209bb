//! Printing answers: tables, CSV and JSON of query results, times and ranks.

use std::process::ExitCode;

use anyhow::Result;

use super::args::OutFormat;

/// Prints an answer, naming on stderr the segments it skipped; exits 2 if it skipped any, so
/// a script notices the answer is partial.
pub(crate) fn answer_with_skips(
    answer: &strata::query::Answer,
    format: OutFormat,
) -> Result<ExitCode> {
    print_answer(answer, format)?;
    for s in &answer.skipped {
        eprintln!("strata: skipped damaged segment {s}");
    }
    Ok(if answer.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub(crate) fn print_answer(a: &strata::query::Answer, format: OutFormat) -> Result<()> {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let coin = a.rows.coins.first().map(String::as_str).unwrap_or("");
    let num = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v:?}")
        }
    };
    // Extra columns (a rollup's open/high/low/count) follow the fixed ones.
    let extras = &a.rows.extra;
    match format {
        OutFormat::Table => {
            write!(
                out,
                "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                "TIME", "TIER", "PRICE", "MARKET_CAP", "VOLUME", "SUPPLY", "RANK"
            )?;
            for c in extras {
                write!(out, " {:>18}", c.name.to_uppercase())?;
            }
            writeln!(out)?;
            for (i, (r, tier)) in a.rows.rows().zip(&a.tier).enumerate() {
                write!(
                    out,
                    "{:<20} {:<8} {:>18} {:>20} {:>20} {:>20} {:>6}",
                    format_time(r.ts),
                    tier,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    rank_text(r.rank)
                )?;
                for c in extras {
                    write!(out, " {:>18}", num(c.values[i]))?;
                }
                writeln!(out)?;
            }
        }
        OutFormat::Csv => {
            write!(out, "coin,ts,price,market_cap,volume,supply,rank,tier")?;
            for c in extras {
                write!(out, ",{}", c.name)?;
            }
            writeln!(out)?;
            for (i, (r, tier)) in a.rows.rows().zip(&a.tier).enumerate() {
                write!(
                    out,
                    "{coin},{},{},{},{},{},{},{tier}",
                    r.ts,
                    num(r.price),
                    num(r.market_cap),
                    num(r.volume),
                    num(r.supply),
                    rank_text(r.rank)
                )?;
                for c in extras {
                    write!(out, ",{}", num(c.values[i]))?;
                }
                writeln!(out)?;
            }
        }
        OutFormat::Json => {
            let f = |v: f64| {
                if v.is_finite() {
                    serde_json::json!(v)
                } else if v.is_nan() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
                }
            };
            let rows: Vec<serde_json::Value> = a
                .rows
                .rows()
                .zip(&a.tier)
                .enumerate()
                .map(|(i, (r, tier))| {
                    let mut row = serde_json::json!({
                        "coin": coin, "ts": r.ts, "price": f(r.price), "market_cap": f(r.market_cap),
                        "volume": f(r.volume), "supply": f(r.supply), "rank": r.rank, "tier": &**tier,
                    });
                    for c in extras {
                        row[c.name.as_str()] = f(c.values[i]);
                    }
                    row
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A rank as printed: empty when unknown (0).
pub(crate) fn rank_text(rank: u32) -> String {
    if rank == 0 {
        String::new()
    } else {
        rank.to_string()
    }
}

pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
