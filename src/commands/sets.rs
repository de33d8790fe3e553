//! Sets: SADD, SREM, SMEMBERS, SINTER, SSCAN, ...

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
