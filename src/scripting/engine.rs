//! The Lua virtual machine scripts run in, set up as Valkey 8.0.1 sets up
//! its own, and running one script: its keys and arguments in, its result
//! out as a reply, the `server.*` API in between.
//!
//! Valkey embeds a Lua 5.1 patched with read-only tables. ferrokey runs the
//! stock Lua 5.1 that `mlua` vendors and rebuilds the same sandbox around it:
//!
//! - Every table a script can reach from its globals (the globals
//!   themselves, the libraries, the `server` table) is an empty *proxy*
//!   whose metatable reads through to the real table and refuses writes
//!   with Valkey's "Attempt to modify a readonly table". The base functions
//!   that look past metatables (`next`, `pairs`, `rawget`, `rawset`,
//!   `getmetatable`, `setmetatable`) are replaced by versions that treat a
//!   proxy as the table behind it. Reading a global that does not exist
//!   fails with Valkey's message. Every function's environment is the
//!   protected globals, so `getfenv` leads nowhere else.
//! - The globals are created in the order Valkey creates them, so that the
//!   Lua tables have the same layout and `pairs` lists them the same way.
//! - A chunk that starts like Lua bytecode is compiled as text (Valkey's
//!   Lua never loads bytecode), which fails with the same syntax error.
//!
//! Everything goes through the raw C API: Lua reports errors by `longjmp`,
//! so every C function here does its work in Rust helpers that return
//! before anything is raised, and nothing that owns memory is alive in a
//! frame Lua may jump over (the exception, as in the libraries, is running
//! out of memory inside a Lua allocation, which leaks the Rust buffers of
//! the call in progress).
//!
//! While a script runs, what its API functions need (the server state, the
//! client its commands run as, the caller's reply buffer) is reachable
//! through a thread-local pointer set for the duration of [`run`] only.
//! The script itself is called from the top of the Lua stack exactly as
//! Valkey calls it, so Lua's limits (C call depth, stack size) strike at
//! the same depth; the steps around it that allocate (making `KEYS`,
//! converting the result) run inside a protected call, so that even a
//! failing `__gc` metamethod can never escape unprotected.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use mlua::ffi;

use super::convert;
use super::libs::{ccast, until_nul};
use crate::busy::RunningScript;
use crate::client::{Client, ClientInfo};
use crate::command::{self, flags, CmdError, CmdResult, CommandSpec, Ctx};
use crate::commands::server as stats;
use crate::reply::Reply;
use crate::server::ServerState;

/// Which of Valkey's two Lua states a VM plays: the one EVAL scripts share,
/// or the one function libraries live in. They differ in a few globals.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmKind {
    Eval,
    Functions,
}

/// How many Lua instructions run between two calls of the busy hook.
const HOOK_INSTRUCTIONS: c_int = 100_000;
/// A garbage collection step after every this many runs (and of this size),
/// so that Lua never needs a long full cycle.
const GC_PERIOD: u32 = 50;

const READONLY_ERROR: &CStr = c"Attempt to modify a readonly table";
const KILLED_ERROR: &[u8] = b"Script killed by user with SCRIPT KILL...";

/// The flags a script declares (shebang `flags=` for EVAL, `flags` of
/// `server.register_function` for functions).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(1 << 1);
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(1 << 2);
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(1 << 3);
    pub const ALLOW_CROSS_SLOT: ScriptFlags = ScriptFlags(1 << 4);
    /// An EVAL script without a shebang: it runs by the rules of scripts
    /// from before flags existed.
    pub const EVAL_COMPAT_MODE: ScriptFlags = ScriptFlags(1 << 5);

    /// The declarable flags by their names, in Valkey's order.
    pub const NAMES: [(&'static str, ScriptFlags); 5] = [
        ("no-writes", ScriptFlags::NO_WRITES),
        ("allow-oom", ScriptFlags::ALLOW_OOM),
        ("allow-stale", ScriptFlags::ALLOW_STALE),
        ("no-cluster", ScriptFlags::NO_CLUSTER),
        ("allow-cross-slot-keys", ScriptFlags::ALLOW_CROSS_SLOT),
    ];

    pub fn contains(self, other: ScriptFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: ScriptFlags) {
        self.0 |= other.0;
    }
}

/// What a script may do while it runs, from its flags and the command
/// that runs it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct RunRules {
    /// Write commands are refused (a `*_RO` command, or `no-writes`).
    pub read_only: bool,
    /// Commands that need memory run even when memory is full
    /// (`allow-oom`).
    pub allow_oom: bool,
}

/// Valkey's checks before a script runs, by what it declared: a script
/// with flags is refused as a write command (or one that needs memory)
/// would be, unless its flags say it is none. Returns the rules of its run.
pub fn check_run_allowed(st: &ServerState, script: ScriptFlags, ro_command: bool) -> Result<RunRules, CmdError> {
    let declared = !script.contains(ScriptFlags::EVAL_COMPAT_MODE);
    let no_writes = declared && script.contains(ScriptFlags::NO_WRITES);
    let allow_oom = declared && script.contains(ScriptFlags::ALLOW_OOM);
    if declared && !no_writes {
        if !allow_oom {
            if let Some(refused) = crate::evict::oom_refusal(st, flags::DENYOOM) {
                return Err(refused.into());
            }
        }
        if let Some(refused) = crate::persistence::refusal(st, "eval", flags::WRITE) {
            return Err(refused.into());
        }
        if ro_command {
            return Err("ERR Can not execute a script with write flag using *_ro command.".into());
        }
    }
    Ok(RunRules { read_only: ro_command || no_writes, allow_oom })
}

/// A compiled script or function, kept alive by a registry reference.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FunctionRef(c_int);

/// A Lua state with Valkey's sandbox and API.
pub struct LuaVm {
    /// Owns the Lua state (closing it when dropped).
    _lua: mlua::Lua,
    /// The state's main thread, on which everything runs.
    state: *mut ffi::lua_State,
    refs: VmRefs,
    /// The client scripts' commands run as.
    script_client: Rc<ClientInfo>,
    runs: Cell<u32>,
}

/// Registry references to what runs need, kept so that nothing has to be
/// allocated (which could run a garbage collection) outside a protected
/// call.
#[derive(Default, Clone, Copy)]
struct VmRefs {
    error_handler: c_int,
    /// The real globals table, behind the globals proxy.
    globals: c_int,
    /// The metatable of the globals proxy (its `__index` leads to the
    /// globals: function libraries are loaded with another table there).
    globals_meta: c_int,
    /// The globals proxy: every function's environment.
    globals_proxy: c_int,
    /// The map from each proxy to the table behind it.
    proxies: c_int,
    trampoline: c_int,
}

impl LuaVm {
    /// Creates a Lua state the way Valkey creates its scripting state.
    pub fn new(kind: VmKind) -> Result<LuaVm, String> {
        let lua = mlua::Lua::new_with(
            mlua::StdLib::TABLE | mlua::StdLib::STRING | mlua::StdLib::MATH | mlua::StdLib::OS,
            mlua::LuaOptions::default(),
        )
        .map_err(|e| format!("creating the Lua state: {e}"))?;
        super::libs::register_all(&lua).map_err(|e| format!("loading the Lua libraries: {e}"))?;
        let mut state = ptr::null_mut();
        let mut refs = VmRefs::default();
        // SAFETY: the closure runs in a protected call on the main thread,
        // with an empty stack frame of its own; it only uses the C API.
        unsafe {
            lua.exec_raw::<()>((), |l| {
                state = l;
                refs = build_sandbox(l, kind);
            })
        }
        .map_err(|e| format!("setting up the Lua sandbox: {e}"))?;
        let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(LuaVm {
            _lua: lua,
            state,
            refs,
            script_client: Rc::new(ClientInfo::new(0, unspecified, unspecified, -1, 0, true)),
            runs: Cell::new(0),
        })
    }

    /// The main thread of the state, for the raw C API.
    pub fn state(&self) -> *mut ffi::lua_State {
        self.state
    }

    /// Pushes the metatable of the globals proxy: its `__index` is where
    /// global names are looked up (FUNCTION LOAD points it at the library
    /// API while a library's code runs).
    ///
    /// # Safety
    /// The stack must have room for one value.
    pub unsafe fn push_globals_metatable(&self) {
        ffi::lua_rawgeti(self.state, ffi::LUA_REGISTRYINDEX, self.refs.globals_meta as _);
    }

    /// Pushes the real globals table (behind the protected proxy).
    ///
    /// # Safety
    /// The stack must have room for one value.
    pub unsafe fn push_globals(&self) {
        ffi::lua_rawgeti(self.state, ffi::LUA_REGISTRYINDEX, self.refs.globals as _);
    }

    /// Replaces the table at the top of the stack by a read-only proxy,
    /// protecting the tables it holds too, as the globals' tables are.
    ///
    /// # Safety
    /// A table must be at the top of the main thread's stack.
    pub unsafe fn protect_top(&self) {
        let l = self.state;
        ffi::lua_checkstack(l, 4);
        let table = ffi::lua_gettop(l);
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.refs.proxies as _);
        ffi::lua_newtable(l);
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.refs.globals_proxy as _);
        ffi::lua_pushvalue(l, table);
        protect(l, table + 1, table + 2, table + 3);
        ffi::lua_replace(l, table);
        ffi::lua_settop(l, table);
    }

    /// Lua's own count of the memory it holds, in bytes (INFO's
    /// `used_memory_vm_eval`).
    pub fn used_memory(&self) -> usize {
        // SAFETY: a query on our own state's main thread.
        unsafe { ffi::lua_gc(self.state, ffi::LUA_GCCOUNT, 0) as usize * 1024 }
    }

    /// Compiles `code` as a function named `chunk_name` ("@user_script"),
    /// keeping it in the registry. On failure, returns Lua's message.
    pub fn compile(&self, code: &[u8], chunk_name: &CStr) -> Result<FunctionRef, Vec<u8>> {
        let l = self.state;
        // SAFETY: loading leaves the function or the message on our stack;
        // keeping the reference happens in a protected call.
        unsafe {
            if load_text(l, code, chunk_name.as_ptr()) != 0 {
                let message = string_at(l, -1).unwrap_or_default().to_vec();
                ffi::lua_pop(l, 1);
                return Err(message);
            }
            let mut reference = 0;
            let kept = self.protected(1, 0, &mut |l| {
                reference = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                0
            });
            match kept {
                Ok(()) => Ok(FunctionRef(reference)),
                Err(message) => Err(message),
            }
        }
    }

    /// Forgets a compiled function.
    pub fn release(&self, function: FunctionRef) {
        // SAFETY: unref never raises.
        unsafe { ffi::luaL_unref(self.state, ffi::LUA_REGISTRYINDEX, function.0) }
    }

    /// Wraps `function` into a reference (for a function found while
    /// running library code: FUNCTION LOAD's `register_function`).
    ///
    /// # Safety
    /// The value at the top of `l`'s stack is popped; `l` must be a thread
    /// of this VM.
    pub unsafe fn keep_top(&self, l: *mut ffi::lua_State) -> FunctionRef {
        FunctionRef(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX))
    }

    /// Pushes a kept function.
    ///
    /// # Safety
    /// The stack must have room for one value.
    pub unsafe fn push_function(&self, function: FunctionRef) {
        ffi::lua_rawgeti(self.state, ffi::LUA_REGISTRYINDEX, function.0 as _);
    }

    /// Runs `job` in a protected call with the top `nargs` values of the
    /// stack as its arguments, leaving its `nresults` results. Fails with
    /// the error message when Lua raised one.
    ///
    /// # Safety
    /// `job` must leave `nresults` values (when `nresults >= 0`) and must
    /// not own memory across Lua calls that can raise.
    pub unsafe fn protected(
        &self,
        nargs: c_int,
        nresults: c_int,
        job: &mut dyn FnMut(*mut ffi::lua_State) -> c_int,
    ) -> Result<(), Vec<u8>> {
        protected_call(self.state, self.refs.trampoline, nargs, nresults, job)
    }
}

// ---------------------------------------------------------------------------
// Building the sandbox
// ---------------------------------------------------------------------------

/// The base library globals Valkey keeps, in the order Lua creates them.
const BASE_FUNCTIONS: [&CStr; 21] = [
    c"assert",
    c"collectgarbage",
    c"error",
    c"gcinfo",
    c"getfenv",
    c"getmetatable",
    c"load",
    c"loadstring",
    c"next",
    c"pcall",
    c"rawequal",
    c"rawget",
    c"rawset",
    c"select",
    c"setfenv",
    c"setmetatable",
    c"tonumber",
    c"tostring",
    c"type",
    c"unpack",
    c"xpcall",
];

/// Globals created after the base functions, in Valkey's order; `debug`
/// is a placeholder (Valkey loads the library, then removes the global).
const LIBRARY_GLOBALS: [&CStr; 14] = [
    c"_VERSION",
    c"ipairs",
    c"pairs",
    c"newproxy",
    c"coroutine",
    c"table",
    c"string",
    c"math",
    c"debug",
    c"os",
    c"cjson",
    c"struct",
    c"cmsgpack",
    c"bit",
];

/// Builds the globals, the `server` API and the protection around them,
/// on the main thread `l` whose current globals are the ones `mlua` made.
/// Returns the registry references runs need.
unsafe fn build_sandbox(l: *mut ffi::lua_State, kind: VmKind) -> VmRefs {
    ffi::lua_checkstack(l, 20);
    // The real globals, filled in Valkey's order from what Lua opened.
    ffi::lua_createtable(l, 0, 2);
    let globals = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, globals);
    ffi::lua_setfield(l, globals, c"_G".as_ptr());
    for name in BASE_FUNCTIONS.iter().chain(LIBRARY_GLOBALS.iter()) {
        match name.to_bytes() {
            b"debug" => ffi::lua_pushboolean(l, 1),
            b"os" => push_sandboxed_os(l),
            _ => {
                ffi::lua_getfield(l, ffi::LUA_GLOBALSINDEX, name.as_ptr());
            }
        }
        if ffi::lua_isnil(l, -1) != 0 {
            ffi::lua_pop(l, 1);
        } else {
            ffi::lua_setfield(l, globals, name.as_ptr());
        }
    }
    push_server_table(l, kind);
    ffi::lua_pushvalue(l, -1);
    ffi::lua_setfield(l, globals, c"server".as_ptr());
    ffi::lua_setfield(l, globals, c"redis".as_ptr());
    ffi::lua_getfield(l, globals, c"math".as_ptr());
    set_function(l, c"random", math_random);
    set_function(l, c"randomseed", math_randomseed);
    ffi::lua_pop(l, 1);
    ffi::lua_pushnil(l);
    ffi::lua_setfield(l, globals, c"debug".as_ptr());
    ffi::lua_pushcfunction(l, error_handler);
    if kind == VmKind::Eval {
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setfield(l, globals, c"__redis__err__handler".as_ptr());
    }
    let error_handler_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);

    // The globals proxy, and the map from every proxy to its table.
    ffi::lua_newtable(l);
    let proxies = ffi::lua_gettop(l);
    ffi::lua_newtable(l);
    let globals_proxy = ffi::lua_gettop(l);
    ffi::lua_newtable(l);
    ffi::lua_pushvalue(l, globals);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    ffi::lua_pushcfunction(l, refuse_write);
    ffi::lua_setfield(l, -2, c"__newindex".as_ptr());
    ffi::lua_pushvalue(l, -1);
    let globals_meta_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_setmetatable(l, globals_proxy);
    ffi::lua_pushvalue(l, globals_proxy);
    ffi::lua_pushvalue(l, globals);
    ffi::lua_rawset(l, proxies);
    ffi::lua_pushvalue(l, globals_proxy);
    ffi::lua_setfield(l, globals, c"_G".as_ptr());

    // Tables already protected, by table: the globals lead to their proxy.
    ffi::lua_newtable(l);
    let visited = ffi::lua_gettop(l);
    for table in [globals, globals_proxy] {
        ffi::lua_pushvalue(l, table);
        ffi::lua_pushvalue(l, globals_proxy);
        ffi::lua_rawset(l, visited);
    }

    // What getmetatable(_G) shows: a read-only view of a metatable that
    // refuses unknown names, as Valkey's globals have.
    ffi::lua_newtable(l);
    ffi::lua_pushcfunction(l, refuse_unknown_global);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    protect(l, proxies, visited, globals_proxy);
    let globals_view = ffi::lua_gettop(l);

    // Base functions that must see through proxies, or refuse bytecode.
    let wrappers: [(&CStr, ffi::lua_CFunction); 4] = [
        (c"next", next_through_proxies),
        (c"rawget", rawget_through_proxies),
        (c"rawset", rawset_refusing_proxies),
        (c"setmetatable", setmetatable_refusing_proxies),
    ];
    for (name, function) in wrappers {
        ffi::lua_pushvalue(l, proxies);
        ffi::lua_pushcclosure(l, function, 1);
        ffi::lua_setfield(l, globals, name.as_ptr());
    }
    ffi::lua_pushcfunction(l, load_as_text);
    ffi::lua_setfield(l, globals, c"load".as_ptr());
    ffi::lua_pushcfunction(l, loadstring_as_text);
    ffi::lua_setfield(l, globals, c"loadstring".as_ptr());
    ffi::lua_pushvalue(l, proxies);
    ffi::lua_pushcclosure(l, next_through_proxies, 1);
    ffi::lua_pushcclosure(l, pairs_through_proxies, 1);
    ffi::lua_setfield(l, globals, c"pairs".as_ptr());
    ffi::lua_pushvalue(l, proxies);
    ffi::lua_pushvalue(l, globals_proxy);
    ffi::lua_pushvalue(l, globals_view);
    ffi::lua_pushcclosure(l, getmetatable_through_proxies, 3);
    ffi::lua_setfield(l, globals, c"getmetatable".as_ptr());
    ffi::lua_pushcfunction(l, pcall_returning_messages);
    ffi::lua_setfield(l, globals, c"pcall".as_ptr());

    // ipairs returns a function of its own: it is reachable too.
    ffi::lua_getfield(l, globals, c"ipairs".as_ptr());
    ffi::lua_newtable(l);
    ffi::lua_call(l, 1, 1);
    ffi::lua_pushvalue(l, globals_proxy);
    ffi::lua_setfenv(l, -2);
    ffi::lua_pop(l, 1);

    protect_contents(l, globals, proxies, visited, globals_proxy);

    // Strings find their methods through the protected `string` table.
    ffi::lua_pushstring(l, c"".as_ptr());
    if ffi::lua_getmetatable(l, -1) != 0 {
        ffi::lua_getfield(l, globals, c"string".as_ptr());
        ffi::lua_setfield(l, -2, c"__index".as_ptr());
        ffi::lua_pop(l, 1);
    }
    ffi::lua_pop(l, 1);

    ffi::lua_pushvalue(l, globals);
    set_unknown_name_error(l);
    ffi::lua_pop(l, 1);

    ffi::lua_pushvalue(l, globals_proxy);
    ffi::lua_replace(l, ffi::LUA_GLOBALSINDEX);

    ffi::lua_pushvalue(l, globals);
    let globals_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_pushcfunction(l, trampoline);
    let trampoline_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_pushvalue(l, globals_proxy);
    let globals_proxy_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_pushvalue(l, proxies);
    let proxies_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    VmRefs {
        error_handler: error_handler_ref,
        globals: globals_ref,
        globals_meta: globals_meta_ref,
        globals_proxy: globals_proxy_ref,
        proxies: proxies_ref,
        trampoline: trampoline_ref,
    }
}

/// Pushes `os` as Valkey sandboxes it: `os.clock` only.
unsafe fn push_sandboxed_os(l: *mut ffi::lua_State) {
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_getfield(l, ffi::LUA_GLOBALSINDEX, c"os".as_ptr());
    if ffi::lua_istable(l, -1) != 0 {
        ffi::lua_getfield(l, -1, c"clock".as_ptr());
        ffi::lua_setfield(l, -3, c"clock".as_ptr());
    }
    ffi::lua_pop(l, 1);
}

unsafe fn set_function(l: *mut ffi::lua_State, name: &CStr, function: ffi::lua_CFunction) {
    ffi::lua_pushcfunction(l, function);
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn set_number(l: *mut ffi::lua_State, name: &CStr, value: f64) {
    ffi::lua_pushnumber(l, value);
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn set_string(l: *mut ffi::lua_State, name: &CStr, value: &CStr) {
    ffi::lua_pushstring(l, value.as_ptr());
    ffi::lua_setfield(l, -2, name.as_ptr());
}

/// Pushes the `server` table (also known as `redis`), its fields set in
/// Valkey's order.
unsafe fn push_server_table(l: *mut ffi::lua_State, kind: VmKind) {
    ffi::lua_newtable(l);
    set_function(l, c"call", server_call);
    set_function(l, c"pcall", server_pcall);
    set_log_api(l);
    set_version_api(l);
    set_function(l, c"setresp", server_setresp);
    set_function(l, c"sha1hex", server_sha1hex);
    set_function(l, c"error_reply", server_error_reply);
    set_function(l, c"status_reply", server_status_reply);
    set_function(l, c"set_repl", server_set_repl);
    set_number(l, c"REPL_NONE", 0.0);
    set_number(l, c"REPL_AOF", REPL_AOF as f64);
    set_number(l, c"REPL_SLAVE", REPL_REPLICA as f64);
    set_number(l, c"REPL_REPLICA", REPL_REPLICA as f64);
    set_number(l, c"REPL_ALL", REPL_ALL as f64);
    set_function(l, c"acl_check_cmd", server_acl_check_cmd);
    if kind == VmKind::Eval {
        set_function(l, c"breakpoint", server_breakpoint);
        set_function(l, c"debug", server_debug);
        set_function(l, c"replicate_commands", server_replicate_commands);
    }
}

/// Sets `log` and the `LOG_*` levels in the table at the top of the stack
/// (function libraries have them while they load, too).
///
/// # Safety
/// A table must be at the top, with room for two more values.
pub unsafe fn set_log_api(l: *mut ffi::lua_State) {
    set_function(l, c"log", server_log);
    set_number(l, c"LOG_DEBUG", 0.0);
    set_number(l, c"LOG_VERBOSE", 1.0);
    set_number(l, c"LOG_NOTICE", 2.0);
    set_number(l, c"LOG_WARNING", 3.0);
}

/// Sets the version fields in the table at the top of the stack: Valkey's,
/// and the Redis version it stays compatible with.
///
/// # Safety
/// A table must be at the top, with room for two more values.
pub unsafe fn set_version_api(l: *mut ffi::lua_State) {
    set_number(l, c"REDIS_VERSION_NUM", 0x0007_0204 as f64);
    set_string(l, c"REDIS_VERSION", c"7.2.4");
    set_number(l, c"VALKEY_VERSION_NUM", 0x0008_0001 as f64);
    set_string(l, c"VALKEY_VERSION", c"8.0.1");
    set_string(l, c"SERVER_NAME", c"valkey");
}

/// Replaces the table at the top of the stack by its protected proxy
/// (the same proxy for a table met twice), protecting what it holds.
/// `proxies` maps proxies to tables, `visited` tables to proxies, and
/// `env` is the environment every function found is given.
///
/// # Safety
/// Needs about 8 free stack slots per nesting level.
pub unsafe fn protect(l: *mut ffi::lua_State, proxies: c_int, visited: c_int, env: c_int) {
    ffi::lua_checkstack(l, 8);
    let table = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, table);
    ffi::lua_rawget(l, visited);
    if ffi::lua_isnil(l, -1) == 0 {
        ffi::lua_replace(l, table);
        return;
    }
    ffi::lua_pop(l, 1);
    ffi::lua_newtable(l);
    let proxy = ffi::lua_gettop(l);
    ffi::lua_newtable(l);
    ffi::lua_pushvalue(l, table);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    ffi::lua_pushcfunction(l, refuse_write);
    ffi::lua_setfield(l, -2, c"__newindex".as_ptr());
    ffi::lua_setmetatable(l, proxy);
    ffi::lua_pushvalue(l, table);
    ffi::lua_pushvalue(l, proxy);
    ffi::lua_rawset(l, visited);
    ffi::lua_pushvalue(l, proxy);
    ffi::lua_pushvalue(l, table);
    ffi::lua_rawset(l, proxies);
    protect_contents(l, table, proxies, visited, env);
    ffi::lua_replace(l, table);
}

/// Protects the tables a table holds (replacing each by its proxy) and
/// gives its functions the environment at `env`.
unsafe fn protect_contents(l: *mut ffi::lua_State, table: c_int, proxies: c_int, visited: c_int, env: c_int) {
    ffi::lua_checkstack(l, 8);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, table) != 0 {
        match ffi::lua_type(l, -1) {
            ffi::LUA_TTABLE => {
                protect(l, proxies, visited, env);
                // Replacing the value of an existing key is allowed while
                // traversing.
                ffi::lua_pushvalue(l, -2);
                ffi::lua_insert(l, -2);
                ffi::lua_rawset(l, table);
            }
            ffi::LUA_TFUNCTION => {
                ffi::lua_pushvalue(l, env);
                ffi::lua_setfenv(l, -2);
                ffi::lua_pop(l, 1);
            }
            _ => ffi::lua_pop(l, 1),
        }
    }
}

// ---------------------------------------------------------------------------
// The protection's functions
// ---------------------------------------------------------------------------

/// `__newindex` of every proxy.
unsafe extern "C-unwind" fn refuse_write(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_where(l, 1);
    ffi::lua_pushstring(l, READONLY_ERROR.as_ptr());
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

/// `__index` behind the globals: reading a global that does not exist.
unsafe extern "C-unwind" fn refuse_unknown_global(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 2 {
        raise_where(l, c"Wrong number of arguments to luaProtectedTableError")
    }
    if ffi::lua_isstring(l, -1) == 0 && ffi::lua_isnumber(l, -1) == 0 {
        raise_where(l, c"Second argument to luaProtectedTableError must be a string or number")
    }
    let name = ffi::lua_tolstring(l, -1, ptr::null_mut());
    ffi::luaL_where(l, 1);
    ffi::lua_pushstring(l, c"Script attempted to access nonexistent global variable '".as_ptr());
    ffi::lua_pushstring(l, name);
    ffi::lua_pushstring(l, c"'".as_ptr());
    ffi::lua_concat(l, 4);
    ffi::lua_error(l)
}

/// Gives the table at the top of the stack a metatable under which reading
/// a missing name fails as reading an unknown global does.
///
/// # Safety
/// A table must be at the top, with room for two more values.
pub unsafe fn set_unknown_name_error(l: *mut ffi::lua_State) {
    ffi::lua_newtable(l);
    ffi::lua_pushcfunction(l, refuse_unknown_global);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    ffi::lua_setmetatable(l, -2);
}

/// `luaL_error` with a fixed message: the caller's position, then `message`.
unsafe fn raise_where(l: *mut ffi::lua_State, message: &CStr) -> ! {
    ffi::luaL_where(l, 1);
    ffi::lua_pushstring(l, message.as_ptr());
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

/// Replaces the table at `index` by the table behind it when it is a
/// proxy (the proxy map is upvalue 1).
unsafe fn unwrap_proxy(l: *mut ffi::lua_State, index: c_int) {
    ffi::lua_pushvalue(l, index);
    ffi::lua_rawget(l, ffi::lua_upvalueindex(1));
    if ffi::lua_istable(l, -1) != 0 {
        ffi::lua_replace(l, index);
    } else {
        ffi::lua_pop(l, 1);
    }
}

unsafe fn is_proxy(l: *mut ffi::lua_State, index: c_int) -> bool {
    ffi::lua_pushvalue(l, index);
    ffi::lua_rawget(l, ffi::lua_upvalueindex(1));
    let found = ffi::lua_isnil(l, -1) == 0;
    ffi::lua_pop(l, 1);
    found
}

unsafe extern "C-unwind" fn next_through_proxies(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 2);
    unwrap_proxy(l, 1);
    if ffi::lua_next(l, 1) != 0 {
        2
    } else {
        ffi::lua_pushnil(l);
        1
    }
}

/// `pairs`: upvalue 1 is the `next` it returns (its own, as in Lua).
unsafe extern "C-unwind" fn pairs_through_proxies(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_pushvalue(l, 1);
    ffi::lua_pushnil(l);
    3
}

unsafe extern "C-unwind" fn rawget_through_proxies(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(l, 2);
    ffi::lua_settop(l, 2);
    unwrap_proxy(l, 1);
    ffi::lua_rawget(l, 1);
    1
}

unsafe extern "C-unwind" fn rawset_refusing_proxies(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(l, 2);
    ffi::luaL_checkany(l, 3);
    ffi::lua_settop(l, 3);
    if is_proxy(l, 1) {
        ffi::lua_pushstring(l, READONLY_ERROR.as_ptr());
        ffi::lua_error(l);
    }
    ffi::lua_rawset(l, 1);
    1
}

/// `getmetatable`: upvalues are the proxy map, the globals proxy and what
/// the globals' metatable looks like.
unsafe extern "C-unwind" fn getmetatable_through_proxies(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checkany(l, 1);
    if ffi::lua_rawequal(l, 1, ffi::lua_upvalueindex(2)) != 0 {
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(3));
        return 1;
    }
    if is_proxy(l, 1) {
        ffi::lua_pushnil(l);
        return 1;
    }
    if ffi::lua_getmetatable(l, 1) == 0 {
        ffi::lua_pushnil(l);
        return 1;
    }
    ffi::luaL_getmetafield_(l, 1, c"__metatable".as_ptr());
    1
}

unsafe extern "C-unwind" fn setmetatable_refusing_proxies(l: *mut ffi::lua_State) -> c_int {
    let given = ffi::lua_type(l, 2);
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    if given != ffi::LUA_TNIL && given != ffi::LUA_TTABLE {
        ffi::luaL_argerror(l, 2, c"nil or table expected".as_ptr());
    }
    if ffi::luaL_getmetafield_(l, 1, c"__metatable".as_ptr()) != 0 {
        raise_where(l, c"cannot change a protected metatable");
    }
    ffi::lua_settop(l, 2);
    if is_proxy(l, 1) {
        ffi::lua_pushstring(l, READONLY_ERROR.as_ptr());
        ffi::lua_error(l);
    }
    ffi::lua_setmetatable(l, 1);
    1
}

/// Valkey's `pcall`: an error raised as a table with an `err` field (what
/// `server.call` raises) comes back as that message.
unsafe extern "C-unwind" fn pcall_returning_messages(l: *mut ffi::lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_insert(l, 1);
    if ffi::lua_pcall(l, argc - 1, ffi::LUA_MULTRET, 0) != 0 {
        ffi::lua_remove(l, 1);
        if ffi::lua_istable(l, -1) != 0 {
            ffi::lua_getfield(l, -1, c"err".as_ptr());
            if ffi::lua_isstring(l, -1) != 0 {
                ffi::lua_replace(l, -2);
            }
        }
        ffi::lua_pushboolean(l, 0);
        ffi::lua_insert(l, 1);
    }
    ffi::lua_gettop(l)
}

// ---------------------------------------------------------------------------
// Loading chunks as text only
// ---------------------------------------------------------------------------

/// Lua bytecode starts with this byte; Valkey's Lua parses such a chunk as
/// text (and fails), so ferrokey puts a blank in front of it to have the
/// stock loader do the same.
const BYTECODE_MARK: u8 = 0x1b;

struct TextChunk {
    data: *const c_char,
    len: usize,
    blank_first: bool,
    given: bool,
}

unsafe extern "C-unwind" fn read_text_chunk(
    _l: *mut ffi::lua_State,
    data: *mut c_void,
    size: *mut usize,
) -> *const c_char {
    let chunk = &mut *(data as *mut TextChunk);
    if chunk.blank_first {
        chunk.blank_first = false;
        *size = 1;
        return c" ".as_ptr();
    }
    if chunk.given {
        *size = 0;
        return ptr::null();
    }
    chunk.given = true;
    *size = chunk.len;
    chunk.data
}

/// `luaL_loadbuffer`, but always compiling as text.
///
/// # Safety
/// `chunk_name` must be a valid C string; the function or an error message
/// is pushed.
pub unsafe fn load_text(l: *mut ffi::lua_State, code: &[u8], chunk_name: *const c_char) -> c_int {
    let mut chunk = TextChunk {
        data: code.as_ptr() as *const c_char,
        len: code.len(),
        blank_first: code.first() == Some(&BYTECODE_MARK),
        given: false,
    };
    ffi::lua_load(l, read_text_chunk, &mut chunk as *mut TextChunk as *mut c_void, chunk_name)
}

/// What `load` and `loadstring` return: the function, or nil and the message.
unsafe fn loaded(l: *mut ffi::lua_State, status: c_int) -> c_int {
    if status == 0 {
        1
    } else {
        ffi::lua_pushnil(l);
        ffi::lua_insert(l, -2);
        2
    }
}

unsafe extern "C-unwind" fn loadstring_as_text(l: *mut ffi::lua_State) -> c_int {
    let mut len = 0usize;
    let code = ffi::luaL_checklstring(l, 1, &mut len);
    let chunk_name = ffi::luaL_optlstring(l, 2, code, ptr::null_mut());
    let status = load_text(l, std::slice::from_raw_parts(code as *const u8, len), chunk_name);
    loaded(l, status)
}

struct FunctionReader {
    started: bool,
    /// The first piece starts like bytecode: a blank was given in front of
    /// it, the piece itself (kept in stack slot 3) comes next.
    piece_pending: bool,
}

/// `load`'s reader: calls the function given to `load` for each piece.
unsafe extern "C-unwind" fn read_from_function(
    l: *mut ffi::lua_State,
    data: *mut c_void,
    size: *mut usize,
) -> *const c_char {
    let reader = &mut *(data as *mut FunctionReader);
    if reader.piece_pending {
        reader.piece_pending = false;
        return ffi::lua_tolstring(l, 3, size);
    }
    ffi::luaL_checkstack(l, 2, c"too many nested functions".as_ptr());
    ffi::lua_pushvalue(l, 1);
    ffi::lua_call(l, 0, 1);
    if ffi::lua_isnil(l, -1) != 0 {
        *size = 0;
        return ptr::null();
    }
    if ffi::lua_isstring(l, -1) == 0 {
        raise_where(l, c"reader function must return a string");
    }
    ffi::lua_replace(l, 3);
    let piece = ffi::lua_tolstring(l, 3, size);
    let first = !reader.started;
    reader.started = true;
    if first && *size > 0 && *piece as u8 == BYTECODE_MARK {
        reader.piece_pending = true;
        *size = 1;
        return c" ".as_ptr();
    }
    piece
}

unsafe extern "C-unwind" fn load_as_text(l: *mut ffi::lua_State) -> c_int {
    let chunk_name = ffi::luaL_optlstring(l, 2, c"=(load)".as_ptr(), ptr::null_mut());
    ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
    ffi::lua_settop(l, 3);
    let mut reader = FunctionReader { started: false, piece_pending: false };
    let status = ffi::lua_load(l, read_from_function, &mut reader as *mut FunctionReader as *mut c_void, chunk_name);
    loaded(l, status)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Pushes Valkey's error table, `{err = "CODE message"}`. A message given
/// as "-CODE message" keeps its code; any other gets "ERR".
///
/// # Safety
/// `l` must have room for three more values.
pub unsafe fn push_error_table(l: *mut ffi::lua_State, message: &[u8]) {
    match message.strip_prefix(b"-") {
        Some(coded) => push_coded_error(l, coded),
        None => push_error_parts(l, b"ERR", until_nul(message)),
    }
}

/// [`push_error_table`] for a message whose first word is its code (what
/// follows the dash of an error reply). Like Valkey, the message is read
/// as a C string; without a space the whole of it is the text, under ERR.
///
/// # Safety
/// `l` must have room for three more values.
pub unsafe fn push_coded_error(l: *mut ffi::lua_State, coded: &[u8]) {
    let coded = until_nul(coded);
    match coded.iter().position(|&b| b == b' ') {
        Some(space) => push_error_parts(l, &coded[..space], &coded[space + 1..]),
        None => push_error_parts(l, b"ERR", coded),
    }
}

unsafe fn push_error_parts(l: *mut ffi::lua_State, code: &[u8], text: &[u8]) {
    let is_break = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = text.iter().position(|b| !is_break(b)).unwrap_or(text.len());
    let end = text.iter().rposition(|b| !is_break(b)).map_or(start, |p| p + 1);
    ffi::lua_newtable(l);
    ffi::lua_pushstring(l, c"err".as_ptr());
    push_bytes(l, code);
    push_bytes(l, b" ");
    push_bytes(l, &text[start..end]);
    ffi::lua_concat(l, 3);
    ffi::lua_settable(l, -3);
}

/// Marks the error table at the top: the error was already counted in the
/// error statistics (it came from a command).
pub(crate) unsafe fn mark_counted(l: *mut ffi::lua_State) {
    ffi::lua_pushstring(l, c"ignore_error_stats_update".as_ptr());
    ffi::lua_pushboolean(l, 1);
    ffi::lua_settable(l, -3);
}

/// The message handler of every run: turns what was raised into an error
/// table and notes where it was raised (the nearest Lua function).
unsafe extern "C-unwind" fn error_handler(l: *mut ffi::lua_State) -> c_int {
    let mut ar: ffi::lua_Debug = std::mem::zeroed();
    let mut found = ffi::lua_getstack(l, 1, &mut ar) != 0;
    if found {
        ffi::lua_getinfo(l, c"nSl".as_ptr(), &mut ar);
        if !ar.what.is_null() && CStr::from_ptr(ar.what).to_bytes() == b"C" {
            found = ffi::lua_getstack(l, 2, &mut ar) != 0;
            if found {
                ffi::lua_getinfo(l, c"nSl".as_ptr(), &mut ar);
            }
        }
    }
    ffi::lua_settop(l, 1);
    if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
        ffi::lua_newtable(l);
        ffi::lua_pushstring(l, c"ERR ".as_ptr());
        push_tostring(l, 1);
        ffi::lua_concat(l, 2);
        ffi::lua_setfield(l, -2, c"err".as_ptr());
        ffi::lua_replace(l, 1);
    }
    if found {
        ffi::lua_pushstring(l, ar.source);
        ffi::lua_setfield(l, 1, c"source".as_ptr());
        ffi::lua_pushnumber(l, ar.currentline as f64);
        ffi::lua_setfield(l, 1, c"line".as_ptr());
    }
    1
}

/// Pushes what Lua's `tostring` makes of the value at `index`.
unsafe fn push_tostring(l: *mut ffi::lua_State, index: c_int) {
    if ffi::luaL_callmeta(l, index, c"__tostring".as_ptr()) != 0 {
        return;
    }
    match ffi::lua_type(l, index) {
        ffi::LUA_TNUMBER | ffi::LUA_TSTRING => {
            ffi::lua_pushvalue(l, index);
            ffi::lua_tolstring(l, -1, ptr::null_mut());
        }
        ffi::LUA_TBOOLEAN => {
            let text = if ffi::lua_toboolean(l, index) != 0 { c"true" } else { c"false" };
            ffi::lua_pushstring(l, text.as_ptr());
        }
        ffi::LUA_TNIL => {
            ffi::lua_pushstring(l, c"nil".as_ptr());
        }
        kind => {
            ffi::lua_pushfstring(l, c"%s: %p".as_ptr(), ffi::lua_typename(l, kind), ffi::lua_topointer(l, index));
        }
    }
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

pub(crate) unsafe fn push_bytes(l: *mut ffi::lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring_(l, bytes.as_ptr() as *const c_char, bytes.len());
}

/// The bytes of the string (or number, converted in place) at `index`.
/// The slice borrows from Lua: the value must stay on the stack.
pub(crate) unsafe fn string_at<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let text = ffi::lua_tolstring(l, index, &mut len);
    if text.is_null() {
        None
    } else {
        Some(std::slice::from_raw_parts(text as *const u8, len))
    }
}

thread_local! {
    /// A Rust panic caught inside a C function, resumed once the Lua call
    /// in progress has returned to Rust.
    static CAUGHT_PANIC: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Runs `body` catching a panic, which is kept to be resumed later (a
/// panic must not unwind through Lua's C frames).
fn catching<R>(body: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => Some(value),
        Err(payload) => {
            CAUGHT_PANIC.with(|p| *p.borrow_mut() = Some(payload));
            None
        }
    }
}

fn resume_caught_panic() {
    if let Some(payload) = CAUGHT_PANIC.with(|p| p.borrow_mut().take()) {
        std::panic::resume_unwind(payload);
    }
}

/// The C function behind protected calls: its last argument points at the
/// Rust job to run with the others.
unsafe extern "C-unwind" fn trampoline(l: *mut ffi::lua_State) -> c_int {
    let job = ffi::lua_touserdata(l, -1) as *mut &mut dyn FnMut(*mut ffi::lua_State) -> c_int;
    ffi::lua_pop(l, 1);
    match catching(|| (*job)(l)) {
        Some(results) => results,
        None => raise_error_table(l, INTERNAL_ERROR),
    }
}

unsafe fn protected_call(
    l: *mut ffi::lua_State,
    trampoline_ref: c_int,
    nargs: c_int,
    nresults: c_int,
    mut job: &mut dyn FnMut(*mut ffi::lua_State) -> c_int,
) -> Result<(), Vec<u8>> {
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, trampoline_ref as _);
    ffi::lua_insert(l, -(nargs + 1));
    ffi::lua_pushlightuserdata(l, &mut job as *mut &mut dyn FnMut(*mut ffi::lua_State) -> c_int as *mut c_void);
    let status = ffi::lua_pcall(l, nargs + 1, nresults, 0);
    resume_caught_panic();
    if status == 0 {
        return Ok(());
    }
    let message = string_at(l, -1).map(<[u8]>::to_vec).unwrap_or_else(|| b"unknown error".to_vec());
    ffi::lua_pop(l, 1);
    Err(message)
}

// ---------------------------------------------------------------------------
// The run in progress
// ---------------------------------------------------------------------------

/// Which way a compiled function is called.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Invocation {
    /// EVAL: the keys and arguments are the globals KEYS and ARGV.
    Eval,
    /// FCALL: they are the function's two arguments.
    Function,
}

/// One script or function call.
pub struct ScriptCall<'a> {
    pub function: FunctionRef,
    pub invocation: Invocation,
    /// The script's SHA1 or the function's name: error messages name it,
    /// and SCRIPT KILL / FUNCTION STATS see it.
    pub name: &'a str,
    pub keys: &'a [&'a [u8]],
    pub args: &'a [&'a [u8]],
    /// See [`check_run_allowed`].
    pub rules: RunRules,
    /// The whole command that started the run, as its client sent it
    /// (FUNCTION STATS shows it while a function is busy).
    pub command: &'a [&'a [u8]],
}

/// What the script's API functions reach while it runs.
struct RunContext {
    srv: *mut ServerState,
    /// The client the script's commands run as: the caller's database at
    /// first, RESP2 until `server.setresp(3)`, never blocking.
    client: Client,
    /// Where the commands' replies are written before being read back.
    reply: Reply,
    now_ms: i64,
    rules: RunRules,
    busy: RunningScript,
    /// The arguments of the command being called, end to end, and where
    /// each one ends.
    arg_bytes: Vec<u8>,
    arg_ends: Vec<usize>,
    /// Where the script's writes are propagated (`server.set_repl`).
    repl: c_int,
    /// The caller's reply buffer, which receives the script's result.
    out: *mut Reply,
    /// The status of the script's call (0: it returned).
    status: c_int,
}

thread_local! {
    static ACTIVE_RUN: Cell<*mut RunContext> = const { Cell::new(ptr::null_mut()) };
}

/// Makes a run context reachable for the duration of a run (restoring
/// whatever was reachable before, when dropped).
struct ActiveRun {
    previous: *mut RunContext,
}

impl ActiveRun {
    fn enter(run: &mut RunContext) -> ActiveRun {
        ActiveRun { previous: ACTIVE_RUN.with(|a| a.replace(run as *mut RunContext)) }
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        ACTIVE_RUN.with(|a| a.set(self.previous));
    }
}

/// The run in progress. Callers keep the reference only while they do
/// not call back into Lua code.
unsafe fn active_run<'a>() -> Option<&'a mut RunContext> {
    ACTIVE_RUN.with(|a| a.get().as_mut())
}

/// Whether a script or function is running: a command dispatched now is
/// one it called (MONITOR shows it as from `lua`).
pub fn script_is_running() -> bool {
    ACTIVE_RUN.with(|a| !a.get().is_null())
}

/// The client whose script or function is running, if one is: WAITAOF
/// called by a script looks at that client's writes, as in Valkey.
pub fn script_caller_id() -> Option<u64> {
    let run = ACTIVE_RUN.with(|a| a.get());
    // SAFETY: a non-null pointer is the run in progress, alive until it
    // is unset. Only the caller's id is read, through the pointer, without
    // making a reference that would overlap the script client's borrow.
    (!run.is_null()).then(|| unsafe { (*run).busy.caller_id })
}

/// Runs a compiled script or function for `ctx`'s client and writes its
/// result (or error) as the reply.
pub fn run(vm: &LuaVm, ctx: &mut Ctx, call: &ScriptCall) -> CmdResult {
    let hooked = ctx.srv.config.busy_reply_threshold > 0;
    let mut client = Client::new(vm.script_client.clone());
    client.select(ctx.client.db);
    client.no_blocking = true;
    let out_mark = ctx.out.buf.len();
    let mut run = RunContext {
        srv: &mut *ctx.srv as *mut ServerState,
        client,
        reply: Reply { buf: Vec::new(), resp3: false, errors: 0 },
        now_ms: ctx.now_ms,
        rules: call.rules,
        busy: RunningScript::new(
            ctx.client.info.id,
            call.invocation == Invocation::Function,
            call.name.to_string(),
            // Only FUNCTION STATS shows it: EVAL does not pay for the copy.
            if call.invocation == Invocation::Function {
                call.command.iter().map(|a| a.to_vec()).collect()
            } else {
                Vec::new()
            },
        ),
        arg_bytes: Vec::new(),
        arg_ends: Vec::new(),
        repl: REPL_ALL,
        out: &mut *ctx.out as *mut Reply,
        status: 0,
    };
    let finished = {
        let _active = ActiveRun::enter(&mut run);
        // SAFETY: the stack is balanced on every path below; the context
        // stays valid while it is active.
        unsafe { run_on_stack(vm, call, hooked) }
    };
    resume_caught_panic();
    vm.runs.set(vm.runs.get() + 1);
    if vm.runs.get() >= GC_PERIOD {
        vm.runs.set(0);
        // SAFETY: a collection step in a protected call.
        let _ = unsafe {
            vm.protected(0, 0, &mut |l| {
                ffi::lua_gc(l, ffi::LUA_GCSTEP, GC_PERIOD as c_int);
                0
            })
        };
    }
    if let Err(message) = finished {
        // Something outside the script failed (a metamethod run while its
        // result was read): nothing of the half-written reply is kept.
        ctx.out.buf.truncate(out_mark);
        let mut text = b"ERR Error running script ".to_vec();
        text.extend_from_slice(call.name.as_bytes());
        text.extend_from_slice(b", ");
        text.extend_from_slice(&message[..message.len().min(100)]);
        count_error(ctx.srv, &text);
        ctx.out.error_bytes(&text);
    }
    Ok(())
}

/// The steps of a run on the Lua stack: prepare the call, call the script
/// from the top of the stack, then read what it left.
unsafe fn run_on_stack(vm: &LuaVm, call: &ScriptCall, hooked: bool) -> Result<(), Vec<u8>> {
    let l = vm.state;
    ffi::lua_checkstack(l, 8);
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, vm.refs.error_handler as _);
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, call.function.0 as _);
    if hooked {
        ffi::lua_sethook(l, Some(count_hook), ffi::LUA_MASKCOUNT, HOOK_INSTRUCTIONS);
    }
    let globals_ref = vm.refs.globals;
    let (nargs, handler_index) = match call.invocation {
        Invocation::Eval => (0, -2),
        Invocation::Function => (2, -4),
    };
    let prepared = vm.protected(0, nargs, &mut |l| {
        match call.invocation {
            Invocation::Eval => {
                ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, globals_ref as _);
                ffi::lua_pushstring(l, c"KEYS".as_ptr());
                push_array(l, call.keys);
                ffi::lua_rawset(l, -3);
                ffi::lua_pushstring(l, c"ARGV".as_ptr());
                push_array(l, call.args);
                ffi::lua_rawset(l, -3);
                ffi::lua_pop(l, 1);
            }
            Invocation::Function => {
                push_array(l, call.keys);
                push_array(l, call.args);
            }
        }
        nargs
    });
    let outcome = match prepared {
        Ok(()) => {
            let status = ffi::lua_pcall(l, nargs, 1, handler_index);
            if let Some(run) = active_run() {
                run.status = status;
            }
            // [handler, result or error] become the arguments of the step
            // that reads them, so Lua's stack limits apply to the result
            // just as they do in Valkey.
            vm.protected(2, 0, &mut |l| {
                write_outcome(l);
                0
            })
        }
        Err(message) => {
            ffi::lua_pop(l, 2);
            Err(message)
        }
    };
    if hooked {
        ffi::lua_sethook(l, None, 0, 0);
    }
    outcome
}

unsafe fn push_array(l: *mut ffi::lua_State, items: &[&[u8]]) {
    ffi::lua_newtable(l);
    for (i, item) in items.iter().enumerate() {
        push_bytes(l, item);
        ffi::lua_rawseti(l, -2, (i + 1) as _);
    }
}

/// Writes the script's result, or its error, to the caller (inside the
/// protected step; stack: handler, result).
unsafe fn write_outcome(l: *mut ffi::lua_State) {
    let Some(run) = active_run() else { return };
    let srv = run.srv;
    let out = &mut *run.out;
    if run.status == 0 {
        let script_resp3 = run.reply.resp3;
        convert::write_value(l, out, script_resp3, &mut |message| count_error(&mut *srv, message));
        return;
    }
    let text = if ffi::lua_istable(l, -1) == 0 {
        let message = if ffi::lua_isstring(l, -1) != 0 {
            until_nul(string_at(l, -1).unwrap_or_default())
        } else {
            b"execution failure".as_slice()
        };
        let mut text = b"ERR Error running script ".to_vec();
        text.extend_from_slice(run.busy.name.as_bytes());
        text.extend_from_slice(b", ");
        text.extend_from_slice(&message[..message.len().min(100)]);
        // The message is formatted: trailing line breaks go.
        while text.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            text.pop();
        }
        count_error(&mut *srv, &text);
        text
    } else {
        let info = convert::error_info(l);
        // Valkey cannot tell a table without `err`; it says something.
        let mut text = info.message.unwrap_or_else(|| b"ERR unknown error".to_vec());
        if let (Some(source), Some(line)) = (info.source, info.line) {
            text.extend_from_slice(b" script: ");
            text.extend_from_slice(run.busy.name.as_bytes());
            text.extend_from_slice(b", on ");
            text.extend_from_slice(&source);
            text.push(b':');
            text.extend_from_slice(&line);
            text.push(b'.');
        }
        if !info.counted {
            count_error(&mut *srv, &text);
        }
        text
    };
    out.error_bytes(&text);
}

/// Counts an error reply in the statistics (total and by code).
fn count_error(srv: &mut ServerState, message: &[u8]) {
    srv.stats.total_error_replies += 1;
    stats::record_error_reply(&String::from_utf8_lossy(message));
}

/// The instruction hook: lets the busy poller serve other clients, and
/// ends the script when SCRIPT KILL or FUNCTION KILL asked for it.
unsafe extern "C-unwind" fn count_hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    let killed = catching(|| match active_run() {
        Some(run) => {
            crate::busy::while_busy(&mut *run.srv, &mut run.busy);
            run.busy.kill_requested
        }
        None => false,
    });
    if killed != Some(false) {
        if killed.is_some() {
            crate::log_notice!("Lua script killed by user with SCRIPT KILL.");
        }
        // From now on every line raises again, so that a pcall in the
        // script cannot swallow the kill.
        ffi::lua_sethook(l, Some(count_hook), ffi::LUA_MASKLINE, 0);
        push_error_table(l, KILLED_ERROR);
        ffi::lua_error(l);
    }
}

// ---------------------------------------------------------------------------
// server.call and server.pcall
// ---------------------------------------------------------------------------

/// What a C function left at the top of the stack.
#[derive(PartialEq, Eq)]
enum Pushed {
    Value,
    Error,
}

unsafe extern "C-unwind" fn server_call(l: *mut ffi::lua_State) -> c_int {
    match catching(|| call_from_script(l)) {
        Some(Pushed::Value) => 1,
        Some(Pushed::Error) => ffi::lua_error(l),
        None => raise_error_table(l, INTERNAL_ERROR),
    }
}

unsafe extern "C-unwind" fn server_pcall(l: *mut ffi::lua_State) -> c_int {
    match catching(|| call_from_script(l)) {
        Some(_) => 1,
        None => raise_error_table(l, INTERNAL_ERROR),
    }
}

/// What a script sees when ferrokey failed inside one of its calls (the
/// failure itself is resumed once the script is over).
const INTERNAL_ERROR: &[u8] = b"internal error in a Lua callback";

/// Runs the command the arguments on the stack name, as Valkey's
/// `scriptCall` does, and pushes its reply as a Lua value.
unsafe fn call_from_script(l: *mut ffi::lua_State) -> Pushed {
    let argc = ffi::lua_gettop(l);
    let Some(run) = active_run() else {
        push_error_table(l, b"server.call can only be used while a script runs");
        return Pushed::Error;
    };
    if argc == 0 {
        push_error_table(l, b"Please specify at least one argument for this call");
        return Pushed::Error;
    }
    let complete = collect_arguments(l, argc, &mut run.arg_bytes, &mut run.arg_ends);
    ffi::lua_pop(l, argc);
    if !complete {
        push_error_table(l, b"Command arguments must be strings or integers");
        return Pushed::Error;
    }
    let mut start = 0;
    let args: Vec<&[u8]> = run
        .arg_ends
        .iter()
        .map(|&end| {
            let arg = &run.arg_bytes[start..end];
            start = end;
            arg
        })
        .collect();
    let st = &mut *run.srv;
    let spec = match check_command(st, run.rules, run.busy.wrote, &args) {
        Ok(spec) => spec,
        Err(refusal) => {
            if let Some(spec) = refusal.spec {
                stats::record_rejected(spec.name.as_str());
            }
            if refusal.coded {
                count_error(st, refusal.message.as_bytes());
                push_coded_error(l, refusal.message.as_bytes());
            } else {
                count_error(st, format!("ERR {}", refusal.message).as_bytes());
                push_error_parts(l, b"ERR", refusal.message.as_bytes());
            }
            mark_counted(l);
            return Pushed::Error;
        }
    };
    if spec.has(flags::WRITE) {
        run.busy.wrote = true;
    }
    run.reply.buf.clear();
    // A script that turned propagation to the AOF off writes without
    // journalling (ferrokey has no replicas to propagate to).
    let journalling = st.effects.enabled;
    st.effects.enabled = journalling && run.repl & REPL_AOF != 0;
    crate::connection::call_replying(st, &mut run.client, &mut run.reply, &args, spec, run.now_ms);
    st.effects.enabled = journalling;
    drop(args);
    let failed = run.reply.buf.first() == Some(&b'-');
    convert::push_reply(l, &run.reply.buf);
    run.reply.buf.clear();
    if failed {
        Pushed::Error
    } else {
        Pushed::Value
    }
}

/// Why a script's command was refused before it ran.
struct Refusal {
    spec: Option<&'static CommandSpec>,
    message: &'static str,
    /// The message carries its own code ("MISCONF ...").
    coded: bool,
}

fn refusal(spec: Option<&'static CommandSpec>, message: &'static str) -> Refusal {
    Refusal { spec, message, coded: false }
}

/// The commands besides write commands that Valkey marks as possibly
/// replicating (scripts count them as writes). COMMAND INFO hides that
/// flag, so the command table cannot carry it.
const MAY_REPLICATE: [&str; 3] = ["pfcount", "publish", "spublish"];

/// Valkey's checks of a command called from a script, in its order.
fn check_command(
    st: &ServerState,
    rules: RunRules,
    wrote: bool,
    args: &[&[u8]],
) -> Result<&'static CommandSpec, Refusal> {
    let Ok(spec) = command::lookup(command::table(), args) else {
        return Err(refusal(None, "Unknown command called from script"));
    };
    if command::check_arity(spec, args.len()).is_err() || spec.handler.is_none() {
        return Err(refusal(Some(spec), "Wrong number of args calling command from script"));
    }
    if spec.has(flags::NOSCRIPT) {
        return Err(refusal(Some(spec), "This Redis command is not allowed from script"));
    }
    if rules.read_only
        && (spec.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0 || MAY_REPLICATE.contains(&spec.name.as_str()))
    {
        return Err(refusal(Some(spec), "Write commands are not allowed from read-only scripts."));
    }
    // Once the script has written, refusing a later write would leave it
    // half done: the checks on the server's state apply to its first one.
    if spec.has(flags::WRITE) && !wrote {
        if let Some(refused) = crate::persistence::refusal(st, &spec.name, flags::WRITE) {
            return Err(Refusal { spec: Some(spec), message: refused, coded: true });
        }
    }
    if !rules.allow_oom && !wrote {
        if let Some(refused) = crate::evict::oom_refusal(st, spec.flags) {
            return Err(Refusal { spec: Some(spec), message: refused, coded: true });
        }
    }
    Ok(spec)
}

/// Reads the `argc` values on the stack as command arguments: strings as
/// they are, numbers as Valkey prints them. Returns false at the first
/// value of another type.
unsafe fn collect_arguments(l: *mut ffi::lua_State, argc: c_int, bytes: &mut Vec<u8>, ends: &mut Vec<usize>) -> bool {
    bytes.clear();
    ends.clear();
    for index in 1..=argc {
        if ffi::lua_type(l, index) == ffi::LUA_TNUMBER {
            write_number_argument(ffi::lua_tonumber(l, index), bytes);
        } else {
            match string_at(l, index) {
                Some(text) => bytes.extend_from_slice(text),
                None => return false,
            }
        }
        ends.push(bytes.len());
    }
    true
}

/// A Lua number as a command argument: an integer when it is one (within
/// ±2^62), else the shortest text that reads back the same.
fn write_number_argument(number: f64, into: &mut Vec<u8>) {
    if let Some(integer) = crate::double::exact_integer(number) {
        into.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes());
    } else if number.is_nan() {
        into.extend_from_slice(if number.is_sign_negative() { b"-nan" } else { b"nan" });
    } else {
        into.extend_from_slice(crate::double::format(number).as_str().as_bytes());
    }
}

// ---------------------------------------------------------------------------
// The rest of the server.* API
// ---------------------------------------------------------------------------

/// Raises Valkey's error table for `message` (see [`push_error_table`]).
///
/// # Safety
/// Nothing owning memory may be alive in the calling Rust frames.
pub unsafe fn raise_error_table(l: *mut ffi::lua_State, message: &[u8]) -> ! {
    push_error_table(l, message);
    ffi::lua_error(l)
}

unsafe extern "C-unwind" fn server_log(l: *mut ffi::lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    if argc < 2 {
        raise_error_table(l, b"server.log() requires two arguments or more.");
    }
    if ffi::lua_isnumber(l, -argc) == 0 {
        raise_error_table(l, b"First argument must be a number (log level).");
    }
    let level = ccast::to_i32(ffi::lua_tonumber(l, -argc));
    let level = match level {
        0 => crate::log::Level::Debug,
        1 => crate::log::Level::Verbose,
        2 => crate::log::Level::Notice,
        3 => crate::log::Level::Warning,
        _ => raise_error_table(l, b"Invalid log level."),
    };
    if !crate::log::enabled(level) {
        return 0;
    }
    catching(|| {
        let mut line = Vec::new();
        for j in 1..argc {
            if let Some(text) = string_at(l, -argc + j) {
                if j != 1 {
                    line.push(b' ');
                }
                line.extend_from_slice(text);
            }
        }
        crate::log::write(level, &String::from_utf8_lossy(&line));
    });
    0
}

unsafe extern "C-unwind" fn server_setresp(l: *mut ffi::lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    if argc != 1 {
        raise_error_table(l, b"server.setresp() requires one argument.");
    }
    let resp = ccast::to_i32(ffi::lua_tonumber(l, -argc));
    if resp != 2 && resp != 3 {
        raise_error_table(l, b"RESP version must be 2 or 3.");
    }
    if let Some(run) = active_run() {
        run.reply.resp3 = resp == 3;
        run.client.resp3 = resp == 3;
    }
    0
}

/// `server.set_repl`'s flags: propagate to the AOF, to replicas.
const REPL_AOF: c_int = 1;
const REPL_REPLICA: c_int = 2;
const REPL_ALL: c_int = REPL_AOF | REPL_REPLICA;

unsafe extern "C-unwind" fn server_set_repl(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        raise_error_table(l, b"server.set_repl() requires one argument.");
    }
    let flags = ccast::to_i32(ffi::lua_tonumber(l, -1));
    if flags & !REPL_ALL != 0 {
        raise_error_table(l, b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.");
    }
    if let Some(run) = active_run() {
        run.repl = flags;
    }
    0
}

unsafe extern "C-unwind" fn server_sha1hex(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        raise_error_table(l, b"wrong number of arguments");
    }
    let digest = sha1_hex(string_at(l, 1).unwrap_or_default());
    push_bytes(l, &digest);
    1
}

/// The lower-case hex SHA1 of `data`, as script names are.
pub fn sha1_hex(data: &[u8]) -> [u8; 40] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = sha1_smol::Sha1::from(data).digest().bytes();
    let mut text = [0u8; 40];
    for (i, byte) in hash.iter().enumerate() {
        text[2 * i] = HEX[(byte >> 4) as usize];
        text[2 * i + 1] = HEX[(byte & 15) as usize];
    }
    text
}

unsafe extern "C-unwind" fn server_error_reply(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
        push_error_table(l, b"wrong number or type of arguments");
        return 1;
    }
    // Valkey puts a dash in front when there is none: the first word of
    // the message becomes its code either way.
    let message = until_nul(string_at(l, -1).unwrap_or_default());
    push_coded_error(l, message.strip_prefix(b"-").unwrap_or(message));
    1
}

unsafe extern "C-unwind" fn server_status_reply(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
        push_error_table(l, b"wrong number or type of arguments");
        return 1;
    }
    ffi::lua_newtable(l);
    ffi::lua_pushstring(l, c"ok".as_ptr());
    ffi::lua_pushvalue(l, -3);
    ffi::lua_settable(l, -3);
    1
}

/// `server.acl_check_cmd`: ferrokey has only the default user, who may run
/// everything, so any known command is allowed.
unsafe extern "C-unwind" fn server_acl_check_cmd(l: *mut ffi::lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    if argc == 0 {
        raise_error_table(l, b"Please specify at least one argument for this call");
    }
    let known = catching(|| {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        if !collect_arguments(l, argc, &mut bytes, &mut ends) {
            return None;
        }
        let mut start = 0;
        let args: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let arg = &bytes[start..end];
                start = end;
                arg
            })
            .collect();
        Some(command::lookup(command::table(), &args).is_ok())
    });
    ffi::lua_pop(l, argc);
    match known {
        None => raise_error_table(l, INTERNAL_ERROR),
        Some(None) => raise_error_table(l, b"Command arguments must be strings or integers"),
        Some(Some(false)) => raise_error_table(l, b"Invalid command passed to server.acl_check_cmd()"),
        Some(Some(true)) => ffi::lua_pushboolean(l, 1),
    }
    1
}

/// `server.breakpoint`: false, as without an active debugging session.
unsafe extern "C-unwind" fn server_breakpoint(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushboolean(l, 0);
    1
}

/// `server.debug`: logs only into a debugging session, so nothing here.
unsafe extern "C-unwind" fn server_debug(_l: *mut ffi::lua_State) -> c_int {
    0
}

/// `server.replicate_commands`: scripts always replicate their effects.
unsafe extern "C-unwind" fn server_replicate_commands(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushboolean(l, 1);
    1
}

// ---------------------------------------------------------------------------
// math.random
// ---------------------------------------------------------------------------

/// Valkey's `rand48`: the same sequence for the same seed on every
/// platform. One generator serves every script, as in Valkey.
struct Rand48 {
    x: [u32; 3],
}

const RAND48_MAX: i32 = i32::MAX;

impl Rand48 {
    const SEED_START: [u32; 3] = [0x330E, 0xABCD, 0x1234];
    const A: [u32; 3] = [0xE66D, 0xDEEC, 0x5];
    const C: u32 = 0xB;

    fn seed(&mut self, seed: i32) {
        let seed = seed as u32;
        self.x = [Self::SEED_START[0], seed & 0xFFFF, (seed >> 16) & 0xFFFF];
    }

    /// One step of the 48-bit linear congruential generator, kept in three
    /// 16-bit words.
    fn step(&mut self) {
        let low = |v: u32| v & 0xFFFF;
        let mul = |a: u32, b: u32| {
            let product = a.wrapping_mul(b);
            [low(product), low(product >> 16)]
        };
        let carry = |a: u32, b: u32| (a.wrapping_add(b) > 0xFFFF) as u32;
        let [a0, a1, a2] = Self::A;
        let [x0, x1, x2] = self.x;
        let mut p = mul(a0, x0);
        let carry0 = carry(p[0], Self::C);
        p[0] = low(p[0].wrapping_add(Self::C));
        let carry1 = carry(p[1], carry0);
        p[1] = low(p[1].wrapping_add(carry0));
        let q = mul(a0, x1);
        let carry0 = carry(p[1], q[0]);
        p[1] = low(p[1].wrapping_add(q[0]));
        let r = mul(a1, x0);
        let high = carry0
            .wrapping_add(carry1)
            .wrapping_add(carry(p[1], r[0]))
            .wrapping_add(q[1])
            .wrapping_add(r[1])
            .wrapping_add(a0.wrapping_mul(x2))
            .wrapping_add(a1.wrapping_mul(x1))
            .wrapping_add(a2.wrapping_mul(x0));
        self.x = [low(p[0]), low(p[1].wrapping_add(r[0])), low(high)];
    }

    fn next(&mut self) -> i32 {
        self.step();
        ((self.x[2] << 15) + (self.x[1] >> 1)) as i32
    }
}

thread_local! {
    static RANDOM: RefCell<Rand48> = const { RefCell::new(Rand48 { x: Rand48::SEED_START }) };
}

unsafe extern "C-unwind" fn math_random(l: *mut ffi::lua_State) -> c_int {
    let r = RANDOM.with(|g| g.borrow_mut().next()) % RAND48_MAX;
    let r = r as f64 / RAND48_MAX as f64;
    match ffi::lua_gettop(l) {
        0 => ffi::lua_pushnumber(l, r),
        1 => {
            let upper = ffi::luaL_checkinteger(l, 1) as i32;
            if upper < 1 {
                ffi::luaL_argerror(l, 1, c"interval is empty".as_ptr());
            }
            ffi::lua_pushnumber(l, (r * upper as f64).floor() + 1.0);
        }
        2 => {
            let lower = ffi::luaL_checkinteger(l, 1) as i32;
            let upper = ffi::luaL_checkinteger(l, 2) as i32;
            if lower > upper {
                ffi::luaL_argerror(l, 2, c"interval is empty".as_ptr());
            }
            let span = upper.wrapping_sub(lower).wrapping_add(1);
            ffi::lua_pushnumber(l, (r * span as f64).floor() + lower as f64);
        }
        _ => raise_where(l, c"wrong number of arguments"),
    }
    1
}

unsafe extern "C-unwind" fn math_randomseed(l: *mut ffi::lua_State) -> c_int {
    let seed = ffi::luaL_checkinteger(l, 1) as i32;
    RANDOM.with(|g| g.borrow_mut().seed(seed));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_matches_valkey() {
        // math.randomseed(5) then math.random(100), math.random(10,20),
        // math.random()*1000000 answered 53, 13, 788599 on Valkey 8.0.1.
        let mut g = Rand48 { x: Rand48::SEED_START };
        g.seed(5);
        let mut r = || (g.next() % RAND48_MAX) as f64 / RAND48_MAX as f64;
        assert_eq!((r() * 100.0).floor() + 1.0, 53.0);
        assert_eq!((r() * 11.0).floor() + 10.0, 13.0);
        assert_eq!((r() * 1_000_000.0) as i64, 788599);
    }

    /// Runs `function` of `vm` as FCALL would, for a fresh client.
    fn call_function(vm: &LuaVm, function: FunctionRef, keys: &[&[u8]], args: &[&[u8]]) -> String {
        let mut srv = ServerState::new(crate::config::Config::defaults());
        call_function_in(&mut srv, vm, function, keys, args)
    }

    fn call_function_in(
        srv: &mut ServerState,
        vm: &LuaVm,
        function: FunctionRef,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> String {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let mut client = Client::new(Rc::new(ClientInfo::new(1, addr, addr, -1, 0, true)));
        let mut out = Reply::new(false);
        let mut ctx = Ctx { srv, client: &mut client, out: &mut out, now_ms: 0 };
        let rules = RunRules::default();
        let call =
            ScriptCall { function, invocation: Invocation::Function, name: "f", keys, args, rules, command: &[] };
        run(vm, &mut ctx, &call).unwrap();
        String::from_utf8_lossy(&out.buf).into_owned()
    }

    /// Compiles `code`, runs it, and keeps the function it returns.
    fn function_from(vm: &LuaVm, code: &str) -> FunctionRef {
        let chunk = vm.compile(code.as_bytes(), c"@user_function").unwrap();
        // SAFETY: the chunk is called on the VM's own main thread.
        unsafe {
            vm.push_function(chunk);
            assert_eq!(ffi::lua_pcall(vm.state(), 0, 1, 0), 0);
            vm.keep_top(vm.state())
        }
    }

    #[test]
    fn functions_get_keys_and_arguments_as_parameters() {
        let vm = LuaVm::new(VmKind::Functions).unwrap();
        let echo = function_from(&vm, "return function(keys, args) return {keys[1], args[1], #args} end");
        assert_eq!(call_function(&vm, echo, &[b"k"], &[b"a", b"b"]), "*3\r\n$1\r\nk\r\n$1\r\na\r\n:2\r\n");
        let write = function_from(&vm, "return function(keys) return redis.call('set', keys[1], 'v') end");
        assert_eq!(call_function(&vm, write, &[b"k"], &[]), "+OK\r\n");
        // No KEYS global, no EVAL-only helpers, in the functions' state.
        let globals = function_from(
            &vm,
            "return function() return {type(redis.breakpoint), type(rawget(_G, '__redis__err__handler')), \
             pcall(function() return KEYS end)} end",
        );
        let reply = call_function(&vm, globals, &[], &[]);
        assert!(reply.starts_with("*4\r\n$3\r\nnil\r\n$3\r\nnil\r\n$-1\r\n"), "{reply}");
        assert!(reply.contains("nonexistent global variable 'KEYS'"), "{reply}");
        let failing = function_from(&vm, "return function() error('stop') end");
        assert_eq!(
            call_function(&vm, failing, &[], &[]),
            "-ERR user_function:1: stop script: f, on @user_function:1.\r\n"
        );
    }

    #[test]
    fn set_repl_decides_what_is_journalled() {
        let vm = LuaVm::new(VmKind::Functions).unwrap();
        let script = function_from(
            &vm,
            "return function() redis.set_repl(redis.REPL_NONE) redis.call('set', 'hidden', '1') \
             redis.set_repl(redis.REPL_ALL) redis.call('set', 'kept', '2') redis.call('incr', 'kept') end",
        );
        let mut srv = ServerState::new(crate::config::Config::defaults());
        srv.effects.enabled = true;
        call_function_in(&mut srv, &vm, script, &[], &[]);
        let journalled: Vec<Vec<Vec<u8>>> = srv.effects.finish_unit().into_iter().map(|e| e.args).collect();
        let expected: Vec<Vec<&[u8]>> =
            vec![vec![b"MULTI"], vec![b"set", b"kept", b"2"], vec![b"incr", b"kept"], vec![b"EXEC"]];
        assert_eq!(journalled, expected);
        assert!(srv.effects.enabled);
    }

    #[test]
    fn protected_tables_refuse_writes() {
        let vm = LuaVm::new(VmKind::Functions).unwrap();
        // SAFETY: building a table on the VM's main thread.
        unsafe {
            let l = vm.state();
            vm.push_globals();
            ffi::lua_newtable(l);
            ffi::lua_pushnumber(l, 7.0);
            ffi::lua_setfield(l, -2, c"answer".as_ptr());
            set_unknown_name_error(l);
            vm.protect_top();
            ffi::lua_setfield(l, -2, c"library".as_ptr());
            ffi::lua_pop(l, 1);
        }
        let reader = function_from(&vm, "return function() return library.answer end");
        assert_eq!(call_function(&vm, reader, &[], &[]), ":7\r\n");
        let writer = function_from(&vm, "return function() library.answer = 1 end");
        assert!(call_function(&vm, writer, &[], &[]).contains("Attempt to modify a readonly table"));
        let unknown = function_from(&vm, "return function() return library.question end");
        assert!(call_function(&vm, unknown, &[], &[]).contains("nonexistent global variable 'question'"));
    }

    #[test]
    fn number_arguments_print_like_valkey() {
        let text = |n: f64| {
            let mut v = Vec::new();
            write_number_argument(n, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(text(1.5), "1.5");
        assert_eq!(text(1e20), "1e+20");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(2f64.powi(62)), "4611686018427387904");
        assert_eq!(text(2f64.powi(63)), "9223372036854776000");
        assert_eq!(text(f64::NAN), "nan");
        assert_eq!(text(-f64::NAN), "-nan");
        assert_eq!(text(f64::NEG_INFINITY), "-inf");
    }
}
