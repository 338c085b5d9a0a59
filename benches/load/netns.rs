//! A network namespace of the run's own, for a server that will not serve a loopback interface
//! (Janus gathers no ICE candidates there). The tool runs itself again under `unshare --net`
//! (root, or a user namespace allowing it); inside, it brings up the loopback and a veth pair
//! carrying 127.0.0.2 (the server) and 127.0.0.3 (its clients). The namespace, and everything
//! in it, is gone when the run ends. No traffic leaves it.

use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};

/// Set in the environment of the run inside the namespace.
const INSIDE: &str = "SIGHTLINE_LOAD_NETNS";

/// Outside the namespace: runs this tool again inside a new one and returns how it ended.
/// Inside: sets the namespace's interfaces up and returns `None` (carry on).
pub fn enter() -> Result<Option<ExitStatus>> {
    if std::env::var_os(INSIDE).is_some() {
        set_up()?;
        return Ok(None);
    }
    let exe = std::env::current_exe()?;
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .context("running unshare (util-linux) for a network namespace")?;
    Ok(Some(status))
}

fn set_up() -> Result<()> {
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "add", "sv0", "type", "veth", "peer", "name", "sv1"],
        &["addr", "add", "127.0.0.2/32", "dev", "sv0"],
        &["addr", "add", "127.0.0.3/32", "dev", "sv0"],
        &["link", "set", "sv0", "up"],
        &["link", "set", "sv1", "up"],
    ] {
        let status = Command::new("ip")
            .args(args)
            .status()
            .context("running ip (iproute2)")?;
        if !status.success() {
            bail!(
                "ip {} failed in the load tool's network namespace",
                args.join(" ")
            );
        }
    }
    Ok(())
}
