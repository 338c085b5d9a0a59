//! The document as it was at a moment, from its stored deltas.

use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, Map, Out, Transact, Update};

use crate::{CollabError, LANGUAGE, META, TEXT};

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
    let doc = Doc::new();
    let text = doc.get_or_insert_text(TEXT);
    let meta = doc.get_or_insert_map(META);
    {
        let mut txn = doc.transact_mut();
        for update in updates {
            let update = Update::decode_v1(update.as_ref())
                .map_err(|e| CollabError::Malformed(e.to_string()))?;
            txn.apply_update(update)
                .map_err(|e| CollabError::Malformed(e.to_string()))?;
        }
    }
    let txn = doc.transact();
    let language = match meta.get(&txn, LANGUAGE) {
        Some(Out::Any(Any::String(language))) => Some(language.to_string()),
        _ => None,
    };
    Ok(Snapshot {
        text: text.get_string(&txn),
        language,
    })
}
