//! The last phase of a refresh: the checked candidate becomes `curated.customer_profiles` (a full
//! build replaces the table, an incremental one MERGEs what changed), with the watermarks in the
//! same commit, and the as-of date's partition of `curated.customer_profiles_daily` becomes a
//! copy of it.

use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::SqlSession;
use cdplake_engine::TableSpec;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::lake::table_arrow_schema;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::upsert::Upsert;
use cdplake_engine::writes::conform_batches;
use chrono::NaiveDate;

use crate::candidate::RECOMPUTED;
use crate::candidate::SCORE_COLUMNS;
use crate::inputs::{DT, query_error};
use crate::report::ProfilesReport;
use crate::scores::{CANDIDATE, MOVED, RECOMPUTED_SCORED};
use crate::touched::{Scope, TOUCHED};
use crate::watermarks::Watermarks;
use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{CUSTOMER_PROFILES, CUSTOMER_PROFILES_DAILY};

/// Publish the candidate; returns the new table when rows changed.
pub async fn publish(
    workspace: &Workspace,
    session: &SqlSession,
    scope: &Scope,
    marks: &Watermarks,
    report: &mut ProfilesReport,
) -> Result<Option<DeltaTable>> {
    match (scope, &marks.stored) {
        (Scope::Persons { .. }, Some(stored)) => {
            merge_changes(workspace, session, stored.clone(), marks.transactions(), marks.moved(), report).await
        }
        _ => {
            let commit = CommitProperties::default().with_application_transactions(marks.transactions());
            replace(workspace, session, marks.stored.as_ref(), commit, report).await.map(Some)
        }
    }
}

/// Replace every row with the candidate (creating the table first if there is none).
async fn replace(
    workspace: &Workspace,
    session: &SqlSession,
    stored: Option<&DeltaTable>,
    commit: CommitProperties,
    report: &mut ProfilesReport,
) -> Result<DeltaTable> {
    let (schema, rows) = session
        .rows_with_schema(&format!("SELECT * FROM {CANDIDATE}"))
        .await
        .map_err(query_error("profiles: rows to publish"))?;
    let schema = match stored {
        Some(stored) => table_arrow_schema(stored, &CUSTOMER_PROFILES.id())?,
        None => {
            let spec = profiles_spec(&schema);
            workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["one_id"])).await?;
            spec.schema
        }
    };
    let rows = conform_batches(&CUSTOMER_PROFILES.id(), &schema, rows)?;
    report.profiles_written = rows.iter().map(|b| b.num_rows() as u64).sum();
    Ok(workspace.lake().overwrite(&CUSTOMER_PROFILES.id(), rows, commit).await?)
}

fn profiles_spec(schema: &SchemaRef) -> TableSpec {
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(f.name() != "one_id")).collect();
    TableSpec::new(CUSTOMER_PROFILES.id(), Arc::new(Schema::new(fields))).with_description(
        "One row per person (one_id) as of a business date: CRM attributes, purchases, RFM scores and the \
         seeds' segments, engagement, support, lifecycle_stage.",
    )
}

/// What a row of the MERGE source does to the stored profiles.
const ACTION: &str = "__action";

/// MERGE what changed into the stored profiles: the touched persons' rows (`recomputed_scored`,
/// updated or inserted), the new scores of persons whose rank moved (`moved`), and the deletion
/// of touched persons who no longer exist (absorbed by a merge). Counts go to `report`. With
/// nothing to change the watermarks are still committed when they `moved`. Returns the new table
/// when rows changed.
async fn merge_changes(
    workspace: &Workspace,
    session: &SqlSession,
    stored: DeltaTable,
    transactions: Vec<Transaction>,
    moved: bool,
    report: &mut ProfilesReport,
) -> Result<Option<DeltaTable>> {
    let id = CUSTOMER_PROFILES.id();
    let schema = table_arrow_schema(&stored, &id)?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ACTION, DataType::Utf8, false));
    let source_schema = Arc::new(Schema::new(fields));
    let queries = [
        format!("SELECT *, 'row' AS {ACTION} FROM {RECOMPUTED_SCORED}"),
        format!("SELECT *, 'scores' AS {ACTION} FROM {MOVED}"),
        format!(
            "SELECT one_id, 'delete' AS {ACTION} FROM {CUSTOMER_PROFILES} \
             WHERE one_id IN (SELECT one_id FROM {TOUCHED}) AND one_id NOT IN (SELECT one_id FROM {RECOMPUTED})"
        ),
    ];
    let mut rows = Vec::new();
    let mut counts = [0u64; 3];
    for (query, count) in queries.iter().zip(counts.iter_mut()) {
        let batches = session.rows(query).await.map_err(query_error("profiles: rows to publish"))?;
        *count = batches.iter().map(|b| b.num_rows() as u64).sum();
        rows.extend(conform_batches(&id, &source_schema, batches)?);
    }
    report.profiles_written = counts[0] + counts[1];
    report.profiles_retired = counts[2];
    let lake = workspace.lake();
    if rows.is_empty() {
        if moved {
            lake.record_transactions(&id, CommitProperties::default().with_application_transactions(transactions))
                .await?;
        }
        return Ok(None);
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let is = |action: &str| Some(format!("source.{ACTION} = {}", quote_literal(action)));
    let scores: Vec<String> = SCORE_COLUMNS.iter().map(|c| c.to_string()).collect();
    let outcome = lake
        .upsert(&id, rows)
        .on_snapshot(stored)
        .on_columns(&["one_id"])
        .with_transactions(transactions)
        .delete(is("delete"))
        .update(is("row"), Upsert::from_source(&names))
        .update(is("scores"), Upsert::from_source(&scores))
        .insert(is("row"), Upsert::from_source(&names))
        .await?;
    let table = outcome.table;
    Ok(Some(table))
}

/// Make the as-of date's partition of `curated.customer_profiles_daily` a copy of `profiles` as
/// it is now (its files copied, not its rows rewritten).
pub async fn write_daily(workspace: &Workspace, profiles: &DeltaTable, as_of: NaiveDate) -> Result<()> {
    let schema = table_arrow_schema(profiles, &CUSTOMER_PROFILES.id())?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DT, DataType::Utf8, false));
    let spec = TableSpec::new(CUSTOMER_PROFILES_DAILY.id(), Arc::new(Schema::new(fields)))
        .partitioned_by([DT])
        .with_description(format!("{CUSTOMER_PROFILES} as of each business date, partitioned by dt (YYYY-MM-DD)."));
    workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["dt", "one_id"])).await?;
    let dt = as_of.format("%Y-%m-%d").to_string();
    workspace.lake().copy_into_partition(profiles, &CUSTOMER_PROFILES_DAILY.id(), DT, &dt).await?;
    Ok(())
}
