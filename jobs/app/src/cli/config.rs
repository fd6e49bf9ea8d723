//! `cdplake config schema`: the JSON schema of cdplake.toml; needs no lake.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON schema of cdplake.toml (the repository publishes it as cdplake.schema.json).
    #[command(after_help = "Editors that read JSON schemas for TOML (Taplo / Even Better TOML) check cdplake.toml \
against it: put `#:schema ./cdplake.schema.json` on the file's first line.\n\nExample:\n  \
cdplake config schema > cdplake.schema.json")]
    Schema,
}

pub fn run(command: &ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Schema = command;
    out!("{}", cdplake_core::config::json_schema().trim_end());
    Ok(())
}
