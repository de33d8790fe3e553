//! Keyspace commands: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, MOVE,
//! expiry, OBJECT, and database-wide commands.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
