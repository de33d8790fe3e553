//! Lists: LPUSH, RPUSH, LPOP, LRANGE, ... and the blocking list commands.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
