//! Between RESP and Lua values, as Valkey converts them for scripts: a
//! command's reply becomes what `server.call` returns, and what a script
//! returns becomes its caller's reply.
//!
//! Command replies (RESP2, or RESP3 after `server.setresp(3)`):
//! integers become numbers, bulk strings strings, RESP2 nulls `false`,
//! arrays tables, a status `{ok=...}`, an error `{err=...}`; in RESP3 a
//! null is `nil`, booleans booleans, a map `{map={...}}`, a set
//! `{set={member=true}}`, a double `{double=n}`, a big number
//! `{big_number="..."}`, a verbatim string
//! `{verbatim_string={format=..., string=...}}`; attributes are skipped.
//!
//! Script results: strings are bulk strings, numbers integers (truncated),
//! `true` 1 and `false` null (real booleans when the script chose RESP3),
//! tables arrays up to their first nil unless they are one of the shapes
//! above, anything else null; written in the caller's protocol.
//!
//! Both directions use the raw Lua stack exactly as Valkey does, so the
//! same nesting depth exhausts it ("reached lua stack limit").

use std::ffi::{c_int, CStr};

use mlua::ffi;

use super::engine::{mark_counted, push_bytes, push_coded_error, string_at};
use super::libs::{ccast, until_nul};
use crate::reply::Reply;

// ---------------------------------------------------------------------------
// Replies to Lua
// ---------------------------------------------------------------------------

/// Pushes the Lua value of a complete reply (as ferrokey's own commands
/// write them; anything unreadable becomes nil).
///
/// # Safety
/// `l` must be a running Lua thread with room for one value.
pub unsafe fn push_reply(l: *mut ffi::lua_State, reply: &[u8]) {
    let mut parser = ReplyParser { bytes: reply, pos: 0 };
    if !parser.push_value(l) {
        ffi::lua_pushnil(l);
    }
}

struct ReplyParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ReplyParser<'a> {
    /// The text of the current line after its type byte, moving past it.
    fn line(&mut self) -> Option<&'a [u8]> {
        let start = self.pos + 1;
        let rest = self.bytes.get(start..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        self.pos = start + end + 2;
        Some(&rest[..end])
    }

    fn length(&mut self) -> Option<i64> {
        ferrokey_formats::resp::parse_i64(self.line()?)
    }

    /// A bulk payload of `len` bytes and its CRLF.
    fn payload(&mut self, len: usize) -> Option<&'a [u8]> {
        let data = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len + 2;
        Some(data)
    }

    /// Pushes the next value: true when exactly one value was pushed,
    /// false (nothing pushed) when the reply is unreadable or the Lua
    /// stack cannot grow.
    unsafe fn push_value(&mut self, l: *mut ffi::lua_State) -> bool {
        if ffi::lua_checkstack(l, 6) == 0 {
            return false;
        }
        let Some(&kind) = self.bytes.get(self.pos) else { return false };
        match kind {
            b'+' => {
                let Some(text) = self.line() else { return false };
                ffi::lua_newtable(l);
                ffi::lua_pushstring(l, c"ok".as_ptr());
                push_bytes(l, text);
                ffi::lua_settable(l, -3);
            }
            b'-' | b'!' => {
                let text = if kind == b'-' {
                    self.line()
                } else {
                    let Some(len) = self.length() else { return false };
                    self.payload(usize::try_from(len).unwrap_or(0))
                };
                let Some(text) = text else { return false };
                push_coded_error(l, text);
                mark_counted(l);
            }
            b':' => {
                let Some(n) = self.length() else { return false };
                ffi::lua_pushnumber(l, n as f64);
            }
            b'$' => {
                let Some(len) = self.length() else { return false };
                if len < 0 {
                    ffi::lua_pushboolean(l, 0);
                } else {
                    let Some(data) = self.payload(len as usize) else { return false };
                    push_bytes(l, data);
                }
            }
            b'*' | b'>' => {
                let Some(len) = self.length() else { return false };
                if len < 0 {
                    ffi::lua_pushboolean(l, 0);
                    return true;
                }
                ffi::lua_newtable(l);
                for j in 0..len {
                    ffi::lua_pushnumber(l, (j + 1) as f64);
                    if !self.push_value(l) {
                        ffi::lua_pop(l, 2);
                        return false;
                    }
                    ffi::lua_settable(l, -3);
                }
            }
            b'%' => {
                let Some(len) = self.length() else { return false };
                open_wrapper(l, c"map");
                for _ in 0..len {
                    if !self.push_value(l) {
                        ffi::lua_pop(l, 3);
                        return false;
                    }
                    if !self.push_value(l) {
                        ffi::lua_pop(l, 4);
                        return false;
                    }
                    set_unless_nil_key(l);
                }
                ffi::lua_settable(l, -3);
            }
            b'~' => {
                let Some(len) = self.length() else { return false };
                open_wrapper(l, c"set");
                for _ in 0..len {
                    if !self.push_value(l) {
                        ffi::lua_pop(l, 3);
                        return false;
                    }
                    ffi::lua_pushboolean(l, 1);
                    set_unless_nil_key(l);
                }
                ffi::lua_settable(l, -3);
            }
            b'_' => {
                if self.line().is_none() {
                    return false;
                }
                ffi::lua_pushnil(l);
            }
            b'#' => {
                let Some(text) = self.line() else { return false };
                ffi::lua_pushboolean(l, (text == b"t") as c_int);
            }
            b',' => {
                let Some(text) = self.line() else { return false };
                let value = std::str::from_utf8(text).ok().and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
                ffi::lua_newtable(l);
                ffi::lua_pushstring(l, c"double".as_ptr());
                ffi::lua_pushnumber(l, value);
                ffi::lua_settable(l, -3);
            }
            b'(' => {
                let Some(text) = self.line() else { return false };
                ffi::lua_newtable(l);
                ffi::lua_pushstring(l, c"big_number".as_ptr());
                push_bytes(l, text);
                ffi::lua_settable(l, -3);
            }
            b'=' => {
                let Some(len) = self.length() else { return false };
                let Some(data) = self.payload(usize::try_from(len).unwrap_or(0)) else { return false };
                let (format, text) = if data.len() >= 4 { (&data[..3], &data[4..]) } else { (data, &data[..0]) };
                ffi::lua_newtable(l);
                ffi::lua_pushstring(l, c"verbatim_string".as_ptr());
                ffi::lua_newtable(l);
                ffi::lua_pushstring(l, c"string".as_ptr());
                push_bytes(l, text);
                ffi::lua_settable(l, -3);
                ffi::lua_pushstring(l, c"format".as_ptr());
                push_bytes(l, format);
                ffi::lua_settable(l, -3);
                ffi::lua_settable(l, -3);
            }
            b'|' => {
                // Attributes are not shown to scripts: the value after them is.
                let Some(len) = self.length() else { return false };
                for _ in 0..len.saturating_mul(2) {
                    if !self.skip_value() {
                        return false;
                    }
                }
                return self.push_value(l);
            }
            _ => return false,
        }
        true
    }

    /// Moves past the next value without converting it.
    fn skip_value(&mut self) -> bool {
        let Some(&kind) = self.bytes.get(self.pos) else { return false };
        match kind {
            b'$' | b'=' | b'!' => match self.length() {
                Some(len) if len >= 0 => self.payload(len as usize).is_some(),
                Some(_) => true,
                None => false,
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let Some(len) = self.length() else { return false };
                let items = if kind == b'%' || kind == b'|' { len.saturating_mul(2) } else { len };
                (0..items).all(|_| self.skip_value())
            }
            _ => self.line().is_some(),
        }
    }
}

/// Pushes `{name = {}}` and, above it, the key and inner table, ready for
/// the inner table to be filled and then set.
unsafe fn open_wrapper(l: *mut ffi::lua_State, name: &CStr) {
    ffi::lua_newtable(l);
    ffi::lua_pushstring(l, name.as_ptr());
    ffi::lua_newtable(l);
}

/// `t[key] = value` for the key and value at the top, where `t` is below
/// them; a nil key (which Lua refuses) is dropped.
unsafe fn set_unless_nil_key(l: *mut ffi::lua_State) {
    if ffi::lua_isnil(l, -2) != 0 {
        ffi::lua_pop(l, 2);
    } else {
        ffi::lua_settable(l, -3);
    }
}

// ---------------------------------------------------------------------------
// Lua to replies
// ---------------------------------------------------------------------------

/// What an error table (`{err=...}` and what Valkey adds to it) says.
pub(crate) struct ErrorInfo {
    pub message: Option<Vec<u8>>,
    pub source: Option<Vec<u8>>,
    pub line: Option<Vec<u8>>,
    /// Already counted in the error statistics (a command's error).
    pub counted: bool,
}

/// Reads the error table at the top of the stack, as Valkey does (through
/// metamethods, so the caller must be protected). Strings are read as C
/// strings, up to a NUL.
pub(crate) unsafe fn error_info(l: *mut ffi::lua_State) -> ErrorInfo {
    ffi::lua_checkstack(l, 4);
    // Every field is fetched before anything is copied into Rust, so that
    // a raising metamethod leaves nothing owned behind.
    ffi::lua_getfield(l, -1, c"err".as_ptr());
    ffi::lua_getfield(l, -2, c"source".as_ptr());
    ffi::lua_getfield(l, -3, c"line".as_ptr());
    ffi::lua_getfield(l, -4, c"ignore_error_stats_update".as_ptr());
    let text = |index: c_int| -> Option<Vec<u8>> {
        if ffi::lua_isstring(l, index) != 0 {
            string_at(l, index).map(|s| until_nul(s).to_vec())
        } else {
            None
        }
    };
    let info = ErrorInfo {
        message: text(-4),
        source: text(-3),
        line: text(-2),
        counted: ffi::lua_isboolean(l, -1) != 0 && ffi::lua_toboolean(l, -1) != 0,
    };
    ffi::lua_pop(l, 4);
    info
}

/// Writes the value at the top of the stack as a reply and pops it.
/// `script_resp3` is the protocol the script chose with `server.setresp`
/// (it decides how booleans come out); `count_error` is told about each
/// error reply that must be counted in the statistics.
///
/// Valkey converts recursively; this walks the same way with an explicit
/// list of the aggregates being written, keeping on the Lua stack exactly
/// what the recursion would (so Lua's stack limit strikes at the same
/// depth) without nesting Rust calls as deep as the value.
///
/// # Safety
/// Runs metamethods of error tables: the caller must be protected.
pub unsafe fn write_value(
    l: *mut ffi::lua_State,
    out: &mut Reply,
    script_resp3: bool,
    count_error: &mut dyn FnMut(&[u8]),
) {
    let mut open: Vec<Aggregate> = Vec::new();
    // Whether the value at the top of the Lua stack is still to be written.
    let mut pending = true;
    loop {
        if pending {
            pending = false;
            if let Some(aggregate) = begin_value(l, out, script_resp3, count_error) {
                open.push(aggregate);
            }
        }
        let Some(current) = open.last_mut() else { return };
        match current {
            Aggregate::Array { next, len } => {
                if *next <= *len {
                    ffi::lua_rawgeti(l, -1, *next as _);
                    *next += 1;
                    pending = true;
                } else {
                    ffi::lua_pop(l, 1);
                    open.pop();
                }
            }
            // Stack: table, map, last key.
            Aggregate::Map { value_next } => {
                if *value_next {
                    // Stack: table, map, key, value.
                    *value_next = false;
                    pending = true;
                } else if ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pushvalue(l, -2);
                    *value_next = true;
                    pending = true;
                } else {
                    ffi::lua_pop(l, 2);
                    open.pop();
                }
            }
            // Stack: table, set, last member.
            Aggregate::Set => {
                if ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pop(l, 1);
                    ffi::lua_pushvalue(l, -1);
                    pending = true;
                } else {
                    ffi::lua_pop(l, 2);
                    open.pop();
                }
            }
        }
    }
}

/// An aggregate being written by [`write_value`].
enum Aggregate {
    /// Elements `next..=len` of the table at the top are still to come.
    Array {
        next: i64,
        len: i64,
    },
    /// A map's pairs; `value_next` when its key was just written.
    Map {
        value_next: bool,
    },
    Set,
}

/// Writes the value at the top of the stack, popping it, unless it is an
/// array, map or set: then its header is written, the stack is set up to
/// walk it, and what to walk is returned.
unsafe fn begin_value(
    l: *mut ffi::lua_State,
    out: &mut Reply,
    script_resp3: bool,
    count_error: &mut dyn FnMut(&[u8]),
) -> Option<Aggregate> {
    let kind = ffi::lua_type(l, -1);
    if ffi::lua_checkstack(l, 4) == 0 {
        let message = b"ERR reached lua stack limit";
        count_error(message);
        out.error_bytes(message);
        ffi::lua_pop(l, 1);
        return None;
    }
    match kind {
        ffi::LUA_TSTRING => out.bulk(string_at(l, -1).unwrap_or_default()),
        ffi::LUA_TBOOLEAN => {
            let value = ffi::lua_toboolean(l, -1) != 0;
            if script_resp3 {
                out.boolean(value);
            } else if value {
                out.int(1);
            } else {
                out.null();
            }
        }
        ffi::LUA_TNUMBER => out.int(ccast::to_i64(ffi::lua_tonumber(l, -1))),
        ffi::LUA_TTABLE => return begin_table(l, out, count_error),
        _ => out.null(),
    }
    ffi::lua_pop(l, 1);
    None
}

/// Pushes `table[name]` (raw) for the table at the top and returns its type.
unsafe fn raw_field(l: *mut ffi::lua_State, name: &CStr) -> c_int {
    ffi::lua_pushstring(l, name.as_ptr());
    ffi::lua_rawget(l, -2);
    ffi::lua_type(l, -1)
}

/// The table case of [`begin_value`]: one of the special shapes (written
/// and popped here), or an aggregate to walk.
unsafe fn begin_table(
    l: *mut ffi::lua_State,
    out: &mut Reply,
    count_error: &mut dyn FnMut(&[u8]),
) -> Option<Aggregate> {
    if raw_field(l, c"err") == ffi::LUA_TSTRING {
        ffi::lua_pop(l, 1);
        let info = error_info(l);
        let mut message = info.message.unwrap_or_default();
        while message.last().is_some_and(|&b| b == b'\r' || b == b'\n') {
            message.pop();
        }
        if !info.counted {
            count_error(&message);
        }
        out.error_bytes(&message);
        ffi::lua_pop(l, 1);
        return None;
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"ok") == ffi::LUA_TSTRING {
        out.simple_bytes(until_nul(string_at(l, -1).unwrap_or_default()));
        ffi::lua_pop(l, 2);
        return None;
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"double") == ffi::LUA_TNUMBER {
        out.double_text(crate::double::format(ffi::lua_tonumber(l, -1)).as_str().as_bytes());
        ffi::lua_pop(l, 2);
        return None;
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"big_number") == ffi::LUA_TSTRING {
        let digits: Vec<u8> = string_at(l, -1)
            .unwrap_or_default()
            .iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
            .collect();
        if out.resp3 {
            out.buf.push(b'(');
            out.buf.extend_from_slice(&digits);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(&digits);
        }
        ffi::lua_pop(l, 2);
        return None;
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"verbatim_string") == ffi::LUA_TTABLE {
        if raw_field(l, c"format") == ffi::LUA_TSTRING {
            if raw_field_below(l, c"string", -3) == ffi::LUA_TSTRING {
                // The format is read as a C string and three bytes of it
                // are sent (NUL bytes when it is shorter).
                let mut format = [0u8; 3];
                let given = until_nul(string_at(l, -2).unwrap_or_default());
                let n = given.len().min(3);
                format[..n].copy_from_slice(&given[..n]);
                write_verbatim(out, &format, string_at(l, -1).unwrap_or_default());
                ffi::lua_pop(l, 4);
                return None;
            }
            ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"map") == ffi::LUA_TTABLE {
        out.map(count_pairs(l));
        ffi::lua_pushnil(l);
        return Some(Aggregate::Map { value_next: false });
    }
    ffi::lua_pop(l, 1);

    if raw_field(l, c"set") == ffi::LUA_TTABLE {
        out.set(count_pairs(l));
        ffi::lua_pushnil(l);
        return Some(Aggregate::Set);
    }
    ffi::lua_pop(l, 1);

    // An array: the elements from 1 up to the first nil.
    let mut len: i64 = 0;
    loop {
        ffi::lua_rawgeti(l, -1, (len + 1) as _);
        let end = ffi::lua_isnil(l, -1) != 0;
        ffi::lua_pop(l, 1);
        if end {
            break;
        }
        len += 1;
    }
    out.array(len as usize);
    Some(Aggregate::Array { next: 1, len })
}

/// Pushes `table[name]` (raw) and returns its type, for the table at
/// `table_index` once the key is pushed.
unsafe fn raw_field_below(l: *mut ffi::lua_State, name: &CStr, table_index: c_int) -> c_int {
    ffi::lua_pushstring(l, name.as_ptr());
    ffi::lua_rawget(l, table_index);
    ffi::lua_type(l, -1)
}

/// How many pairs the table at the top holds.
unsafe fn count_pairs(l: *mut ffi::lua_State) -> usize {
    let mut n = 0;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        ffi::lua_pop(l, 1);
        n += 1;
    }
    n
}

fn write_verbatim(out: &mut Reply, format: &[u8; 3], text: &[u8]) {
    if !out.resp3 {
        out.bulk(text);
        return;
    }
    out.buf.push(b'=');
    out.buf.extend_from_slice(itoa::Buffer::new().format(text.len() + 4).as_bytes());
    out.buf.extend_from_slice(b"\r\n");
    out.buf.extend_from_slice(format);
    out.buf.push(b':');
    out.buf.extend_from_slice(text);
    out.buf.extend_from_slice(b"\r\n");
}
