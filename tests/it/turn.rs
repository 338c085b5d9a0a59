//! TURN credentials against coturn itself: the server hands a participant credentials in its
//! `joined`, and a real `turnserver` (started here on a free loopback port, `use-auth-secret`
//! with the same secret) allocates a relay with them; one signed with another secret and one
//! that expired are refused; at half their lifetime the participant gets fresh ones, which
//! allocate too. The TURN client is the few STUN messages RFC 5766 needs, written here so the
//! check does not trust another implementation of the same formulas.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use sha1::Sha1;
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, text};
use crate::rtc::{Socket, interview, join};

/// The secret Sightline and coturn share (a test value, at least 16 bytes).
const SECRET: &str = "turn-secret-shared-with-coturn-0123";
const REALM: &str = "sightline.test";

const ALLOCATE: u16 = 0x0003;
const ALLOCATE_SUCCESS: u16 = 0x0103;
const ALLOCATE_ERROR: u16 = 0x0113;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const ERROR_CODE: u16 = 0x0009;
const REALM_ATTR: u16 = 0x0014;
const NONCE: u16 = 0x0015;
const XOR_RELAYED_ADDRESS: u16 = 0x0016;
const REQUESTED_TRANSPORT: u16 = 0x0019;
/// REQUESTED-TRANSPORT's value for UDP (protocol 17).
const UDP_TRANSPORT: [u8; 4] = [17, 0, 0, 0];

/// A STUN message's attributes: type and value, in order.
type Attributes = Vec<(u16, Vec<u8>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_relays_with_the_credentials_a_participant_is_given_and_refuses_others() -> Result<()>
{
    let mut coturn = Coturn::start(SECRET)?;
    // Answering before the app starts: its own ports cannot take coturn's meanwhile.
    coturn.wait_until_answering().await?;
    let server = coturn.addr;
    let url = format!("turn:127.0.0.1:{}?transport=udp", server.port());
    let app = TestApp::spawn_with_environment(
        Backend::Sqlite,
        &[
            ("turn.urls", json!([url])),
            // The shortest lifetime allowed: fresh credentials come after 30 s.
            ("turn.credential_ttl_secs", json!(60)),
        ],
        &[("turn.shared_secret", json!(SECRET))],
    )
    .await?;
    let room = interview(&app).await?;
    let (mut socket, joined) = join(&app, &room.id, &room.candidate).await?;
    let servers = joined["ice_servers"]
        .as_array()
        .context("joined carries ice_servers")?;
    let [given]: &[Value; 1] = servers.as_slice().try_into().context("one TURN server")?;
    assert_eq!(given["urls"], json!([url]));
    let username = text(&given["username"])?;
    let password = text(&given["credential"])?;

    // The participant's own credentials: a relay on coturn's address.
    let relayed = allocate(server, &username, &password).await?;
    assert_eq!(
        relayed.map(|a| a.ip()),
        Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "coturn allocates with {username}"
    );

    // Signed with another secret: refused.
    let forged = hmac_sha1_base64(b"another-secret-0123456789abcdef", &username);
    assert_eq!(allocate(server, &username, &forged).await?, Err(401));

    // Signed with the right secret but expired a minute ago: refused.
    let expired = format!("{}:participant", unix_now() - 60);
    let signed = hmac_sha1_base64(SECRET.as_bytes(), &expired);
    assert_eq!(allocate(server, &expired, &signed).await?, Err(401));

    // The same, still valid: accepted (so the refusal above was the expiry).
    let fresh = format!("{}:participant", unix_now() + 60);
    let signed = hmac_sha1_base64(SECRET.as_bytes(), &fresh);
    assert!(allocate(server, &fresh, &signed).await?.is_ok());

    // Half a lifetime after joining, fresh credentials for the same participant, lasting longer.
    let renewed = next_ice_servers(&mut socket, Duration::from_secs(45)).await?;
    let renewed_username = text(&renewed[0]["username"])?;
    let expiry = |username: &str| -> Result<u64> {
        let (expiry, _) = username.split_once(':').context("<expiry>:<participant>")?;
        Ok(expiry.parse()?)
    };
    assert!(expiry(&renewed_username)? >= expiry(&username)? + 25);
    assert_eq!(
        renewed_username.split_once(':').map(|(_, who)| who),
        username.split_once(':').map(|(_, who)| who)
    );
    let renewed_password = text(&renewed[0]["credential"])?;
    assert!(
        allocate(server, &renewed_username, &renewed_password)
            .await?
            .is_ok(),
        "coturn allocates with the renewed credential"
    );
    Ok(())
}

/// The `ice_servers` of the next `ice_servers` message, waiting at most `within`.
async fn next_ice_servers(socket: &mut Socket, within: Duration) -> Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no fresh ice_servers in time")?;
        let Some(Ok(Message::Text(text))) = frame else {
            match frame {
                Some(Ok(_)) => continue,
                _ => bail!("the socket closed before fresh ice_servers came"),
            }
        };
        let value: Value = serde_json::from_str(&text)?;
        if value["type"] == "ice_servers" {
            return Ok(value["ice_servers"]
                .as_array()
                .context("a list of servers")?
                .clone());
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The TURN REST password for `username`: base64 HMAC-SHA1 under `secret`.
fn hmac_sha1_base64(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A `turnserver` of its own, on free loopback ports, stopped when dropped.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    /// Its database, pid file and log.
    dir: TempDir,
}

impl Coturn {
    fn start(secret: &str) -> Result<Coturn> {
        let dir = tempfile::tempdir()?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.path().join("turnserver.log"))?;
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
            ])
            .args(["--listening-port", &port.to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args([
                "--realm",
                REALM,
                "--no-tcp",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .args([
                "--no-multicast-peers",
                "--simple-log",
                "--log-file",
                "stdout",
            ])
            .arg("--userdb")
            .arg(dir.path().join("turndb"))
            .arg("--pidfile")
            .arg(dir.path().join("turnserver.pid"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting turnserver (Debian package coturn; scripts/test installs it)")?;
        Ok(Coturn {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
        })
    }

    /// Waits (at most 10 s) until coturn answers an Allocate at all; says why it did not, with
    /// its log.
    async fn wait_until_answering(&mut self) -> Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        for _ in 0..50 {
            if let Some(status) = self.child.try_wait()? {
                bail!("turnserver exited ({status}): {}", self.log());
            }
            let request = encode(
                ALLOCATE,
                &[(REQUESTED_TRANSPORT, UDP_TRANSPORT.to_vec())],
                None,
            );
            socket.send_to(&request, self.addr).await?;
            let mut buffer = [0u8; 1500];
            let reply =
                tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buffer)).await;
            if let Ok(Ok(len)) = reply
                && decode(&buffer[..len]).is_ok()
            {
                return Ok(());
            }
        }
        bail!("turnserver did not answer on {}: {}", self.addr, self.log())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks for a UDP relay from a fresh address with long-term credentials: the first request
/// learns the realm and nonce from coturn's 401, the second signs with them. Returns the
/// relayed address, or the error code coturn answered.
async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<Result<SocketAddr, u16>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let transport = (REQUESTED_TRANSPORT, UDP_TRANSPORT.to_vec());
    let (kind, attributes) = exchange(
        &socket,
        server,
        &encode(ALLOCATE, std::slice::from_ref(&transport), None),
    )
    .await?;
    ensure!(
        kind == ALLOCATE_ERROR && error_code(&attributes) == Some(401),
        "an unsigned Allocate is challenged: {kind:#06x} {:?}",
        error_code(&attributes)
    );
    let realm = attribute(&attributes, REALM_ATTR).context("401 names the realm")?;
    let nonce = attribute(&attributes, NONCE).context("401 carries a nonce")?;
    ensure!(realm == REALM.as_bytes(), "coturn's realm");
    // RFC 5389 §15.4: the long-term key is MD5(username ":" realm ":" password).
    let key = Md5::digest(format!("{username}:{REALM}:{password}").as_bytes());
    let signed = encode(
        ALLOCATE,
        &[
            (USERNAME, username.as_bytes().to_vec()),
            (REALM_ATTR, realm.to_vec()),
            (NONCE, nonce.to_vec()),
            transport,
        ],
        Some(&key),
    );
    let (kind, attributes) = exchange(&socket, server, &signed).await?;
    match kind {
        ALLOCATE_SUCCESS => {
            let relayed =
                attribute(&attributes, XOR_RELAYED_ADDRESS).context("a relayed address")?;
            Ok(Ok(xor_address(relayed)?))
        }
        ALLOCATE_ERROR => Ok(Err(error_code(&attributes).context("an error code")?)),
        other => bail!("unexpected answer {other:#06x}"),
    }
}

/// Sends `request` and returns the answer to it (at most 5 s).
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
) -> Result<(u16, Attributes)> {
    socket.send_to(request, server).await?;
    let mut buffer = [0u8; 1500];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .context("coturn answers")??;
    let answer = &buffer[..len];
    ensure!(
        answer.get(8..20) == request.get(8..20),
        "the answer is to this request"
    );
    decode(answer)
}

/// A STUN message (RFC 5389 §6) with a fresh transaction id; signed with MESSAGE-INTEGRITY
/// (HMAC-SHA1 over everything before it, the length already counting it) when given a key.
fn encode(kind: u16, attributes: &[(u16, Vec<u8>)], key: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in attributes {
        push_attribute(&mut body, *kind, value);
    }
    let integrity_len = if key.is_some() { 24 } else { 0 };
    let mut message = Vec::with_capacity(20 + body.len() + integrity_len);
    message.extend(kind.to_be_bytes());
    let length = u16::try_from(body.len() + integrity_len).expect("a small message");
    message.extend(length.to_be_bytes());
    message.extend(MAGIC_COOKIE.to_be_bytes());
    message.extend(&uuid::Uuid::new_v4().as_bytes()[..12]);
    message.extend(&body);
    if let Some(key) = key {
        let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(&message);
        let integrity = mac.finalize().into_bytes();
        push_attribute(&mut message, MESSAGE_INTEGRITY, &integrity);
    }
    message
}

fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend(kind.to_be_bytes());
    out.extend(
        u16::try_from(value.len())
            .expect("a small value")
            .to_be_bytes(),
    );
    out.extend(value);
    // Values are padded to four bytes.
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A STUN message's type and attributes.
fn decode(message: &[u8]) -> Result<(u16, Attributes)> {
    ensure!(message.len() >= 20, "a STUN header");
    ensure!(
        message[4..8] == MAGIC_COOKIE.to_be_bytes(),
        "the magic cookie"
    );
    let kind = u16::from_be_bytes([message[0], message[1]]);
    let length = usize::from(u16::from_be_bytes([message[2], message[3]]));
    let mut rest = message.get(20..20 + length).context("the whole body")?;
    let mut attributes = Vec::new();
    while rest.len() >= 4 {
        let attribute = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len).context("the whole attribute")?;
        attributes.push((attribute, value.to_vec()));
        rest = rest
            .get((4 + len).next_multiple_of(4)..)
            .unwrap_or_default();
    }
    Ok((kind, attributes))
}

fn attribute(attributes: &Attributes, kind: u16) -> Option<&[u8]> {
    attributes
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.as_slice())
}

/// ERROR-CODE's number: class (hundreds) in the third byte, the rest in the fourth.
fn error_code(attributes: &Attributes) -> Option<u16> {
    let value = attribute(attributes, ERROR_CODE)?;
    Some(u16::from(*value.get(2)? & 0x07) * 100 + u16::from(*value.get(3)?))
}

/// An IPv4 XOR-…-ADDRESS (RFC 5389 §15.2): port and address XORed with the magic cookie.
fn xor_address(value: &[u8]) -> Result<SocketAddr> {
    ensure!(value.len() == 8 && value[1] == 0x01, "an IPv4 address");
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2] ^ cookie[0], value[3] ^ cookie[1]]);
    let ip = Ipv4Addr::new(
        value[4] ^ cookie[0],
        value[5] ^ cookie[1],
        value[6] ^ cookie[2],
        value[7] ^ cookie[3],
    );
    Ok(SocketAddr::from((ip, port)))
}
