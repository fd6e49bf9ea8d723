//! Step timings of a job, logged at info level (`CDPLAKE_LOG=cdplake_core::stopwatch=info`): where a run's
//! time goes, without a profiler.

use std::time::Instant;

pub struct Stopwatch {
    job: &'static str,
    last: Instant,
}

impl Stopwatch {
    pub fn start(job: &'static str) -> Self {
        Self { job, last: Instant::now() }
    }

    /// Log the time since the previous lap (or the start) under `step`.
    pub fn lap(&mut self, step: &str) {
        let now = Instant::now();
        tracing::info!(job = self.job, step, ms = (now - self.last).as_millis() as u64, "step done");
        self.last = now;
    }
}
