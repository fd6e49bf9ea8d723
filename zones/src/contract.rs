//! Applying a source's clean contract to one raw row: typed, normalised, PII treated, or
//! rejected with the field and the reason.

use std::sync::Arc;

use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::timestamp_type;
use chrono::{DateTime, NaiveDate, Utc};

use crate::normalize;
use crate::source::{CdcStyle, ColumnDef, ColumnType, Normalize, PiiTreatment, Source};
use crate::types::{Zone, parse_decimal};

/// Lineage columns every clean table carries, after the contract's columns.
pub const ROW_KEY: &str = "_row_key";
pub const SOURCE_URI: &str = "_source_uri";
pub const SOURCE_ROW: &str = "_source_row";
pub const BATCH_ID: &str = "_batch_id";
pub const INGESTED_AT: &str = "_ingested_at";

/// A typed clean value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    /// An exact decimal: the value times 10^scale, and the scale.
    Decimal(i128, u8),
}

impl Value {
    /// A sortable number for the `order_by` column.
    pub fn order_key(&self) -> Option<i64> {
        match self {
            Value::Int(v) | Value::Timestamp(v) => Some(*v),
            Value::Date(d) => Some(*d as i64),
            Value::Float(f) => Some(*f as i64),
            Value::Decimal(v, scale) => Some((*v / 10i128.pow(*scale as u32)) as i64),
            _ => None,
        }
    }
}

/// What a valid row asks of the clean table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

/// A row that passed the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanRow {
    /// The business key (key columns joined), or a digest of all values for keyless sources.
    pub key: String,
    pub op: Op,
    /// One value per column of [`Contract::columns`].
    pub values: Vec<Value>,
    /// The `order_by` value, if the source has one.
    pub order: Option<i64>,
}

/// A row's typed values, before its key is derived.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedRow {
    pub op: Op,
    /// One value per column of [`Contract::columns`].
    pub values: Vec<Value>,
    /// The `order_by` value, if the source has one.
    pub order: Option<i64>,
}

/// A row the contract refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub field: String,
    /// A short, stable name of the broken rule (`missing`, `negative`, `not_a_date`, ...),
    /// for counting; `reason` is the sentence for people.
    pub rule: &'static str,
    pub reason: String,
}

type Failure = (&'static str, String);

/// A value that was kept but could not be normalised (set to null), e.g. an unknown country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub field: String,
    pub reason: String,
}

/// A source's contract, ready to apply to the columns of one raw batch.
pub struct Contract<'a> {
    source: &'a Source,
    /// Contract columns that reach the clean table.
    columns: Vec<&'a ColumnDef>,
    pii_key: Option<Vec<u8>>,
}

/// Where a contract column's value comes from in a raw row.
#[derive(Debug, Clone)]
pub struct RawLayout {
    /// Raw column indexes per contract column, one per alias present (the raw table holds
    /// the union of every file's columns, so `invoice` and `invoice_no` may both exist).
    positions: Vec<Vec<usize>>,
    cdc: CdcStyle,
    op: Option<usize>,
    before: Option<usize>,
    after: Option<usize>,
}

impl<'a> Contract<'a> {
    pub fn new(source: &'a Source, pii_key: Option<Vec<u8>>) -> Self {
        let columns = source.columns.iter().filter(|c| c.clean_name().is_some()).collect();
        Self { source, columns, pii_key }
    }

    pub fn source(&self) -> &Source {
        self.source
    }

    /// The key PII values are hashed with (HMAC-SHA256), if one is set.
    pub fn pii_key(&self) -> Option<&[u8]> {
        self.pii_key.as_deref()
    }

    /// The clean table's contract columns (after PII treatment), in order.
    pub fn columns(&self) -> &[&'a ColumnDef] {
        &self.columns
    }

    /// The clean table schema: contract columns, then key and lineage.
    pub fn clean_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let name = c.clean_name().unwrap_or_default();
                Field::new(name, arrow_type(c.column_type), !c.required)
            })
            .collect();
        fields.extend([
            Field::new(ROW_KEY, DataType::Utf8, false),
            Field::new(SOURCE_URI, DataType::Utf8, true),
            Field::new(SOURCE_ROW, DataType::Int64, true),
            Field::new(BATCH_ID, DataType::Utf8, true),
            Field::new(INGESTED_AT, timestamp_type(), true),
        ]);
        Arc::new(Schema::new(fields))
    }

    /// Clean names of the columns that hold personal data (hashed, masked or kept).
    pub fn pii_columns(&self) -> Vec<String> {
        self.columns.iter().filter(|c| c.pii.is_some()).filter_map(|c| c.clean_name()).collect()
    }

    /// Map the raw columns of a batch; fails (whole batch) when a required column is missing.
    pub fn layout(&self, raw_columns: &[String]) -> Result<RawLayout, String> {
        let find = |name: &str| raw_columns.iter().position(|c| c == name);
        let op = find("op");
        let (before, after) = (find("before"), find("after"));
        let contract_has_op = self.source.column("op").is_some();
        let cdc = self.source.cdc;
        let cdc = if cdc == CdcStyle::None && !contract_has_op && op.is_some() {
            if before.is_some() || after.is_some() { CdcStyle::Debezium } else { CdcStyle::Dms }
        } else {
            cdc
        };
        let positions: Vec<Vec<usize>> =
            self.columns.iter().map(|c| c.raw_names().iter().filter_map(|n| find(n)).collect()).collect();
        if cdc != CdcStyle::Debezium {
            let missing: Vec<String> = self
                .columns
                .iter()
                .zip(&positions)
                .filter(|(c, p)| c.required && p.is_empty())
                .map(|(c, _)| {
                    let names = c.raw_names();
                    if names == [c.name.clone()] {
                        c.name.clone()
                    } else {
                        format!("{} (as {})", c.name, names.join(" or "))
                    }
                })
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "required column{} missing: {}; the file has {}",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    raw_columns.join(", ")
                ));
            }
        }
        Ok(RawLayout { positions, cdc, op, before, after })
    }

    /// Apply the contract to one raw row (values in raw column order).
    pub fn apply(
        &self,
        layout: &RawLayout,
        raw: &[Option<&str>],
        warnings: &mut Vec<Warning>,
    ) -> Result<CleanRow, Rejection> {
        let TypedRow { op, values, order } = self.typed(layout, raw, warnings)?;
        let key = self.key(&values, raw);
        Ok(CleanRow { key, op, values, order })
    }

    /// The typed values of one raw row, without its key: what a reader of one batch's versions
    /// (the identity job) needs.
    pub fn typed(
        &self,
        layout: &RawLayout,
        raw: &[Option<&str>],
        warnings: &mut Vec<Warning>,
    ) -> Result<TypedRow, Rejection> {
        let (op, image) = operation(layout, raw)?;
        let input = RowInput { raw, image };
        let region = self.phone_region(layout, &input);
        let mut values = Vec::with_capacity(self.columns.len());
        let mut order = None;
        for (column, positions) in self.columns.iter().zip(&layout.positions) {
            let text = input.value_of(column, positions);
            let is_key = self.source.primary_key.contains(&column.name);
            let value = self
                .value(column, text.as_deref(), &region, warnings)
                .map_err(|failure| rejection(&column.name, failure))?;
            if value == Value::Null && column.required && (op == Op::Upsert || is_key) {
                return Err(rejection(&column.name, ("missing", "required value is missing".into())));
            }
            if self.source.order_by.as_deref() == Some(column.name.as_str()) {
                order = value.order_key();
            }
            values.push(value);
        }
        Ok(TypedRow { op, values, order })
    }

    /// The region phones written without a country code are read in: the row's own country, if
    /// the contract has a country column and the row a known country, else the source's.
    fn phone_region(&self, layout: &RawLayout, input: &RowInput<'_, '_>) -> String {
        let has_phone = self.columns.iter().any(|c| c.normalize == Normalize::Phone);
        has_phone
            .then(|| self.columns.iter().zip(&layout.positions).find(|(c, _)| c.normalize == Normalize::Country))
            .flatten()
            .and_then(|(c, p)| input.value_of(c, p))
            .and_then(|country| normalize::country(&country))
            .unwrap_or_else(|| self.source.phone_region.clone())
    }

    fn key(&self, values: &[Value], raw: &[Option<&str>]) -> String {
        if self.source.primary_key.is_empty() {
            // No business key: the row is its own identity (an exact repeat is a duplicate).
            let mut hasher = String::new();
            for value in raw {
                hasher.push_str(value.unwrap_or("\u{0}"));
                hasher.push('\u{1f}');
            }
            return normalize::pii_hash(&hasher, None);
        }
        self.source
            .primary_key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .map(|i| value_text(&values[i]))
            .collect::<Vec<_>>()
            .join("\u{1f}")
    }

    fn value(
        &self,
        column: &ColumnDef,
        input: Option<&str>,
        region: &str,
        warnings: &mut Vec<Warning>,
    ) -> Result<Value, Failure> {
        let Some(text) = input.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Value::Null);
        };
        let mut warn = |reason: String| {
            warnings.push(Warning { field: column.name.clone(), reason });
            Ok(Value::Null)
        };
        let normalised = match column.normalize {
            Normalize::Trim => text.to_string(),
            Normalize::Lower => text.to_lowercase(),
            Normalize::Upper => text.to_uppercase(),
            Normalize::Email => match normalize::email(text) {
                Some(email) => email,
                None => return warn("not an email address; stored as null".into()),
            },
            Normalize::Phone => match normalize::phone_in(text, &[region, &self.source.phone_region]) {
                Some(phone) => phone,
                None => return warn(format!("not a phone number (read in region {region}); stored as null")),
            },
            Normalize::Id => normalize::id(text),
            Normalize::Country => match normalize::country(text) {
                Some(code) => code,
                None => return warn(format!("{text:?} is not a country; stored as null")),
            },
        };
        let value = parse(column, &normalised, self.source)?;
        Ok(match (column.pii, value) {
            (Some(PiiTreatment::Hash), Value::Text(t)) => Value::Text(normalize::pii_hash(&t, self.pii_key.as_deref())),
            (Some(PiiTreatment::Mask), Value::Text(t)) => Value::Text(normalize::mask(&t)),
            (_, value) => value,
        })
    }
}

/// A Debezium change row's image (`after`, or `before` for a delete): its values by
/// snake_cased name.
type RowImage = std::collections::HashMap<String, Option<String>>;

/// Where a raw row's values are read from: its raw columns, or the row image of a Debezium
/// change row.
struct RowInput<'r, 'v> {
    raw: &'r [Option<&'v str>],
    image: Option<RowImage>,
}

impl RowInput<'_, '_> {
    /// The value of a contract column: the first of its names present (with a value).
    fn value_of(&self, column: &ColumnDef, positions: &[usize]) -> Option<String> {
        match &self.image {
            Some(image) => column.raw_names().iter().find_map(|n| image.get(n).cloned().flatten()),
            None => positions.iter().find_map(|&p| raw_at(self.raw, Some(p))).map(str::to_string),
        }
    }
}

fn rejection(field: &str, (rule, reason): Failure) -> Rejection {
    Rejection { field: field.to_string(), rule, reason }
}

/// The raw value at `position`, if there is one.
fn raw_at<'v>(raw: &[Option<&'v str>], position: Option<usize>) -> Option<&'v str> {
    position.and_then(|i| raw.get(i).copied().flatten())
}

/// The row's operation, and for a Debezium change row the row image its values come from.
fn operation(layout: &RawLayout, raw: &[Option<&str>]) -> Result<(Op, Option<RowImage>), Rejection> {
    match layout.cdc {
        CdcStyle::None => Ok((Op::Upsert, None)),
        CdcStyle::Dms => dms_operation(raw_at(raw, layout.op)).map(|op| (op, None)),
        CdcStyle::Debezium if raw_at(raw, layout.op).is_none() => Ok((Op::Upsert, None)),
        CdcStyle::Debezium => debezium_change(layout, raw).map(|(op, image)| (op, Some(image))),
    }
}

/// A DMS operation: I, U or D; a row without one is a plain row (the raw table holds files of
/// both kinds).
fn dms_operation(op: Option<&str>) -> Result<Op, Rejection> {
    match op.map(|o| o.trim().to_ascii_uppercase()).as_deref() {
        None | Some("I") | Some("U") => Ok(Op::Upsert),
        Some("D") => Ok(Op::Delete),
        other => Err(rejection("op", ("bad_operation", format!("DMS operation must be I, U or D, got {other:?}")))),
    }
}

/// A Debezium change row's operation (c, r, u or d) and its row image: `after`, or `before`
/// for a delete, a JSON object.
fn debezium_change(layout: &RawLayout, raw: &[Option<&str>]) -> Result<(Op, RowImage), Rejection> {
    let op = raw_at(raw, layout.op).map(|o| o.trim().to_ascii_lowercase());
    let (op, image) = match op.as_deref() {
        Some("c") | Some("r") | Some("u") => (Op::Upsert, raw_at(raw, layout.after)),
        Some("d") => (Op::Delete, raw_at(raw, layout.before)),
        other => {
            return Err(rejection("op", ("bad_operation", format!("Debezium op must be c, r, u or d, got {other:?}"))));
        }
    };
    let image = image.ok_or_else(|| {
        rejection(if op == Op::Delete { "before" } else { "after" }, ("missing", "the row image is missing".into()))
    })?;
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(image)
        .map_err(|e| rejection("after", ("bad_image", format!("the row image is not a JSON object: {e}"))))?;
    let image = object
        .into_iter()
        .map(|(k, v)| (cdplake_engine::naming::suggest_snake_case(&k), crate::reader::json_text(v)))
        .collect();
    Ok((op, image))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Text(t) => t.clone(),
        Value::Int(v) | Value::Timestamp(v) => v.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Decimal(v, scale) => crate::types::decimal_text(*v, *scale),
    }
}

pub fn arrow_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => timestamp_type(),
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
    }
}

fn parse(column: &ColumnDef, text: &str, source: &Source) -> Result<Value, Failure> {
    let value = match column.column_type {
        ColumnType::String => return Ok(Value::Text(text.to_string())),
        ColumnType::Int => Value::Int(
            parse_int(text).ok_or_else(|| ("not_a_whole_number", format!("{text:?} is not a whole number")))?,
        ),
        ColumnType::Float => {
            let f: f64 = text.parse().map_err(|_| ("not_a_number", format!("{text:?} is not a number")))?;
            if !f.is_finite() {
                return Err(("not_a_number", format!("{text:?} is not a finite number")));
            }
            Value::Float(f)
        }
        ColumnType::Bool => Value::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => true,
            "false" | "f" | "no" | "n" | "0" => false,
            _ => return Err(("not_a_boolean", format!("{text:?} is not true or false"))),
        }),
        ColumnType::Decimal { precision, scale } => {
            Value::Decimal(parse_decimal(text, precision, scale).map_err(|e| ("not_a_decimal", e))?, scale)
        }
        ColumnType::Date => {
            let format = column.time_format().map_err(|e| ("bad_format", e))?;
            let parsed = match &format {
                Some(format) => format.date(text),
                None => parse_date(text, source),
            };
            Value::Date(parsed.ok_or_else(|| {
                let expected = match &format {
                    Some(format) => format.describe(),
                    None => format!("any of the formats {}", source.date_formats.join(", ")),
                };
                ("not_a_date", format!("{text:?} is not a date in {expected}"))
            })?)
        }
        ColumnType::Timestamp => {
            let format = column.time_format().map_err(|e| ("bad_format", e))?;
            let zone = column.zone().map_err(|e| ("bad_timezone", e))?;
            let parsed = match &format {
                Some(format) => format.timestamp(text, &zone),
                None => parse_timestamp(text, source, &zone),
            };
            Value::Timestamp(parsed.ok_or_else(|| {
                let expected = match &format {
                    Some(format) => format.describe(),
                    None => format!("RFC 3339 or any of the formats {}", source.timestamp_formats.join(", ")),
                };
                ("not_a_timestamp", format!("{text:?} is not a timestamp in {expected}"))
            })?)
        }
    };
    if column.non_negative {
        let negative = match value {
            Value::Int(v) => v < 0,
            Value::Float(f) => f < 0.0,
            Value::Decimal(v, _) => v < 0,
            _ => false,
        };
        if negative {
            return Err(("negative", format!("{text} is negative; {} cannot be below zero", column.name)));
        }
    }
    Ok(value)
}

/// `12`, `+12`, and `12.0` (ids exported through a float column) are whole numbers.
fn parse_int(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        let f: f64 = text.parse().ok()?;
        (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

fn parse_date(text: &str, source: &Source) -> Option<i32> {
    let epoch = DateTime::UNIX_EPOCH.date_naive();
    let days = |d: NaiveDate| (d - epoch).num_days() as i32;
    source.date_formats.iter().find_map(|f| NaiveDate::parse_from_str(text, f).ok()).map(days).or_else(|| {
        parse_timestamp(text, source, &Zone::Utc)
            .and_then(DateTime::from_timestamp_micros)
            .map(|t| days(t.date_naive()))
    })
}

fn parse_timestamp(text: &str, source: &Source, zone: &Zone) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    // The first format that reads an offset gives the instant; else the first that reads a date
    // and time gives a naive one (as `DateTime::parse_from_str` then `NaiveDateTime::...` over
    // the formats would), parsing the text once per format.
    let mut naive = None;
    for format in &source.timestamp_formats {
        let Some(parsed) = crate::types::parse_with(text, format) else { continue };
        if let Ok(t) = parsed.to_datetime() {
            return Some(t.with_timezone(&Utc).timestamp_micros());
        }
        if naive.is_none() {
            naive = parsed.to_naive_datetime_with_offset(0).ok();
        }
    }
    naive
        .or_else(|| {
            source
                .date_formats
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .and_then(|t| zone.micros(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    fn apply(source: &Source, columns: &[&str], row: &[Option<&str>]) -> (Result<CleanRow, Rejection>, Vec<Warning>) {
        let contract = Contract::new(source, None);
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let layout = contract.layout(&columns).unwrap();
        let mut warnings = Vec::new();
        (contract.apply(&layout, row, &mut warnings), warnings)
    }

    #[test]
    fn retail_lines_both_spellings() {
        let source = preset("retail_transactions").unwrap();
        let uci = [
            "invoice_no",
            "stock_code",
            "description",
            "quantity",
            "invoice_date",
            "unit_price",
            "customer_id",
            "country",
        ];
        let (row, warnings) = apply(
            &source,
            &uci,
            &[
                Some("C536379"),
                Some("D"),
                Some("Discount"),
                Some("-1"),
                Some("2010-12-01 09:41:00"),
                Some("27.5"),
                Some("14527.0"),
                Some("EIRE"),
            ],
        );
        let row = row.unwrap();
        assert!(warnings.is_empty());
        assert_eq!(row.values[3], Value::Int(-1));
        assert_eq!(row.values[6], Value::Text("14527".into()), "a float-exported id is its whole number");
        assert_eq!(row.values[7], Value::Text("IE".into()));
        let ii =
            ["invoice", "stock_code", "description", "quantity", "invoice_date", "price", "customer_id", "country"];
        let (row, _) = apply(
            &source,
            &ii,
            &[
                Some("536365"),
                Some("85123A"),
                None,
                Some("6"),
                Some("12/1/2010 8:26"),
                Some("2.55"),
                None,
                Some("Unspecified"),
            ],
        );
        let row = row.unwrap();
        assert_eq!(row.values[4], Value::Timestamp(1_291_191_960_000_000));
        let (row, warnings) = apply(
            &source,
            &ii,
            &[
                Some("A563185"),
                Some("B"),
                Some("Adjust bad debt"),
                Some("1"),
                Some("8/12/2011 14:50"),
                Some("-11062.06"),
                None,
                Some("United Kingdom"),
            ],
        );
        assert_eq!(
            row.unwrap_err(),
            Rejection {
                field: "price".into(),
                rule: "negative",
                reason: "-11062.06 is negative; price cannot be below zero".into()
            }
        );
        assert!(warnings.is_empty());
        let (row, _) = apply(
            &source,
            &ii,
            &[Some("1"), Some("B"), None, Some("x"), Some("8/12/2011 14:50"), Some("NaN"), None, None],
        );
        assert_eq!(row.unwrap_err().field, "quantity");
    }

    #[test]
    fn emails_are_hashed_and_missing_required_columns_named() {
        let source = preset("customers").unwrap();
        let contract = Contract::new(&source, None);
        let err = contract.layout(&["email".into()]).unwrap_err();
        assert!(err.contains("customer_id"), "{err}");
        let (row, _) = apply(&source, &["customer_id", "email"], &[Some("c1"), Some(" Alice@Example.com ")]);
        assert_eq!(row.unwrap().values[1], Value::Text(normalize::pii_hash("alice@example.com", None)));
        assert!(contract.clean_schema().field_with_name("email_hash").is_ok());
        assert!(contract.clean_schema().field_with_name("email").is_err(), "plaintext never reaches clean");
    }

    #[test]
    fn cdc_dms_and_debezium() {
        let source = preset("orders").unwrap();
        let (row, _) =
            apply(&source, &["op", "order_id", "updated_at"], &[Some("D"), Some("o1"), Some("2024-05-01 10:00:00")]);
        let row = row.unwrap();
        assert_eq!((row.op, row.key.as_str()), (Op::Delete, "o1"));
        let (row, _) = apply(
            &source,
            &["op", "before", "after"],
            &[
                Some("u"),
                None,
                Some(r#"{"order_id":"o2","order_status":"SHIPPED","updated_at":"2024-05-01T10:00:00Z"}"#),
            ],
        );
        let row = row.unwrap();
        assert_eq!((row.op, row.key.as_str()), (Op::Upsert, "o2"));
        assert_eq!(row.values[2], Value::Text("shipped".into()));
        assert!(row.order.is_some());
        let (row, _) = apply(&source, &["op", "order_id", "updated_at"], &[Some("X"), Some("o1"), Some("2024-05-01")]);
        assert_eq!(row.unwrap_err().field, "op");
    }
}

/// Where a clean row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Lineage {
    pub source_uri: String,
    pub source_row: i64,
    pub batch_id: String,
    /// Microseconds since the epoch.
    pub ingested_at: i64,
}

/// The MERGE source column holding each row's [`Op`] (`upsert` / `delete`).
pub const OP: &str = "_op";

/// Clean rows as one batch of [`Contract::clean_schema`] plus the [`OP`] column.
pub fn clean_batch(
    contract: &Contract<'_>,
    rows: &[(&CleanRow, &Lineage)],
) -> Result<cdplake_engine::arrow::array::RecordBatch, cdplake_engine::arrow::error::ArrowError> {
    use cdplake_engine::arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    };
    let schema = contract.clean_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len() + 1);
    for (i, column) in contract.columns().iter().enumerate() {
        let values = rows.iter().map(|(row, _)| &row.values[i]);
        let array: ArrayRef = match column.column_type {
            ColumnType::String => Arc::new(
                values
                    .map(|v| match v {
                        Value::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
            ColumnType::Int => Arc::new(
                values
                    .map(|v| match v {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Int64Array>(),
            ),
            ColumnType::Float => Arc::new(
                values
                    .map(|v| match v {
                        Value::Float(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Float64Array>(),
            ),
            ColumnType::Bool => Arc::new(
                values
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ),
            ColumnType::Date => Arc::new(
                values
                    .map(|v| match v {
                        Value::Date(d) => Some(*d),
                        _ => None,
                    })
                    .collect::<Date32Array>(),
            ),
            ColumnType::Timestamp => Arc::new(
                values
                    .map(|v| match v {
                        Value::Timestamp(t) => Some(*t),
                        _ => None,
                    })
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            ColumnType::Decimal { precision, scale } => Arc::new(
                values
                    .map(|v| match v {
                        Value::Decimal(d, _) => Some(*d),
                        _ => None,
                    })
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(precision, scale as i8)?,
            ),
        };
        columns.push(array);
    }
    columns.push(Arc::new(rows.iter().map(|(r, _)| Some(r.key.as_str())).collect::<StringArray>()));
    columns.push(Arc::new(rows.iter().map(|(_, l)| Some(l.source_uri.as_str())).collect::<StringArray>()));
    columns.push(Arc::new(rows.iter().map(|(_, l)| Some(l.source_row)).collect::<Int64Array>()));
    columns.push(Arc::new(rows.iter().map(|(_, l)| Some(l.batch_id.as_str())).collect::<StringArray>()));
    columns.push(Arc::new(
        rows.iter().map(|(_, l)| Some(l.ingested_at)).collect::<TimestampMicrosecondArray>().with_timezone("UTC"),
    ));
    columns.push(Arc::new(
        rows.iter().map(|(r, _)| Some(if r.op == Op::Delete { "delete" } else { "upsert" })).collect::<StringArray>(),
    ));
    // All nullable: a CDC delete carries only its key.
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    fields.push(Field::new(OP, DataType::Utf8, false));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
