//! The four C libraries Valkey's Lua state preloads for scripts: `cjson`,
//! `cmsgpack`, `struct` and `bit`, rewritten in Rust against the raw Lua 5.1
//! C API so that scripts see exactly what they see under Valkey 8.0.1: the
//! same results byte for byte, the same error texts (including the
//! `user_script:1: ` position prefix `luaL_error` adds and the
//! `bad argument #N to 'name'` texts `luaL_argerror` builds), the same Lua
//! stack limits and the same table layouts (so `pairs` order matches).
//!
//! Every library function is an `extern "C-unwind"` Lua C function. Lua
//! reports errors by `longjmp`, which must never cross a Rust frame that
//! still owns something to drop. So each function does its work in a helper
//! that returns `Result<_, Failure>` and only raises, through [`raise`],
//! once that helper has returned and its buffers are gone. Lua API calls
//! that could raise on their own (argument checks, `luaL_checkstack`,
//! setting a nil table key) are replaced by non-raising checks that produce
//! the same `Failure`. The one exception is running out of memory inside a
//! Lua allocation, which unwinds like in C and leaks the Rust buffer of the
//! call in progress.

use std::ffi::{c_char, c_int, CStr};

use mlua::ffi;

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

/// Creates the globals `cjson`, `struct`, `cmsgpack` and `bit` (in the
/// order Valkey loads them) in `lua`'s global table.
pub fn register_all(lua: &mlua::Lua) -> mlua::Result<()> {
    // SAFETY: the closure runs inside a protected call on the state's main
    // thread; each opener leaves the stack as it found it.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            cjson::open(state);
            structlib::open(state);
            cmsgpack::open(state);
            bit::open(state);
        })
    }
}

/// A Lua error, described so that it can be raised after the Rust state of
/// the failing call has been dropped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `luaL_error(msg)`: the message gets the caller's position prefix.
    Error(Vec<u8>),
    /// An error raised by the Lua core itself while a C function runs
    /// (such as "table index is nil"): no position prefix.
    Runtime(&'static str),
    /// `luaL_argerror(arg, msg)`.
    BadArgument(c_int, Vec<u8>),
    /// `luaL_typerror(arg, expected)`, e.g. "number expected, got nil".
    WrongType(c_int, &'static CStr),
}

impl Failure {
    pub(crate) fn error(message: impl Into<Vec<u8>>) -> Failure {
        Failure::Error(message.into())
    }

    pub(crate) fn bad_argument(arg: c_int, message: impl Into<Vec<u8>>) -> Failure {
        Failure::BadArgument(arg, message.into())
    }

    /// `luaL_checkstack`'s failure.
    pub(crate) fn stack_overflow(what: &str) -> Failure {
        Failure::Error(format!("stack overflow ({what})").into_bytes())
    }
}

/// Raises `failure` as a Lua error; never returns. The message is copied
/// onto the Lua stack before the Rust copy is dropped, so nothing owned by
/// Rust is live when Lua unwinds.
pub(crate) unsafe fn raise(state: *mut ffi::lua_State, failure: Failure) -> c_int {
    // The failing call's stack may be full (stack overflows are among the
    // failures) and is discarded by the error anyway, so it is cleared to
    // make room for the message. Only a type error still needs its
    // argument, and those happen before anything is pushed.
    if !matches!(failure, Failure::WrongType(..)) {
        ffi::lua_settop(state, 0);
    }
    match failure {
        Failure::Error(message) => {
            ffi::luaL_where(state, 1);
            push_bytes(state, &message);
            drop(message);
            ffi::lua_concat(state, 2);
            ffi::lua_error(state)
        }
        Failure::Runtime(message) => {
            push_bytes(state, message.as_bytes());
            ffi::lua_error(state)
        }
        Failure::BadArgument(arg, message) => {
            push_bytes(state, &message);
            drop(message);
            // The message stays alive on the stack while luaL_argerror
            // formats it.
            let text = ffi::lua_tolstring(state, -1, std::ptr::null_mut());
            ffi::luaL_argerror(state, arg, text)
        }
        Failure::WrongType(arg, expected) => ffi::luaL_typerror(state, arg, expected.as_ptr()),
    }
}

/// Runs a library function body and turns its failure into a Lua error.
pub(crate) unsafe fn finish(state: *mut ffi::lua_State, result: Result<c_int, Failure>) -> c_int {
    match result {
        Ok(results) => results,
        Err(failure) => raise(state, failure),
    }
}

pub(crate) unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring_(state, bytes.as_ptr() as *const c_char, bytes.len());
}

/// The bytes of the string (or number, converted in place as Lua does) at
/// `index`, or `None` for any other type. The slice borrows the Lua string,
/// which must stay on the stack while the slice is used.
pub(crate) unsafe fn string_at<'a>(state: *mut ffi::lua_State, index: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let text = ffi::lua_tolstring(state, index, &mut len);
    if text.is_null() {
        None
    } else {
        Some(std::slice::from_raw_parts(text as *const u8, len))
    }
}

/// `luaL_checklstring` without raising.
pub(crate) unsafe fn check_string<'a>(state: *mut ffi::lua_State, arg: c_int) -> Result<&'a [u8], Failure> {
    string_at(state, arg).ok_or(Failure::WrongType(arg, c"string"))
}

/// `luaL_checknumber` without raising.
pub(crate) unsafe fn check_number(state: *mut ffi::lua_State, arg: c_int) -> Result<f64, Failure> {
    let number = ffi::lua_tonumber(state, arg);
    if number == 0.0 && ffi::lua_isnumber(state, arg) == 0 {
        return Err(Failure::WrongType(arg, c"number"));
    }
    Ok(number)
}

/// `luaL_checkinteger` without raising (Lua 5.1 truncates the number).
pub(crate) unsafe fn check_integer(state: *mut ffi::lua_State, arg: c_int) -> Result<i64, Failure> {
    let integer = ffi::lua_tointeger_(state, arg);
    if integer == 0 && ffi::lua_isnumber(state, arg) == 0 {
        return Err(Failure::WrongType(arg, c"number"));
    }
    Ok(integer)
}

/// `luaL_optinteger` without raising.
pub(crate) unsafe fn opt_integer(state: *mut ffi::lua_State, arg: c_int, default: i64) -> Result<i64, Failure> {
    if ffi::lua_type(state, arg) <= ffi::LUA_TNIL {
        Ok(default)
    } else {
        check_integer(state, arg)
    }
}

/// `luaL_checkstack(state, slots, what)` without raising.
pub(crate) unsafe fn check_stack(state: *mut ffi::lua_State, slots: c_int, what: &str) -> Result<(), Failure> {
    if ffi::lua_checkstack(state, slots) == 0 {
        return Err(Failure::stack_overflow(what));
    }
    Ok(())
}

/// The part of `bytes` C code sees when it reads them as a C string.
pub(crate) fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// The C casts of a double to integer types as Valkey's x86-64 build
/// performs them. Several of these libraries cast doubles that can be out
/// of range; the hardware conversion then yields its "integer indefinite"
/// value (the lowest integer of the width) instead of saturating as Rust's
/// `as` does, and scripts can observe the difference.
pub(crate) mod ccast {
    /// `(int)x`.
    pub fn to_i32(x: f64) -> i32 {
        if (-2147483648.0..2147483648.0).contains(&x.trunc()) {
            x as i32
        } else {
            i32::MIN
        }
    }

    /// `(int64_t)x` / `(long)x`.
    pub fn to_i64(x: f64) -> i64 {
        if (-9223372036854775808.0..9223372036854775808.0).contains(&x) {
            x as i64
        } else {
            i64::MIN
        }
    }

    /// `(uint64_t)x` / `(size_t)x`: below 2^63 (and for NaN) the signed
    /// conversion is used; from 2^63 up, 2^63 is subtracted first and the
    /// top bit flipped back.
    pub fn to_u64(x: f64) -> u64 {
        const TWO_63: f64 = 9223372036854775808.0;
        if x >= TWO_63 {
            (to_i64(x - TWO_63) as u64) ^ (1 << 63)
        } else {
            to_i64(x) as u64
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use mlua::Lua;

    /// A Lua state with the four libraries, as a script would see them.
    pub fn lua() -> Lua {
        let lua = Lua::new();
        super::register_all(&lua).expect("register the libraries");
        lua
    }

    /// Runs `code` as a script named like Valkey's (`@user_script`, which
    /// gives error positions the `user_script:1: ` prefix) and returns its
    /// result converted to a string. Errors are returned as their message.
    pub fn run(lua: &Lua, code: &str) -> Vec<u8> {
        match lua.load(code).set_name("@user_script").eval::<mlua::Value>() {
            Ok(mlua::Value::String(text)) => text.as_bytes().to_vec(),
            Ok(mlua::Value::Integer(n)) => n.to_string().into_bytes(),
            Ok(mlua::Value::Number(n)) => lua
                .load("return tostring(...)")
                .call::<mlua::LuaString>(n)
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default(),
            Ok(mlua::Value::Boolean(b)) => b.to_string().into_bytes(),
            Ok(mlua::Value::Nil) => b"nil".to_vec(),
            Ok(other) => format!("<{}>", other.type_name()).into_bytes(),
            Err(mlua::Error::RuntimeError(message)) => message.into_bytes(),
            Err(other) => format!("<error {other}>").into_bytes(),
        }
    }

    /// Asserts each `(script, expected result)` pair; the expectations were
    /// observed from Valkey 8.0.1 running the same script.
    pub fn check_all(cases: &[(&str, &[u8])]) {
        let lua = lua();
        let mut failures = Vec::new();
        for (code, expected) in cases {
            let got = run(&lua, code);
            if got != *expected {
                failures.push(format!(
                    "{code}\n   expected {:?}\n   got      {:?}",
                    String::from_utf8_lossy(expected),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }
}
