//! Whether the object store is answering: every store operation the recorder (and the server
//! serving recordings) makes goes through [`Watched`], which notes its outcome in a
//! [`StoreHealth`]. A failure of the store itself opens an outage; the next operation the store
//! answers ends it. What never reaches the store (a presigned URL is computed locally, a key
//! refused before any request) says nothing about it. What people are told
//! ("waiting for storage since 14:02: connection refused") comes from here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::RecorderError;
use crate::store::{ObjectStore, StoreFuture};

/// The longest error text kept: enough to say what went wrong, never a whole response body.
const MAX_ERROR_CHARS: usize = 300;

/// The store has been failing since `since`; `error` is the latest failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// When the first failure of this outage happened.
    pub since: SystemTime,
    /// Failed operations since then (every retry counts).
    pub failures: u64,
    /// The latest failure, shortened.
    pub error: String,
}

/// The store's health, shared by everything that uses the store.
#[derive(Debug, Default)]
pub struct StoreHealth {
    outage: Mutex<Option<Outage>>,
}

impl StoreHealth {
    /// The current outage, if the store's latest answer was a failure.
    pub fn outage(&self) -> Option<Outage> {
        self.outage.lock().ok().and_then(|outage| outage.clone())
    }

    /// Notes one operation's outcome.
    fn note<T>(&self, result: &Result<T, RecorderError>) {
        // A key refused before any request is the caller's mistake, not the store's.
        if let Err(RecorderError::BadKey(_)) = result {
            return;
        }
        let Ok(mut outage) = self.outage.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                if let Some(ended) = outage.take() {
                    tracing::info!(
                        failures = ended.failures,
                        "the recording store answers again"
                    );
                }
            }
            Err(err) => {
                let error: String = err.to_string().chars().take(MAX_ERROR_CHARS).collect();
                match outage.as_mut() {
                    Some(open) => {
                        open.failures += 1;
                        open.error = error;
                    }
                    None => {
                        tracing::error!(%error, "the recording store does not answer; recordings wait on disk");
                        *outage = Some(Outage {
                            since: SystemTime::now(),
                            failures: 1,
                            error,
                        });
                    }
                }
            }
        }
    }
}

/// A store whose every operation's outcome is noted in a [`StoreHealth`].
#[derive(Debug)]
pub struct Watched {
    inner: Arc<dyn ObjectStore>,
    health: Arc<StoreHealth>,
}

impl Watched {
    /// `inner`, watched; its health is read from `health`.
    pub fn new(inner: Arc<dyn ObjectStore>, health: Arc<StoreHealth>) -> Watched {
        Watched { inner, health }
    }

    fn watch<'a, T: Send + 'a>(&'a self, operation: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let result = operation.await;
            self.health.note(&result);
            result
        })
    }
}

impl ObjectStore for Watched {
    fn put_file<'a>(&'a self, key: &'a str, path: &'a Path) -> StoreFuture<'a, ()> {
        self.watch(self.inner.put_file(key, path))
    }

    fn put_bytes<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> StoreFuture<'a, ()> {
        self.watch(self.inner.put_bytes(key, bytes))
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.watch(self.inner.get(key))
    }

    fn download<'a>(&'a self, key: &'a str, to: &'a Path) -> StoreFuture<'a, bool> {
        self.watch(self.inner.download(key, to))
    }

    fn objects<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        self.watch(self.inner.objects(prefix))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.watch(self.inner.delete(key))
    }

    fn presigned_get<'a>(
        &'a self,
        key: &'a str,
        valid: Duration,
    ) -> StoreFuture<'a, Option<String>> {
        // Signed locally: it tells nothing about whether the store answers.
        self.inner.presigned_get(key, valid)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.inner.local_path(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn a_failure_opens_an_outage_and_the_next_success_ends_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("store");
        let health = Arc::new(StoreHealth::default());
        let store = Watched::new(Arc::new(LocalStore::new(&root)), Arc::clone(&health));
        store.put_bytes("a/one", b"1".to_vec()).await?;
        assert_eq!(health.outage(), None);

        // The store's directory becomes a file: every write fails, as on a broken disk.
        std::fs::remove_dir_all(&root)?;
        std::fs::write(&root, b"not a directory")?;
        assert!(store.put_bytes("a/two", b"2".to_vec()).await.is_err());
        let first = health.outage().expect("an outage after a failure");
        assert_eq!(first.failures, 1);
        assert!(!first.error.is_empty());
        assert!(store.put_bytes("a/two", b"2".to_vec()).await.is_err());
        let second = health.outage().expect("still out");
        assert_eq!(
            (second.failures, second.since),
            (2, first.since),
            "one outage, counted"
        );

        // Neither a presigned URL (made locally) nor a refused key says the store is back.
        store
            .presigned_get("a/one", Duration::from_secs(60))
            .await?;
        assert!(store.put_bytes("../escape", b"x".to_vec()).await.is_err());
        assert_eq!(health.outage().map(|o| o.failures), Some(2));

        std::fs::remove_file(&root)?;
        store.put_bytes("a/two", b"2".to_vec()).await?;
        assert_eq!(health.outage(), None, "a success ends it");
        assert_eq!(store.get("a/two").await?, Some(b"2".to_vec()));
        Ok(())
    }
}
