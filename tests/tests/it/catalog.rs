//! The catalog: registry round trip on both backends, Athena DDL, name rules.

use cdplake_catalog::{Catalog, CatalogError, TableEntry, TableMeta, athena_ddl};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::{EngineError, Lake, TableId, TableSpec};
use chrono::{DateTime, Utc};

use crate::support::{Backend, TestLake, collect, events, events_schema, id, s3_options, single_i64};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_local_disk() {
    round_trip(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_s3() {
    round_trip(Backend::S3).await;
}

async fn round_trip(backend: Backend) {
    let t = TestLake::new(backend).await;
    let catalog = Catalog::open(&t.lake).await.unwrap();
    assert!(catalog.list().await.unwrap().is_empty());

    let spec = TableSpec::new(id("raw.events"), events_schema())
        .partitioned_by(["dt"])
        .with_description("Events as received.");
    let meta =
        TableMeta::default().with_primary_key(["event_id"]).with_pii_columns(["customer_id"]).with_retention_days(400);
    catalog.create_table(&spec, &meta).await.unwrap();
    t.lake.append(&id("raw.events"), vec![events(&[("e1", "c1", 2.5, "2024-05-01")])]).await.unwrap();

    // A fresh process sees the same registry.
    let lake = match backend {
        Backend::Local => Lake::open(&t.root).await.unwrap(),
        Backend::S3 => Lake::open_with_options(&t.root, s3_options()).await.unwrap(),
    };
    let reopened = Catalog::open(&lake).await.unwrap();
    let entries = reopened.list().await.unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!((entry.name.as_str(), entry.zone.as_str(), entry.table_name.as_str()), ("raw.events", "raw", "events"));
    assert_eq!(entry.location, "raw/events");
    assert_eq!(entry.partition_columns, ["dt"]);
    assert_eq!(entry.primary_key, ["event_id"]);
    assert_eq!(entry.pii_columns, ["customer_id"]);
    assert_eq!(entry.retention_days, Some(400));
    assert_eq!(entry.description, "Events as received.");
    let columns: Vec<_> = entry.columns().into_iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        columns,
        [("event_id", "string"), ("customer_id", "string"), ("amount", "double"), ("dt", "string")]
            .map(|(n, t)| (n.to_string(), t.to_string()))
    );
    assert_eq!(reopened.describe(&id("raw.events")).await.unwrap(), *entry);

    // Registering the same definition again writes nothing.
    let version = t.lake.table(&cdplake_catalog::catalog_table_id()).await.unwrap().version();
    reopened.ensure_table(&spec, &meta).await.unwrap();
    assert_eq!(t.lake.table(&cdplake_catalog::catalog_table_id()).await.unwrap().version(), version);

    // SQL sees every registered table as zone.table, and the registry itself.
    let session = reopened.sql_session().await.unwrap();
    let rows = collect(session.sql("SELECT count(*) FROM raw.events").await.unwrap()).await;
    assert_eq!(single_i64(&rows), 1);
    let rows = collect(session.sql("SELECT count(*) FROM _catalog.tables WHERE zone = 'raw'").await.unwrap()).await;
    assert_eq!(single_i64(&rows), 1);

    // A schema change updates the entry and keeps created_at.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let updated =
        reopened.add_columns(&id("raw.events"), &[Field::new("channel", DataType::Utf8, true)]).await.unwrap();
    assert!(updated.columns().iter().any(|c| c.0 == "channel"));
    assert_eq!(updated.created_at, entry.created_at);
    assert!(updated.updated_at > entry.updated_at);

    // Drop keeps the files unless purged.
    reopened.drop_table(&id("raw.events"), false).await.unwrap();
    assert!(reopened.list().await.unwrap().is_empty());
    assert!(t.lake.table_exists(&id("raw.events")).await.unwrap(), "files kept");
    assert!(matches!(reopened.describe(&id("raw.events")).await, Err(CatalogError::NotRegistered { .. })));
    // Ensuring it again registers it again (this catalog remembered the entry as current).
    reopened.ensure_table(&spec, &meta).await.unwrap();
    assert_eq!(reopened.describe(&id("raw.events")).await.unwrap().primary_key, ["event_id"]);
    reopened.drop_table(&id("raw.events"), true).await.unwrap();
    assert!(!t.lake.table_exists(&id("raw.events")).await.unwrap(), "files purged");
    assert!(matches!(reopened.drop_table(&id("raw.events"), false).await, Err(CatalogError::NotRegistered { .. })));
}

#[tokio::test]
async fn unknown_key_columns_are_rejected() {
    let t = TestLake::new(Backend::Local).await;
    let catalog = Catalog::open(&t.lake).await.unwrap();
    let spec = TableSpec::new(id("raw.events"), events_schema());
    let err = catalog.create_table(&spec, &TableMeta::default().with_primary_key(["evnt_id"])).await.unwrap_err();
    assert!(err.to_string().contains("evnt_id"), "{err}");
}

#[tokio::test]
async fn invalid_names_are_rejected_with_a_suggestion() {
    let t = TestLake::new(Backend::Local).await;
    let schema = |name: &str| std::sync::Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));

    let err = t.lake.create_table(&TableSpec::new(id("raw.members"), schema("CustomerID"))).await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidName { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("'CustomerID'") && message.contains("customer_id"), "{message}");
    assert!(message.contains("raw.members"), "names the table: {message}");

    let message =
        t.lake.create_table(&TableSpec::new(id("raw.members"), schema("first name"))).await.unwrap_err().to_string();
    assert!(message.contains("first_name"), "{message}");

    let message = "raw.Members".parse::<TableId>().unwrap_err().to_string();
    assert!(message.contains("members"), "{message}");
    assert!("rawmembers".parse::<TableId>().is_err(), "zone.table is required");
    assert!(!t.lake.table_exists(&id("raw.members")).await.unwrap(), "nothing created");
}

fn entry(zone: &str, table: &str, description: &str) -> TableEntry {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    TableEntry {
        name: format!("{zone}.{table}"),
        zone: zone.into(),
        table_name: table.into(),
        location: format!("{zone}/{table}"),
        schema_json: "{}".into(),
        partition_columns: vec![],
        primary_key: vec![],
        pii_columns: vec![],
        retention_days: None,
        description: description.into(),
        created_at: at,
        updated_at: at,
    }
}

#[test]
fn athena_ddl_golden() {
    let entries = [
        entry("_catalog", "tables", ""),
        entry("curated", "customer_profiles", "One row per person."),
        entry("raw", "crm_members", "CRM members\nas received."),
    ];
    let expected = "\
CREATE DATABASE IF NOT EXISTS `cdp`;

CREATE EXTERNAL TABLE IF NOT EXISTS `cdp`.`catalog_tables`
LOCATION 's3://my-bucket/lake/_catalog/tables/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- curated.customer_profiles: One row per person.
CREATE EXTERNAL TABLE IF NOT EXISTS `cdp`.`curated_customer_profiles`
LOCATION 's3://my-bucket/lake/curated/customer_profiles/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- raw.crm_members: CRM members as received.
CREATE EXTERNAL TABLE IF NOT EXISTS `cdp`.`raw_crm_members`
LOCATION 's3://my-bucket/lake/raw/crm_members/'
TBLPROPERTIES ('table_type' = 'DELTA');
";
    assert_eq!(athena_ddl("cdp", "s3://my-bucket/lake/", &entries), expected);
    assert_eq!(athena_ddl("cdp", "s3://my-bucket/lake", &entries), expected, "trailing slash optional");
}
