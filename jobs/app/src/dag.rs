//! The pipeline's order of steps, written once: `cdplake demo`, the schedule handler and the S3
//! handler all build a [`Dag`] and run it.
//!
//! ```text
//! ingest SOURCE ─► clean SOURCE ─┐   (one pair per source)
//!                                ├─► identity ─► profiles ─► segments ─► audience NAME ─► maintain
//! ingest OTHER  ─► clean OTHER  ─┘
//! ```
//!
//! Each entry point chooses how far the run goes ([`Through`]) and which objects are ingested
//! (a sweep of `landing/`, or none when the S3 handler ingested its objects itself). Steps run
//! in this order; each is rerun when it loses a commit race with a concurrent run (its
//! watermarks make the rerun skip what the winner did), and a failed step ends the run: every
//! later step depends on it (segments keep their last build when a profile quality gate fails).

use chrono::{DateTime, NaiveDate, Utc};

use cdplake_core::error::Result;
use cdplake_core::retry::retry_step;
use cdplake_core::workspace::Workspace;
use cdplake_profiles::RefreshOptions;

const ATTEMPTS: usize = 20;

/// The last step a run goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Through {
    /// ingest, clean, identity, profiles (the S3 handler).
    Profiles,
    /// ... and segments (the demo).
    Segments,
    /// ... and the configured audiences.
    Audiences,
    /// ... and maintenance of every table (the daily schedule).
    Maintain,
}

/// One step of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ingest everything new under `landing/<source>/`.
    Ingest {
        source: String,
    },
    Clean {
        source: String,
    },
    Identity,
    Profiles,
    Segments,
    Audience {
        name: String,
        rule: String,
    },
    Maintain,
}

impl Step {
    pub fn name(&self) -> String {
        match self {
            Step::Ingest { source } => format!("ingest {source}"),
            Step::Clean { source } => format!("clean {source}"),
            Step::Identity => "identity".into(),
            Step::Profiles => "profiles".into(),
            Step::Segments => "segments".into(),
            Step::Audience { name, .. } => format!("audience {name}"),
            Step::Maintain => "maintain".into(),
        }
    }
}

/// The steps of one run, in an order that respects every dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    pub steps: Vec<Step>,
    pub as_of: NaiveDate,
}

/// What a run did: (step, what it did), in order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DagOutcome {
    pub business_date: String,
    pub steps: Vec<(String, String)>,
    /// Persons whose profile the run recomputed.
    pub persons_touched: u64,
}

impl cdplake_core::audit::JobReport for DagOutcome {}

impl Dag {
    /// The pipeline for `sources` up to `through`; with `sweep`, each source's landing prefix
    /// is ingested first.
    pub fn new(workspace: &Workspace, sources: &[String], sweep: bool, as_of: NaiveDate, through: Through) -> Self {
        let mut steps = Vec::new();
        for source in sources {
            if sweep {
                steps.push(Step::Ingest { source: source.clone() });
            }
            steps.push(Step::Clean { source: source.clone() });
        }
        steps.push(Step::Identity);
        steps.push(Step::Profiles);
        if through >= Through::Segments {
            steps.push(Step::Segments);
        }
        if through >= Through::Audiences {
            for (name, rule) in &workspace.config.audiences.packages {
                steps.push(Step::Audience { name: name.clone(), rule: rule.clone() });
            }
        }
        if through >= Through::Maintain && workspace.config.maintenance_daily() {
            steps.push(Step::Maintain);
        }
        Self { steps, as_of }
    }

    /// Run every step in order; the first failure ends the run.
    pub async fn run(&self, workspace: &Workspace, now: DateTime<Utc>) -> Result<DagOutcome> {
        let mut outcome = DagOutcome { business_date: self.as_of.to_string(), ..Default::default() };
        let as_of = self.as_of;
        for step in &self.steps {
            let what = match step {
                Step::Ingest { source } => {
                    let source = workspace.config.source(source).ok_or_else(|| unknown(source))?;
                    let reports =
                        retry_step(ATTEMPTS, || cdplake_ingest::ingest::ingest(workspace, &source, &[], now)).await?;
                    format!("{} new files", reports.iter().filter(|r| r.batch_id.is_some()).count())
                }
                Step::Clean { source } => {
                    let source = workspace.config.source(source).ok_or_else(|| unknown(source))?;
                    let report = retry_step(ATTEMPTS, || cdplake_ingest::clean::clean(workspace, &source, now)).await?;
                    if report.batches > 0 {
                        cdplake_ingest::clean::describe_report(&report)
                    } else {
                        format!("clean.{}: nothing new to clean", source.name)
                    }
                }
                Step::Identity => {
                    let report = retry_step(ATTEMPTS, || cdplake_identity::resolve(workspace, now)).await?;
                    cdplake_identity::describe_report(&report)
                }
                Step::Profiles => {
                    let options = RefreshOptions { as_of, full: false, force: false };
                    let report = retry_step(ATTEMPTS, || cdplake_profiles::refresh(workspace, &options, now)).await?;
                    outcome.persons_touched = report.persons_touched;
                    cdplake_profiles::describe_report(&report)
                }
                Step::Segments => {
                    let report = retry_step(ATTEMPTS, || {
                        cdplake_profiles::segments::build_segments(workspace, Some(as_of), now)
                    })
                    .await?;
                    cdplake_profiles::segments::describe_report(&report)
                }
                Step::Audience { name, rule } => {
                    let report = retry_step(ATTEMPTS, || {
                        cdplake_profiles::audience::build_audience(workspace, name, rule, Some(as_of), now)
                    })
                    .await?;
                    cdplake_profiles::audience::describe_report(&report)
                }
                Step::Maintain => {
                    // Storage ages are wall-clock: maintenance measures them against the clock.
                    let request = cdplake_operations::maintain::MaintainRequest::default();
                    let invoker = cdplake_core::audit::Invoker { trigger: "schedule".into(), principal: "dag".into() };
                    let report =
                        cdplake_operations::maintain::maintain(workspace, &request, &invoker, Utc::now()).await?;
                    let (before, after): (u64, u64) =
                        report.tables.iter().fold((0, 0), |a, t| (a.0 + t.before.files, a.1 + t.after.files));
                    format!("{} tables maintained: {before} → {after} data files", report.tables.len())
                }
            };
            outcome.steps.push((step.name(), what));
        }
        Ok(outcome)
    }
}

fn unknown(source: &str) -> cdplake_core::JobError {
    cdplake_core::JobError::bad_input("sources", format!("no source named {source:?}"))
}
