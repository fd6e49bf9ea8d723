//! `[engine]`: the memory budget of every job's queries, and where they spill.

use std::path::PathBuf;

use cdplake_engine::MemoryBudget;
use cdplake_engine::memory::parse_size;
use serde::Deserialize;

/// `[engine]`. `--memory-limit` / `CDPLAKE_MEMORY_LIMIT` and `--spill-dir` / `CDPLAKE_SPILL_DIR`
/// override it.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Memory the operators of a job's queries may hold together, e.g. "2GiB", "512MiB"
    /// [default: half of the machine's memory, or of the Lambda's]. Beyond it sorts, joins and
    /// aggregates spill to disk; what cannot spill fails with an error naming the operator.
    pub memory_limit: Option<String>,
    /// Directory for spill files [default: the system temp directory; /tmp in Lambda].
    pub spill_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// The budget from the flags (or their variables), else this section, else the default.
    pub fn budget(&self, memory_limit: Option<&str>, spill_dir: Option<PathBuf>) -> Result<MemoryBudget, String> {
        let mut budget = MemoryBudget::default_for_this_machine();
        if let Some(text) = memory_limit.or(self.memory_limit.as_deref()) {
            budget.limit = parse_size(text).map_err(|e| format!("memory limit: {e}"))?;
        }
        budget.spill_dir = spill_dir.or_else(|| self.spill_dir.clone());
        Ok(budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_default() {
        let file = EngineConfig { memory_limit: Some("512MiB".into()), spill_dir: Some("/spill".into()) };
        assert_eq!(file.budget(None, None).unwrap().limit, 512 << 20);
        assert_eq!(file.budget(Some("256MiB"), None).unwrap().limit, 256 << 20);
        assert_eq!(file.budget(None, Some("/other".into())).unwrap().spill_dir, Some("/other".into()));
        let default = EngineConfig::default().budget(None, None).unwrap();
        assert_eq!(default, MemoryBudget::default_for_this_machine());
        assert!(file.budget(Some("lots"), None).unwrap_err().contains("lots"));
    }
}
