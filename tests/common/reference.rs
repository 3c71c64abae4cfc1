//! The published reference data, for the unit tests (`src/test_support.rs`) and the integration
//! tests (`tests/common`) alike.

use std::path::PathBuf;

/// The published reference data (demo pair, dictionaries, fused output), from
/// `CSFUSE_REFERENCE_DIR`. Tests that need it are `#[ignore]`d so a fresh clone passes; run with
/// `--include-ignored` and the variable set (as `.ci/run` does), they fail loudly if it is wrong.
pub fn reference_dir() -> PathBuf {
    let d = std::env::var_os("CSFUSE_REFERENCE_DIR")
        .map(PathBuf::from)
        .expect(
        "CSFUSE_REFERENCE_DIR is not set: point it at the project's shared/data/csmca_reference",
    );
    assert!(
        d.join("source1.tif").exists(),
        "CSFUSE_REFERENCE_DIR={} holds no source1.tif (it should be shared/data/csmca_reference)",
        d.display()
    );
    // Absolute, so the paths still hold in the temp folders the CLI tests run in.
    d.canonicalize().unwrap()
}

pub fn reference(name: &str) -> PathBuf {
    reference_dir().join(name)
}
