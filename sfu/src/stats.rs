//! Counters a worker keeps while it runs, readable from any thread for metrics.
//!
//! Everything here is a relaxed atomic written only by the worker's own thread, so recording
//! costs an uncontended add and never a lock; readers (a metrics scrape, the load tool) see
//! values that are at most a moment old.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received.
    pub datagrams_in: AtomicU64,
    /// Datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Datagrams dropped because the socket would have blocked or failed.
    pub send_drops: AtomicU64,
    /// Datagrams that belonged to no peer or that no peer accepted (scans, stale peers, junk).
    pub garbage_datagrams: AtomicU64,
    /// ICE-TCP connections open now.
    pub tcp_connections: AtomicU64,
    /// ICE-TCP connections closed at once because the worker held its maximum.
    pub tcp_refused: AtomicU64,
    /// How long the worker held each datagram that it forwarded or answered.
    pub forwarding: LatencyHistogram,
}

/// Upper bounds of [`LatencyHistogram`]'s buckets, in microseconds; a last bucket takes the rest.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000,
];

/// A fixed-bucket histogram of durations that records with two atomic adds.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Count per bucket of [`LATENCY_BOUNDS_US`], plus one for anything longer.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatencySnapshot {
    /// Count per bucket (not cumulative), the last one unbounded.
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of every recorded duration.
    pub sum_ns: u64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound, in microseconds, of the bucket holding quantile `q` (0..=1); `None` when
    /// empty or when it falls in the unbounded bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS_US.get(index).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets_and_quantiles_read_back() {
        let histogram = LatencyHistogram::default();
        for _ in 0..98 {
            histogram.record(Duration::from_micros(8));
        }
        histogram.record(Duration::from_micros(300));
        histogram.record(Duration::from_secs(1));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 100);
        assert_eq!(snapshot.buckets[2], 98, "8 µs is in the ≤ 10 µs bucket");
        assert_eq!(snapshot.quantile_bound_us(0.5), Some(10));
        assert_eq!(snapshot.quantile_bound_us(0.99), Some(500));
        assert_eq!(
            snapshot.quantile_bound_us(1.0),
            None,
            "beyond the last bound"
        );
        assert_eq!(LatencySnapshot::default().quantile_bound_us(0.5), None);
    }
}
