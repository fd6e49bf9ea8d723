//! `cdplake audience`: audiences as expressions over segment bitmaps (`expr`), their members
//! and changes per build (`build`), and exports of their members (`export`).

pub mod build;
pub mod export;
pub mod expr;

pub use build::{AudienceReport, build_audience, count_audience, describe_report, evaluate};
