//! The y-protocols messages, as y-websocket frames them: one message per binary frame.
//!
//! ```text
//! [0][0][bytes state vector]   sync step 1      [0][1][bytes update]  sync step 2
//! [0][2][bytes update]         update           [1][bytes awareness]  presence
//! [3]                          presence query
//! ```
//! (`bytes` is a varuint length and the bytes.) A presence payload is
//! `count, { client, clock, json }*`. It is parsed here rather than through yrs, so that
//! hostile client ids are plain numbers we compare, never ids we build.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::CollabError;

/// Largest presence state (JSON) accepted from one client.
pub const MAX_PRESENCE_JSON: usize = 4096;
/// Most client states in one presence update.
pub const MAX_PRESENCE_ENTRIES: usize = 16;

const MSG_SYNC: u64 = 0;
const MSG_AWARENESS: u64 = 1;
const MSG_QUERY_AWARENESS: u64 = 3;
const SYNC_STEP1: u64 = 0;
const SYNC_STEP2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// "Here is what I have" (an encoded state vector).
    SyncStep1(Vec<u8>),
    /// "Here is what you lack" (an update).
    SyncStep2(Vec<u8>),
    /// A change (an update).
    Update(Vec<u8>),
    /// Presence of one or more clients.
    Awareness(Vec<PresenceEntry>),
    /// "Send me everyone's presence."
    QueryAwareness,
}

/// One client's presence state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The Yjs client id.
    pub client: u64,
    /// Grows with every change of the state.
    pub clock: u64,
    /// The state as JSON; `null` when the client left.
    pub json: String,
}

fn malformed(err: impl std::fmt::Display) -> CollabError {
    CollabError::Malformed(err.to_string())
}

/// Decodes one frame.
pub fn decode(frame: &[u8]) -> Result<Message, CollabError> {
    let mut cursor = Cursor::new(frame);
    let kind: u64 = cursor.read_var().map_err(malformed)?;
    let message = match kind {
        MSG_SYNC => {
            let step: u64 = cursor.read_var().map_err(malformed)?;
            let payload = cursor.read_buf().map_err(malformed)?.to_vec();
            match step {
                SYNC_STEP1 => Message::SyncStep1(payload),
                SYNC_STEP2 => Message::SyncStep2(payload),
                SYNC_UPDATE => Message::Update(payload),
                other => return Err(malformed(format!("unknown sync step {other}"))),
            }
        }
        MSG_AWARENESS => {
            let payload = cursor.read_buf().map_err(malformed)?;
            Message::Awareness(decode_presence(payload)?)
        }
        MSG_QUERY_AWARENESS => Message::QueryAwareness,
        other => return Err(malformed(format!("unknown message type {other}"))),
    };
    Ok(message)
}

fn decode_presence(payload: &[u8]) -> Result<Vec<PresenceEntry>, CollabError> {
    let mut cursor = Cursor::new(payload);
    let count: u64 = cursor.read_var().map_err(malformed)?;
    if count as usize > MAX_PRESENCE_ENTRIES {
        return Err(CollabError::Presence(format!(
            "{count} client states in one update"
        )));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client: u64 = cursor.read_var().map_err(malformed)?;
        let clock: u64 = cursor.read_var().map_err(malformed)?;
        let json = cursor.read_string().map_err(malformed)?;
        if json.len() > MAX_PRESENCE_JSON {
            return Err(CollabError::Presence(
                "a presence state is too large".into(),
            ));
        }
        entries.push(PresenceEntry {
            client,
            clock,
            json: json.to_owned(),
        });
    }
    Ok(entries)
}

/// Encodes one message as a frame.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match message {
        Message::SyncStep1(payload) => sync(&mut out, SYNC_STEP1, payload),
        Message::SyncStep2(payload) => sync(&mut out, SYNC_STEP2, payload),
        Message::Update(payload) => sync(&mut out, SYNC_UPDATE, payload),
        Message::Awareness(entries) => {
            let mut payload = Vec::new();
            payload.write_var(entries.len() as u64);
            for entry in entries {
                payload.write_var(entry.client);
                payload.write_var(entry.clock);
                payload.write_string(&entry.json);
            }
            out.write_var(MSG_AWARENESS);
            out.write_buf(&payload);
        }
        Message::QueryAwareness => out.write_var(MSG_QUERY_AWARENESS),
    }
    out
}

fn sync(out: &mut Vec<u8>, step: u64, payload: &[u8]) {
    out.write_var(MSG_SYNC);
    out.write_var(step);
    out.write_buf(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::SyncStep1(vec![0]),
            Message::SyncStep2(vec![0, 0]),
            Message::Update(vec![1, 2, 3]),
            Message::QueryAwareness,
            Message::Awareness(vec![PresenceEntry {
                client: (1 << 53) - 1,
                clock: 7,
                json: r#"{"cursor":null}"#.into(),
            }]),
        ] {
            assert_eq!(decode(&encode(&message)), Ok(message));
        }
    }

    #[test]
    fn the_bytes_are_the_y_websocket_ones() {
        // y-protocols: writeVarUint(0) writeVarUint(2) writeVarUint8Array([9])
        assert_eq!(encode(&Message::Update(vec![9])), [0, 2, 1, 9]);
        assert_eq!(encode(&Message::QueryAwareness), [3]);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for frame in [
            &[][..],
            &[0],
            &[0, 9, 0],
            &[0, 2, 200],
            &[7],
            &[1, 3, 1, 1, 1],
            &[255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1],
        ] {
            assert!(decode(frame).is_err(), "{frame:?}");
        }
        let mut many = Vec::new();
        many.write_var(1000u64);
        let mut frame = Vec::new();
        frame.write_var(MSG_AWARENESS);
        frame.write_buf(&many);
        assert!(matches!(decode(&frame), Err(CollabError::Presence(_))));
    }
}
