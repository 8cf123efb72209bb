//! Native benchmark of the `columnar` codec on a CoinGecko-style CSV (gzip or plain):
//! `cargo run --release -p strata-codec-columnar --example bench -- <csv[.gz]> [key=value ...]`.
//!
//! Columns `coin_id,timestamp,price,volume,market_cap`; empty cells are NaN, supply is NaN and
//! rank 0 (the set has neither). Encodes and decodes a few times, checks the round trip bit for
//! bit against the sorted input, and prints bytes per record and the best rates (per CPU second
//! of this thread; for decoding also split into user and system time).

use std::fs::File;
use std::io::{BufReader, Read};
use std::time::Instant;

use strata_codec_columnar::{Columnar, container};
use strata_plugin_sdk::{Batch, decode_checked, encode_checked};

fn load(path: &str) -> Batch {
    let file = BufReader::new(File::open(path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let input: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    strata_plugin_sdk::market_csv::read(path, input).unwrap_or_else(|e| panic!("{e}"))
}

/// CPU time of this thread: the machine may be shared, and wall time then says little.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// This thread's (user, system) CPU time. Decoding writes ~50 bytes per row into fresh memory,
/// and the kernel's page faults for it show up as system time, which depends on the machine
/// and its load more than on the codec.
fn user_system() -> (f64, f64) {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage for getrusage to fill.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: bench <coins.csv[.gz]> [key=value ...]");
    let opts: Vec<(String, String)> = args
        .map(|a| {
            let (k, v) = a.split_once('=').expect("options are key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let batch = load(&path);
    let n = batch.len() as f64;
    println!(
        "{} rows, {} coins, options {opts:?}",
        batch.len(),
        batch.coins.len()
    );

    let codec = Columnar;
    let runs = 5;
    let mut bytes = Vec::new();
    let (mut enc_best, mut enc_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_time());
        bytes = encode_checked(&codec, &batch, &opts).expect("encode");
        enc_cpu = enc_cpu.min(cpu_time() - c);
        enc_best = enc_best.min(t.elapsed().as_secs_f64());
    }
    let (mut dec_best, mut dec_cpu) = (f64::MAX, f64::MAX);
    let mut dec_split = (0.0, 0.0);
    let mut back = Batch::default();
    for _ in 0..runs {
        let (t, c, (u, s)) = (Instant::now(), cpu_time(), user_system());
        back = decode_checked(&codec, &bytes, None).expect("decode");
        let cpu = cpu_time() - c;
        if cpu < dec_cpu {
            let (u1, s1) = user_system();
            dec_split = (u1 - u, s1 - s);
        }
        dec_cpu = dec_cpu.min(cpu);
        dec_best = dec_best.min(t.elapsed().as_secs_f64());
    }
    let expect = batch.sorted();
    if let Some(d) = expect.first_difference(&back) {
        panic!("round trip differs: {d}");
    }
    let one = [batch.coins[0].clone()];
    let t = Instant::now();
    let filtered = decode_checked(&codec, &bytes, Some(&one)).expect("filtered decode");
    let filt = t.elapsed().as_secs_f64();
    assert!(filtered.bit_eq(&batch.filter_coins(&one).sorted()));

    println!("bit-exact round trip: ok");
    println!(
        "size:   {} bytes, {:.3} bytes/record",
        bytes.len(),
        bytes.len() as f64 / n
    );
    println!(
        "encode: {:.2} M rec/s wall, {:.2} M rec/s per CPU second (best of {runs})",
        n / enc_best / 1e6,
        n / enc_cpu / 1e6
    );
    println!(
        "decode: {:.2} M rec/s wall, {:.2} M rec/s per CPU second (best of {runs})",
        n / dec_best / 1e6,
        n / dec_cpu / 1e6
    );
    println!(
        "        best run: ~{:.1} ms user + ~{:.1} ms system (page faults for the output; \
         the split is the kernel's estimate), {:.2} M rec/s per user CPU second",
        dec_split.0 * 1e3,
        dec_split.1 * 1e3,
        n / dec_split.0 / 1e6
    );
    println!(
        "decode of one coin ({} rows): {:.3} ms",
        filtered.len(),
        filt * 1e3
    );
    let block = opts
        .iter()
        .find(|o| o.0 == "block")
        .map(|o| o.1.parse().expect("block"));
    let params = container::Params {
        block: block.unwrap_or(strata_codec_columnar::DEFAULT_BLOCK as usize),
        entropy: true,
    };
    let mut rep = container::SizeReport::default();
    container::encode_with_report(&batch, params, Some(&mut rep)).expect("encode");
    println!("size by part (entropy on):");
    for (name, sym, raw) in &rep.families {
        println!(
            "  {name:>10}: symbols {:6.3} B/rec, raw bits {:6.3} B/rec",
            sym / n,
            raw / n
        );
    }
    println!(
        "  block headers {:.3} B/rec, container header+tables+directory {:.3} B/rec",
        rep.headers / n,
        rep.container as f64 / n
    );
}
