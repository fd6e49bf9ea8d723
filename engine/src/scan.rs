//! A scan of every object under the lake root for given strings: the proof that an erased
//! person's identifiers are gone in every form.
//!
//! Each object is searched as stored (JSON commits, checkpoints, CSV and JSON landing files,
//! Parquet footers with their statistics) and, when it is Parquet, also decoded: every value of
//! every column (nested ones too) is searched, since compressed pages hide their text from a
//! byte search. Gzipped objects are searched decompressed. Matching is ASCII case-insensitive.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use deltalake::arrow::array::{Array, ArrayRef, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{EngineError, Result};
use crate::lake::Lake;

/// One object holding one of the strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanMatch {
    /// The object's path under the root.
    pub path: String,
    /// Index of the string found (into the list given), never the string itself.
    pub needle: usize,
    /// `bytes` (as stored), `value` (a decoded Parquet value) or `gzip` (decompressed).
    pub found_in: &'static str,
}

/// What the scan read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScanReport {
    pub objects: u64,
    pub bytes: u64,
    pub parquet_files: u64,
    pub matches: Vec<ScanMatch>,
}

impl Lake {
    /// Search every object under the root for each of `needles` (see the module docs).
    pub async fn scan_for(&self, needles: &[String]) -> Result<ScanReport> {
        let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
        let mut report = ScanReport::default();
        if needles.is_empty() {
            return Ok(report);
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(needles.iter().map(|n| n.as_bytes()))
            .map_err(|e| EngineError::Io { context: "building the scan".into(), source: std::io::Error::other(e) })?;
        let store = self.root_store()?;
        let objects: Vec<object_store::ObjectMeta> = store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| EngineError::Store { context: "scan: listing the lake".into(), source: Box::new(e) })?;
        for object in objects {
            let path = object.location.to_string();
            let bytes = store
                .get(&object.location)
                .await
                .map_err(|e| EngineError::Store { context: format!("scan: reading {path}"), source: Box::new(e) })?
                .bytes()
                .await
                .map_err(|e| EngineError::Store { context: format!("scan: reading {path}"), source: Box::new(e) })?;
            report.objects += 1;
            report.bytes += bytes.len() as u64;
            let mut found = std::collections::BTreeSet::new();
            for m in matcher.find_overlapping_iter(bytes.as_ref()) {
                found.insert((m.pattern().as_usize(), "bytes"));
            }
            if bytes.starts_with(b"PAR1") {
                report.parquet_files += 1;
                parquet_values(&matcher, bytes.clone(), &path, &mut found)?;
            } else if bytes.starts_with(&[0x1f, 0x8b]) {
                let mut text = Vec::new();
                use std::io::Read;
                let mut decoder = flate2::read::MultiGzDecoder::new(bytes.as_ref());
                if decoder.read_to_end(&mut text).is_ok() {
                    for m in matcher.find_overlapping_iter(&text) {
                        found.insert((m.pattern().as_usize(), "gzip"));
                    }
                }
            }
            report.matches.extend(found.into_iter().map(|(needle, found_in)| ScanMatch {
                path: path.clone(),
                needle,
                found_in,
            }));
        }
        Ok(report)
    }

    /// A store rooted at the lake root.
    pub(crate) fn root_store(&self) -> Result<std::sync::Arc<dyn ObjectStore>> {
        let root = self.location().root().clone();
        Ok(deltalake::DeltaTableBuilder::from_url(root.clone())
            .and_then(|b| b.with_storage_options(self.location().storage_options().clone()).build_storage())
            .map_err(|e| EngineError::InvalidLocation { root: root.to_string(), reason: e.to_string() })?
            .object_store(None))
    }

    /// Delete objects under the root by their paths relative to it.
    pub async fn delete_objects(&self, paths: &[String]) -> Result<()> {
        self.ensure_writable()?;
        let store = self.root_store()?;
        for path in paths {
            let location = object_store::path::Path::from(path.as_str());
            match store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(EngineError::Store { context: format!("deleting {path}"), source: Box::new(e) });
                }
            }
        }
        Ok(())
    }
}

/// Every decoded value of a Parquet file, searched.
fn parquet_values(
    matcher: &AhoCorasick,
    bytes: bytes::Bytes,
    path: &str,
    found: &mut std::collections::BTreeSet<(usize, &'static str)>,
) -> Result<()> {
    let parquet_error = |e: deltalake::parquet::errors::ParquetError| EngineError::Io {
        context: format!("scan: decoding {path}"),
        source: std::io::Error::other(e),
    };
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?.build().map_err(parquet_error)?;
    for batch in reader {
        let batch = batch.map_err(|e| EngineError::Arrow { context: format!("scan: decoding {path}"), source: e })?;
        for column in batch.columns() {
            search_array(matcher, column, found);
        }
    }
    Ok(())
}

fn search_array(
    matcher: &AhoCorasick,
    array: &ArrayRef,
    found: &mut std::collections::BTreeSet<(usize, &'static str)>,
) {
    match array.data_type() {
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                search_array(matcher, child, found);
            }
        }
        DataType::List(_) => search_array(matcher, array.as_list::<i32>().values(), found),
        DataType::LargeList(_) => search_array(matcher, array.as_list::<i64>().values(), found),
        DataType::Map(_, _) => {
            let map = array.as_map();
            search_array(matcher, map.keys(), found);
            search_array(matcher, map.values(), found);
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            if let Ok(binary) = cast(array, &DataType::LargeBinary) {
                for value in binary.as_binary::<i64>().iter().flatten() {
                    for m in matcher.find_overlapping_iter(value) {
                        found.insert((m.pattern().as_usize(), "value"));
                    }
                }
            }
        }
        _ => {
            if let Ok(text) = cast(array, &DataType::LargeUtf8) {
                for value in text.as_string::<i64>().iter().flatten() {
                    for m in matcher.find_overlapping_iter(value) {
                        found.insert((m.pattern().as_usize(), "value"));
                    }
                }
            }
        }
    }
}
