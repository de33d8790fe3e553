//! Hashes: HSET, HGET, HGETALL, HINCRBY, HSCAN, ...

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
