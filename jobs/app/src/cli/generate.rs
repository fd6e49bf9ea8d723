//! `cdplake generate`: the demo's sources at any scale, with the hidden ground truth.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "Example:\n  cdplake generate --persons 100000 --out /tmp/cdp-data\n  cdplake ingest --source customers /tmp/cdp-data/customers/customers.csv"
)]
pub struct GenerateArgs {
    /// How many people
    #[arg(long, default_value_t = 1000)]
    persons: u64,
    /// Seed of the deterministic generator
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory to write <source>/<file>, truth.csv (owner of every identifier) and
    /// truth_edges.csv (two identifiers of one person on one row) into
    #[arg(long)]
    out: PathBuf,
    /// Gzip every file (`.gz` appended): a 10M-person set then fits a small disk; ingest reads
    /// gzip as it streams
    #[arg(long)]
    gzip: bool,
}

/// The files are written as they are generated: memory stays flat at any `--persons`.
pub fn run(GenerateArgs { persons, seed, out, gzip }: GenerateArgs) -> anyhow::Result<()> {
    let written = cdplake_generate::generate_to_dir(persons, seed, &out, gzip)
        .with_context(|| format!("writing the generated files into {}", out.display()))?;
    out!(
        "{} files for {persons} people in {}/<source>/, ground truth in {} and {}",
        written.files.len(),
        out.display(),
        written.truth.display(),
        written.truth_edges.display()
    );
    Ok(())
}
