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
