//! The shape of the code, checked like behaviour: the rules of docs/DESIGN.md ("The house") that a
//! compiler does not enforce. Cargo already keeps a crate from importing a crate above it; these
//! tests read the sources of every crate and fail, naming the files, when
//!
//! * modules of one crate import each other in a circle (`use crate::..`, `super::..`, and paths
//!   written inline, with `pub use` re-exports followed to the module that defines the item);
//! * a batch column is read by position (`.column(0)`) instead of by name;
//! * a function is longer than 80 lines, apart from the declarative tables listed below;
//! * one crate holds more than 40% of the lines.
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
    SourceFile { path: path.into(), module: module_of(Path::new(path.strip_prefix("src/").unwrap())), text: text.into() }
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
    code.lines()
        .map(|line| if line.trim_start().starts_with("//") { "" } else { line })
        .collect::<Vec<_>>()
        .join("\n")
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
