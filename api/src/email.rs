//! Email: messages are written to the outbox (`store/outbox.rs`) in the same moment as what
//! caused them, and a sender task delivers them through the configured SMTP server (`lettre`).
//!
//! The sender claims one due message at a time (a claim lapses after [`CLAIM_SECS`], longer than
//! a delivery may take, so a server that dies mid-send leaves the message to the next try),
//! hands it to the SMTP server as it was stored (its `Message-ID` fixed, so a message retried
//! after an answer that was lost can be recognised as the same), and marks it sent, or retries it
//! with backoff (`email.retry_secs`, doubling, at most an hour apart) until `email.max_attempts`,
//! when it is marked failed for admins to see. Only the claim's holder marks it. A message that
//! expires unsent (a reset link past its validity) is not sent. Once sent, failed or expired, a
//! message's content is emptied (a reset link in it does not stay in the database), and the row
//! goes after [`KEEP_SECS`]. A restart loses nothing: what was not marked sent is sent again.
//!
//! With no SMTP server configured (the embedded default) nothing is queued: callers ask
//! [`Mailer::enabled`] and show links to copy instead.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sightline_config::EmailSettings;
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::store::{Db, new_id, outbox};

/// How long a claim on a message lasts (longer than one delivery may take).
const CLAIM_SECS: i64 = 120;
/// How long one delivery may take, connection and answer included.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the outbox is looked at when nothing wakes the sender.
const POLL: Duration = Duration::from_secs(5);
/// How often expired messages are marked and old rows forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How long a sent or failed message's row stays for admins.
const KEEP_SECS: i64 = 30 * 86_400;
/// The longest wait between two attempts at one message.
const MAX_BACKOFF_SECS: i64 = 3600;

/// A message's content: a subject, a plain-text body and the same as HTML, and a calendar
/// invitation for some.
#[derive(Debug, Clone)]
pub struct Content {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// An iCalendar (`crate::calendar::ics`) and its method: sent as a third alternative
    /// (`text/calendar; method=…`, what calendar-aware clients act on) and as `invite.ics`.
    pub calendar: Option<(crate::calendar::Method, String)>,
}

/// Queues email and sends it; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// `None`: email is off.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    max_attempts: i64,
    retry_secs: i64,
    wake: Notify,
}

impl Mailer {
    /// A mailer for `settings`, its outbox in `db`. The SMTP URL is checked here (and never
    /// written into an error or a log).
    pub fn new(settings: &EmailSettings, db: Db) -> Result<Mailer, ApiError> {
        let transport = match &settings.smtp_url {
            Some(url) if settings.enabled() => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| {
                        ApiError::Internal(
                            "email.smtp_url is not an SMTP URL lettre can use".to_owned(),
                        )
                    })?
                    .timeout(Some(SEND_TIMEOUT / 2))
                    .build(),
            ),
            _ => None,
        };
        let from: Mailbox = settings.from.trim().parse().map_err(|err| {
            ApiError::Internal(format!("email.from is not a mailbox address: {err}"))
        })?;
        Ok(Mailer {
            inner: Arc::new(Inner {
                db,
                transport,
                from,
                max_attempts: i64::from(settings.max_attempts),
                retry_secs: i64::from(settings.retry_secs),
                wake: Notify::new(),
            }),
        })
    }

    /// Whether email is sent at all.
    pub fn enabled(&self) -> bool {
        self.inner.transport.is_some()
    }

    /// The address messages come from (a calendar event's organizer).
    pub fn sender_address(&self) -> String {
        self.inner.from.email.to_string()
    }

    /// Writes a `kind` message with `content` to `to` into the outbox through `executor` (the
    /// caller's transaction, when it has one), not to be sent after `expires_at` (Unix
    /// seconds), if given; [`Mailer::wake`] once that is committed.
    pub async fn queue<'c>(
        &self,
        executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
        kind: &str,
        to: &str,
        content: &Content,
        expires_at: Option<i64>,
    ) -> Result<(), ApiError> {
        let recipient: Address = to
            .parse()
            .map_err(|_| ApiError::Internal("an email recipient is not an address".into()))?;
        let id = new_id();
        let host = self.inner.from.email.domain().to_owned();
        let body = match &content.calendar {
            None => MultiPart::alternative_plain_html(content.text.clone(), content.html.clone()),
            Some((method, ics)) => {
                let calendar_type = |base: &str| {
                    ContentType::parse(&format!(
                        "{base}; charset=utf-8; method={}",
                        method.as_str()
                    ))
                    .map_err(|err| ApiError::Internal(format!("a calendar type: {err}")))
                };
                MultiPart::mixed()
                    .multipart(
                        MultiPart::alternative()
                            .singlepart(SinglePart::plain(content.text.clone()))
                            .singlepart(SinglePart::html(content.html.clone()))
                            .singlepart(
                                SinglePart::builder()
                                    .header(calendar_type("text/calendar")?)
                                    .body(ics.clone()),
                            ),
                    )
                    .singlepart(
                        Attachment::new("invite.ics".to_owned())
                            .body(ics.clone(), calendar_type("application/ics")?),
                    )
            }
        };
        let message = Message::builder()
            .message_id(Some(format!("<{id}@{host}>")))
            .from(self.inner.from.clone())
            .to(Mailbox::new(None, recipient))
            .subject(content.subject.clone())
            .multipart(body)
            .map_err(|err| ApiError::Internal(format!("building an email: {err}")))?;
        let formatted = String::from_utf8(message.formatted())
            .map_err(|_| ApiError::Internal("an email that is not text".into()))?;
        outbox::insert(
            executor,
            &outbox::NewMessage {
                id: &id,
                kind,
                recipient: to,
                subject: &content.subject,
                message: &formatted,
                expires_at,
            },
        )
        .await?;
        Ok(())
    }

    /// Tells the sender something was queued.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Sends what the outbox holds until `stop` (nothing, with email off); a delivery under way
    /// when it stops is finished first.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let Some(transport) = self.inner.transport.clone() else {
            return;
        };
        let pool = self.inner.db.pool();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        while !stop.is_cancelled() {
            let next = match outbox::claim_next(pool, CLAIM_SECS).await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(%err, "the outbox cannot be read; trying again");
                    None
                }
            };
            match next {
                Some(message) => self.deliver(&transport, message).await,
                None => {
                    tokio::select! {
                        () = self.inner.wake.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                        _ = sweep.tick() => {
                            if let Err(err) = outbox::sweep(pool, KEEP_SECS).await {
                                tracing::warn!(%err, "the outbox was not swept");
                            }
                        }
                        () = stop.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn deliver(&self, transport: &AsyncSmtpTransport<Tokio1Executor>, message: outbox::Due) {
        let pool = self.inner.db.pool();
        let sent = match message.recipient.parse::<Address>() {
            Ok(to) => {
                let envelope =
                    lettre::address::Envelope::new(Some(self.inner.from.email.clone()), vec![to]);
                match envelope {
                    // lettre's own timeout covers connecting only: this one, a server that
                    // accepts and then says nothing.
                    Ok(envelope) => match tokio::time::timeout(
                        SEND_TIMEOUT,
                        transport.send_raw(&envelope, message.message.as_bytes()),
                    )
                    .await
                    {
                        Ok(sent) => sent.map(|_| ()).map_err(|err| describe(&err)),
                        Err(_) => Err("no answer in time".to_owned()),
                    },
                    Err(err) => Err(format!("no envelope: {err}")),
                }
            }
            Err(err) => Err(format!("not an address: {err}")),
        };
        let marked = match sent {
            Ok(()) => {
                tracing::info!(message = %message.id, "email sent");
                outbox::sent(pool, &message).await
            }
            Err(error) => {
                let attempts = message.attempts + 1;
                let retry_at = (attempts < self.inner.max_attempts)
                    .then(|| crate::store::now() + backoff(self.inner.retry_secs, attempts));
                match retry_at {
                    Some(_) => {
                        tracing::warn!(message = %message.id, attempts, %error, "email not sent; trying again later")
                    }
                    None => {
                        tracing::error!(message = %message.id, attempts, %error, "email not sent; given up")
                    }
                }
                outbox::attempt_failed(pool, &message, &error, retry_at).await
            }
        };
        if let Err(err) = marked {
            // The claim lapses and the message is tried again.
            tracing::error!(message = %message.id, %err, "the outbox was not updated");
        }
    }
}

/// Seconds before attempt `attempts + 1`: `base`, doubling, at most an hour (email and
/// webhook deliveries alike).
pub(crate) fn backoff(base: i64, attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.max(1)
        .saturating_mul(1_i64 << doublings)
        .min(MAX_BACKOFF_SECS)
}

/// An SMTP failure in words for admins: what went wrong, never a credential (lettre's errors
/// carry the server's answer, not the URL).
fn describe(err: &lettre::transport::smtp::Error) -> String {
    let kind = if err.is_transient() {
        "the server refused for now"
    } else if err.is_permanent() {
        "the server refused"
    } else if err.is_timeout() {
        "no answer in time"
    } else {
        "could not reach the server"
    };
    let detail: String = err.to_string().chars().take(300).collect();
    format!("{kind}: {detail}")
}

/// Escapes `text` for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name people typed, fit for a message's text: control characters (line breaks that could
/// make up paragraphs of their own) become spaces, and it is cut at 100 characters.
pub(crate) fn plain_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The password reset message for `name`, with `link`, valid `minutes`.
pub fn password_reset(name: &str, link: &str, minutes: u32) -> Content {
    let subject = "Reset your Sightline password".to_owned();
    let name = plain_name(name);
    let text = format!(
        "Hello {name},\n\n\
         Someone asked to reset the password of your Sightline account. To choose a new one, \
         open this link within {minutes} minutes:\n\n{link}\n\n\
         The link works once. Setting a new password signs you out everywhere.\n\n\
         If you did not ask, ignore this message: your password stays as it is.\n"
    );
    let (name, link) = (html_escape(&name), html_escape(link));
    let html = format!(
        "<!doctype html><html><body><p>Hello {name},</p>\
         <p>Someone asked to reset the password of your Sightline account. To choose a new one, \
         open this link within {minutes} minutes:</p>\
         <p><a href=\"{link}\">Choose a new password</a></p>\
         <p>The link works once. Setting a new password signs you out everywhere.</p>\
         <p>If you did not ask, ignore this message: your password stays as it is.</p>\
         </body></html>"
    );
    Content {
        subject,
        text,
        html,
        calendar: None,
    }
}

/// The message that confirms `name`'s address with `link`, valid `hours`.
pub fn email_verification(name: &str, link: &str, hours: i64) -> Content {
    let subject = "Confirm your email address for Sightline".to_owned();
    let name = plain_name(name);
    let text = format!(
        "Hello {name},\n\n\
         Please confirm that this is your address by opening this link within {hours} hours:\n\n\
         {link}\n\n\
         If you did not create a Sightline account, ignore this message.\n"
    );
    let (name, link) = (html_escape(&name), html_escape(link));
    let html = format!(
        "<!doctype html><html><body><p>Hello {name},</p>\
         <p>Please confirm that this is your address by opening this link within {hours} \
         hours:</p><p><a href=\"{link}\">Confirm my address</a></p>\
         <p>If you did not create a Sightline account, ignore this message.</p></body></html>"
    );
    Content {
        subject,
        text,
        html,
        calendar: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_by_doubling_up_to_an_hour() {
        assert_eq!(backoff(30, 1), 30);
        assert_eq!(backoff(30, 2), 60);
        assert_eq!(backoff(30, 3), 120);
        assert_eq!(backoff(30, 9), 3600);
        assert_eq!(backoff(30, 1000), 3600);
        assert_eq!(backoff(0, 1), 1);
    }

    #[test]
    fn a_reset_message_escapes_what_people_typed() {
        let content = password_reset("<b>Eve</b>", "https://x.test/reset-password#t", 30);
        assert!(content.text.contains("<b>Eve</b>"));
        assert!(content.html.contains("&lt;b&gt;Eve&lt;/b&gt;"));
        assert!(!content.html.contains("<b>Eve"));
        assert!(content.text.contains("30 minutes"));
        let forged = password_reset(
            "Eve\n\nYour account is locked: call us",
            "https://x.test/r",
            30,
        );
        assert!(
            forged.text.starts_with("Hello Eve  Your account is locked"),
            "{}",
            forged.text
        );
    }
}
