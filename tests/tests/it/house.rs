//! The shape of the code, checked like behaviour: the rules of docs/DESIGN.md ("The house") that a
//! compiler does not enforce. Cargo already keeps a crate from importing a crate above it; these
//! tests read the sources of every crate and fail, naming the files, when
//!
//! * modules of one crate import each other in a circle (`use crate::..`, `super::..`, and paths
//!   written inline, with `pub use` re-exports followed to the module that defines the item);
//! * a batch column is read by position (`.column(0)`) instead of by name;
//! * a function is longer than 80 lines, apart from the declarative tables listed below;
//! * one crate holds more than 40% of the lines;
//! * a string literal names a table of the registry (`curated.id_mapping`) outside
//!   zones/src/tables.rs instead of through its constant (`{ID_MAPPING}`).
//!
//! Test modules (`#[cfg(test)]` to the end of a file) and comments are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose sources are checked (folders with a `src/`).
const CRATE_FOLDERS: &[&str] = &["engine", "catalog", "zones", "jobs/*", "infra"];

/// Functions allowed over [`MAX_FUNCTION_LINES`]: declarative tables, one entry per line of data.
const DECLARATIVE_TABLES: &[(&str, &str)] = &[("jobs/core/src/config/profiles.rs", "default_event_mappings")];

const MAX_FUNCTION_LINES: usize = 80;
const MAX_CRATE_SHARE: f64 = 0.40;

/// Where a table of the registry may be named by a literal: the registry itself, and the CLI's
/// help text (user documentation, examples to copy).
const TABLE_NAME_HOMES: &[&str] = &["zones/src/tables.rs", "jobs/app/src/cli/"];

/// The catalog's own table, `_catalog.tables`, is at home in the catalog crate, which defines it.
const CATALOG_TABLE_HOME: &str = "catalog/src/";

#[test]
fn no_module_of_any_crate_is_in_an_import_circle() {
    let mut circles = Vec::new();
    for krate in crates() {
        for circle in import_circles(&krate) {
            circles.push(format!("{}: {}", krate.name, circle.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "modules importing each other in a circle:\n{}", circles.join("\n"));
}

#[test]
fn no_column_is_read_by_position() {
    let mut found = Vec::new();
    for file in crates().iter().flat_map(|c| &c.files) {
        for (number, line) in code_lines(&file.text) {
            if reads_by_position(line) {
                found.push(format!("{}:{number}: {}", file.path, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "read these columns by name:\n{}", found.join("\n"));
}

#[test]
fn functions_are_short_except_declarative_tables() {
    let mut long = Vec::new();
    for file in crates().iter().flat_map(|c| &c.files) {
        for (name, line, length) in functions(&file.text) {
            let allowed = DECLARATIVE_TABLES.contains(&(file.path.as_str(), name.as_str()));
            if length > MAX_FUNCTION_LINES && !allowed {
                long.push(format!("{}:{line} {name}: {length} lines", file.path));
            }
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FUNCTION_LINES} lines:\n{}", long.join("\n"));
    assert!(DECLARATIVE_TABLES.len() <= 3, "at most three declarative tables may be long");
}

#[test]
fn no_crate_holds_more_than_two_fifths_of_the_lines() {
    let sizes: Vec<(String, usize)> =
        crates().iter().map(|c| (c.name.clone(), c.files.iter().map(|f| f.text.lines().count()).sum())).collect();
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    for (name, lines) in &sizes {
        let share = *lines as f64 / total as f64;
        assert!(share <= MAX_CRATE_SHARE, "{name} holds {lines} of {total} lines ({:.0}%)", share * 100.0);
    }
    assert!(sizes.len() >= 8, "the crates were found: {sizes:?}");
}

/// Every table of the registry (`cdplake_zones::tables::ALL`, and the catalog's own
/// `_catalog.tables`) is named in code through its constant, never by a string literal holding
/// `zone.table`: `format!("SELECT ... FROM {ID_MAPPING}")`, `ID_MAPPING.id()`,
/// `cdplake_catalog::catalog_table_id()`. The exceptions: the registry, zones/src/tables.rs; the
/// CLI's help text under jobs/app/src/cli/; the catalog crate (catalog/src/) for its own
/// `_catalog.tables`; and a literal inside a JobError construction (`JobError::Variant(..)` or
/// `JobError::Variant { .. }`), whose messages are checked on their own. Test modules and comments
/// are not read.
#[test]
fn no_table_name_is_written_outside_the_registry() {
    let names = registered_table_names();
    assert!(names.len() >= 10 && names.iter().all(|n| n.contains('.')), "the registry was read: {names:?}");
    let catalog_table = cdplake_catalog::catalog_table_id().to_string();
    let mut found = Vec::new();
    for file in crates().iter().flat_map(|c| &c.files) {
        if TABLE_NAME_HOMES.iter().any(|home| file.path.starts_with(home)) {
            continue;
        }
        for (number, name) in table_names_written(&file.text, &names) {
            if name == catalog_table && file.path.starts_with(CATALOG_TABLE_HOME) {
                continue;
            }
            found.push(format!("{}:{number}: {name}", file.path));
        }
    }
    assert!(
        found.is_empty(),
        "name these tables through their constants in cdplake_zones::tables (format!(\"... {{ID_MAPPING}}\")):\n{}",
        found.join("\n")
    );
}

/// The checker itself: a circle through a re-export is found, a positional read is seen, a
/// function is measured from its `fn` line to its closing brace.
#[test]
fn the_checks_see_what_they_look_for() {
    let krate = Crate {
        name: "example".into(),
        files: vec![
            source("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use b::Thing;\npub use c::C;\n"),
            source("src/a.rs", "use crate::Thing;\npub fn f() {}\n"),
            source("src/b.rs", "pub struct Thing;\nfn g() { crate::a::f() }\n"),
            source("src/c.rs", "use crate::{a, b};\npub struct C;\n"),
        ],
    };
    assert_eq!(import_circles(&krate), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(reads_by_position("let x = batch.column(0);"));
    assert!(!reads_by_position("let x = batch.column_by_name(\"a\");"));
    let text = format!("fn long() {{\n{}}}\n\nfn short() {{\n}}\n", "    x();\n".repeat(90));
    assert_eq!(functions(&text), vec![("long".to_string(), 1, 92), ("short".to_string(), 94, 2)]);
    let names = ["curated.id_mapping".to_string()];
    let written = "let a = 1;\nlet sql = \"SELECT * FROM curated.id_mapping \\\n    WHERE is_active\";\n";
    assert_eq!(table_names_written(written, &names), vec![(2, "curated.id_mapping".to_string())]);
    let constant = "let sql = format!(\"SELECT * FROM {ID_MAPPING}\"); // not curated.id_mapping\n\
                    let other = \"curated.id_mapping_v2\";\n\
                    return Err(JobError::NotFound(format!(\n    \"{x} is not in curated.id_mapping\"\n)));\n";
    assert_eq!(table_names_written(constant, &names), vec![]);
}

/// `zone.table` of every table of the registry.
fn registered_table_names() -> Vec<String> {
    let mut names: Vec<String> = cdplake_zones::tables::ALL.iter().map(ToString::to_string).collect();
    names.push(cdplake_catalog::catalog_table_id().to_string());
    names
}

/// The tables of `names` that string literals of `text` hold (a whole name, not a prefix of a
/// longer one), with the line of each, leaving out literals inside a `JobError::..` construction.
fn table_names_written(text: &str, names: &[String]) -> Vec<(usize, String)> {
    let literals = string_literals(text);
    let exempt = job_error_spans(text, &literals);
    let is_part_of_name = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut found = Vec::new();
    for &(start, end) in &literals {
        if exempt.iter().any(|&(from, to)| from <= start && end <= to) {
            continue;
        }
        let literal = &text[start..end];
        for name in names {
            for (i, _) in literal.match_indices(name.as_str()) {
                let before = literal[..i].chars().next_back();
                let after = literal[i + name.len()..].chars().next();
                if !before.is_some_and(is_part_of_name) && !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    found.push((text[..start + i].matches('\n').count() + 1, name.clone()));
                }
            }
        }
    }
    found.sort();
    found
}

/// The byte ranges of the string literals of `text` (their contents, between the quotes): plain,
/// byte and raw strings, past comments and character literals.
fn string_literals(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let ident_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'r' if !ident_before && matches!(bytes.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = text[start..].find(&close).map_or(bytes.len(), |n| start + n);
                literals.push((start, end));
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                literals.push((start, j.min(bytes.len())));
                i = j + 1;
            }
            b'\'' => {
                // A character literal ('"', '\'', '\n'), else a lifetime or label.
                let rest = &text[i + 1..];
                let length = if rest.starts_with('\\') {
                    rest.get(2..).and_then(|r| r.find('\'')).map(|n| n + 3)
                } else {
                    rest.chars().next().filter(|_| rest.chars().nth(1) == Some('\'')).map(|c| c.len_utf8() + 1)
                };
                i += 1 + length.unwrap_or(0);
            }
            _ => i += 1,
        }
    }
    literals
}

/// The byte ranges of the JobError constructions of `text`: from `JobError::` to the bracket
/// closing the variant's arguments or fields (brackets inside `literals` not counted).
fn job_error_spans(text: &str, literals: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for (start, m) in text.match_indices("JobError::") {
        let mut i = start + m.len();
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if !matches!(bytes.get(i), Some(b'(' | b'{')) {
            continue;
        }
        let mut depth = 0usize;
        while i < bytes.len() {
            if let Some(&(_, end)) = literals.iter().find(|&&(s, e)| s <= i && i < e) {
                i = end + 1;
                continue;
            }
            match bytes[i] {
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        spans.push((start, i));
    }
    spans
}

struct SourceFile {
    /// Relative to the repository root, with `/`.
    path: String,
    /// The module path inside its crate (`["audience", "build"]`; empty for lib.rs/main.rs).
    module: Vec<String>,
    /// Without the test module and comments.
    text: String,
}

struct Crate {
    name: String,
    files: Vec<SourceFile>,
}

fn source(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        module: module_of(Path::new(path.strip_prefix("src/").unwrap())),
        text: text.into(),
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repository").to_path_buf()
}

fn crates() -> Vec<Crate> {
    let root = repository();
    let mut folders = Vec::new();
    for pattern in CRATE_FOLDERS {
        match pattern.strip_suffix("/*") {
            Some(parent) => {
                let mut children: Vec<PathBuf> =
                    std::fs::read_dir(root.join(parent)).unwrap().map(|e| e.unwrap().path()).collect();
                children.sort();
                folders.extend(children.into_iter().filter(|p| p.join("src").is_dir()));
            }
            None => folders.push(root.join(pattern)),
        }
    }
    folders.into_iter().map(|folder| read_crate(&root, &folder)).collect()
}

fn read_crate(root: &Path, folder: &Path) -> Crate {
    let src = folder.join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    let files = paths
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let text = without_tests_and_comments(&std::fs::read_to_string(path).unwrap());
            SourceFile { path: relative, module: module_of(path.strip_prefix(&src).unwrap()), text }
        })
        .collect();
    Crate { name: folder.strip_prefix(root).unwrap().to_string_lossy().into(), files }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` and `main.rs` the root. A binary's
/// modules (`main.rs`'s) share the library's names here, which is stricter, never looser.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    let is_folder_root = stem == "mod" || parts.is_empty() && matches!(stem, "lib" | "main");
    if !is_folder_root {
        parts.push(stem.to_string());
    }
    parts
}

fn without_tests_and_comments(text: &str) -> String {
    let code = text.find("#[cfg(test)]").map_or(text, |i| &text[..i]);
    code.lines().map(|line| if line.trim_start().starts_with("//") { "" } else { line }).collect::<Vec<_>>().join("\n")
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l))
}

fn reads_by_position(line: &str) -> bool {
    line.match_indices(".column(").any(|(i, m)| {
        let rest = line[i + m.len()..].trim_start();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].trim_start().starts_with(')')
    })
}

/// Each function: its name, the line of `fn`, and its length in lines (to the closing brace at
/// the indentation of its `fn` line).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = function_name(lines[i]) else {
            i += 1;
            continue;
        };
        let indent = &lines[i][..lines[i].len() - lines[i].trim_start().len()];
        let mut open = i;
        while open < lines.len() && !lines[open].trim_end().ends_with('{') && !lines[open].trim_end().ends_with(';') {
            open += 1;
        }
        if open == lines.len() || lines[open].trim_end().ends_with(';') {
            i = open + 1;
            continue;
        }
        let close = (open..lines.len()).find(|&k| lines[k] == format!("{indent}}}")).unwrap_or(open);
        found.push((name, i + 1, close - i + 1));
        i = close + 1;
    }
    found
}

fn function_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest).strip_prefix("fn ")?;
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// The circles among a crate's modules, each as the sorted modules in it.
fn import_circles(krate: &Crate) -> Vec<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = krate.files.iter().map(|f| f.module.clone()).collect();
    let exports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> =
        krate.files.iter().map(|f| (f.module.clone(), re_exports(f))).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &krate.files {
        let targets = edges.entry(file.module.clone()).or_default();
        for path in referenced_paths(file, &modules) {
            let target = resolve(&path, &modules, &exports, 0);
            if target != file.module {
                targets.insert(target);
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|m| if m.is_empty() { "(root)".into() } else { m.join("::") }).collect())
        .collect()
}

/// The absolute paths (from the crate root) that a file names through `crate::`, `super::`,
/// `self::` and its child modules, in `use` statements (braces expanded) and inline.
fn referenced_paths(file: &SourceFile, modules: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for statement in use_statements(&file.text) {
        for path in expand_braces(&statement.text) {
            // `use child::Item` names a module below this one.
            let child = [file.module.clone(), path.clone()].concat();
            if let Some(absolute) = absolute(&file.module, &path) {
                paths.push(absolute);
            } else if modules.contains(&child[..file.module.len() + 1]) {
                paths.push(child);
            }
        }
    }
    for start in ["crate::", "super::"] {
        for (i, _) in file.text.match_indices(start) {
            let before = file.text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String =
                file.text[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            if path.ends_with("::") {
                continue; // `crate::{a, b}`: the use statement's own expansion names those
            }
            let segments: Vec<String> = path.split("::").map(str::to_string).collect();
            if let Some(absolute) = absolute(&file.module, &segments) {
                paths.push(absolute);
            }
        }
    }
    paths
}

/// A `use` statement: its text after `use` (without `;`), and whether it re-exports.
struct UseStatement {
    text: String,
    is_public: bool,
}

fn use_statements(text: &str) -> Vec<UseStatement> {
    let mut statements = Vec::new();
    let mut rest = text;
    while let Some((start, is_public)) = find_use(rest) {
        let body = &rest[start..];
        let end = body.find(';').unwrap_or(body.len());
        statements.push(UseStatement { text: body[..end].split_whitespace().collect::<Vec<_>>().join(" "), is_public });
        rest = &body[end..];
    }
    statements
}

/// The start of the next `use` statement's path (after the keyword), and whether it is `pub`.
fn find_use(text: &str) -> Option<(usize, bool)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        for (prefix, is_public) in
            [("pub(crate) use ", true), ("pub(super) use ", true), ("pub use ", true), ("use ", false)]
        {
            if let Some(rest) = trimmed.strip_prefix(prefix) {
                return Some((offset + line.len() - rest.len(), is_public));
            }
        }
        offset += line.len();
    }
    None
}

/// `a::{b, c::{d, e as f}}` -> `a::b`, `a::c::d`, `a::c::e` (an alias keeps the original name).
fn expand_braces(statement: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], text: &str, out: &mut Vec<Vec<String>>) {
        let text = text.trim();
        match text.find('{') {
            None => {
                let name = text.split(" as ").next().unwrap_or(text).trim();
                let mut path = prefix.to_vec();
                path.extend(name.split("::").filter(|s| !s.is_empty()).map(str::to_string));
                if !path.is_empty() {
                    out.push(path);
                }
            }
            Some(open) => {
                let mut path = prefix.to_vec();
                path.extend(text[..open].split("::").filter(|s| !s.is_empty()).map(str::to_string));
                let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
                for part in split_top_level(inner) {
                    expand(&path, part, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    expand(&[], statement, &mut out);
    out
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// A path relative to `module` made absolute; `None` for paths into other crates.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some(module.iter().chain(rest).cloned().collect()),
        "super" => {
            let parent = &module[..module.len().saturating_sub(1)];
            absolute(parent, &[&["self".to_string()], rest].concat())
        }
        _ => None,
    }
}

/// What a file re-exports with `pub use` (and `pub(crate) use`) of its own crate: name -> path.
fn re_exports(file: &SourceFile) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    for statement in use_statements(&file.text).into_iter().filter(|s| s.is_public) {
        for path in expand_braces(&statement.text) {
            let relative = if ["crate", "self", "super"].contains(&path[0].as_str()) {
                path.clone()
            } else {
                [vec!["self".to_string()], path.clone()].concat()
            };
            if let Some(target) = absolute(&file.module, &relative) {
                names.insert(path.last().unwrap().clone(), target);
            }
        }
    }
    names
}

/// The module that defines what `path` names: its longest prefix that is a module, with a
/// re-export of that module followed to where it comes from.
fn resolve(
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
    exports: &BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
    depth: usize,
) -> Vec<String> {
    let length = (0..=path.len()).rev().find(|&n| modules.contains(&path[..n])).unwrap_or(0);
    let module = path[..length].to_vec();
    if depth < 8
        && let Some(next) = path.get(length)
        && let Some(target) = exports.get(&module).and_then(|e| e.get(next))
        && target.as_slice() != path
    {
        return resolve(target, modules, exports, depth + 1);
    }
    module
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        components: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.edges.get(node).into_iter().flatten() {
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(member) = s.stack.pop() {
                s.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            component.sort();
            s.components.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.components
}
