//! The per-server queue in front of a sandbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::job::{Job, Outcome};
use crate::{RunnerError, Sandbox};

/// Runs jobs a few at a time; the rest wait in a bounded queue.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Arc<dyn Sandbox>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    max_queued: usize,
    /// Jobs holding a ticket: waiting or running.
    admitted: AtomicUsize,
    /// Free sandbox user ids, one per slot, when runs start as their own users.
    uids: Mutex<Vec<u32>>,
    /// Runs start as their own users (`uids` is in use).
    uid_base: bool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("concurrency", &self.inner.concurrency)
            .field("max_queued", &self.inner.max_queued)
            .field("admitted", &self.inner.admitted.load(Ordering::Relaxed))
            .finish()
    }
}

impl Runner {
    /// `concurrency` runs at once, `max_queued` more waiting. With `uid_base`, the run in
    /// each slot starts as its own user id `uid_base + slot` (use it when the server is root).
    pub fn new(
        sandbox: Arc<dyn Sandbox>,
        concurrency: usize,
        max_queued: usize,
        uid_base: Option<u32>,
    ) -> Self {
        let concurrency = concurrency.max(1);
        let uids = match uid_base {
            Some(base) => (0..concurrency as u32)
                .rev()
                .map(|slot| base.saturating_add(slot))
                .collect(),
            None => Vec::new(),
        };
        Runner {
            inner: Arc::new(Inner {
                sandbox,
                slots: Arc::new(Semaphore::new(concurrency)),
                concurrency,
                max_queued,
                admitted: AtomicUsize::new(0),
                uids: Mutex::new(uids),
                uid_base: uid_base.is_some(),
            }),
        }
    }

    /// Admits `job`: a ticket saying how many runs are ahead of it, or [`RunnerError::Busy`]
    /// when the queue is full.
    pub fn admit(&self, job: Job) -> Result<Ticket, RunnerError> {
        let cap = self.inner.concurrency + self.inner.max_queued;
        let admitted = self
            .inner
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .map_err(|_| RunnerError::Busy)?;
        Ok(Ticket {
            runner: self.clone(),
            job,
            ahead: admitted.saturating_sub(self.inner.concurrency - 1),
        })
    }

    /// Runs waiting or running now.
    pub fn admitted(&self) -> usize {
        self.inner.admitted.load(Ordering::Acquire)
    }
}

/// A job admitted to the queue. Dropping it gives its place back.
pub struct Ticket {
    runner: Runner,
    job: Job,
    ahead: usize,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("ahead", &self.ahead)
            .finish()
    }
}

impl Ticket {
    /// Runs that were ahead of this one when it was admitted (0: it starts at once).
    pub fn ahead(&self) -> usize {
        self.ahead
    }

    /// Waits for a slot and runs the job.
    pub async fn run(self) -> Result<Outcome, RunnerError> {
        self.start().await?.run().await
    }

    /// Waits for a slot: the job is then about to run (the caller can say so before it does).
    pub async fn start(self) -> Result<Started, RunnerError> {
        let permit = Arc::clone(&self.runner.inner.slots)
            .acquire_owned()
            .await
            .map_err(|_| RunnerError::Closed)?;
        let uid = if self.runner.inner.uid_base {
            // A configured server never runs code as itself: no free id, no run.
            Some(
                self.runner
                    .inner
                    .uids
                    .lock()
                    .ok()
                    .and_then(|mut free| free.pop())
                    .ok_or_else(|| RunnerError::Sandbox("no free sandbox user id".into()))?,
            )
        } else {
            None
        };
        Ok(Started {
            ticket: self,
            _permit: permit,
            uid,
        })
    }
}

/// A job holding a slot (and its user id), ready to run.
pub struct Started {
    ticket: Ticket,
    _permit: tokio::sync::OwnedSemaphorePermit,
    uid: Option<u32>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("uid", &self.uid).finish()
    }
}

impl Started {
    /// Runs the job.
    pub async fn run(self) -> Result<Outcome, RunnerError> {
        let inner = &self.ticket.runner.inner;
        let outcome = inner.sandbox.run(&self.ticket.job, self.uid).await;
        if let Some(uid) = self.uid {
            // Whatever of the run survived it is killed before the id is lent again, so
            // every run starts with its process allowance whole.
            reap(uid).await;
        }
        outcome
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let (Some(uid), Ok(mut free)) = (self.uid, self.ticket.runner.inner.uids.lock()) {
            free.push(uid);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.runner.inner.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Kills every process of `uid` and waits (briefly, bounded) until they are gone.
async fn reap(uid: u32) {
    // `kill -1` as that user signals every process of that user (but itself).
    let killed = tokio::process::Command::new("kill")
        .args(["-s", "KILL", "-1"])
        .uid(uid)
        .gid(uid)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if let Err(err) = killed {
        tracing::warn!(uid, %err, "could not clean up after a run");
        return;
    }
    for _ in 0..100 {
        if processes_of(uid) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!(uid, "processes of a finished run are still exiting");
}

/// Processes (including zombies not yet reaped) whose user is `uid`.
fn processes_of(uid: u32) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|entry| entry.metadata().is_ok_and(|meta| meta.uid() == uid))
        .count()
}

/// Whether this process runs as root (and should start runs as other users).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::job::{Language, Limits, Verdict};
    use crate::{RunFuture, Sandbox};

    /// A sandbox that holds every run until released and records the uids it was given.
    struct Gate {
        release: Semaphore,
        uids: Mutex<Vec<Option<u32>>>,
    }

    impl Sandbox for Gate {
        fn run<'a>(&'a self, _job: &'a Job, uid: Option<u32>) -> RunFuture<'a> {
            Box::pin(async move {
                if let Ok(mut uids) = self.uids.lock() {
                    uids.push(uid);
                }
                if let Ok(permit) = self.release.acquire().await {
                    permit.forget();
                }
                Ok(Outcome {
                    verdict: Verdict::Ok,
                    exit_code: Some(0),
                    signal: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    duration_ms: 0,
                    peak_memory_bytes: None,
                })
            })
        }
    }

    fn job() -> Job {
        Job {
            language: Language {
                id: "sh".into(),
                name: "sh".into(),
                file: "main.sh".into(),
                command: "true".into(),
            },
            source: String::new(),
            stdin: String::new(),
            limits: Limits::default(),
        }
    }

    #[tokio::test]
    async fn a_burst_queues_then_is_refused_and_places_come_back() {
        let gate = Arc::new(Gate {
            release: Semaphore::new(0),
            uids: Mutex::new(Vec::new()),
        });
        let runner = Runner::new(gate.clone(), 2, 1, Some(60_000));
        let tickets: Vec<Ticket> = (0..3)
            .map(|_| runner.admit(job()).expect("admitted"))
            .collect();
        assert_eq!(
            tickets.iter().map(Ticket::ahead).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        assert!(matches!(runner.admit(job()), Err(RunnerError::Busy)));

        let running: Vec<_> = tickets
            .into_iter()
            .map(|ticket| tokio::spawn(ticket.run()))
            .collect();
        // Two run, one waits for a slot.
        for _ in 0..2000 {
            if gate.uids.lock().map(|u| u.len()).unwrap_or(0) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut first: Vec<_> = gate.uids.lock().map(|u| u.clone()).unwrap_or_default();
        first.sort();
        assert_eq!(first, [Some(60_000), Some(60_001)]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            gate.uids.lock().map(|u| u.len()).unwrap_or(0),
            2,
            "one waits"
        );
        gate.release.add_permits(3);
        for run in running {
            assert!(run.await.expect("joined").is_ok());
        }
        let uids = gate.uids.lock().map(|u| u.clone()).unwrap_or_default();
        assert_eq!(uids.len(), 3);
        assert!(uids[2].is_some(), "the third run reuses a freed uid");
        assert_eq!(runner.admitted(), 0);
        assert!(runner.admit(job()).is_ok());
    }
}
