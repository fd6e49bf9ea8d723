//! Reading one incoming file into string records, exactly as received.
//!
//! Every value stays a string (or null); nested JSON values stay JSON text. Column names are
//! snake_cased (`Customer ID` → `customer_id`) so the raw table is queryable. Rows that cannot
//! be read (wrong field count, invalid JSON) are returned as rejects with the reason; problems
//! that make the whole file unreadable are errors naming the file, row and field.

use std::collections::HashMap;
use std::io::Read;

use cdplake_engine::arrow::array::{Array, AsArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::naming::suggest_snake_case;
use cdplake_engine::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::source::FileFormat;

/// A row that could not be read, with its 1-based position among the file's data rows.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableRow {
    pub row: u64,
    pub reason: String,
    /// What could be read of it, for the quarantine.
    pub text: String,
}

/// The readable content of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecords {
    /// Snake_cased column names, unique, in file order.
    pub columns: Vec<String>,
    /// The names as they appeared in the file.
    pub original_columns: Vec<String>,
    /// `(row number, values)`, 1-based over data rows.
    pub rows: Vec<(u64, Vec<Option<String>>)>,
    pub unreadable: Vec<UnreadableRow>,
}

impl RawRecords {
    /// Rows in the file: readable + unreadable.
    pub fn rows_in(&self) -> u64 {
        (self.rows.len() + self.unreadable.len()) as u64
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReadError {
    #[error("{file}: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{file}: row {row}, field {field}: {reason}")]
    Field { file: String, row: u64, field: String, reason: String },
}

/// The format of a file: from its name (`.csv`, `.json`, `.jsonl`, `.ndjson`, `.parquet`,
/// optionally `.gz`), else the source's format.
pub fn format_of(name: &str, default: FileFormat) -> FileFormat {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    if stem.ends_with(".csv") || stem.ends_with(".tsv") {
        FileFormat::Csv
    } else if stem.ends_with(".json") || stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        FileFormat::Ndjson
    } else if stem.ends_with(".parquet") {
        FileFormat::Parquet
    } else {
        default
    }
}

/// Read a file's bytes (gzip detected from its magic bytes).
pub fn read_records(file: &str, bytes: &[u8], format: FileFormat) -> Result<RawRecords, ReadError> {
    let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
    let decompressed;
    let mut bytes = bytes;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| unreadable(format!("truncated or corrupt gzip ({e}); upload the file again")))?;
        decompressed = out;
        bytes = &decompressed;
    }
    if bytes.is_empty() {
        return Ok(RawRecords::default());
    }
    match format {
        FileFormat::Csv => read_csv(file, strip_bom(bytes)),
        FileFormat::Ndjson => read_ndjson(file, strip_bom(bytes)),
        FileFormat::Parquet => read_parquet(file, bytes),
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Snake_cased, non-empty, unique names (`a`, `a_2`, ...).
fn column_names(original: &[String]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    original
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut base = suggest_snake_case(name);
            if base.is_empty() || base.starts_with("_source") || base.starts_with("_ingest") || base == "_batch_id" {
                // Empty headers, or names that would collide with lineage columns.
                base = if base.is_empty() { format!("column_{}", i + 1) } else { format!("src{base}") };
            }
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            if *count == 1 { base } else { format!("{base}_{count}") }
        })
        .collect()
}

fn utf8(file: &str, row: u64, field: &str, bytes: &[u8]) -> Result<String, ReadError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| ReadError::Field {
        file: file.to_string(),
        row,
        field: field.to_string(),
        reason: format!(
            "not valid UTF-8 (byte {} of the value); convert the file to UTF-8 and ingest it again",
            e.utf8_error().valid_up_to() + 1
        ),
    })
}

fn read_csv(file: &str, bytes: &[u8]) -> Result<RawRecords, ReadError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header = reader.byte_headers().map_err(|e| ReadError::Unreadable {
        file: file.to_string(),
        reason: format!("cannot read the header: {e}"),
    })?;
    let original: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| utf8(file, 0, &format!("header column {}", i + 1), h).map(|s| s.trim().to_string()))
        .collect::<Result<_, _>>()?;
    let columns = column_names(&original);
    let mut records = RawRecords { columns, original_columns: original, ..Default::default() };
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                row += 1;
                if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                    row -= 1; // a blank line
                    continue;
                }
                if record.len() != records.columns.len() {
                    records.unreadable.push(UnreadableRow {
                        row,
                        reason: format!(
                            "has {} fields, the header has {} (check quoting: a quote inside a value must be doubled)",
                            record.len(),
                            records.columns.len()
                        ),
                        text: fields_text(&record),
                    });
                    continue;
                }
                let mut values = Vec::with_capacity(record.len());
                for (field, name) in record.iter().zip(&records.columns) {
                    let value = utf8(file, row, name, field)?;
                    values.push(if value.is_empty() { None } else { Some(value) });
                }
                records.rows.push((row, values));
            }
            Err(e) => {
                row += 1;
                records.unreadable.push(UnreadableRow {
                    row,
                    reason: format!("malformed CSV: {e}"),
                    text: String::new(),
                });
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    // An opening quote that is never closed swallows the rest of the file into one value;
    // the reader cannot tell, but an odd number of quote characters can.
    if bytes.iter().filter(|b| **b == b'"').count() % 2 == 1
        && let Some((row, values)) = records.rows.pop()
    {
        let text: Vec<String> = values.into_iter().map(Option::unwrap_or_default).collect();
        records.unreadable.push(UnreadableRow {
            row,
            reason: "a quote opened in this row is never closed, so the rest of the file was read as \
                         one value (a quote inside a value must be doubled)"
                .into(),
            text: serde_json::to_string(&text).unwrap_or_default(),
        });
    }
    Ok(records)
}

fn fields_text(record: &csv::ByteRecord) -> String {
    let fields: Vec<String> = record.iter().map(|f| String::from_utf8_lossy(f).to_string()).collect();
    serde_json::to_string(&fields).unwrap_or_default()
}

fn read_ndjson(file: &str, bytes: &[u8]) -> Result<RawRecords, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        ReadError::Field {
            file: file.to_string(),
            row: line,
            field: "(line)".into(),
            reason: "not valid UTF-8; convert the file to UTF-8 and ingest it again".into(),
        }
    })?;
    let mut original: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Each object becomes its row of values at once (keeping the parsed maps of a large file
    // took about 14 times the file's size); rows read before a key first appeared are padded.
    let mut rows: Vec<(u64, Vec<Option<String>>)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut row = 0u64;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        row += 1;
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => {
                let mut values = vec![None; original.len()];
                for (key, value) in map {
                    let column = match index.get(&key) {
                        Some(&column) => column,
                        None => {
                            index.insert(key.clone(), original.len());
                            original.push(key);
                            original.len() - 1
                        }
                    };
                    if column >= values.len() {
                        values.resize(column + 1, None);
                    }
                    values[column] = json_text(value);
                }
                rows.push((row, values));
            }
            Ok(other) => unreadable.push(UnreadableRow {
                row,
                reason: format!("is a JSON {} where an object was expected", json_kind(&other)),
                text: line.chars().take(2000).collect(),
            }),
            Err(e) => unreadable.push(UnreadableRow {
                row,
                reason: format!("is not valid JSON: {e}"),
                text: line.chars().take(2000).collect(),
            }),
        }
    }
    let columns = column_names(&original);
    for (_, values) in &mut rows {
        values.resize(original.len(), None);
    }
    Ok(RawRecords { columns, original_columns: original, rows, unreadable })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "boolean",
        _ => "null",
    }
}

/// A JSON value as received: strings unquoted, other scalars as their JSON text, objects and
/// arrays as JSON text, null as null.
pub fn json_text(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn read_parquet(file: &str, bytes: &[u8]) -> Result<RawRecords, ReadError> {
    let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .and_then(|b| b.build())
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    let mut records = RawRecords::default();
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(format!("corrupt Parquet data after row {row}: {e}")))?;
        if records.original_columns.is_empty() {
            records.original_columns = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            records.columns = column_names(&records.original_columns);
        }
        let strings = batch
            .columns()
            .iter()
            .zip(&records.columns)
            .map(|(column, name)| {
                cast(column, &DataType::Utf8)
                    .map_err(|e| unreadable(format!("column {name} cannot be read as text: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            row += 1;
            let values =
                strings.iter().map(|c| (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_string())).collect();
            records.rows.push((row, values));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &[u8]) -> RawRecords {
        read_records("f.csv", text, FileFormat::Csv).unwrap()
    }

    #[test]
    fn csv_headers_bom_and_quotes() {
        let r = csv(b"\xEF\xBB\xBFInvoiceNo,Customer ID,Description\n536365,17850,\"WHITE, \"\"HANGING\"\" HEART\"\n");
        assert_eq!(r.columns, ["invoice_no", "customer_id", "description"]);
        assert_eq!(r.rows[0].1[2].as_deref(), Some("WHITE, \"HANGING\" HEART"));
    }

    #[test]
    fn wrong_field_counts_are_rejected_rows() {
        let r = csv(b"a,b\n1,2\n1,2,3\n4,5\n");
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.unreadable.len(), 1);
        assert_eq!(r.unreadable[0].row, 2);
        assert!(r.unreadable[0].reason.contains("3 fields"), "{}", r.unreadable[0].reason);
        assert_eq!(r.rows_in(), 3);
    }

    #[test]
    fn an_unclosed_quote_is_a_rejected_row() {
        let r = csv(b"a,b\n1,\"unclosed\n2,3\n");
        assert_eq!(r.rows_in(), r.rows.len() as u64 + r.unreadable.len() as u64);
        assert!(!r.unreadable.is_empty(), "{r:?}");
    }

    #[test]
    fn non_utf8_names_file_row_and_field() {
        let err = read_records("shop.csv", b"a,b\n1,caf\xe9\n", FileFormat::Csv).unwrap_err();
        assert!(err.to_string().starts_with("shop.csv: row 1, field b: not valid UTF-8"), "{err}");
    }

    #[test]
    fn gzip_and_truncated_gzip() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"a\n1\n2\n").unwrap();
        let gz = encoder.finish().unwrap();
        assert_eq!(read_records("x.csv.gz", &gz, FileFormat::Csv).unwrap().rows.len(), 2);
        let err = read_records("x.csv.gz", &gz[..gz.len() - 6], FileFormat::Csv).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }

    #[test]
    fn ndjson_keeps_nested_values_as_json_and_rejects_bad_lines() {
        let r = read_records(
            "e.json",
            b"{\"op\":\"u\",\"after\":{\"id\":1},\"n\":2}\nnot json\n{\"op\":\"d\",\"extra\":true}\n",
            FileFormat::Ndjson,
        )
        .unwrap();
        assert_eq!(r.columns, ["op", "after", "n", "extra"]);
        assert_eq!(r.rows[0].1, [Some("u".into()), Some("{\"id\":1}".into()), Some("2".into()), None]);
        assert_eq!(r.rows[1].0, 3);
        assert_eq!(r.unreadable[0].row, 2);
    }

    #[test]
    fn empty_and_header_only() {
        assert_eq!(csv(b"").rows_in(), 0);
        let r = csv(b"a,b\n");
        assert_eq!((r.columns.len(), r.rows_in()), (2, 0));
    }
}
