//! The regression corpus the classifier's tests and benchmarks read
//! (`../shared/corpus/pg-regress`, or `$PGATE_CORPUS/pg-regress`).
#![allow(dead_code)] // each test crate uses part of it

use std::path::PathBuf;

/// The `pg-regress` folder, if it is there.
pub fn corpus_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PGATE_CORPUS").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|p| p.join("pg-regress"))
        .find(|p| p.is_dir())
}

/// Its `.sql` files, sorted (empty when the corpus is missing).
pub fn corpus_files() -> Vec<PathBuf> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    files
}

/// The text of every file (unreadable ones skipped).
pub fn corpus_texts() -> Vec<String> {
    corpus_files()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}
