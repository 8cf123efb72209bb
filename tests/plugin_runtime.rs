//! The plugin runtime against real and misbehaving components: every built-in passes the
//! conformance suite and agrees with its native build; loops, memory hogs, panics, floods,
//! tampered and wrong-world components are stopped or refused with clear errors, and the host
//! keeps working after each.

use std::time::{Duration, Instant};

use strata::plugin::{self, CallErrorKind, Limits, PluginRef, PluginSource, conformance};
use strata::sdk::{Batch, Selection};
use strata_tests::{guests, runtime};

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_conformant(name: &str) {
    let p = runtime().load(&PluginRef::parse(name)).unwrap();
    let report = conformance::run(&p, &[]);
    let failures: Vec<String> = report
        .failures()
        .map(|c| format!("{}: {}", c.name, c.outcome.as_ref().unwrap_err()))
        .collect();
    assert!(
        failures.is_empty(),
        "{name} failed conformance:\n{}",
        failures.join("\n")
    );
    assert!(
        report.checks.len() >= 8,
        "suspiciously few checks: {}",
        report.checks.len()
    );
}

/// One conformance test per built-in, generated, so a new plugin is covered the day it lands.
mod conformance_per_builtin {
    macro_rules! conformance_test {
        ($ident:ident, $name:literal, $kind:ident) => {
            #[test]
            fn $ident() {
                super::assert_conformant($name);
            }
        };
    }
    strata::foreach_builtin!(conformance_test);
}

/// Hand-written tests of each built-in's own behaviour. The macro below fails to compile when a
/// built-in has no test here, the way wasmtime's `foreach_*` macros enforce a test per guest.
mod each_builtin {
    use super::*;

    macro_rules! assert_test_exists {
        ($ident:ident, $name:literal, $kind:ident) => {
            #[allow(unused_imports)]
            use self::$ident as _;
        };
    }
    strata::foreach_builtin!(assert_test_exists);

    /// The wasm build and the native build of a codec produce interchangeable bytes.
    fn wasm_and_native_agree(name: &str, options: &[(String, String)]) {
        let wasm = runtime().codec(&PluginRef::parse(name)).unwrap();
        let Some(plugin::native::Native::Codec(make)) = plugin::native(name) else {
            panic!("{name} has no native codec");
        };
        let native = make();
        let data = conformance::real_extract();
        let from_wasm = wasm.encode(&data, options).unwrap();
        let from_native = strata::sdk::encode_checked(native.as_ref(), &data, options).unwrap();
        let a = native.decode(&from_wasm, None).unwrap();
        let b = wasm.decode(&from_native, None).unwrap();
        let (a, b) = if wasm.info.sorts_rows {
            (a.sorted(), b.sorted())
        } else {
            (a, b)
        };
        assert!(a.bit_eq(&b), "{name}: {:?}", a.first_difference(&b));
    }

    #[test]
    fn jsonl_gzip() {
        wasm_and_native_agree("jsonl-gzip", &opts(&[("level", "9")]));
        // The encoding is gzip around one JSON object per row.
        let bytes = runtime()
            .codec(&PluginRef::parse("jsonl-gzip"))
            .unwrap()
            .encode(&conformance::real_extract(), &[])
            .unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    }

    /// The bytes a built-in codec makes of the real-data extract.
    fn encoded(name: &str, options: &[(String, String)]) -> Vec<u8> {
        runtime()
            .codec(&PluginRef::parse(name))
            .unwrap()
            .encode(&conformance::real_extract(), options)
            .unwrap()
    }

    #[test]
    fn jsonl() {
        wasm_and_native_agree("jsonl", &[]);
        let text = String::from_utf8(encoded("jsonl", &[])).unwrap();
        let data = conformance::real_extract();
        assert_eq!(text.lines().count(), data.len());
        assert!(text.lines().all(|l| l.starts_with("{\"coin\":") && l.ends_with('}')));
    }

    #[test]
    fn jsonl_brotli() {
        wasm_and_native_agree("jsonl-brotli", &opts(&[("quality", "9")]));
        let q1 = encoded("jsonl-brotli", &opts(&[("quality", "1")]));
        let q9 = encoded("jsonl-brotli", &opts(&[("quality", "9")]));
        assert!(q9.len() < q1.len(), "quality 9 ({}) should beat quality 1 ({})", q9.len(), q1.len());
        let err = runtime()
            .codec(&PluginRef::parse("jsonl-brotli"))
            .unwrap()
            .encode(&Batch::default(), &opts(&[("quality", "12")]))
            .unwrap_err();
        assert!(err.to_string().contains("quality"), "{err}");
    }

    #[test]
    fn msgpack_gzip() {
        wasm_and_native_agree("msgpack-gzip", &[]);
        assert_eq!(&encoded("msgpack-gzip", &[])[..2], &[0x1f, 0x8b], "gzip magic");
    }

    #[test]
    fn protobuf() {
        wasm_and_native_agree("protobuf", &[]);
        // The shipped schema is in the repository beside the plugin.
        let proto = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/protobuf/strata.proto")).unwrap();
        assert!(proto.contains("syntax = \"proto3\""));
    }

    #[test]
    fn parquet() {
        for c in ["snappy", "gzip", "brotli", "lz4", "none"] {
            wasm_and_native_agree("parquet", &opts(&[("compression", c)]));
            let bytes = encoded("parquet", &opts(&[("compression", c)]));
            assert_eq!(&bytes[..4], b"PAR1", "{c}");
            assert_eq!(&bytes[bytes.len() - 4..], b"PAR1", "{c}");
        }
    }

    #[test]
    fn columnar() {
        wasm_and_native_agree("columnar", &[]);
        let rt = runtime();
        let col = rt.codec(&PluginRef::parse("columnar")).unwrap();
        let gz = rt.codec(&PluginRef::parse("jsonl-gzip")).unwrap();
        let data = conformance::real_extract();
        let small = col.encode(&data, &[]).unwrap();
        let big = gz.encode(&data, &opts(&[("level", "9")])).unwrap();
        assert!(
            small.len() * 3 < big.len() * 2,
            "columnar {} B vs jsonl-gzip {} B",
            small.len(),
            big.len()
        );
        // The coin filter is pushed down: only the wanted coin comes back.
        let btc = col.decode(&small, Some(&["bitcoin".to_string()])).unwrap();
        assert!(btc.rows().all(|r| r.coin == "bitcoin"));
        assert!(btc.bit_eq(&data.filter_coins(&["bitcoin".to_string()]).sorted()));
    }

    #[test]
    fn sample() {
        let wasm = runtime().policy(&PluginRef::parse("sample")).unwrap();
        let data = conformance::real_extract().sorted();
        let last = vec![None; data.coins.len()];
        for every in ["1d", "week", "month", "quarter"] {
            let o = opts(&[("every", every)]);
            let Selection::Keep(k) = wasm.select(&data, &last, &o).unwrap() else {
                panic!("sample returned a rollup");
            };
            // Independent model: the first row of each (coin, bucket).
            let starts = wasm.bucket_starts(&data.ts, &o).unwrap();
            let expect: Vec<u32> = (0..data.len())
                .filter(|&i| {
                    i == 0
                        || data.coin_index[i] != data.coin_index[i - 1]
                        || starts[i] != starts[i - 1]
                })
                .map(|i| i as u32)
                .collect();
            assert_eq!(k, expect, "every = {every}");
        }
        let err = wasm
            .check_options(&opts(&[("every", "fortnight")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("plugin `sample`, function `check-options`"),
            "{err}"
        );
        assert!(err.to_string().contains("`every`"), "{err}");
    }

    #[test]
    fn rollup() {
        let wasm = runtime().policy(&PluginRef::parse("rollup")).unwrap();
        assert!(wasm.info.rolls_up);
        let Some(plugin::native::Native::Policy(make)) = plugin::native("rollup") else {
            panic!("rollup has no native policy");
        };
        let native = make();
        let data = conformance::real_extract().sorted();
        let last = vec![None; data.coins.len()];
        let o = opts(&[("every", "week")]);
        let Selection::Rollup(got) = wasm.select(&data, &last, &o).unwrap() else {
            panic!("rollup returned indices");
        };
        let Selection::Rollup(same) =
            strata::sdk::select_checked(native.as_ref(), &data, &last, &o).unwrap()
        else {
            panic!("native rollup returned indices");
        };
        assert!(got.bit_eq(&same), "{:?}", got.first_difference(&same));
        // Independent model of open/high/low/close per (coin, week).
        let starts = wasm.bucket_starts(&data.ts, &o).unwrap();
        let mut groups: Vec<(u32, i64, Vec<f64>)> = Vec::new();
        for (i, &start) in starts.iter().enumerate() {
            let key = (data.coin_index[i], start);
            match groups.last_mut() {
                Some(g) if (g.0, g.1) == key => g.2.push(data.price[i]),
                _ => groups.push((key.0, key.1, vec![data.price[i]])),
            }
        }
        assert_eq!(got.len(), groups.len());
        for (r, (_, start, prices)) in groups.iter().enumerate() {
            assert_eq!(got.ts[r], *start);
            assert_eq!(got.extra("open").unwrap()[r], prices[0]);
            assert_eq!(got.price[r], *prices.last().unwrap());
            assert_eq!(
                got.extra("high").unwrap()[r],
                prices.iter().cloned().fold(f64::MIN, f64::max)
            );
            assert_eq!(
                got.extra("low").unwrap()[r],
                prices.iter().cloned().fold(f64::MAX, f64::min)
            );
            assert_eq!(got.extra("count").unwrap()[r], prices.len() as f64);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sandbox and limits

fn misbehave(limits: Limits) -> plugin::CodecPlugin {
    runtime()
        .with_limits(limits)
        .load_bytes(guests::MISBEHAVE, "misbehave.wasm", None)
        .and_then(|p| match p {
            plugin::Plugin::Codec(c) => Ok(c),
            plugin::Plugin::Policy(_) => anyhow::bail!("misbehave is a codec"),
        })
        .unwrap()
}

/// After any failure the host and other plugins still work.
fn host_still_works(p: &plugin::CodecPlugin) {
    assert_eq!(
        p.encode(&Batch::default(), &opts(&[("mode", "none")]))
            .unwrap(),
        b""
    );
    let gz = runtime().codec(&PluginRef::parse("jsonl-gzip")).unwrap();
    let data = conformance::real_extract();
    let back = gz.decode(&gz.encode(&data, &[]).unwrap(), None).unwrap();
    assert!(back.bit_eq(&data));
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_time_limit() {
    let p = misbehave(Limits {
        time: Duration::from_millis(300),
        ..Limits::default()
    });
    let start = Instant::now();
    let err = p
        .encode(&Batch::default(), &opts(&[("mode", "spin")]))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err.kind, CallErrorKind::Timeout(_)), "{err}");
    assert_eq!((err.plugin.as_str(), err.function), ("misbehave", "encode"));
    assert!(err.to_string().contains("time limit of 300ms"), "{err}");
    assert!(
        took >= Duration::from_millis(300),
        "stopped early: {took:?}"
    );
    host_still_works(&p);
}

#[test]
fn a_plugin_that_allocates_without_bound_is_stopped_at_its_memory_limit() {
    let p = misbehave(Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    });
    let err = p
        .encode(&Batch::default(), &opts(&[("mode", "hog")]))
        .unwrap_err();
    assert!(matches!(err.kind, CallErrorKind::Memory(_)), "{err}");
    assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
    host_still_works(&p);
}

#[test]
fn a_panic_is_a_trap_naming_plugin_and_function() {
    let p = misbehave(Limits::default());
    let err = p
        .encode(&Batch::default(), &opts(&[("mode", "panic")]))
        .unwrap_err();
    assert!(matches!(err.kind, CallErrorKind::Trap(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("plugin `misbehave`, function `encode`: trapped"),
        "{msg}"
    );
    host_still_works(&p);
}

#[test]
fn output_past_the_cap_is_refused() {
    let p = misbehave(Limits {
        output_bytes: 1 << 20,
        ..Limits::default()
    });
    let ok = p
        .encode(
            &Batch::default(),
            &opts(&[("mode", "flood"), ("bytes", "1000")]),
        )
        .unwrap();
    assert_eq!(ok.len(), 1000);
    let err = p
        .encode(
            &Batch::default(),
            &opts(&[("mode", "flood"), ("bytes", "4194304")]),
        )
        .unwrap_err();
    assert!(matches!(err.kind, CallErrorKind::Output(_)), "{err}");
    host_still_works(&p);
}

#[test]
fn plugins_see_no_files_environment_or_network() {
    // SAFETY: the test sets a variable the plugin must not see; no other thread reads it.
    unsafe { std::env::set_var("STRATA_SECRET_FOR_TEST", "1") };
    let p = misbehave(Limits::default());
    let seen = p
        .encode(&Batch::default(), &opts(&[("mode", "probe")]))
        .unwrap();
    assert_eq!(String::from_utf8(seen).unwrap(), "", "the sandbox leaked");
}

#[test]
fn a_tampered_plugin_is_refused() {
    let good = plugin::builtin("jsonl-gzip").unwrap().wasm;
    let pin = runtime()
        .load_bytes(good, "jsonl-gzip", None)
        .unwrap()
        .meta()
        .sha256
        .clone();
    // The right pin loads.
    runtime()
        .load_bytes(good, "jsonl-gzip", Some(&pin))
        .unwrap();
    // One changed byte, same pin: refused before anything runs.
    let dir = std::env::temp_dir().join(format!("strata-tamper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jsonl-gzip.wasm");
    let mut bad = good.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let r = PluginRef {
        source: PluginSource::Path(path.clone()),
        sha256: Some(pin.clone()),
    };
    let err = format!(
        "{:#}",
        runtime().load(&r).err().expect("tampered plugin loaded")
    );
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert!(err.contains(&pin), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    host_still_works(&misbehave(Limits::default()));
}

#[test]
fn a_wrong_world_component_is_refused_clearly() {
    let err = format!(
        "{:#}",
        runtime()
            .load_bytes(guests::WRONG_WORLD, "wrong-world.wasm", None)
            .err()
            .expect("loaded")
    );
    assert!(err.contains("wrong-world.wasm exports neither"), "{err}");
    assert!(err.contains(plugin::CODEC_EXPORT), "{err}");
    // Not a component at all.
    let err = format!(
        "{:#}",
        runtime()
            .load_bytes(b"\0asm\x01\0\0\0", "core.wasm", None)
            .err()
            .unwrap()
    );
    assert!(
        err.contains("core.wasm: not a valid WebAssembly component"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        runtime()
            .load_bytes(b"garbage", "junk.wasm", None)
            .err()
            .unwrap()
    );
    assert!(err.contains("junk.wasm"), "{err}");
    // A policy where a codec is expected.
    let err = format!(
        "{:#}",
        runtime().codec(&PluginRef::parse("sample")).err().unwrap()
    );
    assert!(err.contains("is a retention policy"), "{err}");
    host_still_works(&misbehave(Limits::default()));
}
