//! SLOWLOG GET / LEN / RESET / HELP over the entries `crate::slowlog` keeps.

use crate::command::{CmdResult, Ctx};

use super::parse_i64;

/// Entries SLOWLOG GET returns without a count.
const DEFAULT_COUNT: usize = 10;
const COUNT_RANGE: &str = "ERR count should be greater than or equal to -1";

/// SLOWLOG GET [count]: the newest entries first; -1 for all of them.
pub(super) fn slowlog_get(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let log = &ctx.srv.slowlog;
    let count = match args.get(2) {
        None => DEFAULT_COUNT,
        // A count that is not a number gets the same error as one below -1.
        Some(arg) => match parse_i64(arg).ok() {
            Some(-1) => log.entries.len(),
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return Err(COUNT_RANGE.into()),
        },
    };
    let out = &mut *ctx.out;
    let shown = count.min(log.entries.len());
    out.array(shown);
    for entry in log.entries.iter().take(shown) {
        out.array(6);
        out.int(entry.id as i64);
        out.int(entry.unix_s);
        out.int(entry.micros as i64);
        out.array(entry.args.len());
        for arg in &entry.args {
            out.bulk(arg);
        }
        out.bulk_str(&entry.peer);
        out.bulk_str(&entry.name);
    }
    Ok(())
}

/// SLOWLOG LEN
pub(super) fn slowlog_len(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.srv.slowlog.entries.len() as i64);
    Ok(())
}

/// SLOWLOG RESET: drops the entries; ids keep counting up.
pub(super) fn slowlog_reset(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.srv.slowlog.entries.clear();
    ctx.out.ok();
    Ok(())
}

/// SLOWLOG HELP
pub(super) fn slowlog_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}
