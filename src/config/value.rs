//! Directive values: parsing arguments the way Valkey does (same accepted
//! syntax, same error texts), validation, and the CONFIG GET text.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ferrokey_formats::resp::parse_i64;

use super::cnum::{memtoull, os_error_text, string2d, strtoll, trimmed_double};
use super::table::{Check, Directive, Kind, NumType, Special, MEMORY, MULTI_ARG, OCTAL, PERCENT};
use super::Config;

/// The current value of one directive.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Bool(bool),
    /// For directives flagged EMPTY_IS_NULL the empty string means "unset".
    Str(Vec<u8>),
    /// The OR of the enum values given (a single one unless MULTI_ARG).
    Enum(i64),
    /// Stored as Valkey stores it before casting to the C type: unsigned
    /// values as their bit pattern, percentages as negative numbers.
    Num(i64),
    Dir(PathBuf),
    /// (seconds, changes) pairs.
    Save(Vec<(i64, i32)>),
    ObufLimits([ObufLimit; 3]),
    OomScores([i32; 3]),
    KeyspaceEvents(u32),
    Bind(Vec<Vec<u8>>),
    ReplicaOf(Option<(Vec<u8>, i64)>),
    Percentiles(Vec<f64>),
}

/// Output buffer limits of one client class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: i32,
}

/// Client classes of `client-output-buffer-limit`, in Valkey's order, with
/// the name CONFIG GET prints and the one CONFIG REWRITE writes.
pub(super) const OBUF_CLASSES: [(&str, &str); 3] = [("normal", "normal"), ("slave", "replica"), ("pubsub", "pubsub")];

/// notify-keyspace-events classes; 'A' is every class but 'K', 'E' and 'm'
/// (and 'n', which must be asked for explicitly).
const KEYSPACE_EVENTS: [(u8, u32); 14] = [
    (b'g', 1 << 2),
    (b'$', 1 << 3),
    (b'l', 1 << 4),
    (b's', 1 << 5),
    (b'h', 1 << 6),
    (b'z', 1 << 7),
    (b'x', 1 << 8),
    (b'e', 1 << 9),
    (b't', 1 << 10),
    (b'd', 1 << 13),
    (b'n', 1 << 14),
    (b'K', 1 << 0),
    (b'E', 1 << 1),
    (b'm', 1 << 11),
];
const EVENTS_ALL: u32 =
    (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 13);
/// The classes 'A' does not stand for, printed after it.
const EVENTS_OUTSIDE_ALL: [u8; 3] = [b'K', b'E', b'm'];

const BINDADDR_MAX: usize = 16;
const HOST_STR_LEN: usize = 256;

/// Parses a directive's arguments (one unless the directive is MULTI_ARG).
/// `current` is the value being replaced: `dir` resolves relative paths
/// against it and `client-output-buffer-limit` keeps classes not mentioned.
pub(super) fn parse(d: &Directive, args: &[Vec<u8>], current: &Value) -> Result<Value, String> {
    match d.kind {
        Kind::Bool => match args[0].to_ascii_lowercase().as_slice() {
            b"yes" => Ok(Value::Bool(true)),
            b"no" => Ok(Value::Bool(false)),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Str => Ok(Value::Str(args[0].clone())),
        Kind::Enum => parse_enum(d, args),
        Kind::Num(ty) => {
            let v = parse_num(d, &args[0])?;
            check_bounds(d, ty, v)?;
            Ok(Value::Num(v))
        }
        Kind::Special(s) => parse_special(s, args, current),
    }
}

fn parse_enum(d: &Directive, args: &[Vec<u8>]) -> Result<Value, String> {
    let lookup = |arg: &Vec<u8>| d.enum_values.iter().find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(arg));
    let count_ok = !args.is_empty() && (d.has(MULTI_ARG) || args.len() == 1);
    let bits = args.iter().try_fold(0, |bits, a| lookup(a).map(|&(_, v)| bits | v));
    if let (true, Some(bits)) = (count_ok, bits) {
        return Ok(Value::Enum(bits));
    }
    let names: Vec<&str> = d.enum_values.iter().map(|(n, _)| *n).collect();
    Err(format!("argument(s) must be one of the following: {}", names.join(", ")))
}

fn parse_num(d: &Directive, s: &[u8]) -> Result<i64, String> {
    if d.has(MEMORY) {
        if let Some(v) = memtoull(s) {
            return Ok(v as i64);
        }
    }
    if d.has(PERCENT) && s.len() > 1 && s.ends_with(b"%") {
        if let Some(v) = parse_i64(&s[..s.len() - 1]).filter(|v| *v >= 0) {
            return Ok(-v);
        }
    }
    if d.has(OCTAL) {
        if let Some((v, false)) = strtoll(s, 8) {
            return Ok(v);
        }
    }
    if !d.has(MEMORY | PERCENT | OCTAL) {
        if let Some(v) = parse_i64(s) {
            return Ok(v);
        }
    }
    Err(if d.has(MEMORY) && d.has(PERCENT) {
        "argument must be a memory or percent value"
    } else if d.has(MEMORY) {
        "argument must be a memory value"
    } else if d.has(OCTAL) {
        "argument couldn't be parsed as an octal number"
    } else {
        "argument couldn't be parsed into an integer"
    }
    .into())
}

fn check_bounds(d: &Directive, ty: NumType, v: i64) -> Result<(), String> {
    match ty {
        NumType::Unsigned => {
            let u = v as u64 as i128;
            if (d.min..=d.max).contains(&u) {
                Ok(())
            } else if d.has(OCTAL) {
                Err(format!("argument must be between {:o} and {:o} inclusive", d.min, d.max))
            } else {
                Err(format!("argument must be between {} and {} inclusive", d.min, d.max))
            }
        }
        NumType::Signed if d.has(PERCENT) && v < 0 => {
            if (v as i128) < d.min {
                Err(format!("percentage argument must be less or equal to {}", -d.min))
            } else {
                Ok(())
            }
        }
        NumType::Signed if (d.min..=d.max).contains(&(v as i128)) => Ok(()),
        NumType::Signed => Err(format!("argument must be between {} and {} inclusive", d.min, d.max)),
    }
}

/// A single empty argument stands for "no values" in several directives.
fn none_if_single_empty(args: &[Vec<u8>]) -> &[Vec<u8>] {
    if args.len() == 1 && args[0].is_empty() {
        &[]
    } else {
        args
    }
}

fn parse_special(s: Special, args: &[Vec<u8>], current: &Value) -> Result<Value, String> {
    match s {
        Special::Dir => {
            let Value::Dir(base) = current else { unreachable!("dir holds a path") };
            parse_dir(base, &args[0])
        }
        Special::Save => {
            let args = none_if_single_empty(args);
            let invalid = || "Invalid save parameters".to_string();
            if args.len() % 2 == 1 {
                return Err(invalid());
            }
            let mut pairs = Vec::new();
            for pair in args.chunks(2) {
                let (seconds, _) = strtoll(&pair[0], 10).filter(|(v, _)| *v >= 1).ok_or_else(invalid)?;
                let (changes, _) = strtoll(&pair[1], 10).filter(|(v, _)| *v >= 0).ok_or_else(invalid)?;
                // Valkey keeps the count in a C int.
                pairs.push((seconds, changes as i32));
            }
            Ok(Value::Save(pairs))
        }
        Special::ClientOutputBufferLimit => {
            let Value::ObufLimits(mut limits) = current.clone() else { unreachable!("limits value") };
            if !args.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            let mut given = [None; 3];
            for group in args.chunks(4) {
                let class = match group[0].to_ascii_lowercase().as_slice() {
                    b"normal" => 0,
                    b"slave" | b"replica" => 1,
                    b"pubsub" => 2,
                    _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
                };
                // Valkey keeps the seconds in a C int, so it checks the sign after the cast.
                let seconds = strtoll(&group[3], 10).map(|(v, _)| v as i32);
                match (memtoull(&group[1]), memtoull(&group[2]), seconds) {
                    (Some(hard), Some(soft), Some(soft_seconds)) if soft_seconds >= 0 => {
                        given[class] = Some(ObufLimit { hard, soft, soft_seconds });
                    }
                    _ => {
                        return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into())
                    }
                }
            }
            for (limit, new) in limits.iter_mut().zip(given) {
                if let Some(new) = new {
                    *limit = new;
                }
            }
            Ok(Value::ObufLimits(limits))
        }
        Special::OomScoreAdjValues => {
            if args.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut values = [0; 3];
            for (slot, arg) in values.iter_mut().zip(args) {
                match strtoll(arg, 10) {
                    Some((v, _)) if (-2000..=2000).contains(&v) => *slot = v as i32,
                    _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
                }
            }
            Ok(Value::OomScores(values))
        }
        Special::NotifyKeyspaceEvents => {
            let mut flags = 0;
            for &c in args[0].iter().take_while(|&&c| c != 0) {
                flags |= match c {
                    b'A' => EVENTS_ALL,
                    _ => match KEYSPACE_EVENTS.iter().find(|(ch, _)| *ch == c) {
                        Some(&(_, bit)) => bit,
                        None => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
                    },
                };
            }
            Ok(Value::KeyspaceEvents(flags))
        }
        Special::Bind => {
            if args.len() > BINDADDR_MAX {
                return Err("Too many bind addresses specified.".into());
            }
            Ok(Value::Bind(none_if_single_empty(args).to_vec()))
        }
        Special::ReplicaOf => {
            if args.len() != 2 {
                return Err("wrong number of arguments".into());
            }
            if args[0].eq_ignore_ascii_case(b"no") && args[1].eq_ignore_ascii_case(b"one") {
                return Ok(Value::ReplicaOf(None));
            }
            match strtoll(&args[1], 10) {
                Some((port, _)) if (0..=65535).contains(&port) => Ok(Value::ReplicaOf(Some((args[0].clone(), port)))),
                _ => Err("Invalid primary port".into()),
            }
        }
        Special::LatencyTrackingInfoPercentiles => {
            let mut values = Vec::new();
            for arg in none_if_single_empty(args) {
                let v = string2d(arg).ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&v) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                values.push(v);
            }
            Ok(Value::Percentiles(values))
        }
    }
}

/// Resolves a `dir` argument as chdir() would from `base`, failing as it would.
fn parse_dir(base: &Path, arg: &[u8]) -> Result<Value, String> {
    if arg.is_empty() {
        return Err("dir can't be empty".into());
    }
    let path = std::fs::canonicalize(base.join(OsStr::from_bytes(arg))).map_err(|e| os_error_text(&e))?;
    if !path.is_dir() {
        return Err(os_error_text(&std::io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| "Invalid argument".to_string())?;
    // SAFETY: `c_path` is a valid NUL-terminated path for the whole call.
    if unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } != 0 {
        return Err(os_error_text(&std::io::Error::last_os_error()));
    }
    Ok(Value::Dir(path))
}

/// Runs the extra validation Valkey attaches to some directives, on the
/// argument as given. `cfg` is the configuration the value goes into.
pub(super) fn check(d: &Directive, args: &[Vec<u8>], value: &Value, cfg: &Config) -> Result<(), String> {
    let Some(check) = d.check else { return Ok(()) };
    let arg = args.first().map_or(&[][..], |a| a.as_slice());
    let fail = |msg: &str| Err(msg.to_string());
    let is_path = arg.contains(&b'/') || arg.contains(&b'\\');
    match check {
        // ferrokey cannot defragment, like a Valkey built without its jemalloc.
        Check::ActiveDefrag if *value == Value::Bool(true) => fail(
            "Active defragmentation cannot be enabled: it requires a server compiled with a modified Jemalloc \
             like the one shipped by default with the source distribution",
        ),
        Check::ClusterConfigFile if arg.is_empty() => fail("cluster-config-file can't be empty"),
        Check::DbFilename if arg.is_empty() => fail("dbfilename can't be empty"),
        Check::DbFilename if is_path => fail("dbfilename can't be a path, just a filename"),
        Check::AofFilename if arg.is_empty() => fail("appendfilename can't be empty"),
        Check::AofFilename if is_path => fail("appendfilename can't be a path, just a filename"),
        Check::AofDirname if arg.is_empty() => fail("appenddirname can't be empty"),
        Check::AofDirname if is_path => fail("appenddirname can't be a path, just a dirname"),
        Check::ShutdownFlags => {
            let bit = |name: &str| d.enum_values.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
            match value {
                Value::Enum(v) if v & bit("save") != 0 && v & bit("nosave") != 0 => {
                    fail("shutdown options SAVE and NOSAVE can't be used simultaneously")
                }
                _ => Ok(()),
            }
        }
        Check::AnnouncedNodename if !arg.iter().all(|&c| is_valid_aux_char(c)) => {
            fail("Announced human node name contained invalid character")
        }
        Check::AnnouncedHostname if arg.len() >= HOST_STR_LEN => {
            fail(&format!("Hostnames must be less than {HOST_STR_LEN} characters"))
        }
        Check::AnnouncedHostname if !arg.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') => {
            fail("Hostnames may only contain alphanumeric characters, hyphens or dots")
        }
        Check::IpV4 if !arg.is_empty() && parse_ip::<std::net::Ipv4Addr>(arg).is_none() => fail("Invalid IPv4 address"),
        Check::IpV6 if !arg.is_empty() && parse_ip::<std::net::Ipv6Addr>(arg).is_none() => fail("Invalid IPv6 address"),
        Check::ProcTitleTemplate if !valid_proc_title_template(arg, cfg) => {
            fail("template format is invalid or contains unknown variables")
        }
        _ => Ok(()),
    }
}

fn parse_ip<T: std::str::FromStr>(arg: &[u8]) -> Option<T> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// Characters allowed in cluster aux fields such as the human node name.
fn is_valid_aux_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || (c != 0 && !b"!#$%&()*+;<>?@[]^{|}~".contains(&c))
}

/// A proc-title template is valid when every `{variable}` is known and the
/// expansion (with an empty title) is not blank.
fn valid_proc_title_template(template: &[u8], cfg: &Config) -> bool {
    let mut expanded = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.iter().position(|&c| c == b'{') {
        expanded.extend_from_slice(&rest[..open]);
        rest = &rest[open + 1..];
        if rest.first() == Some(&b'{') {
            expanded.push(b'{');
            rest = &rest[1..];
            continue;
        }
        let Some(close) = rest.iter().position(|&c| c == b'}') else { return false };
        match proc_title_variable(&rest[..close], cfg) {
            Some(v) => expanded.extend_from_slice(&v),
            None => return false,
        }
        rest = &rest[close + 1..];
    }
    expanded.extend_from_slice(rest);
    expanded.iter().any(|&c| c != b' ')
}

fn proc_title_variable(name: &[u8], cfg: &Config) -> Option<Vec<u8>> {
    // Read from the values, not the typed fields: they are refreshed only
    // once loading or a CONFIG SET is complete.
    let port = cfg.num_value("port");
    let tls_port = cfg.num_value("tls-port");
    let unixsocket = cfg.string_value("unixsocket");
    Some(match name {
        b"title" => Vec::new(),
        b"listen-addr" if port != 0 || tls_port != 0 => {
            let Value::Bind(addrs) = cfg.value("bind") else { unreachable!("bind holds addresses") };
            let addr = addrs.first().map_or(&b"*"[..], Vec::as_slice);
            [addr, format!(":{}", if port != 0 { port } else { tls_port }).as_bytes()].concat()
        }
        b"listen-addr" => [b"unixsocket:".as_slice(), &unixsocket].concat(),
        b"server-mode" if cfg.bool_value("cluster-enabled") => b"[cluster]".to_vec(),
        b"server-mode" => Vec::new(),
        b"config-file" => match &cfg.config_file {
            Some(p) => p.as_os_str().as_bytes().to_vec(),
            None => b"-".to_vec(),
        },
        b"port" => port.to_string().into_bytes(),
        b"tls-port" => tls_port.to_string().into_bytes(),
        b"unixsocket" => unixsocket,
        _ => return None,
    })
}

/// The name(s) Valkey prints for an enum value: the first entry with exactly
/// that value, else (MULTI_ARG enums) the entries covering its bits.
pub(super) fn enum_name(d: &Directive, value: i64) -> String {
    let mut names = Vec::new();
    let mut unmatched = value;
    for &(name, v) in &d.enum_values {
        if v == value {
            return name.to_string();
        }
        if d.has(MULTI_ARG) && v != 0 && v == unmatched & v {
            names.push(name);
            unmatched &= !v;
        }
    }
    if names.is_empty() || unmatched != 0 {
        return "unknown".into();
    }
    names.join(" ")
}

pub(super) fn keyspace_events_text(flags: u32) -> String {
    let all = flags & EVENTS_ALL == EVENTS_ALL;
    let mut out = String::from(if all { "A" } else { "" });
    for &(c, bit) in &KEYSPACE_EVENTS {
        // 'A' stands for the classes it covers, and (as Valkey prints it) hides 'n' too.
        let shown_by_a = all && !EVENTS_OUTSIDE_ALL.contains(&c);
        if flags & bit != 0 && !shown_by_a {
            out.push(c as char);
        }
    }
    out
}

/// The CONFIG GET text of a value.
pub(super) fn format(d: &Directive, value: &Value) -> String {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match value {
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Str(s) => lossy(s),
        Value::Enum(v) => enum_name(d, *v),
        Value::Num(v) if d.has(PERCENT) && *v < 0 => format!("{}%", -v),
        Value::Num(v) if d.has(MEMORY) => (*v as u64).to_string(),
        Value::Num(v) if d.has(OCTAL) => format!("{:o}", *v as u64),
        Value::Num(v) => v.to_string(),
        Value::Dir(p) => p.to_string_lossy().into_owned(),
        Value::Save(pairs) => pairs.iter().map(|(s, c)| format!("{s} {c}")).collect::<Vec<_>>().join(" "),
        Value::ObufLimits(limits) => OBUF_CLASSES
            .iter()
            .zip(limits)
            .map(|((name, _), l)| format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds))
            .collect::<Vec<_>>()
            .join(" "),
        Value::OomScores(v) => v.map(|x| x.to_string()).join(" "),
        Value::KeyspaceEvents(flags) => keyspace_events_text(*flags),
        Value::Bind(addrs) => addrs.iter().map(|a| lossy(a)).collect::<Vec<_>>().join(" "),
        Value::ReplicaOf(Some((host, port))) => format!("{} {port}", lossy(host)),
        Value::ReplicaOf(None) => String::new(),
        Value::Percentiles(v) => v.iter().map(|p| trimmed_double(*p)).collect::<Vec<_>>().join(" "),
    }
}
