//! What the commands share: the output format argument, printing to stdout, the audit record of a
//! job, finding a source by name, and the error of a run that produced nothing usable.

use cdplake_core::output::Format;
use clap::Args;

pub use crate::errors::NoOutput;

#[derive(Args, Clone, Copy)]
pub struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Print to stdout; a closed pipe (`cdplake query ... | head`) ends the output quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, $($arg)*) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }};
}

/// Print `value` as pretty JSON.
macro_rules! out_json {
    ($value:expr) => {
        out!("{}", serde_json::to_string_pretty($value)?)
    };
}

/// A job the audit trail records: its name and its arguments (identifiers keyed-hashed).
pub struct AuditedJob {
    pub job: &'static str,
    pub arguments: serde_json::Value,
}

impl AuditedJob {
    pub fn new(job: &'static str, arguments: serde_json::Value) -> Option<Self> {
        Some(Self { job, arguments })
    }
}

/// The source named `name`, from the presets and cdplake.toml.
pub fn find_source(workspace: &cdplake_core::Workspace, name: &str) -> anyhow::Result<cdplake_zones::Source> {
    workspace.config.source(name).ok_or_else(|| {
        let known: Vec<String> = workspace.config.all_sources().into_iter().map(|s| s.name).collect();
        anyhow::anyhow!(
            "no source named {name:?}; known sources: {} (or declare [sources.{name}] in cdplake.toml)",
            known.join(", ")
        )
    })
}
