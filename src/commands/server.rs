//! Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN, DEBUG, LATENCY,
//! SLOWLOG, MEMORY.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
