//! Side-by-side comparison of codecs on the same data: what `strata compare` prints.
//!
//! Each codec encodes and decodes the whole input through its sandboxed wasm component and,
//! when it is a built-in, through the same code compiled natively. The figures: bytes, bytes
//! per record, ratio against raw JSON Lines, throughput both ways, and the plugin tax (wasm
//! time ÷ native time). Every wasm round trip is checked bit for bit against the input, so a
//! figure never comes from a codec that lost data.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::plugin::native::Native;
use crate::plugin::{self, PluginRef, Runtime};
use crate::sdk::{self, Batch};

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// Codec names or paths; empty = every built-in codec.
    pub codecs: Vec<String>,
    /// Per-codec options: (codec, key, value).
    pub options: Vec<(String, String, String)>,
    /// Timed runs per operation; the best is kept.
    pub runs: usize,
}

/// The figures for one codec.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub codec: String,
    pub options: Vec<(String, String)>,
    pub rows: usize,
    pub bytes: usize,
    pub bytes_per_record: f64,
    /// Raw JSONL bytes ÷ this codec's bytes.
    pub ratio_vs_jsonl: f64,
    /// Records per second through the wasm component.
    pub wasm_encode_rps: f64,
    pub wasm_decode_rps: f64,
    /// Records per second natively (built-ins only).
    pub native_encode_rps: Option<f64>,
    pub native_decode_rps: Option<f64>,
    /// wasm time ÷ native time.
    pub encode_tax: Option<f64>,
    pub decode_tax: Option<f64>,
    /// True when the wasm round trip gave back the input bit for bit.
    pub round_trip_ok: bool,
    /// What went wrong, if the codec could not be measured.
    pub error: Option<String>,
}

/// The names of every built-in codec.
pub fn builtin_codecs() -> Vec<String> {
    plugin::BUILTINS
        .iter()
        .filter(|b| b.kind == plugin::PluginKind::Codec)
        .map(|b| b.name.to_string())
        .collect()
}

/// Size of `batch` as raw JSON Lines, the baseline of `ratio_vs_jsonl`.
pub fn jsonl_bytes(batch: &Batch) -> usize {
    let mut out = Vec::with_capacity(batch.len() * 150);
    sdk::jsonl::write(batch, &mut out);
    out.len()
}

/// The fastest of several timed runs, and what that run returned.
struct Best<T>(Option<Timed<T>>);

impl<T> Best<T> {
    fn new() -> Best<T> {
        Best(None)
    }

    /// Runs `f` once, keeping its result if it was the fastest so far.
    fn time(&mut self, f: impl FnOnce() -> Result<T>) -> Result<()> {
        let start = Instant::now();
        let v = f()?;
        let took = start.elapsed();
        if self.0.as_ref().is_none_or(|(_, b)| took < *b) {
            self.0 = Some((v, took));
        }
        Ok(())
    }

    fn get(self) -> Timed<T> {
        self.0.expect("at least one run")
    }
}

/// What a timed run returned, and how long it took.
type Timed<T> = (T, Duration);

/// Times `wasm` and, when there is one, `native`, alternately `runs` times (at least once),
/// so a change in the machine's load while they run weighs on both sides of the tax alike.
/// Returns each side's fastest run and what it returned.
fn alternate<W, N>(
    runs: usize,
    mut wasm: impl FnMut() -> Result<W>,
    mut native: Option<impl FnMut() -> Result<N>>,
) -> Result<(Timed<W>, Option<Timed<N>>)> {
    let (mut w, mut n) = (Best::new(), Best::new());
    for _ in 0..runs.max(1) {
        w.time(&mut wasm)?;
        if let Some(native) = &mut native {
            n.time(native)?;
        }
    }
    Ok((w.get(), native.map(|_| n.get())))
}

fn rate(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64().max(1e-9)
}

/// The codecs a `--codecs` list names, in order, each once: `all` (or an empty list) stands
/// for every built-in codec, anything else (a built-in or installed name, a `.wasm` path) for
/// itself, so `all,my-codec.wasm` compares a new codec with every built-in.
pub fn expand_codecs(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = [String::from("all")];
    for name in if names.is_empty() { &all[..] } else { names } {
        let expanded = if name == "all" {
            builtin_codecs()
        } else {
            vec![name.clone()]
        };
        for n in expanded {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Runs every requested codec on `batch`. A codec that fails is reported with its error rather
/// than ending the comparison.
pub fn compare(
    rt: &Runtime,
    batch: &Batch,
    opts: &CompareOptions,
    mut progress: impl FnMut(&str),
) -> Vec<Figures> {
    let codecs = expand_codecs(&opts.codecs);
    let baseline = jsonl_bytes(batch) as f64;
    codecs
        .iter()
        .map(|name| {
            progress(name);
            let options: Vec<(String, String)> = opts
                .options
                .iter()
                .filter(|(c, _, _)| c == name)
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            measure(rt, name, batch, &options, opts.runs, baseline).unwrap_or_else(|e| Figures {
                codec: name.clone(),
                options,
                rows: batch.len(),
                bytes: 0,
                bytes_per_record: f64::NAN,
                ratio_vs_jsonl: f64::NAN,
                wasm_encode_rps: f64::NAN,
                wasm_decode_rps: f64::NAN,
                native_encode_rps: None,
                native_decode_rps: None,
                encode_tax: None,
                decode_tax: None,
                round_trip_ok: false,
                error: Some(format!("{e:#}")),
            })
        })
        .collect()
}

fn measure(
    rt: &Runtime,
    name: &str,
    batch: &Batch,
    options: &[(String, String)],
    runs: usize,
    baseline: f64,
) -> Result<Figures> {
    let codec = rt.codec(&PluginRef::parse(name))?;
    let rows = batch.len();
    let codec_name = codec.meta.name.clone();
    let native = match plugin::native(&codec_name) {
        Some(Native::Codec(make)) => Some(make()),
        _ => None,
    };
    let natively = || format!("{codec_name} natively");
    let ((bytes, enc), native_enc) = alternate(
        runs,
        || Ok(codec.encode(batch, options)?),
        native.as_ref().map(|n| {
            move || {
                sdk::encode_checked(n.as_ref(), batch, options)
                    .map_err(anyhow::Error::from)
                    .with_context(natively)
            }
        }),
    )?;
    let ((back, dec), native_dec) = alternate(
        runs,
        || Ok(codec.decode(&bytes, None)?),
        native
            .as_ref()
            .zip(native_enc.as_ref())
            .map(|(n, (nbytes, _))| {
                move || {
                    sdk::decode_checked(n.as_ref(), nbytes, None)
                        .map_err(anyhow::Error::from)
                        .with_context(natively)
                }
            }),
    )?;
    let round_trip_ok = if codec.info.sorts_rows {
        back.bit_eq(&batch.sorted())
    } else {
        back.bit_eq(batch)
    };
    let (native_enc, native_dec) = (native_enc.map(|(_, d)| d), native_dec.map(|(_, d)| d));
    Ok(Figures {
        codec: codec_name,
        options: options.to_vec(),
        rows,
        bytes: bytes.len(),
        bytes_per_record: bytes.len() as f64 / rows.max(1) as f64,
        ratio_vs_jsonl: baseline / bytes.len().max(1) as f64,
        wasm_encode_rps: rate(rows, enc),
        wasm_decode_rps: rate(rows, dec),
        native_encode_rps: native_enc.map(|d| rate(rows, d)),
        native_decode_rps: native_dec.map(|d| rate(rows, d)),
        encode_tax: native_enc.map(|d| enc.as_secs_f64() / d.as_secs_f64().max(1e-9)),
        decode_tax: native_dec.map(|d| dec.as_secs_f64() / d.as_secs_f64().max(1e-9)),
        round_trip_ok,
        error: None,
    })
}

fn mrps(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.2}", v / 1e6)
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// An aligned table for the terminal.
pub fn table(figures: &[Figures]) -> String {
    let mut out = format!(
        "{:<14} {:>12} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}  {}\n",
        "codec",
        "bytes",
        "B/rec",
        "ratio",
        "enc M/s",
        "dec M/s",
        "nat enc",
        "nat dec",
        "tax e",
        "tax d",
        "round trip"
    );
    for f in figures {
        if let Some(e) = &f.error {
            out += &format!("{:<14} error: {e}\n", f.codec);
            continue;
        }
        out += &format!(
            "{:<14} {:>12} {:>8.2} {:>6.1}x {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}  {}\n",
            f.codec,
            f.bytes,
            f.bytes_per_record,
            f.ratio_vs_jsonl,
            mrps(f.wasm_encode_rps),
            mrps(f.wasm_decode_rps),
            opt(f.native_encode_rps, mrps),
            opt(f.native_decode_rps, mrps),
            opt(f.encode_tax, |t| format!("{t:.2}x")),
            opt(f.decode_tax, |t| format!("{t:.2}x")),
            if f.round_trip_ok {
                "bit-exact"
            } else {
                "MISMATCH"
            }
        );
    }
    out
}

/// Two bar charts (bytes per record; encode and decode throughput through wasm) as SVG.
pub fn chart_svg(figures: &[Figures], title: &str) -> Result<String> {
    use plotters::prelude::*;
    let ok: Vec<&Figures> = figures.iter().filter(|f| f.error.is_none()).collect();
    let mut svg = String::new();
    {
        let height = 140 + 34 * ok.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (1000, height * 2)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(height);
        let names: Vec<String> = ok.iter().map(|f| f.codec.clone()).collect();
        let n = ok.len().max(1) as f64;

        let max_b = ok.iter().map(|f| f.bytes_per_record).fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(&top)
            .caption(
                format!("{title}: bytes per record (smaller is better)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(120)
            .build_cartesian_2d(0.0..max_b, 0.0..n)?;
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(ok.len().max(1))
            .y_label_formatter(&|y| names.get(*y as usize).cloned().unwrap_or_default())
            .x_desc("bytes / record")
            .draw()?;
        c.draw_series(ok.iter().enumerate().map(|(i, f)| {
            Rectangle::new(
                [
                    (0.0, i as f64 + 0.15),
                    (f.bytes_per_record, i as f64 + 0.85),
                ],
                BLUE.mix(0.7).filled(),
            )
        }))?;
        c.draw_series(ok.iter().enumerate().map(|(i, f)| {
            Text::new(
                format!("{:.2}", f.bytes_per_record),
                (f.bytes_per_record, i as f64 + 0.35),
                ("sans-serif", 14),
            )
        }))?;

        let max_r = ok
            .iter()
            .flat_map(|f| [f.wasm_encode_rps, f.wasm_decode_rps])
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max)
            / 1e6
            * 1.15;
        let mut c = ChartBuilder::on(&bottom)
            .caption(
                "throughput through wasm, M records/s (encode dark, decode light)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(120)
            .build_cartesian_2d(0.0..max_r, 0.0..n)?;
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(ok.len().max(1))
            .y_label_formatter(&|y| names.get(*y as usize).cloned().unwrap_or_default())
            .x_desc("M records / s")
            .draw()?;
        c.draw_series(ok.iter().enumerate().map(|(i, f)| {
            Rectangle::new(
                [
                    (0.0, i as f64 + 0.1),
                    (f.wasm_encode_rps / 1e6, i as f64 + 0.48),
                ],
                GREEN.mix(0.8).filled(),
            )
        }))?;
        c.draw_series(ok.iter().enumerate().map(|(i, f)| {
            Rectangle::new(
                [
                    (0.0, i as f64 + 0.52),
                    (f.wasm_decode_rps / 1e6, i as f64 + 0.9),
                ],
                GREEN.mix(0.35).filled(),
            )
        }))?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_stands_for_every_builtin_and_keeps_the_other_names() {
        let builtins = builtin_codecs();
        assert!(builtins.len() >= 5, "{builtins:?}");
        assert_eq!(expand_codecs(&[]), builtins);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut want = builtins.clone();
        want.push("my-codec.wasm".into());
        assert_eq!(expand_codecs(&names(&["all", "my-codec.wasm"])), want);
        assert_eq!(
            expand_codecs(&names(&["columnar", "all"]))[0],
            "columnar",
            "order is kept, each codec once"
        );
        assert_eq!(
            expand_codecs(&names(&["columnar", "all"])).len(),
            builtins.len()
        );
        assert_eq!(
            expand_codecs(&names(&["x.wasm", "parquet"])),
            names(&["x.wasm", "parquet"])
        );
    }

    #[test]
    fn table_and_chart_show_every_codec() {
        let f = Figures {
            codec: "x".into(),
            options: vec![],
            rows: 10,
            bytes: 180,
            bytes_per_record: 18.0,
            ratio_vs_jsonl: 8.0,
            wasm_encode_rps: 2e6,
            wasm_decode_rps: 4e6,
            native_encode_rps: Some(4e6),
            native_decode_rps: None,
            encode_tax: Some(2.0),
            decode_tax: None,
            round_trip_ok: true,
            error: None,
        };
        let mut bad = f.clone();
        bad.codec = "broken".into();
        bad.error = Some("boom".into());
        let t = table(&[f.clone(), bad]);
        assert!(
            t.contains("x ")
                && t.contains("18.00")
                && t.contains("2.00x")
                && t.contains("bit-exact"),
            "{t}"
        );
        assert!(t.contains("broken         error: boom"), "{t}");
        let svg = chart_svg(&[f], "test").unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("bytes per record"),
            "{}",
            &svg[..200]
        );
    }
}
