//! Turning query results into text: a table for people, CSV or JSON for programs.

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::arrow::error::ArrowError;
use cdplake_engine::arrow::util::pretty::pretty_format_batches;

/// Log filter when `CDPLAKE_LOG` is not set: warnings, minus the delta kernel's and MERGE's
/// routine chatter and the note that binary columns (bitmaps) get no statistics.
pub const DEFAULT_LOG: &str = "warn,buoyant_kernel::snapshot=off,deltalake_core::operations::merge=error,\
deltalake_core::writer::stats=error";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

pub fn format_batches(batches: &[RecordBatch], format: Format) -> Result<String, ArrowError> {
    match format {
        Format::Table => Ok(pretty_format_batches(batches)?.to_string()),
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = cdplake_engine::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            String::from_utf8(buf).map_err(|e| ArrowError::CsvError(e.to_string()))
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut writer = cdplake_engine::arrow::json::ArrayWriter::new(&mut buf);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            String::from_utf8(buf).map_err(|e| ArrowError::JsonError(e.to_string()))
        }
    }
}
