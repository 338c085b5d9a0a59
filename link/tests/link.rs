//! A node's listener and a worker's dialer over real QUIC on loopback, with certificates from a
//! throwaway CA: packets and keyframe requests cross a take's stream, control messages cross
//! both ways, and connections without the CA's certificate or the job's token are refused.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use sightline_link::{
    Dialer, HostLink, JobToken, LinkError, LinkTls, Listener, TakeHeader, WorkerLink,
};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::TestPki;

fn node_tls(pki: &TestPki) -> Result<LinkTls> {
    let (cert, key) = pki.server();
    Ok(LinkTls::load(&pki.ca(), &cert, &key)?)
}

fn worker_tls(pki: &TestPki) -> Result<LinkTls> {
    let (cert, key) = pki.client();
    Ok(LinkTls::load(&pki.ca(), &cert, &key)?)
}

fn listener(pki: &TestPki) -> Result<Listener> {
    Ok(Listener::bind("127.0.0.1:0".parse()?, &node_tls(pki)?)?)
}

fn packet(n: u64, start: Instant) -> TapPacket {
    TapPacket {
        track: TrackId(3),
        codec: Codec::Vp8,
        seq: 1_000 + n,
        rtp_time: n * 3_000,
        marker: n % 3 == 2,
        keyframe: n == 0,
        payload: Arc::from(vec![n as u8; 100 + n as usize]),
        arrival: start + Duration::from_millis(n * 10),
        sender_time: n
            .is_multiple_of(2)
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(n)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_and_the_control_messages_cross_the_link() -> Result<()> {
    let pki = TestPki::new()?;
    let listener = listener(&pki)?;
    let (token, mut expected) = listener.expect::<String, u32>()?;
    let dialer = Dialer::new(&worker_tls(&pki)?)?;
    let addr = listener.local_addr()?;
    let dialing = tokio::spawn(async move {
        dialer
            .dial::<u32, String>(addr, "localhost", &JobToken::new(token.expose().to_owned()))
            .await
    });
    let HostLink {
        control: mut node_control,
        takes: opener,
    } = tokio::time::timeout(Duration::from_secs(10), expected.next())
        .await?
        .context("the worker's connection")?;
    let WorkerLink {
        control: mut worker_control,
        takes: acceptor,
    } = dialing.await??;

    node_control.sender.send(&"participants".to_owned()).await?;
    assert_eq!(
        worker_control.receiver.recv().await?.as_deref(),
        Some("participants")
    );
    worker_control.sender.send(&7).await?;
    assert_eq!(node_control.receiver.recv().await?, Some(7));

    let header = TakeHeader {
        id: "t3".into(),
        participant: "cas".into(),
        source: "camera".into(),
        codec: Codec::Vp8,
    };
    let mut sender = opener.open(&header).await?;
    let (received_header, mut receiver) = acceptor.accept().await?.context("a take")?;
    assert_eq!(received_header, header);

    let start = Instant::now();
    let sent: Vec<TapPacket> = (0..200).map(|n| packet(n, start)).collect();
    let sending = tokio::spawn(async move {
        for packet in &sent {
            sender.send(packet).await?;
        }
        // The worker asks for a keyframe; the node hears it on the same stream.
        let wanted = sender.keyframe_wanted().await;
        sender.finish().await;
        Ok::<_, anyhow::Error>((sent, wanted))
    });
    let mut received = Vec::new();
    while received.len() < 200 {
        received.push(receiver.recv().await.context("a packet")?);
    }
    receiver.request_keyframe();
    let (sent, wanted) = sending.await??;
    assert!(wanted, "the keyframe request reached the node");
    assert!(receiver.recv().await.is_none(), "the take ended");

    for (got, want) in received.iter().zip(&sent) {
        assert_eq!(got.seq, want.seq);
        assert_eq!(got.rtp_time, want.rtp_time);
        assert_eq!(got.marker, want.marker);
        assert_eq!(got.keyframe, want.keyframe);
        assert_eq!(&*got.payload, &*want.payload);
        assert_eq!(got.sender_time, want.sender_time);
        assert_eq!(got.codec, Codec::Vp8);
    }
    // Arrival times keep their spacing on the worker's clock.
    for pair in received.windows(2) {
        assert_eq!(
            pair[1].arrival.duration_since(pair[0].arrival),
            Duration::from_millis(10)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_job_s_token_with_the_ca_s_certificate_gets_through() -> Result<()> {
    let pki = TestPki::new()?;
    let listener = listener(&pki)?;
    let addr = listener.local_addr()?;
    let (token, mut expected) = listener.expect::<u32, u32>()?;
    let dialer = Dialer::new(&worker_tls(&pki)?)?;

    // A token nobody expects: refused, and the worker is told it is (not a network error).
    let forged = JobToken::generate()?;
    let refused = dialer.dial::<u32, u32>(addr, "localhost", &forged).await;
    assert!(
        matches!(refused, Err(LinkError::Refused(_))),
        "a token no job expects: {:?}",
        refused.err()
    );

    // The right token from a worker whose certificate another CA signed.
    let stranger = TestPki::new()?;
    let (cert, key) = stranger.client();
    let foreign = Dialer::new(&LinkTls::load(&pki.ca(), &cert, &key)?)?;
    let refused = foreign.dial::<u32, u32>(addr, "localhost", &token).await;
    assert!(
        refused.is_err(),
        "a certificate the CA did not sign was let in"
    );

    // A node whose certificate another CA signed is not trusted by the worker.
    let (cert, key) = stranger.server();
    let impostor = Listener::bind(
        "127.0.0.1:0".parse()?,
        &LinkTls::load(&stranger.ca(), &cert, &key)?,
    )?;
    let (impostor_token, _impostor_expected) = impostor.expect::<u32, u32>()?;
    let refused = dialer
        .dial::<u32, u32>(impostor.local_addr()?, "localhost", &impostor_token)
        .await;
    assert!(
        refused.is_err(),
        "the worker trusted a node the CA did not sign"
    );

    // Neither reached the job; the right worker does.
    let right = dialer.dial::<u32, u32>(addr, "localhost", &token).await;
    assert!(right.is_ok(), "{:?}", right.err());
    let link = tokio::time::timeout(Duration::from_secs(5), expected.next()).await?;
    assert!(link.is_some());

    // Once the job is no longer expected, its token opens nothing.
    drop(expected);
    let late = dialer.dial::<u32, u32>(addr, "localhost", &token).await;
    assert!(
        matches!(late, Err(LinkError::Refused(_))),
        "a withdrawn job's token: {:?}",
        late.err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_takes_two_waiting_workers_and_refuses_a_third_before_welcoming_it() -> Result<()> {
    let pki = TestPki::new()?;
    let listener = listener(&pki)?;
    let addr = listener.local_addr()?;
    let (token, mut expected) = listener.expect::<u32, u32>()?;
    let dialer = Dialer::new(&worker_tls(&pki)?)?;
    // Nobody takes the connections off the job yet: two wait, the third is refused, and a
    // worker that was welcomed always reaches the job.
    let first = dialer.dial::<u32, u32>(addr, "localhost", &token).await?;
    let second = dialer.dial::<u32, u32>(addr, "localhost", &token).await?;
    let third = dialer.dial::<u32, u32>(addr, "localhost", &token).await;
    assert!(
        matches!(third, Err(LinkError::Busy)),
        "a third waiting worker: {:?}",
        third.err()
    );
    for (n, mut worker) in [first, second].into_iter().enumerate() {
        let mut node = tokio::time::timeout(Duration::from_secs(5), expected.next())
            .await?
            .context("a welcomed worker's connection")?;
        worker.control.sender.send(&(n as u32)).await?;
        assert_eq!(node.control.receiver.recv().await?, Some(n as u32));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_learns_its_node_is_gone() -> Result<()> {
    let pki = TestPki::new()?;
    let listener = listener(&pki)?;
    let addr = listener.local_addr()?;
    let (token, mut expected) = listener.expect::<u32, u32>()?;
    let dialer = Dialer::new(&worker_tls(&pki)?)?;
    let worker = dialer.dial::<u32, u32>(addr, "localhost", &token).await?;
    let node = expected.next().await.context("the connection")?;
    // The node closes (its recording ended): the worker's accept says so, as does closed().
    node.takes.close();
    let accepted = tokio::time::timeout(Duration::from_secs(10), worker.takes.accept()).await??;
    assert!(accepted.is_none(), "a take on a closed link");
    let why = tokio::time::timeout(Duration::from_secs(10), worker.takes.closed()).await?;
    assert!(why.contains("closed"), "{why}");
    Ok(())
}
