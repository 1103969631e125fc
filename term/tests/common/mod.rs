//! Helpers shared by the term integration tests: the recorded corpus and
//! property-test case counts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The corpus files (`tests/corpus/*.bin`), sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus is missing files");
    files
}

/// Number of cases: `PROPTEST_CASES` if set (for long runs), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
