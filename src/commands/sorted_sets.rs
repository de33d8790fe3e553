//! Sorted sets: ZADD, ZRANGE, ZRANK, ZUNIONSTORE, ... and the blocking pops.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
