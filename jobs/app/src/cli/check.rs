//! `cdplake check`: cdplake.toml, and what a source's contract would do to files; writes nothing.

use std::path::PathBuf;

use anyhow::Context;
use cdplake_core::Config;
use cdplake_ingest::check::{self, FileCheck};
use clap::Args;

use super::common::NoOutput;

#[derive(Args)]
#[command(after_help = "Without files: validates cdplake.toml (unknown keys, column types, formats, time zones, \
identity limits) and lists what it defines. With --source and files: reads each file as `ingest` would and applies \
the contract to the first --sample rows as `clean` would: rows kept and quarantined (by rule, with examples), \
values kept as null, identifier columns and their placeholders. Exits 3 when no row would be kept.\n\n\
Examples:\n  cdplake check\n  cdplake check --source cdnow data/CDNOW_master.csv\n  \
cdplake check --source customers landing/customers/*.csv --sample 5000 --json")]
pub struct CheckArgs {
    /// The source whose contract to apply to FILE
    #[arg(long, requires = "files")]
    source: Option<String>,
    /// Files to dry-run (local paths)
    files: Vec<PathBuf>,
    /// Rows per file to check
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    /// Print the checks as JSON
    #[arg(long)]
    json: bool,
}

/// Needs the configuration only, not a lake.
pub async fn run(config: Option<&std::path::Path>, args: CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    check_event_mappings(&config).await?;
    let Some(name) = args.source.as_deref() else {
        return describe_configuration(&config);
    };
    let source = config.source(name).ok_or_else(|| {
        let known: Vec<String> = config.all_sources().into_iter().map(|s| s.name).collect();
        anyhow::anyhow!("no source named {name:?}; known sources: {}", known.join(", "))
    })?;
    let mut checks = Vec::new();
    for file in &args.files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        checks.push(check::check_file(&source, &file.display().to_string(), &bytes, args.sample)?);
    }
    if args.json {
        out_json!(&checks);
    } else {
        for c in &checks {
            out!("{}", check::describe(c));
        }
    }
    refuse_when_nothing_kept(name, &checks)
}

async fn check_event_mappings(config: &Config) -> anyhow::Result<()> {
    for (mapping_source, mapping) in &config.profiles.events {
        let source = config.source(mapping_source).ok_or_else(|| {
            anyhow::anyhow!("[profiles.events.{mapping_source}]: there is no source {mapping_source:?}")
        })?;
        cdplake_profiles::validate::check_mapping(&source, mapping).await.map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn describe_configuration(config: &Config) -> anyhow::Result<()> {
    let configured: Vec<&String> = config.sources.keys().collect();
    out!(
        "configuration OK: {} sources ({} from cdplake.toml{}), {} identity types with limits, {} event mappings \
         of your own, lake {}",
        config.all_sources().len(),
        configured.len(),
        if configured.is_empty() {
            String::new()
        } else {
            format!(": {}", configured.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
        },
        config.identity.types.len(),
        config.profiles.events.len(),
        config.lake_root(None)
    );
    Ok(())
}

/// Exit 3 when no row of a file would be kept.
fn refuse_when_nothing_kept(name: &str, checks: &[FileCheck]) -> anyhow::Result<()> {
    if checks.iter().any(|c| c.kept == 0 && c.rows_checked + u64::from(c.missing_columns.is_some()) > 0) {
        return Err(NoOutput(format!(
            "no row of {} would be kept: fix [sources.{name}] in cdplake.toml (see the rules above)",
            checks.iter().filter(|c| c.kept == 0).map(|c| c.file.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    Ok(())
}
