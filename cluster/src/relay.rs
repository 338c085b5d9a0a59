//! Sessions between two nodes: a node that holds a client's connection (the edge) carries it to
//! the node that hosts the client's room, over plain NATS subjects.
//!
//! The edge *dials* the host: a request on the host's subject for the [`Service`] it wants
//! (`sightline.node.{node}.dial` for signaling, `….dial.editor` for the shared editor) names a
//! fresh session id and carries the caller's request; the host answers it and, when it
//! accepts, the two exchange frames on `sightline.relay.{session}.up` (edge to host) and
//! `.down` (host to edge). Each direction numbers its frames and sends a keepalive while it
//! has nothing else to say. A missing number (NATS dropped a frame for a slow subscriber, or
//! the connection was lost) or a silence longer than the allowed one ends the session at both
//! ends: the client then resumes, as it does after any dropped connection, and loses nothing it
//! was told, because the room replays its state on resume.
//!
//! [`Sequencing`] is the numbering and the silence, without I/O; [`Link`] is what each end's
//! code holds: a sender and a receiver of typed messages, like any other channel.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ClusterError;
use crate::nats::Cluster;
use crate::node::NodeId;

/// Messages one end of a link may hold before the other end counts as too slow.
const LINK_QUEUE: usize = 256;
/// How long a dial waits for the host's answer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How far apart two nodes' clocks may be before a dial that is not late looks late.
const CLOCK_SKEW: Duration = Duration::from_secs(2);

/// What a dial asks a node for. Each service has a dial subject of its own, so each is taken
/// by its own code, with its own request type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A participant's signaling session (`/rtc`) in a room the node hosts.
    Rtc,
    /// A member's shared-editor socket on the document of a room the node hosts.
    Editor,
}

/// One frame on a relay subject.
#[derive(Debug, Serialize, Deserialize)]
struct Frame<T> {
    /// Numbered from 0 in each direction.
    seq: u64,
    body: Body<T>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Body<T> {
    Message(T),
    Keepalive,
    /// The sender ends the session.
    End,
}

/// The envelope of a dial: the session it opens and the caller's request.
#[derive(Debug, Serialize, Deserialize)]
struct DialEnvelope<R> {
    session: String,
    request: R,
    /// Unix milliseconds after which the dialling node has given up waiting for the answer
    /// (absent from nodes of earlier versions).
    #[serde(default)]
    deadline_ms: Option<u64>,
}

/// Why a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEnd {
    /// This end's code dropped its sender.
    Closed,
    /// The other end said so.
    Ended,
    /// A frame went missing.
    Gap,
    /// Nothing arrived for longer than the allowed silence.
    Silent,
    /// This end's code did not take its messages fast enough.
    Slow,
    /// NATS refused a frame or dropped the subscription.
    Nats,
}

/// Numbering of one link's two directions, and when the other end was last heard; no I/O.
#[derive(Debug)]
pub struct Sequencing {
    next_out: u64,
    next_in: u64,
    heard: Instant,
    silence: Duration,
}

impl Sequencing {
    /// A fresh link at `now`, ended after `silence` without a frame.
    pub fn new(now: Instant, silence: Duration) -> Self {
        Self {
            next_out: 0,
            next_in: 0,
            heard: now,
            silence,
        }
    }

    /// The number of the next frame to send.
    pub fn next_out(&mut self) -> u64 {
        let seq = self.next_out;
        self.next_out += 1;
        seq
    }

    /// Takes in frame `seq` at `now`: fine if it is the next one, a gap otherwise.
    pub fn receive(&mut self, seq: u64, now: Instant) -> Result<(), LinkEnd> {
        if seq != self.next_in {
            return Err(LinkEnd::Gap);
        }
        self.next_in += 1;
        self.heard = now;
        Ok(())
    }

    /// Whether the other end has been silent too long at `now`.
    pub fn silent(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.heard) > self.silence
    }
}

/// One end of a relayed session: `tx` sends to the other end (dropping it ends the session
/// after what was sent), `rx` receives from it (it ends when the session does).
#[derive(Debug)]
pub struct Link<In, Out> {
    /// To the other end.
    pub tx: mpsc::Sender<Out>,
    /// From the other end.
    pub rx: mpsc::Receiver<In>,
}

/// A node's answer to a dial, and the session it may have opened.
pub struct Dialed<Rep> {
    /// What the node answered.
    pub answer: Rep,
    pending: Pending,
}

impl<Rep> Dialed<Rep> {
    /// Opens this end of the session (when the answer says the node accepted).
    pub fn open<In, Out>(mut self) -> Link<In, Out>
    where
        In: DeserializeOwned + Send + 'static,
        Out: Serialize + Send + 'static,
    {
        let cluster = self.pending.cluster.clone();
        let session = self.pending.session.clone();
        match self.pending.inbound.take() {
            Some(inbound) => {
                cluster
                    .stats()
                    .relays_dialed
                    .fetch_add(1, Ordering::Relaxed);
                cluster.spawn_link(inbound, relay_subject(&session, Direction::Up))
            }
            // Not reachable (only `open` takes it), but a closed link is the honest answer.
            None => {
                let (tx, _) = mpsc::channel(1);
                let (_, rx) = mpsc::channel(1);
                Link { tx, rx }
            }
        }
    }
}

/// The edge's side of a dialed session before it is opened; dropped unopened, it tells the
/// node to end the session, in case the node opened one.
struct Pending {
    cluster: Cluster,
    session: String,
    inbound: Option<async_nats::Subscriber>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.inbound.take().is_none() {
            return;
        }
        let frame: Frame<()> = Frame {
            seq: 0,
            body: Body::End,
        };
        let (Ok(payload), Ok(runtime)) = (encode(&frame), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let client = self.cluster.client().clone();
        let subject = relay_subject(&self.session, Direction::Up);
        runtime.spawn(async move {
            let _ = client.publish(subject, payload).await;
        });
    }
}

/// A dial that reached this node: the caller's request, to be accepted or refused.
pub struct Dial<Req> {
    /// What the caller asks.
    pub request: Req,
    session: String,
    reply: Option<async_nats::Subject>,
    cluster: Cluster,
}

impl<Req> Dial<Req> {
    /// Accepts with answer `answer` and opens this end of the session.
    pub async fn accept<Rep, In, Out>(self, answer: &Rep) -> Result<Link<In, Out>, ClusterError>
    where
        Rep: Serialize,
        In: DeserializeOwned + Send + 'static,
        Out: Serialize + Send + 'static,
    {
        let inbound = self
            .cluster
            .client()
            .subscribe(relay_subject(&self.session, Direction::Up))
            .await
            .map_err(|err| ClusterError::nats("opening a relayed session", err))?;
        let link = self
            .cluster
            .spawn_link(inbound, relay_subject(&self.session, Direction::Down));
        if let Some(reply) = self.reply {
            // The subscription above goes out first on this connection, so the caller's first
            // frame cannot overtake it.
            self.cluster
                .client()
                .publish(reply, encode(answer)?)
                .await
                .map_err(|err| ClusterError::nats("answering a dial", err))?;
        }
        self.cluster
            .stats()
            .relays_accepted
            .fetch_add(1, Ordering::Relaxed);
        Ok(link)
    }

    /// Refuses with answer `answer`; no session opens.
    pub async fn refuse<Rep: Serialize>(self, answer: &Rep) {
        if let (Some(reply), Ok(payload)) = (self.reply, encode(answer)) {
            let _ = self.cluster.client().publish(reply, payload).await;
        }
    }
}

/// The dials reaching this node, in order.
pub struct Dials<Req> {
    subscription: async_nats::Subscriber,
    cluster: Cluster,
    request: PhantomData<fn() -> Req>,
}

impl<Req: DeserializeOwned> Dials<Req> {
    /// The next dial; `None` when the subscription ended. A dial this version cannot read is
    /// skipped (its caller times out), and so is one that arrives after its caller gave up.
    pub async fn next(&mut self) -> Option<Dial<Req>> {
        loop {
            let message = self.subscription.next().await?;
            match serde_json::from_slice::<DialEnvelope<Req>>(&message.payload) {
                // The dialling node gave up on it (it waited in a queue here): accepting it
                // would admit someone into a session nobody holds.
                Ok(envelope)
                    if envelope.deadline_ms.is_some_and(|deadline| {
                        unix_ms() > deadline.saturating_add(CLOCK_SKEW.as_millis() as u64)
                    }) =>
                {
                    tracing::info!(subject = %message.subject, "a dial that came too late was dropped");
                }
                // A dial nobody waits for the answer of would open a session into nowhere.
                Ok(envelope) if valid_session(&envelope.session) && message.reply.is_some() => {
                    return Some(Dial {
                        request: envelope.request,
                        session: envelope.session,
                        reply: message.reply,
                        cluster: self.cluster.clone(),
                    });
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(subject = %message.subject, "an unreadable dial was skipped");
                }
            }
        }
    }
}

impl Cluster {
    /// Starts taking dials to this node for `service`.
    pub async fn listen<Req>(&self, service: Service) -> Result<Dials<Req>, ClusterError> {
        let subscription = self
            .subscribe_in_effect(dial_subject(self.node(), service), "listening for dials")
            .await?;
        Ok(Dials {
            subscription,
            cluster: self.clone(),
            request: PhantomData,
        })
    }

    /// Dials `node`'s `service` with `request` and gives the node's answer; [`Dialed::open`] then opens
    /// this end of the session when the answer says the node accepted. A dial given up after
    /// the request went out (no answer in time, an unreadable answer, or a [`Dialed`] dropped
    /// unopened) tells the node to end its end, in case it accepted.
    pub async fn dial<Req, Rep>(
        &self,
        node: &NodeId,
        service: Service,
        request: Req,
    ) -> Result<Dialed<Rep>, ClusterError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
    {
        let session = session_id()?;
        let payload = encode(&DialEnvelope {
            session: session.clone(),
            request,
            deadline_ms: Some(unix_ms().saturating_add(DIAL_TIMEOUT.as_millis() as u64)),
        })?;
        // Subscribed before the dial, so the host's first frame finds us listening.
        let inbound = self
            .client()
            .subscribe(relay_subject(&session, Direction::Down))
            .await
            .map_err(|err| ClusterError::nats("opening a relayed session", err))?;
        let mut pending = Pending {
            cluster: self.clone(),
            session,
            inbound: Some(inbound),
        };
        let answer = tokio::time::timeout(
            DIAL_TIMEOUT,
            self.client().request(dial_subject(node, service), payload),
        )
        .await;
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            // Nobody listens: nothing was opened anywhere.
            Ok(Err(err)) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => {
                pending.inbound = None;
                return Err(ClusterError::nats("dialing a node", err));
            }
            Ok(Err(err)) => return Err(ClusterError::nats("dialing a node", err)),
            Err(_) => return Err(ClusterError::nats("dialing a node", "no answer in time")),
        };
        let answer: Rep = decode("dial answer", &answer.payload)?;
        Ok(Dialed { answer, pending })
    }

    /// Runs one end of a session: frames from `inbound` become messages on the link's
    /// receiver, messages from its sender become frames on `outbound`.
    fn spawn_link<In, Out>(
        &self,
        inbound: async_nats::Subscriber,
        outbound: String,
    ) -> Link<In, Out>
    where
        In: DeserializeOwned + Send + 'static,
        Out: Serialize + Send + 'static,
    {
        let (tx, outgoing) = mpsc::channel(LINK_QUEUE);
        let (incoming, rx) = mpsc::channel(LINK_QUEUE);
        let cluster = self.clone();
        tokio::spawn(async move {
            cluster.stats().relays_open.fetch_add(1, Ordering::Relaxed);
            let end = pump(&cluster, inbound, &outbound, outgoing, incoming).await;
            cluster.stats().relays_open.fetch_sub(1, Ordering::Relaxed);
            match end {
                LinkEnd::Closed | LinkEnd::Ended => {}
                other => {
                    cluster
                        .stats()
                        .relays_broken
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(subject = %outbound, reason = ?other, "a relayed session broke");
                }
            }
        });
        Link { tx, rx }
    }
}

/// Moves one end's frames until the session ends, and says why it did.
async fn pump<In, Out>(
    cluster: &Cluster,
    mut inbound: async_nats::Subscriber,
    outbound: &str,
    mut outgoing: mpsc::Receiver<Out>,
    incoming: mpsc::Sender<In>,
) -> LinkEnd
where
    In: DeserializeOwned,
    Out: Serialize,
{
    let (keepalive_every, silence) = cluster.relay_timing();
    let mut sequencing = Sequencing::new(Instant::now(), silence);
    let mut tick = tokio::time::interval(keepalive_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = cluster.client().clone();
    let send = |sequencing: &mut Sequencing, body: Body<&Out>| {
        let frame = Frame {
            seq: sequencing.next_out(),
            body,
        };
        let payload = encode(&frame);
        let client = client.clone();
        let subject = outbound.to_owned();
        async move {
            match payload {
                Ok(payload) => client.publish(subject, payload).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    let end = loop {
        // Frames already here are taken before the silence is judged: after a stall of this
        // process, what arrived meanwhile counts.
        tokio::select! {
            biased;
            frame = inbound.next() => {
                let Some(frame) = frame else { break LinkEnd::Nats };
                let Ok(frame) = serde_json::from_slice::<Frame<In>>(&frame.payload) else {
                    // Unreadable counts as missing: the numbering cannot go on.
                    break LinkEnd::Gap;
                };
                if let Err(end) = sequencing.receive(frame.seq, Instant::now()) {
                    break end;
                }
                match frame.body {
                    Body::Message(message) => {
                        if incoming.try_send(message).is_err() {
                            break LinkEnd::Slow;
                        }
                    }
                    Body::Keepalive => {}
                    Body::End => break LinkEnd::Ended,
                }
            },
            message = outgoing.recv() => match message {
                Some(message) => {
                    if !send(&mut sequencing, Body::Message(&message)).await {
                        break LinkEnd::Nats;
                    }
                }
                None => break LinkEnd::Closed,
            },
            _ = tick.tick() => {
                if sequencing.silent(Instant::now()) {
                    break LinkEnd::Silent;
                }
                if !send(&mut sequencing, Body::Keepalive).await {
                    break LinkEnd::Nats;
                }
            }
        }
    };
    if end != LinkEnd::Ended {
        // Best effort: the other end stops at once instead of after a silence.
        let _ = send(&mut sequencing, Body::End).await;
    }
    let _ = inbound.unsubscribe().await;
    end
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

fn dial_subject(node: &NodeId, service: Service) -> String {
    match service {
        // The subject nodes of earlier versions listen on.
        Service::Rtc => format!("sightline.node.{node}.dial"),
        Service::Editor => format!("sightline.node.{node}.dial.editor"),
    }
}

fn relay_subject(session: &str, direction: Direction) -> String {
    let direction = match direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    format!("sightline.relay.{session}.{direction}")
}

/// A fresh session id: 128 random bits in hex, a valid single subject token.
fn session_id() -> Result<String, ClusterError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| ClusterError::nats("drawing a session id", err))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a session id from a dial is one we would draw (it becomes part of a subject).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn valid_session(session: &str) -> bool {
    session.len() == 32 && session.bytes().all(|b| b.is_ascii_hexdigit())
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ClusterError::Corrupt {
            what: "relayed message",
            message: err.to_string(),
        })
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(bytes).map_err(|err| ClusterError::Corrupt {
        what,
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_in_order_only() {
        let start = Instant::now();
        let mut seq = Sequencing::new(start, Duration::from_secs(3));
        assert_eq!(seq.next_out(), 0);
        assert_eq!(seq.next_out(), 1);
        assert_eq!(seq.receive(0, start), Ok(()));
        assert_eq!(seq.receive(1, start), Ok(()));
        assert_eq!(seq.receive(3, start), Err(LinkEnd::Gap), "2 went missing");
        let mut replayed = Sequencing::new(start, Duration::from_secs(3));
        assert_eq!(replayed.receive(0, start), Ok(()));
        assert_eq!(replayed.receive(0, start), Err(LinkEnd::Gap), "a repeat");
    }

    #[test]
    fn silence_is_counted_from_the_last_frame() {
        let start = Instant::now();
        let mut seq = Sequencing::new(start, Duration::from_secs(3));
        assert!(!seq.silent(start + Duration::from_secs(3)));
        assert!(seq.silent(start + Duration::from_secs(4)));
        assert_eq!(seq.receive(0, start + Duration::from_secs(2)), Ok(()));
        assert!(!seq.silent(start + Duration::from_secs(4)));
        assert!(seq.silent(start + Duration::from_millis(5100)));
    }

    #[test]
    fn session_ids_are_subject_tokens() {
        let id = session_id().expect("randomness");
        assert!(valid_session(&id), "{id}");
        assert_ne!(id, session_id().expect("randomness"));
        assert!(!valid_session("a.b"));
        assert!(!valid_session("*"));
        assert!(!valid_session(""));
    }

    #[test]
    fn frames_read_back_as_written() {
        let frame = Frame {
            seq: 7,
            body: Body::Message("hello".to_owned()),
        };
        let bytes = encode(&frame).expect("encodes");
        let read: Frame<String> = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!(read.seq, 7);
        assert!(matches!(read.body, Body::Message(ref m) if m == "hello"));
        let keepalive: Frame<String> =
            serde_json::from_slice(br#"{"seq":1,"body":"keepalive"}"#).expect("decodes");
        assert!(matches!(keepalive.body, Body::Keepalive));
    }
}
