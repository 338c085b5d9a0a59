//! What a recorded media file holds, as `gst-discoverer-1.0` (GStreamer's own inspector) reads
//! it: its length, whether a player can seek in it, and its description (container, codecs).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

/// A media file as the inspector saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// Its length.
    pub duration: Duration,
    /// Whether it has what seeking needs (duration and cues).
    pub seekable: bool,
    /// The inspector's whole report (names the container and codecs).
    pub report: String,
}

/// Inspects a media file with `gst-discoverer-1.0` (package gstreamer1.0-plugins-base-apps).
pub fn discover(path: &Path) -> Result<Discovered> {
    let output = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .context("running gst-discoverer-1.0 (package gstreamer1.0-plugins-base-apps)")?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let duration = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Duration: "))
        .and_then(parse_clock)
        .with_context(|| format!("no duration in: {report}"))?;
    Ok(Discovered {
        duration,
        seekable: report.contains("Seekable: yes"),
        report,
    })
}

/// `H:MM:SS.fraction`.
fn parse_clock(text: &str) -> Option<Duration> {
    let parts: Vec<f64> = text.split(':').filter_map(|p| p.parse().ok()).collect();
    let [hours, minutes, seconds] = parts[..] else {
        return None;
    };
    Some(Duration::from_secs_f64(
        hours * 3600.0 + minutes * 60.0 + seconds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_inspectors_clock() {
        assert_eq!(
            parse_clock("0:00:06.000000000"),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            parse_clock("1:02:03.5"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_clock("garbage"), None);
    }
}
