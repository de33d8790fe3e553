//! SORT and SORT_RO.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
