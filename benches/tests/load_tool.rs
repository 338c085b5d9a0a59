//! The load tool keeps working: a short run of `sightline-load --compare janus`
//! against the debug `sightline` binary (built next to this test's binaries; `scripts/test`
//! builds it) and the Debian `janus` package, in the network namespace the tool makes for
//! itself (so the test runs as root, as `scripts/test` does). It checks that both servers
//! forwarded media, on the CPU `--server-cpus` gave them, and that the ratio line is printed,
//! not how fast either was. A second run puts every client on ICE-TCP alone (`--tcp`).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/sightline`, next to the load tool.
fn sightline_binary() -> PathBuf {
    let load = PathBuf::from(env!("CARGO_BIN_EXE_sightline-load"));
    let binary = load.with_file_name("sightline");
    assert!(
        binary.exists(),
        "{} is missing: cargo build --bin sightline first",
        binary.display()
    );
    binary
}

/// The figure after `label` on the line that starts with it, in the section of `server`.
fn figure(output: &str, server: &str, label: &str) -> f64 {
    let section = output
        .split(&format!("[{server}]"))
        .nth(1)
        .unwrap_or_else(|| panic!("no [{server}] section in:\n{output}"));
    section
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.trim().trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} for {server} in:\n{output}"))
}

/// A 2-second run of one room of two RTP-mode clients with `extra` arguments; its output.
fn run_load(extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sightline-load"))
        .args([
            "--rooms",
            "1",
            "--participants",
            "2",
            "--seconds",
            "2",
            "--rtp-clients",
        ])
        .args(extra)
        .arg("--bin")
        .arg(sightline_binary())
        .output()
        .expect("the load tool runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the load tool failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The first CPU this test may run on (from its `Cpus_allowed_list`, such as `0-1`).
fn first_allowed_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .split([',', '-'])
        .next()
        .expect("a CPU")
        .to_owned()
}

/// Both servers run where `--server-cpus` puts them, and forward.
#[test]
fn the_janus_comparison_forwards_media_through_both_servers() {
    let cpu = first_allowed_cpu();
    let stdout = run_load(&["--compare", "janus", "--server-cpus", &cpu]);
    for server in ["sightline", "janus"] {
        let received = figure(&stdout, server, "packets forwarded (received):");
        assert!(received > 0.0, "{server} forwarded nothing:\n{stdout}");
        assert!(
            stdout.contains(&format!("{server} runs on CPUs {cpu}\n")),
            "{server} not on CPU {cpu}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("sightline / janus forwarded packets per server CPU-second:"),
        "no ratio:\n{stdout}"
    );
}

/// `--tcp`: every client reaches the SFU over ICE-TCP alone, and media is forwarded losing only
/// what the server dropped itself (TCP does not lose, but a connection's bounded queue drops
/// whole packets when its client reads too slowly, as a full UDP socket would; a client on UDP
/// would fail here, since it is given no UDP candidate).
#[test]
fn clients_on_ice_tcp_alone_get_their_media() {
    let stdout = run_load(&["--tcp"]);
    assert!(stdout.contains("over ICE-TCP"), "not over TCP:\n{stdout}");
    let received = figure(&stdout, "sightline", "packets forwarded (received):");
    assert!(received > 0.0, "nothing forwarded over ICE-TCP:\n{stdout}");
    let lost = figure(&stdout, "sightline", "packets lost:");
    let dropped = figure(
        &stdout,
        "sightline",
        "datagrams the server dropped (a full socket or ICE-TCP queue):",
    );
    assert!(
        lost <= dropped,
        "lost more than the server dropped:\n{stdout}"
    );
}
