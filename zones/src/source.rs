//! What a source is: the kind of file it delivers and the clean contract its rows map onto.
//!
//! Sources are declared in `cdplake.toml` under `[sources.NAME]`; [`crate::presets`] holds the
//! built-in ones for every source in the seed documents.

use serde::Deserialize;

/// The file format a source delivers (gzip is detected from the content, any format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    /// One JSON object per line (Kafka / Firehose deliveries, Debezium change events).
    Ndjson,
    Parquet,
}

pub use crate::types::ColumnType;
use crate::types::{TimeFormat, Zone};

/// How a value is normalised before it is stored (and hashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Whitespace trimmed only.
    #[default]
    Trim,
    /// Trimmed and lower-cased; must look like `local@domain`.
    Email,
    /// E.164 (`+447700900123`); a number without a country code is read in the row's country
    /// (its `country` column), else in the source's `phone_region`.
    Phone,
    /// ISO 3166-1 alpha-2 from a code (`GB`, `GBR`) or an English name (`United Kingdom`).
    Country,
    Lower,
    Upper,
    /// An id: trimmed, and a whole number exported through a float column (`13085.0`, as
    /// Online Retail II writes its customer ids) written as the whole number (`13085`).
    Id,
}

/// What happens to a personal value on its way to the clean zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PiiTreatment {
    /// HMAC-SHA256 (key `CDPLAKE_PII_KEY`) or SHA-256 of the normalised value; the clean
    /// column is named `<name>_hash`.
    Hash,
    /// Partly hidden (`a***@example.com`, `+44*******123`).
    Mask,
    /// Stored as is (the source owner decided so).
    Keep,
    /// Not stored at all.
    Drop,
}

/// How change-data-capture operations are encoded, if the source carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CdcStyle {
    /// Plain rows: each one is an insert or update.
    #[default]
    None,
    /// AWS DMS: an `Op` column with `I`, `U` or `D` before the row's columns.
    Dms,
    /// Debezium JSON: `op` (`c`, `u`, `d`, `r`) with the row in `after` (or `before` for `d`).
    Debezium,
}

/// What makes two rows of a source without a key the same row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dedupe {
    /// All values equal: a duplicate.
    #[default]
    Exact,
    /// Every line is a row, repeats included.
    None,
}

/// A column of the clean contract.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    /// The clean column name (lower snake_case).
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub column_type: ColumnType,
    /// Names the column may have in incoming files (compared after snake_casing, so
    /// `Customer ID`, `CustomerID` and `customer_id` are one); default: `name`.
    #[serde(default)]
    pub from: Vec<String>,
    /// A row without a value here is rejected; a file without the column is rejected whole.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub normalize: Normalize,
    /// Set for personal data: how it is treated.
    #[serde(default)]
    pub pii: Option<PiiTreatment>,
    /// Set when the column identifies a customer (`email_hash`, `member_id`, ...): the
    /// identity job links the identifiers of one row.
    #[serde(default)]
    pub id_type: Option<String>,
    /// Numbers below zero are rejected.
    #[serde(default)]
    pub non_negative: bool,
    /// How a date or timestamp is written: a strftime pattern (`%Y%m%d`) or `epoch_seconds`,
    /// `epoch_millis`, `epoch_micros`. Without it the source's `date_formats` /
    /// `timestamp_formats` and RFC 3339 are tried.
    #[serde(default)]
    pub format: Option<String>,
    /// The time zone of timestamps written without one (`Europe/Berlin`, `+08:00`); UTC if unset.
    #[serde(default)]
    pub timezone: Option<String>,
}

fn default_type() -> ColumnType {
    ColumnType::String
}

impl ColumnDef {
    pub fn new(name: &str, column_type: ColumnType) -> Self {
        Self {
            name: name.to_string(),
            column_type,
            from: Vec::new(),
            required: false,
            normalize: Normalize::Trim,
            pii: None,
            id_type: None,
            non_negative: false,
            format: None,
            timezone: None,
        }
    }

    pub fn from(mut self, names: &[&str]) -> Self {
        self.from = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn normalize(mut self, normalize: Normalize) -> Self {
        self.normalize = normalize;
        self
    }

    pub fn pii(mut self, treatment: PiiTreatment) -> Self {
        self.pii = Some(treatment);
        self
    }

    pub fn id_type(mut self, id_type: &str) -> Self {
        self.id_type = Some(id_type.to_string());
        self
    }

    pub fn non_negative(mut self) -> Self {
        self.non_negative = true;
        self
    }

    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }

    /// The column's time format, if it names one.
    pub fn time_format(&self) -> Result<Option<TimeFormat>, String> {
        self.format.as_deref().map(TimeFormat::parse).transpose()
    }

    /// The zone of its naive timestamps (UTC unless it names one).
    pub fn zone(&self) -> Result<Zone, String> {
        self.timezone.as_deref().map_or(Ok(Zone::Utc), Zone::parse)
    }

    /// Check what serde cannot: formats and zones parse, and fit the column's type.
    fn validate(&self) -> Result<(), String> {
        let time = matches!(self.column_type, ColumnType::Date | ColumnType::Timestamp);
        if self.format.is_some() && !time {
            return Err(format!(
                "column {}: format applies to date and timestamp columns, not {}",
                self.name, self.column_type
            ));
        }
        if self.timezone.is_some() && self.column_type != ColumnType::Timestamp {
            return Err(format!(
                "column {}: timezone applies to timestamp columns, not {}",
                self.name, self.column_type
            ));
        }
        self.time_format().map_err(|e| format!("column {}: {e}", self.name))?;
        self.zone().map_err(|e| format!("column {}: {e}", self.name))?;
        Ok(())
    }

    /// The raw column names this column is read from (snake_cased).
    pub fn raw_names(&self) -> Vec<String> {
        if self.from.is_empty() {
            vec![self.name.clone()]
        } else {
            self.from.iter().map(|n| cdplake_engine::naming::suggest_snake_case(n)).collect()
        }
    }

    /// The column's name in the clean table (`email` hashed becomes `email_hash`), or `None`
    /// when it is dropped.
    pub fn clean_name(&self) -> Option<String> {
        match self.pii {
            Some(PiiTreatment::Drop) => None,
            Some(PiiTreatment::Hash) => Some(format!("{}_hash", self.name)),
            _ => Some(self.name.clone()),
        }
    }
}

/// A source: one kind of incoming file and its clean contract.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Set from the `[sources.NAME]` key; also the raw and clean table name.
    #[serde(default)]
    pub name: String,
    pub format: FileFormat,
    pub columns: Vec<ColumnDef>,
    /// The business key; rows are upserted by it. Empty: a key is derived from all values
    /// (an exact repeat of a row is then a duplicate).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The column that orders versions of a row (`updated_at`): the latest wins.
    #[serde(default)]
    pub order_by: Option<String>,
    /// The business time of a row (an event's time, an order's date, a record's `updated_at`):
    /// when its identifiers were used. Identity's first_seen / last_seen come from it; a row
    /// without a value falls back to `order_by`, then to the time it was ingested.
    #[serde(default)]
    pub time_column: Option<String>,
    #[serde(default)]
    pub cdc: CdcStyle,
    /// Without a primary key: whether an exact repeat of a row is a duplicate (`exact`, the
    /// default: a file delivered twice under two names, or a row repeated by an export, counts
    /// once) or a row of its own (`none`: in a purchase log two identical lines are two purchases).
    #[serde(default)]
    pub dedupe: Dedupe,
    /// `chrono` formats tried in order for date columns.
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    /// `chrono` formats tried in order for timestamp columns (RFC 3339 is always accepted).
    #[serde(default = "default_timestamp_formats")]
    pub timestamp_formats: Vec<String>,
    /// Region for phone numbers written without a country code (ISO alpha-2).
    #[serde(default = "default_phone_region")]
    pub phone_region: String,
    #[serde(default)]
    pub description: String,
}

pub fn default_date_formats() -> Vec<String> {
    ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y"].map(String::from).to_vec()
}

pub fn default_timestamp_formats() -> Vec<String> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"]
        .map(String::from)
        .to_vec()
}

fn default_phone_region() -> String {
    "GB".into()
}

impl Source {
    pub fn new(name: &str, format: FileFormat, columns: Vec<ColumnDef>) -> Self {
        Self {
            name: name.to_string(),
            format,
            columns,
            primary_key: Vec::new(),
            order_by: None,
            time_column: None,
            cdc: CdcStyle::None,
            dedupe: Dedupe::Exact,
            date_formats: default_date_formats(),
            timestamp_formats: default_timestamp_formats(),
            phone_region: default_phone_region(),
            description: String::new(),
        }
    }

    pub fn key(mut self, columns: &[&str]) -> Self {
        self.primary_key = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    pub fn ordered_by(mut self, column: &str) -> Self {
        self.order_by = Some(column.to_string());
        self
    }

    pub fn timed_by(mut self, column: &str) -> Self {
        self.time_column = Some(column.to_string());
        self
    }

    /// The columns that give a row's business time, in the order they are tried.
    pub fn time_columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self.time_column.iter().chain(&self.order_by).map(String::as_str).collect();
        columns.dedup();
        columns
    }

    pub fn cdc(mut self, style: CdcStyle) -> Self {
        self.cdc = style;
        self
    }

    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Check the definition: names, key and order columns exist, required keys.
    pub fn validate(&self) -> Result<(), String> {
        cdplake_engine::validate_name("source", &self.name).map_err(|e| e.to_string())?;
        if self.columns.is_empty() {
            return Err(format!("source {}: no columns", self.name));
        }
        for column in &self.columns {
            cdplake_engine::validate_name("column", &column.name).map_err(|e| format!("source {}: {e}", self.name))?;
            column.validate().map_err(|e| format!("source {}: {e}", self.name))?;
        }
        if self.dedupe == Dedupe::None && !self.primary_key.is_empty() {
            return Err(format!(
                "source {}: dedupe = \"none\" is for sources without a primary_key (rows with a key are upserted by it)",
                self.name
            ));
        }
        for key in self.primary_key.iter().chain(&self.order_by) {
            let column = self
                .column(key)
                .ok_or_else(|| format!("source {}: key column {key} is not among its columns", self.name))?;
            if matches!(column.pii, Some(PiiTreatment::Drop) | Some(PiiTreatment::Mask)) {
                return Err(format!("source {}: key column {key} cannot be dropped or masked", self.name));
            }
        }
        if let Some(time) = &self.time_column {
            let column = self
                .column(time)
                .ok_or_else(|| format!("source {}: time_column {time} is not among its columns", self.name))?;
            if !matches!(column.column_type, ColumnType::Date | ColumnType::Timestamp) {
                return Err(format!("source {}: time_column {time} must be of type date or timestamp", self.name));
            }
        }
        Ok(())
    }
}
