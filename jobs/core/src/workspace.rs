//! Opening the lake and its catalog the same way for every entry point (CLI, Lambda, tests).

use std::path::Path;

use cdplake_catalog::Catalog;
use cdplake_engine::Lake;

use crate::config::Config;
use crate::error::{JobError, Result};

/// An opened lake, its catalog and the configuration they came from.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub config: Config,
    pub catalog: Catalog,
}

impl Workspace {
    /// Open the lake named by `explicit_root` (the `--lake` flag or `CDPLAKE_LAKE`), else by the
    /// config file, else `./lake`; the catalog is created on first use when the lake is writable.
    pub async fn open(config_path: Option<&Path>, explicit_root: Option<&str>) -> Result<Self> {
        let config = Config::load(config_path)?;
        Self::open_with(config, explicit_root).await
    }

    /// Open the workspace of a serverless function: its memory budget first, from
    /// `CDPLAKE_MEMORY_LIMIT` / `CDPLAKE_SPILL_DIR`, else the configuration's `[engine]`, else half
    /// of the function's memory, spilling to the system temp directory (`/tmp` in Lambda).
    pub async fn open_for_function(config_path: Option<&Path>, explicit_root: Option<&str>) -> Result<Self> {
        let config = Config::load(config_path)?;
        let limit = std::env::var("CDPLAKE_MEMORY_LIMIT").ok();
        let spill_dir = std::env::var_os("CDPLAKE_SPILL_DIR").map(std::path::PathBuf::from);
        let budget = config
            .engine
            .budget(limit.as_deref(), spill_dir)
            .map_err(|reason| JobError::bad_input("the memory budget", reason))?;
        cdplake_engine::memory::install(budget)?;
        Self::open_with(config, explicit_root).await
    }

    pub async fn open_with(config: Config, explicit_root: Option<&str>) -> Result<Self> {
        let root = config.lake_root(explicit_root);
        let lake = Lake::open_with_options(&root, config.lake.storage.clone()).await?;
        let catalog = Catalog::open(&lake).await?;
        Ok(Self { config, catalog })
    }

    pub fn lake(&self) -> &Lake {
        self.catalog.lake()
    }
}
