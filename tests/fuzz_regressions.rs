//! The fuzz targets' saved inputs, replayed under plain `cargo test`:
//! every file under `fuzz/regressions/<target>/` (an input that once
//! crashed the target) and `fuzz/seeds/<target>/` (the seed corpus) goes
//! through the same driver function as `cargo fuzz run <target>`, which
//! asserts the target's invariants; a panic fails the test, naming the
//! file. See `fuzz/README.md`.

#[path = "../fuzz/src/lib.rs"]
mod drivers;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none if it is absent.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every saved input of `target`; fails listing each that panicked.
fn replay(target: &str) {
    let (_, run) = drivers::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let mut failed = Vec::new();
    let mut ran = 0;
    for kind in ["regressions", "seeds"] {
        for file in inputs(kind, target) {
            let data = std::fs::read(&file).expect("a readable input");
            ran += 1;
            // Each input on its own, so that one panic does not hide the rest.
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        ran > 0,
        "{target}: no seeds found under fuzz/seeds/{target}"
    );
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail (see the panics above):\n{}",
        failed.join("\n")
    );
}

#[test]
fn text_parser() {
    replay("text_parser");
}

#[test]
fn protobuf_decoder() {
    replay("protobuf_decoder");
}

#[test]
fn grouping_key() {
    replay("grouping_key");
}

#[test]
fn body_decoder() {
    replay("body_decoder");
}

#[test]
fn push_path() {
    replay("push_path");
}

/// A directory under `seeds/` or `regressions/` that names no target
/// would be skipped without a word.
#[test]
fn every_input_directory_names_a_target() {
    for kind in ["regressions", "seeds"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for dir in dirs {
            let name = dir.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(
                drivers::TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} names no target of fuzz/src/lib.rs"
            );
        }
    }
}
