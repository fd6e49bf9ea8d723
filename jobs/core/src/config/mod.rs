//! `cdplake.toml`: one file for the lake, sources, rules and schedule.
//!
//! Every setting has a built-in default, so the demo runs with no file at all.
//!
//! ```toml
//! [lake]
//! root = "s3://my-bucket/cdp"          # or a local directory; default ./lake
//! [lake.storage]                       # object-store options; AWS_* variables fill in the rest
//! aws_endpoint_url = "http://127.0.0.1:8333"
//! aws_allow_http = "true"
//! ```

mod audiences;
mod engine;
mod identity;
mod maintenance;
pub mod profiles;
mod quality;
mod segments;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cdplake_zones::{Source, presets};
use serde::Deserialize;

pub use audiences::AudiencesConfig;
pub use engine::EngineConfig;
pub use identity::{ConditionalId, DEFAULT_ID_TYPES, IdTypeRule, IdentityConfig};
pub use maintenance::{MaintenanceConfig, RetentionConfig};
pub use profiles::ProfilesConfig;
pub use quality::{Check, QualityConfig, QualityRule};
pub use segments::SegmentsConfig;

/// The default lake: a directory next to where cdplake runs.
pub const DEFAULT_LAKE: &str = "./lake";
/// The config file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG: &str = "cdplake.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub lake: LakeConfig,
    /// Sources by name (`[sources.NAME]`); they replace built-in presets of the same name.
    pub sources: std::collections::BTreeMap<String, Source>,
    pub identity: IdentityConfig,
    pub profiles: ProfilesConfig,
    pub quality: QualityConfig,
    pub segments: SegmentsConfig,
    pub audiences: AudiencesConfig,
    /// `[retention]`: history kept per zone, raw row retention, archival.
    pub retention: RetentionConfig,
    /// `[maintenance]`: compaction target, Z-order columns, whether the daily DAG maintains.
    pub maintenance: MaintenanceConfig,
    /// `[engine]`: the memory budget of queries and where they spill.
    pub engine: EngineConfig,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    /// Lake root; `--lake` and `CDPLAKE_LAKE` override it.
    pub root: Option<String>,
    /// Object-store options (`aws_endpoint_url`, `aws_region`, ...).
    pub storage: HashMap<String, String>,
}

/// The JSON schema of `cdplake.toml` (draft 2020-12), as published in `cdplake.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

impl Config {
    /// Read `path`, or `./cdplake.toml` if it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        if !required && !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path, message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        // A `[identity.types.X]` given in the file adds to the built-in rules.
        for (name, limit, priority) in DEFAULT_ID_TYPES {
            let rule = IdTypeRule { limit: *limit, priority: *priority };
            config.identity.types.entry(name.to_string()).or_insert(rule);
        }
        config.identity.validate()?;
        for (name, source) in config.sources.iter_mut() {
            source.name = name.clone();
            source.validate()?;
        }
        Ok(config)
    }

    /// A source by name: from `cdplake.toml`, else a built-in preset.
    pub fn source(&self, name: &str) -> Option<Source> {
        self.sources.get(name).cloned().or_else(|| cdplake_zones::preset(name))
    }

    /// Every source: the configured ones and the presets they do not replace.
    pub fn all_sources(&self) -> Vec<Source> {
        let mut all: Vec<Source> = self.sources.values().cloned().collect();
        all.extend(presets().into_iter().filter(|p| !self.sources.contains_key(&p.name)));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Whether the daily schedule's DAG ends with maintenance (`[maintenance] daily`, default true).
    pub fn maintenance_daily(&self) -> bool {
        self.maintenance.daily
    }

    /// The lake root: the explicit one (flag or env) wins, then the file, then `./lake`.
    pub fn lake_root(&self, explicit: Option<&str>) -> String {
        explicit.map(str::to_string).or_else(|| self.lake.root.clone()).unwrap_or_else(|| DEFAULT_LAKE.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let config = Config::parse("[lake]\nroot = 's3://b/p'\n[lake.storage]\naws_region = 'eu-west-1'\n").unwrap();
        assert_eq!(config.lake_root(None), "s3://b/p");
        assert_eq!(config.lake_root(Some("./x")), "./x");
        assert_eq!(config.lake.storage["aws_region"], "eu-west-1");
        assert_eq!(Config::default().lake_root(None), DEFAULT_LAKE);
    }

    #[test]
    fn sources_from_the_file_replace_presets() {
        let config = Config::parse(
            "[sources.loyalty]\nformat = 'csv'\nprimary_key = ['card']\n\
             columns = [{ name = 'card', required = true, id_type = 'loyalty_id' }, { name = 'points', type = 'int' }]\n",
        )
        .unwrap();
        let loyalty = config.source("loyalty").unwrap();
        assert_eq!(loyalty.name, "loyalty");
        assert_eq!(loyalty.columns[1].column_type, cdplake_zones::ColumnType::Int);
        assert!(config.source("crm_members").is_some(), "presets still there");
        let err = Config::parse("[sources.x]\nformat = 'csv'\nprimary_key = ['nope']\ncolumns = [{ name = 'a' }]\n")
            .unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    /// `cdplake.schema.json` at the repository root is the schema of today's configuration types:
    /// regenerate it with `cdplake config schema > cdplake.schema.json` after changing them.
    #[test]
    fn the_published_schema_is_current() {
        let published = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../cdplake.schema.json"))
            .expect("cdplake.schema.json at the repository root");
        assert!(
            published == json_schema(),
            "cdplake.schema.json is stale: run `cdplake config schema > cdplake.schema.json`"
        );
        let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
        for key in ["lake", "sources", "identity", "profiles", "quality", "segments", "audiences"] {
            assert!(schema["properties"].get(key).is_some(), "{key} is in the schema");
        }
    }

    /// What a user copies from the README works: every `toml` block of it is a valid cdplake.toml.
    #[test]
    fn every_toml_example_of_the_readme_is_valid() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let blocks: Vec<&str> =
            readme.split("```toml\n").skip(1).map(|b| &b[..b.find("```").unwrap_or(b.len())]).collect();
        assert!(blocks.len() >= 5, "{} toml blocks", blocks.len());
        for block in blocks {
            Config::parse(block).unwrap_or_else(|e| panic!("README example does not parse: {e}\n{block}"));
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse("[lake]\nrooot = 'x'\n").unwrap_err();
        assert!(err.contains("rooot"), "{err}");
    }
}
