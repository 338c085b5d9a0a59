//! Properties of the protocol parser and the room state machine under arbitrary input: what a
//! hostile or broken client can send never panics, and the room's rules hold after any sequence
//! of requests. Bounded (a fixed number of cases from a fixed seed), so it runs in the normal
//! test suite on stable Rust.

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sightline_signaling::protocol::{self, ClientMessage, LeaveReason};
use sightline_signaling::{Grants, InterviewRole, Member, Room, RoomId};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(20_261_202),
        ..Config::default()
    }
}

/// Any JSON value, a few levels deep, with the protocol's own words among the keys and strings
/// so that generated objects often look like real messages.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let word = prop_oneof![
        Just("type".to_owned()),
        Just("join".to_owned()),
        Just("chat".to_owned()),
        Just("publish_offer".to_owned()),
        Just("ice_candidate".to_owned()),
        Just("text".to_owned()),
        Just("tracks".to_owned()),
        Just("sdp".to_owned()),
        Just("mid".to_owned()),
        Just("source".to_owned()),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        word.clone().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(word.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_text_is_parsed_or_refused_never_a_panic(text in ".{0,2048}") {
        let _ = protocol::parse(&text);
    }

    #[test]
    fn any_json_is_parsed_or_refused_never_a_panic(value in json()) {
        let text = value.to_string();
        if let Ok(message) = protocol::parse(&text) {
            // What parses is a message the server can say back the same way.
            let again = serde_json::to_string(&message).expect("serializes");
            prop_assert_eq!(protocol::parse(&again).expect("reparses"), message);
        }
    }
}

/// One request to a room, from one of a few identities.
#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Leave(usize),
    Drop(usize),
    Chat(usize, String),
    Remove(usize, usize),
    Readmit(usize, usize),
    Mute(usize, String),
}

const PEOPLE: [(&str, InterviewRole); 4] = [
    ("ivy", InterviewRole::Interviewer),
    ("cas", InterviewRole::Candidate),
    ("obi", InterviewRole::Observer),
    ("rev", InterviewRole::Reviewer),
];

fn step() -> impl Strategy<Value = Step> {
    let who = 0..PEOPLE.len();
    prop_oneof![
        who.clone().prop_map(Step::Join),
        who.clone().prop_map(Step::Leave),
        who.clone().prop_map(Step::Drop),
        (who.clone(), ".{0,64}").prop_map(|(w, t)| Step::Chat(w, t)),
        (who.clone(), who.clone()).prop_map(|(a, b)| Step::Remove(a, b)),
        (who.clone(), who.clone()).prop_map(|(a, b)| Step::Readmit(a, b)),
        (who, "t[0-9]").prop_map(|(w, t)| Step::Mute(w, t)),
    ]
}

fn member(index: usize) -> Member {
    let (identity, role) = PEOPLE[index];
    Member {
        identity: identity.to_owned(),
        name: identity.to_owned(),
        role,
        grants: Grants::for_role(role),
        phone_of: None,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_room_keeps_its_rules_whatever_its_members_ask(steps in prop::collection::vec(step(), 1..60)) {
        let mut room = Room::new(RoomId("r".into()));
        let now = Instant::now();
        for step in steps {
            match step {
                Step::Join(w) => {
                    let joined = room.join(member(w), 1, format!("token-{w}"));
                    // A removed identity never gets back in without a readmission.
                    if room.barred().contains(PEOPLE[w].0) {
                        prop_assert!(joined.is_err());
                    }
                }
                Step::Leave(w) => {
                    let _ = room.leave(PEOPLE[w].0, LeaveReason::Left);
                }
                Step::Drop(w) => {
                    let _ = room.disconnected(PEOPLE[w].0, now);
                }
                Step::Chat(w, text) => {
                    let _ = room.chat(PEOPLE[w].0, &text, 0);
                }
                Step::Remove(a, b) => {
                    let removed = room.moderate_remove(PEOPLE[a].0, PEOPLE[b].0);
                    if removed.is_ok() {
                        prop_assert!(room.barred().contains(PEOPLE[b].0));
                    }
                }
                Step::Readmit(a, b) => {
                    let _ = room.readmit(PEOPLE[a].0, PEOPLE[b].0);
                }
                Step::Mute(w, track) => {
                    let _ = room.mute(PEOPLE[w].0, &track, true);
                }
            }
            // Whoever is barred is not in the room.
            for identity in room.barred() {
                prop_assert!(!room.identities().any(|i| i == identity.as_str()));
            }
        }
    }
}

#[test]
fn the_parser_refuses_unknown_messages_with_a_code() {
    let refused = protocol::parse(r#"{"type":"teleport"}"#).expect_err("unknown type");
    assert_eq!(refused.code(), "malformed_message");
    assert!(matches!(
        protocol::parse(r#"{"type":"leave"}"#),
        Ok(ClientMessage::Leave {})
    ));
}
