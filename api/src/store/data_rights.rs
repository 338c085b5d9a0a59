//! What a candidate's erasure does to the tables, in the caller's transaction, writes first (the
//! deletions come before the one read, so on SQLite the transaction holds the write lock
//! before it reads).

use serde_json::Value;
use sqlx::AnyConnection;

use super::interviews::ParticipantRow;

/// Every candidate participant row with `email` (lower-cased).
pub async fn candidate_rows(
    pool: &sqlx::AnyPool,
    email: &str,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, email, display_name, role, user_id, session_epoch \
         FROM interview_participants WHERE email = $1 AND role = 'candidate' ORDER BY id",
    )
    .bind(email)
    .fetch_all(pool)
    .await
}

/// Every candidate participant row linked to account `user_id`.
pub async fn candidate_rows_of_user(
    pool: &sqlx::AnyPool,
    user_id: &str,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, interview_id, email, display_name, role, user_id, session_epoch \
         FROM interview_participants WHERE user_id = $1 AND role = 'candidate' ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// How many candidates of `interview` other than `participant` there are.
pub async fn other_candidates(
    pool: &sqlx::AnyPool,
    interview: &str,
    participant: &str,
) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM interview_participants \
         WHERE interview_id = $1 AND role = 'candidate' AND id <> $2",
    )
    .bind(interview)
    .bind(participant)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Ends everything candidate `participant` could still do: their invites, sessions (refresh
/// tokens, and access and join tokens through the session generation), phone pairings and
/// consents go. Runs in the caller's transaction, writes only.
pub async fn revoke_access(tx: &mut AnyConnection, participant: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM invites WHERE participant_id = $1",
        "DELETE FROM refresh_tokens WHERE participant_id = $1",
        "DELETE FROM phone_pairings WHERE participant_id = $1",
        "DELETE FROM recording_consents WHERE participant_id = $1",
        "DELETE FROM proctoring_consents WHERE participant_id = $1",
        "UPDATE interview_participants SET session_epoch = session_epoch + 1 WHERE id = $1",
    ] {
        sqlx::query(sql).bind(participant).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Deletes the email queued or kept for `address`.
pub async fn forget_mail(tx: &mut AnyConnection, address: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM outbox WHERE recipient = $1")
        .bind(address)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// Deletes what concerns candidate `participant` of `interview`: their invites, sessions,
/// phone pairings and consents; the interview's code (its history and its runs: the candidate
/// wrote it), the interviewers' private notes about them; empties what scorecards say in words
/// (the ratings and recommendations stay, with nothing personal); unlinks and renames the
/// participant row so nothing names them; drops webhook deliveries that name them. Returns how
/// many scorecards were emptied.
pub async fn erase_participation(
    tx: &mut AnyConnection,
    interview: &str,
    participant: &str,
) -> Result<usize, sqlx::Error> {
    revoke_access(tx, participant).await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE body LIKE '%' || $1 || '%'")
        .bind(participant)
        .execute(&mut *tx)
        .await?;
    for sql in [
        "DELETE FROM workspace_updates WHERE interview_id = $1",
        "DELETE FROM code_runs WHERE interview_id = $1",
        "DELETE FROM interview_notes WHERE interview_id = $1",
    ] {
        sqlx::query(sql).bind(interview).execute(&mut *tx).await?;
    }
    sqlx::query(
        "UPDATE interview_participants SET email = $1, display_name = 'Erased candidate', \
         user_id = NULL, time_zone = NULL WHERE id = $2",
    )
    .bind(format!("erased-{participant}@invalid"))
    .bind(participant)
    .execute(&mut *tx)
    .await?;
    let cards: Vec<(String, String)> =
        sqlx::query_as("SELECT id, ratings FROM scorecards WHERE interview_id = $1")
            .bind(interview)
            .fetch_all(&mut *tx)
            .await?;
    for (id, ratings) in &cards {
        sqlx::query("UPDATE scorecards SET summary = '', ratings = $1 WHERE id = $2")
            .bind(without_comments(ratings))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(cards.len())
}

/// A scorecard's ratings (`[{"score": 3, "comment": "…"}]`) with the comments emptied; `[]`
/// for anything else.
fn without_comments(ratings: &str) -> String {
    let mut parsed: Value = serde_json::from_str(ratings).unwrap_or(Value::Array(Vec::new()));
    if let Value::Array(items) = &mut parsed {
        for item in items.iter_mut() {
            if let Some(comment) = item.get_mut("comment") {
                *comment = Value::String(String::new());
            }
        }
    } else {
        parsed = Value::Array(Vec::new());
    }
    parsed.to_string()
}

/// Deletes a candidate's account (its sessions and reset links go with it).
pub async fn delete_candidate_account(
    tx: &mut AnyConnection,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1 AND role = 'candidate'")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scorecard_comments_are_emptied_and_scores_kept() {
        let kept = without_comments(r#"[{"score":3,"comment":"Casey was great"},{"score":1}]"#);
        assert_eq!(kept, r#"[{"comment":"","score":3},{"score":1}]"#);
        assert_eq!(without_comments("not json"), "[]");
    }
}
