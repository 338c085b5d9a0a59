//! What a run is and what came of it. Pure data and rules; nothing here starts a process.

use std::time::Duration;

use serde::Serialize;

/// A language a run can be in: where the code goes and the command that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Short id, e.g. `python`.
    pub id: String,
    /// Name people see, e.g. `Python`.
    pub name: String,
    /// File name the code is written to in the work directory, e.g. `main.py`.
    pub file: String,
    /// Shell command run with `sh -c` in the work directory.
    pub command: String,
}

/// What one run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from start to kill, compiling included.
    pub wall: Duration,
    /// CPU seconds of each process (`RLIMIT_CPU`).
    pub cpu_secs: u64,
    /// Data memory of each process (`RLIMIT_DATA`: heap and private writable mappings; address
    /// space merely reserved, as the JVM, V8 and Go do, does not count).
    pub memory_bytes: u64,
    /// Processes and threads together (`RLIMIT_NPROC`, for the run's own user).
    pub processes: u64,
    /// stdout and stderr together.
    pub output_bytes: usize,
    /// Size of the tmpfs work directory; also the largest file a run may write.
    pub work_dir_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_secs: 10,
            memory_bytes: 256 << 20,
            processes: 64,
            output_bytes: 64 << 10,
            work_dir_bytes: 64 << 20,
        }
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct Job {
    /// What it is written in.
    pub language: Language,
    /// The code.
    pub source: String,
    /// What it reads on stdin.
    pub stdin: String,
    /// What it may use.
    pub limits: Limits,
}

/// How a run ended, in the terms people see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exited with status 0.
    Ok,
    /// Exited with another status or was killed by a signal of its own making (a crash, an
    /// uncaught exception, a compile error).
    Failed,
    /// Ran out of wall-clock or CPU time.
    TimeLimitExceeded,
    /// Failed while using nearly all the memory it may.
    MemoryLimitExceeded,
    /// Printed more than it may; the output is cut.
    OutputLimitExceeded,
}

/// What came of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// How it ended.
    pub verdict: Verdict,
    /// The exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// What it printed, cut at the output limit.
    pub stdout: String,
    /// What it printed on stderr, cut at the output limit.
    pub stderr: String,
    /// Wall-clock milliseconds from start to end.
    pub duration_ms: u64,
    /// Largest resident memory of any of its processes, when known.
    pub peak_memory_bytes: Option<u64>,
}

/// `SIGXCPU`: what `RLIMIT_CPU` sends at its soft limit.
pub const SIGXCPU: i32 = 24;
/// `SIGKILL`.
pub const SIGKILL: i32 = 9;

/// What the sandbox saw of a finished run, before it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The exit status the sandbox's outer process reported (`None`: killed from outside).
    pub code: Option<i32>,
    /// We killed it at the wall-clock limit.
    pub wall_limit: bool,
    /// We stopped it for printing too much.
    pub output_limit: bool,
    /// Peak resident memory, when measured.
    pub peak_memory_bytes: Option<u64>,
    /// The kernel killed a process of the run at the run's memory cap (its cgroup's).
    pub memory_killed: bool,
}

impl Finish {
    /// Splits a shell-style status (`128 + n` for "killed by signal n") into exit code and
    /// signal.
    pub fn code_and_signal(&self) -> (Option<i32>, Option<i32>) {
        match self.code {
            Some(code) if (129..=128 + 64).contains(&code) => (None, Some(code - 128)),
            Some(code) => (Some(code), None),
            None => (None, Some(SIGKILL)),
        }
    }

    /// The verdict under `limits`.
    pub fn verdict(&self, limits: &Limits) -> Verdict {
        if self.output_limit {
            return Verdict::OutputLimitExceeded;
        }
        if self.wall_limit {
            return Verdict::TimeLimitExceeded;
        }
        let (code, signal) = self.code_and_signal();
        if signal == Some(SIGXCPU) {
            return Verdict::TimeLimitExceeded;
        }
        if code == Some(0) {
            return Verdict::Ok;
        }
        if self.memory_killed {
            return Verdict::MemoryLimitExceeded;
        }
        // Allocation failures surface as the language's own error (MemoryError, bad_alloc,
        // OutOfMemoryError, a Go fatal error); a failure at 90% of the allowance is that.
        let near_limit = self
            .peak_memory_bytes
            .is_some_and(|peak| peak.saturating_mul(10) >= limits.memory_bytes.saturating_mul(9));
        if near_limit {
            Verdict::MemoryLimitExceeded
        } else {
            Verdict::Failed
        }
    }
}

/// Collects a run's stdout and stderr up to a shared budget.
#[derive(Debug)]
pub struct OutputBudget {
    limit: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exceeded: bool,
}

/// Which stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

impl OutputBudget {
    /// A budget of `limit` bytes for both streams together.
    pub fn new(limit: usize) -> Self {
        OutputBudget {
            limit,
            stdout: Vec::new(),
            stderr: Vec::new(),
            exceeded: false,
        }
    }

    /// Takes `bytes`; returns false once the budget is spent (the rest is dropped).
    pub fn push(&mut self, stream: Stream, bytes: &[u8]) -> bool {
        let used = self.stdout.len() + self.stderr.len();
        let room = self.limit.saturating_sub(used);
        let take = bytes.len().min(room);
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(&bytes[..take]);
        if take < bytes.len() {
            self.exceeded = true;
        }
        !self.exceeded
    }

    /// What stdout held so far.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// What stderr held so far.
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Whether output was dropped.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The collected streams as text (invalid UTF-8 replaced).
    pub fn into_strings(self) -> (String, String) {
        (
            String::from_utf8_lossy(&self.stdout).into_owned(),
            String::from_utf8_lossy(&self.stderr).into_owned(),
        )
    }
}

/// Takes the peak-memory line GNU time appends to stderr (`<marker> <KiB>`) out of `stderr`.
pub fn take_peak_memory(stderr: &mut String, marker: &str) -> Option<u64> {
    let at = stderr.rfind(marker)?;
    let kib = stderr[at + marker.len()..].trim().parse::<u64>().ok();
    // The marker line starts on its own line; drop the newline GNU time put before it if the
    // program's output did not end with one.
    stderr.truncate(at);
    if stderr.ends_with('\n') && at > 0 {
        stderr.pop();
    }
    kib.map(|kib| kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(code: Option<i32>) -> Finish {
        Finish {
            code,
            wall_limit: false,
            output_limit: false,
            peak_memory_bytes: None,
            memory_killed: false,
        }
    }

    #[test]
    fn verdicts() {
        let limits = Limits::default();
        assert_eq!(finish(Some(0)).verdict(&limits), Verdict::Ok);
        assert_eq!(finish(Some(1)).verdict(&limits), Verdict::Failed);
        assert_eq!(
            finish(Some(128 + SIGXCPU)).verdict(&limits),
            Verdict::TimeLimitExceeded
        );
        assert_eq!(
            Finish {
                wall_limit: true,
                ..finish(None)
            }
            .verdict(&limits),
            Verdict::TimeLimitExceeded
        );
        assert_eq!(
            Finish {
                output_limit: true,
                wall_limit: true,
                ..finish(None)
            }
            .verdict(&limits),
            Verdict::OutputLimitExceeded
        );
        let near = Finish {
            peak_memory_bytes: Some(limits.memory_bytes - (8 << 20)),
            ..finish(Some(1))
        };
        assert_eq!(near.verdict(&limits), Verdict::MemoryLimitExceeded);
        let small = Finish {
            peak_memory_bytes: Some(20 << 20),
            ..finish(Some(1))
        };
        assert_eq!(small.verdict(&limits), Verdict::Failed);
        let killed = Finish {
            memory_killed: true,
            ..finish(Some(128 + 9))
        };
        assert_eq!(killed.verdict(&limits), Verdict::MemoryLimitExceeded);
        assert_eq!(finish(Some(139)).code_and_signal(), (None, Some(11)));
        assert_eq!(finish(Some(3)).code_and_signal(), (Some(3), None));
    }

    #[test]
    fn output_budget_is_shared_and_cut() {
        let mut budget = OutputBudget::new(10);
        assert!(budget.push(Stream::Stdout, b"hello"));
        assert!(budget.push(Stream::Stderr, b"oops"));
        assert!(!budget.push(Stream::Stdout, b"world"));
        assert!(budget.exceeded());
        let (out, err) = budget.into_strings();
        assert_eq!((out.as_str(), err.as_str()), ("hellow", "oops"));
    }

    #[test]
    fn peak_memory_line_is_removed() {
        let mut stderr = "Traceback\nMemoryError\n\n@@peak 263000\n".to_owned();
        assert_eq!(
            take_peak_memory(&mut stderr, "@@peak"),
            Some(263_000 * 1024)
        );
        assert_eq!(stderr, "Traceback\nMemoryError\n");
        let mut stderr = "nothing".to_owned();
        assert_eq!(take_peak_memory(&mut stderr, "@@peak"), None);
        assert_eq!(stderr, "nothing");
    }
}
