//! Getting data out: the profile server and look-ups (`serve`), write-back to PostgreSQL
//! (`sync`), the HTML report (`report`) and descriptions of the catalog (`inspect`). Nothing here
//! writes to the lake but `sync`'s own state in PostgreSQL.

pub mod inspect;
pub mod report;
pub mod serve;
pub mod sync;
