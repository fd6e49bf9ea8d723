//! Profile look-up by any identifier: the index (`index`), the API every entry point answers
//! through (`api`), and the HTTP server (`http`).

pub mod api;
pub mod http;
pub mod index;

pub use api::*;
