//! The `recordings` and `recording_consents` tables. The media and manifests live in object
//! storage; these rows say which interview a recording belongs to, where it stands, and who
//! agreed to be recorded.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};
use utoipa::ToSchema;

use super::now;

/// A row of `recordings`.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct RecordingRow {
    /// UUIDv7; names its objects (`recordings/{id}/...`).
    pub id: String,
    /// The interview recorded.
    pub interview_id: String,
    /// `recording`, `complete`, `interrupted` or `failed`.
    pub status: String,
    /// User id of who started it.
    pub started_by: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, once it ended.
    pub ended_at: Option<i64>,
    /// Length, once it ended.
    pub duration_ms: Option<i64>,
    /// Why it failed, for `failed`.
    pub failure: Option<String>,
    /// Bytes it takes in the object store, measured once it ended (`null` before).
    pub size_bytes: Option<i64>,
}

/// A recording that starts now, on cluster node `node` (`None` alone); webhooks are told in
/// the same transaction.
pub async fn insert(
    pool: &AnyPool,
    id: &str,
    interview_id: &str,
    started_by: &str,
    node: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO recordings (id, interview_id, status, started_by, started_at, node) \
         VALUES ($1, $2, 'recording', $3, $4, $5)",
    )
    .bind(id)
    .bind(interview_id)
    .bind(started_by)
    .bind(now())
    .bind(node)
    .execute(&mut *tx)
    .await?;
    tell_webhooks(&mut tx, id).await?;
    tx.commit().await
}

/// Writes the webhook event for recording `id`'s status now (started, finished or failed), in
/// the caller's transaction, after its change: every path that moves a recording (a node, a
/// worker, recovery after a crash) tells webhooks once, and only if the change commits.
async fn tell_webhooks(tx: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    use crate::webhooks::{Event, RecordingData};
    let Some(row) = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT interview_id, status, failure FROM recordings WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let (interview_id, status, failure) = row;
    let data = RecordingData {
        interview_id,
        recording_id: id.to_owned(),
        status: status.clone(),
        reason: failure,
    };
    let event = match status.as_str() {
        "recording" => Event::RecordingStarted(data),
        "failed" => Event::RecordingFailed(data),
        _ => Event::RecordingFinished(data),
    };
    crate::webhooks::record(tx, &event).await.map(|_| ())
}

/// How long after a recording ended under its room the interview's recording is still
/// carried over when the room comes up again.
const CARRY_OVER_WITHIN_SECS: i64 = 3600;

#[derive(Debug, FromRow)]
struct CarryRow {
    id: String,
    started_by: String,
    node: Option<String>,
    stopped_at: Option<i64>,
    carried_to: Option<String>,
    status: String,
    ended_at: Option<i64>,
}

/// A recording another node lost its room with: which, who started it, and on which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Recording id.
    pub id: String,
    /// Who started it.
    pub started_by: String,
    /// The node that was responsible for it.
    pub node: String,
}

/// The interview's newest recording, when it lost its room on another cluster node than
/// `node` and nobody has gone on recording yet: another node's, not stopped on purpose, not
/// carried over.
pub async fn to_carry_over(
    pool: &AnyPool,
    interview_id: &str,
    node: &str,
) -> Result<Option<Lost>, sqlx::Error> {
    let newest: Option<CarryRow> = sqlx::query_as(
        "SELECT id, started_by, node, stopped_at, carried_to, status, ended_at FROM recordings \
         WHERE interview_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(interview_id)
    .fetch_optional(pool)
    .await?;
    Ok(newest.and_then(|row| {
        // One that ended under its room long ago belongs to another sitting.
        let recent = row.status == "recording"
            || row
                .ended_at
                .is_some_and(|ended| ended >= now() - CARRY_OVER_WITHIN_SECS);
        let made_on = row.node.filter(|made_on| made_on != node)?;
        let lost = row.stopped_at.is_none()
            && row.carried_to.is_none()
            && row.status != "failed"
            && recent;
        lost.then_some(Lost {
            id: row.id,
            started_by: row.started_by,
            node: made_on,
        })
    }))
}

/// Makes `node` responsible for recording `lost`, which the node that lost its room has not
/// begun finishing; `false` if that node began finishing it, it was stopped, or another node
/// took it first.
pub async fn take_over(pool: &AnyPool, lost: &Lost, node: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET node = $3, taken_from = $2, worker = NULL \
         WHERE id = $1 AND node = $2 AND finisher IS NULL AND stopped_at IS NULL \
         AND carried_to IS NULL AND status = 'recording'",
    )
    .bind(&lost.id)
    .bind(&lost.node)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Hands `lost` back to the node that lost its room after `node` took it over but could not go
/// on with it: that node finishes what is stored when it starts again.
pub async fn give_back(pool: &AnyPool, lost: &Lost, node: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET node = $2, taken_from = NULL \
         WHERE id = $1 AND node = $3 AND finisher IS NULL",
    )
    .bind(&lost.id)
    .bind(&lost.node)
    .bind(node)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Lets `node`, which stopped recording `id`, finish it; `false` when another node took it over
/// meanwhile (and finishes it). Repeatable by the same node (a restart mid-finish); a row made
/// before nodes were written down is this node's.
pub async fn claim_finish(pool: &AnyPool, id: &str, node: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET finisher = $2 \
         WHERE id = $1 AND (node = $2 OR node IS NULL) AND (finisher IS NULL OR finisher = $2)",
    )
    .bind(id)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets `node`, starting again, finish recording `id` it finds in its spool; `false` when
/// another node took it over (and finishes it). A node whose id changed (a new host name)
/// still finishes what nobody took over.
pub async fn claim_recovery(pool: &AnyPool, id: &str, node: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET node = $2, finisher = $2 \
         WHERE id = $1 AND (node = $2 OR node IS NULL OR taken_from IS NULL)",
    )
    .bind(id)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who has a recording, for a node whose worker went: its status, node and finisher.
#[derive(Debug, Clone, FromRow)]
pub struct Holder {
    /// `recording`, `complete`, `interrupted` or `failed`.
    pub status: String,
    /// The node responsible for it.
    pub node: Option<String>,
    /// Whoever is finishing it.
    pub finisher: Option<String>,
}

/// Who has recording `id` (`None`: no such recording).
pub async fn holder(pool: &AnyPool, id: &str) -> Result<Option<Holder>, sqlx::Error> {
    sqlx::query_as("SELECT status, node, finisher FROM recordings WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Lets worker `worker` record `id` for node `node`: the node still has it and nobody began
/// finishing it (a job handed to this worker after its first worker died moves it here).
/// `false`: the job is stale.
pub async fn claim_job(
    pool: &AnyPool,
    id: &str,
    node: &str,
    worker: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET worker = $3 \
         WHERE id = $1 AND node = $2 AND status = 'recording' AND finisher IS NULL",
    )
    .bind(id)
    .bind(node)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets worker `worker`, which recorded `id`, finish it; `false` when another worker went on
/// with it or a node took it over (and finishes it). Repeatable by the same worker.
pub async fn claim_worker_finish(
    pool: &AnyPool,
    id: &str,
    worker: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET finisher = $2 \
         WHERE id = $1 AND worker = $2 AND status = 'recording' \
         AND (finisher IS NULL OR finisher = $2)",
    )
    .bind(id)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets worker `worker`, to which the queue handed recording `id`'s job again after the
/// worker that began finishing it stopped renewing the job (it died), finish it instead: only
/// while that worker is the one the row names as both maker and finisher, and `node` still has
/// the recording. `false`: someone else has it.
pub async fn claim_dead_worker_finish(
    pool: &AnyPool,
    id: &str,
    node: &str,
    worker: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET worker = $3, finisher = $3 \
         WHERE id = $1 AND node = $2 AND status = 'recording' \
         AND worker IS NOT NULL AND finisher = worker AND worker <> $3",
    )
    .bind(id)
    .bind(node)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What keeps [`fail_without_worker`] from failing a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlessWorker {
    /// A worker claimed it.
    Claimed,
    /// Someone is finishing it.
    Finishing,
}

/// Fails recording `id`, which no worker made or finished, with `reason`; `false` if `unless`
/// holds (or it ended meanwhile).
pub async fn fail_without_worker(
    pool: &AnyPool,
    id: &str,
    reason: &str,
    unless: UnlessWorker,
) -> Result<bool, sqlx::Error> {
    let sql = match unless {
        UnlessWorker::Claimed => {
            "UPDATE recordings SET status = 'failed', ended_at = $1, failure = $2 \
             WHERE id = $3 AND worker IS NULL AND status = 'recording'"
        }
        UnlessWorker::Finishing => {
            "UPDATE recordings SET status = 'failed', ended_at = $1, failure = $2 \
             WHERE id = $3 AND finisher IS NULL AND status = 'recording'"
        }
    };
    let mut tx = pool.begin().await?;
    let done = sqlx::query(sql)
        .bind(now())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let failed = done.rows_affected() == 1;
    if failed {
        tell_webhooks(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(failed)
}

/// Marks `id` carried over to `node`; `false` if another node did first.
pub async fn carry_over(pool: &AnyPool, id: &str, node: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET carried_to = $2 \
         WHERE id = $1 AND carried_to IS NULL AND stopped_at IS NULL",
    )
    .bind(id)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notes that its server (`node`, `None` alone) stopped `id` on purpose, before finishing it:
/// it is not to be carried over to another node. Nothing changes once another node took it
/// over.
pub async fn mark_stopped(pool: &AnyPool, id: &str, node: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET stopped_at = $2 \
         WHERE id = $1 AND stopped_at IS NULL AND (node = $3 OR node IS NULL)",
    )
    .bind(id)
    .bind(now())
    .bind(node)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A recording that ended: `complete`, or `interrupted` by a crash. Webhooks hear of every
/// change of status.
pub async fn finish(
    pool: &AnyPool,
    id: &str,
    status: &str,
    duration_ms: Option<i64>,
) -> Result<(), sqlx::Error> {
    // A change of status first (a conditional write: on SQLite a read first would have to
    // upgrade its lock), which webhooks are told of; otherwise only the end is corrected.
    let mut tx = pool.begin().await?;
    let first = sqlx::query(
        "UPDATE recordings SET status = $1, ended_at = $2, duration_ms = $3, size_bytes = NULL \
         WHERE id = $4 AND status <> $1",
    )
    .bind(status)
    .bind(now())
    .bind(duration_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if first.rows_affected() == 1 {
        tell_webhooks(&mut tx, id).await?;
    } else {
        sqlx::query(
            "UPDATE recordings SET status = $1, ended_at = $2, duration_ms = $3, \
             size_bytes = NULL WHERE id = $4",
        )
        .bind(status)
        .bind(now())
        .bind(duration_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// A recording the server could not finish, with the reason people are shown. Webhooks hear of
/// every change of status.
pub async fn fail(pool: &AnyPool, id: &str, reason: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let first = sqlx::query(
        "UPDATE recordings SET status = 'failed', ended_at = $1, failure = $2, \
         size_bytes = NULL WHERE id = $3 AND status <> 'failed'",
    )
    .bind(now())
    .bind(reason)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if first.rows_affected() == 1 {
        tell_webhooks(&mut tx, id).await?;
    } else {
        sqlx::query(
            "UPDATE recordings SET status = 'failed', ended_at = $1, failure = $2, \
             size_bytes = NULL WHERE id = $3",
        )
        .bind(now())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Recordings in one status (`recording`: not finished yet), newest first, at most `limit`.
pub async fn with_status(
    pool: &AnyPool,
    status: &str,
    limit: i64,
) -> Result<Vec<RecordingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, status, started_by, started_at, ended_at, duration_ms, failure, \
         size_bytes FROM recordings WHERE status = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A recording as the admin console lists it: its row and its interview's title.
#[derive(Debug, Clone, FromRow)]
pub struct Listed {
    /// The row.
    #[sqlx(flatten)]
    pub row: RecordingRow,
    /// Its interview's title.
    pub interview_title: String,
}

/// Every recording, or those in one `status`, newest first: `limit` from `offset`.
pub async fn page(
    pool: &AnyPool,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    // Static SQL: an absent status compares the column with itself.
    sqlx::query_as(
        "SELECT r.id, r.interview_id, r.status, r.started_by, r.started_at, r.ended_at, \
         r.duration_ms, r.failure, r.size_bytes, i.title AS interview_title \
         FROM recordings r JOIN interviews i ON i.id = r.interview_id \
         WHERE r.status = COALESCE($1, r.status) \
         ORDER BY r.started_at DESC, r.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// What all recordings take in the store, as far as measured.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct Totals {
    /// Recordings.
    pub recordings: i64,
    /// Bytes of those measured.
    pub bytes: i64,
    /// Recordings not measured: still recording, or not listed since they ended.
    pub unmeasured: i64,
}

/// See [`Totals`].
pub async fn totals(pool: &AnyPool) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) AS recordings, \
         CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS bytes, \
         CAST(COALESCE(SUM(CASE WHEN size_bytes IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
         AS unmeasured FROM recordings",
    )
    .fetch_one(pool)
    .await
}

/// Keeps what an ended recording measured in the store; nothing if it was finished or failed
/// again since it was read as `status` ending at `ended_at` (then it is measured anew).
pub async fn set_size(
    pool: &AnyPool,
    id: &str,
    status: &str,
    ended_at: i64,
    bytes: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET size_bytes = $1 \
         WHERE id = $2 AND status = $3 AND ended_at = $4 AND status <> 'recording'",
    )
    .bind(bytes)
    .bind(id)
    .bind(status)
    .bind(ended_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One recording.
pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<RecordingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, status, started_by, started_at, ended_at, duration_ms, failure, \
         size_bytes FROM recordings WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// An interview's recordings, newest first.
pub async fn for_interview(
    pool: &AnyPool,
    interview_id: &str,
) -> Result<Vec<RecordingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, status, started_by, started_at, ended_at, duration_ms, failure, \
         size_bytes FROM recordings WHERE interview_id = $1 ORDER BY started_at DESC, id DESC",
    )
    .bind(interview_id)
    .fetch_all(pool)
    .await
}

/// Recordings that ended before `before` (unix seconds), for the retention job.
pub async fn ended_before(pool: &AnyPool, before: i64) -> Result<Vec<RecordingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, status, started_by, started_at, ended_at, duration_ms, failure, \
         size_bytes FROM recordings WHERE ended_at IS NOT NULL AND ended_at < $1",
    )
    .bind(before)
    .fetch_all(pool)
    .await
}

/// Forgets a recording (its objects are deleted first).
pub async fn delete(pool: &AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recordings WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Records that a participant agreed to be recorded (again is harmless).
pub async fn consent(
    pool: &AnyPool,
    interview_id: &str,
    participant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recording_consents (interview_id, participant_id, consented_at) \
         VALUES ($1, $2, $3) ON CONFLICT (interview_id, participant_id) DO NOTHING",
    )
    .bind(interview_id)
    .bind(participant_id)
    .bind(now())
    .execute(pool)
    .await
    .map(|_| ())
}

/// Participants of an interview who agreed to be recorded.
pub async fn consented(pool: &AnyPool, interview_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT participant_id FROM recording_consents WHERE interview_id = $1")
        .bind(interview_id)
        .fetch_all(pool)
        .await
}

/// Makes an interview record automatically, or stops it doing so.
pub async fn set_auto(
    pool: &AnyPool,
    interview_id: &str,
    enabled: bool,
    by: &str,
) -> Result<(), sqlx::Error> {
    if enabled {
        sqlx::query(
            "INSERT INTO recording_auto (interview_id, enabled_by, enabled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (interview_id) DO NOTHING",
        )
        .bind(interview_id)
        .bind(by)
        .bind(now())
        .execute(pool)
        .await?;
    } else {
        sqlx::query("DELETE FROM recording_auto WHERE interview_id = $1")
            .bind(interview_id)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Whether an interview records automatically, and who set it so.
pub async fn auto(pool: &AnyPool, interview_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT enabled_by FROM recording_auto WHERE interview_id = $1")
        .bind(interview_id)
        .fetch_optional(pool)
        .await
}

/// Recordings that ended with their files (`complete`, `interrupted`) and whose reviewers were
/// not told yet: (recording, interview, when it ended), at most `limit`.
pub async fn unannounced(
    pool: &AnyPool,
    limit: i64,
) -> Result<Vec<(String, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, ended_at FROM recordings \
         WHERE status IN ('complete', 'interrupted') AND announced_at IS NULL \
         ORDER BY ended_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Takes care of telling recording `id`'s reviewers; false if someone (another server) did.
/// Runs in the caller's transaction, a conditional write.
pub async fn claim_announcement(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recordings SET announced_at = $1 WHERE id = $2 AND announced_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
