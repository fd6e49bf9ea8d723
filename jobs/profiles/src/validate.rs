//! Event mappings checked before anything is written: a mapping whose SQL names no column of its
//! source, whose `event_time` is text (not a typed date or timestamp), or whose transactions never
//! give the `event_type` profiles count as a purchase, would otherwise produce profiles with zero
//! orders and exit 0.
//!
//! The static checks plan the mapping's SELECT over an empty table with the source's clean
//! schema (so `cdplake check` runs them without a lake); the data check counts, over the source's
//! clean rows, what the mapping's `event_type` gives.

use cdplake_engine::SqlSession;
use cdplake_engine::arrow::array::{Array, AsArray};
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::sql::quote_ident;
use cdplake_zones::Source;
use cdplake_zones::contract::Contract;

use cdplake_core::columns::column_as;
use cdplake_core::config::profiles::{EventKind, EventMapping};
use cdplake_core::error::{JobError, Result};

/// The `event_type` values profiles give a meaning to, by kind.
pub const PURCHASE: &str = "purchase";
pub const CANCELLATION: &str = "cancellation";

/// Every SQL expression of a mapping, with its field name and the type family it must have.
fn expressions(mapping: &EventMapping) -> Vec<(&'static str, &str, Expect)> {
    let mut all = vec![
        ("event_id", mapping.event_id.as_str(), Expect::Any),
        ("event_type", mapping.event_type.as_str(), Expect::Text),
        ("event_time", mapping.event_time.as_str(), Expect::Time),
    ];
    let optional = [
        ("channel", &mapping.channel, Expect::Any),
        ("platform", &mapping.platform, Expect::Any),
        ("item_id", &mapping.item_id, Expect::Any),
        ("item_price", &mapping.item_price, Expect::Number),
        ("quantity", &mapping.quantity, Expect::Number),
        ("revenue", &mapping.revenue, Expect::Number),
        ("status", &mapping.status, Expect::Any),
        ("order_id", &mapping.order_id, Expect::Any),
        ("session_id", &mapping.session_id, Expect::Any),
    ];
    all.extend(optional.into_iter().filter_map(|(field, e, expect)| e.as_deref().map(|e| (field, e, expect))));
    all
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Any,
    Text,
    Time,
    Number,
}

impl Expect {
    fn accepts(self, t: &DataType) -> bool {
        match self {
            Expect::Any => true,
            Expect::Text => matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null),
            Expect::Time => {
                matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null)
            }
            Expect::Number => t.is_numeric() || matches!(t, DataType::Null),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Any => "any value",
            Expect::Text => "text",
            Expect::Time => "a date or timestamp",
            Expect::Number => "a number",
        }
    }
}

/// Plan the mapping's expressions over `source`'s clean schema: every column it names exists,
/// and each field has the type profiles read it as.
pub async fn check_mapping(source: &Source, mapping: &EventMapping) -> std::result::Result<(), String> {
    let session = SqlSession::new().map_err(|e| e.to_string())?;
    let contract = Contract::new(source, None);
    let schema = contract.clean_schema();
    let table = format!("clean.{}", source.name);
    session.register_rows(&table, schema.clone(), Vec::new()).map_err(|e| e.to_string())?;
    let here = format!("[profiles.events.{}]", source.name);
    for (field, expr, expect) in expressions(mapping) {
        let planned = session.sql(&format!("SELECT {expr} AS v FROM {table}")).await;
        let df = planned.map_err(|e| {
            let columns: Vec<String> = schema.fields().iter().map(|f| quote_ident(f.name())).collect();
            format!(
                "{here} {field} = {expr:?} does not fit clean.{}: {e}; its columns are {}",
                source.name,
                columns.join(", ")
            )
        })?;
        let t = df.schema().field(0).data_type().clone();
        if !expect.accepts(&t) {
            let advice = match expect {
                Expect::Time => {
                    " (type the column in the source's contract: type = \"timestamp\" or \"date\", with a \
                                 `format` if needed)"
                }
                _ => "",
            };
            return Err(format!("{here} {field} = {expr:?} is {t}, not {}{advice}", expect.describe()));
        }
    }
    Ok(())
}

/// What a transaction mapping's `event_type` gives over the source's clean rows: an error when
/// rows exist and none is a purchase or a cancellation (`event_type` must evaluate to
/// `'purchase'` for a row to count as one).
pub async fn check_mapped_rows(session: &SqlSession, source: &str, mapping: &EventMapping) -> Result<()> {
    if mapping.kind != EventKind::Transaction {
        return Ok(());
    }
    let sql = format!(
        "SELECT CAST({e} AS VARCHAR) AS event_type, count(*) AS row_count FROM clean.{source} GROUP BY 1 ORDER BY 2 DESC",
        e = mapping.event_type
    );
    let rows = session.rows(&sql).await?;
    let mut values: Vec<(String, i64)> = Vec::new();
    for batch in &rows {
        let t = column_as(batch, "profiles: event types", "event_type", &DataType::Utf8)?;
        let n = column_as(batch, "profiles: event types", "row_count", &DataType::Int64)?;
        let (t, n) = (t.as_string::<i32>(), n.as_primitive::<cdplake_engine::arrow::datatypes::Int64Type>());
        for i in 0..batch.num_rows() {
            let value = if t.is_null(i) { "NULL".to_string() } else { t.value(i).to_string() };
            values.push((value, n.value(i)));
        }
    }
    let counted = values.iter().any(|(v, _)| v == PURCHASE || v == CANCELLATION);
    if values.is_empty() || counted {
        return Ok(());
    }
    let seen: Vec<String> = values.iter().take(5).map(|(v, n)| format!("{v:?} ×{n}")).collect();
    Err(JobError::bad_input(
        format!("[profiles.events.{source}] event_type = {:?}", mapping.event_type),
        format!(
            "gives no '{PURCHASE}' for any of its rows ({}): a transaction row counts as a purchase only when \
             event_type evaluates to 'purchase' ('cancellation' subtracts); e.g. event_type = \"CASE WHEN ... THEN \
             'purchase' END\" or \"'purchase'\"",
            seen.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdnow(event_type: &str, event_time: &str) -> (Source, EventMapping) {
        let config = cdplake_core::Config::parse(&format!(
            r#"
[sources.cdnow]
format = "csv"
columns = [
  {{ name = "customer_id", required = true, id_type = "cdnow_customer_id" }},
  {{ name = "date", type = "date", format = "%Y%m%d" }},
  {{ name = "day_text" }},
  {{ name = "dollar_value", type = "decimal(10,2)" }},
]
[profiles.events.cdnow]
kind = "transaction"
event_id = "_row_key"
event_type = "{event_type}"
event_time = "{event_time}"
revenue = "dollar_value"
"#
        ))
        .unwrap();
        (config.source("cdnow").unwrap(), config.profiles.event_mappings()["cdnow"].clone())
    }

    #[tokio::test]
    async fn mappings_are_checked_before_they_run() {
        let (source, mapping) = cdnow("'purchase'", "date");
        check_mapping(&source, &mapping).await.unwrap();
        let (source, mapping) = cdnow("'purchase'", "day_text");
        let err = check_mapping(&source, &mapping).await.unwrap_err();
        assert!(err.contains("event_time") && err.contains("not a date or timestamp"), "{err}");
        let (source, mapping) = cdnow("'purchase'", "no_such_column");
        let err = check_mapping(&source, &mapping).await.unwrap_err();
        assert!(err.contains("event_time") && err.contains("customer_id"), "{err}");
    }
}
