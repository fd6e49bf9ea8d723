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
}

pub fn run(GenerateArgs { persons, seed, out }: GenerateArgs) -> anyhow::Result<()> {
    let generated = cdplake_generate::generate_with_truth(persons, seed);
    let files = &generated.files;
    for file in files {
        let dir = out.join(file.source);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join(&file.name), &file.content)
            .with_context(|| format!("writing into {}", dir.display()))?;
    }
    std::fs::write(out.join("truth.csv"), &generated.truth)
        .with_context(|| format!("writing {}/truth.csv", out.display()))?;
    std::fs::write(out.join("truth_edges.csv"), &generated.truth_edges)
        .with_context(|| format!("writing {}/truth_edges.csv", out.display()))?;
    out!(
        "{} files for {persons} people in {}/<source>/, ground truth in {}/truth.csv and truth_edges.csv",
        files.len(),
        out.display(),
        out.display()
    );
    Ok(())
}
