//! Benchmark helpers behind the hidden `cdplake bench` command (see benches/).

pub mod bitmaps;
pub mod micro_batches;
