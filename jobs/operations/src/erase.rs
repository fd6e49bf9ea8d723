//! `cdplake erase ID_TYPE:VALUE`: the right to erasure (GDPR art. 17, CCPA), provably.
//!
//! Phases:
//! 1. **Find** the person through `curated.id_mapping` (an `email:`/`phone:` plaintext is
//!    normalised and hashed as clean does) and collect their identifiers: every active
//!    identifier of their one_id, their one_id and user_int_id.
//! 2. **Suppress**: every form of those identifiers (plaintext as written, normalised, hashed
//!    plain and keyed) goes to `_audit.suppressions` as keyed hashes, first, so that nothing
//!    ingested from now on brings the person back.
//! 3. **Delete** from every table of the catalog, every zone: a row is the person's when a value
//!    in any form is one of their identifiers (JSON raw values and `type:value` lists read
//!    value by value), when it carries their one_id or user_int_id, or when it came from a raw
//!    row of theirs (lineage). Deletes name rows by internal ids (lineage, one_id, event keys),
//!    never by an email; small tables are rewritten whole. Bitmaps lose the user_int_id. Raw
//!    tables are append-only: the flag is lifted for the delete and set again.
//! 4. **Purge**: each touched table is vacuumed at zero retention (change-data files too), a
//!    checkpoint is written and every older log file deleted, so no commit's statistics or
//!    predicate keeps a value. Objects outside the tables that hold the person (landing files,
//!    query results) are ingested if they were not yet (the suppression drops the person) and
//!    deleted.
//! 5. **Prove**: every object under the lake root is scanned for every form found; the count of
//!    matches (0) and the tables and versions are recorded in `_audit.erasures` with keyed
//!    hashes only.
//!
//! Run it while no other job writes: the zero-retention vacuum removes files a concurrent
//! writer has not committed yet.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use cdplake_catalog::{TableEntry, TableMeta};
use cdplake_engine::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use cdplake_engine::arrow::compute::{cast, filter_record_batch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use cdplake_engine::scan::ScanReport;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::{MaintainOptions, TableId, TableSpec, timestamp_type};
use cdplake_zones::{Normalize, normalize};
use chrono::{DateTime, Utc};

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_ingest::privacy::{self, candidates, tokens};
use cdplake_zones::tables::{ERASURES, ID_MAPPING};

fn erasures_spec() -> TableSpec {
    let list = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    TableSpec::new(
        ERASURES.id(),
        Arc::new(Schema::new(vec![
            Field::new("erasure_id", DataType::Utf8, false),
            Field::new("requested_at", timestamp_type(), false),
            Field::new("completed_at", timestamp_type(), false),
            Field::new("reason", DataType::Utf8, true),
            Field::new("identifier_hash", DataType::Utf8, false),
            Field::new("identifiers", DataType::Int64, false),
            Field::new("rows_deleted", DataType::Int64, false),
            Field::new("tables", list, false),
            Field::new("objects_deleted", DataType::Int64, false),
            Field::new("objects_scanned", DataType::Int64, false),
            Field::new("matches_after", DataType::Int64, false),
        ])),
    )
    .with_description(
        "Erasures (right to erasure): when, why, the tables and versions they committed, rows deleted, and the scan \
         of every object after (matches_after = 0). Identifiers only as keyed hashes.",
    )
}

/// What an erasure did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EraseReport {
    pub erasure_id: String,
    /// The identifier asked for, as a keyed hash.
    pub identifier_hash: String,
    /// Whether the identifier belonged to a person (an unknown one is still suppressed).
    pub found: bool,
    /// The person's identifiers (id_mapping rows) and the forms searched for.
    pub identifiers: u64,
    pub forms: u64,
    /// Rows deleted per table (`zone.table` → rows), and the version each table is at after.
    pub rows_deleted: BTreeMap<String, u64>,
    pub versions: BTreeMap<String, u64>,
    /// Objects outside the tables deleted (landing files, query results).
    pub objects_deleted: u64,
    pub objects_scanned: u64,
    /// Objects still holding a form after the erasure, by path (0 expected).
    pub matches_after: Vec<String>,
}

impl cdplake_core::audit::JobReport for EraseReport {
    fn row_counts(&self) -> cdplake_core::audit::RowCounts {
        let deleted = self.rows_deleted.values().sum();
        cdplake_core::audit::RowCounts { read: deleted, written: deleted }
    }
}

/// The person as found.
struct Person {
    one_ids: HashSet<String>,
    user_int_ids: HashSet<i64>,
    /// Every form of every identifier, lower-cased.
    forms: HashSet<String>,
    /// `batch_id:row` of their raw rows.
    raw_rows: HashSet<String>,
    /// `source:event_key` of their clean rows.
    event_keys: HashSet<String>,
}

impl Person {
    fn value_matches(&self, value: &str, pii_key: Option<&[u8]>) -> bool {
        tokens(value).iter().any(|t| candidates(t, pii_key).iter().any(|c| self.forms.contains(c)))
    }
}

/// Erase the person `id_type:value` from the whole lake.
pub async fn erase(
    workspace: &Workspace,
    id_type: &str,
    value: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<EraseReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let pii_key = normalize::pii_key_from_env();
    let pii_key = pii_key.as_deref();
    let key = privacy::suppression_key(workspace, true)
        .await?
        .ok_or_else(|| JobError::bad_input("the suppression key", "none could be made"))?;
    let erasure_id = uuid::Uuid::new_v4().to_string();
    let mut report = EraseReport {
        identifier_hash: privacy::keyed(&format!("{id_type}:{value}"), &key),
        erasure_id: erasure_id.clone(),
        ..Default::default()
    };

    // 1. Find.
    let mut person = find_person(workspace, id_type, value, pii_key, &mut report).await?;
    let entries = workspace.catalog.list().await?;
    for entry in entries.iter().filter(|e| e.zone == "raw") {
        collect_raw_forms(workspace, entry, &mut person, pii_key).await?;
    }
    report.forms = person.forms.len() as u64;

    // 2. Suppress, before anything is deleted.
    let mut forms: Vec<String> = person.forms.iter().cloned().collect();
    forms.sort();
    privacy::suppress(workspace, &forms, &erasure_id, now).await?;

    // 3. Delete, zone by zone (clean rows name the user_events keys).
    let mut touched = delete_everywhere(workspace, &entries, &mut person, pii_key, &mut report).await?;

    // 4. Purge the history of every table that was touched or still holds a form in an old
    //    file or log entry (an erasure stopped half-way and run again), then the objects
    //    outside the tables.
    let needles = needles_of(&person);
    let scan = lake.scan_for(&needles).await?;
    add_tables_holding_forms(&entries, &scan, &mut touched)?;
    purge_tables(workspace, &touched, &mut report).await?;
    report.objects_deleted = delete_objects_outside(workspace, &entries, &scan, now).await?;

    // 5. Prove.
    let scan = lake.scan_for(&needles).await?;
    report.objects_scanned = scan.objects;
    report.matches_after = scan.matches.iter().map(|m| m.path.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    record(workspace, &report, reason, now).await?;
    Ok(report)
}

/// Delete the person's rows from every table but cdplake's own, raw first, then clean (whose
/// rows name the user_events keys), then curated, then the rest; the rows deleted per table go
/// to the report. Returns the tables rows were deleted from.
async fn delete_everywhere(
    workspace: &Workspace,
    entries: &[TableEntry],
    person: &mut Person,
    pii_key: Option<&[u8]>,
    report: &mut EraseReport,
) -> Result<Vec<TableId>> {
    let order = |e: &TableEntry| match e.zone.as_str() {
        "raw" => 0,
        "clean" => 1,
        "curated" => 2,
        _ => 3,
    };
    let mut ordered: Vec<&TableEntry> = entries.iter().filter(|e| !is_own_table(e)).collect();
    ordered.sort_by_key(|e| (order(e), e.name.clone()));
    let mut touched = Vec::new();
    for entry in ordered {
        let id = TableId::new(&entry.zone, &entry.table_name)?;
        if !workspace.lake().table_exists(&id).await? {
            continue;
        }
        let deleted = erase_from_table(workspace, &id, person, pii_key).await?;
        if deleted > 0 {
            report.rows_deleted.insert(id.to_string(), deleted);
            touched.push(id);
        }
    }
    Ok(touched)
}

/// The strings the lake is scanned for: the person's forms of four characters or more, sorted.
fn needles_of(person: &Person) -> Vec<String> {
    let mut needles: Vec<String> = person.forms.iter().filter(|f| f.len() >= 4).cloned().collect();
    needles.sort();
    needles
}

/// Add to `touched` every table (but cdplake's own) with an object among the scan's matches.
fn add_tables_holding_forms(entries: &[TableEntry], scan: &ScanReport, touched: &mut Vec<TableId>) -> Result<()> {
    for entry in entries {
        let dir = format!("{}/", entry.location);
        let id = TableId::new(&entry.zone, &entry.table_name)?;
        if scan.matches.iter().any(|m| m.path.starts_with(dir.as_str()))
            && !touched.contains(&id)
            && !is_own_table(entry)
        {
            touched.push(id);
        }
    }
    Ok(())
}

/// Purge the history of each table, recording the version it is at after on the report.
async fn purge_tables(workspace: &Workspace, tables: &[TableId], report: &mut EraseReport) -> Result<()> {
    for id in tables {
        purge_history(workspace, id).await?;
        let version = workspace.lake().table(id).await?.version().unwrap_or(0);
        report.versions.insert(id.to_string(), version as u64);
    }
    Ok(())
}

/// Delete the matched objects outside every table and the catalog (landing files, query
/// results), ingesting a landing file first if it was not yet. Returns how many were deleted.
async fn delete_objects_outside(
    workspace: &Workspace,
    entries: &[TableEntry],
    scan: &ScanReport,
    now: DateTime<Utc>,
) -> Result<u64> {
    let table_dirs: Vec<String> = entries.iter().map(|e| format!("{}/", e.location)).collect();
    let mut outside: BTreeSet<String> = BTreeSet::new();
    for m in &scan.matches {
        if !table_dirs.iter().any(|d| m.path.starts_with(d.as_str())) && !m.path.starts_with("_catalog/") {
            outside.insert(m.path.clone());
        }
    }
    for path in &outside {
        ingest_if_landing(workspace, path, now).await?;
    }
    workspace.lake().delete_objects(&outside.iter().cloned().collect::<Vec<_>>()).await?;
    Ok(outside.len() as u64)
}

/// Tables cdplake keeps about its own runs (the audit trail, the catalog): never erased from.
fn is_own_table(entry: &TableEntry) -> bool {
    entry.zone == "_audit" || entry.zone == "_catalog"
}

async fn find_person(
    workspace: &Workspace,
    id_type: &str,
    value: &str,
    pii_key: Option<&[u8]>,
    report: &mut EraseReport,
) -> Result<Person> {
    // Plaintext contact points are looked up by the hashes clean makes of them.
    let lookups: Vec<(String, String)> = match id_type {
        "email" => normalize::email(value)
            .map(|e| {
                vec![
                    ("email_hash".into(), normalize::pii_hash(&e, pii_key)),
                    ("email_hash".into(), normalize::pii_hash(&e, None)),
                ]
            })
            .unwrap_or_default(),
        "phone" | "mobile" => candidates(value, pii_key)
            .into_iter()
            .filter(|c| c.len() == 64)
            .map(|h| ("mobile_hash".to_string(), h))
            .collect(),
        _ => vec![(id_type.to_string(), value.trim().to_string())],
    };
    let mut person = Person {
        one_ids: HashSet::new(),
        user_int_ids: HashSet::new(),
        forms: candidates(value, pii_key).into_iter().collect(),
        raw_rows: HashSet::new(),
        event_keys: HashSet::new(),
    };
    let lake = workspace.lake();
    if !lake.table_exists(&ID_MAPPING.id()).await? {
        return Ok(person);
    }
    let batches = lake
        .read(&ID_MAPPING.id())
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query("erase: reading curated.id_mapping", e))?;
    let rows: Vec<cdplake_zones::curated::IdMappingRow> = batches
        .iter()
        .map(cdplake_zones::curated::IdMappingRow::from_batch)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| JobError::arrow("erase: id_mapping rows", e))?
        .into_iter()
        .flatten()
        .collect();
    for row in &rows {
        if lookups.iter().any(|(t, v)| &row.id_type == t && &row.id_value == v) {
            person.one_ids.insert(row.one_id.clone());
        }
    }
    for row in rows.iter().filter(|r| person.one_ids.contains(&r.one_id)) {
        person.user_int_ids.insert(row.user_int_id);
        if row.is_active {
            report.identifiers += 1;
            person.forms.extend(candidates(&row.id_value, pii_key));
        }
    }
    report.found = !person.one_ids.is_empty();
    Ok(person)
}

/// Mark the person's raw rows and add the spellings their identifiers have in those rows (the
/// plaintext email of a CSV, the phone as typed) to their forms.
async fn collect_raw_forms(
    workspace: &Workspace,
    entry: &TableEntry,
    person: &mut Person,
    pii_key: Option<&[u8]>,
) -> Result<()> {
    let id = TableId::new(&entry.zone, &entry.table_name)?;
    let source = workspace.config.source(&entry.table_name);
    let identifying: HashSet<String> = source
        .iter()
        .flat_map(|s| s.columns.iter())
        .filter(|c| c.id_type.is_some() || matches!(c.normalize, Normalize::Email | Normalize::Phone))
        .flat_map(|c| c.raw_names())
        .collect();
    let batches = read_all(workspace, &id).await?;
    for batch in &batches {
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let texts = privacy::row_texts(batch);
        let (batch_col, row_col) =
            (names.iter().position(|n| n == "_batch_id"), names.iter().position(|n| n == "_source_row"));
        for row in &texts {
            let data = row.iter().zip(&names).filter(|(_, n)| !cdplake_zones::raw::is_lineage(n));
            let mine = data.clone().any(|(v, _)| v.as_deref().is_some_and(|v| person.value_matches(v, pii_key)));
            if !mine {
                continue;
            }
            if let (Some(b), Some(r)) = (batch_col, row_col)
                && let (Some(b), Some(r)) = (&row[b], &row[r])
            {
                person.raw_rows.insert(format!("{b}:{r}"));
            }
            // A value as written (an email's spelling, a phone as typed) is a form only when it is
            // one of the person's own identifiers: a kiosk device or a family email on their row
            // belongs to others too, and erasing it would erase them.
            let mut written: Vec<String> = Vec::new();
            for (value, name) in data {
                if let Some(value) = value
                    && identifying.contains(name)
                {
                    let forms = candidates(value, pii_key);
                    if forms.iter().any(|f| person.forms.contains(f)) {
                        written.extend(forms);
                        written.push(value.trim().to_lowercase());
                    }
                }
            }
            person.forms.extend(written);
        }
    }
    Ok(())
}

async fn read_all(workspace: &Workspace, id: &TableId) -> Result<Vec<RecordBatch>> {
    workspace.lake().read(id).await?.collect().await.map_err(|e| JobError::query(format!("erase: reading {id}"), e))
}

fn column_text(batch: &RecordBatch, name: &str) -> Option<StringArray> {
    let column = batch.column_by_name(name)?;
    cast(column, &DataType::Utf8).ok().map(|c| c.as_string::<i32>().clone())
}

/// Which rows of a batch are the person's.
fn person_rows(batch: &RecordBatch, person: &Person, pii_key: Option<&[u8]>) -> Vec<bool> {
    let texts = privacy::row_texts(batch);
    let one_id_columns: Vec<StringArray> =
        ["one_id", "absorbed_one_id", "surviving_one_id"].iter().filter_map(|c| column_text(batch, c)).collect();
    let user_ints = batch.column_by_name("user_int_id").and_then(|c| cast(c, &DataType::Int64).ok());
    let lineage = match (
        column_text(batch, "_batch_id").or_else(|| column_text(batch, "batch_id")),
        column_text(batch, "_source_row"),
    ) {
        (Some(b), Some(r)) => Some((b, r)),
        _ => None,
    };
    let event_key = column_text(batch, "event_key");
    let event_source = column_text(batch, "source");
    (0..batch.num_rows())
        .map(|r| {
            one_id_columns.iter().any(|c| !c.is_null(r) && person.one_ids.contains(c.value(r)))
                || user_ints.as_ref().is_some_and(|c| {
                    !c.is_null(r) && person.user_int_ids.contains(&c.as_primitive::<Int64Type>().value(r))
                })
                || lineage.as_ref().is_some_and(|(b, row)| {
                    !b.is_null(r)
                        && !row.is_null(r)
                        && person.raw_rows.contains(&format!("{}:{}", b.value(r), row.value(r)))
                })
                || match (&event_source, &event_key) {
                    (Some(s), Some(k)) if !s.is_null(r) && !k.is_null(r) => {
                        person.event_keys.contains(&format!("{}:{}", s.value(r), k.value(r)))
                    }
                    _ => false,
                }
                || texts[r].iter().flatten().any(|v| person.value_matches(v, pii_key))
        })
        .collect()
}

/// Delete the person's rows from one table; the rows deleted.
async fn erase_from_table(
    workspace: &Workspace,
    id: &TableId,
    person: &mut Person,
    pii_key: Option<&[u8]>,
) -> Result<u64> {
    let lake = workspace.lake();
    let table = lake.table(id).await?;
    let batches = lake
        .read_table(id, &table, &lake.session())
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query(format!("erase: reading {id}"), e))?;
    let schema = cdplake_engine::lake::table_arrow_schema(&table, id)?;
    let bitmap_column = ["bitmap", "user_bitmap"].into_iter().find(|c| schema.field_with_name(c).is_ok());
    if let Some(column) = bitmap_column {
        return erase_from_bitmaps(workspace, id, table, batches, column, person).await;
    }
    let lineage_column = lineage_column(&schema);
    let mut found = FoundRows::default();
    for batch in &batches {
        found.add_batch(id, batch, lineage_column, person, pii_key)?;
    }
    if found.deleted == 0 {
        return Ok(0);
    }
    let append_only = is_append_only(&table);
    if append_only {
        set_property(workspace, id, "delta.appendOnly", "false").await?;
    }
    let has_event_key = schema.field_with_name("event_key").is_ok();
    let deleted = found.deleted;
    let result = match found.delete_predicate(lineage_column, has_event_key) {
        Some(predicate) if id.zone() == "raw" || id.zone() == "clean" || has_event_key => {
            lake.delete(id, &predicate).await.map(|_| ())
        }
        _ => {
            let table = lake.table(id).await?;
            lake.overwrite_table(table, id, found.kept).await.map(|_| ())
        }
    };
    if append_only {
        set_property(workspace, id, "delta.appendOnly", "true").await?;
    }
    result?;
    Ok(deleted)
}

/// The column naming a row's raw batch beside `_source_row` (`_batch_id`, or `batch_id`), if
/// the table has both.
fn lineage_column(schema: &Schema) -> Option<&'static str> {
    let has = |c: &str| schema.field_with_name(c).is_ok();
    if has("_batch_id") && has("_source_row") {
        Some("_batch_id")
    } else if has("batch_id") && has("_source_row") {
        Some("batch_id")
    } else {
        None
    }
}

/// Whether the table refuses anything but appends (`delta.appendOnly`, as raw tables are).
fn is_append_only(table: &cdplake_engine::deltalake::DeltaTable) -> bool {
    table
        .snapshot()
        .map(|s| s.metadata().configuration().get("delta.appendOnly").is_some_and(|v| v == "true"))
        .unwrap_or(false)
}

/// The person's rows of one table, found batch by batch, and the internal keys naming them.
#[derive(Default)]
struct FoundRows {
    deleted: u64,
    /// The batches without the person's rows.
    kept: Vec<RecordBatch>,
    /// Raw batch id → the source rows of the person's rows from it.
    lineage_keys: BTreeMap<String, BTreeSet<i64>>,
    /// Source → event keys of the person's rows.
    event_keys: BTreeMap<String, BTreeSet<String>>,
    /// Rows of the person without a lineage key: the table is rewritten instead.
    unkeyed: u64,
}

impl FoundRows {
    /// Find the person's rows of `batch` and note their keys; a clean table's `_row_key`s go to
    /// the person's event keys, for the tables downstream.
    fn add_batch(
        &mut self,
        id: &TableId,
        batch: &RecordBatch,
        lineage_column: Option<&str>,
        person: &mut Person,
        pii_key: Option<&[u8]>,
    ) -> Result<()> {
        let mine = person_rows(batch, person, pii_key);
        let n = mine.iter().filter(|m| **m).count() as u64;
        self.deleted += n;
        if n > 0 {
            if id.zone() == "clean" {
                note_clean_row_keys(id, batch, &mine, person);
            }
            self.note_lineage(batch, &mine, lineage_column);
            self.note_event_keys(batch, &mine);
        }
        let keep = BooleanArray::from(mine.iter().map(|m| !m).collect::<Vec<_>>());
        self.kept.push(filter_record_batch(batch, &keep).map_err(|e| JobError::arrow(format!("erase: {id}"), e))?);
        Ok(())
    }

    /// The raw lineage (batch id, source row) of the rows `mine` marks; rows without one count
    /// as unkeyed.
    fn note_lineage(&mut self, batch: &RecordBatch, mine: &[bool], lineage_column: Option<&str>) {
        let (Some(b), Some(rows)) =
            (lineage_column.and_then(|c| column_text(batch, c)), column_text(batch, "_source_row"))
        else {
            return;
        };
        for (r, m) in mine.iter().enumerate() {
            match (*m, b.is_null(r) || rows.is_null(r), rows.value(r).parse::<i64>()) {
                (true, false, Ok(row)) => {
                    self.lineage_keys.entry(b.value(r).to_string()).or_default().insert(row);
                }
                (true, _, _) => self.unkeyed += 1,
                _ => {}
            }
        }
    }

    /// The (source, event key) of the rows `mine` marks.
    fn note_event_keys(&mut self, batch: &RecordBatch, mine: &[bool]) {
        let (Some(s), Some(k)) = (column_text(batch, "source"), column_text(batch, "event_key")) else {
            return;
        };
        for (r, m) in mine.iter().enumerate() {
            if *m && !s.is_null(r) && !k.is_null(r) {
                self.event_keys.entry(s.value(r).to_string()).or_default().insert(k.value(r).to_string());
            }
        }
    }

    /// Big tables are deleted from by internal keys (lineage, else event keys); None when a row
    /// has no key, or none was found: the table is rewritten without the rows instead.
    fn delete_predicate(&self, lineage_column: Option<&str>, has_event_key: bool) -> Option<String> {
        if self.unkeyed > 0 {
            None
        } else if let Some(column) = lineage_column.filter(|_| !self.lineage_keys.is_empty()) {
            Some(or_groups(
                column,
                "_source_row",
                self.lineage_keys.iter().map(|(b, rows)| (b.clone(), rows.iter().map(|r| r.to_string()).collect())),
            ))
        } else if !self.event_keys.is_empty() && has_event_key {
            Some(or_groups(
                "source",
                "event_key",
                self.event_keys.iter().map(|(s, keys)| (s.clone(), keys.iter().map(|k| quote_literal(k)).collect())),
            ))
        } else {
            None
        }
    }
}

/// The `_row_key`s of a clean table's rows `mine` marks, as `source:key`: the event keys of the
/// person's rows downstream.
fn note_clean_row_keys(id: &TableId, batch: &RecordBatch, mine: &[bool], person: &mut Person) {
    let Some(keys) = column_text(batch, "_row_key") else {
        return;
    };
    for (r, m) in mine.iter().enumerate() {
        if *m && !keys.is_null(r) {
            person.event_keys.insert(format!("{}:{}", id.name(), keys.value(r)));
        }
    }
}

/// `(a = 'x' AND b IN (..)) OR ...`.
fn or_groups(a: &str, b: &str, groups: impl Iterator<Item = (String, Vec<String>)>) -> String {
    groups
        .map(|(value, list)| format!("({a} = {} AND {b} IN ({}))", quote_literal(&value), list.join(", ")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Remove the person's user_int_ids from every bitmap of a table (rewritten whole).
async fn erase_from_bitmaps(
    workspace: &Workspace,
    id: &TableId,
    table: cdplake_engine::deltalake::DeltaTable,
    batches: Vec<RecordBatch>,
    column: &str,
    person: &Person,
) -> Result<u64> {
    let mut changed = 0u64;
    let mut out = Vec::new();
    for batch in batches {
        let index = batch.schema().index_of(column).map_err(|e| JobError::arrow("erase: bitmaps", e))?;
        let bytes = cast(batch.column(index), &DataType::Binary).map_err(|e| JobError::arrow("erase: bitmaps", e))?;
        let mut bitmaps = Vec::with_capacity(batch.num_rows());
        let mut cardinalities = Vec::with_capacity(batch.num_rows());
        for value in bytes.as_binary::<i32>().iter() {
            let mut bitmap = cdplake_engine::bitmap::from_bytes(value.unwrap_or_default())
                .map_err(|e| JobError::query(format!("erase: a bitmap of {id}"), e))?;
            let before = bitmap.len();
            for user in &person.user_int_ids {
                if let Ok(user) = u32::try_from(*user) {
                    bitmap.remove(user);
                }
            }
            if bitmap.len() != before {
                changed += 1;
            }
            cardinalities.push(bitmap.len() as i64);
            bitmaps.push(cdplake_engine::bitmap::to_bytes(&bitmap));
        }
        let mut columns = batch.columns().to_vec();
        let typed = |array: cdplake_engine::arrow::array::ArrayRef, like: &DataType| {
            cast(&array, like).map_err(|e| JobError::arrow("erase: bitmaps", e))
        };
        columns[index] =
            typed(Arc::new(BinaryArray::from_iter_values(bitmaps.iter())), batch.column(index).data_type())?;
        if let Ok(c) = batch.schema().index_of("cardinality") {
            columns[c] = typed(Arc::new(Int64Array::from(cardinalities)), batch.column(c).data_type())?;
        }
        out.push(RecordBatch::try_new(batch.schema(), columns).map_err(|e| JobError::arrow("erase: bitmaps", e))?);
    }
    if changed > 0 {
        workspace.lake().overwrite_table(table, id, out).await?;
    }
    Ok(changed)
}

async fn set_property(workspace: &Workspace, id: &TableId, key: &str, value: &str) -> Result<()> {
    let table = workspace.lake().table(id).await?;
    table
        .set_tbl_properties()
        .with_properties([(key.to_string(), value.to_string())].into())
        .await
        .map_err(|e| cdplake_engine::EngineError::delta(id, "set properties", e))?;
    Ok(())
}

/// Vacuum at zero retention (change data and every replaced file), checkpoint, and delete every
/// log file before the checkpoint: no old file, commit statistic or predicate is left.
async fn purge_history(workspace: &Workspace, id: &TableId) -> Result<()> {
    let now = Utc::now();
    let options = MaintainOptions::new(chrono::Duration::zero(), now);
    let lake = workspace.lake();
    let table = lake.table(id).await?;
    let (table, _) = table
        .vacuum()
        .with_mode(cdplake_engine::deltalake::operations::vacuum::VacuumMode::Full)
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .await
        .map_err(|e| cdplake_engine::EngineError::delta(id, "vacuum", e))?;
    // Far in the future: every log file before the checkpoint goes, whatever the storage clock.
    lake.checkpoint_and_clean(&table, id, options.now + chrono::Duration::days(1)).await?;
    Ok(())
}

/// A landing object not ingested yet is ingested first (the suppression drops the person's
/// rows), so deleting it loses nobody else's rows.
async fn ingest_if_landing(workspace: &Workspace, path: &str, now: DateTime<Utc>) -> Result<()> {
    let mut parts = path.splitn(3, '/');
    if let (Some("landing"), Some(source), Some(_)) = (parts.next(), parts.next(), parts.next())
        && let Some(source) = workspace.config.source(source)
    {
        let uri = workspace.lake().location().join(path).to_string();
        cdplake_ingest::ingest::ingest_object(workspace, &source, &uri, now).await?;
    }
    Ok(())
}

async fn record(workspace: &Workspace, report: &EraseReport, reason: Option<&str>, now: DateTime<Utc>) -> Result<()> {
    workspace.catalog.ensure_table(&erasures_spec(), &TableMeta::default()).await?;
    let mut tables = cdplake_engine::arrow::array::ListBuilder::new(cdplake_engine::arrow::array::StringBuilder::new())
        .with_field(Field::new("element", DataType::Utf8, true));
    for (table, version) in &report.versions {
        tables.values().append_value(format!("{table}@{version}"));
    }
    tables.append(true);
    let micros =
        |t: DateTime<Utc>| Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"));
    let batch = RecordBatch::try_new(
        erasures_spec().schema,
        vec![
            Arc::new(StringArray::from(vec![report.erasure_id.as_str()])),
            micros(now),
            micros(Utc::now()),
            Arc::new(StringArray::from(vec![reason])),
            Arc::new(StringArray::from(vec![report.identifier_hash.as_str()])),
            Arc::new(Int64Array::from(vec![report.identifiers as i64])),
            Arc::new(Int64Array::from(vec![report.rows_deleted.values().sum::<u64>() as i64])),
            Arc::new(tables.finish()),
            Arc::new(Int64Array::from(vec![report.objects_deleted as i64])),
            Arc::new(Int64Array::from(vec![report.objects_scanned as i64])),
            Arc::new(Int64Array::from(vec![report.matches_after.len() as i64])),
        ],
    )
    .map_err(|e| JobError::arrow("erasure row", e))?;
    workspace.lake().append(&ERASURES.id(), vec![batch]).await?;
    Ok(())
}

/// The report as lines for people.
pub fn describe_report(r: &EraseReport) -> String {
    let mut text = format!(
        "erasure {}: {} ({} identifiers, {} forms searched); {} rows deleted from {} tables; {} objects outside \
         the tables deleted; scan of {} objects after: {} holding a form",
        r.erasure_id,
        if r.found { "person found" } else { "no person holds this identifier (it is suppressed all the same)" },
        r.identifiers,
        r.forms,
        r.rows_deleted.values().sum::<u64>(),
        r.rows_deleted.len(),
        r.objects_deleted,
        r.objects_scanned,
        r.matches_after.len()
    );
    for (table, rows) in &r.rows_deleted {
        text.push_str(&format!(
            "\n  {table}: {rows} rows (now version {})",
            r.versions.get(table).copied().unwrap_or(0)
        ));
    }
    for path in &r.matches_after {
        text.push_str(&format!("\n  STILL HOLDS A FORM: {path}"));
    }
    text
}
