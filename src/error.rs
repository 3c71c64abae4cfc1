//! Typed errors. Every error that concerns a file names it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {msg}")]
    Decode { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    BadImage { path: PathBuf, msg: String },
    #[error("{path}: not a usable .npy dictionary: {msg}")]
    BadNpy { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    BadDictionary { path: PathBuf, msg: String },
    #[error("images differ in size: {a} is {aw}x{ah}, {b} is {bw}x{bh}")]
    SizeMismatch {
        a: PathBuf,
        aw: usize,
        ah: usize,
        b: PathBuf,
        bw: usize,
        bh: usize,
    },
    #[error("{path}: {msg}")]
    BadOutput { path: PathBuf, msg: String },
    #[error("invalid parameter: {0}")]
    Param(String),
    /// No usable GPU adapter, device lost, out of GPU memory, or a size beyond the adapter's limits.
    /// `--backend auto` falls back to the CPU on this error.
    #[error("GPU: {0}")]
    Gpu(String),
    /// `--validate` found the GPU and CPU engines further apart than its tolerance.
    #[error("validation failed: {0}")]
    Validation(String),
    /// A solver or the pipeline produced NaN or Inf (the result is not written).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// The job's estimated memory peak is over `--memory-budget`.
    #[error("{0}")]
    Memory(String),
    /// SIGINT or SIGTERM arrived; the run's temporary files were removed.
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether this error is a device fault that `--backend auto` answers by rerunning on the CPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Error::Gpu(_))
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
