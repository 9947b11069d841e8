//! The layering rule, checked on the source: the tokio crate makes no protocol decision, so
//! `crates/ferrosocket/src` never names an opcode and never matches on a close code. Opcode
//! logic and close-code rules belong in `ferrosocket-proto` (DESIGN.md, "Dependency rules").
//!
//! What counts, in code (comments, strings and character literals are blanked first):
//! - the identifier `OpCode` anywhere (a path `OpCode::Text`, an import, a type);
//! - `CloseCode::` inside a pattern: a `match` arm's pattern or guard, the pattern of
//!   `matches!`, or the pattern of a `let` / `if let` / `while let`.
//!
//! Close codes as values stay allowed: building a close frame
//! (`CloseFrame::new(CloseCode::GOING_AWAY, "...")`), comparing a received code, or passing a
//! list of codes. The check is lexical but exact about where a pattern starts and ends: it
//! follows brackets, so a match arm's body, a nested match or a closure is never mistaken for
//! a pattern. Its own tests below pin what it flags and what it lets through.

use std::path::{Path, PathBuf};

/// A rule broken at `line` (1-based) of a file.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    line: usize,
    what: &'static str,
}

/// `src` with comments, string literals and character literals replaced by spaces (newlines
/// kept, so byte offsets and line numbers stay those of the file).
fn blank_non_code(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(hashes) = raw_string_start(rest)
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // r"..", r#".."#, br#".."#: ends at a quote followed by as many hashes.
            let open = rest.iter().position(|&c| c == b'"').unwrap_or(0) + 1;
            let mut j = i + open;
            while j < b.len()
                && !(b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&c| c == b'#').count() == hashes)
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('a', '\n', '\u{..}', '"'), or else a lifetime / label.
            let end = if rest.get(1) == Some(&b'\\') {
                rest.iter()
                    .skip(2)
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p + 1)
            } else {
                let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 1 + ch + 1)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw string starting here, if one does.
fn raw_string_start(rest: &[u8]) -> Option<usize> {
    let rest = rest.strip_prefix(b"b").unwrap_or(rest);
    let rest = rest.strip_prefix(b"r")?;
    let hashes = rest.iter().take_while(|&&c| c == b'#').count();
    (rest.get(hashes) == Some(&b'"')).then_some(hashes)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether the identifier `word` starts at `i` (not inside a longer identifier).
fn word_at(code: &[u8], i: usize, word: &[u8]) -> bool {
    code[i..].starts_with(word)
        && (i == 0 || !is_ident(code[i - 1]))
        && code.get(i + word.len()).is_none_or(|&c| !is_ident(c))
}

fn line_of(code: &[u8], i: usize) -> usize {
    code[..i].iter().filter(|&&c| c == b'\n').count() + 1
}

/// The index just past the bracket that closes the one opened at `open`.
fn skip_group(code: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < code.len() {
        match code[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// From `i`, the index of the first of `stops` outside any bracket opened after `i`, or of a
/// closing bracket that was opened before `i` (the end of the enclosing group).
fn scan_to(code: &[u8], mut i: usize, stops: &[&[u8]]) -> usize {
    while i < code.len() {
        match code[i] {
            b'(' | b'[' | b'{' => {
                i = skip_group(code, i);
                continue;
            }
            b')' | b']' | b'}' => return i,
            _ => {}
        }
        if stops.iter().any(|s| code[i..].starts_with(s)) {
            return i;
        }
        i += 1;
    }
    code.len()
}

/// The byte ranges of every pattern in `code`: match arms (pattern and guard), `matches!`
/// patterns, and `let` patterns.
fn pattern_ranges(code: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for i in 0..code.len() {
        if word_at(code, i, b"match") {
            // The body is the first `{` after the scrutinee (a scrutinee cannot hold a bare
            // struct literal; brackets inside it are skipped).
            let mut j = i + 5;
            while j < code.len() && code[j] != b'{' {
                if matches!(code[j], b'(' | b'[') {
                    j = skip_group(code, j);
                } else if code[j] == b';' || code[j] == b'}' {
                    break;
                } else {
                    j += 1;
                }
            }
            if code.get(j) != Some(&b'{') {
                continue;
            }
            let end = skip_group(code, j) - 1;
            let mut arm = j + 1;
            while arm < end {
                let arrow = scan_to(code, arm, &[b"=>"]);
                if arrow >= end {
                    break;
                }
                ranges.push((arm, arrow));
                // The arm's body: a block (then an optional comma), or an expression up to
                // the next comma at this level.
                let mut k = arrow + 2;
                while k < end && code[k].is_ascii_whitespace() {
                    k += 1;
                }
                arm = if code.get(k) == Some(&b'{') {
                    let after = skip_group(code, k);
                    let next = scan_to(code, after, &[b","]);
                    if next < end
                        && code[next] == b','
                        && code[after..next].iter().all(u8::is_ascii_whitespace)
                    {
                        next + 1
                    } else {
                        after
                    }
                } else {
                    scan_to(code, k, &[b","]) + 1
                };
            }
        } else if code[i..].starts_with(b"matches!") && (i == 0 || !is_ident(code[i - 1])) {
            let Some(open) = code[i + 8..]
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .map(|p| i + 8 + p)
            else {
                continue;
            };
            let comma = scan_to(code, open + 1, &[b","]);
            let close = skip_group(code, open) - 1;
            if comma < close {
                ranges.push((comma + 1, close));
            }
        } else if word_at(code, i, b"let") {
            // Up to the `=` (not `==`, `=>`, `<=`, `>=`, `!=`), or `;` for `let x;`.
            let mut j = i + 3;
            let end = loop {
                let k = scan_to(code, j, &[b"=", b";"]);
                if k >= code.len() || code[k] != b'=' {
                    break k;
                }
                let prev = code[k - 1];
                let next = code.get(k + 1).copied().unwrap_or(b' ');
                if next == b'=' || next == b'>' || matches!(prev, b'<' | b'>' | b'!' | b'=') {
                    j = k + 2;
                    continue;
                }
                break k;
            };
            ranges.push((i + 3, end));
        }
    }
    ranges
}

/// Every place in `src` that breaks the rule.
fn violations(src: &str) -> Vec<Violation> {
    let code = blank_non_code(src);
    let mut found = Vec::new();
    for i in 0..code.len() {
        if word_at(&code, i, b"OpCode") {
            found.push(Violation {
                line: line_of(&code, i),
                what: "names an opcode (OpCode)",
            });
        }
    }
    for (from, to) in pattern_ranges(&code) {
        for i in from..to {
            if word_at(&code, i, b"CloseCode") && code[i + 9..].starts_with(b"::") {
                found.push(Violation {
                    line: line_of(&code, i),
                    what: "matches on a close code (CloseCode:: in a pattern)",
                });
            }
        }
    }
    found.sort_by_key(|v| v.line);
    found.dedup();
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_tokio_crate_makes_no_opcode_or_close_code_decision() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 10, "found only {files:?} under {}", src.display());
    let mut report = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for v in violations(&text) {
            let shown = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file);
            report.push(format!("{}:{}: {}", shown.display(), v.line, v.what));
        }
    }
    assert!(
        report.is_empty(),
        "protocol decisions in the tokio crate (move them into ferrosocket-proto; see DESIGN.md):\n{}",
        report.join("\n")
    );
}

// ---- the checker's own tests ----------------------------------------------------------------

fn lines(src: &str) -> Vec<usize> {
    violations(src).into_iter().map(|v| v.line).collect()
}

#[test]
fn flags_opcodes_anywhere_in_code() {
    assert_eq!(
        lines("use ferrosocket_proto::OpCode;\nfn f() { let _ = OpCode::Text; }"),
        [1, 2]
    );
    assert_eq!(lines("fn f(op: proto::OpCode) {}"), [1]);
    // Not in comments, doc comments, strings, or longer identifiers.
    assert_eq!(
        lines("// OpCode::Text\n/// [`OpCode`]\nconst S: &str = \"OpCode::Ping\";\nstruct MyOpCode;"),
        []
    );
    assert_eq!(
        lines("/* outer /* OpCode */ still comment */ const R: &str = r#\"OpCode\"#;"),
        []
    );
}

#[test]
fn flags_close_codes_in_match_arms_and_guards() {
    let src = "fn f(c: CloseCode) -> u8 {\n    match c {\n        CloseCode::NORMAL_CLOSURE => 1,\n        x if x == CloseCode::GOING_AWAY => 2,\n        _ => 3,\n    }\n}";
    assert_eq!(lines(src), [3, 4]);
    // A nested pattern, over several lines, after a block-bodied arm.
    let src = "match f {\n    Some(x) => { g(x); }\n    Some(CloseFrame {\n        code: CloseCode::PROTOCOL_ERROR, ..\n    }) => {}\n    None => {}\n}";
    assert_eq!(lines(src), [4]);
}

#[test]
fn flags_close_codes_in_matches_and_let_patterns() {
    assert_eq!(
        lines("let a = matches!(c, CloseCode::NORMAL_CLOSURE | CloseCode::GOING_AWAY);"),
        [1]
    );
    assert_eq!(lines("if let Some(CloseCode::ABNORMAL_CLOSURE) = code { }"), [1]);
    assert_eq!(lines("let CloseCode::NORMAL_CLOSURE = c else { return };"), [1]);
}

#[test]
fn lets_close_codes_through_as_values() {
    // Building frames, comparing, passing lists: values, not patterns.
    let src = "fn f(conn: &mut Conn, e: &Error) -> bool {\n\
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, \"bye\");\n\
        let normal = matches!(e, Error::Closed(c) if c.code == CloseCode::NORMAL_CLOSURE);\n\
        match e {\n\
            Error::Closed(c) => c.code == CloseCode::ABNORMAL_CLOSURE,\n\
            _ => conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, \"\"))).is_ok(),\n\
        }\n\
        && is_close_error(e, &[CloseCode::NORMAL_CLOSURE])\n\
    }";
    // Only the `matches!` guard is a pattern position (line 3).
    assert_eq!(lines(src), [3]);
    assert_eq!(
        lines(
            "let f = CloseFrame::new(CloseCode::GOING_AWAY, \"\");\nlet x = c == CloseCode::NORMAL_CLOSURE;"
        ),
        []
    );
    assert_eq!(
        lines(
            "let reply = match a { CloseAction::Echo => close_reply(f), CloseAction::Reply(f) => Some(f) };"
        ),
        []
    );
    // Lifetimes and char literals do not confuse the blanking.
    assert_eq!(
        lines("fn g<'a>(s: &'a str) -> char { let q = '\"'; match s { _ => 'x' } }"),
        []
    );
}
