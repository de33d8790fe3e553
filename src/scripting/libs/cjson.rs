//! `cjson`: Lua CJSON 2.1.0 as Valkey embeds it (global `cjson`, functions
//! sharing one configuration per module table, `cjson.new()` for another).
//!
//! Behaviour that scripts can observe and that this follows: numbers are
//! written with C's `%.14g` (the precision is configurable), strings escape
//! `"` `\` `/`, control characters and DEL; a table is an array when all its
//! keys are positive integers, unless it is "excessively sparse"; an empty
//! table is `{}`; decoding follows C `strtod` for numbers (hex, `inf`, `nan`
//! are accepted by default), stops at the first NUL byte and reports errors
//! as "Expected X but found Y at character N".

use std::ffi::{c_char, c_int, c_void};

use mlua::ffi;

use super::{check_integer, check_string, finish, push_bytes, string_at, until_nul, Failure};

const MODULE_NAME: &str = "cjson";
const MODULE_VERSION: &str = "2.1.0";

/// Registry key of the metatable that marks configuration userdata.
const CONFIG_METATABLE: &std::ffi::CStr = c"ferrokey.cjson.config";

/// What `encode` does with NaN and infinities.
#[derive(Clone, Copy, PartialEq)]
enum InvalidNumbers {
    Refuse,
    Write,
    AsNull,
}

/// What one `cjson` module table's functions share (Lua CJSON keeps it in
/// a userdata upvalue of every function). It is reached through a raw
/// pointer and read afresh at each use, never through a lasting reference:
/// a finalizer run by the garbage collector during a call may call back
/// into the same module and change it.
struct JsonConfig {
    settings: Settings,
    /// Reused by `encode` between calls while `encode_keep_buffer` is on.
    encode_buffer: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Settings {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    encode_invalid_numbers: InvalidNumbers,
    encode_number_precision: i32,
    encode_keep_buffer: bool,
    decode_invalid_numbers: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: InvalidNumbers::Refuse,
            encode_number_precision: 14,
            encode_keep_buffer: true,
            decode_invalid_numbers: true,
        }
    }
}

/// Creates the global `cjson`.
pub(crate) unsafe fn open(state: *mut ffi::lua_State) {
    new_module(state);
    ffi::lua_setfield(state, ffi::LUA_GLOBALSINDEX, c"cjson".as_ptr());
}

/// `cjson.new()`: a module table with its own configuration.
unsafe extern "C-unwind" fn json_new(state: *mut ffi::lua_State) -> c_int {
    new_module(state);
    1
}

/// Pushes a new module table. The fields are set in Lua CJSON's order so
/// that the table's layout, and with it `pairs` order, is the same.
unsafe fn new_module(state: *mut ffi::lua_State) {
    let functions: [(&std::ffi::CStr, ffi::lua_CFunction); 10] = [
        (c"encode", json_encode),
        (c"decode", json_decode),
        (c"encode_sparse_array", cfg_encode_sparse_array),
        (c"encode_max_depth", cfg_encode_max_depth),
        (c"decode_max_depth", cfg_decode_max_depth),
        (c"encode_number_precision", cfg_encode_number_precision),
        (c"encode_keep_buffer", cfg_encode_keep_buffer),
        (c"encode_invalid_numbers", cfg_encode_invalid_numbers),
        (c"decode_invalid_numbers", cfg_decode_invalid_numbers),
        (c"new", json_new),
    ];
    ffi::lua_createtable(state, 0, 0);
    push_new_config(state);
    for (name, function) in functions {
        ffi::lua_pushvalue(state, -1);
        ffi::lua_pushcclosure(state, function, 1);
        ffi::lua_setfield(state, -3, name.as_ptr());
    }
    ffi::lua_settop(state, -2);
    ffi::lua_pushlightuserdata(state, std::ptr::null_mut());
    ffi::lua_setfield(state, -2, c"null".as_ptr());
    push_bytes(state, MODULE_NAME.as_bytes());
    ffi::lua_setfield(state, -2, c"_NAME".as_ptr());
    push_bytes(state, MODULE_VERSION.as_bytes());
    ffi::lua_setfield(state, -2, c"_VERSION".as_ptr());
}

/// Pushes a userdata holding a default configuration; its `__gc` frees the
/// retained encode buffer.
unsafe fn push_new_config(state: *mut ffi::lua_State) {
    let memory = ffi::lua_newuserdata(state, std::mem::size_of::<JsonConfig>()) as *mut JsonConfig;
    memory.write(JsonConfig { settings: Settings::default(), encode_buffer: Vec::new() });
    if ffi::luaL_newmetatable_(state, CONFIG_METATABLE.as_ptr()) != 0 {
        ffi::lua_pushcclosure(state, release_config, 0);
        ffi::lua_setfield(state, -2, c"__gc".as_ptr());
    }
    ffi::lua_setmetatable(state, -2);
}

/// The configuration userdata at `index`, if that value is one.
unsafe fn config_at(state: *mut ffi::lua_State, index: c_int) -> Option<*mut JsonConfig> {
    let memory = ffi::lua_touserdata(state, index) as *mut JsonConfig;
    if memory.is_null() || ffi::lua_getmetatable(state, index) == 0 {
        return None;
    }
    ffi::lua_getfield_(state, ffi::LUA_REGISTRYINDEX, CONFIG_METATABLE.as_ptr());
    let is_config = ffi::lua_rawequal(state, -1, -2) != 0;
    ffi::lua_settop(state, -3);
    // Userdata with this metatable are only made by push_new_config.
    is_config.then_some(memory)
}

/// `__gc` of a configuration: the buffer is released but the configuration
/// stays valid, so a second call (or a call after finalisation) is harmless.
unsafe extern "C-unwind" fn release_config(state: *mut ffi::lua_State) -> c_int {
    if let Some(config) = config_at(state, 1) {
        (*config).encode_buffer = Vec::new();
    }
    0
}

/// The configuration of the running module function (its first upvalue).
unsafe fn fetch_config(state: *mut ffi::lua_State) -> Result<*mut JsonConfig, Failure> {
    config_at(state, ffi::lua_upvalueindex(1)).ok_or_else(|| Failure::error("BUG: Unable to fetch CJSON configuration"))
}

// ===== Configuration functions =====
//
// Each takes its options as arguments (nil keeps a setting), applies them
// one by one (an invalid later option leaves earlier ones applied) and
// returns the settings now in effect.

/// Rejects more than `max_args` arguments, pads missing ones with nil.
unsafe fn config_args(state: *mut ffi::lua_State, max_args: c_int) -> Result<*mut Settings, Failure> {
    if ffi::lua_gettop(state) > max_args {
        return Err(Failure::bad_argument(max_args + 1, "found too many arguments"));
    }
    while ffi::lua_gettop(state) < max_args {
        ffi::lua_pushnil(state);
    }
    fetch_config(state).map(|config| &raw mut (*config).settings)
}

/// An integer setting within `min..=max` (the range error always names
/// argument 1, as Lua CJSON's does).
unsafe fn integer_option(
    state: *mut ffi::lua_State,
    index: c_int,
    setting: *mut i32,
    min: i32,
    max: i32,
) -> Result<(), Failure> {
    if ffi::lua_type(state, index) != ffi::LUA_TNIL {
        // C stores the lua_Integer in an int: larger values wrap.
        let value = check_integer(state, index)? as i32;
        if !(min <= value && value <= max) {
            return Err(Failure::bad_argument(1, format!("expected integer between {min} and {max}")));
        }
        *setting = value;
    }
    ffi::lua_pushinteger(state, *setting as ffi::lua_Integer);
    Ok(())
}

/// A setting given as a boolean or as one of `names` (whose first two mean
/// false and true): the new value (an index into `names`), or `current`
/// when the argument is nil.
unsafe fn enum_option(
    state: *mut ffi::lua_State,
    index: c_int,
    current: usize,
    names: &[&str],
) -> Result<usize, Failure> {
    match ffi::lua_type(state, index) {
        ffi::LUA_TNIL => Ok(current),
        ffi::LUA_TBOOLEAN => Ok((ffi::lua_toboolean(state, index) != 0) as usize),
        _ => {
            let name = until_nul(check_string(state, index)?);
            names.iter().position(|candidate| candidate.as_bytes() == name).ok_or_else(|| {
                let mut message = b"invalid option '".to_vec();
                message.extend_from_slice(name);
                message.push(b'\'');
                Failure::BadArgument(index, message)
            })
        }
    }
}

/// Returns an enumerated setting to Lua: as a boolean when it is one, else
/// as its name.
unsafe fn push_enum(state: *mut ffi::lua_State, value: usize, names: &[&str]) {
    if value <= 1 {
        ffi::lua_pushboolean(state, value as c_int);
    } else {
        push_bytes(state, names[value].as_bytes());
    }
}

const ON_OFF: &[&str] = &["off", "on"];

unsafe fn bool_option(state: *mut ffi::lua_State, index: c_int, setting: *mut bool) -> Result<(), Failure> {
    let value = enum_option(state, index, *setting as usize, ON_OFF)?;
    *setting = value == 1;
    push_enum(state, value, ON_OFF);
    Ok(())
}

/// `cjson.encode_sparse_array([convert[, ratio[, safe]]])`.
unsafe extern "C-unwind" fn cfg_encode_sparse_array(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 3)?;
        bool_option(state, 1, &raw mut (*settings).sparse_convert)?;
        integer_option(state, 2, &raw mut (*settings).sparse_ratio, 0, i32::MAX)?;
        integer_option(state, 3, &raw mut (*settings).sparse_safe, 0, i32::MAX)?;
        Ok(3)
    })();
    finish(state, result)
}

/// `cjson.encode_max_depth([depth])`.
unsafe extern "C-unwind" fn cfg_encode_max_depth(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        integer_option(state, 1, &raw mut (*settings).encode_max_depth, 1, i32::MAX)?;
        Ok(1)
    })();
    finish(state, result)
}

/// `cjson.decode_max_depth([depth])`.
unsafe extern "C-unwind" fn cfg_decode_max_depth(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        integer_option(state, 1, &raw mut (*settings).decode_max_depth, 1, i32::MAX)?;
        Ok(1)
    })();
    finish(state, result)
}

/// `cjson.encode_number_precision([digits])`.
unsafe extern "C-unwind" fn cfg_encode_number_precision(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        integer_option(state, 1, &raw mut (*settings).encode_number_precision, 1, 14)?;
        Ok(1)
    })();
    finish(state, result)
}

/// `cjson.encode_keep_buffer([keep])`.
unsafe extern "C-unwind" fn cfg_encode_keep_buffer(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        bool_option(state, 1, &raw mut (*settings).encode_keep_buffer)?;
        if !(*settings).encode_keep_buffer {
            (*fetch_config(state)?).encode_buffer = Vec::new();
        }
        Ok(1)
    })();
    finish(state, result)
}

/// `cjson.encode_invalid_numbers([setting])`: false/"off", true/"on" or "null".
unsafe extern "C-unwind" fn cfg_encode_invalid_numbers(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        let names = &["off", "on", "null"];
        let value = enum_option(state, 1, (*settings).encode_invalid_numbers as usize, names)?;
        (*settings).encode_invalid_numbers = match value {
            0 => InvalidNumbers::Refuse,
            1 => InvalidNumbers::Write,
            _ => InvalidNumbers::AsNull,
        };
        push_enum(state, value, names);
        Ok(1)
    })();
    finish(state, result)
}

/// `cjson.decode_invalid_numbers([allow])`.
unsafe extern "C-unwind" fn cfg_decode_invalid_numbers(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let settings = config_args(state, 1)?;
        bool_option(state, 1, &raw mut (*settings).decode_invalid_numbers)?;
        Ok(1)
    })();
    finish(state, result)
}

// ===== Encoding =====

/// `cjson.encode(value)`.
unsafe extern "C-unwind" fn json_encode(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let config = fetch_config(state)?;
        if ffi::lua_gettop(state) != 1 {
            return Err(Failure::bad_argument(1, "expected 1 argument"));
        }
        // Taken out while in use: a nested call (from a finalizer) gets
        // an empty one rather than this one.
        let mut out = std::mem::take(&mut (*config).encode_buffer);
        out.clear();
        let encoded = Encoder { state, settings: &raw const (*config).settings }.write(&mut out);
        if encoded.is_ok() {
            push_bytes(state, &out);
        }
        if (*config).settings.encode_keep_buffer {
            (*config).encode_buffer = out;
        }
        encoded.map(|()| 1)
    })();
    finish(state, result)
}

/// "Cannot serialise <type of the value at index>: <reason>".
unsafe fn cannot_serialise(state: *mut ffi::lua_State, index: c_int, reason: &str) -> Failure {
    let type_name = std::ffi::CStr::from_ptr(ffi::lua_typename(state, ffi::lua_type(state, index)));
    Failure::error(format!("Cannot serialise {}: {reason}", type_name.to_string_lossy()))
}

/// A table being written: its elements follow, one at a time.
enum OpenTable {
    /// Written as a JSON array: `next` is the next index, up to `length`.
    Array { length: i32, next: i32 },
    /// Written as a JSON object by `lua_next`, whose current key sits on
    /// the stack above the table.
    Object { first: bool },
}

struct Encoder {
    state: *mut ffi::lua_State,
    settings: *const Settings,
}

impl Encoder {
    unsafe fn settings(&self) -> Settings {
        *self.settings
    }

    /// Appends the value on top of the stack (left there). Nested tables
    /// are walked with an explicit list of open tables rather than by
    /// recursion, so deep nesting cannot exhaust the thread's stack; the
    /// Lua stack is used exactly as Lua CJSON uses it, so its limits hit at
    /// the same depth.
    unsafe fn write(&self, out: &mut Vec<u8>) -> Result<(), Failure> {
        let state = self.state;
        let mut open: Vec<OpenTable> = Vec::new();
        'value: loop {
            // The value to write is on top of the stack.
            let mut opened = false;
            if let Some(table) = self.value(out, open.len() as i32 + 1)? {
                open.push(table);
                opened = true;
            }
            // Find the next value to write, closing finished tables.
            loop {
                let Some(table) = open.last_mut() else {
                    return Ok(());
                };
                if !opened {
                    // The value just written (an element, or a table
                    // just closed).
                    ffi::lua_settop(state, -2);
                }
                opened = false;
                match table {
                    OpenTable::Array { length, next } => {
                        if *next <= *length {
                            if *next > 1 {
                                out.push(b',');
                            }
                            ffi::lua_rawgeti_(state, -1, *next);
                            *next += 1;
                            continue 'value;
                        }
                        out.push(b']');
                    }
                    OpenTable::Object { first } => {
                        if ffi::lua_next(state, -2) != 0 {
                            if !*first {
                                out.push(b',');
                            }
                            *first = false;
                            self.key(out)?;
                            continue 'value;
                        }
                        out.push(b'}');
                    }
                }
                open.pop();
            }
        }
    }

    /// Appends a scalar on top of the stack, or opens a table (returned,
    /// its opening bracket written) at nesting `depth`.
    unsafe fn value(&self, out: &mut Vec<u8>, depth: i32) -> Result<Option<OpenTable>, Failure> {
        let state = self.state;
        match ffi::lua_type(state, -1) {
            ffi::LUA_TSTRING => append_string(out, string_at(state, -1).unwrap_or_default()),
            ffi::LUA_TNUMBER => self.number(out, -1)?,
            ffi::LUA_TBOOLEAN => {
                out.extend_from_slice(if ffi::lua_toboolean(state, -1) != 0 { b"true" } else { b"false" })
            }
            ffi::LUA_TTABLE => {
                // The traversal needs a key, a value and room for an error
                // message.
                if depth > self.settings().encode_max_depth || ffi::lua_checkstack(state, 3) == 0 {
                    return Err(Failure::error(format!("Cannot serialise, excessive nesting ({depth})")));
                }
                return Ok(Some(match self.array_length()? {
                    Some(length) => {
                        out.push(b'[');
                        OpenTable::Array { length, next: 1 }
                    }
                    None => {
                        out.push(b'{');
                        ffi::lua_pushnil(state);
                        OpenTable::Object { first: true }
                    }
                }));
            }
            ffi::LUA_TNIL => out.extend_from_slice(b"null"),
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(state, -1).is_null() => out.extend_from_slice(b"null"),
            _ => return Err(cannot_serialise(state, -1, "type not supported")),
        }
        Ok(None)
    }

    /// Appends the key of the object entry on the stack (key, value) and
    /// its colon.
    unsafe fn key(&self, out: &mut Vec<u8>) -> Result<(), Failure> {
        let state = self.state;
        match ffi::lua_type(state, -2) {
            ffi::LUA_TNUMBER => {
                out.push(b'"');
                self.number(out, -2)?;
                out.extend_from_slice(b"\":");
            }
            ffi::LUA_TSTRING => {
                append_string(out, string_at(state, -2).unwrap_or_default());
                out.push(b':');
            }
            _ => return Err(cannot_serialise(state, -2, "table key must be a number or string")),
        }
        Ok(())
    }

    /// The length to encode the table on top of the stack as an array, or
    /// `None` to encode it as an object.
    unsafe fn array_length(&self) -> Result<Option<i32>, Failure> {
        let state = self.state;
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, -2) != 0 {
            let key = ffi::lua_tonumber(state, -2);
            let positive_integer =
                ffi::lua_type(state, -2) == ffi::LUA_TNUMBER && key != 0.0 && key.floor() == key && key >= 1.0;
            if !positive_integer {
                ffi::lua_settop(state, -3);
                return Ok(None);
            }
            // Lua CJSON keeps the largest key in an int; keys beyond its
            // range turn into the x86 "integer indefinite".
            if key > max as f64 {
                max = super::ccast::to_i32(key);
            }
            items = items.wrapping_add(1);
            ffi::lua_settop(state, -2);
        }
        let settings = self.settings();
        if settings.sparse_ratio > 0 && max > items.wrapping_mul(settings.sparse_ratio) && max > settings.sparse_safe {
            if !settings.sparse_convert {
                return Err(cannot_serialise(state, -1, "excessively sparse array"));
            }
            return Ok(None);
        }
        Ok((max > 0).then_some(max))
    }

    unsafe fn number(&self, out: &mut Vec<u8>, index: c_int) -> Result<(), Failure> {
        let number = ffi::lua_tonumber(self.state, index);
        let settings = self.settings();
        match settings.encode_invalid_numbers {
            InvalidNumbers::Refuse if !number.is_finite() => {
                return Err(cannot_serialise(self.state, index, "must not be NaN or Inf"));
            }
            // Written by hand because C libraries may print NaN as "-nan".
            InvalidNumbers::Write if number.is_nan() => {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
            InvalidNumbers::AsNull if !number.is_finite() => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        format_g(out, number, settings.encode_number_precision);
        Ok(())
    }
}

/// Appends `number` as C's `printf("%.<precision>g")` writes it.
fn format_g(out: &mut Vec<u8>, number: f64, precision: i32) {
    let mut text = [0u8; 32];
    // SAFETY: the buffer is large enough for any %g output of at most 14
    // significant digits, and snprintf never writes beyond its size.
    let written = unsafe {
        libc::snprintf(text.as_mut_ptr() as *mut c_char, text.len(), c"%.*g".as_ptr(), precision as c_int, number)
    };
    let written = (written.max(0) as usize).min(text.len() - 1);
    out.extend_from_slice(&text[..written]);
}

/// Appends `text` as a JSON string. Bytes from 0x80 up pass through as
/// they are (no UTF-8 validation).
fn append_string(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    for &byte in text {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x00..=0x1f | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(byte >> 4) as usize]);
                out.push(HEX[(byte & 15) as usize]);
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

// ===== Decoding =====

/// `cjson.decode(text)`.
unsafe extern "C-unwind" fn json_decode(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        if ffi::lua_gettop(state) != 1 {
            return Err(Failure::bad_argument(1, "expected 1 argument"));
        }
        let config = fetch_config(state)?;
        let full = check_string(state, 1)?;
        // JSON text starts with an ASCII character, so a NUL among the first
        // two bytes means a UTF-16 or UTF-32 encoding.
        if full.len() >= 2 && (full[0] == 0 || full[1] == 0) {
            return Err(Failure::error("JSON parser does not support UTF-16 or UTF-32"));
        }
        // Lua strings are NUL-terminated, which strtod relies on below.
        let mut parser = Parser {
            state,
            settings: &raw const (*config).settings,
            text: until_nul(full),
            start: full.as_ptr() as *const c_char,
            position: 0,
            depth: 0,
            scratch: Vec::with_capacity(full.len()),
        };
        let token = parser.next_token();
        parser.value(token)?;
        let token = parser.next_token();
        if token.kind != TokenKind::End {
            return Err(parser.unexpected("the end", &token));
        }
        Ok(1)
    })();
    finish(state, result)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum TokenKind {
    ObjectBegin,
    ObjectEnd,
    ArrayBegin,
    ArrayEnd,
    /// The text is in the parser's scratch buffer.
    String,
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl TokenKind {
    /// How errors name the token.
    fn describe(self) -> &'static str {
        match self {
            TokenKind::ObjectBegin => "T_OBJ_BEGIN",
            TokenKind::ObjectEnd => "T_OBJ_END",
            TokenKind::ArrayBegin => "T_ARR_BEGIN",
            TokenKind::ArrayEnd => "T_ARR_END",
            TokenKind::String => "T_STRING",
            TokenKind::Number(_) => "T_NUMBER",
            TokenKind::Boolean(_) => "T_BOOLEAN",
            TokenKind::Null => "T_NULL",
            TokenKind::Colon => "T_COLON",
            TokenKind::Comma => "T_COMMA",
            TokenKind::End => "T_END",
            TokenKind::Error(what) => what,
        }
    }
}

struct Token {
    kind: TokenKind,
    /// Byte offset where the token starts (or where its error is).
    offset: usize,
}

struct Parser<'a> {
    state: *mut ffi::lua_State,
    settings: *const Settings,
    /// The input up to its first NUL byte, which ends the document.
    text: &'a [u8],
    /// The input as a NUL-terminated C string.
    start: *const c_char,
    position: usize,
    depth: i32,
    /// The text of the last string token.
    scratch: Vec<u8>,
}

impl Parser<'_> {
    fn settings(&self) -> Settings {
        // SAFETY: the configuration outlives the call (it is an upvalue of
        // the running function) and is only read by copy.
        unsafe { *self.settings }
    }

    /// The byte at `offset`, NUL past the end.
    fn byte_at(&self, offset: usize) -> u8 {
        self.text.get(offset).copied().unwrap_or(0)
    }

    fn error_here(&self, what: &'static str) -> Token {
        Token { kind: TokenKind::Error(what), offset: self.position }
    }

    fn unexpected(&self, expected: &str, found: &Token) -> Failure {
        Failure::error(format!(
            "Expected {expected} but found {} at character {}",
            found.kind.describe(),
            found.offset + 1
        ))
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.byte_at(self.position), b' ' | b'\t' | b'\n' | b'\r') {
            self.position += 1;
        }
        let offset = self.position;
        let single = |kind| Token { kind, offset };
        let byte = self.byte_at(offset);
        let kind = match byte {
            b'{' => TokenKind::ObjectBegin,
            b'}' => TokenKind::ObjectEnd,
            b'[' => TokenKind::ArrayBegin,
            b']' => TokenKind::ArrayEnd,
            b',' => TokenKind::Comma,
            b':' => TokenKind::Colon,
            0 => return single(TokenKind::End),
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.settings().decode_invalid_numbers && self.is_invalid_number() {
                    return self.error_here("invalid number");
                }
                return self.number_token();
            }
            b't' | b'f' | b'n' | b'i' | b'I' | b'N' | b'+' => {
                let rest = &self.text[offset..];
                let literal = if rest.starts_with(b"true") {
                    Some((TokenKind::Boolean(true), 4))
                } else if rest.starts_with(b"false") {
                    Some((TokenKind::Boolean(false), 5))
                } else if rest.starts_with(b"null") {
                    Some((TokenKind::Null, 4))
                } else {
                    None
                };
                if let Some((kind, length)) = literal {
                    self.position += length;
                    return single(kind);
                }
                // Only the spellings strtod takes that strict JSON does not
                // (inf, nan, a leading '+') are read as numbers here, so
                // other words stay "invalid token".
                if self.settings().decode_invalid_numbers && self.is_invalid_number() {
                    return self.number_token();
                }
                return self.error_here("invalid token");
            }
            _ => return self.error_here("invalid token"),
        };
        self.position += 1;
        single(kind)
    }

    /// Whether the number at the current position is one strict JSON
    /// rejects but strtod would read: a leading '+' or zero, hexadecimal,
    /// infinity or NaN.
    fn is_invalid_number(&self) -> bool {
        let mut at = self.position;
        match self.byte_at(at) {
            b'+' => return true,
            b'-' => at += 1,
            _ => {}
        }
        let first = self.byte_at(at);
        if first == b'0' {
            let second = self.byte_at(at + 1);
            return second | 0x20 == b'x' || second.is_ascii_digit();
        }
        // C compares a plain (signed) char here: bytes from 0x80 up count
        // as ordinary numbers and are left for strtod to reject.
        if (first as i8) <= b'9' as i8 {
            return false;
        }
        let word = [self.byte_at(at), self.byte_at(at + 1), self.byte_at(at + 2)].map(|b| b.to_ascii_lowercase());
        &word == b"inf" || &word == b"nan"
    }

    fn number_token(&mut self) -> Token {
        let offset = self.position;
        let mut end: *mut c_char = std::ptr::null_mut();
        // SAFETY: `start` is the Lua string, NUL-terminated, and `offset`
        // lies before its first NUL; strtod stops at that NUL at the latest.
        let (value, consumed) = unsafe {
            let begin = self.start.add(offset);
            let value = libc::strtod(begin, &mut end);
            (value, end.offset_from(begin) as usize)
        };
        if consumed == 0 {
            return self.error_here("invalid number");
        }
        self.position += consumed;
        Token { kind: TokenKind::Number(value), offset }
    }

    fn string_token(&mut self) -> Token {
        let offset = self.position;
        self.position += 1;
        self.scratch.clear();
        loop {
            let mut byte = self.byte_at(self.position);
            if byte == b'"' {
                break;
            }
            if byte == 0 {
                return self.error_here("unexpected end of string");
            }
            if byte == b'\\' {
                byte = match self.byte_at(self.position + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => b'\x08',
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => b'\x0c',
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        return self.error_here("invalid unicode escape code");
                    }
                    _ => return self.error_here("invalid escape code"),
                };
                self.position += 1;
            }
            self.scratch.push(byte);
            self.position += 1;
        }
        self.position += 1;
        Token { kind: TokenKind::String, offset }
    }

    /// Four hex digits at `offset`, or `None`.
    fn hex4(&self, offset: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |value, i| {
            let digit = (self.byte_at(offset + i) as char).to_digit(16)?;
            Some(value << 4 | digit)
        })
    }

    /// Decodes the `\uXXXX` escape at the current position (a UTF-16 unit,
    /// or a surrogate pair of two escapes) into UTF-8 and moves past it.
    /// Returns false, without moving, when it is not valid.
    fn unicode_escape(&mut self) -> bool {
        let Some(unit) = self.hex4(self.position + 2) else {
            return false;
        };
        let mut codepoint = unit;
        let mut length = 6;
        if unit & 0xF800 == 0xD800 {
            // A surrogate: it must be a high one followed by a low one.
            if unit & 0x400 != 0 || self.byte_at(self.position + 6) != b'\\' || self.byte_at(self.position + 7) != b'u'
            {
                return false;
            }
            let Some(low) = self.hex4(self.position + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            codepoint = (((unit & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            length = 12;
        }
        push_utf8(&mut self.scratch, codepoint);
        self.position += length;
        true
    }

    /// Nesting one level deeper: checks the depth limit and that the Lua
    /// stack has `slots` free.
    unsafe fn descend(&mut self, slots: c_int) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth <= self.settings().decode_max_depth && ffi::lua_checkstack(self.state, slots) != 0 {
            return Ok(());
        }
        Err(Failure::error(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.position
        )))
    }

    /// Pushes the value that starts with `token`. Nested containers are
    /// tracked in an explicit list rather than by recursion, so deep input
    /// cannot exhaust the thread's stack; the Lua stack is used as Lua
    /// CJSON uses it.
    unsafe fn value(&mut self, mut token: Token) -> Result<(), Failure> {
        let state = self.state;
        let mut open: Vec<OpenContainer> = Vec::new();
        'value: loop {
            match token.kind {
                TokenKind::String => push_bytes(state, &self.scratch),
                TokenKind::Number(number) => ffi::lua_pushnumber(state, number),
                TokenKind::Boolean(value) => ffi::lua_pushboolean(state, value as c_int),
                // A Lua table cannot hold nil, so JSON null is the NULL
                // pointer.
                TokenKind::Null => ffi::lua_pushlightuserdata(state, std::ptr::null_mut::<c_void>()),
                TokenKind::ObjectBegin => {
                    // Room for the table, a key and a value.
                    self.descend(3)?;
                    ffi::lua_createtable(state, 0, 0);
                    token = self.next_token();
                    if token.kind != TokenKind::ObjectEnd {
                        open.push(OpenContainer::Object);
                        token = self.object_key(token)?;
                        continue 'value;
                    }
                    self.depth -= 1;
                }
                TokenKind::ArrayBegin => {
                    // Room for the table and a value.
                    self.descend(2)?;
                    ffi::lua_createtable(state, 0, 0);
                    token = self.next_token();
                    if token.kind != TokenKind::ArrayEnd {
                        open.push(OpenContainer::Array { next_index: 1 });
                        continue 'value;
                    }
                    self.depth -= 1;
                }
                _ => return Err(self.unexpected("value", &token)),
            }
            // A complete value is on top of the stack: store it in its
            // container, then find the next value or close containers.
            loop {
                let Some(container) = open.last_mut() else {
                    return Ok(());
                };
                match container {
                    OpenContainer::Object => {
                        ffi::lua_rawset(state, -3);
                        token = self.next_token();
                        if token.kind != TokenKind::ObjectEnd {
                            if token.kind != TokenKind::Comma {
                                return Err(self.unexpected("comma or object end", &token));
                            }
                            token = self.next_token();
                            token = self.object_key(token)?;
                            continue 'value;
                        }
                    }
                    OpenContainer::Array { next_index } => {
                        ffi::lua_rawseti_(state, -2, *next_index);
                        *next_index = next_index.wrapping_add(1);
                        token = self.next_token();
                        if token.kind != TokenKind::ArrayEnd {
                            if token.kind != TokenKind::Comma {
                                return Err(self.unexpected("comma or array end", &token));
                            }
                            token = self.next_token();
                            continue 'value;
                        }
                    }
                }
                self.depth -= 1;
                open.pop();
            }
        }
    }

    /// Pushes the object key `token` must be, checks the colon after it
    /// and returns the token that starts the entry's value.
    unsafe fn object_key(&mut self, token: Token) -> Result<Token, Failure> {
        if token.kind != TokenKind::String {
            return Err(self.unexpected("object key string", &token));
        }
        push_bytes(self.state, &self.scratch);
        let token = self.next_token();
        if token.kind != TokenKind::Colon {
            return Err(self.unexpected("colon", &token));
        }
        Ok(self.next_token())
    }
}

/// An object or array being decoded, its table on the Lua stack.
enum OpenContainer {
    /// Its key, once read, sits above the table.
    Object,
    Array {
        next_index: c_int,
    },
}

/// Appends `codepoint` (at most 0x10FFFF) as UTF-8.
fn push_utf8(out: &mut Vec<u8>, codepoint: u32) {
    match codepoint {
        0..=0x7F => out.push(codepoint as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (codepoint >> 6) as u8, 0x80 | (codepoint & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (codepoint >> 12) as u8,
            0x80 | ((codepoint >> 6) & 0x3F) as u8,
            0x80 | (codepoint & 0x3F) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xF0 | (codepoint >> 18) as u8,
            0x80 | ((codepoint >> 12) & 0x3F) as u8,
            0x80 | ((codepoint >> 6) & 0x3F) as u8,
            0x80 | (codepoint & 0x3F) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_all;

    /// Scripts and their results as Valkey 8.0.1 returns them.
    const CASES: &[(&str, &[u8])] = &[
        (r#"return cjson.encode({1,2,3})"#, b"[1,2,3]"),
        (r#"return cjson.encode({})"#, b"{}"),
        (r#"return cjson.encode({a=1})"#, b"{\"a\":1}"),
        (r#"return cjson.encode({a={b={c={}}}})"#, b"{\"a\":{\"b\":{\"c\":{}}}}"),
        (r#"return cjson.encode('a/b"c\\d')"#, b"\"a\\/b\\\"c\\\\d\""),
        (r#"return cjson.encode('\0\1\2\8\9\10\11\12\13\14\31\127\128\255 ~')"#, b"\"\\u0000\\u0001\\u0002\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f\\u007f\x80\xff ~\""),
        (r#"return cjson.encode(0.1)"#, b"0.1"),
        (r#"return cjson.encode(1/3)"#, b"0.33333333333333"),
        (r#"return cjson.encode(-0.0)"#, b"-0"),
        (r#"return cjson.encode(100000000000000)"#, b"1e+14"),
        (r#"return cjson.encode(1e15)"#, b"1e+15"),
        (r#"return cjson.encode(123456789012345678)"#, b"1.2345678901235e+17"),
        (r#"return cjson.encode(3.14159265358979)"#, b"3.1415926535898"),
        (r#"return cjson.encode(1e-7)"#, b"1e-07"),
        (r#"return cjson.encode(-1.5e300)"#, b"-1.5e+300"),
        (r#"return cjson.encode(2^53)"#, b"9.007199254741e+15"),
        (r#"return cjson.encode(true) .. cjson.encode(false) .. cjson.encode(nil) .. cjson.encode(cjson.null)"#, b"truefalsenullnull"),
        (r#"return cjson.encode({1,nil,3})"#, b"[1,null,3]"),
        (r#"return cjson.encode({[1]=1,[2]=2,[4]=4})"#, b"[1,2,null,4]"),
        (r#"return cjson.encode({[10]=1})"#, b"[null,null,null,null,null,null,null,null,null,1]"),
        (r#"return select(2, pcall(cjson.encode, {[11]=1}))"#, b"Cannot serialise table: excessively sparse array"),
        (r#"return select(2, pcall(cjson.encode, {[1]=1,[2]=2,[20]=3}))"#, b"Cannot serialise table: excessively sparse array"),
        (r#"return cjson.encode({[0]=1})"#, b"{\"0\":1}"),
        (r#"return cjson.encode({[-1]=1})"#, b"{\"-1\":1}"),
        (r#"return cjson.encode({[1.5]=1})"#, b"{\"1.5\":1}"),
        (r#"return cjson.encode({[1]=1, x=2})"#, b"{\"1\":1,\"x\":2}"),
        (r#"return cjson.encode({[2^31]=1})"#, b"{\"2147483648\":1}"),
        (r#"return cjson.encode({[2^32+1]=1})"#, b"{\"4294967297\":1}"),
        (r#"return cjson.encode({[1]='a',[2]='b',[3]=cjson.null})"#, b"[\"a\",\"b\",null]"),
        (r#"return select(2, pcall(cjson.encode, {[true]=1}))"#, b"Cannot serialise boolean: table key must be a number or string"),
        (r#"return select(2, pcall(cjson.encode, function() end))"#, b"Cannot serialise function: type not supported"),
        (r#"return select(2, pcall(cjson.encode, coroutine.create(function() end)))"#, b"Cannot serialise thread: type not supported"),
        (r#"return select(2, pcall(cjson.encode, 0/0))"#, b"Cannot serialise number: must not be NaN or Inf"),
        (r#"return select(2, pcall(cjson.encode, 1/0))"#, b"Cannot serialise number: must not be NaN or Inf"),
        (r#"return select(2, pcall(cjson.encode, {-1/0}))"#, b"Cannot serialise number: must not be NaN or Inf"),
        (r#"return select(2, pcall(function() return cjson.encode(1/0) end))"#, b"user_script:1: Cannot serialise number: must not be NaN or Inf"),
        (r#"return select(2, pcall(cjson.encode))"#, b"bad argument #1 to '?' (expected 1 argument)"),
        (r#"return select(2, pcall(cjson.encode, 1, 2))"#, b"bad argument #1 to '?' (expected 1 argument)"),
        (r#"return select(2, pcall(function() return cjson.encode() end))"#, b"user_script:1: bad argument #1 to 'encode' (expected 1 argument)"),
        (r#"return select(2, pcall(function() local t = {} t[1] = t return cjson.encode(t) end))"#, b"user_script:1: Cannot serialise, excessive nesting (1001)"),
        (r#"return select(2, pcall(function() local t = {} local c = t for i=1,1000 do c[1] = {} c = c[1] end return cjson.encode(t) end))"#, b"user_script:1: Cannot serialise, excessive nesting (1001)"),
        (r#"local t = {} local c = t for i=1,999 do c[1] = {} c = c[1] end return #cjson.encode(t)"#, b"2000"),
        (r#"local c = cjson.new() c.encode_max_depth(2) return select(2, pcall(c.encode, {{{}}}))"#, b"Cannot serialise, excessive nesting (3)"),
        (r#"local c = cjson.new() return table.concat({tostring(c.encode_max_depth()), tostring(c.encode_max_depth(5)), tostring(c.decode_max_depth(7))}, ',')"#, b"1000,5,7"),
        (r#"local c = cjson.new() c.encode_number_precision(3) return c.encode({1/3, 12345, 0.5})"#, b"[0.333,1.23e+04,0.5]"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_number_precision, 15))"#, b"bad argument #1 to '?' (expected integer between 1 and 14)"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_number_precision, 0))"#, b"bad argument #1 to '?' (expected integer between 1 and 14)"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_max_depth, 0))"#, b"bad argument #1 to '?' (expected integer between 1 and 2147483647)"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_max_depth, 'x'))"#, b"bad argument #1 to '?' (number expected, got string)"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_max_depth, 1, 2))"#, b"bad argument #2 to '?' (found too many arguments)"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_sparse_array, 1, 2, 3, 4))"#, b"bad argument #4 to '?' (found too many arguments)"),
        (r#"local c = cjson.new() local a,b,d = c.encode_sparse_array() return tostring(a)..','..b..','..d"#, b"false,2,10"),
        (r#"local c = cjson.new() local a,b,d = c.encode_sparse_array(true, 3, 5) return tostring(a)..','..b..','..d..' '..c.encode({[1]=1,[20]=2})"#, b"true,3,5 {\"1\":1,\"20\":2}"),
        (r#"local c = cjson.new() c.encode_sparse_array(false, 0) return c.encode({[40]=1})"#, b"[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,1]"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_sparse_array, 'yes'))"#, b"bad argument #1 to '?' (invalid option 'yes')"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_sparse_array, 'on', -1))"#, b"bad argument #1 to '?' (expected integer between 0 and 2147483647)"),
        (r#"local c = cjson.new() local ok, e = pcall(c.encode_sparse_array, 'on', -1) return tostring(c.encode_sparse_array())"#, b"true"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_sparse_array, {}))"#, b"bad argument #1 to '?' (string expected, got table)"),
        (r#"local c = cjson.new() return tostring(c.encode_keep_buffer()) .. tostring(c.encode_keep_buffer(false)) .. tostring(c.encode_keep_buffer('on')) .. c.encode({1})"#, b"truefalsetrue[1]"),
        (r#"local c = cjson.new() return tostring(c.encode_invalid_numbers()) .. tostring(c.encode_invalid_numbers('null')) .. c.encode({0/0, 1/0, 1})"#, b"falsenull[null,null,1]"),
        (r#"local c = cjson.new() c.encode_invalid_numbers(true) return c.encode({0/0, 1/0, -1/0, 2})"#, b"[nan,inf,-inf,2]"),
        (r#"local c = cjson.new() c.encode_invalid_numbers('null') return c.encode({[1/0]=1})"#, b"{\"null\":1}"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_invalid_numbers, 'maybe'))"#, b"bad argument #1 to '?' (invalid option 'maybe')"),
        (r#"local c = cjson.new() return tostring(c.decode_invalid_numbers()) .. tostring(c.decode_invalid_numbers(false))"#, b"truefalse"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return select(2, pcall(c.decode, 'nan'))"#, b"Expected value but found invalid token at character 1"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return select(2, pcall(c.decode, '[01]'))"#, b"Expected value but found invalid number at character 2"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return select(2, pcall(c.decode, '-0x10'))"#, b"Expected value but found invalid number at character 1"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return select(2, pcall(c.decode, '+1'))"#, b"Expected value but found invalid token at character 1"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return select(2, pcall(c.decode, 'Infinity'))"#, b"Expected value but found invalid token at character 1"),
        (r#"local c = cjson.new() c.decode_invalid_numbers(false) return tostring(c.decode('-0.5e1'))"#, b"-5"),
        (r#"local c = cjson.new() c.encode_number_precision(5) return cjson.encode(1/3) .. ' ' .. c.encode(1/3)"#, b"0.33333333333333 0.33333"),
        (r#"return tostring(cjson.decode('123'))"#, b"123"),
        (r#"return tostring(cjson.decode(' -1.5e2 '))"#, b"-150"),
        (r#"return tostring(cjson.decode('0x1F'))"#, b"31"),
        (r#"return tostring(cjson.decode('+7'))"#, b"7"),
        (r#"return tostring(cjson.decode('007'))"#, b"7"),
        (r#"return tostring(cjson.decode('inf')) .. tostring(cjson.decode('-Infinity'))"#, b"inf-inf"),
        (r#"return tostring(cjson.decode('nan'))"#, b"nan"),
        (r#"return tostring(cjson.decode('1e400'))"#, b"inf"),
        (r#"return tostring(cjson.decode('1.'))"#, b"1"),
        (r#"return tostring(cjson.decode('-.5'))"#, b"-0.5"),
        (r#"return tostring(cjson.decode(42))"#, b"42"),
        (r#"return cjson.decode('"a\\u00e9\\u20ac\\ud83d\\ude00"')"#, b"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
        (r#"return cjson.decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"')"#, b"\"\\/\x08\x0c\n\r\t"),
        (r#"return cjson.decode('"\\u0041\\u0000B"')"#, b"A\0B"),
        (r#"return select(2, pcall(cjson.decode, '"\\ud83d"'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"\\ude00\\ud83d"'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"\\ud83d\\u0041"'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"ab\\u12G4"'))"#, b"Expected value but found invalid unicode escape code at character 4"),
        (r#"return select(2, pcall(cjson.decode, '"ab\\x"'))"#, b"Expected value but found invalid escape code at character 4"),
        (r#"return select(2, pcall(cjson.decode, '"abc'))"#, b"Expected value but found unexpected end of string at character 5"),
        (r#"return select(2, pcall(cjson.decode, ''))"#, b"Expected value but found T_END at character 1"),
        (r#"return select(2, pcall(cjson.decode, '   '))"#, b"Expected value but found T_END at character 4"),
        (r#"return select(2, pcall(cjson.decode, 'x'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, '[1,2'))"#, b"Expected comma or array end but found T_END at character 5"),
        (r#"return select(2, pcall(cjson.decode, '[1,]'))"#, b"Expected value but found T_ARR_END at character 4"),
        (r#"return select(2, pcall(cjson.decode, '[1 2]'))"#, b"Expected comma or array end but found T_NUMBER at character 4"),
        (r#"return select(2, pcall(cjson.decode, '{1:2}'))"#, b"Expected object key string but found T_NUMBER at character 2"),
        (r#"return select(2, pcall(cjson.decode, '{"a" 2}'))"#, b"Expected colon but found T_NUMBER at character 6"),
        (r#"return select(2, pcall(cjson.decode, '{"a":2,}'))"#, b"Expected object key string but found T_OBJ_END at character 8"),
        (r#"return select(2, pcall(cjson.decode, '{"a":2 "b"}'))"#, b"Expected comma or object end but found T_STRING at character 8"),
        (r#"return select(2, pcall(cjson.decode, '1 2'))"#, b"Expected the end but found T_NUMBER at character 3"),
        (r#"return select(2, pcall(cjson.decode, '[1] x'))"#, b"Expected the end but found invalid token at character 5"),
        (r#"return select(2, pcall(cjson.decode, 'tru'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, 'nul'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, '-'))"#, b"Expected value but found invalid number at character 1"),
        (r#"return select(2, pcall(cjson.decode, '0x'))"#, b"Expected the end but found invalid token at character 2"),
        (r#"return select(2, pcall(cjson.decode, 'infinit'))"#, b"Expected the end but found invalid token at character 4"),
        (r#"return select(2, pcall(cjson.decode, ']'))"#, b"Expected value but found T_ARR_END at character 1"),
        (r#"return select(2, pcall(cjson.decode, '{"a":}'))"#, b"Expected value but found T_OBJ_END at character 6"),
        (r#"return select(2, pcall(cjson.decode, 'truefalse'))"#, b"Expected the end but found T_BOOLEAN at character 5"),
        (r#"return select(2, pcall(cjson.decode, '[truefalse]'))"#, b"Expected comma or array end but found T_BOOLEAN at character 6"),
        (r#"return select(2, pcall(cjson.decode, 'a\0'))"#, b"JSON parser does not support UTF-16 or UTF-32"),
        (r#"return select(2, pcall(cjson.decode, '\0a'))"#, b"JSON parser does not support UTF-16 or UTF-32"),
        (r#"return tostring(cjson.decode('12\0abc'))"#, b"12"),
        (r#"return select(2, pcall(cjson.decode, '"a\0b"'))"#, b"Expected value but found unexpected end of string at character 3"),
        (r#"return select(2, pcall(cjson.decode))"#, b"bad argument #1 to '?' (expected 1 argument)"),
        (r#"return select(2, pcall(cjson.decode, nil))"#, b"bad argument #1 to '?' (string expected, got nil)"),
        (r#"return select(2, pcall(cjson.decode, {}))"#, b"bad argument #1 to '?' (string expected, got table)"),
        (r#"return select(2, pcall(cjson.decode, '1', '2'))"#, b"bad argument #1 to '?' (expected 1 argument)"),
        (r#"return select(2, pcall(function() return cjson.decode('[') end))"#, b"user_script:1: Expected value but found T_END at character 2"),
        (r#"return select(2, pcall(cjson.decode, string.rep('[', 1001) .. string.rep(']', 1001)))"#, b"Found too many nested data structures (1001) at character 1001"),
        (r#"return select(2, pcall(cjson.decode, string.rep('{"a":', 1001)))"#, b"Found too many nested data structures (1001) at character 5001"),
        (r#"return #cjson.encode(cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)))"#, b"2000"),
        (r#"local c = cjson.new() c.decode_max_depth(2) return select(2, pcall(c.decode, '[[[1]]]'))"#, b"Found too many nested data structures (3) at character 3"),
        (r#"local c = cjson.new() c.decode_max_depth(2) return select(2, pcall(c.decode, '  {"a":{"b":{}}}'))"#, b"Found too many nested data structures (3) at character 13"),
        (r#"local t = cjson.decode('{"a":[1,2,{"b":null}],"c":true,"d":"x"}') return type(t.a[3].b) .. tostring(t.a[3].b == cjson.null) .. tostring(t.c) .. t.d .. #t.a"#, b"userdatatruetruex3"),
        (r#"local t = cjson.decode('[1,null,3]') return tostring(#t) .. type(t[2])"#, b"3userdata"),
        (r#"local t = cjson.decode('{"1":2}') return tostring(t[1]) .. tostring(t['1'])"#, b"nil2"),
        (r#"return cjson.encode(cjson.decode('{"a":{"b":[1,2,3]}}'))"#, b"{\"a\":{\"b\":[1,2,3]}}"),
        (r#"return cjson.encode(cjson.decode('[ 1 , "x" , { } , [ ] , null , false ]'))"#, b"[1,\"x\",{},{},null,false]"),
        (r#"return cjson.encode(cjson.decode('"\\u00ff"'))"#, b"\"\xc3\xbf\""),
        (r#"return type(cjson.decode('[]')) .. cjson.encode(cjson.decode('[]')) .. cjson.encode(cjson.decode('{}'))"#, b"table{}{}"),
        (r#"return cjson.encode({cjson.null, true, 'x', 1.25, {}})"#, b"[null,true,\"x\",1.25,{}]"),
        (r#"return cjson.encode({a={1,2},b='c'})"#, b"{\"a\":[1,2],\"b\":\"c\"}"),
        (r#"return cjson.encode({{1,{2,{3}}}})"#, b"[[1,[2,[3]]]]"),
        (r#"return cjson.encode(cjson.decode('-0'))"#, b"-0"),
        (r#"return cjson.encode(cjson.decode('1E2'))"#, b"100"),
        (r#"return cjson.encode(cjson.decode('[1e-320, 5e-324]'))"#, b"[9.9998886718268e-321,4.9406564584125e-324]"),
        (r#"return cjson.encode({[1]=1,['2']=2})"#, b"{\"1\":1,\"2\":2}"),
        (r#"return cjson.encode(string.rep('x', 3))"#, b"\"xxx\""),
        (r#"return cjson.encode({n=123456789})"#, b"{\"n\":123456789}"),
        (r#"return tostring(cjson.encode_empty_table_as_object) .. tostring(cjson.decode_array_with_array_mt)"#, b"nilnil"),
        (r#"local t = {} for k in pairs(cjson) do t[#t+1] = k end return table.concat(t, ',')"#, b"_NAME,encode,decode_max_depth,_VERSION,decode_invalid_numbers,encode_keep_buffer,null,encode_number_precision,new,encode_max_depth,encode_invalid_numbers,decode,encode_sparse_array"),
        (r#"local t = {} for k in pairs(cjson.new()) do t[#t+1] = k end return table.concat(t, ',')"#, b"_NAME,encode,decode_max_depth,_VERSION,decode_invalid_numbers,encode_keep_buffer,null,encode_number_precision,new,encode_max_depth,encode_invalid_numbers,decode,encode_sparse_array"),
        (r#"return type(cjson.null) .. tostring(cjson.null == cjson.decode('null'))"#, b"userdatatrue"),
        (r#"return cjson._NAME .. ' ' .. cjson._VERSION"#, b"cjson 2.1.0"),
        (r#"local c = cjson.new() return tostring(c ~= cjson) .. tostring(c.null == cjson.null)"#, b"truetrue"),
        (r#"local c = cjson.new() c.encode_max_depth(1) return cjson.encode({{1}})"#, b"[[1]]"),
        (r#"return select(2, pcall(cjson.encode, {[{}]=1}))"#, b"Cannot serialise table: table key must be a number or string"),
        (r#"return select(2, pcall(cjson.encode, {a=function() end}))"#, b"Cannot serialise function: type not supported"),
        (r#"return cjson.encode({[1]=1,[2]=2,[3]=3,[4]=4,[5]=5,[6]=6,[7]=7,[8]=8,[9]=9,[10]=10,[11]=11,[12]=12,[26]=13})"#, b"[1,2,3,4,5,6,7,8,9,10,11,12,null,null,null,null,null,null,null,null,null,null,null,null,null,13]"),
        (r#"return select(2, pcall(cjson.encode, {[1]=1,[2]=2,[3]=3,[4]=4,[5]=5,[6]=6,[7]=7,[8]=8,[9]=9,[10]=10,[11]=11,[12]=12,[30]=13, [31]=1}))"#, b"Cannot serialise table: excessively sparse array"),
        (r#"return cjson.encode({alpha=1, beta=2, gamma=3, delta=4, epsilon=5})"#, b"{\"beta\":2,\"epsilon\":5,\"delta\":4,\"alpha\":1,\"gamma\":3}"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_keep_buffer, 1))"#, b"bad argument #1 to '?' (invalid option '1')"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_max_depth, 2^31))"#, b"bad argument #1 to '?' (expected integer between 1 and 2147483647)"),
        (r#"local c = cjson.new() return tostring(c.encode_max_depth(2^32 + 7))"#, b"7"),
        (r#"local c = cjson.new() return tostring(c.encode_max_depth(3.9))"#, b"3"),
        (r#"local c = cjson.new() return tostring(c.encode_max_depth('12'))"#, b"12"),
        (r#"local c = cjson.new() return tostring(c.encode_keep_buffer('off')) .. tostring(c.encode_invalid_numbers('on')) .. tostring(c.encode_invalid_numbers('off')) .. tostring(c.encode_invalid_numbers(false))"#, b"falsetruefalsefalse"),
        (r#"local c = cjson.new() c.decode_max_depth(100000) local ok, e = pcall(c.decode, string.rep('[', 5000) .. string.rep(']', 5000)) c.encode_max_depth(100000) return tostring(ok) .. #c.encode(e)"#, b"true10000"),
        (r#"local c = cjson.new() c.decode_max_depth(100000) local ok, e = pcall(c.decode, string.rep('{"a":', 5000)) return tostring(e)"#, b"Found too many nested data structures (4000) at character 19996"),
        (r#"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 5000 do x[1] = {} x = x[1] end local ok, e = pcall(c.encode, t) return tostring(ok) .. #e"#, b"true10002"),
        (r#"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 5000 do x.k = {} x = x.k end local ok, e = pcall(c.encode, t) return tostring(e)"#, b"Cannot serialise, excessive nesting (4000)"),
        (r#"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 2000 do x[1] = {} x = x[1] end return #c.encode(t)"#, b"4002"),
        (r#"local t = cjson.decode('{"a\\u0000b":1}') for k in pairs(t) do return k end"#, b"a\0b"),
        (r#"return cjson.encode(cjson.decode('{"x":[1,{"y":[true,false,null]}]}'))"#, b"{\"x\":[1,{\"y\":[true,false,null]}]}"),
        (r#"return cjson.encode(cjson.decode(' \t\r\n[ \t\r\n1 \t\r\n] \t\r\n'))"#, b"[1]"),
        (r#"return select(2, pcall(cjson.decode, '\v1'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, '[1]\v'))"#, b"Expected the end but found invalid token at character 4"),
        (r#"return select(2, pcall(cjson.decode, "'x'"))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, '"\\u"'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"\\ud800\\'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"\\ud800\\u'))"#, b"Expected value but found invalid unicode escape code at character 2"),
        (r#"return select(2, pcall(cjson.decode, '"\\'))"#, b"Expected value but found invalid escape code at character 2"),
        (r#"return cjson.decode('"\\uDBFF\\uDFFF"')"#, b"\xf4\x8f\xbf\xbf"),
        (r#"return cjson.decode('"\\u07FF\\u0800\\uFFFF"')"#, b"\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"),
        (r#"return select(2, pcall(cjson.decode, '{"a":1,"a":2'))"#, b"Expected comma or object end but found T_END at character 13"),
        (r#"return cjson.encode(cjson.decode('{"a":1,"a":2}'))"#, b"{\"a\":2}"),
        (r#"return tostring(cjson.decode('-0.0')) .. ',' .. tostring(cjson.decode('0.1e1')) .. ',' .. tostring(cjson.decode('0X1P4')) .. ',' .. tostring(cjson.decode('1e-400'))"#, b"-0,1,16,0"),
        (r#"return select(2, pcall(cjson.decode, '- 1'))"#, b"Expected value but found invalid number at character 1"),
        (r#"return select(2, pcall(cjson.decode, '--1'))"#, b"Expected value but found invalid number at character 1"),
        (r#"return tostring(cjson.decode('NaN')) .. tostring(cjson.decode('-nan')) .. tostring(cjson.decode('INF')) .. tostring(cjson.decode('+inf'))"#, b"nan-naninfinf"),
        (r#"return select(2, pcall(cjson.decode, 'nan(123)x'))"#, b"Expected the end but found invalid token at character 9"),
        (r#"return tostring(cjson.decode('nan(abc_1)'))"#, b"nan"),
        (r#"return select(2, pcall(cjson.decode, '+'))"#, b"Expected value but found invalid number at character 1"),
        (r#"return select(2, pcall(cjson.decode, '+x'))"#, b"Expected value but found invalid number at character 1"),
        (r#"return select(2, pcall(cjson.decode, 'Nope'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return select(2, pcall(cjson.decode, 'ixx'))"#, b"Expected value but found invalid token at character 1"),
        (r#"return cjson.encode(123.456) .. ' ' .. cjson.encode(-1e-300) .. ' ' .. cjson.encode(1e21) .. ' ' .. cjson.encode(0.000001) .. ' ' .. cjson.encode(12345678901234)"#, b"123.456 -1e-300 1e+21 1e-06 12345678901234"),
        (r#"local c = cjson.new() c.encode_number_precision(1) return c.encode({0.15, 25, 1e100, 9.5})"#, b"[0.1,2e+01,1e+100,1e+01]"),
        (r#"local c = cjson.new() c.encode_number_precision(14) c.encode_number_precision(10) return c.encode(math.pi)"#, b"3.141592654"),
        (r#"return cjson.encode({[1]=1,[2]=2,[3]=3,['n']=nil})"#, b"[1,2,3]"),
        (r#"return cjson.encode({1, 2, 3, [5]=5})"#, b"[1,2,3,null,5]"),
        (r#"return cjson.encode({[3]=3, [2]=2, [1]=1})"#, b"[1,2,3]"),
        (r#"local c = cjson.new() c.encode_sparse_array(true) return c.encode({[1]=1, [50]=2})"#, b"{\"1\":1,\"50\":2}"),
        (r#"local c = cjson.new() c.encode_sparse_array(nil, 1) return select(2, pcall(c.encode, {[1]=1, [12]=2}))"#, b"Cannot serialise table: excessively sparse array"),
        (r#"local c = cjson.new() c.encode_sparse_array(nil, nil, 20) return c.encode({[15]=1})"#, b"[null,null,null,null,null,null,null,null,null,null,null,null,null,null,1]"),
        (r#"local c = cjson.new() return select(2, pcall(c.encode_sparse_array, false, 2^31 + 3))"#, b"bad argument #1 to '?' (expected integer between 0 and 2147483647)"),
        (r#"local c = cjson.new() local a, b, d = c.encode_sparse_array(nil, 2^32 + 3) return tostring(a) .. b .. d"#, b"false310"),
        (r#"return cjson.encode({[-0.0]=1})"#, b"{\"-0\":1}"),
        (r#"return cjson.encode({['']=''})"#, b"{\"\":\"\"}"),
        (r#"return cjson.encode({[1e100]=1})"#, b"{\"1e+100\":1}"),
        (r#"local c = cjson.new() c.encode_sparse_array(true) return c.encode({[1e100]=1})"#, b"{\"1e+100\":1}"),
        (r#"local c = cjson.new() c.encode_sparse_array(true) return c.encode({[2^31]=1, [2^31+1]=2})"#, b"{\"2147483648\":1,\"2147483649\":2}"),
        (r#"local t = setmetatable({}, {__index = function() return 1 end}) return cjson.encode(t)"#, b"{}"),
        (r#"local t = setmetatable({1, 2}, {__len = function() return 10 end}) return cjson.encode(t)"#, b"[1,2]"),
        (r#"return cjson.encode({cmsgpack.unpack(cmsgpack.pack({}, {{}}, {a={}}))})"#, b"[{},[{}],{\"a\":{}}]"),
    ];

    #[test]
    fn scripts_see_what_valkey_scripts_see() {
        check_all(CASES);
    }
}
