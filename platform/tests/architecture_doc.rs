//! `docs/architecture.md` names, in its tables, the files that hold each part and the tests
//! that prove each invariant (`crate/tests/file.rs::test_name`, then `::other_test` for more
//! of the same file). A renamed or removed test would leave the document claiming a proof
//! that is not there: every file it names must exist, and every name after `::` must be a
//! function or module of that file (or of the files beside it, for a test binary split into
//! modules).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// A code reference: a source file (`.rs` or `.ts`) under a directory, and the names after it.
fn split_reference(reference: &str) -> Option<(&str, Vec<&str>)> {
    let mut parts = reference.split("::");
    let path = parts.next()?;
    let is_source = path.ends_with(".rs") || path.ends_with(".ts");
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    (is_source && plain && path.contains('/')).then(|| (path, parts.collect()))
}

/// Whether `name` is declared as a function or module in `file` or a Rust file beside it.
fn declares(file: &Path, name: &str) -> bool {
    let declared_in = |text: &str| {
        [
            format!("fn {name}("),
            format!("fn {name}<"),
            format!("mod {name} "),
        ]
        .iter()
        .any(|d| text.contains(d.as_str()))
    };
    if std::fs::read_to_string(file).is_ok_and(|t| declared_in(&t)) {
        return true;
    }
    let Some(dir) = file.parent() else {
        return false;
    };
    walk(dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| declared_in(&t)))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_file_and_test_the_architecture_names_exists() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("the document");
    let mut missing = Vec::new();
    let mut checked = 0;
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        // `::name` alone continues the file named last in the same row.
        let mut last: Option<PathBuf> = None;
        for reference in line.split('`').skip(1).step_by(2) {
            let (file, names) = match split_reference(reference) {
                Some((path, names)) => {
                    // Paths inside the web client's row are relative to `web/`.
                    let file = [root.join(path), root.join("web").join(path)]
                        .into_iter()
                        .find(|f| f.exists());
                    let Some(file) = file else {
                        missing.push(format!("{path}: no such file"));
                        last = None;
                        continue;
                    };
                    last = Some(file.clone());
                    (file, names)
                }
                None => match (reference.strip_prefix("::"), &last) {
                    (Some(rest), Some(file)) => (file.clone(), rest.split("::").collect()),
                    _ => continue,
                },
            };
            checked += 1;
            if let Some(name) = names.last()
                && !declares(&file, name)
            {
                missing.push(format!("{}::{name}: not declared", file.display()));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} references found: is the table format changed?"
    );
    assert!(
        missing.is_empty(),
        "docs/architecture.md names:\n{}",
        missing.join("\n")
    );
}
