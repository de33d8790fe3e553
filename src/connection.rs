//! A client connection: read bytes, parse requests, run them, write the
//! replies.
//!
//! Every request in one read is executed before the replies are written
//! with a single write, so a pipeline costs one system call each way.
//! An idle connection holds no buffers: they come from a small per-thread
//! pool when bytes arrive and go back when everything read has been
//! answered, so thousands of idle clients cost little more than their
//! sockets.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use ferrokey_formats::resp::{parse_request, Parsed, Request, RequestLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{Client, ClientInfo, ReplyMode};
use crate::command::{self, Ctx};
use crate::commands::server as stats;
use crate::reply::Reply;
use crate::server::{unix_ms, ServerState};
use crate::{log_verbose, log_warning};

const READ_CHUNK: usize = 16 * 1024;
/// Buffers that grew past this are freed rather than pooled.
const POOLED_MAX: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(READ_CHUNK))
}

fn return_buffer(mut buf: Vec<u8>) {
    if buf.capacity() > POOLED_MAX || buf.capacity() == 0 {
        return;
    }
    buf.clear();
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < 256 {
            pool.push(buf);
        }
    });
}

const PROTECTED_MODE_ERROR: &str = "-DENIED Running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers, you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting from the same host the server is running, however MAKE SURE it's not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Registers a new connection and starts its task.
pub fn accept(stream: TcpStream, peer: SocketAddr, state: &Rc<RefCell<ServerState>>) {
    accept_with_input(stream, peer, state, Vec::new());
}

/// [`accept`] for a connection that already sent `unread` (accepted while
/// a script was busy).
pub fn accept_with_input(stream: TcpStream, peer: SocketAddr, state: &Rc<RefCell<ServerState>>, unread: Vec<u8>) {
    let mut st = state.borrow_mut();
    if st.protected_refuses(&peer.ip()) {
        st.stats.rejected_connections += 1;
        drop(st);
        tokio::task::spawn_local(refuse(stream, PROTECTED_MODE_ERROR));
        return;
    }
    if st.clients.len() >= st.config.maxclients {
        st.stats.rejected_connections += 1;
        drop(st);
        tokio::task::spawn_local(refuse(stream, "-ERR max number of clients reached\r\n"));
        return;
    }
    let _ = stream.set_nodelay(true);
    set_keepalive(&stream, st.config.tcp_keepalive);
    st.stats.total_connections_received += 1;
    let id = st.clients.next_id();
    let laddr = stream.local_addr().unwrap_or(peer);
    let fd = {
        use std::os::fd::AsRawFd;
        stream.as_raw_fd()
    };
    let authenticated = st.config.requirepass.is_none();
    let info = Rc::new(ClientInfo::new(id, peer, laddr, fd, unix_ms(), authenticated));
    *info.unread_input.borrow_mut() = unread;
    st.clients.by_id.insert(id, info.clone());
    drop(st);
    let state = state.clone();
    tokio::task::spawn_local(async move {
        serve(stream, &state, info.clone()).await;
        let mut st = state.borrow_mut();
        st.clients.by_id.remove(&info.id);
        // A client that leaves while parked leaves no trace in the queues.
        st.blocking.remove_client(info.id);
        st.watches.unwatch_all(&info);
        crate::pubsub::forget_client(&mut st, &info);
        st.monitors.remove(&info);
        crate::tracking::disable(&mut st, &info);
        crate::pause::forget_client(&mut st, info.id);
        if info.output_limit_reached.get() {
            st.stats.client_output_buffer_limit_disconnections += 1;
        }
    });
}

async fn refuse(mut stream: TcpStream, msg: &'static str) {
    let _ = stream.write_all(msg.as_bytes()).await;
}

fn set_keepalive(stream: &TcpStream, seconds: u64) {
    if seconds == 0 {
        return;
    }
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let on: libc::c_int = 1;
    let idle = seconds.min(i32::MAX as u64) as libc::c_int;
    let intvl = (idle / 3).max(1);
    let cnt: libc::c_int = 3;
    let opt = |level, name, val: &libc::c_int| {
        // SAFETY: setsockopt on a socket we own, with a c_int option value.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                val as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &on);
    opt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &idle);
    opt(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, &intvl);
    opt(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &cnt);
}

/// Reads what the socket holds into the spare capacity of `input`.
///
/// A read that returns less than it had room for has drained the socket,
/// so the readiness tokio cached is cleared right away: the next wait goes
/// straight to the poller instead of first trying another read that can
/// only fail with EAGAIN (one system call saved per request, which is what
/// unpipelined clients pay for). Clearing is safe: data that arrives after
/// the read raises a new edge that the poller reports afterwards.
fn read_available(stream: &TcpStream, input: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let mut drained_with = 0usize;
    let result = stream.try_io(tokio::io::Interest::READABLE, || {
        let spare = input.spare_capacity_mut();
        let room = spare.len();
        // SAFETY: reads at most `room` bytes into the vector's spare
        // capacity, then marks exactly the bytes the kernel wrote as set.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr() as *mut libc::c_void, room) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        unsafe { input.set_len(input.len() + n) };
        if n > 0 && n < room {
            drained_with = n;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && drained_with > 0 => Ok(drained_with),
        other => other,
    }
}

enum ReadOutcome {
    Data,
    Nothing,
    Closed,
}

/// Reads what the socket holds into `input` (taking a pooled buffer when
/// it has none) and counts it.
fn read_into(
    stream: &TcpStream,
    input: &mut Vec<u8>,
    state: &Rc<RefCell<ServerState>>,
    info: &ClientInfo,
) -> ReadOutcome {
    if input.capacity() == 0 {
        *input = take_buffer();
    }
    if input.capacity() - input.len() < READ_CHUNK / 4 {
        input.reserve(READ_CHUNK);
    }
    match read_available(stream, input) {
        Ok(0) => ReadOutcome::Closed,
        Ok(n) => {
            let mut st = state.borrow_mut();
            st.stats.total_net_input_bytes += n as u64;
            info.net_input_bytes.set(info.net_input_bytes.get() + n as u64);
            st.stats.total_reads_processed += 1;
            ReadOutcome::Data
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ReadOutcome::Nothing,
        Err(_) => ReadOutcome::Closed,
    }
}

/// Waits while the client is parked by a blocking command: until it is
/// served, its deadline passes (then it answers the timeout reply), or it
/// goes away. Bytes that arrive meanwhile are kept for later, as Valkey
/// keeps reading a blocked client's query buffer; a closed socket ends the
/// wait. Returns false when the connection must close.
async fn wait_while_parked(
    stream: &mut TcpStream,
    state: &Rc<RefCell<ServerState>>,
    info: &Rc<ClientInfo>,
    input: &mut Vec<u8>,
) -> bool {
    while info.blocked.get() {
        let deadline = state.borrow().blocking.deadline_of(info.id);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Served (or unblocked): the flag check above ends the loop and
            // the caller writes the reply. Still parked: a message for the
            // client (a RESP3 subscriber can block), written at once.
            _ = info.wake.notified() => {
                if info.blocked.get() && !write_pending_output(stream, state, info, input).await {
                    return false;
                }
            }
            _ = timer => {
                crate::blocking::unblock(&mut state.borrow_mut(), info.id, None);
            }
            _ = info.kill.notified() => return false,
            r = stream.readable() => {
                if r.is_err() {
                    return false;
                }
                if let ReadOutcome::Closed = read_into(stream, input, state, info) {
                    return false;
                }
            }
        }
    }
    true
}

/// Reads, runs and answers until the peer closes or the client is killed.
async fn serve(mut stream: TcpStream, state: &Rc<RefCell<ServerState>>, info: Rc<ClientInfo>) {
    let mut client = Client::new(info.clone());
    let mut request = Request::default();
    let mut input: Vec<u8> = Vec::new();
    let mut out = Reply::new(false);
    out.buf = Vec::new();
    // After a parked command is served, requests already buffered run
    // before anything new is read.
    let mut must_read = true;
    loop {
        if must_read {
            // A partly received request waits where a busy script's poller
            // can complete it (see busy.rs); it comes back after the wait.
            if !input.is_empty() {
                std::mem::swap(&mut input, &mut *info.unread_input.borrow_mut());
            }
            // Wait for bytes without holding a buffer.
            let mut arrived_while_writing = false;
            tokio::select! {
                r = stream.readable() => if r.is_err() { break },
                _ = info.kill.notified() => break,
                _ = info.wake.notified() => {
                    // Messages for this client (pub/sub, keyspace events),
                    // or a snapshot transfer's bytes.
                    take_unread_input(&info, &mut input);
                    let before = input.len();
                    if !write_pending_output(&mut stream, state, &info, &mut input).await {
                        break;
                    }
                    if info.close_after_output.get() && info.pending_output.borrow().is_empty() {
                        break;
                    }
                    if input.len() == before {
                        continue;
                    }
                    arrived_while_writing = true;
                }
            }
            if !arrived_while_writing {
                take_unread_input(&info, &mut input);
                match read_into(&stream, &mut input, state, &info) {
                    ReadOutcome::Data => {}
                    ReadOutcome::Nothing => {
                        if input.is_empty() {
                            return_buffer(std::mem::take(&mut input));
                        }
                        continue;
                    }
                    ReadOutcome::Closed => break,
                }
            }
        }
        must_read = true;
        if out.buf.capacity() == 0 {
            out.buf = take_buffer();
        }
        let consumed = {
            let mut st = state.borrow_mut();
            let consumed = process_input(&mut st, &mut client, &mut out, &input, &mut request);
            // A client past its query buffer limit is closed, as Valkey does,
            // without reply: its pending request is what is too large.
            let pending = input.len() - consumed;
            if query_buffer_over_limit(&mut st, pending) {
                info.close_requested.set(true);
            }
            info.query_buf_len.set(pending);
            consumed
        };
        input.drain(..consumed);
        // Replies acknowledge writes only once the journal holds them (and,
        // with appendfsync always, once they are on disk).
        if let Some(durable) = crate::aof::durability_wait(state) {
            if !durable.await {
                break;
            }
        }
        if !out.buf.is_empty() {
            let len = out.buf.len();
            let before = input.len();
            if !write_reading(&stream, &out.buf, &mut input, state, &info).await {
                break;
            }
            // Requests that came while the replies were waiting for the
            // peer run next, before waiting for more: the peer may well be
            // waiting for their replies.
            if input.len() > before {
                must_read = false;
            }
            let mut st = state.borrow_mut();
            st.stats.total_net_output_bytes += len as u64;
            info.net_output_bytes.set(info.net_output_bytes.get() + len as u64);
            st.stats.total_writes_processed += 1;
        }
        out.buf.clear();
        if info.close_requested.get() {
            break;
        }
        if info.blocked.get() {
            if !wait_while_parked(&mut stream, state, &info, &mut input).await {
                break;
            }
            // The served command's effects (a pop) are journalled like any
            // other write before its reply acknowledges them.
            if let Some(durable) = crate::aof::durability_wait(state) {
                if !durable.await {
                    break;
                }
            }
            if !write_pending_output(&mut stream, state, &info, &mut input).await {
                break;
            }
            must_read = false;
            continue;
        }
        if input.is_empty() {
            return_buffer(std::mem::take(&mut input));
            return_buffer(std::mem::take(&mut out.buf));
        }
    }
    return_buffer(input);
    return_buffer(out.buf);
}

/// Puts the bytes parked in `unread_input` back in front of `input`.
fn take_unread_input(info: &ClientInfo, input: &mut Vec<u8>) {
    let mut unread = info.unread_input.borrow_mut();
    if unread.is_empty() {
        return;
    }
    if input.is_empty() {
        std::mem::swap(input, &mut *unread);
    } else {
        unread.extend_from_slice(input);
        std::mem::swap(input, &mut *unread);
        unread.clear();
    }
}

/// Writes what was queued for the client from outside its own commands
/// (see [`ClientInfo::push_output`]), reading what the peer sends meanwhile
/// into `input` (see [`write_reading`]). Returns false when the peer is
/// gone.
async fn write_pending_output(
    stream: &mut TcpStream,
    state: &Rc<RefCell<ServerState>>,
    info: &ClientInfo,
    input: &mut Vec<u8>,
) -> bool {
    let pending = std::mem::take(&mut *info.pending_output.borrow_mut());
    if pending.is_empty() {
        return true;
    }
    if !write_reading(stream, &pending, input, state, info).await {
        return false;
    }
    let mut st = state.borrow_mut();
    st.stats.total_net_output_bytes += pending.len() as u64;
    info.net_output_bytes.set(info.net_output_bytes.get() + pending.len() as u64);
    st.stats.total_writes_processed += 1;
    true
}

/// Writes `bytes` to the peer. While the peer does not take them, what it
/// sends is read into `input`, to be run afterwards: Valkey never stops
/// reading a client because output is waiting for it, so a client may send
/// a whole pipeline before it reads a single reply (redis-py's pipelines
/// do), and waiting for it to read first would leave both sides blocked
/// writing. The bytes not yet written count against the output buffer
/// limits; a client closed for them (or killed) stops waiting for a peer
/// that does not read. Returns false when the connection must close.
async fn write_reading(
    stream: &TcpStream,
    bytes: &[u8],
    input: &mut Vec<u8>,
    state: &Rc<RefCell<ServerState>>,
    info: &ClientInfo,
) -> bool {
    let mut written = 0;
    // A peer that has finished sending (shut its side down) still gets its
    // replies, and what it sent before still runs, as in Valkey, which has
    // run every request by the time it reads the end of the stream.
    let mut peer_done_sending = false;
    let done = loop {
        match stream.try_write(&bytes[written..]) {
            Ok(0) => break false,
            Ok(n) => {
                written += n;
                if written == bytes.len() {
                    break true;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break false,
        }
        info.output_in_flight.set(bytes.len() - written);
        tokio::select! {
            r = stream.writable() => if r.is_err() { break false },
            r = stream.readable(), if !peer_done_sending => {
                if r.is_err() {
                    break false;
                }
                if let ReadOutcome::Closed = read_into(stream, input, state, info) {
                    peer_done_sending = true;
                }
                if query_buffer_over_limit(&mut state.borrow_mut(), input.len()) {
                    break false;
                }
            }
            _ = info.kill.notified() => break false,
        }
    };
    info.output_in_flight.set(0);
    done
}

/// Whether `pending` bytes of unexecuted input exceed
/// `client-query-buffer-limit`; such a client is closed, as Valkey does.
fn query_buffer_over_limit(st: &mut ServerState, pending: usize) -> bool {
    if pending as u64 <= st.config.client_query_buffer_limit {
        return false;
    }
    st.stats.client_query_buffer_limit_disconnections += 1;
    log_warning!("Closing client that reached max query buffer length (qbuf={pending})");
    true
}

/// Parses and executes every complete request in `input`; returns how many
/// bytes were used. Stops early when the client must close (protocol
/// error, QUIT, kill), leaving the rest unread as Valkey does.
pub fn process_input(
    st: &mut ServerState,
    client: &mut Client,
    out: &mut Reply,
    input: &[u8],
    request: &mut Request,
) -> usize {
    let mut pos = 0;
    let mut args: Vec<&[u8]> = Vec::with_capacity(8);
    // A parked client reads no further commands until it is served.
    while pos < input.len() && !client.info.close_requested.get() && !client.info.blocked.get() {
        let limits = RequestLimits {
            max_bulk_len: st.config.proto_max_bulk_len,
            unauthenticated: !client.info.authenticated.get(),
        };
        match parse_request(&input[pos..], limits, request) {
            Ok(Parsed::Incomplete { .. }) => break,
            Ok(Parsed::Complete { consumed }) => {
                let frame_start = pos;
                pos += consumed;
                if request.args.is_empty() {
                    continue;
                }
                if request.inline {
                    // Inline arguments were unquoted into the request's own
                    // storage; this path is rare, so it may allocate.
                    let storage = std::mem::take(&mut request.inline_storage);
                    let inline_args: Vec<&[u8]> = request.args.iter().map(|r| &storage[r.clone()]).collect();
                    execute(st, client, out, &inline_args);
                    request.inline_storage = storage;
                } else {
                    args.clear();
                    args.extend(request.args.iter().map(|r| &input[frame_start + r.start..frame_start + r.end]));
                    execute(st, client, out, &args);
                }
                // A command held by CLIENT PAUSE stays unread, to run again.
                if client.info.postponed.get() {
                    pos = frame_start;
                    break;
                }
            }
            Err(e) => {
                log_verbose!("Protocol error ({e}) from client id={}", client.info.id);
                out.error(&format!("ERR {e}"));
                client.info.close_requested.set(true);
                break;
            }
        }
    }
    // BCAST invalidations of what the batch changed, in one message per prefix.
    crate::tracking::broadcast_pending(st);
    pos
}

/// Runs one command: lookup, arity, auth and protection checks, then the
/// handler (or, inside MULTI, the queue). Errors become error replies;
/// CLIENT REPLY OFF/SKIP swallow whatever the command wrote.
pub fn execute(st: &mut ServerState, client: &mut Client, out: &mut Reply, args: &[&[u8]]) {
    let now_ms = unix_ms();
    let info = client.info.clone();
    info.last_interaction_ms.set(now_ms);
    let previous_client = st.tracking.enter(info.id);
    if st.tracking.client_count() > 0 {
        // Entries dropped to respect tracking-table-max-keys are announced
        // before the command runs, as in Valkey.
        crate::tracking::enforce_table_limit(st);
    }
    // Messages that reached this client before its command go out first.
    take_pending_output(&info, out);
    let mode = info.reply_mode.get();
    let mark = out.buf.len();
    if mode == ReplyMode::SkipNext {
        info.reply_mode.set(ReplyMode::Skipping);
    }
    let counted = match run_checked(st, client, out, args, now_ms) {
        Ok(Outcome::Ran) => true,
        Ok(Outcome::Queued) => false,
        Ok(Outcome::Postponed) => {
            // Nothing ran: the command comes back as if never seen.
            info.reply_mode.set(mode);
            st.tracking.leave(previous_client);
            return;
        }
        Err(Rejection::BeforeRun { error, exec }) => {
            let error = crate::commands::transactions::reject_queued(st, client, error, exec);
            reply_error(st, out, &error);
            false
        }
        Err(Rejection::Failed(e)) => {
            reply_error(st, out, &e);
            true
        }
    };
    // Like Valkey, only commands that reached their handler count as processed.
    if counted {
        st.stats.total_commands_processed += 1;
        info.commands_processed.set(info.commands_processed.get() + 1);
    }
    st.collect_expired();
    // The unit's effects go to the journal once it is whole, before any
    // parked client it woke runs its own (the AOF consumes them; with none
    // attached the list is always empty).
    let unit = st.effects.finish_unit();
    if !unit.is_empty() {
        let end = crate::aof::feed(st, unit);
        info.aof_write_offset.set(end);
    }
    if st.blocking.has_ready() {
        crate::blocking::serve_ready(st);
    }
    match info.reply_mode.get() {
        ReplyMode::Off => out.buf.truncate(mark),
        ReplyMode::Skipping => {
            out.buf.truncate(mark);
            info.reply_mode.set(ReplyMode::On);
        }
        _ => {}
    }
    crate::tracking::command_done(client, args[0]);
    st.tracking.leave(previous_client);
    // Messages this command sent to its own client (a PUBLISH to a channel
    // it is subscribed to, a keyspace event in RESP3) follow its reply, as
    // in Valkey, where they wait until the execution unit ends.
    take_pending_output(&info, out);
}

fn take_pending_output(info: &ClientInfo, out: &mut Reply) {
    let mut pending = info.pending_output.borrow_mut();
    if !pending.is_empty() {
        out.buf.extend_from_slice(&pending);
        pending.clear();
    }
}

fn reply_error(st: &mut ServerState, out: &mut Reply, error: &command::CmdError) {
    st.stats.total_error_replies += 1;
    stats::record_error_reply(&error.0);
    out.error(&error.0);
}

/// What became of a command that passed the checks.
enum Outcome {
    Ran,
    /// Queued inside MULTI, to run at EXEC.
    Queued,
    /// Held by CLIENT PAUSE, to run when the pause ends.
    Postponed,
}

/// Why a command produced an error: refused before its handler ran
/// (unknown, arity, auth, protection) or failed inside it.
enum Rejection {
    /// `exec` tells the refused command was EXEC itself, which Valkey
    /// reports as an aborted transaction.
    BeforeRun {
        error: command::CmdError,
        exec: bool,
    },
    Failed(command::CmdError),
}

fn run_checked(
    st: &mut ServerState,
    client: &mut Client,
    out: &mut Reply,
    args: &[&[u8]],
    now_ms: i64,
) -> Result<Outcome, Rejection> {
    let table = command::table();
    let spec = command::lookup(table, args).map_err(|error| Rejection::BeforeRun { error, exec: false })?;
    {
        // Recorded before the arity check, as Valkey's CLIENT LIST cmd= shows it.
        let mut last = client.info.last_cmd.borrow_mut();
        last.clear();
        last.push_str(&spec.name);
    }
    let is_exec = spec.name == "exec";
    // From here on a refusal counts as a rejected call of this command.
    let reject = |error: command::CmdError| {
        stats::record_rejected(spec.name.as_str());
        Rejection::BeforeRun { error, exec: is_exec }
    };
    command::check_arity(spec, args.len()).map_err(reject)?;
    if spec.has(command::flags::PROTECTED) && !debug_allowed(st, client) {
        return Err(reject("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.".into()));
    }
    if !client.info.authenticated.get() && !spec.has(command::flags::NO_AUTH) {
        return Err(reject(command::errors::NOAUTH.into()));
    }
    if client.multi.is_some() && spec.has(command::flags::NO_MULTI) {
        return Err(reject("ERR Command not allowed inside a transaction".into()));
    }
    // EXEC is refused for what the commands it would run are refused for.
    let effective_flags = match &client.multi {
        Some(multi) if is_exec => spec.flags | multi.flags,
        _ => spec.flags,
    };
    // Where Valkey frees memory for the command, or refuses it with OOM.
    let refused = crate::evict::before_command(st, effective_flags);
    // What evicting sent this client (invalidations of the keys evicted,
    // `evicted` events) precedes its reply, as in Valkey.
    take_pending_output(&client.info, out);
    if let Some(refused) = refused {
        return Err(reject(refused.into()));
    }
    if let Some(refused) = crate::persistence::refusal(st, &spec.name, effective_flags) {
        return Err(reject(refused.into()));
    }
    if client.info.is_pubsub() && !client.resp3 && !allowed_while_subscribed(spec) {
        return Err(reject(
            format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            )
            .into(),
        ));
    }
    if !client.info.is_pubsub() && matches!(spec.name.as_str(), "unsubscribe" | "sunsubscribe" | "punsubscribe") {
        return Err(reject(format!("NOSUB '{}' command executed not in subscribed mode", spec.name).into()));
    }
    if spec.handler.is_none() {
        return Err(reject(command::arity_error(&spec.name)));
    }
    // A client in MONITOR mode is, to Valkey, a replica: kept off the
    // keyspace, and never paused.
    let monitor = client.info.monitor.get();
    if monitor
        && effective_flags & (command::flags::READONLY | command::flags::WRITE | command::flags::MAY_REPLICATE) != 0
    {
        return Err(reject("ERR Replica can't interact with the keyspace".into()));
    }
    // A parked client whose command is served again is never held.
    if !client.info.blocked.get() && !monitor && st.pause.holds(client, spec) {
        crate::pause::postpone(st, client);
        return Ok(Outcome::Postponed);
    }
    if client.multi.is_some() && !crate::commands::transactions::runs_inside_multi(spec) {
        crate::commands::transactions::queue(client, spec, args);
        out.simple("QUEUED");
        return Ok(Outcome::Queued);
    }
    call(st, client, out, args, spec, now_ms).map(|()| Outcome::Ran).map_err(Rejection::Failed)
}

/// The commands a RESP2 client may send while subscribed.
fn allowed_while_subscribed(spec: &command::CommandSpec) -> bool {
    matches!(
        spec.name.as_str(),
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Runs a command's handler with everything that follows a call: slow
/// log, parking a blocked client, waking waiters and invalidating WATCHes
/// of the keys it changed, and the per-command statistics. The checks of
/// [`execute`] have passed (or do not apply: EXEC runs its queue here,
/// scripts their calls).
pub fn call(
    st: &mut ServerState,
    client: &mut Client,
    out: &mut Reply,
    args: &[&[u8]],
    spec: &'static command::CommandSpec,
    now_ms: i64,
) -> command::CmdResult {
    let Some(handler) = spec.handler else {
        return Err(command::arity_error(&spec.name));
    };
    let errors_before = out.errors;
    let dirty_before = st.dirty;
    // A parked command served again was shown to monitors when first run.
    let served_again = client.info.blocked.get();
    if !served_again && spec.has(command::flags::SKIP_MONITOR) {
        crate::monitor::feed(st, &client.info, client.db, args);
    }
    let started = std::time::Instant::now();
    let mut ctx = Ctx { srv: st, client, out, now_ms };
    let result = handler(&mut ctx, args);
    let micros = started.elapsed().as_micros() as u64;
    if spec.name != "exec" {
        ctx.srv.slowlog.record(args, micros, now_ms, &ctx.client.info);
    }
    if !served_again && !spec.has(command::flags::SKIP_MONITOR | command::flags::ADMIN) {
        crate::monitor::feed(ctx.srv, &ctx.client.info, ctx.client.db, args);
    }
    // A command that blocked wrote nothing: signalling its keys would only
    // run it (and every other waiter) again for nothing, round and round.
    let blocked = ctx.client.block_request.is_some();
    if result.is_ok() {
        crate::blocking::park_if_requested(ctx.srv, ctx.client, args, spec);
    } else {
        ctx.client.block_request = None;
    }
    if !blocked && spec.has(command::flags::WRITE) {
        let changed = ctx.srv.dirty != dirty_before;
        if changed {
            // Keys the command found expired are journalled before its own
            // effect, as Valkey propagates them: a SET over an expired key
            // must replay as the deletion, then the SET.
            ctx.srv.collect_expired();
            // The seam where a write's effect leaves for the journal.
            let db = ctx.client.db;
            ctx.srv.effects.record(db, args);
        }
        let waiters = ctx.srv.blocking.has_waiters();
        let watchers = changed && !ctx.srv.watches.is_empty();
        if waiters || watchers {
            let db = ctx.client.db;
            for key in crate::commands::server::keyspecs::find_keys(spec, args) {
                // Keys this write touched may let parked clients proceed.
                if waiters {
                    ctx.srv.blocking.signal(args[key.pos]);
                }
                if watchers {
                    crate::watch::touch(ctx.srv, db, args[key.pos]);
                }
            }
        }
    }
    // Client-side caching: what a tracking client read is remembered, what
    // a write changed is invalidated.
    if ctx.srv.tracking.is_active() {
        let changed = !blocked && ctx.srv.dirty != dirty_before;
        crate::tracking::after_call(ctx.srv, ctx.client, spec, args, changed);
    }
    let failed = result.is_err() || ctx.out.errors > errors_before;
    stats::record_call(ctx.srv, spec.name.as_str(), spec.has(command::flags::FAST), micros, failed);
    result
}

/// [`call`], answering a failure as an error reply (EXEC's queued
/// commands, a script's calls).
pub fn call_replying(
    st: &mut ServerState,
    client: &mut Client,
    out: &mut Reply,
    args: &[&[u8]],
    spec: &'static command::CommandSpec,
    now_ms: i64,
) {
    if let Err(e) = call(st, client, out, args, spec, now_ms) {
        reply_error(st, out, &e);
    }
    st.stats.total_commands_processed += 1;
    client.info.commands_processed.set(client.info.commands_processed.get() + 1);
}

fn debug_allowed(st: &ServerState, client: &Client) -> bool {
    match st.config.enable_debug_command.as_str() {
        "yes" => true,
        "local" => crate::server::is_loopback(&client.info.addr.ip()),
        _ => false,
    }
}
