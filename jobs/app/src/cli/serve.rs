//! `cdplake serve`: profile look-ups over HTTP from an in-memory index (read-only).

use std::sync::Arc;

use cdplake_core::Workspace;
use cdplake_serving::serve::{IndexHolder, Permissions, http};
use clap::Args;

#[derive(Args)]
#[command(after_help = "Builds an index from curated.id_mapping, customer_profiles, user_events, segment_bitmaps and \
audience_packages (an identifier resolves to its person in one hash probe), then answers:\n\n  \
GET /v1/profiles/{id_type}/{value}?events=N   the person: profile row, identifiers (first/last seen), segments \
and audience packages of the latest builds, latest N events; 404 for an unknown identifier, 400 for a malformed one\n  \
GET /v1/health                                index size, memory, build time, table versions\n  \
POST /v1/query {\"sql\": \"SELECT ...\"}          only with --allow-sql: one read-only statement\n\n\
The server never writes to the lake. Every --refresh-secs it reads the tables' Delta versions; when one changed \
(a new profiles build), it rebuilds the index in the background and swaps it in.\n\nExamples:\n  \
cdplake serve --listen 127.0.0.1:8080\n  \
curl -s 127.0.0.1:8080/v1/profiles/member_id/MBR0000001?events=5\n  \
curl -s 127.0.0.1:8080/v1/health")]
pub struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Allow POST /v1/query (one read-only SELECT/WITH/SHOW/DESCRIBE/EXPLAIN)
    #[arg(long)]
    allow_sql: bool,
    /// Seconds between checks for a new version of the curated tables
    #[arg(long, default_value_t = 10)]
    refresh_secs: u64,
    /// Latest events kept per person (the most ?events= may ask for)
    #[arg(long, default_value_t = cdplake_serving::serve::DEFAULT_EVENTS_KEPT)]
    events_kept: usize,
}

pub async fn run(workspace: &Workspace, args: ServeArgs) -> anyhow::Result<()> {
    let holder = Arc::new(IndexHolder::open(workspace.clone(), args.events_kept).await?);
    let stats = holder.get().stats().clone();
    let options = http::ServeOptions {
        listen: args.listen,
        permissions: Permissions { allow_sql: args.allow_sql },
        refresh_every: std::time::Duration::from_secs(args.refresh_secs.max(1)),
    };
    let server = http::Server::bind(holder.clone(), &options).await?;
    let address = server.local_addr()?;
    out!(
        "serving {} persons ({} identifiers, {} profiles; index {} MB, built in {:.0} ms) on http://{address}",
        stats.persons,
        stats.identifiers,
        stats.profiles,
        stats.memory_bytes / (1 << 20),
        stats.build_ms
    );
    if let Some((t, v)) = holder.get().sample_identifiers(1).first() {
        out!("try: curl -s http://{address}/v1/profiles/{t}/{v}?events=5");
    }
    // Read-only: stopping it (Ctrl-C, SIGTERM) loses nothing.
    server.run(std::future::pending::<()>()).await?;
    Ok(())
}
