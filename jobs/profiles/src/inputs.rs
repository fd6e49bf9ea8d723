//! What every phase of a refresh shares: the clean tables registered in its session, the daily
//! snapshot's partition column, and errors named by step.

use cdplake_engine::{EngineError, SqlSession};
use cdplake_zones::Source;
use cdplake_zones::contract::Contract;
use cdplake_zones::tables::clean_table;

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

/// The daily snapshot's partition column: the as-of date as `YYYY-MM-DD` (seed 000's `dt`).
pub const DT: &str = "dt";

pub(crate) fn query_error(context: &str) -> impl Fn(EngineError) -> JobError + '_ {
    move |e| JobError::Step { context: context.to_string(), source: Box::new(e) }
}

/// Register `clean.<source>`, or an empty stand-in with its contract's schema when the source
/// has no clean table yet (so every profile column keeps its type). Returns whether it exists.
pub(crate) async fn register_clean(workspace: &Workspace, session: &SqlSession, source: &Source) -> Result<bool> {
    let id = clean_table(source);
    if let Some(table) = workspace.lake().table_if_exists(&id).await? {
        session.register_loaded(id.zone(), id.name(), &table).await?;
        return Ok(true);
    }
    let schema = Contract::new(source, None).clean_schema();
    session.register_rows(&id.to_string(), schema, Vec::new())?;
    Ok(false)
}
