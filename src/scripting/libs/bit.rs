//! `bit`: LuaBitOp 1.0.2 as Valkey embeds it (global `bit`). Numbers are
//! taken modulo 2^32 (rounded to the nearest integer first) and results
//! come back as signed 32-bit values.

use std::ffi::c_int;

use mlua::ffi;

use super::{finish, push_bytes, Failure};

/// Creates the global `bit` with `luaL_register`, as LuaBitOp does.
pub(crate) unsafe fn open(state: *mut ffi::lua_State) {
    let functions = [
        ffi::luaL_Reg { name: c"tobit".as_ptr(), func: tobit },
        ffi::luaL_Reg { name: c"bnot".as_ptr(), func: bnot },
        ffi::luaL_Reg { name: c"band".as_ptr(), func: band },
        ffi::luaL_Reg { name: c"bor".as_ptr(), func: bor },
        ffi::luaL_Reg { name: c"bxor".as_ptr(), func: bxor },
        ffi::luaL_Reg { name: c"lshift".as_ptr(), func: lshift },
        ffi::luaL_Reg { name: c"rshift".as_ptr(), func: rshift },
        ffi::luaL_Reg { name: c"arshift".as_ptr(), func: arshift },
        ffi::luaL_Reg { name: c"rol".as_ptr(), func: rol },
        ffi::luaL_Reg { name: c"ror".as_ptr(), func: ror },
        ffi::luaL_Reg { name: c"bswap".as_ptr(), func: bswap },
        ffi::luaL_Reg { name: c"tohex".as_ptr(), func: tohex },
        // The list ends at the entry without a name; its function is
        // never looked at.
        ffi::luaL_Reg { name: std::ptr::null(), func: tohex },
    ];
    ffi::luaL_register(state, c"bit".as_ptr(), functions.as_ptr());
    ffi::lua_settop(state, -2);
}

/// Argument `index` as 32 bits: adding 2^52 + 2^51 puts the number,
/// rounded to an integer, in the low bits of the double's mantissa.
/// Anything that is not a number (or a numeric string) is refused.
unsafe fn bits_arg(state: *mut ffi::lua_State, index: c_int) -> Result<u32, Failure> {
    let number = ffi::lua_tonumber(state, index);
    let bits = (number + 6755399441055744.0).to_bits() as u32;
    if bits == 0 && ffi::lua_isnumber(state, index) == 0 {
        return Err(Failure::WrongType(index, c"number"));
    }
    Ok(bits)
}

/// Returns `bits` to Lua as a signed 32-bit number.
unsafe fn push_bits(state: *mut ffi::lua_State, bits: u32) -> c_int {
    ffi::lua_pushnumber(state, bits as i32 as f64);
    1
}

unsafe fn unary(state: *mut ffi::lua_State, operation: fn(u32) -> u32) -> c_int {
    let result = bits_arg(state, 1).map(|bits| push_bits(state, operation(bits)));
    finish(state, result)
}

/// Folds every argument into the first, taking them from the last one
/// down (which decides the argument a type error names).
unsafe fn fold(state: *mut ffi::lua_State, operation: fn(u32, u32) -> u32) -> c_int {
    let result = (|| {
        let mut bits = bits_arg(state, 1)?;
        for index in (2..=ffi::lua_gettop(state)).rev() {
            bits = operation(bits, bits_arg(state, index)?);
        }
        Ok(push_bits(state, bits))
    })();
    finish(state, result)
}

/// A shift or rotation by the second argument modulo 32.
unsafe fn shift(state: *mut ffi::lua_State, operation: fn(u32, u32) -> u32) -> c_int {
    let result = (|| {
        let bits = bits_arg(state, 1)?;
        let count = bits_arg(state, 2)? & 31;
        Ok(push_bits(state, operation(bits, count)))
    })();
    finish(state, result)
}

unsafe extern "C-unwind" fn tobit(state: *mut ffi::lua_State) -> c_int {
    unary(state, |bits| bits)
}

unsafe extern "C-unwind" fn bnot(state: *mut ffi::lua_State) -> c_int {
    unary(state, |bits| !bits)
}

unsafe extern "C-unwind" fn bswap(state: *mut ffi::lua_State) -> c_int {
    unary(state, u32::swap_bytes)
}

unsafe extern "C-unwind" fn band(state: *mut ffi::lua_State) -> c_int {
    fold(state, |a, b| a & b)
}

unsafe extern "C-unwind" fn bor(state: *mut ffi::lua_State) -> c_int {
    fold(state, |a, b| a | b)
}

unsafe extern "C-unwind" fn bxor(state: *mut ffi::lua_State) -> c_int {
    fold(state, |a, b| a ^ b)
}

unsafe extern "C-unwind" fn lshift(state: *mut ffi::lua_State) -> c_int {
    shift(state, |bits, count| bits << count)
}

unsafe extern "C-unwind" fn rshift(state: *mut ffi::lua_State) -> c_int {
    shift(state, |bits, count| bits >> count)
}

unsafe extern "C-unwind" fn arshift(state: *mut ffi::lua_State) -> c_int {
    shift(state, |bits, count| ((bits as i32) >> count) as u32)
}

unsafe extern "C-unwind" fn rol(state: *mut ffi::lua_State) -> c_int {
    shift(state, u32::rotate_left)
}

unsafe extern "C-unwind" fn ror(state: *mut ffi::lua_State) -> c_int {
    shift(state, u32::rotate_right)
}

/// `bit.tohex(x[, n])`: the low `|n|` hex digits of `x` (8 by default, at
/// most 8), upper case when `n` is negative.
unsafe extern "C-unwind" fn tohex(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let mut bits = bits_arg(state, 1)?;
        let requested = if ffi::lua_type(state, 2) == ffi::LUA_TNONE { 8 } else { bits_arg(state, 2)? as i32 };
        let digits: &[u8; 16] = if requested < 0 { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
        let count = requested.unsigned_abs().min(8) as usize;
        let mut text = [0u8; 8];
        for slot in text[..count].iter_mut().rev() {
            *slot = digits[(bits & 15) as usize];
            bits >>= 4;
        }
        push_bytes(state, &text[..count]);
        Ok(1)
    })();
    finish(state, result)
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_all;

    /// Scripts and their results as Valkey 8.0.1 returns them.
    const CASES: &[(&str, &[u8])] = &[
        (
            r#"return table.concat({bit.tobit(1), bit.tobit(2^32 + 5), bit.tobit(-1), bit.tobit(2^31), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5)}, ',')"#,
            b"1,5,-1,-2147483648,2,2,-2",
        ),
        (
            r#"return table.concat({bit.tobit(0xffffffff), bit.tobit(2^52), bit.tobit(2^53 + 3), bit.tobit(1e300), bit.tobit(0/0), bit.tobit(1/0)}, ',')"#,
            b"-1,0,2,-2013235812,0,0",
        ),
        (r#"return table.concat({bit.tobit('0x10'), bit.tobit(' 12 '), bit.tobit('1e3')}, ',')"#, b"16,12,1000"),
        (r#"return table.concat({bit.bnot(0), bit.bnot(-1), bit.bnot(0x12345678)}, ',')"#, b"-1,0,-305419897"),
        (
            r#"return table.concat({bit.band(0xff, 0x0f), bit.band(-1, 0x7fffffff, 0x0ff0), bit.band(5)}, ',')"#,
            b"15,4080,5",
        ),
        (
            r#"return table.concat({bit.bor(1, 2, 4, 8), bit.bor(0x80000000), bit.bxor(0xff, 0x0f), bit.bxor(1, 1, 1)}, ',')"#,
            b"15,-2147483648,240,1",
        ),
        (
            r#"return table.concat({bit.lshift(1, 0), bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(3, -1)}, ',')"#,
            b"1,-2147483648,1,2,-2147483648",
        ),
        (
            r#"return table.concat({bit.rshift(-1, 1), bit.rshift(0x80000000, 31), bit.rshift(256, 4), bit.rshift(1, 32)}, ',')"#,
            b"2147483647,1,16,1",
        ),
        (
            r#"return table.concat({bit.arshift(-256, 4), bit.arshift(0x80000000, 31), bit.arshift(256, 4), bit.arshift(-1, 40)}, ',')"#,
            b"-16,-1,16,-1",
        ),
        (
            r#"return table.concat({bit.rol(0x12345678, 4), bit.rol(0x12345678, 0), bit.rol(1, 31), bit.rol(0x80000000, 1)}, ',')"#,
            b"591751041,305419896,-2147483648,1",
        ),
        (
            r#"return table.concat({bit.ror(0x12345678, 4), bit.ror(1, 1), bit.ror(0x12345678, 36)}, ',')"#,
            b"-2128394905,-2147483648,-2128394905",
        ),
        (
            r#"return table.concat({bit.bswap(0x12345678), bit.bswap(1), bit.bswap(-1)}, ',')"#,
            b"2018915346,16777216,-1",
        ),
        (
            r#"return table.concat({bit.tohex(255), bit.tohex(255, 2), bit.tohex(255, -4), bit.tohex(-1), bit.tohex(0x12345678, 12), bit.tohex(1, 0)}, ',')"#,
            b"000000ff,ff,00FF,ffffffff,12345678,",
        ),
        (
            r#"return table.concat({bit.tohex(0xabcdef, -8), bit.tohex(-2, -2^31), bit.tohex(10, 2^32 + 3)}, ',')"#,
            b"00ABCDEF,FFFFFFFE,00a",
        ),
        (r#"return select(2, pcall(bit.tobit))"#, b"bad argument #1 to '?' (number expected, got no value)"),
        (
            r#"return select(2, pcall(function() return bit.tobit() end))"#,
            b"user_script:1: bad argument #1 to 'tobit' (number expected, got no value)",
        ),
        (
            r#"return select(2, pcall(function() return bit.tobit('x') end))"#,
            b"user_script:1: bad argument #1 to 'tobit' (number expected, got string)",
        ),
        (
            r#"return select(2, pcall(function() return bit.band(1, {}) end))"#,
            b"user_script:1: bad argument #2 to 'band' (number expected, got table)",
        ),
        (
            r#"return select(2, pcall(function() return bit.bor(1, 'a', {}) end))"#,
            b"user_script:1: bad argument #3 to 'bor' (number expected, got table)",
        ),
        (
            r#"return select(2, pcall(function() return bit.lshift(1) end))"#,
            b"user_script:1: bad argument #2 to 'lshift' (number expected, got no value)",
        ),
        (
            r#"return select(2, pcall(function() return bit.tohex(1, nil) end))"#,
            b"user_script:1: bad argument #2 to 'tohex' (number expected, got nil)",
        ),
        (
            r#"return select(2, pcall(function() return bit.bxor(nil, 1) end))"#,
            b"user_script:1: bad argument #1 to 'bxor' (number expected, got nil)",
        ),
        (
            r#"return tostring(bit.tobit('0')) .. tostring(bit.tobit(-0.4)) .. tostring(bit.tobit(0.5)) .. tostring(bit.tobit(-0.5))"#,
            b"0000",
        ),
        (
            r#"return select(2, pcall(function() return bit.band() end))"#,
            b"user_script:1: bad argument #1 to 'band' (number expected, got no value)",
        ),
        (
            r#"local t = {} for k in pairs(bit) do t[#t+1] = k end return table.concat(t, ',')"#,
            b"band,rshift,bor,bnot,bswap,bxor,tobit,ror,lshift,tohex,rol,arshift",
        ),
        (
            r#"return table.concat({bit.tobit(-2^31), bit.tobit(2^31 - 1), bit.tobit(-2^31 - 1), bit.tobit(2^51), bit.tobit(2^51 + 1), bit.tobit(-2^51)}, ',')"#,
            b"-2147483648,2147483647,2147483647,0,0,0",
        ),
        (
            r#"return table.concat({bit.tobit(0.49999999999999994), bit.tobit(-0.5000000001), bit.tobit(3.5), bit.tobit(4.5), bit.tobit(-3.5)}, ',')"#,
            b"0,-1,4,4,-4",
        ),
        (r#"return table.concat({bit.band(0x0f0f, '0xff'), bit.bor('1', 2), bit.bnot('0')}, ',')"#, b"15,3,-1"),
        (
            r#"return table.concat({bit.lshift(0xff, 28), bit.rshift(0xff, -28), bit.arshift(0xf0000000, 4), bit.rol(0xff, 28), bit.ror(0xff, -4)}, ',')"#,
            b"-268435456,15,-16777216,-268435441,4080",
        ),
        (
            r#"return table.concat({bit.tohex(-1, 3), bit.tohex(-1, -3), bit.tohex(0x12345678, 9), bit.tohex(0x12345678, -9), bit.tohex(255, 1)}, ',')"#,
            b"fff,FFF,12345678,12345678,f",
        ),
        (
            r#"return table.concat({bit.tohex(1, 2^31), bit.tohex(1, 2^32 - 2), bit.tohex('255'), bit.tohex(4294967295)}, ',')"#,
            b"00000001,01,000000ff,ffffffff",
        ),
        (
            r#"return table.concat({bit.bswap(0x000000ff), bit.bswap(0xff000000), bit.bswap(2^32 + 1)}, ',')"#,
            b"-16777216,255,16777216",
        ),
        (r#"return select(2, pcall(bit.band, 1, 2, 3, nil))"#, b"bad argument #4 to '?' (number expected, got nil)"),
        (r#"return select(2, pcall(bit.bxor, 1, 'zz'))"#, b"bad argument #2 to '?' (number expected, got string)"),
        (r#"return select(2, pcall(bit.rol, {}))"#, b"bad argument #1 to '?' (number expected, got table)"),
        (r#"return select(2, pcall(bit.tohex))"#, b"bad argument #1 to '?' (number expected, got no value)"),
        (r#"return select(2, pcall(bit.bswap, true))"#, b"bad argument #1 to '?' (number expected, got boolean)"),
        (r#"return type(bit.band) .. type(bit.tobit(1))"#, b"functionnumber"),
    ];

    #[test]
    fn scripts_see_what_valkey_scripts_see() {
        check_all(CASES);
    }
}
