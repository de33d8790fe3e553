//! The collection types a key can hold, each with Valkey's compact
//! encoding for small values and its big one past the configured
//! thresholds (OBJECT ENCODING reports which).

pub mod compact;
pub mod hash;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;
