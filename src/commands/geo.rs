//! Geo: GEOADD, GEOSEARCH, GEORADIUS and friends, on sorted sets.

use crate::command::Handler;

pub const COMMANDS: &[(&str, Handler)] = &[];
