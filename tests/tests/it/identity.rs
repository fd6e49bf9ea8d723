//! Identity resolution against a truth we did not compute: the generator's owner of every
//! identifier and its true edges (two identifiers of one person on one row). The score is
//! pairwise precision and recall over the truth's identifiers; the *evidence ceiling* is
//! union-find over the true edges alone, what a perfect resolver could reach from this data.

use std::collections::{HashMap, HashSet};

use cdplake_core::{Config, Workspace};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, on_every_backend, s3_options, single_i64};

on_every_backend!(
    the_generated_world_is_resolved_to_the_evidence_ceiling,
    a_moved_email_joins_the_same_person_and_one_ids_stay_stable,
    hubs_in_both_directions_placeholders_and_limits,
    unlink_splits_one_person_and_the_link_stays_undone,
    a_device_that_becomes_shared_leaves_its_person,
    the_oldest_person_by_business_time_survives_a_merge,
    an_email_two_members_share_is_nobodys,
);

async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, day, 6, 0, 0).unwrap()
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

type Id = (String, String);

fn key(t: &str, v: &str) -> Id {
    (t.to_string(), v.to_string())
}

/// `person_id,id_type,id_value` → identifier → person.
fn persons_of_truth(truth: &str) -> HashMap<Id, String> {
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

/// Active identifiers → one_id.
async fn mapping(ws: &Workspace) -> HashMap<Id, String> {
    let batches =
        cdplake_core::query::run_query(ws, "SELECT id_type, id_value, one_id FROM curated.id_mapping WHERE is_active")
            .await
            .unwrap();
    let mut out = HashMap::new();
    for b in &batches {
        for ((t, v), o) in column(b, "id_type").into_iter().zip(column(b, "id_value")).zip(column(b, "one_id")) {
            assert!(out.insert((t, v), o).is_none(), "one active row per identifier");
        }
    }
    out
}

async fn mapping_version(ws: &Workspace) -> Option<u64> {
    ws.lake().table(&"curated.id_mapping".parse().unwrap()).await.unwrap().version()
}

/// Pairwise scores over the truth's identifiers.
#[derive(Debug)]
struct Score {
    precision: f64,
    recall: f64,
    ceiling_recall: f64,
    /// one_ids holding identifiers of two or more persons.
    mixed: usize,
}

fn pairs(n: usize) -> f64 {
    (n * n.saturating_sub(1) / 2) as f64
}

/// Pairwise precision and recall of `clusters` (identifier → cluster) against `truth`.
fn pairwise(truth: &HashMap<Id, String>, cluster_of: impl Fn(&Id) -> String) -> (f64, f64) {
    let mut per_cluster: HashMap<String, usize> = HashMap::new();
    let mut per_person: HashMap<&str, usize> = HashMap::new();
    let mut per_both: HashMap<(String, &str), usize> = HashMap::new();
    for (id, person) in truth {
        let cluster = cluster_of(id);
        *per_cluster.entry(cluster.clone()).or_default() += 1;
        *per_person.entry(person).or_default() += 1;
        *per_both.entry((cluster, person)).or_default() += 1;
    }
    let together: f64 = per_cluster.values().map(|&n| pairs(n)).sum();
    let same_person: f64 = per_person.values().map(|&n| pairs(n)).sum();
    let right: f64 = per_both.values().map(|&n| pairs(n)).sum();
    (if together == 0.0 { 1.0 } else { right / together }, right / same_person)
}

/// Union-find over the true edges: the components a perfect resolver could find.
fn ceiling(truth: &HashMap<Id, String>, edges: &str) -> HashMap<Id, Id> {
    let mut parent: HashMap<Id, Id> = truth.keys().map(|k| (k.clone(), k.clone())).collect();
    fn find(parent: &mut HashMap<Id, Id>, x: &Id) -> Id {
        let mut root = x.clone();
        while parent[&root] != root {
            root = parent[&root].clone();
        }
        parent.insert(x.clone(), root.clone());
        root
    }
    for line in edges.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (a, b) = (key(f[0], f[1]), key(f[2], f[3]));
        if parent.contains_key(&a) && parent.contains_key(&b) {
            let (ra, rb) = (find(&mut parent, &a), find(&mut parent, &b));
            if ra != rb {
                parent.insert(ra, rb);
            }
        }
    }
    let ids: Vec<Id> = parent.keys().cloned().collect();
    ids.into_iter().map(|id| (id.clone(), find(&mut parent, &id))).collect()
}

fn score(truth: &str, edges: &str, mapping: &HashMap<Id, String>) -> Score {
    let truth = persons_of_truth(truth);
    let (precision, recall) =
        pairwise(&truth, |id| mapping.get(id).cloned().unwrap_or_else(|| format!("alone {id:?}")));
    let components = ceiling(&truth, edges);
    let (_, ceiling_recall) = pairwise(&truth, |id| format!("{:?}", components[id]));
    let mut persons_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (id, one_id) in mapping {
        if let Some(person) = truth.get(id) {
            persons_of.entry(one_id).or_default().insert(person);
        }
    }
    let mixed = persons_of.values().filter(|p| p.len() > 1).count();
    Score { precision, recall, ceiling_recall, mixed }
}

/// The generated world (change logs, placeholders as plaintext and hashes, `guest` logins, an
/// unlisted demo account, family tablets, kiosks, one-channel people) resolved in one run.
async fn resolve_world(ws: &Workspace, persons: u64, seed: u64) -> (cdplake_generate::Generated, Score) {
    let generated = cdplake_generate::generate_with_truth(persons, seed);
    let files: Vec<_> = generated.files.iter().map(|f| (f.source, f.name.clone(), f.content.clone())).collect();
    load(ws, &files, 1).await;
    let report = cdplake_identity::resolve(ws, at(1)).await.unwrap();
    assert!(report.hubs > 0 && report.junk_values_skipped > 0, "{report:?}");
    let score = score(&generated.truth, &generated.truth_edges, &mapping(ws).await);
    (generated, score)
}

fn assert_at_the_ceiling(score: &Score) {
    assert_eq!(score.mixed, 0, "no one_id mixes two people: {score:?}");
    assert!(score.precision >= 0.999, "{score:?}");
    assert!(score.recall >= score.ceiling_recall - 0.005, "{score:?}");
}

async fn the_generated_world_is_resolved_to_the_evidence_ceiling(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let persons = if backend == Backend::S3 { 3_000 } else { 20_000 };
    let (_, score) = resolve_world(&ws, persons, 7).await;
    assert_at_the_ceiling(&score);
    // Nothing new: no new version.
    let version = mapping_version(&ws).await;
    assert_eq!(cdplake_identity::resolve(&ws, at(1)).await.unwrap().batches, 0);
    assert_eq!(mapping_version(&ws).await, version);
}

async fn a_moved_email_joins_the_same_person_and_one_ids_stay_stable(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let (_, first) = resolve_world(&ws, 400, 3).await;
    assert!(first.mixed == 0 && first.precision >= 0.999, "{first:?}");
    let before = mapping(&ws).await;

    // Day 2: three members move to new emails (CRM change log, later updated_at), one of them
    // also in the shop; a new device of a known member logs in.
    // Members whose current email is a real one (not a placeholder), with that email.
    let current = cdplake_core::query::run_query(
        &ws,
        "SELECT member_id, email_hash FROM clean.crm_members WHERE email_hash IS NOT NULL ORDER BY member_id",
    )
    .await
    .unwrap();
    let (members, old_emails): (Vec<String>, Vec<String>) = current
        .iter()
        .flat_map(|b| column(b, "member_id").into_iter().zip(column(b, "email_hash")))
        .filter(|(_, email)| before.contains_key(&key("email_hash", email)))
        .take(3)
        .unzip();
    let hash = |email: &str| cdplake_zones::normalize::pii_hash(email, None);
    let mut crm = String::new();
    for (i, m) in members.iter().enumerate() {
        crm.push_str(&format!(
            r#"{{"member_id":"{m}","email_hash":"{}","updated_at":"2025-05-0{}T10:00:00Z"}}"#,
            hash(&format!("moved{i}@newmail.example.org")),
            i + 1
        ));
        crm.push('\n');
    }
    let device = format!(
        r#"{{"event_id":"NEWDEV1","device_id":"DEV-NEW-1","union_id":null,"open_id":"open-new-1","event_type":"login","page_name":"{}","event_time":"2025-05-20 08:00:00"}}"#,
        members[0]
    );
    load(
        &ws,
        &[("crm_members", "changes.json".into(), crm), ("app_events", "new_device.json".into(), format!("{device}\n"))],
        2,
    )
    .await;
    let second = cdplake_identity::resolve(&ws, at(2)).await.unwrap();
    assert_eq!(second.persons_created, 0, "{second:?}");
    let after = mapping(&ws).await;
    for (i, m) in members.iter().enumerate() {
        let person = &before[&key("member_id", m)];
        let moved = key("email_hash", &hash(&format!("moved{i}@newmail.example.org")));
        assert_eq!(&after[&moved], person, "the new email is {m}'s");
        assert_eq!(&after[&key("member_id", m)], person, "{m} keeps its one_id");
    }
    assert_eq!(after[&key("device_id", "DEV-NEW-1")], before[&key("member_id", &members[0])]);
    // Every identifier known before keeps its one_id (nothing in this batch merges persons).
    let moved: Vec<_> = before.iter().filter(|(id, one_id)| after.get(*id) != Some(*one_id)).collect();
    assert!(moved.is_empty(), "one_ids moved: {moved:?}");
    // The email each member had before stays the person's: history, not replaced.
    for (m, old) in members.iter().zip(&old_emails) {
        assert_eq!(after[&key("email_hash", old)], before[&key("member_id", m)], "{m}'s old email");
    }
}

async fn hubs_in_both_directions_placeholders_and_limits(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let header = "id_type_a,id_value_a,id_type_b,id_value_b,source\n";
    let mut links = String::from(header);
    // Each member M1..M12 has its own device; an account no placeholder list knows logs in on
    // all twelve: more devices than one person may hold (10), so its links to devices go.
    for m in 1..=12 {
        links.push_str(&format!("member_id,M{m},device_id,D{m},app\ndevice_id,D{m},member_id,DEMO-ACCT,app\n"));
    }
    // A kiosk used by six members: more member_ids than one person may hold (1).
    for m in 1..=6 {
        links.push_str(&format!("device_id,KIOSK,member_id,M{m},store\n"));
    }
    // Placeholders never link, in plaintext or hashed.
    let test_hash = cdplake_zones::normalize::pii_hash("test@test.com", None);
    links.push_str(&format!("member_id,M1,member_id,guest,app\nmember_id,M2,email_hash,{test_hash},crm\n"));
    links.push_str("member_id,M3,device_id,00000000-0000-0000-0000-000000000000,app\n");
    // An email two members gave: ambiguous, but M3's device also carries it, so it stays M3's
    // with confidence 1/2; M4 keeps only what is its own.
    links.push_str("member_id,M3,email_hash,e-shared,crm\nmember_id,M4,email_hash,e-shared,crm\n");
    links.push_str("email_hash,e-shared,device_id,D3,app\n");
    load(&ws, &[("identity_links", "links.csv".into(), links)], 1).await;
    let report = cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    assert_eq!(report.junk_values_skipped, 3, "{report:?}");
    assert!(report.skipped_by_rule.contains_key("placeholder word"), "{report:?}");

    let ids = mapping(&ws).await;
    let members: HashSet<&String> = (1..=12).map(|m| &ids[&key("member_id", &format!("M{m}"))]).collect();
    assert_eq!(members.len(), 12, "no two members share a one_id");
    for m in 1..=12 {
        assert_eq!(
            ids[&key("device_id", &format!("D{m}"))],
            ids[&key("member_id", &format!("M{m}"))],
            "D{m} stays M{m}'s"
        );
    }
    assert!(!ids.contains_key(&key("device_id", "KIOSK")), "the kiosk is nobody's");
    assert!(!ids.contains_key(&key("member_id", "DEMO-ACCT")), "the demo account is nobody's");
    assert!(!ids.keys().any(|(_, v)| v == "guest" || *v == test_hash || v.starts_with("00000000")));
    assert_eq!(ids[&key("email_hash", "e-shared")], ids[&key("member_id", "M3")]);
    assert_eq!(confidence(&ws, "e-shared").await, 0.5);
    assert_eq!(confidence(&ws, "M3").await, 1.0);

    let hubs = cdplake_core::query::run_query(
        &ws,
        "SELECT id_value, linked_type, distinct_values, \"limit\" FROM curated.identity_hubs ORDER BY id_value",
    )
    .await
    .unwrap();
    let hubs: Vec<(String, String, String, String)> = column(&hubs[0], "id_value")
        .into_iter()
        .zip(column(&hubs[0], "linked_type"))
        .zip(column(&hubs[0], "distinct_values"))
        .zip(column(&hubs[0], "limit"))
        .map(|(((a, b), c), d)| (a, b, c, d))
        .collect();
    assert!(hubs.contains(&("DEMO-ACCT".into(), "device_id".into(), "12".into(), "10".into())), "{hubs:?}");
    assert!(hubs.contains(&("KIOSK".into(), "member_id".into(), "6".into(), "1".into())), "{hubs:?}");
    assert!(hubs.contains(&("e-shared".into(), "member_id".into(), "2".into(), "1".into())), "{hubs:?}");

    // The report a data engineer reads first.
    let health = cdplake_identity::report::health(&ws, 5).await.unwrap();
    assert_eq!(health.persons_by_size.iter().map(|b| b.persons).sum::<u64>(), health.persons);
    assert_eq!(health.hubs, hubs.len() as u64);
    assert_eq!(health.top_hubs[0].id_value, "DEMO-ACCT");
    assert_eq!(health.skipped_rows_by_rule.values().sum::<u64>(), 3);
    assert!(health.highest_degree_not_flagged.iter().all(|d| d.id_value != "KIOSK"), "{health:?}");
}

async fn confidence(ws: &Workspace, id_value: &str) -> f64 {
    let rows = cdplake_core::query::run_query(
        ws,
        &format!(
            "SELECT CAST(confidence * 1000 AS BIGINT) FROM curated.id_mapping WHERE is_active AND id_value = '{id_value}'"
        ),
    )
    .await
    .unwrap();
    single_i64(&rows) as f64 / 1000.0
}

async fn a_device_that_becomes_shared_leaves_its_person(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let header = "id_type_a,id_value_a,id_type_b,id_value_b,source\n";
    // Day 1: a tablet used by M1 (and its app's open id O1).
    let day1 = format!(
        "{header}device_id,TAB,member_id,M1,app\ndevice_id,TAB,open_id,O1,app\nmember_id,M1,email_hash,E1,crm\n"
    );
    load(&ws, &[("identity_links", "day1.csv".into(), day1)], 1).await;
    let first = cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    assert_eq!((first.hubs, first.conflicts), (0, 0), "{first:?}");
    let before = mapping(&ws).await;
    assert_eq!(before[&key("device_id", "TAB")], before[&key("member_id", "M1")]);
    assert_eq!(before[&key("open_id", "O1")], before[&key("member_id", "M1")]);

    // Day 2: M2 logs in on it too: the tablet's links to members go, so it leaves M1's person
    // (with O1, joined only through it); M1 keeps its one_id and its email.
    load(&ws, &[("identity_links", "day2.csv".into(), format!("{header}device_id,TAB,member_id,M2,app\n"))], 2).await;
    let second = cdplake_identity::resolve(&ws, at(2)).await.unwrap();
    assert_eq!((second.hubs, second.hub_splits), (1, 1), "{second:?}");
    let after = mapping(&ws).await;
    let m1 = &before[&key("member_id", "M1")];
    assert_eq!(&after[&key("member_id", "M1")], m1);
    assert_eq!(&after[&key("email_hash", "E1")], m1);
    assert_ne!(&after[&key("device_id", "TAB")], m1);
    assert_eq!(after[&key("device_id", "TAB")], after[&key("open_id", "O1")], "the tablet keeps its own app id");
    assert_ne!(after[&key("member_id", "M2")], after[&key("device_id", "TAB")]);
    let splits = cdplake_core::query::run_query(
        &ws,
        "SELECT count(*) FROM curated.id_merge_history WHERE action = 'split' AND cause LIKE '%TAB is linked to 2 member_id%'",
    )
    .await
    .unwrap();
    assert_eq!(single_i64(&splits), 1);

    // Day 3: the tablet's open id turns up with M2's email as well as with M1's: it would join
    // two persons, so it loses every link and belongs to no one.
    let day3 =
        format!("{header}member_id,M2,email_hash,E2,crm\nopen_id,O1,email_hash,E1,app\nopen_id,O1,email_hash,E2,app\n");
    load(&ws, &[("identity_links", "day3.csv".into(), day3)], 3).await;
    let third = cdplake_identity::resolve(&ws, at(3)).await.unwrap();
    let last = mapping(&ws).await;
    assert_ne!(last.get(&key("open_id", "O1")), Some(m1), "{third:?}");
    assert_ne!(last.get(&key("open_id", "O1")), last.get(&key("member_id", "M2")), "{third:?}");
    assert_eq!(&last[&key("email_hash", "E1")], m1);
    assert_eq!(last[&key("email_hash", "E2")], last[&key("member_id", "M2")]);
    assert_ne!(last[&key("member_id", "M2")], *m1);
    // Nothing left to split on the next run.
    load(&ws, &[("identity_links", "day4.csv".into(), format!("{header}member_id,M1,email_hash,E3,crm\n"))], 4).await;
    assert_eq!(cdplake_identity::resolve(&ws, at(4)).await.unwrap().hub_splits, 0);
}

async fn the_oldest_person_by_business_time_survives_a_merge(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    // Loaded first, used recently: a device with its open id.
    let recent = r#"{"event_id":"E1","device_id":"DEV-A","open_id":"OPEN-A","event_type":"view","event_time":"2025-03-01 09:00:00"}"#;
    load(&ws, &[("app_events", "recent.json".into(), format!("{recent}\n"))], 1).await;
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    // Loaded later (a backfill), but first used in 2019: a member with its email.
    let backfill =
        r#"{"member_id":"MBR-OLD","email_hash":"aa11","mobile_hash":"bb22","updated_at":"2019-02-03T10:00:00Z"}"#;
    load(&ws, &[("crm_members", "backfill.json".into(), format!("{backfill}\n"))], 2).await;
    cdplake_identity::resolve(&ws, at(2)).await.unwrap();
    let before = mapping(&ws).await;
    assert_ne!(before[&key("device_id", "DEV-A")], before[&key("member_id", "MBR-OLD")]);
    let first_seen = cdplake_core::query::run_query(
        &ws,
        "SELECT CAST(first_seen AS VARCHAR) AS t FROM curated.id_mapping WHERE id_value = 'MBR-OLD'",
    )
    .await
    .unwrap();
    assert!(column(&first_seen[0], "t")[0].starts_with("2019-02-03"), "business time, not ingestion time");

    // A login links them: the person first seen in 2019 survives, though created second.
    let login = r#"{"event_id":"E2","device_id":"DEV-A","event_type":"login","page_name":"MBR-OLD","event_time":"2025-03-02 09:00:00"}"#;
    load(&ws, &[("app_events", "login.json".into(), format!("{login}\n"))], 3).await;
    let report = cdplake_identity::resolve(&ws, at(3)).await.unwrap();
    assert_eq!(report.merges, 1, "{report:?}");
    let after = mapping(&ws).await;
    assert_eq!(after[&key("device_id", "DEV-A")], before[&key("member_id", "MBR-OLD")]);
    assert_eq!(after[&key("open_id", "OPEN-A")], before[&key("member_id", "MBR-OLD")]);
}

async fn unlink_splits_one_person_and_the_link_stays_undone(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let header = "id_type_a,id_value_a,id_type_b,id_value_b,source\n";
    let links = format!(
        "{header}member_id,M1,email_hash,e1,crm\nemail_hash,e1,device_id,d1,app\ndevice_id,d1,union_id,u1,app\nmember_id,M2,email_hash,e2,crm\n"
    );
    load(&ws, &[("identity_links", "day1.csv".into(), links)], 1).await;
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    let before = mapping(&ws).await;
    assert_eq!(before[&key("device_id", "d1")], before[&key("member_id", "M1")]);

    // Explain: every identifier, and the link (with its source row) that reached it.
    let why = cdplake_identity::explain::explain(&ws, &key("member_id", "M1")).await.unwrap();
    assert_eq!(why.one_id, before[&key("member_id", "M1")]);
    let steps: Vec<_> = why.identifiers.iter().map(|s| (s.id_value.as_str(), s.via.as_deref())).collect();
    assert_eq!(
        steps,
        [("M1", None), ("e1", Some("member_id:M1")), ("d1", Some("email_hash:e1")), ("u1", Some("device_id:d1"))]
    );
    assert!(why.identifiers[2].evidence.as_deref().unwrap().contains("day1.csv row 2"), "{:?}", why.identifiers[2]);

    let report = cdplake_identity::unlink::unlink(&ws, &key("email_hash", "e1"), Some(&key("device_id", "d1")), at(2))
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
    let rerun = cdplake_identity::resolve(&ws, at(3)).await.unwrap();
    assert_eq!(rerun.merges, 0, "{rerun:?}");
    let last = mapping(&ws).await;
    assert_ne!(last[&key("device_id", "d1")], last[&key("member_id", "M1")]);
    let splits =
        cdplake_core::query::run_query(&ws, "SELECT count(*) FROM curated.id_merge_history WHERE action = 'split'")
            .await
            .unwrap();
    assert_eq!(single_i64(&splits), 1);

    // Adding an identifier to the blocklist splits its person on the next run, once.
    let mut config = ws.config.clone();
    config.identity.blocklist = vec!["member_id:M2".into()];
    let blocked = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    assert_eq!(cdplake_identity::resolve(&blocked, at(4)).await.unwrap().splits, 1);
    let split = mapping(&blocked).await;
    assert_eq!(split[&key("member_id", "M2")], before[&key("member_id", "M2")]);
    assert_ne!(split[&key("email_hash", "e2")], before[&key("member_id", "M2")]);
    assert_eq!(cdplake_identity::resolve(&blocked, at(5)).await.unwrap().splits, 0);
}

async fn an_email_two_members_share_is_nobodys(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    // Two spouses in the CRM, each with a phone, both with the family's email: the email is
    // linked to two member_ids (limit 1), so its links to members go; its links to the two phones
    // would still join the two persons, so it loses every link. Each keeps its own phone.
    let hash = |v: &str| cdplake_zones::normalize::pii_hash(v, None);
    let (family, phone_a, phone_b) = (hash("family@example.com"), hash("+447911000001"), hash("+447911000002"));
    let crm = format!(
        "{{\"member_id\":\"MA\",\"email_hash\":\"{family}\",\"mobile_hash\":\"{phone_a}\",\"updated_at\":\"2024-01-01T00:00:00Z\"}}\n\
         {{\"member_id\":\"MB\",\"email_hash\":\"{family}\",\"mobile_hash\":\"{phone_b}\",\"updated_at\":\"2024-02-01T00:00:00Z\"}}\n"
    );
    load(&ws, &[("crm_members", "family.json".into(), crm)], 1).await;
    let report = cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    let ids = mapping(&ws).await;
    assert!(!ids.contains_key(&key("email_hash", &family)), "{report:?}");
    assert_eq!(ids[&key("mobile_hash", &phone_a)], ids[&key("member_id", "MA")]);
    assert_eq!(ids[&key("mobile_hash", &phone_b)], ids[&key("member_id", "MB")]);
    assert_ne!(ids[&key("member_id", "MA")], ids[&key("member_id", "MB")]);
    let hubs = cdplake_core::query::run_query(
        &ws,
        &format!("SELECT linked_type FROM curated.identity_hubs WHERE id_value = '{family}' ORDER BY linked_type"),
    )
    .await
    .unwrap();
    assert_eq!(column(&hubs[0], "linked_type"), ["*", "member_id"]);
}
