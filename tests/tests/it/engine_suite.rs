//! The engine suite: the same tests on a local-directory lake and on the real S3 server.

use std::time::Duration;

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::datafusion::prelude::{col, lit};
use cdplake_engine::{EngineError, TableSpec, TimeTravel};

use crate::support::{Backend, TestLake, count, event_rows, events, events_schema, id, on_every_backend};

on_every_backend!(
    create_append_read,
    append_rejects_unknown_columns,
    overwrite_partition,
    merge_insert_update_delete,
    delete_by_predicate,
    time_travel_by_version_and_timestamp,
    history_lists_commits_newest_first,
    add_columns,
    tables_stay_readable_by_athena,
    requests_are_counted_per_lake_on_s3,
    application_transactions_read_in_one_replay_agree_with_one_by_one,
    a_table_opened_again_sees_every_commit_and_reads_only_the_new_ones,
);

fn events_spec(name: &str) -> TableSpec {
    TableSpec::new(id(name), events_schema()).partitioned_by(["dt"])
}

async fn create_append_read(backend: Backend) {
    let t = TestLake::new(backend).await;
    let table = t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    assert_eq!(table.version(), Some(0));
    assert!(matches!(t.lake.create_table(&events_spec("raw.events")).await, Err(EngineError::TableExists { .. })));

    t.lake
        .append(&id("raw.events"), vec![events(&[("e1", "c1", 10.0, "2024-05-01"), ("e2", "c2", 5.5, "2024-05-02")])])
        .await
        .unwrap();
    // Columns are matched by name, and a missing nullable column is filled with nulls.
    let partial = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("dt", DataType::Utf8, true),
            Field::new("event_id", DataType::Utf8, false),
        ])),
        vec![
            std::sync::Arc::new(cdplake_engine::arrow::array::StringArray::from(vec!["2024-05-02"])),
            std::sync::Arc::new(cdplake_engine::arrow::array::StringArray::from(vec!["e3"])),
        ],
    )
    .unwrap();
    let table = t.lake.append(&id("raw.events"), vec![partial]).await.unwrap();
    assert_eq!(table.version(), Some(2));

    let rows = event_rows(t.lake.read(&id("raw.events")).await.unwrap()).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], ("e1".into(), "c1".into(), 10.0, "2024-05-01".into()));
    assert_eq!(rows[2].0, "e3");
    assert_eq!(rows[2].1, "", "missing column reads as null");
    let df = t.lake.read(&id("raw.events")).await.unwrap().filter(col("dt").eq(lit("2024-05-02"))).unwrap();
    assert_eq!(count(df).await, 2);
}

async fn append_rejects_unknown_columns(backend: Backend) {
    let t = TestLake::new(backend).await;
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    let extra = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("surprise", DataType::Utf8, true),
        ])),
        vec![
            std::sync::Arc::new(cdplake_engine::arrow::array::StringArray::from(vec!["e1"])),
            std::sync::Arc::new(cdplake_engine::arrow::array::StringArray::from(vec!["x"])),
        ],
    )
    .unwrap();
    let err = t.lake.append(&id("raw.events"), vec![extra]).await.unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
    assert_eq!(count(t.lake.read(&id("raw.events")).await.unwrap()).await, 0, "nothing written");
}

async fn overwrite_partition(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    t.lake
        .append(
            &events_id,
            vec![events(&[
                ("e1", "c1", 1.0, "2024-05-01"),
                ("e2", "c2", 2.0, "2024-05-01"),
                ("e3", "c3", 3.0, "2024-05-02"),
            ])],
        )
        .await
        .unwrap();
    t.lake
        .overwrite_partition(&events_id, "dt = '2024-05-01'", vec![events(&[("e9", "c9", 9.0, "2024-05-01")])])
        .await
        .unwrap();
    let rows = event_rows(t.lake.read(&events_id).await.unwrap()).await;
    let ids: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["e3", "e9"], "2024-05-01 replaced, 2024-05-02 untouched");

    // A row outside the predicate is refused and the table keeps its rows.
    let err = t
        .lake
        .overwrite_partition(&events_id, "dt = '2024-05-01'", vec![events(&[("e10", "c1", 1.0, "2024-05-03")])])
        .await;
    assert!(err.is_err(), "a row outside the replaced partition must be refused");
    assert_eq!(count(t.lake.read(&events_id).await.unwrap()).await, 2);
}

async fn merge_insert_update_delete(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("clean.events");
    t.lake.create_table(&events_spec("clean.events")).await.unwrap();
    t.lake
        .append(
            &events_id,
            vec![events(&[
                ("e1", "c1", 1.0, "2024-05-01"),
                ("e2", "c2", 2.0, "2024-05-01"),
                ("e3", "c3", 3.0, "2024-05-02"),
            ])],
        )
        .await
        .unwrap();
    // Changes: e1 updated, e2 deleted (amount < 0 marks a delete here), e4 new.
    let changes =
        events(&[("e1", "c1", 100.0, "2024-05-01"), ("e2", "c2", -1.0, "2024-05-01"), ("e4", "c4", 4.0, "2024-05-03")]);
    let columns: Vec<String> = ["event_id", "customer_id", "amount", "dt"].map(String::from).to_vec();
    let outcome = t
        .lake
        .upsert(&events_id, vec![changes])
        .on(col("target.event_id").eq(col("source.event_id")))
        .delete(Some("source.amount < 0".into()))
        .update(None, [("amount", "source.amount")])
        .insert(None, cdplake_engine::upsert::Upsert::from_source(&columns))
        .await
        .unwrap();
    let (table, metrics) = (outcome.table, outcome.metrics.unwrap());
    assert_eq!(
        (metrics.num_target_rows_inserted, metrics.num_target_rows_updated, metrics.num_target_rows_deleted),
        (1, 1, 1)
    );
    assert_eq!(table.version(), Some(2));
    let rows = event_rows(t.lake.read(&events_id).await.unwrap()).await;
    assert_eq!(
        rows,
        vec![
            ("e1".into(), "c1".into(), 100.0, "2024-05-01".into()),
            ("e3".into(), "c3".into(), 3.0, "2024-05-02".into()),
            ("e4".into(), "c4".into(), 4.0, "2024-05-03".into()),
        ]
    );
}

async fn delete_by_predicate(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    t.lake
        .append(&events_id, vec![events(&[("e1", "c1", 1.0, "2024-05-01"), ("e2", "c2", 20.0, "2024-05-01")])])
        .await
        .unwrap();
    let (_, metrics) = t.lake.delete(&events_id, "amount > 10").await.unwrap();
    assert_eq!(metrics.num_deleted_rows, Some(1));
    let rows = event_rows(t.lake.read(&events_id).await.unwrap()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "e1");
}

async fn time_travel_by_version_and_timestamp(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    t.lake.append(&events_id, vec![events(&[("e1", "c1", 1.0, "2024-05-01")])]).await.unwrap();
    // Commit times come from the store's modification times, which S3 keeps to the second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.lake.append(&events_id, vec![events(&[("e2", "c2", 2.0, "2024-05-01")])]).await.unwrap();

    for (version, rows) in [(0, 0), (1, 1), (2, 2)] {
        let df = t.lake.read_as_of(&events_id, TimeTravel::Version(version)).await.unwrap();
        assert_eq!(count(df).await, rows, "version {version}");
    }
    let df = t.lake.read_as_of(&events_id, TimeTravel::Timestamp(between)).await.unwrap();
    assert_eq!(count(df).await, 1, "as of a time between the two appends");
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    let df = t.lake.read_as_of(&events_id, TimeTravel::Timestamp(later)).await.unwrap();
    assert_eq!(count(df).await, 2);
    assert!(t.lake.read_as_of(&events_id, TimeTravel::Version(9)).await.is_err(), "no version 9");
}

async fn history_lists_commits_newest_first(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    t.lake.append(&events_id, vec![events(&[("e1", "c1", 1.0, "2024-05-01")])]).await.unwrap();
    t.lake.delete(&events_id, "event_id = 'e1'").await.unwrap();

    let history = t.lake.history(&events_id, None).await.unwrap();
    let summary: Vec<_> = history.iter().map(|c| (c.version, c.operation.as_str())).collect();
    assert_eq!(summary, [(2, "DELETE"), (1, "WRITE"), (0, "CREATE TABLE")]);
    assert_eq!(history[1].metrics["num_added_rows"], 1, "{:?}", history[1].metrics);
    assert!(history.iter().all(|c| c.timestamp.is_some()));
    assert_eq!(t.lake.history(&events_id, Some(1)).await.unwrap().len(), 1);
}

async fn add_columns(backend: Backend) {
    let t = TestLake::new(backend).await;
    let events_id = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    t.lake.append(&events_id, vec![events(&[("e1", "c1", 1.0, "2024-05-01")])]).await.unwrap();
    t.lake.add_columns(&events_id, &[Field::new("channel", DataType::Utf8, true)]).await.unwrap();
    let df = t.lake.read(&events_id).await.unwrap();
    assert!(df.schema().field_with_unqualified_name("channel").is_ok());
    assert_eq!(count(df).await, 1);
    let err = t.lake.add_columns(&events_id, &[Field::new("Channel2", DataType::Utf8, true)]).await.unwrap_err();
    assert!(err.to_string().contains("channel2"), "suggests the snake_case name: {err}");
    assert!(
        t.lake.add_columns(&events_id, &[Field::new("required", DataType::Utf8, false)]).await.is_err(),
        "a new column must be nullable"
    );
}

/// The first commit and the checkpoint settings are what Athena engine v3 reads: protocol 1/2,
/// no deletion vectors or column mapping, `timestamp` (µs UTC) not `timestamp_ntz`.
async fn tables_stay_readable_by_athena(backend: Backend) {
    use object_store::ObjectStoreExt;
    use object_store::path::Path;

    let t = TestLake::new(backend).await;
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        // Nanoseconds without a zone would be timestamp_ntz (writer 7); it is stored as µs UTC.
        Field::new("seen_at", DataType::Timestamp(cdplake_engine::arrow::datatypes::TimeUnit::Nanosecond, None), true),
    ]));
    let table = t.lake.create_table(&TableSpec::new(id("curated.profiles"), schema)).await.unwrap();
    let store = table.log_store().object_store(None);
    let commit = store.get(&Path::from("_delta_log/00000000000000000000.json")).await.unwrap().bytes().await.unwrap();
    let actions: Vec<serde_json::Value> =
        String::from_utf8(commit.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let protocol = actions.iter().find_map(|a| a.get("protocol")).expect("protocol action");
    assert_eq!(protocol["minReaderVersion"], 1);
    assert_eq!(protocol["minWriterVersion"], 2);
    assert!(protocol.get("readerFeatures").is_none() && protocol.get("writerFeatures").is_none());
    let metadata = actions.iter().find_map(|a| a.get("metaData")).expect("metaData action");
    let configuration = metadata["configuration"].as_object().unwrap();
    assert!(
        configuration.keys().all(|k| !k.contains("deletionVectors") && !k.contains("columnMapping")),
        "{configuration:?}"
    );
    let schema: serde_json::Value = serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"][1]["type"], "timestamp");
}

/// On S3 every table opened through a lake (and its clones) goes through the lake's one store,
/// which counts the requests by kind and the reads by what they read; a local lake counts none.
async fn requests_are_counted_per_lake_on_s3(backend: Backend) {
    let t = TestLake::new(backend).await;
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    let before = t.lake.storage_requests();
    let clone = t.lake.clone();
    clone.append(&id("raw.events"), vec![events(&[("e1", "c1", 10.0, "2024-05-01")])]).await.unwrap();
    // Rows, not a count: DataFusion answers count(*) from the log's statistics without a read.
    assert_eq!(event_rows(clone.read(&id("raw.events")).await.unwrap()).await.len(), 1);
    let used = t.lake.storage_requests().since(&before);
    let reads = t.lake.storage_reads_by_target();
    match backend {
        Backend::S3 => {
            assert!(used.put >= 2, "a data file and a commit: {used:?}");
            assert!(used.get >= 1 && used.list >= 1, "{used:?}");
            assert!(reads.get("raw/events log").is_some_and(|n| *n >= 1), "{reads:?}");
            assert!(reads.get("raw/events data").is_some_and(|n| *n >= 1), "{reads:?}");
        }
        Backend::Local => {
            assert_eq!(used.total(), 0, "{used:?}");
            assert!(reads.is_empty(), "{reads:?}");
        }
    }
}

/// `applied_versions` (one log replay for many ids) gives what the kernel's one-id look-up gives,
/// for ids in the checkpoint, ids in the commits after it, an id recorded again with a newer
/// version, and ids never recorded.
async fn application_transactions_read_in_one_replay_agree_with_one_by_one(backend: Backend) {
    use cdplake_engine::deltalake::kernel::Transaction;
    use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
    let t = TestLake::new(backend).await;
    let table = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    for i in 0..14 {
        let mut txns = vec![Transaction::new(format!("batch-{i}"), 1)];
        if i == 2 || i == 12 {
            txns.push(Transaction::new("generation", i));
        }
        let commit = CommitProperties::default().with_application_transactions(txns);
        let rows = events(&[(&format!("e{i}"), "c", 1.0, "2024-05-01")]);
        t.lake.append_with(&table, vec![rows], commit).await.unwrap();
    }
    let loaded = t.lake.table(&table).await.unwrap();
    let checkpointed = cdplake_engine::deltalake::checkpoints::create_checkpoint(&loaded, None).await;
    assert!(checkpointed.is_ok(), "{checkpointed:?}");
    // After the checkpoint: a new id, and one the checkpoint holds, recorded again.
    let txns = vec![Transaction::new("after", 7), Transaction::new("generation", 20)];
    let commit = CommitProperties::default().with_application_transactions(txns);
    t.lake.record_transactions(&table, commit).await.unwrap();

    let loaded = t.lake.table(&table).await.unwrap();
    let ids: Vec<String> =
        ["batch-0", "batch-9", "batch-13", "generation", "after", "never", "batch-14"].map(String::from).to_vec();
    let together = cdplake_engine::applied_versions(&loaded, "raw.events", &ids).await.unwrap();
    let mut one_by_one = Vec::new();
    for app_id in &ids {
        one_by_one.push(cdplake_engine::applied_version(&loaded, "raw.events", app_id).await.unwrap());
    }
    assert_eq!(together, one_by_one);
    assert_eq!(together, [Some(1), Some(1), Some(1), Some(20), Some(7), None, None]);
}

/// A lake keeps the tables it opened and updates them on the next open. The update must see
/// what another process committed (here a second lake on the same root: clones share what they
/// opened, separate lakes do not), survive that process's checkpoint and log cleanup, and notice
/// a table dropped, or dropped and created again up to the same version; on S3 an open with
/// nothing new costs a fraction of a first open.
async fn a_table_opened_again_sees_every_commit_and_reads_only_the_new_ones(backend: Backend) {
    let t = TestLake::new(backend).await;
    let table = id("raw.events");
    t.lake.create_table(&events_spec("raw.events")).await.unwrap();
    for i in 0..12 {
        t.lake.append(&table, vec![events(&[(&format!("e{i}"), "c", 1.0, "2024-05-01")])]).await.unwrap();
    }
    let other = match backend {
        Backend::Local => cdplake_engine::Lake::open(&t.root).await.unwrap(),
        Backend::S3 => cdplake_engine::Lake::open_with_options(&t.root, crate::support::s3_options()).await.unwrap(),
    };

    let before = other.storage_requests();
    assert_eq!(other.table(&table).await.unwrap().version(), Some(12));
    let first_open = other.storage_requests().since(&before).total();
    // This lake last opened version 11 (to append the twelfth row): it reads one commit.
    let before = t.lake.storage_requests();
    assert_eq!(t.lake.table(&table).await.unwrap().version(), Some(12));
    let one_new_commit = t.lake.storage_requests().since(&before).total();
    let before = t.lake.storage_requests();
    assert_eq!(t.lake.table(&table).await.unwrap().version(), Some(12));
    let nothing_new = t.lake.storage_requests().since(&before).total();
    if backend == Backend::S3 {
        assert!(first_open >= 12, "a first open replays the checkpoint and two commits: {first_open}");
        // A listing of the log from the kept version on; with a new commit, delta's own listing
        // and the commit read.
        assert!(one_new_commit <= 4 && nothing_new == 1, "{one_new_commit} and {nothing_new} requests");
    }

    // Another process commits, checkpoints and cleans the log up to its checkpoint.
    other.append(&table, vec![events(&[("other-1", "c", 1.0, "2024-05-02")])]).await.unwrap();
    assert_eq!(t.lake.table(&table).await.unwrap().version(), Some(13));
    other.append(&table, vec![events(&[("other-2", "c", 1.0, "2024-05-02")])]).await.unwrap();
    let loaded = other.table(&table).await.unwrap();
    let cutoff = chrono::Utc::now() + chrono::Duration::hours(1);
    let (checkpoint, removed) = other.checkpoint_and_clean(&loaded, &table, cutoff).await.unwrap();
    assert_eq!((checkpoint, removed > 0), (14, true));
    other.append(&table, vec![events(&[("other-3", "c", 1.0, "2024-05-02")])]).await.unwrap();
    let reopened = t.lake.table(&table).await.unwrap();
    assert_eq!(reopened.version(), Some(15));
    let rows = event_rows(t.lake.read(&table).await.unwrap()).await;
    assert_eq!(rows.len(), 15, "12 + 3 rows: {rows:?}");
    assert!(rows.iter().any(|r| r.0 == "other-3"));

    // The other process drops the table and creates it again, up to the version kept here.
    other.purge_table_files(&table).await.unwrap();
    other.create_table(&events_spec("raw.events")).await.unwrap();
    for i in 0..15 {
        other.append(&table, vec![events(&[(&format!("new-{i}"), "c", 1.0, "2024-05-03")])]).await.unwrap();
    }
    assert_eq!(t.lake.table(&table).await.unwrap().version(), Some(15));
    let rows = event_rows(t.lake.read(&table).await.unwrap()).await;
    assert_eq!(rows.len(), 15, "{rows:?}");
    assert!(rows.iter().all(|r| r.0.starts_with("new-")), "{rows:?}");
    // And drops it for good; then this process drops it too.
    other.purge_table_files(&table).await.unwrap();
    assert!(matches!(t.lake.table(&table).await, Err(EngineError::TableNotFound { .. })));
    other.create_table(&events_spec("raw.events")).await.unwrap();
    assert_eq!(t.lake.table(&table).await.unwrap().version(), Some(0));
    t.lake.purge_table_files(&table).await.unwrap();
    assert!(matches!(t.lake.table(&table).await, Err(EngineError::TableNotFound { .. })));
}
