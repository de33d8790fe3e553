//! Streams: XADD, XRANGE, XREAD, consumer groups and their pending entries.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
