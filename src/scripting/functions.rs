//! Function libraries: the registry FUNCTION LOAD fills and FCALL reads,
//! and loading one library into the Lua state all functions share.
//!
//! A library is Lua code behind a `#!lua name=<library>` line. Loading it
//! runs the code once, with the globals reduced to what Valkey offers then:
//! `server` (and its alias `redis`) holding only `register_function`, the
//! log API and the version fields; any other name is an error. Each
//! `server.register_function` call adds a function whose callback stays
//! referenced in the Lua registry; FCALL later calls that callback with the
//! normal sandbox in place (engine.rs). The code is kept whole, shebang
//! included, for FUNCTION LIST WITHCODE, FUNCTION DUMP and the RDB file.
//!
//! The registry is part of the dataset (`st.persistence.functions`): the
//! RDB saver writes every library's code as a FUNCTION2 record, the loader
//! compiles them back, FUNCTION DUMP / RESTORE carry them in the same form.
//! Valkey keeps libraries and functions in hash tables whose order changes
//! with every start; ferrokey keeps them in the order they were loaded.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use mlua::ffi;

use super::engine::{self, FunctionRef, LuaVm, ScriptFlags, VmKind};
use super::libs::until_nul;
use ferrokey_formats::rdb::{opcode, rdb_type, DecodedObject, RdbValue, RdbWriter, WriterOptions, DUMP_RDB_VERSION};

/// The one engine functions are written for, as FUNCTION LIST and
/// FUNCTION STATS name it.
pub const ENGINE_NAME: &str = "LUA";

/// How long FUNCTION LOAD lets a library's code run: it should only
/// register functions.
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The chunk name of library code: Lua's messages say `user_function:2:`.
const CHUNK_NAME: &CStr = c"@user_function";

/// Lua instructions between two checks of the load timeout.
const LOAD_HOOK_INSTRUCTIONS: c_int = 100_000;

const INVALID_NAME: &str =
    "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// A function a library registered.
pub struct Function {
    pub name: Vec<u8>,
    pub description: Option<Vec<u8>>,
    pub flags: ScriptFlags,
    callback: Callback,
}

impl Function {
    /// The compiled callback, for [`engine::run`].
    pub fn callback(&self) -> FunctionRef {
        self.callback.0
    }
}

/// A callback kept in the functions' Lua state; released with its function.
struct Callback(FunctionRef);

impl Drop for Callback {
    fn drop(&mut self) {
        // At thread exit the state may be gone already: then so is the
        // reference.
        let _ = VM.try_with(|vm| {
            if let Some(vm) = vm.borrow().as_ref() {
                vm.lua.release(self.0);
            }
        });
    }
}

/// A loaded library.
pub struct Library {
    pub name: Vec<u8>,
    /// The code as it was loaded, shebang line included.
    pub code: Vec<u8>,
    /// By exact name, in the order they were registered.
    functions: IndexMap<Vec<u8>, Function>,
}

impl Library {
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.functions.values()
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }
}

/// The loaded libraries and the functions FCALL can call.
#[derive(Default)]
pub struct Registry {
    /// By name (exact bytes), in load order.
    libraries: IndexMap<Vec<u8>, Library>,
    /// FCALL finds a function whatever the case of its name: every
    /// function's lower-case name, to its library and exact name. Two
    /// functions of one library that differ only in case share an entry
    /// (the first registered keeps it), as in Valkey.
    functions: HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.libraries.keys().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        f.debug_struct("Registry").field("libraries", &names).finish()
    }
}

/// Why a library could not be loaded: Valkey's message, without the ERR
/// code (it may hold any bytes Lua put in an error).
pub type LoadError = Vec<u8>;

fn error(text: impl AsRef<[u8]>) -> LoadError {
    text.as_ref().to_vec()
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.libraries.is_empty()
    }

    pub fn library_count(&self) -> usize {
        self.libraries.len()
    }

    /// Functions of all libraries (what FUNCTION STATS counts).
    pub fn function_count(&self) -> usize {
        self.libraries.values().map(Library::function_count).sum()
    }

    /// The libraries in load order.
    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    /// The function FCALL names (any case).
    pub fn function(&self, name: &[u8]) -> Option<&Function> {
        let (library, exact) = self.functions.get(&name.to_ascii_lowercase())?;
        self.libraries.get(library)?.functions.get(exact)
    }

    /// FUNCTION LOAD: compiles and runs `code`, adding the library it
    /// defines (replacing one of the same name when `replace`). The code
    /// may run for `timeout` at most (None: as long as it takes, for
    /// libraries read from a file). Returns the library's name.
    pub fn load(&mut self, code: &[u8], replace: bool, timeout: Option<Duration>) -> Result<Vec<u8>, LoadError> {
        let Metadata { engine, name, body } = parse_metadata(code)?;
        if !valid_name(&name) {
            return Err(error(INVALID_NAME));
        }
        // Valkey compares engine names as C strings, ignoring case.
        if !until_nul(&engine).eq_ignore_ascii_case(ENGINE_NAME.as_bytes()) {
            return Err([b"Engine '".as_slice(), &engine, b"' not found"].concat());
        }
        if !replace && self.libraries.contains_key(&name) {
            return Err([b"Library '".as_slice(), &name, b"' already exists"].concat());
        }
        let functions = run_library_code(body, timeout)?;
        if functions.is_empty() {
            return Err(error("No functions registered"));
        }
        // The library being replaced no longer counts.
        for function in functions.values() {
            if let Some((owner, _)) = self.functions.get(&function.name.to_ascii_lowercase()) {
                if *owner != name {
                    return Err([b"Function ".as_slice(), &function.name, b" already exists"].concat());
                }
            }
        }
        self.unlink(&name);
        self.link(Library { name: name.clone(), code: code.to_vec(), functions });
        Ok(name)
    }

    /// FUNCTION DELETE. Returns whether the library existed.
    pub fn delete(&mut self, name: &[u8]) -> bool {
        self.unlink(name).is_some()
    }

    /// FUNCTION FLUSH (and emptying the dataset for a full reload).
    pub fn clear(&mut self) {
        self.libraries.clear();
        self.functions.clear();
    }

    /// Adds every library of `other` (FUNCTION RESTORE, loading a file).
    /// A library already here is an error unless `replace`, when the new
    /// one takes its place; a function name taken by another library is an
    /// error either way. On error nothing changes.
    pub fn join(&mut self, other: Registry, replace: bool) -> Result<(), LoadError> {
        for name in other.libraries.keys() {
            if !replace && self.libraries.contains_key(name) {
                return Err([b"Library ".as_slice(), name, b" already exists"].concat());
            }
        }
        for library in other.libraries.values() {
            for function in library.functions.values() {
                let taken = self.functions.get(&function.name.to_ascii_lowercase());
                if taken.is_some_and(|(owner, _)| !other.libraries.contains_key(owner)) {
                    return Err([b"Function ".as_slice(), &function.name, b" already exists"].concat());
                }
            }
        }
        let Registry { libraries, .. } = other;
        for (name, library) in libraries {
            self.unlink(&name);
            self.link(library);
        }
        Ok(())
    }

    /// Loads libraries read from an RDB file into a new registry: each
    /// one must load, and no two may share a name.
    pub fn from_codes(codes: impl IntoIterator<Item = Vec<u8>>) -> Result<Registry, LoadError> {
        let mut registry = Registry::default();
        for code in codes {
            registry.load(&code, false, None)?;
        }
        Ok(registry)
    }

    /// FUNCTION DUMP: a FUNCTION2 record per library, then the RDB version
    /// and the CRC-64 of all that, as Valkey makes it (long code compressed
    /// when `compression`, Valkey's `rdbcompression`).
    pub fn dump(&self, compression: bool) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut writer = RdbWriter::new(&mut out, WriterOptions { compression, checksum: false });
            for library in self.libraries.values() {
                // Writing to memory cannot fail.
                let _ = writer.function(&library.code);
            }
        }
        out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
        let crc = ferrokey_formats::crc64::crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a FUNCTION DUMP payload into a new registry, loading each
    /// library. The version and checksum must have been verified.
    pub fn from_dump(payload: &[u8]) -> Result<Registry, LoadError> {
        let mut registry = Registry::default();
        let mut pos = 0;
        // What follows the records is the 10-byte footer.
        while payload.len() - pos > 10 {
            let record = payload[pos];
            pos += 1;
            if record == opcode::FUNCTION_PRE_GA {
                return Err(error("Pre-GA function format not supported"));
            }
            if record != opcode::FUNCTION2 {
                return Err(error("given type is not a function"));
            }
            // As in Valkey, the string is read from the whole payload: a
            // length running into the footer is only noticed past its end.
            let code = match ferrokey_formats::rdb::decode_object(rdb_type::STRING, &payload[pos..]) {
                Ok((DecodedObject::Value { value: RdbValue::String(code), .. }, used)) => {
                    pos += used;
                    code
                }
                _ => return Err(error("Failed loading library payload")),
            };
            registry.load(&code, false, None)?;
        }
        Ok(registry)
    }

    fn link(&mut self, library: Library) {
        for function in library.functions.values() {
            self.functions
                .entry(function.name.to_ascii_lowercase())
                .or_insert_with(|| (library.name.clone(), function.name.clone()));
        }
        self.libraries.insert(library.name.clone(), library);
    }

    fn unlink(&mut self, name: &[u8]) -> Option<Library> {
        let library = self.libraries.shift_remove(name)?;
        for function in library.functions.values() {
            let key = function.name.to_ascii_lowercase();
            if self.functions.get(&key).is_some_and(|(owner, _)| *owner == library.name) {
                self.functions.remove(&key);
            }
        }
        Some(library)
    }
}

/// Verifies a FUNCTION RESTORE payload's footer: an RDB version Valkey 8
/// reads and the CRC-64 of the rest.
pub fn verify_dump_footer(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let footer = payload.len() - 10;
    let version = u16::from_le_bytes([payload[footer], payload[footer + 1]]);
    if version > DUMP_RDB_VERSION {
        return false;
    }
    let stored = u64::from_le_bytes(payload[footer + 2..].try_into().unwrap_or_default());
    stored == ferrokey_formats::crc64::crc64(&payload[..footer + 2])
}

/// Library and function names: letters, digits and underscores, at least one.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What the first line of a library says, and the code after it.
#[derive(Debug, PartialEq, Eq)]
struct Metadata<'a> {
    engine: Vec<u8>,
    name: Vec<u8>,
    /// From the line feed ending the first line on, so that Lua's line
    /// numbers are the library's own.
    body: &'a [u8],
}

/// Reads the `#!<engine> name=<library>` line.
fn parse_metadata(code: &[u8]) -> Result<Metadata<'_>, LoadError> {
    if !code.starts_with(b"#!") {
        return Err(error("Missing library metadata"));
    }
    // Valkey looks for the line's end in a C string: not past a NUL.
    let Some(end) = until_nul(code).iter().position(|&b| b == b'\n') else {
        return Err(error("Invalid library metadata"));
    };
    let parts = match ferrokey_formats::resp::split_args(&code[..end]) {
        Some(parts) if !parts.is_empty() => parts,
        _ => return Err(error("Invalid library metadata")),
    };
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(error("Invalid metadata value, name argument was given multiple times"));
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        return Err([b"Invalid metadata value given: ".as_slice(), until_nul(part)].concat());
    }
    let Some(name) = name else {
        return Err(error("Library name was not given"));
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_vec();
    Ok(Metadata { engine, name, body: &code[end..] })
}

// ---------------------------------------------------------------------------
// The functions' Lua state
// ---------------------------------------------------------------------------

/// The Lua state every library is loaded into and every function runs in.
pub struct FunctionsVm {
    lua: LuaVm,
    /// Registry reference to the protected table the globals read from
    /// while a library's code runs.
    library_api: c_int,
}

impl FunctionsVm {
    pub fn lua(&self) -> &LuaVm {
        &self.lua
    }
}

thread_local! {
    /// Created at first use and kept for good: FUNCTION FLUSH only
    /// releases the functions, as in Valkey.
    static VM: RefCell<Option<Rc<FunctionsVm>>> = const { RefCell::new(None) };
    /// The library whose code is running (during FUNCTION LOAD only).
    static LOADING: Cell<*mut LoadInProgress> = const { Cell::new(ptr::null_mut()) };
}

/// The functions' Lua state, created the first time it is needed.
pub fn vm() -> Result<Rc<FunctionsVm>, String> {
    if let Some(vm) = VM.with(|v| v.borrow().clone()) {
        return Ok(vm);
    }
    let lua = LuaVm::new(VmKind::Functions)?;
    let mut library_api = 0;
    // SAFETY: building tables in a protected call on the state's stack.
    unsafe {
        lua.protected(0, 0, &mut |l| {
            library_api = build_library_api(&lua, l);
            0
        })
    }
    .map_err(|e| format!("setting up the functions' Lua state: {}", String::from_utf8_lossy(&e)))?;
    let vm = Rc::new(FunctionsVm { lua, library_api });
    VM.with(|v| *v.borrow_mut() = Some(vm.clone()));
    Ok(vm)
}

/// Memory the functions' Lua state holds (0 before its first use).
pub fn vm_memory() -> usize {
    VM.with(|v| v.borrow().as_ref().map_or(0, |vm| vm.lua.used_memory()))
}

/// Builds what the globals lead to while library code runs: a table with
/// `server` and `redis` (one table, holding `register_function`, the log
/// API and the version fields), all of it read-only and refusing unknown
/// names. Returns its registry reference.
unsafe fn build_library_api(vm: &LuaVm, l: *mut ffi::lua_State) -> c_int {
    ffi::lua_checkstack(l, 16);
    // The engine's map from proxies to tables (an upvalue of its `rawget`),
    // so that its base functions see through these proxies as well.
    vm.push_globals();
    ffi::lua_getfield(l, -1, c"rawget".as_ptr());
    let found = !ffi::lua_getupvalue(l, -1, 1).is_null();
    if !found || ffi::lua_istable(l, -1) == 0 {
        if found {
            ffi::lua_pop(l, 1);
        }
        ffi::lua_newtable(l);
    }
    ffi::lua_replace(l, -3);
    ffi::lua_pop(l, 1);
    let proxies = ffi::lua_gettop(l);
    ffi::lua_newtable(l);
    let visited = ffi::lua_gettop(l);

    ffi::lua_newtable(l);
    let api = ffi::lua_gettop(l);
    ffi::lua_newtable(l);
    ffi::lua_pushcfunction(l, register_function);
    ffi::lua_setfield(l, -2, c"register_function".as_ptr());
    engine::set_log_api(l);
    engine::set_version_api(l);
    set_unknown_name_error(l);
    ffi::lua_pushvalue(l, -1);
    ffi::lua_setfield(l, api, c"server".as_ptr());
    ffi::lua_setfield(l, api, c"redis".as_ptr());
    set_unknown_name_error(l);
    engine::protect(l, proxies, visited, ffi::LUA_GLOBALSINDEX);
    let reference = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_pop(l, 2);
    reference
}

/// Gives the table at the top a metatable that makes reading a missing
/// name an error.
unsafe fn set_unknown_name_error(l: *mut ffi::lua_State) {
    ffi::lua_newtable(l);
    ffi::lua_pushcfunction(l, refuse_unknown_name);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    ffi::lua_setmetatable(l, -2);
}

/// `__index` of the library API's tables.
unsafe extern "C-unwind" fn refuse_unknown_name(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(l) != 2 {
        raise_where(l, c"Wrong number of arguments to luaProtectedTableError");
    }
    if ffi::lua_isstring(l, -1) == 0 && ffi::lua_isnumber(l, -1) == 0 {
        raise_where(l, c"Second argument to luaProtectedTableError must be a string or number");
    }
    let name = ffi::lua_tolstring(l, -1, ptr::null_mut());
    ffi::luaL_where(l, 1);
    ffi::lua_pushstring(l, c"Script attempted to access nonexistent global variable '".as_ptr());
    ffi::lua_pushstring(l, name);
    ffi::lua_pushstring(l, c"'".as_ptr());
    ffi::lua_concat(l, 4);
    ffi::lua_error(l)
}

unsafe fn raise_where(l: *mut ffi::lua_State, message: &CStr) -> ! {
    ffi::luaL_where(l, 1);
    ffi::lua_pushstring(l, message.as_ptr());
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

// ---------------------------------------------------------------------------
// Running a library's code
// ---------------------------------------------------------------------------

/// What `server.register_function` adds to while a library's code runs.
struct LoadInProgress {
    vm: *const LuaVm,
    functions: IndexMap<Vec<u8>, Function>,
    started: Instant,
    timeout: Option<Duration>,
}

/// Compiles and runs a library's code (what follows its shebang line),
/// returning the functions it registered.
fn run_library_code(body: &[u8], timeout: Option<Duration>) -> Result<IndexMap<Vec<u8>, Function>, LoadError> {
    let vm = vm().map_err(error)?;
    let lua = &vm.lua;
    let chunk = lua
        .compile(body, CHUNK_NAME)
        .map_err(|e| [b"Error compiling function: ".as_slice(), until_nul(&e)].concat())?;
    let mut load =
        LoadInProgress { vm: lua as *const LuaVm, functions: IndexMap::new(), started: Instant::now(), timeout };
    let l = lua.state();
    let api = vm.library_api;
    // SAFETY: the stack is balanced on every path; `load` outlives the
    // time LOADING points at it, and is not touched meanwhile.
    let outcome = unsafe {
        let pointed = lua.protected(0, 0, &mut |l| {
            lua.push_globals_metatable();
            ffi::lua_pushstring(l, c"__index".as_ptr());
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, api as _);
            ffi::lua_rawset(l, -3);
            ffi::lua_pop(l, 1);
            0
        });
        let outcome = match pointed {
            Err(e) => Err([b"Error registering functions: ".as_slice(), &e].concat()),
            Ok(()) => {
                LOADING.with(|p| p.set(&mut load));
                ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKCOUNT, LOAD_HOOK_INSTRUCTIONS);
                ffi::lua_checkstack(l, 2);
                lua.push_function(chunk);
                let status = ffi::lua_pcall(l, 0, 0, 0);
                ffi::lua_sethook(l, None, 0, 0);
                LOADING.with(|p| p.set(ptr::null_mut()));
                if status == 0 {
                    Ok(())
                } else {
                    Err([b"Error registering functions: ".as_slice(), &take_load_error(lua)].concat())
                }
            }
        };
        // Back to the normal globals, whatever happened.
        let _ = lua.protected(0, 0, &mut |l| {
            lua.push_globals_metatable();
            ffi::lua_pushstring(l, c"__index".as_ptr());
            lua.push_globals();
            ffi::lua_rawset(l, -3);
            ffi::lua_pop(l, 1);
            0
        });
        outcome
    };
    lua.release(chunk);
    outcome.map(|()| load.functions)
}

/// The message of the error library code raised (at the top of the
/// stack, which is popped): a string gets the ERR code, an error table
/// gives its `err` field.
unsafe fn take_load_error(lua: &LuaVm) -> Vec<u8> {
    let mut message = None;
    let read = lua.protected(1, 0, &mut |l| {
        match ffi::lua_type(l, 1) {
            ffi::LUA_TSTRING => {
                let text = until_nul(engine::string_at(l, 1).unwrap_or_default());
                message = Some([b"ERR ".as_slice(), text].concat());
            }
            ffi::LUA_TTABLE => {
                ffi::lua_pushstring(l, c"err".as_ptr());
                ffi::lua_rawget(l, 1);
                if ffi::lua_isstring(l, -1) != 0 {
                    message = Some(until_nul(engine::string_at(l, -1).unwrap_or_default()).to_vec());
                }
            }
            _ => {}
        }
        0
    });
    match (read, message) {
        (Err(e), _) => e,
        // What C's printf makes of a missing message.
        (Ok(()), None) => b"(null)".to_vec(),
        (Ok(()), Some(message)) => message,
    }
}

/// The instruction hook while library code runs: ends it once it has run
/// past the load timeout (and on every line after that, so that a pcall
/// cannot swallow the error).
unsafe extern "C-unwind" fn load_hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    let expired = LOADING.with(|p| {
        p.get().as_ref().is_some_and(|load| load.timeout.is_some_and(|limit| load.started.elapsed() > limit))
    });
    if expired {
        ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKLINE, 0);
        engine::raise_error_table(l, b"FUNCTION LOAD timeout");
    }
}

/// `server.register_function(name, callback)` or
/// `server.register_function{function_name=, callback=, flags=, description=}`.
unsafe extern "C-unwind" fn register_function(l: *mut ffi::lua_State) -> c_int {
    // Everything that owns memory is dropped before an error is raised.
    let refused = match catch_unwind(AssertUnwindSafe(|| register_from_lua(l))) {
        Ok(Ok(())) => None,
        Ok(Err(message)) => Some(message),
        Err(_) => Some("internal error while registering a function"),
    };
    if let Some(message) = refused {
        engine::raise_error_table(l, message.as_bytes());
    }
    0
}

/// A callback referenced while its registration is read; released unless
/// the function is added.
struct PendingCallback {
    vm: *const LuaVm,
    function: Option<FunctionRef>,
}

impl Drop for PendingCallback {
    fn drop(&mut self) {
        if let Some(function) = self.function.take() {
            // SAFETY: the state outlives the load in progress.
            unsafe { (*self.vm).release(function) };
        }
    }
}

/// Reads a registration's arguments and adds the function to the library
/// being loaded. Errors are Valkey's messages.
unsafe fn register_from_lua(l: *mut ffi::lua_State) -> Result<(), &'static str> {
    let Some(load) = LOADING.with(|p| p.get().as_mut()) else {
        return Err("server.register_function can only be called on FUNCTION LOAD command");
    };
    let mut callback = PendingCallback { vm: load.vm, function: None };
    let Registration { name, description, flags } = match ffi::lua_gettop(l) {
        1 => read_named_arguments(l, &mut callback)?,
        2 => {
            let Some(name) = lua_string(l, 1) else {
                return Err("first argument to server.register_function must be a string");
            };
            if ffi::lua_isfunction(l, 2) == 0 {
                return Err("second argument to server.register_function must be a function");
            }
            callback.function = Some((*load.vm).keep_top(l));
            Registration { name, description: None, flags: ScriptFlags::default() }
        }
        _ => return Err("wrong number of arguments to server.register_function"),
    };
    if !valid_name(&name) {
        return Err(INVALID_NAME);
    }
    if load.functions.contains_key(&name) {
        return Err("Function already exists in the library");
    }
    let Some(function) = callback.function.take() else {
        return Err("server.register_function must get a callback argument");
    };
    load.functions.insert(name.clone(), Function { name, description, flags, callback: Callback(function) });
    Ok(())
}

/// The bytes of a string (or number) argument.
unsafe fn lua_string(l: *mut ffi::lua_State, index: c_int) -> Option<Vec<u8>> {
    if ffi::lua_isstring(l, index) == 0 {
        return None;
    }
    engine::string_at(l, index).map(<[u8]>::to_vec)
}

/// The table form of `register_function` (the table is argument 1).
/// What a `register_function` call gives besides the callback.
struct Registration {
    name: Vec<u8>,
    description: Option<Vec<u8>>,
    flags: ScriptFlags,
}

unsafe fn read_named_arguments(
    l: *mut ffi::lua_State,
    callback: &mut PendingCallback,
) -> Result<Registration, &'static str> {
    if ffi::lua_istable(l, 1) == 0 {
        return Err("calling server.register_function with a single argument is only applicable to Lua table (representing named arguments).");
    }
    ffi::lua_checkstack(l, 4);
    let mut name = None;
    let mut description = None;
    let mut flags = ScriptFlags::default();
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, 1) != 0 {
        // Stack: table, key, value. The key is read from a copy, so that
        // converting a number does not disturb the traversal.
        if ffi::lua_isstring(l, -2) == 0 {
            return Err("named argument key given to server.register_function is not a string");
        }
        ffi::lua_pushvalue(l, -2);
        let key = until_nul(engine::string_at(l, -1).unwrap_or_default()).to_ascii_lowercase();
        ffi::lua_pop(l, 1);
        match key.as_slice() {
            b"function_name" => {
                let Some(text) = lua_string(l, -1) else {
                    return Err("function_name argument given to server.register_function must be a string");
                };
                name = Some(text);
            }
            b"description" => {
                let Some(text) = lua_string(l, -1) else {
                    return Err("description argument given to server.register_function must be a string");
                };
                description = Some(text);
            }
            b"callback" => {
                if ffi::lua_isfunction(l, -1) == 0 {
                    return Err("callback argument given to server.register_function must be a function");
                }
                // Taking the reference pops the value.
                let function = (*callback.vm).keep_top(l);
                if let Some(previous) = callback.function.replace(function) {
                    (*callback.vm).release(previous);
                }
                continue;
            }
            b"flags" => {
                if ffi::lua_istable(l, -1) == 0 {
                    return Err(
                        "flags argument to server.register_function must be a table representing function flags",
                    );
                }
                flags = read_flags(l).ok_or("unknown flag given")?;
            }
            _ => return Err("unknown argument given to server.register_function"),
        }
        ffi::lua_pop(l, 1);
    }
    let Some(name) = name else {
        return Err("server.register_function must get a function name argument");
    };
    if callback.function.is_none() {
        return Err("server.register_function must get a callback argument");
    }
    Ok(Registration { name, description, flags })
}

/// The flags in the array at the top of the stack (names in any case);
/// None at the first entry that is not a flag's name.
unsafe fn read_flags(l: *mut ffi::lua_State) -> Option<ScriptFlags> {
    let mut flags = ScriptFlags::default();
    for index in 1.. {
        ffi::lua_rawgeti(l, -1, index);
        if ffi::lua_isnil(l, -1) != 0 {
            ffi::lua_pop(l, 1);
            return Some(flags);
        }
        let flag = if ffi::lua_isstring(l, -1) != 0 {
            let text = until_nul(engine::string_at(l, -1).unwrap_or_default());
            ScriptFlags::NAMES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(text)).map(|(_, f)| *f)
        } else {
            None
        };
        ffi::lua_pop(l, 1);
        flags.insert(flag?);
    }
    Some(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(registry: &mut Registry, code: &str) -> Result<String, String> {
        registry
            .load(code.as_bytes(), false, Some(LOAD_TIMEOUT))
            .map(|n| String::from_utf8(n).unwrap())
            .map_err(|e| String::from_utf8_lossy(&e).into_owned())
    }

    #[test]
    fn metadata_is_read_like_valkey() {
        fn parse(code: &str) -> Result<Metadata<'_>, String> {
            parse_metadata(code.as_bytes()).map_err(|e| String::from_utf8(e).unwrap())
        }
        assert_eq!(
            parse("#!lua name=a\nx"),
            Ok(Metadata { engine: b"lua".to_vec(), name: b"a".to_vec(), body: b"\nx" })
        );
        assert_eq!(parse("#!LUA NAME=a \r\nx").map(|m| m.name), Ok(b"a".to_vec()));
        assert_eq!(parse("return 1"), Err("Missing library metadata".into()));
        assert_eq!(parse("#!lua name=a"), Err("Invalid library metadata".into()));
        assert_eq!(parse("#!lua\n"), Err("Library name was not given".into()));
        assert_eq!(
            parse("#!lua name=a name=b\n"),
            Err("Invalid metadata value, name argument was given multiple times".into())
        );
        assert_eq!(parse("#!lua x=1\n"), Err("Invalid metadata value given: x=1".into()));
        assert_eq!(parse("#!lua \"name=a\n"), Err("Invalid library metadata".into()));
    }

    #[test]
    fn libraries_register_and_replace_functions() {
        let mut registry = Registry::default();
        let code = "#!lua name=lib\nserver.register_function('f', function() return 1 end)\n\
                    server.register_function{function_name='g', callback=function() end, flags={'no-writes'}, description='d'}";
        assert_eq!(load(&mut registry, code), Ok("lib".into()));
        assert_eq!((registry.library_count(), registry.function_count()), (1, 2));
        let g = registry.function(b"G").expect("found ignoring case");
        assert_eq!((g.flags, g.description.as_deref()), (ScriptFlags::NO_WRITES, Some(b"d".as_slice())));
        assert_eq!(load(&mut registry, code), Err("Library 'lib' already exists".into()));
        let other = "#!lua name=other\nserver.register_function('F', function() end)";
        assert_eq!(load(&mut registry, other), Err("Function F already exists".into()));
        let replacement = "#!lua name=lib\nserver.register_function('h', function() end)";
        registry.load(replacement.as_bytes(), true, None).unwrap();
        assert!(registry.function(b"f").is_none() && registry.function(b"h").is_some());
        assert!(registry.delete(b"lib"));
        assert!(registry.is_empty() && registry.function(b"h").is_none());
    }

    #[test]
    fn load_errors_are_valkeys() {
        let mut registry = Registry::default();
        assert_eq!(load(&mut registry, "#!js name=t\n"), Err("Engine 'js' not found".into()));
        assert_eq!(load(&mut registry, "#!js name=a-b\n"), Err(INVALID_NAME.into()));
        let mut fails = |body: &str| load(&mut registry, &format!("#!lua name=t\n{body}")).unwrap_err();
        assert_eq!(fails("return 1"), "No functions registered");
        assert_eq!(fails("x("), "Error compiling function: user_function:2: unexpected symbol near '<eof>'");
        assert_eq!(
            fails("string.len('x')"),
            "Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'"
        );
        assert_eq!(
            fails("server.call('ping')"),
            "Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"
        );
        assert_eq!(
            fails("server.x = 1"),
            "Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(
            fails("server.register_function('a-b', function() end)"),
            format!("Error registering functions: ERR {INVALID_NAME}")
        );
        assert_eq!(
            fails("server.register_function{function_name='a', callback=function() end, flags={'bad'}}"),
            "Error registering functions: ERR unknown flag given"
        );
        assert_eq!(fails("while true do end"), "Error registering functions: ERR FUNCTION LOAD timeout");
    }

    #[test]
    fn dumps_restore_to_the_same_libraries() {
        let mut registry = Registry::default();
        for name in ["a", "b"] {
            let code =
                format!("#!lua name={name}\nserver.register_function('f_{name}', function() return '{name}' end)");
            load(&mut registry, &code).unwrap();
        }
        let payload = registry.dump(true);
        assert!(verify_dump_footer(&payload));
        let restored = Registry::from_dump(&payload).unwrap();
        let codes = |r: &Registry| r.libraries().map(|l| l.code.clone()).collect::<Vec<_>>();
        assert_eq!(codes(&restored), codes(&registry));
        let mut corrupt = payload.clone();
        corrupt[3] ^= 1;
        assert!(!verify_dump_footer(&corrupt));
        assert_eq!(registry.join(restored, false), Err(b"Library a already exists".to_vec()));
    }
}
