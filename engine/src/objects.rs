//! Plain objects next to the tables: incoming files under `landing/`, or any local path or S3
//! URI a user hands to `cdplake ingest`. Read and written with the lake's storage options.

use bytes::Bytes;
use deltalake::DeltaTableBuilder;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use url::Url;

use crate::error::{EngineError, Result};
use crate::lake::Lake;

/// One object's content and identity.
#[derive(Debug, Clone)]
pub struct FetchedObject {
    /// The object's URL (`file:///...` or `s3://bucket/key`).
    pub uri: String,
    pub bytes: Bytes,
    /// The store's entity tag, if it has one (S3 does; local files do not).
    pub etag: Option<String>,
}

impl Lake {
    /// A location as a URL: an `s3://` URI or `file://` URL as is, anything else a local path
    /// (relative to the working directory).
    pub fn object_url(&self, location: &str) -> Result<Url> {
        let invalid = |reason: String| EngineError::InvalidLocation { root: location.to_string(), reason };
        if location.contains("://") {
            return Url::parse(location).map_err(|e| invalid(e.to_string()));
        }
        let absolute = std::path::absolute(location).map_err(|e| invalid(e.to_string()))?;
        Url::from_file_path(&absolute).map_err(|_| invalid("not an absolute path".into()))
    }

    /// A store rooted at the directory of `url`, and the object's name in it.
    fn store_for(&self, url: &Url) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let mut dir = url.clone();
        let name = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_string();
        dir.path_segments_mut()
            .map_err(|_| EngineError::InvalidLocation {
                root: url.to_string(),
                reason: "not a hierarchical URL".into(),
            })?
            .pop()
            .push("");
        if dir.scheme() == "file"
            && let Ok(local) = dir.to_file_path()
        {
            std::fs::create_dir_all(&local)
                .map_err(|e| EngineError::Io { context: format!("creating {}", local.display()), source: e })?;
        }
        let store = DeltaTableBuilder::from_url(dir.clone())
            .and_then(|b| b.with_storage_options(self.location().storage_options().clone()).build_storage())
            .map_err(|e| EngineError::InvalidLocation { root: dir.to_string(), reason: e.to_string() })?
            .object_store(None);
        let name = percent_decode(&name);
        Ok((store, Path::from(name)))
    }

    /// Read a whole object.
    pub async fn fetch_object(&self, location: &str) -> Result<FetchedObject> {
        let url = self.object_url(location)?;
        let (store, name) = self.store_for(&url)?;
        let store_error = |e: deltalake::ObjectStoreError| EngineError::Store {
            context: format!("reading {url}"),
            source: Box::new(e),
        };
        let result = store.get(&name).await.map_err(store_error)?;
        let etag = result.meta.e_tag.clone().filter(|_| url.scheme() != "file");
        let bytes = result.bytes().await.map_err(store_error)?;
        Ok(FetchedObject { uri: url.to_string(), bytes, etag })
    }

    /// Open an object to be read as a stream (nothing is read yet): its identity, and readers
    /// of its content that hold a buffer, not the object.
    pub async fn open_object(&self, location: &str) -> Result<OpenedObject> {
        let url = self.object_url(location)?;
        if url.scheme() == "file"
            && let Ok(path) = url.to_file_path()
        {
            let size = std::fs::metadata(&path)
                .map_err(|e| EngineError::Io { context: format!("reading {url}"), source: e })?
                .len();
            return Ok(OpenedObject { uri: url.to_string(), etag: None, size, content: Content::Local(path) });
        }
        let (store, name) = self.store_for(&url)?;
        let meta = store
            .head(&name)
            .await
            .map_err(|e| EngineError::Store { context: format!("reading {url}"), source: Box::new(e) })?;
        Ok(OpenedObject {
            uri: url.to_string(),
            etag: meta.e_tag.clone(),
            size: meta.size,
            content: Content::Remote { store, name },
        })
    }

    /// Write a whole object (demo data, exports).
    pub async fn put_object(&self, location: &str, bytes: Bytes) -> Result<String> {
        let url = self.object_url(location)?;
        let (store, name) = self.store_for(&url)?;
        store
            .put(&name, PutPayload::from(bytes))
            .await
            .map_err(|e| EngineError::Store { context: format!("writing {url}"), source: Box::new(e) })?;
        Ok(url.to_string())
    }

    /// Every object under a prefix (a "directory"), as URLs, sorted.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<String>> {
        let mut url = self.object_url(prefix)?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        if url.scheme() == "file" && url.to_file_path().map(|p| !p.exists()).unwrap_or(true) {
            return Ok(Vec::new());
        }
        let (store, _) = self.store_for(
            &url.join("x")
                .map_err(|e| EngineError::InvalidLocation { root: url.to_string(), reason: e.to_string() })?,
        )?;
        let metas: Vec<_> = store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| EngineError::Store { context: format!("listing {url}"), source: Box::new(e) })?;
        let mut uris: Vec<String> = metas
            .into_iter()
            .filter(|m| !m.location.filename().is_some_and(|f| f.starts_with('.')))
            .filter_map(|m| url.join(m.location.as_ref()).ok().map(|u| u.to_string()))
            .collect();
        uris.sort();
        Ok(uris)
    }
}

/// An object opened for streaming reads. Made by [`Lake::open_object`].
#[derive(Debug)]
pub struct OpenedObject {
    /// The object's URL (`file:///...` or `s3://bucket/key`).
    pub uri: String,
    /// The store's entity tag, if it has one (S3 does; local files do not).
    pub etag: Option<String>,
    pub size: u64,
    content: Content,
}

#[derive(Debug)]
enum Content {
    Local(std::path::PathBuf),
    Remote { store: Arc<dyn ObjectStore>, name: Path },
}

/// A blocking reader of an object's bytes: use it on a blocking thread (`spawn_blocking`).
pub type BlockingRead = Box<dyn std::io::Read + Send>;

impl OpenedObject {
    /// A blocking reader of the content, streamed from the store (a remote object's reader
    /// must be made inside the runtime and read on a blocking thread).
    pub async fn reader(&self) -> Result<BlockingRead> {
        match &self.content {
            Content::Local(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| EngineError::Io { context: format!("reading {}", self.uri), source: e })?;
                Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
            }
            Content::Remote { store, name } => {
                let result = store.get(name).await.map_err(|e| EngineError::Store {
                    context: format!("reading {}", self.uri),
                    source: Box::new(e),
                })?;
                let bytes = result.into_stream().map_err(std::io::Error::other);
                let reader = tokio_util::io::StreamReader::new(bytes);
                Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
            }
        }
    }

    /// The object as a local file, for readers that need to seek (Parquet): a local object is
    /// its own file; a remote one is downloaded, streamed, into `dir` (removed when the returned
    /// guard drops).
    pub async fn local_file(&self, dir: &std::path::Path) -> Result<LocalCopy> {
        use tokio::io::AsyncWriteExt;
        let (store, name) = match &self.content {
            Content::Local(path) => return Ok(LocalCopy { path: path.clone(), temporary: false }),
            Content::Remote { store, name } => (store, name),
        };
        let path = dir.join(format!("cdplake-download-{}", uuid::Uuid::new_v4()));
        let copy = LocalCopy { path: path.clone(), temporary: true };
        let io = |e: std::io::Error| EngineError::Io {
            context: format!("downloading {} to {}", self.uri, path.display()),
            source: e,
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        let mut stream = store
            .get(name)
            .await
            .map_err(|e| EngineError::Store { context: format!("reading {}", self.uri), source: Box::new(e) })?
            .into_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| EngineError::Store { context: format!("reading {}", self.uri), source: Box::new(e) })?
        {
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(copy)
    }
}

/// A local file holding an object; a downloaded copy is removed on drop.
#[derive(Debug)]
pub struct LocalCopy {
    pub path: std::path::PathBuf,
    temporary: bool,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Object names in URLs are percent-encoded (`my%20file.csv`); stores want them decoded.
fn percent_decode(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(byte) = u8::from_str_radix(&name[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("my%20file%2B1.csv"), "my file+1.csv");
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
