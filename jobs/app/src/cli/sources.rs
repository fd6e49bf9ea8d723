//! `cdplake sources`: the built-in presets and the sources of cdplake.toml.

use cdplake_core::Workspace;
use cdplake_core::output::format_batches;
use cdplake_serving::inspect;

use super::common::FormatArg;

pub fn run(workspace: &Workspace, FormatArg { format }: FormatArg) -> anyhow::Result<()> {
    let sources = workspace.config.all_sources();
    out!("{}", format_batches(&[inspect::sources_batch(&sources)?], format)?);
    Ok(())
}
