//! The EVAL family: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//!
//! Scripts are cached by the SHA1 of their body and compiled once into the
//! Lua state all EVAL scripts share (see scripting/engine.rs). Scripts
//! that EVAL added are evicted least recently used first beyond 500 of
//! them, as in Valkey, so that a client generating a new script for every
//! call cannot grow the cache without bound; SCRIPT LOAD's scripts stay
//! until SCRIPT FLUSH, which starts over with a new Lua state.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::commands::server as stats;
use crate::scripting::engine::{self, FunctionRef, Invocation, LuaVm, ScriptCall, ScriptFlags, VmKind};
use crate::scripting::libs::until_nul;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("eval", eval),
    ("evalsha", evalsha),
    ("eval_ro", eval_ro),
    ("evalsha_ro", evalsha_ro),
    ("script|load", script_load),
    ("script|exists", script_exists),
    ("script|flush", script_flush),
    ("script|kill", script_kill),
    ("script|show", script_show),
    ("script|debug", script_debug),
    ("script|help", script_help),
];

const NOSCRIPT: &str = "NOSCRIPT No matching script.";
/// How many scripts EVAL may leave in the cache.
const MAX_EVAL_SCRIPTS: usize = 500;

/// Scripts evicted from the cache since the start (INFO evicted_scripts).
static EVICTED_SCRIPTS: AtomicU64 = AtomicU64::new(0);

struct CachedScript {
    body: Vec<u8>,
    flags: ScriptFlags,
    function: FunctionRef,
    /// When EVAL last ran it; None for scripts SCRIPT LOAD added, which
    /// are never evicted.
    last_used: Option<u64>,
}

/// The EVAL scripts' Lua state and the scripts compiled into it.
struct ScriptCache {
    vm: LuaVm,
    /// By lower-case hex SHA1.
    scripts: RefCell<HashMap<[u8; 40], CachedScript>>,
    clock: Cell<u64>,
    evictable: Cell<usize>,
    body_bytes: Cell<usize>,
}

thread_local! {
    /// Created at first use, replaced by SCRIPT FLUSH. Borrowed only for
    /// a moment: a running script keeps its own handle.
    static CACHE: RefCell<Option<Rc<ScriptCache>>> = const { RefCell::new(None) };
}

fn cache() -> Result<Rc<ScriptCache>, CmdError> {
    if let Some(cache) = CACHE.with(|c| c.borrow().clone()) {
        return Ok(cache);
    }
    let vm = LuaVm::new(VmKind::Eval).map_err(|e| CmdError::from(format!("ERR {e}")))?;
    let cache = Rc::new(ScriptCache {
        vm,
        scripts: RefCell::new(HashMap::new()),
        clock: Cell::new(0),
        evictable: Cell::new(0),
        body_bytes: Cell::new(0),
    });
    CACHE.with(|c| *c.borrow_mut() = Some(cache.clone()));
    Ok(cache)
}

/// Where a script being added comes from.
#[derive(PartialEq, Eq)]
enum Origin {
    Eval,
    ScriptLoad,
}

impl ScriptCache {
    fn find(&self, sha: &[u8; 40]) -> Option<(FunctionRef, ScriptFlags)> {
        self.scripts.borrow().get(sha).map(|s| (s.function, s.flags))
    }

    fn tick(&self) -> u64 {
        self.clock.set(self.clock.get() + 1);
        self.clock.get()
    }

    /// Compiles and caches a script (or finds it cached). A script SCRIPT
    /// LOAD asks for is kept for good even if EVAL added it first. On
    /// failure, returns the error reply.
    fn add(&self, body: &[u8], sha: [u8; 40], origin: Origin) -> Result<(FunctionRef, ScriptFlags), Vec<u8>> {
        if let Some(script) = self.scripts.borrow_mut().get_mut(&sha) {
            if origin == Origin::ScriptLoad && script.last_used.take().is_some() {
                self.evictable.set(self.evictable.get() - 1);
            }
            return Ok((script.function, script.flags));
        }
        let (flags, shebang_len) = parse_shebang(body).map_err(|e| [b"ERR ".as_slice(), &e].concat())?;
        // The shebang line is left out but its line feed stays, so that
        // errors give the script's own line numbers.
        let function = self
            .vm
            .compile(&body[shebang_len..], c"@user_script")
            .map_err(|e| [b"ERR Error compiling script (new function): ".as_slice(), &e].concat())?;
        let last_used = match origin {
            Origin::Eval => {
                while self.evictable.get() >= MAX_EVAL_SCRIPTS {
                    self.evict_least_recently_used();
                }
                self.evictable.set(self.evictable.get() + 1);
                Some(self.tick())
            }
            Origin::ScriptLoad => None,
        };
        self.body_bytes.set(self.body_bytes.get() + body.len());
        self.scripts.borrow_mut().insert(sha, CachedScript { body: body.to_vec(), flags, function, last_used });
        Ok((function, flags))
    }

    fn evict_least_recently_used(&self) {
        let mut scripts = self.scripts.borrow_mut();
        let oldest = scripts.iter().filter_map(|(sha, s)| Some((s.last_used?, *sha))).min();
        let Some((_, sha)) = oldest else {
            self.evictable.set(0);
            return;
        };
        if let Some(script) = scripts.remove(&sha) {
            self.vm.release(script.function);
            self.body_bytes.set(self.body_bytes.get() - script.body.len());
        }
        self.evictable.set(self.evictable.get() - 1);
        EVICTED_SCRIPTS.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks an EVAL script as just used.
    fn touch(&self, sha: &[u8; 40]) {
        let tick = self.tick();
        if let Some(script) = self.scripts.borrow_mut().get_mut(sha) {
            if script.last_used.is_some() {
                script.last_used = Some(tick);
            }
        }
    }
}

/// Reads the shebang line (`#!lua flags=no-writes,...`) of a script body:
/// its flags and the length of the line. A body without one runs in
/// compatibility mode. Errors are Valkey's texts, without the code.
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), Vec<u8>> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::EVAL_COMPAT_MODE, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(b"Invalid script shebang".to_vec());
    };
    let parts = match ferrokey_formats::resp::split_args(&body[..end]) {
        Some(parts) if !parts.is_empty() => parts,
        _ => return Err(b"Invalid engine in script shebang".to_vec()),
    };
    if until_nul(&parts[0]) != b"#!lua" {
        return Err([b"Unexpected engine in script shebang: ".as_slice(), until_nul(&parts[0])].concat());
    }
    let mut flags = ScriptFlags::default();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err([b"Unknown lua shebang option: ".as_slice(), until_nul(part)].concat());
        };
        if list.is_empty() {
            continue;
        }
        for name in list.split(|&b| b == b',') {
            let name = until_nul(name);
            let Some((_, flag)) = ScriptFlags::NAMES.iter().find(|(n, _)| n.as_bytes() == name) else {
                return Err([b"Unexpected flag in script shebang: ".as_slice(), name].concat());
            };
            flags.insert(*flag);
        }
    }
    Ok((flags, end))
}

/// Answers an error whose text may hold any bytes, counting it as the
/// dispatcher counts errors.
fn fail(ctx: &mut Ctx, message: &[u8]) -> CmdResult {
    ctx.srv.stats.total_error_replies += 1;
    stats::record_error_reply(&String::from_utf8_lossy(message));
    ctx.out.error_bytes(message);
    Ok(())
}

/// The cache key of a SHA1 given by a client (any case).
fn sha_key(arg: &[u8]) -> Option<[u8; 40]> {
    let mut key: [u8; 40] = arg.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

fn eval(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    run_script(ctx, args, false, false)
}

fn eval_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    run_script(ctx, args, false, true)
}

fn evalsha(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    run_script(ctx, args, true, false)
}

fn evalsha_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    run_script(ctx, args, true, true)
}

/// EVAL and its variants: `args[1]` is the body or its SHA1, `args[2]`
/// how many of the remaining arguments are keys.
fn run_script(ctx: &mut Ctx, args: &[&[u8]], by_sha: bool, ro_command: bool) -> CmdResult {
    // A SHA1 of the wrong length cannot match: it is refused first.
    if by_sha && args[1].len() != 40 {
        return Err(NOSCRIPT.into());
    }
    let numkeys = crate::commands::server::parse_i64(args[2])?;
    if numkeys > (args.len() - 3) as i64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    if numkeys < 0 {
        return Err("ERR Number of keys can't be negative".into());
    }
    let cache = cache()?;
    let sha = match sha_key(args[1]) {
        Some(sha) if by_sha => sha,
        _ => engine::sha1_hex(args[1]),
    };
    let (function, flags) = match cache.find(&sha) {
        Some(found) => found,
        None if by_sha => return Err(NOSCRIPT.into()),
        None => match cache.add(args[1], sha, Origin::Eval) {
            Ok(added) => added,
            Err(message) => return fail(ctx, &message),
        },
    };
    let rules = engine::check_run_allowed(ctx.srv, flags, ro_command)?;
    let (keys, argv) = args[3..].split_at(numkeys as usize);
    let name = std::str::from_utf8(&sha).unwrap_or_default();
    let call = ScriptCall { function, invocation: Invocation::Eval, name, keys, args: argv, rules, command: args };
    engine::run(&cache.vm, ctx, &call)?;
    cache.touch(&sha);
    Ok(())
}

fn script_load(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cache = cache()?;
    let sha = engine::sha1_hex(args[2]);
    if let Err(message) = cache.add(args[2], sha, Origin::ScriptLoad) {
        return fail(ctx, &message);
    }
    ctx.out.bulk(&sha);
    Ok(())
}

fn script_exists(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cache = CACHE.with(|c| c.borrow().clone());
    ctx.out.array(args.len() - 2);
    for arg in &args[2..] {
        let known = match (&cache, sha_key(arg)) {
            (Some(cache), Some(sha)) => cache.find(&sha).is_some(),
            _ => false,
        };
        ctx.out.int(known as i64);
    }
    Ok(())
}

fn script_show(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cache = CACHE.with(|c| c.borrow().clone());
    let body = cache.as_ref().zip(sha_key(args[2])).and_then(|(cache, sha)| {
        let scripts = cache.scripts.borrow();
        scripts.get(&sha).map(|s| s.body.clone())
    });
    match body {
        Some(body) => {
            ctx.out.bulk(&body);
            Ok(())
        }
        None => Err(NOSCRIPT.into()),
    }
}

/// SCRIPT FLUSH [ASYNC|SYNC]: both forms drop the Lua state at once.
fn script_flush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let valid = match args.len() {
        2 => true,
        3 => args[2].eq_ignore_ascii_case(b"sync") || args[2].eq_ignore_ascii_case(b"async"),
        _ => false,
    };
    if !valid {
        return Err("ERR SCRIPT FLUSH only support SYNC|ASYNC option".into());
    }
    CACHE.with(|c| c.borrow_mut().take());
    ctx.out.ok();
    Ok(())
}

/// SCRIPT KILL reaches this handler only when no script runs: during a
/// script, the busy poller (busy.rs) answers it.
fn script_kill(_ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err("NOTBUSY No scripts in execution right now.".into())
}

/// SCRIPT DEBUG: ferrokey has no Lua debugger; turning it off is all that
/// can be done.
fn script_debug(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mode = args[2];
    if mode.eq_ignore_ascii_case(b"no") {
        ctx.out.ok();
        return Ok(());
    }
    if mode.eq_ignore_ascii_case(b"yes") || mode.eq_ignore_ascii_case(b"sync") {
        return Err("ERR The Lua debugger is not available in this server".into());
    }
    Err("ERR Use SCRIPT DEBUG YES/SYNC/NO".into())
}

fn script_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined",
            "     by the lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "SHOW <sha1>",
            "    Show a script from the scripts cache.",
        ],
    );
    Ok(())
}

/// The EVAL scripts' memory, for INFO memory and MEMORY STATS.
pub struct EvalMemory {
    /// What the Lua state holds.
    pub vm_bytes: u64,
    /// The cached scripts' bodies and bookkeeping.
    pub scripts_bytes: u64,
    pub cached_scripts: u64,
}

/// Bookkeeping bytes counted per cached script besides its body: its SHA1
/// and the cache entry.
const SCRIPT_OVERHEAD: usize = 96;

pub fn eval_memory() -> EvalMemory {
    let Ok(cache) = cache() else {
        return EvalMemory { vm_bytes: 0, scripts_bytes: 0, cached_scripts: 0 };
    };
    let cached = cache.scripts.borrow().len();
    EvalMemory {
        vm_bytes: cache.vm.used_memory() as u64,
        scripts_bytes: (cache.body_bytes.get() + cached * SCRIPT_OVERHEAD) as u64,
        cached_scripts: cached as u64,
    }
}

/// CONFIG RESETSTAT: the eviction count starts again from zero.
pub fn reset_stats() {
    EVICTED_SCRIPTS.store(0, Ordering::Relaxed);
}

/// INFO stats `evicted_scripts`.
pub fn evicted_scripts() -> u64 {
    EVICTED_SCRIPTS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_read_like_valkey() {
        let flags = |body: &str| parse_shebang(body.as_bytes()).map_err(|e| String::from_utf8(e).unwrap());
        assert_eq!(flags("return 1"), Ok((ScriptFlags::EVAL_COMPAT_MODE, 0)));
        assert_eq!(flags("#!lua\nreturn 1"), Ok((ScriptFlags::default(), 5)));
        assert_eq!(flags("#!lua flags=\nreturn 1"), Ok((ScriptFlags::default(), 12)));
        let (f, _) = flags("#!lua flags=no-writes,allow-oom\n").unwrap();
        assert!(f.contains(ScriptFlags::NO_WRITES) && f.contains(ScriptFlags::ALLOW_OOM));
        assert_eq!(flags("#!lua"), Err("Invalid script shebang".into()));
        assert_eq!(flags("#!python\n"), Err("Unexpected engine in script shebang: #!python".into()));
        assert_eq!(flags("#!lua \"x\n"), Err("Invalid engine in script shebang".into()));
        assert_eq!(flags("#!lua flags=no-writes,\n"), Err("Unexpected flag in script shebang: ".into()));
        assert_eq!(flags("#!lua foo=bar\n"), Err("Unknown lua shebang option: foo=bar".into()));
    }
}
