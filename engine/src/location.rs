//! Where a lake lives: a local directory or an S3 prefix, and how to reach it.

use std::collections::HashMap;
use std::path::Path;

use url::Url;

use crate::error::{EngineError, Result};
use crate::naming::TableId;

/// The root of a lake plus the storage options used for every table under it.
#[derive(Debug, Clone)]
pub struct LakeLocation {
    root: Url,
    storage_options: HashMap<String, String>,
}

impl LakeLocation {
    /// Parse a lake root: `./lake`, `/abs/dir`, `file:///dir`, or `s3://bucket/prefix`.
    ///
    /// Storage options (lower- or upper-case AWS keys such as `aws_endpoint_url`) come from
    /// `cdplake.toml`; the standard `AWS_*` environment variables fill in the rest.
    pub fn parse(root: &str, storage_options: HashMap<String, String>) -> Result<Self> {
        let invalid = |reason: String| EngineError::InvalidLocation { root: root.to_string(), reason };
        let url = if root.contains("://") {
            let url = Url::parse(root).map_err(|e| invalid(e.to_string()))?;
            match url.scheme() {
                "s3" | "s3a" => {
                    if url.host_str().is_none_or(str::is_empty) {
                        return Err(invalid("an S3 lake needs a bucket: s3://BUCKET/PREFIX".into()));
                    }
                    url
                }
                "file" => url,
                other => {
                    return Err(invalid(format!(
                        "scheme '{other}' is not supported; use a local directory or s3://bucket/prefix"
                    )));
                }
            }
        } else {
            local_dir_url(Path::new(root)).map_err(invalid)?
        };
        Ok(Self { root: with_trailing_slash(url), storage_options })
    }

    /// The root URL, always ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.root.scheme(), "s3" | "s3a")
    }

    /// For a local lake, its directory.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        (self.root.scheme() == "file").then(|| self.root.to_file_path().ok()).flatten()
    }

    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }

    /// URL of a table: `<root>/<zone>/<table>/`.
    pub fn table_url(&self, id: &TableId) -> Url {
        self.join(&format!("{}/", id.relative_path()))
    }

    /// URL of any path under the root (`_catalog/tables/`, ...).
    pub fn join(&self, relative: &str) -> Url {
        // Names are validated snake_case, so the join cannot escape the root.
        self.root.join(relative).unwrap_or_else(|_| self.root.clone())
    }

    /// A readable name of the server behind the lake, for errors and the probe cache.
    pub fn endpoint(&self) -> String {
        if !self.is_s3() {
            return self.root.to_string();
        }
        let bucket = self.root.host_str().unwrap_or_default();
        let endpoint = self.option("aws_endpoint_url").or_else(|| self.option("aws_endpoint")).unwrap_or_else(|| {
            let region = self.option("aws_region").unwrap_or_else(|| "us-east-1".into());
            format!("https://s3.{region}.amazonaws.com")
        });
        format!("{} (bucket {bucket})", endpoint.trim_end_matches('/'))
    }

    /// A storage option from the config map, else from the environment (case-insensitive key).
    pub fn option(&self, key: &str) -> Option<String> {
        self.storage_options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(key.to_ascii_uppercase()).ok())
            .filter(|v| !v.is_empty())
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn local_dir_url(dir: &Path) -> std::result::Result<Url, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create directory: {e}"))?;
    let abs = dir.canonicalize().map_err(|e| format!("cannot resolve directory: {e}"))?;
    Url::from_directory_path(&abs).map_err(|_| format!("'{}' is not an absolute path", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_s3_roots() {
        let dir = tempfile::tempdir().unwrap();
        let local = LakeLocation::parse(dir.path().join("lake").to_str().unwrap(), HashMap::new()).unwrap();
        assert_eq!(local.root().scheme(), "file");
        assert!(local.root().as_str().ends_with("/lake/"));
        let id = TableId::new("raw", "crm_members").unwrap();
        assert!(local.table_url(&id).as_str().ends_with("/lake/raw/crm_members/"));

        let s3 = LakeLocation::parse("s3://bucket/some/prefix", HashMap::new()).unwrap();
        assert!(s3.is_s3());
        assert_eq!(s3.table_url(&id).as_str(), "s3://bucket/some/prefix/raw/crm_members/");

        assert!(LakeLocation::parse("gs://x/y", HashMap::new()).is_err());
        assert!(LakeLocation::parse("s3:///nobucket", HashMap::new()).is_err());
    }
}
