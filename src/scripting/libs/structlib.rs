//! `struct`: Roberto Ierusalimschy's struct library (2018 version) as
//! Valkey embeds it (global `struct`): `pack`, `unpack` and `size` driven
//! by a format string.
//!
//! Format letters: `>` big endian, `<` little endian (the default is the
//! machine's, little), `![n]` maximum alignment (default 8), `x` a zero
//! byte, `b`/`B` `h`/`H` `l`/`L` signed/unsigned 1-, 2- and 8-byte
//! integers, `T` an 8-byte size, `i[n]`/`I[n]` n-byte integers (default 4,
//! at most 32), `f` float, `d` double, `c[n]` n characters (`c0`: the whole
//! string when packing, a length taken from the previous result when
//! unpacking), `s` a zero-terminated string, space ignored. The format is
//! read as a C string: it ends at its first NUL byte.

use std::ffi::{c_char, c_int};

use mlua::ffi;

use super::{ccast, check_number, check_stack, check_string, finish, opt_integer, push_bytes, until_nul, Failure};

/// The widest integer format, `i32`.
const MAX_INT_SIZE: usize = 32;
/// Alignment `!` sets without a number: a double's on x86-64.
const MAX_ALIGN: i32 = 8;

/// Creates the global `struct` with `luaL_register`, as the C library does.
pub(crate) unsafe fn open(state: *mut ffi::lua_State) {
    let functions = [
        ffi::luaL_Reg { name: c"pack".as_ptr(), func: pack },
        ffi::luaL_Reg { name: c"unpack".as_ptr(), func: unpack },
        ffi::luaL_Reg { name: c"size".as_ptr(), func: size },
        // The list ends at the entry without a name; its function is
        // never looked at.
        ffi::luaL_Reg { name: std::ptr::null(), func: size },
    ];
    ffi::luaL_register(state, c"struct".as_ptr(), functions.as_ptr());
    ffi::lua_settop(state, -2);
}

/// The current byte order and alignment of a format.
struct Layout {
    little_endian: bool,
    align: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { little_endian: cfg!(target_endian = "little"), align: 1 }
    }
}

/// Reads a format string one option at a time.
struct Format<'a> {
    text: &'a [u8],
    position: usize,
}

impl Format<'_> {
    fn next_option(&mut self) -> Option<u8> {
        let option = *self.text.get(self.position)?;
        self.position += 1;
        Some(option)
    }

    /// The decimal number that follows, or `default` when none does.
    fn number(&mut self, default: i32) -> Result<i32, Failure> {
        if !self.text.get(self.position).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut value: i32 = 0;
        while let Some(digit) = self.text.get(self.position).filter(|b| b.is_ascii_digit()) {
            let digit = (digit - b'0') as i32;
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit))
                .ok_or_else(|| Failure::error("integral size overflow"))?;
            self.position += 1;
        }
        Ok(value)
    }

    /// The size in bytes of `option` (reading its number if it takes one);
    /// 0 for options that occupy nothing or have no fixed size.
    fn option_size(&mut self, option: u8) -> Result<usize, Failure> {
        Ok(match option {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)? as usize,
            b'i' | b'I' => {
                let size = self.number(4)?;
                if size as usize > MAX_INT_SIZE {
                    return Err(Failure::error(format!("integral size {size} is larger than limit of {MAX_INT_SIZE}")));
                }
                size as usize
            }
            _ => 0,
        })
    }

    /// Applies an option that is not a data item: endianness, alignment or
    /// a space. Anything else is an invalid option.
    fn control(&mut self, option: u8, layout: &mut Layout) -> Result<(), Failure> {
        match option {
            b' ' => {}
            b'>' => layout.little_endian = false,
            b'<' => layout.little_endian = true,
            b'!' => {
                let align = self.number(MAX_ALIGN)?;
                if align <= 0 || align & (align - 1) != 0 {
                    return Err(Failure::error(format!("alignment {align} is not a power of 2")));
                }
                layout.align = align as usize;
            }
            _ => {
                let mut message = b"invalid format option '".to_vec();
                message.extend_from_slice(&[option, b'\'']);
                return Err(Failure::BadArgument(1, message));
            }
        }
        Ok(())
    }
}

/// Padding needed before an item of `size` bytes at `offset`: items align
/// to their size, capped by the layout's alignment. Strings never align.
fn padding(offset: usize, layout: &Layout, option: u8, size: usize) -> usize {
    if size == 0 || option == b'c' {
        return 0;
    }
    let size = size.min(layout.align);
    size.wrapping_sub(offset & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

fn is_integer_option(option: u8) -> bool {
    matches!(option, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

/// Orders `bytes`, given in the machine's order, as the layout wants.
fn to_layout_order<const N: usize>(mut bytes: [u8; N], layout: &Layout) -> [u8; N] {
    if layout.little_endian != cfg!(target_endian = "little") {
        bytes.reverse();
    }
    bytes
}

// ===== pack =====

/// `struct.pack(format, values...)`.
///
/// The result is built in a Lua string buffer, as the C library builds
/// it, because the buffer is observable: a nil marker is pushed after the
/// arguments and full buffer pieces are pushed after it, so a missing
/// value argument is seen as nil, or as a piece of the result once more
/// than a buffer's worth has been packed.
unsafe extern "C-unwind" fn pack(state: *mut ffi::lua_State) -> c_int {
    let mut buffer = std::mem::MaybeUninit::<ffi::luaL_Buffer>::uninit();
    let result = (|| {
        let mut format = Format { text: until_nul(check_string(state, 1)?), position: 0 };
        ffi::lua_pushnil(state);
        let buffer = buffer.as_mut_ptr();
        ffi::luaL_buffinit(state, buffer);
        let add = |bytes: &[u8]| ffi::luaL_addlstring(buffer, bytes.as_ptr() as *const c_char, bytes.len());
        let mut layout = Layout::default();
        let mut total: usize = 0;
        let mut arg: c_int = 2;
        while let Some(option) = format.next_option() {
            let mut size = format.option_size(option)?;
            let pad = padding(total, &layout, option, size);
            add(&[0u8; MAX_INT_SIZE][..pad]);
            total += pad;
            match option {
                _ if is_integer_option(option) => {
                    add(&integer_bytes(check_number(state, arg)?, &layout, size)[..size]);
                    arg += 1;
                }
                b'x' => add(&[0]),
                b'f' => {
                    let value = check_number(state, arg)? as f32;
                    arg += 1;
                    add(&to_layout_order(value.to_ne_bytes(), &layout));
                }
                b'd' => {
                    let value = check_number(state, arg)?;
                    arg += 1;
                    add(&to_layout_order(value.to_ne_bytes(), &layout));
                }
                b'c' | b's' => {
                    let text = check_string(state, arg)?;
                    arg += 1;
                    if size == 0 {
                        size = text.len();
                    }
                    if text.len() < size {
                        // The C library names the argument after the string.
                        return Err(Failure::bad_argument(arg, "string too short"));
                    }
                    add(&text[..size]);
                    if option == b's' {
                        add(&[0]);
                        size += 1;
                    }
                }
                _ => format.control(option, &mut layout)?,
            }
            total = total.wrapping_add(size);
        }
        ffi::luaL_pushresult(buffer);
        Ok(1)
    })();
    finish(state, result)
}

/// The bytes of `number` as an integer of `size` bytes (the rest of the
/// array is unused): negative numbers go through a signed 64-bit
/// conversion, others through an unsigned one (both as C casts them on
/// x86-64). Sizes beyond 8 bytes are padded with zeros, not sign-extended.
fn integer_bytes(number: f64, layout: &Layout, size: usize) -> [u8; MAX_INT_SIZE] {
    let mut value = if number < 0.0 { ccast::to_i64(number) as u64 } else { ccast::to_u64(number) };
    let mut bytes = [0u8; MAX_INT_SIZE];
    for i in 0..size {
        let slot = if layout.little_endian { i } else { size - 1 - i };
        bytes[slot] = value as u8;
        value >>= 8;
    }
    bytes
}

// ===== unpack =====

/// `struct.unpack(format, data[, position])`: the values, then the
/// position after them (1-based).
unsafe extern "C-unwind" fn unpack(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let mut format = Format { text: until_nul(check_string(state, 1)?), position: 0 };
        let data = check_string(state, 2)?;
        // The position is held in a size_t, so negative ones pass this
        // check as huge values (and then fail the length checks).
        let mut position = opt_integer(state, 3, 1)? as usize;
        if position == 0 {
            return Err(Failure::bad_argument(3, "offset must be 1 or greater"));
        }
        position -= 1;
        let mut layout = Layout::default();
        let mut results: c_int = 0;
        let fits = |position: usize, size: usize| size <= data.len() && position <= data.len() - size;
        while let Some(option) = format.next_option() {
            let mut size = format.option_size(option)?;
            position = position.wrapping_add(padding(position, &layout, option, size));
            if !fits(position, size) {
                return Err(Failure::bad_argument(2, "data string too short"));
            }
            check_stack(state, 2, "too many results")?;
            match option {
                _ if is_integer_option(option) => {
                    let bytes = &data[position..position + size];
                    ffi::lua_pushnumber(state, get_integer(bytes, &layout, option.is_ascii_lowercase()));
                    results += 1;
                }
                b'x' => {}
                b'f' => {
                    let mut bytes = [0u8; 4];
                    bytes.copy_from_slice(&data[position..position + 4]);
                    ffi::lua_pushnumber(state, f32::from_ne_bytes(to_layout_order(bytes, &layout)) as f64);
                    results += 1;
                }
                b'd' => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&data[position..position + 8]);
                    ffi::lua_pushnumber(state, f64::from_ne_bytes(to_layout_order(bytes, &layout)));
                    results += 1;
                }
                b'c' => {
                    if size == 0 {
                        // `c0` takes its length from the previous result,
                        // which it replaces.
                        if results == 0 || ffi::lua_isnumber(state, -1) == 0 {
                            return Err(Failure::error("format 'c0' needs a previous size"));
                        }
                        size = ccast::to_u64(ffi::lua_tonumber(state, -1)) as usize;
                        ffi::lua_settop(state, -2);
                        results -= 1;
                        if !fits(position, size) {
                            return Err(Failure::bad_argument(2, "data string too short"));
                        }
                    }
                    push_bytes(state, &data[position..position + size]);
                    results += 1;
                }
                b's' => {
                    let Some(length) = data[position..].iter().position(|&b| b == 0) else {
                        return Err(Failure::error("unfinished string in data"));
                    };
                    push_bytes(state, &data[position..position + length]);
                    size = length + 1;
                    results += 1;
                }
                _ => format.control(option, &mut layout)?,
            }
            position = position.wrapping_add(size);
        }
        ffi::lua_pushinteger(state, position.wrapping_add(1) as ffi::lua_Integer);
        Ok(results + 1)
    })();
    finish(state, result)
}

/// Reads an integer of `bytes.len()` bytes. The value is kept in 64 bits:
/// bytes read before the last eight are shifted out. For signed formats
/// the sign bit is the top bit of the size, found with a shift that x86
/// takes modulo 64 (the C code's behaviour for sizes above 8).
fn get_integer(bytes: &[u8], layout: &Layout, signed: bool) -> f64 {
    let fold = |value: u64, &byte: &u8| (value << 8) | byte as u64;
    let value = if layout.little_endian { bytes.iter().rev().fold(0, fold) } else { bytes.iter().fold(0, fold) };
    if !signed {
        return value as f64;
    }
    let shift = (bytes.len() as u32 * 8).wrapping_sub(1) & 63;
    let mask = u64::MAX << shift;
    let value = if value & mask != 0 { value | mask } else { value };
    value as i64 as f64
}

// ===== size =====

/// `struct.size(format)`: the bytes `pack` would produce.
unsafe extern "C-unwind" fn size(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let mut format = Format { text: until_nul(check_string(state, 1)?), position: 0 };
        let mut layout = Layout::default();
        let mut total: usize = 0;
        while let Some(option) = format.next_option() {
            let size = format.option_size(option)?;
            total = total.wrapping_add(padding(total, &layout, option, size));
            if option == b's' {
                return Err(Failure::bad_argument(1, "option 's' has no fixed size"));
            }
            if option == b'c' && size == 0 {
                return Err(Failure::bad_argument(1, "option 'c0' has no fixed size"));
            }
            // Unknown letters and digits count as size 0 here (only
            // punctuation goes through the option check).
            if !option.is_ascii_alphanumeric() {
                format.control(option, &mut layout)?;
            }
            total = total.wrapping_add(size);
        }
        ffi::lua_pushinteger(state, total as ffi::lua_Integer);
        Ok(1)
    })();
    finish(state, result)
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_all;

    /// Scripts and their results as Valkey 8.0.1 returns them.
    const CASES: &[(&str, &[u8])] = &[
        (r#"return struct.pack('>i', 1) .. struct.pack('<i', 1)"#, b"\0\0\0\x01\x01\0\0\0"),
        (
            r#"return struct.pack('bBhHlLT', -1, 255, -2, 65534, -3, 3, 4)"#,
            b"\xff\xff\xfe\xff\xfe\xff\xfd\xff\xff\xff\xff\xff\xff\xff\x03\0\0\0\0\0\0\0\x04\0\0\0\0\0\0\0",
        ),
        (
            r#"return struct.pack('>bBhHlLT', -1, 255, -2, 65534, -3, 3, 4)"#,
            b"\xff\xff\xff\xfe\xff\xfe\xff\xff\xff\xff\xff\xff\xff\xfd\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0\x04",
        ),
        (r#"return struct.pack('>i1i2i3i5i8', 1, 2, 3, 5, 8)"#, b"\x01\0\x02\0\0\x03\0\0\0\0\x05\0\0\0\0\0\0\0\x08"),
        (
            r#"return struct.pack('>I16', 1) .. struct.pack('<i16', -2)"#,
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\xfe\xff\xff\xff\xff\xff\xff\xff\0\0\0\0\0\0\0\0",
        ),
        (
            r#"return struct.pack('>L', 2^64) .. struct.pack('>L', 2^63 + 2048) .. struct.pack('>l', -2^70) .. struct.pack('>L', 1/0)"#,
            b"\0\0\0\0\0\0\0\0\x80\0\0\0\0\0\x08\0\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ),
        (r#"return struct.pack('>L', 0/0)"#, b"\x80\0\0\0\0\0\0\0"),
        (
            r#"return struct.pack('>i', 2^32 + 5) .. struct.pack('>i', 1.9) .. struct.pack('>i', -1.9)"#,
            b"\0\0\0\x05\0\0\0\x01\xff\xff\xff\xff",
        ),
        (
            r#"return struct.pack('>f', 1.5) .. struct.pack('<f', 1.5) .. struct.pack('>d', 0.1) .. struct.pack('<d', -2)"#,
            b"?\xc0\0\0\0\0\xc0??\xb9\x99\x99\x99\x99\x99\x9a\0\0\0\0\0\0\0\xc0",
        ),
        (
            r#"return struct.pack('c', 'abc') .. '|' .. struct.pack('c2', 'abc') .. '|' .. struct.pack('c0', 'abc') .. '|'"#,
            b"a|ab|abc|",
        ),
        (r#"return struct.pack('s', 'ab') .. struct.pack('s', 'a\0b')"#, b"ab\0a\0b\0"),
        (r#"return struct.pack('x') .. struct.pack('bxb', 1, 2)"#, b"\0\x01\0\x02"),
        (
            r#"return struct.pack('!bi', 1, 2) .. '|' .. struct.pack('!2bi', 1, 2) .. '|' .. struct.pack('!bd', 1, 2)"#,
            b"\x01\0\0\0\x02\0\0\0|\x01\0\x02\0\0\0|\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0@",
        ),
        (
            r#"return struct.pack('!4 b h b i b d', 1, 2, 3, 4, 5, 6)"#,
            b"\x01\0\x02\0\x03\0\0\0\x04\0\0\0\x05\0\0\0\0\0\0\0\0\0\x18@",
        ),
        (r#"return struct.pack('! b c3 i', 1, 'xyz', 2)"#, b"\x01xyz\x02\0\0\0"),
        (r#"return struct.pack('>!8bi3', 1, 2)"#, b"\x01\0\0\0\0\x02"),
        (r#"return struct.pack('>i\0i', 1, 2)"#, b"\0\0\0\x01"),
        (r#"return struct.pack('>h', '513')"#, b"\x02\x01"),
        (r#"return select(2, pcall(struct.pack, 'z'))"#, b"bad argument #1 to '?' (invalid format option 'z')"),
        (r#"return select(2, pcall(function() return struct.pack('i', 1, 'z') end))"#, b"\x01\0\0\0"),
        (
            r#"return select(2, pcall(function() return struct.pack('bz', 1) end))"#,
            b"user_script:1: bad argument #1 to 'pack' (invalid format option 'z')",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('i') end))"#,
            b"user_script:1: bad argument #2 to 'pack' (number expected, got nil)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('i', {}) end))"#,
            b"user_script:1: bad argument #2 to 'pack' (number expected, got table)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('c5', 'abc') end))"#,
            b"user_script:1: bad argument #3 to 'pack' (string too short)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('bc5', 1, 'abc') end))"#,
            b"user_script:1: bad argument #4 to 'pack' (string too short)",
        ),
        (r#"return select(2, pcall(function() return struct.pack('s', 5) end))"#, b"5\0"),
        (
            r#"return select(2, pcall(function() return struct.pack('s') end))"#,
            b"user_script:1: bad argument #2 to 'pack' (string expected, got nil)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('i33', 1) end))"#,
            b"user_script:1: integral size 33 is larger than limit of 32",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('i99999999999', 1) end))"#,
            b"user_script:1: integral size overflow",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('!3i', 1) end))"#,
            b"user_script:1: alignment 3 is not a power of 2",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('!0i', 1) end))"#,
            b"user_script:1: alignment 0 is not a power of 2",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack() end))"#,
            b"user_script:1: bad argument #1 to 'pack' (string expected, got no value)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack(nil) end))"#,
            b"user_script:1: bad argument #1 to 'pack' (string expected, got nil)",
        ),
        (r#"return table.concat({struct.unpack('>i', '\0\0\1\0')}, ',')"#, b"256,5"),
        (r#"return table.concat({struct.unpack('<i', '\0\0\1\0')}, ',')"#, b"65536,5"),
        (r#"return table.concat({struct.unpack('bBhH', '\255\255\254\255\254\255')}, ',')"#, b"-1,255,-2,65534,7"),
        (r#"return table.concat({struct.unpack('>lL', string.rep('\255', 16))}, ',')"#, b"-1,1.844674407371e+19,17"),
        (r#"return table.concat({struct.unpack('>i3I3', '\255\255\254\255\255\254')}, ',')"#, b"-2,16777214,7"),
        (r#"return table.concat({struct.unpack('>i16', string.rep('\255', 16))}, ',')"#, b"-1,17"),
        (r#"return table.concat({struct.unpack('>i16', string.rep('\0', 15)..'\128')}, ',')"#, b"128,17"),
        (r#"return table.concat({struct.unpack('>i9', '\0\128'..string.rep('\0', 7))}, ',')"#, b"-128,10"),
        (
            r#"return table.concat({struct.unpack('>I9', '\1\128'..string.rep('\0', 7))}, ',')"#,
            b"9.2233720368548e+18,10",
        ),
        (r#"return table.concat({struct.unpack('>f>d', struct.pack('>f>d', 1.5, 0.1))}, ',')"#, b"1.5,0.1,13"),
        (r#"return table.concat({struct.unpack('<f', struct.pack('<f', 0.1))}, ',')"#, b"0.10000000149012,5"),
        (r#"return table.concat({struct.unpack('c2c1', 'abc')}, ',')"#, b"ab,c,4"),
        (r#"return table.concat({struct.unpack('bc0', '\3abcd')}, ',')"#, b"abc,5"),
        (r#"return table.concat({struct.unpack('c1c0', '3abcd')}, ',')"#, b"abc,5"),
        (r#"return table.concat({struct.unpack('ss', 'ab\0cd\0e')}, ',')"#, b"ab,cd,7"),
        (r#"return table.concat({struct.unpack('xb', '\1\2')}, ',')"#, b"2,3"),
        (r#"return table.concat({struct.unpack('b', 'abc', 2)}, ',')"#, b"98,3"),
        (r#"return table.concat({struct.unpack('!bi', '\1\0\0\0\2\0\0\0')}, ',')"#, b"1,2,9"),
        (r#"return table.concat({struct.unpack('', 'abc', -5)}, ',')"#, b"-5"),
        (r#"return table.concat({struct.unpack('>h', '\1\2\3\4', 3)}, ',')"#, b"772,5"),
        (r#"return select(2, pcall(struct.unpack, 'c0', 'abc'))"#, b"format 'c0' needs a previous size"),
        (
            r#"return select(2, pcall(struct.unpack, 'bc0', '\255abc'))"#,
            b"bad argument #2 to '?' (data string too short)",
        ),
        (
            r#"return select(2, pcall(struct.unpack, 'bc0', '\9abc'))"#,
            b"bad argument #2 to '?' (data string too short)",
        ),
        (r#"return select(2, pcall(struct.unpack, 'i', 'abc'))"#, b"bad argument #2 to '?' (data string too short)"),
        (
            r#"return select(2, pcall(struct.unpack, 'b', 'abc', 0))"#,
            b"bad argument #3 to '?' (offset must be 1 or greater)",
        ),
        (
            r#"return select(2, pcall(struct.unpack, 'b', 'abc', -5))"#,
            b"bad argument #2 to '?' (data string too short)",
        ),
        (r#"return select(2, pcall(struct.unpack, 'b', 'abc', 4))"#, b"bad argument #2 to '?' (data string too short)"),
        (r#"return select(2, pcall(struct.unpack, 's', 'abc'))"#, b"unfinished string in data"),
        (
            r#"return select(2, pcall(struct.unpack, 'y', 'abc'))"#,
            b"bad argument #1 to '?' (invalid format option 'y')",
        ),
        (
            r#"return select(2, pcall(function() return struct.unpack('i') end))"#,
            b"user_script:1: bad argument #2 to 'unpack' (string expected, got no value)",
        ),
        (
            r#"return select(2, pcall(function() return struct.unpack('i', 'abcd', 'x') end))"#,
            b"user_script:1: bad argument #3 to 'unpack' (number expected, got string)",
        ),
        (r#"return table.concat({struct.unpack('b', 'abc', '2')}, ',')"#, b"98,3"),
        (
            r#"return select(2, pcall(function() local f = string.rep('b', 9000) return select('#', struct.unpack(f, string.rep('a', 9000))) end))"#,
            b"user_script:1: stack overflow (too many results)",
        ),
        (
            r#"return tostring(struct.size('bhilfdTx')) .. ',' .. tostring(struct.size('!bhilfdTx')) .. ',' .. tostring(struct.size('!4bd')) .. ',' .. tostring(struct.size('c10i3'))"#,
            b"36,41,12,13",
        ),
        (
            r#"return tostring(struct.size('')) .. ',' .. tostring(struct.size('zq')) .. ',' .. tostring(struct.size('>< i'))"#,
            b"0,0,4",
        ),
        (r#"return select(2, pcall(struct.size, 's'))"#, b"bad argument #1 to '?' (option 's' has no fixed size)"),
        (r#"return select(2, pcall(struct.size, 'c0'))"#, b"bad argument #1 to '?' (option 'c0' has no fixed size)"),
        (r#"return select(2, pcall(struct.size, 'b%'))"#, b"bad argument #1 to '?' (invalid format option '%')"),
        (
            r#"return select(2, pcall(function() return struct.size('!5') end))"#,
            b"user_script:1: alignment 5 is not a power of 2",
        ),
        (
            r#"return select(2, pcall(function() return struct.size() end))"#,
            b"user_script:1: bad argument #1 to 'size' (string expected, got no value)",
        ),
        (
            r#"return select(2, pcall(function() return struct.size('i40') end))"#,
            b"user_script:1: integral size 40 is larger than limit of 32",
        ),
        (r#"local t = {} for k in pairs(struct) do t[#t+1] = k end return table.concat(t, ',')"#, b"pack,size,unpack"),
        (
            r#"return select(2, pcall(function() return struct.pack('c0i', string.rep('x', 9000)) end))"#,
            b"user_script:1: bad argument #3 to 'pack' (number expected, got nil)",
        ),
        (
            r#"return select(2, pcall(function() return struct.pack('c0i', string.rep('x', 100)) end))"#,
            b"user_script:1: bad argument #3 to 'pack' (number expected, got nil)",
        ),
        (r#"return #struct.pack('c0c0', string.rep('x', 9000), string.rep('y', 9000))"#, b"18000"),
        (r#"return struct.pack('>I3', 2^24 + 258) .. struct.pack('<i3', -2)"#, b"\0\x01\x02\xfe\xff\xff"),
        (r#"return struct.pack('>h', 70000) .. struct.pack('>H', -1) .. struct.pack('>b', 300)"#, b"\x11p\xff\xff,"),
        (r#"return struct.pack('i0', 5) .. '|'"#, b"|"),
        (r#"return table.concat({struct.unpack('i0i0', '')}, ',')"#, b"0,0,1"),
        (r#"return table.concat({struct.unpack('>I8', string.rep('\255', 8))}, ',')"#, b"1.844674407371e+19,9"),
        (r#"return table.concat({struct.unpack('>i4', '\128\0\0\0')}, ',')"#, b"-2147483648,5"),
        (r#"return table.concat({struct.unpack('!4bi', '\1\0\0\0\2\0\0\0', 1)}, ',')"#, b"1,2,9"),
        (r#"return table.concat({struct.unpack('!4bi', '\0\1\0\0\2\0\0\0', 2)}, ',')"#, b"1,2,9"),
        (r#"return table.concat({struct.unpack('!8bd', struct.pack('!8bd', 1, 2.5))}, ',')"#, b"1,2.5,17"),
        (r#"return table.concat({struct.unpack('c3', 'abc\0def')}, ',')"#, b"abc,4"),
        (r#"return table.concat({struct.unpack('s', '\0')}, ',')"#, b",2"),
        (r#"return table.concat({struct.unpack('bc0b', '\0\7')}, ',')"#, b",7,3"),
        (r#"return select(2, pcall(struct.unpack, 'bsc0', '\2abc\0'))"#, b"format 'c0' needs a previous size"),
        (r#"return select(2, pcall(struct.unpack, '>h s c0', '\0\3xy\0abc'))"#, b"format 'c0' needs a previous size"),
        (r#"return table.concat({struct.unpack('<d', struct.pack('<d', -0.0))}, ',')"#, b"-0,9"),
        (r#"return table.concat({struct.unpack('>d', struct.pack('>d', 1/0))}, ',')"#, b"inf,9"),
        (
            r#"return tostring(struct.size('!4i3b')) .. ',' .. tostring(struct.size('!2 h b h')) .. ',' .. tostring(struct.size('!16d')) .. ',' .. tostring(struct.size('i0'))"#,
            b"6,6,8,0",
        ),
        (r#"return tostring(struct.size('c2000000000')) .. ',' .. tostring(struct.size('!1d'))"#, b"2000000000,8"),
        (r#"return select(2, pcall(struct.size, '!99999999999'))"#, b"integral size overflow"),
        (r#"return select(2, pcall(struct.size, 'c99999999999'))"#, b"integral size overflow"),
        (r#"return select(2, pcall(struct.pack, '\255'))"#, b"bad argument #1 to '?' (invalid format option '\xff')"),
        (r#"return select(2, pcall(struct.unpack, '>', 'x', 3))"#, b"bad argument #2 to '?' (data string too short)"),
        (r#"return table.concat({struct.unpack('>', 'x', 2)}, ',')"#, b"2"),
    ];

    #[test]
    fn scripts_see_what_valkey_scripts_see() {
        check_all(CASES);
    }
}
