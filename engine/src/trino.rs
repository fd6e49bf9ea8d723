//! Athena (Trino) SQL functions that DataFusion lacks or names differently, with Trino's
//! semantics, so Athena queries over the lake run in `cdplake query` unchanged.
//!
//! Scalars: `date_diff(unit, a, b)`, `date_add(unit, n, x)`, `from_iso8601_timestamp(text)`,
//! `date_parse(text, mysql_format)`, `format_datetime(ts, joda_pattern)`,
//! `regexp_extract(text, pattern[, group])`, `json_extract_scalar(json, path)`,
//! `day_of_week(x)` (ISO: Monday = 1), `element_at(array, i)`, `split(text, delim)`.
//! Aggregates: `count_if(cond)`, `arbitrary(x)`, `max_by(x, y)`, `min_by(x, y)`.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit, TimestampMicrosecondType};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::functions_aggregate::first_last::first_value_udaf;
use deltalake::datafusion::functions_nested::extract::array_element_udf;
use deltalake::datafusion::functions_nested::string::string_to_array_udf;
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use deltalake::datafusion::prelude::SessionContext;

/// Register the Trino functions on a session.
pub fn register_trino_functions(ctx: &SessionContext) {
    for kind in [
        Kind::DateDiff,
        Kind::DateAdd,
        Kind::FromIso8601Timestamp,
        Kind::DateParse,
        Kind::FormatDatetime,
        Kind::RegexpExtract,
        Kind::JsonExtractScalar,
        Kind::DayOfWeek,
    ] {
        ctx.register_udf(ScalarUDF::from(Trino::new(kind)));
    }
    ctx.register_udf(ScalarUDF::from(ElementAt::new()));
    ctx.register_udf(string_to_array_udf().as_ref().clone().with_aliases(["split"]));
    ctx.register_udaf(first_value_udaf().as_ref().clone().with_aliases(["arbitrary"]));
    ctx.register_udaf(AggregateUDF::from(CountIf::new()));
    for max in [true, false] {
        ctx.register_udaf(AggregateUDF::from(ExtremeBy::new(max)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    DateDiff,
    DateAdd,
    FromIso8601Timestamp,
    DateParse,
    FormatDatetime,
    RegexpExtract,
    JsonExtractScalar,
    DayOfWeek,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Trino {
    kind: Kind,
    signature: Signature,
}

impl Trino {
    fn new(kind: Kind) -> Self {
        let signature = match kind {
            Kind::RegexpExtract => Signature::variadic_any(Volatility::Immutable),
            Kind::DateDiff | Kind::DateAdd => Signature::any(3, Volatility::Immutable),
            Kind::FromIso8601Timestamp | Kind::DayOfWeek => Signature::any(1, Volatility::Immutable),
            Kind::DateParse | Kind::FormatDatetime | Kind::JsonExtractScalar => {
                Signature::any(2, Volatility::Immutable)
            }
        };
        Self { kind, signature }
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Any date, timestamp or timestamp text as a UTC date-time.
fn date_times(values: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let micros = match values.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            cast(&cast(values, &DataType::Utf8)?, &DataType::Timestamp(TimeUnit::Microsecond, None))?
        }
        _ => cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
    };
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    Ok(micros.iter().map(|v| v.and_then(|m| DateTime::from_timestamp_micros(m).map(|d| d.naive_utc()))).collect())
}

fn texts(values: &ArrayRef) -> Result<Vec<Option<String>>> {
    let values = cast(values, &DataType::Utf8)?;
    Ok(values.as_string::<i32>().iter().map(|v| v.map(String::from)).collect())
}

fn ints(values: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let values = cast(values, &DataType::Int64)?;
    Ok(values.as_primitive::<deltalake::arrow::datatypes::Int64Type>().iter().collect())
}

fn unit_of(unit: &str) -> Result<&'static str> {
    Ok(match unit.to_ascii_lowercase().as_str() {
        "millisecond" => "millisecond",
        "second" => "second",
        "minute" => "minute",
        "hour" => "hour",
        "day" => "day",
        "week" => "week",
        "month" => "month",
        "quarter" => "quarter",
        "year" => "year",
        other => {
            return exec_err!(
                "unknown unit {other:?}: use millisecond, second, minute, hour, day, week, month, quarter or year"
            );
        }
    })
}

/// Whole `unit`s from `a` to `b`, truncated toward zero, as Trino counts them.
fn diff(unit: &str, a: NaiveDateTime, b: NaiveDateTime) -> Result<i64> {
    let micros = (b - a).num_microseconds().unwrap_or(i64::MAX);
    let per = |m: i64| micros / m;
    Ok(match unit_of(unit)? {
        "millisecond" => per(1_000),
        "second" => per(1_000_000),
        "minute" => per(60_000_000),
        "hour" => per(3_600_000_000),
        "day" => per(86_400_000_000),
        "week" => per(7 * 86_400_000_000),
        months => {
            let mut n = (b.year() as i64 * 12 + b.month0() as i64) - (a.year() as i64 * 12 + a.month0() as i64);
            let rest = |d: NaiveDateTime| (d.day(), d.time());
            if n > 0 && rest(b) < rest(a) {
                n -= 1;
            } else if n < 0 && rest(b) > rest(a) {
                n += 1;
            }
            match months {
                "month" => n,
                "quarter" => n / 3,
                _ => n / 12,
            }
        }
    })
}

fn add(unit: &str, n: i64, x: NaiveDateTime) -> Result<Option<NaiveDateTime>> {
    let months = |m: i64| {
        if m >= 0 {
            x.checked_add_months(Months::new(m as u32))
        } else {
            x.checked_sub_months(Months::new((-m) as u32))
        }
    };
    Ok(match unit_of(unit)? {
        "millisecond" => x.checked_add_signed(Duration::milliseconds(n)),
        "second" => x.checked_add_signed(Duration::seconds(n)),
        "minute" => x.checked_add_signed(Duration::minutes(n)),
        "hour" => x.checked_add_signed(Duration::hours(n)),
        "day" => x.checked_add_signed(Duration::days(n)),
        "week" => x.checked_add_signed(Duration::weeks(n)),
        "month" => months(n),
        "quarter" => months(n * 3),
        _ => months(n * 12),
    })
}

fn parse_iso8601(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc).naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(text, format) {
            return Some(d.with_timezone(&Utc).naive_utc());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(text, format) {
            return Some(d);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// MySQL `date_parse` specifiers → chrono's.
fn mysql_to_chrono(format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else { break };
        out.push_str(match spec {
            'Y' => "%Y",
            'y' => "%y",
            'm' | 'c' => "%m",
            'd' | 'e' => "%d",
            'H' | 'k' => "%H",
            'h' | 'I' | 'l' => "%I",
            'i' => "%M",
            's' | 'S' => "%S",
            'f' => "%6f",
            'p' => "%p",
            'a' => "%a",
            'b' => "%b",
            'M' => "%B",
            'W' => "%A",
            'j' => "%j",
            'T' => "%H:%M:%S",
            'r' => "%I:%M:%S %p",
            '%' => "%%",
            _ => "",
        });
    }
    out
}

/// Joda-Time patterns (`yyyy-MM-dd HH:mm:ss`) → chrono's.
fn joda_to_chrono(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(if chars[j] == '%' { '%' } else { chars[j] });
                if chars[j] == '%' {
                    out.push('%');
                }
                j += 1;
            }
            if j == i + 1 {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let piece = match (c, run) {
            ('y' | 'Y' | 'u', 2) => "%y".to_string(),
            ('y' | 'Y' | 'u', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('D', _) => "%j".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', 1) => "%-I".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) => format!("%{}f", n.min(9)),
            ('a', _) => "%p".to_string(),
            ('E', n) if n >= 4 => "%A".to_string(),
            ('E', _) => "%a".to_string(),
            ('Z' | 'z', _) => "%z".to_string(),
            ('%', _) => "%%".repeat(run),
            (other, n) => other.to_string().repeat(n),
        };
        out.push_str(&piece);
        i += run;
    }
    out
}

/// `$.a.b[0]`, `$['a']` → the path's steps.
fn json_path(path: &str) -> Option<Vec<serde_json::Value>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            steps.push(serde_json::Value::String(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inside = r[..end].trim();
            if let Ok(i) = inside.parse::<u64>() {
                steps.push(serde_json::Value::from(i));
            } else {
                steps.push(serde_json::Value::String(inside.trim_matches(['\'', '"']).to_string()));
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn json_extract_scalar(json: &str, path: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(json).ok()?;
    for step in json_path(path)? {
        value = match (value, step) {
            (serde_json::Value::Object(mut o), serde_json::Value::String(k)) => o.remove(&k)?,
            (serde_json::Value::Array(mut a), serde_json::Value::Number(i)) => {
                let i = i.as_u64()? as usize;
                (i < a.len()).then(|| a.swap_remove(i))?
            }
            _ => return None,
        };
    }
    match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn micros_of(d: NaiveDateTime) -> i64 {
    Utc.from_utc_datetime(&d).timestamp_micros()
}

impl ScalarUDFImpl for Trino {
    fn name(&self) -> &str {
        match self.kind {
            Kind::DateDiff => "date_diff",
            Kind::DateAdd => "date_add",
            Kind::FromIso8601Timestamp => "from_iso8601_timestamp",
            Kind::DateParse => "date_parse",
            Kind::FormatDatetime => "format_datetime",
            Kind::RegexpExtract => "regexp_extract",
            Kind::JsonExtractScalar => "json_extract_scalar",
            Kind::DayOfWeek => "day_of_week",
        }
    }
    fn aliases(&self) -> &[String] {
        static DOW: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        match self.kind {
            Kind::DayOfWeek => DOW.get_or_init(|| vec!["dow".to_string()]),
            _ => &[],
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::DateDiff | Kind::DayOfWeek => DataType::Int64,
            Kind::DateAdd => match args.get(2) {
                Some(DataType::Date32) => DataType::Date32,
                _ => utc(),
            },
            Kind::FromIso8601Timestamp => utc(),
            Kind::DateParse => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::FormatDatetime | Kind::RegexpExtract | Kind::JsonExtractScalar => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalars { 1 } else { args.number_rows };
        let a = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        let result: ArrayRef = match self.kind {
            Kind::DateDiff => invoke_date_diff(&a, rows)?,
            Kind::DateAdd => invoke_date_add(&a, rows)?,
            Kind::FromIso8601Timestamp => invoke_from_iso8601_timestamp(&a)?,
            Kind::DateParse => invoke_date_parse(&a, rows)?,
            Kind::FormatDatetime => invoke_format_datetime(&a, rows)?,
            Kind::RegexpExtract => invoke_regexp_extract(&a, rows)?,
            Kind::JsonExtractScalar => invoke_json_extract_scalar(&a, rows)?,
            Kind::DayOfWeek => invoke_day_of_week(&a)?,
        };
        if all_scalars {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// `date_diff(unit, from, to)` over `rows` rows of its arguments `a`.
fn invoke_date_diff(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (units, from, to) = (texts(&a[0])?, date_times(&a[1])?, date_times(&a[2])?);
    let out = (0..rows)
        .map(|i| match (&units[i], from[i], to[i]) {
            (Some(u), Some(x), Some(y)) => diff(u, x, y).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<Int64Array>>()?;
    Ok(Arc::new(out))
}

/// `date_add(unit, n, x)`: a date for a date `x`, a UTC timestamp otherwise.
fn invoke_date_add(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (units, n, x) = (texts(&a[0])?, ints(&a[1])?, date_times(&a[2])?);
    let added = (0..rows)
        .map(|i| match (&units[i], n[i], x[i]) {
            (Some(u), Some(n), Some(x)) => add(u, n, x),
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    if a[2].data_type() == &DataType::Date32 {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        Ok(Arc::new(Date32Array::from_iter(added.iter().map(|d| d.map(|d| (d.date() - epoch).num_days() as i32)))))
    } else {
        Ok(Arc::new(TimestampMicrosecondArray::from_iter(added.iter().map(|d| d.map(micros_of))).with_timezone("UTC")))
    }
}

/// `from_iso8601_timestamp(text)`: null for text that is no ISO 8601 timestamp.
fn invoke_from_iso8601_timestamp(a: &[ArrayRef]) -> Result<ArrayRef> {
    let t = texts(&a[0])?;
    Ok(Arc::new(
        TimestampMicrosecondArray::from_iter(t.iter().map(|t| t.as_deref().and_then(parse_iso8601).map(micros_of)))
            .with_timezone("UTC"),
    ))
}

/// `date_parse(text, mysql_format)`: a date-time, or a date at midnight; an error for text the
/// format does not read.
fn invoke_date_parse(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (t, f) = (texts(&a[0])?, texts(&a[1])?);
    let out = (0..rows).map(|i| match (&t[i], &f[i]) {
        (Some(t), Some(f)) => {
            let format = mysql_to_chrono(f);
            NaiveDateTime::parse_from_str(t, &format)
                .or_else(|_| NaiveDate::parse_from_str(t, &format).map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")))
                .map(|d| Some(micros_of(d)))
                .or_else(|e| exec_err!("date_parse({t:?}, {f:?}): {e}"))
        }
        _ => Ok(None),
    });
    Ok(Arc::new(out.collect::<Result<TimestampMicrosecondArray>>()?))
}

/// `format_datetime(x, joda_pattern)`.
fn invoke_format_datetime(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (x, p) = (date_times(&a[0])?, texts(&a[1])?);
    let out: StringArray = (0..rows)
        .map(|i| match (x[i], &p[i]) {
            (Some(x), Some(p)) => Some(x.format(&joda_to_chrono(p)).to_string()),
            _ => None,
        })
        .collect();
    Ok(Arc::new(out))
}

/// `regexp_extract(text, pattern[, group])`: group 0 (the whole match) by default; a pattern is
/// compiled again only when it differs from the previous row's.
fn invoke_regexp_extract(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (t, p) = (texts(&a[0])?, texts(&a[1])?);
    let g = if a.len() > 2 { ints(&a[2])? } else { vec![Some(0); rows] };
    let mut compiled: Option<(String, regex::Regex)> = None;
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let (Some(t), Some(p), Some(g)) = (&t[i], &p[i], g[i]) else {
            out.push(None);
            continue;
        };
        if compiled.as_ref().is_none_or(|(q, _)| q != p) {
            let re = regex::Regex::new(p).or_else(|e| exec_err!("regexp_extract pattern {p:?}: {e}"))?;
            compiled = Some((p.clone(), re));
        }
        let re = &compiled.as_ref().expect("compiled above").1;
        out.push(re.captures(t).and_then(|c| c.get(g as usize)).map(|m| m.as_str().to_string()));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `json_extract_scalar(json, path)`.
fn invoke_json_extract_scalar(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (j, p) = (texts(&a[0])?, texts(&a[1])?);
    let out: StringArray = (0..rows)
        .map(|i| match (&j[i], &p[i]) {
            (Some(j), Some(p)) => json_extract_scalar(j, p),
            _ => None,
        })
        .collect();
    Ok(Arc::new(out))
}

/// `day_of_week(x)`: ISO, Monday = 1.
fn invoke_day_of_week(a: &[ArrayRef]) -> Result<ArrayRef> {
    let x = date_times(&a[0])?;
    Ok(Arc::new(Int64Array::from_iter(x.iter().map(|d| d.map(|d| d.weekday().number_from_monday() as i64)))))
}

/// Trino's `element_at(array, i)`: 1-based, negative from the end, NULL out of range
/// (DataFusion's `array_element`, under Trino's name). Maps: use `map_extract`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ElementAt {
    signature: Signature,
}

impl ElementAt {
    fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ElementAt {
    fn name(&self) -> &str {
        "element_at"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match &args[0] {
            DataType::Map(_, _) => exec_err!("element_at on a map: use map_extract(map, key)"),
            _ => Ok(vec![args[0].clone(), DataType::Int64]),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        array_element_udf().return_type(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        array_element_udf().return_field_from_args(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        array_element_udf().invoke_with_args(args)
    }
}

/// `count_if(condition)`: rows where the condition is true.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CountIf {
    signature: Signature,
}

impl CountIf {
    fn new() -> Self {
        Self { signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for CountIf {
    fn name(&self) -> &str {
        "count_if"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountIfAccumulator(0)))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[count]", args.name), DataType::Int64, false))])
    }
}

#[derive(Debug)]
struct CountIfAccumulator(i64);

impl Accumulator for CountIfAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values: &BooleanArray = values[0].as_boolean();
        self.0 += values.iter().filter(|v| *v == Some(true)).count() as i64;
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = cast(&states[0], &DataType::Int64)?;
        self.0 += counts.as_primitive::<deltalake::arrow::datatypes::Int64Type>().iter().flatten().sum::<i64>();
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.0))])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0)))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// `max_by(x, y)` / `min_by(x, y)`: the x of the row with the largest / smallest y.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExtremeBy {
    max: bool,
    signature: Signature,
}

impl ExtremeBy {
    fn new(max: bool) -> Self {
        Self { max, signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for ExtremeBy {
    fn name(&self) -> &str {
        if self.max { "max_by" } else { "min_by" }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let x_type = args.exprs[0].data_type(args.schema)?;
        let y_type = args.exprs[1].data_type(args.schema)?;
        Ok(Box::new(ExtremeByAccumulator {
            max: self.max,
            best: None,
            x_null: ScalarValue::try_from(&x_type)?,
            y_null: ScalarValue::try_from(&y_type)?,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[x]", args.name), args.input_fields[0].data_type().clone(), true)),
            Arc::new(Field::new(format!("{}[y]", args.name), args.input_fields[1].data_type().clone(), true)),
        ])
    }
}

#[derive(Debug)]
struct ExtremeByAccumulator {
    max: bool,
    best: Option<(ScalarValue, ScalarValue)>,
    x_null: ScalarValue,
    y_null: ScalarValue,
}

impl ExtremeByAccumulator {
    fn offer(&mut self, xs: &ArrayRef, ys: &ArrayRef) -> Result<()> {
        for i in 0..ys.len() {
            if ys.is_null(i) {
                continue;
            }
            let y = ScalarValue::try_from_array(ys, i)?;
            let better = match &self.best {
                None => true,
                Some((_, best)) => {
                    let order = y.partial_cmp(best).unwrap_or(Ordering::Equal);
                    if self.max { order == Ordering::Greater } else { order == Ordering::Less }
                }
            };
            if better {
                self.best = Some((ScalarValue::try_from_array(xs, i)?, y));
            }
        }
        Ok(())
    }
}

impl Accumulator for ExtremeByAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.offer(&values[0], &values[1])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.offer(&states[0], &states[1])
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((x, y)) => vec![x.clone(), y.clone()],
            None => vec![self.x_null.clone(), self.y_null.clone()],
        })
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.best.as_ref().map(|(x, _)| x.clone()).unwrap_or_else(|| self.x_null.clone()))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        parse_iso8601(text).unwrap()
    }

    #[test]
    fn date_diff_counts_whole_units_like_trino() {
        assert_eq!(diff("day", at("2024-03-01T00:00:00"), at("2024-03-02T23:00:00")).unwrap(), 1);
        assert_eq!(diff("day", at("2024-03-02T00:00:00"), at("2024-03-01T01:00:00")).unwrap(), 0);
        assert_eq!(diff("month", at("2024-01-31"), at("2024-02-29")).unwrap(), 0);
        assert_eq!(diff("month", at("2024-01-31"), at("2024-03-31")).unwrap(), 2);
        assert_eq!(diff("year", at("2020-06-01"), at("2024-05-31")).unwrap(), 3);
        assert_eq!(diff("quarter", at("2024-01-01"), at("2023-01-01")).unwrap(), -4);
        assert!(diff("fortnight", at("2024-01-01"), at("2024-01-02")).is_err());
    }

    #[test]
    fn date_add_clamps_month_ends() {
        assert_eq!(add("month", 1, at("2024-01-31")).unwrap(), Some(at("2024-02-29")));
        assert_eq!(add("day", -1, at("2024-03-01")).unwrap(), Some(at("2024-02-29")));
    }

    #[test]
    fn iso8601_with_offsets() {
        assert_eq!(at("2024-05-01T10:00:00+02:00"), at("2024-05-01T08:00:00Z"));
        assert_eq!(at("2024-05-01"), at("2024-05-01T00:00:00"));
    }

    #[test]
    fn formats_translate() {
        assert_eq!(mysql_to_chrono("%Y-%m-%d %H:%i:%s"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(joda_to_chrono("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(joda_to_chrono("dd MMM yyyy 'at' H"), "%d %b %Y at %-H");
    }

    #[test]
    fn json_paths() {
        let doc = r#"{"a": {"b": [10, {"c": "x"}]}, "ok": true}"#;
        assert_eq!(json_extract_scalar(doc, "$.a.b[0]").as_deref(), Some("10"));
        assert_eq!(json_extract_scalar(doc, "$.a.b[1].c").as_deref(), Some("x"));
        assert_eq!(json_extract_scalar(doc, "$['ok']").as_deref(), Some("true"));
        assert_eq!(json_extract_scalar(doc, "$.a"), None, "objects are not scalars");
        assert_eq!(json_extract_scalar(doc, "$.zz"), None);
    }
}
