//! What the published profiles last read, and what is there to read now: the first phase of a
//! refresh, which decides between recomputing everyone and the touched persons only.
//!
//! The watermarks are Delta application transactions in the commits of
//! `curated.customer_profiles`: the `_refresh_seq` of `curated.user_events` read, the
//! `curated.id_mapping` version read, the as-of date, and one per CRM batch applied. A blocked
//! or failed run commits none of them, so the next run redoes its work.

use cdplake_engine::applied_version;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::sql::{in_list, quote_ident, quote_literal};
use chrono::NaiveDate;

use crate::build::AttributeInput;
use crate::events::EventsUpdate;
use crate::ids::IDS;
use crate::inputs::register_clean;
use cdplake_core::batches::{batch_ids, pending_batches};
use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{CUSTOMER_PROFILES, app_ids, clean_table};

/// Days since 1970-01-01.
pub fn days(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

/// The three watermarks, as read by the published profiles or as they are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub events_seq: i64,
    pub mapping: i64,
    pub as_of: i64,
}

/// A CRM source's batches the published profiles have not applied yet.
pub struct CrmBatches {
    pub source: String,
    /// Its index in [`Watermarks::attributes`].
    pub attribute: usize,
    pub batches: Vec<String>,
    /// The source's reprocess generation (see `clean::generation`), part of its watermarks.
    pub generation: u64,
}

/// The watermarks read and current, the stored profiles, and the attribute inputs.
pub struct Watermarks {
    /// `curated.customer_profiles` as published, if it exists.
    pub stored: Option<DeltaTable>,
    /// What the stored profiles read (None: a mark never recorded).
    pub read: Option<Marks>,
    pub current: Marks,
    /// CRM batches not applied yet (every batch when there are no profiles yet).
    pub crm: Vec<CrmBatches>,
    pub attributes: Vec<AttributeInput>,
}

impl Watermarks {
    /// Read the stored profiles' watermarks; register every attribute source's clean table.
    pub async fn read(workspace: &Workspace, session: &cdplake_engine::SqlSession, current: Marks) -> Result<Self> {
        let lake = workspace.lake();
        let stored = if lake.table_exists(&CUSTOMER_PROFILES.id()).await? {
            Some(lake.table(&CUSTOMER_PROFILES.id()).await?)
        } else {
            None
        };
        let read = match &stored {
            Some(table) => {
                session.register_loaded(CUSTOMER_PROFILES.zone(), CUSTOMER_PROFILES.table(), table).await?;
                read_marks(table).await?
            }
            None => None,
        };
        let mut attributes = Vec::new();
        let mut crm = Vec::new();
        let label = CUSTOMER_PROFILES.id().to_string();
        for a in &workspace.config.profiles.attributes {
            let Some(source) = workspace.config.source(&a.source) else { continue };
            if register_clean(workspace, session, &source).await? {
                let clean = clean_table(&source);
                let generation = cdplake_core::batches::clean_generation(workspace, &source).await?;
                let app_id = |b: &str| app_ids::at_generation(app_ids::profiled_batch(&a.source, b), generation);
                let batches = match &stored {
                    Some(t) => pending_batches(workspace, &clean, t, &label, app_id).await?,
                    None => batch_ids(workspace, &clean).await?,
                };
                if !batches.is_empty() {
                    crm.push(CrmBatches { source: a.source.clone(), attribute: attributes.len(), batches, generation });
                }
            }
            attributes.push(AttributeInput {
                table: format!("clean.{}", a.source),
                key_column: a.key_column.clone(),
                key_id_type: a.key_id_type.clone(),
                order_by: a.order_by.clone(),
                columns: a.columns.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        }
        Ok(Self { stored, read, current, crm, attributes })
    }

    /// Everyone is recomputed: asked for, events remapped, no profiles yet, or a new as-of date.
    pub fn full(&self, forced: bool, events: &EventsUpdate) -> bool {
        forced || events.full || self.read.is_none_or(|r| r.as_of != self.current.as_of)
    }

    /// Something was read since the stored profiles (a commit is due even if no row changes).
    pub fn moved(&self) -> bool {
        self.read != Some(self.current) || !self.crm.is_empty()
    }

    /// The application transactions a publish commits.
    pub fn transactions(&self) -> Vec<Transaction> {
        let mut txns = vec![
            Transaction::new(app_ids::PROFILES_MAPPING_VERSION, self.current.mapping),
            Transaction::new(app_ids::PROFILES_EVENTS_VERSION, self.current.events_seq),
            Transaction::new(app_ids::PROFILES_AS_OF, self.current.as_of),
        ];
        for c in &self.crm {
            txns.extend(c.batches.iter().map(|b| {
                Transaction::new(app_ids::at_generation(app_ids::profiled_batch(&c.source, b), c.generation), 1)
            }));
        }
        txns
    }

    /// The profile columns of every attribute source, in order, each once.
    pub fn attribute_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for (name, _) in self.attributes.iter().flat_map(|a| &a.columns) {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
        columns
    }

    /// SQL selecting the one_ids of the new CRM rows (one query per source with new batches).
    pub fn crm_persons_sql(&self) -> Vec<String> {
        self.crm
            .iter()
            .map(|c| {
                let a = &self.attributes[c.attribute];
                format!(
                    "SELECT i.one_id FROM {table} s JOIN {IDS} i ON i.id_type = {t} \
                     AND i.id_value = trim(CAST(s.{key} AS VARCHAR)) WHERE s._batch_id IN {batches}",
                    table = a.table,
                    t = quote_literal(&a.key_id_type),
                    key = quote_ident(&a.key_column),
                    batches = in_list(c.batches.iter().map(String::as_str)),
                )
            })
            .collect()
    }
}

/// The watermarks of the profiles as published now (not as this run first read them).
pub async fn published_marks(workspace: &Workspace) -> Result<Option<Marks>> {
    match workspace.lake().table_if_exists(&CUSTOMER_PROFILES.id()).await? {
        Some(table) => read_marks(&table).await,
        None => Ok(None),
    }
}

/// The watermarks recorded on the stored profiles; None unless all three are.
async fn read_marks(table: &DeltaTable) -> Result<Option<Marks>> {
    let label = CUSTOMER_PROFILES.id().to_string();
    let events_seq = applied_version(table, &label, app_ids::PROFILES_EVENTS_VERSION).await?;
    let mapping = applied_version(table, &label, app_ids::PROFILES_MAPPING_VERSION).await?;
    let as_of = applied_version(table, &label, app_ids::PROFILES_AS_OF).await?;
    Ok(match (events_seq, mapping, as_of) {
        (Some(events_seq), Some(mapping), Some(as_of)) => Some(Marks { events_seq, mapping, as_of }),
        _ => None,
    })
}
