//! One interview's document and the members connected to it.

use std::collections::HashMap;

use yrs::updates::decoder::Decode;
use yrs::{
    Any, Doc, GetString, Map, MapRef, Out, ReadTxn, StateVector, Text, TextRef, Transact, Update,
};

use crate::wire::{self, Message, PresenceEntry};
use crate::{CollabError, LANGUAGE, META, TEXT};

/// A connection to the document (the shell numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Who a connection is, as the server knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Shown beside their cursor.
    pub name: String,
    /// Their cursor's colour (CSS, e.g. `#1f77b4`).
    pub color: String,
    /// May edit (else read-only).
    pub can_write: bool,
    /// Not shown to the others (an assigned reviewer, an admin looking in): their presence
    /// is neither kept nor relayed.
    pub hidden: bool,
}

/// Yjs client ids one connection may speak for (a tab has one; a reload in place, a few).
pub const MAX_CLIENTS_PER_MEMBER: usize = 4;

/// How large a document may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of text.
    pub max_text_bytes: usize,
    /// Bytes of stored history (every accepted delta).
    pub max_history_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: 1 << 20,
            max_history_bytes: 32 << 20,
        }
    }
}

/// What the shell must do after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this frame to one member.
    To(PeerId, Vec<u8>),
    /// Send this frame to every member but one (`None`: to all).
    Broadcast {
        /// The member who caused it, who already has it.
        except: Option<PeerId>,
        /// The frame.
        frame: Vec<u8>,
    },
    /// Store this delta (a v1 update) with the time it arrived, before anyone relies on it.
    Persist(Vec<u8>),
}

struct Peer {
    member: Member,
    /// Presence of the Yjs clients this connection speaks for: client id → latest entry.
    presence: HashMap<u64, PresenceEntry>,
}

/// The shared document of one interview.
pub struct Document {
    doc: Doc,
    text: TextRef,
    meta: MapRef,
    limits: Limits,
    history_bytes: u64,
    peers: HashMap<PeerId, Peer>,
    /// Which connection owns each Yjs client id seen in presence.
    owners: HashMap<u64, PeerId>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("peers", &self.peers.len())
            .field("history_bytes", &self.history_bytes)
            .finish()
    }
}

impl Document {
    /// An empty document.
    pub fn new(limits: Limits) -> Self {
        let doc = Doc::new();
        // The root types are made before any transaction is held (yrs takes a write lock to
        // make them).
        let text = doc.get_or_insert_text(TEXT);
        let meta = doc.get_or_insert_map(META);
        Document {
            doc,
            text,
            meta,
            limits,
            history_bytes: 0,
            peers: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    /// The document rebuilt from its stored deltas, oldest first.
    pub fn restore<I, B>(limits: Limits, updates: I) -> Result<Self, CollabError>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut document = Document::new(limits);
        {
            let mut txn = document.doc.transact_mut();
            for update in updates {
                let update = update.as_ref();
                document.history_bytes += update.len() as u64;
                let decoded = Update::decode_v1(update).map_err(|e| malformed(&e))?;
                txn.apply_update(decoded).map_err(|e| malformed(&e))?;
            }
        }
        Ok(document)
    }

    /// The text now.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// The language chosen in the editor, if any.
    pub fn language(&self) -> Option<String> {
        let txn = self.doc.transact();
        match self.meta.get(&txn, LANGUAGE) {
            Some(Out::Any(Any::String(language))) => Some(language.to_string()),
            _ => None,
        }
    }

    /// Bytes of history stored so far.
    pub fn history_bytes(&self) -> u64 {
        self.history_bytes
    }

    /// Members connected now.
    pub fn members(&self) -> usize {
        self.peers.len()
    }

    /// A member connects: they get the server's state vector (so they send what only they
    /// have) and the presence of everyone else.
    pub fn join(&mut self, peer: PeerId, member: Member) -> Vec<Output> {
        self.peers.insert(
            peer,
            Peer {
                member,
                presence: HashMap::new(),
            },
        );
        let state_vector =
            yrs::updates::encoder::Encode::encode_v1(&self.doc.transact().state_vector());
        let mut out = vec![Output::To(
            peer,
            wire::encode(&Message::SyncStep1(state_vector)),
        )];
        let others = self.presence_except(Some(peer));
        if !others.is_empty() {
            out.push(Output::To(peer, wire::encode(&Message::Awareness(others))));
        }
        out
    }

    /// A member disconnects: their cursors disappear for everyone.
    pub fn leave(&mut self, peer: PeerId) -> Vec<Output> {
        let Some(gone) = self.peers.remove(&peer) else {
            return Vec::new();
        };
        self.owners.retain(|_, owner| *owner != peer);
        let entries: Vec<PresenceEntry> = gone
            .presence
            .into_values()
            .map(|entry| PresenceEntry {
                client: entry.client,
                clock: entry.clock.saturating_add(1),
                json: "null".into(),
            })
            .collect();
        if entries.is_empty() {
            return Vec::new();
        }
        vec![Output::Broadcast {
            except: None,
            frame: wire::encode(&Message::Awareness(entries)),
        }]
    }

    /// A frame from a member.
    pub fn receive(&mut self, peer: PeerId, frame: &[u8]) -> Result<Vec<Output>, CollabError> {
        let can_write = self
            .peers
            .get(&peer)
            .ok_or(CollabError::UnknownMember)?
            .member
            .can_write;
        match wire::decode(frame)? {
            Message::SyncStep1(state_vector) => {
                let state_vector =
                    StateVector::decode_v1(&state_vector).map_err(|e| malformed(&e))?;
                let missing = self.doc.transact().encode_state_as_update_v1(&state_vector);
                Ok(vec![Output::To(
                    peer,
                    wire::encode(&Message::SyncStep2(missing)),
                )])
            }
            // A reader's client answers our step 1 with everything it has, which is what it
            // got from us (and the whole delete set): nothing of it is taken, and that is not
            // an error.
            Message::SyncStep2(_) if !can_write => Ok(Vec::new()),
            Message::Update(update) if !can_write => {
                if is_empty_update(&update) {
                    Ok(Vec::new())
                } else {
                    Err(CollabError::ReadOnly)
                }
            }
            Message::SyncStep2(update) | Message::Update(update) => self.apply(peer, &update),
            Message::Awareness(entries) => self.presence(peer, entries),
            Message::QueryAwareness => {
                let all = self.presence_except(None);
                Ok(vec![Output::To(
                    peer,
                    wire::encode(&Message::Awareness(all)),
                )])
            }
        }
    }

    /// Replaces the whole text (and sets the language), as the server: loading a question's
    /// starter code. Everyone receives the change.
    pub fn replace(
        &mut self,
        text: &str,
        language: Option<&str>,
    ) -> Result<Vec<Output>, CollabError> {
        if text.len() > self.limits.max_text_bytes {
            return Err(CollabError::TooLarge {
                limit: self.limits.max_text_bytes,
            });
        }
        let delta = {
            let mut txn = self.doc.transact_mut();
            let len = self.text.len(&txn);
            self.text.remove_range(&mut txn, 0, len);
            self.text.insert(&mut txn, 0, text);
            if let Some(language) = language {
                self.meta.insert(&mut txn, LANGUAGE, language);
            }
            txn.encode_update_v1()
        };
        Ok(self.accepted(None, delta))
    }

    fn apply(&mut self, peer: PeerId, update: &[u8]) -> Result<Vec<Output>, CollabError> {
        if is_empty_update(update) {
            return Ok(Vec::new());
        }
        // An update's encoding holds every character it inserts, so its length bounds how
        // much it can grow the text: the check needs no trial application.
        let text_bytes = self.text.len(&self.doc.transact()) as usize;
        if text_bytes.saturating_add(update.len()) > self.limits.max_text_bytes {
            return Err(CollabError::TooLarge {
                limit: self.limits.max_text_bytes,
            });
        }
        if self.history_bytes.saturating_add(update.len() as u64) > self.limits.max_history_bytes {
            return Err(CollabError::HistoryFull {
                limit: self.limits.max_history_bytes,
            });
        }
        let decoded = Update::decode_v1(update).map_err(|e| malformed(&e))?;
        let delta = {
            let mut txn = self.doc.transact_mut();
            txn.apply_update(decoded).map_err(|e| malformed(&e))?;
            txn.encode_update_v1()
        };
        // Every update received counts against the history, also one yrs holds back because
        // it depends on changes not received (which adds nothing to the delta yet, and which
        // a well-behaved client never sends).
        self.history_bytes += update.len().saturating_sub(delta.len()) as u64;
        Ok(self.accepted(Some(peer), delta))
    }

    fn accepted(&mut self, from: Option<PeerId>, delta: Vec<u8>) -> Vec<Output> {
        if is_empty_update(&delta) {
            return Vec::new();
        }
        self.history_bytes += delta.len() as u64;
        let frame = wire::encode(&Message::Update(delta.clone()));
        vec![
            Output::Persist(delta),
            Output::Broadcast {
                except: from,
                frame,
            },
        ]
    }

    fn presence(
        &mut self,
        peer: PeerId,
        entries: Vec<PresenceEntry>,
    ) -> Result<Vec<Output>, CollabError> {
        let Some(state) = self.peers.get(&peer) else {
            return Err(CollabError::UnknownMember);
        };
        let member = state.member.clone();
        if member.hidden {
            return Ok(Vec::new());
        }
        let mut relayed = Vec::with_capacity(entries.len());
        for mut entry in entries {
            match self.owners.get(&entry.client) {
                Some(owner) if *owner != peer => {
                    return Err(CollabError::Presence(
                        "that client belongs to another member".into(),
                    ));
                }
                Some(_) => {}
                None => {
                    let owned = self.owners.values().filter(|owner| **owner == peer).count();
                    if owned >= MAX_CLIENTS_PER_MEMBER {
                        return Err(CollabError::Presence(
                            "too many clients for one connection".into(),
                        ));
                    }
                    self.owners.insert(entry.client, peer);
                }
            }
            entry.json = stamp(&entry.json, &member)?;
            relayed.push(entry);
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            for entry in &relayed {
                state.presence.insert(entry.client, entry.clone());
            }
        }
        if relayed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Output::Broadcast {
            except: Some(peer),
            frame: wire::encode(&Message::Awareness(relayed)),
        }])
    }

    fn presence_except(&self, peer: Option<PeerId>) -> Vec<PresenceEntry> {
        self.peers
            .iter()
            .filter(|(id, _)| Some(**id) != peer)
            .flat_map(|(_, state)| state.presence.values().cloned())
            .filter(|entry| entry.json != "null")
            .collect()
    }
}

/// Sets the presence state's `user` to who the server knows the member is.
fn stamp(json: &str, member: &Member) -> Result<String, CollabError> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|_| CollabError::Presence("a presence state is not JSON".into()))?;
    let mut state = match value {
        serde_json::Value::Null => return Ok("null".into()),
        serde_json::Value::Object(state) => state,
        _ => {
            return Err(CollabError::Presence(
                "a presence state is an object".into(),
            ));
        }
    };
    state.insert(
        "user".into(),
        serde_json::json!({
            "name": member.name,
            "color": member.color,
            "colorLight": format!("{}33", member.color),
            "canWrite": member.can_write,
        }),
    );
    Ok(serde_json::Value::Object(state).to_string())
}

/// An update that changes nothing: no structs and an empty delete set.
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}

fn malformed(err: &dyn std::fmt::Display) -> CollabError {
    CollabError::Malformed(err.to_string())
}
