//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, in Valkey's own sparse/dense representation.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
