//! `cdplake bench micro-batches` (hidden; benches/maintenance.sh): S3-event micro-batches through
//! the S3 handler, with maintenance every N, measured per window of batches.

use std::collections::HashMap;

use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;
use cdplake_engine::TableId;
use cdplake_operations::maintain::{MaintainRequest, maintain};
use cdplake_zones::tables::ID_MAPPING;
use chrono::Utc;

/// One window of [`bench_micro_batches`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchWindow {
    /// Batches done at the end of the window.
    pub batches: u64,
    /// Over every table (and the catalog): data files on storage, live files, log files.
    pub files: u64,
    pub live_files: u64,
    pub log_files: u64,
    pub bytes: u64,
    /// `curated.id_mapping` alone.
    pub id_mapping_files: u64,
    pub id_mapping_live_files: u64,
    /// Mean storage requests per batch of the window (maintenance not included), by kind.
    pub requests_per_batch: f64,
    pub gets_per_batch: f64,
    pub lists_per_batch: f64,
    pub puts_per_batch: f64,
    /// The ten targets read most in the window: (`zone/table log|change data|data`, reads per
    /// batch).
    pub top_reads_per_batch: Vec<(String, f64)>,
    /// Batch wall times of the window, seconds: mean, median, 90th percentile, slowest, last.
    pub mean_batch_s: f64,
    pub median_batch_s: f64,
    pub p90_batch_s: f64,
    pub max_batch_s: f64,
    pub last_batch_s: f64,
    /// The maintenance run at the end of the window, seconds (0 without).
    pub maintain_s: f64,
}

/// `cdplake bench micro-batches` (hidden): `batches` S3-event micro-batches (two small files
/// each, a CRM change and app events, from the generator with a seed per batch) through the S3
/// handler's code path (`lambda::invoke_as`, audit included) on an S3 lake, with maintenance
/// every `maintain_every` batches (0: never); a [`BenchWindow`] every `window` batches.
pub async fn bench_micro_batches(
    workspace: &Workspace,
    batches: u64,
    window: u64,
    maintain_every: u64,
    mut on_window: impl FnMut(&BenchWindow),
) -> Result<Vec<BenchWindow>> {
    let root = workspace.lake().location().root().clone();
    if !workspace.lake().location().is_s3() {
        return Err(cdplake_core::JobError::bad_input(
            "the S3 handler",
            "needs an S3 lake: pass --lake s3://bucket/prefix",
        ));
    }
    let landing = Landing {
        bucket: root.host_str().unwrap_or_default().to_string(),
        prefix: root.path().trim_matches('/').to_string(),
    };
    let mut windows = Vec::new();
    let mut counts = WindowCounts::start(workspace);
    for batch in 1..=batches {
        let event = landing.put_batch(workspace, batch).await?;
        counts.run_handler(workspace, event, batch).await?;
        let maintain_s = maintain_if_due(workspace, batch, maintain_every).await?;
        if batch % window == 0 || batch == batches {
            let mut w = counts.close(workspace, batch, maintain_s);
            add_footprints(workspace, &mut w).await?;
            on_window(&w);
            windows.push(w);
        }
    }
    Ok(windows)
}

/// The S3 lake's bucket and prefix, where a batch's files land.
struct Landing {
    bucket: String,
    prefix: String,
}

impl Landing {
    /// Put batch `batch`'s files (a CRM change and app events, from the generator with a seed
    /// per batch) under `landing/`, and return the S3 event announcing them.
    async fn put_batch(&self, workspace: &Workspace, batch: u64) -> Result<serde_json::Value> {
        let (files, _) = cdplake_generate::generate(3, 1000 + batch);
        let mut records = Vec::new();
        for source in ["crm_members", "app_events"] {
            let Some(file) = files.iter().find(|f| f.source == source) else { continue };
            let extension = file.name.rsplit('.').next().unwrap_or("json");
            let key = format!("{}/landing/{source}/batch-{batch:05}.{extension}", self.prefix);
            workspace.lake().put_object(&format!("s3://{}/{key}", self.bucket), file.content.clone().into()).await?;
            records.push(self.object_created(&key, file.content.len(), batch));
        }
        Ok(serde_json::json!({ "Records": records }))
    }

    /// The S3 event record of an object put.
    fn object_created(&self, key: &str, size: usize, batch: u64) -> serde_json::Value {
        let bucket = &self.bucket;
        serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-12-30T12:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "bench"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "bench", "x-amz-id-2": "bench"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
                   "bucket": {"name": bucket, "ownerIdentity": {"principalId": "bench"}, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": size, "eTag": "0", "sequencer": format!("{batch:016X}")}}
        })
    }
}

/// What a window counts while its batches run: their wall times, their storage requests, and
/// the reads by target when it began.
struct WindowCounts {
    times: Vec<f64>,
    requests: cdplake_engine::RequestCounts,
    reads_at_start: HashMap<String, u64>,
}

impl WindowCounts {
    fn start(workspace: &Workspace) -> Self {
        WindowCounts {
            times: Vec::new(),
            requests: cdplake_engine::RequestCounts::default(),
            reads_at_start: workspace.lake().storage_reads_by_target(),
        }
    }

    /// Run `event` through the S3 handler (`lambda::invoke_as`, audit included), counting its
    /// wall time and storage requests.
    async fn run_handler(&mut self, workspace: &Workspace, event: serde_json::Value, batch: u64) -> Result<()> {
        let invoker = cdplake_core::audit::Invoker::lambda("s3", &format!("bench-{batch}"));
        let started = std::time::Instant::now();
        let before = workspace.lake().storage_requests();
        let now = Utc::now();
        crate::lambda::invoke_as(workspace, crate::lambda::Handler::S3, event, now, &invoker).await?;
        self.times.push(started.elapsed().as_secs_f64());
        self.requests += workspace.lake().storage_requests().since(&before);
        Ok(())
    }

    /// The window ending at `batch`: its times and requests per batch (footprints still to
    /// add); the counts start again.
    fn close(&mut self, workspace: &Workspace, batch: u64, maintain_s: f64) -> BenchWindow {
        let times = &self.times;
        let n = times.len().max(1) as f64;
        let requests = &self.requests;
        let w = BenchWindow {
            batches: batch,
            maintain_s,
            mean_batch_s: times.iter().sum::<f64>() / n,
            last_batch_s: times.last().copied().unwrap_or_default(),
            median_batch_s: percentile(times, 0.5),
            p90_batch_s: percentile(times, 0.9),
            max_batch_s: percentile(times, 1.0),
            requests_per_batch: requests.total() as f64 / n,
            gets_per_batch: requests.get as f64 / n,
            lists_per_batch: requests.list as f64 / n,
            puts_per_batch: requests.put as f64 / n,
            top_reads_per_batch: top_reads(&self.reads_at_start, &workspace.lake().storage_reads_by_target(), n),
            ..Default::default()
        };
        *self = WindowCounts::start(workspace);
        w
    }
}

/// Run maintenance after every `maintain_every` batches (0: never); its wall time, 0 without.
async fn maintain_if_due(workspace: &Workspace, batch: u64, maintain_every: u64) -> Result<f64> {
    if maintain_every == 0 || batch % maintain_every != 0 {
        return Ok(0.0);
    }
    let started = std::time::Instant::now();
    maintain(workspace, &MaintainRequest::default(), &cdplake_core::audit::Invoker::cli(), Utc::now()).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Add the storage footprint of every table and the catalog to the window, and
/// `curated.id_mapping`'s alone.
async fn add_footprints(workspace: &Workspace, w: &mut BenchWindow) -> Result<()> {
    let mut ids: Vec<TableId> = Vec::new();
    for entry in workspace.catalog.list().await? {
        ids.push(TableId::new(&entry.zone, &entry.table_name)?);
    }
    ids.push(cdplake_catalog::catalog_table_id());
    for id in ids {
        let Ok(f) = workspace.lake().footprint(&id).await else { continue };
        w.files += f.files;
        w.live_files += f.live_files;
        w.log_files += f.log_files;
        w.bytes += f.bytes;
        if id == ID_MAPPING {
            w.id_mapping_files = f.files;
            w.id_mapping_live_files = f.live_files;
        }
    }
    Ok(())
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; 0 when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// The ten targets read most between two counts, per batch (maintenance's reads included).
fn top_reads(before: &HashMap<String, u64>, after: &HashMap<String, u64>, batches: f64) -> Vec<(String, f64)> {
    let mut reads: Vec<(String, f64)> = after
        .iter()
        .map(|(target, n)| (target.clone(), (n - before.get(target).copied().unwrap_or(0)) as f64 / batches))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    reads.sort_by(|a, b| b.1.total_cmp(&a.1));
    reads.truncate(10);
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let times: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile(&times, 0.5), 5.0);
        assert_eq!(percentile(&times, 0.9), 9.0);
        assert_eq!(percentile(&times, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
