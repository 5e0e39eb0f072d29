//! README.md and docs/: every relative link leads to a file (and a heading) that exists,
//! and every repository path they name in backticks exists.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// README.md and every page in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text outside fenced code blocks, line by line: links and paths in code blocks are
/// the user's project, not this repository.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The anchors GitHub gives a page's headings.
fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .into_iter()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// Every `](target)` of a line.
fn links(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| line[at + 2..].split_once(')').map(|(target, _)| target))
        .collect()
}

/// Every `code` span of a line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Whether a code span names a file or directory of this repository: a relative path
/// with a `/`, not one of the user's project, a build output or a pattern.
fn names_repository_path(span: &str) -> bool {
    let user_or_output = [
        "my-firmware/",
        "target/",
        "../shared/",
        "guests::",
        "OUT_DIR",
        "src/",
        "wit/",
        "keys/",
    ];
    span.contains('/')
        && !span.contains(|c: char| c.is_whitespace() || "<>…*${}:=\"'()|,".contains(c))
        && !span.starts_with('/')
        && !span.starts_with('-')
        && !user_or_output.iter().any(|prefix| span.starts_with(prefix))
        && span
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
}

#[test]
fn every_relative_link_and_named_path_in_readme_and_docs_exists() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        for line in prose(&text) {
            for target in links(line) {
                if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file_path = if file.is_empty() { page.clone() } else { dir.join(file) };
                if !file_path.exists() {
                    broken.push(format!("{name}: link to {target}: no such file"));
                } else if !anchor.is_empty() && file_path.extension().is_some_and(|e| e == "md") {
                    let linked = std::fs::read_to_string(&file_path).unwrap();
                    if !anchors(&linked).iter().any(|a| a == anchor) {
                        broken.push(format!("{name}: link to {target}: no such heading"));
                    }
                }
            }
            for span in code_spans(line) {
                if names_repository_path(span) && !exists_from(span, &[&repo(), dir]) {
                    broken.push(format!("{name}: `{span}`: no such path in the repository"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

fn exists_from(path: &str, dirs: &[&Path]) -> bool {
    dirs.iter().any(|dir| dir.join(path).exists())
}

#[test]
fn readme_is_a_front_page() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines; the long sections belong in docs/"
    );
    for page in [
        "guide",
        "boards",
        "components",
        "prebuilt",
        "updates",
        "async",
        "size",
        "speed",
        "trust",
    ] {
        assert!(
            readme.contains(&format!("(docs/{page}.md)")),
            "README.md does not link docs/{page}.md"
        );
    }
}
