//! Connection commands: PING, ECHO, SELECT, QUIT, RESET, AUTH, HELLO and
//! CLIENT.
//!
//! There is one user, "default". Without `requirepass` it takes any
//! password (Valkey's "nopass"); with one, that password alone.
//! Client-side caching (CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO)
//! keeps its state in tracking.rs, CLIENT PAUSE in pause.rs: the handlers
//! here parse and validate as Valkey does.

use std::io::Write as _;
use std::net::SocketAddr;

use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use crate::client::{Client, ClientInfo, ReplyMode};
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler};
use crate::server::{ServerState, VALKEY_VERSION};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("ping", ping),
    ("echo", echo),
    ("select", select),
    ("quit", quit),
    ("reset", reset),
    ("auth", auth),
    ("hello", hello),
    ("client|id", client_id),
    ("client|setname", client_setname),
    ("client|getname", client_getname),
    ("client|info", client_info),
    ("client|list", client_list),
    ("client|kill", client_kill),
    ("client|setinfo", client_setinfo),
    ("client|reply", client_reply),
    ("client|no-evict", client_no_evict),
    ("client|no-touch", client_no_touch),
    ("client|getredir", client_getredir),
    ("client|trackinginfo", client_trackinginfo),
    ("client|caching", client_caching),
    ("client|capa", client_capa),
    ("client|unblock", client_unblock),
    ("client|tracking", client_tracking),
    ("client|pause", client_pause),
    ("client|unpause", client_unpause),
    ("client|help", client_help),
];

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const DEFAULT_USER: &[u8] = b"default";

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

/// Whether an option word is `word`, ignoring ASCII case.
fn is_word(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

fn lossy(arg: &[u8]) -> String {
    String::from_utf8_lossy(c_str(arg)).into_owned()
}

/// Whether a client name or library attribute is printable ASCII without
/// spaces: anything else would break CLIENT LIST's space-separated fields.
fn valid_attribute(value: &[u8]) -> bool {
    c_str(value).iter().all(|b| (b'!'..=b'~').contains(b))
}

/// A value stored as a client attribute: the empty string means "unset".
fn attribute(value: &[u8]) -> Option<Vec<u8>> {
    (!value.is_empty()).then(|| value.to_vec())
}

// ---------------------------------------------------------------------------
// PING, ECHO, SELECT, QUIT, RESET
// ---------------------------------------------------------------------------

fn ping(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        return Err(arity_error("ping"));
    }
    let message = args.get(1).copied();
    // A RESP2 subscriber can only receive arrays, so its PONG is one.
    if ctx.client.info.is_pubsub() && !ctx.out.resp3 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(message.unwrap_or(b""));
        return Ok(());
    }
    match message {
        None => ctx.out.simple("PONG"),
        Some(m) => ctx.out.bulk(m),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}

fn select(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let index = parse_i64(args[1]).ok_or(errors::NOT_INTEGER)?;
    if index < i32::MIN as i64 || index > i32::MAX as i64 {
        return Err(format!("ERR value is out of range, value must between {} and {}", i32::MIN, i32::MAX).into());
    }
    if index < 0 || index as usize >= ctx.srv.dbs.len() {
        return Err(errors::DB_INDEX.into());
    }
    ctx.client.select(index as usize);
    ctx.out.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    ctx.client.info.close_requested.set(true);
    Ok(())
}

fn reset(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let authenticated = required_password(ctx.srv).is_none();
    crate::commands::transactions::discard_transaction(ctx.srv, ctx.client);
    crate::pubsub::unsubscribe_all(ctx.srv, ctx.client);
    ctx.srv.monitors.remove(&ctx.client.info);
    crate::tracking::disable(ctx.srv, &ctx.client.info);
    ctx.client.reset(authenticated);
    ctx.out.resp3 = false;
    ctx.out.simple("RESET");
    Ok(())
}

// ---------------------------------------------------------------------------
// AUTH and HELLO
// ---------------------------------------------------------------------------

/// The password the default user needs, if any (the config keeps an
/// empty `requirepass` as none, as Valkey does).
fn required_password(srv: &ServerState) -> Option<&[u8]> {
    srv.config.requirepass.as_deref()
}

/// Whether `user`/`password` log in. The comparison takes the same time
/// wherever the first difference is, so timing reveals nothing of the
/// password.
fn credentials_valid(srv: &ServerState, user: &[u8], password: &[u8]) -> bool {
    if user != DEFAULT_USER {
        return false;
    }
    let Some(expected) = required_password(srv) else { return true };
    let mut difference = expected.len() ^ password.len();
    for i in 0..expected.len().max(password.len()) {
        let a = expected.get(i).copied().unwrap_or(0);
        let b = password.get(i).copied().unwrap_or(0);
        difference |= (a ^ b) as usize;
    }
    difference == 0
}

/// Checks credentials and, when they are good, authenticates the client.
fn authenticate(ctx: &mut Ctx, user: &[u8], password: &[u8]) -> CmdResult {
    if !credentials_valid(ctx.srv, user, password) {
        return Err(WRONGPASS.into());
    }
    ctx.client.info.authenticated.set(true);
    Ok(())
}

fn auth(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (user, password) = match args.len() {
        2 => {
            if required_password(ctx.srv).is_none() {
                return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
            }
            (DEFAULT_USER, args[1])
        }
        3 => (args[1], args[2]),
        _ => return Err(errors::SYNTAX.into()),
    };
    authenticate(ctx, user, password)?;
    ctx.out.ok();
    Ok(())
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]
fn hello(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut version = None;
    let mut next = 1;
    if let Some(arg) = args.get(1) {
        let v = parse_i64(arg).ok_or("ERR Protocol version is not an integer or out of range")?;
        if !(2..=3).contains(&v) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        version = Some(v as u8);
        next = 2;
    }
    let mut credentials = None;
    let mut name = None;
    while next < args.len() {
        let more = args.len() - 1 - next;
        let option = args[next];
        if is_word(option, "auth") && more >= 2 {
            credentials = Some((args[next + 1], args[next + 2]));
            next += 3;
        } else if is_word(option, "setname") && more >= 1 {
            if !valid_attribute(args[next + 1]) {
                return Err(BAD_NAME.into());
            }
            name = Some(args[next + 1]);
            next += 2;
        } else {
            return Err(format!("ERR Syntax error in HELLO option '{}'", lossy(option)).into());
        }
    }
    if let Some((user, password)) = credentials {
        authenticate(ctx, user, password)?;
    }
    if !ctx.client.info.authenticated.get() {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = name {
        *ctx.client.info.name.borrow_mut() = attribute(name);
    }
    if let Some(v) = version {
        ctx.client.set_resp(v);
        ctx.out.resp3 = v == 3;
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"valkey");
    out.bulk(b"version");
    out.bulk(VALKEY_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(ctx.client.info.resp.get() as i64);
    out.bulk(b"id");
    out.int(ctx.client.info.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

// ---------------------------------------------------------------------------
// CLIENT: the caller's own state
// ---------------------------------------------------------------------------

fn client_id(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.client.info.id as i64);
    Ok(())
}

fn client_setname(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !valid_attribute(args[2]) {
        return Err(BAD_NAME.into());
    }
    *ctx.client.info.name.borrow_mut() = attribute(args[2]);
    ctx.out.ok();
    Ok(())
}

fn client_getname(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match &*ctx.client.info.name.borrow() {
        Some(name) => ctx.out.bulk(name),
        None => ctx.out.null(),
    }
    Ok(())
}

fn client_setinfo(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (option, value) = (args[2], args[3]);
    let slot = if is_word(option, "lib-name") {
        &ctx.client.info.lib_name
    } else if is_word(option, "lib-ver") {
        &ctx.client.info.lib_ver
    } else {
        return Err(format!("ERR Unrecognized option '{}'", lossy(option)).into());
    };
    if !valid_attribute(value) {
        return Err(format!("ERR {} cannot contain spaces, newlines or special characters.", lossy(option)).into());
    }
    *slot.borrow_mut() = attribute(value);
    ctx.out.ok();
    Ok(())
}

/// CLIENT REPLY ON|OFF|SKIP. Only ON answers: OFF and SKIP are silent, and
/// dispatch drops the replies of the commands they silence.
fn client_reply(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mode = &ctx.client.info.reply_mode;
    if is_word(args[2], "on") {
        mode.set(ReplyMode::On);
        ctx.out.ok();
    } else if is_word(args[2], "off") {
        mode.set(ReplyMode::Off);
    } else if is_word(args[2], "skip") {
        // Skipping one reply means nothing while all replies are off.
        if mode.get() != ReplyMode::Off {
            mode.set(ReplyMode::SkipNext);
        }
    } else {
        return Err(errors::SYNTAX.into());
    }
    Ok(())
}

/// Parses the ON|OFF argument of CLIENT NO-EVICT and NO-TOUCH.
fn on_off(arg: &[u8]) -> Result<bool, CmdError> {
    if is_word(arg, "on") {
        Ok(true)
    } else if is_word(arg, "off") {
        Ok(false)
    } else {
        Err(errors::SYNTAX.into())
    }
}

fn client_no_evict(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.client.info.no_evict.set(on_off(args[2])?);
    ctx.out.ok();
    Ok(())
}

fn client_no_touch(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.client.info.no_touch.set(on_off(args[2])?);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// Client-side caching
// ---------------------------------------------------------------------------

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN]
/// [OPTOUT] [NOLOOP]: the options are parsed (and REDIRECT checked) for
/// OFF too; the rest is only checked for ON, in Valkey's order.
fn client_tracking(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut options = crate::tracking::TrackingOptions::default();
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut i = 3;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        let option = args[i];
        if is_word(option, "redirect") && has_value {
            i += 1;
            if options.redirect != 0 {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            let id = parse_i64(args[i]).ok_or(errors::NOT_INTEGER)?;
            let target = u64::try_from(id).ok().filter(|id| ctx.srv.clients.by_id.contains_key(id));
            options.redirect = target.ok_or("ERR The client ID you want redirect to does not exist")?;
        } else if is_word(option, "bcast") {
            options.bcast = true;
        } else if is_word(option, "optin") {
            options.optin = true;
        } else if is_word(option, "optout") {
            options.optout = true;
        } else if is_word(option, "noloop") {
            options.noloop = true;
        } else if is_word(option, "prefix") && has_value {
            i += 1;
            prefixes.push(args[i]);
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    if is_word(args[2], "off") {
        crate::tracking::disable(ctx.srv, &ctx.client.info);
        ctx.out.ok();
        return Ok(());
    }
    if !is_word(args[2], "on") {
        return Err(errors::SYNTAX.into());
    }
    let current = ctx.client.info.tracking.get();
    if !options.bcast && !prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if current.on && current.bcast != options.bcast {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if options.bcast && (options.optin || options.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if options.optin && options.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if (options.optin && current.optout) || (options.optout && current.optin) {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if options.bcast {
        match crate::tracking::check_prefixes(ctx.srv, ctx.client.info.id, &prefixes) {
            Ok(()) => {}
            Err(crate::tracking::PrefixConflict::Refused(message)) => return Err(message.into()),
            // Valkey answers this error and then goes on as if all was well.
            Err(crate::tracking::PrefixConflict::ReportedOnly(message)) => {
                ctx.srv.stats.total_error_replies += 1;
                super::server::record_error_reply(&message);
                ctx.out.error(&message);
            }
        }
    }
    let info = ctx.client.info.clone();
    crate::tracking::enable(ctx.srv, &info, options, &prefixes);
    ctx.out.ok();
    Ok(())
}

/// CLIENT CACHING YES|NO
fn client_caching(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let yes = if is_word(args[2], "yes") {
        Some(true)
    } else if is_word(args[2], "no") {
        Some(false)
    } else {
        None
    };
    crate::tracking::set_caching(&ctx.client.info, yes)?;
    ctx.out.ok();
    Ok(())
}

/// CLIENT GETREDIR: the redirection target, 0 when tracking without one,
/// -1 when not tracking.
fn client_getredir(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let tracking = ctx.client.info.tracking.get();
    ctx.out.int(if tracking.on { tracking.redirect as i64 } else { -1 });
    Ok(())
}

fn client_trackinginfo(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let t = ctx.client.info.tracking.get();
    let mut flags: Vec<&[u8]> = vec![if t.on { b"on" } else { b"off" }];
    if t.bcast {
        flags.push(b"bcast");
    }
    if t.optin {
        flags.push(b"optin");
        if t.caching {
            flags.push(b"caching-yes");
        }
    }
    if t.optout {
        flags.push(b"optout");
        if t.caching {
            flags.push(b"caching-no");
        }
    }
    if t.noloop {
        flags.push(b"noloop");
    }
    if t.broken_redirect {
        flags.push(b"broken_redirect");
    }
    let prefixes = ctx.srv.tracking.prefixes_of(ctx.client.info.id);
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    for flag in flags {
        out.bulk(flag);
    }
    out.bulk(b"redirect");
    out.int(if t.on { t.redirect as i64 } else { -1 });
    out.bulk(b"prefixes");
    out.array(prefixes.len());
    for prefix in &prefixes {
        out.bulk(prefix);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CLIENT PAUSE / UNPAUSE
// ---------------------------------------------------------------------------

/// CLIENT PAUSE timeout-ms [WRITE|ALL]
fn client_pause(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 4 {
        return Err(unknown_subcommand(args));
    }
    let mut mode = crate::pause::PauseMode::All;
    if let Some(word) = args.get(3) {
        if is_word(word, "write") {
            mode = crate::pause::PauseMode::Write;
        } else if !is_word(word, "all") {
            return Err("ERR CLIENT PAUSE mode must be WRITE or ALL".into());
        }
    }
    // A zero timeout is an end already past: no pause.
    let end_ms = match crate::blocking::parse_timeout_ms(args[2], ctx.now_ms)? {
        Some(timeout) => ctx.now_ms + timeout.as_millis() as i64,
        None => 0,
    };
    crate::pause::pause(ctx.srv, end_ms, mode);
    ctx.out.ok();
    Ok(())
}

fn client_unpause(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    crate::pause::unpause(ctx.srv);
    ctx.out.ok();
    Ok(())
}

/// Valkey's answer to a CLIENT subcommand given the wrong number of
/// arguments that the command table could not catch.
fn unknown_subcommand(args: &[&[u8]]) -> CmdError {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&c_str(args[1])[..c_str(args[1]).len().min(128)]),
        lossy(args[0]).to_ascii_uppercase()
    )
    .into()
}

/// CLIENT CAPA: the only capability Valkey knows (REDIRECT) concerns
/// replicas redirecting clients to their primary, which a standalone
/// primary never does; the claim is accepted and needs no record.
fn client_capa(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    Ok(())
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking
/// command as if it had timed out, or with an UNBLOCKED error.
fn client_unblock(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 4 {
        return Err(unknown_subcommand(args));
    }
    let mut with_error = false;
    if let Some(reason) = args.get(3) {
        if is_word(reason, "error") {
            with_error = true;
        } else if !is_word(reason, "timeout") {
            return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into());
        }
    }
    let id = parse_i64(args[2]).ok_or(errors::NOT_INTEGER)?;
    let error = with_error.then_some("UNBLOCKED client unblocked via CLIENT UNBLOCK");
    let done = u64::try_from(id).is_ok_and(|id| crate::blocking::unblock(ctx.srv, id, error));
    ctx.out.int(done as i64);
    Ok(())
}

const CLIENT_HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "CAPA <option> [options...]",
    "    The client claims its some capability options. Options are:",
    "    * REDIRECT",
    "      The client can handle redirection during primary and replica failover in standalone mode.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|PRIMARY|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
];

fn client_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(args[0], CLIENT_HELP);
    Ok(())
}

// ---------------------------------------------------------------------------
// CLIENT INFO / LIST: describing clients
// ---------------------------------------------------------------------------

/// Client classes as CLIENT LIST TYPE and CLIENT KILL TYPE name them.
/// This server has no replication links yet, so every client is normal or
/// pub/sub; the other classes are accepted and match nobody.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Normal,
    Primary,
    Replica,
    PubSub,
}

impl ClientKind {
    fn parse(name: &[u8]) -> Result<ClientKind, CmdError> {
        let kind = match c_str(name).to_ascii_lowercase().as_slice() {
            b"normal" => ClientKind::Normal,
            b"master" | b"primary" => ClientKind::Primary,
            b"replica" | b"slave" => ClientKind::Replica,
            b"pubsub" => ClientKind::PubSub,
            _ => return Err(format!("ERR Unknown client type '{}'", lossy(name)).into()),
        };
        Ok(kind)
    }

    fn of(info: &ClientInfo) -> ClientKind {
        if info.is_pubsub() {
            ClientKind::PubSub
        } else {
            ClientKind::Normal
        }
    }
}

/// What only the running command knows about its own client: its
/// arguments and the reply buffer it is writing into.
struct Caller {
    id: u64,
    argv_bytes: usize,
    reply_capacity: usize,
    reply_len: usize,
}

impl Caller {
    fn of(ctx: &Ctx, args: &[&[u8]]) -> Caller {
        Caller {
            id: ctx.client.info.id,
            argv_bytes: args.iter().map(|a| a.len()).sum(),
            reply_capacity: ctx.out.buf.capacity(),
            reply_len: ctx.out.buf.len(),
        }
    }
}

/// An address as Valkey prints it: `ip:port`, IPv6 in brackets.
pub(crate) fn format_addr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The CLIENT LIST flags in Valkey's order: `O` in MONITOR mode, `P`
/// pub/sub, `x` in MULTI, `b` blocked or paused, `t` tracking, `R` broken
/// tracking redirection, `B` tracking in BCAST mode, `d` WATCHed key
/// changed, `e` no-evict, `T` no-touch; `N` for none.
fn flags(info: &ClientInfo) -> String {
    let mut f = String::new();
    if info.monitor.get() {
        f.push('O');
    }
    if info.is_pubsub() {
        f.push('P');
    }
    if info.multi_queued.get().is_some() {
        f.push('x');
    }
    if info.blocked.get() {
        f.push('b');
    }
    let tracking = info.tracking.get();
    if tracking.on {
        f.push('t');
    }
    if tracking.broken_redirect {
        f.push('R');
    }
    if tracking.bcast {
        f.push('B');
    }
    if info.dirty_cas.get() {
        f.push('d');
    }
    if info.no_evict.get() {
        f.push('e');
    }
    if info.no_touch.get() {
        f.push('T');
    }
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// Appends one CLIENT LIST line (with its newline), with Valkey's fields in
/// Valkey's order. Reply buffer figures are the caller's reply being
/// written; for other clients they describe the output waiting for them
/// (pub/sub messages, invalidations), as Valkey's reply buffer and list.
fn describe(line: &mut Vec<u8>, info: &ClientInfo, now_ms: i64, caller: &Caller) {
    let now_s = now_ms / 1000;
    let is_caller = info.id == caller.id;
    let qbuf = info.query_buf_len.get();
    let argv_mem = if is_caller { caller.argv_bytes } else { 0 };
    let waiting = if is_caller { Default::default() } else { crate::output_limits::usage(info) };
    let (rbs, rbp, obl) = if is_caller {
        (caller.reply_capacity, caller.reply_len, caller.reply_len)
    } else {
        (0, 0, waiting.buffer_bytes)
    };
    let tot_mem = std::mem::size_of::<ClientInfo>()
        + std::mem::size_of::<Client>()
        + qbuf
        + argv_mem
        + rbs
        + obl
        + waiting.list_memory;
    // Output waiting to be written means the connection waits for the
    // socket to take it.
    let events = if waiting.buffer_bytes > 0 { "rw" } else { "r" };
    let tracking = info.tracking.get();
    let redirect = if tracking.on { tracking.redirect as i64 } else { -1 };
    let text = |cell: &std::cell::RefCell<Option<Vec<u8>>>| {
        cell.borrow().as_deref().map(|v| String::from_utf8_lossy(c_str(v)).into_owned()).unwrap_or_default()
    };
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        line,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} watch={} \
         qbuf={} qbuf-free=0 argv-mem={} multi-mem=0 rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events={events} \
         cmd={} user=default redir={redirect} resp={} lib-name={} lib-ver={} tot-net-in={} tot-net-out={} tot-cmds={}",
        info.id,
        format_addr(&info.addr),
        format_addr(&info.laddr),
        info.fd,
        text(&info.name),
        now_s - info.created_s,
        now_s - info.last_interaction_ms.get() / 1000,
        flags(info),
        info.db.get(),
        info.subscribed_channels.get(),
        info.subscribed_patterns.get(),
        info.subscribed_shard_channels.get(),
        info.multi_queued.get().map(|n| n as i64).unwrap_or(-1),
        info.watched.borrow().len(),
        qbuf,
        argv_mem,
        rbs,
        rbp,
        obl,
        waiting.blocks,
        waiting.list_memory,
        tot_mem,
        info.last_cmd.borrow(),
        info.resp.get(),
        text(&info.lib_name),
        text(&info.lib_ver),
        info.net_input_bytes.get(),
        info.net_output_bytes.get(),
        info.commands_processed.get(),
    );
}

/// A client's CLIENT LIST line without its newline, as the log shows
/// clients.
pub fn client_info_line(info: &ClientInfo, now_ms: i64) -> String {
    let nobody = Caller { id: 0, argv_bytes: 0, reply_capacity: 0, reply_len: 0 };
    let mut line = Vec::new();
    describe(&mut line, info, now_ms, &nobody);
    line.pop();
    String::from_utf8_lossy(&line).into_owned()
}

/// Whether a client still counts as connected. Valkey frees a killed or
/// timed-out client on the spot; here its task closes the socket a moment
/// later, so until then CLIENT LIST and KILL skip it by its close request.
/// The caller itself always counts.
fn is_live(info: &ClientInfo, caller_id: u64) -> bool {
    info.id == caller_id || !info.close_requested.get()
}

fn client_info(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let caller = Caller::of(ctx, args);
    let mut text = Vec::new();
    describe(&mut text, &ctx.client.info, ctx.now_ms, &caller);
    ctx.out.verbatim(&text);
    Ok(())
}

/// CLIENT LIST [TYPE type | ID id ...]
fn client_list(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let caller = Caller::of(ctx, args);
    let mut text = Vec::new();
    if args.len() == 4 && is_word(args[2], "type") {
        let kind = ClientKind::parse(args[3])?;
        for info in ctx.srv.clients.by_id.values() {
            if is_live(info, caller.id) && ClientKind::of(info) == kind {
                describe(&mut text, info, ctx.now_ms, &caller);
            }
        }
    } else if args.len() > 3 && is_word(args[2], "id") {
        // All ids are checked before any is looked up, so a bad one
        // anywhere fails the whole command.
        let ids =
            args[3..].iter().map(|a| parse_i64(a).ok_or("ERR Invalid client ID")).collect::<Result<Vec<i64>, _>>()?;
        for id in ids {
            let found = u64::try_from(id).ok().and_then(|id| ctx.srv.clients.by_id.get(&id));
            if let Some(info) = found.filter(|info| is_live(info, caller.id)) {
                describe(&mut text, info, ctx.now_ms, &caller);
            }
        }
    } else if args.len() == 2 {
        for info in ctx.srv.clients.by_id.values() {
            if is_live(info, caller.id) {
                describe(&mut text, info, ctx.now_ms, &caller);
            }
        }
    } else {
        return Err(errors::SYNTAX.into());
    }
    ctx.out.verbatim(&text);
    Ok(())
}

// ---------------------------------------------------------------------------
// CLIENT KILL
// ---------------------------------------------------------------------------

/// Which clients a CLIENT KILL names; every given condition must hold.
struct KillFilter {
    addr: Option<Vec<u8>>,
    laddr: Option<Vec<u8>>,
    kind: Option<ClientKind>,
    id: Option<u64>,
    min_age_s: Option<i64>,
    skip_me: bool,
}

impl KillFilter {
    /// The old form, `CLIENT KILL addr`, which may kill the caller.
    fn by_addr(addr: &[u8]) -> KillFilter {
        KillFilter {
            addr: Some(c_str(addr).to_vec()),
            laddr: None,
            kind: None,
            id: None,
            min_age_s: None,
            skip_me: false,
        }
    }

    /// The option/value pairs of the new form.
    fn parse(options: &[&[u8]]) -> Result<KillFilter, CmdError> {
        let mut filter = KillFilter { addr: None, laddr: None, kind: None, id: None, min_age_s: None, skip_me: true };
        let mut i = 0;
        while i < options.len() {
            let (option, value) = match options.get(i + 1) {
                Some(value) => (options[i], *value),
                None => return Err(errors::SYNTAX.into()),
            };
            if is_word(option, "id") {
                let id = parse_i64(value).filter(|&id| id >= 1).ok_or("ERR client-id should be greater than 0")?;
                filter.id = Some(id as u64);
            } else if is_word(option, "maxage") {
                let age = parse_i64(value).ok_or("ERR maxage is not an integer or out of range")?;
                if age <= 0 {
                    return Err("ERR maxage should be greater than 0".into());
                }
                filter.min_age_s = Some(age);
            } else if is_word(option, "type") {
                filter.kind = Some(ClientKind::parse(value)?);
            } else if is_word(option, "addr") {
                filter.addr = Some(c_str(value).to_vec());
            } else if is_word(option, "laddr") {
                filter.laddr = Some(c_str(value).to_vec());
            } else if is_word(option, "user") {
                // Every client is the default user's, so naming it
                // filters nothing; any other user does not exist.
                if value != DEFAULT_USER {
                    return Err(format!("ERR No such user '{}'", lossy(value)).into());
                }
            } else if is_word(option, "skipme") {
                filter.skip_me = if is_word(value, "yes") {
                    true
                } else if is_word(value, "no") {
                    false
                } else {
                    return Err(errors::SYNTAX.into());
                };
            } else {
                return Err(errors::SYNTAX.into());
            }
            i += 2;
        }
        Ok(filter)
    }

    fn matches(&self, info: &ClientInfo, caller_id: u64, now_s: i64) -> bool {
        let addr_is = |wanted: &Option<Vec<u8>>, addr: &SocketAddr| {
            wanted.as_ref().is_none_or(|w| w.as_slice() == format_addr(addr).as_bytes())
        };
        addr_is(&self.addr, &info.addr)
            && addr_is(&self.laddr, &info.laddr)
            && self.kind.is_none_or(|k| ClientKind::of(info) == k)
            && self.id.is_none_or(|id| info.id == id)
            && !(self.skip_me && info.id == caller_id)
            && self.min_age_s.is_none_or(|min| now_s - info.created_s >= min)
    }
}

/// CLIENT KILL addr | CLIENT KILL option value [option value ...]
fn client_kill(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let old_form = args.len() == 3;
    let filter = if old_form { KillFilter::by_addr(args[2]) } else { KillFilter::parse(&args[2..])? };
    let caller_id = ctx.client.info.id;
    let now_s = ctx.now_ms / 1000;
    let mut killed = 0;
    let mut kill_caller = false;
    for info in ctx.srv.clients.by_id.values() {
        if !is_live(info, caller_id) || !filter.matches(info, caller_id, now_s) {
            continue;
        }
        if info.id == caller_id {
            // Closed only after this reply is sent.
            kill_caller = true;
        } else {
            info.request_kill();
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            return Err("ERR No such client".into());
        }
        ctx.out.ok();
    } else {
        ctx.out.int(killed);
    }
    if kill_caller {
        ctx.client.info.close_requested.set(true);
    }
    Ok(())
}
