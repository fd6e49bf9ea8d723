//! `cdplake audience export`: an audience's members as a file for a campaign tool or an ad
//! platform, by one_id or by hashed identifier, never below the size floor.

use std::sync::Arc;

use cdplake_engine::SqlSession;
use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::parquet::arrow::ArrowWriter;
use cdplake_engine::sql::quote_literal;
use chrono::NaiveDate;

use crate::audience::build::single_string;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{AUDIENCE_PACKAGES, ID_MAPPING};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum ExportFormat {
    Csv,
    /// JSON lines, one object per member.
    Json,
    Parquet,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Parquet => "parquet",
        }
    }
}

/// Which identifier the file holds for each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[clap(rename_all = "snake_case")]
pub enum ExportIds {
    OneId,
    /// SHA-256 of the normalised email, as ad platforms match on.
    EmailHash,
    /// SHA-256 of the E.164 phone number.
    MobileHash,
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub name: String,
    pub as_of: Option<NaiveDate>,
    /// A directory (local or `s3://`), or a file path ending in the format's extension.
    pub to: String,
    pub format: ExportFormat,
    pub ids: ExportIds,
    /// Overrides `[audiences] min_export_size`.
    pub min_size: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub location: String,
    pub as_of: String,
    pub members: u64,
    pub rows: u64,
}

pub async fn export_audience(workspace: &Workspace, request: &ExportRequest) -> Result<ExportReport> {
    let lake = workspace.lake();
    let name = &request.name;
    let no_audience = || {
        JobError::not_found(format!("no audience {name:?}"), format!("run `cdplake audience build {name} --expr ...`"))
    };
    if !lake.table_exists(&AUDIENCE_PACKAGES.id()).await? {
        return Err(no_audience());
    }
    let session = SqlSession::new()?;
    session.register(lake, &AUDIENCE_PACKAGES.id()).await?;
    session.register(lake, &ID_MAPPING.id()).await?;
    let as_of = match request.as_of {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => single_string(
            &session,
            &format!("SELECT max(as_of) FROM {AUDIENCE_PACKAGES} WHERE package_name = {}", quote_literal(name)),
        )
        .await?
        .ok_or_else(no_audience)?,
    };
    let members_of = members_sql(name, &as_of);
    let members = session.first_i64(&format!("SELECT count(*) FROM ({members_of})")).await?.unwrap_or(0) as u64;
    let floor = request.min_size.unwrap_or(workspace.config.audiences.min_export_size);
    if members < floor {
        return Err(JobError::bad_input(
            format!("audience {name:?} as of {as_of}"),
            format!(
                "{members} members, below the export floor of {floor} ([audiences] min_export_size): exporting it \
                 could single people out"
            ),
        ));
    }
    let (schema, rows) = session.rows_with_schema(&export_sql(name, &as_of, request.ids)).await?;
    let exported: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
    // Members without the identifier asked for drop out: check what would leave the lake.
    if exported == 0 {
        return Err(JobError::Empty {
            what: format!("audience {name:?} as of {as_of}"),
            detail: format!(
                "{members} members but none has an {:?} identifier: nothing written; export --ids one_id or another \
                 id type",
                request.ids
            ),
        });
    }
    if exported < floor {
        return Err(JobError::bad_input(
            format!("audience {name:?} as of {as_of}"),
            format!(
                "only {exported} of its {members} members have an {:?} identifier, below the export floor of \
                 {floor} ([audiences] min_export_size): exporting it could single people out",
                request.ids
            ),
        ));
    }
    let bytes = encode(&schema, &rows, request.format)?;
    let written = lake.put_object(&file_location(request, &as_of), bytes.into()).await?;
    Ok(ExportReport { location: written, as_of, members, rows: exported })
}

/// Where the export goes: `--to` itself when it names a file of the format, else a file named
/// after the audience and date under it.
fn file_location(request: &ExportRequest, as_of: &str) -> String {
    let extension = request.format.extension();
    if request.to.ends_with(&format!(".{extension}")) {
        request.to.clone()
    } else {
        let file: String =
            request.name.chars().map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' }).collect();
        format!("{}/{file}-{as_of}.{extension}", request.to.trim_end_matches('/'))
    }
}

/// The members (one_id) of the audience `name`'s build as of `as_of`, from
/// curated.audience_packages.
pub fn members_sql(name: &str, as_of: &str) -> String {
    format!(
        "SELECT one_id FROM {AUDIENCE_PACKAGES} WHERE package_name = {} AND as_of = {}",
        quote_literal(name),
        quote_literal(as_of)
    )
}

/// What an export writes: the members' one_ids, or the active identifiers of the type asked for
/// (members without one drop out), sorted, one column named after the id type.
pub fn export_sql(name: &str, as_of: &str, ids: ExportIds) -> String {
    let members_of = members_sql(name, as_of);
    let id_type = match ids {
        ExportIds::OneId => return format!("{members_of} ORDER BY one_id"),
        ExportIds::EmailHash => "email_hash",
        ExportIds::MobileHash => "mobile_hash",
    };
    format!(
        "SELECT DISTINCT m.id_value AS {id_type} FROM ({members_of}) a JOIN {ID_MAPPING} m \
         ON m.one_id = a.one_id AND m.id_type = '{id_type}' AND m.is_active ORDER BY 1"
    )
}

fn encode(
    schema: &cdplake_engine::arrow::datatypes::SchemaRef,
    rows: &[RecordBatch],
    format: ExportFormat,
) -> Result<Vec<u8>> {
    let arrow = |e| JobError::arrow("encoding the export", e);
    let mut buf = Vec::new();
    match format {
        ExportFormat::Csv => {
            let mut writer = cdplake_engine::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
            if rows.is_empty() {
                writer.write(&RecordBatch::new_empty(Arc::clone(schema))).map_err(arrow)?;
            }
            for batch in rows {
                writer.write(batch).map_err(arrow)?;
            }
        }
        ExportFormat::Json => {
            let mut writer = cdplake_engine::arrow::json::LineDelimitedWriter::new(&mut buf);
            for batch in rows {
                writer.write(batch).map_err(arrow)?;
            }
            writer.finish().map_err(arrow)?;
        }
        ExportFormat::Parquet => {
            let parquet = |e: cdplake_engine::parquet::errors::ParquetError| JobError::encoding("the export", e);
            let mut writer = ArrowWriter::try_new(&mut buf, Arc::clone(schema), None).map_err(parquet)?;
            for batch in rows {
                writer.write(batch).map_err(parquet)?;
            }
            writer.close().map_err(parquet)?;
        }
    }
    Ok(buf)
}
