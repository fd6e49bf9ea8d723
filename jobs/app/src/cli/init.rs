//! `cdplake init`: create the lake and its catalog.

use cdplake_app::init;
use cdplake_core::Workspace;

pub async fn run(workspace: &Workspace) -> anyhow::Result<()> {
    let report = init::init(workspace).await?;
    out!("lake ready at {} ({} tables in the catalog at {})", report.root, report.tables, report.catalog_location);
    Ok(())
}
