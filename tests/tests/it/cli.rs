//! The `cdplake` binary as a user runs it (built by `cargo build --workspace --all-targets`,
//! which `tests/run.sh` does before testing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::s3_env;

fn binary() -> PathBuf {
    // target/debug/deps/it-HASH → target/debug/cdplake
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join("cdplake");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --bin cdplake` (tests/run.sh does)",
        path.display()
    );
    path
}

fn cdplake(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("CDPLAKE_LAKE")
        .env_remove("CDPLAKE_CONFIG")
        .output()
        .expect("run cdplake")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cdplake failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The number of files the demo generates.
fn demo_files() -> usize {
    cdplake_generate::generate(cdplake_app::demo::DEMO_PERSONS, cdplake_app::demo::DEMO_SEED).0.len()
}

#[test]
fn demo_on_the_default_local_lake() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&cdplake(dir.path(), &["demo"]));
    let files = demo_files();
    assert!(out.contains(&format!("ingest: {files} files ({files} new, 0 already ingested)")), "{out}");
    assert!(out.contains("clean.crm_members: 1 batches"), "{out}");
    assert!(out.contains(": transaction_date: not_a_date"), "the broken rows are reported: {out}");
    assert!(
        out.contains("lifecycle_stage")
            && out.contains("new persons")
            && out.contains("profiles as of 2024-12-31")
            && out.contains("segments as of 2024-12-31"),
        "{out}"
    );
    assert!(dir.path().join("lake/landing/crm_members/crm_members.json").is_file(), "default lake is ./lake");
    assert!(dir.path().join("lake/clean/customers/_delta_log").is_dir());

    // Idempotent: a second run finds every file ingested and every batch cleaned.
    let out = stdout(&cdplake(dir.path(), &["demo"]));
    assert!(
        out.contains(&format!("(0 new, {} already ingested)", demo_files()))
            && out.contains("clean.customers: nothing new to clean"),
        "{out}"
    );
    let versions = stdout(&cdplake(dir.path(), &["history", "clean.customers", "--format", "json"]));
    let history: serde_json::Value = serde_json::from_str(&versions).unwrap();
    let operations: Vec<_> = history.as_array().unwrap().iter().map(|c| c["operation"].as_str().unwrap()).collect();
    // The first clean appends (the table was empty); the second run committed nothing.
    assert_eq!(operations, ["WRITE", "CREATE TABLE"], "the second run committed nothing");

    // Audiences on the demo's segments: counted on bitmaps, exported above the floor only.
    let built =
        stdout(&cdplake(dir.path(), &["audience", "build", "vip", "--expr", "Champions AND active AND NOT prospect"]));
    assert!(built.contains("audience vip") && built.contains("ms on bitmaps"), "{built}");
    let refused = cdplake(dir.path(), &["audience", "export", "vip", "--to", "exports"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("below the export floor of 100"), "{refused:?}");
    let exported = stdout(&cdplake(dir.path(), &["audience", "export", "vip", "--to", "exports", "--min-size", "1"]));
    assert!(exported.contains("exports/vip-2024-12-31.csv"), "{exported}");

    let csv = stdout(&cdplake(
        dir.path(),
        &["query", "SELECT member_id, level FROM clean.crm_members ORDER BY member_id LIMIT 1", "--format", "csv"],
    ));
    assert!(csv.starts_with("member_id,level\nMBR"), "{csv}");

    // The CLI's query path is read-only, as the HTTP and Lambda ones: each refusal exits 1, says
    // why, and commits nothing.
    let newest_version = || {
        let history = stdout(&cdplake(dir.path(), &["history", "clean.customers", "--format", "json"]));
        serde_json::from_str::<serde_json::Value>(&history).unwrap()[0]["version"].as_i64().unwrap()
    };
    let before = newest_version();
    for (write, kind) in [
        ("INSERT INTO clean.customers SELECT * FROM clean.customers LIMIT 1", "INSERT"),
        ("COPY (SELECT 1 AS a) TO 'copied.csv' STORED AS CSV", "COPY"),
        ("CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'", "CREATE"),
    ] {
        let refused = cdplake(dir.path(), &["query", write]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{write}: {stderr}");
        assert!(stderr.contains(&format!("refused a {kind} statement")), "{write}: {stderr}");
    }
    assert!(!dir.path().join("copied.csv").exists(), "COPY wrote nothing");
    assert_eq!(newest_version(), before, "no version was committed");

    let json = stdout(&cdplake(dir.path(), &["tables", "--format", "json"]));
    let tables: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<_> = tables.as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert!(names.contains(&"raw.crm_members") && names.contains(&"clean._quarantine"), "{names:?}");

    // Every job run above is in the audit trail, with who ran it; reads are not jobs.
    let audit = stdout(&cdplake(dir.path(), &["audit", "--format", "csv"]));
    assert_eq!(audit.lines().filter(|l| l.contains(",demo,cli,")).count(), 2, "{audit}");
    assert!(audit.contains(",audience export,cli,") && audit.contains(",failed,"), "{audit}");
    assert!(!audit.contains(",query,"), "{audit}");

    let describe = stdout(&cdplake(dir.path(), &["describe", "clean.customers"]));
    assert!(describe.contains("email_hash") && describe.contains("| true  |"), "PII column flagged: {describe}");

    let ddl = stdout(&cdplake(
        dir.path(),
        &["catalog", "export-athena", "--database", "cdp", "--location-root", "s3://bucket/lake"],
    ));
    assert!(
        ddl.contains(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `cdp`.`clean_customers`\nLOCATION 's3://bucket/lake/clean/customers/'"
        ),
        "{ddl}"
    );
}

#[test]
fn generate_writes_every_source_and_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    stdout(&cdplake(dir.path(), &["generate", "--persons", "50", "--out", out.to_str().unwrap()]));
    let first = std::fs::read_to_string(out.join("crm_members/crm_members.json")).unwrap();
    assert!(std::fs::read_to_string(out.join("truth.csv")).unwrap().starts_with("person_id,id_type,id_value\n"));
    stdout(&cdplake(dir.path(), &["generate", "--persons", "50", "--out", out.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(out.join("crm_members/crm_members.json")).unwrap(), first, "deterministic");
    let ingest = stdout(&cdplake(
        dir.path(),
        &["ingest", "--source", "customers", out.join("customers/customers.csv").to_str().unwrap()],
    ));
    assert!(ingest.starts_with("Ingested:"), "{ingest}");
    let clean = stdout(&cdplake(dir.path(), &["clean", "--source", "customers", "--json"]));
    let reports: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert_eq!(reports[0]["rows_read"], reports[0]["kept"]);

    // The files on disk are the in-memory generator's (the demo and tests use that one), and
    // `--gzip` writes the same bytes compressed, which ingest reads as it streams.
    let in_memory = cdplake_generate::generate_with_truth(50, 42);
    for file in &in_memory.files {
        let on_disk = std::fs::read_to_string(out.join(file.source).join(&file.name)).unwrap();
        assert_eq!(on_disk, file.content, "{}/{}", file.source, file.name);
    }
    assert_eq!(std::fs::read_to_string(out.join("truth_edges.csv")).unwrap(), in_memory.truth_edges);
    let gzipped = dir.path().join("gzipped");
    stdout(&cdplake(dir.path(), &["generate", "--persons", "50", "--gzip", "--out", gzipped.to_str().unwrap()]));
    let gunzip = |path: &Path| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut text)
            .unwrap();
        text
    };
    for file in &in_memory.files {
        let path = gzipped.join(file.source).join(format!("{}.gz", file.name));
        assert_eq!(gunzip(&path), file.content, "{}", path.display());
    }
    assert_eq!(gunzip(&gzipped.join("truth.csv.gz")), in_memory.truth);
    let lake = tempfile::tempdir().unwrap();
    let customers = gzipped.join("customers/customers.csv.gz");
    stdout(&cdplake(lake.path(), &["ingest", "--source", "customers", customers.to_str().unwrap()]));
    let clean = stdout(&cdplake(lake.path(), &["clean", "--source", "customers", "--json"]));
    let from_gzip: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert_eq!(from_gzip[0]["kept"], reports[0]["kept"], "the gzipped file cleans to the same rows");
}

#[test]
fn errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = cdplake(dir.path(), &["describe", "clean.nothing_here"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("clean.nothing_here") && err.contains("cdplake tables"), "{err}");

    let output = cdplake(dir.path(), &["describe", "Clean.Members"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("clean"), "suggests the lower-case name");

    let output = cdplake(dir.path(), &["catalog", "export-athena", "--database", "cdp"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("--location-root"), "{err}");

    std::fs::write(dir.path().join("cdplake.toml"), "[lake]\nrot = './x'\n").unwrap();
    let output = cdplake(dir.path(), &["tables"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("cdplake.toml") && err.contains("rot"), "{err}");
}

#[test]
fn demo_on_s3_and_athena_ddl_for_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{}/cli-{}", s3_env()["CDPLAKE_S3_BUCKET"], uuid::Uuid::new_v4());
    let run = |args: &[&str]| on_s3(dir.path(), &root, args);
    let out = stdout(&run(&["demo"]));
    assert!(out.contains(&format!("ingest: {} files ({} new", demo_files(), demo_files())), "{out}");
    let ddl = stdout(&run(&["catalog", "export-athena", "--database", "cdp"]));
    assert!(ddl.contains(&format!("LOCATION '{root}/clean/customers/'")), "{ddl}");
    assert!(!dir.path().join("lake").exists(), "nothing written locally");
}

/// A user's own file that the contract quarantines whole: `check` shows why before anything is
/// written, `clean` exits 3 (not 0), and after the contract is fixed `clean --reprocess` keeps
/// every row.
#[test]
fn no_silent_zeros_for_a_users_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = |date_format: &str| {
        format!(
            "[sources.cdnow]\nformat = \"csv\"\ndedupe = \"none\"\ncolumns = [\n  \
             {{ name = \"customer_id\", required = true, id_type = \"cdnow_customer_id\" }},\n  \
             {{ name = \"date\", type = \"date\", required = true{date_format} }},\n  \
             {{ name = \"dollar_value\", type = \"decimal(10,2)\" }},\n]\n"
        )
    };
    std::fs::write(dir.path().join("cdplake.toml"), source("")).unwrap();
    let file = dir.path().join("cdnow.csv");
    std::fs::write(&file, "customer_id,date,dollar_value\n1,19970101,11.77\n1,19970101,11.77\n2,19970102,29.33\n")
        .unwrap();
    let file = file.display().to_string();

    let checked = cdplake(dir.path(), &["check", "--source", "cdnow", &file]);
    assert_eq!(checked.status.code(), Some(3), "{checked:?}");
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(report.contains("0 would be kept, 3 quarantined") && report.contains("date: not_a_date"), "{report}");
    assert!(!dir.path().join("lake").exists(), "check writes nothing");

    stdout(&cdplake(dir.path(), &["ingest", "--source", "cdnow", &file]));
    let cleaned = cdplake(dir.path(), &["clean", "--source", "cdnow"]);
    assert_eq!(cleaned.status.code(), Some(3), "every row quarantined is not a success: {cleaned:?}");
    let error = String::from_utf8_lossy(&cleaned.stderr);
    assert!(error.contains("every row went to the quarantine for cdnow") && error.contains("--reprocess"), "{error}");

    std::fs::write(dir.path().join("cdplake.toml"), source(", format = \"%Y%m%d\"")).unwrap();
    let fixed = stdout(&cdplake(dir.path(), &["clean", "--reprocess", "--source", "cdnow"]));
    assert!(fixed.contains("3 rows read = 3 kept + 0 duplicates + 0 quarantined"), "{fixed}");
    let counted = stdout(&cdplake(dir.path(), &["query", "SELECT count(*) AS n FROM clean.cdnow", "--format", "csv"]));
    assert!(counted.contains("\n3"), "the repeated line is kept: {counted}");
    let help = stdout(&cdplake(dir.path(), &["--help"]));
    assert!(help.contains("Exit codes") && help.contains("3  ran, but nothing usable came out"), "{help}");
}

/// What the demo's jobs wrote, as text: the tables' contents without the times of the run.
fn demo_contents(run: &dyn Fn(&[&str]) -> Output) -> String {
    let queries = [
        "SELECT source, rule, count(*) AS n FROM clean._quarantine GROUP BY source, rule ORDER BY source, rule",
        "SELECT id_type, id_value, one_id, user_int_id, is_active FROM curated.id_mapping ORDER BY id_type, id_value, one_id",
        "SELECT one_id, total_orders, total_revenue, avg_order_value, rfm_segment, lifecycle_stage, r_score, f_score, \
         m_score FROM curated.customer_profiles ORDER BY one_id",
        "SELECT segment_tag, cardinality, CAST(bitmap_to_array(bitmap) AS VARCHAR) AS members FROM curated.segment_bitmaps \
         ORDER BY segment_tag",
    ];
    queries.iter().map(|q| stdout(&run(&["query", q, "--format", "csv"]))).collect::<Vec<_>>().join("\n")
}

/// `cdplake --lake ROOT ARGS` with the test S3 server's settings.
fn on_s3(dir: &Path, root: &str, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command.args(["--lake", root]).args(args).current_dir(dir);
    for (k, v) in s3_env() {
        command.env(k, v);
    }
    command.output().expect("run cdplake")
}

/// A job under a small memory budget writes what an unlimited one writes, on a local lake and on
/// S3: the budget changes where operators keep their state, never the answer.
#[test]
fn a_small_memory_limit_gives_the_same_lake() {
    let unlimited = tempfile::tempdir().unwrap();
    let limited = tempfile::tempdir().unwrap();
    stdout(&cdplake(unlimited.path(), &["demo"]));
    stdout(&cdplake(limited.path(), &["--memory-limit", "256MiB", "demo"]));
    let expected = demo_contents(&|args| cdplake(unlimited.path(), args));
    assert!(expected.lines().count() > 1000, "the demo wrote its tables:\n{expected}");
    assert_eq!(demo_contents(&|args| cdplake(limited.path(), args)), expected);

    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{}/cli-limit-{}", s3_env()["CDPLAKE_S3_BUCKET"], uuid::Uuid::new_v4());
    stdout(&on_s3(dir.path(), &root, &["--memory-limit", "256MiB", "demo"]));
    assert_eq!(demo_contents(&|args| on_s3(dir.path(), &root, args)), expected, "the same on S3");
}

/// The same on S3, for clean: a clean given far too little memory fails naming the budget and
/// commits nothing (no clean rows, no quarantine rows); a rerun with enough memory writes what an
/// unlimited run on a local lake writes, duplicates and all.
#[test]
fn far_too_little_memory_for_clean_on_s3_fails_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&cdplake(dir.path(), &["generate", "--persons", "400", "--out", "data"]));
    let files = ["data/customers/customers.csv", "data/customers/customers_changes.csv"];
    let root = format!("s3://{}/cli-oom-{}", s3_env()["CDPLAKE_S3_BUCKET"], uuid::Uuid::new_v4());
    let local = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        let path = path.to_str().unwrap();
        stdout(&on_s3(dir.path(), &root, &["ingest", "--source", "customers", path]));
        stdout(&cdplake(local.path(), &["ingest", "--source", "customers", path]));
    }
    stdout(&cdplake(local.path(), &["clean", "--source", "customers"]));

    let output = on_s3(dir.path(), &root, &["--memory-limit", "4KiB", "clean", "--source", "customers"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("Resources exhausted") && err.contains("4.0 KB"), "names the budget: {err}");
    assert!(err.contains("--memory-limit"), "says what to do: {err}");
    let tables = stdout(&on_s3(dir.path(), &root, &["tables", "--format", "csv"]));
    let committed = |table: &str| {
        tables.lines().any(|l| l.starts_with(table)) && {
            let count = format!("SELECT count(*) AS n FROM {table}");
            stdout(&on_s3(dir.path(), &root, &["query", &count, "--format", "csv"])).lines().nth(1) != Some("0")
        }
    };
    assert!(!committed("clean.customers"), "no clean rows committed: {tables}");
    assert!(!committed("clean._quarantine"), "no quarantine rows committed: {tables}");

    stdout(&on_s3(dir.path(), &root, &["--memory-limit", "256MiB", "clean", "--source", "customers"]));
    // Everything but the lineage (batch ids and ingest times differ between the two lakes).
    let rows = "SELECT * EXCLUDE (_batch_id, _ingested_at) FROM clean.customers ORDER BY _row_key";
    let quarantine = "SELECT source, kind, _source_uri, _source_row, rule, reason FROM clean._quarantine \
                      ORDER BY _source_uri, _source_row";
    for sql in [rows, quarantine] {
        let expected = stdout(&cdplake(local.path(), &["query", sql, "--format", "csv"]));
        assert!(expected.lines().count() > 10, "{sql}: {expected}");
        assert_eq!(stdout(&on_s3(dir.path(), &root, &["query", sql, "--format", "csv"])), expected, "{sql}");
    }
}

/// `cdplake ARGS` in `dir` (local lake), and the process's peak resident set in bytes: its
/// `VmHWM`, read from /proc while it runs (the last reading before it exits).
fn cdplake_with_peak_memory(dir: &Path, args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("CDPLAKE_LAKE")
        .env_remove("CDPLAKE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cdplake");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().expect("wait for cdplake").is_none() {
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = status.lines().find(|l| l.starts_with("VmHWM:"));
        if let Some(kib) = hwm.and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse::<u64>().ok()) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (child.wait_with_output().expect("cdplake's output"), peak_kib << 10)
}

/// A file far bigger than the memory budget ingests in constant memory: it is read as a stream
/// (through the gzip decoder) and written chunk by chunk, in one commit; every row arrives, and
/// the process never holds the file.
#[test]
fn a_file_larger_than_the_memory_limit_ingests() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let rows = 1_500_000u64;
    let path = dir.path().join("big_retail.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    let mut text_size = 0u64;
    let header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";
    gz.write_all(header.as_bytes()).unwrap();
    for i in 0..rows {
        let line = format!(
            "{},{},WHITE HANGING HEART T-LIGHT HOLDER {},{},12/1/2010 8:{:02},2.55,{},United Kingdom\n",
            536365 + i / 7,
            85123 + i % 1000,
            i % 97,
            1 + i % 12,
            i % 60,
            12346 + i % 4000
        );
        text_size += line.len() as u64;
        gz.write_all(line.as_bytes()).unwrap();
    }
    gz.finish().unwrap();
    assert!(text_size > 128 << 20, "the file ({text_size} bytes) is far larger than the budget");

    let file = path.to_str().unwrap();
    // What the process holds doing nothing (its code and libraries), to compare with.
    let (idle, baseline) = cdplake_with_peak_memory(dir.path(), &["tables"]);
    stdout(&idle);
    let args = ["--memory-limit", "32MiB", "ingest", "--source", "retail_transactions", file];
    let (output, peak) = cdplake_with_peak_memory(dir.path(), &args);
    let report = stdout(&output);
    assert!(report.contains(&format!("\"rows_written\": {rows}")) || report.contains(&rows.to_string()), "{report}");
    let count = stdout(&cdplake(
        dir.path(),
        &["query", "SELECT count(*) AS n FROM raw.retail_transactions", "--format", "csv"],
    ));
    assert_eq!(count.lines().nth(1), Some(rows.to_string().as_str()), "every row is in raw: {count}");
    // Holding the file's rows took about 7 times its size before ingest streamed.
    let grew = peak.saturating_sub(baseline);
    assert!(grew < text_size, "ingest grew by {grew} bytes for a {text_size}-byte file: it held the file");
    assert!(grew < 200 << 20, "ingest grew by {} MiB: it does not stream", grew >> 20);
}

/// Far too little memory: the job fails with an error naming the operator and the budget, and a
/// hint; nothing is committed, and a rerun with enough memory converges to the same tables.
#[test]
fn far_too_little_memory_fails_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&cdplake(dir.path(), &["demo"]));
    let before = demo_contents(&|args| cdplake(dir.path(), args));
    // Version, time and operation of every commit (the parameters' JSON has no fixed key order).
    let versions = |dir: &Path| -> Vec<String> {
        let history = stdout(&cdplake(dir, &["history", "curated.customer_profiles", "--format", "csv"]));
        history.lines().map(|l| l.splitn(4, ',').take(3).collect::<Vec<_>>().join(",")).collect()
    };
    let history = versions(dir.path());

    let output = cdplake(dir.path(), &["--memory-limit", "4KiB", "profiles", "--full", "--as-of", "2024-12-31"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("Resources exhausted") && err.contains("pool_size: 4.0 KB"), "names the budget: {err}");
    assert!(err.contains("--memory-limit"), "says what to do: {err}");
    assert_eq!(versions(dir.path()), history, "nothing committed");

    stdout(&cdplake(dir.path(), &["--memory-limit", "256MiB", "profiles", "--full", "--as-of", "2024-12-31"]));
    assert_eq!(demo_contents(&|args| cdplake(dir.path(), args)), before);

    let output = cdplake(dir.path(), &["--memory-limit", "lots", "tables"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("\"lots\" is not a size"), "{err}");
}
