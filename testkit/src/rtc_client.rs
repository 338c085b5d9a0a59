//! A typed client of the `/rtc` signaling socket, for the load tool, the fake participant and
//! tests that are not about the wire format itself: it sends `sightline_signaling::protocol`'s
//! [`ClientMessage`] and reads [`ServerMessage`], so a client and the server cannot disagree on
//! a message's shape. (Tests of the protocol as a client author writes it keep writing JSON.)

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use sightline_signaling::TrackSource;
use sightline_signaling::protocol::{
    ClientMessage, DeclaredTrack, PROTOCOL_VERSION, ServerMessage,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One participant's signaling connection.
pub struct RtcClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RtcClient {
    /// Connects to `url` (`ws://host/rtc/{room}`) and sends `join` with `token`; the server's
    /// `joined` (or error) is the first message [`RtcClient::recv`] returns.
    pub async fn join(url: &str, token: &str) -> Result<RtcClient> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let mut client = RtcClient { socket };
        client
            .send(&ClientMessage::Join {
                version: PROTOCOL_VERSION,
                token: token.to_owned(),
                resume_token: None,
            })
            .await?;
        Ok(client)
    }

    /// Sends `message`.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        let text = serde_json::to_string(message)?;
        self.socket.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Offers the publisher connection's `sdp`, whose m-lines carry `tracks` (mid, source).
    pub async fn publish(&mut self, sdp: String, tracks: &[(String, TrackSource)]) -> Result<()> {
        let tracks = tracks
            .iter()
            .map(|(mid, source)| DeclaredTrack {
                mid: mid.clone(),
                source: *source,
            })
            .collect();
        self.send(&ClientMessage::PublishOffer { sdp, tracks })
            .await
    }

    /// The next message; `None` once the server closed the socket.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        while let Some(frame) = self.socket.next().await {
            if let Some(message) = parse(frame?)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// A message that already arrived, without waiting (`None`: nothing there now).
    pub fn try_recv(&mut self) -> Result<Option<ServerMessage>> {
        while let Some(Some(frame)) = self.socket.next().now_or_never() {
            if let Some(message) = parse(frame?)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// Reads messages until `pick` takes one, for at most `within`; a server `error` first
    /// fails, unless `pick` takes it.
    pub async fn until<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.recv())
                .await
                .context("no such message in time")??
                .context("the server closed the socket")?;
            if let Some(picked) = pick(&message) {
                return Ok(picked);
            }
            if let ServerMessage::Error { code, message, .. } = message {
                bail!("server error {code}: {message}");
            }
        }
    }

    /// Says `leave` and closes the socket.
    pub async fn leave(mut self) -> Result<()> {
        self.send(&ClientMessage::Leave {}).await?;
        let _ = self.socket.close(None).await;
        Ok(())
    }
}

/// A text frame's message; other frames are nothing to the protocol.
fn parse(frame: Message) -> Result<Option<ServerMessage>> {
    let Message::Text(text) = frame else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("a server message this client does not read: {text}"))
}
