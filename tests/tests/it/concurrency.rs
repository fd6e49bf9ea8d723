//! Racing writers on the real S3 server: every commit must land exactly once.

use cdplake_engine::{Lake, TableSpec};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::support::{Backend, TestLake, count, events, events_schema, id, s3_options};

const WRITERS: usize = 8;
const APPENDS_PER_WRITER: usize = 20;
const ROWS_PER_APPEND: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_twenty_appends_each_lose_nothing_on_s3() {
    let t = TestLake::new(Backend::S3).await;
    let table_id = id("raw.events");
    t.lake.create_table(&TableSpec::new(table_id.clone(), events_schema())).await.unwrap();

    let writers = (0..WRITERS).map(|writer| {
        let root = t.root.clone();
        let table_id = table_id.clone();
        tokio::spawn(async move {
            // Each writer opens the lake itself, as separate jobs or Lambda invocations would.
            let lake = Lake::open_with_options(&root, s3_options()).await.unwrap();
            for append in 0..APPENDS_PER_WRITER {
                let ids: Vec<String> = (0..ROWS_PER_APPEND).map(|r| format!("w{writer}-a{append}-r{r}")).collect();
                let rows: Vec<_> = ids.iter().map(|e| (e.as_str(), "c", 1.0, "2024-05-01")).collect();
                lake.append(&table_id, vec![events(&rows)]).await.unwrap();
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }

    let table = t.lake.table(&table_id).await.unwrap();
    assert_eq!(table.version(), Some((WRITERS * APPENDS_PER_WRITER) as u64), "one version per append");
    let df = t.lake.read(&table_id).await.unwrap();
    assert_eq!(count(df.clone()).await, WRITERS * APPENDS_PER_WRITER * ROWS_PER_APPEND, "no commit lost");
    let distinct = df.select_columns(&["event_id"]).unwrap().distinct().unwrap();
    assert_eq!(count(distinct).await, WRITERS * APPENDS_PER_WRITER * ROWS_PER_APPEND, "no commit doubled");

    // Every CHECKPOINT_INTERVAL-th commit delta-rs writes a classic checkpoint, which Athena
    // reads; the writer of the last interval's commit wrote that one (writers race on
    // `_last_checkpoint`, so it may name an earlier one of them).
    let interval = cdplake_engine::spec::CHECKPOINT_INTERVAL;
    let newest = (WRITERS * APPENDS_PER_WRITER) as u64 / interval * interval - 1;
    let store = table.log_store().object_store(None);
    store.head(&Path::from(format!("_delta_log/{newest:020}.checkpoint.parquet"))).await.expect("newest checkpoint");
    let last = store.get(&Path::from("_delta_log/_last_checkpoint")).await.unwrap().bytes().await.unwrap();
    let last: serde_json::Value = serde_json::from_slice(&last).unwrap();
    assert_eq!((last["version"].as_u64().unwrap() + 1) % interval, 0, "{last}");
    assert!(last.get("v2Checkpoint").is_none(), "classic checkpoint expected: {last}");
}
