//! Calendar invitations (iCalendar, RFC 5545), sans-IO: one event per interview, written as a
//! calendar with `METHOD:REQUEST` (new or changed) or `METHOD:CANCEL`. Every message about one
//! interview carries the same `UID` and a `SEQUENCE` the interview raises on each change, so a
//! calendar updates or removes the entry it already has instead of adding another.
//!
//! Written here rather than with a calendar crate: the ones kept up build on `chrono`, a second
//! time library beside `jiff`, for the dozen properties one event needs.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// What a calendar message asks of the calendar that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Add the event, or update the one with the same `UID` to this `SEQUENCE`.
    Request,
    /// Remove it.
    Cancel,
}

impl Method {
    /// As the `METHOD` property and the MIME type's `method` parameter write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// One interview as a calendar event, for one attendee.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// Stable across every message about this interview.
    pub uid: &'a str,
    /// Raised by each change of the interview.
    pub sequence: i64,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds.
    pub end: i64,
    /// The title.
    pub summary: &'a str,
    /// Plain text.
    pub description: &'a str,
    /// Where to open it.
    pub url: Option<&'a str>,
    /// The sender's address.
    pub organizer: &'a str,
    /// The recipient's address.
    pub attendee: &'a str,
    /// Whether the recipient attends (a reviewer watches the recording later: the event is
    /// theirs to know of, not to block their time).
    pub attends: bool,
    /// When this message was made (unix seconds).
    pub stamp: i64,
}

/// The calendar (`text/calendar` content, CRLF line ends) for `invitation` with `method`.
pub fn ics(method: Method, invitation: &Invitation<'_>) -> String {
    let status = match method {
        Method::Request => "CONFIRMED",
        Method::Cancel => "CANCELLED",
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "PRODID:-//Sightline//Interviews//EN".to_owned(),
        "VERSION:2.0".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{}", method.as_str()),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", text(invitation.uid)),
        format!("SEQUENCE:{}", invitation.sequence.max(0)),
        format!("DTSTAMP:{}", utc(invitation.stamp)),
        format!("DTSTART:{}", utc(invitation.start)),
        format!("DTEND:{}", utc(invitation.end)),
        format!("SUMMARY:{}", text(invitation.summary)),
        format!("DESCRIPTION:{}", text(invitation.description)),
    ];
    if let Some(url) = invitation.url {
        lines.push(format!("URL:{}", uri(url)));
    }
    lines.push(format!("ORGANIZER:mailto:{}", uri(invitation.organizer)));
    let (role, transparency) = if invitation.attends {
        ("REQ-PARTICIPANT", "OPAQUE")
    } else {
        ("NON-PARTICIPANT", "TRANSPARENT")
    };
    lines.push(format!(
        "ATTENDEE;ROLE={role};PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:{}",
        uri(invitation.attendee)
    ));
    lines.push(format!("STATUS:{status}"));
    lines.push(format!("TRANSP:{transparency}"));
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for line in lines {
        fold(&line, &mut out);
    }
    out
}

/// A UTC date-time (`20261208T130000Z`); the epoch for a time out of range.
fn utc(secs: i64) -> String {
    Timestamp::from_second(secs)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(TimeZone::UTC)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// A TEXT value (RFC 5545 3.3.11): backslashes, semicolons, commas and line breaks escaped,
/// other control characters but tab dropped.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A URI or CAL-ADDRESS value: taken as it is (no TEXT escaping), control characters dropped.
fn uri(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// Appends `line` folded at 75 octets (RFC 5545 3.1: CRLF and a space, never inside a
/// character), ending in CRLF.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation<'a>(summary: &'a str, description: &'a str) -> Invitation<'a> {
        Invitation {
            uid: "0193-abc@sightline.example",
            sequence: 2,
            start: 1_796_734_800,
            end: 1_796_738_400,
            summary,
            description,
            url: Some("https://sightline.example/interviews/0193-abc"),
            organizer: "no-reply@sightline.example",
            attendee: "cas@example.com",
            attends: true,
            stamp: 1_796_000_000,
        }
    }

    /// Unfolds and splits a calendar into its logical lines.
    fn lines(ics: &str) -> Vec<String> {
        ics.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_request_names_the_event_its_times_and_its_people() {
        let ics = ics(Method::Request, &invitation("Coding round", "Join here"));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert!(!ics.replace("\r\n", "").contains('\n'), "CRLF only");
        let lines = lines(&ics);
        for expected in [
            "METHOD:REQUEST",
            "UID:0193-abc@sightline.example",
            "SEQUENCE:2",
            "DTSTART:20261208T130000Z",
            "DTEND:20261208T140000Z",
            "SUMMARY:Coding round",
            "STATUS:CONFIRMED",
            "ORGANIZER:mailto:no-reply@sightline.example",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected} in {lines:?}"
            );
        }
        let watcher = super::ics(
            Method::Request,
            &Invitation {
                attends: false,
                ..invitation("Coding round", "x")
            },
        );
        assert!(
            watcher.contains("ROLE=NON-PARTICIPANT") && watcher.contains("TRANSP:TRANSPARENT\r\n")
        );
        let cancel = super::ics(Method::Cancel, &invitation("Coding round", "x"));
        assert!(cancel.contains("METHOD:CANCEL\r\n") && cancel.contains("STATUS:CANCELLED\r\n"));
    }

    #[test]
    fn text_is_escaped_and_long_lines_fold_between_characters() {
        let long = "Ünïcödé, with; commas\\ and\nbreaks ".repeat(6);
        let ics = ics(Method::Request, &invitation("A; B, C", &long));
        for physical in ics.split("\r\n") {
            assert!(
                physical.len() <= 75,
                "{} octets: {physical:?}",
                physical.len()
            );
        }
        let lines = lines(&ics);
        assert!(
            lines.iter().any(|l| l == "SUMMARY:A\\; B\\, C"),
            "{lines:?}"
        );
        let description = lines
            .iter()
            .find(|l| l.starts_with("DESCRIPTION:"))
            .expect("a description");
        assert!(description.contains("Ünïcödé\\, with\\; commas\\\\ and\\nbreaks"));
    }
}
