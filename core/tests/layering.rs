//! pgate-core's top-level modules form layers: no import cycles between them (the facts
//! buffer knows nothing of the classifier that fills it, the decision table nothing of
//! the SQL grammar). Read from the sources: every `crate::module` path a module's files
//! name is an edge, and the graph must have a topological order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            rust_files(&e.unwrap().path(), out);
        }
    } else if p.is_file() && p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

/// The modules `text` names through `crate::x` or `crate::{x, y::…}`.
fn named_modules(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|g| word(g.trim())));
        } else {
            out.insert(word(rest));
        }
    }
    out.retain(|m| modules.contains(m));
    out
}

#[test]
fn the_core_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeSet::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if name != "lib" && (p.is_dir() || p.extension().is_some_and(|e| e == "rs")) {
            modules.insert(name);
        }
    }
    assert!(
        modules.contains("sql") && modules.contains("facts"),
        "{modules:?}"
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let mut files = Vec::new();
        rust_files(&src.join(m), &mut files);
        rust_files(&src.join(format!("{m}.rs")), &mut files);
        let mut deps = BTreeSet::new();
        for f in files {
            deps.extend(named_modules(
                &std::fs::read_to_string(f).unwrap(),
                &modules,
            ));
        }
        deps.remove(m);
        edges.insert(m.clone(), deps);
    }
    // The one this test was written for: facts must not reach into the classifier.
    assert!(!edges["facts"].contains("sql"), "facts imports sql");
    // Kahn: repeatedly remove modules that depend on nothing left.
    let mut left = edges.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|(_, d)| d.iter().all(|x| !left.contains_key(x)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!ready.is_empty(), "an import cycle among {left:?}");
        for m in ready {
            left.remove(&m);
        }
    }
}
