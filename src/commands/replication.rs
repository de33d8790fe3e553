//! Replication commands: REPLCONF, SYNC, PSYNC, ROLE, WAIT, WAITAOF,
//! REPLICAOF and SLAVEOF.
//!
//! ferrokey is always a primary without replicas. What it serves of the
//! replication protocol is the snapshot transfer a tool asks for with
//! `REPLCONF rdb-only 1` before SYNC or PSYNC (valkey-cli and redis-cli
//! `--rdb` and `--functions-rdb`): a point-in-time RDB written by a forked
//! child, as BGSAVE's, into a pipe whose bytes go to the client, framed as
//! Valkey's diskless transfer (`$EOF:<mark>` ... `<mark>`) for clients that
//! announced `capa eof`, else as one bulk with its length. The connection
//! closes after the transfer, as Valkey closes an rdb-only replica. A real
//! replica (SYNC/PSYNC without rdb-only, REPLICAOF host port) is refused
//! with an error that says so.
//!
//! WAITAOF's local part is real: it waits until the AOF holds the
//! client's writes fsynced (see [`waitaof`]).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use crate::blocking::TimeoutReply;
use crate::client::ClientInfo;
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler};
use crate::commands::args::c_str;
use crate::persistence::save::{write_dataset, SaveOptions};
use crate::reply::Reply;
use crate::server::ServerState;
use crate::{log_notice, log_warning};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("replconf", replconf),
    ("sync", sync),
    ("psync", sync),
    ("role", role),
    ("wait", wait),
    ("waitaof", waitaof),
    ("replicaof", replicaof),
    ("slaveof", replicaof),
];

/// What a client announced with REPLCONF before SYNC/PSYNC.
#[derive(Debug, Default, Clone, Copy)]
pub struct Handshake {
    /// `capa eof`: it reads a transfer framed by an end mark, so the
    /// snapshot streams without its length known in advance.
    pub eof_capable: bool,
    /// `rdb-only 1`: it wants the snapshot and nothing after it.
    pub rdb_only: bool,
    /// `rdb-filter-only functions`: only the function libraries.
    pub functions_only: bool,
    /// `rdb-filter-only ""`: neither keys nor functions.
    pub exclude_everything: bool,
}

const NO_REPLICATION: &str =
    "ERR ferrokey does not support replication yet: only snapshot transfers after REPLCONF rdb-only 1 are served";
/// Valkey's length of the random end mark of a diskless transfer.
const EOF_MARK_LEN: usize = 40;
/// The transfer stops reading the child's pipe while this much is still
/// waiting to be written to a slow client.
const MAX_BUFFERED_TRANSFER: usize = 4 << 20;

/// REPLCONF option value [option value ...]: the replica handshake. Only
/// what a snapshot transfer uses changes anything; the rest is accepted as
/// Valkey accepts it.
fn replconf(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(errors::SYNTAX.into());
    }
    let mut handshake = ctx.client.replica_handshake;
    for pair in args[1..].chunks(2) {
        let (option, value) = (c_str(pair[0]), pair[1]);
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        if is("listening-port") {
            parse_long(value)?;
        } else if is("ip-address") {
            // Valkey's NET_HOST_STR_LEN.
            if value.len() >= 256 {
                return Err(format!(
                    "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                    value.len()
                )
                .into());
            }
        } else if is("capa") {
            if c_str(value).eq_ignore_ascii_case(b"eof") {
                handshake.eof_capable = true;
            }
        } else if is("ack") || is("getack") {
            // Sent by replicas, which this server never has: no reply.
            return Ok(());
        } else if is("rdb-only") {
            let n = parse_long(value)?;
            if !(0..=1).contains(&n) {
                return Err("ERR value is out of range, value must between 0 and 1".into());
            }
            handshake.rdb_only = n == 1;
        } else if is("rdb-filter-only") {
            let text = String::from_utf8_lossy(value);
            handshake.functions_only = false;
            handshake.exclude_everything = true;
            for filter in text.split_whitespace() {
                if filter.eq_ignore_ascii_case("functions") {
                    handshake.functions_only = true;
                    handshake.exclude_everything = false;
                } else {
                    return Err(format!("ERR Unsupported rdb-filter-only option: {filter}").into());
                }
            }
        } else if is("version") {
            if !is_version(value) {
                return Err(format!("ERR Unrecognized version format: {}", String::from_utf8_lossy(value)).into());
            }
        } else if is("rdb-channel") {
            let n = parse_long(value)?;
            if !(0..=1).contains(&n) {
                return Err("ERR value is out of range, value must between 0 and 1".into());
            }
        } else {
            return Err(format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(pair[0])).into());
        }
    }
    ctx.client.replica_handshake = handshake;
    ctx.out.ok();
    Ok(())
}

fn parse_long(arg: &[u8]) -> Result<i64, CmdError> {
    ferrokey_formats::resp::parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// "x.y.z", each part a number below 256, as Valkey's version2num accepts.
fn is_version(arg: &[u8]) -> bool {
    let text = String::from_utf8_lossy(arg);
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.parse::<u8>().is_ok())
}

/// SYNC, and PSYNC replid offset: a snapshot transfer for a client that
/// asked for rdb-only; refused for a would-be replica.
fn sync(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let handshake = ctx.client.replica_handshake;
    if !handshake.rdb_only {
        return Err(NO_REPLICATION.into());
    }
    if (handshake.functions_only || handshake.exclude_everything) && !handshake.eof_capable {
        return Err("ERR Filtered replica requires EOF capability".into());
    }
    let info = ctx.client.info.clone();
    log_notice!("Replica {} asks for synchronization", info.addr);
    let psync = c_str(args[0]).eq_ignore_ascii_case(b"psync");
    let mut opts = SaveOptions::from_state(ctx.srv);
    opts.without_keys = handshake.functions_only || handshake.exclude_everything;
    opts.without_functions = handshake.exclude_everything;
    let (reader, pid) = fork_snapshot_writer(ctx, opts).map_err(|e| {
        log_warning!("Can't start the snapshot transfer: {e}");
        CmdError::from("ERR Can't fork the snapshot transfer, see the log")
    })?;
    log_notice!("Starting BGSAVE for SYNC with target: replicas sockets (pid {pid})");
    if psync {
        ctx.out.simple(&format!("FULLRESYNC {} 0", replication_id(ctx.srv)));
    }
    let mark: Option<Vec<u8>> = handshake.eof_capable.then(random_mark);
    tokio::task::spawn_local(send_snapshot(info, reader, pid, mark));
    Ok(())
}

/// The replication id a transfer announces and INFO replication shows as
/// master_replid.
pub(crate) fn replication_id(st: &crate::server::ServerState) -> String {
    st.run_id.chars().rev().collect()
}

fn random_mark() -> Vec<u8> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..EOF_MARK_LEN).map(|_| b"0123456789abcdef"[rng.gen_range(0..16)]).collect()
}

/// Forks a child that writes the dataset as an RDB file into a pipe and
/// exits; returns the pipe's read end and the child's pid.
fn fork_snapshot_writer(ctx: &mut Ctx, opts: SaveOptions) -> io::Result<(OwnedFd, i32)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let st: &crate::server::ServerState = ctx.srv;
    let read_fd = read_end.as_raw_fd();
    // The write end moves into the child's work; the parent drops its copy
    // with the unused closure, so the pipe ends when the child is done.
    let pid = crate::persistence::fork_child(move || {
        // Without a read end of its own, the child gets EPIPE (and stops)
        // when the parent gives up on the transfer.
        // SAFETY: closes the child's copy of a descriptor that nothing in
        // the child uses; the child leaves with _exit, so its OwnedFd is
        // never dropped.
        unsafe { libc::close(read_fd) };
        let out = io::BufWriter::with_capacity(64 << 10, std::fs::File::from(write_end));
        match write_dataset(st, out, opts).and_then(|mut w| w.flush()) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })?;
    ctx.srv.persistence.total_forks += 1;
    Ok((read_end, pid))
}

/// Streams the child's pipe to the client, framed, then closes the
/// connection and reaps the child.
async fn send_snapshot(info: Rc<ClientInfo>, reader: OwnedFd, pid: i32, mark: Option<Vec<u8>>) {
    let outcome = relay(&info, reader, mark.as_deref()).await;
    let status = reap(pid).await;
    match outcome {
        Ok(bytes) if status == 0 => {
            log_notice!("Synchronization with replica {} succeeded ({bytes} bytes)", info.addr);
            info.close_after_output.set(true);
            info.wake.notify_one();
        }
        Ok(_) => {
            log_warning!("Background transfer error: the snapshot child exited with status {status}");
            info.request_kill();
        }
        Err(e) => {
            log_warning!("Background transfer error: {e}");
            info.request_kill();
        }
    }
}

/// Copies the pipe to the client's output; returns the RDB's size.
async fn relay(info: &ClientInfo, reader: OwnedFd, mark: Option<&[u8]>) -> io::Result<u64> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(reader)?;
    let mut total = 0u64;
    let mut whole = Vec::new();
    if let Some(mark) = mark {
        let mut header = b"$EOF:".to_vec();
        header.extend_from_slice(mark);
        header.extend_from_slice(b"\r\n");
        info.push_output(&header);
    }
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if info.close_requested.get() {
            return Err(io::Error::other("the client went away"));
        }
        while mark.is_some() && info.pending_output.borrow().len() + info.output_in_flight.get() > MAX_BUFFERED_TRANSFER
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if info.close_requested.get() {
                return Err(io::Error::other("the client went away"));
            }
        }
        pipe.readable().await?;
        let n = match pipe.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if mark.is_some() {
            info.push_output(&chunk[..n]);
        } else {
            whole.extend_from_slice(&chunk[..n]);
        }
    }
    match mark {
        Some(mark) => info.push_output(mark),
        None => {
            info.push_output(format!("${}\r\n", whole.len()).as_bytes());
            info.push_output(&whole);
        }
    }
    Ok(total)
}

/// Waits for the snapshot child to exit; returns its exit status (-1 when
/// it died by a signal or could not be reaped).
async fn reap(pid: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
        }
        if r == -1 {
            return -1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// ROLE: always a primary at offset 0 with no replicas.
fn role(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(0);
    ctx.out.array(0);
    Ok(())
}

/// WAIT numreplicas timeout: no replica ever acknowledges, so 0 at once
/// when none are asked for, else 0 after the timeout (forever for 0), as
/// Valkey's WAIT does on a primary without replicas.
fn wait(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let wanted = parse_long(args[1])?;
    let timeout = crate::blocking::parse_timeout_ms(args[2], ctx.now_ms)?;
    if wanted <= 0 || !ctx.may_block() {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.block(&[], timeout, TimeoutReply::Zero);
    Ok(())
}

const WAITAOF_WITHOUT_AOF: &str = "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.";

/// WAITAOF numlocal numreplicas timeout: answers `[local, replicas]`,
/// whether this server's AOF holds every write of this client fsynced
/// (1 or 0) and how many replicas' AOFs do (always 0: there are none). It
/// answers at once when that meets what was asked for (numlocal 0 or 1,
/// numreplicas), or inside MULTI and scripts; else it waits for the
/// fsync covering the client's last write (under `everysec` the next
/// background fsync, under `no` only the one a rewrite does when it
/// switches incr files, as in Valkey), or for the timeout (0: forever),
/// which is all that asking for replicas can end with.
fn waitaof(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let numlocal = parse_long(args[1])?;
    if !(0..=1).contains(&numlocal) {
        return Err("ERR value is out of range, value must between 0 and 1".into());
    }
    // Valkey says "must be positive" for anything but a non-negative
    // integer here, not being an integer included.
    let numreplicas = parse_long(args[2]).ok().filter(|&n| n >= 0).ok_or(errors::OUT_OF_RANGE_POSITIVE)?;
    let timeout = crate::blocking::parse_timeout_ms(args[3], ctx.now_ms)?;
    let wants_local = numlocal == 1;
    if wants_local && !ctx.srv.config.appendonly {
        return Err(WAITAOF_WITHOUT_AOF.into());
    }
    let write_offset = client_write_offset(ctx);
    let fsynced = fsync_covers(ctx.srv, write_offset);
    if ((fsynced || !wants_local) && numreplicas == 0) || !ctx.may_block() {
        write_aof_acks(ctx.out, fsynced);
        return Ok(());
    }
    let on_timeout = TimeoutReply::AofAcks { write_offset, local: wants_local, replicas: numreplicas > 0 };
    ctx.block(&[], timeout, on_timeout);
    Ok(())
}

/// The journal offset after the last write of the client WAITAOF speaks
/// for: inside a script, the script's caller.
fn client_write_offset(ctx: &Ctx) -> u64 {
    let caller = crate::scripting::engine::script_caller_id().and_then(|id| ctx.srv.clients.by_id.get(&id));
    caller.unwrap_or(&ctx.client.info).aof_write_offset.get()
}

/// Whether the AOF holds everything up to `write_offset` fsynced.
pub fn fsync_covers(st: &ServerState, write_offset: u64) -> bool {
    crate::aof::fsynced_offset(st).is_some_and(|fsynced| fsynced >= write_offset)
}

/// WAITAOF's reply: `[local, 0]`.
pub fn write_aof_acks(out: &mut Reply, local: bool) {
    out.array(2);
    out.int(local as i64);
    out.int(0);
}

/// Answers the clients parked in WAITAOF that can be answered before
/// their timeout: those waiting for the local fsync alone, once it covers
/// their writes, and an error to every one waiting for the local fsync
/// once `appendonly` is off. Called when the fsynced offset grew or the
/// AOF's state changed (see aof/mod.rs).
pub fn release_aof_waiters(st: &mut ServerState) {
    let waiters: Vec<(u64, u64, bool, bool)> = st
        .blocking
        .aof_waiters()
        .filter_map(|(id, reply)| match reply {
            TimeoutReply::AofAcks { write_offset, local, replicas } => Some((id, write_offset, local, replicas)),
            _ => None,
        })
        .collect();
    for (id, write_offset, local, replicas) in waiters {
        if local && !st.config.appendonly {
            crate::blocking::unblock(st, id, Some(WAITAOF_WITHOUT_AOF));
        } else if local && !replicas && fsync_covers(st, write_offset) {
            // The timeout reply, reckoned now, is the answer: [1, 0].
            crate::blocking::unblock(st, id, None);
        }
    }
}

/// REPLICAOF NO ONE (already a primary: OK); REPLICAOF host port is not
/// supported.
fn replicaof(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if c_str(args[1]).eq_ignore_ascii_case(b"no") && c_str(args[2]).eq_ignore_ascii_case(b"one") {
        ctx.out.ok();
        return Ok(());
    }
    Err("ERR ferrokey does not support replication yet: REPLICAOF host port is refused".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_three_small_numbers() {
        assert!(is_version(b"8.0.1"));
        assert!(is_version(b"255.0.0"));
        assert!(!is_version(b"8.0"));
        assert!(!is_version(b"8.0.256"));
        assert!(!is_version(b"8..1"));
    }

    #[test]
    fn marks_are_hex_of_valkeys_length() {
        let mark = random_mark();
        assert_eq!(mark.len(), EOF_MARK_LEN);
        assert!(mark.iter().all(u8::is_ascii_hexdigit));
    }
}
