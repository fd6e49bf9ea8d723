//! The latest version of each key, in bounded memory: a clean run's typed rows are staged on
//! local disk (Parquet files in the spill directory) as the raw rows stream in. A spilling
//! `GROUP BY` finds the keys with more than one version (the duplicated keys, staged beside
//! them), and DataFusion ranks only those keys' versions with a window over a spillable sort,
//! in two plans: the winners, which the clean write streams, and the run's duplicates (only the
//! columns a quarantine row needs), streamed into the quarantine. The rows of the other keys go
//! straight to the write: most runs have few duplicates (2 in 13.7M orders at 5M persons), and
//! sorting every row for them took 140 s of that run's 183 s. When the duplicated keys are too
//! many to hold in the joins' hash tables within the budget, every key is ranked, as before.
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
use cdplake_engine::datafusion::dataframe::DataFrameWriteOptions;
use cdplake_engine::datafusion::execution::SendableRecordBatchStream;
use cdplake_engine::datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use cdplake_engine::parquet::arrow::ArrowWriter;
use cdplake_engine::parquet::file::properties::{EnabledStatistics, WriterProperties};
use cdplake_engine::parquet::schema::types::ColumnPath;
use cdplake_zones::contract::{self, CleanRow, Contract, Lineage};

use cdplake_core::columns::{int64, utf8};
use cdplake_core::error::{JobError, Result};

/// The staged column holding each row's `order_by` value.
const ORDER: &str = "_order";
const RANK: &str = "_rank";
const WINNER_URI: &str = "_winner_uri";
const WINNER_ROW: &str = "_winner_row";
/// The staged column counting a duplicated key's versions.
const VERSIONS: &str = "_versions";
/// A generous size of one duplicated key in a join's hash table (key, hash, row index).
const JOIN_BYTES_PER_KEY: u64 = 256;

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

    /// The directory of the typed rows' files.
    fn typed_dir(&self) -> PathBuf {
        self.dir.path().join("typed")
    }

    /// The file of worker `n` (created, with its directory, when its first row comes).
    pub(crate) fn part(&self, n: usize) -> StagingPart {
        StagingPart { path: self.typed_dir().join(format!("typed-{n}.parquet")), writer: None }
    }

    /// The staged rows, ready to be ranked (every part closed, registered as `typed`).
    pub(crate) async fn rank(self, lake: &Lake, staged_rows: u64) -> Result<RankedRows> {
        if staged_rows == 0 {
            return Ok(RankedRows { _dir: self.dir, ranked: None });
        }
        let ctx = lake.session();
        let query = |e| JobError::query("clean: ranking each key's versions", e);
        let typed = format!("{}/", path_text(&self.typed_dir()));
        ctx.register_parquet("typed", typed, ParquetReadOptions::default()).await.map_err(query)?;
        let duplicated_keys = self.dir.path().join("duplicated-keys.parquet");
        let ranked = Ranked { ctx, duplicated_keys, ranking: Default::default() };
        Ok(RankedRows { _dir: self.dir, ranked: Some(ranked) })
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
        let dir = path.parent().unwrap_or(path);
        std::fs::create_dir_all(dir).map_err(|e| JobError::Io {
            doing: "creating".into(),
            path: dir.display().to_string(),
            source: e,
        })?;
        let file = File::create(path).map_err(|e| JobError::Io {
            doing: "creating".into(),
            path: path.display().to_string(),
            source: e,
        })?;
        // Staging is read once: dictionaries only for the lineage columns, where a batch's
        // rows repeat one value (interning every value was a tenth of a web-events clean).
        let mut properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(65_536))
            .set_statistics_enabled(EnabledStatistics::None)
            .set_dictionary_enabled(false);
        for repeated in [contract::SOURCE_URI, contract::BATCH_ID] {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(repeated), true);
        }
        let properties = properties.build();
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

/// Which staged rows a window ranks, decided by the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ranking {
    /// Every key has one version: every row wins and nothing is sorted.
    Nothing,
    /// Only the rows of the duplicated keys; the others win as they are.
    DuplicatedKeys,
    /// Every row (the duplicated keys are too many for a join's hash table in the budget).
    EveryKey,
}

impl Ranking {
    /// How to rank `duplicated_keys` keys within a budget of `budget` bytes: the winners' plan
    /// holds them in two hash tables it cannot spill (the anti and the semi join, which run
    /// together beside the window's sort), so each may take an eighth of the budget.
    fn choose(duplicated_keys: u64, budget: u64) -> Self {
        match duplicated_keys {
            0 => Self::Nothing,
            n if n.saturating_mul(JOIN_BYTES_PER_KEY) <= budget / 8 => Self::DuplicatedKeys,
            _ => Self::EveryKey,
        }
    }
}

/// The staged rows whose key has more than one version (`duplicated_keys` is the build side of
/// the join: the keys are few).
fn rows_of_duplicated_keys() -> String {
    format!(
        "(SELECT t.* FROM duplicated_keys d RIGHT SEMI JOIN typed t ON d.\"{key}\" = t.\"{key}\")",
        key = contract::ROW_KEY
    )
}

/// The staged rows whose key has one version.
fn rows_of_single_keys() -> String {
    format!(
        "(SELECT t.* FROM duplicated_keys d RIGHT ANTI JOIN typed t ON d.\"{key}\" = t.\"{key}\")",
        key = contract::ROW_KEY
    )
}

/// The rows a [`Ranking`] sorts, as a FROM item.
fn ranked_rows(ranking: Ranking) -> String {
    match ranking {
        Ranking::DuplicatedKeys => rows_of_duplicated_keys(),
        Ranking::Nothing | Ranking::EveryKey => "typed".to_string(),
    }
}

/// The winner of each key, with `columns` (every column but the staging ones).
fn winners_sql(columns: &[String], ranking: Ranking) -> String {
    let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let columns = columns.join(", ");
    let ranked = format!(
        "SELECT {columns} FROM (SELECT *, row_number() OVER ({window}) AS \"{RANK}\" FROM {rows}) \
         WHERE \"{RANK}\" = 1",
        window = window(),
        rows = ranked_rows(ranking),
    );
    match ranking {
        Ranking::Nothing => format!("SELECT {columns} FROM typed"),
        Ranking::DuplicatedKeys => format!("SELECT {columns} FROM {} UNION ALL {ranked}", rows_of_single_keys()),
        Ranking::EveryKey => ranked,
    }
}

/// The rows that lost to a later version of their key, with the winner's file and row (only
/// the columns a quarantine row needs go through the sort).
fn duplicates_sql(ranking: Ranking) -> String {
    let (key, batch, uri, row) = (contract::ROW_KEY, contract::BATCH_ID, contract::SOURCE_URI, contract::SOURCE_ROW);
    let window = window();
    let first = format!("{window} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW");
    format!(
        "SELECT \"{key}\", \"{batch}\", \"{uri}\", \"{row}\", \"{WINNER_URI}\", \"{WINNER_ROW}\" FROM (\
         SELECT \"{key}\", \"{batch}\", \"{uri}\", \"{row}\", row_number() OVER ({window}) AS \"{RANK}\", \
         first_value(\"{uri}\") OVER ({first}) AS \"{WINNER_URI}\", \
         first_value(\"{row}\") OVER ({first}) AS \"{WINNER_ROW}\" FROM {rows}) WHERE \"{RANK}\" > 1",
        rows = ranked_rows(ranking),
    )
}

/// The ranked rows of a run (none when no row was valid); the staging files go with it.
pub(crate) struct RankedRows {
    _dir: tempfile::TempDir,
    ranked: Option<Ranked>,
}

struct Ranked {
    ctx: SessionContext,
    /// Where [`RankedRows::counts`] stages the duplicated keys (registered as `duplicated_keys`).
    duplicated_keys: PathBuf,
    /// Set by [`RankedRows::counts`]; every key is ranked until then.
    ranking: std::sync::OnceLock<Ranking>,
}

impl Ranked {
    fn ranking(&self) -> Ranking {
        self.ranking.get().copied().unwrap_or(Ranking::EveryKey)
    }
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
    /// Rows kept (one per key) and duplicates, from the staged rows and the duplicated keys
    /// (which this stages, and which decide what the window ranks).
    pub(crate) async fn counts(&self) -> Result<Counts> {
        let Some(ranked) = &self.ranked else { return Ok(Counts { kept: 0, duplicates: 0, deletes: 0 }) };
        let query = |e| JobError::query("clean: counting kept rows", e);
        let totals = format!(
            "SELECT count(*) AS \"rows\", count(*) FILTER (WHERE \"{op}\" = 'delete') AS deletes FROM typed",
            op = contract::OP
        );
        let totals = first_row(ranked.ctx.sql(&totals).await.map_err(query)?.collect().await.map_err(query)?)?;
        let (rows, deletes) = (count(&totals, "rows")?, count(&totals, "deletes")?);
        let (duplicated_keys, versions) = stage_duplicated_keys(ranked).await?;
        let _ = ranked.ranking.set(Ranking::choose(duplicated_keys, cdplake_engine::memory::budget().limit));
        // Each duplicated key keeps one of its versions.
        let duplicates = versions - duplicated_keys;
        Ok(Counts { kept: rows - duplicates, duplicates, deletes })
    }

    /// The winners as the clean MERGE's source: the clean columns and the row's operation.
    pub(crate) async fn winners(&self) -> Result<Option<DataFrame>> {
        let Some(ranked) = &self.ranked else { return Ok(None) };
        let query = |e| JobError::query("clean: the latest version of each key", e);
        let typed = ranked.ctx.table("typed").await.map_err(query)?;
        let columns: Vec<String> =
            typed.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != ORDER).collect();
        let sql = winners_sql(&columns, ranked.ranking());
        Ok(Some(ranked.ctx.sql(&sql).await.map_err(query)?))
    }

    /// The duplicates, a batch at a time.
    pub(crate) async fn duplicates(&self) -> Result<Option<DuplicateStream>> {
        let Some(ranked) = self.ranked.as_ref().filter(|r| r.ranking() != Ranking::Nothing) else { return Ok(None) };
        let query = |e| JobError::query("clean: duplicates", e);
        let frame = ranked.ctx.sql(&duplicates_sql(ranked.ranking())).await.map_err(query)?;
        Ok(Some(DuplicateStream { stream: frame.execute_stream().await.map_err(query)? }))
    }
}

/// Stage the keys with more than one version and their version counts (a `GROUP BY`, which
/// spills; `count(DISTINCT)` keeps one hash set in memory and failed under a 2 GiB budget at 47M
/// web events), register them as `duplicated_keys`, and count them: (keys, their versions).
async fn stage_duplicated_keys(ranked: &Ranked) -> Result<(u64, u64)> {
    let query = |e| JobError::query("clean: finding the duplicated keys", e);
    let key = contract::ROW_KEY;
    let keys =
        format!("SELECT \"{key}\", count(*) AS \"{VERSIONS}\" FROM typed GROUP BY \"{key}\" HAVING count(*) > 1");
    let path = path_text(&ranked.duplicated_keys);
    let single_file = DataFrameWriteOptions::new().with_single_file_output(true);
    let frame = ranked.ctx.sql(&keys).await.map_err(query)?;
    let written = first_row(frame.write_parquet(&path, single_file, None).await.map_err(query)?)?;
    if count(&written, "count")? == 0 {
        return Ok((0, 0));
    }
    ranked.ctx.register_parquet("duplicated_keys", &path, ParquetReadOptions::default()).await.map_err(query)?;
    let sums = format!(
        "SELECT count(*) AS keys, CAST(coalesce(sum(\"{VERSIONS}\"), 0) AS BIGINT) AS versions FROM duplicated_keys"
    );
    let sums = first_row(ranked.ctx.sql(&sums).await.map_err(query)?.collect().await.map_err(query)?)?;
    Ok((count(&sums, "keys")?, count(&sums, "versions")?))
}

/// The first non-empty batch of a one-row answer.
fn first_row(batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| JobError::bad_input("clean: counting kept rows", "no answer"))
}

/// The count in column `name` of a one-row answer.
fn count(batch: &RecordBatch, name: &str) -> Result<u64> {
    Ok(int64(batch, "the staged rows", name)?.as_primitive::<Int64Type>().value(0) as u64)
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

#[cfg(test)]
mod tests {
    use super::{JOIN_BYTES_PER_KEY, Ranking, duplicates_sql, winners_sql};

    #[test]
    fn only_the_duplicated_keys_are_ranked_while_their_two_hash_tables_fit_an_eighth_of_the_budget_each() {
        let budget = 1 << 30;
        assert_eq!(Ranking::choose(0, budget), Ranking::Nothing);
        assert_eq!(Ranking::choose(1, budget), Ranking::DuplicatedKeys);
        let fits = budget / 8 / JOIN_BYTES_PER_KEY;
        assert_eq!(Ranking::choose(fits, budget), Ranking::DuplicatedKeys);
        assert_eq!(Ranking::choose(fits + 1, budget), Ranking::EveryKey);
    }

    #[test]
    fn each_ranking_reads_its_rows() {
        let columns = vec!["a".to_string()];
        assert_eq!(winners_sql(&columns, Ranking::Nothing), "SELECT \"a\" FROM typed");
        let split = winners_sql(&columns, Ranking::DuplicatedKeys);
        assert!(split.contains("RIGHT ANTI JOIN typed") && split.contains("UNION ALL"), "{split}");
        assert!(split.contains("RIGHT SEMI JOIN typed"), "{split}");
        let every = winners_sql(&columns, Ranking::EveryKey);
        assert!(!every.contains("JOIN") && every.contains("FROM typed)"), "{every}");
        assert!(duplicates_sql(Ranking::DuplicatedKeys).contains("RIGHT SEMI JOIN"));
        assert!(!duplicates_sql(Ranking::EveryKey).contains("JOIN"));
    }
}
