//! The SQL session: DataFusion with lake tables registered as `zone.table`.
//!
//! Identifiers are case-insensitive as in Athena (`SELECT Customer_ID FROM Curated.Profiles`
//! works), since every lake name is lower-case snake_case.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::common::{ScalarValue, TableReference};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::delta_datafusion::DeltaSessionContext;

use crate::error::{EngineError, Result};
use crate::lake::Lake;
use crate::naming::TableId;

/// A DataFusion session over a lake.
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
}

impl SqlSession {
    /// A session on the process's shared runtime: its memory budget and spill directory
    /// ([`crate::memory`]).
    pub fn new() -> Result<Self> {
        let ctx = DeltaSessionContext::with_runtime_env(crate::memory::runtime()).into_inner();
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .set("datafusion.sql_parser.enable_ident_normalization", "true")
            .map_err(|e| EngineError::query("sql session: configure", e))?;
        crate::functions::register_functions(&ctx);
        Ok(Self { ctx })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Register a lake table as `zone.table`.
    pub async fn register(&self, lake: &Lake, id: &TableId) -> Result<()> {
        let table = lake.table(id).await?;
        self.register_loaded(id.zone(), id.name(), &table).await
    }

    /// Register an already loaded Delta table as `schema.name` (e.g. `_catalog.tables`).
    pub async fn register_loaded(&self, schema: &str, name: &str, table: &DeltaTable) -> Result<()> {
        let label = format!("{schema}.{name}");
        table.update_datafusion_session(&self.ctx.state()).map_err(|e| EngineError::delta(&label, "register", e))?;
        let provider =
            table.table_provider().await.map_err(|e| EngineError::query(format!("table {label}: register"), e))?;
        self.ensure_schema(schema)?;
        // Registering again replaces: a job may read a table before and after writing it.
        self.ctx
            .deregister_table(TableReference::partial(schema, name))
            .map_err(|e| EngineError::query(format!("table {label}: register"), e))?;
        self.ctx
            .register_table(TableReference::partial(schema, name), provider)
            .map_err(|e| EngineError::query(format!("table {label}: register"), e))?;
        Ok(())
    }

    /// Register the change data feed of `table` from `starting_version` on (inclusive) as
    /// `name`: the rows each commit inserted, deleted or updated (pre- and post-image), with
    /// `_change_type`, `_commit_version` and `_commit_timestamp`. Returns false (and registers
    /// nothing) when the table does not record one (`delta.enableChangeDataFeed`).
    pub async fn register_changes(&self, name: &str, table: &DeltaTable, starting_version: u64) -> Result<bool> {
        let label = format!("{name}: change data feed");
        let enabled = table.snapshot().is_ok_and(|s| {
            s.metadata()
                .configuration()
                .get("delta.enableChangeDataFeed")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        if !enabled {
            return Ok(false);
        }
        let builder = table.clone().scan_cdf().with_starting_version(starting_version);
        let provider = deltalake::delta_datafusion::DeltaCdfTableProvider::try_new(builder)
            .map_err(|e| EngineError::delta(&label, "change data feed", e))?;
        let reference = TableReference::bare(name);
        self.ctx.deregister_table(reference.clone()).map_err(|e| EngineError::query(label.clone(), e))?;
        self.ctx.register_table(reference, Arc::new(provider)).map_err(|e| EngineError::query(label, e))?;
        Ok(true)
    }

    /// Register rows held in memory as `name` or `schema.name` (intermediate results a job
    /// queries more than once, or an empty stand-in for a table not created yet).
    /// String views become plain strings: a view column out of a sort or join can point into
    /// every buffer its input had, which made each later filter over it take seconds.
    pub fn register_rows(&self, name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<()> {
        let (schema, batches) = plain_strings(schema, batches)
            .map_err(|e| EngineError::Arrow { context: format!("{name}: register"), source: e })?;
        let table =
            MemTable::try_new(schema, vec![batches]).map_err(|e| EngineError::query(format!("{name}: register"), e))?;
        let reference = match name.split_once('.') {
            Some((zone, table)) => {
                self.ensure_schema(zone)?;
                TableReference::partial(zone, table)
            }
            None => TableReference::bare(name),
        };
        self.ctx.deregister_table(reference.clone()).map_err(|e| EngineError::query(format!("{name}: register"), e))?;
        self.ctx
            .register_table(reference, Arc::new(table))
            .map_err(|e| EngineError::query(format!("{name}: register"), e))?;
        Ok(())
    }

    /// Register a query as the view `name`: queried later, it runs then, reading only the
    /// columns asked for.
    pub async fn register_view(&self, name: &str, query: &str) -> Result<()> {
        let view = self.sql(query).await?.into_view();
        let reference = TableReference::bare(name);
        self.ctx.deregister_table(reference.clone()).map_err(|e| EngineError::query(format!("{name}: register"), e))?;
        self.ctx.register_table(reference, view).map_err(|e| EngineError::query(format!("{name}: register"), e))?;
        Ok(())
    }

    /// Run a query and keep its rows.
    pub async fn rows(&self, query: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.rows_with_schema(query).await?.1)
    }

    /// The value of a one-column query's first row, cast to `data_type`: `SELECT max(x) FROM t`
    /// and the like. A query without rows gives a null of that type; a query of several columns
    /// is an error.
    pub async fn first_value(&self, query: &str, data_type: &DataType) -> Result<ScalarValue> {
        let rows = self.rows(query).await?;
        let Some(batch) = rows.iter().find(|b| b.num_rows() > 0) else {
            return ScalarValue::try_from(data_type).map_err(|e| EngineError::query(query, e));
        };
        let [value] = batch.columns() else {
            let wanted = format!("one column, got {}", batch.num_columns());
            return Err(EngineError::query(query, DataFusionError::Plan(wanted)));
        };
        let column = cast(value, data_type).map_err(|e| EngineError::query(query, e.into()))?;
        ScalarValue::try_from_array(&column, 0).map_err(|e| EngineError::query(query, e))
    }

    /// [`Self::first_value`] as an integer; None without rows or for a null.
    pub async fn first_i64(&self, query: &str) -> Result<Option<i64>> {
        match self.first_value(query, &DataType::Int64).await? {
            ScalarValue::Int64(value) => Ok(value),
            other => unreachable!("cast to Int64 gave {other:?}"),
        }
    }

    /// [`Self::first_value`] as a float; None without rows or for a null.
    pub async fn first_f64(&self, query: &str) -> Result<Option<f64>> {
        match self.first_value(query, &DataType::Float64).await? {
            ScalarValue::Float64(value) => Ok(value),
            other => unreachable!("cast to Float64 gave {other:?}"),
        }
    }

    /// [`Self::first_value`] as a string; None without rows or for a null.
    pub async fn first_string(&self, query: &str) -> Result<Option<String>> {
        match self.first_value(query, &DataType::Utf8).await? {
            ScalarValue::Utf8(value) => Ok(value),
            other => unreachable!("cast to Utf8 gave {other:?}"),
        }
    }

    /// Run a query and keep its rows and their schema (known even when there are no rows).
    pub async fn rows_with_schema(&self, query: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let df = self.sql(query).await?;
        let schema = df.schema().inner().clone();
        let rows = df.collect().await.map_err(|e| EngineError::query("query", e))?;
        Ok((schema, rows))
    }

    fn ensure_schema(&self, schema: &str) -> Result<()> {
        let catalog_name = self.ctx.state().config().options().catalog.default_catalog.clone();
        let catalog = self.ctx.catalog(&catalog_name).ok_or_else(|| {
            EngineError::query("sql session", DataFusionError::Plan(format!("no catalog {catalog_name}")))
        })?;
        if catalog.schema(schema).is_none() {
            catalog
                .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                .map_err(|e| EngineError::query(format!("schema {schema}: register"), e))?;
        }
        Ok(())
    }

    /// Plan a query; the returned DataFrame runs when collected.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        self.ctx.sql(query).await.map_err(|e| EngineError::query("query", e))
    }
}

/// `schema` and `batches` with Utf8View / BinaryView columns cast to Utf8 / Binary (compact,
/// contiguous copies).
fn plain_strings(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), deltalake::arrow::error::ArrowError> {
    use deltalake::arrow::datatypes::{Field, Schema};
    let plain = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !schema.fields().iter().any(|f| plain(f.data_type()).is_some()) {
        return Ok((schema, batches));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    let target = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(target.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((target, batches))
}

/// A SQL string literal: `it's` → `'it''s'`. The one place SQL text quotes a value.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A SQL identifier (a column or table name from configuration): `my col` → `"my col"`.
/// Lake names are lower-case snake_case, so quoting never changes which column is meant.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The parenthesised list of an `IN` predicate, or `(NULL)` for no values, so that
/// `x IN (NULL)` matches nothing instead of being a syntax error.
pub fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = values.into_iter().map(quote_literal).collect();
    if items.is_empty() { "(NULL)".to_string() } else { format!("({})", items.join(", ")) }
}

#[cfg(test)]
mod quoting_tests {
    use super::*;

    #[test]
    fn literals_identifiers_and_lists() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(in_list(["a", "b'c"]), "('a', 'b''c')");
        assert_eq!(in_list(std::iter::empty()), "(NULL)");
    }
}
