//! Serving the other clients while a script runs too long.
//!
//! A script runs on the engine thread, so while it runs no connection
//! task does. Once it has run past `busy-reply-threshold`, the script's
//! instruction hook calls [`while_busy`] every so often, which does by
//! hand what the connection tasks cannot: it reads the other clients'
//! sockets (and accepts new connections), answers every complete request
//! with Valkey's BUSY error, and acts on the few commands that make sense
//! then: SCRIPT KILL and FUNCTION KILL (which ask the script to stop) and
//! SHUTDOWN NOSAVE (which ends the process at once).
//!
//! Bytes read here stay in the client's `unread_input` (the connection
//! task parks a partly received request there too, so a request split
//! across the two is read whole), and the task takes them back when the
//! script is over. Connections accepted meanwhile are handed to the
//! accept loop afterwards, with whatever they sent and was not answered.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use ferrokey_formats::resp::{parse_request, Parsed, Request, RequestLimits};

use crate::client::ClientInfo;
use crate::commands::server as stats;
use crate::server::ServerState;
use crate::{log_notice, log_warning};

/// The script (or function) running now, as the busy poller sees it.
pub struct RunningScript {
    pub caller_id: u64,
    /// FCALL rather than EVAL: decides which KILL stops it and which BUSY
    /// text others get.
    pub is_function: bool,
    /// The function's name (FUNCTION STATS), or the script's SHA1.
    pub name: String,
    pub started: Instant,
    /// The script has run a write command: it can no longer be killed
    /// without losing atomicity.
    pub wrote: bool,
    /// SCRIPT KILL or FUNCTION KILL asked the script to stop.
    pub kill_requested: bool,
    /// Past the threshold: others are being answered BUSY.
    timed_out: bool,
    /// The command that started the run, as its client sent it (FUNCTION
    /// STATS shows it).
    pub command: Vec<Vec<u8>>,
}

impl RunningScript {
    pub fn new(caller_id: u64, is_function: bool, name: String, command: Vec<Vec<u8>>) -> RunningScript {
        RunningScript {
            caller_id,
            is_function,
            name,
            started: Instant::now(),
            wrote: false,
            kill_requested: false,
            timed_out: false,
            command,
        }
    }

    /// Whether other clients are being answered BUSY.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    fn busy_error(&self) -> &'static str {
        if self.is_function {
            "BUSY Valkey is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        } else {
            "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        }
    }
}

/// A connection accepted while a script was running, waiting to become a
/// normal client once it ends.
pub struct AcceptedWhileBusy {
    pub fd: RawFd,
    pub peer: SocketAddr,
    /// What it sent that was not a complete request yet.
    pub unread: Vec<u8>,
}

/// Called from the script's instruction hook. Until the script has run
/// for `busy-reply-threshold` milliseconds it only checks the clock; from
/// then on it serves the other clients as described above. The caller
/// ends the script when `script.kill_requested` is set on return.
pub fn while_busy(st: &mut ServerState, script: &mut RunningScript) {
    if !script.timed_out {
        let elapsed = script.started.elapsed().as_millis() as u64;
        if elapsed < st.config.busy_reply_threshold {
            return;
        }
        log_warning!(
            "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the {} command. Script name is: {}.",
            if script.is_function { "FUNCTION KILL" } else { "SCRIPT KILL" },
            script.name
        );
        script.timed_out = true;
    }
    accept_new_connections(st);
    let readable = readable_clients(st, script.caller_id);
    for info in readable {
        let mut unread = std::mem::take(&mut *info.unread_input.borrow_mut());
        let open = read_socket(info.fd, &mut unread);
        let resp3 = info.resp.get() == 3;
        let used =
            answer_requests(st, script, &unread, |reply| send_reply(&info, reply), info.authenticated.get(), resp3);
        unread.drain(..used);
        *info.unread_input.borrow_mut() = unread;
        if !open {
            info.request_kill();
        }
    }
    let mut accepted = std::mem::take(&mut st.accepted_while_busy);
    for conn in &mut accepted {
        let fd = conn.fd;
        read_socket(fd, &mut conn.unread);
        let unread = std::mem::take(&mut conn.unread);
        let used = answer_requests(st, script, &unread, |reply| send_all(fd, reply), true, false);
        conn.unread = unread[used..].to_vec();
    }
    st.accepted_while_busy.extend(accepted);
    if !st.accepted_while_busy.is_empty() {
        // The accept loop adopts them once the script is over and the
        // event loop runs again.
        st.adopt_notify.notify_one();
    }
}

/// The connected clients (except the script's caller and parked clients,
/// which read nothing until served) whose sockets have bytes, found with
/// one poll(2) call.
fn readable_clients(st: &ServerState, caller_id: u64) -> Vec<Rc<ClientInfo>> {
    let candidates: Vec<Rc<ClientInfo>> = st
        .clients
        .by_id
        .values()
        .filter(|c| c.id != caller_id && !c.blocked.get() && !c.close_requested.get())
        .cloned()
        .collect();
    let mut fds: Vec<libc::pollfd> =
        candidates.iter().map(|c| libc::pollfd { fd: c.fd, events: libc::POLLIN, revents: 0 }).collect();
    if fds.is_empty() {
        return Vec::new();
    }
    // SAFETY: poll(2) on an array of pollfd we own, with a zero timeout.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if n <= 0 {
        return Vec::new();
    }
    candidates.into_iter().zip(fds).filter(|(_, p)| p.revents != 0).map(|(c, _)| c).collect()
}

/// Reads what the socket holds without blocking. Returns false when the
/// peer has closed (or the socket failed).
fn read_socket(fd: RawFd, into: &mut Vec<u8>) -> bool {
    const CHUNK: usize = 16 * 1024;
    loop {
        into.reserve(CHUNK);
        let spare = into.spare_capacity_mut();
        // SAFETY: reads at most spare.len() bytes into the vector's spare
        // capacity, then marks exactly the bytes received as set.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr() as *mut libc::c_void, spare.len(), libc::MSG_DONTWAIT) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted);
        }
        unsafe { into.set_len(into.len() + n as usize) };
        if (n as usize) < CHUNK {
            return true;
        }
    }
}

/// Answers every complete request in `input`; returns the bytes used.
fn answer_requests(
    st: &mut ServerState,
    script: &mut RunningScript,
    input: &[u8],
    mut reply: impl FnMut(&[u8]),
    authenticated: bool,
    resp3: bool,
) -> usize {
    let mut request = Request::default();
    let mut pos = 0;
    while pos < input.len() {
        let limits = RequestLimits { max_bulk_len: st.config.proto_max_bulk_len, unauthenticated: !authenticated };
        match parse_request(&input[pos..], limits, &mut request) {
            Ok(Parsed::Complete { consumed }) => {
                let frame = &input[pos..pos + consumed];
                pos += consumed;
                let args: Vec<&[u8]> = if request.inline {
                    request.args.iter().map(|r| &request.inline_storage[r.clone()]).collect()
                } else {
                    request.args.iter().map(|r| &frame[r.clone()]).collect()
                };
                if args.is_empty() {
                    continue;
                }
                let answer = answer_one(st, script, &args, resp3);
                reply(&answer);
            }
            Ok(Parsed::Incomplete { .. }) => break,
            Err(e) => {
                reply(format!("-ERR {e}\r\n").as_bytes());
                // The connection task closes it when it reads the rest.
                pos = input.len();
            }
        }
    }
    pos
}

/// What one request gets while the script runs: as in Valkey, an unknown
/// command or a wrong argument count is answered as usual, then the kills
/// and SHUTDOWN NOSAVE act, and everything else is BUSY.
fn answer_one(st: &mut ServerState, script: &mut RunningScript, args: &[&[u8]], resp3: bool) -> Vec<u8> {
    let table = crate::command::table();
    let spec = match crate::command::lookup(table, args) {
        Ok(spec) => spec,
        Err(e) => return refuse(st, None, &e.0),
    };
    if let Err(e) = crate::command::check_arity(spec, args.len()) {
        return refuse(st, Some(spec), &e.0);
    }
    let error = match spec.name.as_str() {
        "script|kill" => kill(script, false),
        "function|kill" => kill(script, true),
        "shutdown" if args[1..].iter().any(|a| a.eq_ignore_ascii_case(b"nosave")) => {
            log_notice!("User requested shutdown...");
            crate::server::exit_now(st);
        }
        "function|stats" if script.is_function => return running_function_stats(st, script, resp3),
        _ => Some(script.busy_error()),
    };
    match error {
        None => b"+OK\r\n".to_vec(),
        Some(e) => refuse(st, Some(spec), e),
    }
}

/// FUNCTION STATS during a function: the running function, the command
/// that called it and how long it has run.
fn running_function_stats(st: &ServerState, script: &RunningScript, resp3: bool) -> Vec<u8> {
    let mut out = crate::reply::Reply::new(resp3);
    let command: Vec<&[u8]> = script.command.iter().map(Vec::as_slice).collect();
    let running = crate::commands::functions::RunningFunction {
        name: &script.name,
        command: &command,
        duration_ms: script.started.elapsed().as_millis() as u64,
    };
    crate::commands::functions::write_stats(&mut out, &st.persistence.functions, Some(&running));
    out.buf
}

/// An error reply, counted as Valkey counts a rejected command.
fn refuse(st: &mut ServerState, spec: Option<&'static crate::command::CommandSpec>, error: &str) -> Vec<u8> {
    st.stats.total_error_replies += 1;
    stats::record_error_reply(error);
    if let Some(spec) = spec {
        stats::record_rejected(spec.name.as_str());
    }
    format!("-{error}\r\n").into_bytes()
}

/// SCRIPT KILL (`by_function_kill` false) or FUNCTION KILL: the error, or
/// None when the script will stop.
fn kill(script: &mut RunningScript, by_function_kill: bool) -> Option<&'static str> {
    if script.wrote {
        return Some("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
    }
    if by_function_kill != script.is_function {
        // Each kind of script is stopped by its own KILL only.
        return Some(script.busy_error());
    }
    script.kill_requested = true;
    None
}

/// Sends a reply to a connected client now if its socket takes it, else
/// leaves it for the connection task (keeping the order of its output).
fn send_reply(info: &ClientInfo, reply: &[u8]) {
    if !info.pending_output.borrow().is_empty() {
        info.push_output(reply);
        return;
    }
    let sent = send_some(info.fd, reply);
    if sent < reply.len() {
        info.push_output(&reply[sent..]);
    }
}

/// Sends a reply to a connection accepted during the script, which has no
/// task yet; a reply the socket cannot take whole is dropped with the rest
/// of the socket's backlog only if the peer stopped reading.
fn send_all(fd: RawFd, reply: &[u8]) {
    let mut done = 0;
    let deadline = Instant::now() + std::time::Duration::from_millis(100);
    while done < reply.len() && Instant::now() < deadline {
        done += send_some(fd, &reply[done..]);
    }
}

fn send_some(fd: RawFd, bytes: &[u8]) -> usize {
    // SAFETY: send(2) of a borrowed byte slice on a socket descriptor.
    let n = unsafe {
        libc::send(fd, bytes.as_ptr() as *const libc::c_void, bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        0
    } else {
        n as usize
    }
}

/// Accepts the connections waiting on the listening sockets; they are
/// answered here until the script ends, then adopted by the accept loop.
fn accept_new_connections(st: &mut ServerState) {
    for &listener in &st.listener_fds {
        loop {
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: accept4(2) filling a sockaddr_storage we own.
            let fd = unsafe {
                libc::accept4(
                    listener,
                    &mut addr as *mut _ as *mut libc::sockaddr,
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                break;
            }
            match peer_address(&addr) {
                Some(peer) => st.accepted_while_busy.push(AcceptedWhileBusy { fd, peer, unread: Vec::new() }),
                // SAFETY: closing the descriptor accept4 just gave us.
                None => unsafe {
                    libc::close(fd);
                },
            }
        }
    }
}

fn peer_address(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let v4 = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let v6 = unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(v6.sin6_port))))
        }
        _ => None,
    }
}
