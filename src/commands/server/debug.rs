//! DEBUG: introspection and test hooks. Only the subcommands ferrokey
//! implements are accepted and listed by DEBUG HELP.

use crate::command::{errors, CmdError, CmdResult, Ctx};
use crate::db::Entry;
use crate::log_warning;
use crate::server::unix_ms;
use crate::value::Value;

use super::info::LRU_CLOCK_MAX;
use super::{config_value, parse_i64, subcommand_syntax_error};

/// DEBUG subcommand [arg ...]
pub(super) fn debug(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let sub = args[1].to_ascii_lowercase();
    match (sub.as_slice(), args.len()) {
        (b"help", 2) => help(ctx, args),
        (b"object", 3 | 4) => object(ctx, args),
        (b"sleep", 3) => sleep(ctx, args),
        (b"set-active-expire", 3) => {
            ctx.srv.active_expire_enabled = atoi(args[2]) != 0;
            ctx.out.ok();
            Ok(())
        }
        (b"populate", 3..=5) => populate(ctx, args),
        (b"protocol", 3) => protocol(ctx, args),
        (b"error", 3) => {
            // Sent as given, not counted as an error reply: it simulates one.
            let text: Vec<u8> = args[2].iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
            ctx.out.buf.push(b'-');
            ctx.out.buf.extend_from_slice(&text);
            ctx.out.buf.extend_from_slice(b"\r\n");
            Ok(())
        }
        (b"reload", _) => reload(ctx, args),
        (b"digest", 2) => {
            let digest = crate::persistence::digest::dataset_digest(ctx.srv);
            ctx.out.simple(&digest);
            Ok(())
        }
        (b"digest-value", _) => {
            ctx.out.array(args.len() - 2);
            for key in &args[2..] {
                let digest = crate::persistence::digest::key_digest(ctx.db(), key);
                ctx.out.simple(&digest);
            }
            Ok(())
        }
        (b"log", 3) => {
            log_warning!("DEBUG LOG: {}", String::from_utf8_lossy(args[2]));
            ctx.out.ok();
            Ok(())
        }
        _ => Err(subcommand_syntax_error(args)),
    }
}

fn help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "ERROR <string>",
            "    Return a RESP protocol error with <string> as message. Useful for clients",
            "    unit tests to simulate error replies.",
            "LOG <message>",
            "    Write <message> to the server log.",
            "OBJECT <key> [fast]",
            "    Show low level info about `key` and associated value.",
            "    Some fields of the default behavior may be time consuming to fetch,",
            "    and `fast` can be passed to avoid fetching them.",
            "POPULATE <count> [<prefix>] [<size>]",
            "    Create <count> string keys named key:<num>. If <prefix> is specified then",
            "    it is used instead of the 'key' prefix. These are not propagated to",
            "    replicas. Cluster slots are not respected so keys not belonging to the",
            "    current node can be created in cluster mode.",
            "PROTOCOL <type>",
            "    Reply with a test value of the specified type. <type> can be: string,",
            "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
            "    true, false.",
            "RELOAD [option ...]",
            "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
            "    * MERGE: conflicting keys will be loaded from RDB.",
            "    * NOFLUSH: the existing database will not be removed before load, but",
            "      conflicting keys will generate an exception and kill the server.",
            "    * NOSAVE: the database will be loaded from an existing RDB file.",
            "    Examples:",
            "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
            "      the database.",
            "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
            "      existing RDB file.",
            "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
            "      file to the database.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not",
            "    accessed (otherwise the behavior). Setting it to 1 reenables back the",
            "    default.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    );
    Ok(())
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, empty the dataset and
/// load the file back.
fn reload(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for opt in &args[2..] {
        match opt.to_ascii_lowercase().as_slice() {
            b"merge" => merge = true,
            b"noflush" => flush = false,
            b"nosave" => save = false,
            _ => return Err("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.".into()),
        }
    }
    crate::persistence::reload(ctx.srv, save, flush, merge).map_err(CmdError::from)?;
    ctx.out.ok();
    Ok(())
}

/// C's atoi: the leading integer of the text, 0 when there is none.
fn atoi(arg: &[u8]) -> i64 {
    let text = std::str::from_utf8(arg).unwrap_or("").trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let end = digits.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(digits.len());
    let n = digits[..end].parse::<i64>().unwrap_or(0);
    if negative {
        -n
    } else {
        n
    }
}

/// C's strtod on the leading number of the text, 0 when there is none.
fn strtod(arg: &[u8]) -> f64 {
    let text = std::str::from_utf8(arg).unwrap_or("").trim_start();
    (1..=text.len()).rev().find_map(|end| text.get(..end)?.parse::<f64>().ok()).unwrap_or(0.0)
}

/// DEBUG SLEEP seconds: blocks the whole server, as Valkey does, so that
/// tests can observe what a slow command does to everyone else.
fn sleep(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let seconds = strtod(args[2]);
    if seconds.is_finite() && seconds > 0.0 {
        std::thread::sleep(std::time::Duration::from_micros((seconds * 1_000_000.0) as u64));
    }
    ctx.out.ok();
    Ok(())
}

/// DEBUG OBJECT key [fast]
fn object(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let fast = args.len() == 4 && args[3].eq_ignore_ascii_case(b"fast");
    let shared_ints = shared_integers_allowed(ctx);
    let decay = config_value(ctx.srv, "lfu-decay-time").parse::<i64>().unwrap_or(1);
    let now_s = unix_ms() / 1000;
    let (db, out) = ctx.db_out();
    // The key is shown as stored, even if its time is up.
    let Some(entry) = db.peek(args[2]) else { return Err(errors::NO_SUCH_KEY.into()) };
    let shared = shared_ints && is_shared_integer(&entry.value);
    // Shared integers are one object for the whole server, created at start
    // with a zero clock, which Valkey reports as they are.
    let (refcount, lru) = if shared { (i32::MAX as i64, 0) } else { (1, entry.last_access as i64 & LRU_CLOCK_MAX) };
    let clock = now_s & LRU_CLOCK_MAX;
    let idle = if clock >= lru { clock - lru } else { clock + (LRU_CLOCK_MAX - lru) };
    let mut line = format!("Value at:{:p} refcount:{refcount} encoding:{}", &entry.value, entry.value.encoding_name());
    if !fast {
        line.push_str(&format!(" serializedlength:{}", serialized_length(entry)));
    }
    line.push_str(&format!(" lru:{lru} lru_seconds_idle:{idle}"));
    line.push_str(&format!(" lfu_freq:{} lfu_access_time_minutes:{}", lfu_frequency(lru, decay, now_s), lru >> 8));
    out.simple(&line);
    Ok(())
}

/// Whether small integers are shared objects: not when an LRU or LFU
/// eviction policy needs each value's own access clock.
fn shared_integers_allowed(ctx: &Ctx) -> bool {
    let policy = config_value(ctx.srv, "maxmemory-policy");
    ctx.srv.config.maxmemory == 0 || !(policy.contains("lru") || policy.contains("lfu"))
}

fn is_shared_integer(v: &Value) -> bool {
    matches!(v, Value::Int(n) if (0..10_000).contains(n))
}

/// Reads the access stamp as an LFU counter, as Valkey's DEBUG OBJECT does
/// whatever the policy: the low 8 bits as the count, decayed by the
/// minutes since the stamp's upper 16 bits.
fn lfu_frequency(lru: i64, decay_minutes: i64, now_s: i64) -> i64 {
    let counter = lru & 255;
    let stamp = lru >> 8;
    let now_min = (now_s / 60) & 65535;
    let elapsed = if now_min >= stamp { now_min - stamp } else { 65535 - stamp + now_min };
    let periods = if decay_minutes > 0 { elapsed / decay_minutes } else { 0 };
    if periods > counter {
        0
    } else {
        counter - periods
    }
}

/// The bytes the value takes in an RDB file.
fn serialized_length(entry: &Entry) -> usize {
    match &entry.value {
        Value::Int(n) => rdb_int_length(*n).unwrap_or_else(|| {
            let digits = itoa::Buffer::new().format(*n).len();
            rdb_len_length(digits) + digits
        }),
        Value::EmbStr(b) => rdb_string_length(b),
        Value::RawStr(v) => rdb_string_length(v),
        // Collections: their in-memory compact size approximates the RDB
        // payload until the RDB writer can measure the real one.
        other => other.heap_size(),
    }
}

/// Integers that fit 8, 16 or 32 bits are written as a type byte plus the number.
fn rdb_int_length(n: i64) -> Option<usize> {
    if i8::try_from(n).is_ok() {
        Some(2)
    } else if i16::try_from(n).is_ok() {
        Some(3)
    } else if i32::try_from(n).is_ok() {
        Some(5)
    } else {
        None
    }
}

/// The size of an RDB length prefix.
fn rdb_len_length(len: usize) -> usize {
    if len < 1 << 6 {
        1
    } else if len < 1 << 14 {
        2
    } else if len <= u32::MAX as usize {
        5
    } else {
        9
    }
}

/// A string as RDB stores it: as an integer when it is one, LZF-compressed
/// when that saves at least four bytes, else as is.
fn rdb_string_length(s: &[u8]) -> usize {
    if s.len() <= 11 {
        if let Some(n) = ferrokey_formats::resp::parse_i64(s) {
            if itoa::Buffer::new().format(n).as_bytes() == s {
                if let Some(len) = rdb_int_length(n) {
                    return len;
                }
            }
        }
    }
    if s.len() > 20 {
        if let Some(compressed) = lzf_compressed_len(s, s.len() - 4) {
            return 1 + rdb_len_length(compressed) + rdb_len_length(s.len()) + compressed;
        }
    }
    rdb_len_length(s.len()) + s.len()
}

/// The length of `input` compressed with LZF as Valkey's RDB writer does
/// (its hash table size and fast-mode rehashing after matches, so lengths
/// agree), or None when it does not fit in `max_out` bytes.
fn lzf_compressed_len(input: &[u8], max_out: usize) -> Option<usize> {
    const HASH_BITS: u32 = 16;
    const MAX_LITERAL: usize = 1 << 5;
    const MAX_OFFSET: usize = 1 << 13;
    const MAX_MATCH: usize = (1 << 8) + (1 << 3);
    let n = input.len();
    if n < 3 || max_out == 0 {
        return None;
    }
    let slot = |h: u32| (((h >> (24 - HASH_BITS)).wrapping_sub(h.wrapping_mul(5))) & ((1 << HASH_BITS) - 1)) as usize;
    let first_two = |at: usize| ((input[at] as u32) << 8) | input[at + 1] as u32;
    let mut table = vec![0u32; 1 << HASH_BITS];
    // Only lengths are wanted: `op` counts output bytes, `lit` the bytes of
    // the open literal run (whose header byte is already counted).
    let mut op = 1usize;
    let mut lit = 0usize;
    let mut ip = 0usize;
    let mut hash = first_two(0);
    while ip + 2 < n {
        hash = (hash << 8) | input[ip + 2] as u32;
        let h = slot(hash);
        let candidate = table[h] as usize;
        table[h] = ip as u32;
        let is_match = candidate > 0
            && candidate < ip
            && ip - candidate - 1 < MAX_OFFSET
            && input[candidate..candidate + 3] == input[ip..ip + 3];
        if is_match {
            let max_len = (n - ip - 2).min(MAX_MATCH);
            if op + 4 >= max_out && op - (lit == 0) as usize + 4 >= max_out {
                return None;
            }
            // Close the literal run (dropping its header if it is empty).
            op -= (lit == 0) as usize;
            // Extend the match; long candidates are first compared 16
            // bytes at a time without the length cap, as the C code does.
            let mut len = 2;
            'extend: {
                if max_len > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[candidate + len] != input[ip + len] {
                            break 'extend;
                        }
                    }
                }
                loop {
                    len += 1;
                    if len >= max_len || input[candidate + len] != input[ip + len] {
                        break;
                    }
                }
            }
            let len = len - 2;
            op += if len < 7 { 2 } else { 3 };
            lit = 0;
            op += 1;
            ip += len + 2;
            if ip + 2 >= n {
                break;
            }
            // Hash the last two positions of the match so later data can refer to them.
            ip -= 2;
            hash = first_two(ip);
            for _ in 0..2 {
                hash = (hash << 8) | input[ip + 2] as u32;
                table[slot(hash)] = ip as u32;
                ip += 1;
            }
        } else {
            if op >= max_out {
                return None;
            }
            lit += 1;
            op += 1;
            ip += 1;
            if lit == MAX_LITERAL {
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > max_out {
        return None;
    }
    while ip < n {
        lit += 1;
        op += 1;
        ip += 1;
        if lit == MAX_LITERAL {
            lit = 0;
            op += 1;
        }
    }
    op -= (lit == 0) as usize;
    Some(op)
}

/// DEBUG POPULATE count [prefix] [size]: creates keys prefix:0..count-1
/// holding "value:N" (padded with zero bytes or cut to `size`), skipping
/// keys that exist.
fn populate(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let count = positive(args[2])?;
    let size = if args.len() == 5 { positive(args[4])? as usize } else { 0 };
    let prefix: &[u8] = if args.len() >= 4 { args[3] } else { b"key" };
    let now_ms = ctx.now_ms;
    let now_s = ctx.lru_now();
    let db = ctx.db();
    for j in 0..count {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!(":{j}").as_bytes());
        // Valkey builds the name in a 128-byte buffer.
        key.truncate(127);
        if db.get(&key, now_ms).is_some() {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if size > 0 {
            value.resize(size, 0);
        }
        db.set(&key, Value::short_or_raw(&value), now_s);
    }
    ctx.out.ok();
    Ok(())
}

/// A count of zero or more; anything else, numeric or not, gets the same error.
fn positive(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok().filter(|&n| n >= 0).ok_or_else(|| errors::OUT_OF_RANGE_POSITIVE.into())
}

/// DEBUG PROTOCOL type: a sample reply of each RESP type, for client tests.
fn protocol(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let out = &mut *ctx.out;
    match args[2].to_ascii_lowercase().as_slice() {
        b"string" => out.bulk_str("Hello World"),
        b"integer" => out.int(12345),
        b"double" => out.double_text(b"3.141"),
        b"bignum" => {
            const BIG: &[u8] = b"1234567999999999999999999999999999999";
            if out.resp3 {
                out.buf.push(b'(');
                out.buf.extend_from_slice(BIG);
                out.buf.extend_from_slice(b"\r\n");
            } else {
                out.bulk(BIG);
            }
        }
        b"null" => out.null(),
        b"array" | b"set" | b"map" => {
            let kind = args[2].to_ascii_lowercase();
            match kind.as_slice() {
                b"array" => out.array(3),
                b"set" => out.set(3),
                _ => out.map(3),
            }
            for j in 0..3 {
                out.int(j);
                if kind == b"map" {
                    out.boolean(j == 1);
                }
            }
        }
        b"attrib" => {
            if out.resp3 {
                out.buf.extend_from_slice(b"|1\r\n");
                out.bulk_str("key-popularity");
                out.array(2);
                out.bulk_str("key:123");
                out.int(90);
            }
            out.bulk_str("Some real reply following the attribute");
        }
        b"push" => {
            if !out.resp3 {
                return Err("ERR RESP2 is not supported by this command".into());
            }
            // Valkey 8 holds a push raised while a command runs until the
            // command's own reply is out, so the push arrives second.
            out.bulk_str("Some real reply following the push reply");
            out.push(2);
            out.bulk_str("server-cpu-usage");
            out.int(42);
        }
        b"true" => out.boolean(true),
        b"false" => out.boolean(false),
        b"verbatim" => out.verbatim(b"This is a verbatim\nstring"),
        _ => {
            return Err("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false".into())
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: Value) -> Entry {
        Entry::new(v, 0)
    }

    #[test]
    fn serialized_lengths_match_valkey() {
        // Lengths Valkey 8.0.1's DEBUG OBJECT reports for the same values.
        assert_eq!(serialized_length(&entry(Value::Int(5))), 2);
        assert_eq!(serialized_length(&entry(Value::Int(123456789012))), 13);
        assert_eq!(serialized_length(&entry(Value::string(b"hello"))), 6);
        assert_eq!(serialized_length(&entry(Value::string(&[b'a'; 69]))), 13);
    }

    #[test]
    fn incompressible_strings_are_stored_plainly() {
        let s: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        assert_eq!(rdb_string_length(&s), 2 + 100);
    }

    #[test]
    fn c_style_number_parsing() {
        assert_eq!(atoi(b"2"), 2);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(strtod(b"0.5s"), 0.5);
        assert_eq!(strtod(b"abc"), 0.0);
    }

    #[test]
    fn lfu_counter_decays_per_minute() {
        // A stamp from this very minute keeps its counter.
        let now_s = 1_000_000;
        let stamp = (now_s / 60) & 65535;
        assert_eq!(lfu_frequency((stamp << 8) | 5, 1, now_s), 5);
        assert_eq!(lfu_frequency((stamp << 8) | 5, 1, now_s + 180), 2);
    }
}
