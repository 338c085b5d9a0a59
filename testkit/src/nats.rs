//! A private NATS server (Debian's `nats-server`, JetStream on) for one test, on a free
//! loopback port, its storage in a temporary directory, killed when dropped.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A running `nats-server -js`.
pub struct NatsServer {
    port: u16,
    process: Child,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one and waits (bounded) until it accepts connections.
    pub async fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let process = spawn(port, &dir)?;
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
        self.process = spawn(self.port, &self.dir)?;
        self.wait_until_listening().await
    }

    async fn wait_until_listening(&self) -> Result<()> {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "nats-server did not listen on port {} within 5 s",
            self.port
        )
    }
}

fn spawn(port: u16, dir: &tempfile::TempDir) -> Result<Child> {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.path())
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
