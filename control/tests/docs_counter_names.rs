//! Counter names in the documentation. The docs name a counter as the JSON of
//! `svrctl --json show stats` does, in snake_case, and docs/svrctl.md lists every dataplane
//! drop reason and neighbour counter.
#![allow(clippy::expect_used, reason = "a test fails when the docs cannot be read")]

use std::fs;
use std::path::{Path, PathBuf};

use svr_control::neighbour::ResolverCounters;
use svr_dataplane::counters::DropReason;

/// Returns the repository's README.md and docs/*.md, each with its text.
fn docs() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).expect("read docs/") {
        let path = entry.expect("list docs/").path();
        if path.extension().is_some_and(|extension| extension == "md") {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("read a doc");
            (path, text)
        })
        .collect()
}

#[test]
fn docs_name_drop_reasons_in_snake_case() {
    let mut kebab = Vec::new();
    for (path, text) in docs() {
        for (number, line) in text.lines().enumerate() {
            for reason in DropReason::ALL {
                let name = reason.name();
                if name.contains('-') && line.contains(&format!("`{name}`")) {
                    kebab.push(format!("{}:{}: `{name}`", path.display(), number + 1));
                }
            }
        }
    }
    assert!(
        kebab.is_empty(),
        "counters named in kebab-case, which the JSON spells in snake_case:\n{}",
        kebab.join("\n")
    );
}

#[test]
fn svrctl_doc_lists_every_counter() {
    let (_, text) = docs()
        .into_iter()
        .find(|(path, _)| path.ends_with("docs/svrctl.md"))
        .expect("docs/svrctl.md exists");
    for reason in DropReason::ALL {
        let name = reason.name().replace('-', "_");
        assert!(text.contains(&format!("| `{name}` |")), "docs/svrctl.md lacks drop `{name}`");
    }
    for (name, _) in ResolverCounters::default().named() {
        assert!(text.contains(&format!("| `{name}` |")), "docs/svrctl.md lacks `{name}`");
    }
}
