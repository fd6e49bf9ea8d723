//! What a profiles refresh is asked to do and what it reports.

use chrono::NaiveDate;

use cdplake_core::audit::{JobReport, RowCounts};

use crate::quality::QualityResult;

#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// The business date profiles are computed as of (events after it are ignored).
    pub as_of: NaiveDate,
    /// Recompute every event and profile instead of the touched ones.
    pub full: bool,
    /// Publish even when a quality rule fails (the failure is still recorded).
    pub force: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProfilesReport {
    pub as_of: String,
    pub full_rebuild: bool,
    pub events_written: u64,
    pub anonymous_events_written: u64,
    pub persons_touched: u64,
    pub profiles_written: u64,
    pub profiles_retired: u64,
    pub profiles: u64,
    pub quality: Vec<QualityResult>,
    pub published: bool,
}

impl JobReport for ProfilesReport {
    fn row_counts(&self) -> RowCounts {
        RowCounts { read: 0, written: self.profiles_written }
    }
}

pub fn describe_report(r: &ProfilesReport) -> String {
    if !r.published && r.quality.is_empty() {
        return format!("profiles as of {}: nothing new ({} profiles)", r.as_of, r.profiles);
    }
    let mode = if r.full_rebuild { "full rebuild" } else { "incremental" };
    let failed = r.quality.iter().filter(|q| !q.passed).count();
    format!(
        "profiles as of {} ({mode}): {} events written ({} anonymous), {} persons touched, {} profiles written, \
         {} retired, {} in total; quality: {} rules, {} failed{}",
        r.as_of,
        r.events_written,
        r.anonymous_events_written,
        r.persons_touched,
        r.profiles_written,
        r.profiles_retired,
        r.profiles,
        r.quality.len(),
        failed,
        if r.published { "" } else { "; nothing published" }
    )
}
