//! The document as it was at a moment, from its stored deltas.

use crate::{CollabError, Document, Limits};

/// The document at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its text.
    pub text: String,
    /// Its language, if one was chosen.
    pub language: Option<String>,
}

/// Applies `updates` (oldest first) to an empty document and reads it.
pub fn replay<I, B>(updates: I) -> Result<Snapshot, CollabError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    // Limits guard what members send; a stored history is replayed whole.
    let limits = Limits {
        max_text_bytes: usize::MAX,
        max_history_bytes: u64::MAX,
    };
    let document = Document::restore(limits, updates)?;
    Ok(Snapshot {
        text: document.text(),
        language: document.language(),
    })
}
