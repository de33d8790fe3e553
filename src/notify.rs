//! Keyspace notifications (notify-keyspace-events).
//! (Being written: see the keyspace notifications task.)

use crate::server::ServerState;

/// Event classes, as the letters of notify-keyspace-events.
pub const GENERIC: u32 = 1 << 2;
pub const EXPIRED: u32 = 1 << 8;

/// Publishes `event` about `key` of database `db` when the configured
/// classes include `class`.
pub fn keyspace_event(_st: &mut ServerState, _class: u32, _event: &str, _key: &[u8], _db: usize) {}
