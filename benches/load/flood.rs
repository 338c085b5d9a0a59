//! `sightline-load --slow-clients N`: a slow-client flood against a real server, and what a
//! well-behaved client sees meanwhile.
//!
//! Opens N connections to the server that each send the first line and one header of a request
//! and then nothing (the classic slowloris), keeps them open, and meanwhile asks `/healthz` on a
//! fresh connection every 100 ms. Reports `/healthz` latency percentiles and failures, and how many
//! sockets the server process holds (its open descriptors, from /proc). Loopback only; the flood
//! and the measuring are bounded by the run time.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long one `/healthz` may take before it counts as failed.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the flood for `seconds` and prints the report.
pub async fn run(base: &str, pid: u32, connections: usize, seconds: u64) -> Result<()> {
    // Our own side needs a descriptor per connection too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let addr = base.trim_start_matches("http://").to_owned();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
    let descriptors_before = open_descriptors(pid)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let flood = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut held = Vec::with_capacity(connections);
            let mut refused = 0usize;
            for _ in 0..connections {
                if Instant::now() >= deadline {
                    break;
                }
                match TcpStream::connect(&addr).await {
                    Ok(mut stream) => {
                        let _ = stream.write_all(head.as_bytes()).await;
                        held.push(stream);
                    }
                    Err(_) => refused += 1,
                }
            }
            // Hold what was opened until the run ends.
            tokio::time::sleep_until(deadline.into()).await;
            (held.len(), refused)
        })
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(HEALTH_TIMEOUT)
        .build()?;
    let mut latencies_us = Vec::new();
    let mut failures = 0usize;
    let mut peak_descriptors = descriptors_before;
    while Instant::now() < deadline {
        let asked = Instant::now();
        match client.get(format!("{base}/healthz")).send().await {
            Ok(response) if response.status().is_success() => {
                latencies_us.push(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            _ => failures += 1,
        }
        peak_descriptors = peak_descriptors.max(open_descriptors(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (opened, refused) = flood.await.context("the flood task")?;
    latencies_us.sort_unstable();
    let percentile = |p: f64| super::percentile(&latencies_us, p);
    println!("slow-client flood: {connections} connections for {seconds} s");
    println!("  flood connections opened      {opened} (refused at connect: {refused})");
    println!(
        "  server descriptors            {descriptors_before} before, {peak_descriptors} at peak"
    );
    println!(
        "  /healthz answered             {} of {}",
        latencies_us.len(),
        latencies_us.len() + failures
    );
    println!(
        "  /healthz latency ms           p50 {:.1}  p99 {:.1}  max {:.1}",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
    Ok(())
}

/// Descriptors the process holds open now.
fn open_descriptors(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}
