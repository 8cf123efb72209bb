//! The service's Prometheus metrics (`GET /metrics`, text format), through the
//! `prometheus-client` crate: what the writer counts (collections, transitions), what every
//! request costs (by route and status), what each tier holds (read from a snapshot at scrape
//! time) and every plugin function's calls and how they failed
//! ([`plugin::call_counts`](crate::plugin::call_counts)).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::verify::{DiskUsage, TierStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TierLabel {
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FileLabel {
    pub file: String,
}

/// Every metric the service keeps, registered once.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub registry: Registry,
    pub collections: Counter,
    pub collections_failed: Counter,
    pub collection_coins: Histogram,
    pub last_collection: Gauge<f64, AtomicU64>,
    pub transitions: Counter,
    pub transitions_failed: Counter,
    pub transition_seconds: Histogram,
    pub records_moved: Counter,
    pub last_transition: Gauge<f64, AtomicU64>,
    pub tier_rows: Family<TierLabel, Gauge>,
    pub tier_bytes: Family<TierLabel, Gauge>,
    pub tier_segments: Family<TierLabel, Gauge>,
    pub disk_bytes: Family<FileLabel, Gauge>,
    pub http_requests: Family<RouteLabel, Counter>,
    pub http_seconds: Family<RouteOnly, Histogram>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            collections: Counter::default(),
            collections_failed: Counter::default(),
            collection_coins: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            last_collection: Gauge::default(),
            transitions: Counter::default(),
            transitions_failed: Counter::default(),
            transition_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            records_moved: Counter::default(),
            last_transition: Gauge::default(),
            tier_rows: Family::default(),
            tier_bytes: Family::default(),
            tier_segments: Family::default(),
            disk_bytes: Family::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
        };
        let r = &mut m.registry;
        r.register(
            "strata_collections",
            "Collections run (Coinpaprika tickers fetched and ingested)",
            m.collections.clone(),
        );
        r.register(
            "strata_collections_failed",
            "Collections that failed (retried at the next tick)",
            m.collections_failed.clone(),
        );
        r.register(
            "strata_collection_coins",
            "Coins per successful collection",
            m.collection_coins.clone(),
        );
        r.register(
            "strata_last_collection_timestamp_seconds",
            "When the last collection succeeded (Unix seconds)",
            m.last_collection.clone(),
        );
        r.register(
            "strata_transitions",
            "Tier transition runs",
            m.transitions.clone(),
        );
        r.register(
            "strata_transitions_failed",
            "Tier transition runs that failed (nothing moved; retried at the next tick)",
            m.transitions_failed.clone(),
        );
        r.register(
            "strata_transition_duration_seconds",
            "Time of each tier transition run",
            m.transition_seconds.clone(),
        );
        r.register(
            "strata_records_moved",
            "Records read out of a tier by transitions",
            m.records_moved.clone(),
        );
        r.register(
            "strata_last_transition_timestamp_seconds",
            "When the last tier transition run succeeded (Unix seconds)",
            m.last_transition.clone(),
        );
        r.register("strata_tier_rows", "Rows per tier", m.tier_rows.clone());
        r.register(
            "strata_tier_bytes",
            "Bytes per tier (segments; the hot tier's share of SQLite pages)",
            m.tier_bytes.clone(),
        );
        r.register(
            "strata_tier_segments",
            "Segments per tier",
            m.tier_segments.clone(),
        );
        r.register(
            "strata_disk_bytes",
            "What the data directory holds on disk, by file kind",
            m.disk_bytes.clone(),
        );
        r.register(
            "strata_http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "strata_http_request_duration_seconds",
            "HTTP request latency by route",
            m.http_seconds.clone(),
        );
        r.register_collector(Box::new(PluginCalls));
        m
    }

    /// Sets the per-tier gauges from a snapshot's stats.
    pub fn set_tiers(&self, stats: &[TierStats], disk: &DiskUsage) {
        self.tier_rows.clear();
        self.tier_bytes.clear();
        self.tier_segments.clear();
        for t in stats {
            let l = TierLabel {
                tier: t.tier.clone(),
            };
            self.tier_rows.get_or_create(&l).set(t.rows as i64);
            self.tier_bytes.get_or_create(&l).set(t.bytes as i64);
            self.tier_segments.get_or_create(&l).set(t.segments as i64);
        }
        for (file, bytes) in [
            ("database", disk.db_file),
            ("wal", disk.wal_file),
            ("free_pages", disk.free_pages),
            ("segments", disk.segment_files),
            ("kept_codecs", disk.components),
        ] {
            self.disk_bytes
                .get_or_create(&FileLabel { file: file.into() })
                .set(bytes as i64);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Plugin calls, traps, time-outs and limit hits per plugin and function, read at scrape time.
#[derive(Debug)]
struct PluginCalls;

impl Collector for PluginCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = crate::plugin::call_counts();
        type Pick = fn(&crate::plugin::CallCounts) -> u64;
        let families: [(&str, &str, Pick); 5] = [
            ("strata_plugin_calls", "Plugin function calls", |c| c.calls),
            ("strata_plugin_traps", "Plugin calls ended by a trap", |c| {
                c.traps
            }),
            (
                "strata_plugin_timeouts",
                "Plugin calls stopped at their time limit",
                |c| c.timeouts,
            ),
            (
                "strata_plugin_memory_limit_hits",
                "Plugin calls stopped at their memory limit",
                |c| c.memory_limit,
            ),
            (
                "strata_plugin_output_limit_hits",
                "Plugin calls stopped at their output cap",
                |c| c.output_limit,
            ),
        ];
        for (name, help, pick) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (plugin, function, c) in &counts {
                let labels = [("plugin", plugin.as_str()), ("function", *function)];
                ConstCounter::new(pick(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
