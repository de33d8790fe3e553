//! ferrokey: a Valkey-compatible in-memory data store whose promise is
//! durability. See docs/ARCHITECTURE.md for how the pieces fit.

/// jemalloc, as Valkey uses: it keeps fragmentation low for many small
/// keys and values, and its statistics feed INFO memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod aof;
pub mod blocking;
pub mod busy;
pub mod client;
pub mod command;
pub mod commands;
pub mod config;
pub mod connection;
pub mod db;
pub mod effects;
pub mod evict;
pub use ferrokey_formats::double;
pub mod glob;
pub mod keytable;
pub mod lazyfree;
pub mod log;
pub mod longdouble;
pub mod monitor;
pub mod notify;
pub mod output_limits;
pub mod pause;
pub mod persistence;
pub mod pubsub;
pub mod reply;
pub mod scripting;
pub mod server;
pub mod slowlog;
pub mod tracking;
pub mod types;
pub mod value;
pub mod watch;
