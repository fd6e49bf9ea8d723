//! `cdplake identity`: stitch identifiers into persons (one_id), incrementally and stably. The
//! job is [`resolve::resolve`]; `explain`, `report` and `unlink` are the commands that look at
//! and mend the graph.

pub mod explain;
mod hubs;
mod observe;
pub mod report;
pub mod resolve;
mod split;
mod store;
pub mod union_find;
pub mod unlink;
mod unlinks;

pub use resolve::{IdentityReport, describe_report, resolve};
