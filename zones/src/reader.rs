//! Reading one incoming file into string records, exactly as received.
//!
//! Every value stays a string (or null); nested JSON values stay JSON text. Column names are
//! snake_cased (`Customer ID` → `customer_id`) so the raw table is queryable. Rows that cannot
//! be read (wrong field count, invalid JSON) are returned as rejects with the reason; problems
//! that make the whole file unreadable are errors naming the file, row and field.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cdplake_engine::arrow::array::{Array, AsArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::naming::suggest_snake_case;
use cdplake_engine::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use cdplake_engine::parquet::errors::ParquetError;
use cdplake_engine::parquet::file::reader::ChunkReader;

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

/// Rows per chunk a [`RecordReader`] returns: what a streaming ingest holds at once.
pub const CHUNK_ROWS: usize = 16_384;

/// What a file is read from.
pub enum Input {
    /// A stream (a remote object, a pipe): CSV and NDJSON only.
    Stream(Box<dyn Read + Send>),
    /// A local file (Parquet needs one to seek in).
    File(std::fs::File),
    Bytes(bytes::Bytes),
}

impl Input {
    fn into_read(self) -> Box<dyn Read + Send> {
        match self {
            Input::Stream(read) => read,
            Input::File(file) => Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            Input::Bytes(bytes) => Box::new(std::io::Cursor::new(bytes)),
        }
    }
}

/// Read a whole file's bytes (gzip detected from its magic bytes): every chunk of a
/// [`RecordReader`] together.
pub fn read_records(file: &str, bytes: &[u8], format: FileFormat) -> Result<RawRecords, ReadError> {
    // One copy of the bytes; NDJSON's two passes share it.
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    let input = || Input::Bytes(bytes.clone());
    let keys = match format {
        FileFormat::Ndjson => Some(ndjson_keys(file, input())?),
        _ => None,
    };
    let mut reader = RecordReader::open(file, input(), format, keys)?;
    let mut records = RawRecords {
        columns: reader.columns().to_vec(),
        original_columns: reader.original_columns().to_vec(),
        ..Default::default()
    };
    while let Some(chunk) = reader.next_chunk()? {
        records.rows.extend(chunk.rows);
        records.unreadable.extend(chunk.unreadable);
    }
    Ok(records)
}

/// A file read in chunks of at most [`CHUNK_ROWS`] rows, in constant memory.
pub struct RecordReader {
    file: String,
    columns: Vec<String>,
    original_columns: Vec<String>,
    body: Body,
}

enum Body {
    Empty,
    Csv(CsvBody),
    Ndjson(NdjsonBody),
    Parquet(ParquetBody),
}

impl RecordReader {
    /// Open `input` (gzip detected from its magic bytes; a byte-order mark skipped). NDJSON
    /// needs its keys first (a first pass: [`ndjson_keys`]) so every chunk has the same columns.
    pub fn open(
        file: &str,
        input: Input,
        format: FileFormat,
        ndjson_keys: Option<Vec<String>>,
    ) -> Result<Self, ReadError> {
        let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
        let empty = |file: &str| RecordReader {
            file: file.to_string(),
            columns: Vec::new(),
            original_columns: Vec::new(),
            body: Body::Empty,
        };
        if format == FileFormat::Parquet {
            let (body, original) = ParquetBody::open(file, input)?;
            let Some(body) = body else { return Ok(empty(file)) };
            return Ok(RecordReader {
                file: file.to_string(),
                columns: column_names(&original),
                original_columns: original,
                body: Body::Parquet(body),
            });
        }
        let mut read = text_input(file, input.into_read())?;
        if read.fill_buf().map_err(|e| unreadable(read_failure(&e)))?.is_empty() {
            return Ok(empty(file));
        }
        match format {
            FileFormat::Csv => {
                let (body, original) = CsvBody::open(file, read)?;
                Ok(RecordReader {
                    file: file.to_string(),
                    columns: column_names(&original),
                    original_columns: original,
                    body: Body::Csv(body),
                })
            }
            _ => {
                let original = ndjson_keys.unwrap_or_default();
                let body = NdjsonBody::new(read, &original);
                Ok(RecordReader {
                    file: file.to_string(),
                    columns: column_names(&original),
                    original_columns: original,
                    body: Body::Ndjson(body),
                })
            }
        }
    }

    /// Snake_cased column names, unique, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The names as they appeared in the file.
    pub fn original_columns(&self) -> &[String] {
        &self.original_columns
    }

    /// The next rows (readable and not), `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<RawRecords>, ReadError> {
        let chunk = match &mut self.body {
            Body::Empty => None,
            Body::Csv(body) => body.next_chunk(&self.file, &self.columns)?,
            Body::Ndjson(body) => body.next_chunk(&self.file)?,
            Body::Parquet(body) => body.next_chunk(&self.file, &self.columns)?,
        };
        Ok(chunk.map(|(rows, unreadable)| RawRecords {
            columns: self.columns.clone(),
            original_columns: self.original_columns.clone(),
            rows,
            unreadable,
        }))
    }
}

type Rows = Vec<(u64, Vec<Option<String>>)>;

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

fn read_failure(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            format!("truncated or corrupt gzip ({e}); upload the file again")
        }
        _ => format!("cannot be read: {e}"),
    }
}

/// The text of a file: gunzipped when it starts with gzip's magic bytes, without a byte-order
/// mark.
fn text_input(file: &str, read: Box<dyn Read + Send>) -> Result<Box<dyn BufRead + Send>, ReadError> {
    let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
    let mut buffered = BufReader::with_capacity(1 << 20, read);
    let head = buffered.fill_buf().map_err(|e| unreadable(format!("cannot be read: {e}")))?;
    let mut text: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    let head = text.fill_buf().map_err(|e| unreadable(read_failure(&e)))?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        text.consume(3);
    }
    Ok(text)
}

/// Counts the quote characters read through it (see [`CsvBody::finish`]).
struct QuoteCounter {
    inner: Box<dyn BufRead + Send>,
    quotes: Arc<AtomicU64>,
}

impl Read for QuoteCounter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let quotes = buf[..n].iter().filter(|b| **b == b'"').count() as u64;
        self.quotes.fetch_add(quotes, Ordering::Relaxed);
        Ok(n)
    }
}

struct CsvBody {
    reader: csv::Reader<QuoteCounter>,
    quotes: Arc<AtomicU64>,
    record: csv::ByteRecord,
    row: u64,
    /// The last readable row, held back until the next one: an unclosed quote (found only at
    /// the end) turns it into an unreadable row.
    pending: Option<(u64, Vec<Option<String>>)>,
    done: bool,
}

impl CsvBody {
    fn open(file: &str, text: Box<dyn BufRead + Send>) -> Result<(Self, Vec<String>), ReadError> {
        let quotes = Arc::new(AtomicU64::new(0));
        let counter = QuoteCounter { inner: text, quotes: quotes.clone() };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(counter);
        let header = reader.byte_headers().map_err(|e| ReadError::Unreadable {
            file: file.to_string(),
            reason: match e.kind() {
                csv::ErrorKind::Io(io) => read_failure(io),
                _ => format!("cannot read the header: {e}"),
            },
        })?;
        let original: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| utf8(file, 0, &format!("header column {}", i + 1), h).map(|s| s.trim().to_string()))
            .collect::<Result<_, _>>()?;
        let body = CsvBody { reader, quotes, record: csv::ByteRecord::new(), row: 0, pending: None, done: false };
        Ok((body, original))
    }

    fn next_chunk(&mut self, file: &str, columns: &[String]) -> Result<Option<(Rows, Vec<UnreadableRow>)>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let mut rows = Vec::new();
        let mut unreadable = Vec::new();
        while rows.len() + unreadable.len() < CHUNK_ROWS {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.finish(&mut rows, &mut unreadable);
                    break;
                }
                Ok(true) => {
                    self.row += 1;
                    let record = &self.record;
                    if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                        self.row -= 1; // a blank line
                        continue;
                    }
                    if record.len() != columns.len() {
                        unreadable.push(UnreadableRow {
                            row: self.row,
                            reason: format!(
                                "has {} fields, the header has {} (check quoting: a quote inside a value must be doubled)",
                                record.len(),
                                columns.len()
                            ),
                            text: fields_text(record),
                        });
                        continue;
                    }
                    let mut values = Vec::with_capacity(record.len());
                    for (field, name) in record.iter().zip(columns) {
                        let value = utf8(file, self.row, name, field)?;
                        values.push(if value.is_empty() { None } else { Some(value) });
                    }
                    rows.extend(self.pending.replace((self.row, values)));
                }
                Err(e) => {
                    if let csv::ErrorKind::Io(io) = e.kind() {
                        // The bytes, not the CSV, are broken (a truncated gzip): the file is.
                        return Err(ReadError::Unreadable { file: file.to_string(), reason: read_failure(io) });
                    }
                    self.row += 1;
                    unreadable.push(UnreadableRow {
                        row: self.row,
                        reason: format!("malformed CSV: {e}"),
                        text: String::new(),
                    });
                    if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }) {
                        self.finish(&mut rows, &mut unreadable);
                        break;
                    }
                }
            }
        }
        Ok(Some((rows, unreadable)))
    }

    /// The end of the file: an opening quote that is never closed swallows the rest of the file
    /// into one value; the reader cannot tell, but an odd number of quote characters can.
    fn finish(&mut self, rows: &mut Rows, unreadable: &mut Vec<UnreadableRow>) {
        self.done = true;
        let Some((row, values)) = self.pending.take() else { return };
        if self.quotes.load(Ordering::Relaxed).is_multiple_of(2) {
            rows.push((row, values));
            return;
        }
        let text: Vec<String> = values.into_iter().map(Option::unwrap_or_default).collect();
        unreadable.push(UnreadableRow {
            row,
            reason: "a quote opened in this row is never closed, so the rest of the file was read as \
                         one value (a quote inside a value must be doubled)"
                .into(),
            text: serde_json::to_string(&text).unwrap_or_default(),
        });
    }
}

fn fields_text(record: &csv::ByteRecord) -> String {
    let fields: Vec<String> = record.iter().map(|f| String::from_utf8_lossy(f).to_string()).collect();
    serde_json::to_string(&fields).unwrap_or_default()
}

/// The keys of an NDJSON file's objects in order of first appearance: a first pass over the
/// file (constant memory), so every chunk of the second has the same columns.
pub fn ndjson_keys(file: &str, input: Input) -> Result<Vec<String>, ReadError> {
    let mut lines = NdjsonLines::new(text_input(file, input.into_read())?);
    let mut keys: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(line) = lines.next_line(file)? {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) {
            for key in map.keys() {
                if !seen.contains(key) {
                    seen.insert(key.clone());
                    keys.push(key.clone());
                }
            }
        }
    }
    Ok(keys)
}

/// The non-blank lines of an NDJSON text, trimmed, with the line number an encoding error names.
struct NdjsonLines {
    text: Box<dyn BufRead + Send>,
    buffer: Vec<u8>,
    line: String,
    physical_line: u64,
}

impl NdjsonLines {
    fn new(text: Box<dyn BufRead + Send>) -> Self {
        NdjsonLines { text, buffer: Vec::new(), line: String::new(), physical_line: 0 }
    }

    fn next_line(&mut self, file: &str) -> Result<Option<&str>, ReadError> {
        loop {
            self.buffer.clear();
            let n = self
                .text
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| ReadError::Unreadable { file: file.to_string(), reason: read_failure(&e) })?;
            if n == 0 {
                return Ok(None);
            }
            self.physical_line += 1;
            let text = std::str::from_utf8(&self.buffer).map_err(|_| ReadError::Field {
                file: file.to_string(),
                row: self.physical_line,
                field: "(line)".into(),
                reason: "not valid UTF-8; convert the file to UTF-8 and ingest it again".into(),
            })?;
            let trimmed = text.trim();
            if !trimmed.is_empty() {
                self.line.clear();
                self.line.push_str(trimmed);
                return Ok(Some(&self.line));
            }
        }
    }
}

struct NdjsonBody {
    lines: NdjsonLines,
    index: HashMap<String, usize>,
    row: u64,
}

impl NdjsonBody {
    fn new(text: Box<dyn BufRead + Send>, keys: &[String]) -> Self {
        let index = keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        NdjsonBody { lines: NdjsonLines::new(text), index, row: 0 }
    }

    fn next_chunk(&mut self, file: &str) -> Result<Option<(Rows, Vec<UnreadableRow>)>, ReadError> {
        let mut rows = Vec::new();
        let mut unreadable = Vec::new();
        while rows.len() + unreadable.len() < CHUNK_ROWS {
            let Some(line) = self.lines.next_line(file)? else { break };
            self.row += 1;
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(map)) => {
                    let mut values = vec![None; self.index.len()];
                    for (key, value) in map {
                        let Some(&column) = self.index.get(&key) else {
                            return Err(ReadError::Unreadable {
                                file: file.to_string(),
                                reason: format!("changed while it was read (row {} has a new key {key:?})", self.row),
                            });
                        };
                        values[column] = json_text(value);
                    }
                    rows.push((self.row, values));
                }
                Ok(other) => unreadable.push(UnreadableRow {
                    row: self.row,
                    reason: format!("is a JSON {} where an object was expected", json_kind(&other)),
                    text: line.chars().take(2000).collect(),
                }),
                Err(e) => unreadable.push(UnreadableRow {
                    row: self.row,
                    reason: format!("is not valid JSON: {e}"),
                    text: line.chars().take(2000).collect(),
                }),
            }
        }
        Ok((!rows.is_empty() || !unreadable.is_empty()).then_some((rows, unreadable)))
    }
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

struct ParquetBody {
    batches: ParquetRecordBatchReader,
    row: u64,
}

impl ParquetBody {
    /// The reader and the file's column names (`None`: a file without rows or columns).
    fn open(file: &str, input: Input) -> Result<(Option<Self>, Vec<String>), ReadError> {
        let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
        let not_parquet = |e: ParquetError| unreadable(format!("not a readable Parquet file: {e}"));
        let builder = match input {
            Input::File(file) => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
                return Self::from_builder(builder).map_err(not_parquet);
            }
            Input::Bytes(bytes) if bytes.starts_with(&[0x1f, 0x8b]) => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(bytes.as_ref())
                    .read_to_end(&mut out)
                    .map_err(|e| unreadable(format!("truncated or corrupt gzip ({e}); upload the file again")))?;
                return Self::open(file, Input::Bytes(out.into()));
            }
            Input::Bytes(bytes) if bytes.is_empty() => return Ok((None, Vec::new())),
            Input::Bytes(bytes) => ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(not_parquet)?,
            Input::Stream(_) => return Err(unreadable("Parquet is read from a file, not a stream".into())),
        };
        Self::from_builder(builder).map_err(not_parquet)
    }

    fn from_builder<T: ChunkReader + 'static>(
        builder: ParquetRecordBatchReaderBuilder<T>,
    ) -> Result<(Option<Self>, Vec<String>), ParquetError> {
        let original: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        let batches = builder.with_batch_size(CHUNK_ROWS).build()?;
        Ok((Some(ParquetBody { batches, row: 0 }), original))
    }

    fn next_chunk(&mut self, file: &str, columns: &[String]) -> Result<Option<(Rows, Vec<UnreadableRow>)>, ReadError> {
        let unreadable = |reason: String| ReadError::Unreadable { file: file.to_string(), reason };
        let Some(batch) = self.batches.next() else { return Ok(None) };
        let batch = batch.map_err(|e| unreadable(format!("corrupt Parquet data after row {}: {e}", self.row)))?;
        let strings = batch
            .columns()
            .iter()
            .zip(columns)
            .map(|(column, name)| {
                cast(column, &DataType::Utf8)
                    .map_err(|e| unreadable(format!("column {name} cannot be read as text: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            self.row += 1;
            let values =
                strings.iter().map(|c| (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_string())).collect();
            rows.push((self.row, values));
        }
        Ok(Some((rows, Vec::new())))
    }
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
    fn a_file_is_read_in_chunks_with_rows_in_order() {
        let mut text = String::from("id,name\n");
        let rows = CHUNK_ROWS + 10;
        for i in 1..=rows {
            text.push_str(&format!("{i},n{i}\n"));
        }
        text.push_str("x,\"never closed\n");
        let input = Input::Stream(Box::new(std::io::Cursor::new(text.into_bytes())));
        let mut reader = RecordReader::open("big.csv", input, FileFormat::Csv, None).unwrap();
        let mut chunks = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            chunks.push(chunk);
        }
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.rows_in() as usize <= CHUNK_ROWS));
        let numbers: Vec<u64> = chunks.iter().flat_map(|c| c.rows.iter().map(|(n, _)| *n)).collect();
        assert_eq!(numbers, (1..=rows as u64).collect::<Vec<_>>());
        // The unclosed quote is found at the end, and it is the last row that is refused.
        let refused: Vec<&UnreadableRow> = chunks.iter().flat_map(|c| &c.unreadable).collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].row, rows as u64 + 1);
        assert!(refused[0].reason.contains("never closed"), "{}", refused[0].reason);
    }

    #[test]
    fn ndjson_keys_come_from_a_first_pass() {
        let text = b"{\"a\":1}\n{\"b\":2,\"a\":3}\n".to_vec();
        let keys = ndjson_keys("e.json", Input::Bytes(text.clone().into())).unwrap();
        assert_eq!(keys, ["a", "b"]);
        let mut reader =
            RecordReader::open("e.json", Input::Bytes(text.into()), FileFormat::Ndjson, Some(keys)).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.rows[0].1, [Some("1".into()), None]);
        assert_eq!(chunk.rows[1].1, [Some("3".into()), Some("2".into())]);
        assert!(reader.next_chunk().unwrap().is_none());
    }

    #[test]
    fn empty_and_header_only() {
        assert_eq!(csv(b"").rows_in(), 0);
        let r = csv(b"a,b\n");
        assert_eq!((r.columns.len(), r.rows_in()), (2, 0));
    }
}
