//! Profile look-up by any identifier: `cdplake profile get`, `cdplake serve` (HTTP, axum) and the
//! `profile` Lambda handler all answer through [`respond`], over one [`ProfileIndex`].
//!
//! The index is built once from the curated tables and held in memory; a look-up is a hash probe
//! and a few slices, never a scan. [`IndexHolder`] rebuilds it in the background when a newer
//! Delta version of any table it was built from is committed (it polls the versions, which reads
//! only the tables' logs), and requests keep the previous index until the new one is ready.
//!
//! Read-only: nothing here writes to the lake. SQL runs only when the server was started with
//! `--allow-sql`, and then only the statements the query handler allows (one SELECT, WITH, SHOW,
//! DESCRIBE or EXPLAIN).
//!
//! Endpoints:
//! * `GET /v1/profiles/{id_type}/{value}?events=N`: the person's profile row, identifiers,
//!   segments and audience packages of the latest builds, and latest N events; 404 with a body
//!   saying what was not found, 400 for a malformed identifier or parameter;
//! * `GET /v1/health`: the index's size, memory, build time and table versions;
//! * `POST /v1/query` (`--allow-sql` only): `{"sql": "SELECT ..."}`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::serve::index::{DEFAULT_EVENTS_KEPT, IndexStats, IndexVersions, ProfileIndex};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

/// The longest identifier value accepted (longer ones are malformed, not unknown).
pub const MAX_VALUE_BYTES: usize = 1024;
/// Rows a `/v1/query` answer may carry.
pub const MAX_QUERY_ROWS: usize = 10_000;

/// The current index and how to rebuild it. Cheap to share (`Arc`).
pub struct IndexHolder {
    workspace: Workspace,
    events_kept: usize,
    current: RwLock<Arc<ProfileIndex>>,
    last_check: std::sync::Mutex<Instant>,
    rebuilding: tokio::sync::Mutex<()>,
}

impl IndexHolder {
    /// Build the index from the lake as it is now.
    pub async fn open(workspace: Workspace, events_kept: usize) -> Result<Self> {
        let index = ProfileIndex::build(&workspace, events_kept).await?;
        release_freed_memory();
        Ok(Self {
            workspace,
            events_kept,
            current: RwLock::new(Arc::new(index)),
            last_check: std::sync::Mutex::new(Instant::now()),
            rebuilding: tokio::sync::Mutex::new(()),
        })
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    pub fn events_kept(&self) -> usize {
        self.events_kept
    }

    /// The index requests use now.
    pub fn get(&self) -> Arc<ProfileIndex> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuild when any source table has a version other than the index's; true when rebuilt.
    /// One rebuild at a time; requests are served from the old index meanwhile.
    pub async fn refresh(&self) -> Result<bool> {
        let _one = self.rebuilding.lock().await;
        if let Ok(mut at) = self.last_check.lock() {
            *at = Instant::now();
        }
        let now = IndexVersions::current(&self.workspace).await?;
        if now == self.get().versions() {
            return Ok(false);
        }
        tracing::info!(?now, "a curated table has a new version: rebuilding the profile index");
        let index = ProfileIndex::build(&self.workspace, self.events_kept).await?;
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(index),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(index),
        }
        release_freed_memory();
        Ok(true)
    }

    /// [`Self::refresh`] unless the versions were checked less than `every` ago.
    pub async fn refresh_if_due(&self, every: Duration) -> Result<bool> {
        let due = self.last_check.lock().map(|at| at.elapsed() >= every).unwrap_or(true);
        if due { self.refresh().await } else { Ok(false) }
    }
}

/// Give the heap pages freed while the tables were read back to the system. glibc keeps them in
/// its arenas: at 1M persons the server held 11 GB after building a 3.6 GB index, 4 GB after
/// this (BENCHMARKS.md, "Profile look-up and PostgreSQL write-back at 1M"). Nothing elsewhere.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free heap pages back to the kernel; live allocations stay.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One HTTP-shaped request, whatever carried it (axum, a Lambda function URL, API Gateway).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The query string without `?`.
    pub query: Option<String>,
    pub body: Vec<u8>,
}

/// The answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn error(status: u16, error: &str, message: impl Into<String>) -> Self {
        Self { status, body: json!({ "error": error, "message": message.into() }) }
    }
}

/// What the look-up endpoints may do beyond reading the index.
#[derive(Debug, Clone, Copy, Default)]
pub struct Permissions {
    /// `POST /v1/query` runs one read-only statement.
    pub allow_sql: bool,
}

/// A look-up: an identifier and how many latest events to include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub id_type: String,
    pub id_value: String,
    pub events: usize,
}

/// Why a look-up could not be made or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The request is malformed (400).
    Malformed(String),
    /// Nobody has this identifier, or no identifier has this type (404).
    NotFound(String),
}

/// An id type: lower-case snake_case, as the lake names them.
pub fn valid_id_type(id_type: &str) -> bool {
    let mut chars = id_type.chars();
    matches!(chars.next(), Some('a'..='z'))
        && id_type.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Check an identifier's parts; the value is trimmed as identity stitching trims it.
pub fn check_identifier(id_type: &str, id_value: &str) -> std::result::Result<(String, String), LookupError> {
    if !valid_id_type(id_type) {
        return Err(LookupError::Malformed(format!(
            "id type {id_type:?} is malformed: id types are lower-case snake_case (member_id, email_hash, device_id)"
        )));
    }
    let value = id_value.trim();
    if value.is_empty() {
        return Err(LookupError::Malformed(format!("the {id_type} value is empty")));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(LookupError::Malformed(format!(
            "the {id_type} value is {} bytes long; identifiers are at most {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(LookupError::Malformed(format!("the {id_type} value contains control characters")));
    }
    Ok((id_type.to_string(), value.to_string()))
}

/// `ID_TYPE:VALUE` as the command line takes it.
pub fn parse_identifier(text: &str) -> std::result::Result<(String, String), LookupError> {
    let (id_type, value) = text
        .split_once(':')
        .ok_or_else(|| LookupError::Malformed(format!("{text:?} is not ID_TYPE:VALUE (e.g. member_id:MBR0000001)")))?;
    check_identifier(id_type, value)
}

/// Look a person up: the profile, identifiers, segments, audiences and latest events. The one
/// job function behind the CLI, the HTTP server and the Lambda handler.
pub fn lookup(index: &ProfileIndex, request: &Lookup) -> Result<std::result::Result<Value, LookupError>> {
    let (id_type, id_value) = match check_identifier(&request.id_type, &request.id_value) {
        Ok(parts) => parts,
        Err(e) => return Ok(Err(e)),
    };
    let Some(hit) = index.find(&id_type, &id_value) else {
        let message = if index.knows_type(&id_type) {
            format!("no person has the identifier {id_type}:{id_value}")
        } else {
            format!(
                "no person has an identifier of type {id_type}; the types in this lake are {}",
                index.id_types().collect::<Vec<_>>().join(", ")
            )
        };
        return Ok(Err(LookupError::NotFound(message)));
    };
    let (matched_type, matched_value) = index.matched(hit);
    let (segments_as_of, segments) = index.segments_of(hit);
    let audiences: Vec<Value> = index
        .audiences_of(hit)
        .into_iter()
        .map(|(id, name, as_of)| json!({ "package_id": id, "package_name": name, "as_of": as_of }))
        .collect();
    let events = index.events_json(hit, request.events)?;
    Ok(Ok(json!({
        "one_id": index.one_id(hit),
        "user_int_id": index.user_int_id(hit),
        "matched": { "id_type": matched_type, "id_value": matched_value },
        "profile": index.profile_json(hit)?,
        "identifiers": index.identifiers_json(hit)?,
        "segments": { "as_of": segments_as_of, "tags": segments },
        "audiences": audiences,
        "events": events,
        "index": { "versions": index.versions(), "built_at": index.stats().built_at },
    })))
}

/// Decode `%XX` escapes (and nothing else: `+` stays `+` in a path).
pub fn percent_decode(text: &str) -> std::result::Result<String, LookupError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                LookupError::Malformed(format!("{text:?} has a malformed percent escape at byte {i}"))
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| LookupError::Malformed(format!("{text:?} is not UTF-8 once decoded")))
}

/// The value of a query-string parameter (`+` read as a space, as forms send it).
fn query_param(query: Option<&str>, name: &str) -> std::result::Result<Option<String>, LookupError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(&key.replace('+', " "))? == name {
            return percent_decode(&value.replace('+', " ")).map(Some);
        }
    }
    Ok(None)
}

const ENDPOINTS: &str =
    "GET /v1/profiles/{id_type}/{value}?events=N, GET /v1/health, POST /v1/query (with --allow-sql)";

/// Answer one request from the holder's current index.
pub async fn respond(holder: &IndexHolder, permissions: Permissions, request: &Request) -> Reply {
    let index = holder.get();
    let path = request.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = request.method.to_ascii_uppercase();
    match segments.as_slice() {
        ["v1", "health"] => health_reply(&index, permissions, &method, path),
        ["v1", "profiles", rest @ ..] => {
            let endpoint = ProfileEndpoint { index: &index, events_kept: holder.events_kept(), method: &method, path };
            endpoint.reply(request, rest)
        }
        ["v1", "query"] => query_reply(holder, permissions, request, &method).await,
        _ => Reply::error(404, "no_such_endpoint", format!("{method} {path}: the endpoints are {ENDPOINTS}")),
    }
}

/// 405 unless the method is GET or HEAD.
fn require_get(method: &str, path: &str) -> Option<Reply> {
    if method != "GET" && method != "HEAD" {
        return Some(Reply::error(405, "method_not_allowed", format!("{method} {path}: use GET")));
    }
    None
}

/// `GET /v1/health`: the index's stats.
fn health_reply(index: &ProfileIndex, permissions: Permissions, method: &str, path: &str) -> Reply {
    if let Some(refused) = require_get(method, path) {
        return refused;
    }
    Reply::ok(json!({ "status": "ok", "read_only": true, "allow_sql": permissions.allow_sql, "index": index.stats() }))
}

/// The 400 or 404 a look-up error answers with.
fn lookup_error_reply(error: LookupError) -> Reply {
    match error {
        LookupError::Malformed(m) => Reply::error(400, "malformed", m),
        LookupError::NotFound(m) => Reply::error(404, "not_found", m),
    }
}

/// `GET /v1/profiles/{id_type}/{value}?events=N` as asked of one index.
struct ProfileEndpoint<'a> {
    index: &'a ProfileIndex,
    /// How many latest events per person the index keeps.
    events_kept: usize,
    method: &'a str,
    /// The request's path without a trailing `/`.
    path: &'a str,
}

impl ProfileEndpoint<'_> {
    /// One person's look-up; `rest` is the path after `/v1/profiles`.
    fn reply(&self, request: &Request, rest: &[&str]) -> Reply {
        let path = self.path;
        if let Some(refused) = require_get(self.method, path) {
            return refused;
        }
        let [id_type, value] = rest else {
            return Reply::error(
                400,
                "malformed",
                format!("{path}: use /v1/profiles/{{id_type}}/{{value}}, with a '/' inside the value encoded as %2F"),
            );
        };
        let parts = percent_decode(id_type).and_then(|t| Ok((t, percent_decode(value)?)));
        let events = events_param(self.events_kept, request.query.as_deref());
        let lookup_request = match (parts, events) {
            (Ok((id_type, id_value)), Ok(events)) => Lookup { id_type, id_value, events },
            // Either part malformed answers 400 before the other one can answer 404.
            (Err(e @ LookupError::Malformed(_)), _) | (_, Err(e @ LookupError::Malformed(_))) => {
                return lookup_error_reply(e);
            }
            (Err(e), _) | (_, Err(e)) => return lookup_error_reply(e),
        };
        match lookup(self.index, &lookup_request) {
            Ok(Ok(body)) => Reply::ok(body),
            Ok(Err(e)) => lookup_error_reply(e),
            Err(e) => Reply::error(500, "internal", e.to_string()),
        }
    }
}

/// The `events` query parameter: how many latest events to answer (at most what the index keeps).
fn events_param(events_kept: usize, query: Option<&str>) -> std::result::Result<usize, LookupError> {
    let Some(text) = query_param(query, "events")? else {
        return Ok(events_kept.min(DEFAULT_EVENTS_KEPT));
    };
    match text.trim().parse::<usize>() {
        Ok(n) if n <= events_kept => Ok(n),
        Ok(n) => Err(LookupError::Malformed(format!(
            "events={n}: this server keeps the latest {events_kept} events per person"
        ))),
        Err(_) => Err(LookupError::Malformed(format!("events={text:?} is not a whole number"))),
    }
}

/// `POST /v1/query` (`--allow-sql` only): one read-only statement.
async fn query_reply(holder: &IndexHolder, permissions: Permissions, request: &Request, method: &str) -> Reply {
    if !permissions.allow_sql {
        return Reply::error(
            403,
            "sql_disabled",
            "this server runs no SQL; start it with --allow-sql to allow read-only statements",
        );
    }
    if method != "POST" {
        return Reply::error(405, "method_not_allowed", "POST a JSON body {\"sql\": \"SELECT ...\"}");
    }
    let sql = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|v| v.get("sql").and_then(Value::as_str).map(str::to_string));
    let Some(sql) = sql else {
        return Reply::error(400, "malformed", "the body must be JSON {\"sql\": \"SELECT ...\"}");
    };
    match run_sql(holder.workspace(), &sql).await {
        Ok(body) => Reply::ok(body),
        Err(e @ (JobError::BadInput { .. } | JobError::Encoding { .. })) => Reply::error(400, "refused", e.to_string()),
        Err(e) => Reply::error(400, "query_failed", e.to_string()),
    }
}

/// One read-only statement (the query handler's rules), its rows as JSON; never writes.
async fn run_sql(workspace: &Workspace, sql: &str) -> Result<Value> {
    let batches = cdplake_core::query::run_read_only(workspace, sql).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows > MAX_QUERY_ROWS {
        return Err(JobError::bad_input(
            "the query",
            format!("returned {rows} rows; at most {MAX_QUERY_ROWS} are answered here: add a LIMIT"),
        ));
    }
    let text = cdplake_core::output::format_batches(&batches, cdplake_core::output::Format::Json)
        .map_err(|e| JobError::arrow("formatting the result", e))?;
    let rows_json: Value = serde_json::from_str(&text).map_err(|e| JobError::encoding("the result", e))?;
    Ok(json!({ "row_count": rows, "rows": rows_json }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert_eq!(parse_identifier("member_id:MBR1"), Ok(("member_id".into(), "MBR1".into())));
        assert_eq!(parse_identifier("email_hash: ab "), Ok(("email_hash".into(), "ab".into())));
        assert!(matches!(parse_identifier("nocolon"), Err(LookupError::Malformed(_))));
        assert!(matches!(parse_identifier("Member:1"), Err(LookupError::Malformed(_))));
        assert!(matches!(parse_identifier("member_id:"), Err(LookupError::Malformed(_))));
        assert!(matches!(parse_identifier("member_id:a\u{7}b"), Err(LookupError::Malformed(_))));
        let long = format!("member_id:{}", "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(matches!(parse_identifier(&long), Err(LookupError::Malformed(_))));
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb%20c+d").unwrap(), "a/b c+d");
        assert!(percent_decode("bad%zz").is_err());
        assert!(percent_decode("bad%ff").is_err());
        assert_eq!(query_param(Some("x=1&events=5"), "events").unwrap(), Some("5".into()));
        assert_eq!(query_param(Some("x=1"), "events").unwrap(), None);
    }
}

/// A look-up answer for people: the profile's non-null columns, identifiers, segments,
/// audiences, events.
pub fn describe_answer(answer: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    out.push_str(&format!(
        "{} (user_int_id {}), found by {}:{}\n",
        text(&answer["one_id"]),
        text(&answer["user_int_id"]),
        text(&answer["matched"]["id_type"]),
        text(&answer["matched"]["id_value"])
    ));
    match answer["profile"].as_object() {
        Some(profile) => {
            out.push_str("profile:\n");
            for (k, v) in profile.iter().filter(|(_, v)| !v.is_null()) {
                out.push_str(&format!("  {k}: {}\n", text(v)));
            }
        }
        None => out.push_str("profile: none yet (run `cdplake profiles`)\n"),
    }
    let identifiers = answer["identifiers"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("identifiers ({}):\n", identifiers.len()));
    for i in &identifiers {
        out.push_str(&format!(
            "  {}:{}  first seen {}, last seen {}\n",
            text(&i["id_type"]),
            text(&i["id_value"]),
            text(&i["first_seen"]),
            text(&i["last_seen"])
        ));
    }
    let tags: Vec<String> = answer["segments"]["tags"].as_array().into_iter().flatten().map(text).collect();
    out.push_str(&format!("segments as of {}: {}\n", text(&answer["segments"]["as_of"]), tags.join(", ")));
    let audiences: Vec<String> = answer["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} (as of {})", text(&a["package_name"]), text(&a["as_of"])))
        .collect();
    out.push_str(&format!("audiences: {}\n", if audiences.is_empty() { "none".into() } else { audiences.join(", ") }));
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("latest events ({}):\n", events.len()));
    for e in &events {
        out.push_str(&format!(
            "  {}  {} {} {}{}\n",
            text(&e["event_time"]),
            text(&e["source"]),
            text(&e["kind"]),
            text(&e["event_type"]),
            if e["revenue"].is_null() { String::new() } else { format!(" revenue {}", text(&e["revenue"])) }
        ));
    }
    out.trim_end().to_string()
}
