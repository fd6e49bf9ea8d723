//! The latest version of each key, in bounded memory: a clean run's typed rows are staged on
//! local disk (a Parquet file in the spill directory) as the raw rows stream in, then DataFusion
//! ranks each key's versions with a window over a spillable sort, in two plans: the winners, which
//! the clean MERGE streams, and the run's duplicates (only the columns a quarantine row needs),
//! streamed into the quarantine. The counts are the staged rows and their distinct keys.
//!
//! The rank is the order clean has always used, a total order: the latest `order_by` value
//! (a row without one loses to a row with one), then the later ingest, then the later file name
//! and row. So the winner does not depend on the order rows arrive in.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use cdplake_engine::Lake;
use cdplake_engine::arrow::array::AsArray;
use cdplake_engine::arrow::array::{Int64Array, RecordBatch};
use cdplake_engine::arrow::datatypes::Int64Type;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::datafusion::execution::SendableRecordBatchStream;
use cdplake_engine::datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use cdplake_engine::parquet::arrow::ArrowWriter;
use cdplake_engine::parquet::file::properties::{EnabledStatistics, WriterProperties};
use cdplake_zones::contract::{self, CleanRow, Contract, Lineage};

use cdplake_core::columns::{int64, utf8};
use cdplake_core::error::{JobError, Result};

/// The staged column holding each row's `order_by` value.
const ORDER: &str = "_order";
const RANK: &str = "_rank";
const WINNER_URI: &str = "_winner_uri";
const WINNER_ROW: &str = "_winner_row";

/// Typed rows written to local Parquet files as they are typed, one file per typing worker.
pub(crate) struct TypedStaging {
    dir: tempfile::TempDir,
}

impl TypedStaging {
    pub(crate) fn create() -> Result<Self> {
        let spill = cdplake_engine::memory::spill_dir();
        let dir = tempfile::Builder::new().prefix("cdplake-clean-").tempdir_in(&spill).map_err(|e| JobError::Io {
            doing: "creating a staging directory in".into(),
            path: spill.display().to_string(),
            source: e,
        })?;
        Ok(Self { dir })
    }

    /// The file of worker `n` (created when its first row comes).
    pub(crate) fn part(&self, n: usize) -> StagingPart {
        StagingPart { path: self.dir.path().join(format!("typed-{n}.parquet")), writer: None }
    }

    /// The staged rows, ready to be ranked (every part closed, registered as `typed`).
    pub(crate) async fn rank(self, lake: &Lake, staged_rows: u64) -> Result<RankedRows> {
        if staged_rows == 0 {
            return Ok(RankedRows { _dir: self.dir, ranked: None });
        }
        let ctx = lake.session();
        let query = |e| JobError::query("clean: ranking each key's versions", e);
        let dir = format!("{}/", path_text(self.dir.path()));
        ctx.register_parquet("typed", dir, ParquetReadOptions::default()).await.map_err(query)?;
        Ok(RankedRows { _dir: self.dir, ranked: Some(Ranked { ctx, duplicates: Default::default() }) })
    }
}

/// One worker's staging file.
pub(crate) struct StagingPart {
    path: PathBuf,
    writer: Option<ArrowWriter<File>>,
}

impl StagingPart {
    /// Stage typed rows (with their lineage and `order_by` value).
    pub(crate) fn write(&mut self, contract: &Contract<'_>, rows: &[(CleanRow, Lineage)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let arrow = |e| JobError::arrow("clean: staging typed rows", e);
        let refs: Vec<(&CleanRow, &Lineage)> = rows.iter().map(|(r, l)| (r, l)).collect();
        let batch = contract::clean_batch(contract, &refs).map_err(arrow)?;
        let order: Int64Array = rows.iter().map(|(r, _)| r.order).collect();
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(ORDER, DataType::Int64, true));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(order));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow)?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(Self::open(&self.path, &batch)?),
        };
        writer.write(&batch).map_err(|e| JobError::encoding("clean: staging typed rows", e.to_string()))
    }

    fn open(path: &std::path::Path, first: &RecordBatch) -> Result<ArrowWriter<File>> {
        let file = File::create(path).map_err(|e| JobError::Io {
            doing: "creating".into(),
            path: path.display().to_string(),
            source: e,
        })?;
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(65_536))
            .set_statistics_enabled(EnabledStatistics::None)
            .build();
        ArrowWriter::try_new(file, first.schema(), Some(properties))
            .map_err(|e| JobError::encoding("clean: staging typed rows", e.to_string()))
    }

    /// Finish the file; the rows it holds.
    pub(crate) fn close(self) -> Result<u64> {
        let Some(writer) = self.writer else { return Ok(0) };
        let metadata = writer.close().map_err(|e| JobError::encoding("clean: staging typed rows", e.to_string()))?;
        Ok(metadata.file_metadata().num_rows() as u64)
    }
}

fn path_text(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// Each key's versions, latest first.
fn window() -> String {
    format!(
        "PARTITION BY \"{key}\" ORDER BY \"{ORDER}\" DESC NULLS LAST, \"{at}\" DESC, \"{uri}\" DESC, \"{row}\" DESC",
        key = contract::ROW_KEY,
        at = contract::INGESTED_AT,
        uri = contract::SOURCE_URI,
        row = contract::SOURCE_ROW,
    )
}

/// The winner of each key, with `columns` (every column but the staging ones); with no
/// duplicates every row wins and nothing is ranked.
fn winners_sql(columns: &[String], duplicates: bool) -> String {
    let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let columns = columns.join(", ");
    if !duplicates {
        return format!("SELECT {columns} FROM typed");
    }
    format!(
        "SELECT {columns} FROM (SELECT *, row_number() OVER ({window}) AS \"{RANK}\" FROM typed) WHERE \"{RANK}\" = 1",
        window = window(),
    )
}

/// The rows that lost to a later version of their key, with the winner's file and row (only
/// the columns a quarantine row needs go through the sort).
fn duplicates_sql() -> String {
    let (key, batch, uri, row) = (contract::ROW_KEY, contract::BATCH_ID, contract::SOURCE_URI, contract::SOURCE_ROW);
    let window = window();
    let first = format!("{window} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW");
    format!(
        "SELECT \"{key}\", \"{batch}\", \"{uri}\", \"{row}\", \"{WINNER_URI}\", \"{WINNER_ROW}\" FROM (\
         SELECT \"{key}\", \"{batch}\", \"{uri}\", \"{row}\", row_number() OVER ({window}) AS \"{RANK}\", \
         first_value(\"{uri}\") OVER ({first}) AS \"{WINNER_URI}\", \
         first_value(\"{row}\") OVER ({first}) AS \"{WINNER_ROW}\" FROM typed) WHERE \"{RANK}\" > 1"
    )
}

/// The ranked rows of a run (none when no row was valid); the staging files go with it.
pub(crate) struct RankedRows {
    _dir: tempfile::TempDir,
    ranked: Option<Ranked>,
}

struct Ranked {
    ctx: SessionContext,
    /// Set by [`RankedRows::counts`]: with no duplicates every row wins and nothing is sorted.
    duplicates: std::sync::OnceLock<u64>,
}

/// Kept rows (one per key) and the duplicates beside them.
pub(crate) struct Counts {
    pub kept: u64,
    pub duplicates: u64,
    /// Staged rows that are deletes (of any rank): with none, every kept row is an upsert.
    pub deletes: u64,
}

/// A row that lost to a later version of its key.
pub(crate) struct DuplicateOf {
    pub key: String,
    pub batch_id: String,
    pub source_uri: String,
    pub source_row: i64,
    pub winner_uri: String,
    pub winner_row: i64,
}

impl RankedRows {
    /// Rows kept (one per key) and duplicates: the staged rows and their distinct keys.
    pub(crate) async fn counts(&self) -> Result<Counts> {
        let Some(ranked) = &self.ranked else { return Ok(Counts { kept: 0, duplicates: 0, deletes: 0 }) };
        let query = |e| JobError::query("clean: counting kept rows", e);
        // The distinct keys by a GROUP BY, which spills: count(DISTINCT) keeps one hash set
        // in memory and failed under a 2 GiB budget at 47M web events.
        let totals = format!(
            "SELECT count(*) AS \"rows\", count(*) FILTER (WHERE \"{op}\" = 'delete') AS deletes FROM typed",
            op = contract::OP
        );
        let keys = format!(
            "SELECT count(*) AS kept FROM (SELECT \"{key}\" FROM typed GROUP BY \"{key}\")",
            key = contract::ROW_KEY
        );
        let first_row = |batches: Vec<RecordBatch>| {
            batches
                .into_iter()
                .find(|b| b.num_rows() > 0)
                .ok_or_else(|| JobError::bad_input("clean: counting kept rows", "no answer"))
        };
        let totals = first_row(ranked.ctx.sql(&totals).await.map_err(query)?.collect().await.map_err(query)?)?;
        let keys = first_row(ranked.ctx.sql(&keys).await.map_err(query)?.collect().await.map_err(query)?)?;
        let count = |batch: &RecordBatch, name: &str| -> Result<u64> {
            Ok(int64(batch, "the staged rows", name)?.as_primitive::<Int64Type>().value(0) as u64)
        };
        let (rows, deletes, kept) = (count(&totals, "rows")?, count(&totals, "deletes")?, count(&keys, "kept")?);
        let _ = ranked.duplicates.set(rows - kept);
        Ok(Counts { kept, duplicates: rows - kept, deletes })
    }

    /// The winners as the clean MERGE's source: the clean columns and the row's operation.
    pub(crate) async fn winners(&self) -> Result<Option<DataFrame>> {
        let Some(ranked) = &self.ranked else { return Ok(None) };
        let query = |e| JobError::query("clean: the latest version of each key", e);
        let typed = ranked.ctx.table("typed").await.map_err(query)?;
        let columns: Vec<String> =
            typed.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != ORDER).collect();
        let sql = winners_sql(&columns, ranked.duplicates.get() != Some(&0));
        Ok(Some(ranked.ctx.sql(&sql).await.map_err(query)?))
    }

    /// The duplicates, a batch at a time.
    pub(crate) async fn duplicates(&self) -> Result<Option<DuplicateStream>> {
        let Some(ranked) = self.ranked.as_ref().filter(|r| r.duplicates.get() != Some(&0)) else { return Ok(None) };
        let query = |e| JobError::query("clean: duplicates", e);
        let frame = ranked.ctx.sql(&duplicates_sql()).await.map_err(query)?;
        Ok(Some(DuplicateStream { stream: frame.execute_stream().await.map_err(query)? }))
    }
}

/// Duplicates streamed from the ranked rows.
pub(crate) struct DuplicateStream {
    stream: SendableRecordBatchStream,
}

impl DuplicateStream {
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<DuplicateOf>>> {
        use futures::TryStreamExt;
        let Some(batch) = self.stream.try_next().await.map_err(|e| JobError::query("clean: duplicates", e))? else {
            return Ok(None);
        };
        Ok(Some(duplicates_of(&batch)?))
    }
}

fn duplicates_of(batch: &RecordBatch) -> Result<Vec<DuplicateOf>> {
    let table = "the ranked clean rows";
    let (keys, batch_ids) = (utf8(batch, table, contract::ROW_KEY)?, utf8(batch, table, contract::BATCH_ID)?);
    let (uris, winner_uris) = (utf8(batch, table, contract::SOURCE_URI)?, utf8(batch, table, WINNER_URI)?);
    let (rows, winner_rows) = (int64(batch, table, contract::SOURCE_ROW)?, int64(batch, table, WINNER_ROW)?);
    let (keys, batch_ids) = (keys.as_string::<i32>(), batch_ids.as_string::<i32>());
    let (uris, winner_uris) = (uris.as_string::<i32>(), winner_uris.as_string::<i32>());
    let (rows, winner_rows) = (rows.as_primitive::<Int64Type>(), winner_rows.as_primitive::<Int64Type>());
    Ok((0..batch.num_rows())
        .map(|i| DuplicateOf {
            key: keys.value(i).to_string(),
            batch_id: batch_ids.value(i).to_string(),
            source_uri: uris.value(i).to_string(),
            source_row: rows.value(i),
            winner_uri: winner_uris.value(i).to_string(),
            winner_row: winner_rows.value(i),
        })
        .collect())
}
