//! Archival per zone as S3 lifecycle rules, generated from `[retention]`: one list of
//! [`ArchivalRule`]s, written out as the `infra/template.yaml` block
//! ([`template_block`], `cdplake maintain --lifecycle-rules`) and put on the lake's bucket with
//! aws-sdk-s3 ([`apply`], `cdplake maintain --apply-lifecycle`).
//!
//! The rules: raw → STANDARD_IA after `raw_infrequent_access_days`, GLACIER_IR (readable without
//! a restore, so raw stays a Delta table) after `raw_archive_days`; `_query_results/` expired after
//! `query_results_days`; noncurrent object versions (the bucket is versioned) expired after
//! `noncurrent_days`, so an erasure's deleted files do not live on as versions.
//!
//! Applying keeps the bucket's other rules: the bucket's lifecycle is one document, so cdplake
//! reads it, replaces only the rules it owns (their ids name the lake's prefix, so two lakes in one
//! bucket keep theirs), writes it back and reads it again to report what the server kept.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::put_bucket_lifecycle_configuration::PutBucketLifecycleConfigurationError;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, Transition, TransitionStorageClass,
};
use cdplake_engine::LakeLocation;
use serde::Serialize;

use cdplake_core::config::RetentionConfig;
use cdplake_core::error::{JobError, Result};

/// First and last line of the generated lifecycle block in `infra/template.yaml`.
pub const LIFECYCLE_BLOCK_BEGIN: &str = "      # BEGIN cdplake maintain --lifecycle-rules";
pub const LIFECYCLE_BLOCK_END: &str = "      # END cdplake maintain --lifecycle-rules";

/// A storage class an object moves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    InfrequentAccess,
    GlacierInstantRetrieval,
}

impl StorageClass {
    fn api_name(self) -> &'static str {
        match self {
            Self::InfrequentAccess => "STANDARD_IA",
            Self::GlacierInstantRetrieval => "GLACIER_IR",
        }
    }

    fn sdk(self) -> TransitionStorageClass {
        match self {
            Self::InfrequentAccess => TransitionStorageClass::StandardIa,
            Self::GlacierInstantRetrieval => TransitionStorageClass::GlacierIr,
        }
    }
}

/// What a rule does to the objects under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Move current objects to cheaper classes after so many days.
    Transition(Vec<(u32, StorageClass)>),
    /// Delete current objects after so many days.
    Expire { days: u32 },
    /// Delete old versions after so many days, and abandoned multipart uploads.
    ExpireNoncurrent { days: u32, abort_multipart_days: u32 },
}

/// One lifecycle rule, its prefix relative to the lake root (empty: the whole lake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivalRule {
    pub name: &'static str,
    pub relative_prefix: &'static str,
    pub action: RuleAction,
}

/// The archival rules `[retention]` asks for.
pub fn archival_rules(retention: &RetentionConfig) -> Vec<ArchivalRule> {
    vec![
        ArchivalRule {
            name: "raw-archive",
            relative_prefix: "raw/",
            action: RuleAction::Transition(vec![
                (retention.raw_infrequent_access_days, StorageClass::InfrequentAccess),
                (retention.raw_archive_days, StorageClass::GlacierInstantRetrieval),
            ]),
        },
        ArchivalRule {
            name: "query-results-expire",
            relative_prefix: "_query_results/",
            action: RuleAction::Expire { days: retention.query_results_days },
        },
        ArchivalRule {
            name: "noncurrent-versions-expire",
            relative_prefix: "",
            action: RuleAction::ExpireNoncurrent { days: retention.noncurrent_days, abort_multipart_days: 7 },
        },
    ]
}

/// The rules as the `LifecycleConfiguration` of the lake bucket in `infra/template.yaml`
/// (prefixes under the `LakePrefix` parameter; the noncurrent rule covers the whole bucket).
pub fn template_block(retention: &RetentionConfig) -> String {
    let mut out =
        format!("{LIFECYCLE_BLOCK_BEGIN} (archival per zone from [retention]; regenerate, a test compares)\n");
    out.push_str("      LifecycleConfiguration:\n        Rules:\n");
    for rule in archival_rules(retention) {
        out.push_str(&format!("          - Id: {}\n            Status: Enabled\n", rule.name));
        if !rule.relative_prefix.is_empty() {
            out.push_str(&format!("            Prefix: !Sub \"${{LakePrefix}}/{}\"\n", rule.relative_prefix));
        }
        match &rule.action {
            RuleAction::Transition(steps) => {
                out.push_str("            Transitions:\n");
                for (days, class) in steps {
                    out.push_str(&format!(
                        "              - StorageClass: {}\n                TransitionInDays: {days}\n",
                        class.api_name()
                    ));
                }
            }
            RuleAction::Expire { days } => out.push_str(&format!("            ExpirationInDays: {days}\n")),
            RuleAction::ExpireNoncurrent { days, abort_multipart_days } => out.push_str(&format!(
                "            NoncurrentVersionExpiration:\n              NoncurrentDays: {days}\n            \
                 AbortIncompleteMultipartUpload:\n              DaysAfterInitiation: {abort_multipart_days}\n"
            )),
        }
    }
    out.push_str(LIFECYCLE_BLOCK_END);
    out.push('\n');
    out
}

/// Where the rules of a lake go: its bucket, and the key prefix of its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeBucket {
    pub bucket: String,
    /// `""` or `"some/prefix/"`.
    pub prefix: String,
}

impl LakeBucket {
    pub fn of(location: &LakeLocation) -> Result<Self> {
        let root = location.root();
        if !location.is_s3() {
            return Err(JobError::bad_input(
                "--apply-lifecycle",
                format!("needs an S3 lake (s3://bucket/prefix); {root} is a local directory"),
            ));
        }
        let bucket = root.host_str().unwrap_or_default().to_string();
        let path = root.path().trim_matches('/');
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        Ok(Self { bucket, prefix })
    }

    /// The id of a cdplake rule on this bucket: names the lake, so two lakes keep their rules.
    fn rule_id(&self, rule: &ArchivalRule) -> String {
        format!("cdplake:{}:{}", self.prefix.trim_end_matches('/'), rule.name)
    }

    fn sdk_rule(&self, rule: &ArchivalRule) -> LifecycleRule {
        let filter = LifecycleRuleFilter::builder().prefix(format!("{}{}", self.prefix, rule.relative_prefix)).build();
        let mut builder =
            LifecycleRule::builder().id(self.rule_id(rule)).filter(filter).status(ExpirationStatus::Enabled);
        builder = match &rule.action {
            RuleAction::Transition(steps) => steps.iter().fold(builder, |b, (days, class)| {
                b.transitions(Transition::builder().days(days_i32(*days)).storage_class(class.sdk()).build())
            }),
            RuleAction::Expire { days } => {
                builder.expiration(LifecycleExpiration::builder().days(days_i32(*days)).build())
            }
            RuleAction::ExpireNoncurrent { days, abort_multipart_days } => builder
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder().noncurrent_days(days_i32(*days)).build(),
                )
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(days_i32(*abort_multipart_days))
                        .build(),
                ),
        };
        builder.build().expect("a lifecycle rule with its status set builds")
    }
}

fn days_i32(days: u32) -> i32 {
    i32::try_from(days).unwrap_or(i32::MAX)
}

/// What `--apply-lifecycle` did.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleReport {
    pub bucket: String,
    pub prefix: String,
    /// The ids of cdplake's rules now on the bucket.
    pub applied: Vec<String>,
    /// cdplake's rules the server would not take, with why.
    pub not_applied: Vec<NotApplied>,
    /// Other rules on the bucket, kept as they were.
    pub other_rules_kept: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotApplied {
    pub id: String,
    pub reason: String,
}

/// Put the archival rules on the lake's bucket, keeping the bucket's other rules, and read them
/// back. A server without storage classes (SeaweedFS, MinIO without tiers) answers NotImplemented
/// to transitions: the other rules are applied without them and the report says so. A server
/// that takes no rule at all (or denies the permission) is an error.
pub async fn apply(location: &LakeLocation, retention: &RetentionConfig) -> Result<LifecycleReport> {
    let target = LakeBucket::of(location)?;
    let client = s3_client(location).await;
    let ours: Vec<ArchivalRule> = archival_rules(retention);
    let our_ids: Vec<String> = ours.iter().map(|r| target.rule_id(r)).collect();

    let existing = current_rules(&client, &target.bucket, location).await?;
    let others: Vec<LifecycleRule> =
        existing.into_iter().filter(|r| !r.id().is_some_and(|id| our_ids.contains(&id.to_string()))).collect();

    let mut not_applied = Vec::new();
    let mut offered: Vec<&ArchivalRule> = ours.iter().collect();
    if let Err(e) = put_rules(&client, &target, &others, &offered).await {
        let has_transitions = offered.iter().any(|r| matches!(r.action, RuleAction::Transition(_)));
        if e.code() != Some("NotImplemented") || !has_transitions {
            return Err(s3_failure("putting the lifecycle rules on", &target.bucket, location, &e));
        }
        for rule in offered.iter().filter(|r| matches!(r.action, RuleAction::Transition(_))) {
            not_applied.push(NotApplied {
                id: target.rule_id(rule),
                reason: "the server does not implement storage-class transitions (NotImplemented)".into(),
            });
        }
        offered.retain(|r| !matches!(r.action, RuleAction::Transition(_)));
        put_rules(&client, &target, &others, &offered)
            .await
            .map_err(|e| s3_failure("putting the lifecycle rules on", &target.bucket, location, &e))?;
    }

    let listed = current_rules(&client, &target.bucket, location).await?;
    let mut applied = Vec::new();
    for rule in offered {
        let id = target.rule_id(rule);
        if listed.iter().any(|r| r.id() == Some(id.as_str())) {
            applied.push(id);
        } else {
            not_applied.push(NotApplied { id, reason: "the server accepted it but does not list it back".into() });
        }
    }
    Ok(LifecycleReport {
        bucket: target.bucket,
        prefix: target.prefix,
        applied,
        not_applied,
        other_rules_kept: others.iter().map(|r| r.id().unwrap_or("(no id)").to_string()).collect(),
    })
}

/// Replace the bucket's lifecycle document with `others` and cdplake's `rules`.
async fn put_rules(
    client: &aws_sdk_s3::Client,
    target: &LakeBucket,
    others: &[LifecycleRule],
    rules: &[&ArchivalRule],
) -> std::result::Result<(), aws_sdk_s3::error::SdkError<PutBucketLifecycleConfigurationError>> {
    let mut all = others.to_vec();
    for rule in rules {
        all.push(target.sdk_rule(rule));
    }
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(all))
        .build()
        .expect("a lifecycle configuration with its rules set builds");
    client
        .put_bucket_lifecycle_configuration()
        .bucket(&target.bucket)
        .lifecycle_configuration(configuration)
        .send()
        .await
        .map(|_| ())
}

/// The bucket's lifecycle rules; none when it has no configuration.
async fn current_rules(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    location: &LakeLocation,
) -> Result<Vec<LifecycleRule>> {
    match client.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(output) => Ok(output.rules().to_vec()),
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(s3_failure("reading the lifecycle rules of", bucket, location, &e)),
    }
}

fn s3_failure<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    doing: &str,
    bucket: &str,
    location: &LakeLocation,
    error: &aws_sdk_s3::error::SdkError<E>,
) -> JobError {
    let server = location.endpoint();
    let detail = match error.code() {
        Some("NotImplemented") => "the S3 server does not implement bucket lifecycle rules (NotImplemented). \
                                   Deploy infra/template.yaml on AWS, or apply `cdplake maintain \
                                   --lifecycle-rules` with the server's own tools"
            .to_string(),
        Some("AccessDenied") => "access denied: the credentials need s3:PutLifecycleConfiguration and \
                                 s3:GetLifecycleConfiguration on the bucket"
            .to_string(),
        Some(code) => format!("{code}: {}", error.message().unwrap_or("no message")),
        None => aws_sdk_s3::error::DisplayErrorContext(error).to_string(),
    };
    JobError::service("S3", format!("{doing} bucket {bucket} at {server}: {detail}"))
}

/// An S3 client for the lake's server, from the same options the lake uses (`cdplake.toml`'s
/// storage options, then the standard `AWS_*` environment and credential chain).
async fn s3_client(location: &LakeLocation) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = location.option("aws_region") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if let (Some(key), Some(secret)) = (location.option("aws_access_key_id"), location.option("aws_secret_access_key"))
    {
        let token = location.option("aws_session_token");
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(key, secret, token, None, "cdplake"));
    }
    let endpoint = location.option("aws_endpoint_url").or_else(|| location.option("aws_endpoint"));
    if let Some(endpoint) = &endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if shared.region().is_none() {
        config = config.region(aws_config::Region::new("us-east-1"));
    }
    // A custom endpoint (MinIO, SeaweedFS) serves buckets by path, as object_store reaches them.
    let virtual_hosted = location.option("aws_virtual_hosted_style_request").is_some_and(|v| v == "true");
    config = config.force_path_style(endpoint.is_some() && !virtual_hosted);
    aws_sdk_s3::Client::from_conf(config.build())
}

/// The report as lines for people.
pub fn describe_report(report: &LifecycleReport) -> String {
    let mut text = format!(
        "lifecycle rules on bucket {} for the lake under '{}': {} applied\n",
        report.bucket,
        report.prefix,
        report.applied.len()
    );
    for id in &report.applied {
        text.push_str(&format!("  applied      {id}\n"));
    }
    for rule in &report.not_applied {
        text.push_str(&format!("  not applied  {}: {}\n", rule.id, rule.reason));
    }
    if !report.other_rules_kept.is_empty() {
        text.push_str(&format!("other rules on the bucket, kept: {}\n", report.other_rules_kept.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// infra/template.yaml's lifecycle block is the one the default [retention] generates.
    #[test]
    fn the_template_has_the_generated_lifecycle_rules() {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml")).unwrap();
        let begin = template.find(LIFECYCLE_BLOCK_BEGIN).expect("no lifecycle block in infra/template.yaml");
        let end =
            template.find(LIFECYCLE_BLOCK_END).expect("lifecycle block not closed") + LIFECYCLE_BLOCK_END.len() + 1;
        assert_eq!(
            &template[begin..end],
            template_block(&RetentionConfig::default()),
            "regenerate with `cdplake maintain --lifecycle-rules`"
        );
    }

    #[test]
    fn rules_on_a_bucket_are_under_the_lake_prefix_and_name_it() {
        let location = LakeLocation::parse("s3://bucket/cdp/lake", Default::default()).unwrap();
        let target = LakeBucket::of(&location).unwrap();
        assert_eq!(target, LakeBucket { bucket: "bucket".into(), prefix: "cdp/lake/".into() });
        let rules = archival_rules(&RetentionConfig::default());
        let raw = target.sdk_rule(&rules[0]);
        assert_eq!(raw.id(), Some("cdplake:cdp/lake:raw-archive"));
        assert_eq!(raw.filter().and_then(|f| f.prefix()), Some("cdp/lake/raw/"));
        let days: Vec<_> =
            raw.transitions().iter().map(|t| (t.days(), t.storage_class().map(|c| c.as_str()))).collect();
        assert_eq!(days, [(Some(30), Some("STANDARD_IA")), (Some(90), Some("GLACIER_IR"))]);
        let whole = target.sdk_rule(&rules[2]);
        assert_eq!(whole.filter().and_then(|f| f.prefix()), Some("cdp/lake/"));
        assert!(LakeBucket::of(&LakeLocation::parse("/tmp/x", Default::default()).unwrap()).is_err());
    }
}
