//! Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN, DEBUG,
//! LATENCY, SLOWLOG, MEMORY.
//!
//! Each command with subcommands has its own file below; this one holds the
//! registrations, the small commands, and the helpers they share.

mod command_cmd;
mod config_cmd;
mod debug;
mod info;
pub mod keyspecs;
mod latency;
mod memory;
mod slowlog;
mod stats;

use crate::command::{errors, CmdError, CmdResult, Ctx, Handler};
use crate::server::{unix_us, ServerState, ShutdownMode};

pub use config_cmd::{apply as apply_config_change, COPIED_DIRECTIVES};
pub use memory::record_startup_memory;
pub use stats::{record_call, record_error_reply, record_rejected, sample_rates};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("info", info::info),
    ("config|get", config_cmd::config_get),
    ("config|set", config_cmd::config_set),
    ("config|resetstat", config_cmd::config_resetstat),
    ("config|rewrite", config_cmd::config_rewrite),
    ("config|help", config_cmd::config_help),
    ("command", command_cmd::command_all),
    ("command|count", command_cmd::command_count),
    ("command|list", command_cmd::command_list),
    ("command|info", command_cmd::command_info),
    ("command|docs", command_cmd::command_docs),
    ("command|getkeys", command_cmd::command_getkeys),
    ("command|getkeysandflags", command_cmd::command_getkeysandflags),
    ("command|help", command_cmd::command_help),
    ("time", time),
    ("monitor", monitor),
    ("shutdown", shutdown),
    ("debug", debug::debug),
    ("latency|latest", latency::latency_latest),
    ("latency|history", latency::latency_history),
    ("latency|reset", latency::latency_reset),
    ("latency|graph", latency::latency_graph),
    ("latency|doctor", latency::latency_doctor),
    ("latency|histogram", latency::latency_histogram),
    ("latency|help", latency::latency_help),
    ("slowlog|get", slowlog::slowlog_get),
    ("slowlog|len", slowlog::slowlog_len),
    ("slowlog|reset", slowlog::slowlog_reset),
    ("slowlog|help", slowlog::slowlog_help),
    ("memory|usage", memory::memory_usage),
    ("memory|stats", memory::memory_stats),
    ("memory|doctor", memory::memory_doctor),
    ("memory|malloc-stats", memory::memory_malloc_stats),
    ("memory|purge", memory::memory_purge),
    ("memory|help", memory::memory_help),
];

/// TIME: the server's clock as [seconds, microseconds].
fn time(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let now = unix_us();
    ctx.out.array(2);
    ctx.out.bulk_int(now / 1_000_000);
    ctx.out.bulk_int(now % 1_000_000);
    Ok(())
}

/// MONITOR: from now on the client is sent every command the server runs
/// (see monitor.rs). Refused where the client expects one reply per
/// command (inside EXEC); a client already monitoring gets no reply.
fn monitor(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if ctx.client.no_blocking {
        return Err("ERR MONITOR isn't allowed for DENY BLOCKING client".into());
    }
    if ctx.client.info.monitor.get() {
        return Ok(());
    }
    ctx.srv.monitors.add(&ctx.client.info);
    ctx.out.ok();
    Ok(())
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. On success nothing is
/// replied: the server stops and the connection closes.
fn shutdown(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut flagged, mut force) = (false, false, false, false, false);
    for arg in &args[1..] {
        match arg.to_ascii_lowercase().as_slice() {
            b"nosave" => nosave = true,
            b"save" => save = true,
            // NOW skips waiting for replicas to catch up: there are none.
            b"now" => {}
            b"force" => force = true,
            b"abort" => abort = true,
            _ => return Err(errors::SYNTAX.into()),
        }
        if !arg.eq_ignore_ascii_case(b"abort") {
            flagged = true;
        }
    }
    if (abort && flagged) || (save && nosave) {
        return Err(errors::SYNTAX.into());
    }
    if abort {
        // A shutdown here is never left pending, so there is none to abort.
        return Err("ERR No shutdown in progress.".into());
    }
    let mode = if nosave {
        ShutdownMode::NoSave
    } else if save {
        ShutdownMode::Save
    } else {
        ShutdownMode::Default
    };
    // The final save happens here, so a failure can still be answered: the
    // server keeps running rather than exit with writes unsaved (unless
    // FORCE says to exit anyway).
    ctx.srv.shutdown = Some(mode);
    let persisted = crate::aof::before_exit(ctx.srv) && crate::persistence::before_exit(ctx.srv);
    if !persisted && !force {
        ctx.srv.shutdown = None;
        return Err("ERR Errors trying to SHUTDOWN. Check logs.".into());
    }
    ctx.srv.request_shutdown(ShutdownMode::NoSave);
    // Valkey exits on the spot: no later command of a pipeline may run.
    ctx.client.info.close_requested.set(true);
    Ok(())
}

/// The error for a subcommand a command does not know or got the wrong
/// number of arguments for.
pub(crate) fn subcommand_syntax_error(args: &[&[u8]]) -> CmdError {
    let sub = String::from_utf8_lossy(&args[1][..args[1].len().min(128)]).into_owned();
    let name = String::from_utf8_lossy(args[0]).to_ascii_uppercase();
    CmdError::from(format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {name} HELP."))
}

/// Parses a whole argument as a signed 64-bit integer.
pub(crate) fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    ferrokey_formats::resp::parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// The CONFIG GET text of one directive ("" when it has none).
pub(crate) fn config_value(st: &ServerState, name: &str) -> String {
    st.config.get(&[name.as_bytes()]).into_iter().next().map(|(_, v)| v).unwrap_or_default()
}
