//! The server: shared state, start-up, the accept loops, the periodic cron
//! (active expiry, idle timeouts) and shutdown.
//!
//! One engine thread runs a current-thread tokio runtime. Every connection
//! is a task on it and every command runs to completion against
//! [`ServerState`] without awaiting, so no lock guards the data and a
//! command sees (and leaves) the keyspace in one consistent state.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

use crate::client::ClientRegistry;
use crate::config::Config;
use crate::db::Db;
use crate::{log_notice, log_verbose, log_warning};

/// The Valkey version ferrokey is compatible with; reported where clients
/// look for a server version (HELLO, INFO), since they gate features on it.
pub const VALKEY_VERSION: &str = "8.0.1";
/// Valkey reports this as redis_version for clients that check it.
pub const REDIS_COMPAT_VERSION: &str = "7.2.4";
pub const FERROKEY_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
    pub expired_stale_perc: f64,
    pub expired_time_cap_reached_count: u64,
    pub expire_cycle_cpu_milliseconds: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    pub total_error_replies: u64,
    pub unexpected_error_replies: u64,
    pub total_reads_processed: u64,
    pub total_writes_processed: u64,
    pub client_query_buffer_limit_disconnections: u64,
    pub client_output_buffer_limit_disconnections: u64,
}

/// How SHUTDOWN asked the server to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    Default,
    Save,
    NoSave,
}

pub struct ServerState {
    pub config: Config,
    pub dbs: Vec<Db>,
    pub clients: ClientRegistry,
    pub stats: Stats,
    /// Changes since the last save.
    pub dirty: u64,
    pub started: Instant,
    pub start_unix_ms: i64,
    pub run_id: String,
    pub rng: SmallRng,
    pub shutdown: Option<ShutdownMode>,
    pub shutdown_notify: Rc<Notify>,
    pub active_expire_enabled: bool,
    /// The TCP port actually listened on.
    pub tcp_port: u16,
    pub executable: String,
    /// Whether a protected-mode server must refuse non-loopback clients.
    pub last_save_unix: i64,
    pub slowlog: crate::slowlog::SlowLog,
    pub blocking: crate::blocking::Blocking,
    pub persistence: crate::persistence::Persistence,
    pub watches: crate::watch::Watches,
    pub pubsub: crate::pubsub::PubSub,
    pub monitors: crate::monitor::Monitors,
    /// The listening sockets, for accepting while a script is busy.
    pub listener_fds: Vec<std::os::fd::RawFd>,
    /// Connections accepted while a script was busy, for the accept loop
    /// to adopt once it is over (`adopt_notify` tells it).
    pub accepted_while_busy: Vec<crate::busy::AcceptedWhileBusy>,
    pub adopt_notify: Rc<Notify>,
    /// What commands changed, for the journal (see effects.rs).
    pub effects: crate::effects::Effects,
    /// The AOF state (set at start-up either way: the manifest is read even
    /// with appendonly off); its journal exists only while journalling.
    pub aof: Option<crate::aof::Aof>,
    /// maxmemory: the eviction pool and state (see evict.rs).
    pub evict: crate::evict::Eviction,
    /// Client-side caching (see tracking.rs).
    pub tracking: crate::tracking::Tracking,
    /// CLIENT PAUSE (see pause.rs).
    pub pause: crate::pause::Pause,
}

impl ServerState {
    pub fn new(config: Config) -> ServerState {
        let mut rng = SmallRng::from_entropy();
        let run_id: String = (0..40).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap()).collect();
        let now = unix_ms();
        ServerState {
            dbs: (0..config.databases).map(|_| Db::default()).collect(),
            config,
            clients: ClientRegistry::default(),
            stats: Stats::default(),
            dirty: 0,
            started: Instant::now(),
            start_unix_ms: now,
            run_id,
            rng,
            shutdown: None,
            shutdown_notify: Rc::new(Notify::new()),
            active_expire_enabled: true,
            tcp_port: 0,
            executable: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            last_save_unix: now / 1000,
            slowlog: Default::default(),
            blocking: Default::default(),
            persistence: Default::default(),
            watches: Default::default(),
            pubsub: Default::default(),
            monitors: Default::default(),
            listener_fds: Vec::new(),
            accepted_while_busy: Vec::new(),
            adopt_notify: Rc::new(Notify::new()),
            effects: Default::default(),
            aof: None,
            evict: Default::default(),
            tracking: Default::default(),
            pause: Default::default(),
        }
    }

    /// Handles the keys that lazy or active expiry removed since the last
    /// call: counted in the stats, announced as `expired` keyspace events,
    /// and invalidating the WATCHes on them.
    pub fn collect_expired(&mut self) {
        for idx in 0..self.dbs.len() {
            if self.dbs[idx].expired_log.is_empty() {
                continue;
            }
            let expired = std::mem::take(&mut self.dbs[idx].expired_log);
            self.stats.expired_keys += expired.len() as u64;
            for key in &expired {
                crate::notify::keyspace_event(self, crate::notify::EXPIRED, "expired", key, idx);
                crate::watch::touch(self, idx, key);
                crate::tracking::invalidate_key(self, idx, key);
                // Journalled as Valkey propagates an expiry: UNLINK when
                // expired values are freed lazily (the default), else DEL.
                let verb: &[u8] = if self.config.lazyfree_lazy_expire { b"UNLINK" } else { b"DEL" };
                self.effects.record(idx, &[verb, key]);
            }
            // Keep the log's allocation for the next expiries.
            let mut log = expired;
            log.clear();
            if self.dbs[idx].expired_log.is_empty() {
                self.dbs[idx].expired_log = log;
            }
        }
    }

    /// Whether a connection from `peer` is refused by protected mode.
    pub fn protected_refuses(&self, peer: &IpAddr) -> bool {
        self.config.protected_mode && self.config.requirepass.is_none() && !is_loopback(peer)
    }

    pub fn request_shutdown(&mut self, mode: ShutdownMode) {
        self.shutdown = Some(mode);
        self.shutdown_notify.notify_one();
    }
}

pub fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().map(|v| v.is_loopback()).unwrap_or(false),
    }
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn unix_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Runs the server until shutdown. Returns the process exit code.
pub fn run(config: Config) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log_warning!("Failed creating the event loop: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(config))
}

async fn serve(config: Config) -> i32 {
    let listeners = match bind_all(&config).await {
        Ok(l) => l,
        Err(msg) => {
            log_warning!("{msg}");
            return 1;
        }
    };
    let port = listeners.first().and_then(|l| l.local_addr().ok()).map(|a| a.port()).unwrap_or(config.port);
    let hz = config.hz.max(1);
    let mut initial = ServerState::new(config);
    initial.tcp_port = port;
    initial.listener_fds = listeners.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    for name in crate::commands::server::COPIED_DIRECTIVES {
        crate::commands::server::apply_config_change(&mut initial, name);
    }
    crate::commands::server::record_startup_memory();
    let state = Rc::new(RefCell::new(initial));
    log_notice!("Server initialized");
    for listener in listeners {
        tokio::task::spawn_local(accept_loop(listener, state.clone()));
    }
    if !crate::persistence::load_at_start(&state).await || !crate::aof::load_at_start(&state).await {
        return 1;
    }
    tokio::task::spawn_local(cron(state.clone(), hz));
    tokio::task::spawn_local(crate::evict::background(state.clone()));
    log_notice!("Ready to accept connections tcp");

    let shutdown_notify = state.borrow().shutdown_notify.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    loop {
        let by_signal = tokio::select! {
            _ = shutdown_notify.notified() => {
                // SHUTDOWN already made the final save (or was told to skip it).
                log_notice!("User requested shutdown...");
                false
            }
            _ = next_signal(&mut sigterm) => {
                log_warning!("Received SIGTERM scheduling shutdown...");
                true
            }
            _ = next_signal(&mut sigint) => {
                log_warning!("Received SIGINT scheduling shutdown...");
                true
            }
        };
        if by_signal && !(crate::aof::before_exit(&state.borrow()) && crate::persistence::before_exit(&state.borrow()))
        {
            // Exiting now would lose acknowledged writes: keep serving, as
            // Valkey does, until a save can succeed or SHUTDOWN NOSAVE.
            log_warning!(
                "SIGTERM received but errors trying to shut down the server, check the logs for more information"
            );
            continue;
        }
        break;
    }
    finish_shutdown(&state.borrow());
    0
}

/// Waits for a signal; forever when its handler could not be installed.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Ends the process at once, without saving (SHUTDOWN NOSAVE while a
/// script is busy: the script cannot be stopped any other way).
pub fn exit_now(state: &ServerState) -> ! {
    finish_shutdown(state);
    std::process::exit(0)
}

fn finish_shutdown(state: &ServerState) {
    if !state.config.pidfile.is_empty() {
        log_notice!("Removing the pid file.");
        let _ = std::fs::remove_file(&state.config.pidfile);
    }
    log_warning!("ferrokey is now ready to exit, bye bye...");
}

/// Parses a `bind` entry: `*` is every IPv4 address, `::*` every IPv6
/// one; a leading `-` marks an address whose bind may fail quietly.
fn bind_targets(config: &Config) -> Vec<(IpAddr, bool)> {
    config
        .bind
        .iter()
        .map(|entry| {
            let (optional, addr) = match entry.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, entry.as_str()),
            };
            let ip = match addr {
                "*" => IpAddr::from([0, 0, 0, 0]),
                "::*" => IpAddr::from([0u16; 8]),
                other => other.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])),
            };
            (ip, optional)
        })
        .collect()
}

async fn bind_all(config: &Config) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::new();
    if config.port == 0 {
        return Ok(out);
    }
    for (ip, optional) in bind_targets(config) {
        let addr = SocketAddr::new(ip, config.port);
        let socket = if ip.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
        let result = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            if ip.is_ipv6() {
                // Valkey binds IPv6 sockets v6-only so "* -::*" can share the port.
                set_v6_only(&s);
            }
            s.bind(addr)?;
            s.listen(config.tcp_backlog.max(1))
        });
        match result {
            Ok(l) => out.push(l),
            Err(e) if optional => log_verbose!("Skipping optional bind {addr}: {e}"),
            Err(e) => return Err(format!("Warning: Could not create server TCP listening socket {addr}: {e}")),
        }
    }
    if out.is_empty() {
        return Err("Failed listening on port {} (tcp), aborting.".replace("{}", &config.port.to_string()));
    }
    Ok(out)
}

fn set_v6_only(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a c_int option value.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

async fn accept_loop(listener: TcpListener, state: Rc<RefCell<ServerState>>) {
    let adopt = state.borrow().adopt_notify.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = adopt.notified() => {
                adopt_accepted_while_busy(&state);
                continue;
            }
        };
        match accepted {
            Ok((stream, peer)) => crate::connection::accept(stream, peer, &state),
            Err(e) => {
                log_warning!("Accepting client connection: {e}");
                // Out of descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Turns the connections a busy script's poller accepted into normal
/// clients, with what they sent that was not answered yet.
fn adopt_accepted_while_busy(state: &Rc<RefCell<ServerState>>) {
    let accepted = std::mem::take(&mut state.borrow_mut().accepted_while_busy);
    for conn in accepted {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor came from accept4 and nothing else owns it.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(conn.fd) };
        match TcpStream::from_std(std_stream) {
            Ok(stream) => crate::connection::accept_with_input(stream, conn.peer, state, conn.unread),
            Err(e) => log_warning!("Adopting a client accepted during a busy script: {e}"),
        }
    }
}

/// The periodic job, `hz` times a second: active expiry and idle timeouts.
async fn cron(state: Rc<RefCell<ServerState>>, mut hz: u32) {
    let mut interval = tokio::time::interval(Duration::from_millis(1000 / hz as u64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut st = state.borrow_mut();
        if st.config.hz.max(1) != hz {
            hz = st.config.hz.clamp(1, 500);
            interval = tokio::time::interval(Duration::from_millis(1000 / hz as u64));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        crate::pause::cron(&mut st);
        // Keys do not expire while clients are paused, as in Valkey.
        if st.active_expire_enabled && !st.pause.is_active() {
            active_expire_cycle(&mut st, hz);
        }
        crate::tracking::cron(&mut st);
        crate::output_limits::cron(&st);
        close_idle_clients(&mut st);
        crate::commands::server::sample_rates(&st);
        crate::persistence::cron(&mut st);
        crate::aof::cron(&mut st);
        crate::evict::cron(&mut st);
    }
}

/// Valkey's active expiry, simplified to its essentials: sample 20 keys
/// with a TTL per db, delete the expired ones, and repeat while more than
/// a tenth of a sample had expired, within a quarter of the cron period.
pub fn active_expire_cycle(st: &mut ServerState, hz: u32) {
    const SAMPLES: usize = 20;
    let budget = Duration::from_micros(250_000 / hz as u64);
    let start = Instant::now();
    let now = unix_ms();
    let mut total_sampled = 0usize;
    let mut total_expired = 0usize;
    let mut timed_out = false;
    let ServerState { dbs, rng, .. } = st;
    'dbs: for db in dbs.iter_mut() {
        let mut rounds = 0;
        loop {
            if db.volatile_len() == 0 {
                break;
            }
            let (sampled, expired) = db.expire_sample(now, SAMPLES, rng);
            total_sampled += sampled;
            total_expired += expired;
            rounds += 1;
            if rounds % 16 == 0 && start.elapsed() > budget {
                timed_out = true;
                break 'dbs;
            }
            if sampled == 0 || expired * 10 <= sampled {
                break;
            }
        }
    }
    if timed_out {
        st.stats.expired_time_cap_reached_count += 1;
    }
    let perc = if total_sampled > 0 { total_expired as f64 / total_sampled as f64 } else { 0.0 };
    st.stats.expired_stale_perc = perc * 0.05 + st.stats.expired_stale_perc * 0.95;
    st.stats.expire_cycle_cpu_milliseconds += start.elapsed().as_millis() as u64;
    st.collect_expired();
}

fn close_idle_clients(st: &mut ServerState) {
    let timeout = st.config.timeout;
    if timeout == 0 {
        return;
    }
    let now = unix_ms();
    for info in st.clients.by_id.values() {
        // Subscribers wait for messages, not commands: they never time out.
        if !info.is_pubsub() && now - info.last_interaction_ms.get() > timeout as i64 * 1000 {
            log_verbose!("Closing idle client");
            info.request_kill();
        }
    }
}
