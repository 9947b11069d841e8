//! The READMEs stay true: the repository README's Rust examples are the crate README's, which
//! compile as doctests (`ReadmeDoctests` in `src/lib.rs`), so the client quick start a user
//! copies from either file is code that builds with every change.

use std::path::Path;

/// The fenced Rust code blocks of a Markdown file, in order (```` ```rust ```` with any
/// attributes after it).
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            Some(block) if line.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn repository_readme_examples_are_the_doctested_ones() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root_readme = manifest.join("../../README.md");
    if !root_readme.exists() {
        // Built from a published package: only the crate README (doctested) is there.
        return;
    }
    let root = rust_blocks(&read(&root_readme));
    let crate_blocks = rust_blocks(&read(&manifest.join("README.md")));
    assert_eq!(
        root.len(),
        2,
        "the repository README has a client and a server quick start"
    );
    assert_eq!(
        root, crate_blocks,
        "README.md and crates/ferrosocket/README.md must show the same Rust examples (the \
         crate README's are compiled as doctests)"
    );
    assert!(
        root[0].contains("Dialer::new().connect(\"ws://127.0.0.1:8080/ws\")"),
        "the client quick start dials the echo server the README's first command starts"
    );
}

#[test]
fn repository_readme_keeps_its_first_commands_and_a_quiet_bench_server() {
    let root_readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    if !root_readme.exists() {
        return;
    }
    let text = read(&root_readme);
    let first_block: Vec<&str> = text
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .map(|block| block.lines().collect())
        .unwrap_or_default();
    assert!(first_block[0].starts_with("cargo run --release -p ferrosocket-cli -- echo "));
    assert!(first_block[1].starts_with("cargo test --workspace "));
    // The echo server started in the background for the load generator must not print
    // every message.
    let background: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("-- echo") && l.contains(" &"))
        .collect();
    assert!(!background.is_empty(), "the bench example starts an echo server");
    for line in background {
        assert!(line.contains("--quiet"), "echo started without --quiet: {line}");
    }
}

#[test]
fn rust_blocks_finds_fenced_rust_only() {
    let md = "text\n```sh\nls\n```\n```rust,no_run\nfn a() {}\n```\n```rust\nfn b() {}\n```\n";
    assert_eq!(rust_blocks(md), ["fn a() {}\n", "fn b() {}\n"]);
}
