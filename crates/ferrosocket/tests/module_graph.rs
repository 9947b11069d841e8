//! No import cycle between the crate's top-level modules.
//!
//! Reads `src/`, takes each top-level module (`src/x.rs` or `src/x/`) as a node, and adds an
//! edge for every path that names another one: `crate::x::...`, `use crate::{x::A, y::B}`,
//! `super::...` resolved from the file's place, and `crate::Name` for a name `lib.rs`
//! re-exports from `x`. Comments are skipped, so doc links do not count. A cycle fails the
//! test with its path: give the shared type a module of its own instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules and the modules each one names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `[]` for `lib.rs`, `["conn", "engine"]` for
/// `conn/engine.rs`, `["conn"]` for `conn/mod.rs` or `conn.rs`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// `text` without comments (line, doc and block comments) and string literals.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            (b'"', _) => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            (c, _) => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`, after spaces.
fn ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every path item in the `{...}` group at the start of `s`.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                at_item = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_item = true,
            c if at_item && depth == 1 && is_ident(c) => {
                heads.push(ident(&s[i..]).to_owned());
                at_item = false;
            }
            _ => {}
        }
    }
    heads
}

/// Every path root named in `code` from a module at `here`: each is the path from the crate
/// root, as far as it is known (`["conn", "engine"]`, `["Dialer"]`).
fn named_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (kw, base) in [
        ("crate", Vec::new()),
        (
            "super",
            here.get(..here.len().saturating_sub(1))
                .unwrap_or_default()
                .to_vec(),
        ),
    ] {
        let pattern = format!("{kw}::");
        let mut from = 0;
        while let Some(pos) = code[from..].find(&pattern) {
            let at = from + pos;
            from = at + pattern.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
                continue;
            }
            let rest = &code[from..];
            let mut base = base.clone();
            let mut rest = rest;
            // super::super::x
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            if rest.trim_start().starts_with('{') {
                for head in group_heads(rest) {
                    let mut p = base.clone();
                    p.push(head);
                    out.push(p);
                }
            } else {
                let mut p = base;
                p.push(ident(rest).to_owned());
                out.push(p);
            }
        }
    }
    out
}

/// Names `lib.rs` re-exports, with the top-level module each comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident(rest).to_owned();
        let after = &rest[module.len()..];
        let names: Vec<String> = match after.find('{') {
            Some(open) => after[open + 1..]
                .split([',', '}', '{'])
                .map(|n| n.trim().rsplit("::").next().unwrap_or_default().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            None => vec![after.rsplit("::").next().unwrap_or_default().trim().to_owned()],
        };
        for name in names {
            out.insert(name, module.clone());
        }
    }
    out
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let lib = strip(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let names = reexports(&lib);
    let mut modules = BTreeSet::new();
    for f in &files {
        if let Some(top) = module_path(src, f).first() {
            modules.insert(top.clone());
        }
    }
    let mut g = Graph::new();
    for f in &files {
        let here = module_path(src, f);
        let Some(from) = here.first().cloned() else {
            continue;
        };
        let code = strip(&fs::read_to_string(f).unwrap());
        let edges = g.entry(from.clone()).or_default();
        for path in named_paths(&code, &here) {
            let Some(head) = path.first() else { continue };
            let to = if modules.contains(head) {
                head.clone()
            } else if let Some(m) = names.get(head).filter(|m| modules.contains(*m)) {
                m.clone()
            } else {
                continue;
            };
            if to != from {
                edges.insert(to);
            }
        }
    }
    g
}

/// A cycle in `g`, as the list of modules along it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    // The check must see the modules it is about.
    for (from, to) in [("client", "error"), ("conn", "slot"), ("upgrader", "conn")] {
        assert!(
            g.get(from).is_some_and(|e| e.contains(to)),
            "{from} -> {to} not found in {g:#?}"
        );
    }
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "import cycle between modules of ferrosocket: {}; give the shared type a module of its own\n{g:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_checker_sees_paths_and_cycles() {
    let here = vec!["conn".to_owned(), "engine".to_owned()];
    let code = strip(
        "use crate::{error::Error, slot::ConnSlot};\n/// [`x`](crate::doc::Link)\nuse super::super::pool::X;\nlet s = \"crate::text::No\"; use $crate::m::No; f(crate::Dialer);",
    );
    let got = named_paths(&code, &here);
    let heads: Vec<&str> = got.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(heads, ["error", "slot", "Dialer", "pool"]);
    let names = reexports(
        "pub use client::{Dialer, NoProxy};\npub use error::{\n    Error,\n    Proxy,\n};\npub use maybe_tls::Transport;",
    );
    assert_eq!(names["Dialer"], "client");
    assert_eq!(names["Proxy"], "error");
    assert_eq!(names["Transport"], "maybe_tls");
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
