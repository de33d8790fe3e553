//! Command families, one file each. Each family lists its handlers by
//! Valkey's lower-case command name ("get", "config|get"); the command
//! table joins them with Valkey's metadata.

use crate::command::Handler;

pub mod connection;
pub mod keyspace;
pub mod server;
pub mod strings;

/// Every handler ferrokey serves.
pub fn all_handlers() -> Vec<(&'static str, Handler)> {
    let mut all = Vec::new();
    all.extend_from_slice(connection::COMMANDS);
    all.extend_from_slice(keyspace::COMMANDS);
    all.extend_from_slice(server::COMMANDS);
    all.extend_from_slice(strings::COMMANDS);
    all
}
