//! The bubblewrap sandbox.
//!
//! A run is `prlimit <limits> -- bwrap <isolation> -- [time] sh -c <command>`:
//!
//! - `prlimit` (util-linux) sets the rlimits the whole tree inherits: CPU seconds, data memory,
//!   processes, file size, no core dumps. They are set outside the sandbox, before anything of
//!   the candidate's runs, so nothing inside can raise them.
//! - `bwrap` gives the run new user, PID, network, IPC, UTS and cgroup namespaces (no network
//!   at all, not even loopback to the host), an empty read-only root with only the configured
//!   host paths bound read-only, a fresh `/proc` and minimal `/dev`, and a size-limited tmpfs
//!   work directory holding the code. It dies with us (`--die-with-parent`) and takes its PID
//!   namespace with it, so killing it kills every process of the run.
//! - GNU `time`, when installed, reports the peak resident memory, which tells a memory-limit
//!   failure from any other.
//! - When the server runs as root the whole thing starts as an unprivileged user id of its own,
//!   inside the slot's cgroup (see [`crate::cgroup`]): a shell joins it, then `exec`s
//!   `setpriv` to drop to that user, which `exec`s the rest.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::cgroup::{SlotCgroup, SlotCgroups};
use crate::job::{Finish, Job, Outcome, OutputBudget, Stream, take_peak_memory};
use crate::{RunFuture, RunnerError, Sandbox};

/// Where the code lives inside the sandbox.
const WORK_DIR: &str = "/work";
/// The line GNU time appends to stderr.
const PEAK_MARKER: &str = "\u{1}sightline-peak-kib";
/// The user id the code runs as inside its namespace.
const INNER_ID: &str = "1000";
/// Joins the cgroups named before `--` (writing its own PID, which `exec` keeps), then runs
/// what follows. Runs as root, before the drop to the run's user.
const JOIN_CGROUP: &str = "for f; do [ \"$f\" = -- ] && break; \
     { echo $$ > \"$f\"; } 2>/dev/null || { echo 'sightline: cannot join the run cgroup' >&2; exit 1; }; \
     shift; done; \
     shift; exec \"$@\"";
/// What a run's cgroup holds besides the program's own memory: its tmpfs work directory and
/// /dev/shm are charged there, and the launcher, GNU time and the shell need a little.
const CGROUP_HEADROOM_BYTES: u64 = (8 << 20) + (32 << 20);
/// Tasks besides the program's processes: the shell, GNU time, bubblewrap.
const CGROUP_EXTRA_TASKS: u64 = 8;

/// How to build the sandbox.
#[derive(Debug, Clone)]
pub struct BubblewrapConfig {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Host paths bound read-only; those that do not exist are skipped.
    pub read_only_paths: Vec<PathBuf>,
}

impl Default for BubblewrapConfig {
    fn default() -> Self {
        BubblewrapConfig {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            read_only_paths: ["/usr", "/etc/alternatives", "/etc/ld.so.cache"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// Runs jobs under bubblewrap.
#[derive(Debug, Clone)]
pub struct Bubblewrap {
    config: BubblewrapConfig,
    prlimit: PathBuf,
    gnu_time: Option<PathBuf>,
    /// The slots' cgroups and `setpriv`, when runs start as their own users and the host
    /// lets us make cgroups; else why not.
    cgroups: Result<(SlotCgroups, PathBuf), String>,
}

impl Bubblewrap {
    /// Checks the tools are there.
    pub fn new(config: BubblewrapConfig) -> Result<Self, RunnerError> {
        let prlimit = PathBuf::from("/usr/bin/prlimit");
        for tool in [&config.bwrap, &prlimit] {
            if !tool.is_file() {
                return Err(RunnerError::Sandbox(format!(
                    "{} is not installed",
                    tool.display()
                )));
            }
        }
        let gnu_time = Some(PathBuf::from("/usr/bin/time")).filter(|path| path.is_file());
        let setpriv = PathBuf::from("/usr/bin/setpriv");
        let cgroups = if !crate::running_as_root() {
            Err("the server does not run as root".to_owned())
        } else if !setpriv.is_file() {
            Err(format!("{} is not installed", setpriv.display()))
        } else {
            SlotCgroups::detect().map(|cgroups| (cgroups, setpriv))
        };
        if let Err(reason) = &cgroups {
            tracing::warn!(
                %reason,
                "code runs are not in cgroups: each process's memory is limited, their sum is not"
            );
        }
        Ok(Bubblewrap {
            config,
            prlimit,
            gnu_time,
            cgroups,
        })
    }

    /// Why runs are not capped by a cgroup (memory in all, tasks), if they are not.
    pub fn cgroup_problem(&self) -> Option<&str> {
        self.cgroups.as_ref().err().map(String::as_str)
    }

    /// The full command line for `job` with the code at `source` on the host.
    fn argv(&self, job: &Job, source: &Path) -> Vec<String> {
        let limits = &job.limits;
        let mut argv: Vec<String> = vec![
            format!("--cpu={}:{}", limits.cpu_secs, limits.cpu_secs + 1),
            format!("--data={}", limits.memory_bytes),
            format!("--nproc={}", limits.processes),
            format!("--fsize={}", limits.work_dir_bytes),
            "--core=0".into(),
            "--nofile=256".into(),
            "--".into(),
            self.config.bwrap.display().to_string(),
            "--unshare-all".into(),
            "--unshare-user".into(),
            "--unshare-net".into(),
            "--disable-userns".into(),
            "--die-with-parent".into(),
            // No reaper process of bubblewrap's own inside: the run's first process is PID 1 of
            // its namespace, so nothing of a run outlives it as a zombie that only the host's
            // init could reap (and that would count against the next run's process limit).
            "--as-pid-1".into(),
            "--new-session".into(),
            "--cap-drop".into(),
            "ALL".into(),
            "--uid".into(),
            INNER_ID.into(),
            "--gid".into(),
            INNER_ID.into(),
            "--hostname".into(),
            "sandbox".into(),
            "--clearenv".into(),
        ];
        for path in &self.config.read_only_paths {
            let path = path.display().to_string();
            argv.extend(["--ro-bind-try".into(), path.clone(), path]);
        }
        // Debian's merged /usr: the usual top-level names are links into it.
        for name in ["bin", "lib", "lib64", "sbin"] {
            argv.extend([
                "--symlink".into(),
                format!("usr/{name}"),
                format!("/{name}"),
            ]);
        }
        argv.extend(
            [
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                // bubblewrap's /dev is a tmpfs of its own that the root remount below does not
                // reach: shared memory gets a small one, and the rest is made read-only.
                "--size",
                "8388608",
                "--tmpfs",
                "/dev/shm",
                "--remount-ro",
                "/dev",
                "--size",
                &limits.work_dir_bytes.to_string(),
                "--tmpfs",
                WORK_DIR,
                "--size",
                "1048576",
                "--tmpfs",
                "/tmp",
            ]
            .map(String::from),
        );
        argv.extend([
            "--ro-bind".into(),
            source.display().to_string(),
            format!("{WORK_DIR}/{}", job.language.file),
            "--remount-ro".into(),
            "/".into(),
            "--chdir".into(),
            WORK_DIR.into(),
        ]);
        for (key, value) in [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", WORK_DIR),
            ("TMPDIR", WORK_DIR),
            ("LANG", "C.UTF-8"),
            ("GOCACHE", "/work/.cache/go"),
            ("GOPATH", "/work/.cache/gopath"),
            ("GOFLAGS", "-buildvcs=false"),
        ] {
            argv.extend(["--setenv".into(), key.into(), value.into()]);
        }
        argv.push("--".into());
        if let Some(time) = &self.gnu_time {
            argv.extend([
                time.display().to_string(),
                "-q".into(),
                "-f".into(),
                format!("\n{PEAK_MARKER} %M"),
            ]);
        }
        argv.extend(["/bin/sh".into(), "-c".into(), job.language.command.clone()]);
        argv
    }

    async fn run_job(&self, job: &Job, uid: Option<u32>) -> Result<Outcome, RunnerError> {
        let dir = tempfile::Builder::new()
            .prefix("sightline-run-")
            .tempdir()
            .map_err(|err| RunnerError::Sandbox(format!("temporary directory: {err}")))?;
        let source = dir.path().join("source");
        tokio::fs::write(&source, job.source.as_bytes())
            .await
            .map_err(|err| RunnerError::Sandbox(format!("writing the code: {err}")))?;
        if let Some(uid) = uid {
            // The run's user must be able to read the code it is given, and nothing else.
            chown(dir.path(), uid)?;
            chown(&source, uid)?;
        }

        let slot = match (&self.cgroups, uid) {
            (Ok((cgroups, setpriv)), Some(uid)) => {
                let cap = job
                    .limits
                    .memory_bytes
                    .saturating_add(job.limits.work_dir_bytes)
                    .saturating_add(CGROUP_HEADROOM_BYTES);
                let tasks = job.limits.processes.saturating_add(CGROUP_EXTRA_TASKS);
                let slot = cgroups
                    .slot(&format!("slot-{uid}"), cap, tasks)
                    .map_err(RunnerError::Sandbox)?;
                Some((slot, setpriv, uid))
            }
            _ => None,
        };
        let mut command = match &slot {
            Some((slot, setpriv, uid)) => cgroup_command(slot, setpriv, *uid, &self.prlimit),
            None => {
                let mut command = Command::new(&self.prlimit);
                if let Some(uid) = uid {
                    command.uid(uid).gid(uid);
                }
                command
            }
        };
        command
            .args(self.argv(job, &source))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|err| RunnerError::Sandbox(format!("starting bubblewrap: {err}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (Some(mut stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            return Err(RunnerError::Sandbox("no pipes to the run".into()));
        };
        let input = job.stdin.clone().into_bytes();
        let feed = tokio::spawn(async move {
            // A program that never reads its stdin closes the pipe; that is not an error.
            let _ = stdin.write_all(&input).await;
        });

        // GNU time's trailer is a few bytes past what the program printed.
        let mut budget = OutputBudget::new(job.limits.output_bytes + PEAK_MARKER.len() + 24);
        let collect = collect_output(stdout, stderr, &mut budget);
        let (wall_limit, output_limit, status) = tokio::select! {
            output_ok = collect => {
                if output_ok {
                    // Both pipes closed: wait for the exit within the time left.
                    let left = job.limits.wall.saturating_sub(started.elapsed());
                    match tokio::time::timeout(left, child.wait()).await {
                        Ok(status) => (false, false, status.ok()),
                        Err(_) => {
                            let _ = child.kill().await;
                            (true, false, None)
                        }
                    }
                } else {
                    let _ = child.kill().await;
                    (false, true, None)
                }
            }
            () = tokio::time::sleep(job.limits.wall) => {
                let _ = child.kill().await;
                (true, false, None)
            }
        };
        feed.abort();
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        // bubblewrap itself failing (no namespaces, no free processes for this user) is not
        // the program's failure: nothing of it ran.
        // With GNU time, a program that ran always has its trailer: a program printing
        // "bwrap: ..." itself is not taken for bubblewrap.
        if status.and_then(|status| status.code()) == Some(1) {
            let (stdout, stderr) = (budget.stdout(), budget.stderr());
            let ran = self.gnu_time.is_some()
                && stderr
                    .windows(PEAK_MARKER.len())
                    .any(|w| w == PEAK_MARKER.as_bytes());
            let launcher = [&b"bwrap: "[..], b"sightline: ", b"setpriv: ", b"prlimit: "]
                .iter()
                .any(|prefix| stderr.starts_with(prefix));
            if !ran && stdout.is_empty() && launcher {
                let line = String::from_utf8_lossy(stderr);
                let line = line.lines().next().unwrap_or_default().to_owned();
                return Err(RunnerError::Sandbox(line));
            }
        }
        let exceeded = budget.exceeded();
        let (stdout, mut stderr) = budget.into_strings();
        let peak_memory_bytes = take_peak_memory(&mut stderr, PEAK_MARKER);
        let limit = job.limits.output_bytes;
        let finish = Finish {
            code: status.and_then(|status| status.code()),
            wall_limit,
            output_limit: output_limit || exceeded || stdout.len() + stderr.len() > limit,
            peak_memory_bytes,
            memory_killed: slot.as_ref().is_some_and(|(slot, ..)| slot.memory_killed()),
        };
        let (exit_code, signal) = finish.code_and_signal();
        Ok(Outcome {
            verdict: finish.verdict(&job.limits),
            exit_code,
            signal,
            stderr: cut(stderr, limit.saturating_sub(stdout.len().min(limit))),
            stdout: cut(stdout, limit),
            duration_ms,
            peak_memory_bytes,
        })
    }
}

impl Sandbox for Bubblewrap {
    fn run<'a>(&'a self, job: &'a Job, uid: Option<u32>) -> RunFuture<'a> {
        Box::pin(self.run_job(job, uid))
    }
}

/// `sh -c JOIN_CGROUP <procs files> -- setpriv <to uid> -- <prlimit>`: the caller adds
/// prlimit's arguments.
fn cgroup_command(slot: &SlotCgroup, setpriv: &Path, uid: u32, prlimit: &Path) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", JOIN_CGROUP, "sightline-join"])
        .args(slot.procs_files())
        .arg("--")
        .arg(setpriv)
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ])
        .arg(prlimit);
    command
}

fn chown(path: &Path, uid: u32) -> Result<(), RunnerError> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .map_err(|err| RunnerError::Sandbox(format!("handing the code to the run's user: {err}")))
}

/// Reads both pipes into `budget` until both close (true) or the budget is spent (false).
async fn collect_output(
    mut stdout: impl AsyncRead + Unpin,
    mut stderr: impl AsyncRead + Unpin,
    budget: &mut OutputBudget,
) -> bool {
    let mut out_buf = [0u8; 8192];
    let mut err_buf = [0u8; 8192];
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (stream, read) = tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => (Stream::Stdout, read),
            read = stderr.read(&mut err_buf), if err_open => (Stream::Stderr, read),
        };
        let bytes = match (stream, read) {
            (Stream::Stdout, Ok(n)) if n > 0 => &out_buf[..n],
            (Stream::Stderr, Ok(n)) if n > 0 => &err_buf[..n],
            (Stream::Stdout, _) => {
                out_open = false;
                continue;
            }
            (Stream::Stderr, _) => {
                err_open = false;
                continue;
            }
        };
        if !budget.push(stream, bytes) {
            return false;
        }
    }
    true
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut at = limit;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}
