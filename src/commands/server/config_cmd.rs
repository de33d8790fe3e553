//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP. The configuration module
//! parses, validates and formats every directive; this file serves the
//! commands and applies what a new value changes in the running server.

use crate::command::{errors, CmdResult, Ctx};
use crate::config::SetContext;
use crate::server::{is_loopback, ServerState, Stats};
use crate::{log, log_notice, log_warning};

use super::{config_value, stats};

/// CONFIG GET pattern [pattern ...]
pub(super) fn config_get(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pairs = ctx.srv.config.get(&args[2..]);
    ctx.out.map(pairs.len());
    for (name, value) in pairs {
        ctx.out.bulk_str(&name);
        ctx.out.bulk_str(&value);
    }
    Ok(())
}

/// CONFIG SET directive value [directive value ...]: all or nothing.
pub(super) fn config_set(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(errors::SYNTAX.into());
    }
    let pairs: Vec<(&[u8], &[u8])> = args[2..].chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let who = SetContext { loading: false, local_client: is_loopback(&ctx.client.info.addr.ip()) };
    // Turning the AOF on can fail (it needs a rewrite child): then nothing
    // of this CONFIG SET stays, as in Valkey.
    let previous = pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"appendonly")).then(|| ctx.srv.config.clone());
    let changed = ctx.srv.config.set_with(&pairs, who)?;
    for (i, name) in changed.iter().enumerate() {
        if *name != "appendonly" {
            apply(ctx.srv, name);
            continue;
        }
        if let Err(why) = crate::aof::appendonly_changed(ctx.srv) {
            if let Some(previous) = previous {
                ctx.srv.config = previous;
                for undone in &changed[..i] {
                    apply(ctx.srv, undone);
                }
            }
            return Err(format!("ERR CONFIG SET failed (possibly related to argument 'appendonly') - {why}").into());
        }
    }
    ctx.out.ok();
    Ok(())
}

/// Directives whose value the server keeps a copy of outside the config:
/// applied once at start-up and again whenever CONFIG SET changes them.
pub const COPIED_DIRECTIVES: &[&str] = &[
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-tracking",
    "latency-monitor-threshold",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-server-del",
    "jemalloc-bg-thread",
    "client-output-buffer-limit",
];

/// Makes a changed directive take effect where the server keeps a copy of
/// it. Directives read straight from the configuration (hz, timeout,
/// maxclients, requirepass, ...) need nothing.
pub fn apply(st: &mut ServerState, name: &str) {
    match name {
        "loglevel" => log::set_level(st.config.loglevel.into()),
        "slowlog-log-slower-than" => {
            st.slowlog.slower_than = config_value(st, name).parse().unwrap_or(st.slowlog.slower_than);
        }
        // A shorter log is trimmed when the next entry arrives, as in Valkey.
        "slowlog-max-len" => st.slowlog.max_len = config_value(st, name).parse().unwrap_or(st.slowlog.max_len),
        "latency-tracking" | "latency-monitor-threshold" | "latency-tracking-info-percentiles" => {
            stats::with(|c| c.settings.reload(st));
        }
        // A lower limit evicts down to it at once, in the background.
        "maxmemory" => crate::evict::maxmemory_changed(st),
        "lazyfree-lazy-expire" | "lazyfree-lazy-server-del" => crate::lazyfree::configure(&st.config),
        "jemalloc-bg-thread" => crate::evict::set_allocator_background_thread(config_value(st, name) == "yes"),
        "dir" => {
            if let Err(e) = st.config.apply_dir() {
                log_warning!("Can't chdir to '{}': {e}", st.config.dir.display());
            }
        }
        "aof-disable-auto-gc" => crate::aof::auto_gc_changed(st),
        "client-output-buffer-limit" => crate::output_limits::configure(&st.config),
        _ => {}
    }
}

/// CONFIG RESETSTAT: zeroes the statistics INFO reports.
pub(super) fn config_resetstat(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.srv.stats = Stats::default();
    ctx.srv.evict.reset_stats();
    crate::lazyfree::reset_stats();
    crate::commands::scripting::reset_stats();
    stats::with(|c| c.reset());
    ctx.out.ok();
    Ok(())
}

/// CONFIG REWRITE: writes the running configuration to the config file.
pub(super) fn config_rewrite(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match ctx.srv.config.rewrite() {
        Ok(()) => {
            log_notice!("CONFIG REWRITE executed with success.");
            ctx.out.ok();
            Ok(())
        }
        Err(line) => {
            log_warning!("CONFIG REWRITE failed: {line}");
            Err(line.into())
        }
    }
}

/// CONFIG HELP
pub(super) fn config_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}
