//! The memory budget of a process: one spill-capable pool (`FairSpillPool`) and one disk
//! manager writing spill files to one directory, shared by every DataFusion session. An operator that cannot get memory within the budget spills; one that cannot spill
//! fails with DataFusion's "Resources exhausted" error naming the operator, never with the OS
//! killing the process.
//!
//! The budget is set once, at start-up, by the entry point (the CLI's `--memory-limit`, the
//! Lambda's configured memory); sessions made before that, or in a process that never sets one,
//! get [`MemoryBudget::default_for_this_machine`].

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::error::{EngineError, Result};

/// The share of the machine's (or the Lambda's) memory a process takes when told nothing: the
/// rest is for what the pool does not see (Arrow buffers held outside operators, the allocator).
const DEFAULT_SHARE: f64 = 0.5;

/// How much memory queries may hold, and where they spill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes the operators of all queries may hold together.
    pub limit: u64,
    /// Where spill files go [default: the system temp directory].
    pub spill_dir: Option<PathBuf>,
}

impl MemoryBudget {
    /// Half of the Lambda's configured memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, MB) or of the
    /// machine's (`MemTotal` of /proc/meminfo); 1 GiB when neither can be read.
    pub fn default_for_this_machine() -> Self {
        let lambda = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|mb| mb.trim().parse::<u64>().ok());
        let total = lambda.map(|mb| mb << 20).or_else(machine_memory).unwrap_or(2 << 30);
        Self { limit: (total as f64 * DEFAULT_SHARE) as u64, spill_dir: None }
    }

    fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &self.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .with_disk_manager_builder(disk)
            .build_arc()
            .map_err(|e| EngineError::query("the memory budget", e))
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

static RUNTIME: OnceLock<(MemoryBudget, Arc<RuntimeEnv>)> = OnceLock::new();

/// Set the process's budget; the first call wins, a later different one is an error.
pub fn install(budget: MemoryBudget) -> Result<()> {
    let runtime = budget.runtime()?;
    let installed = RUNTIME.get_or_init(|| (budget.clone(), runtime));
    if installed.0 != budget {
        return Err(EngineError::query(
            "the memory budget",
            DataFusionError::Configuration(format!(
                "already set to {} bytes for this process; cannot change it to {}",
                installed.0.limit, budget.limit
            )),
        ));
    }
    Ok(())
}

/// The process's budget (installing the default one when none was set).
pub fn budget() -> MemoryBudget {
    shared().0.clone()
}

/// Where this process writes temporary files (spill files, downloads): the budget's spill
/// directory, else the system temp directory.
pub fn spill_dir() -> PathBuf {
    budget().spill_dir.unwrap_or_else(std::env::temp_dir)
}

/// A runtime for one session: the process's memory pool and disk manager (one budget for
/// every query, write and MERGE), with the session's own object-store registry, so a lake's
/// tables are read through that lake's stores even when another lake of the process has
/// tables at the same location.
pub(crate) fn runtime() -> Arc<RuntimeEnv> {
    let shared = &shared().1;
    let mut builder = RuntimeEnvBuilder::new().with_memory_pool(shared.memory_pool.clone());
    builder.disk_manager = Some(shared.disk_manager.clone());
    builder.build_arc().expect("a runtime of already built parts builds")
}

fn shared() -> &'static (MemoryBudget, Arc<RuntimeEnv>) {
    RUNTIME.get_or_init(|| {
        let budget = MemoryBudget::default_for_this_machine();
        let runtime = budget.runtime().expect("the default memory budget builds");
        (budget, runtime)
    })
}

/// `2GiB`, `256MiB`, `512MB`, `1.5G`, `1048576` (bytes): binary units for `K`/`M`/`G`/`T` with
/// or without `i`/`B`, decimal for `KB`/`MB`/`GB`/`TB`.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a size (e.g. 2GiB, 512MiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use KiB, MiB, GiB or bytes)")),
    };
    Ok((number * scale as f64) as u64)
}

/// True when `err` is DataFusion running out of its memory budget.
pub fn is_out_of_memory(err: &DataFusionError) -> bool {
    matches!(err.find_root(), DataFusionError::ResourcesExhausted(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("256m"), Ok(256 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("2 parsecs").is_err());
    }

    #[test]
    fn the_default_is_half_the_lambdas_memory_or_the_machines() {
        let budget = MemoryBudget::default_for_this_machine();
        let expected = match std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            Ok(mb) => mb.parse::<u64>().unwrap() << 19,
            Err(_) => machine_memory().unwrap() / 2,
        };
        assert_eq!(budget.limit, expected);
    }
}
