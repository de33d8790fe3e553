//! Functions: FUNCTION (LOAD, DELETE, LIST, FLUSH, DUMP, RESTORE, STATS,
//! KILL, HELP), FCALL and FCALL_RO.
//!
//! The libraries live in `st.persistence.functions` (scripting/functions.rs
//! loads them); a function runs through the same engine as EVAL scripts,
//! with its keys and arguments as the callback's two arguments.

use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::commands::server::{self as stats, subcommand_syntax_error};
use crate::reply::Reply;
use crate::scripting::engine::{self, Invocation, ScriptCall, ScriptFlags};
use crate::scripting::functions::{self, Registry, ENGINE_NAME, LOAD_TIMEOUT};
use crate::scripting::libs::until_nul;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("function|load", function_load),
    ("function|delete", function_delete),
    ("function|list", function_list),
    ("function|flush", function_flush),
    ("function|dump", function_dump),
    ("function|restore", function_restore),
    ("function|stats", function_stats),
    ("function|kill", function_kill),
    ("function|help", function_help),
    ("fcall", fcall),
    ("fcall_ro", fcall_ro),
];

/// Answers an error whose text may hold any bytes (Lua's messages),
/// counting it as the dispatcher counts errors.
fn fail(ctx: &mut Ctx, message: &[u8]) -> CmdResult {
    let text = [b"ERR ".as_slice(), message].concat();
    ctx.srv.stats.total_error_replies += 1;
    stats::record_error_reply(&String::from_utf8_lossy(&text));
    ctx.out.error_bytes(&text);
    Ok(())
}

/// FUNCTION LOAD [REPLACE] <code>: every argument before the code is an
/// option.
fn function_load(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let code = args[args.len() - 1];
    let mut replace = false;
    for option in &args[2..args.len() - 1] {
        if !option.eq_ignore_ascii_case(b"replace") {
            let shown = String::from_utf8_lossy(until_nul(option));
            return Err(format!("ERR Unknown option given: {shown}").into());
        }
        replace = true;
    }
    // Libraries replayed from the append-only file (a client without a
    // connection) are loaded whatever time they take, as Valkey does for
    // the clients it must obey.
    let timeout = (ctx.client.info.fd >= 0).then_some(LOAD_TIMEOUT);
    match ctx.srv.persistence.functions.load(code, replace, timeout) {
        Ok(name) => {
            ctx.dirty(1);
            ctx.out.bulk(&name);
            Ok(())
        }
        Err(message) => fail(ctx, &message),
    }
}

fn function_delete(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !ctx.srv.persistence.functions.delete(args[2]) {
        return Err("ERR Library not found".into());
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE], each option once.
fn function_list(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let arg = args[i];
        if !with_code && arg.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"libraryname") {
            let Some(&given) = args.get(i + 1) else {
                return Err("ERR library name argument was not given".into());
            };
            pattern = Some(given);
            i += 1;
        } else {
            let shown = String::from_utf8_lossy(until_nul(arg));
            return Err(format!("ERR Unknown argument {shown}").into());
        }
        i += 1;
    }
    let registry = &ctx.srv.persistence.functions;
    let listed: Vec<_> = registry
        .libraries()
        .filter(|library| pattern.is_none_or(|p| crate::glob::glob_match(p, &library.name, true)))
        .collect();
    let out = &mut *ctx.out;
    out.array(listed.len());
    for library in listed {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(&library.name);
        out.bulk(b"engine");
        out.bulk(ENGINE_NAME.as_bytes());
        out.bulk(b"functions");
        out.array(library.function_count());
        for function in library.functions() {
            out.map(3);
            out.bulk(b"name");
            out.bulk(&function.name);
            out.bulk(b"description");
            match &function.description {
                Some(text) => out.bulk(text),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> =
                ScriptFlags::NAMES.iter().filter(|(_, flag)| function.flags.contains(*flag)).map(|(n, _)| *n).collect();
            out.set(names.len());
            for name in names {
                out.simple(name);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&library.code);
        }
    }
    Ok(())
}

/// FUNCTION FLUSH [ASYNC|SYNC]: both free the libraries at once.
fn function_flush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax_error(args));
    }
    if let Some(mode) = args.get(2) {
        if !mode.eq_ignore_ascii_case(b"sync") && !mode.eq_ignore_ascii_case(b"async") {
            return Err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into());
        }
    }
    ctx.srv.persistence.functions.clear();
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

fn function_dump(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let compression = crate::persistence::config_flag(ctx.srv, "rdbcompression");
    let payload = ctx.srv.persistence.functions.dump(compression);
    ctx.out.bulk(&payload);
    Ok(())
}

/// FUNCTION RESTORE <payload> [FLUSH|APPEND|REPLACE] (APPEND by default).
fn function_restore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 4 {
        return Err(subcommand_syntax_error(args));
    }
    let policy = args.get(3).map(|p| p.to_ascii_lowercase());
    let (flush, replace) = match policy.as_deref() {
        None | Some(b"append") => (false, false),
        Some(b"replace") => (false, true),
        Some(b"flush") => (true, false),
        Some(_) => {
            return Err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.".into())
        }
    };
    let payload = args[2];
    if !functions::verify_dump_footer(payload) {
        return Err("ERR DUMP payload version or checksum are wrong".into());
    }
    let restored = match Registry::from_dump(payload) {
        Ok(restored) => restored,
        Err(message) => return fail(ctx, &message),
    };
    let registry = &mut ctx.srv.persistence.functions;
    if flush {
        *registry = restored;
    } else if let Err(message) = registry.join(restored, replace) {
        return fail(ctx, &message);
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// The function running now, as FUNCTION STATS describes it.
pub struct RunningFunction<'a> {
    pub name: &'a str,
    /// The command that called it, as its client sent it.
    pub command: &'a [&'a [u8]],
    pub duration_ms: u64,
}

/// FUNCTION STATS's reply. A function runs only while the busy poller
/// answers for the server (busy.rs), which passes it as `running`.
pub fn write_stats(out: &mut Reply, registry: &Registry, running: Option<&RunningFunction>) {
    out.map(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some(function) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(function.name.as_bytes());
            out.bulk(b"command");
            out.array(function.command.len());
            for arg in function.command {
                out.bulk(arg);
            }
            out.bulk(b"duration_ms");
            out.int(function.duration_ms as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(ENGINE_NAME.as_bytes());
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(registry.library_count() as i64);
    out.bulk(b"functions_count");
    out.int(registry.function_count() as i64);
}

fn function_stats(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    write_stats(ctx.out, &ctx.srv.persistence.functions, None);
    Ok(())
}

/// FUNCTION KILL reaches this handler only when nothing runs: during a
/// function, the busy poller (busy.rs) answers it.
fn function_kill(_ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err("NOTBUSY No scripts in execution right now.".into())
}

fn function_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    );
    Ok(())
}

fn fcall(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    call_function(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    call_function(ctx, args, true)
}

/// FCALL and FCALL_RO: `args[1]` names the function (any case), `args[2]`
/// says how many of the remaining arguments are keys.
fn call_function(ctx: &mut Ctx, args: &[&[u8]], ro_command: bool) -> CmdResult {
    let found = ctx.srv.persistence.functions.function(args[1]).map(|f| {
        // Function names are letters, digits and underscores.
        (f.callback(), f.flags, String::from_utf8_lossy(&f.name).into_owned())
    });
    let Some((function, flags, name)) = found else {
        return Err("ERR Function not found".into());
    };
    let numkeys = stats::parse_i64(args[2]).map_err(|_| CmdError::from("ERR Bad number of keys provided"))?;
    if numkeys > (args.len() - 3) as i64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    if numkeys < 0 {
        return Err("ERR Number of keys can't be negative".into());
    }
    let rules = engine::check_run_allowed(ctx.srv, flags, ro_command)?;
    let vm = functions::vm().map_err(|e| CmdError::from(format!("ERR {e}")))?;
    let (keys, argv) = args[3..].split_at(numkeys as usize);
    let call =
        ScriptCall { function, invocation: Invocation::Function, name: &name, keys, args: argv, rules, command: args };
    engine::run(vm.lua(), ctx, &call)
}
