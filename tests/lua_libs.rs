//! The Lua libraries scripts see (cjson, cmsgpack, struct, bit) through
//! their public entry point, `register_all`: what the scripting engine gets
//! from them (globals, error values), and properties the per-library unit
//! tests do not cover: independence of `cjson.new()` configurations,
//! garbage collection, coroutines, round trips and deep nesting on a small
//! native stack.

use ferrokey::scripting::libs::register_all;
use mlua::{Lua, Value};

fn lua() -> Lua {
    let lua = Lua::new();
    register_all(&lua).expect("register the libraries");
    lua
}

/// Runs `code` under the chunk name Valkey gives scripts.
fn eval(lua: &Lua, code: &str) -> mlua::Result<Value> {
    lua.load(code).set_name("@user_script").eval()
}

fn eval_string(lua: &Lua, code: &str) -> String {
    match eval(lua, code) {
        Ok(Value::String(text)) => text.to_string_lossy(),
        other => panic!("{code}: expected a string, got {other:?}"),
    }
}

#[test]
fn the_four_globals_hold_their_functions() {
    let lua = lua();
    let listing = eval_string(
        &lua,
        r#"
        local out = {}
        for _, lib in ipairs({'cjson', 'cmsgpack', 'struct', 'bit'}) do
            local names = {}
            for name, value in pairs(_G[lib]) do
                if type(value) == 'function' then names[#names + 1] = name end
            end
            table.sort(names)
            out[#out + 1] = lib .. ':' .. table.concat(names, ',')
        end
        return table.concat(out, ' ')
        "#,
    );
    assert_eq!(
        listing,
        "cjson:decode,decode_invalid_numbers,decode_max_depth,encode,encode_invalid_numbers,encode_keep_buffer,\
         encode_max_depth,encode_number_precision,encode_sparse_array,new \
         cmsgpack:pack,unpack,unpack_limit,unpack_one \
         struct:pack,size,unpack \
         bit:arshift,band,bnot,bor,bswap,bxor,lshift,rol,ror,rshift,tobit,tohex"
    );
    match eval(&lua, "return cjson.null").unwrap() {
        Value::LightUserData(pointer) => assert!(pointer.0.is_null()),
        other => panic!("cjson.null is {other:?}"),
    }
}

#[test]
fn errors_reach_the_host_as_plain_messages() {
    let lua = lua();
    let cases = [
        ("return cjson.decode('x')", "user_script:1: Expected value but found invalid token at character 1"),
        ("return cjson.encode()", "user_script:1: bad argument #1 to 'encode' (expected 1 argument)"),
        ("return cmsgpack.unpack('\\129\\192\\1')", "table index is nil"),
        ("return struct.pack('i')", "user_script:1: bad argument #2 to 'pack' (number expected, got nil)"),
        ("return bit.band(1, {})", "user_script:1: bad argument #2 to 'band' (number expected, got table)"),
    ];
    for (code, message) in cases {
        match eval(&lua, code) {
            // mlua appends a traceback when the error reaches the host.
            Err(mlua::Error::RuntimeError(text)) => {
                assert_eq!(text.split("\nstack traceback:").next(), Some(message), "{code}")
            }
            other => panic!("{code}: expected a runtime error, got {other:?}"),
        }
    }
    // Inside a script the error value is a string, as with Valkey.
    assert_eq!(eval_string(&lua, "local ok, e = pcall(cjson.decode, '[') return type(e)"), "string");
}

#[test]
fn each_cjson_module_keeps_its_own_configuration() {
    let lua = lua();
    let result = eval_string(
        &lua,
        r#"
        local a, b = cjson.new(), cjson.new()
        a.encode_number_precision(3)
        b.encode_sparse_array(true)
        return a.encode(1/3) .. ' ' .. b.encode(1/3) .. ' ' .. cjson.encode(1/3) .. ' '
            .. b.encode({[40] = 1}) .. ' ' .. select(2, pcall(cjson.encode, {[40] = 1}))
        "#,
    );
    assert_eq!(
        result,
        "0.333 0.33333333333333 0.33333333333333 {\"40\":1} Cannot serialise table: excessively sparse array"
    );
}

#[test]
fn configurations_survive_garbage_collection_of_their_module() {
    let lua = lua();
    let result = eval_string(
        &lua,
        r#"
        local encode = cjson.new().encode
        for i = 1, 200 do cjson.new().encode_keep_buffer(i % 2 == 0) end
        collectgarbage('collect')
        collectgarbage('collect')
        return encode({1.5, 'x'}) .. cjson.encode({true})
        "#,
    );
    assert_eq!(result, "[1.5,\"x\"][true]");
}

#[test]
fn the_libraries_work_inside_coroutines() {
    let lua = lua();
    let result = eval_string(
        &lua,
        r#"
        local co = coroutine.wrap(function(x)
            local packed = cmsgpack.pack(x, struct.pack('>h', 7))
            coroutine.yield(cjson.encode({cmsgpack.unpack(packed)}))
            return bit.tohex(x)
        end)
        return co(300) .. ' ' .. co()
        "#,
    );
    assert_eq!(result, "[300,\"\\u0000\\u0007\"] 0000012c");
}

#[test]
fn values_survive_a_round_trip() {
    let lua = lua();
    // A deterministic mix of nested arrays, maps, strings with every byte
    // value, integers of all sizes and floats, packed and unpacked with
    // cmsgpack, then with cjson for the JSON-representable part.
    let result = eval_string(
        &lua,
        r#"
        local seed = 42
        local function random(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
        local function value(depth)
            local kind = random(depth > 3 and 4 or 6)
            if kind == 0 then return random(2) == 0 and random(200000) - 100000 or (random(2^31) * 2^21 - 2^51) end
            if kind == 1 then return (random(1000000) - 500000) / 7 end
            if kind == 2 then
                local bytes = {}
                for i = 1, random(40) do bytes[i] = string.char(random(256)) end
                return table.concat(bytes)
            end
            if kind == 3 then return random(2) == 0 end
            local t = {}
            if kind == 4 then
                for i = 1, random(6) do t[i] = value(depth + 1) end
            else
                for i = 1, random(6) do t['k' .. random(100)] = value(depth + 1) end
            end
            return t
        end
        local function same(a, b)
            if type(a) ~= type(b) then return false end
            if type(a) ~= 'table' then return a == b end
            for k, v in pairs(a) do if not same(v, b[k]) then return false end end
            for k in pairs(b) do if a[k] == nil then return false end end
            return true
        end
        local checked = 0
        for i = 1, 300 do
            local original = value(0)
            if not same(original, cmsgpack.unpack(cmsgpack.pack(original))) then
                return 'cmsgpack differs at ' .. i
            end
            local json = cjson.encode(original)
            if cjson.encode(cjson.decode(json)) ~= json then return 'cjson differs at ' .. i end
            checked = checked + 1
        end
        return 'ok ' .. checked
        "#,
    );
    assert_eq!(result, "ok 300");
}

#[test]
fn deep_nesting_needs_no_deep_native_stack() {
    // Valkey lets nesting reach the Lua stack limit (about 4000 to 8000
    // levels). The walks are iterative, so even a small thread stack is
    // enough.
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let lua = lua();
            eval_string(
                &lua,
                r#"
                local c = cjson.new()
                c.decode_max_depth(100000)
                c.encode_max_depth(100000)
                local arrays = c.decode(string.rep('[', 5000) .. string.rep(']', 5000))
                local nested = {}
                local node = nested
                for i = 1, 3900 do node.k = {} node = node.k end
                local ok, err = pcall(c.encode, nested)
                local deep = cmsgpack.unpack(string.rep('\145', 3990) .. '\1')
                local depth = 0
                while type(deep) == 'table' do deep = deep[1] depth = depth + 1 end
                return #c.encode(arrays) .. ' ' .. tostring(ok) .. ' ' .. depth .. ' '
                    .. select(2, pcall(c.decode, string.rep('{"a":', 5000)))
                "#,
            )
        })
        .expect("spawn the worker");
    assert_eq!(
        worker.join().expect("the worker finishes"),
        "10000 true 3990 Found too many nested data structures (4000) at character 19996"
    );
}
