//! Progress of long jobs: a bar with rate and ETA on a terminal, plain log lines (about every 10 %)
//! when stderr is a file or a pipe (batch jobs, CI logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
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
