//! `sightline-fake-participant`: a participant that is not a browser. It signs in to a running
//! Sightline, joins an interview's room and publishes real media (an Opus tone and a moving test
//! pattern in three VP8 simulcast layers, from `sightline-testkit`) for a while, then leaves.
//!
//! The browser tests use it to check that browsers decode what our test clients send; it is also
//! a way to try a room alone. The password comes from the environment, never the command line,
//! so it does not show in process listings.
//!
//! ```sh
//! SIGHTLINE_FAKE_PASSWORD=... sightline-fake-participant --base http://127.0.0.1:8080 \
//!     --email bot@example.com --interview INTERVIEW_ID --seconds 60
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use sightline_benches::post;
use sightline_signaling::TrackSource;
use sightline_signaling::protocol::ServerMessage;
use sightline_testkit::{MediaPublisher, RtcClient, UdpPeer, media};
use str0m::change::SdpAnswer;

/// Joins a room and publishes real media.
#[derive(Debug, Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    base: String,
    /// The account to sign in with (an interviewer or candidate of the interview).
    #[arg(long)]
    email: String,
    /// Its password.
    #[arg(long, env = "SIGHTLINE_FAKE_PASSWORD", hide_env_values = true)]
    password: String,
    /// The interview whose room to join.
    #[arg(long)]
    interview: String,
    /// How long to stay (at most an hour).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let media = media()?;
    let client = reqwest::Client::new();
    let base = args.base.trim_end_matches('/');
    let session = post(
        &client,
        format!("{base}/api/auth/login"),
        json!({ "email": args.email, "password": args.password }),
        None,
    )
    .await?;
    let access = session["access_token"]
        .as_str()
        .context("an access token")?;
    let grant = post(
        &client,
        format!("{base}/api/interviews/{}/join", args.interview),
        json!({}),
        Some(access),
    )
    .await?;
    let room = grant["room"].as_str().context("a room")?;
    let token = grant["token"].as_str().context("a join token")?;
    let ws_base = base.replacen("http", "ws", 1);
    let mut ws = RtcClient::join(&format!("{ws_base}/rtc/{room}"), token).await?;
    let (mut publisher, offer) = MediaPublisher::new(true).await?;
    ws.publish(
        offer.to_sdp_string(),
        &[
            (publisher.audio.to_string(), TrackSource::Microphone),
            (publisher.video.to_string(), TrackSource::Camera),
        ],
    )
    .await?;

    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut events = Vec::new();
    let mut connected = false;
    while Instant::now() < until {
        // Only what is already there: a zero timeout would wait for tokio's next timer tick
        // (about a millisecond) whenever nothing is.
        while let Some(message) = ws.try_recv()? {
            match message {
                ServerMessage::PublishAnswer { sdp } => {
                    publisher.accept_answer(SdpAnswer::from_sdp_string(&sdp)?)?;
                }
                ServerMessage::Error { code, message, .. } => {
                    bail!("the server refused ({code}): {message}")
                }
                ServerMessage::Removed { reason } => bail!("removed from the room: {reason:?}"),
                _ => {}
            }
        }
        if connected {
            publisher.send_due(media, Instant::now())?;
        }
        publisher.peer.step(&mut events).await?;
        connected |= UdpPeer::connected(&events);
        // Keyframe requests get a keyframe at once, as from a browser.
        for event in &events {
            publisher.handle_event(event);
        }
        events.clear();
    }
    ws.leave().await?;
    Ok(())
}
