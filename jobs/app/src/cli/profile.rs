//! `cdplake profile get`: a person by any identifier.

use anyhow::bail;
use cdplake_core::Workspace;
use cdplake_serving::serve::{IndexHolder, Lookup, LookupError, describe_answer, lookup, parse_identifier};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// One person by any of their identifiers (the answer `GET /v1/profiles/ID_TYPE/VALUE` gives).
    #[command(after_help = "Exits with 1 and says so when nobody has the identifier.\n\nExamples:\n  \
cdplake profile get member_id:MBR0000001\n  cdplake profile get customer_id:C00042 --events 5 --json")]
    Get {
        /// The identifier, as ID_TYPE:VALUE
        identifier: String,
        /// Latest events to show
        #[arg(long, default_value_t = 10)]
        events: usize,
        /// Print the whole answer as JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(workspace: &Workspace, command: ProfileCommand) -> anyhow::Result<()> {
    let ProfileCommand::Get { identifier, events, json } = command;
    let (id_type, id_value) = match parse_identifier(&identifier) {
        Ok(parts) => parts,
        Err(LookupError::Malformed(m) | LookupError::NotFound(m)) => bail!(m),
    };
    let holder = IndexHolder::open(workspace.clone(), events).await?;
    match lookup(&holder.get(), &Lookup { id_type, id_value, events })? {
        Ok(answer) if json => out_json!(&answer),
        Ok(answer) => out!("{}", describe_answer(&answer)),
        Err(LookupError::Malformed(m) | LookupError::NotFound(m)) => bail!(m),
    }
    Ok(())
}
