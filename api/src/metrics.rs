//! Prometheus metrics: a registry per server (no globals, so tests run servers side by side).
//!
//! HTTP requests are counted by method, matched route and status, and timed by route. Every label
//! comes from a closed set, so a client cannot grow the registry: routes are the matched templates
//! (`/api/interviews/{id}`, never raw paths, so no id or token ends up in a label), methods outside
//! the standard ones are `other`, and statuses are whatever the server itself answered.
//!
//! Who may read the metrics is decided in `routes::ops`: a separate listener, or a bearer token.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use sightline_cluster::Cluster;
use sightline_sfu::{LATENCY_BOUNDS_US, WorkerStats};
use sightline_signaling::Hub;

use crate::handoff::LinkStats;
use crate::serve::ConnectionStats;
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// The method's label: one of the standard methods, or `other` for anything a client invented.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's instruments.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

impl Metrics {
    /// A fresh registry with Sightline's HTTP instruments, the listener's connection counters,
    /// the counters of the media workers, what the hub hosts and, in a cluster, this node's
    /// heartbeats and placements.
    pub fn new(
        hub: &Hub,
        cluster: Option<Cluster>,
        connections: Arc<ConnectionStats>,
        workers: Option<Arc<LinkStats>>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("sightline");
        registry.register_collector(Box::new(SfuCollector {
            workers: hub.worker_stats(),
        }));
        registry.register_collector(Box::new(NodeCollector {
            hub: hub.clone(),
            cluster,
            workers,
        }));
        registry.register_collector(Box::new(ConnectionCollector { connections }));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling time by route",
            latency.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            latency,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The HTTP listener's connection counters, read at each scrape.
#[derive(Debug)]
struct ConnectionCollector {
    connections: Arc<ConnectionStats>,
}

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.connections;
        let open = u64::try_from(stats.open.load(Ordering::Relaxed)).unwrap_or(u64::MAX);
        let gauge = ConstGauge::new(i64::try_from(open).unwrap_or(i64::MAX));
        gauge.encode(encoder.encode_descriptor(
            "http_connections_open",
            "HTTP connections open now, WebSockets included",
            None,
            gauge.metric_type(),
        )?)?;
        let counters: [(&str, &str, u64); 4] = [
            (
                "http_connections_accepted",
                "HTTP connections accepted",
                stats.accepted.load(Ordering::Relaxed),
            ),
            (
                "http_connections_shed",
                "Idle HTTP connections closed to make room at the connection cap",
                stats.shed.load(Ordering::Relaxed),
            ),
            (
                "http_connections_refused",
                "HTTP connections refused at the connection cap",
                stats.refused.load(Ordering::Relaxed),
            ),
            (
                "http_connections_idle_closed",
                "HTTP connections closed after the idle timeout",
                stats.idle_closed.load(Ordering::Relaxed),
            ),
        ];
        encode_counters(&mut encoder, &counters)
    }
}

/// What this node hosts and, in a cluster, how its heartbeats and placements went.
struct NodeCollector {
    hub: Hub,
    cluster: Option<Cluster>,
    /// Work handed to workers (recordings, proctoring), when it is.
    workers: Option<Arc<LinkStats>>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = self.hub.load();
        for (name, help, value) in [
            ("rooms", "Rooms up on this node", load.rooms),
            (
                "peer_connections",
                "Media connections of those rooms (two per participant)",
                load.peer_connections,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        if let Some(workers) = &self.workers {
            let connected = ConstGauge::new(
                i64::try_from(read(&workers.workers_connected)).unwrap_or(i64::MAX),
            );
            connected.encode(encoder.encode_descriptor(
                "recording_workers_connected",
                "Recording workers feeding from this node now",
                None,
                connected.metric_type(),
            )?)?;
            encode_counters(
                &mut encoder,
                &[
                    (
                        "recording_jobs_posted",
                        "Recording jobs this node posted for workers",
                        read(&workers.jobs_posted),
                    ),
                    (
                        "recording_workers_lost",
                        "Worker connections that went before their recording ended",
                        read(&workers.workers_lost),
                    ),
                    (
                        "recording_without_worker",
                        "Recordings that failed because no worker took them or came back",
                        read(&workers.without_worker),
                    ),
                    (
                        "proctoring_jobs_posted",
                        "Proctoring jobs this node posted for workers",
                        read(&workers.proctoring_jobs_posted),
                    ),
                    (
                        "proctoring_workers_lost",
                        "Proctoring workers' connections that went before their checks ended",
                        read(&workers.proctoring_workers_lost),
                    ),
                ],
            )?;
            let checking = ConstGauge::new(
                i64::try_from(read(&workers.proctoring_workers_connected)).unwrap_or(i64::MAX),
            );
            checking.encode(encoder.encode_descriptor(
                "proctoring_workers_connected",
                "Proctoring workers checking cameras from this node now",
                None,
                checking.metric_type(),
            )?)?;
        }
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let stats = cluster.stats();
        let open = ConstGauge::new(i64::try_from(read(&stats.relays_open)).unwrap_or(i64::MAX));
        open.encode(encoder.encode_descriptor(
            "cluster_relayed_sessions",
            "Signaling sessions relayed between this node and another now (either end)",
            None,
            open.metric_type(),
        )?)?;
        let counters: [(&str, &str, u64); 9] = [
            (
                "cluster_heartbeats_sent",
                "Heartbeats this node wrote to NATS",
                read(&stats.heartbeats_sent),
            ),
            (
                "cluster_heartbeats_missed",
                "Heartbeats that did not reach NATS in time",
                read(&stats.heartbeats_missed),
            ),
            (
                "cluster_rooms_placed",
                "Rooms this node placed for the first time",
                read(&stats.rooms_placed),
            ),
            (
                "cluster_rooms_kept",
                "Placements found with a live host and kept",
                read(&stats.rooms_kept),
            ),
            (
                "cluster_rooms_guarded",
                "Placements not moved although their host's heartbeat had expired, because the room still answered",
                read(&stats.rooms_guarded),
            ),
            (
                "cluster_rooms_replaced",
                "Rooms moved off a dead node",
                read(&stats.rooms_replaced),
            ),
            (
                "cluster_relays_dialed",
                "Sessions this node relayed to a room's host",
                read(&stats.relays_dialed),
            ),
            (
                "cluster_relays_accepted",
                "Sessions other nodes relayed to rooms hosted here",
                read(&stats.relays_accepted),
            ),
            (
                "cluster_relays_broken",
                "Relayed sessions that broke (a lost frame, a silence, NATS) rather than closing",
                read(&stats.relays_broken),
            ),
        ];
        encode_counters(&mut encoder, &counters)
    }
}

/// Writes plain counters read from atomics at scrape time.
fn encode_counters(
    encoder: &mut DescriptorEncoder,
    counters: &[(&str, &str, u64)],
) -> Result<(), std::fmt::Error> {
    for (name, help, value) in counters {
        let counter = ConstCounter::new(*value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }
    Ok(())
}

/// The media workers' counters, read at each scrape (the workers keep them in atomics, so the
/// packet path never touches the registry).
#[derive(Debug)]
struct SfuCollector {
    workers: Vec<Arc<WorkerStats>>,
}

impl Collector for SfuCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let total =
            |read: fn(&WorkerStats) -> u64| -> u64 { self.workers.iter().map(|w| read(w)).sum() };
        let counters: [(&str, &str, u64); 5] = [
            (
                "sfu_datagrams_received",
                "Datagrams (UDP, or ICE-TCP frames) the media workers received",
                total(|w| w.datagrams_in.load(Ordering::Relaxed)),
            ),
            (
                "sfu_datagrams_sent",
                "UDP datagrams the media workers sent",
                total(|w| w.datagrams_out.load(Ordering::Relaxed)),
            ),
            (
                "sfu_send_drops",
                "UDP datagrams dropped because the socket could not take them",
                total(|w| w.send_drops.load(Ordering::Relaxed)),
            ),
            (
                "sfu_garbage_datagrams",
                "UDP datagrams that belonged to no peer or that no peer accepted",
                total(|w| w.garbage_datagrams.load(Ordering::Relaxed)),
            ),
            (
                "sfu_tcp_refused",
                "ICE-TCP connections closed at once because their worker held its maximum",
                total(|w| w.tcp_refused.load(Ordering::Relaxed)),
            ),
        ];
        encode_counters(&mut encoder, &counters)?;
        let open = ConstGauge::new(
            i64::try_from(total(|w| w.tcp_connections.load(Ordering::Relaxed))).unwrap_or(i64::MAX),
        );
        open.encode(encoder.encode_descriptor(
            "sfu_tcp_connections",
            "ICE-TCP connections the media workers hold",
            None,
            open.metric_type(),
        )?)?;
        let mut buckets = [0u64; LATENCY_BOUNDS_US.len() + 1];
        let mut sum_ns = 0u64;
        for worker in &self.workers {
            let snapshot = worker.forwarding.snapshot();
            for (total, n) in buckets.iter_mut().zip(snapshot.buckets) {
                *total += n;
            }
            sum_ns = sum_ns.saturating_add(snapshot.sum_ns);
        }
        // The encoder accumulates: it takes each bucket's own count.
        let classic: Vec<(f64, u64)> = buckets
            .iter()
            .enumerate()
            .map(|(index, n)| {
                let bound = LATENCY_BOUNDS_US
                    .get(index)
                    .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
                (bound, *n)
            })
            .collect();
        let mut histogram = encoder.encode_descriptor(
            "sfu_forwarding_seconds",
            "Time a media worker held a datagram it forwarded or answered, from its receipt to \
             the last datagram it caused being handed to the socket",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        let count = buckets.iter().sum();
        histogram.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &classic, None)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes(b"FROBNICATE").expect("a valid token");
        assert_eq!(method_label(&invented), "other");
    }
}
