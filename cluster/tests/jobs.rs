//! The job queue against a real NATS server (Debian's `nats-server` 2.9), one private server
//! per test: a job goes to one worker; a worker that stops renewing it loses it to another,
//! which sees it was handed out before; a job given back comes back; a completed job is gone;
//! a withdrawn one reaches nobody; recording and proctoring jobs go to their own workers.

use std::time::Duration;

use sightline_cluster::{Cluster, ClusterConfig, NodeId, ProctoringJob, RecordingJob, Region};
use sightline_testkit::NatsServer;

fn config(url: &str, name: &str) -> ClusterConfig {
    ClusterConfig {
        nats_url: url.to_owned(),
        nats_auth: Default::default(),
        nats_tls: Default::default(),
        node: NodeId::new(name).expect("node id"),
        region: Region::new("eu").expect("region"),
        advertise_url: format!("http://{name}.invalid"),
        heartbeat_every: Duration::from_millis(200),
        heartbeat_ttl: Duration::from_secs(2),
        started_at_ms: 0,
    }
}

fn job(recording: &str) -> RecordingJob {
    RecordingJob {
        recording: recording.to_owned(),
        interview: "i1".to_owned(),
        node: NodeId::new("eu-1").expect("node id"),
        link_addr: "127.0.0.1:7000".parse().expect("address"),
        link_name: "localhost".to_owned(),
        token: "secret".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_worker_stops_renewing_goes_to_another_worker() {
    let nats = NatsServer::start().await.expect("nats");
    let node = Cluster::join(config(&nats.url(), "eu-1"))
        .await
        .expect("joins");
    let queue = node.jobs().await.expect("queue");
    let ack_wait = Duration::from_secs(2);
    let first = Cluster::observe(config(&nats.url(), "w-a"))
        .await
        .expect("observes");
    let first = first
        .jobs()
        .await
        .expect("queue")
        .worker::<RecordingJob>(ack_wait)
        .await
        .expect("worker");
    let second = Cluster::observe(config(&nats.url(), "w-b"))
        .await
        .expect("observes");
    let second = second
        .jobs()
        .await
        .expect("queue")
        .worker::<RecordingJob>(ack_wait)
        .await
        .expect("worker");

    queue.post(&job("r1")).await.expect("posted");
    let lease = first
        .next(Duration::from_secs(5))
        .await
        .expect("takes")
        .expect("the job");
    assert_eq!(lease.job, job("r1"));
    assert_eq!(lease.delivered(), 1);

    // w-a goes silent (it died): once the ack wait passed, w-b gets the same job.
    std::mem::forget(lease);
    let mut again = None;
    for _ in 0..10 {
        again = second.next(Duration::from_secs(2)).await.expect("takes");
        if again.is_some() {
            break;
        }
    }
    let again = again.expect("the job handed out again");
    assert_eq!(again.job, job("r1"));
    // At least twice: a fetch that expires as the job reaches it counts a hand-out too.
    assert!(
        again.delivered() >= 2,
        "handed out before: {}",
        again.delivered()
    );

    // Done is done: nobody gets it again, even after another ack wait.
    again.done().await.expect("done");
    for worker in [&first, &second] {
        let none = worker.next(Duration::from_secs(3)).await.expect("takes");
        assert!(none.is_none(), "a completed job came back: {none:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_job_reaches_no_worker_and_others_still_do() {
    let nats = NatsServer::start().await.expect("nats");
    let node = Cluster::join(config(&nats.url(), "eu-1"))
        .await
        .expect("joins");
    let queue = node.jobs().await.expect("queue");
    let posted = queue.post(&job("r-withdrawn")).await.expect("posted");
    queue.post(&job("r-kept")).await.expect("posted");
    queue.withdraw(posted).await.expect("withdrawn");
    // Withdrawing again (or a job already done) is no error.
    queue.withdraw(posted).await.expect("withdrawn twice");

    let worker = Cluster::observe(config(&nats.url(), "w-a"))
        .await
        .expect("observes");
    let worker = worker
        .jobs()
        .await
        .expect("queue")
        .worker::<RecordingJob>(Duration::from_secs(30))
        .await
        .expect("worker");
    let lease = worker
        .next(Duration::from_secs(5))
        .await
        .expect("takes")
        .expect("the kept job");
    assert_eq!(lease.job.recording, "r-kept");
    // Given back (its node could not be reached), it is handed out again soon, not after the
    // 30-second ack wait.
    lease
        .retry_later(Duration::from_millis(200))
        .await
        .expect("given back");
    let lease = worker
        .next(Duration::from_secs(10))
        .await
        .expect("takes")
        .expect("the job again");
    assert_eq!(lease.job.recording, "r-kept");
    assert!(lease.delivered() >= 2, "given back: {}", lease.delivered());
    lease.done().await.expect("done");
    let none = worker.next(Duration::from_secs(2)).await.expect("takes");
    assert!(none.is_none(), "the withdrawn job was handed out: {none:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_job_goes_to_the_workers_of_its_kind_and_no_log_shows_its_token() {
    let nats = NatsServer::start().await.expect("nats");
    let node = Cluster::join(config(&nats.url(), "eu-1"))
        .await
        .expect("joins");
    let queue = node.jobs().await.expect("queue");
    let proctoring = ProctoringJob {
        interview: "i-proctored".to_owned(),
        node: NodeId::new("eu-1").expect("node id"),
        link_addr: "127.0.0.1:7000".parse().expect("address"),
        link_name: "localhost".to_owned(),
        token: "proctoring-secret".to_owned(),
    };
    queue.post(&proctoring).await.expect("posted");
    queue.post(&job("r-1")).await.expect("posted");

    let worker = Cluster::observe(config(&nats.url(), "w-a"))
        .await
        .expect("observes");
    let jobs = worker.jobs().await.expect("queue");
    let recordings = jobs
        .worker::<RecordingJob>(Duration::from_secs(30))
        .await
        .expect("worker");
    let proctored = jobs
        .worker::<ProctoringJob>(Duration::from_secs(30))
        .await
        .expect("worker");
    let lease = recordings
        .next(Duration::from_secs(5))
        .await
        .expect("takes")
        .expect("the recording job");
    assert_eq!(lease.job.recording, "r-1");
    lease.done().await.expect("done");
    let none = recordings
        .next(Duration::from_secs(2))
        .await
        .expect("takes");
    assert!(
        none.is_none(),
        "a proctoring job reached a recording worker: {none:?}"
    );
    let lease = proctored
        .next(Duration::from_secs(5))
        .await
        .expect("takes")
        .expect("the proctoring job");
    assert_eq!(lease.job, proctoring);
    let logged = format!("{lease:?} {:?} {:?}", lease.job, job("r-2"));
    assert!(logged.contains("i-proctored"), "{logged}");
    assert!(
        !logged.contains("secret"),
        "a job's token in its Debug form: {logged}"
    );
    lease.done().await.expect("done");
}
