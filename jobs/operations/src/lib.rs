//! Keeping the lake healthy and lawful: `maintain` compacts, Z-orders, vacuums, checkpoints and
//! enforces row retention; `lifecycle` turns `[retention]` into S3 archival rules; `erase` removes
//! a person from every zone, provably, and suppresses them for good.

pub mod erase;
pub mod lifecycle;
pub mod maintain;
