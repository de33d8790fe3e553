//! Per-connection state.
//!
//! A connection task owns its [`Client`]. What other connections must see
//! (CLIENT LIST, CLIENT KILL, INFO clients) lives in the [`ClientInfo`] it
//! shares with the server's registry; everything there is a `Cell` or
//! `RefCell` touched only on the engine thread, never across an await.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::sync::Notify;

/// How a client wants replies (CLIENT REPLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    /// Skipping the reply of the command now running.
    Skipping,
}

pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    /// Unix seconds when the connection was accepted.
    pub created_s: i64,
    pub name: RefCell<Option<Vec<u8>>>,
    pub lib_name: RefCell<Option<Vec<u8>>>,
    pub lib_ver: RefCell<Option<Vec<u8>>>,
    pub db: Cell<usize>,
    pub resp: Cell<u8>,
    /// Unix milliseconds of the last command (CLIENT LIST idle=).
    pub last_interaction_ms: Cell<i64>,
    pub last_cmd: RefCell<String>,
    pub commands_processed: Cell<u64>,
    pub query_buf_len: Cell<usize>,
    pub output_buf_len: Cell<usize>,
    pub no_evict: Cell<bool>,
    pub no_touch: Cell<bool>,
    pub authenticated: Cell<bool>,
    pub reply_mode: Cell<ReplyMode>,
    /// Set by CLIENT KILL, QUIT and protocol errors: the connection closes
    /// once pending replies are written.
    pub close_requested: Cell<bool>,
    /// Set at the end of a snapshot transfer: the connection closes once
    /// its pending output is written (see commands/replication.rs).
    pub close_after_output: Cell<bool>,
    pub kill: Notify,
    /// Parked by a blocking command (CLIENT LIST flag `b`).
    pub blocked: Cell<bool>,
    /// The journal offset after this client's last journalled write
    /// (Valkey's woff): WAITAOF waits for the AOF fsynced up to there.
    pub aof_write_offset: Cell<u64>,
    /// Output produced for this client outside its own command processing
    /// (a parked command served, pub/sub messages, keyspace events),
    /// waiting for its connection to write it.
    pub pending_output: RefCell<Vec<u8>>,
    /// Wakes the connection when `pending_output` has something, or a
    /// parked client was served.
    pub wake: Notify,
    /// Bytes received but not yet run: a partly received request while the
    /// connection waits for the rest, and whatever a long script's busy
    /// poller read (see busy.rs). The connection takes them back first.
    pub unread_input: RefCell<Vec<u8>>,
    /// Set when a key this client WATCHes changed: its next EXEC fails.
    pub dirty_cas: Cell<bool>,
    /// Inside MULTI: how many commands are queued (CLIENT LIST multi=).
    pub multi_queued: Cell<Option<usize>>,
    /// The keys this client WATCHes, by database. Shared so that a change
    /// made by any client can unwatch everything of a client it dirtied.
    pub watched: RefCell<Vec<(usize, Box<[u8]>)>>,
    /// Bytes read from and written to this connection (CLIENT LIST
    /// tot-net-in / tot-net-out); the connection loop adds to them.
    pub net_input_bytes: Cell<u64>,
    pub net_output_bytes: Cell<u64>,
    /// How many channels, patterns and shard channels the client is
    /// subscribed to: a client with any is a pub/sub client to CLIENT
    /// LIST and CLIENT KILL TYPE, and shows them as sub/psub/ssub.
    pub subscribed_channels: Cell<usize>,
    pub subscribed_patterns: Cell<usize>,
    pub subscribed_shard_channels: Cell<usize>,
    /// Client-side caching mode (CLIENT TRACKING; see tracking.rs).
    pub tracking: Cell<crate::tracking::ClientTracking>,
    /// Held by CLIENT PAUSE: its current command runs when the pause ends
    /// (see pause.rs). `blocked` is set too.
    pub postponed: Cell<bool>,
    /// Bytes of `pending_output` the connection is writing right now: they
    /// still count against the output buffer limits (output_limits.rs).
    pub output_in_flight: Cell<usize>,
    /// Unix seconds since when the output has been at or over its soft
    /// limit; 0 while under it.
    pub output_soft_limit_since: Cell<i64>,
    /// Closed for going over its output buffer limit (counted in INFO once
    /// the connection is gone).
    pub output_limit_reached: Cell<bool>,
    /// In MONITOR mode (CLIENT LIST flag `O`; see monitor.rs).
    pub monitor: Cell<bool>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, fd: i32, now_ms: i64, authenticated: bool) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created_s: now_ms / 1000,
            name: RefCell::new(None),
            lib_name: RefCell::new(None),
            lib_ver: RefCell::new(None),
            db: Cell::new(0),
            resp: Cell::new(2),
            last_interaction_ms: Cell::new(now_ms),
            last_cmd: RefCell::new("NULL".to_string()),
            commands_processed: Cell::new(0),
            query_buf_len: Cell::new(0),
            output_buf_len: Cell::new(0),
            no_evict: Cell::new(false),
            no_touch: Cell::new(false),
            authenticated: Cell::new(authenticated),
            reply_mode: Cell::new(ReplyMode::On),
            close_requested: Cell::new(false),
            close_after_output: Cell::new(false),
            kill: Notify::new(),
            blocked: Cell::new(false),
            aof_write_offset: Cell::new(0),
            pending_output: RefCell::new(Vec::new()),
            wake: Notify::new(),
            unread_input: RefCell::new(Vec::new()),
            dirty_cas: Cell::new(false),
            multi_queued: Cell::new(None),
            watched: RefCell::new(Vec::new()),
            net_input_bytes: Cell::new(0),
            net_output_bytes: Cell::new(0),
            subscribed_channels: Cell::new(0),
            subscribed_patterns: Cell::new(0),
            subscribed_shard_channels: Cell::new(0),
            tracking: Cell::new(Default::default()),
            postponed: Cell::new(false),
            output_in_flight: Cell::new(0),
            output_soft_limit_since: Cell::new(0),
            output_limit_reached: Cell::new(false),
            monitor: Cell::new(false),
        }
    }

    /// Asks the connection to close (CLIENT KILL): it wakes even when idle.
    pub fn request_kill(&self) {
        self.close_requested.set(true);
        self.kill.notify_one();
    }

    /// Queues output for this client from outside its own command (another
    /// client's PUBLISH, a served blocking command) and wakes its
    /// connection to write it.
    /// A client being closed takes no more (Valkey drops output for a
    /// client closed ASAP); one over its output buffer limit is closed.
    pub fn push_output(&self, bytes: &[u8]) {
        if self.close_requested.get() {
            return;
        }
        self.pending_output.borrow_mut().extend_from_slice(bytes);
        self.wake.notify_one();
        crate::output_limits::check(self);
    }

    /// Whether the client is in pub/sub mode (subscribed to anything).
    pub fn is_pubsub(&self) -> bool {
        self.subscribed_channels.get() + self.subscribed_patterns.get() + self.subscribed_shard_channels.get() > 0
    }
}

/// The connection-private half of a client.
pub struct Client {
    pub info: Rc<ClientInfo>,
    /// Selected database, mirrored into `info.db` for CLIENT LIST.
    pub db: usize,
    pub resp3: bool,
    /// Set by a blocking command that found nothing to serve; the
    /// dispatcher parks the client (see blocking.rs).
    pub block_request: Option<crate::blocking::BlockRequest>,
    /// Inside MULTI or a script, blocking commands act as their
    /// non-blocking forms.
    pub no_blocking: bool,
    /// The transaction being queued, between MULTI and EXEC/DISCARD.
    pub multi: Option<crate::commands::transactions::MultiState>,
    /// What REPLCONF announced, for a SYNC/PSYNC snapshot transfer.
    pub replica_handshake: crate::commands::replication::Handshake,
}

impl Client {
    pub fn new(info: Rc<ClientInfo>) -> Client {
        Client {
            info,
            db: 0,
            resp3: false,
            block_request: None,
            no_blocking: false,
            multi: None,
            replica_handshake: Default::default(),
        }
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.set(db);
    }

    pub fn set_resp(&mut self, version: u8) {
        self.resp3 = version == 3;
        self.info.resp.set(version);
    }

    /// Brings the connection back to the state of a new one (RESET): db 0,
    /// RESP2, no name, replies on, no-evict and no-touch off, and
    /// authenticated only if no password is required. The library name and
    /// version stay: they describe the software behind the connection,
    /// which has not changed.
    pub fn reset(&mut self, authenticated: bool) {
        self.select(0);
        self.set_resp(2);
        self.info.authenticated.set(authenticated);
        *self.info.name.borrow_mut() = None;
        // A reply being skipped right now (CLIENT REPLY SKIP just before
        // RESET) stays skipped: only the modes that last beyond the
        // current command are cleared.
        if matches!(self.info.reply_mode.get(), ReplyMode::Off | ReplyMode::SkipNext) {
            self.info.reply_mode.set(ReplyMode::On);
        }
        self.info.no_evict.set(false);
        self.info.no_touch.set(false);
    }
}

/// Every connected client, by id (ordered, as CLIENT LIST prints them).
#[derive(Default)]
pub struct ClientRegistry {
    pub by_id: BTreeMap<u64, Rc<ClientInfo>>,
    pub next_id: u64,
}

impl ClientRegistry {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
