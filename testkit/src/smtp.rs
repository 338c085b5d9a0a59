//! A private SMTP server for one test (Debian's `python3-aiosmtpd`, its `Mailbox` handler) on a
//! free loopback port: every message it accepts is written whole into a Maildir the test reads.
//! It can be stopped (an outage: connections are refused) and started again on the same port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// The Python with Debian's `aiosmtpd` (`python3-aiosmtpd`), not another one on the `PATH`.
const PYTHON: &str = "/usr/bin/python3";

/// A running SMTP sink; killed when dropped.
pub struct SmtpSink {
    port: u16,
    process: Option<Child>,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts one and waits (bounded) until it accepts connections.
    pub async fn start() -> Result<SmtpSink> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let mut sink = SmtpSink {
            port,
            process: None,
            dir,
        };
        sink.start_again().await?;
        Ok(sink)
    }

    /// Its address as `[email] smtp_url` names it (unencrypted: loopback only).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Kills it: connections are refused until [`SmtpSink::start_again`].
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill().await?;
        }
        Ok(())
    }

    /// Starts it (again) on the same port and Maildir.
    pub async fn start_again(&mut self) -> Result<()> {
        let process = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting aiosmtpd (Debian package python3-aiosmtpd)")?;
        self.process = Some(process);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("aiosmtpd did not listen on port {} within 5 s", self.port)
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message received so far, whole (headers and body), oldest first.
    pub fn messages(&self) -> Result<Vec<String>> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Ok(Vec::new());
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        // Maildir names start with the delivery time.
        files.sort();
        files
            .iter()
            .map(|file| std::fs::read_to_string(file).context("reading a delivered message"))
            .collect()
    }

    /// Waits (bounded by `most`) until at least `count` messages arrived; returns them all.
    pub async fn wait_for(&self, count: usize, most: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + most;
        loop {
            let messages = self.messages()?;
            if messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} message(s) arrived within {most:?}, not {count}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
