//! The seeds' own SQL, run by DuckDB over the same clean rows, gives cdplake's profiles, column
//! by column and row by row (issue 15).
//!
//! The data is generated here, one person per customer_id with no shared identifier (identity
//! plays no part), in two populations: `A…` customers have seed 000's sources (customers,
//! transactions, web_events) and seed 002's support tickets, `B…` customers seed 002's sources
//! (customers, orders, behavioral_events, support_tickets). It holds the cases that broke us:
//! customers without purchases, web events of every type, transactions and orders of every
//! status, tickets open / escalated / resolved and one without a time, country names as
//! written ('United States'), completed transactions with a negative amount (quarantined), sums
//! whose average is not round, and every segment threshold and 30-day window edge.
//!
//! DuckDB reads the clean Delta tables with the Python `deltalake` reader. [`BINDINGS`] say
//! which clean rows feed which seed table (the per-source rules README's "Profiles" states); the
//! seed SQL is cut out of the seed documents and changed only by [`DIALECT`], each change listed
//! and checked to apply. [`COLLISIONS`] lists the columns two seeds define differently under one
//! name; nothing else may differ.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cdplake_core::Workspace;
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, Duration, NaiveDate};
use serde_json::{Value, json};

use super::{as_of, at, profiles, sql, workspace};
use crate::support::{Backend, TestLake, on_every_backend, repo_root, s3_env, single_i64};

const AS_OF: &str = "2024-12-31";

// ---------------------------------------------------------------------------------------------
// The generated data.

/// A small deterministic generator (a 64-bit LCG).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    /// An amount with cents, 10.00–259.99.
    fn amount(&mut self) -> f64 {
        (1000 + self.below(25000)) as f64 / 100.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The files to land, and what the generator knows that our code must not decide.
struct Generated {
    files: Vec<(&'static str, String, String)>,
    /// Each customer's country as landed (the latest version's).
    country: BTreeMap<String, String>,
    /// The completed transactions with a negative amount: bad input for the quarantine.
    negative: Vec<String>,
}

fn day(days_before: i64) -> NaiveDate {
    as_of(AS_OF) - Duration::days(days_before)
}

/// `YYYY-MM-DD HH:MM:SS`, `days_before` the as-of date at `seconds` into the day.
fn time(days_before: i64, seconds: i64) -> String {
    (day(days_before).and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(seconds))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

const COUNTRIES: &[&str] = &["United States", "United Kingdom", "Germany", "US", "France", "Netherlands", "USA"];
const WEB_TYPES: &[&str] = &["page_view", "product_view", "add_to_cart", "search", "login", "checkout"];
const TICKETS: &[&str] = &["open", "escalated", "resolved"];

/// `n` distinct days before the as-of date, up to `within` days back.
fn distinct_days(rng: &mut Rng, n: usize, within: u64) -> Vec<i64> {
    let mut days: Vec<i64> = Vec::new();
    while days.len() < n {
        let d = rng.below(within) as i64;
        if !days.contains(&d) {
            days.push(d);
        }
    }
    days
}

fn generate() -> Generated {
    let mut rng = Rng(15);
    let mut customers = String::from(
        "customer_id,email,phone,first_name,last_name,country,acquisition_channel,loyalty_tier,signup_date,updated_at\n",
    );
    let mut updates = customers.clone();
    let mut transactions = String::from("transaction_id,customer_id,product_id,amount,transaction_date,status\n");
    let mut web = String::from("event_id,customer_id,event_type,page_url,event_time\n");
    let mut orders =
        String::from("order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n");
    let mut behavior = String::new();
    let mut tickets = String::from("ticket_id,customer_id,status,category,created_at,resolved_at\n");
    let mut country = BTreeMap::new();
    let mut negative = Vec::new();
    let (mut tx, mut ev, mut ticket) = (0, 0, 0);
    for (population, count) in [("A", 120), ("B", 60)] {
        for i in 0..count {
            let id = format!("{population}{i:03}");
            let landed = COUNTRIES[i % COUNTRIES.len()];
            customers.push_str(&format!(
                "{id},{}.{}.{id}@fastmail.com,,{},{},{landed},{},{},{},{} 08:00:00\n",
                ["anna", "ben", "chloe", "dev"][i % 4],
                ["smith", "jones", "garcia"][i % 3],
                ["Anna", "Ben", "Chloe", "Dev"][i % 4],
                ["Smith", "Jones", "Garcia"][i % 3],
                rng.pick(&["web", "mobile", "referral"]),
                rng.pick(&["standard", "silver", "gold", "platinum"]),
                day((i % 40) as i64),
                day(300),
            ));
            country.insert(id.clone(), landed.to_string());
            if i % 17 == 3 {
                // A later version moves the customer: the latest wins.
                let moved = COUNTRIES[(i + 2) % COUNTRIES.len()];
                updates.push_str(&format!(
                    "{id},{}.moved.{id}@fastmail.com,,Newname,{},{moved},web,gold,{},{} 08:00:00\n",
                    ["anna", "ben"][i % 2],
                    ["Smith", "Jones", "Garcia"][i % 3],
                    day((i % 40) as i64),
                    day(10),
                ));
                country.insert(id.clone(), moved.to_string());
            }
            if population == "A" {
                transactions_of(&mut rng, &id, i, &mut tx, &mut transactions, &mut negative);
                web_events_of(&mut rng, &id, i, &mut ev, &mut web);
            } else {
                orders_of(&mut rng, &id, i, &mut tx, &mut orders);
                behavior_of(&mut rng, &id, i, &mut ev, &mut behavior);
            }
            if i % 4 == 0 || i % 7 == 1 {
                for k in 0..=(i % 3) {
                    ticket += 1;
                    let created =
                        if i % 20 == 0 && k == 0 { String::new() } else { time(rng.below(90) as i64, 3600 + ticket) };
                    let status = TICKETS[(i + k) % 3];
                    let resolved = if status == "resolved" { time(0, 60) } else { String::new() };
                    tickets.push_str(&format!("TK{ticket:05},{id},{status},billing,{created},{resolved}\n"));
                }
            }
        }
    }
    let files = vec![
        ("customers", "customers.csv".to_string(), customers),
        ("customers", "customers_changes.csv".to_string(), updates),
        ("transactions", "transactions.csv".to_string(), transactions),
        ("web_events", "web_events.csv".to_string(), web),
        ("orders", "orders.csv".to_string(), orders),
        ("behavioral_events", "behavioral_events.json".to_string(), behavior),
        ("support_tickets", "support_tickets.csv".to_string(), tickets),
    ];
    Generated { files, country, negative }
}

/// Seed 000's transactions of customer number `i`: every status, and the recency, frequency and
/// monetary edges by `i % 12`; one transaction per day per customer (seed 002's last order
/// status has no tie-break).
fn transactions_of(rng: &mut Rng, id: &str, i: usize, n: &mut i64, out: &mut String, negative: &mut Vec<String>) {
    let mut add = |days_before: i64, amount: f64, status: &str, out: &mut String| {
        *n += 1;
        out.push_str(&format!("T{n:06},{id},P{},{amount:.2},{},{status}\n", *n % 37, day(days_before)));
        format!("T{n:06}")
    };
    let completed = |rng: &mut Rng| if rng.below(5) == 0 { "Completed" } else { "completed" };
    match i % 12 {
        0 => {}
        1 => {
            // No purchase, and orders older than a year: churned, not a prospect.
            add(370, rng.amount(), "refunded", out);
            add(400, rng.amount(), "failed", out);
        }
        k @ 2..=7 => {
            let last = [30, 31, 90, 91, 180, 181][k - 2];
            for d in [last, last + 7, last + 60] {
                add(d, rng.amount(), completed(rng), out);
            }
        }
        8 => (0..10).for_each(|d| _ = add(d * 11 + 1, 100.0, "completed", out)),
        9 => (0..2).for_each(|d| _ = add(d * 20 + 3, 100.0, "completed", out)),
        _ => {
            let count = 1 + rng.below(8) as usize;
            for d in distinct_days(rng, count, 400) {
                let status =
                    ["completed", "completed", "completed", "refunded", "pending", "failed"][rng.below(6) as usize];
                add(d, rng.amount(), status, out);
            }
        }
    }
    if i % 24 == 13 {
        // Recorded on a day of its own (after the others' days): a sign error in the export.
        let id = add(450 + i as i64, -15.5, "completed", out);
        negative.push(id);
    }
}

/// Seed 000's web events of customer number `i`: every type, the engagement edges (4/5, 19/20)
/// and events exactly at and just after the start of the 30-day window.
fn web_events_of(rng: &mut Rng, id: &str, i: usize, n: &mut i64, out: &mut String) {
    let count = [0, 4, 5, 19, 20, 21, 1 + rng.below(30) as usize][i % 7];
    let mut add = |t: String, kind: &str| {
        *n += 1;
        out.push_str(&format!("W{n:07},{id},{kind},/p/{},{t}\n", *n % 50));
    };
    for k in 0..count {
        add(time(rng.below(70) as i64, rng.below(86_400) as i64), WEB_TYPES[k % WEB_TYPES.len()]);
    }
    if i % 9 == 0 {
        add(time(29, 0), "product_view");
        add(time(29, 1), "product_view");
    }
}

/// Seed 002's orders of customer number `i`: every status, one without an amount, a dominant
/// channel (MODE() has no tie-break), distinct times, the lifecycle edges.
fn orders_of(rng: &mut Rng, id: &str, i: usize, n: &mut i64, out: &mut String) {
    if i % 6 == 0 {
        return;
    }
    let count = 1 + rng.below(8) as usize;
    let channels = ["web", "mobile", "marketplace"];
    let (dominant, other) = (channels[i % 3], channels[(i + 1) % 3]);
    // The lifecycle edges (the last order exactly at, and just after, NOW() - 30 and - 90 days)
    // with the other orders older.
    let older = if (1..=3).contains(&(i % 6)) { 100 } else { 0 };
    let mut times: Vec<String> =
        distinct_days(rng, count, 300).into_iter().map(|d| time(d + older, 3600 + rng.below(80_000) as i64)).collect();
    match i % 6 {
        1 => times[0] = time(29, 0),
        2 => times[0] = time(29, 1),
        3 => times[0] = time(89, 0),
        _ => {}
    }
    for (j, created) in times.iter().enumerate() {
        *n += 1;
        let status = ["placed", "shipped", "delivered", "cancelled"][(i + j) % 4];
        let amount = if i % 10 == 1 && j == 0 { String::new() } else { format!("{:.2}", rng.amount()) };
        let channel = if j % 3 == 2 { other } else { dominant };
        out.push_str(&format!("O{n:06},{id},{status},{amount},{},{channel},{created},{created}\n", 1 + j % 4));
    }
}

/// Seed 002's behavioural events (JSON lines): every type, sessions (some missing), the window edge.
fn behavior_of(rng: &mut Rng, id: &str, i: usize, n: &mut i64, out: &mut String) {
    let count = [0, 4, 5, 19, 20, 21, 1 + rng.below(30) as usize][i % 7];
    let mut add = |t: String, kind: &str, session: Option<String>| {
        *n += 1;
        let session = session.map_or("null".to_string(), |s| format!("\"{s}\""));
        out.push_str(&format!(
            r#"{{"event_id":"BE{n:07}","customer_id":"{id}","session_id":{session},"event_type":"{kind}","product_id":"SKU{}","category_id":"C{}","event_time":"{t}"}}"#,
            *n % 40,
            *n % 5
        ));
        out.push('\n');
    };
    for k in 0..count {
        let session = (k % 5 != 4).then(|| format!("S{id}-{}", k % 3));
        add(time(rng.below(70) as i64, rng.below(86_400) as i64), WEB_TYPES[k % WEB_TYPES.len()], session);
    }
    if i % 9 == 0 {
        add(time(29, 0), "product_view", Some(format!("S{id}-edge")));
        add(time(29, 1), "product_view", Some(format!("S{id}-edge")));
    }
}

// ---------------------------------------------------------------------------------------------
// The seeds' SQL, as DuckDB runs it.

/// Which clean rows feed which seed table, and why (README "Profiles": the rule of each source).
const BINDINGS: &[(&str, &str)] = &[
    (
        "seed 000's customers; email is the SHA-256 the clean zone keeps instead of the address (PII policy)",
        "CREATE VIEW cdp.ods_customers AS SELECT customer_id, email_hash AS email, first_name, last_name, country, \
         signup_date, updated_at FROM clean_customers",
    ),
    (
        "seed 000's transactions; seed 002's orders count whatever their status, so each is a completed transaction",
        "CREATE VIEW cdp.ods_transactions AS SELECT transaction_id, customer_id, product_id, amount, transaction_date, \
         status FROM clean_transactions UNION ALL SELECT order_id, customer_id, NULL, total_amount, \
         CAST(created_at AS DATE), 'completed' FROM clean_orders",
    ),
    (
        "seed 000 counts every web event; seed 002's behavioural events are web events too",
        "CREATE VIEW cdp.ods_web_events AS SELECT event_id, customer_id, event_type, page_url, event_time \
         FROM clean_web_events UNION ALL SELECT event_id, customer_id, event_type, NULL, event_time \
         FROM clean_behavioral_events",
    ),
    (
        "seed 001's purchase events: seed 000's completed transactions and every seed 002 order; one_id is the \
         customer_id (one person per customer)",
        "CREATE TABLE best_practice_marketing_cdp.dwd_user_events AS SELECT transaction_id AS event_id, \
         customer_id AS one_id, 'purchase' AS event_type, amount AS revenue, \
         CAST(transaction_date AS TIMESTAMPTZ) AS event_time, transaction_date AS event_date \
         FROM clean_transactions WHERE status = 'completed' UNION ALL SELECT order_id, customer_id, 'purchase', \
         total_amount, created_at, CAST(created_at AS DATE) FROM clean_orders",
    ),
    (
        "seed 002's customers (email and phone as the clean zone's hashes)",
        "CREATE VIEW customers AS SELECT customer_id, email_hash AS email, first_name, last_name, phone_hash AS phone, \
         acquisition_channel, signup_date, loyalty_tier, updated_at AS last_updated FROM clean_customers",
    ),
    (
        "seed 002's orders; seed 000's transactions are orders whatever their status (the lifecycle the issue's \
         user computed), at midnight of their date, with no channel",
        "CREATE VIEW orders AS SELECT order_id, customer_id, order_status, total_amount, item_count, channel, \
         created_at, updated_at FROM clean_orders UNION ALL SELECT transaction_id, customer_id, status, amount, NULL, \
         NULL, CAST(transaction_date AS TIMESTAMPTZ), NULL FROM clean_transactions",
    ),
    (
        "seed 002's tickets",
        "CREATE VIEW support_tickets AS SELECT ticket_id, customer_id, status, category, created_at, resolved_at \
         FROM clean_support_tickets",
    ),
    (
        "seed 002's behavioural events; seed 000's web events are behaviour too (no session, no product)",
        "CREATE VIEW behavioral_events AS SELECT event_id, customer_id, session_id, event_type, product_id, \
         category_id, event_time FROM clean_behavioral_events UNION ALL SELECT event_id, customer_id, NULL, \
         event_type, NULL, NULL, event_time FROM clean_web_events",
    ),
];

/// The dialect changes made to the seed SQL, and why; each must apply (`{as_of}` and `{now}`
/// are the as-of date and the end of it).
const DIALECT: &[(&str, &str, &str)] = &[
    (
        "MaxCompute's INSERT OVERWRITE of a partition: DuckDB creates the table, with the partition column",
        "INSERT OVERWRITE TABLE cdp.dws_customer_profiles PARTITION (dt='${bizdate}')\nSELECT\n",
        "CREATE TABLE cdp.dws_customer_profiles AS SELECT '${bizdate}' AS dt,\n",
    ),
    (
        "the bound ods table holds the day's rows (no partitions in DuckDB)",
        "FROM cdp.ods_customers PARTITION (dt='${bizdate}') c",
        "FROM cdp.ods_customers c",
    ),
    ("the scheduler's business date", "${bizdate}", "{as_of}"),
    (
        "MaxCompute's / ClickZetta's DATEDIFF(end, start) in days; DuckDB's datediff takes a unit first",
        "DATEDIFF(",
        "mc_datediff(",
    ),
    ("ClickZetta's dynamic table: a table", "CREATE DYNAMIC TABLE IF NOT EXISTS", "CREATE TABLE"),
    ("the profiles' business date", "CURRENT_DATE()", "DATE '{as_of}'"),
    ("RisingWave's materialized view: a view", "CREATE MATERIALIZED VIEW", "CREATE VIEW"),
    (
        "seed 002's stamp NOW() AS profile_updated_at: the wall clock there, the end of the as-of date here",
        "NOW() AS profile_updated_at",
        "TIMESTAMPTZ '{end}+00' AS profile_updated_at",
    ),
    (
        "seed 002's NOW(): a time of the as-of day, its last microsecond (docs/DESIGN.md, \"Dates\")",
        "NOW()",
        "TIMESTAMPTZ '{now}+00'",
    ),
    (
        "PostgreSQL / RisingWave sort NULLs first in DESC; DuckDB sorts them last",
        "ORDER BY created_at DESC))[1]",
        "ORDER BY created_at DESC NULLS FIRST))[1]",
    ),
];

/// Columns two seeds define differently under one name: compared with the seed the profile
/// follows (README "Profiles"), not with the other.
const COLLISIONS: &[(&str, &str)] = &[
    (
        "total_orders",
        "seed 000 (dws_customer_profiles) counts completed transactions and leaves NULL without any; seed 002 \
         (customer_360) counts every order whatever its status and COALESCEs to 0. The profile follows seed 000 \
         per source rule (a transaction when completed, an order always): compared with seed 000 above",
    ),
    (
        "avg_order_value",
        "seed 000's AVG(amount) of completed transactions (NULL without any) against seed 002's COALESCE(AVG \
         (total_amount), 0) of every order: compared with seed 000 above",
    ),
];

/// The text of a seed document from `start` to the end of `end`.
fn seed_sql(seed: &str, start: &str, end: &str) -> String {
    let dir = repo_root().join("../shared/seeds");
    let path: PathBuf = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(seed))
        .unwrap_or_else(|| panic!("no seed {seed} in {}", dir.display()));
    let text = std::fs::read_to_string(&path).unwrap();
    let from = text.find(start).unwrap_or_else(|| panic!("{start:?} not in {}", path.display()));
    let to = text[from..].find(end).unwrap_or_else(|| panic!("{end:?} not in {}", path.display())) + from + end.len();
    text[from..to].to_string()
}

/// The seed statement with the dialect changes; every change listed for it must apply.
fn dialect(sql: &str, changes: &[&str], as_of: NaiveDate) -> String {
    let now = as_of.format("%Y-%m-%d 23:59:59.999999").to_string();
    let end = (as_of + Duration::days(1)).format("%Y-%m-%d 00:00:00").to_string();
    let mut sql = sql.trim_end().trim_end_matches(';').to_string();
    for (reason, from, to) in DIALECT {
        if !changes.contains(from) {
            continue;
        }
        assert!(sql.contains(from), "dialect change ({reason}) {from:?} does not apply to:\n{sql}");
        sql =
            sql.replace(from, &to.replace("{as_of}", &as_of.to_string()).replace("{now}", &now).replace("{end}", &end));
    }
    sql.replace("${bizdate}", &as_of.to_string())
}

/// The seed statements: setup (the tables the queries read) and the named queries.
struct SeedSql {
    setup: Vec<String>,
    queries: BTreeMap<&'static str, String>,
}

fn seed_statements(as_of: NaiveDate) -> SeedSql {
    let profile =
        seed_sql("000_", "INSERT OVERWRITE TABLE cdp.dws_customer_profiles", "ON c.customer_id = e.customer_id;");
    let segments = [
        (
            "win_back",
            "SELECT customer_id, email, first_name, last_purchase_date",
            "ORDER BY days_since_last_purchase ASC;",
            &[][..],
        ),
        (
            "first_purchase",
            "SELECT customer_id, email, first_name, total_page_views",
            "ORDER BY total_page_views DESC;",
            &["DATEDIFF("][..],
        ),
        (
            "loyalty_upgrade",
            "SELECT customer_id, email, first_name, total_orders, total_revenue",
            "ORDER BY total_revenue DESC;",
            &[][..],
        ),
    ];
    let rfm = seed_sql(
        "001_",
        "CREATE DYNAMIC TABLE IF NOT EXISTS best_practice_marketing_cdp.dws_user_rfm",
        "GROUP BY one_id;",
    );
    let segment = seed_sql(
        "001_",
        "CREATE DYNAMIC TABLE IF NOT EXISTS best_practice_marketing_cdp.dws_user_segment",
        "FROM best_practice_marketing_cdp.dws_user_rfm r;",
    );
    let summary = seed_sql("001_", "SELECT\nrfm_segment,\nCOUNT(*) AS user_count", "ORDER BY avg_monetary DESC;");
    let c360 =
        seed_sql("002_", "CREATE MATERIALIZED VIEW customer_360 AS", ") beh ON c.customer_id = beh.customer_id;");
    let mut setup = vec![
        "SET TimeZone = 'UTC'".to_string(),
        "CREATE SCHEMA cdp".to_string(),
        "CREATE SCHEMA best_practice_marketing_cdp".to_string(),
        "CREATE MACRO mc_datediff(finish, start) AS date_diff('day', CAST(start AS DATE), CAST(finish AS DATE))"
            .to_string(),
    ];
    setup.extend(BINDINGS.iter().map(|(_, sql)| sql.to_string()));
    let p = "INSERT OVERWRITE TABLE cdp.dws_customer_profiles PARTITION (dt='${bizdate}')\nSELECT\n";
    setup.push(dialect(&profile, &[p, "FROM cdp.ods_customers PARTITION (dt='${bizdate}') c", "DATEDIFF("], as_of));
    setup.push(dialect(&rfm, &["CREATE DYNAMIC TABLE IF NOT EXISTS", "DATEDIFF(", "CURRENT_DATE()"], as_of));
    setup.push(dialect(&segment, &["CREATE DYNAMIC TABLE IF NOT EXISTS"], as_of));
    setup.push(dialect(
        &c360,
        &["CREATE MATERIALIZED VIEW", "NOW() AS profile_updated_at", "NOW()", "ORDER BY created_at DESC))[1]"],
        as_of,
    ));
    let mut queries = BTreeMap::new();
    queries.insert("dws_customer_profiles", "SELECT * EXCLUDE (dt) FROM cdp.dws_customer_profiles".to_string());
    for (name, start, end, changes) in segments {
        queries.insert(name, dialect(&seed_sql("000_", start, end), changes, as_of));
    }
    queries.insert(
        "dws_user_segment",
        "SELECT r.*, s.rfm_segment FROM best_practice_marketing_cdp.dws_user_rfm r \
         JOIN best_practice_marketing_cdp.dws_user_segment s ON s.one_id = r.one_id"
            .to_string(),
    );
    queries.insert("rfm_summary", dialect(&summary, &[], as_of));
    queries.insert("customer_360", "SELECT * FROM customer_360".to_string());
    SeedSql { setup, queries }
}

/// Each query's columns and rows (dates as `YYYY-MM-DD`, times as `YYYY-MM-DD HH:MM:SS[.ffffff]` UTC).
const DUCKDB: &str = r#"
import datetime, decimal, json, os, sys
import duckdb
from deltalake import DeltaTable
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
for name, uri in spec["tables"].items():
    con.register("clean_" + name, DeltaTable(uri, storage_options=spec["options"]).to_pyarrow_table())
for statement in spec["setup"]:
    con.execute(statement)
def plain(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%d %H:%M:%S") + (".%06d" % v.microsecond if v.microsecond else "")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v
out = {}
for name, query in spec["queries"].items():
    # Times with a zone as UTC wall-clock times (fetching a zone needs pytz).
    relation = con.sql(query)
    select = ", ".join(
        f'CAST("{c}" AS TIMESTAMP) AS "{c}"' if str(t) == "TIMESTAMP WITH TIME ZONE" else f'"{c}"'
        for c, t in zip(relation.columns, relation.types)
    )
    rows = con.sql(f"SELECT {select} FROM ({query})").fetchall()
    out[name] = {"columns": relation.columns, "rows": [[plain(v) for v in r] for r in rows]}
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"#;

/// A query's result: column names and rows of plain values.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn keyed(&self, key: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
        let k = self.columns.iter().position(|c| c == key).unwrap_or_else(|| panic!("no {key} in {:?}", self.columns));
        self.rows
            .iter()
            .map(|r| {
                (r[k].as_str().unwrap().to_string(), self.columns.iter().cloned().zip(r.iter().cloned()).collect())
            })
            .collect()
    }
}

fn run_duckdb(ws: &Workspace, backend: Backend, seeds: &SeedSql) -> BTreeMap<String, Rows> {
    let sources = ["customers", "transactions", "web_events", "orders", "behavioral_events", "support_tickets"];
    let tables: BTreeMap<&str, String> = sources
        .iter()
        .map(|s| (*s, ws.lake().location().table_url(&format!("clean.{s}").parse().unwrap()).to_string()))
        .collect();
    let options: BTreeMap<String, String> = match backend {
        Backend::Local => BTreeMap::new(),
        Backend::S3 => {
            s3_env().iter().filter(|(k, _)| k.starts_with("AWS_")).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    };
    let spec = json!({"tables": tables, "options": options, "setup": seeds.setup, "queries": seeds.queries});
    let python = std::env::var("CDPLAKE_TEST_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".cache/py/bin/python").display().to_string());
    let mut child = Command::new(&python)
        .args(["-c", DUCKDB])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (tests/run.sh makes it): {e}"));
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "duckdb:\n{}", String::from_utf8_lossy(&output.stderr));
    let result: BTreeMap<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    result
        .into_iter()
        .map(|(name, v)| {
            let columns = v["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
            let rows = v["rows"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect();
            (name, Rows { columns, rows })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// cdplake's side and the comparison.

/// One cell as the Python side writes it.
fn plain(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Date32 => json!(array.as_primitive::<Date32Type>().value_as_date(row).unwrap().to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = DateTime::from_timestamp_micros(micros).unwrap().naive_utc();
            let fraction =
                if micros % 1_000_000 != 0 { format!(".{:06}", micros.rem_euclid(1_000_000)) } else { String::new() };
            json!(format!("{}{fraction}", t.format("%Y-%m-%d %H:%M:%S")))
        }
        _ => json!(cast(array, &DataType::Utf8).unwrap().as_string::<i32>().value(row)),
    }
}

fn rows_of(batches: &[RecordBatch]) -> Rows {
    let columns =
        batches.first().map_or(Vec::new(), |b| b.schema().fields().iter().map(|f| f.name().clone()).collect());
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(b.columns().iter().map(|c| plain(c.as_ref(), r)).collect());
        }
    }
    Rows { columns, rows }
}

/// Equal values; numbers within 1e-9 relative (DuckDB sums doubles in its order, cdplake sums cents).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// Every listed column of every reference row against ours, by key; one line per differing
/// column with its count and first examples.
fn differences(
    what: &str,
    theirs: &BTreeMap<String, BTreeMap<String, Value>>,
    ours: &BTreeMap<String, BTreeMap<String, Value>>,
    columns: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for column in columns {
        let differ: Vec<String> = theirs
            .iter()
            .filter_map(|(key, row)| {
                let mine = ours.get(key).and_then(|r| r.get(column)).unwrap_or(&Value::Null);
                (!same(&row[column], mine)).then(|| format!("{key}: seed {} / cdplake {mine}", row[column]))
            })
            .collect();
        if !differ.is_empty() {
            out.push(format!(
                "{what}.{column}: {} rows differ, e.g. {}",
                differ.len(),
                differ[..differ.len().min(3)].join("; ")
            ));
        }
    }
    out
}

/// The rows of a query as sorted lines, for result sets compared whole.
fn sorted_lines(rows: &Rows) -> Vec<String> {
    let mut lines: Vec<String> = rows
        .rows
        .iter()
        .map(|r| {
            r.iter().map(|v| v.as_f64().map_or(v.to_string(), |f| format!("{f:.6}"))).collect::<Vec<_>>().join("|")
        })
        .collect();
    lines.sort();
    lines
}

async fn the_seeds_sql_run_by_duckdb_gives_cdplakes_profiles(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let data = generate();
    let files: Vec<_> = data.files.iter().map(|(s, n, c)| (*s, n.clone(), c.clone())).collect();
    crate::support::land_ingest_clean(&ws, &files, at(1)).await;
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    let report = profiles(&ws, AS_OF, false).await.unwrap();
    assert!(report.published, "{report:?}");

    // A completed transaction with a negative amount is quarantined with the reason and counts nowhere.
    let negative = cdplake_engine::sql::in_list(data.negative.iter().map(String::as_str));
    let quarantined = sql(
        &ws,
        &format!(
            "SELECT count(*) FROM clean._quarantine WHERE source = 'transactions' AND rule = 'negative_completed' \
             AND reason LIKE '%seed 000 records a refund as its own status%' \
             AND json_extract_scalar(raw_values, '$.transaction_id') IN {negative}"
        ),
    )
    .await;
    assert_eq!(single_i64(&quarantined) as usize, data.negative.len());
    assert!(data.negative.len() >= 2, "the data has negative completed transactions");
    let kept = sql(&ws, &format!("SELECT count(*) FROM clean.transactions WHERE transaction_id IN {negative}")).await;
    assert_eq!(single_i64(&kept), 0);

    let seeds = seed_statements(as_of(AS_OF));
    let reference = run_duckdb(&ws, backend, &seeds);
    let ours = rows_of(&sql(&ws, "SELECT * FROM curated.customer_profiles").await).keyed("customer_id");
    let mut failures = Vec::new();

    // Seed 000's profile: every column, every customer.
    let dws = &reference["dws_customer_profiles"];
    assert_eq!(dws.rows.len(), 180, "every generated customer has a seed profile row");
    assert_eq!(ours.len(), dws.rows.len(), "one cdplake profile per customer");
    failures.extend(differences("dws_customer_profiles", &dws.keyed("customer_id"), &ours, &dws.columns));

    // Seed 000's segment queries, run on cdplake's daily snapshot with the table name changed.
    for name in ["win_back", "first_purchase", "loyalty_upgrade"] {
        let query = seed_statements(as_of(AS_OF)).queries[name].clone();
        let query = query
            .replace("mc_datediff(", "DATEDIFF(")
            .replace("cdp.dws_customer_profiles", "curated.customer_profiles_daily");
        let (theirs, mine) = (sorted_lines(&reference[name]), sorted_lines(&rows_of(&sql(&ws, &query).await)));
        if theirs != mine {
            failures.push(format!("segment query {name}: seed {theirs:?} / cdplake {mine:?}"));
        }
    }

    // Seed 001's RFM for every buyer; a person without purchases has no RFM row, so NULLs.
    let rfm = reference["dws_user_segment"].keyed("one_id");
    let rfm_columns: Vec<String> =
        ["recency_days", "frequency", "monetary", "last_purchase_date", "first_purchase_date", "rfm_segment"]
            .map(String::from)
            .to_vec();
    failures.extend(differences("dws_user_segment", &rfm, &ours, &rfm_columns));
    let without: Vec<&String> = ours
        .iter()
        .filter(|(k, r)| {
            !rfm.contains_key(*k)
                && ["rfm_segment", "frequency", "monetary", "recency_days"].iter().any(|c| r[*c] != Value::Null)
        })
        .map(|(k, _)| k)
        .collect();
    if !without.is_empty() {
        failures.push(format!("persons without a seed 001 RFM row have RFM values: {without:?}"));
    }
    assert!(rfm.len() > 60 && rfm.len() < ours.len(), "buyers and non-buyers: {}", rfm.len());
    // Seed 001's summary; its dws_user_segment is the profiles of the persons with an rfm_segment.
    let summary = seed_statements(as_of(AS_OF)).queries["rfm_summary"].replace(
        "best_practice_marketing_cdp.dws_user_segment",
        "(SELECT * FROM curated.customer_profiles WHERE rfm_segment IS NOT NULL) dws_user_segment",
    );
    let (theirs, mine) = (sorted_lines(&reference["rfm_summary"]), sorted_lines(&rows_of(&sql(&ws, &summary).await)));
    if theirs != mine {
        failures.push(format!("rfm summary: seed {theirs:?} / cdplake {mine:?}"));
    }

    // Seed 002's customer 360: every column but the two seed 000 defines under the same name.
    let c360 = &reference["customer_360"];
    let columns: Vec<String> =
        c360.columns.iter().filter(|c| !COLLISIONS.iter().any(|(name, _)| name == c)).cloned().collect();
    failures.extend(differences("customer_360", &c360.keyed("customer_id"), &ours, &columns));

    assert!(failures.is_empty(), "cdplake differs from the seeds' SQL:\n{}", failures.join("\n"));

    // The data covers what broke us: every segment value and lifecycle stage occurs.
    for (column, values) in [
        ("recency_segment", &["Active", "At Risk", "Lapsed", "Churned"][..]),
        ("frequency_segment", &["High", "Medium", "Low"]),
        ("monetary_segment", &["High Value", "Mid Value", "Low Value"]),
        ("engagement_segment", &["Highly Engaged", "Moderately Engaged", "Low Engagement"]),
        ("lifecycle_stage", &["active", "at_risk", "lapsing", "churned", "prospect"]),
    ] {
        for value in values {
            assert!(ours.values().any(|r| r[column] == json!(value)), "no profile has {column} = {value}");
        }
    }
    assert!(ours.values().any(|r| r["total_orders"] == Value::Null && r["lifecycle_stage"] != json!("prospect")));
    assert!(
        ours.values().any(|r| r["has_open_support_issue"] == json!(false) && r["total_support_tickets"] != json!(0))
    );

    // Country as the source wrote it (seed 000 keeps 'United States'), and its ISO code beside it.
    for (customer, landed) in &data.country {
        let row = &ours[customer];
        let code = cdplake_zones::normalize::country(landed).unwrap();
        assert_eq!(row["country_code"], json!(code), "{customer}");
        assert_eq!(row["country"], json!(landed), "{customer}");
    }
}

on_every_backend!(the_seeds_sql_run_by_duckdb_gives_cdplakes_profiles);
