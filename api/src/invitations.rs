//! Email about interviews, with the interview as a calendar event (`calendar.rs`): the
//! candidate's invitation with their own link and everyone else's assignment when it is
//! scheduled, everyone told when it moves or is cancelled (the same `UID`, a higher
//! `SEQUENCE`), reminders a day and an hour before, and a "recording ready" message to its
//! reviewers when a recording of it is finished. Each message is queued in the transaction
//! of what caused it; with email off (the embedded default) nothing is, and the app keeps showing
//! links to copy.
//!
//! Times are written in each recipient's time zone with the zone named: the one the scheduler
//! gave them, else their account's (set from their browser), else the interview's own (the one
//! it was planned in). The calendar event is in UTC, which every calendar shows in its owner's
//! zone.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sqlx::AnyConnection;

use crate::calendar::{self, Invitation, Method};
use crate::email::{Content, html_escape, plain_name};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::interviews::{self, InterviewRow, ParticipantRow, Reminder};
use crate::store::now;

/// How often due reminders are looked for.
const REMINDERS_EVERY: Duration = Duration::from_secs(10);

/// What a message about an interview says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occasion<'a> {
    /// Scheduled: the candidate's invitation, with their link.
    Invited { link: &'a str },
    /// Scheduled: an interviewer's, observer's or reviewer's assignment.
    Assigned,
    /// Its time, length or title changed.
    Moved,
    /// Cancelled.
    Cancelled,
    /// A reminder.
    Reminder(Reminder),
}

/// When `interview` takes place, for someone in `zone` (`None`, or a zone this build does not
/// know: the interview's own): "Tuesday 08 December 2026, 14:00 (Europe/Berlin), 60 minutes".
fn when(interview: &InterviewRow, zone: Option<&str>) -> String {
    let (name, tz) = match zone.and_then(|name| Some((name, TimeZone::get(name).ok()?))) {
        Some(found) => found,
        None => (
            interview.time_zone.as_str(),
            TimeZone::get(&interview.time_zone).unwrap_or(TimeZone::UTC),
        ),
    };
    let start = Timestamp::from_second(interview.scheduled_start)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz);
    format!(
        "{} ({name}), {} minutes",
        start.strftime("%A %d %B %Y, %H:%M"),
        interview.duration_minutes
    )
}

/// The zone of `person` among `zones` ([`interviews::recipient_zones`]).
fn zone_of<'a>(zones: &'a [(String, Option<String>)], person: &ParticipantRow) -> Option<&'a str> {
    zones
        .iter()
        .find(|(id, _)| *id == person.id)
        .and_then(|(_, zone)| zone.as_deref())
}

/// A title people typed, fit for a subject and a calendar: control characters become spaces
/// (titles are at most 200 characters already).
fn plain_title(title: &str) -> String {
    title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The host of the server's public address, for calendar UIDs (stable whatever the sender).
fn uid_host(state: &AppState) -> String {
    state
        .settings
        .public
        .base_url
        .host_str()
        .unwrap_or("sightline")
        .to_owned()
}

fn role_words(role: &str) -> &'static str {
    match role {
        "interviewer" => "an interviewer",
        "observer" => "an observer",
        "reviewer" => "a reviewer",
        _ => "a participant",
    }
}

/// The message for `person` (whose times are in `zone`) about `interview` on `occasion`, its
/// calendar at `sequence`.
fn message(
    state: &AppState,
    interview: &InterviewRow,
    person: &ParticipantRow,
    zone: Option<&str>,
    occasion: Occasion<'_>,
    sequence: i64,
) -> Content {
    let base = state
        .settings
        .public
        .base_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let page = format!("{base}/interviews/{}", interview.id);
    let name = plain_name(&person.display_name);
    let title = plain_title(&interview.title);
    let when = when(interview, zone);
    let candidate = person.role == "candidate";
    // Where to go: the candidate's own link in their invitation; otherwise the interview's page
    // (a candidate finds their link in that first message).
    let (link, link_words) = match occasion {
        Occasion::Invited { link } => (Some(link.to_owned()), "Join the interview"),
        _ if candidate => (None, ""),
        Occasion::Cancelled => (None, ""),
        _ => (Some(page.clone()), "Open the interview"),
    };
    let (subject, lead) = match occasion {
        Occasion::Invited { .. } => (
            format!("Interview invitation: {title}"),
            format!("You are invited to the interview \"{title}\", {when}."),
        ),
        Occasion::Assigned => (
            format!("You are {} of {title}", role_words(&person.role)),
            format!(
                "You take part in the interview \"{title}\" as {}, {when}.",
                role_words(&person.role)
            ),
        ),
        Occasion::Moved => (
            format!("Interview changed: {title}"),
            format!("The interview \"{title}\" is now {when}."),
        ),
        Occasion::Cancelled => (
            format!("Interview cancelled: {title}"),
            format!("The interview \"{title}\", {when}, was cancelled."),
        ),
        Occasion::Reminder(Reminder::Day) => (
            format!("Tomorrow: {title}"),
            format!("A reminder: the interview \"{title}\" is {when}."),
        ),
        Occasion::Reminder(Reminder::Hour) => (
            format!("In an hour: {title}"),
            format!("A reminder: the interview \"{title}\" starts in an hour, {when}."),
        ),
    };
    let advice = match occasion {
        Occasion::Invited { .. } => {
            "The link is yours alone: please do not share it. It opens a page where you check \
             your camera and microphone before you go in. Use a recent Chrome, Edge or Firefox."
        }
        Occasion::Cancelled => "",
        _ if candidate => "Join with the link in your invitation message.",
        _ => "",
    };
    let mut text = format!("Hello {name},\n\n{lead}\n");
    let mut html = format!(
        "<!doctype html><html><body><p>Hello {},</p><p>{}</p>",
        html_escape(&name),
        html_escape(&lead)
    );
    if let Some(link) = &link {
        text.push_str(&format!("\n{link_words}: {link}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">{link_words}</a></p>",
            html_escape(link)
        ));
    }
    if !advice.is_empty() {
        text.push_str(&format!("\n{advice}\n"));
        html.push_str(&format!("<p>{}</p>", html_escape(advice)));
    }
    html.push_str("</body></html>");
    let calendar = match occasion {
        // A reminder adds nothing a calendar does not have.
        Occasion::Reminder(_) => None,
        Occasion::Cancelled => Some(Method::Cancel),
        _ => Some(Method::Request),
    };
    let organizer = state.mailer.sender_address();
    let host = uid_host(state);
    let calendar = calendar.map(|method| {
        let description = match &link {
            Some(link) => format!("{lead}\n\n{link_words}: {link}"),
            None => lead.clone(),
        };
        let ics = calendar::ics(
            method,
            &Invitation {
                uid: &format!("{}@{host}", interview.id),
                sequence,
                start: interview.scheduled_start,
                end: interview.ends_at(),
                summary: &title,
                description: &description,
                url: link.as_deref(),
                organizer: &organizer,
                attendee: &person.email,
                attends: person.role != "reviewer",
                stamp: now(),
            },
        );
        (method, ics)
    });
    Content {
        subject,
        text,
        html,
        calendar,
    }
}

/// Queues `occasion`'s message for each of `people` through `tx`; nothing with email off.
async fn queue_all(
    state: &AppState,
    tx: &mut AnyConnection,
    interview: &InterviewRow,
    people: &[(&ParticipantRow, Occasion<'_>)],
    sequence: i64,
    expires_at: i64,
) -> Result<(), ApiError> {
    let zones = interviews::recipient_zones(&mut *tx, &interview.id).await?;
    for (person, occasion) in people {
        // An address the API took but SMTP cannot (`a..b@x`) costs its owner the message, not
        // everyone theirs, nor the change.
        if person.email.parse::<lettre::Address>().is_err() {
            tracing::warn!(participant = %person.id, "no email for an address SMTP cannot take");
            continue;
        }
        let content = message(
            state,
            interview,
            person,
            zone_of(&zones, person),
            *occasion,
            sequence,
        );
        let kind = match occasion {
            Occasion::Invited { .. } => "interview_invitation",
            Occasion::Assigned => "interview_assignment",
            Occasion::Moved => "interview_changed",
            Occasion::Cancelled => "interview_cancelled",
            Occasion::Reminder(_) => "interview_reminder",
        };
        state
            .mailer
            .queue(&mut *tx, kind, &person.email, &content, Some(expires_at))
            .await?;
    }
    Ok(())
}

/// A newly scheduled interview: each candidate's invitation with their link (`links`: their
/// participant id and URL), everyone else's assignment.
pub async fn scheduled(
    state: &AppState,
    tx: &mut AnyConnection,
    interview: &InterviewRow,
    participants: &[ParticipantRow],
    links: &[(String, String)],
) -> Result<(), ApiError> {
    if !state.mailer.enabled() {
        return Ok(());
    }
    let people: Vec<(&ParticipantRow, Occasion<'_>)> = participants
        .iter()
        .filter_map(|p| {
            if p.role == "candidate" {
                let link = links.iter().find(|(id, _)| *id == p.id)?;
                Some((p, Occasion::Invited { link: &link.1 }))
            } else {
                Some((p, Occasion::Assigned))
            }
        })
        .collect();
    let sequence = interviews::calendar_sequence(tx, &interview.id).await?;
    queue_all(state, tx, interview, &people, sequence, interview.ends_at()).await
}

/// What changed about an interview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its time, length or title.
    Moved {
        /// Whether its start changed (its reminders are then due again).
        start_moved: bool,
    },
    /// It was cancelled.
    Cancelled,
}

/// Tells everyone of `change` to `interview` (as it now is), in the transaction of the change:
/// the calendar event updated (a raised sequence) or removed. The sequence is raised with email
/// off too, so a server that turns email on later starts above what calendars may hold.
pub async fn changed(
    state: &AppState,
    tx: &mut AnyConnection,
    interview: &InterviewRow,
    participants: &[ParticipantRow],
    change: Change,
) -> Result<(), ApiError> {
    let at = now();
    let moved_to =
        matches!(change, Change::Moved { start_moved: true }).then_some(interview.scheduled_start);
    let sequence = interviews::next_calendar_sequence(tx, &interview.id, moved_to, at).await?;
    if !state.mailer.enabled() {
        return Ok(());
    }
    let occasion = match change {
        Change::Moved { .. } => Occasion::Moved,
        Change::Cancelled => Occasion::Cancelled,
    };
    let people: Vec<(&ParticipantRow, Occasion<'_>)> =
        participants.iter().map(|p| (p, occasion)).collect();
    // A cancellation is still worth reading after the interview's time would have passed.
    let expires = interview.ends_at().max(at + 86_400);
    queue_all(state, tx, interview, &people, sequence, expires).await
}

/// A candidate's invite was issued again (`link`): her invitation is sent anew with it, the
/// calendar entry updated to carry it.
pub async fn reissued(
    state: &AppState,
    tx: &mut AnyConnection,
    interview: &InterviewRow,
    candidate: &ParticipantRow,
    link: &str,
) -> Result<(), ApiError> {
    let sequence = interviews::next_calendar_sequence(tx, &interview.id, None, now()).await?;
    if !state.mailer.enabled() {
        return Ok(());
    }
    let people = [(candidate, Occasion::Invited { link })];
    queue_all(state, tx, interview, &people, sequence, interview.ends_at()).await
}

/// Sends the reminders that come due and tells reviewers of finished recordings, every
/// [`REMINDERS_EVERY`], for as long as the server runs (nothing with email off). Each is claimed
/// by a conditional write in the transaction that queues its messages, so of several servers one
/// sends it; an interview scheduled later than a reminder's time gets none (its invitation was
/// just sent).
pub async fn send_reminders(state: AppState) {
    if !state.mailer.enabled() {
        return;
    }
    let mut tick = tokio::time::interval(REMINDERS_EVERY);
    loop {
        tick.tick().await;
        for reminder in [Reminder::Hour, Reminder::Day] {
            if let Err(err) = remind(&state, reminder).await {
                tracing::warn!(%err, "reminders not sent this time");
            }
        }
        if let Err(err) = announce_recordings(&state).await {
            tracing::warn!(%err, "finished recordings not announced this time");
        }
    }
}

/// Recordings that ended longer ago than this are marked told without a message (email was
/// off when they ended: a pile of old news helps nobody).
const ANNOUNCE_WITHIN_SECS: i64 = 86_400;

/// Tells each finished recording's reviewers it is ready to watch, once.
async fn announce_recordings(state: &AppState) -> Result<(), ApiError> {
    let pool = state.db.pool();
    let at = now();
    for (id, interview_id, ended_at) in crate::store::recordings::unannounced(pool, 50).await? {
        let Some(interview) = interviews::by_id(pool, &interview_id).await? else {
            continue;
        };
        let participants = interviews::participants(pool, &interview_id).await?;
        let mut tx = pool.begin().await?;
        if !crate::store::recordings::claim_announcement(&mut tx, &id, at).await? {
            continue;
        }
        if ended_at.unwrap_or(at) > at - ANNOUNCE_WITHIN_SECS {
            let zones = interviews::recipient_zones(&mut tx, &interview_id).await?;
            for reviewer in participants
                .iter()
                .filter(|p| p.role == "reviewer" && p.email.parse::<lettre::Address>().is_ok())
            {
                let content =
                    recording_ready(state, &interview, reviewer, zone_of(&zones, reviewer), &id);
                state
                    .mailer
                    .queue(
                        &mut *tx,
                        "recording_ready",
                        &reviewer.email,
                        &content,
                        Some(at + 30 * 86_400),
                    )
                    .await?;
            }
        }
        tx.commit().await?;
        state.mailer.wake();
    }
    Ok(())
}

/// "The recording of … is ready", with the player's link, for `reviewer` (in `zone`).
fn recording_ready(
    state: &AppState,
    interview: &InterviewRow,
    reviewer: &ParticipantRow,
    zone: Option<&str>,
    recording: &str,
) -> Content {
    let base = state
        .settings
        .public
        .base_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let link = format!("{base}/recordings/{recording}");
    let name = plain_name(&reviewer.display_name);
    let title = plain_name(&interview.title);
    let lead = format!(
        "The recording of the interview \"{title}\", {}, is ready for your review.",
        when(interview, zone)
    );
    Content {
        subject: format!("Recording ready: {title}"),
        text: format!("Hello {name},\n\n{lead}\n\nWatch it: {link}\n"),
        html: format!(
            "<!doctype html><html><body><p>Hello {},</p><p>{}</p>\
             <p><a href=\"{}\">Watch the recording</a></p></body></html>",
            html_escape(&name),
            html_escape(&lead),
            html_escape(&link)
        ),
        calendar: None,
    }
}

async fn remind(state: &AppState, reminder: Reminder) -> Result<(), ApiError> {
    let at = now();
    for (id, created_at, start) in interviews::reminders_due(state.db.pool(), reminder, at).await? {
        // One interview's trouble does not hold up the others' reminders.
        if let Err(err) = remind_one(state, reminder, &id, created_at, start, at).await {
            tracing::warn!(interview = %id, %err, "a reminder was not sent");
        }
    }
    Ok(())
}

async fn remind_one(
    state: &AppState,
    reminder: Reminder,
    id: &str,
    created_at: i64,
    start: i64,
    at: i64,
) -> Result<(), ApiError> {
    let mut tx = state.db.pool().begin().await?;
    if !interviews::claim_reminder(&mut tx, id, reminder, start, at).await? {
        return Ok(());
    }
    if created_at < start - reminder.before_secs() {
        let Some(interview) = interviews::by_id(&mut *tx, id).await? else {
            return Ok(());
        };
        let participants = interviews::participants(&mut *tx, id).await?;
        // Reviewers watch the recording later: the live interview is not theirs to attend.
        let people: Vec<(&ParticipantRow, Occasion<'_>)> = participants
            .iter()
            .filter(|p| p.role != "reviewer")
            .map(|p| (p, Occasion::Reminder(reminder)))
            .collect();
        let sequence = interviews::calendar_sequence(&mut tx, id).await?;
        // The day's reminder is no use once the hour's is due.
        let expires = match reminder {
            Reminder::Day => start - Reminder::Hour.before_secs(),
            Reminder::Hour => start,
        };
        queue_all(state, &mut tx, &interview, &people, sequence, expires).await?;
    }
    tx.commit().await?;
    state.mailer.wake();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interview() -> InterviewRow {
        InterviewRow {
            id: "i".into(),
            title: "Pairing".into(),
            // 2026-12-08 13:00 UTC.
            scheduled_start: 1_796_734_800,
            duration_minutes: 45,
            time_zone: "Europe/Berlin".into(),
            status: "scheduled".into(),
        }
    }

    #[test]
    fn times_are_written_in_the_recipients_zone_and_named() {
        let interview = interview();
        assert_eq!(
            when(&interview, Some("America/New_York")),
            "Tuesday 08 December 2026, 08:00 (America/New_York), 45 minutes"
        );
        assert_eq!(
            when(&interview, Some("Asia/Kolkata")),
            "Tuesday 08 December 2026, 18:30 (Asia/Kolkata), 45 minutes"
        );
        // No zone of their own, or one unknown here: the interview's.
        let own = "Tuesday 08 December 2026, 14:00 (Europe/Berlin), 45 minutes";
        assert_eq!(when(&interview, None), own);
        assert_eq!(when(&interview, Some("Mars/Olympus_Mons")), own);
    }

    #[test]
    fn a_recipients_zone_is_found_by_participant() {
        let person = |id: &str| ParticipantRow {
            id: id.into(),
            interview_id: "i".into(),
            email: format!("{id}@example.com"),
            display_name: id.into(),
            role: "candidate".into(),
            user_id: None,
            session_epoch: 0,
        };
        let zones = vec![
            ("a".to_owned(), Some("Asia/Tokyo".to_owned())),
            ("b".to_owned(), None),
        ];
        assert_eq!(zone_of(&zones, &person("a")), Some("Asia/Tokyo"));
        assert_eq!(zone_of(&zones, &person("b")), None);
        assert_eq!(zone_of(&zones, &person("c")), None);
    }
}
