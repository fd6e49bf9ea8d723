//! The r/f/m quintile scores (seed 001): each buyer's rank among all buyers, as a score 1–5.
//!
//! Ranked here rather than with `rank() OVER (ORDER BY ...)`: DataFusion runs a window without
//! a partition as one single-threaded sort per score, over the whole table, on every refresh.
//! The rule is SQL's: `1 + floor(5.0 * (rank - 1) / buyers)`, where rank is 1 + the number of
//! buyers strictly ahead (ties share a rank); 5 = most recent / most frequent / most spent.
//! Persons who never bought (null last_purchase_date) get no score.
//!
//! [`rank`] scores a refresh's candidate: the persons recomputed are ranked with everyone else,
//! whose rows are kept; a kept row whose scores moved is rewritten with its new scores only.

use std::cmp::Ordering;
use std::sync::Arc;

use cdplake_engine::SqlSession;
use cdplake_engine::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use cdplake_engine::arrow::compute::{cast, concat_batches, filter_record_batch, is_not_null};
use cdplake_engine::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};

use crate::candidate::{RECOMPUTED, SCORE_COLUMNS, table_schema};
use crate::inputs::query_error;
use crate::touched::{Scope, TOUCHED};
use cdplake_core::columns::column;
use cdplake_core::error::{JobError, Result};
use cdplake_zones::tables::CUSTOMER_PROFILES;

/// Session tables [`rank`] registers: kept rows whose scores moved (one_id and new scores), the
/// recomputed rows with their scores, and the whole candidate table.
pub const MOVED: &str = "moved";
pub const RECOMPUTED_SCORED: &str = "recomputed_scored";
pub const CANDIDATE: &str = "candidate";

/// A stored row `p` that is kept (not recomputed).
fn kept() -> String {
    format!("NOT EXISTS (SELECT 1 FROM {TOUCHED} t WHERE t.one_id = p.one_id)")
}

/// Rank every buyer and register [`MOVED`], [`RECOMPUTED_SCORED`] and [`CANDIDATE`].
///
/// The scores rank everyone, so they are recomputed for everyone from the four columns they
/// depend on, carrying each kept row's old scores along. The candidate is the kept rows, the
/// moved rows with their new scores, and the recomputed rows with theirs.
pub async fn rank(session: &SqlSession, scope: &Scope) -> Result<()> {
    let incremental = matches!(scope, Scope::Persons { .. });
    let scores = SCORE_COLUMNS.join(", ");
    let new_scores = SCORE_COLUMNS.map(|c| format!("s.{c}")).join(", ");
    let base = "one_id, recency_days, frequency, monetary, last_purchase_date";
    let kept = kept();
    let mut everyone = vec![format!(
        "SELECT {base}, false AS kept, {} FROM {RECOMPUTED}",
        SCORE_COLUMNS.map(|c| format!("CAST(NULL AS BIGINT) AS old_{c}")).join(", ")
    )];
    if incremental {
        // NOT EXISTS, not NOT IN: an anti join without NOT IN's null handling, which DataFusion
        // runs in one partition.
        everyone.push(format!(
            "SELECT {base}, true AS kept, {} FROM {CUSTOMER_PROFILES} p WHERE {kept}",
            SCORE_COLUMNS.map(|c| format!("{c} AS old_{c}")).join(", ")
        ));
    }
    let (schema, rows) =
        session.rows_with_schema(&everyone.join(" UNION ALL ")).await.map_err(query_error("profiles: scoring"))?;
    let ranked = score_buyers(&schema, &rows)?;
    session.register_rows("ranked", ranked.schema(), vec![ranked])?;
    let mut steps = vec![(
        RECOMPUTED_SCORED,
        format!(
            "SELECT r.*, {new_scores} FROM {RECOMPUTED} r LEFT JOIN (SELECT * FROM ranked WHERE NOT kept) s \
             ON s.one_id = r.one_id"
        ),
    )];
    if incremental {
        let moved = SCORE_COLUMNS.map(|c| format!("(old_{c} IS DISTINCT FROM {c})")).join(" OR ");
        steps.push((MOVED, format!("SELECT one_id, {scores} FROM ranked WHERE kept AND ({moved})")));
    }
    for (name, sql) in steps {
        let (schema, rows) = session.rows_with_schema(&sql).await.map_err(query_error("profiles: scoring"))?;
        session.register_rows(name, table_schema(&schema), rows)?;
    }
    let candidate = if incremental {
        format!(
            "SELECT * FROM {CUSTOMER_PROFILES} p WHERE {kept} \
               AND NOT EXISTS (SELECT 1 FROM {MOVED} m WHERE m.one_id = p.one_id) \
             UNION ALL SELECT k.* EXCLUDE ({scores}), {new_scores} FROM {MOVED} s \
               JOIN {CUSTOMER_PROFILES} k ON k.one_id = s.one_id \
             UNION ALL SELECT * FROM {RECOMPUTED_SCORED}"
        )
    } else {
        format!("SELECT * FROM {RECOMPUTED_SCORED}")
    };
    session.register_view(CANDIDATE, &candidate).await?;
    Ok(())
}

/// The buyers among `batches` (rows with recency_days, frequency, monetary and
/// last_purchase_date, and whatever else) with [`SCORE_COLUMNS`] appended.
pub fn score_buyers(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let arrow = |e| JobError::arrow("profiles: scores", e);
    // The branches of a UNION may deliver strings as views or not: one type per column first.
    let batches = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(arrow)?;
    let all = concat_batches(schema, &batches).map_err(arrow)?;
    let bought = is_not_null(column(&all, "profiles: scores", "last_purchase_date")?).map_err(arrow)?;
    let buyers = filter_record_batch(&all, &bought).map_err(arrow)?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = buyers.columns().to_vec();
    for (name, metric, descending) in
        [("r_score", "recency_days", true), ("f_score", "frequency", false), ("m_score", "monetary", false)]
    {
        let values = cast(column(&buyers, "profiles: scores", metric)?, &DataType::Float64).map_err(arrow)?;
        let values = values.as_primitive::<Float64Type>();
        let values: Vec<Option<f64>> = (0..values.len()).map(|i| values.is_valid(i).then(|| values.value(i))).collect();
        fields.push(Field::new(name, DataType::Int64, true));
        columns.push(Arc::new(quintiles(&values, descending)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow)
}

/// SQL's order: ascending puts nulls last, descending puts them first.
fn order(a: Option<f64>, b: Option<f64>, descending: bool) -> Ordering {
    let ascending = match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    };
    if descending { ascending.reverse() } else { ascending }
}

/// Each value's quintile score among `values`.
fn quintiles(values: &[Option<f64>], descending: bool) -> Int64Array {
    let n = values.len();
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_unstable_by(|&a, &b| order(values[a], values[b], descending));
    let mut scores = vec![0i64; n];
    let mut rank = 1;
    for (position, &row) in sorted.iter().enumerate() {
        if position > 0 && order(values[sorted[position - 1]], values[row], descending) != Ordering::Equal {
            rank = position + 1;
        }
        scores[row] = (1.0 + (5.0 * (rank - 1) as f64 / n as f64).floor()) as i64;
    }
    Int64Array::from(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_a_score_and_the_order_decides_the_top() {
        let values = [Some(10.0), Some(20.0), Some(20.0), Some(30.0), Some(40.0)];
        let ascending: Vec<i64> = quintiles(&values, false).values().to_vec();
        assert_eq!(ascending, [1, 2, 2, 4, 5]);
        let descending: Vec<i64> = quintiles(&values, true).values().to_vec();
        assert_eq!(descending, [5, 3, 3, 2, 1]);
    }
}
