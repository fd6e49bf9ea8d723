//! A partition that is a copy of another table: the daily snapshot of a table for the price of
//! copying its files, not decoding and re-encoding every row.

use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add};
use deltalake::protocol::{DeltaOperation, SaveMode};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::{EngineError, Result};
use crate::lake::Lake;
use crate::naming::TableId;

const COMMIT_RETRIES: usize = 100;

fn invalid(target_id: &TableId, reason: String) -> EngineError {
    EngineError::delta(target_id, "copy into partition", deltalake::DeltaTableError::Generic(reason))
}

impl Lake {
    /// Make partition `column = value` of `target` hold exactly the rows of `source` as it is
    /// now: every data file of `source` is copied as is (same bytes, same statistics) into the
    /// partition's directory, and one commit adds them and removes what the partition held.
    /// `target`'s columns are `source`'s plus `column`, its only partition column; `source` is
    /// not partitioned. Readers see the old partition or the new one, never a mix.
    pub async fn copy_into_partition(
        &self,
        source: &DeltaTable,
        target_id: &TableId,
        column: &str,
        value: &str,
    ) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let store_error =
            |context: String| move |e: object_store::Error| EngineError::Store { context, source: Box::new(e) };
        let source_snapshot = source.snapshot().map_err(|e| EngineError::delta(target_id, "copy: source", e))?;
        if !source_snapshot.metadata().partition_columns().is_empty() {
            return Err(invalid(target_id, "the source table is partitioned".into()));
        }
        let mut target = self.table(target_id).await?;
        let target_snapshot = target.snapshot().map_err(|e| EngineError::delta(target_id, "copy", e))?;
        if target_snapshot.metadata().partition_columns() != [column.to_string()] {
            return Err(invalid(target_id, format!("the table is not partitioned by {column} alone")));
        }
        let (from, to) = (source.object_store(), target.object_store());
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = Vec::new();
        for file in source_snapshot.log_data().iter() {
            let name = file.path().rsplit('/').next().unwrap_or_default().to_string();
            let destination = Path::from(format!("{column}={value}/{name}"));
            let bytes = from
                .get(&file.object_store_path())
                .await
                .map_err(store_error(format!("{target_id}: reading {}", file.path())))?
                .bytes()
                .await
                .map_err(store_error(format!("{target_id}: reading {}", file.path())))?;
            to.put(&destination, bytes.into())
                .await
                .map_err(store_error(format!("{target_id}: writing {destination}")))?;
            actions.push(Action::Add(Add {
                path: destination.to_string(),
                partition_values: [(column.to_string(), Some(value.to_string()))].into(),
                size: file.size(),
                modification_time: now,
                data_change: true,
                stats: file.stats(),
                ..Default::default()
            }));
        }
        for file in target_snapshot.log_data().iter() {
            if file.partition_values_map().get(column) == Some(&Some(value.to_string())) {
                actions.push(Action::Remove(file.remove_action(true)));
            }
        }
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: Some(vec![column.to_string()]),
            predicate: Some(format!("{column} = {}", crate::sql::quote_literal(value))),
        };
        CommitBuilder::default()
            .with_actions(actions)
            .with_max_retries(COMMIT_RETRIES)
            .build(Some(target_snapshot), target.log_store(), operation)
            .await
            .map_err(|e| EngineError::delta(target_id, "copy into partition", e))?;
        target.update_state().await.map_err(|e| EngineError::delta(target_id, "copy: reload", e))?;
        Ok(target)
    }
}
