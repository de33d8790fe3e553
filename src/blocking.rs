//! Blocking commands: clients parked on keys until a write makes them ready.
//!
//! A blocking command that finds nothing to serve calls [`Ctx::block`]. The
//! dispatcher then parks the client here with a copy of its command, and the
//! client's connection stops reading new commands and waits. After every
//! write command, the keys it wrote that have waiters are marked ready, and
//! [`serve_ready`] runs each waiter's command again, first come first
//! served, as Valkey does. A command that now succeeds has its reply handed
//! to its connection, which wakes; one that still finds nothing stays parked
//! in its place. The connection answers the timeout reply itself when the
//! deadline passes, and a client that disconnects is removed by
//! [`Blocking::remove_client`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::client::{Client, ClientInfo};
use crate::command::{CmdError, CommandSpec, Ctx};
use crate::reply::Reply;
use crate::server::ServerState;

/// What a blocking command answers when its timeout passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` in RESP2 (BLPOP, BZPOPMIN, BLMPOP, ...).
    NullArray,
    /// `$-1` in RESP2 (BLMOVE, BRPOPLPUSH).
    NullBulk,
    /// `:0` (WAIT: no replica acknowledged).
    Zero,
    /// WAITAOF's `[local, replicas]`: whether this server's AOF holds the
    /// client's writes, up to `write_offset`, fsynced, and 0 replicas.
    /// [`unblock`] reckons it from the fsyncs done by the time it answers.
    /// `local` and `replicas` tell what the client waits for: only a
    /// waiter for the local fsync alone can be released before its timeout
    /// (see commands/replication.rs).
    AofAcks { write_offset: u64, local: bool, replicas: bool },
}

impl TimeoutReply {
    pub fn write(self, out: &mut Reply) {
        match self {
            TimeoutReply::NullArray => out.null_array(),
            TimeoutReply::NullBulk => out.null(),
            TimeoutReply::Zero => out.int(0),
            // Without the server state at hand, no fsync is known to cover
            // the writes.
            TimeoutReply::AofAcks { .. } => crate::commands::replication::write_aof_acks(out, false),
        }
    }

    /// The reply at the timeout (or at CLIENT UNBLOCK ... TIMEOUT), given
    /// the server's state then.
    fn write_now(self, st: &ServerState, out: &mut Reply) {
        match self {
            TimeoutReply::AofAcks { write_offset, .. } => {
                let fsynced = crate::commands::replication::fsync_covers(st, write_offset);
                crate::commands::replication::write_aof_acks(out, fsynced);
            }
            other => other.write(out),
        }
    }
}

/// What a handler asked for when it called [`Ctx::block`].
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub keys: Vec<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub on_timeout: TimeoutReply,
    /// The command to run again instead of the one given, when the handler
    /// resolved something that must not be resolved again (XREAD's `$`
    /// becomes the last id at the time of blocking).
    pub rerun_args: Option<Vec<Vec<u8>>>,
    /// Run the command again even when a key it waits on was deleted, so it
    /// can answer an error (XREADGROUP on a deleted stream or group).
    pub wake_on_delete: bool,
}

/// A parked client and the command it is waiting to run again.
pub struct Parked {
    pub info: Rc<ClientInfo>,
    pub args: Vec<Vec<u8>>,
    pub db: usize,
    pub resp3: bool,
    pub keys: Vec<Vec<u8>>,
    pub on_timeout: TimeoutReply,
    pub deadline: Option<Instant>,
    pub wake_on_delete: bool,
    /// The type of value the command waits for ("list", "zset", "stream"):
    /// a key written with another type leaves the client waiting, as in Valkey.
    pub wants_type: Option<&'static str>,
}

#[derive(Default)]
pub struct Blocking {
    parked: HashMap<u64, Parked>,
    /// Client ids waiting on each key, in arrival order (any database).
    waiters: HashMap<Vec<u8>, VecDeque<u64>>,
    /// Keys written since waiters were last served, in order, without repeats.
    ready: VecDeque<Vec<u8>>,
    serving: bool,
    /// The parked clients waiting in WAITAOF (their timeout reply is
    /// [`TimeoutReply::AofAcks`]), so that an fsync looks at them alone.
    aof_waiters: BTreeSet<u64>,
}

impl Blocking {
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// Parked clients with a deadline (INFO clients_in_timeout_table).
    pub fn timed_count(&self) -> usize {
        self.parked.values().filter(|p| p.deadline.is_some()).count()
    }

    /// Keys someone waits on (INFO total_blocking_keys).
    pub fn key_count(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_parked(&self, id: u64) -> bool {
        self.parked.contains_key(&id)
    }

    /// Whether written keys wait to be served.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether anyone waits at all: the dispatcher's cheap pre-check.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    pub fn deadline_of(&self, id: u64) -> Option<Instant> {
        self.parked.get(&id).and_then(|p| p.deadline)
    }

    /// The clients parked in WAITAOF, each with its timeout reply (which
    /// tells what it waits for).
    pub fn aof_waiters(&self) -> impl Iterator<Item = (u64, TimeoutReply)> + '_ {
        self.aof_waiters.iter().filter_map(|id| self.parked.get(id).map(|p| (*id, p.on_timeout)))
    }

    fn park(&mut self, parked: Parked) {
        let id = parked.info.id;
        for key in &parked.keys {
            let queue = self.waiters.entry(key.clone()).or_default();
            if !queue.contains(&id) {
                queue.push_back(id);
            }
        }
        parked.info.blocked.set(true);
        if matches!(parked.on_timeout, TimeoutReply::AofAcks { .. }) {
            self.aof_waiters.insert(id);
        }
        self.parked.insert(id, parked);
    }

    /// Takes a client out of every queue; returns its parking record.
    pub fn remove_client(&mut self, id: u64) -> Option<Parked> {
        let parked = self.parked.remove(&id)?;
        self.aof_waiters.remove(&id);
        for key in &parked.keys {
            if let Some(queue) = self.waiters.get_mut(key) {
                queue.retain(|&w| w != id);
                if queue.is_empty() {
                    self.waiters.remove(key);
                }
            }
        }
        parked.info.blocked.set(false);
        Some(parked)
    }

    /// Marks a written key as ready if anyone waits on it.
    pub fn signal(&mut self, key: &[u8]) {
        if self.waiters.contains_key(key) && !self.ready.iter().any(|k| k == key) {
            self.ready.push_back(key.to_vec());
        }
    }

    /// Marks every key someone waits on as ready (SWAPDB, for example,
    /// changes what every key of two databases holds).
    pub fn signal_all(&mut self) {
        let keys: Vec<Vec<u8>> = self.waiters.keys().cloned().collect();
        for key in keys {
            self.signal(&key);
        }
    }
}

/// A timeout in milliseconds, 0 for forever, with Valkey's checks and
/// texts (its getTimeoutFromObjectOrReply, for WAIT, WAITAOF and CLIENT
/// PAUSE): the deadline must fit in a signed 64-bit count of Unix
/// milliseconds.
pub fn parse_timeout_ms(arg: &[u8], now_ms: i64) -> Result<Option<Duration>, CmdError> {
    let ms = ferrokey_formats::resp::parse_i64(arg).ok_or("ERR timeout is not an integer or out of range")?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    if ms > i64::MAX - now_ms {
        return Err("ERR timeout is out of range".into());
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

/// Valkey's timeout argument: seconds as a float, 0 for forever. Valkey
/// reads it as a C `long double`, so "1e400" is a number (out of range)
/// while "1e5000" is not one; the checks follow its order.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    const NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
    const OUT_OF_RANGE: &str = "ERR timeout is out of range";
    const NEGATIVE: &str = "ERR timeout is negative";
    let class = crate::longdouble::classify(arg).ok_or(CmdError::from(NOT_FLOAT))?;
    let negative = arg.first() == Some(&b'-');
    if class == crate::longdouble::Class::Infinite {
        return Err(if negative { NEGATIVE } else { OUT_OF_RANGE }.into());
    }
    let seconds: f64 = std::str::from_utf8(arg).ok().and_then(|t| t.parse().ok()).ok_or(CmdError::from(NOT_FLOAT))?;
    let millis = seconds * 1000.0;
    if millis > i64::MAX as f64 {
        return Err(OUT_OF_RANGE.into());
    }
    let millis = millis.ceil();
    if millis < 0.0 {
        return Err(NEGATIVE.into());
    }
    Ok(if millis == 0.0 { None } else { Some(Duration::from_millis(millis as u64)) })
}

impl Ctx<'_> {
    /// Whether a blocking command may park the client here. Inside MULTI
    /// or a script it must act as its non-blocking form instead.
    pub fn may_block(&self) -> bool {
        !self.client.no_blocking
    }

    /// Parks the client on `keys`: the command runs again when one is
    /// written, or answers `on_timeout` once `timeout` (None = forever)
    /// passes. The handler returns having written nothing.
    pub fn block(&mut self, keys: &[&[u8]], timeout: Option<Duration>, on_timeout: TimeoutReply) {
        self.block_with(BlockRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            timeout,
            on_timeout,
            rerun_args: None,
            wake_on_delete: false,
        });
    }

    /// [`Ctx::block`] with every option (see [`BlockRequest`]).
    pub fn block_with(&mut self, request: BlockRequest) {
        self.client.block_request = Some(request);
    }
}

/// Called by the dispatcher after a handler ran: parks the client if the
/// handler asked to block and it is not parked already (a parked client's
/// command that still finds nothing keeps its place in line).
pub fn park_if_requested(st: &mut ServerState, client: &mut Client, args: &[&[u8]], spec: &CommandSpec) {
    let Some(request) = client.block_request.take() else { return };
    if st.blocking.is_parked(client.info.id) {
        client.block_request = Some(request);
        return;
    }
    let deadline = request.timeout.map(|t| Instant::now() + t);
    st.blocking.park(Parked {
        info: client.info.clone(),
        args: request.rerun_args.unwrap_or_else(|| args.iter().map(|a| a.to_vec()).collect()),
        db: client.db,
        resp3: client.resp3,
        keys: request.keys,
        on_timeout: request.on_timeout,
        deadline,
        wake_on_delete: request.wake_on_delete,
        wants_type: waited_type(spec),
    });
}

/// The value type a blocking command waits for, from its ACL categories.
fn waited_type(spec: &CommandSpec) -> Option<&'static str> {
    let ferrokey_formats::resp::Value::Array(fields) = &spec.info else { return None };
    let Some(ferrokey_formats::resp::Value::Set(categories)) = fields.get(6) else { return None };
    categories.iter().find_map(|c| match c {
        ferrokey_formats::resp::Value::Simple(name) => match name.as_slice() {
            b"@list" => Some("list"),
            b"@sortedset" => Some("zset"),
            b"@stream" => Some("stream"),
            _ => None,
        },
        _ => None,
    })
}

/// Hands a reply to a parked client's connection and wakes it.
fn deliver(parked: &Parked, reply: &[u8]) {
    parked.info.push_output(reply);
}

/// Unparks a client with its timeout reply (deadline passed, or CLIENT
/// UNBLOCK ... TIMEOUT), or with `error` (CLIENT UNBLOCK ... ERROR).
pub fn unblock(st: &mut ServerState, id: u64, error: Option<&str>) -> bool {
    let Some(parked) = st.blocking.remove_client(id) else { return false };
    let mut out = Reply::new(parked.resp3);
    match error {
        Some(e) => out.error(e),
        None => parked.on_timeout.write_now(st, &mut out),
    }
    deliver(&parked, &out.buf);
    true
}

/// Serves the waiters of every key marked ready, in FIFO order per key,
/// running each parked command again. Commands run here may make further
/// keys ready (BLMOVE pushes to its destination); they are served in the
/// same pass.
pub fn serve_ready(st: &mut ServerState) {
    if st.blocking.serving {
        return;
    }
    st.blocking.serving = true;
    while let Some(key) = st.blocking.ready.pop_front() {
        let waiting: Vec<u64> = st.blocking.waiters.get(&key).map(|q| q.iter().copied().collect()).unwrap_or_default();
        for id in waiting {
            let Some(parked) = st.blocking.parked.get(&id) else { continue };
            let now_ms = crate::server::unix_ms();
            // A write to this key in another database concerns nobody here
            // (nor does a deletion, unless the command wants to hear of it),
            // and neither does a value of another type than the one awaited.
            match st.dbs[parked.db].peek(&key).filter(|e| !e.is_expired(now_ms)) {
                None if !parked.wake_on_delete => continue,
                Some(e) if !parked.wake_on_delete && parked.wants_type.is_some_and(|t| t != e.value.type_name()) => {
                    continue
                }
                _ => {}
            }
            let info = parked.info.clone();
            let args: Vec<Vec<u8>> = parked.args.clone();
            let mut client = Client::new(info);
            client.db = parked.db;
            client.resp3 = parked.resp3;
            let mut out = Reply::new(parked.resp3);
            let arg_refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            crate::connection::execute(st, &mut client, &mut out, &arg_refs);
            if client.block_request.is_none() {
                if let Some(parked) = st.blocking.remove_client(id) {
                    deliver(&parked, &out.buf);
                }
            }
        }
    }
    st.blocking.serving = false;
}
