//! Every command in the README and in `docs/` runs as written.
//!
//! Each fenced block tagged `sh` is run with bash (`-euo pipefail`), the blocks of one page in
//! order in one fresh folder holding a copy of `assets/`, with the `csfuse` under test first on
//! PATH. Blocks tagged `sh norun` are not run: they install software, need data a clone does not
//! have, or start a cluster job. In the README's first block, `cargo run --release --` is the
//! `csfuse` under test and `cargo test --release` (this suite) is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages: the README, then `docs/*.md` in name order, then `examples/*/README.md`.
fn pages() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut all = vec![root().join("README.md")];
    all.extend(docs);
    // The examples' own pages (their cluster commands are `sh norun`, their links are checked).
    for e in std::fs::read_dir(root().join("examples")).expect("examples/ exists") {
        let readme = e.unwrap().path().join("README.md");
        if readme.exists() {
            all.push(readme);
        }
    }
    all
}

/// Fenced blocks of `text` as (info string, first line number, body).
fn blocks(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), i + 1, String::new())),
            (Some(_), Some("")) => out.push(open.take().unwrap()),
            (Some((_, _, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fenced block is not closed");
    out
}

/// The commands of a `sh` block as the test runs them.
fn runnable(body: &str) -> String {
    body.lines()
        .filter(|l| !l.trim_start().starts_with("cargo test"))
        .map(|l| l.replace("cargo run --release --", "csfuse"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn every_sh_block_of_the_readme_and_docs_runs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_csfuse"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&root().join("assets"), &dir.path().join("assets"));
        for (info, line, body) in blocks(&text) {
            let name = format!("{}:{line}", page.strip_prefix(root()).unwrap().display());
            match info.as_str() {
                "sh" => {}
                "sh norun" => continue,
                i if i.starts_with("sh") || i == "bash" || i == "shell" => {
                    panic!("{name}: tag a shell block `sh` (run by this test) or `sh norun`, not `{i}`")
                }
                _ => continue,
            }
            assert!(
                !body.contains("../shared"),
                "{name}: a clone has no ../shared; tag the block `sh norun`"
            );
            let script = runnable(&body);
            let t = std::time::Instant::now();
            let o = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir.path())
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{name} failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            println!("{name}: {:.1} s", t.elapsed().as_secs_f64());
            ran += 1;
        }
    }
    // The README's two commands, the quick start and at least one example per page.
    assert!(ran >= 12, "only {ran} blocks ran");
}

#[test]
fn the_readme_starts_with_the_two_commands() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (info, _, body) = blocks(&text).into_iter().next().expect("a first block");
    assert_eq!(info, "sh");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(
        lines[0].starts_with("cargo run --release -- fuse assets/"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "cargo test --release");
}

/// The anchors GitHub gives a page's headings: lower case, spaces to hyphens, other punctuation
/// dropped.
fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn relative_links_of_the_readme_and_docs_exist() {
    let mut missing = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let base = page.parent().unwrap();
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("");
            let file = target.split('#').next().unwrap_or("");
            if file.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let dest = if file.is_empty() {
                page.clone()
            } else {
                base.join(file)
            };
            if !file.is_empty() && !dest.exists() {
                missing.push(format!("{}: {target}", page.display()));
                continue;
            }
            if let Some(anchor) = target.split_once('#').map(|(_, a)| a) {
                let heads = std::fs::read_to_string(&dest)
                    .map(|t| anchors(&t))
                    .unwrap_or_default();
                if !heads.iter().any(|h| h == anchor) {
                    missing.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "links to nothing:\n{}",
        missing.join("\n")
    );
}
