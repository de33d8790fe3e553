//! `cmsgpack`: lua-cmsgpack 0.4.0 as Valkey embeds it (global `cmsgpack`).
//!
//! Encoding choices scripts can observe: a number that is an integer in the
//! int64 range is packed as the smallest integer format, other numbers as
//! float32 when that is exact, else float64; strings use the str formats;
//! a table whose keys are exactly 1..n is an array, any other table a map;
//! tables nested 16 deep, and values of other types, become nil.
//! `unpack` reads a stream of concatenated values; `unpack_one` and
//! `unpack_limit` read some and also return the offset to continue from.

use std::ffi::c_int;

use mlua::ffi;

use super::{ccast, check_integer, check_stack, check_string, finish, opt_integer, push_bytes, string_at, Failure};

/// Tables at this nesting level are packed as nil, which also stops
/// self-referencing tables.
const MAX_NESTING: i32 = 16;

/// Creates the global `cmsgpack`, its fields set in lua-cmsgpack's order
/// so that `pairs` order matches.
pub(crate) unsafe fn open(state: *mut ffi::lua_State) {
    let functions: [(&std::ffi::CStr, ffi::lua_CFunction); 4] =
        [(c"pack", pack), (c"unpack", unpack), (c"unpack_one", unpack_one), (c"unpack_limit", unpack_limit)];
    let fields: [(&std::ffi::CStr, &str); 4] = [
        (c"_NAME", "cmsgpack"),
        (c"_VERSION", "lua-cmsgpack 0.4.0"),
        (c"_COPYRIGHT", "Copyright (C) 2012, Redis Ltd."),
        (c"_DESCRIPTION", "MessagePack C implementation for Lua"),
    ];
    ffi::lua_createtable(state, 0, 0);
    for (name, function) in functions {
        ffi::lua_pushcclosure(state, function, 0);
        ffi::lua_setfield(state, -2, name.as_ptr());
    }
    for (name, value) in fields {
        push_bytes(state, value.as_bytes());
        ffi::lua_setfield(state, -2, name.as_ptr());
    }
    ffi::lua_setfield(state, ffi::LUA_GLOBALSINDEX, c"cmsgpack".as_ptr());
}

// ===== Packing =====

/// `cmsgpack.pack(value, ...)`: the values packed one after the other.
unsafe extern "C-unwind" fn pack(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let count = ffi::lua_gettop(state);
        if count == 0 {
            return Err(Failure::bad_argument(0, "MessagePack pack needs input."));
        }
        if ffi::lua_checkstack(state, count) == 0 {
            return Err(Failure::bad_argument(0, "Too many arguments for MessagePack pack."));
        }
        // Each value's encoding is pushed as a string and the strings are
        // joined at the end, using the Lua stack as lua-cmsgpack does (its
        // stack checks then fail at the same points).
        let mut buffer = Vec::new();
        for index in 1..=count {
            check_stack(state, 1, "in function mp_check")?;
            ffi::lua_pushvalue(state, index);
            encode_value(state, &mut buffer, 0)?;
            push_bytes(state, &buffer);
            buffer.clear();
        }
        ffi::lua_concat(state, count);
        Ok(1)
    })();
    finish(state, result)
}

/// Appends the value on top of the stack and pops it.
unsafe fn encode_value(state: *mut ffi::lua_State, out: &mut Vec<u8>, level: i32) -> Result<(), Failure> {
    match ffi::lua_type(state, -1) {
        ffi::LUA_TSTRING => encode_bytes(out, string_at(state, -1).unwrap_or_default()),
        ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(state, -1) != 0 { 0xc3 } else { 0xc2 }),
        ffi::LUA_TNUMBER => encode_number(out, ffi::lua_tonumber(state, -1)),
        ffi::LUA_TTABLE if level != MAX_NESTING => {
            if table_is_array(state)? {
                encode_array_table(state, out, level)?;
            } else {
                encode_map_table(state, out, level)?;
            }
        }
        _ => out.push(0xc0),
    }
    ffi::lua_settop(state, -2);
    Ok(())
}

/// Whether the table on top of the stack has exactly the keys 1..n.
unsafe fn table_is_array(state: *mut ffi::lua_State) -> Result<bool, Failure> {
    let top = ffi::lua_gettop(state);
    check_stack(state, 2, "in function table_is_an_array")?;
    let mut count: i32 = 0;
    let mut max: i32 = 0;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, -2) != 0 {
        ffi::lua_settop(state, -2);
        let key = ffi::lua_tonumber(state, -1);
        // The key must be a positive number that survives a round trip
        // through a C int.
        if ffi::lua_type(state, -1) != ffi::LUA_TNUMBER || key <= 0.0 || ccast::to_i32(key) as f64 != key {
            ffi::lua_settop(state, top);
            return Ok(false);
        }
        if key > max as f64 {
            max = key as i32;
        }
        count = count.wrapping_add(1);
    }
    ffi::lua_settop(state, top);
    // Distinct positive keys whose maximum equals their count are 1..n.
    Ok(max == count)
}

unsafe fn encode_array_table(state: *mut ffi::lua_State, out: &mut Vec<u8>, level: i32) -> Result<(), Failure> {
    let length = ffi::lua_objlen(state, -1);
    encode_header(out, length as u64, 0x90, 0xdc, 0xdd);
    check_stack(state, 1, "in function mp_encode_lua_table_as_array")?;
    for index in 1..=length {
        // The keys are exactly 1..length, so a raw read sees what an
        // ordinary one would.
        ffi::lua_pushnumber(state, index as f64);
        ffi::lua_rawget_(state, -2);
        encode_value(state, out, level + 1)?;
    }
    Ok(())
}

unsafe fn encode_map_table(state: *mut ffi::lua_State, out: &mut Vec<u8>, level: i32) -> Result<(), Failure> {
    check_stack(state, 3, "in function mp_encode_lua_table_as_map")?;
    let mut count: u64 = 0;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, -2) != 0 {
        ffi::lua_settop(state, -2);
        count += 1;
    }
    encode_header(out, count, 0x80, 0xde, 0xdf);
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, -2) != 0 {
        // Encode a copy of the key (the original must stay for lua_next),
        // then the value.
        ffi::lua_pushvalue(state, -2);
        encode_value(state, out, level + 1)?;
        encode_value(state, out, level + 1)?;
    }
    Ok(())
}

/// An array or map header: the fix form for up to 15 entries, else the 16-
/// or 32-bit form (longer counts are cut to 32 bits, as in C).
fn encode_header(out: &mut Vec<u8>, count: u64, fix: u8, sixteen: u8, thirty_two: u8) {
    if count <= 15 {
        out.push(fix | count as u8);
    } else if count <= 0xffff {
        out.push(sixteen);
        out.extend_from_slice(&(count as u16).to_be_bytes());
    } else {
        out.push(thirty_two);
        out.extend_from_slice(&(count as u32).to_be_bytes());
    }
}

fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let length = bytes.len();
    if length < 32 {
        out.push(0xa0 | length as u8);
    } else if length <= 0xff {
        out.extend_from_slice(&[0xd9, length as u8]);
    } else if length <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

fn encode_number(out: &mut Vec<u8>, number: f64) {
    // An integer exactly when the C cast to int64 gives it back (which
    // rules out infinities, NaN and 2^63, whose cast yields -2^63).
    let integer = ccast::to_i64(number);
    if !number.is_infinite() && integer as f64 == number {
        encode_integer(out, integer);
        return;
    }
    let single = number as f32;
    if single as f64 == number {
        out.push(0xca);
        out.extend_from_slice(&single.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&number.to_be_bytes());
    }
}

fn encode_integer(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

// ===== Unpacking =====

/// `cmsgpack.unpack(data)`: every value in `data`.
unsafe extern "C-unwind" fn unpack(state: *mut ffi::lua_State) -> c_int {
    finish(state, unpack_values(state, 0, 0))
}

/// `cmsgpack.unpack_one(data[, offset])`: the next offset (-1 at the end)
/// and one value.
unsafe extern "C-unwind" fn unpack_one(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let offset = opt_integer(state, 2, 0)?;
        ffi::lua_settop(state, 1.min(ffi::lua_gettop(state)));
        unpack_values(state, 1, offset)
    })();
    finish(state, result)
}

/// `cmsgpack.unpack_limit(data, limit[, offset])`: the next offset (-1 at
/// the end) and up to `limit` values.
unsafe extern "C-unwind" fn unpack_limit(state: *mut ffi::lua_State) -> c_int {
    let result = (|| {
        let limit = check_integer(state, 2)?;
        let offset = opt_integer(state, 3, 0)?;
        ffi::lua_settop(state, 1.min(ffi::lua_gettop(state)));
        unpack_values(state, limit, offset)
    })();
    finish(state, result)
}

/// Unpacks up to `limit` values from byte `offset` of argument 1. With
/// both zero (plain `unpack`) everything is unpacked and no offset is
/// returned.
unsafe fn unpack_values(state: *mut ffi::lua_State, limit: i64, offset: i64) -> Result<c_int, Failure> {
    let unpack_all = limit == 0 && offset == 0;
    let data = check_string(state, 1)?;
    let length = data.len();
    if offset < 0 || limit < 0 {
        // lua-cmsgpack prints the input length where the limit belongs.
        return Err(Failure::error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, length as i32
        )));
    }
    if offset as u64 > length as u64 {
        return Err(Failure::error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, length as i32
        )));
    }
    let limit = if unpack_all { i32::MAX as i64 } else { limit };
    let mut cursor = Cursor { data: &data[offset as usize..] };
    let mut count: c_int = 0;
    while !cursor.data.is_empty() && (count as i64) < limit {
        match decode_value(state, &mut cursor) {
            Ok(()) => {}
            Err(Malformed::Truncated) => return Err(Failure::error("Missing bytes in input.")),
            Err(Malformed::UnknownType) => return Err(Failure::error("Bad data format in input.")),
            Err(Malformed::Lua(failure)) => return Err(failure),
        }
        count += 1;
    }
    if !unpack_all {
        check_stack(state, 1, "in function mp_unpack_full")?;
        let next = if cursor.data.is_empty() { -1 } else { (length - cursor.data.len()) as i64 };
        ffi::lua_pushinteger(state, next);
        // The offset comes first, before the values.
        ffi::lua_insert(state, 2);
        count += 1;
    }
    Ok(count)
}

/// Why a value could not be unpacked.
enum Malformed {
    /// The input ends inside the value.
    Truncated,
    /// A type byte lua-cmsgpack does not read (bin, ext, 0xc1).
    UnknownType,
    /// A Lua error (stack exhausted, nil or NaN map key).
    Lua(Failure),
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// The first `n` bytes, consumed.
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.data.len() < n {
            return Err(Malformed::Truncated);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn take_u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take_array::<1>()?[0])
    }

    fn take_u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.take_array()?))
    }

    fn take_u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.take_array()?))
    }
}

/// An array or map being unpacked, its table on the Lua stack.
enum OpenContainer {
    /// `remaining` elements to go; the current one's index sits above
    /// the table.
    Array { next_index: usize, remaining: usize },
    /// `remaining` entries to go; `have_key` once the entry's key sits
    /// above the table.
    Map { remaining: usize, have_key: bool },
}

/// Pushes the next value of the stream. Nested containers are tracked in
/// an explicit list rather than by recursion, so deep input cannot exhaust
/// the thread's stack; the Lua stack is used as lua-cmsgpack uses it, so
/// its limits hit at the same depth. Any malformation fails the whole
/// unpack, so what was consumed or pushed before it does not matter.
unsafe fn decode_value(state: *mut ffi::lua_State, cursor: &mut Cursor) -> Result<(), Malformed> {
    let mut open: Vec<OpenContainer> = Vec::new();
    loop {
        let mut opened = false;
        if let Some(container) = decode_one(state, cursor)? {
            open.push(container);
            opened = true;
        }
        // Store complete values in their containers until one needs its
        // next element.
        loop {
            let Some(container) = open.last_mut() else {
                return Ok(());
            };
            if !opened {
                // The value just completed belongs to this container.
                match container {
                    OpenContainer::Array { .. } => ffi::lua_rawset(state, -3),
                    OpenContainer::Map { remaining, have_key } => {
                        if *have_key {
                            set_map_entry(state)?;
                            *remaining -= 1;
                        }
                        *have_key = !*have_key;
                    }
                }
            }
            opened = false;
            match container {
                OpenContainer::Array { next_index, remaining } => {
                    if *remaining > 0 {
                        *remaining -= 1;
                        ffi::lua_pushnumber(state, *next_index as f64);
                        *next_index += 1;
                        break;
                    }
                }
                OpenContainer::Map { remaining, have_key } => {
                    if *have_key || *remaining > 0 {
                        break;
                    }
                }
            }
            // Complete: the container is now a value of its parent.
            open.pop();
        }
    }
}

/// Unpacks one value: pushes a scalar, or pushes an empty table and
/// returns it as a container whose elements come next.
unsafe fn decode_one(state: *mut ffi::lua_State, cursor: &mut Cursor) -> Result<Option<OpenContainer>, Malformed> {
    let kind = cursor.take_u8()?;
    if ffi::lua_checkstack(state, 1) == 0 {
        return Err(Malformed::Lua(Failure::stack_overflow(
            "too many return values at once; use unpack_one or unpack_limit instead.",
        )));
    }
    match kind {
        0xcc => ffi::lua_pushinteger(state, cursor.take_u8()? as i64),
        0xd0 => ffi::lua_pushinteger(state, cursor.take_u8()? as i8 as i64),
        0xcd => ffi::lua_pushinteger(state, cursor.take_u16()? as i64),
        0xd1 => ffi::lua_pushinteger(state, cursor.take_u16()? as i16 as i64),
        0xce => ffi::lua_pushinteger(state, cursor.take_u32()? as i64),
        0xd2 => ffi::lua_pushinteger(state, cursor.take_u32()? as i32 as i64),
        // Lua numbers are doubles: 64-bit integers lose precision, and
        // uint64 values from 2^63 up come out negative, as in C.
        0xcf => ffi::lua_pushinteger(state, u64::from_be_bytes(cursor.take_array()?) as i64),
        0xd3 => ffi::lua_pushnumber(state, i64::from_be_bytes(cursor.take_array()?) as f64),
        0xc0 => ffi::lua_pushnil(state),
        0xc2 => ffi::lua_pushboolean(state, 0),
        0xc3 => ffi::lua_pushboolean(state, 1),
        0xca => ffi::lua_pushnumber(state, f32::from_be_bytes(cursor.take_array()?) as f64),
        0xcb => ffi::lua_pushnumber(state, f64::from_be_bytes(cursor.take_array()?)),
        0xd9 => {
            let length = cursor.take_u8()? as usize;
            push_bytes(state, cursor.take(length)?);
        }
        0xda => {
            let length = cursor.take_u16()? as usize;
            push_bytes(state, cursor.take(length)?);
        }
        0xdb => {
            let length = cursor.take_u32()? as usize;
            push_bytes(state, cursor.take(length)?);
        }
        0xdc => {
            let length = cursor.take_u16()? as usize;
            return open_array(state, length).map(Some);
        }
        0xdd => {
            let length = cursor.take_u32()? as usize;
            return open_array(state, length).map(Some);
        }
        0xde => {
            let length = cursor.take_u16()? as usize;
            return Ok(Some(open_map(state, length)));
        }
        0xdf => {
            let length = cursor.take_u32()? as usize;
            return Ok(Some(open_map(state, length)));
        }
        0x00..=0x7f => ffi::lua_pushinteger(state, kind as i64),
        0xe0..=0xff => ffi::lua_pushinteger(state, kind as i8 as i64),
        0xa0..=0xbf => push_bytes(state, cursor.take((kind & 0x1f) as usize)?),
        0x90..=0x9f => return open_array(state, (kind & 0x0f) as usize).map(Some),
        0x80..=0x8f => return Ok(Some(open_map(state, (kind & 0x0f) as usize))),
        // bin, ext and the unused 0xc1
        _ => return Err(Malformed::UnknownType),
    }
    Ok(None)
}

unsafe fn open_array(state: *mut ffi::lua_State, length: usize) -> Result<OpenContainer, Malformed> {
    ffi::lua_createtable(state, 0, 0);
    // Room for the element index.
    if ffi::lua_checkstack(state, 1) == 0 {
        return Err(Malformed::Lua(Failure::stack_overflow("in function mp_decode_to_lua_array")));
    }
    Ok(OpenContainer::Array { next_index: 1, remaining: length })
}

unsafe fn open_map(state: *mut ffi::lua_State, length: usize) -> OpenContainer {
    ffi::lua_createtable(state, 0, 0);
    OpenContainer::Map { remaining: length, have_key: false }
}

/// Stores the key and value on top of the stack in the map below them.
/// The tables are fresh (no metatable), so a raw set is what the C code's
/// lua_settable does, including its refusal of nil and NaN keys.
unsafe fn set_map_entry(state: *mut ffi::lua_State) -> Result<(), Malformed> {
    match ffi::lua_type(state, -2) {
        ffi::LUA_TNIL => Err(Malformed::Lua(Failure::Runtime("table index is nil"))),
        ffi::LUA_TNUMBER if ffi::lua_tonumber(state, -2).is_nan() => {
            Err(Malformed::Lua(Failure::Runtime("table index is NaN")))
        }
        _ => {
            ffi::lua_rawset(state, -3);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_all;

    /// Scripts and their results as Valkey 8.0.1 returns them.
    const CASES: &[(&str, &[u8])] = &[
        (r#"return cmsgpack.pack(0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296)"#, b"\0\x01\x7f\xcc\x80\xcc\xff\xcd\x01\0\xcd\xff\xff\xce\0\x01\0\0\xce\xff\xff\xff\xff\xcf\0\0\0\x01\0\0\0\0"),
        (r#"return cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)"#, b"\xff\xe0\xd0\xdf\xd0\x80\xd1\xff\x7f\xd1\x80\0\xd2\xff\xff\x7f\xff\xd2\x80\0\0\0\xd3\xff\xff\xff\xff\x7f\xff\xff\xff"),
        (r#"return cmsgpack.pack(2^53, -2^53, 2^63, -2^63, 2^64)"#, b"\xcf\0 \0\0\0\0\0\0\xd3\xff\xe0\0\0\0\0\0\0\xca_\0\0\0\xd3\x80\0\0\0\0\0\0\0\xca_\x80\0\0"),
        (r#"return cmsgpack.pack(1.5, 0.1, -0.0, 1/0, -1/0, 3.4028234663852886e38, 1e39)"#, b"\xca?\xc0\0\0\xcb?\xb9\x99\x99\x99\x99\x99\x9a\0\xca\xff\x80\0\0\xca\x7f\x80\0\0\xca\x7f\x7f\xff\xff\xcbH\x07\x82\x87\xf4\x9cJ\x1d"),
        (r#"return cmsgpack.pack(0/0)"#, b"\xcb\xff\xf8\0\0\0\0\0\0"),
        (r#"return cmsgpack.pack(true, false, nil)"#, b"\xc3\xc2\xc0"),
        (r#"return cmsgpack.pack('', 'abc', string.rep('x', 31))"#, b"\xa0\xa3abc\xbfxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        (r#"return #cmsgpack.pack(string.rep('x', 32)) .. ' ' .. cmsgpack.pack(string.rep('x', 32)):sub(1, 3)"#, b"34 \xd9 x"),
        (r#"return cmsgpack.pack(string.rep('y', 255)):sub(1, 3) .. cmsgpack.pack(string.rep('y', 256)):sub(1, 4)"#, b"\xd9\xffy\xda\x01\0y"),
        (r#"return cmsgpack.pack(string.rep('z', 65536)):sub(1, 6)"#, b"\xdb\0\x01\0\0z"),
        (r#"return cmsgpack.pack({1, 2, 3})"#, b"\x93\x01\x02\x03"),
        (r#"return cmsgpack.pack({})"#, b"\x90"),
        (r#"return cmsgpack.pack({a=1})"#, b"\x81\xa1a\x01"),
        (r#"return cmsgpack.pack({1, 2, nil, 4})"#, b"\x83\x01\x01\x02\x02\x04\x04"),
        (r#"return cmsgpack.pack({[1]=1, [3]=3})"#, b"\x82\x01\x01\x03\x03"),
        (r#"return cmsgpack.pack({[2]=2})"#, b"\x81\x02\x02"),
        (r#"return cmsgpack.pack({[1.5]='x'})"#, b"\x81\xca?\xc0\0\0\xa1x"),
        (r#"return cmsgpack.pack({[0]=0})"#, b"\x81\0\0"),
        (r#"return cmsgpack.pack({[-1]=1})"#, b"\x81\xff\x01"),
        (r#"return cmsgpack.pack({[2^31]=1})"#, b"\x81\xce\x80\0\0\0\x01"),
        (r#"return cmsgpack.pack({[1]=1, x=2})"#, b"\x82\x01\x01\xa1x\x02"),
        (r#"return cmsgpack.pack({{{}}})"#, b"\x91\x91\x90"),
        (r#"local t = {} for i = 1, 16 do t[i] = i end return cmsgpack.pack(t)"#, b"\xdc\0\x10\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10"),
        (r#"local t = {} for i = 1, 65536 do t[i] = 0 end return cmsgpack.pack(t):sub(1, 6)"#, b"\xdd\0\x01\0\0\0"),
        (r#"local t = {} for i = 1, 16 do t['k'..i] = true end return cmsgpack.pack(t):sub(1, 3)"#, b"\xde\0\x10"),
        (r#"local t = {} t[1] = t return cmsgpack.pack(t)"#, b"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0"),
        (r#"local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)"#, b"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0"),
        (r#"return cmsgpack.pack(function() end, coroutine.create(function() end), cjson.null)"#, b"\xc0\xc0\xc0"),
        (r#"return select(2, pcall(cmsgpack.pack))"#, b"bad argument #0 to '?' (MessagePack pack needs input.)"),
        (r#"return select(2, pcall(function() return cmsgpack.pack() end))"#, b"user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"),
        (r#"local t = {cmsgpack.unpack(cmsgpack.pack(1, 'two', 3.5, true, nil, 'x'))} return #t .. ':' .. tostring(t[1]) .. tostring(t[2]) .. tostring(t[3]) .. tostring(t[4]) .. tostring(t[5]) .. tostring(t[6])"#, b"6:1two3.5truenilx"),
        (r#"return tostring(cmsgpack.unpack('\192'))"#, b"nil"),
        (r#"return select('#', cmsgpack.unpack(''))"#, b"0"),
        (r#"return cjson.encode(cmsgpack.unpack(cmsgpack.pack({1, 2, {a=3}})))"#, b"[1,2,{\"a\":3}]"),
        (r#"return tostring(cmsgpack.unpack('\204\200')) .. ',' .. tostring(cmsgpack.unpack('\208\200')) .. ',' .. tostring(cmsgpack.unpack('\205\255\255')) .. ',' .. tostring(cmsgpack.unpack('\209\255\254'))"#, b"200,-56,65535,-2"),
        (r#"return tostring(cmsgpack.unpack('\206\255\255\255\255')) .. ',' .. tostring(cmsgpack.unpack('\210\255\255\255\254'))"#, b"4294967295,-2"),
        (r#"return tostring(cmsgpack.unpack('\207\255\255\255\255\255\255\255\255')) .. ',' .. tostring(cmsgpack.unpack('\207\0\0\0\1\0\0\0\0')) .. ',' .. tostring(cmsgpack.unpack('\211\128\0\0\0\0\0\0\0'))"#, b"-1,4294967296,-9.2233720368548e+18"),
        (r#"return tostring(cmsgpack.unpack('\202\63\192\0\0')) .. ',' .. tostring(cmsgpack.unpack('\203\63\185\153\153\153\153\153\154'))"#, b"1.5,0.1"),
        (r#"return tostring(cmsgpack.unpack('\255')) .. ',' .. tostring(cmsgpack.unpack('\224')) .. ',' .. tostring(cmsgpack.unpack('\127'))"#, b"-1,-32,127"),
        (r#"return cmsgpack.unpack('\217\3abc') .. cmsgpack.unpack('\218\0\2de') .. cmsgpack.unpack('\219\0\0\0\1f') .. cmsgpack.unpack('\161g')"#, b"abcdefg"),
        (r#"return cjson.encode({cmsgpack.unpack('\220\0\2\1\2')}) .. cjson.encode({cmsgpack.unpack('\221\0\0\0\1\3')})"#, b"[[1,2]][[3]]"),
        (r#"return cjson.encode({cmsgpack.unpack('\222\0\1\161a\1')}) .. cjson.encode({cmsgpack.unpack('\223\0\0\0\1\161b\2')})"#, b"[{\"a\":1}][{\"b\":2}]"),
        (r#"return cjson.encode(cmsgpack.unpack('\130\161a\1\161b\2'))"#, b"{\"a\":1,\"b\":2}"),
        (r#"return cjson.encode(cmsgpack.unpack('\147\1\192\3'))"#, b"[1,null,3]"),
        (r#"return select(2, pcall(cmsgpack.unpack, '\193'))"#, b"Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\196\1a'))"#, b"Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\212\1\1'))"#, b"Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\205\1'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\163ab'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\146\1'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\219\0\0\0\9abc'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\129\192\1'))"#, b"table index is nil"),
        (r#"return select(2, pcall(cmsgpack.unpack, '\129\202\127\192\0\0\1'))"#, b"table index is NaN"),
        (r#"return select(2, pcall(function() return cmsgpack.unpack('\146\1\193') end))"#, b"user_script:1: Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack))"#, b"bad argument #1 to '?' (string expected, got no value)"),
        (r#"return select(2, pcall(cmsgpack.unpack, {}))"#, b"bad argument #1 to '?' (string expected, got table)"),
        (r#"return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}, ',')"#, b"1,1"),
        (r#"return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}, ',')"#, b"-1,3"),
        (r#"return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)}, ',')"#, b"-1"),
        (r#"return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}, ',')"#, b"2,1,2"),
        (r#"return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 5)}, ',')"#, b"-1,1,2,3"),
        (r#"return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)}, ',')"#, b"1,2,3"),
        (r#"return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)}, ',')"#, b"1"),
        (r#"return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}, ',')"#, b"-1,2,3"),
        (r#"return select(2, pcall(cmsgpack.unpack_one, 'abc', -1))"#, b"Invalid request to unpack with offset of -1 and limit of 3."),
        (r#"return select(2, pcall(cmsgpack.unpack_limit, 'abc', -1))"#, b"Invalid request to unpack with offset of 0 and limit of 3."),
        (r#"return select(2, pcall(cmsgpack.unpack_one, 'abc', 4))"#, b"Start offset 4 greater than input length 3."),
        (r#"return select(2, pcall(function() return cmsgpack.unpack_one('abc', 9) end))"#, b"user_script:1: Start offset 9 greater than input length 3."),
        (r#"return select(2, pcall(cmsgpack.unpack_limit, 'abc'))"#, b"bad argument #2 to '?' (number expected, got no value)"),
        (r#"return select(2, pcall(cmsgpack.unpack_limit, 'abc', 'x'))"#, b"bad argument #2 to '?' (number expected, got string)"),
        (r#"return select(2, pcall(cmsgpack.unpack_one))"#, b"bad argument #1 to '?' (string expected, got no value)"),
        (r#"return select(2, pcall(cmsgpack.unpack_one, nil, 1))"#, b"bad argument #1 to '?' (string expected, got nil)"),
        (r#"return table.concat({cmsgpack.unpack_one('\1\2', '1')}, ',')"#, b"-1,2"),
        (r#"return select(2, pcall(function() local s = string.rep('\1', 9000) return #{cmsgpack.unpack(s)} end))"#, b"user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
        (r#"return select(2, pcall(function() local s = string.rep('\145', 5000) return #{cmsgpack.unpack(s)} end))"#, b"user_script:1: stack overflow (in function mp_decode_to_lua_array)"),
        (r#"return select(2, pcall(function() local t = {} for i=1,5000 do t[i]=i end return cmsgpack.pack(unpack(t)) end))"#, b"user_script:1: bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)"),
        (r#"local t = {} for k in pairs(cmsgpack) do t[#t+1] = k end return table.concat(t, ',')"#, b"_DESCRIPTION,pack,_NAME,unpack,_COPYRIGHT,_VERSION,unpack_one,unpack_limit"),
        (r#"return cmsgpack._VERSION .. '|' .. cmsgpack._COPYRIGHT .. '|' .. cmsgpack._DESCRIPTION .. '|' .. cmsgpack._NAME"#, b"lua-cmsgpack 0.4.0|Copyright (C) 2012, Redis Ltd.|MessagePack C implementation for Lua|cmsgpack"),
        (r#"local t = setmetatable({}, {__index = function() return 1 end}) return cmsgpack.pack(t)"#, b"\x90"),
        (r#"return cmsgpack.pack({1, {2, {3, {4}}}, a={b={c=1}}})"#, b"\x83\x01\x01\x02\x92\x02\x92\x03\x91\x04\xa1a\x81\xa1b\x81\xa1c\x01"),
        (r#"return cmsgpack.pack(1.5e-45, 1e-45, 3.4e38, 16777217, -16777217)"#, b"\xcb6\xa1 \x81A\xe9\x90\x0b\xcb6\x96\xd6\x01\xad7j\xb9\xcbG\xef\xf93\xc7\x8c\xdf\xad\xce\x01\0\0\x01\xd2\xfe\xff\xff\xff"),
        (r#"return cmsgpack.pack(0.5, 0.25, 0.3, -1.5, 2^-149, 2^-150)"#, b"\xca?\0\0\0\xca>\x80\0\0\xcb?\xd3333333\xca\xbf\xc0\0\0\xca\0\0\0\x01\xcb6\x90\0\0\0\0\0\0"),
        (r#"return cmsgpack.pack(9007199254740993)"#, b"\xcf\0 \0\0\0\0\0\0"),
        (r#"return cmsgpack.pack(2^62, -2^62 - 1024)"#, b"\xcf@\0\0\0\0\0\0\0\xd3\xbf\xff\xff\xff\xff\xff\xfc\0"),
        (r#"return tostring(cmsgpack.unpack('\202\255\192\0\0')) .. tostring(cmsgpack.unpack('\202\127\128\0\0'))"#, b"-naninf"),
        (r#"return select(2, pcall(cmsgpack.unpack, '\129\161a'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\129'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\146\192\193'))"#, b"Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\145\129\192\1'))"#, b"table index is nil"),
        (r#"return select(2, pcall(cmsgpack.unpack, '\129\192'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\130\1\1\192\193'))"#, b"Bad data format in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\130\1\1\192'))"#, b"Missing bytes in input."),
        (r#"return select(2, pcall(cmsgpack.unpack, '\131\1\2\192\3\4\5'))"#, b"table index is nil"),
        (r#"local t = cmsgpack.unpack('\131\1\2\3\192\4\5') return tostring(t[1]) .. tostring(t[3]) .. tostring(t[4])"#, b"2nil5"),
        (r#"local t = cmsgpack.unpack('\146\192\192') return tostring(#t) .. tostring(t[1]) .. tostring(t[2])"#, b"0nilnil"),
        (r#"return select('#', cmsgpack.unpack('\192\192\192'))"#, b"3"),
        (r#"return select(2, pcall(function() local s = string.rep('\129\1', 5000) .. '\1' return (cmsgpack.unpack(s)) end))"#, b"user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
        (r#"return select(2, pcall(function() local s = string.rep('\129\161k', 5000) .. '\1' return (cmsgpack.unpack(s)) end))"#, b"user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
        (r#"local s = string.rep('\145', 3990) .. '\1' local t = cmsgpack.unpack(s) local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d"#, b"3990"),
        (r#"local s = string.rep('\129\1', 3000) .. '\1' local t = cmsgpack.unpack(s) local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d"#, b"3000"),
        (r#"return select(2, pcall(function() local t = {} for i=1,4000 do t[i]=i end return #cmsgpack.pack(unpack(t)) end))"#, b"11618"),
        (r#"return select(2, pcall(function() local t = {} for i=1,3999 do t[i]={} end return #cmsgpack.pack(unpack(t)) end))"#, b"3999"),
        (r#"return select(2, pcall(function() local t = {} for i=1,3998 do t[i]={} end return #cmsgpack.pack(unpack(t)) end))"#, b"3998"),
        (r#"return table.concat({cmsgpack.unpack_limit('\1\2\3', 1, 1)}, ',') .. '|' .. table.concat({cmsgpack.unpack_limit('\1\2\3', 2^31 + 1)}, ',')"#, b"2,2|-1,1,2,3"),
        (r#"return select(2, pcall(cmsgpack.unpack_limit, '\1\2\3', 2^32 + 1))"#, b"-1"),
        (r#"return table.concat({cmsgpack.unpack_one('\1\2\3', 2.7)}, ',')"#, b"-1,3"),
        (r#"return select(2, pcall(cmsgpack.unpack_one, '\1', -2^40))"#, b"Invalid request to unpack with offset of 0 and limit of 1."),
        (r#"return table.concat({cmsgpack.unpack_one(123)}, ',')"#, b"1,49"),
        (r#"return table.concat({cmsgpack.unpack_limit('\1\2\3', '2', '1')}, ',')"#, b"-1,2,3"),
    ];

    #[test]
    fn scripts_see_what_valkey_scripts_see() {
        check_all(CASES);
    }
}
