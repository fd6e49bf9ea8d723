//! `cdplake report`: not written yet.
use crate::error::{JobError, Result};
use crate::workspace::Workspace;
pub struct Chart {
    pub id: String,
}
pub struct Report {
    pub html: String,
    pub as_of: String,
    pub charts: Vec<Chart>,
}
pub async fn build_report(_workspace: &Workspace, _as_of: Option<chrono::NaiveDate>) -> Result<Report> {
    Err(JobError::Invalid("cdplake report is not written yet".into()))
}
