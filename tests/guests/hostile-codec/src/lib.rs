//! A codec written by an attacker. It declares itself lossless (extension `hostile`) and
//! `encode` always looks fine, but the option `mode` chooses how it misbehaves. `encode` writes
//! the mode into the segment as a header, followed by a faithful little-endian encoding of the
//! batch, and `decode` reads the header back and acts on it:
//!
//! | `mode` | what happens | what the host must do |
//! |---|---|---|
//! | `honest` | a faithful round trip | move the rows |
//! | `bitflip` | decode flips the lowest mantissa bit of every price | verify before delete: abort, nothing lost |
//! | `scale-dates` | decode multiplies the price by 1.5 on even days (`ts / 86_400_000`) | the same |
//! | `drop-rows` | decode leaves out every 10th row | the same |
//! | `decode-loop` | decode loops forever | stop it at the time limit, abort, stop at the first failure |
//! | `decode-trap` | decode panics (`hostile: decode panicked on purpose`) | abort, report the panic text |
//! | `decode-invalid` | decode returns a batch whose coin indices point past `coins` | abort |
//! | `decode-sleep` | decode sleeps for an hour | stop it at the time limit (a sleep is no way round it) |
//! | `clock` | encode reads the wall and monotonic clocks and returns them as the bytes | plugins have no clock: the call fails |
//! | `encode-sleep` | encode sleeps for an hour | stop it at the time limit |
//! | `escape` | encode fails with a message full of terminal escapes | print the message without control characters |
//! | `flood` | encode returns 64 MiB whatever the input | refuse output far larger than the input |
//! | `random` | encode returns 16 bytes drawn from the sandbox's randomness | plugins are pure functions: the same call gives the same bytes (or fails) |
//! | `filter-lie` | decode is faithful without a coin filter, but flips the lowest mantissa bit of every price when given one | a query never returns rows other than those stored |
//! | `filter-sleep` | decode is faithful without a coin filter, but sleeps for an hour when given one | the query fails at the time limit, naming the plugin and segment; the store stays usable |
//! | `snoop` | encode grows its memory by 64 MiB and scans all of it for the 8-byte word `price[0].to_bits() ^ SNOOP_KEY` and returns how often it occurs (u64, little-endian) | calls share memory slots, never contents: a word an earlier call held is not found |
//!
//! `snoop` never holds the word it looks for in memory: it is computed into a local from the
//! first price, so what it finds was left by someone else (or is in its own input, which is
//! how a test shows the scan works).
//!
//! The `filter-*` modes pass a check that decodes a new segment without a coin filter, and
//! misbehave only when a query decodes with one. The codec claims `filter-pushdown`, but the
//! host gives a coin filter only to its own built-ins, so a query decodes as the check did.
//!
//! The component is bound to the WIT world by hand rather than through the SDK's
//! `export_codec!`, so nothing on the guest side (the SDK validates what `decode` returns)
//! stands between the attack and the host.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use strata_plugin_sdk::{Batch, CodecInfo, Column, Error, OptionSpec, Options, PluginInfo, Result};

/// Every `mode` the codec takes.
pub const MODES: [&str; 16] = [
    "honest",
    "bitflip",
    "scale-dates",
    "drop-rows",
    "decode-loop",
    "decode-trap",
    "decode-invalid",
    "decode-sleep",
    "clock",
    "encode-sleep",
    "escape",
    "flood",
    "random",
    "filter-lie",
    "filter-sleep",
    "snoop",
];

/// What `snoop` XORs the first price's bits with to get the word it looks for.
pub const SNOOP_KEY: u64 = 0x0000_ffff_0000_ffff;

/// The first bytes of every segment this codec writes.
const MAGIC: &[u8; 8] = b"HOSTILE1";

const DAY_MS: i64 = 86_400_000;

/// How long the sleeping modes sleep: far past any time limit.
const SLEEP: Duration = Duration::from_secs(3600);

/// What the codec says about itself: a lossless codec like any other.
pub fn describe() -> CodecInfo {
    CodecInfo {
        info: PluginInfo {
            name: "hostile-codec".into(),
            version: "0.0.0".into(),
            description: "test guest: a lossless-looking codec that misbehaves on request".into(),
            options: vec![OptionSpec::new(
                "mode",
                &MODES.join("|"),
                "honest",
                "how to misbehave (see the crate's documentation)",
            )],
        },
        extension: "hostile".into(),
        media_type: "application/octet-stream".into(),
        lossless: true,
        sorts_rows: false,
        // Claimed, so the `filter-*` modes are given a filter wherever a host would give one.
        filter_pushdown: true,
        extra_columns: true,
    }
}

/// Encodes `batch` under the `mode` option (see the crate documentation).
pub fn encode(batch: &Batch, opts: &[(String, String)]) -> Result<Vec<u8>> {
    let opts = Options::parse(opts, &describe().info.options)?;
    let mode = opts.get("mode").unwrap_or("honest");
    if !MODES.contains(&mode) {
        return Err(Error::InvalidOptions(format!(
            "option `mode`: `{mode}` is not one of {}",
            MODES.join(", ")
        )));
    }
    match mode {
        "clock" => {
            let wall = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mono = Instant::now();
            return Ok(
                format!("wall clock: {wall} ns since 1970; monotonic clock: {mono:?}").into_bytes(),
            );
        }
        "encode-sleep" => std::thread::sleep(SLEEP),
        "escape" => {
            return Err(Error::Internal("\u{1b}[2J\u{1b}[31mred\u{7} text".into()));
        }
        "flood" => return Ok(vec![0x5a; 64 << 20]),
        "snoop" => {
            let Some(first) = batch.price.first() else {
                return Err(Error::InvalidOptions("`snoop` needs a row".into()));
            };
            return Ok(snoop(first.to_bits() ^ SNOOP_KEY).to_le_bytes().to_vec());
        }
        "random" => {
            use std::hash::BuildHasher;
            let state = std::collections::hash_map::RandomState::new();
            let bytes = [state.hash_one(1u64), state.hash_one(2u64)];
            return Ok(bytes.iter().flat_map(|v| v.to_le_bytes()).collect());
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(64 + batch.len() * 48);
    out.extend_from_slice(MAGIC);
    put_str(&mut out, mode);
    put_batch(&mut out, batch);
    Ok(out)
}

/// Decodes a segment, misbehaving as its header says (the `filter-*` modes only when given a
/// coin filter, which is otherwise ignored).
pub fn decode(bytes: &[u8], coins: Option<&[String]>) -> Result<Batch> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(Error::corrupt("not a hostile-codec segment (bad magic)"));
    }
    let mode = r.string()?;
    let mut batch = r.batch()?;
    if r.at != bytes.len() {
        return Err(Error::corrupt(format!(
            "{} bytes after the batch",
            bytes.len() - r.at
        )));
    }
    // The `filter-*` modes act like `bitflip` and `decode-sleep` in queries only.
    let mode = match (mode.as_str(), coins.is_some()) {
        ("filter-lie", true) => "bitflip",
        ("filter-sleep", true) => "decode-sleep",
        (m, _) => m,
    };
    match mode {
        "bitflip" => {
            for p in &mut batch.price {
                *p = f64::from_bits(p.to_bits() ^ 1);
            }
        }
        "scale-dates" => {
            for (p, &ts) in batch.price.iter_mut().zip(&batch.ts) {
                if ts.div_euclid(DAY_MS) % 2 == 0 {
                    *p *= 1.5;
                }
            }
        }
        "drop-rows" => {
            let keep: Vec<u32> = (0..batch.len() as u32).filter(|i| i % 10 != 9).collect();
            let extra: Vec<Column> = batch
                .extra
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: keep.iter().map(|&i| c.values[i as usize]).collect(),
                })
                .collect();
            let coins = batch.coins.clone();
            batch = Batch {
                coins,
                coin_index: keep.iter().map(|&i| batch.coin_index[i as usize]).collect(),
                ts: keep.iter().map(|&i| batch.ts[i as usize]).collect(),
                price: keep.iter().map(|&i| batch.price[i as usize]).collect(),
                market_cap: keep.iter().map(|&i| batch.market_cap[i as usize]).collect(),
                volume: keep.iter().map(|&i| batch.volume[i as usize]).collect(),
                supply: keep.iter().map(|&i| batch.supply[i as usize]).collect(),
                rank: keep.iter().map(|&i| batch.rank[i as usize]).collect(),
                extra,
            };
        }
        "decode-loop" => {
            let mut x = 0u64;
            loop {
                x = black_box(x.wrapping_add(1));
            }
        }
        "decode-trap" => panic!("hostile: decode panicked on purpose"),
        "decode-invalid" => {
            let past = batch.coins.len() as u32 + 7;
            batch.coin_index.fill(past);
            if batch.is_empty() {
                batch.push(past, 0, 1.0, 1.0, 1.0, 1.0, 1);
            }
        }
        "decode-sleep" => std::thread::sleep(SLEEP),
        _ => {}
    }
    Ok(batch)
}

/// How many aligned 8-byte words of this instance's linear memory equal `word`, after growing
/// it by 64 MiB without writing there: so the scan covers whatever an earlier, larger call
/// used, not only what this one's own allocations have overwritten.
#[cfg(target_arch = "wasm32")]
fn snoop(word: u64) -> u64 {
    core::arch::wasm32::memory_grow(0, (64 << 20) / 65536);
    let end = core::arch::wasm32::memory_size(0) * 65536;
    (8..end)
        .step_by(8)
        // SAFETY: every address below `memory.size` is readable in wasm; the reads are
        // volatile so they are not assumed to see only what this program wrote.
        .filter(|&at| unsafe { std::ptr::read_volatile(at as *const u64) } == word)
        .count() as u64
}

/// Natively there is no instance memory to scan.
#[cfg(not(target_arch = "wasm32"))]
fn snoop(_word: u64) -> u64 {
    0
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn put_f64s(out: &mut Vec<u8>, values: &[f64]) {
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// The faithful part of a segment: every column, little-endian, floats by their bits.
fn put_batch(out: &mut Vec<u8>, b: &Batch) {
    put_u32(out, b.coins.len() as u32);
    for c in &b.coins {
        put_str(out, c);
    }
    put_u32(out, b.len() as u32);
    for &c in &b.coin_index {
        put_u32(out, c);
    }
    for &t in &b.ts {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for col in [&b.price, &b.market_cap, &b.volume, &b.supply] {
        put_f64s(out, col);
    }
    for &r in &b.rank {
        put_u32(out, r);
    }
    put_u32(out, b.extra.len() as u32);
    for c in &b.extra {
        put_str(out, &c.name);
        put_f64s(out, &c.values);
    }
}

/// Reads what [`put_batch`] wrote; truncated or garbled input is `corrupt-input`.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::corrupt(format!("truncated at byte {}", self.at)))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of items of `size` bytes each, checked against what is left.
    fn count(&mut self, size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.bytes.len() - self.at {
            return Err(Error::corrupt(format!(
                "count {n} at byte {} is too large",
                self.at - 4
            )));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| Error::corrupt(format!("a string before byte {} is not UTF-8", self.at)))
    }

    fn f64s(&mut self, n: usize) -> Result<Vec<f64>> {
        (0..n).map(|_| self.u64().map(f64::from_bits)).collect()
    }

    fn batch(&mut self) -> Result<Batch> {
        let coins = (0..self.count(4)?)
            .map(|_| self.string())
            .collect::<Result<Vec<_>>>()?;
        let n = self.count(36)?;
        let coin_index = (0..n).map(|_| self.u32()).collect::<Result<_>>()?;
        let ts = (0..n)
            .map(|_| self.u64().map(|v| v as i64))
            .collect::<Result<_>>()?;
        let (price, market_cap) = (self.f64s(n)?, self.f64s(n)?);
        let (volume, supply) = (self.f64s(n)?, self.f64s(n)?);
        let rank = (0..n).map(|_| self.u32()).collect::<Result<_>>()?;
        let extra = (0..self.count(4)?)
            .map(|_| {
                let name = self.string()?;
                Ok(Column {
                    name,
                    values: self.f64s(n)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Batch {
            coins,
            coin_index,
            ts,
            price,
            market_cap,
            volume,
            supply,
            rank,
            extra,
        })
    }
}

/// The component: the WIT `tier-codec` bound straight to the functions above.
#[cfg(target_arch = "wasm32")]
mod component {
    use strata_plugin_sdk::guest::codec_world::exports::strata::plugin::tier_codec as api;
    use strata_plugin_sdk::guest::codec_world::strata::plugin::types as wit;

    struct HostileCodec;

    impl api::Guest for HostileCodec {
        fn describe() -> api::CodecInfo {
            let i = super::describe();
            api::CodecInfo {
                info: i.info.into(),
                extension: i.extension,
                media_type: i.media_type,
                lossless: i.lossless,
                sorts_rows: i.sorts_rows,
                filter_pushdown: i.filter_pushdown,
                extra_columns: i.extra_columns,
            }
        }

        fn encode(data: wit::Batch, opts: wit::Options) -> Result<Vec<u8>, wit::Error> {
            Ok(super::encode(&data.into(), &opts)?)
        }

        fn decode(bytes: Vec<u8>, coins: Option<Vec<String>>) -> Result<wit::Batch, wit::Error> {
            Ok(super::decode(&bytes, coins.as_deref())?.into())
        }
    }

    strata_plugin_sdk::guest::codec_world::__export_codec_world!(
        HostileCodec with_types_in strata_plugin_sdk::guest::codec_world
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        let mut b = Batch {
            coins: vec!["a".into(), "b".into()],
            ..Batch::default()
        };
        for i in 0..25i64 {
            b.push(
                (i % 2) as u32,
                i * DAY_MS / 2,
                1.0 + i as f64,
                -0.0,
                f64::NAN,
                5e-324,
                i as u32,
            );
        }
        b.add_extra("count");
        b
    }

    fn opts(mode: &str) -> Vec<(String, String)> {
        vec![("mode".into(), mode.into())]
    }

    #[test]
    fn honest_round_trips_bit_for_bit() {
        let b = sample();
        let back = decode(&encode(&b, &opts("honest")).unwrap(), None).unwrap();
        assert!(back.bit_eq(&b), "{:?}", back.first_difference(&b));
    }

    #[test]
    fn lying_modes_change_what_decode_returns() {
        let b = sample();
        for mode in ["bitflip", "scale-dates", "drop-rows"] {
            let back = decode(&encode(&b, &opts(mode)).unwrap(), None).unwrap();
            assert!(!back.bit_eq(&b), "{mode}");
            back.validate().unwrap();
        }
        let bad = decode(&encode(&b, &opts("decode-invalid")).unwrap(), None).unwrap();
        assert!(bad.validate().is_err());
        // Without a coin filter, `filter-lie` is faithful; with one it lies.
        let bytes = encode(&b, &opts("filter-lie")).unwrap();
        assert!(decode(&bytes, None).unwrap().bit_eq(&b));
        assert!(!decode(&bytes, Some(&["a".into()])).unwrap().bit_eq(&b));
    }

    #[test]
    fn garbage_is_corrupt_input() {
        let bytes = encode(&sample(), &opts("honest")).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], None).is_err(), "prefix of {n} bytes");
        }
        assert!(matches!(
            encode(&sample(), &opts("nonsense")),
            Err(Error::InvalidOptions(_))
        ));
    }
}
