//! Finding the keys of a command line from the command's key specs, as
//! COMMAND GETKEYS and GETKEYSANDFLAGS report them.
//!
//! Key specs come from Valkey's COMMAND INFO (the ninth field of an entry):
//! where the search for keys begins (an argument index, or the argument
//! after a keyword) and how the keys follow from there (a range, or a count
//! given by an argument). Some commands' keys cannot be described that way
//! (SORT's STORE, MIGRATE's KEYS, ...); Valkey finds those with dedicated
//! code, which [`special_keys`] mirrors.

use ferrokey_formats::resp::{parse_i64, Value};

use crate::command::{flags, CommandSpec};

/// Key flags, in the order Valkey lists them.
pub const KEY_FLAG_NAMES: &[(u32, &str)] = &[
    (RO, "RO"),
    (RW, "RW"),
    (OW, "OW"),
    (RM, "RM"),
    (ACCESS, "access"),
    (UPDATE, "update"),
    (INSERT, "insert"),
    (DELETE, "delete"),
    (NOT_KEY, "not_key"),
    (INCOMPLETE, "incomplete"),
    (VARIABLE_FLAGS, "variable_flags"),
];

pub const RO: u32 = 1 << 0;
pub const RW: u32 = 1 << 1;
pub const OW: u32 = 1 << 2;
pub const RM: u32 = 1 << 3;
pub const ACCESS: u32 = 1 << 4;
pub const UPDATE: u32 = 1 << 5;
pub const INSERT: u32 = 1 << 6;
pub const DELETE: u32 = 1 << 7;
pub const NOT_KEY: u32 = 1 << 8;
pub const INCOMPLETE: u32 = 1 << 9;
pub const VARIABLE_FLAGS: u32 = 1 << 10;

#[derive(Debug, PartialEq)]
enum BeginSearch {
    /// The first key is at this argument.
    Index(i64),
    /// The first key follows this keyword, searched from `start_from`
    /// (negative: from the end, backwards).
    Keyword {
        keyword: Vec<u8>,
        start_from: i64,
    },
    Unknown,
}

#[derive(Debug, PartialEq)]
enum FindKeys {
    /// Keys up to `last_key` (relative to the first key; negative counts
    /// from the end, or with `limit` a fraction of what remains), every
    /// `key_step` arguments.
    Range {
        last_key: i64,
        key_step: i64,
        limit: i64,
    },
    /// The argument at `keynum_idx` (relative to the begin) holds the number
    /// of keys, which start `first_key` arguments after the begin.
    KeyNum {
        keynum_idx: i64,
        first_key: i64,
        key_step: i64,
    },
    Unknown,
}

#[derive(Debug, PartialEq)]
struct KeySpec {
    flags: u32,
    begin: BeginSearch,
    find: FindKeys,
}

/// A key found in a command line: its argument position and access flags.
#[derive(Debug, PartialEq, Clone, Copy)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: u32,
}

/// Whether a command can have keys at all (COMMAND GETKEYS refuses
/// commands that cannot).
pub fn has_keys(spec: &CommandSpec) -> bool {
    special_finder(&spec.name).is_some() || parse_specs(&spec.info).iter().any(|s| s.flags & NOT_KEY == 0)
}

/// Finds the keys of `args` (args[0] is the command name) for `spec`; the
/// argument count must already match the command's arity. Empty when the
/// arguments are not valid enough to tell.
pub fn find_keys(spec: &CommandSpec, args: &[&[u8]]) -> Vec<KeyRef> {
    let specs = parse_specs(&spec.info);
    let has_real_spec = specs.iter().any(|s| s.flags & NOT_KEY == 0);
    // Specs whose flags depend on the arguments (SET with GET) are only
    // trusted for positions; the dedicated finder gives the right flags.
    let variable = specs.iter().any(|s| s.flags & VARIABLE_FLAGS != 0);
    if has_real_spec && !variable {
        if let Some(keys) = keys_from_specs(&specs, args) {
            return keys;
        }
    }
    special_finder(&spec.name).map(|find| find(args)).unwrap_or_default()
}

/// Whether a command may validly be called without keys (EVAL with 0 keys).
pub fn keys_optional(spec: &CommandSpec) -> bool {
    spec.has(flags::NO_MANDATORY_KEYS)
}

fn map_get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| text(k) == Some(key.as_bytes())).map(|(_, v)| v),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bulk(b) | Value::Simple(b) => Some(b),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

fn parse_specs(info: &Value) -> Vec<KeySpec> {
    let Value::Array(fields) = info else { return Vec::new() };
    let Some(Value::Set(specs) | Value::Array(specs)) = fields.get(8) else { return Vec::new() };
    specs.iter().map(parse_spec).collect()
}

fn parse_spec(v: &Value) -> KeySpec {
    let mut flag_bits = 0;
    if let Some(Value::Set(names) | Value::Array(names)) = map_get(v, "flags") {
        for name in names.iter().filter_map(text) {
            if let Some((bit, _)) = KEY_FLAG_NAMES.iter().find(|(_, n)| n.as_bytes() == name) {
                flag_bits |= bit;
            }
        }
    }
    let begin = map_get(v, "begin_search");
    let begin_spec = begin.and_then(|b| map_get(b, "spec"));
    let begin = match begin.and_then(|b| map_get(b, "type")).and_then(text) {
        Some(b"index") => BeginSearch::Index(int(begin_spec.and_then(|s| map_get(s, "index")))),
        Some(b"keyword") => BeginSearch::Keyword {
            keyword: begin_spec.and_then(|s| map_get(s, "keyword")).and_then(text).unwrap_or_default().to_vec(),
            start_from: int(begin_spec.and_then(|s| map_get(s, "startfrom"))),
        },
        _ => BeginSearch::Unknown,
    };
    let find = map_get(v, "find_keys");
    let find_spec = find.and_then(|f| map_get(f, "spec"));
    let field = |name| int(find_spec.and_then(|s| map_get(s, name)));
    let find = match find.and_then(|f| map_get(f, "type")).and_then(text) {
        Some(b"range") => {
            FindKeys::Range { last_key: field("lastkey"), key_step: field("keystep"), limit: field("limit") }
        }
        Some(b"keynum") => FindKeys::KeyNum {
            keynum_idx: field("keynumidx"),
            first_key: field("firstkey"),
            key_step: field("keystep"),
        },
        _ => FindKeys::Unknown,
    };
    KeySpec { flags: flag_bits, begin, find }
}

/// Applies every key spec; None when one of them cannot be applied to
/// this line (a spec of unknown shape, an incomplete spec, a count that is
/// not a number, keys beyond the last argument).
fn keys_from_specs(specs: &[KeySpec], args: &[&[u8]]) -> Option<Vec<KeyRef>> {
    let argc = args.len() as i64;
    let mut keys = Vec::new();
    for spec in specs {
        if spec.flags & NOT_KEY != 0 {
            continue;
        }
        let mut first = match &spec.begin {
            BeginSearch::Index(i) => *i,
            BeginSearch::Keyword { keyword, start_from } => match find_keyword(args, keyword, *start_from) {
                Some(i) => i + 1,
                // A keyword that is absent means this spec has no keys here.
                None => continue,
            },
            BeginSearch::Unknown => return None,
        };
        let (last, step) = match spec.find {
            FindKeys::Range { last_key, key_step, limit } => {
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit == 0 {
                    argc + last_key
                } else {
                    first + ((argc - first) / limit + last_key)
                };
                (last, key_step)
            }
            FindKeys::KeyNum { keynum_idx, first_key, key_step } => {
                if keynum_idx >= argc {
                    return None;
                }
                let count_arg = args.get(usize::try_from(first + keynum_idx).ok()?)?;
                let count = parse_i64(count_arg).filter(|&n| n >= 0)?;
                first += first_key;
                (first + count - 1, key_step)
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return None;
        }
        let mut i = first;
        while i <= last {
            keys.push(KeyRef { pos: i as usize, flags: spec.flags });
            i += step;
        }
        if spec.flags & INCOMPLETE != 0 {
            return None;
        }
    }
    Some(keys)
}

/// The position of `keyword` (case-insensitive) searching from
/// `start_from`: forwards up to, not including, the last argument; or when
/// negative, backwards from that many arguments before the end down to
/// argument 2.
fn find_keyword(args: &[&[u8]], keyword: &[u8], start_from: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let (start, end) = if start_from > 0 { (start_from, argc - 1) } else { (argc + start_from, 1) };
    let forward = start <= end;
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if args[i as usize].eq_ignore_ascii_case(keyword) {
            return Some(i);
        }
        i += if forward { 1 } else { -1 };
    }
    None
}

type SpecialFinder = fn(&[&[u8]]) -> Vec<KeyRef>;

/// Commands whose keys their key specs cannot fully describe, with the
/// code that finds them.
fn special_finder(name: &str) -> Option<SpecialFinder> {
    Some(match name {
        "set" => set_keys,
        "bitfield" => bitfield_keys,
        "sort" => sort_keys,
        "sort_ro" => sort_ro_keys,
        "migrate" => migrate_keys,
        "georadius" | "georadiusbymember" => georadius_keys,
        "xread" | "xreadgroup" => xread_keys,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => |a| counted_keys(a, 2, 3, None),
        "blmpop" | "bzmpop" => |a| counted_keys(a, 2, 3, None),
        "lmpop" | "zmpop" | "sintercard" | "zunion" | "zinter" | "zdiff" | "zintercard" => {
            |a| counted_keys(a, 1, 2, None)
        }
        "zunionstore" | "zinterstore" | "zdiffstore" => |a| counted_keys(a, 2, 3, Some(1)),
        _ => return None,
    })
}

/// Keys counted by the argument at `count_at` and starting at `first_at`,
/// plus an optional destination key; none when the count is not a sane
/// positive number (the command itself will reply with the error).
fn counted_keys(args: &[&[u8]], count_at: usize, first_at: usize, store_at: Option<usize>) -> Vec<KeyRef> {
    let count = args.get(count_at).map(|a| leading_int(a)).unwrap_or(0);
    if count < 1 || count > (args.len() as i64 - first_at as i64) {
        return Vec::new();
    }
    let mut keys: Vec<KeyRef> = (0..count as usize).map(|i| KeyRef { pos: first_at + i, flags: 0 }).collect();
    if let Some(pos) = store_at {
        keys.push(KeyRef { pos, flags: 0 });
    }
    keys
}

/// The number at the start of an argument, as C's atoi reads it.
fn leading_int(arg: &[u8]) -> i64 {
    let text = std::str::from_utf8(arg).unwrap_or("").trim_start();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let end = digits.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse::<i64>().map(|n| sign * n).unwrap_or(0)
}

/// SET's key is read too when GET is given.
fn set_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let reads = args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
    let flags = if reads { RW | ACCESS | UPDATE } else { OW | UPDATE };
    vec![KeyRef { pos: 1, flags }]
}

/// BITFIELD only reads its key when every operation is a GET.
fn bitfield_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let mut read_only = true;
    let mut i = 2;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        let op = args[i];
        if op.eq_ignore_ascii_case(b"get") && remaining >= 2 {
            i += 3;
        } else if (op.eq_ignore_ascii_case(b"set") || op.eq_ignore_ascii_case(b"incrby")) && remaining >= 3 {
            read_only = false;
            break;
        } else if op.eq_ignore_ascii_case(b"overflow") && remaining >= 1 {
            i += 2;
        } else {
            // A syntax error: assume it writes.
            read_only = false;
            break;
        }
    }
    let flags = if read_only { RO | ACCESS } else { RW | ACCESS | UPDATE };
    vec![KeyRef { pos: 1, flags }]
}

/// SORT reads its key and, with STORE (the last one wins), writes another.
fn sort_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let mut keys = vec![KeyRef { pos: 1, flags: RO | ACCESS }];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let arg = args[i];
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        } else if arg.eq_ignore_ascii_case(b"get") || arg.eq_ignore_ascii_case(b"by") {
            i += 1;
        }
        i += 1;
    }
    if let Some(pos) = store {
        keys.push(KeyRef { pos, flags: OW | UPDATE });
    }
    keys
}

fn sort_ro_keys(_args: &[&[u8]]) -> Vec<KeyRef> {
    vec![KeyRef { pos: 1, flags: RO | ACCESS }]
}

/// MIGRATE moves one key, or with KEYS (and an empty key argument) many.
fn migrate_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let mut first = 3;
    let mut count = 1;
    if args.len() > 6 {
        let mut i = 6;
        while i < args.len() {
            let arg = args[i];
            if arg.eq_ignore_ascii_case(b"keys") {
                if args[3].is_empty() {
                    first = i + 1;
                    count = args.len() - first;
                } else {
                    // Both a key and KEYS: MIGRATE replies with the syntax error.
                    count = 0;
                }
                break;
            }
            if arg.eq_ignore_ascii_case(b"auth") {
                i += 1;
            } else if arg.eq_ignore_ascii_case(b"auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    (first..first + count).map(|pos| KeyRef { pos, flags: RW | ACCESS | DELETE }).collect()
}

/// GEORADIUS reads its key and may STORE or STOREDIST into another (the
/// last one given wins).
fn georadius_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let mut keys = vec![KeyRef { pos: 1, flags: 0 }];
    let mut stored = None;
    let mut i = 5;
    while i < args.len() {
        let arg = args[i];
        if (arg.eq_ignore_ascii_case(b"store") || arg.eq_ignore_ascii_case(b"storedist")) && i + 1 < args.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(pos) = stored {
        keys.push(KeyRef { pos, flags: 0 });
    }
    keys
}

/// XREAD / XREADGROUP: the first half of the arguments after STREAMS.
fn xread_keys(args: &[&[u8]]) -> Vec<KeyRef> {
    let mut streams_at = None;
    let mut i = 1;
    while i < args.len() {
        let arg = args[i];
        if arg.eq_ignore_ascii_case(b"block") || arg.eq_ignore_ascii_case(b"count") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"group") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"noack") {
            // No argument.
        } else if arg.eq_ignore_ascii_case(b"streams") {
            streams_at = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(at) = streams_at else { return Vec::new() };
    let rest = args.len() - at - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Vec::new();
    }
    (at + 1..at + 1 + rest / 2).map(|pos| KeyRef { pos, flags: 0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(flags: u32, begin: BeginSearch, find: FindKeys) -> KeySpec {
        KeySpec { flags, begin, find }
    }

    fn positions(keys: Option<Vec<KeyRef>>) -> Option<Vec<usize>> {
        keys.map(|k| k.iter().map(|k| k.pos).collect())
    }

    #[test]
    fn index_and_range() {
        // MSET key value [key value ...]
        let mset = [spec(OW | UPDATE, BeginSearch::Index(1), FindKeys::Range { last_key: -1, key_step: 2, limit: 0 })];
        let args: Vec<&[u8]> = vec![b"mset", b"a", b"1", b"b", b"2"];
        assert_eq!(positions(keys_from_specs(&mset, &args)), Some(vec![1, 3]));
        let args: Vec<&[u8]> = vec![b"mset", b"a"];
        // Only the key; its value is missing but the range still ends in bounds.
        assert_eq!(positions(keys_from_specs(&mset, &args)), Some(vec![1]));
    }

    #[test]
    fn keyword_with_limit() {
        // XREAD ... STREAMS key [key ...] id [id ...]
        let xread = [spec(
            RO | ACCESS,
            BeginSearch::Keyword { keyword: b"STREAMS".to_vec(), start_from: 1 },
            FindKeys::Range { last_key: -1, key_step: 1, limit: 2 },
        )];
        let args: Vec<&[u8]> = vec![b"xread", b"count", b"2", b"streams", b"a", b"b", b"0", b"0"];
        assert_eq!(positions(keys_from_specs(&xread, &args)), Some(vec![4, 5]));
    }

    #[test]
    fn keynum() {
        // ZUNIONSTORE dest numkeys key [key ...]
        let specs = [
            spec(OW | UPDATE, BeginSearch::Index(1), FindKeys::Range { last_key: 0, key_step: 1, limit: 0 }),
            spec(RO | ACCESS, BeginSearch::Index(2), FindKeys::KeyNum { keynum_idx: 0, first_key: 1, key_step: 1 }),
        ];
        let args: Vec<&[u8]> = vec![b"zunionstore", b"d", b"2", b"a", b"b"];
        assert_eq!(positions(keys_from_specs(&specs, &args)), Some(vec![1, 3, 4]));
        let bad: Vec<&[u8]> = vec![b"zunionstore", b"d", b"x", b"a", b"b"];
        assert_eq!(keys_from_specs(&specs, &bad), None);
        let too_many: Vec<&[u8]> = vec![b"zunionstore", b"d", b"3", b"a", b"b"];
        assert_eq!(keys_from_specs(&specs, &too_many), None);
        // The fallback reads the count like atoi and rejects it too.
        assert!(counted_keys(&bad, 2, 3, Some(1)).is_empty());
        assert_eq!(counted_keys(&args, 2, 3, Some(1)).iter().map(|k| k.pos).collect::<Vec<_>>(), vec![3, 4, 1]);
    }

    #[test]
    fn keyword_from_the_end() {
        // MIGRATE ... KEYS key [key ...], searched backwards from argc-2.
        let specs = [spec(
            RW | ACCESS | DELETE | INCOMPLETE,
            BeginSearch::Keyword { keyword: b"KEYS".to_vec(), start_from: -2 },
            FindKeys::Range { last_key: -1, key_step: 1, limit: 0 },
        )];
        let args: Vec<&[u8]> = vec![b"migrate", b"h", b"p", b"", b"0", b"5", b"KEYS", b"a", b"b"];
        // Incomplete: the specs give up and the dedicated finder answers.
        assert_eq!(keys_from_specs(&specs, &args), None);
        assert_eq!(migrate_keys(&args).iter().map(|k| k.pos).collect::<Vec<_>>(), vec![7, 8]);
    }

    #[test]
    fn sort_finds_the_last_store() {
        let args: Vec<&[u8]> = vec![b"sort", b"a", b"by", b"store", b"store", b"x", b"STORE", b"y"];
        let keys = sort_keys(&args);
        assert_eq!(keys.iter().map(|k| k.pos).collect::<Vec<_>>(), vec![1, 7]);
        assert_eq!(keys[1].flags, OW | UPDATE);
    }

    #[test]
    fn set_flags_depend_on_get() {
        let args: Vec<&[u8]> = vec![b"set", b"k", b"v", b"GET"];
        assert_eq!(set_keys(&args)[0].flags, RW | ACCESS | UPDATE);
        let args: Vec<&[u8]> = vec![b"set", b"k", b"v", b"EX", b"10"];
        assert_eq!(set_keys(&args)[0].flags, OW | UPDATE);
    }

    #[test]
    fn atoi_like_counts() {
        assert_eq!(leading_int(b"12abc"), 12);
        assert_eq!(leading_int(b" -3"), -3);
        assert_eq!(leading_int(b"x"), 0);
    }
}
