//! The forms an identifier takes in the lake, and the suppression list of erased persons.
//!
//! An email lands as `  Peggy.Zhang@Post.Example.com ` in a CSV, is cleaned to
//! `peggy.zhang@post.example.com`, hashed (SHA-256, or HMAC under `CDPLAKE_PII_KEY`) into
//! `email_hash`, and a CRM may deliver that hash already; a phone lands as `07911 100001`, becomes
//! `+447911100001` and `mobile_hash`. [`candidates`] turns one stored value into every form
//! cdplake could have made of it, so a value can be compared with a person's identifiers
//! whatever zone it sits in.
//!
//! `_audit.suppressions` holds the erased identifiers as keyed hashes only (HMAC-SHA256 with a
//! purpose prefix, so they never equal a clean-zone hash): ingest and clean drop every row that
//! carries one and count them, so a replayed raw file, a late S3 event or a new CRM export
//! cannot bring an erased person back. The key is `CDPLAKE_PII_KEY`, else a random key kept at
//! `<root>/_audit/suppression.key` (created by the first erasure).

use std::collections::HashSet;
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::{TableSpec, timestamp_type};
use cdplake_zones::normalize;
use chrono::{DateTime, Utc};

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::SUPPRESSIONS;

fn suppressions_spec() -> TableSpec {
    TableSpec::new(
        SUPPRESSIONS.id(),
        Arc::new(Schema::new(vec![
            Field::new("keyed_hash", DataType::Utf8, false),
            Field::new("erasure_id", DataType::Utf8, false),
            Field::new("suppressed_at", timestamp_type(), false),
        ])),
    )
    .with_description(
        "Identifiers of erased persons, as keyed hashes only: ingest and clean drop rows carrying one (a replay \
         cannot bring the person back).",
    )
}

/// The regions phones are read in when a value has no country code.
const PHONE_REGIONS: &[&str] = &["GB", "US", "DE", "FR", "CN"];

/// Does the value look like a phone number (digits, spaces, `+-().`; 7 to 15 digits)?
fn phone_like(value: &str) -> bool {
    let date = value.len() == 10 && value.as_bytes().get(4) == Some(&b'-') && value.as_bytes().get(7) == Some(&b'-');
    if date {
        return false;
    }
    let digits = value.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && value.chars().any(|c| c.is_ascii_digit())
}

/// Every form cdplake could have made of a stored value, lower-cased: as written (trimmed), as
/// an id (`13085.0` → `13085`), a normalised email or E.164 phone, and their hashes (plain and
/// keyed with `pii_key`).
pub fn candidates(value: &str, pii_key: Option<&[u8]>) -> Vec<String> {
    let trimmed = value.trim().to_lowercase();
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut out = vec![normalize::id(&trimmed), trimmed.clone()];
    let mut normalized = Vec::new();
    if trimmed.contains('@')
        && let Some(email) = normalize::email(&trimmed)
    {
        normalized.push(email);
    }
    if phone_like(&trimmed) {
        for region in PHONE_REGIONS {
            if let Some(phone) = normalize::phone(&trimmed, region) {
                normalized.push(phone);
            }
        }
    }
    for form in normalized {
        out.push(normalize::pii_hash(&form, None));
        if let Some(key) = pii_key {
            out.push(normalize::pii_hash(&form, Some(key)));
        }
        out.push(form);
    }
    out.sort();
    out.dedup();
    out
}

/// The tokens of a text that may hold values: a JSON object's string values, or the values of
/// a `type:value,type:value` list; else the text itself.
pub fn tokens(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        return map
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
    }
    let mut out = vec![trimmed.to_string()];
    if trimmed.contains(',') || trimmed.contains(':') {
        for part in trimmed.split(',') {
            out.push(part.to_string());
            if let Some((_, value)) = part.split_once(':') {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// The keyed hash of one form, as the suppression list stores it.
pub fn keyed(form: &str, key: &[u8]) -> String {
    normalize::pii_hash(&format!("cdplake-suppression:{}", form.trim().to_lowercase()), Some(key))
}

/// The suppression key: `CDPLAKE_PII_KEY`, else the lake's own (created when `create`).
pub async fn suppression_key(workspace: &Workspace, create: bool) -> Result<Option<Vec<u8>>> {
    if let Some(key) = normalize::pii_key_from_env() {
        return Ok(Some(key));
    }
    let lake = workspace.lake();
    let location = lake.location().join("_audit/suppression.key").to_string();
    match lake.fetch_object(&location).await {
        Ok(object) => Ok(Some(object.bytes.to_vec())),
        Err(cdplake_engine::EngineError::Store { .. }) if create => {
            let key = hex::encode(uuid::Uuid::new_v4().as_bytes()) + &hex::encode(uuid::Uuid::new_v4().as_bytes());
            lake.put_object(&location, key.clone().into_bytes().into()).await?;
            Ok(Some(key.into_bytes()))
        }
        Err(cdplake_engine::EngineError::Store { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The suppression list as loaded for a run of ingest or clean.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    key: Vec<u8>,
    hashes: HashSet<String>,
    pii_key: Option<Vec<u8>>,
}

impl Suppressions {
    /// The lake's list; empty (and free) when nobody was erased.
    pub async fn load(workspace: &Workspace) -> Result<Self> {
        let lake = workspace.lake();
        if !lake.table_exists(&SUPPRESSIONS.id()).await? {
            return Ok(Self::default());
        }
        let Some(key) = suppression_key(workspace, false).await? else {
            return Ok(Self::default());
        };
        let batches = lake
            .read(&SUPPRESSIONS.id())
            .await?
            .collect()
            .await
            .map_err(|e| JobError::query("reading the suppression list", e))?;
        let mut hashes = HashSet::new();
        for batch in &batches {
            let column = batch.column_by_name("keyed_hash").map(|c| cast(c, &DataType::Utf8));
            if let Some(Ok(column)) = column {
                hashes.extend(column.as_string::<i32>().iter().flatten().map(String::from));
            }
        }
        Ok(Self { key, hashes, pii_key: normalize::pii_key_from_env() })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Does any form of `value` belong to an erased person?
    pub fn matches(&self, value: &str) -> bool {
        if self.hashes.is_empty() {
            return false;
        }
        tokens(value)
            .iter()
            .flat_map(|t| candidates(t, self.pii_key.as_deref()))
            .any(|form| self.hashes.contains(&keyed(&form, &self.key)))
    }

    /// Does any of the row's values belong to an erased person?
    pub fn row_matches<'a>(&self, values: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        !self.hashes.is_empty() && values.into_iter().flatten().any(|v| self.matches(v))
    }
}

/// Add keyed hashes of `forms` to the suppression list, in one commit.
pub async fn suppress(workspace: &Workspace, forms: &[String], erasure_id: &str, now: DateTime<Utc>) -> Result<u64> {
    let Some(key) = suppression_key(workspace, true).await? else {
        return Err(JobError::bad_input("the suppression key", "none could be made"));
    };
    workspace.catalog.ensure_table(&suppressions_spec(), &TableMeta::default()).await?;
    let mut hashes: Vec<String> = forms.iter().map(|f| keyed(f, &key)).collect();
    hashes.sort();
    hashes.dedup();
    let n = hashes.len();
    let batch = RecordBatch::try_new(
        suppressions_spec().schema,
        vec![
            Arc::new(StringArray::from_iter_values(hashes.iter())),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(erasure_id, n))),
            Arc::new(TimestampMicrosecondArray::from(vec![now.timestamp_micros(); n]).with_timezone("UTC")),
        ],
    )
    .map_err(|e| JobError::arrow("suppression rows", e))?;
    workspace.lake().append(&SUPPRESSIONS.id(), vec![batch]).await?;
    Ok(n as u64)
}

/// A batch's rows as text values per row (every column), for matching.
pub fn row_texts(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
    let columns: Vec<_> = batch
        .columns()
        .iter()
        .filter_map(|c| match c.data_type() {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => None,
            _ => cast(c, &DataType::Utf8).ok(),
        })
        .collect();
    (0..batch.num_rows())
        .map(|r| columns.iter().map(|c| (!c.is_null(r)).then(|| c.as_string::<i32>().value(r).to_string())).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_and_a_phone_in_every_form() {
        let forms = candidates("  Peggy.Zhang1@POST.example.com ", None);
        assert!(forms.contains(&"peggy.zhang1@post.example.com".to_string()));
        assert!(forms.contains(&normalize::pii_hash("peggy.zhang1@post.example.com", None)));
        let forms = candidates("+44 7911 100001", Some(b"k"));
        assert!(forms.contains(&"+447911100001".to_string()), "{forms:?}");
        assert!(forms.contains(&normalize::pii_hash("+447911100001", Some(b"k"))));
        assert_eq!(candidates("13085.0", None)[0], "13085");
    }

    #[test]
    fn tokens_of_json_and_lists() {
        assert!(tokens(r#"{"email":" A@B.co ","n":3}"#).contains(&" A@B.co ".to_string()));
        assert!(tokens("member_id:M1,email_hash:abc").contains(&"abc".to_string()));
    }

    #[test]
    fn suppressed_forms_match_whatever_the_form() {
        let key = b"secret".to_vec();
        let hashes = ["+447911100001", "c0000001"].iter().map(|f| keyed(f, &key)).collect();
        let list = Suppressions { key, hashes, pii_key: None };
        assert!(list.matches("07911 100001") || list.matches("+44 7911 100001"));
        assert!(list.matches(" C0000001"));
        assert!(!list.matches("C0000002"));
    }
}
