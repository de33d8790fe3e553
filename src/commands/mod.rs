//! Command families, one file each. Each family lists its handlers by
//! Valkey's lower-case command name ("get", "config|get"); the command
//! table joins them with Valkey's metadata.

use crate::command::Handler;

pub mod args;
pub mod bitmaps;
pub mod cluster;
pub mod connection;
pub mod functions;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keyspace;
pub mod lists;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod sorted_sets;
pub mod streams;
pub mod strings;
pub mod transactions;

/// Every handler ferrokey serves.
pub fn all_handlers() -> Vec<(&'static str, Handler)> {
    let mut all = Vec::new();
    all.extend_from_slice(connection::COMMANDS);
    all.extend_from_slice(keyspace::COMMANDS);
    all.extend_from_slice(server::COMMANDS);
    all.extend_from_slice(strings::COMMANDS);
    all.extend_from_slice(lists::COMMANDS);
    all.extend_from_slice(hashes::COMMANDS);
    all.extend_from_slice(sets::COMMANDS);
    all.extend_from_slice(sorted_sets::COMMANDS);
    all.extend_from_slice(streams::COMMANDS);
    all.extend_from_slice(bitmaps::COMMANDS);
    all.extend_from_slice(hyperloglog::COMMANDS);
    all.extend_from_slice(geo::COMMANDS);
    all.extend_from_slice(sort::COMMANDS);
    all.extend_from_slice(persistence::COMMANDS);
    all.extend_from_slice(pubsub::COMMANDS);
    all.extend_from_slice(transactions::COMMANDS);
    all.extend_from_slice(scripting::COMMANDS);
    all.extend_from_slice(functions::COMMANDS);
    all.extend_from_slice(replication::COMMANDS);
    all.extend_from_slice(cluster::COMMANDS);
    all
}
