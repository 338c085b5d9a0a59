//! The `interviews` and `interview_participants` tables.

use sqlx::{AnyConnection, AnyPool, FromRow};

use super::{new_id, now};

/// A row of `interviews`.
#[derive(Debug, Clone, FromRow)]
pub struct InterviewRow {
    /// UUIDv7; also the id of the interview's room.
    pub id: String,
    /// Shown on dashboards and invites.
    pub title: String,
    /// Unix seconds.
    pub scheduled_start: i64,
    /// Planned length.
    pub duration_minutes: i64,
    /// IANA zone the interview was planned in, for display.
    pub time_zone: String,
    /// `scheduled` or `cancelled`.
    pub status: String,
}

impl InterviewRow {
    /// When the interview is planned to end, unix seconds.
    pub fn ends_at(&self) -> i64 {
        self.scheduled_start
            .saturating_add(self.duration_minutes.saturating_mul(60))
    }

    /// Whether it was called off.
    pub fn is_cancelled(&self) -> bool {
        self.status == "cancelled"
    }
}

/// A row of `interview_participants`.
#[derive(Debug, Clone, FromRow)]
pub struct ParticipantRow {
    /// UUIDv7; the participant's identity in the room.
    pub id: String,
    /// The interview.
    pub interview_id: String,
    /// Lower-cased email.
    pub email: String,
    /// Name shown in the room.
    pub display_name: String,
    /// Interview role name.
    pub role: String,
    /// The account, once known.
    pub user_id: Option<String>,
    /// Session generation: tokens issued under an older one are no longer accepted.
    pub session_epoch: i64,
}

/// What is needed to create an interview.
#[derive(Debug, Clone)]
pub struct NewInterview<'a> {
    /// Title.
    pub title: &'a str,
    /// Unix seconds.
    pub scheduled_start: i64,
    /// Minutes.
    pub duration_minutes: i64,
    /// IANA zone.
    pub time_zone: &'a str,
    /// Creator's user id.
    pub created_by: &'a str,
}

/// A participant to add.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    /// Lower-cased email.
    pub email: String,
    /// Name shown in the room.
    pub display_name: String,
    /// Interview role name.
    pub role: &'static str,
    /// The account, if already known.
    pub user_id: Option<String>,
    /// The zone email to them is written in, when the scheduler gave one (IANA name); otherwise
    /// their account's, or the interview's.
    pub time_zone: Option<String>,
}

/// The columns of [`InterviewRow`], as a literal so queries stay static strings.
macro_rules! interview_columns {
    () => {
        "id, title, scheduled_start, duration_minutes, time_zone, status"
    };
}

/// The columns of [`ParticipantRow`].
macro_rules! participant_columns {
    () => {
        "id, interview_id, email, display_name, role, user_id, session_epoch"
    };
}

/// Creates an interview and its participants, inside the caller's transaction (which also
/// issues the invites, so a failure leaves nothing behind).
pub async fn insert(
    tx: &mut AnyConnection,
    new: &NewInterview<'_>,
    participants: &[NewParticipant],
) -> Result<(InterviewRow, Vec<ParticipantRow>), sqlx::Error> {
    let at = now();
    let id = new_id();
    sqlx::query(
        "INSERT INTO interviews (id, title, scheduled_start, duration_minutes, time_zone, status, \
         created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, $7)",
    )
    .bind(&id)
    .bind(new.title)
    .bind(new.scheduled_start)
    .bind(new.duration_minutes)
    .bind(new.time_zone)
    .bind(new.created_by)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let mut rows = Vec::with_capacity(participants.len());
    for participant in participants {
        let participant_id = new_id();
        sqlx::query(
            "INSERT INTO interview_participants \
             (id, interview_id, email, display_name, role, user_id, created_at, time_zone) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&participant_id)
        .bind(&id)
        .bind(&participant.email)
        .bind(&participant.display_name)
        .bind(participant.role)
        .bind(participant.user_id.as_deref())
        .bind(at)
        .bind(participant.time_zone.as_deref())
        .execute(&mut *tx)
        .await?;
        rows.push(ParticipantRow {
            id: participant_id,
            interview_id: id.clone(),
            email: participant.email.clone(),
            display_name: participant.display_name.clone(),
            role: participant.role.to_owned(),
            user_id: participant.user_id.clone(),
            session_epoch: 0,
        });
    }
    let interview = InterviewRow {
        id,
        title: new.title.to_owned(),
        scheduled_start: new.scheduled_start,
        duration_minutes: new.duration_minutes,
        time_zone: new.time_zone.to_owned(),
        status: "scheduled".to_owned(),
    };
    Ok((interview, rows))
}

/// Looks an interview up by id.
pub async fn by_id<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<Option<InterviewRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        interview_columns!(),
        " FROM interviews WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// The participants of an interview, in the order they were added.
pub async fn participants<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    interview_id: &str,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        participant_columns!(),
        " FROM interview_participants \
         WHERE interview_id = $1 ORDER BY id"
    ))
    .bind(interview_id)
    .fetch_all(executor)
    .await
}

/// Looks a participant up by id.
pub async fn participant(pool: &AnyPool, id: &str) -> Result<Option<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        participant_columns!(),
        " FROM interview_participants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The participant rows linked to a user's account in interviews that may still have a room
/// (not cancelled, not ended more than `grace_secs` before `now`).
pub async fn open_participations_of_user<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    now: i64,
    grace_secs: i64,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.interview_id, p.email, p.display_name, p.role, p.user_id, \
         p.session_epoch FROM interview_participants p \
         JOIN interviews i ON i.id = p.interview_id \
         WHERE p.user_id = $1 AND i.status = 'scheduled' \
         AND i.scheduled_start + i.duration_minutes * 60 + $2 > $3 ORDER BY p.id",
    )
    .bind(user_id)
    .bind(grace_secs)
    .bind(now)
    .fetch_all(executor)
    .await
}

/// Ends the room and phone sessions of every participant row linked to a user's account (their
/// join tokens carry the row's session generation, which this raises), keeping the link, so a
/// reactivated account gets its interviews back. Runs in the caller's transaction.
pub async fn raise_session_epochs_of_user<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE interview_participants SET session_epoch = session_epoch + 1 WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Raises an interview's calendar sequence (it changed: calendars must update their entry);
/// when its start moved to `start`, its reminders are due again, except those whose time has
/// passed at `now` (an interview moved to within the hour gets no hour's reminder: the change's
/// message says when it is). Returns the new sequence. Runs in the caller's transaction, the
/// write first.
pub async fn next_calendar_sequence(
    tx: &mut AnyConnection,
    interview_id: &str,
    moved_to: Option<i64>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    match moved_to {
        Some(start) => {
            sqlx::query(
                "UPDATE interviews SET calendar_sequence = calendar_sequence + 1, \
                 reminded_day_at = CASE WHEN $2 - 86400 <= $3 THEN $3 ELSE NULL END, \
                 reminded_hour_at = CASE WHEN $2 - 3600 <= $3 THEN $3 ELSE NULL END \
                 WHERE id = $1",
            )
            .bind(interview_id)
            .bind(start)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(
                "UPDATE interviews SET calendar_sequence = calendar_sequence + 1 WHERE id = $1",
            )
            .bind(interview_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    calendar_sequence(tx, interview_id).await
}

/// Which reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reminder {
    /// A day before.
    Day,
    /// An hour before.
    Hour,
}

impl Reminder {
    /// How long before the start it is due.
    pub fn before_secs(self) -> i64 {
        match self {
            Reminder::Day => 86_400,
            Reminder::Hour => 3_600,
        }
    }
}

/// Scheduled interviews whose `reminder` is due at `now` and not taken care of yet: (id, when
/// it was created, its start).
pub async fn reminders_due(
    pool: &AnyPool,
    reminder: Reminder,
    now: i64,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let sql = match reminder {
        Reminder::Day => {
            "SELECT id, created_at, scheduled_start FROM interviews WHERE status = 'scheduled' \
             AND reminded_day_at IS NULL AND scheduled_start > $1 + 3600 \
             AND scheduled_start <= $1 + 86400 ORDER BY scheduled_start LIMIT 100"
        }
        Reminder::Hour => {
            "SELECT id, created_at, scheduled_start FROM interviews WHERE status = 'scheduled' \
             AND reminded_hour_at IS NULL AND scheduled_start > $1 \
             AND scheduled_start <= $1 + 3600 ORDER BY scheduled_start LIMIT 100"
        }
    };
    sqlx::query_as(sql).bind(now).fetch_all(pool).await
}

/// Takes care of `interview`'s `reminder` for its start at `start` (the hour's covers the
/// day's too); false if someone (another server) did first, or it moved. Runs in the caller's transaction, a conditional write.
pub async fn claim_reminder(
    tx: &mut AnyConnection,
    interview_id: &str,
    reminder: Reminder,
    start: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    // Only for the start it was found due for: one moved meanwhile is looked at again.
    let sql = match reminder {
        Reminder::Day => {
            "UPDATE interviews SET reminded_day_at = $1 \
             WHERE id = $2 AND reminded_day_at IS NULL AND status = 'scheduled' \
             AND scheduled_start = $3"
        }
        Reminder::Hour => {
            "UPDATE interviews SET reminded_hour_at = $1, \
             reminded_day_at = COALESCE(reminded_day_at, $1) \
             WHERE id = $2 AND reminded_hour_at IS NULL AND status = 'scheduled' \
             AND scheduled_start = $3"
        }
    };
    let done = sqlx::query(sql)
        .bind(now)
        .bind(interview_id)
        .bind(start)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// An interview's calendar sequence.
pub async fn calendar_sequence(
    tx: &mut AnyConnection,
    interview_id: &str,
) -> Result<i64, sqlx::Error> {
    let (sequence,): (i64,) =
        sqlx::query_as("SELECT calendar_sequence FROM interviews WHERE id = $1")
            .bind(interview_id)
            .fetch_one(&mut *tx)
            .await?;
    Ok(sequence)
}

/// The zone each participant's email is written in, where one is known: the one the scheduler
/// gave, or else their account's (`None`: the interview's own).
pub async fn recipient_zones(
    tx: &mut AnyConnection,
    interview_id: &str,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, COALESCE(p.time_zone, u.time_zone) FROM interview_participants p \
         LEFT JOIN users u ON u.id = p.user_id WHERE p.interview_id = $1",
    )
    .bind(interview_id)
    .fetch_all(&mut *tx)
    .await
}

/// The interviews a user takes part in, with their participant row, soonest first.
pub async fn for_user(
    pool: &AnyPool,
    user_id: &str,
    limit: i64,
) -> Result<Vec<InterviewRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.title, i.scheduled_start, i.duration_minutes, i.time_zone, i.status \
         FROM interviews i \
         WHERE i.id IN (SELECT interview_id FROM interview_participants WHERE user_id = $1) \
         ORDER BY i.scheduled_start, i.id LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Replaces the schedule fields of a scheduled interview; false if it is cancelled (or gone).
pub async fn update<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    row: &InterviewRow,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE interviews SET title = $1, scheduled_start = $2, duration_minutes = $3, \
         time_zone = $4, updated_at = $5 WHERE id = $6 AND status = 'scheduled'",
    )
    .bind(&row.title)
    .bind(row.scheduled_start)
    .bind(row.duration_minutes)
    .bind(&row.time_zone)
    .bind(now())
    .bind(&row.id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a scheduled interview; false if it was already cancelled.
pub async fn cancel<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE interviews SET status = 'cancelled', updated_at = $1 \
         WHERE id = $2 AND status = 'scheduled'",
    )
    .bind(now())
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of a participant's: raises their session generation (older access and
/// join tokens stop working) and unlinks the account that redeemed their invite, if any. Runs in
/// the caller's transaction.
pub async fn end_sessions(tx: &mut AnyConnection, participant_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE interview_participants SET session_epoch = session_epoch + 1, user_id = NULL \
         WHERE id = $1",
    )
    .bind(participant_id)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Links a participant to the account that redeemed their invite, unless already linked.
pub async fn claim_participant<'e, E>(
    executor: E,
    participant_id: &str,
    user_id: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE interview_participants SET user_id = $1 WHERE id = $2 AND user_id IS NULL")
        .bind(user_id)
        .bind(participant_id)
        .execute(executor)
        .await
        .map(|_| ())
}
