//! ferrokey: a Valkey-compatible in-memory data store whose promise is
//! durability. See docs/ARCHITECTURE.md for how the pieces fit.

pub mod client;
pub mod command;
pub mod commands;
pub mod config;
pub mod connection;
pub mod db;
pub mod glob;
pub mod log;
pub mod longdouble;
pub mod reply;
pub mod server;
pub mod slowlog;
pub mod value;
