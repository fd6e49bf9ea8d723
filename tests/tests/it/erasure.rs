//! `cdplake erase` (local and S3): a person present in every source is found, erased from every
//! zone, and a scan of every object under the lake root finds none of their identifiers in any
//! form (the generator's truth, the plaintext the files carried, their one_id); every row that
//! went was theirs, every other row is unchanged; and replaying the original files does not
//! bring them back.

use std::collections::{BTreeMap, HashMap};

use cdplake_core::{Config, Workspace};
use chrono::{NaiveDate, TimeZone, Utc};

use crate::support::{Backend, TestLake, lake_rows, on_every_backend, s3_options, single_i64};

async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()
}

/// The whole pipeline, through segments and an audience, on what is in landing/.
async fn pipeline(ws: &Workspace, now: chrono::DateTime<Utc>) {
    for source in ws.config.all_sources() {
        cdplake_ingest::ingest::ingest(ws, &source, &[], now).await.unwrap();
        cdplake_ingest::clean::clean(ws, &source, now).await.unwrap();
    }
    cdplake_identity::resolve(ws, now).await.unwrap();
    let options = cdplake_profiles::RefreshOptions { as_of: as_of(), full: false, force: true };
    cdplake_profiles::refresh(ws, &options, now).await.unwrap();
    cdplake_profiles::segments::build_segments(ws, Some(as_of()), now).await.unwrap();
    cdplake_profiles::audience::build_audience(ws, "everyone", "all_persons", Some(as_of()), now).await.unwrap();
}

/// The person to erase: the first whose identifiers span the CRM, the app, the shop and Online
/// Retail (so they are in every source) and all belong to one person in `curated.id_mapping`
/// (an email two spouses share is nobody's); their identifiers by the generator's truth.
async fn person(ws: &Workspace, truth: &str) -> Vec<(String, String)> {
    let rows =
        cdplake_core::query::run_query(ws, "SELECT id_type, id_value, one_id FROM curated.id_mapping WHERE is_active")
            .await
            .unwrap();
    let mapping: HashMap<(String, String), String> =
        crate::support::lake_rows_of(&rows).into_iter().map(|r| ((r[0].clone(), r[1].clone()), r[2].clone())).collect();
    let mut by_person: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let parts: Vec<&str> = line.splitn(3, ',').collect();
        by_person.entry(parts[0]).or_default().push((parts[1].to_string(), parts[2].to_string()));
    }
    let every = ["member_id", "customer_id", "retail_customer_id", "device_id", "email_hash", "mobile_hash"];
    by_person
        .into_values()
        .find(|ids| {
            let persons: std::collections::HashSet<Option<&String>> = ids.iter().map(|id| mapping.get(id)).collect();
            every.iter().all(|t| ids.iter().any(|(it, _)| it == t)) && persons.len() == 1 && !persons.contains(&None)
        })
        .expect("someone is in every source, stitched as one person")
}

/// `name=value` of a row's column, from [`lake_rows`]' text.
fn field<'a>(row: &'a str, name: &str) -> Option<&'a str> {
    row.split('|').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

async fn erased_everywhere_provably_and_for_good(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let now = Utc.with_ymd_and_hms(2024, 12, 31, 12, 0, 0).unwrap();
    let (files, truth) = cdplake_generate::generate(30, 11);
    for f in &files {
        let location = ws.lake().location().join(&format!("landing/{}/{}", f.source, f.name)).to_string();
        ws.lake().put_object(&location, f.content.clone().into()).await.unwrap();
    }
    pipeline(&ws, now).await;
    let ids = person(&ws, &truth).await;
    let truth_values: Vec<&str> = ids.iter().map(|(_, v)| v.as_str()).collect();
    let known = |hash: Option<String>| hash.is_some_and(|h| truth_values.contains(&h.as_str()));
    let customer = ids.iter().find(|(t, _)| t == "customer_id").unwrap().1.clone();
    // What the files carried in plaintext for them: the shop's email and phone as written.
    let mut needles: Vec<String> = ids.iter().map(|(_, v)| v.clone()).collect();
    for f in files.iter().filter(|f| f.source == "customers") {
        for line in f.content.lines().filter(|l| l.starts_with(&format!("{customer},"))) {
            // Only the person's own contact points (not a placeholder the shop typed for many).
            use cdplake_zones::normalize::{email, phone, pii_hash};
            let fields: Vec<&str> = line.split(',').collect();
            if known(email(fields[1]).map(|e| pii_hash(&e, None))) {
                needles.push(fields[1].trim().to_string());
            }
            if known(phone(fields[2], "GB").map(|p| pii_hash(&p, None))) {
                needles.push(fields[2].trim().to_string());
            }
        }
    }
    let one_id = {
        let q = format!(
            "SELECT one_id, user_int_id FROM curated.id_mapping WHERE id_type = 'customer_id' AND id_value = '{customer}'"
        );
        let rows = cdplake_core::query::run_query(&ws, &q).await.unwrap();
        let rows = crate::support::lake_rows_of(&rows);
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    };
    let (one_id, user_int_id) = (one_id[0].clone(), one_id[1].clone());
    needles.push(one_id.clone());
    let before = ws.lake().scan_for(&needles).await.unwrap();
    for zone in ["raw/", "clean/", "curated/"] {
        assert!(before.matches.iter().any(|m| m.path.starts_with(zone)), "the person is in {zone} before");
    }
    let rows_before = lake_rows(&ws).await;

    let report =
        cdplake_operations::erase::erase(&ws, "customer_id", &customer, Some("test request"), now).await.unwrap();
    let text = cdplake_operations::erase::describe_report(&report);
    assert!(report.found && report.identifiers >= 6, "{text}");
    assert!(report.matches_after.is_empty(), "{text}");

    // Proof by a scan of our own: none of the truth's identifiers, the plaintext, or the one_id.
    let after = ws.lake().scan_for(&needles).await.unwrap();
    let found: Vec<_> =
        after.matches.iter().map(|m| format!("{} ({}: {})", m.path, m.found_in, needles[m.needle])).collect();
    assert!(found.is_empty(), "still found after erasure:\n{}\n{text}", found.join("\n"));

    // Every row that went was theirs; every other row is as it was.
    let rows_after = lake_rows(&ws).await;
    let lower: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
    // Raw rows that went: rows elsewhere that came from them (quarantined duplicates) were theirs too.
    let mut raw_lineage = std::collections::HashSet::new();
    for (table, before) in rows_before.iter().filter(|(t, _)| t.starts_with("raw.")) {
        let after = rows_after.get(table).cloned().unwrap_or_default();
        for row in before.iter().filter(|r| !after.contains(r)) {
            raw_lineage.insert((
                field(row, "_batch_id").unwrap_or("").to_string(),
                field(row, "_source_row").unwrap_or("").to_string(),
            ));
        }
    }
    // Clean rows that went: an event made of one (user_events' source and event_key) was theirs too,
    // even when the event itself carries no identifier (an anonymous login on their device).
    let mut gone_clean_values = std::collections::HashSet::new();
    for (table, before) in rows_before.iter().filter(|(t, _)| t.starts_with("clean.")) {
        let after = rows_after.get(table).cloned().unwrap_or_default();
        let source = table.trim_start_matches("clean.");
        for row in before.iter().filter(|r| !after.contains(r)) {
            for kv in row.split('|') {
                if let Some((_, value)) = kv.split_once('=') {
                    gone_clean_values.insert(format!("{source}:{value}"));
                }
            }
        }
    }
    let theirs = |row: &str| {
        let lowered = row.to_lowercase();
        let batch = field(row, "_batch_id").or_else(|| field(row, "batch_id")).unwrap_or("-").to_string();
        let event_of_theirs = match (field(row, "source"), field(row, "event_key")) {
            (Some(source), Some(key)) => gone_clean_values.contains(&format!("{source}:{key}")),
            _ => false,
        };
        event_of_theirs
            || lower.iter().any(|n| lowered.contains(n.as_str()))
            || lowered.contains(&format!("user_int_id={user_int_id}|"))
            || raw_lineage.contains(&(batch, field(row, "_source_row").unwrap_or("-").to_string()))
    };
    for (table, before) in &rows_before {
        if table.starts_with("_audit.") || table == "curated.segment_bitmaps" || table == "curated.ads_user_bitmap" {
            continue;
        }
        let after = rows_after.get(table).cloned().unwrap_or_default();
        let mut remaining: HashMap<&str, usize> = HashMap::new();
        for row in &after {
            *remaining.entry(row.as_str()).or_default() += 1;
        }
        for row in before {
            match remaining.get_mut(row.as_str()) {
                Some(n) if *n > 0 => *n -= 1,
                _ => assert!(theirs(row), "{table}: a row that is not the person's went: {row}"),
            }
        }
        assert!(remaining.values().all(|n| *n == 0), "{table}: rows changed or appeared");
    }
    let member = format!("SELECT count(*) FROM curated.segment_bitmaps WHERE bitmap_contains(bitmap, {user_int_id})");
    assert_eq!(single_i64(&cdplake_core::query::run_query(&ws, &member).await.unwrap()), 0, "out of every bitmap");
    let erasures = cdplake_core::query::run_query(&ws, "SELECT count(*) FROM _audit.erasures WHERE matches_after = 0")
        .await
        .unwrap();
    assert_eq!(single_i64(&erasures), 1);

    // A replay: the same objects again (no-ops), and copies under new names, a late S3 event or a
    // new export of the same data: the person's rows are dropped and counted, and the pipeline
    // does not bring them back.
    let mut suppressed = 0;
    for f in &files {
        for name in [f.name.clone(), format!("replay-{}", f.name)] {
            let location = ws.lake().location().join(&format!("landing/{}/{name}", f.source)).to_string();
            ws.lake().put_object(&location, f.content.clone().into()).await.unwrap();
        }
    }
    for source in ws.config.all_sources() {
        for r in cdplake_ingest::ingest::ingest(&ws, &source, &[], now).await.unwrap() {
            suppressed += r.rows_suppressed;
            if !r.uri.contains("replay-") {
                assert_eq!(r.rows_written, 0, "{}: the original object is already ingested", r.uri);
            }
        }
    }
    assert!(suppressed > 0, "the person's rows in the copies were suppressed");
    pipeline(&ws, now).await;
    let replayed = ws.lake().scan_for(&needles).await.unwrap();
    let outside: Vec<_> =
        replayed.matches.iter().filter(|m| !m.path.starts_with("landing/")).map(|m| m.path.clone()).collect();
    assert!(outside.is_empty(), "the replay brought the person back: {outside:?}");
    let again = format!("SELECT count(*) FROM curated.id_mapping WHERE id_value = '{customer}'");
    assert_eq!(single_i64(&cdplake_core::query::run_query(&ws, &again).await.unwrap()), 0);
}

on_every_backend!(erased_everywhere_provably_and_for_good);
