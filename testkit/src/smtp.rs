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
        bail!("aiosmtpd did not listen on port {} within 30 s", self.port)
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
        // Maildir names start with the delivery time, `{seconds}.M{microseconds}P…`; the
        // microseconds are not zero-padded, so the names are compared as numbers.
        files.sort_by_key(|file| delivery_time(file));
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

/// The delivery time a Maildir file name starts with (`{seconds}.M{microseconds}P…`), as
/// (seconds, microseconds); names of another form sort first, by name.
fn delivery_time(file: &std::path::Path) -> (u64, u64, String) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = name.splitn(2, '.');
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|rest| rest.strip_prefix('M'))
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    (seconds, micros, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_names_sort_by_their_delivery_time() {
        let mut names = vec![
            "1796000001.M5P10Q1.host",
            "1796000000.M999P10Q2.host",
            "1796000000.M1000P10Q3.host",
        ];
        names.sort_by_key(|n| delivery_time(std::path::Path::new(n)));
        assert_eq!(
            names,
            [
                "1796000000.M999P10Q2.host",
                "1796000000.M1000P10Q3.host",
                "1796000001.M5P10Q1.host"
            ]
        );
    }
}
