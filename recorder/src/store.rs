//! Object storage behind one trait: a local directory (the embedded default) or S3.
//!
//! Keys are `/`-separated paths (`recordings/{id}/manifest.json`). Writing a key that exists
//! replaces it, so an upload retried after a failure (or after a restart) never duplicates
//! anything. Large files go to S3 in parts.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::error::RecorderError;

/// A boxed future, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RecorderError>> + Send + 'a>>;

/// Files above this size are uploaded to S3 in parts.
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of each part of a multipart upload (S3 wants at least 5 MiB but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where recordings are kept.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores the file at `path` under `key`, replacing what was there.
    fn put_file<'a>(&'a self, key: &'a str, path: &'a Path) -> StoreFuture<'a, ()>;
    /// Stores `bytes` under `key`, replacing what was there.
    fn put_bytes<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> StoreFuture<'a, ()>;
    /// Reads a whole object; `None` if there is none.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Copies an object into a local file; false if there is none.
    fn download<'a>(&'a self, key: &'a str, to: &'a Path) -> StoreFuture<'a, bool>;
    /// Every object under a prefix with its size in bytes, in no particular order.
    fn objects<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, u64)>>;
    /// Keys under a prefix, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut keys: Vec<String> = self
                .objects(prefix)
                .await?
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            keys.sort();
            Ok(keys)
        })
    }
    /// How many objects and bytes are stored under a prefix.
    fn usage<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Usage> {
        Box::pin(async move {
            let objects = self.objects(prefix).await?;
            Ok(Usage::of(objects.into_iter().map(|(_, size)| size)))
        })
    }
    /// Deletes an object (no error if it is already gone).
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;
    /// Where a client may read an object directly for `valid` (S3: a presigned URL); `None`
    /// when the store cannot hand out URLs and the server must stream it.
    fn presigned_get<'a>(
        &'a self,
        key: &'a str,
        valid: Duration,
    ) -> StoreFuture<'a, Option<String>>;
    /// The local file behind a key, for stores that have one (the server streams it with ranges).
    fn local_path(&self, key: &str) -> Option<PathBuf>;
}

/// What a store holds under a prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Usage {
    fn of(sizes: impl IntoIterator<Item = u64>) -> Usage {
        sizes
            .into_iter()
            .fold(Usage::default(), |usage, size| Usage {
                objects: usage.objects + 1,
                bytes: usage.bytes.saturating_add(size),
            })
    }
}

/// Rejects keys that could leave the store's root.
fn check_key(key: &str) -> Result<(), RecorderError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(RecorderError::BadKey(key.to_owned()))
    } else {
        Ok(())
    }
}

/// Objects as files under a directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, RecorderError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Every object under `prefix` with its size (files being written are not objects yet). The
    /// walk starts at the prefix's directory, not at the root.
    async fn walk(&self, prefix: &str) -> Result<Vec<(String, u64)>, RecorderError> {
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.path(dir)?,
            _ => self.root.clone(),
        };
        let mut objects = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let path = entry.path();
                if entry.file_type().await?.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if !key.starts_with(prefix) || key.ends_with(".partial") {
                    continue;
                }
                match entry.metadata().await {
                    Ok(metadata) => objects.push((key, metadata.len())),
                    // Deleted while listed.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(objects)
    }

    /// Writes through a temporary file and a rename, so a reader never sees half an object.
    async fn write_atomically(&self, key: &str, bytes: &[u8]) -> Result<(), RecorderError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, &path).await?;
        Ok(())
    }
}

impl ObjectStore for LocalStore {
    fn put_file<'a>(&'a self, key: &'a str, path: &'a Path) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let target = self.path(key)?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let partial = target.with_extension("partial");
            tokio::fs::copy(path, &partial).await?;
            tokio::fs::rename(&partial, &target).await?;
            Ok(())
        })
    }

    fn put_bytes<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.write_atomically(key, &bytes).await })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)?).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn download<'a>(&'a self, key: &'a str, to: &'a Path) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            match tokio::fs::copy(self.path(key)?, to).await {
                Ok(_) => Ok(true),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn objects<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(self.walk(prefix))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => return Err(err.into()),
            }
            // Directories left empty go too, as in a bucket where they never existed.
            let mut dir = path.parent();
            while let Some(parent) = dir.filter(|d| *d != self.root) {
                if tokio::fs::remove_dir(parent).await.is_err() {
                    break;
                }
                dir = parent.parent();
            }
            Ok(())
        })
    }

    fn presigned_get<'a>(
        &'a self,
        _key: &'a str,
        _valid: Duration,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

/// How to reach an S3-compatible service.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// e.g. `eu-west-1`.
    pub region: String,
    /// The bucket recordings go to.
    pub bucket: String,
    /// Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// Objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// A client for `config`; no request is made yet.
    pub fn new(config: &S3Config) -> S3Store {
        let credentials = Credentials::new(
            &config.access_key,
            &config.secret_key,
            None,
            None,
            "sightline-config",
        );
        let sdk = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&config.endpoint)
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            .build();
        S3Store {
            client: aws_sdk_s3::Client::from_conf(sdk),
            bucket: config.bucket.clone(),
        }
    }

    /// Every object under `prefix` with its size, through as many list pages as it takes.
    async fn walk(&self, prefix: &str) -> Result<Vec<(String, u64)>, RecorderError> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RecorderError::Store(s3_error(&e)))?;
            objects.extend(page.contents().iter().filter_map(|object| {
                let size = object.size().and_then(|size| u64::try_from(size).ok());
                object.key().map(|key| (key.to_owned(), size.unwrap_or(0)))
            }));
        }
        Ok(objects)
    }

    /// Creates the bucket if it does not exist yet (for the embedded test servers).
    pub async fn ensure_bucket(&self) -> Result<(), RecorderError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| RecorderError::Store(format!("creating bucket: {}", s3_error(&e))))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, path: &Path) -> Result<(), RecorderError> {
        use tokio::io::AsyncReadExt;

        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| RecorderError::Store(s3_error(&e)))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| RecorderError::Store("no multipart upload id".into()))?
            .to_owned();
        let result: Result<Vec<CompletedPart>, RecorderError> = async {
            let mut file = tokio::fs::File::open(path).await?;
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut chunk = Vec::with_capacity(PART_SIZE);
                let read = (&mut file)
                    .take(PART_SIZE as u64)
                    .read_to_end(&mut chunk)
                    .await?;
                if read == 0 {
                    break;
                }
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| RecorderError::Store(s3_error(&e)))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                number += 1;
            }
            Ok(parts)
        }
        .await;
        match result {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| RecorderError::Store(s3_error(&e)))?;
                Ok(())
            }
            Err(err) => {
                // Leaves no half upload behind to be billed for.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(err)
            }
        }
    }
}

/// An S3 error with its service code, without credentials or request details.
fn s3_error<E: std::error::Error + 'static>(err: &E) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

impl ObjectStore for S3Store {
    fn put_file<'a>(&'a self, key: &'a str, path: &'a Path) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_key(key)?;
            if tokio::fs::metadata(path).await?.len() > MULTIPART_THRESHOLD {
                return self.put_multipart(key, path).await;
            }
            let bytes = tokio::fs::read(path).await?;
            self.put_bytes(key, bytes).await
        })
    }

    fn put_bytes<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_key(key)?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| RecorderError::Store(s3_error(&e)))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            check_key(key)?;
            let response = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await;
            match response {
                Ok(object) => {
                    let bytes = object
                        .body
                        .collect()
                        .await
                        .map_err(|e| RecorderError::Store(s3_error(&e)))?;
                    Ok(Some(bytes.to_vec()))
                }
                Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
                Err(err) => Err(RecorderError::Store(s3_error(&err))),
            }
        })
    }

    fn download<'a>(&'a self, key: &'a str, to: &'a Path) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            match self.get(key).await? {
                Some(bytes) => {
                    tokio::fs::write(to, bytes).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn objects<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(self.walk(prefix))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_key(key)?;
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| RecorderError::Store(s3_error(&e)))?;
            Ok(())
        })
    }

    fn presigned_get<'a>(
        &'a self,
        key: &'a str,
        valid: Duration,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            check_key(key)?;
            let config = PresigningConfig::expires_in(valid)
                .map_err(|e| RecorderError::Store(e.to_string()))?;
            let request = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .presigned(config)
                .await
                .map_err(|e| RecorderError::Store(s3_error(&e)))?;
            Ok(Some(request.uri().to_owned()))
        })
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_root() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/."] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_key("recordings/r1/manifest.json").is_ok());
    }

    #[tokio::test]
    async fn a_local_store_keeps_replaces_lists_and_deletes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalStore::new(dir.path());
        store
            .put_bytes("recordings/r1/a.json", b"one".to_vec())
            .await
            .expect("put");
        store
            .put_bytes("recordings/r1/a.json", b"two".to_vec())
            .await
            .expect("replace");
        let file = dir.path().join("segment");
        std::fs::write(&file, b"media").expect("file");
        store
            .put_file("recordings/r1/t/seg-00000.webm", &file)
            .await
            .expect("put file");
        assert_eq!(
            store.get("recordings/r1/a.json").await.expect("get"),
            Some(b"two".to_vec())
        );
        assert_eq!(store.get("recordings/r1/none").await.expect("get"), None);
        assert_eq!(
            store.list("recordings/r1/").await.expect("list"),
            vec!["recordings/r1/a.json", "recordings/r1/t/seg-00000.webm"]
        );
        // Replaced bytes are counted once; another recording's objects not at all.
        store
            .put_bytes("recordings/r2/b.json", b"elsewhere".to_vec())
            .await
            .expect("put");
        assert_eq!(
            store.usage("recordings/r1/").await.expect("usage"),
            Usage {
                objects: 2,
                bytes: 8
            }
        );
        assert_eq!(
            store.usage("recordings/none/").await.expect("usage"),
            Usage::default()
        );
        store.delete("recordings/r2/b.json").await.expect("delete");
        store.delete("recordings/r1/a.json").await.expect("delete");
        store.delete("recordings/r1/a.json").await.expect("again");
        assert_eq!(store.list("recordings/").await.expect("list").len(), 1);
        store
            .delete("recordings/r1/t/seg-00000.webm")
            .await
            .expect("delete");
        assert!(
            !dir.path().join("recordings").exists(),
            "no empty directories left"
        );
        assert!(dir.path().exists(), "the root stays");
        assert!(store.put_bytes("../escape", Vec::new()).await.is_err());
    }
}
