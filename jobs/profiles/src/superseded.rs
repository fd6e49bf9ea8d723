//! A profiles run overtaken by a concurrent one: when a table it writes was already written from
//! a newer `curated.id_mapping`, the run stops as superseded and the runners rerun it.

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::ID_MAPPING;

/// Fails with [`JobError::Superseded`] when `table` was written from a newer `curated.id_mapping`
/// version (`read`) than this run loaded (`current`): a concurrent run got there first, and
/// writing this run's rows would take the persons back in time. The runners rerun the step.
/// A `read` version that id_mapping does not have (it was dropped and made anew, so its versions
/// started over) supersedes nothing: the run goes on and remaps what it must.
pub async fn check_not_superseded(workspace: &Workspace, table: &str, read: Option<i64>, current: i64) -> Result<()> {
    let Some(read) = read.filter(|read| *read > current) else { return Ok(()) };
    let latest = workspace.lake().table(&ID_MAPPING.id()).await?.version().unwrap_or(0) as i64;
    match superseded(read, current, latest) {
        true => Err(JobError::Superseded {
            table: table.to_string(),
            detail: format!("it was written from curated.id_mapping version {read}, this run read version {current}"),
        }),
        false => Ok(()),
    }
}

/// Whether a table written from id_mapping version `read` supersedes a run that read `current`,
/// id_mapping being at `latest` now.
fn superseded(read: i64, current: i64, latest: i64) -> bool {
    read > current && read <= latest
}

#[cfg(test)]
mod tests {
    use super::superseded;

    #[test]
    fn a_table_written_from_a_newer_mapping_supersedes_a_run_unless_the_mapping_was_made_anew() {
        assert!(superseded(7, 5, 7), "a concurrent run read version 7 and published");
        assert!(superseded(7, 5, 9));
        assert!(!superseded(5, 5, 9) && !superseded(4, 5, 9), "same or older: this run is the newer");
        assert!(!superseded(57, 3, 3), "id_mapping dropped and made anew: its versions started over");
    }

    #[test]
    fn a_superseded_step_is_rerun() {
        let err = cdplake_core::error::JobError::Superseded { table: "t".into(), detail: "d".into() };
        assert!(err.is_commit_conflict(), "the runners rerun a superseded step: {err}");
    }
}
