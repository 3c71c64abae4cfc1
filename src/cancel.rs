//! Stopping a running job from another thread. The Python package requests it when Ctrl-C
//! arrives while a fusion runs with the GIL released; the solvers look once per iteration (one
//! relaxed atomic load) and the job ends with [`Error::Interrupted`], having written nothing.
//! The command-line program never requests it: a signal there removes the temps and exits.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask every running job to stop at its next iteration.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Let jobs run again (before a new one starts).
pub fn clear() {
    REQUESTED.store(false, Ordering::Relaxed);
}

pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once a stop was requested.
pub(crate) fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted("a cancel request"))
    } else {
        Ok(())
    }
}
