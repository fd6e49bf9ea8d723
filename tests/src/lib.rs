//! Cross-crate integration tests live in `tests/it/` (one test binary); run them all with
//! `bash tests/run.sh`.
