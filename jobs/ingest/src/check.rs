//! `cdplake check`: is `cdplake.toml` right, and what would a source's contract do to a file?
//!
//! The configuration is validated when it is loaded (unknown keys, types, formats, zones, id type
//! limits); `check` says so and lists what it defines. Given a source and a file, it reads the
//! file as ingest would and applies the contract to a sample of rows as clean would: how many
//! would be kept or quarantined (by rule, with examples), which columns carry identifiers and
//! how many of their values are placeholders. Nothing is written to the lake.

use std::collections::BTreeMap;

use cdplake_zones::contract::{Contract, Warning};
use cdplake_zones::placeholders::{IdKind, placeholder_rule};
use cdplake_zones::reader::{format_of, read_records};
use cdplake_zones::{Normalize, Source};

use cdplake_core::error::{JobError, Result};

/// What the contract did to the sample.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FileCheck {
    pub source: String,
    pub file: String,
    /// Columns of the file (snake_cased).
    pub columns: Vec<String>,
    /// Rows read from the file, and how many of them were checked.
    pub rows_in_file: u64,
    pub rows_checked: u64,
    pub kept: u64,
    pub quarantined: u64,
    pub unreadable: u64,
    /// Quarantined rows by `field: rule`, with up to three examples each.
    pub quarantined_by_rule: BTreeMap<String, RuleExamples>,
    /// Values kept as null because they could not be normalised, by `field: reason`.
    pub kept_as_null: BTreeMap<String, u64>,
    pub identifier_columns: Vec<IdentifierColumn>,
    /// Set when the file lacks a required column: no row would be kept.
    pub missing_columns: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RuleExamples {
    pub rows: u64,
    /// `row N: reason`
    pub examples: Vec<String>,
}

/// An identifier column of the contract and what the sample holds in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IdentifierColumn {
    pub column: String,
    pub id_type: String,
    /// Rows (of those kept) with a value.
    pub values: u64,
    /// Of those, values a placeholder rule keeps out of identity (`guest`, `test@test.com`).
    pub placeholders: u64,
}

/// Apply `source`'s contract to the first `sample` rows of a file's bytes.
pub fn check_file(source: &Source, file: &str, bytes: &[u8], sample: usize) -> Result<FileCheck> {
    let format = format_of(file, source.format);
    let records = read_records(file, bytes, format).map_err(|e| {
        let (what, reason) = crate::ingest::file_and_reason(e);
        JobError::BadInput { what, reason }
    })?;
    let contract = Contract::new(source, None);
    let mut check = FileCheck {
        source: source.name.clone(),
        file: file.to_string(),
        columns: records.columns.clone(),
        rows_in_file: records.rows_in(),
        unreadable: records.unreadable.len() as u64,
        ..Default::default()
    };
    let layout = match contract.layout(&records.columns) {
        Ok(layout) => layout,
        Err(reason) => {
            check.missing_columns = Some(reason);
            return Ok(check);
        }
    };
    let mut ids: Vec<(usize, IdentifierColumn, IdKind)> = contract
        .columns()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let kind = match c.normalize {
                Normalize::Email => IdKind::Email,
                Normalize::Phone => IdKind::Phone,
                _ => IdKind::Other,
            };
            let column =
                IdentifierColumn { column: c.name.clone(), id_type: c.id_type.clone()?, values: 0, placeholders: 0 };
            Some((i, column, kind))
        })
        .collect();
    // Placeholders are judged on what the column holds before hashing: the plaintext contract.
    let mut plain_source = source.clone();
    for column in &mut plain_source.columns {
        if column.pii == Some(cdplake_zones::PiiTreatment::Hash) {
            column.pii = None;
        }
    }
    let plain = Contract::new(&plain_source, None);
    let mut warnings: Vec<Warning> = Vec::new();
    for (row, values) in records.rows.iter().take(sample) {
        check.rows_checked += 1;
        let raw: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
        match contract.apply(&layout, &raw, &mut warnings) {
            Ok(_) => {
                check.kept += 1;
                if let Ok(typed) = plain.typed(&layout, &raw, &mut Vec::new()) {
                    for (i, column, kind) in &mut ids {
                        if let cdplake_zones::contract::Value::Text(text) = &typed.values[*i] {
                            column.values += 1;
                            column.placeholders += u64::from(placeholder_rule(text, *kind).is_some());
                        }
                    }
                }
            }
            Err(rejection) => {
                check.quarantined += 1;
                let entry =
                    check.quarantined_by_rule.entry(format!("{}: {}", rejection.field, rejection.rule)).or_default();
                entry.rows += 1;
                if entry.examples.len() < 3 {
                    entry.examples.push(format!("row {row}: {}", rejection.reason));
                }
            }
        }
    }
    for w in warnings {
        *check.kept_as_null.entry(format!("{}: {}", w.field, w.reason)).or_default() += 1;
    }
    check.identifier_columns = ids.into_iter().map(|(_, c, _)| c).collect();
    Ok(check)
}

/// The check as text for people.
pub fn describe(c: &FileCheck) -> String {
    let mut out = format!("{} as source {}: columns {}\n", c.file, c.source, c.columns.join(", "));
    if let Some(missing) = &c.missing_columns {
        out.push_str(&format!("  every row would be refused: {missing}\n"));
        return out;
    }
    out.push_str(&format!(
        "  {} of {} rows checked: {} would be kept, {} quarantined{}\n",
        c.rows_checked,
        c.rows_in_file,
        c.kept,
        c.quarantined,
        if c.unreadable > 0 { format!(" ({} rows unreadable)", c.unreadable) } else { String::new() }
    ));
    for (rule, examples) in &c.quarantined_by_rule {
        out.push_str(&format!("  quarantined {}: {rule}\n", examples.rows));
        for example in &examples.examples {
            out.push_str(&format!("      {example}\n"));
        }
    }
    for (reason, n) in &c.kept_as_null {
        out.push_str(&format!("  kept as null {n}: {reason}\n"));
    }
    for id in &c.identifier_columns {
        out.push_str(&format!(
            "  identifier {} ({}): {} values, {} placeholders\n",
            id.column, id.id_type, id.values, id.placeholders
        ));
    }
    if c.identifier_columns.is_empty() {
        out.push_str("  no identifier columns: rows will not be linked to persons (set id_type on a column)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdnow() -> Source {
        let config = cdplake_core::Config::parse(
            r#"
[sources.cdnow]
format = "csv"
dedupe = "none"
columns = [
  { name = "customer_id", required = true, id_type = "cdnow_customer_id" },
  { name = "date", type = "date", format = "%Y%m%d", required = true },
  { name = "number_of_cds", type = "int" },
  { name = "dollar_value", type = "decimal(10,2)", non_negative = true },
]
"#,
        )
        .unwrap();
        config.source("cdnow").unwrap()
    }

    #[test]
    fn a_sample_is_kept_or_quarantined_by_rule() {
        let file = "customer_id,date,number_of_cds,dollar_value\n1,19970101,1,11.77\n2,19970231,1,12.00\n3,19970112,2,-1\nguest,19970105,1,5.5\n";
        let check = check_file(&cdnow(), "cdnow.csv", file.as_bytes(), 100).unwrap();
        assert_eq!((check.rows_checked, check.kept, check.quarantined), (4, 2, 2), "{check:?}");
        let date = &check.quarantined_by_rule["date: not_a_date"];
        assert_eq!(date.examples, ["row 2: \"19970231\" is not a date in format %Y%m%d"]);
        assert!(check.quarantined_by_rule.contains_key("dollar_value: negative"));
        assert_eq!(check.identifier_columns[0].values, 2);
        assert_eq!(check.identifier_columns[0].placeholders, 1, "guest");
        let missing = check_file(&cdnow(), "x.csv", b"customer_id,when\n1,2\n", 100).unwrap();
        assert!(missing.missing_columns.unwrap().contains("date"));
    }
}
