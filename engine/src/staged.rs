//! A staged append: rows written to data files as they arrive, committed later in one commit.
//!
//! Ingest reads a file of any size in chunks: each chunk is encoded to Parquet and uploaded at
//! once (files rolled at [`TARGET_FILE_SIZE`]), so memory holds one chunk and one open file, not
//! the file. Nothing is visible until [`StagedAppend::commit`] adds every written file in one
//! Delta commit, with the caller's application transactions: "this object is ingested" and its
//! rows are still one atomic commit, and work that must be committed *before* it (the rows it
//! refused, to the quarantine) can be committed between the writes and the commit. Files of an
//! append that never commits are orphans `cdplake maintain` vacuums.

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{EngineError, Result};
use crate::lake::{COMMIT_RETRIES, Lake};
use crate::naming::TableId;
use crate::writes::conform_batches;

/// Size at which a staged data file is closed and the next one started.
pub const TARGET_FILE_SIZE: usize = 128 << 20;

/// Rows per Parquet row group of a staged append.
const ROW_GROUP_ROWS: usize = 131_072;

/// Files written for one append, not committed yet. Made by [`Lake::stage_append`].
pub struct StagedAppend {
    id: TableId,
    /// The snapshot the commit is made on: anything committed since conflicts with it.
    table: DeltaTable,
    schema: SchemaRef,
    writer: RecordBatchWriter,
    written: Vec<Action>,
    rows: u64,
}

impl std::fmt::Debug for StagedAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedAppend").field("id", &self.id).field("rows", &self.rows).finish()
    }
}

impl Lake {
    /// Start an append to a loaded table whose rows are written now and committed later.
    pub fn stage_append(&self, table: DeltaTable, id: &TableId) -> Result<StagedAppend> {
        self.ensure_writable()?;
        // Row groups of at most ROW_GROUP_ROWS: a Parquet writer holds its open row group's pages
        // in memory (the default, 1M rows, is hundreds of MB for a wide raw table).
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(|e| EngineError::delta(id, "append", e))?
            .with_writer_properties(properties);
        let schema = writer.arrow_schema();
        Ok(StagedAppend { id: id.clone(), table, schema, writer, written: Vec::new(), rows: 0 })
    }
}

impl StagedAppend {
    /// Write rows (matched to the table's columns by name, as [`Lake::append`] does).
    pub async fn write(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for batch in conform_batches(&self.id, &self.schema, batches)? {
            self.rows += batch.num_rows() as u64;
            self.writer.write(batch).await.map_err(|e| self.error(e))?;
        }
        if self.writer.buffer_len() >= TARGET_FILE_SIZE {
            let added = self.writer.flush().await.map_err(|e| self.error(e))?;
            self.written.extend(added.into_iter().map(Action::Add));
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Give up: the files written so far stay unreferenced (vacuum removes them).
    pub fn abort(mut self) {
        self.writer.reset();
    }

    /// Add every written file to the table in one commit with `commit`'s transactions (no rows:
    /// a commit of the transactions alone). Conflicts with anything committed since the
    /// snapshot the append was staged on.
    pub async fn commit(mut self, lake: &Lake, commit: CommitProperties) -> Result<DeltaTable> {
        let added = self.writer.flush().await.map_err(|e| self.error(e))?;
        self.written.extend(added.into_iter().map(Action::Add));
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!partition_columns.is_empty()).then_some(partition_columns),
            predicate: None,
        };
        CommitBuilder::from(commit.with_max_retries(COMMIT_RETRIES))
            .with_actions(std::mem::take(&mut self.written))
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|e| EngineError::delta(&self.id, "append", e))?;
        lake.table(&self.id).await
    }

    fn error(&self, error: DeltaTableError) -> EngineError {
        EngineError::delta(&self.id, "append", error)
    }
}
