//! A store reads its own segments forever: every codec component that writes a segment is kept
//! in the store (`DIR/plugins/<sha256>.wasm`, see `strata::components`), so `query`, `latest`,
//! `verify` and later transitions work with no policy and no plugin file at hand — here, after
//! the `.wasm` a policy named by path has been deleted — and a kept copy whose bytes changed is
//! refused rather than trusted.

use strata::Store;
use strata::generate::{GenConfig, Generator};
use strata::plugin::{PluginRef, Runtime, RuntimeConfig};
use strata::tiering::{Plan, TierDef};
use strata_tests::guests;

const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000;

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A runtime of its own (nothing loaded before), as a later `strata query` process would have.
fn fresh_runtime(root: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(root.join("cache")),
        plugin_dir: None,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[test]
fn a_store_reads_what_a_deleted_wasm_file_wrote() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let wasm = root.path().join("build/my-codec.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    std::fs::write(&wasm, guests::HOSTILE_CODEC).unwrap();

    let g = Generator::new(GenConfig {
        coins: 4,
        start: START,
        steps: 60,
        interval: DAY,
        seed: 5,
    });
    let coins: Vec<String> = g.coin_meta().into_iter().map(|m| m.id).collect();
    let defs = vec![
        TierDef {
            name: "hot".into(),
            keep: Some(30 * DAY),
            retention: None,
            codec: None,
            window: 0,
            coin_buckets: 0,
            store: String::new(),
            compact: Default::default(),
        },
        TierDef {
            name: "warm".into(),
            keep: None,
            retention: Some((PluginRef::parse("sample"), opts(&[("every", "1d")]))),
            codec: Some((
                PluginRef::parse(wasm.to_str().unwrap()),
                opts(&[("mode", "honest")]),
            )),
            window: 30 * DAY,
            coin_buckets: 2,
            store: String::new(),
            compact: Default::default(),
        },
    ];
    let want: Vec<_> = {
        let mut store = Store::open(&data).unwrap();
        let rt = fresh_runtime(root.path());
        store.set_runtime(rt.clone());
        let meta = g.coin_meta();
        store.ingest(&g.all(), &meta).unwrap();
        let plan = Plan::load(&rt, &defs).unwrap();
        let rep = store.tier(&plan, START + 60 * DAY, false).unwrap();
        assert!(rep[0].segments_written > 0, "{rep:?}");
        coins
            .iter()
            .map(|c| store.query(c, i64::MIN, i64::MAX).unwrap())
            .collect()
    };
    assert!(want.iter().any(|a| a.tier.iter().any(|t| &**t == "warm")));
    std::fs::remove_file(&wasm).unwrap();

    // A new process: no plan, no plugin file, a runtime that has loaded nothing.
    let store = Store::open(&data).unwrap();
    store.set_runtime(fresh_runtime(root.path()));
    for (c, w) in coins.iter().zip(&want) {
        let a = store.query(c, i64::MIN, i64::MAX).unwrap();
        assert!(a.rows.bit_eq(&w.rows) && a.tier == w.tier, "{c}");
        let l = store.latest(c, 1000).unwrap();
        assert!(l.rows.bit_eq(&w.rows), "{c}: latest");
    }
    let rep = store.verify().unwrap();
    assert!(rep.faults.is_empty(), "{:?}", rep.faults);
    drop(store);

    // The kept copy is checked against its name: altered bytes are refused, not run.
    let kept: Vec<_> = std::fs::read_dir(data.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let ours = kept
        .iter()
        .find(|p| {
            strata::plugin::sha256_file(p).unwrap() == p.file_stem().unwrap().to_str().unwrap()
                && std::fs::read(p).unwrap() == guests::HOSTILE_CODEC
        })
        .expect("the store keeps the codec that wrote its segments");
    let mut bytes = std::fs::read(ours).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(ours, bytes).unwrap();
    let store = Store::open(&data).unwrap();
    store.set_runtime(fresh_runtime(root.path()));
    let e = store.query(&coins[0], i64::MIN, i64::MAX).unwrap_err();
    assert!(format!("{e:#}").contains("sha256 mismatch"), "{e:#}");
}
