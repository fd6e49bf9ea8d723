//! The `cdplake` binary as a user runs it (built by `cargo build --workspace --all-targets`,
//! which `tests/run.sh` does before testing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::s3_env;

fn binary() -> PathBuf {
    // target/debug/deps/it-HASH → target/debug/cdplake
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join("cdplake");
    assert!(path.exists(), "{} is missing: build it with `cargo build --bin cdplake` (tests/run.sh does)", path.display());
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

#[test]
fn demo_on_the_default_local_lake() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&cdplake(dir.path(), &["demo"]));
    assert!(out.contains("9 rows inserted, 2 updated"), "{out}");
    assert!(out.contains("| GB      | 2         | 2860.5"), "{out}");
    assert!(dir.path().join("lake/clean/demo_customers/_delta_log").is_dir(), "default lake is ./lake");

    // Idempotent: a second run finds nothing to change and commits nothing.
    let out = stdout(&cdplake(dir.path(), &["demo"]));
    assert!(out.contains("0 rows inserted, 0 updated; now at version 2"), "{out}");

    let csv = stdout(&cdplake(
        dir.path(),
        &["query", "SELECT customer_id, tier FROM clean.demo_customers WHERE country = 'NL'", "--format", "csv"],
    ));
    assert_eq!(csv.trim(), "customer_id,tier\nC006,silver");

    let json = stdout(&cdplake(dir.path(), &["tables", "--format", "json"]));
    let tables: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(tables[0]["table"], "clean.demo_customers");
    assert_eq!(tables[0]["primary_key"], "customer_id");

    let history = stdout(&cdplake(dir.path(), &["history", "clean.demo_customers", "--format", "json"]));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let operations: Vec<_> = history.as_array().unwrap().iter().map(|c| c["operation"].as_str().unwrap()).collect();
    assert_eq!(operations, ["MERGE", "MERGE", "CREATE TABLE"]);

    let describe = stdout(&cdplake(dir.path(), &["describe", "clean.demo_customers"]));
    assert!(describe.contains("| 7        | updated_at     | timestamp | false"), "{describe}");

    let ddl = stdout(&cdplake(
        dir.path(),
        &["catalog", "export-athena", "--database", "cdp", "--location-root", "s3://bucket/lake"],
    ));
    assert!(
        ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `cdp`.`clean_demo_customers`\nLOCATION 's3://bucket/lake/clean/demo_customers/'"),
        "{ddl}"
    );
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
    let run = |args: &[&str]| {
        let mut command = Command::new(binary());
        command.args(["--lake", &root]).args(args).current_dir(dir.path());
        for (k, v) in s3_env() {
            command.env(k, v);
        }
        command.output().expect("run cdplake")
    };
    let out = stdout(&run(&["demo"]));
    assert!(out.contains("| IE      | 1         | 120.0"), "{out}");
    let ddl = stdout(&run(&["catalog", "export-athena", "--database", "cdp"]));
    assert!(ddl.contains(&format!("LOCATION '{root}/clean/demo_customers/'")), "{ddl}");
    assert!(!dir.path().join("lake").exists(), "nothing written locally");
}
