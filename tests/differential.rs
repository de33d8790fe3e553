//! Differential test: runs every script in `tests/diff/*.txt` against ferrokey
//! and the reference valkey-server, in RESP2 and again in RESP3, and compares
//! the replies byte for byte (or as a line's prefix says). The script format
//! is described in `tests/diff/README.md`.
//!
//! Environment:
//! - `DIFF_FILE=strings` (or `strings,keyspace`): run only those scripts.
//! - `DIFF_SELF_CHECK=1`: compare valkey-server against a second
//!   valkey-server, which proves the scripts' prefixes are right.
//! - `DIFF_TIMEOUT_MS`: how long to wait for one reply (default 5000).
//! - `DIFF_SHOW=1`: print every line with valkey's reply (for script authors).
//! - `DIFF_FULL=N`: show N mismatches in full (default 50), the rest in one line each.
//! - `DIFF_DIR`: the scripts' folder (default `tests/diff`).

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{escape, RawConn, ReadError, Server, Valkey};
use ferrokey_formats::resp::split_args;

/// How long to wait, after a `[raw]` line, before checking whether the
/// server closed the connection.
const CLOSE_PROBE: Duration = Duration::from_millis(150);
/// How long to watch for a reply that should not come after `[noreply]`.
const NOREPLY_WAIT: Duration = Duration::from_millis(100);
/// How many mismatches the failure message shows in full.
const SHOW_IN_FULL: usize = 50;
/// Replies longer than this are cut in mismatch reports.
const SHOW_BYTES: usize = 1500;

// ---------------------------------------------------------------------------
// Script format
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    /// Byte for byte.
    Exact,
    /// Aggregates compared as multisets, at every depth.
    Sorted,
    /// Same RESP type tree and aggregate lengths; scalars not compared.
    Shape,
    /// Only the top RESP type.
    Type,
    /// An integer reply within `lo..=hi` on both sides.
    Range(i64, i64),
    /// A bulk/verbatim `field:value` text: same set of `# Section` headers
    /// and field names.
    Info,
    /// Errors compared by their first word (the error code) only.
    ErrCode,
}

impl Mode {
    fn describe(&self) -> String {
        match self {
            Mode::Exact => "exact".into(),
            Mode::Sorted => "sorted".into(),
            Mode::Shape => "shape".into(),
            Mode::Type => "type".into(),
            Mode::Range(lo, hi) => format!("range {lo} {hi}"),
            Mode::Info => "info".into(),
            Mode::ErrCode => "errcode".into(),
        }
    }
}

#[derive(Clone, Debug)]
enum Action {
    /// A command, sent as a multibulk; `replies` replies read (one unless
    /// the line says `[replies N]`).
    Cmd { args: Vec<Vec<u8>>, replies: usize },
    /// A command, sent as a multibulk; no reply read.
    NoReply(Vec<Vec<u8>>),
    /// Raw bytes; `replies` replies read, then a check for a closed connection.
    Raw { bytes: Vec<u8>, replies: usize },
}

#[derive(Clone, Debug)]
struct Line {
    lineno: usize,
    text: String,
    mode: Mode,
    /// Only under this protocol (2 or 3), when set.
    only: Option<u8>,
    action: Action,
    /// Runs on the script's second connection (`[other]`).
    on_other: bool,
    /// After its replies, collects what else both connections received
    /// (pub/sub messages, keyspace events) up to a PING sentinel.
    drain: bool,
}

/// The file directive that makes every line drain (`[nodrain]` opts out).
const DRAIN_DIRECTIVE: &str = "#!drain";

/// What the prefixes of one line say.
struct Prefixes {
    mode: Mode,
    only: Option<u8>,
    action: Action,
    on_other: bool,
    /// `[drain]` (Some(true)) or `[nodrain]` (Some(false)); None follows the file.
    drain: Option<bool>,
}

fn parse_script(src: &str) -> Result<Vec<Line>, Vec<String>> {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let drain_all = src.lines().any(|l| l.trim() == DRAIN_DIRECTIVE);
    for (i, raw_line) in src.lines().enumerate() {
        let lineno = i + 1;
        let text = raw_line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match parse_line(text) {
            Ok(p) => lines.push(Line {
                lineno,
                text: text.to_string(),
                mode: p.mode,
                only: p.only,
                action: p.action,
                on_other: p.on_other,
                drain: p.drain.unwrap_or(drain_all),
            }),
            Err(e) => errors.push(format!("line {lineno}: {e}: {text}")),
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

fn parse_line(text: &str) -> Result<Prefixes, String> {
    let mut rest = text;
    let mut mode: Option<Mode> = None;
    let mut only = None;
    let mut raw: Option<usize> = None;
    let mut noreply = false;
    let mut replies: Option<usize> = None;
    let mut on_other = false;
    let mut drain = None;
    while let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']').ok_or("a prefix '[' without ']'")?;
        let words: Vec<&str> = after[..close].split_whitespace().collect();
        rest = after[close + 1..].trim_start();
        let mut set_mode = |m: Mode| -> Result<(), String> {
            if mode.replace(m).is_some() {
                return Err("more than one comparison prefix".into());
            }
            Ok(())
        };
        let int = |s: &str| s.parse::<i64>().map_err(|_| format!("not an integer in a prefix: {s:?}"));
        match words.as_slice() {
            ["sorted"] => set_mode(Mode::Sorted)?,
            ["shape"] => set_mode(Mode::Shape)?,
            ["type"] => set_mode(Mode::Type)?,
            ["info"] => set_mode(Mode::Info)?,
            ["errcode"] => set_mode(Mode::ErrCode)?,
            ["range", lo, hi] => set_mode(Mode::Range(int(lo)?, int(hi)?))?,
            ["resp2"] => only = Some(2),
            ["resp3"] => only = Some(3),
            ["raw"] => raw = Some(1),
            ["raw", n] => raw = Some(int(n)?.try_into().map_err(|_| "a negative reply count")?),
            ["noreply"] => noreply = true,
            ["replies", n] => replies = Some(int(n)?.try_into().map_err(|_| "a negative reply count")?),
            ["other"] => on_other = true,
            ["drain"] => drain = Some(true),
            ["nodrain"] => drain = Some(false),
            _ => return Err(format!("unknown prefix [{}]", &after[..close])),
        }
    }
    if rest.is_empty() {
        return Err("no command after the prefixes".into());
    }
    let action = match raw {
        Some(raw_replies) => {
            if noreply || replies.is_some() {
                return Err("[raw] with [noreply] or [replies N] (use [raw N])".into());
            }
            if on_other {
                return Err("[raw] on the [other] connection".into());
            }
            Action::Raw { bytes: unescape(rest)?, replies: raw_replies }
        }
        None => {
            let args = split_args(rest.as_bytes()).ok_or("unbalanced quotes")?;
            if args.is_empty() {
                return Err("no command".into());
            }
            match (noreply, replies) {
                (true, Some(_)) => return Err("[noreply] and [replies N] together (use [replies 0])".into()),
                (true, None) if on_other => return Err("[noreply] on the [other] connection".into()),
                (true, None) => Action::NoReply(args),
                (false, replies) => Action::Cmd { args, replies: replies.unwrap_or(1) },
            }
        }
    };
    Ok(Prefixes { mode: mode.unwrap_or(Mode::Exact), only, action, on_other, drain })
}

/// Processes `\r \n \t \0 \\ \xHH` in a `[raw]` line.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1).ok_or("a '\\' at the end of a [raw] line")?;
        i += 2;
        match c {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = s.get(i..i + 2).ok_or("a short \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad \\x escape: \\x{hex}"))?);
                i += 2;
            }
            other => return Err(format!("an unknown escape \\{}", other as char)),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Replies as trees of raw bytes
// ---------------------------------------------------------------------------

/// One RESP value, keeping its type byte and header line.
struct Node<'a> {
    kind: u8,
    head: &'a [u8],
    raw: &'a [u8],
    children: Vec<Node<'a>>,
}

impl Node<'_> {
    fn is_null(&self) -> bool {
        self.kind == b'_' || (matches!(self.kind, b'$' | b'*' | b'=' | b'!' | b'~' | b'%') && self.head == b"-1")
    }
    fn is_error(&self) -> bool {
        matches!(self.kind, b'-' | b'!')
    }
    fn is_aggregate(&self) -> bool {
        matches!(self.kind, b'*' | b'~' | b'>' | b'%' | b'|') && !self.is_null()
    }
}

fn tree(buf: &[u8]) -> Result<(Node<'_>, usize), String> {
    let nl = buf.windows(2).position(|w| w == b"\r\n").ok_or("no CRLF")?;
    if nl == 0 {
        return Err("empty line".into());
    }
    let kind = buf[0];
    let head = &buf[1..nl];
    let mut pos = nl + 2;
    let len = || -> Result<i64, String> {
        std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length {:?}", escape(head)))
    };
    let mut children = Vec::new();
    match kind {
        b'+' | b'-' | b':' | b',' | b'(' | b'#' | b'_' => {}
        b'$' | b'=' | b'!' => {
            let n = len()?;
            if n >= 0 {
                pos += n as usize + 2;
                if pos > buf.len() {
                    return Err("short blob".into());
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = len()?;
            if n > 0 {
                let mut count = n as usize * if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                if kind == b'|' {
                    count += 1; // the value the attribute annotates
                }
                for _ in 0..count {
                    let (child, used) = tree(&buf[pos..])?;
                    children.push(child);
                    pos += used;
                }
            }
        }
        other => return Err(format!("unknown type byte {:?}", other as char)),
    }
    Ok((Node { kind, head, raw: &buf[..pos], children }, pos))
}

fn parse_tree(buf: &[u8]) -> Option<Node<'_>> {
    match tree(buf) {
        Ok((n, used)) if used == buf.len() => Some(n),
        _ => None,
    }
}

/// The reply with every aggregate's elements sorted (maps by pair), at every
/// depth, so two replies compare equal when they hold the same multisets.
fn canonical(n: &Node) -> Vec<u8> {
    if !n.is_aggregate() {
        return n.raw.to_vec();
    }
    let mut items: Vec<Vec<u8>> = if matches!(n.kind, b'%' | b'|') {
        n.children.chunks(2).map(|pair| pair.iter().flat_map(|c| canonical(c)).collect()).collect()
    } else {
        n.children.iter().map(canonical).collect()
    };
    items.sort();
    let mut out = vec![n.kind];
    out.extend_from_slice(n.head);
    out.extend_from_slice(b"\r\n");
    for i in items {
        out.extend(i);
    }
    out
}

/// A description of the node's type (errors with their text, which is never
/// random), and with `deep` its aggregate lengths and children's shapes.
fn shape(n: &Node, deep: bool) -> String {
    if n.is_error() {
        return escape(n.raw);
    }
    if n.is_null() {
        return format!("{}null", n.kind as char);
    }
    if n.is_aggregate() && deep {
        let kids: Vec<String> = n.children.iter().map(|c| shape(c, true)).collect();
        return format!("{}{}[{}]", n.kind as char, escape(n.head), kids.join(","));
    }
    (n.kind as char).to_string()
}

/// INFO fields whose names start with this are ferrokey's own additions and
/// are left out of `[info]` comparisons.
const OWN_INFO_PREFIX: &str = "ferrokey_";

/// The `# Section` headers and field names of an INFO-like text (without
/// ferrokey's own fields).
fn info_fields(n: &Node) -> Option<BTreeSet<String>> {
    let body = match n.kind {
        b'$' if !n.is_null() => &n.raw[n.head.len() + 3..n.raw.len() - 2],
        b'=' if !n.is_null() => n.raw[n.head.len() + 3..n.raw.len() - 2].get(4..)?,
        _ => return None,
    };
    let text = String::from_utf8_lossy(body);
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(OWN_INFO_PREFIX))
            .map(|l| if l.starts_with('#') { l.to_string() } else { l.split(':').next().unwrap().to_string() })
            .collect(),
    )
}

/// Compares two replies under `mode`; `Err` carries an explanation when it
/// helps (INFO field differences).
fn compare(mode: &Mode, a: &[u8], b: &[u8]) -> Result<(), Option<String>> {
    if a == b {
        return Ok(());
    }
    if *mode == Mode::Exact {
        return Err(None);
    }
    let (Some(na), Some(nb)) = (parse_tree(a), parse_tree(b)) else {
        return Err(None);
    };
    if *mode == Mode::ErrCode {
        let code = |n: &Node| n.raw[1..].split(|&c| c == b' ' || c == b'\r').next().unwrap_or(b"").to_vec();
        return if na.is_error() && nb.is_error() && na.kind == nb.kind && code(&na) == code(&nb) {
            Ok(())
        } else {
            Err(None)
        };
    }
    // Errors are never random: they must match exactly in every mode.
    if na.is_error() || nb.is_error() {
        return Err(None);
    }
    let ok = match mode {
        Mode::Exact | Mode::ErrCode => unreachable!(),
        Mode::Sorted => canonical(&na) == canonical(&nb),
        Mode::Shape => shape(&na, true) == shape(&nb, true),
        Mode::Type => shape(&na, false) == shape(&nb, false),
        Mode::Range(lo, hi) => {
            let v = |n: &Node| {
                if n.kind != b':' {
                    return None;
                }
                std::str::from_utf8(n.head).ok()?.parse::<i64>().ok()
            };
            matches!((v(&na), v(&nb)), (Some(x), Some(y)) if (*lo..=*hi).contains(&x) && (*lo..=*hi).contains(&y))
        }
        Mode::Info => {
            if na.kind != nb.kind {
                return Err(None);
            }
            let (Some(fa), Some(fb)) = (info_fields(&na), info_fields(&nb)) else {
                return Err(None);
            };
            if fa == fb {
                true
            } else {
                let only_a: Vec<&str> = fa.difference(&fb).map(|s| s.as_str()).collect();
                let only_b: Vec<&str> = fb.difference(&fa).map(|s| s.as_str()).collect();
                return Err(Some(format!(
                    "fields only in <A>: [{}]; fields only in <B>: [{}]",
                    only_a.join(", "),
                    only_b.join(", ")
                )));
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(None)
    }
}

// ---------------------------------------------------------------------------
// Running scripts
// ---------------------------------------------------------------------------

/// What one side answered to one line.
#[derive(Clone, Debug, PartialEq)]
enum Out {
    Reply(Vec<u8>),
    Closed,
    Timeout,
    Invalid(String),
    /// Says which connection the drained frames after it came from, when
    /// it is not the one that ran the line.
    Drained(&'static str),
}

impl Out {
    fn show(&self) -> String {
        match self {
            Out::Reply(r) => {
                let e = escape(r);
                if e.len() > SHOW_BYTES {
                    format!("{}... ({} bytes in all)", &e[..SHOW_BYTES], r.len())
                } else {
                    e
                }
            }
            Out::Closed => "<connection closed>".into(),
            Out::Timeout => "<no reply in time>".into(),
            Out::Invalid(e) => format!("<invalid reply: {e}>"),
            Out::Drained(conn) => format!("<then on the {conn} connection:>"),
        }
    }
    fn breaks_connection(&self) -> bool {
        !matches!(self, Out::Reply(_) | Out::Drained(_))
    }
}

fn show_outs(outs: &[Out]) -> String {
    if outs.is_empty() {
        return "<nothing read>".into();
    }
    outs.iter().map(Out::show).collect::<Vec<_>>().join("  ++  ")
}

struct Side {
    label: String,
    server: Server,
    conn: Option<RawConn>,
    /// The script's second connection, opened by its first `[other]` line
    /// and closed at the end of the script.
    other: Option<RawConn>,
    timeout: Duration,
}

/// The message of the PING a drain sends; its reply (a bulk string, or
/// `["pong", message]` on a RESP2 connection in subscribed mode) ends the
/// drain.
const DRAIN_SENTINEL: &[u8] = b"differential-drain-sentinel";

impl Side {
    /// A fresh connection, restarting the server first if it died. A crash is
    /// returned as a note for the report.
    fn connect(&mut self, proto: u8) -> Option<String> {
        let mut note = None;
        let mut conn = RawConn::try_connect(self.server.port).ok();
        if conn.is_none() {
            if !self.server.is_running() {
                note = Some(format!(
                    "{} stopped running (crashed?) and was restarted with an empty data set\nthe last of its output:\n{}",
                    self.label,
                    tail(&self.server.output(), 3000)
                ));
                self.server.restart();
            }
            conn = Some(RawConn::connect(self.server.port));
        }
        let mut conn = conn.unwrap();
        conn.set_timeout(self.timeout);
        if proto == 3 && conn.try_send(&[b"HELLO", b"3"]).is_ok() {
            let _ = conn.try_read_reply();
        }
        self.conn = Some(conn);
        note
    }

    fn conn(&mut self) -> &mut RawConn {
        self.conn.as_mut().expect("connected")
    }

    /// The second connection, opened (in `proto`, database 0) if needed.
    fn other_conn(&mut self, proto: u8) -> &mut RawConn {
        let timeout = self.timeout;
        let port = self.server.port;
        self.other.get_or_insert_with(|| {
            let mut conn = RawConn::connect(port);
            conn.set_timeout(timeout);
            if proto == 3 && conn.try_send(&[b"HELLO", b"3"]).is_ok() {
                let _ = conn.try_read_reply();
            }
            conn
        })
    }

    /// Ends the second connection at the end of a script, after a RESET so
    /// that the server has dropped its subscriptions before the next
    /// script runs (a plain close is noticed by the server only later).
    fn close_other(&mut self) {
        let Some(mut conn) = self.other.take() else { return };
        if conn.try_send(&[b"RESET"]).is_ok() {
            while let Ok(reply) = conn.try_read_reply() {
                if reply == b"+RESET\r\n" {
                    break;
                }
            }
        }
        conn.close();
    }

    /// After a `[drain]` line: what the first connection (unless it broke)
    /// and then the second one (if open) received besides replies, each up
    /// to the reply of a PING sentinel. Frames of the connection that did
    /// not run the line come after a [`Out::Drained`] marker. Returns
    /// whether the first connection broke (the second one is dropped when
    /// it does).
    fn drain(&mut self, ran_on_other: bool, main_ok: bool) -> (Vec<Out>, bool) {
        let mut outs = Vec::new();
        let mut main_broken = false;
        if main_ok {
            if ran_on_other {
                outs.push(Out::Drained("first"));
            }
            let drained = drain_conn(self.conn());
            main_broken = drained.iter().any(Out::breaks_connection);
            outs.extend(drained);
        }
        if let Some(other) = self.other.as_mut() {
            if !ran_on_other {
                outs.push(Out::Drained("other"));
            }
            let drained = drain_conn(other);
            if drained.iter().any(Out::breaks_connection) {
                self.other = None;
            }
            outs.extend(drained);
        }
        (outs, main_broken)
    }

    fn call(&mut self, args: &[&[u8]]) -> Out {
        let c = self.conn();
        if c.try_send(args).is_err() {
            return Out::Closed;
        }
        read_out(c)
    }

    /// Leaves the connection in a fresh state for a script: RESET (or a new
    /// connection when RESET is not answered as Valkey does), FLUSHALL,
    /// SELECT 0, then `HELLO 3` under RESP3. Returns the setup commands'
    /// failures and the reply to `HELLO 3`.
    fn reset(&mut self, proto: u8, notes: &mut Vec<String>) -> (Vec<String>, Option<Out>) {
        let mut kept = false;
        if let Some(c) = self.conn.as_mut() {
            if c.pending().is_empty() && c.try_send(&[b"RESET"]).is_ok() {
                kept = matches!(c.try_read_reply(), Ok(r) if r == b"+RESET\r\n");
            }
        }
        if !kept {
            notes.extend(self.connect(2));
        }
        let mut failures = Vec::new();
        for cmd in [&[&b"FLUSHALL"[..]][..], &[b"SELECT", b"0"]] {
            let out = self.call(cmd);
            if out != Out::Reply(b"+OK\r\n".to_vec()) {
                let shown = cmd.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>().join(" ");
                failures.push(format!("{} answered {shown} with {}", self.label, out.show()));
                if out.breaks_connection() {
                    notes.extend(self.connect(2));
                }
            }
        }
        let mut hello = None;
        if proto == 3 {
            let out = self.call(&[b"HELLO", b"3"]);
            if out.breaks_connection() {
                notes.extend(self.connect(3));
            }
            hello = Some(out);
        }
        (failures, hello)
    }
}

fn read_out(c: &mut RawConn) -> Out {
    match c.try_read_reply() {
        Ok(r) => Out::Reply(r),
        Err(ReadError::Closed) | Err(ReadError::Io(_)) => Out::Closed,
        Err(ReadError::Timeout) => Out::Timeout,
        Err(ReadError::Protocol(e)) => Out::Invalid(format!("{e}; bytes: {}", escape(c.pending()))),
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Reads a connection's frames up to the reply of a PING sentinel (which
/// is left out), or up to a failure (which is kept).
fn drain_conn(c: &mut RawConn) -> Vec<Out> {
    let mut sentinel_subscribed = b"*2\r\n$4\r\npong\r\n".to_vec();
    sentinel_subscribed.extend_from_slice(&encode_bulk(DRAIN_SENTINEL));
    let sentinel = encode_bulk(DRAIN_SENTINEL);
    if c.try_send(&[b"PING", DRAIN_SENTINEL]).is_err() {
        return vec![Out::Closed];
    }
    let mut outs = Vec::new();
    loop {
        match read_out(c) {
            Out::Reply(r) if r == sentinel || r == sentinel_subscribed => return outs,
            o => {
                let stop = o.breaks_connection();
                outs.push(o);
                if stop {
                    return outs;
                }
            }
        }
    }
}

fn encode_bulk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Runs one line's action on one side's first connection, or with
/// `on_other` on its second one (no close check, no reconnect).
fn exec(side: &mut Side, action: &Action, on_other: bool, proto: u8) -> Vec<Out> {
    let c = if on_other { side.other_conn(proto) } else { side.conn() };
    let (sent, replies) = match action {
        Action::Cmd { args, replies } => {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            (c.try_send(&refs), *replies)
        }
        Action::NoReply(args) => {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            (c.try_send(&refs), 0)
        }
        Action::Raw { bytes, replies } => (c.try_send_raw(bytes), *replies),
    };
    if sent.is_err() {
        return vec![Out::Closed];
    }
    let mut outs = Vec::new();
    for _ in 0..replies {
        let o = read_out(c);
        let stop = o.breaks_connection();
        outs.push(o);
        if stop {
            break;
        }
    }
    outs
}

struct Mismatch {
    /// The command (and subcommand) name, for the summary by command.
    group: String,
    file: String,
    lineno: usize,
    proto: u8,
    mode: String,
    text: String,
    a: String,
    b: String,
    note: Option<String>,
}

struct Run {
    a: Side,
    b: Side,
    compared: usize,
    mismatches: Vec<Mismatch>,
    notes: Vec<String>,
    /// Print every line with the reference's reply (`DIFF_SHOW=1`).
    show: bool,
}

impl Run {
    fn record(&mut self, file: &str, line: &Line, proto: u8, a: &[Out], b: &[Out], note: Option<String>) {
        let note = note.map(|n| n.replace("<A>", &self.a.label).replace("<B>", &self.b.label));
        self.mismatches.push(Mismatch {
            group: group_of(line),
            file: file.to_string(),
            lineno: line.lineno,
            proto,
            mode: line.mode.describe(),
            text: line.text.clone(),
            a: show_outs(a),
            b: show_outs(b),
            note,
        });
    }

    fn run_script(&mut self, file: &str, lines: &[Line], proto: u8) {
        let mut notes = Vec::new();
        let ra = self.a.reset(proto, &mut notes);
        let rb = self.b.reset(proto, &mut notes);
        self.notes.extend(notes.drain(..).map(|n| format!("{file} [RESP{proto}] setup: {n}")));
        let setup_line = |text: &str| Line {
            lineno: 0,
            text: text.to_string(),
            mode: Mode::Shape,
            only: None,
            action: Action::Cmd { args: vec![], replies: 1 },
            on_other: false,
            drain: false,
        };
        let ((fa, ha), (fb, hb)) = (ra, rb);
        if !fa.is_empty() || !fb.is_empty() {
            let mut line = setup_line("RESET / FLUSHALL / SELECT 0 (harness setup)");
            line.mode = Mode::Exact;
            let msg = fa.into_iter().chain(fb).collect::<Vec<_>>().join("; ");
            let note = format!("setup failed: {msg}; the script runs anyway, on whatever state is left");
            self.record(file, &line, proto, &[], &[], Some(note));
        }
        if let (Some(ha), Some(hb)) = (ha, hb) {
            self.compared += 1;
            if !outs_equal(&Mode::Shape, std::slice::from_ref(&ha), std::slice::from_ref(&hb)).0 {
                self.record(file, &setup_line("HELLO 3 (harness setup)"), proto, &[ha], &[hb], None);
            }
        }
        for line in lines {
            if line.only.is_some_and(|p| p != proto) {
                continue;
            }
            let mut oa = exec(&mut self.a, &line.action, line.on_other, proto);
            let mut ob = exec(&mut self.b, &line.action, line.on_other, proto);
            match line.action {
                Action::Raw { .. } => probe_close(&mut self.a, &mut oa, &mut self.b, &mut ob),
                Action::NoReply(_) => {
                    for (side, outs) in [(&mut self.a, &mut oa), (&mut self.b, &mut ob)] {
                        take_unexpected(side, outs);
                    }
                }
                Action::Cmd { .. } => {}
            }
            // Whether each side's first connection must be replaced; a
            // broken second connection is simply dropped.
            let mut main_broken = [false, false];
            for (i, (side, outs)) in [(&mut self.a, &mut oa), (&mut self.b, &mut ob)].into_iter().enumerate() {
                let broken = outs.iter().any(Out::breaks_connection);
                if line.on_other {
                    if broken {
                        side.other = None;
                    }
                } else {
                    main_broken[i] = broken;
                }
                if line.drain {
                    let (drained, drain_broke) = side.drain(line.on_other, !main_broken[i]);
                    main_broken[i] |= drain_broke;
                    outs.extend(drained);
                }
            }
            if self.show {
                say(&format!("{file}:{} [RESP{proto}] {}\n    -> {}", line.lineno, line.text, show_outs(&ob)));
            }
            self.compared += 1;
            let (same, explain) = outs_equal(&line.mode, &oa, &ob);
            let mut crash_notes = Vec::new();
            for (side, broken) in [(&mut self.a, main_broken[0]), (&mut self.b, main_broken[1])] {
                if broken {
                    if let Some(n) = side.connect(proto) {
                        crash_notes.push(n);
                    }
                }
            }
            for n in &crash_notes {
                self.notes.push(format!("{file}:{} [RESP{proto}] {}: {n}", line.lineno, line.text));
            }
            if !same || !crash_notes.is_empty() {
                let crashed = crash_notes.iter().map(|n| n.lines().next().unwrap_or("").to_string());
                let note: Vec<String> = explain.into_iter().chain(crashed).collect();
                let note = (!note.is_empty())
                    .then(|| note.join("; ") + if crash_notes.is_empty() { "" } else { " (see the notes at the end)" });
                self.record(file, line, proto, &oa, &ob, note);
            }
        }
        self.a.close_other();
        self.b.close_other();
    }
}

/// After a `[raw]` line whose last reply was an error on either side (a
/// protocol error closes the connection after its reply), finds out whether
/// each side closed: waits until both have, or `CLOSE_PROBE` has passed.
fn probe_close(a: &mut Side, oa: &mut Vec<Out>, b: &mut Side, ob: &mut Vec<Out>) {
    let ends_in_error = |outs: &Vec<Out>| matches!(outs.last(), Some(Out::Reply(r)) if r.first() == Some(&b'-'));
    if !ends_in_error(oa) && !ends_in_error(ob) {
        return;
    }
    let deadline = std::time::Instant::now() + CLOSE_PROBE;
    let mut open = [!oa.iter().any(Out::breaks_connection), !ob.iter().any(Out::breaks_connection)];
    let mut sides = [(a, oa), (b, ob)];
    while open.iter().any(|&o| o) && std::time::Instant::now() < deadline {
        for (i, (side, outs)) in sides.iter_mut().enumerate() {
            if open[i] && side.conn().is_closed(Duration::from_millis(2)) {
                outs.push(Out::Closed);
                open[i] = false;
            }
        }
    }
}

/// `CLIENT SETNAME` for a line `CLIENT SETNAME x`, `GET` for `get k`,
/// `[raw]` for raw lines, `(setup)` for the harness's own commands.
fn group_of(line: &Line) -> String {
    const CONTAINERS: &[&str] = &[
        "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE", "OBJECT",
        "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
    ];
    match &line.action {
        Action::Raw { .. } => "[raw]".into(),
        Action::Cmd { args, .. } | Action::NoReply(args) => {
            if line.lineno == 0 {
                return "(setup)".into();
            }
            let word = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).to_uppercase());
            let first = word(0).unwrap_or_default();
            match word(1) {
                Some(sub) if CONTAINERS.contains(&first.as_str()) => format!("{first} {sub}"),
                _ => first,
            }
        }
    }
}

/// After a `[noreply]` line: a reply that arrives anyway (within
/// `NOREPLY_WAIT`) is taken as this line's, so that later lines stay aligned.
fn take_unexpected(side: &mut Side, outs: &mut Vec<Out>) {
    if outs.iter().any(Out::breaks_connection) {
        return;
    }
    let c = side.conn();
    if c.pending().is_empty() && c.is_closed(NOREPLY_WAIT) {
        outs.push(Out::Closed);
        return;
    }
    if c.pending().is_empty() {
        return;
    }
    c.set_timeout(NOREPLY_WAIT);
    while !c.pending().is_empty() {
        let o = read_out(c);
        let stop = o.breaks_connection();
        outs.push(o);
        if stop {
            break;
        }
    }
    let t = side.timeout;
    side.conn().set_timeout(t);
}

fn outs_equal(mode: &Mode, a: &[Out], b: &[Out]) -> (bool, Option<String>) {
    if a.len() != b.len() {
        return (false, None);
    }
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Out::Reply(x), Out::Reply(y)) => {
                if let Err(explain) = compare(mode, x, y) {
                    return (false, explain);
                }
            }
            (x, y) if x == y => {}
            _ => return (false, None),
        }
    }
    (true, None)
}

fn script_dir() -> PathBuf {
    match std::env::var_os("DIFF_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("diff"),
    }
}

fn script_files() -> Vec<PathBuf> {
    let dir = script_dir();
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    all.sort();
    if let Ok(only) = std::env::var("DIFF_FILE") {
        let wanted: Vec<String> =
            only.split(',').map(|s| s.trim().trim_end_matches(".txt").to_string()).filter(|s| !s.is_empty()).collect();
        for w in &wanted {
            assert!(
                all.iter().any(|p| p.file_stem().is_some_and(|s| s == w.as_str())),
                "DIFF_FILE names {w}, but there is no {}/{w}.txt",
                dir.display()
            );
        }
        all.retain(|p| p.file_stem().is_some_and(|s| wanted.iter().any(|w| s == w.as_str())));
    }
    assert!(!all.is_empty(), "no scripts (*.txt) in {}", dir.display());
    all
}

/// Writes to the process's stderr directly, so it shows with or without
/// `--nocapture`.
fn say(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.write_all(b"\n");
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "no" | "false"))
}

#[test]
fn differential() {
    if let Err(e) = common::valkey_server_path() {
        panic!("{e}");
    }
    let files = script_files();
    let mut scripts = Vec::new();
    let mut script_errors = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        match parse_script(&src) {
            Ok(lines) => scripts.push((name, lines)),
            Err(errs) => script_errors.extend(errs.into_iter().map(|e| format!("{name} {e}"))),
        }
    }
    assert!(script_errors.is_empty(), "script errors:\n{}", script_errors.join("\n"));

    let self_check = env_flag("DIFF_SELF_CHECK");
    let timeout = std::env::var("DIFF_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(common::REPLY_TIMEOUT);
    let reference = Valkey::start().into_server();
    let (label_a, subject) = if self_check {
        ("valkey#2".to_string(), Valkey::start().into_server())
    } else {
        // Like the reference, which `Valkey::start` gives the same option.
        ("ferrokey".to_string(), Server::start_with(&["--enable-debug-command", "yes"]))
    };
    let side = |label: String, server: Server| Side { label, server, conn: None, other: None, timeout };
    let mut run = Run {
        a: side(label_a.clone(), subject),
        b: side("valkey".to_string(), reference),
        compared: 0,
        mismatches: Vec::new(),
        notes: Vec::new(),
        show: env_flag("DIFF_SHOW"),
    };
    run.a.connect(2);
    run.b.connect(2);

    let mut per_file = Vec::new();
    for (name, lines) in &scripts {
        let (c0, m0) = (run.compared, run.mismatches.len());
        for proto in [2, 3] {
            run.run_script(name, lines, proto);
        }
        let line = format!(
            "differential: {name}: {} lines, {} compared, {} mismatches",
            lines.len(),
            run.compared - c0,
            run.mismatches.len() - m0
        );
        say(&line);
        per_file.push(line);
    }

    let mut groups: Vec<(String, usize)> = Vec::new();
    for m in &run.mismatches {
        match groups.iter_mut().find(|(g, _)| *g == m.group) {
            Some((_, n)) => *n += 1,
            None => groups.push((m.group.clone(), 1)),
        }
    }
    groups.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let by_command = groups.iter().map(|(g, n)| format!("{g} ({n})")).collect::<Vec<_>>().join(", ");
    let (a, b) = (&run.a.label, &run.b.label);
    let width = a.len().max(b.len());
    let mut report = String::new();
    let show_in_full = std::env::var("DIFF_FULL").ok().and_then(|v| v.parse().ok()).unwrap_or(SHOW_IN_FULL);
    for (i, m) in run.mismatches.iter().enumerate() {
        if i < show_in_full {
            let _ = writeln!(report, "--- {}:{} [RESP{}] ({})", m.file, m.lineno, m.proto, m.mode);
            let _ = writeln!(report, "{:width$} : {}", "command", m.text);
            let _ = writeln!(report, "{a:width$} : {}", m.a);
            let _ = writeln!(report, "{b:width$} : {}", m.b);
            if let Some(n) = &m.note {
                let _ = writeln!(report, "{:width$} : {}", "note", n);
            }
        } else {
            if i == show_in_full {
                let _ = writeln!(
                    report,
                    "--- and {} more (DIFF_FULL=N shows N in full):",
                    run.mismatches.len() - show_in_full
                );
            }
            let _ = writeln!(report, "{}:{} [RESP{}] {}", m.file, m.lineno, m.proto, m.text);
        }
    }
    for n in &run.notes {
        let _ = writeln!(report, "note: {n}");
    }
    let summary = format!("differential: {} commands compared, {} mismatches", run.compared, run.mismatches.len());
    say(&summary);
    if !run.mismatches.is_empty() {
        panic!(
            "{summary} ({a} vs {b})\n{}\nmismatches by command: {by_command}\n{report}{summary}",
            per_file.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// The harness's own logic (no server needed)
// ---------------------------------------------------------------------------

#[test]
fn script_prefixes_parse() {
    let lines = parse_script(
        "# comment\n\n  SET k \"a b\"\n[sorted] SMEMBERS s\n[resp3] [range 1 10] TTL k\n[raw 2] PING\\r\\nPING\\r\\n\n[noreply] CLIENT REPLY OFF\n",
    )
    .unwrap();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0].lineno, 3);
    assert!(
        matches!(&lines[0].action, Action::Cmd { args, replies: 1 } if args == &vec![b"SET".to_vec(), b"k".to_vec(), b"a b".to_vec()])
    );
    assert_eq!(lines[1].mode, Mode::Sorted);
    assert_eq!((lines[2].mode.clone(), lines[2].only), (Mode::Range(1, 10), Some(3)));
    assert!(matches!(&lines[3].action, Action::Raw { bytes, replies: 2 } if bytes == b"PING\r\nPING\r\n"));
    assert!(matches!(&lines[4].action, Action::NoReply(_)));
    for bad in
        ["[bogus] PING", "[sorted] [shape] PING", "[sorted]", "SET k \"unbalanced", "[raw] \\q", "[range 1] TTL k"]
    {
        assert!(parse_script(bad).is_err(), "{bad:?} should not parse");
    }
    assert_eq!(unescape("a\\x41\\r\\n\\\\\\0").unwrap(), b"aA\r\n\\\0");

    let drained = parse_script("#!drain\n[replies 3] SUBSCRIBE a b c\n[other] [nodrain] PUBLISH a x\n").unwrap();
    assert!(matches!(&drained[0].action, Action::Cmd { replies: 3, .. }));
    assert!(drained[0].drain && !drained[0].on_other);
    assert!(!drained[1].drain && drained[1].on_other);
    let plain = parse_script("[drain] PING\nPING\n").unwrap();
    assert!(plain[0].drain && !plain[1].drain);
    for bad in ["[raw] [other] PING\\r\\n", "[noreply] [replies 2] PING", "[other] [noreply] PING", "[replies x] PING"]
    {
        assert!(parse_script(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn comparison_modes() {
    let ok = |m: Mode, a: &[u8], b: &[u8]| compare(&m, a, b).is_ok();
    assert!(ok(Mode::Exact, b"+OK\r\n", b"+OK\r\n"));
    assert!(!ok(Mode::Exact, b"*2\r\n:1\r\n:2\r\n", b"*2\r\n:2\r\n:1\r\n"));
    assert!(ok(Mode::Sorted, b"*2\r\n:1\r\n:2\r\n", b"*2\r\n:2\r\n:1\r\n"));
    assert!(ok(
        Mode::Sorted,
        b"*2\r\n*1\r\n$1\r\na\r\n*2\r\n:2\r\n:1\r\n",
        b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$1\r\na\r\n"
    ));
    assert!(ok(Mode::Sorted, b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", b"%2\r\n+b\r\n:2\r\n+a\r\n:1\r\n"));
    assert!(!ok(Mode::Sorted, b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", b"%2\r\n+a\r\n:2\r\n+b\r\n:1\r\n"));
    assert!(!ok(Mode::Sorted, b"*2\r\n:1\r\n:1\r\n", b"*2\r\n:1\r\n:2\r\n"));
    assert!(ok(Mode::Shape, b"*2\r\n$1\r\n1\r\n$2\r\n22\r\n", b"*2\r\n$3\r\n333\r\n$1\r\n4\r\n"));
    assert!(!ok(Mode::Shape, b"*2\r\n$1\r\n1\r\n$2\r\n22\r\n", b"*2\r\n$1\r\n1\r\n:2\r\n"));
    assert!(!ok(Mode::Shape, b"*1\r\n$1\r\n1\r\n", b"*2\r\n$1\r\n1\r\n$1\r\n1\r\n"));
    assert!(!ok(Mode::Shape, b"$-1\r\n", b"$1\r\n1\r\n"));
    assert!(ok(Mode::Type, b"*1\r\n$1\r\n1\r\n", b"*2\r\n$1\r\n1\r\n:1\r\n"));
    assert!(!ok(Mode::Type, b":1\r\n", b"$1\r\n1\r\n"));
    assert!(!ok(Mode::Type, b"-ERR a\r\n", b"-ERR b\r\n"));
    assert!(ok(Mode::Range(1, 10), b":3\r\n", b":10\r\n"));
    assert!(!ok(Mode::Range(1, 10), b":3\r\n", b":11\r\n"));
    assert!(!ok(Mode::Range(1, 10), b"$1\r\n3\r\n", b":3\r\n"));
    assert!(ok(Mode::ErrCode, b"-ERR one\r\n", b"-ERR two\r\n"));
    assert!(!ok(Mode::ErrCode, b"-ERR one\r\n", b"-WRONGTYPE one\r\n"));
    let blob = |kind: char, body: &str| format!("{kind}{}\r\n{body}\r\n", body.len()).into_bytes();
    assert!(ok(Mode::Info, &blob('$', "# S\r\na:1\r\nb:2\r\n"), &blob('$', "# S\r\nb:9\r\na:8\r\n")));
    assert!(ok(Mode::Info, &blob('=', "txt:# S\r\na:1\r\n"), &blob('=', "txt:# S\r\na:7\r\n")));
    assert!(!ok(Mode::Info, &blob('=', "txt:# S\r\na:1\r\n"), &blob('$', "# S\r\na:7\r\n")));
    assert!(!ok(Mode::Info, &blob('$', "# S\r\na:1\r\n"), &blob('$', "# T\r\na:1\r\n")));
    assert!(ok(Mode::Info, &blob('$', "# S\r\na:1\r\nferrokey_x:1\r\n"), &blob('$', "# S\r\na:2\r\n")));
    let err =
        compare(&Mode::Info, &blob('$', "# S\r\na:1\r\nb:2\r\n"), &blob('$', "# S\r\na:1\r\nc:2\r\n")).unwrap_err();
    assert!(err.unwrap().contains("[b]"));
}
