//! Column types of a clean contract and the formats values arrive in.
//!
//! A contract names a column's type as text in `cdplake.toml` (`type = "decimal(12,2)"`), and
//! may say how its dates or timestamps are written (`format = "%Y%m%d"`, `"epoch_seconds"`) and
//! in which time zone a timestamp without one was written (`timezone = "Europe/Berlin"`).
//! Everything here fails with a sentence naming what was expected.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The type a clean column is parsed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    /// A 64-bit whole number.
    Int,
    /// A 64-bit floating-point number.
    Float,
    Bool,
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    /// An exact number with `precision` digits, `scale` of them after the point (money).
    Decimal {
        precision: u8,
        scale: u8,
    },
}

/// The accepted spellings, for error messages and documentation.
pub const TYPE_NAMES: &str = "string, int, float, bool, date, timestamp, decimal(p,s)";

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" | "text" | "varchar" => ColumnType::String,
            "int" | "integer" | "bigint" | "long" => ColumnType::Int,
            "float" | "double" | "real" => ColumnType::Float,
            "bool" | "boolean" => ColumnType::Bool,
            "date" => ColumnType::Date,
            "timestamp" | "datetime" => ColumnType::Timestamp,
            _ => {
                return parse_decimal_type(&t).ok_or_else(|| {
                    format!("unknown column type {text:?}: use one of {TYPE_NAMES} (e.g. decimal(12,2) for money)")
                })?;
            }
        })
    }
}

/// `decimal(p,s)`, `decimal(p)` or `numeric(p,s)`; `None` if not a decimal type, an error if
/// the numbers are out of range.
fn parse_decimal_type(t: &str) -> Option<Result<ColumnType, String>> {
    let inner = t.strip_prefix("decimal").or_else(|| t.strip_prefix("numeric"))?;
    let inner = inner.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut parts = inner.split(',').map(str::trim);
    let precision: u8 = parts.next()?.parse().ok()?;
    let scale: u8 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(if !(1..=38).contains(&precision) || scale > precision {
        Err(format!("decimal({precision},{scale}): precision must be 1 to 38 and scale at most the precision"))
    } else {
        Ok(ColumnType::Decimal { precision, scale })
    })
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => write!(f, "string"),
            ColumnType::Int => write!(f, "int"),
            ColumnType::Float => write!(f, "float"),
            ColumnType::Bool => write!(f, "bool"),
            ColumnType::Date => write!(f, "date"),
            ColumnType::Timestamp => write!(f, "timestamp"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl schemars::JsonSchema for ColumnType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ColumnType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": format!("One of {TYPE_NAMES} (aliases: text, varchar, integer, bigint, long, double, real, boolean, datetime, numeric(p,s))."),
            "pattern": "^(?i)(string|text|varchar|int|integer|bigint|long|float|double|real|bool|boolean|date|timestamp|datetime|(decimal|numeric) *\\( *[0-9]+ *(, *[0-9]+ *)?\\))$"
        })
    }
}

impl<'de> serde::Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How a date or timestamp column is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// A `chrono` strftime pattern (`%Y%m%d`, `%d/%m/%Y %H:%M`).
    Pattern(String),
    /// Seconds (or milliseconds, microseconds) since 1970-01-01 UTC, possibly with a fraction.
    EpochSeconds,
    EpochMillis,
    EpochMicros,
}

/// `text` read with a strftime `format` (what it fixes: date, time, offset), or nothing when it
/// does not match; `DateTime`, `NaiveDateTime` and `NaiveDate::parse_from_str` are this parse
/// followed by `to_datetime`, `to_naive_datetime_with_offset(0)` and `to_naive_date`.
pub(crate) fn parse_with(text: &str, format: &str) -> Option<chrono::format::Parsed> {
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, text, chrono::format::StrftimeItems::new(format)).ok()?;
    Some(parsed)
}

impl TimeFormat {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text.trim() {
            "epoch" | "epoch_seconds" | "unix" | "unix_seconds" => TimeFormat::EpochSeconds,
            "epoch_millis" | "epoch_milliseconds" | "unix_millis" => TimeFormat::EpochMillis,
            "epoch_micros" | "epoch_microseconds" | "unix_micros" => TimeFormat::EpochMicros,
            pattern if pattern.contains('%') => {
                // chrono reports a bad pattern only when parsing: try it on nothing to catch it now.
                let items = chrono::format::StrftimeItems::new(pattern);
                if items.clone().any(|i| matches!(i, chrono::format::Item::Error)) {
                    return Err(format!("format {pattern:?} is not a valid strftime pattern"));
                }
                TimeFormat::Pattern(pattern.to_string())
            }
            other => {
                return Err(format!(
                    "format {other:?}: use a strftime pattern such as \"%Y%m%d\" or \"%d/%m/%Y %H:%M\", \
                     or epoch_seconds, epoch_millis, epoch_micros"
                ));
            }
        })
    }

    /// Microseconds since the epoch of a timestamp written this way; naive ones are in `zone`.
    pub fn timestamp(&self, text: &str, zone: &Zone) -> Option<i64> {
        match self {
            TimeFormat::Pattern(pattern) => {
                // One parse: with an offset it is the instant, else a date and time, else a date.
                let parsed = parse_with(text, pattern)?;
                if let Ok(t) = parsed.to_datetime() {
                    return Some(t.with_timezone(&Utc).timestamp_micros());
                }
                let naive = parsed
                    .to_naive_datetime_with_offset(0)
                    .ok()
                    .or_else(|| parsed.to_naive_date().ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
                zone.micros(naive)
            }
            TimeFormat::EpochSeconds => epoch(text, 1_000_000.0),
            TimeFormat::EpochMillis => epoch(text, 1_000.0),
            TimeFormat::EpochMicros => epoch(text, 1.0),
        }
    }

    /// Days since the epoch of a date written this way.
    pub fn date(&self, text: &str) -> Option<i32> {
        let days = |d: NaiveDate| (d - DateTime::UNIX_EPOCH.date_naive()).num_days() as i32;
        match self {
            TimeFormat::Pattern(pattern) => NaiveDate::parse_from_str(text, pattern)
                .ok()
                .or_else(|| NaiveDateTime::parse_from_str(text, pattern).ok().map(|t| t.date()))
                .map(days),
            _ => {
                self.timestamp(text, &Zone::Utc).and_then(DateTime::from_timestamp_micros).map(|t| days(t.date_naive()))
            }
        }
    }

    /// The format as a user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            TimeFormat::Pattern(p) => format!("format {p}"),
            TimeFormat::EpochSeconds => "epoch seconds".into(),
            TimeFormat::EpochMillis => "epoch milliseconds".into(),
            TimeFormat::EpochMicros => "epoch microseconds".into(),
        }
    }
}

fn epoch(text: &str, micros_per_unit: f64) -> Option<i64> {
    let whole: Result<i64, _> = text.trim().parse();
    match whole {
        Ok(n) => (n as i128 * micros_per_unit as i128).try_into().ok(),
        Err(_) => {
            let f: f64 = text.trim().parse().ok()?;
            f.is_finite().then(|| (f * micros_per_unit).round() as i64)
        }
    }
}

/// The time zone a naive timestamp was written in.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    Utc,
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, an offset (`+08:00`, `-0500`) or an IANA name (`Asia/Shanghai`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") {
            return Ok(Zone::Utc);
        }
        if let Ok(offset) = FixedOffset::from_str(t) {
            return Ok(Zone::Fixed(offset));
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!("timezone {t:?}: use UTC, an offset such as +08:00, or an IANA name such as Asia/Shanghai")
        })
    }

    /// Microseconds since the epoch of a wall-clock time in this zone (the earlier one when a
    /// clock change repeats it; `None` for a time a clock change skips).
    pub fn micros(&self, naive: NaiveDateTime) -> Option<i64> {
        Some(match self {
            Zone::Utc => naive.and_utc().timestamp_micros(),
            Zone::Fixed(offset) => offset.from_local_datetime(&naive).earliest()?.timestamp_micros(),
            Zone::Named(tz) => tz.from_local_datetime(&naive).earliest()?.timestamp_micros(),
        })
    }
}

/// An exact decimal as its scaled integer (`12.5` at scale 2 → 1250), or why it is not one.
pub fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale as usize {
        return Err(format!(
            "{text:?} has more than {scale} decimal places (the column is decimal({precision},{scale}))"
        ));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() + scale as usize > precision as usize {
        return Err(format!("{text:?} does not fit decimal({precision},{scale})"));
    }
    let padded = format!("{whole}{fraction:0<width$}", width = scale as usize);
    let value: i128 =
        if padded.is_empty() { 0 } else { padded.parse().map_err(|_| format!("{text:?} is not a decimal number"))? };
    Ok(if negative { -value } else { value })
}

/// The text of a scaled decimal: 1250 at scale 2 → `12.50`.
pub fn decimal_text(value: i128, scale: u8) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let sign = if value < 0 { "-" } else { "" };
    let digits = format!("{:0>width$}", value.unsigned_abs(), width = scale as usize + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale as usize);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!("decimal(12,2)".parse(), Ok(ColumnType::Decimal { precision: 12, scale: 2 }));
        assert_eq!("NUMERIC(10)".parse(), Ok(ColumnType::Decimal { precision: 10, scale: 0 }));
        assert_eq!("integer".parse(), Ok(ColumnType::Int));
        assert_eq!("double".parse(), Ok(ColumnType::Float));
        let err = "money".parse::<ColumnType>().unwrap_err();
        assert!(err.contains("decimal(p,s)") && err.contains("money"), "{err}");
        assert!("decimal(40,2)".parse::<ColumnType>().unwrap_err().contains("precision"));
        assert_eq!(ColumnType::Decimal { precision: 12, scale: 2 }.to_string(), "decimal(12,2)");
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("29.33", 12, 2), Ok(2933));
        assert_eq!(parse_decimal("-0.5", 12, 2), Ok(-50));
        assert_eq!(parse_decimal("7", 12, 2), Ok(700));
        assert_eq!(parse_decimal(".25", 12, 2), Ok(25));
        assert_eq!(parse_decimal("12.50000", 12, 2), Ok(1250));
        assert!(parse_decimal("12.345", 12, 2).unwrap_err().contains("more than 2 decimal places"));
        assert!(parse_decimal("1e5", 12, 2).is_err());
        assert!(parse_decimal("1234567890123", 12, 2).unwrap_err().contains("does not fit"));
        assert_eq!(decimal_text(2933, 2), "29.33");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(42, 0), "42");
    }

    #[test]
    fn formats_and_zones() {
        let ymd = TimeFormat::parse("%Y%m%d").unwrap();
        assert_eq!(ymd.date("19970101"), Some(9862));
        assert_eq!(ymd.date("19970231"), None);
        let epoch = TimeFormat::parse("epoch_seconds").unwrap();
        assert_eq!(epoch.timestamp("86400", &Zone::Utc), Some(86_400_000_000));
        assert_eq!(epoch.date("86400"), Some(1));
        assert_eq!(TimeFormat::parse("epoch_millis").unwrap().timestamp("1500.5", &Zone::Utc), Some(1_500_500));
        assert!(TimeFormat::parse("yyyy-MM-dd").unwrap_err().contains("strftime"));
        let shanghai = Zone::parse("Asia/Shanghai").unwrap();
        let local = TimeFormat::parse("%Y-%m-%d %H:%M").unwrap();
        assert_eq!(local.timestamp("1970-01-01 08:00", &shanghai), Some(0));
        assert_eq!(local.timestamp("1970-01-01 08:00", &Zone::parse("+08:00").unwrap()), Some(0));
        assert!(Zone::parse("Mars/Base").unwrap_err().contains("IANA"));
    }
}
