//! The S3 handler: new objects under `<lake>/landing/<source>/` flow through the pipeline.
//!
//! Events arrive at least once and out of order. Each object is read as it is now and ingested
//! under its content's identity, so a replay, or an older event for a key overwritten since, is
//! a no-op (the raw zone's replay safety); records for the same key in one batch are handled
//! once, the newest `sequencer` first. A failing record is reported by key and the others still
//! go through. Steps that lose a commit race with a concurrent invocation are rerun.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};

use crate::dag::{Dag, Through};
use cdplake_core::error::{JobError, Result};
use cdplake_core::retry::retry_step;
use cdplake_core::workspace::Workspace;
use cdplake_ingest::ingest::IngestStatus;

const ATTEMPTS: usize = 20;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct S3Outcome {
    pub records: usize,
    /// `s3://bucket/key` → ingested | already_ingested.
    pub objects: BTreeMap<String, String>,
    pub failures: Vec<RecordFailure>,
    pub sources: Vec<String>,
    pub persons_touched: u64,
}

impl cdplake_core::audit::JobReport for S3Outcome {}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordFailure {
    pub key: String,
    pub error: String,
}

/// `+` and `%XX` as S3 event notifications encode keys.
pub fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The source an object belongs to: `<lake root>/landing/<source>/...`.
fn source_of(workspace: &Workspace, uri: &str) -> Result<String> {
    let root = workspace.lake().location().root().to_string();
    let relative = uri.strip_prefix(root.as_str()).ok_or_else(|| {
        JobError::bad_input(uri, format!("not in this lake ({root}); objects must land under {root}landing/<source>/"))
    })?;
    let mut parts = relative.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("landing"), Some(source), Some(file)) if !file.is_empty() => Ok(source.to_string()),
        _ => Err(JobError::bad_input(uri, format!("not under {root}landing/<source>/"))),
    }
}

/// Handle an S3 event.
pub async fn handle(workspace: &Workspace, event: S3Event, now: DateTime<Utc>) -> Result<S3Outcome> {
    let mut outcome = S3Outcome { records: event.records.len(), ..Default::default() };
    // One entry per object, the newest sequencer's event time kept.
    let mut objects: BTreeMap<String, (String, DateTime<Utc>)> = BTreeMap::new();
    for record in &event.records {
        let (Some(bucket), Some(key)) = (record.s3.bucket.name.as_deref(), record.s3.object.key.as_deref()) else {
            outcome.failures.push(RecordFailure { key: String::new(), error: "record without bucket or key".into() });
            continue;
        };
        let uri = format!("s3://{bucket}/{}", decode_key(key));
        let sequencer = record.s3.object.sequencer.clone().unwrap_or_default();
        let newer = objects.get(&uri).is_none_or(|(s, _)| hex_order(&sequencer) > hex_order(s));
        if newer {
            objects.insert(uri, (sequencer, record.event_time));
        }
    }
    let mut sources = BTreeSet::new();
    let mut business_date = None;
    for (uri, (_, event_time)) in &objects {
        let result = async {
            let name = source_of(workspace, uri)?;
            let source = workspace
                .config
                .source(&name)
                .ok_or_else(|| JobError::bad_input(uri.as_str(), format!("no source named {name:?}")))?;
            let report =
                retry_step(ATTEMPTS, || cdplake_ingest::ingest::ingest_object(workspace, &source, uri, now)).await?;
            Ok::<_, JobError>((source, report))
        }
        .await;
        match result {
            Ok((source, report)) => {
                let status = match report.status {
                    IngestStatus::Ingested => "ingested",
                    IngestStatus::AlreadyIngested => "already_ingested",
                    IngestStatus::Empty => "empty",
                };
                outcome.objects.insert(uri.clone(), status.to_string());
                sources.insert(source.name.clone());
                business_date = business_date.max(Some(event_time.date_naive()));
            }
            Err(e) => {
                tracing::error!(key = %uri, error = %e, "record failed");
                outcome.failures.push(RecordFailure { key: uri.clone(), error: e.to_string() });
            }
        }
    }
    outcome.sources = sources.iter().cloned().collect();
    if sources.is_empty() {
        return Ok(outcome);
    }
    // The objects are ingested above; the rest of the pipeline is the DAG's.
    let as_of = business_date.unwrap_or(now.date_naive());
    let sources: Vec<String> = sources.into_iter().collect();
    let run = Dag::new(workspace, &sources, false, as_of, Through::Profiles).run(workspace, now).await?;
    outcome.persons_touched = run.persons_touched;
    Ok(outcome)
}

/// S3 sequencers are hex strings of varying length: compare them as numbers.
fn hex_order(sequencer: &str) -> (usize, String) {
    let digits = sequencer.trim_start_matches('0').to_ascii_uppercase();
    (digits.len(), digits)
}

/// S3 events delivered through SQS (one S3 event per message body): failed messages are
/// reported as `batchItemFailures`, so SQS retries only those.
pub async fn handle_sqs(workspace: &Workspace, event: SqsEvent, now: DateTime<Utc>) -> Result<SqsBatchResponse> {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let parsed: std::result::Result<S3Event, _> = serde_json::from_str(message.body.as_deref().unwrap_or("{}"));
        let failed = match parsed {
            Ok(s3_event) => match handle(workspace, s3_event, now).await {
                Ok(outcome) => !outcome.failures.is_empty(),
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "message failed");
                    true
                }
            },
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "message is not an S3 event");
                true
            }
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("landing/crm_members/May+2024%2Fpart%201.json"),
            "landing/crm_members/May 2024/part 1.json"
        );
        assert_eq!(decode_key("a%2"), "a%2");
        assert_eq!(decode_key("caf%C3%A9.csv"), "café.csv");
    }

    #[test]
    fn sequencers_compare_as_hex_numbers() {
        assert!(hex_order("0A") > hex_order("9"));
        assert!(hex_order("0055B9C0F6B8C1F7D1") > hex_order("0055B9C0F6B8C1F7D0"));
    }
}
