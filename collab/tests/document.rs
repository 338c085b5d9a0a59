//! The document with real Yjs-compatible clients (yrs docs speaking y-protocols frames).

use std::collections::VecDeque;

use proptest::prelude::*;
use sightline_collab::wire::{self, Message};
use sightline_collab::{CollabError, Document, Limits, Member, Output, PeerId, replay};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// A browser, as far as the protocol goes.
struct Client {
    doc: Doc,
    text: TextRef,
}

impl Client {
    fn new() -> Self {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("code");
        Client { doc, text }
    }

    fn step1(&self) -> Vec<u8> {
        let sv = self.doc.transact().state_vector().encode_v1();
        wire::encode(&Message::SyncStep1(sv))
    }

    /// Edits locally; returns the update frame the client would send.
    fn edit(&self, f: impl FnOnce(&mut yrs::TransactionMut, &TextRef)) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        f(&mut txn, &self.text);
        wire::encode(&Message::Update(txn.encode_update_v1()))
    }

    /// Handles a frame from the server; returns the reply, if any.
    fn handle(&self, frame: &[u8]) -> Option<Vec<u8>> {
        match wire::decode(frame).expect("the server sends valid frames") {
            Message::SyncStep1(sv) => {
                let sv = StateVector::decode_v1(&sv).expect("state vector");
                let update = self.doc.transact().encode_state_as_update_v1(&sv);
                Some(wire::encode(&Message::SyncStep2(update)))
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                let update = Update::decode_v1(&update).expect("update");
                self.doc
                    .transact_mut()
                    .apply_update(update)
                    .expect("applies");
                None
            }
            Message::Awareness(_) | Message::QueryAwareness => None,
        }
    }

    fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }
}

fn member(name: &str, can_write: bool) -> Member {
    Member {
        name: name.into(),
        color: "#1f77b4".into(),
        can_write,
        hidden: false,
    }
}

/// Routes the document's outputs to clients until nothing is in flight; returns the deltas
/// it asked to store.
struct Net<'a> {
    doc: &'a mut Document,
    clients: Vec<(PeerId, Client)>,
    stored: Vec<Vec<u8>>,
}

impl<'a> Net<'a> {
    fn new(doc: &'a mut Document) -> Self {
        Net {
            doc,
            clients: Vec::new(),
            stored: Vec::new(),
        }
    }

    fn deliver(&mut self, outputs: Vec<Output>) {
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(output) = queue.pop_front() {
            let targets: Vec<(PeerId, Vec<u8>)> = match output {
                Output::Persist(delta) => {
                    self.stored.push(delta);
                    continue;
                }
                Output::To(peer, frame) => vec![(peer, frame)],
                Output::Broadcast { except, frame } => self
                    .clients
                    .iter()
                    .filter(|(id, _)| Some(*id) != except)
                    .map(|(id, _)| (*id, frame.clone()))
                    .collect(),
            };
            for (peer, frame) in targets {
                let Some((_, client)) = self.clients.iter().find(|(id, _)| *id == peer) else {
                    continue;
                };
                if let Some(reply) = client.handle(&frame) {
                    queue.extend(self.doc.receive(peer, &reply).expect("accepted"));
                }
            }
        }
    }

    fn connect(&mut self, peer: PeerId, member: Member) {
        self.clients.push((peer, Client::new()));
        let joined = self.doc.join(peer, member);
        self.deliver(joined);
        let step1 = self.client(peer).step1();
        let answer = self.doc.receive(peer, &step1).expect("step 1");
        self.deliver(answer);
    }

    fn client(&self, peer: PeerId) -> &Client {
        &self
            .clients
            .iter()
            .find(|(id, _)| *id == peer)
            .expect("connected")
            .1
    }

    fn send(&mut self, peer: PeerId, frame: &[u8]) -> Result<(), CollabError> {
        let outputs = self.doc.receive(peer, frame)?;
        self.deliver(outputs);
        Ok(())
    }
}

const A: PeerId = PeerId(1);
const B: PeerId = PeerId(2);
const READER: PeerId = PeerId(3);

#[test]
fn concurrent_edits_on_one_line_converge_through_the_server() {
    let mut doc = Document::new(Limits::default());
    let mut net = Net::new(&mut doc);
    net.connect(A, member("Ada", true));
    net.connect(B, member("Bo", true));
    let first = net
        .client(A)
        .edit(|txn, text| text.insert(txn, 0, "def f():\n    return 1\n"));
    net.send(A, &first).expect("accepted");
    assert_eq!(net.client(B).text(), "def f():\n    return 1\n");

    // Both type into the same line before seeing each other's edit.
    let from_a = net.client(A).edit(|txn, text| text.insert(txn, 19, "0"));
    let from_b = net.client(B).edit(|txn, text| text.insert(txn, 19, "+ 2"));
    net.send(B, &from_b).expect("accepted");
    net.send(A, &from_a).expect("accepted");
    let server = net.doc.text();
    assert_eq!(net.client(A).text(), server);
    assert_eq!(net.client(B).text(), server);
    assert!(server.contains('0') && server.contains("+ 2"), "{server}");

    // A late joiner gets the same text, and the stored history replays to it.
    net.connect(READER, member("Cy", false));
    assert_eq!(net.client(READER).text(), server);
    let stored = net.stored.clone();
    assert_eq!(replay(&stored).expect("replays").text, server);
    assert_eq!(
        replay(&stored[..1]).expect("replays").text,
        "def f():\n    return 1\n"
    );
    let restored = Document::restore(Limits::default(), &stored).expect("restores");
    assert_eq!(restored.text(), server);
}

#[test]
fn a_reader_cannot_edit_and_nothing_changes() {
    let mut doc = Document::new(Limits::default());
    let mut net = Net::new(&mut doc);
    net.connect(A, member("Ada", true));
    net.connect(READER, member("Cy", false));
    let sneaky = net
        .client(READER)
        .edit(|txn, text| text.insert(txn, 0, "rm -rf"));
    assert_eq!(net.send(READER, &sneaky), Err(CollabError::ReadOnly));
    assert_eq!(net.doc.text(), "");
    assert_eq!(net.client(A).text(), "");
    assert!(net.stored.is_empty());
    // A stranger is refused outright.
    assert_eq!(
        net.doc.receive(PeerId(99), &sneaky),
        Err(CollabError::UnknownMember)
    );
}

#[test]
fn the_text_and_the_history_have_limits() {
    let limits = Limits {
        max_text_bytes: 1000,
        max_history_bytes: 4000,
    };
    let mut doc = Document::new(limits);
    let mut net = Net::new(&mut doc);
    net.connect(A, member("Ada", true));
    net.connect(B, member("Bo", true));
    let big = net
        .client(A)
        .edit(|txn, text| text.insert(txn, 0, &"x".repeat(1001)));
    assert_eq!(
        net.send(A, &big),
        Err(CollabError::TooLarge { limit: 1000 })
    );
    assert_eq!(net.doc.text(), "");
    assert_eq!(net.client(B).text(), "");

    // Typing and deleting keeps the text small but fills the history.
    let mut refused = None;
    for round in 0..1000 {
        let add = net
            .client(B)
            .edit(|txn, text| text.insert(txn, 0, "abcdefghij"));
        if let Err(err) = net.send(B, &add) {
            refused = Some((round, err));
            break;
        }
        let remove = net
            .client(B)
            .edit(|txn, text| text.remove_range(txn, 0, 10));
        if let Err(err) = net.send(B, &remove) {
            refused = Some((round, err));
            break;
        }
    }
    let (_, err) = refused.expect("the history fills");
    assert_eq!(err, CollabError::HistoryFull { limit: 4000 });
    assert!(net.doc.history_bytes() <= 4000);
}

#[test]
fn presence_carries_the_servers_name_for_each_member_and_clears_on_leave() {
    let mut doc = Document::new(Limits::default());
    doc.join(A, member("Ada", true));
    doc.join(B, member("Bo", true));
    let claim = wire::encode(&Message::Awareness(vec![wire::PresenceEntry {
        client: 42,
        clock: 1,
        json: r#"{"user":{"name":"The Interviewer","color":"red"},"cursor":{"anchor":1}}"#.into(),
    }]));
    let out = doc.receive(A, &claim).expect("relayed");
    let [Output::Broadcast { except, frame }] = out.as_slice() else {
        panic!("one broadcast: {out:?}");
    };
    assert_eq!(*except, Some(A));
    let Ok(Message::Awareness(entries)) = wire::decode(frame) else {
        panic!("presence");
    };
    let state: serde_json::Value = serde_json::from_str(&entries[0].json).expect("json");
    assert_eq!(state["user"]["name"], "Ada");
    assert_eq!(state["cursor"]["anchor"], 1);

    // B cannot speak for A's client.
    assert!(matches!(
        doc.receive(B, &claim),
        Err(CollabError::Presence(_))
    ));
    // A late joiner sees A's cursor; when A leaves, it is cleared for everyone.
    let joined = doc.join(READER, member("Cy", false));
    assert_eq!(joined.len(), 2, "step 1 and the others' presence");
    let left = doc.leave(A);
    let [
        Output::Broadcast {
            except: None,
            frame,
        },
    ] = left.as_slice()
    else {
        panic!("one broadcast: {left:?}");
    };
    let Ok(Message::Awareness(entries)) = wire::decode(frame) else {
        panic!("presence");
    };
    assert_eq!((entries[0].client, entries[0].json.as_str()), (42, "null"));
    assert!(entries[0].clock > 1);
}

#[test]
fn hidden_members_show_no_cursor_and_nobody_claims_endless_clients() {
    let mut doc = Document::new(Limits::default());
    doc.join(A, member("Ada", true));
    doc.join(
        READER,
        Member {
            hidden: true,
            ..member("Rex the reviewer", false)
        },
    );
    let cursor = |client: u64| {
        wire::encode(&Message::Awareness(vec![wire::PresenceEntry {
            client,
            clock: 1,
            json: r#"{"cursor":{"anchor":0}}"#.into(),
        }]))
    };
    assert_eq!(
        doc.receive(READER, &cursor(7)),
        Ok(Vec::new()),
        "not relayed"
    );
    let late = doc.join(B, member("Bo", true));
    assert_eq!(late.len(), 1, "only step 1: nobody's presence to show");

    for client in 0..sightline_collab::MAX_CLIENTS_PER_MEMBER as u64 {
        assert!(doc.receive(A, &cursor(100 + client)).is_ok());
    }
    assert!(matches!(
        doc.receive(A, &cursor(999)),
        Err(CollabError::Presence(_))
    ));
}

#[test]
fn the_server_can_replace_the_text_for_everyone() {
    let mut doc = Document::new(Limits::default());
    let mut net = Net::new(&mut doc);
    net.connect(A, member("Ada", true));
    let typed = net.client(A).edit(|txn, text| text.insert(txn, 0, "old"));
    net.send(A, &typed).expect("accepted");
    let out = net
        .doc
        .replace("print('starter')\n", Some("python"))
        .expect("fits");
    net.deliver(out);
    assert_eq!(net.client(A).text(), "print('starter')\n");
    assert_eq!(net.doc.language().as_deref(), Some("python"));
    let snapshot = replay(&net.stored).expect("replays");
    assert_eq!(snapshot.text, "print('starter')\n");
    assert_eq!(snapshot.language.as_deref(), Some("python"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any frame at all is either accepted or refused with an error; the document stays
    /// usable.
    #[test]
    fn arbitrary_frames_never_break_the_document(frame in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut doc = Document::new(Limits::default());
        doc.join(A, member("Ada", true));
        let _ = doc.receive(A, &frame);
        let client = Client::new();
        let edit = client.edit(|txn, text| text.insert(txn, 0, "ok"));
        let before = doc.text();
        if doc.receive(A, &edit).is_ok() {
            prop_assert!(doc.text().contains("ok"), "{before:?} then {:?}", doc.text());
        }
    }
}
