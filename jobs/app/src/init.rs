//! `cdplake init`: make sure the lake is reachable, writable and has its catalog.

use cdplake_catalog::catalog_table_id;

use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;

#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// The lake root URL.
    pub root: String,
    /// Where the catalog table lives.
    pub catalog_location: String,
    /// Tables registered in the catalog.
    pub tables: usize,
}

/// Check the lake can be written and its catalog exists (opening the workspace created it).
pub async fn init(workspace: &Workspace) -> Result<InitReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let tables = workspace.catalog.list().await?.len();
    Ok(InitReport {
        root: lake.location().root().to_string(),
        catalog_location: lake.location().table_url(&catalog_table_id()).to_string(),
        tables,
    })
}
