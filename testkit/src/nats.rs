//! A private NATS server (Debian's `nats-server`, JetStream on) for one test, on a free
//! loopback port, its storage in a temporary directory, killed when dropped. It may require a
//! user and password, and TLS with client certificates ([`NatsSecurity`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A running `nats-server` with JetStream.
pub struct NatsServer {
    port: u16,
    process: Child,
    dir: tempfile::TempDir,
}

/// What a [`NatsServer`] asks of its clients.
#[derive(Debug, Clone, Default)]
pub struct NatsSecurity {
    /// `authorization { user, password }`.
    pub user: Option<(String, String)>,
    /// `authorization { users = [{ nkey }] }`: the public key (`U…`) of the one NKey user.
    pub nkey: Option<String>,
    /// TLS with this server certificate and key, and clients' certificates verified against
    /// this CA (`verify: true`).
    pub tls: Option<NatsTlsFiles>,
}

/// The PEM files of a TLS-speaking [`NatsServer`].
#[derive(Debug, Clone)]
pub struct NatsTlsFiles {
    /// The server's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA clients' certificates must chain to.
    pub ca: PathBuf,
}

impl NatsServer {
    /// Starts one that asks nothing of its clients and waits (bounded) until it accepts
    /// connections.
    pub async fn start() -> Result<Self> {
        Self::start_with(&NatsSecurity::default()).await
    }

    /// Starts one with a password and/or TLS required.
    pub async fn start_with(security: &NatsSecurity) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("nats.conf"),
            configuration(port, dir.path(), security),
        )?;
        let process = spawn(&dir)?;
        let server = Self { port, process, dir };
        server.wait_until_listening().await?;
        Ok(server)
    }

    /// Its address for clients and `[cluster] nats_url`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (as `kill -9` would) and starts it again on the same port and storage.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.start_again().await
    }

    /// Kills it (as `kill -9` would): an outage until [`NatsServer::start_again`].
    pub async fn stop(&mut self) -> Result<()> {
        self.process.kill().await?;
        Ok(())
    }

    /// Starts it again after [`NatsServer::stop`], on the same port and storage.
    pub async fn start_again(&mut self) -> Result<()> {
        self.process = spawn(&self.dir)?;
        self.wait_until_listening().await
    }

    async fn wait_until_listening(&self) -> Result<()> {
        // A busy machine starts processes slowly: up to 30 s.
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "nats-server did not listen on port {} within 30 s",
            self.port
        )
    }
}

/// The server's configuration file: a quoted string per path, so no path is read as syntax.
fn configuration(port: u16, dir: &Path, security: &NatsSecurity) -> String {
    let mut conf = format!(
        "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {} }}\n",
        quoted(&dir.display().to_string())
    );
    if let Some((user, password)) = &security.user {
        conf.push_str(&format!(
            "authorization {{ user: {}, password: {} }}\n",
            quoted(user),
            quoted(password)
        ));
    }
    if let Some(nkey) = &security.nkey {
        conf.push_str(&format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            quoted(nkey)
        ));
    }
    if let Some(tls) = &security.tls {
        conf.push_str(&format!(
            "tls {{ cert_file: {}, key_file: {}, ca_file: {}, verify: true }}\n",
            quoted(&tls.cert.display().to_string()),
            quoted(&tls.key.display().to_string()),
            quoted(&tls.ca.display().to_string())
        ));
    }
    conf
}

/// `text` as a double-quoted string of NATS's configuration format, `\` and `"` escaped.
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn spawn(dir: &tempfile::TempDir) -> Result<Child> {
    Command::new("nats-server")
        .arg("-c")
        .arg(dir.path().join("nats.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nats-server (Debian package nats-server)")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}
