//! The two ends of a link: a node's [`Listener`], which hands each worker's connection to the
//! job that expects its token, and a worker's [`Dialer`].

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quinn::{Connection, Endpoint, RecvStream, SendStream, TransportConfig, VarInt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_sfu::{TapPacket, TrackId};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::error::LinkError;
use crate::frame::{self, Epoch, TakeHeader};
use crate::tls::LinkTls;

/// How long a silent peer counts as there: keepalives go every second, so only a dead or
/// unreachable one is silent this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(1);
/// A connection must present its token this soon.
const HELLO_WITHIN: Duration = Duration::from_secs(5);
/// Largest control frame (a room's participants, a chat line, a proctoring snapshot).
const MAX_CONTROL_FRAME: usize = 256 * 1024;
/// Largest packet frame (an RTP payload is at most a datagram).
const MAX_PACKET_FRAME: usize = 16 * 1024;
/// Takes one connection may carry at once (an interview has at most a few dozen tracks).
const MAX_TAKES: u32 = 256;
/// Closing codes: the link's work is done; the node did not expect this connection.
const DONE: u32 = 0;
const REFUSED: u32 = 1;
/// The job has workers waiting already: try again later.
const BUSY: u32 = 2;

/// The secret a worker presents for one job: 256 random bits, URL-safe base64.
#[derive(Clone, PartialEq, Eq)]
pub struct JobToken(String);

impl JobToken {
    /// A new token.
    pub fn generate() -> Result<JobToken, LinkError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|err| LinkError::Endpoint(format!("drawing a job token: {err}")))?;
        Ok(JobToken(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// A token as received (in a job).
    pub fn new(token: String) -> JobToken {
        JobToken(token)
    }

    /// The token's text, to put in a job.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for JobToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobToken(..)")
    }
}

/// The first frame of a worker's connection.
#[derive(Serialize, Deserialize)]
struct Hello {
    token: String,
}

/// The node's answer: how old its link epoch is.
#[derive(Serialize, Deserialize)]
struct Welcome {
    epoch_age_us: u64,
}

fn transport() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport.keep_alive_interval(Some(KEEPALIVE));
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    transport.max_concurrent_bidi_streams(VarInt::from_u32(MAX_TAKES));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    Arc::new(transport)
}

fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec()
}

/// One direction of the control stream: typed JSON frames.
pub struct ControlSender<T> {
    frames: FramedWrite<SendStream, LengthDelimitedCodec>,
    kind: PhantomData<fn(T)>,
}

impl<T: Serialize> ControlSender<T> {
    /// Sends `message`; fails when the link is gone.
    pub async fn send(&mut self, message: &T) -> Result<(), LinkError> {
        let json = serde_json::to_vec(message).map_err(LinkError::protocol)?;
        self.frames
            .send(Bytes::from(json))
            .await
            .map_err(LinkError::connection)
    }
}

/// The other direction of the control stream.
pub struct ControlReceiver<T> {
    frames: FramedRead<RecvStream, LengthDelimitedCodec>,
    kind: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> ControlReceiver<T> {
    /// The next message; `None` when the other end closed its side.
    pub async fn recv(&mut self) -> Result<Option<T>, LinkError> {
        match self.frames.next().await {
            None => Ok(None),
            Some(Ok(frame)) => serde_json::from_slice(&frame)
                .map(Some)
                .map_err(LinkError::protocol),
            Some(Err(err)) => Err(LinkError::connection(err)),
        }
    }
}

/// Both directions of a link's control stream.
pub struct Control<Out, In> {
    /// What this end says.
    pub sender: ControlSender<Out>,
    /// What the other end says.
    pub receiver: ControlReceiver<In>,
}

impl<Out, In> Control<Out, In> {
    fn new(send: SendStream, recv: RecvStream) -> Self {
        Control {
            sender: ControlSender {
                frames: FramedWrite::new(send, codec(MAX_CONTROL_FRAME)),
                kind: PhantomData,
            },
            receiver: ControlReceiver {
                frames: FramedRead::new(recv, codec(MAX_CONTROL_FRAME)),
                kind: PhantomData,
            },
        }
    }

    /// The same stream with other message types (after the handshake). The framed reader is
    /// kept whole: it may already hold the next frames.
    fn retype<Out2, In2>(self) -> Control<Out2, In2> {
        Control {
            sender: ControlSender {
                frames: self.sender.frames,
                kind: PhantomData,
            },
            receiver: ControlReceiver {
                frames: self.receiver.frames,
                kind: PhantomData,
            },
        }
    }
}

/// Connections waiting for their job, by the SHA-256 of its token.
type Waiting = Arc<Mutex<HashMap<[u8; 32], mpsc::Sender<Accepted>>>>;

/// A worker's connection that presented an expected token, before it is typed.
struct Accepted {
    connection: Connection,
    control: Control<Welcome, Hello>,
}

/// A node's end: a QUIC endpoint workers connect to.
pub struct Listener {
    endpoint: Endpoint,
    waiting: Waiting,
    accepting: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Listens on `addr` (port 0 picks one) with this node's certificate; must be called
    /// within a tokio runtime.
    pub fn bind(addr: SocketAddr, tls: &LinkTls) -> Result<Listener, LinkError> {
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls.server()?));
        server.transport_config(transport());
        let endpoint = Endpoint::server(server, addr)
            .map_err(|err| LinkError::Endpoint(format!("binding {addr}: {err}")))?;
        let waiting = Waiting::default();
        let accepting = tokio::spawn(accept(endpoint.clone(), Arc::clone(&waiting)));
        Ok(Listener {
            endpoint,
            waiting,
            accepting,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.endpoint
            .local_addr()
            .map_err(|err| LinkError::Endpoint(err.to_string()))
    }

    /// A new job's token, and the connections that present it, control messages typed `Out`
    /// from this node and `In` from the worker. The token is valid until `Expected` is
    /// dropped.
    pub fn expect<Out, In>(&self) -> Result<(JobToken, Expected<Out, In>), LinkError> {
        let token = JobToken::generate()?;
        let digest = token.digest();
        // Two: a redelivered job's worker may connect before the old connection is seen gone.
        let (tx, rx) = mpsc::channel(2);
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(digest, tx);
        }
        let expected = Expected {
            digest,
            waiting: Arc::clone(&self.waiting),
            links: rx,
            kind: PhantomData,
        };
        Ok((token, expected))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accepting.abort();
        self.endpoint
            .close(VarInt::from_u32(DONE), b"the node is stopping");
    }
}

/// The connections of one job (see [`Listener::expect`]).
pub struct Expected<Out, In> {
    digest: [u8; 32],
    waiting: Waiting,
    links: mpsc::Receiver<Accepted>,
    kind: PhantomData<fn(Out) -> In>,
}

impl<Out, In> Expected<Out, In> {
    /// The next worker connection that presented this job's token.
    pub async fn next(&mut self) -> Option<HostLink<Out, In>> {
        let accepted = self.links.recv().await?;
        Some(HostLink {
            control: accepted.control.retype(),
            takes: TakeOpener {
                connection: accepted.connection,
            },
        })
    }
}

impl<Out, In> Drop for Expected<Out, In> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&self.digest);
        }
    }
}

async fn accept(endpoint: Endpoint, waiting: Waiting) {
    let epoch = link_epoch().0;
    while let Some(incoming) = endpoint.accept().await {
        let waiting = Arc::clone(&waiting);
        tokio::spawn(async move {
            if let Err(err) = handshake(incoming, waiting, epoch).await {
                tracing::info!(%err, "a worker's link connection was refused");
            }
        });
    }
}

/// Reads a connection's token and hands it to its job, or closes it.
async fn handshake(
    incoming: quinn::Incoming,
    waiting: Waiting,
    epoch: Instant,
) -> Result<(), LinkError> {
    // The TLS handshake: a worker without a certificate the CA signed ends here.
    let connection = incoming.await.map_err(LinkError::connection)?;
    let hello = async {
        let (send, recv) = connection
            .accept_bi()
            .await
            .map_err(LinkError::connection)?;
        let mut control: Control<Welcome, Hello> = Control::new(send, recv);
        let hello = control
            .receiver
            .recv()
            .await?
            .ok_or_else(|| LinkError::protocol("closed before its token"))?;
        Ok::<_, LinkError>((control, hello))
    };
    let (mut control, hello) = match tokio::time::timeout(HELLO_WITHIN, hello).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => {
            connection.close(VarInt::from_u32(REFUSED), b"no token");
            return Err(err);
        }
        Err(_) => {
            connection.close(VarInt::from_u32(REFUSED), b"no token in time");
            return Err(LinkError::protocol("no token in time"));
        }
    };
    let digest = JobToken::new(hello.token).digest();
    let job = waiting.lock().ok().and_then(|w| w.get(&digest).cloned());
    let Some(job) = job else {
        connection.close(VarInt::from_u32(REFUSED), b"no such job");
        return Err(LinkError::protocol("a token no job expects"));
    };
    // Room for it is taken before it is welcomed: a worker told welcome is one its job gets.
    let Ok(place) = job.try_reserve() else {
        connection.close(VarInt::from_u32(BUSY), b"the job has workers waiting");
        return Err(LinkError::protocol("a job with connections waiting"));
    };
    let age = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
    control.sender.send(&Welcome { epoch_age_us: age }).await?;
    let accepted = Accepted {
        connection: connection.clone(),
        control,
    };
    place.send(accepted);
    Ok(())
}

/// What a node has of one worker's connection.
pub struct HostLink<Out, In> {
    /// Control messages both ways.
    pub control: Control<Out, In>,
    /// Opens takes towards the worker.
    pub takes: TakeOpener,
}

/// Opens takes on a worker's connection.
#[derive(Clone)]
pub struct TakeOpener {
    connection: Connection,
}

impl TakeOpener {
    /// A new take: its stream, with `header` sent first.
    pub async fn open(&self, header: &TakeHeader) -> Result<TakeSender, LinkError> {
        let (send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(LinkError::connection)?;
        let mut frames = FramedWrite::new(send, codec(MAX_PACKET_FRAME));
        let json = serde_json::to_vec(header).map_err(LinkError::protocol)?;
        frames
            .send(Bytes::from(json))
            .await
            .map_err(LinkError::connection)?;
        Ok(TakeSender {
            frames,
            requests: FramedRead::new(recv, codec(1)),
        })
    }

    /// Resolves when the connection is gone (the worker closed it, died, or the network did).
    pub async fn closed(&self) -> String {
        self.connection.closed().await.to_string()
    }

    /// Closes the connection: the work is done.
    pub fn close(&self) {
        self.connection.close(VarInt::from_u32(DONE), b"done");
    }
}

/// The node's side of a take: packets out, keyframe requests in.
pub struct TakeSender {
    frames: FramedWrite<SendStream, LengthDelimitedCodec>,
    requests: FramedRead<RecvStream, LengthDelimitedCodec>,
}

impl TakeSender {
    /// Sends a tap's packet (waits while the worker cannot take more).
    pub async fn send(&mut self, packet: &TapPacket) -> Result<(), LinkError> {
        let epoch = link_epoch();
        self.frames
            .send(frame::encode(packet, epoch))
            .await
            .map_err(LinkError::connection)
    }

    /// Resolves with `true` when the worker asks for a keyframe, `false` when it stopped
    /// asking (its side closed or the link went).
    pub async fn keyframe_wanted(&mut self) -> bool {
        matches!(self.requests.next().await, Some(Ok(_)))
    }

    /// Ends the take: the track ended.
    pub async fn finish(mut self) {
        let _ = SinkExt::<Bytes>::close(&mut self.frames).await;
    }
}

/// The instant this process's link clock starts from: arrival times of every take it sends
/// are measured from it (the worker learns its age when it connects).
fn link_epoch() -> Epoch {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    Epoch(*EPOCH.get_or_init(Instant::now))
}

/// A worker's end: connects to the nodes whose jobs it took.
pub struct Dialer {
    config: quinn::ClientConfig,
}

impl Dialer {
    /// A dialer presenting this worker's certificate.
    pub fn new(tls: &LinkTls) -> Result<Dialer, LinkError> {
        let mut config = quinn::ClientConfig::new(Arc::new(tls.client()?));
        config.transport_config(transport());
        Ok(Dialer { config })
    }

    /// Connects to the node at `addr`, whose certificate must name `server_name`, for the job
    /// of `token`; control messages typed `Out` from this worker and `In` from the node.
    pub async fn dial<Out, In>(
        &self,
        addr: SocketAddr,
        server_name: &str,
        token: &JobToken,
    ) -> Result<WorkerLink<Out, In>, LinkError> {
        let bind: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = Endpoint::client(bind)
            .map_err(|err| LinkError::Endpoint(format!("binding {bind}: {err}")))?;
        endpoint.set_default_client_config(self.config.clone());
        let connecting = endpoint
            .connect(addr, server_name)
            .map_err(LinkError::connection)?;
        let handshake = async {
            let connection = connecting.await.map_err(LinkError::connection)?;
            let (send, recv) = connection.open_bi().await.map_err(LinkError::connection)?;
            let mut control: Control<Hello, Welcome> = Control::new(send, recv);
            control
                .sender
                .send(&Hello {
                    token: token.expose().to_owned(),
                })
                .await?;
            let welcome = match control.receiver.recv().await {
                Ok(Some(welcome)) => welcome,
                Ok(None) | Err(_) => {
                    return Err(match connection.close_reason() {
                        Some(quinn::ConnectionError::ApplicationClosed(close))
                            if close.error_code == VarInt::from_u32(REFUSED) =>
                        {
                            LinkError::Refused(String::from_utf8_lossy(&close.reason).into_owned())
                        }
                        Some(quinn::ConnectionError::ApplicationClosed(close))
                            if close.error_code == VarInt::from_u32(BUSY) =>
                        {
                            LinkError::Busy
                        }
                        Some(reason) => LinkError::connection(reason),
                        None => LinkError::Connection("closed before it answered".to_owned()),
                    });
                }
            };
            Ok((connection, control, welcome))
        };
        let (connection, control, welcome) =
            tokio::time::timeout(HELLO_WITHIN, handshake)
                .await
                .map_err(|_| LinkError::Connection(format!("{addr} did not answer in time")))??;
        // The node's epoch on this worker's clock (the time the answer took is left out).
        let age = Duration::from_micros(welcome.epoch_age_us);
        let now = Instant::now();
        let epoch = Epoch(now.checked_sub(age).unwrap_or(now));
        Ok(WorkerLink {
            control: control.retype(),
            takes: TakeAcceptor {
                connection,
                epoch,
                _endpoint: endpoint,
            },
        })
    }
}

/// What a worker has of its connection to a node.
pub struct WorkerLink<Out, In> {
    /// Control messages both ways.
    pub control: Control<Out, In>,
    /// The takes the node opens.
    pub takes: TakeAcceptor,
}

/// Accepts the takes a node opens.
pub struct TakeAcceptor {
    connection: Connection,
    epoch: Epoch,
    /// Kept while the connection is in use.
    _endpoint: Endpoint,
}

impl TakeAcceptor {
    /// The next take, with its header; `None` once the connection is gone; an error for one
    /// take's stream that is not one (the connection goes on). Not cancel-safe: a stream
    /// accepted when the future is dropped is lost, so call it from a task of its own.
    pub async fn accept(&self) -> Result<Option<(TakeHeader, TakeReceiver)>, LinkError> {
        // Any error of the connection itself means it is gone; the caller goes on without it.
        let Ok((send, recv)) = self.connection.accept_bi().await else {
            return Ok(None);
        };
        let mut frames = FramedRead::new(recv, codec(MAX_PACKET_FRAME));
        let header: TakeHeader = match frames.next().await {
            Some(Ok(frame)) => serde_json::from_slice(&frame).map_err(LinkError::protocol)?,
            Some(Err(err)) => return Err(LinkError::connection(err)),
            None => return Err(LinkError::protocol("a take without its header")),
        };
        // Keyframe requests: one outstanding at most; more while one is queued add nothing.
        let (requests, mut wanted) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let mut out = FramedWrite::new(send, codec(1));
            while wanted.recv().await.is_some() {
                if out.send(Bytes::from_static(&[1])).await.is_err() {
                    break;
                }
            }
            let _ = SinkExt::<Bytes>::close(&mut out).await;
        });
        let track = TrackId::from_key(&header.id).unwrap_or(TrackId(0));
        Ok(Some((
            header.clone(),
            TakeReceiver {
                frames,
                requests,
                track,
                codec: header.codec,
                epoch: self.epoch,
            },
        )))
    }

    /// Resolves when the connection is gone; says why.
    pub async fn closed(&self) -> String {
        self.connection.closed().await.to_string()
    }

    /// Closes the connection: the work is done.
    pub fn close(&self) {
        self.connection.close(VarInt::from_u32(DONE), b"done");
    }
}

/// The worker's side of a take.
pub struct TakeReceiver {
    frames: FramedRead<RecvStream, LengthDelimitedCodec>,
    requests: mpsc::Sender<()>,
    track: TrackId,
    codec: sightline_sfu::Codec,
    epoch: Epoch,
}

impl TakeReceiver {
    /// The next packet; `None` when the take ended (the track ended, or the link went).
    pub async fn recv(&mut self) -> Option<TapPacket> {
        match self.frames.next().await? {
            Ok(frame) => match frame::decode(frame.freeze(), self.track, self.codec, self.epoch) {
                Ok(packet) => Some(packet),
                Err(err) => {
                    tracing::warn!(%err, "a take's stream carried a bad frame; it ends here");
                    None
                }
            },
            Err(err) => {
                tracing::debug!(%err, "a take's stream ended");
                None
            }
        }
    }

    /// Asks the node's publisher for a keyframe.
    pub fn request_keyframe(&self) {
        let _ = self.requests.try_send(());
    }
}
