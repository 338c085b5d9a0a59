//! "Run": the interview's current code, executed in the sandbox, its result kept with the
//! interview and shown to everyone in the editor.
//!
//! A run is admitted to the server's queue ([`sightline_runner::Runner`]) or refused as busy,
//! limited per interview, stored as `queued`/`running`, and finished in a task of its own; each
//! change of its state is stored first and then announced on the interview's workspace sockets.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use sightline_config::ExecutionSettings;
use sightline_runner::{
    Bubblewrap, BubblewrapConfig, Job, Language, Limits, Outcome, Runner, RunnerError, Verdict,
    running_as_root,
};
use utoipa::ToSchema;

use crate::documents::Documents;
use crate::error::ApiError;
use crate::store::workspace::{self as store, RunRow};
use crate::store::{Db, new_id};

/// The language a document without a chosen one runs as.
pub const DEFAULT_LANGUAGE: &str = "python";

/// A language people can pick.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LanguageInfo {
    /// Id (`python`, `cpp`, ...), as the editor stores it.
    pub id: String,
    /// Name people see.
    pub name: String,
}

/// Who asked for a run.
#[derive(Debug, Clone)]
pub struct Requester {
    /// Their participant id in the interview (none for an admin outside it).
    pub participant: Option<String>,
    /// Their name.
    pub name: String,
}

/// The code runner as the API uses it.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    /// The runner, or why there is none (turned off, bubblewrap missing).
    runner: Result<Runner, String>,
    languages: BTreeMap<String, Language>,
    limits: Limits,
    stdin_bytes: usize,
    per_interview: DefaultKeyedRateLimiter<String>,
    runs_per_minute: u32,
    retry_after_secs: u64,
}

impl Runs {
    /// The runner the settings describe.
    pub fn new(settings: &ExecutionSettings) -> Self {
        let runner = if settings.enabled {
            Bubblewrap::new(BubblewrapConfig {
                bwrap: settings.bwrap.clone(),
                read_only_paths: settings.read_only_paths.clone(),
            })
            .map(|sandbox| {
                let uid_base = running_as_root().then_some(settings.sandbox_uid);
                Runner::new(
                    Arc::new(sandbox),
                    settings.concurrency,
                    settings.max_queued,
                    uid_base,
                )
            })
            .map_err(|err| err.to_string())
        } else {
            Err("code execution is turned off on this server".to_owned())
        };
        if let Err(reason) = &runner {
            tracing::warn!(%reason, "code runs are not available");
        }
        let languages = settings
            .languages
            .iter()
            .map(|(id, lang)| {
                let language = Language {
                    id: id.clone(),
                    name: lang.name.clone(),
                    file: lang.file.clone(),
                    command: lang.command.clone(),
                };
                (id.clone(), language)
            })
            .collect();
        let limits = &settings.limits;
        let per_minute = NonZeroU32::new(settings.runs_per_minute).unwrap_or(NonZeroU32::MIN);
        Runs {
            inner: Arc::new(Inner {
                runner,
                languages,
                limits: Limits {
                    wall: Duration::from_secs(limits.wall_secs),
                    cpu_secs: limits.cpu_secs,
                    memory_bytes: limits.memory_mib << 20,
                    processes: limits.processes,
                    output_bytes: usize::try_from(limits.output_kib << 10).unwrap_or(usize::MAX),
                    work_dir_bytes: limits.work_dir_mib << 20,
                },
                stdin_bytes: usize::try_from(limits.stdin_kib << 10).unwrap_or(usize::MAX),
                per_interview: RateLimiter::keyed(Quota::per_minute(per_minute)),
                runs_per_minute: per_minute.get(),
                retry_after_secs: (60 / u64::from(per_minute.get())).max(1),
            }),
        }
    }

    /// The languages offered.
    pub fn languages(&self) -> Vec<LanguageInfo> {
        self.inner
            .languages
            .values()
            .map(|lang| LanguageInfo {
                id: lang.id.clone(),
                name: lang.name.clone(),
            })
            .collect()
    }

    /// Whether runs can happen on this server.
    pub fn available(&self) -> bool {
        self.inner.runner.is_ok()
    }

    fn runner(&self) -> Result<&Runner, ApiError> {
        self.inner
            .runner
            .as_ref()
            .map_err(|reason| ApiError::Conflict {
                code: "execution_unavailable",
                message: reason.clone(),
            })
    }

    /// Refuses a run past the interview's rate (`runs` runs at once count as that many).
    fn check_rate(&self, interview: &str, runs: u32) -> Result<(), ApiError> {
        let runs = NonZeroU32::new(runs).unwrap_or(NonZeroU32::MIN);
        match self
            .inner
            .per_interview
            .check_key_n(&interview.to_owned(), runs)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ApiError::RateLimited {
                retry_after_secs: self.inner.retry_after_secs,
            }),
        }
    }

    /// The job for the interview's current code (in the editor's language) and that language.
    async fn current_job(
        &self,
        documents: &Documents,
        interview: &str,
        stdin: String,
    ) -> Result<(String, Job), ApiError> {
        let (source, language) = documents
            .read(interview)
            .await
            .map_err(|_| ApiError::Unavailable("the shared document is not available"))?;
        let language_id = language.unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned());
        let language = self
            .inner
            .languages
            .get(&language_id)
            .cloned()
            .ok_or_else(|| ApiError::Conflict {
                code: "unknown_language",
                message: format!("this server does not run `{language_id}`"),
            })?;
        let job = Job {
            language,
            source,
            stdin,
            limits: self.inner.limits,
        };
        Ok((language_id, job))
    }

    /// Runs the current code once per case (stdin, expected stdout), one after another, and
    /// compares what it printed. Each case counts as a run against the interview's rate.
    pub async fn test(
        &self,
        documents: &Documents,
        interview: &str,
        cases: Vec<(String, String)>,
    ) -> Result<(String, Vec<TestResult>), ApiError> {
        let runner = self.runner()?.clone();
        let (language, job) = self
            .current_job(documents, interview, String::new())
            .await?;
        // A question's tests count as that many runs, up to a minute's allowance (more tests
        // than that still run, one after another).
        let burst = self.inner.runs_per_minute;
        self.check_rate(
            interview,
            u32::try_from(cases.len()).unwrap_or(u32::MAX).min(burst),
        )?;
        let mut results = Vec::with_capacity(cases.len());
        for (index, (stdin, expected_stdout)) in cases.into_iter().enumerate() {
            let ticket = runner
                .admit(Job {
                    stdin: stdin.clone(),
                    ..job.clone()
                })
                .map_err(busy)?;
            let result = match ticket.run().await {
                Ok(outcome) => TestResult {
                    index,
                    passed: outcome.verdict == Verdict::Ok
                        && same_output(&outcome.stdout, &expected_stdout),
                    verdict: verdict_name(outcome.verdict),
                    stdout: outcome.stdout,
                    stderr: outcome.stderr,
                    duration_ms: outcome.duration_ms,
                    error: None,
                    stdin,
                    expected_stdout,
                },
                Err(err) => TestResult {
                    index,
                    passed: false,
                    verdict: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    duration_ms: 0,
                    error: Some(err.to_string()),
                    stdin,
                    expected_stdout,
                },
            };
            results.push(result);
        }
        Ok((language, results))
    }

    /// Starts a run of the interview's current code; returns it as stored (queued or
    /// running). Its end is stored and announced by a task of its own.
    pub async fn start(
        &self,
        db: &Db,
        documents: &Documents,
        interview: &str,
        requester: Requester,
        stdin: String,
    ) -> Result<RunRow, ApiError> {
        let runner = self.runner()?.clone();
        if stdin.len() > self.inner.stdin_bytes {
            return Err(ApiError::field(
                "stdin",
                format!("must be at most {} bytes", self.inner.stdin_bytes),
            ));
        }
        self.check_rate(interview, 1)?;
        let (language_id, job) = self
            .current_job(documents, interview, stdin.clone())
            .await?;
        let source = job.source.clone();
        let ticket = runner.admit(job).map_err(busy)?;
        let run = RunRow {
            id: new_id(),
            interview_id: interview.to_owned(),
            participant_id: requester.participant,
            requested_by: requester.name,
            language: language_id,
            source,
            stdin,
            status: if ticket.ahead() == 0 {
                "running".into()
            } else {
                "queued".into()
            },
            verdict: None,
            exit_code: None,
            signal: None,
            stdout: None,
            stderr: None,
            duration_ms: None,
            error: None,
            created_at_ms: jiff::Timestamp::now().as_millisecond(),
            finished_at_ms: None,
        };
        store::insert_run(db.pool(), &run).await?;
        announce(documents, &run).await;

        let (db, documents, admitted) = (db.clone(), documents.clone(), run.clone());
        tokio::spawn(async move {
            let result = match ticket.start().await {
                Ok(started) => {
                    // Stored and announced before the run starts, so "running" never lands
                    // after the result.
                    if admitted.status == "queued" {
                        let running = RunRow {
                            status: "running".into(),
                            ..admitted.clone()
                        };
                        if store::update_run(db.pool(), &running).await.is_ok() {
                            announce(&documents, &running).await;
                        }
                    }
                    started.run().await
                }
                Err(err) => Err(err),
            };
            let finished = finish(admitted, result);
            if let Err(err) = store::update_run(db.pool(), &finished).await {
                tracing::error!(%err, run = %finished.id, "storing a run's result");
            }
            announce(&documents, &finished).await;
        });
        Ok(run)
    }
}

/// One hidden test's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// Its place among the question's tests.
    pub index: usize,
    /// The program ended well and printed what was expected.
    pub passed: bool,
    /// How the run ended (`ok`, `failed`, `time_limit_exceeded`, ...); none if it could not run.
    pub verdict: Option<String>,
    /// What it was given.
    pub stdin: String,
    /// What it should have printed.
    pub expected_stdout: String,
    /// What it printed.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// Why it could not run.
    pub error: Option<String>,
}

/// Output compared as people read it: trailing spaces and trailing blank lines do not count.
fn same_output(got: &str, want: &str) -> bool {
    fn lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|line| line.is_empty()) {
            lines.pop();
        }
        lines
    }
    lines(got) == lines(want)
}

fn verdict_name(verdict: Verdict) -> Option<String> {
    serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn busy(err: RunnerError) -> ApiError {
    match err {
        RunnerError::Busy => ApiError::Busy("the code runner is busy; try again in a moment"),
        other => ApiError::Internal(other.to_string()),
    }
}

fn finish(run: RunRow, result: Result<Outcome, RunnerError>) -> RunRow {
    let finished_at_ms = Some(jiff::Timestamp::now().as_millisecond());
    match result {
        Ok(outcome) => RunRow {
            status: "finished".into(),
            verdict: verdict_name(outcome.verdict),
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            stdout: Some(outcome.stdout),
            stderr: Some(outcome.stderr),
            duration_ms: i64::try_from(outcome.duration_ms).ok(),
            finished_at_ms,
            ..run
        },
        Err(err) => {
            tracing::error!(%err, run = %run.id, "a run could not start");
            RunRow {
                status: "failed".into(),
                error: Some(err.to_string()),
                finished_at_ms,
                ..run
            }
        }
    }
}

/// Tells everyone in the interview's editor about a run.
async fn announce(documents: &Documents, run: &RunRow) {
    documents.run_changed(run).await;
}
