//! Token costs paid on every request: checking an access token (every authenticated API call),
//! issuing and checking a room join token (every room entry), hashing an opaque token (every
//! refresh and invite lookup).

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_api::AccountRole;
use sightline_api::auth::tokens::JoinSubject;
use sightline_api::auth::{Principal, TokenKeys, opaque};
use sightline_signaling::{InterviewRole, RoomId};

const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret!!";
fn keys() -> TokenKeys {
    TokenKeys::new(SECRET, 900, 300)
}

fn access_tokens(c: &mut Criterion) {
    let keys = keys();
    let principal = Principal::User {
        id: uuid::Uuid::now_v7().to_string(),
        role: AccountRole::Interviewer,
        epoch: 0,
    };
    let now = jiff::Timestamp::now().as_second();
    let token = keys.issue_access(&principal, now).expect("signs");
    c.bench_function("access_token/issue", |b| {
        b.iter(|| keys.issue_access(std::hint::black_box(&principal), now))
    });
    c.bench_function("access_token/verify", |b| {
        b.iter(|| keys.verify_access(std::hint::black_box(&token)))
    });
}

fn join_tokens(c: &mut Criterion) {
    let keys = keys();
    let room = RoomId(uuid::Uuid::now_v7().to_string());
    let participant = uuid::Uuid::now_v7().to_string();
    let subject = || JoinSubject {
        participant_id: &participant,
        name: "Casey Candidate",
        room: room.clone(),
        role: InterviewRole::Candidate,
        phone_of: None,
        epoch: 0,
    };
    let now = jiff::Timestamp::now().as_second();
    let (token, _) = keys.issue_join(subject(), now).expect("signs");
    c.bench_function("join_token/issue", |b| {
        b.iter(|| keys.issue_join(subject(), now))
    });
    c.bench_function("join_token/verify", |b| {
        b.iter(|| keys.verify_join(std::hint::black_box(&token), &room))
    });
}

fn opaque_tokens(c: &mut Criterion) {
    let token = opaque::generate().expect("randomness");
    c.bench_function("opaque_token/generate", |b| b.iter(opaque::generate));
    c.bench_function("opaque_token/hash", |b| {
        b.iter(|| opaque::hash(std::hint::black_box(&token)))
    });
}

criterion_group!(benches, access_tokens, join_tokens, opaque_tokens);
criterion_main!(benches);
