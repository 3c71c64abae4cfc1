//! csfuse's errors as Python exceptions (the messages are the command line's), and jobs run with
//! the GIL released where Ctrl-C still stops them.

use csfuse::Error;
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pyo3::create_exception!(
    csfuse,
    GpuError,
    PyRuntimeError,
    "No usable GPU adapter, a lost device, GPU memory exhausted, or a size beyond the adapter's \
     limits (backend=\"auto\" falls back to the CPU instead)."
);
pyo3::create_exception!(
    csfuse,
    ValidationError,
    PyRuntimeError,
    "validate=True found the GPU and CPU engines further apart than the tolerance."
);

/// The exception a csfuse error is raised as.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Gpu(_) => GpuError::new_err(msg),
        Error::Validation(_) => ValidationError::new_err(msg),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Memory(_) => PyMemoryError::new_err(msg),
        Error::Numerical(_) => PyRuntimeError::new_err(msg),
        Error::Interrupted(_) => PyKeyboardInterrupt::new_err(msg),
        Error::BadOutput { .. } => PyOSError::new_err(msg),
        Error::Decode { .. }
        | Error::BadImage { .. }
        | Error::BadNpy { .. }
        | Error::BadDictionary { .. }
        | Error::SizeMismatch { .. }
        | Error::Param(_) => PyValueError::new_err(msg),
    }
}

/// Run `job` on a thread of its own while this one waits with the GIL released, looking for
/// signals ten times a second: Ctrl-C asks the job to stop at its next solver iteration
/// ([`csfuse::cancel`]), waits for it, and raises KeyboardInterrupt.
pub fn run_released<T, F>(py: Python<'_>, job: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> csfuse::Result<T> + Send + 'static,
{
    csfuse::cancel::clear();
    csfuse::progress::reset();
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let signal = Arc::clone(&done);
    let worker = std::thread::Builder::new()
        .name("csfuse job".into())
        .spawn(move || {
            let out = job();
            let (flag, cv) = &*signal;
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
            out
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    loop {
        let finished = py.detach(|| {
            let (flag, cv) = &*done;
            let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, Duration::from_millis(100), |f| !*f)
                .unwrap_or_else(|p| p.into_inner());
            *guard
        });
        if finished {
            break;
        }
        if let Err(interrupt) = py.check_signals() {
            csfuse::cancel::request();
            let _ = py.detach(|| worker.join());
            csfuse::cancel::clear();
            return Err(interrupt);
        }
    }
    match py.detach(|| worker.join()) {
        Ok(out) => out.map_err(to_py),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!(
                "csfuse failed unexpectedly (a bug; please report it): {what}"
            )))
        }
    }
}
