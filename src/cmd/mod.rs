//! Subcommands of the `csfuse` program.

pub mod batch;
pub mod bench;
pub mod devices;
pub mod fuse;
pub mod learn;
pub mod phantom;
pub mod sparse_code;

use csfuse::io::write_atomic;
use csfuse::Result;
use std::path::Path;

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON of plain data");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Refuse two outputs that are the same path (e.g. `-o x.png --report x.png`).
pub fn distinct_outputs(paths: &[&Path]) -> Result<()> {
    for (i, a) in paths.iter().enumerate() {
        if paths[..i].iter().any(|b| b == a) {
            return Err(csfuse::Error::BadOutput {
                path: a.to_path_buf(),
                msg: "the same path is given for two outputs".into(),
            });
        }
    }
    Ok(())
}
