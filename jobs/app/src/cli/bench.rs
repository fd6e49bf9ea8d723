//! `cdplake bench ...`: the benchmark helpers that benches/ drives (hidden from --help).

use std::path::PathBuf;

use cdplake_app::bench::bitmaps::{Layout, bench_bitmaps};
use cdplake_app::bench::micro_batches::bench_micro_batches;
use cdplake_core::Workspace;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// S3-event micro-batches through the S3 handler, with maintenance every N (benches/maintenance.sh).
    MicroBatches {
        #[arg(long, default_value_t = 500)]
        batches: u64,
        /// Report files, log length and batch times every this many batches
        #[arg(long, default_value_t = 100)]
        window: u64,
        /// Run `maintain` every this many batches (0: never)
        #[arg(long, default_value_t = 0)]
        maintain_every: u64,
    },
    /// Synthetic segments a, b, c for benches/bitmaps.sh: stored in curated.segment_bitmaps, ids as Parquet.
    Bitmaps {
        /// Members per segment (from a population of twice as many)
        #[arg(long, default_value_t = 1_000_000)]
        members: u32,
        #[arg(long, value_enum, default_value_t = Layout::Random)]
        layout: Layout,
        /// Directory for the Parquet id lists
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(workspace: &Workspace, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::MicroBatches { batches, window, maintain_every } => {
            bench_micro_batches(workspace, batches, window, maintain_every, |w| {
                println!("{}", serde_json::to_string(w).unwrap_or_default());
            })
            .await?;
        }
        BenchCommand::Bitmaps { members, layout, out } => {
            let report = bench_bitmaps(workspace, members, layout, &out, chrono::Utc::now()).await?;
            out_json!(&report);
        }
    }
    Ok(())
}
