//! The structure the trust rules rest on, read off the source tree: only the modules that own
//! a database name SQLite, the push plane imports nothing from the store but the appender,
//! the modules import one another without cycles, and functions stay short.
//!
//! The rules hold by construction (private modules, capability types); these tests keep a
//! later change from quietly undoing them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The modules that own a database, and so may name `rusqlite`.
const DATABASE_OWNERS: [&str; 3] = ["store/", "seal/", "token/"];

/// Lines a function may span before it must be split into named steps.
const MAX_FUNCTION_LINES: usize = 80;

/// Functions longer than that, each with the reason a flat table reads better than steps.
const LONG_ON_PURPOSE: [(&str, &str, &str); 5] = [
    (
        "query/logql/template/convert.rs",
        "call",
        "one arm per template conversion function, as Go's text/template lists them",
    ),
    (
        "query/logql/template/funcs.rs",
        "call",
        "one arm per template string function, as Go's text/template lists them",
    ),
    (
        "query/logql/template/clock.rs",
        "parse_local",
        "one arm per element of Go's reference time layout",
    ),
    (
        "config/limits.rs",
        "build",
        "one line per push limit key, in the order the reference lists them",
    ),
    (
        "config/query.rs",
        "build",
        "one line per query limit key, in the order the reference lists them",
    ),
];

/// Every `.rs` file under `src/`, as (path relative to `src/`, text before its unit tests).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files.sort();
    let out: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(SRC).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(p).unwrap();
            let code = text.split("\n#[cfg(test)]").next().unwrap().to_string();
            (rel, code)
        })
        .collect();
    assert!(out.len() > 100, "read only {} source files", out.len());
    out
}

/// Code without its comment lines (the rules are about code, not about prose naming things).
fn code_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_the_modules_that_own_a_database_name_sqlite() {
    let mut offenders = Vec::new();
    for (rel, text) in sources() {
        let owner = DATABASE_OWNERS.iter().any(|o| rel.starts_with(o));
        if !owner && code_lines(&text).contains("rusqlite") {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "rusqlite named outside store/, seal/ and token/: {offenders:?}"
    );
    let verify: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, text)| rel.starts_with("verify/") && code_lines(text).contains("SELECT"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(verify.is_empty(), "verify holds SQL of its own: {verify:?}");
}

#[test]
fn the_push_plane_imports_nothing_from_the_store_but_the_appender() {
    let store_path = Regex::new(r"crate::store((?:::\w+)*)").unwrap();
    let forbidden = Regex::new(
        r"\b(Reader|Pruner|Scan|StreamIndex|archive|audit|crate::verify|crate::query|crate::seal|crate::proof)\b",
    )
    .unwrap();
    let mut seen = 0;
    for (rel, text) in sources() {
        if !rel.starts_with("push/") {
            continue;
        }
        let code = code_lines(&text);
        for m in store_path.captures_iter(&code) {
            seen += 1;
            assert!(
                m[1].starts_with("::append"),
                "{rel}: push imports crate::store{} (only crate::store::append is allowed)",
                &m[1]
            );
        }
        if let Some(m) = forbidden.find(&code) {
            panic!("{rel}: the push plane names {}", m.as_str());
        }
    }
    assert!(
        seen > 0,
        "found no store import in push/: the check read nothing"
    );
}

/// A module path such as `["store", "append"]` for `src/store/append.rs`.
type Module = Vec<String>;

fn module_of(rel: &str) -> Module {
    let mut parts: Module = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The modules each file's `crate::` and `super::` paths lead to (the longest prefix that is
/// a file), leaving out a parent's paths into its own children, which only declare them.
fn import_graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let files = sources();
    let modules: BTreeSet<Module> = files.iter().map(|(rel, _)| module_of(rel)).collect();
    let resolve = |path: &[String]| -> Option<Module> {
        (0..=path.len())
            .rev()
            .map(|k| path[..k].to_vec())
            .find(|m| modules.contains(m))
    };
    let path_re = Regex::new(r"\b(crate|super)((?:::\w+)+)").unwrap();
    let group_re = Regex::new(r"(?s)\buse (crate|super)((?:::\w+)*)::\{([^;]*)\};").unwrap();
    let mut graph = BTreeMap::new();
    for (rel, text) in &files {
        let me = module_of(rel);
        let code = code_lines(text);
        let base = |root: &str, segs: &[&str]| -> Vec<String> {
            let mut p: Vec<String> = if root == "crate" {
                Vec::new()
            } else {
                me[..me.len().saturating_sub(1)].to_vec()
            };
            let mut segs = segs;
            while let ["super", rest @ ..] = segs {
                p.pop();
                segs = rest;
            }
            p.extend(segs.iter().map(|s| s.to_string()));
            p
        };
        let mut out = BTreeSet::new();
        for c in path_re.captures_iter(&code) {
            let segs: Vec<&str> = c[2].split("::").filter(|s| !s.is_empty()).collect();
            out.extend(resolve(&base(&c[1], &segs)));
        }
        for c in group_re.captures_iter(&code) {
            let segs: Vec<&str> = c[2].split("::").filter(|s| !s.is_empty()).collect();
            for item in c[3].split(',') {
                let first = item
                    .trim()
                    .trim_start_matches('{')
                    .split("::")
                    .next()
                    .unwrap_or("");
                let name = first.split_whitespace().next().unwrap_or("");
                if name.is_empty() || name == "self" {
                    continue;
                }
                let mut p = base(&c[1], &segs);
                p.push(name.to_string());
                out.extend(resolve(&p));
            }
        }
        out.retain(|m: &Module| m != &me && !(m.len() > me.len() && m.starts_with(&me)));
        graph.insert(me, out);
    }
    graph
}

/// A cycle through `start`, if the graph has one.
fn cycle_from(graph: &BTreeMap<Module, BTreeSet<Module>>, start: &Module) -> Option<Vec<Module>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn modules_import_one_another_without_cycles() {
    let graph = import_graph();
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 200,
        "only {edges} imports found: the check read nothing"
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("/")).collect();
            panic!("import cycle: {} -> back", names.join(" -> "));
        }
    }
}

/// Every function of a file: (name, first line, lines spanned), for rustfmt's layout.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let head = Regex::new(r"^(\s*)(?:pub(?:\([^)]*\))? )?(?:const )?(?:async )?fn (\w+)").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(c) = head.captures(line) else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            // A trait's declaration: no body.
            continue;
        }
        let close = format!("{}}}", &c[1]);
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            out.push((c[2].to_string(), i + 1, end + 1));
        }
    }
    out
}

#[test]
fn functions_are_short_but_the_listed_tables() {
    let mut long = Vec::new();
    let mut count = 0;
    for (rel, text) in sources() {
        for (name, line, len) in functions(&text) {
            count += 1;
            let listed = LONG_ON_PURPOSE
                .iter()
                .any(|(f, n, _)| *f == rel && *n == name);
            if len > MAX_FUNCTION_LINES && !listed {
                long.push(format!("{rel}:{line} {name} ({len} lines)"));
            }
        }
    }
    assert!(
        count > 1000,
        "found only {count} functions: the check read nothing"
    );
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: {long:#?}"
    );
}
