//! `cdplake sync postgres` against a real PostgreSQL (Debian's, started by
//! infra/postgres/postgres.sh on 127.0.0.1): full load, incremental after a profiles refresh,
//! erased persons deleted (a row deleted, and a real `cdplake erase`), a crash between COPY and commit, and every column's checksum equal to
//! the lake's.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use cdplake_core::Workspace;
use cdplake_engine::TableId;
use cdplake_profiles::{RefreshOptions, refresh};
use cdplake_serving::sync::{SyncOptions, TableSyncReport, sync_postgres};
use tokio_postgres::{Client, NoTls};

use super::{AS_OF, at, lake_with_everything, text_rows};
use crate::support::{Backend, repo_root};
use cdplake_zones::tables::{AUDIENCE_PACKAGES, CUSTOMER_PROFILES};

/// The URL of the test server's `postgres` database, starting the server if needed.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = repo_root().join("infra/postgres/postgres.sh");
        let output = Command::new("bash").arg(&script).arg("env").output().expect("run postgres.sh");
        assert!(
            output.status.success(),
            "{} env failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export CDPLAKE_PG_URL="))
            .expect("CDPLAKE_PG_URL")
            .to_string()
    })
}

/// A fresh database for one test; its URL.
async fn fresh_database() -> String {
    let admin = connect(server_url()).await;
    let name = format!("cdplake_test_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let base = server_url().rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Per column: non-null count and a sum over its values (numbers, text lengths, days, seconds,
/// trues): computed by the lake (DataFusion) and by PostgreSQL, they must agree.
async fn checksums_agree(ws: &Workspace, pg: &Client, table: &TableId, target: &str) -> u64 {
    let lake_table = ws.lake().table(table).await.unwrap();
    let schema = cdplake_engine::lake::table_arrow_schema(&lake_table, table).unwrap();
    let mut lake_sql = vec!["CAST(count(*) AS DOUBLE)".to_string()];
    let mut pg_sql = vec!["count(*)::float8".to_string()];
    use cdplake_engine::arrow::datatypes::DataType::*;
    for f in schema.fields() {
        let c = format!("\"{}\"", f.name());
        lake_sql.push(format!("CAST(count({c}) AS DOUBLE)"));
        pg_sql.push(format!("count({c})::float8"));
        let (lake, pg) = match f.data_type() {
            Int8 | Int16 | Int32 | Int64 | Float32 | Float64 => {
                (format!("CAST(sum({c}) AS DOUBLE)"), format!("sum({c})::float8"))
            }
            Utf8 | LargeUtf8 | Utf8View => {
                (format!("CAST(sum(character_length({c})) AS DOUBLE)"), format!("sum(char_length({c}))::float8"))
            }
            Date32 => {
                (format!("CAST(sum(CAST({c} AS INT)) AS DOUBLE)"), format!("sum({c} - date '1970-01-01')::float8"))
            }
            Timestamp(_, _) => (
                format!("CAST(sum(CAST(CAST({c} AS BIGINT) AS DOUBLE) / 1000000.0) AS DOUBLE)"),
                format!("sum(extract(epoch from {c}))::float8"),
            ),
            Boolean => (
                format!("CAST(sum(CASE WHEN {c} THEN 1 ELSE 0 END) AS DOUBLE)"),
                format!("count(*) filter (where {c})::float8"),
            ),
            _ => continue,
        };
        lake_sql.push(lake);
        pg_sql.push(pg);
    }
    let lake = text_rows(ws, &format!("SELECT {} FROM {table}", lake_sql.join(", "))).await.remove(0);
    let row = pg.query_one(&format!("SELECT {} FROM {target}", pg_sql.join(", ")), &[]).await.unwrap();
    for (i, l) in lake.iter().enumerate() {
        let l: f64 = if l.is_empty() { 0.0 } else { l.parse().unwrap() };
        let p: f64 = row.get::<_, Option<f64>>(i).unwrap_or(0.0);
        assert!(
            (l - p).abs() <= 1e-6 * l.abs().max(1.0),
            "{target}: checksum {i} ({}): lake {l}, PostgreSQL {p}",
            lake_sql[i]
        );
    }
    // And the same keys.
    let key =
        if table.name() == "customer_profiles" { "one_id" } else { "package_id || '/' || as_of || '/' || one_id" };
    let mut lake_keys: Vec<String> =
        text_rows(ws, &format!("SELECT {key} AS k FROM {table}")).await.into_iter().map(|r| r[0].clone()).collect();
    lake_keys.sort();
    let mut pg_keys: Vec<String> =
        pg.query(&format!("SELECT {key} AS k FROM {target}"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    pg_keys.sort();
    assert_eq!(lake_keys, pg_keys, "{target}: keys");
    lake_keys.len() as u64
}

async fn state_version(pg: &Client, target: &str) -> Option<i64> {
    pg.query_opt("SELECT delta_version FROM cdplake_sync_state WHERE target = $1", &[&target])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

fn options(url: &str) -> SyncOptions {
    SyncOptions { url: url.to_string(), ..Default::default() }
}

fn by_table(reports: Vec<TableSyncReport>) -> BTreeMap<String, TableSyncReport> {
    reports.into_iter().map(|r| (r.table.clone(), r)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_is_complete_incremental_and_survives_a_crash() {
    let url = fresh_database().await;
    let (_t, ws) = lake_with_everything(Backend::Local, 150).await;
    let pg = connect(&url).await;
    let profiles = CUSTOMER_PROFILES.id();
    let packages = AUDIENCE_PACKAGES.id();

    // A crash between the COPY and the commit of the first load leaves nothing behind.
    let crashed = sync_postgres(&ws, &SyncOptions { crash_before_commit: true, ..options(&url) }, at(2)).await;
    assert!(crashed.is_err());
    let exists: bool =
        pg.query_one("SELECT to_regclass('curated.customer_profiles') IS NOT NULL", &[]).await.unwrap().get(0);
    assert!(!exists, "the crashed load's table is gone with its transaction");
    assert_eq!(state_version(&pg, "curated.customer_profiles").await, None);

    // Full load: binary COPY, a primary key from the catalog, every column's checksum equal.
    let first = by_table(sync_postgres(&ws, &options(&url), at(2)).await.unwrap());
    let p = &first["curated.customer_profiles"];
    assert_eq!(p.mode, "full", "{p:?}");
    let rows = checksums_agree(&ws, &pg, &profiles, "curated.customer_profiles").await;
    assert_eq!((p.rows_copied, p.rows), (rows, rows));
    checksums_agree(&ws, &pg, &packages, "curated.audience_packages").await;
    let key: Vec<String> = pg
        .query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'curated.audience_packages'::regclass AND i.indisprimary ORDER BY a.attname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(key, ["as_of", "one_id", "package_id"]);
    let types: Vec<(String, String)> = pg
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = 'curated' \
             AND table_name = 'customer_profiles' AND column_name IN ('one_id', 'total_orders', 'total_revenue', \
             'last_purchase_date', 'first_seen_at', 'has_open_support_issue') ORDER BY column_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        types.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["timestamp with time zone", "boolean", "date", "text", "bigint", "double precision"],
        "{types:?}"
    );

    // Nothing new: nothing to do.
    let again = by_table(sync_postgres(&ws, &options(&url), at(2)).await.unwrap());
    assert_eq!(again["curated.customer_profiles"].mode, "unchanged");

    // A profiles refresh after new data, and an erased person: only the changes are applied.
    let customer =
        text_rows(&ws, "SELECT customer_id FROM clean.customers ORDER BY customer_id LIMIT 1").await[0][0].clone();
    let orders = format!(
        "order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n\
         LATE-1,{customer},delivered,777.0,2,web,2024-12-30 10:00:00,2024-12-30 10:00:00\n"
    );
    crate::support::land_ingest_clean(&ws, &[("orders", "late.csv".into(), orders)], at(3)).await;
    cdplake_identity::resolve(&ws, at(3)).await.unwrap();
    refresh(&ws, &RefreshOptions { as_of: AS_OF.parse().unwrap(), full: false, force: false }, at(3)).await.unwrap();
    let erased =
        text_rows(&ws, "SELECT one_id FROM curated.customer_profiles ORDER BY one_id DESC LIMIT 1").await[0][0].clone();
    ws.lake().delete(&profiles, &format!("one_id = '{erased}'")).await.unwrap();
    let second = by_table(sync_postgres(&ws, &options(&url), at(4)).await.unwrap());
    let p = &second["curated.customer_profiles"];
    assert_eq!(p.mode, "incremental", "{p:?}");
    assert!(p.rows_upserted >= 1 && p.rows_upserted < rows / 2, "only changed rows: {p:?}");
    assert_eq!(p.rows_deleted, 1, "{p:?}");
    let now = checksums_agree(&ws, &pg, &profiles, "curated.customer_profiles").await;
    assert_eq!(now, rows - 1);
    let gone = pg.query_opt("SELECT 1 FROM curated.customer_profiles WHERE one_id = $1", &[&erased]).await.unwrap();
    assert!(gone.is_none(), "the erased person is deleted");
    let revenue: Option<f64> = pg
        .query_one("SELECT total_revenue FROM curated.customer_profiles WHERE customer_id = $1", &[&customer])
        .await
        .unwrap()
        .get(0);
    let lake_revenue = text_rows(
        &ws,
        &format!("SELECT total_revenue FROM curated.customer_profiles WHERE customer_id = '{customer}'"),
    )
    .await;
    assert_eq!(revenue.map(|r| format!("{r}")), Some(lake_revenue[0][0].parse::<f64>().unwrap().to_string()));

    // A crash between COPY and commit of an incremental sync: nothing applied, the state keeps
    // its version; the next run applies the same changes once.
    let held = state_version(&pg, "curated.customer_profiles").await;
    let second_erased =
        text_rows(&ws, "SELECT one_id FROM curated.customer_profiles ORDER BY one_id LIMIT 1").await[0][0].clone();
    ws.lake().delete(&profiles, &format!("one_id = '{second_erased}'")).await.unwrap();
    let tables = vec![profiles.clone()];
    let crashed =
        sync_postgres(&ws, &SyncOptions { crash_before_commit: true, tables: tables.clone(), ..options(&url) }, at(5))
            .await;
    assert!(crashed.is_err());
    assert_eq!(state_version(&pg, "curated.customer_profiles").await, held);
    let still: i64 = pg.query_one("SELECT count(*) FROM curated.customer_profiles", &[]).await.unwrap().get(0);
    assert_eq!(still as u64, now, "nothing of the crashed sync is visible");
    let resumed = sync_postgres(&ws, &SyncOptions { tables, ..options(&url) }, at(6)).await.unwrap();
    assert_eq!((resumed[0].mode.as_str(), resumed[0].rows_deleted), ("incremental", 1), "{:?}", resumed[0]);
    assert_eq!(checksums_agree(&ws, &pg, &profiles, "curated.customer_profiles").await, now - 1);
    let version = ws.lake().table(&profiles).await.unwrap().version().unwrap() as i64;
    assert_eq!(state_version(&pg, "curated.customer_profiles").await, Some(version));

    // A real erasure (`cdplake erase`) of a person in an audience package: it vacuums the history
    // the sync state points at, yet the next sync removes the person from every target table.
    let person = text_rows(
        &ws,
        "SELECT DISTINCT p.customer_id, p.one_id FROM curated.customer_profiles p \
         JOIN curated.audience_packages a ON a.one_id = p.one_id WHERE p.customer_id IS NOT NULL ORDER BY 2 LIMIT 1",
    )
    .await[0]
        .clone();
    let (customer_id, one_id) = (&person[0], &person[1]);
    let erased = cdplake_operations::erase::erase(&ws, "customer_id", customer_id, Some("test"), at(7)).await.unwrap();
    assert!(erased.matches_after.is_empty(), "{erased:?}");
    let after_erasure = by_table(sync_postgres(&ws, &options(&url), at(8)).await.unwrap());
    for (table, target) in [(&profiles, "curated.customer_profiles"), (&packages, "curated.audience_packages")] {
        let report = &after_erasure[target];
        assert_ne!(report.mode, "unchanged", "{report:?}");
        let left: i64 =
            pg.query_one(&format!("SELECT count(*) FROM {target} WHERE one_id = $1"), &[one_id]).await.unwrap().get(0);
        assert_eq!(left, 0, "the erased person is gone from {target}: {report:?}");
        checksums_agree(&ws, &pg, table, target).await;
    }
}
