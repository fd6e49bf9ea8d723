//! From persons to audiences: `refresh` builds unified events and the customer 360 profile
//! (RFM, lifecycle, engagement) incrementally, gated by the `quality` rules; `segments` makes one
//! bitmap of persons per segment; `audience` evaluates expressions over them and exports members.

pub mod audience;
pub mod build;
pub mod candidate;
pub mod country;
pub mod events;
pub mod ids;
mod inputs;
pub mod publish;
pub mod quality;
pub mod refresh;
pub mod report;
pub mod scores;
pub mod segments;
pub mod statements;
pub mod superseded;
pub mod touched;
pub mod validate;
pub mod watermarks;

pub use inputs::DT;
pub use refresh::refresh;
pub use report::{ProfilesReport, RefreshOptions, describe_report};
