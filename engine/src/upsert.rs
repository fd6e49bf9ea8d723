//! The one upsert of the engine: MERGE rows into a table by a key, with the job's watermark
//! (Delta application transactions) in the same commit and the retry policy owned here.
//!
//! Six jobs used to write their own MERGE chain on delta-rs's `MergeBuilder`, each choosing its
//! own retry count, and a caller's `CommitProperties` silently replaced the engine's. Now a job
//! says *what* to merge ([`Upsert::update`], [`Upsert::delete`], [`Upsert::insert`] clauses) and
//! *which work it marks done* ([`Upsert::with_transactions`]); the builder owns how it commits:
//!
//! * commit retries (delta-rs rebases a commit that lost a race to a non-conflicting writer)
//!   are always [`RetryPolicy::commit_retries`];
//! * a real conflict (two MERGEs touching the same files) is rerun on the new version only when
//!   the policy allows it ([`RetryPolicy::rerun`]) and the rows do not depend on the snapshot
//!   the caller read; before a rerun the watermark is checked, so work another writer finished
//!   is not applied twice;
//! * no rows but a watermark: the transactions are committed alone; a MERGE that changed
//!   nothing (every row older than the stored one) still records its watermark.
//!
//! In the style of delta-rs's operations: a builder that implements [`IntoFuture`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::prelude::{DataFrame, Expr, col, lit};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::merge::{MergeBuilder, MergeMetrics};

use crate::error::{EngineError, Result};
use crate::lake::{COMMIT_RETRIES, Lake, table_arrow_schema};
use crate::naming::TableId;
use crate::transactions::applied_version;
use crate::writes::{conform_batches, conform_frame, write_error};

/// How an upsert retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Rebases of a commit that lost a race to a writer it does not conflict with.
    pub commit_retries: usize,
    /// Runs of the whole MERGE when it conflicts (1: never rerun, the caller reruns its step).
    pub attempts: usize,
}

impl Default for RetryPolicy {
    /// Rebase up to 100 times; never rerun (the rows were computed from the caller's snapshot).
    fn default() -> Self {
        Self { commit_retries: COMMIT_RETRIES, attempts: 1 }
    }
}

impl RetryPolicy {
    /// Rerun the MERGE on the table's new version up to `attempts` times in all: for rows that
    /// do not depend on what the table held (a registry entry, a link with its first sighting).
    pub fn rerun(attempts: usize) -> Self {
        Self { attempts: attempts.max(1), ..Self::default() }
    }
}

/// The rows an upsert merges: held in memory, or a plan the MERGE streams.
#[derive(Debug, Clone)]
enum Rows {
    Batches(Vec<RecordBatch>),
    Plan(Box<DataFrame>),
}

#[derive(Debug, Clone)]
enum Clause {
    Update { predicate: Option<String>, set: Vec<(String, String)> },
    Delete { predicate: Option<String> },
    Insert { predicate: Option<String>, set: Vec<(String, String)> },
}

/// What an upsert did.
#[derive(Debug)]
pub struct UpsertOutcome {
    /// The table after the upsert.
    pub table: DeltaTable,
    /// The MERGE's counts, when a MERGE ran.
    pub metrics: Option<MergeMetrics>,
    /// Whether a commit was made (rows changed, or the watermark was recorded).
    pub committed: bool,
    /// The watermark was already on the table (another writer did this work): nothing written.
    pub already_applied: bool,
}

/// MERGE `rows` into a table; see the module documentation. Made by [`Lake::upsert`].
#[derive(Debug)]
pub struct Upsert {
    lake: Lake,
    id: TableId,
    snapshot: Option<DeltaTable>,
    rows: Rows,
    on: Option<Expr>,
    clauses: Vec<Clause>,
    transactions: Vec<Transaction>,
    retry: RetryPolicy,
    conform: bool,
}

impl Lake {
    /// Start an upsert of `rows` into `id`; the source is aliased `source`, the table `target`.
    pub fn upsert(&self, id: &TableId, rows: Vec<RecordBatch>) -> Upsert {
        self.upsert_rows(id, Rows::Batches(rows))
    }

    /// Start an upsert of the rows of a plan, streamed into the MERGE (never collected first):
    /// the way to merge more rows than the memory budget holds. A rerun after a conflict runs
    /// the plan again.
    pub fn upsert_frame(&self, id: &TableId, rows: DataFrame) -> Upsert {
        self.upsert_rows(id, Rows::Plan(Box::new(rows)))
    }

    fn upsert_rows(&self, id: &TableId, rows: Rows) -> Upsert {
        Upsert {
            lake: self.clone(),
            id: id.clone(),
            snapshot: None,
            rows,
            on: None,
            clauses: Vec::new(),
            transactions: Vec::new(),
            retry: RetryPolicy::default(),
            conform: false,
        }
    }
}

impl Upsert {
    /// MERGE into this loaded table: the commit conflicts with anything committed since it was
    /// read, so checks made on it ("not applied yet?") and the write are atomic.
    pub fn on_snapshot(mut self, table: DeltaTable) -> Self {
        self.snapshot = Some(table);
        self
    }

    /// The join predicate (over `target.` and `source.` columns).
    pub fn on(mut self, predicate: Expr) -> Self {
        self.on = Some(predicate);
        self
    }

    /// Join on equal values of these columns.
    pub fn on_columns(self, columns: &[&str]) -> Self {
        let on = columns
            .iter()
            .map(|c| col(format!("target.{c}")).eq(col(format!("source.{c}"))))
            .reduce(Expr::and)
            .unwrap_or(lit(false));
        self.on(on)
    }

    /// When matched (and `predicate`, SQL), set columns to SQL expressions.
    pub fn update(
        mut self,
        predicate: Option<String>,
        set: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let set = set.into_iter().map(|(c, e)| (c.into(), e.into())).collect();
        self.clauses.push(Clause::Update { predicate, set });
        self
    }

    /// When matched (and `predicate`), delete the target row.
    pub fn delete(mut self, predicate: Option<String>) -> Self {
        self.clauses.push(Clause::Delete { predicate });
        self
    }

    /// When not matched (and `predicate`), insert with columns set to SQL expressions.
    pub fn insert(
        mut self,
        predicate: Option<String>,
        set: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let set = set.into_iter().map(|(c, e)| (c.into(), e.into())).collect();
        self.clauses.push(Clause::Insert { predicate, set });
        self
    }

    /// `source.c` for each of `columns`: the set of a plain update or insert.
    pub fn from_source(columns: &[String]) -> Vec<(String, String)> {
        columns.iter().map(|c| (c.clone(), format!("source.{c}"))).collect()
    }

    /// The watermark: these application transactions are committed with the rows (or alone,
    /// when nothing changed).
    pub fn with_transactions(mut self, transactions: Vec<Transaction>) -> Self {
        self.transactions = transactions;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Shape the rows to the table's schema first (match columns by name, cast, fill nulls).
    pub fn conform(mut self) -> Self {
        self.conform = true;
        self
    }

    fn merge_builder(&self, table: DeltaTable, source: DataFrame) -> Result<MergeBuilder> {
        let id = &self.id;
        // The MERGE runs in the session the source was built in: its tables' stores are there.
        let (source_state, plan) = source.into_parts();
        let source = DataFrame::new(source_state.clone(), plan);
        let on = self.on.clone().ok_or_else(|| {
            EngineError::delta(id, "upsert", deltalake::DeltaTableError::Generic("no join predicate given".into()))
        })?;
        let commit = CommitProperties::default()
            .with_application_transactions(self.transactions.clone())
            .with_max_retries(self.retry.commit_retries);
        let mut merge = table
            .merge(source, on)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(Arc::new(source_state))
            .with_commit_properties(commit);
        let error = |e| EngineError::delta(id, "upsert", e);
        for clause in &self.clauses {
            merge = match clause.clone() {
                Clause::Update { predicate, set } => merge
                    .when_matched_update(|u| {
                        let u = match predicate {
                            Some(p) => u.predicate(p),
                            None => u,
                        };
                        set.into_iter().fold(u, |u, (c, e)| u.update(c.as_str(), e))
                    })
                    .map_err(error)?,
                Clause::Delete { predicate } => merge
                    .when_matched_delete(|d| match predicate {
                        Some(p) => d.predicate(p),
                        None => d,
                    })
                    .map_err(error)?,
                Clause::Insert { predicate, set } => merge
                    .when_not_matched_insert(|i| {
                        let i = match predicate {
                            Some(p) => i.predicate(p),
                            None => i,
                        };
                        set.into_iter().fold(i, |i, (c, e)| i.set(c.as_str(), e))
                    })
                    .map_err(error)?,
            };
        }
        Ok(merge)
    }

    /// Is this upsert's watermark on `table` already?
    async fn applied(&self, table: &DeltaTable) -> Result<bool> {
        match self.transactions.first() {
            Some(txn) => Ok(applied_version(table, &self.id.to_string(), &txn.app_id).await?.is_some()),
            None => Ok(false),
        }
    }

    async fn run(mut self) -> Result<UpsertOutcome> {
        self.lake.ensure_writable()?;
        let mut attempt = 0;
        let mut table = match self.snapshot.take() {
            Some(table) => table,
            None => self.lake.table(&self.id).await?,
        };
        let rows = std::mem::replace(&mut self.rows, Rows::Batches(Vec::new()));
        let source = self.source_frame(&table, rows)?;
        loop {
            attempt += 1;
            if attempt > 1 && self.applied(&table).await? {
                return Ok(UpsertOutcome { table, metrics: None, committed: false, already_applied: true });
            }
            let result = if let Some(source) = source.clone() {
                let before = table.version();
                match self.merge_builder(table.clone(), source)?.await {
                    Ok((merged, metrics)) if merged.version() == before && !self.transactions.is_empty() => {
                        // The MERGE changed nothing and made no commit: record the watermark alone.
                        self.record(&merged).await.map(|t| (t, Some(metrics)))
                    }
                    Ok((merged, metrics)) => Ok((merged, Some(metrics))),
                    Err(e) => Err(write_error(&self.id, "upsert", e)),
                }
            } else {
                self.record(&table).await.map(|t| (t, None))
            };
            match result {
                Ok((new, metrics)) => {
                    let committed = new.version() != table.version();
                    return Ok(UpsertOutcome { table: new, metrics, committed, already_applied: false });
                }
                Err(e) if e.is_commit_conflict() && attempt < self.retry.attempts => {
                    tracing::info!(table = %self.id, attempt, error = %e, "upsert conflict, rerunning");
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
                    table = self.lake.table(&self.id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The MERGE's source as a plan on the shared runtime (conformed to the table when asked);
    /// `None` when there are no rows to merge (batches only: a plan's rows are not known before
    /// it runs).
    fn source_frame(&self, table: &DeltaTable, rows: Rows) -> Result<Option<DataFrame>> {
        let schema = table_arrow_schema(table, &self.id)?;
        match rows {
            Rows::Batches(batches) => {
                let batches: Vec<RecordBatch> = if self.conform {
                    conform_batches(&self.id, &schema, batches)?
                } else {
                    batches.into_iter().filter(|b| b.num_rows() > 0).collect()
                };
                let Some(first) = batches.first() else { return Ok(None) };
                let rows_schema = if self.conform { schema } else { first.schema() };
                Ok(Some(self.lake.frame_of_batches(rows_schema, batches)?))
            }
            Rows::Plan(frame) if self.conform => Ok(Some(conform_frame(&self.id, &schema, *frame)?)),
            Rows::Plan(frame) => Ok(Some(*frame)),
        }
    }

    /// Commit only the watermark (nothing when there is none).
    async fn record(&self, table: &DeltaTable) -> Result<DeltaTable> {
        if self.transactions.is_empty() {
            return Ok(table.clone());
        }
        let commit = CommitProperties::default().with_application_transactions(self.transactions.clone());
        self.lake.record_transactions_with(table.clone(), &self.id, commit, self.retry.commit_retries).await
    }
}

impl IntoFuture for Upsert {
    type Output = Result<UpsertOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
