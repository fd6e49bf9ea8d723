//! Requests to the lake's storage, counted by kind. On S3 a job pays per request, and a
//! micro-batch's latency is mostly its requests: the count says what a run costs whatever the
//! speed of the server (the local test server spends more CPU per request than cdplake does).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Calls into the store since the lake was opened (a list call may fetch several pages; a
/// ranged read of several ranges counts once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub get: u64,
    pub put: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.delete + self.copy
    }

    /// The requests made after `earlier` was taken.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - earlier.get,
            put: self.put - earlier.put,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            copy: self.copy - earlier.copy,
        }
    }
}

impl std::ops::AddAssign for RequestCounts {
    fn add_assign(&mut self, other: RequestCounts) {
        self.get += other.get;
        self.put += other.put;
        self.list += other.list;
        self.delete += other.delete;
        self.copy += other.copy;
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
    /// The lake's prefix in the bucket, without slashes around it.
    prefix: String,
    /// Reads by what they read: `zone/table log|change data|data`.
    gets_by_target: Mutex<HashMap<String, u64>>,
}

impl Counters {
    pub(crate) fn new(lake_prefix: &str) -> Self {
        Self { prefix: lake_prefix.trim_matches('/').to_string(), ..Default::default() }
    }

    fn count_get(&self, location: &Path) {
        bump(&self.get);
        let target = self.target_of(location.as_ref());
        let mut by_target = self.gets_by_target.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *by_target.entry(target).or_default() += 1;
    }

    /// `curated/id_mapping log` for `<prefix>/curated/id_mapping/_delta_log/00..1.json`.
    fn target_of(&self, path: &str) -> String {
        let relative = path.strip_prefix(self.prefix.as_str()).unwrap_or(path).trim_start_matches('/');
        let table: Vec<&str> = relative.split('/').take(2).collect();
        let kind = if relative.contains("/_delta_log/") {
            "log"
        } else if relative.contains("/_change_data/") {
            "change data"
        } else {
            "data"
        };
        format!("{} {kind}", table.join("/"))
    }

    /// Reads so far by target.
    pub(crate) fn gets_by_target(&self) -> HashMap<String, u64> {
        self.gets_by_target.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub(crate) fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            copy: self.copy.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A store that counts the calls it passes on to `inner`, and changes nothing else.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, counters: Arc<Counters>) -> Self {
        Self { inner, counters }
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        bump(&self.counters.put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        bump(&self.counters.put);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.counters.count_get(location);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.counters.count_get(location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counters = self.counters.clone();
        self.inner.delete_stream(locations.inspect(move |_| bump(&counters.delete)).boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        bump(&self.counters.list);
        self.inner.list(prefix)
    }

    // Passed on, not left to the default (which lists everything and filters here).
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        bump(&self.counters.list);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        bump(&self.counters.list);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        bump(&self.counters.copy);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        bump(&self.counters.copy);
        self.inner.rename_opts(from, to, options).await
    }
}
