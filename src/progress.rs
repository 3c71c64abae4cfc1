//! Progress of long jobs: a bar with rate and ETA on a terminal, plain log lines (about every 10 %)
//! when stderr is a file or a pipe (batch jobs, CI logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

// The latest job's units done and in all, for a caller on another thread (the Python package's
// `csfuse.progress()`, which napari's progress bar polls).
static DONE: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Forget the latest job's progress (a new job that reports none then reads as `(0, 0)`).
pub fn reset() {
    DONE.store(0, Ordering::Relaxed);
    TOTAL.store(0, Ordering::Relaxed);
}

/// Units done and in all of the latest job that reports progress (volumes: slices); `(0, 0)`
/// before any.
pub fn current() -> (u64, u64) {
    (DONE.load(Ordering::Relaxed), TOTAL.load(Ordering::Relaxed))
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: u64,
    next_log: u64,
    start: Instant,
}

impl Progress {
    /// A bar on a terminal and nothing else: for a single job, whose log stays as it was.
    pub fn bar_only(total: u64, what: &'static str, show: bool) -> Self {
        let mut p = Self::new(total, what, show);
        p.next_log = u64::MAX;
        p.total = p.total.max(1);
        p
    }

    /// Progress over `total` units named `what` ("slices"); `show = false` keeps it silent.
    pub fn new(total: u64, what: &'static str, show: bool) -> Self {
        DONE.store(0, Ordering::Relaxed);
        TOTAL.store(total, Ordering::Relaxed);
        let bar = (show && std::io::stderr().is_terminal() && log::log_enabled!(log::Level::Info))
            .then(|| {
                let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{bar:40}} {{pos}}/{{len}} {what}, {{per_sec}}, ETA {{eta}}"
                    ))
                    .expect("valid template"),
                );
                b
            });
        Progress {
            bar,
            what,
            total,
            done: 0,
            next_log: if show {
                total.div_ceil(10).max(1)
            } else {
                u64::MAX
            },
            start: Instant::now(),
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        DONE.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        } else if self.done >= self.next_log
            || (self.done == self.total && self.next_log != u64::MAX)
        {
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            let eta = (self.total - self.done.min(self.total)) as f64 / rate.max(1e-9);
            log::info!(
                "{}/{} {} ({:.0} %), {:.2} {}/s, ETA {:.0} s",
                self.done,
                self.total,
                self.what,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                rate,
                self.what,
                eta
            );
            while self.next_log <= self.done {
                self.next_log += self.total.div_ceil(10).max(1);
            }
        }
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
