//! Getting data in: `ingest` appends source files to `raw.<source>` as received, `clean` types,
//! validates, normalises and hashes them into `clean.<source>` (rejects to the quarantine),
//! `check` dry-runs a contract on files, and `privacy` holds the suppression list both honour.

pub mod check;
pub mod clean;
pub mod ingest;
pub mod privacy;
mod ranking;
mod typing;
