//! Identity resolution against the generator's ground truth, incrementally, with guards.

use std::collections::{HashMap, HashSet};

use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_jobs::{Config, Workspace};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, on_every_backend, s3_options, single_i64};

on_every_backend!(
    matches_the_ground_truth_and_stays_stable_across_batches,
    guards_keep_hubs_junk_and_conflicts_out,
    unlink_splits_one_person_and_the_link_stays_undone,
    a_device_that_becomes_a_hub_leaves_its_person,
);

async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, day, 6, 0, 0).unwrap()
}

/// Land files, ingest and clean every source that got one.
async fn load(ws: &Workspace, files: &[(&str, String, String)], day: u32) {
    crate::support::land_ingest_clean(ws, files, at(day)).await;
}

fn column(batch: &RecordBatch, name: &str) -> Vec<String> {
    let c = cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len()).map(|i| if c.is_null(i) { String::new() } else { c.value(i).to_string() }).collect()
}

/// The generator's `truth.csv`: identifier → person.
fn persons_of_truth(truth: &str) -> HashMap<(String, String), String> {
    truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.splitn(3, ',');
            let (p, t, v) = (f.next()?, f.next()?, f.next()?);
            Some(((t.to_string(), v.to_string()), p.to_string()))
        })
        .collect()
}

async fn mapping(ws: &Workspace) -> HashMap<(String, String), String> {
    let batches =
        cdplake_jobs::query::run_query(ws, "SELECT id_type, id_value, one_id FROM curated.id_mapping").await.unwrap();
    let mut out = HashMap::new();
    for b in &batches {
        for ((t, v), o) in column(b, "id_type").into_iter().zip(column(b, "id_value")).zip(column(b, "one_id")) {
            assert!(out.insert((t, v), o).is_none(), "one row per identifier");
        }
    }
    out
}

async fn mapping_version(ws: &Workspace) -> Option<u64> {
    ws.lake().table(&"curated.id_mapping".parse().unwrap()).await.unwrap().version()
}

async fn matches_the_ground_truth_and_stays_stable_across_batches(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let (files, truth) = cdplake_jobs::generate::generate(300, 7);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    load(&ws, &files, 1).await;
    let first = cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap();
    assert!(first.persons_created > 0 && first.conflicts == 0, "{first:?}");

    // Precision: no one_id holds identifiers of two people. Recall: pairs of one person's
    // identifiers that the data links end up together.
    let person = persons_of_truth(&truth);
    let ids = mapping(&ws).await;
    let mut persons_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (identifier, one_id) in &ids {
        let p = person.get(identifier).unwrap_or_else(|| panic!("{identifier:?} not in the truth"));
        persons_of.entry(one_id.as_str()).or_default().insert(p.as_str());
    }
    assert!(persons_of.values().all(|p| p.len() == 1), "a one_id mixes two persons");
    let mut one_ids_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (identifier, one_id) in &ids {
        one_ids_of.entry(person[identifier].as_str()).or_default().insert(one_id.as_str());
    }
    let whole = one_ids_of.values().filter(|o| o.len() == 1).count() as f64 / one_ids_of.len() as f64;
    assert!(whole >= 0.7, "only {whole:.2} of persons are one cluster");

    // Rerun with nothing new: no new version.
    let version = mapping_version(&ws).await;
    assert_eq!(cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap().batches, 0);
    assert_eq!(mapping_version(&ws).await, version);

    // Batch 2: a new device, never logged in, is a new person.
    let event = r#"{"event_id":"EVTNEW1","device_id":"DEVNEW","union_id":"union_new","open_id":"open_new","event_type":"view","page_name":"home","event_time":"2024-06-02 09:00:00"}"#;
    load(&ws, &[("app_events", "late.json".into(), format!("{event}\n"))], 2).await;
    let second = cdplake_jobs::identity::resolve(&ws, at(2)).await.unwrap();
    assert_eq!((second.persons_created, second.merges, second.mapping_rows_written), (1, 0, 3), "{second:?}");
    let before = mapping(&ws).await;
    let device = ("device_id".to_string(), "DEVNEW".to_string());
    let member = before.keys().find(|(t, _)| t == "member_id").unwrap().clone();

    // Batch 3: the support desk links that device to a member: the member's (older) one_id
    // survives, the device's one_id is absorbed, nothing else moves.
    let link = format!("id_type_a,id_value_a,id_type_b,id_value_b,source\ndevice_id,DEVNEW,member_id,{}\n", member.1);
    let link = link.trim_end().to_string() + ",support_desk\n";
    load(&ws, &[("identity_links", "manual.csv".into(), link)], 3).await;
    let third = cdplake_jobs::identity::resolve(&ws, at(3)).await.unwrap();
    assert_eq!((third.merges, third.persons_created), (1, 0), "{third:?}");
    let after = mapping(&ws).await;
    assert_eq!(after[&device], before[&member], "the oldest one_id survives");
    assert_eq!(after[&member], before[&member]);
    let moved: Vec<_> = before.iter().filter(|(i, o)| after[*i] != **o).map(|(i, _)| i.clone()).collect();
    assert_eq!(moved.len(), 3, "only the absorbed device cluster moves: {moved:?}");
    assert_eq!(third.mapping_rows_written, 4, "the three moved + the member's last_seen");
    // Only the buckets holding those identifiers were rewritten.
    let table = ws.lake().table(&"curated.id_mapping".parse().unwrap()).await.unwrap();
    let files = table.get_file_uris().unwrap().count() as u64;
    let last = ws.lake().history(&"curated.id_mapping".parse().unwrap(), Some(1)).await.unwrap();
    let removed = last[0].metrics["num_target_files_removed"].as_u64().unwrap();
    assert!(files >= 12 && removed <= 4, "{removed} of {files} files rewritten");
    let history = cdplake_jobs::query::run_query(
        &ws,
        "SELECT absorbed_one_id, surviving_one_id, cause FROM curated.id_merge_history",
    )
    .await
    .unwrap();
    assert_eq!(column(&history[0], "absorbed_one_id"), [before[&device].clone()]);
    assert_eq!(column(&history[0], "surviving_one_id"), [before[&member].clone()]);
    assert!(column(&history[0], "cause")[0].contains("identity_links"), "the merge names its link");
}

async fn guards_keep_hubs_junk_and_conflicts_out(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let mut links = String::from("id_type_a,id_value_a,id_type_b,id_value_b,source\n");
    // A kiosk device used by six members: a hub, never a link.
    for m in 1..=6 {
        links.push_str(&format!("device_id,KIOSK,member_id,M{m},store\n"));
    }
    // Junk values never link.
    links.push_str("member_id,M1,email_hash,unknown,crm\nmember_id,M2,email_hash,unknown,crm\n");
    // An email shared by two members: the second link is refused as a conflict.
    links.push_str("member_id,M3,email_hash,e-shared,crm\nmember_id,M4,email_hash,e-shared,crm\n");
    load(&ws, &[("identity_links", "links.csv".into(), links)], 1).await;
    let report = cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap();
    assert_eq!((report.hubs, report.conflicts), (1, 1), "{report:?}");
    assert_eq!(report.junk_values_skipped, 2);

    let ids = mapping(&ws).await;
    let members: HashSet<&String> = (1..=6).map(|m| &ids[&("member_id".to_string(), format!("M{m}"))]).collect();
    assert_eq!(members.len(), 6, "no two members share a one_id");
    assert!(!ids.contains_key(&("device_id".to_string(), "KIOSK".to_string())), "the hub is kept out");
    assert!(!ids.keys().any(|(_, v)| v == "unknown"));
    let hubs =
        cdplake_jobs::query::run_query(&ws, "SELECT count(*) FROM curated.identity_hubs WHERE id_value = 'KIOSK'")
            .await
            .unwrap();
    assert_eq!(single_i64(&hubs), 1);
    let conflicts =
        cdplake_jobs::query::run_query(&ws, "SELECT count(*) FROM curated.identity_conflicts").await.unwrap();
    assert_eq!(single_i64(&conflicts), 1);
    // Confidence: the email two members used is only half sure to be M3's; a member_id is sure.
    assert_eq!(confidence(&ws, "e-shared").await, 0.5);
    assert_eq!(confidence(&ws, "M3").await, 1.0);
}

async fn confidence(ws: &Workspace, id_value: &str) -> f64 {
    let rows = cdplake_jobs::query::run_query(
        ws,
        &format!("SELECT CAST(confidence * 1000 AS BIGINT) FROM curated.id_mapping WHERE id_value = '{id_value}'"),
    )
    .await
    .unwrap();
    single_i64(&rows) as f64 / 1000.0
}

async fn a_device_that_becomes_a_hub_leaves_its_person(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let header = "id_type_a,id_value_a,id_type_b,id_value_b,source\n";
    // Day 1: a family tablet used by M1 (and its app's U1), then by M2..M5: below the hub limit,
    // so it stays M1's (the other members' links are refused as conflicts).
    let mut day1 = format!(
        "{header}device_id,TAB,member_id,M1,app\ndevice_id,TAB,union_id,U1,app\nmember_id,M1,email_hash,E1,crm\n"
    );
    for m in 2..=5 {
        day1.push_str(&format!("device_id,TAB,member_id,M{m},app\n"));
    }
    load(&ws, &[("identity_links", "day1.csv".into(), day1)], 1).await;
    let first = cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap();
    assert_eq!((first.hubs, first.conflicts), (0, 4), "{first:?}");
    let key = |t: &str, v: &str| (t.to_string(), v.to_string());
    let before = mapping(&ws).await;
    assert_eq!(before[&key("device_id", "TAB")], before[&key("member_id", "M1")]);
    assert_eq!(before[&key("union_id", "U1")], before[&key("member_id", "M1")]);
    assert_eq!(confidence(&ws, "TAB").await, 0.2, "seen with five members");

    // Day 2: a sixth member: the tablet is a hub now, so it leaves M1's person, and U1 (joined
    // only through the tablet) becomes a person of its own. M1 keeps its one_id.
    load(&ws, &[("identity_links", "day2.csv".into(), format!("{header}device_id,TAB,member_id,M6,app\n"))], 2).await;
    let second = cdplake_jobs::identity::resolve(&ws, at(2)).await.unwrap();
    assert_eq!((second.hubs, second.hub_splits), (1, 1), "{second:?}");
    let after = mapping(&ws).await;
    assert_eq!(after[&key("member_id", "M1")], before[&key("member_id", "M1")]);
    assert_eq!(after[&key("email_hash", "E1")], before[&key("member_id", "M1")]);
    assert_ne!(after[&key("union_id", "U1")], before[&key("member_id", "M1")]);
    let active = cdplake_jobs::query::run_query(
        &ws,
        "SELECT count(*) FROM curated.id_mapping WHERE id_value = 'TAB' AND NOT is_active",
    )
    .await
    .unwrap();
    assert_eq!(single_i64(&active), 1, "the hub's row stays, inactive");
    let splits = cdplake_jobs::query::run_query(
        &ws,
        "SELECT count(*) FROM curated.id_merge_history WHERE action = 'split' AND cause LIKE '%TAB became a hub%'",
    )
    .await
    .unwrap();
    assert_eq!(single_i64(&splits), 1);
    // Nothing left to split on the next run.
    load(&ws, &[("identity_links", "day3.csv".into(), format!("{header}member_id,M1,email_hash,E2,crm\n"))], 3).await;
    assert_eq!(cdplake_jobs::identity::resolve(&ws, at(3)).await.unwrap().hub_splits, 0);
}

async fn unlink_splits_one_person_and_the_link_stays_undone(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let header = "id_type_a,id_value_a,id_type_b,id_value_b,source\n";
    let links = format!(
        "{header}member_id,M1,email_hash,e1,crm\nemail_hash,e1,device_id,d1,app\ndevice_id,d1,union_id,u1,app\nmember_id,M2,email_hash,e2,crm\n"
    );
    load(&ws, &[("identity_links", "day1.csv".into(), links)], 1).await;
    cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap();
    let before = mapping(&ws).await;
    let key = |t: &str, v: &str| (t.to_string(), v.to_string());
    assert_eq!(before[&key("device_id", "d1")], before[&key("member_id", "M1")]);

    // Explain: every identifier, and the link (with its source row) that reached it.
    let why = cdplake_jobs::identity::explain::explain(&ws, &key("member_id", "M1")).await.unwrap();
    assert_eq!(why.one_id, before[&key("member_id", "M1")]);
    let steps: Vec<_> = why.identifiers.iter().map(|s| (s.id_value.as_str(), s.via.as_deref())).collect();
    assert_eq!(
        steps,
        [("M1", None), ("e1", Some("member_id:M1")), ("d1", Some("email_hash:e1")), ("u1", Some("device_id:d1"))]
    );
    assert!(why.identifiers[2].evidence.as_deref().unwrap().contains("day1.csv row 2"), "{:?}", why.identifiers[2]);

    let report =
        cdplake_jobs::identity::unlink::unlink(&ws, &key("email_hash", "e1"), Some(&key("device_id", "d1")), at(2))
            .await
            .unwrap();
    assert_eq!((report.parts, report.mapping_rows_written), (2, 2), "{report:?}");
    let after = mapping(&ws).await;
    assert_eq!(
        after[&key("member_id", "M1")],
        before[&key("member_id", "M1")],
        "M1's part keeps the one_id (a tie: the part with the member_id)"
    );
    assert_eq!(after[&key("device_id", "d1")], after[&key("union_id", "u1")]);
    assert_ne!(after[&key("device_id", "d1")], after[&key("member_id", "M1")]);
    assert_eq!(after[&key("member_id", "M2")], before[&key("member_id", "M2")], "nobody else is touched");

    // The same link delivered again later is not used.
    load(&ws, &[("identity_links", "day3.csv".into(), format!("{header}email_hash,e1,device_id,d1,app\n"))], 3).await;
    let rerun = cdplake_jobs::identity::resolve(&ws, at(3)).await.unwrap();
    assert_eq!(rerun.merges, 0, "{rerun:?}");
    let last = mapping(&ws).await;
    assert_ne!(last[&key("device_id", "d1")], last[&key("member_id", "M1")]);
    let splits =
        cdplake_jobs::query::run_query(&ws, "SELECT count(*) FROM curated.id_merge_history WHERE action = 'split'")
            .await
            .unwrap();
    assert_eq!(single_i64(&splits), 1);

    // Adding an identifier to the blocklist splits its person on the next run, once.
    let mut config = ws.config.clone();
    config.identity.blocklist = vec!["member_id:M2".into()];
    let blocked = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    assert_eq!(cdplake_jobs::identity::resolve(&blocked, at(4)).await.unwrap().splits, 1);
    let split = mapping(&blocked).await;
    assert_eq!(split[&key("member_id", "M2")], before[&key("member_id", "M2")]);
    assert_ne!(split[&key("email_hash", "e2")], before[&key("member_id", "M2")]);
    assert_eq!(cdplake_jobs::identity::resolve(&blocked, at(5)).await.unwrap().splits, 0);
}

/// Pairwise precision and recall against the generator's truth at 10,000 people (local lake;
/// the same code runs on S3 in the tests above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precision_and_recall_at_ten_thousand_persons() {
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let (files, truth) = cdplake_jobs::generate::generate(10_000, 11);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    load(&ws, &files, 1).await;
    let report = cdplake_jobs::identity::resolve(&ws, at(1)).await.unwrap();
    assert_eq!(report.hubs, 100, "every kiosk is a hub: {report:?}");

    let person = persons_of_truth(&truth);
    let ids = mapping(&ws).await;
    let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as f64;
    let mut per_cluster: HashMap<&str, usize> = HashMap::new();
    let mut per_person: HashMap<&str, usize> = HashMap::new();
    let mut per_both: HashMap<(&str, &str), usize> = HashMap::new();
    for (identifier, one_id) in &ids {
        let p = person.get(identifier).unwrap_or_else(|| panic!("{identifier:?} belongs to nobody (hub or junk?)"));
        *per_cluster.entry(one_id).or_default() += 1;
        *per_person.entry(p).or_default() += 1;
        *per_both.entry((one_id, p)).or_default() += 1;
    }
    let together: f64 = per_cluster.values().map(|&n| pairs(n)).sum();
    let same_person: f64 = per_person.values().map(|&n| pairs(n)).sum();
    let right: f64 = per_both.values().map(|&n| pairs(n)).sum();
    let (precision, recall) = (right / together, right / same_person);
    assert!(precision >= 0.99, "precision {precision:.4}");
    assert!(recall >= 0.98, "recall {recall:.4}");
}
