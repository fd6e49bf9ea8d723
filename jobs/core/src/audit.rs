//! The audit trail: one row in `_audit.job_runs` per job run, whoever started it (the command
//! line, a Lambda invocation, the schedule).
//!
//! A row says which job ran with which arguments, who or what ran it (user and host, or the
//! Lambda request id), when it started and ended, how it ended, which tables it committed to
//! and at which Delta versions, and the rows it read and wrote. Arguments are written by the
//! entry point as a JSON object it builds itself, never the raw command line: identifiers a
//! user typed (`cdplake erase`, `identity explain`) are recorded as keyed hashes, and no secret
//! (the PII key, AWS credentials) is ever in it.
//!
//! The end time is read from the wall clock here: the audit records when a run ended, it
//! computes nothing from it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{
    Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::{TableId, TableSpec, timestamp_type};
use cdplake_zones::tables::JOB_RUNS;
use chrono::{DateTime, Utc};

use crate::error::{JobError, Result};
use crate::workspace::Workspace;

fn job_runs_spec() -> TableSpec {
    let list = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    TableSpec::new(
        JOB_RUNS.id(),
        Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("job", DataType::Utf8, false),
            Field::new("arguments", DataType::Utf8, false),
            Field::new("trigger", DataType::Utf8, false),
            Field::new("principal", DataType::Utf8, false),
            Field::new("started_at", timestamp_type(), false),
            Field::new("ended_at", timestamp_type(), false),
            Field::new("outcome", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("tables", list, false),
            Field::new("rows_in", DataType::Int64, false),
            Field::new("rows_out", DataType::Int64, false),
        ])),
    )
    .with_description(
        "One row per job run (CLI, Lambda, schedule): job, arguments (no secrets, identifiers keyed-hashed), who, \
         start, end, outcome, tables and Delta versions committed, rows in and out.",
    )
}

/// Who started a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    /// `cli`, `lambda` or `schedule`.
    pub trigger: String,
    /// `user@host`, or `lambda:<request id>`.
    pub principal: String,
}

impl Invoker {
    /// The user and host running the command line.
    pub fn cli() -> Self {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Self { trigger: "cli".into(), principal: format!("{user}@{host}") }
    }

    /// A Lambda invocation (`handler` is `s3`, `schedule` or `query`).
    pub fn lambda(handler: &str, request_id: &str) -> Self {
        let trigger = if handler == "schedule" { "schedule" } else { "lambda" };
        Self { trigger: trigger.into(), principal: format!("lambda:{request_id}") }
    }
}

/// The rows a run read and wrote, as its audit row records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub read: u64,
    pub written: u64,
}

impl std::ops::Add for RowCounts {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self { read: self.read + other.read, written: self.written + other.written }
    }
}

/// What the audit trail takes from a job's report. Each job implements it for its own report,
/// beside the report; a report that counts no rows keeps the default.
pub trait JobReport {
    fn row_counts(&self) -> RowCounts {
        RowCounts::default()
    }
}

/// One run, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub run_id: String,
    pub job: String,
    pub arguments: serde_json::Value,
    pub trigger: String,
    pub principal: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// `ok` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    /// `zone.table@version` of every table the run committed to.
    pub tables: Vec<String>,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// The version of every registered table (and the catalog itself).
async fn versions(workspace: &Workspace) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(entries) = workspace.catalog.list().await else {
        return out;
    };
    let lake = workspace.lake();
    let loads = entries.iter().filter_map(|e| TableId::new(&e.zone, &e.table_name).ok()).map(|id| async move {
        let version = lake.table(&id).await.ok().and_then(|t| t.version());
        (id.to_string(), version)
    });
    for (name, version) in futures::future::join_all(loads).await {
        if let Some(v) = version {
            out.insert(name, v as u64);
        }
    }
    out
}

/// A run being recorded: [`Recorder::start`] before the job, [`Recorder::finish`] after it.
#[derive(Debug)]
pub struct Recorder {
    job: String,
    arguments: serde_json::Value,
    invoker: Invoker,
    started_at: DateTime<Utc>,
    before: BTreeMap<String, u64>,
}

impl Recorder {
    pub async fn start(
        workspace: &Workspace,
        invoker: Invoker,
        job: &str,
        arguments: serde_json::Value,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self { job: job.into(), arguments, invoker, started_at, before: versions(workspace).await }
    }

    /// Append the run's row; a failure to write it is logged, never hides the run's own result.
    pub async fn finish(self, workspace: &Workspace, rows: RowCounts, error: Option<String>) {
        let after = versions(workspace).await;
        let own = JOB_RUNS.id().to_string();
        let tables = after
            .iter()
            .filter(|(name, version)| self.before.get(*name) != Some(*version) && **name != own)
            .map(|(name, version)| format!("{name}@{version}"))
            .collect();
        let row = JobRun {
            run_id: uuid::Uuid::new_v4().to_string(),
            job: self.job.clone(),
            arguments: self.arguments,
            trigger: self.invoker.trigger,
            principal: self.invoker.principal,
            started_at: self.started_at,
            ended_at: Utc::now(),
            outcome: if error.is_none() { "ok".into() } else { "failed".into() },
            error,
            tables,
            rows_in: rows.read,
            rows_out: rows.written,
        };
        if let Err(e) = append(workspace, &row).await {
            tracing::error!(job = self.job, error = %e, "could not append the run to {JOB_RUNS}");
        }
    }
}

/// Run `job` and append its row to `_audit.job_runs`, whatever its outcome; the run's own
/// result is returned unchanged.
pub async fn audited<T, F>(
    workspace: &Workspace,
    invoker: &Invoker,
    job: &str,
    arguments: serde_json::Value,
    started_at: DateTime<Utc>,
    run: F,
) -> Result<T>
where
    T: JobReport,
    F: Future<Output = Result<T>>,
{
    let recorder = Recorder::start(workspace, invoker.clone(), job, arguments, started_at).await;
    let result = run.await;
    let rows = result.as_ref().map(JobReport::row_counts).unwrap_or_default();
    recorder.finish(workspace, rows, result.as_ref().err().map(|e| e.to_string())).await;
    result
}

/// Append one run.
pub async fn append(workspace: &Workspace, run: &JobRun) -> Result<()> {
    let lake = workspace.lake();
    if lake.ensure_writable().is_err() {
        return Ok(());
    }
    workspace.catalog.ensure_table(&job_runs_spec(), &TableMeta::default()).await?;
    let mut tables = ListBuilder::new(StringBuilder::new()).with_field(Field::new("element", DataType::Utf8, true));
    for t in &run.tables {
        tables.values().append_value(t);
    }
    tables.append(true);
    let micros =
        |t: DateTime<Utc>| Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"));
    let batch = RecordBatch::try_new(
        job_runs_spec().schema,
        vec![
            Arc::new(StringArray::from(vec![run.run_id.as_str()])),
            Arc::new(StringArray::from(vec![run.job.as_str()])),
            Arc::new(StringArray::from(vec![run.arguments.to_string()])),
            Arc::new(StringArray::from(vec![run.trigger.as_str()])),
            Arc::new(StringArray::from(vec![run.principal.as_str()])),
            micros(run.started_at),
            micros(run.ended_at),
            Arc::new(StringArray::from(vec![run.outcome.as_str()])),
            Arc::new(StringArray::from(vec![run.error.as_deref()])),
            Arc::new(tables.finish()),
            Arc::new(Int64Array::from(vec![run.rows_in as i64])),
            Arc::new(Int64Array::from(vec![run.rows_out as i64])),
        ],
    )
    .map_err(|e| JobError::arrow("audit row", e))?;
    lake.append(&JOB_RUNS.id(), vec![batch]).await?;
    Ok(())
}

/// The latest runs, newest first.
pub async fn list(workspace: &Workspace, limit: usize) -> Result<Vec<RecordBatch>> {
    if !workspace.lake().table_exists(&JOB_RUNS.id()).await? {
        return Ok(Vec::new());
    }
    let session = workspace.catalog.sql_session().await?;
    let sql = format!(
        "SELECT started_at, job, trigger, principal, outcome, \
         CAST(date_part('epoch', ended_at) - date_part('epoch', started_at) AS DECIMAL(12,1)) AS seconds, \
         rows_in, rows_out, array_to_string(tables, ' ') AS tables, arguments, error \
         FROM {JOB_RUNS} ORDER BY started_at DESC LIMIT {limit}"
    );
    session.sql(&sql).await?.collect().await.map_err(|e| JobError::query("audit: listing runs", e))
}

/// An identifier a user typed, as the audit trail may keep it.
pub fn hashed_identifier(text: &str) -> String {
    let key = cdplake_zones::normalize::pii_key_from_env().unwrap_or_else(|| b"cdplake-audit".to_vec());
    let (kind, _) = text.split_once(':').unwrap_or(("identifier", ""));
    format!("{kind}:{}", &cdplake_zones::normalize::pii_hash(&format!("cdplake-audit:{text}"), Some(&key))[..16])
}

impl<T: JobReport> JobReport for Vec<T> {
    fn row_counts(&self) -> RowCounts {
        self.iter().map(JobReport::row_counts).fold(RowCounts::default(), |a, b| a + b)
    }
}

impl JobReport for () {}
impl JobReport for serde_json::Value {}
