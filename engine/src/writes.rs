//! Writes from plans: every write of the lake streams a DataFusion plan into the Delta write,
//! executed on the shared runtime ([`crate::memory`]), so nothing is built whole before it is
//! written and a plan that needs more memory than the budget spills or fails clearly.
//!
//! Rows a job already holds (`Vec<RecordBatch>`) become a plan too: an in-memory table split
//! into one partition per core, so Parquet is encoded on every core (delta-rs's own
//! `write(batches)` makes a one-partition table, encoded on one). Partitions take contiguous runs
//! of batches, so the files, in the order the log lists them, keep the rows' order.

use std::sync::Arc;

use deltalake::arrow::array::{RecordBatch, new_null_array};
use deltalake::arrow::compute::cast as cast_array;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::MemTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::{DataFrame, Expr, cast, ident, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{EngineError, Result};
use crate::lake::{COMMIT_RETRIES, Lake, table_arrow_schema};
use crate::naming::TableId;

/// How a write treats the table's rows, and what its errors call it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteKind<'a> {
    pub mode: WriteMode,
    /// Overwrite only the rows matching this SQL predicate.
    pub predicate: Option<&'a str>,
    pub action: &'static str,
}

/// What a write does to the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Append,
    /// Replace every row (or, with a predicate, the rows matching it).
    Overwrite,
}

impl Lake {
    /// Append batches as one commit. Columns are matched by name and cast to the table's types;
    /// missing nullable columns are filled with nulls.
    pub async fn append(&self, id: &TableId, batches: Vec<RecordBatch>) -> Result<DeltaTable> {
        self.append_with(id, batches, CommitProperties::default()).await
    }

    /// [`Lake::append`] with commit properties (app metadata, application transactions).
    pub async fn append_with(
        &self,
        id: &TableId,
        batches: Vec<RecordBatch>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        let table = self.table(id).await?;
        self.append_to(table, id, batches, commit).await
    }

    /// Append to an already loaded table: the commit conflicts with anything committed since
    /// that snapshot, so a check made on it ("already ingested?") and the append are atomic.
    pub async fn append_to(
        &self,
        table: DeltaTable,
        id: &TableId,
        batches: Vec<RecordBatch>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        // No rows still commits (and records the application transactions).
        let commit = commit.with_max_retries(COMMIT_RETRIES);
        self.write_whole(table, id, batches, WriteMode::Append, commit, "append").await
    }

    /// Commit no rows, only `commit`'s application transactions: marks work as done when it
    /// produced no data (a batch whose every row was quarantined).
    pub async fn record_transactions(&self, id: &TableId, commit: CommitProperties) -> Result<DeltaTable> {
        let table = self.table(id).await?;
        self.record_transactions_with(table, id, commit, COMMIT_RETRIES).await
    }

    /// [`Lake::record_transactions`] on a loaded table, with `retries` commit rebases.
    pub(crate) async fn record_transactions_with(
        &self,
        table: DeltaTable,
        id: &TableId,
        commit: CommitProperties,
        retries: usize,
    ) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let empty = RecordBatch::new_empty(table_arrow_schema(&table, id)?);
        table
            .write(vec![empty])
            .with_session_state(self.session_state())
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(commit.with_max_retries(retries))
            .await
            .map_err(|e| EngineError::delta(id, "record transactions", e))
    }

    /// Replace every row of a table with `batches`, in one commit (schema unchanged).
    pub async fn overwrite(
        &self,
        id: &TableId,
        batches: Vec<RecordBatch>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        self.replace(id, None, batches, commit).await
    }

    /// Replace every row of an already loaded table, in one commit: it conflicts with another
    /// writer that removed the same files since the snapshot (read-modify-write of small tables).
    pub async fn overwrite_table(
        &self,
        table: DeltaTable,
        id: &TableId,
        batches: Vec<RecordBatch>,
    ) -> Result<DeltaTable> {
        let commit = CommitProperties::default().with_max_retries(COMMIT_RETRIES);
        self.write_whole(table, id, batches, WriteMode::Overwrite, commit, "overwrite").await
    }

    /// Write `batches`, conformed to the table's schema, to a loaded table in one commit (no
    /// batches: an empty commit).
    async fn write_whole(
        &self,
        table: DeltaTable,
        id: &TableId,
        batches: Vec<RecordBatch>,
        mode: WriteMode,
        commit: CommitProperties,
        action: &'static str,
    ) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let schema = table_arrow_schema(&table, id)?;
        let rows = self.frame_of_batches(schema.clone(), conform_batches(id, &schema, batches)?)?;
        self.write_frame(table, id, rows, WriteKind { mode, predicate: None, action }, commit).await
    }

    /// Replace the rows matching `predicate` (SQL, e.g. `dt = '2024-05-01'`; over partition
    /// columns it only rewrites those partitions) with `batches`, in one commit. Every new row
    /// must match the predicate.
    pub async fn overwrite_partition(
        &self,
        id: &TableId,
        predicate: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<DeltaTable> {
        self.replace(id, Some(predicate), batches, CommitProperties::default()).await
    }

    async fn replace(
        &self,
        id: &TableId,
        predicate: Option<&str>,
        batches: Vec<RecordBatch>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let table = self.table(id).await?;
        let schema = table_arrow_schema(&table, id)?;
        // No rows: what is replaced is still replaced (by nothing).
        let rows = self.frame_of_batches(schema.clone(), conform_batches(id, &schema, batches)?)?;
        self.overwrite_frame(table, id, rows, predicate, commit).await
    }

    /// Rows held in memory as a plan of one partition per core (see the module documentation).
    pub fn frame_of_batches(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let per_partition = batches.len().div_ceil(cores).max(1);
        let mut partitions: Vec<Vec<RecordBatch>> = Vec::with_capacity(cores);
        let mut batches = batches.into_iter().peekable();
        while batches.peek().is_some() {
            partitions.push(batches.by_ref().take(per_partition).collect());
        }
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        let table = MemTable::try_new(schema, partitions).map_err(|e| EngineError::query("rows to write", e))?;
        self.session().read_table(Arc::new(table)).map_err(|e| EngineError::query("rows to write", e))
    }

    /// Append the rows of a plan to a loaded table as one commit, streaming them into the write.
    /// Columns are matched by name and cast to the table's types in the plan; missing nullable
    /// columns are nulls. The commit conflicts with anything committed since `table` was loaded.
    pub async fn append_frame(
        &self,
        table: DeltaTable,
        id: &TableId,
        rows: DataFrame,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        let commit = commit.with_max_retries(COMMIT_RETRIES);
        let kind = WriteKind { mode: WriteMode::Append, predicate: None, action: "append" };
        self.write_frame(table, id, rows, kind, commit).await
    }

    /// Replace every row of a loaded table (or the rows matching `predicate`, SQL) with the rows
    /// of a plan, in one commit.
    pub async fn overwrite_frame(
        &self,
        table: DeltaTable,
        id: &TableId,
        rows: DataFrame,
        predicate: Option<&str>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        let commit = commit.with_max_retries(COMMIT_RETRIES);
        let kind = WriteKind { mode: WriteMode::Overwrite, predicate, action: "overwrite" };
        self.write_frame(table, id, rows, kind, commit).await
    }

    /// The one write: `rows` conformed to the table's schema in the plan, streamed into the
    /// Delta write on the shared runtime.
    pub(crate) async fn write_frame(
        &self,
        table: DeltaTable,
        id: &TableId,
        rows: DataFrame,
        kind: WriteKind<'_>,
        commit: CommitProperties,
    ) -> Result<DeltaTable> {
        let WriteKind { mode, predicate, action } = kind;
        self.ensure_writable()?;
        let schema = table_arrow_schema(&table, id)?;
        // The plan runs in the session it was built in: its tables' stores are registered there.
        let (state, plan) = conform_frame(id, &schema, rows)?.into_parts();
        let save_mode = match mode {
            WriteMode::Append => SaveMode::Append,
            WriteMode::Overwrite => SaveMode::Overwrite,
        };
        let mut write = table
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(state))
            .with_save_mode(save_mode)
            .with_commit_properties(commit);
        if let Some(predicate) = predicate {
            write = write.with_replace_where(predicate.to_string());
        }
        write.await.map_err(|e| write_error(id, action, e))
    }
}

/// A write that ran out of the memory budget is an out-of-memory query error (the job says so,
/// naming the operator and the limit); anything else is the Delta operation's. delta-rs turns
/// DataFusion's "Resources exhausted" into a generic error with that text.
pub(crate) fn write_error(id: &TableId, action: &'static str, error: DeltaTableError) -> EngineError {
    match error {
        DeltaTableError::Generic(message) if message.contains("Resources exhausted") => EngineError::query(
            format!("table {id}: {action}"),
            DataFusionError::ResourcesExhausted(message.replace("Resources exhausted: ", "")),
        ),
        other => EngineError::delta(id, action, other),
    }
}

/// The plan's columns matched to the table's by name and cast to its types, in the plan (no
/// copy of collected batches); missing nullable columns are nulls, unknown columns an error
/// (they would be lost silently).
pub fn conform_frame(id: &TableId, schema: &SchemaRef, rows: DataFrame) -> Result<DataFrame> {
    let have = rows.schema().clone();
    if let Some(extra) = have.fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
        return Err(EngineError::InvalidName {
            what: "column",
            name: extra.name().clone(),
            reason: format!("table {id} has no such column"),
        });
    }
    let mut same = have.fields().len() == schema.fields().len();
    let mut columns: Vec<Expr> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let expr = match have.fields().iter().position(|f| f.name() == field.name()) {
            Some(at) => {
                same &= at == i && have.field(at).data_type() == field.data_type();
                let column = ident(field.name());
                if have.field(at).data_type() == field.data_type() {
                    column
                } else {
                    cast(column, field.data_type().clone())
                }
            }
            None if field.is_nullable() => {
                same = false;
                cast(lit(ScalarValue::Null), field.data_type().clone())
            }
            None => {
                return Err(EngineError::InvalidName {
                    what: "column",
                    name: field.name().clone(),
                    reason: format!("table {id} requires it, and the rows have no such column"),
                });
            }
        };
        columns.push(expr.alias(field.name()));
    }
    if same {
        return Ok(rows);
    }
    rows.select(columns).map_err(|e| EngineError::query(format!("table {id}: shaping rows to the table schema"), e))
}

/// Shape batches to the table schema: match columns by name, cast types, fill missing
/// nullable columns with nulls, and refuse unknown columns (they would be lost silently).
pub fn conform_batches(id: &TableId, schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|batch| {
            if let Some(extra) = batch.schema().fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
                return Err(EngineError::InvalidName {
                    what: "column",
                    name: extra.name().clone(),
                    reason: format!("table {id} has no such column"),
                });
            }
            let columns = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(col) if col.data_type() == field.data_type() => Ok(col.clone()),
                    Some(col) => cast_array(col, field.data_type()).map_err(|e| EngineError::Arrow {
                        context: format!("table {id}: column {}: cast to {}", field.name(), field.data_type()),
                        source: e,
                    }),
                    None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
                    None => Err(EngineError::InvalidName {
                        what: "column",
                        name: field.name().clone(),
                        reason: format!("table {id} requires it, and the rows have no such column"),
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| EngineError::Arrow {
                context: format!("table {id}: shaping rows to the table schema"),
                source: e,
            })
        })
        .collect()
}
