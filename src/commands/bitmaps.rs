//! Bitmaps: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
