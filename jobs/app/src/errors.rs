//! How a failed command is shown: the message with each cause once, a hint, and the exit code,
//! all from the error's [`ErrorKind`] (the one map is `JobError::kind`).

use cdplake_core::JobError;
use cdplake_core::error::ErrorKind;
use cdplake_engine::EngineError;

/// The kind of the first error in the chain that has one; `Internal` when none does.
pub fn kind(err: &anyhow::Error) -> ErrorKind {
    err.chain()
        .find_map(|cause| {
            if cause.downcast_ref::<NoOutput>().is_some() {
                Some(ErrorKind::NoOutput)
            } else if let Some(job) = cause.downcast_ref::<JobError>() {
                Some(job.kind())
            } else {
                cause.downcast_ref::<EngineError>().map(ErrorKind::of_engine)
            }
        })
        .unwrap_or(ErrorKind::Internal)
}

/// The error and its causes, each cause once: library errors often repeat their source's
/// message in their own.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

/// A run that produced nothing usable (every row quarantined, no row a contract would keep); the
/// message says why and what to do. Exits with [`ErrorKind::NoOutput`]'s code.
#[derive(Debug)]
pub struct NoOutput(pub String);

impl std::fmt::Display for NoOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoOutput {}
