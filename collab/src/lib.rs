//! The interview's shared code document, sans-IO.
//!
//! One [`Document`] per interview holds a Yjs-compatible CRDT ([`yrs`]): the code as text
//! `code` and shared settings in map `meta` (the `language`). Browsers run `yjs` and speak the
//! y-protocols messages ([`wire`]) to it; the document answers with bytes to send and updates to
//! store, and does no I/O itself.
//!
//! - Who may write is decided by the caller (from the participant's grants) and enforced here:
//!   a read-only member's edits are refused, never merged.
//! - Every accepted change comes out as [`Output::Persist`] (the exact delta the document
//!   integrated), for the shell to store with its arrival time; [`replay`] rebuilds the text
//!   at any moment from those deltas, and [`Document::restore`] brings a document back after a
//!   restart.
//! - Presence (cursors, selections) is relayed, with each member's name and colour set by the
//!   server, not by the member: nobody can appear as someone else.
//! - The text has a size limit and the history a storage limit; an edit past either is
//!   refused with an error, and the document is unchanged.

mod document;
mod replay;
pub mod wire;

pub use document::{Document, Limits, MAX_CLIENTS_PER_MEMBER, Member, Output, PeerId};
pub use replay::{Snapshot, replay};

/// Names of the shared types inside the document.
pub const TEXT: &str = "code";
/// The shared map of settings (`language`).
pub const META: &str = "meta";
/// The key of the language in [`META`].
pub const LANGUAGE: &str = "language";

/// Why a message was refused; the document did not change. Serializable: a refusal on the node
/// that holds the document reaches the node whose request it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "refused", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CollabError {
    /// Not a y-protocols message we understand.
    #[error("malformed document message: {0}")]
    Malformed(String),
    /// The member may read but not write.
    #[error("you may read this document but not edit it")]
    ReadOnly,
    /// The edit would take the text past its size limit.
    #[error("the document would exceed its limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes of text.
        limit: usize,
    },
    /// The document's stored history is full.
    #[error("the document's history is full ({limit} bytes); no more edits are kept")]
    HistoryFull {
        /// The limit, in stored bytes.
        limit: u64,
    },
    /// A presence update that is too large or names another member's client.
    #[error("presence update refused: {0}")]
    Presence(String),
    /// A member id the document does not know.
    #[error("not a member of this document")]
    UnknownMember,
}

impl CollabError {
    /// The stable code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            CollabError::Malformed(_) => "malformed_message",
            CollabError::ReadOnly => "read_only",
            CollabError::TooLarge { .. } => "document_too_large",
            CollabError::HistoryFull { .. } => "history_full",
            CollabError::Presence(_) => "presence_refused",
            CollabError::UnknownMember => "not_a_member",
        }
    }
}
