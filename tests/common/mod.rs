//! Shared support for ferrokey's integration tests.
//!
//! Use it from a test file with `mod common;`. It starts the real
//! `ferrokey-server` binary (or, for differential tests, the reference
//! `valkey-server`) on a free port with a temporary data directory, and gives
//! clients for it: the `redis` crate's sync and async connections, and
//! [`RawConn`], a plain TCP connection that reads replies as raw bytes.
//!
//! Every server is killed when its handle is dropped.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ferrokey_formats::resp::{parse_value, split_args, Value};

/// How long a server may take to accept connections after it was spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`RawConn`] waits for a reply before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a start is tried (each with a new free port) when the
/// process exits before accepting connections.
const START_ATTEMPTS: usize = 3;

/// Which server binary a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ferrokey,
    Valkey,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferrokey => "ferrokey",
            Kind::Valkey => "valkey",
        }
    }
}

/// The path of the reference `valkey-server`: `$VALKEY_SERVER` if set, else
/// the first `valkey-server` on `$PATH`, else `/usr/bin/valkey-server`.
pub fn valkey_server_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VALKEY_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(format!("VALKEY_SERVER={} does not exist; unset it or run scripts/install-valkey.sh", p.display()));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|d| d.join("valkey-server")).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/bin/valkey-server"));
    candidates.push(PathBuf::from("/usr/local/bin/valkey-server"));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "valkey-server (Valkey 8) is not installed, and the differential tests need it as their \
         reference: run scripts/install-valkey.sh (or set VALKEY_SERVER=/path/to/valkey-server)"
            .to_string()
    })
}

/// A port that was free a moment ago on 127.0.0.1, and that this process
/// has not handed out before (tests in one binary run in parallel).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running server process (ferrokey unless made by [`Valkey`]).
pub struct Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    kind: Kind,
    binary: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts ferrokey with the default test arguments.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts ferrokey with the default test arguments followed by `args`
    /// (later arguments win, as in Valkey's command line).
    pub fn start_with(args: &[&str]) -> Server {
        Server::start_kind(Kind::Ferrokey, PathBuf::from(env!("CARGO_BIN_EXE_ferrokey-server")), args)
    }

    fn start_kind(kind: Kind, binary: PathBuf, args: &[&str]) -> Server {
        let dir =
            tempfile::Builder::new().prefix(&format!("{}-test-", kind.name())).tempdir().expect("create temp dir");
        let mut s = Server {
            port: 0,
            dir,
            kind,
            binary,
            extra: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            stdout: Default::default(),
            stderr: Default::default(),
        };
        s.spawn_ready(None);
        s
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The data directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The extra arguments this server was started with.
    pub fn extra_args(&self) -> &[String] {
        &self.extra
    }

    /// The full argument list for a start on `port`.
    fn args(&self, port: u16) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.path().to_string_lossy().into_owned(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        if self.kind == Kind::Valkey {
            a.extend(["--enable-debug-command".into(), "yes".into()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Spawns the process and waits until it answers. Tries `prefer_port`
    /// first when given (a restart keeps its port when it can), then fresh
    /// free ports.
    fn spawn_ready(&mut self, prefer_port: Option<u16>) {
        let mut failures = Vec::new();
        for attempt in 0..START_ATTEMPTS {
            let port = match (attempt, prefer_port) {
                (0, Some(p)) => p,
                _ => free_port(),
            };
            match self.spawn_once(port) {
                Ok(()) => {
                    self.port = port;
                    return;
                }
                Err(StartError::Exited(msg)) => failures.push(msg),
                Err(StartError::Fatal(msg)) => {
                    failures.push(msg);
                    break;
                }
            }
        }
        panic!("{} did not start ({} attempt(s)):\n{}", self.kind.name(), failures.len(), failures.join("\n----\n"));
    }

    fn spawn_once(&mut self, port: u16) -> Result<(), StartError> {
        let args = self.args(port);
        *self.stdout.lock().unwrap() = Vec::new();
        *self.stderr.lock().unwrap() = Vec::new();
        let mut child = Command::new(&self.binary)
            .args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {}: {e}", self.binary.display())))?;
        drain(child.stdout.take().unwrap(), self.stdout.clone());
        drain(child.stderr.take().unwrap(), self.stderr.clone());
        let describe = |s: &Server, what: String| {
            format!(
                "{what}\ncommand: {} {}\n{}",
                s.binary.display(),
                args.iter()
                    .map(|a| if a.is_empty() { "\"\"".to_string() } else { a.clone() })
                    .collect::<Vec<_>>()
                    .join(" "),
                s.output()
            )
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Give the drain threads a moment to collect the last words.
                thread::sleep(Duration::from_millis(50));
                return Err(StartError::Exited(describe(
                    self,
                    format!("exited before accepting connections: {status}"),
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(50));
                return Err(StartError::Fatal(describe(
                    self,
                    format!("did not answer PING on port {port} within {START_TIMEOUT:?}"),
                )));
            }
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let mut c = RawConn::from_stream(stream, port);
                c.set_timeout(Duration::from_secs(2));
                c.send(&[b"PING"]);
                match c.try_read_reply() {
                    // Anything but LOADING means the server is serving
                    // (an error such as NOAUTH included).
                    Ok(r) if !r.starts_with(b"-LOADING") => {
                        if let Some(other) = self.answered_by_other(&mut c) {
                            let _ = child.kill();
                            let _ = child.wait();
                            return Err(StartError::Exited(format!(
                                "port {port} was taken by another server (its dir is {other})"
                            )));
                        }
                        self.child = Some(child);
                        return Ok(());
                    }
                    _ => {}
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Guards against a port race with another process: when the server on
    /// the port says (through `CONFIG GET dir`) that its directory is not
    /// ours, returns that directory. A server without `CONFIG GET` passes.
    fn answered_by_other(&self, c: &mut RawConn) -> Option<String> {
        if c.try_send(&[b"CONFIG", b"GET", b"dir"]).is_err() {
            return None;
        }
        let reply = c.try_read_reply().ok()?;
        let dir = match parse_value(&reply).ok()??.0 {
            Value::Array(v) if v.len() == 2 => v.into_iter().nth(1)?,
            Value::Map(v) if v.len() == 1 => v.into_iter().next()?.1,
            _ => return None,
        };
        let Value::Bulk(dir) = dir else { return None };
        let theirs = PathBuf::from(String::from_utf8_lossy(&dir).into_owned());
        let ours = self.dir.path().canonicalize().unwrap_or_else(|_| self.dir.path().to_path_buf());
        let theirs_c = theirs.canonicalize().unwrap_or_else(|_| theirs.clone());
        (theirs_c != ours && theirs != self.dir.path()).then(|| theirs.display().to_string())
    }

    /// What the process printed so far on stdout and stderr.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on the pid of a child we still own.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Stops the process gracefully (SIGTERM, then SIGKILL after 10 s) and
    /// returns its exit status, if it was running.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and
    /// waits for it. The data directory stays; `restart()` starts again.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process if running (gracefully) and starts it again with the
    /// same directory and arguments, on the same port when it is still free.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_ready(Some(self.port));
    }

    /// Like [`restart`](Self::restart), with new extra arguments.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.stop();
        self.extra = args.iter().map(|s| s.to_string()).collect();
        self.spawn_ready(Some(self.port));
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A sync client from the `redis` crate (10 s read/write timeouts).
    pub fn client(&self) -> redis::Connection {
        let c = redis::Client::open(self.url()).expect("client url");
        let con = c
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {} on port {}: {e}", self.kind.name(), self.port));
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        con.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        con
    }

    /// An async (tokio, multiplexed) client from the `redis` crate.
    pub async fn async_client(&self) -> redis::aio::MultiplexedConnection {
        let c = redis::Client::open(self.url()).expect("client url");
        c.get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("async connect to {} on port {}: {e}", self.kind.name(), self.port))
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

enum StartError {
    /// The process exited early (a port race, say): worth another try.
    Exited(String),
    /// Not worth retrying.
    Fatal(String),
}

fn drain<R: Read + Send + 'static>(mut r: R, into: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut v = into.lock().unwrap();
                    // Keep memory bounded for chatty servers: the last 1 MiB.
                    if v.len() > 1 << 20 {
                        let cut = v.len() - (1 << 19);
                        v.drain(..cut);
                    }
                    v.extend_from_slice(&buf[..n]);
                }
            }
        }
    });
}

/// The reference `valkey-server`, started like [`Server`] plus
/// `--enable-debug-command yes`. Derefs to [`Server`] for everything else.
/// Panics (never skips) when valkey-server is not installed.
pub struct Valkey(pub Server);

impl Valkey {
    pub fn start() -> Valkey {
        Valkey::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Valkey {
        let binary = valkey_server_path().unwrap_or_else(|e| panic!("{e}"));
        Valkey(Server::start_kind(Kind::Valkey, binary, args))
    }

    pub fn into_server(self) -> Server {
        self.0
    }
}

impl Deref for Valkey {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl DerefMut for Valkey {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

/// Why [`RawConn::try_read_reply`] returned no reply.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// No complete reply within the timeout.
    Timeout,
    /// The bytes received are not valid RESP.
    Protocol(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::Timeout => write!(f, "timed out waiting for a reply"),
            ReadError::Protocol(e) => write!(f, "invalid reply: {e}"),
            ReadError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

/// A plain TCP connection speaking RESP: sends multibulk commands or raw
/// bytes, reads replies as their exact bytes.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub port: u16,
    timeout: Duration,
}

impl RawConn {
    /// Connects to 127.0.0.1:`port`, panicking on failure.
    pub fn connect(port: u16) -> RawConn {
        RawConn::try_connect(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
    }

    pub fn try_connect(port: u16) -> io::Result<RawConn> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Ok(RawConn::from_stream(stream, port))
    }

    fn from_stream(stream: TcpStream, port: u16) -> RawConn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
        RawConn { stream, buf: Vec::new(), port, timeout: REPLY_TIMEOUT }
    }

    /// Sets how long reads wait for a reply.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one command as a RESP multibulk.
    pub fn send(&mut self, args: &[&[u8]]) {
        self.try_send(args).unwrap_or_else(|e| panic!("send to port {}: {e}", self.port))
    }

    pub fn try_send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.stream.write_all(&encode_command(args))
    }

    /// Sends a command written as an inline line (Valkey's quoting rules),
    /// encoded as a multibulk.
    pub fn send_line(&mut self, line: &str) {
        let args = split_args(line.as_bytes()).unwrap_or_else(|| panic!("unbalanced quotes in {line:?}"));
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        self.send(&refs);
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).unwrap_or_else(|e| panic!("send to port {}: {e}", self.port))
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads exactly one reply and returns its raw bytes. Panics on timeout,
    /// closed connection or an invalid reply.
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.try_read_reply() {
            Ok(r) => r,
            Err(e) => panic!("reading a reply from port {}: {e} (unparsed bytes: {})", self.port, escape(&self.buf)),
        }
    }

    /// Reads exactly one reply, reporting failures instead of panicking.
    pub fn try_read_reply(&mut self) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match parse_value(&self.buf) {
                Ok(Some((_, used))) => return Ok(self.buf.drain(..used).collect()),
                Ok(None) => {}
                Err(e) => return Err(ReadError::Protocol(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Timeout);
            }
            self.stream.set_read_timeout(Some(deadline - now)).map_err(ReadError::Io)?;
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(ReadError::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Err(ReadError::Closed)
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Reads one reply, parsed.
    pub fn read_value(&mut self) -> Value {
        let raw = self.read_reply();
        parse_value(&raw).unwrap().unwrap().0
    }

    /// Sends a command and reads its reply's raw bytes.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read_reply()
    }

    /// Sends an inline-quoted command line (as multibulk) and reads the reply.
    pub fn cmd_line(&mut self, line: &str) -> Vec<u8> {
        self.send_line(line);
        self.read_reply()
    }

    /// Sends a command and reads its reply, parsed.
    pub fn cmd_value(&mut self, args: &[&[u8]]) -> Value {
        self.send(args);
        self.read_value()
    }

    /// Bytes received but not yet returned as a reply.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Whether the server has closed the connection, waiting up to `wait`
    /// for it to do so. Bytes that arrive meanwhile are kept for the next
    /// read (and mean the connection is open).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return true;
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return false;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                }
                Err(_) => return true,
            }
        }
    }

    /// Closes the connection (both directions).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Shows bytes readably: printable ASCII as is, `\r`, `\n`, `\t`, `\\`, and
/// `\xHH` for the rest.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Runs the server on `dir` (with no save points), expecting it to exit by
/// itself, as a refused start does; returns its exit code (None when it
/// had to be killed after 30 s) and its output.
pub fn run_to_exit(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let port = free_port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferrokey-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// used_memory and used_memory_rss from INFO memory.
pub fn info_memory(con: &mut redis::Connection) -> (u64, u64) {
    let text: String = redis::cmd("INFO").arg("memory").query(con).expect("INFO memory");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO memory has no {name}"))
    };
    (field("used_memory"), field("used_memory_rss"))
}

/// The number of keys for a memory comparison: the environment variable
/// `var` for a big run (1,000,000 is the figure worth reporting), else a
/// quick default.
pub fn memory_keys(var: &str) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// Adds `keys` keys with one command each (`command(i)`), pipelined in
/// batches of 1000, and describes how much used_memory and RSS grew: per
/// key, and in total.
pub fn memory_growth(con: &mut redis::Connection, keys: u64, command: &dyn Fn(u64) -> redis::Cmd) -> String {
    let (before, rss_before) = info_memory(con);
    for batch in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in batch {
            pipe.add_command(command(i)).ignore();
        }
        pipe.query::<()>(con).expect("pipeline");
    }
    let (after, rss_after) = info_memory(con);
    format!(
        "used_memory +{} = {:.1} B/key, used_memory_rss +{}",
        after - before,
        (after - before) as f64 / keys as f64,
        rss_after.saturating_sub(rss_before)
    )
}

/// Waits until `check` holds (up to 10 s): for what the server does a
/// little after a client acts, such as noticing a closed connection.
pub fn eventually(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never saw {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 20 s) for the server's log, collected by another thread,
/// to show `text`.
pub fn wait_for_log(server: &Server, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.output().contains(text) {
        assert!(Instant::now() < deadline, "the log never showed {text:?}:\n{}", server.output());
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one command given as words (`&["SET", "k", "v"]`) on a `redis`
/// connection.
pub fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// A `redis` connection to 127.0.0.1:`port` whose replies may take up to
/// `read_timeout` (a slow fsync, a rewrite under strace).
pub fn connect_with_read_timeout(port: u16, read_timeout: Duration) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let c = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
    c.set_read_timeout(Some(read_timeout)).unwrap();
    c
}

/// The fixtures folder holding `kind` (`"rdb"`, `"aof"`): the shared one
/// (`../shared/fixtures`) when it is there, else the repository's copy.
pub fn fixtures_dir(kind: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../shared/fixtures");
    if shared.join(kind).is_dir() {
        shared
    } else {
        manifest.join("fixtures")
    }
}

/// DEBUG DIGEST of the whole dataset.
pub fn digest(con: &mut redis::Connection) -> String {
    query(con, &["DEBUG", "DIGEST"]).unwrap()
}
