//! `client-output-buffer-limit`: output waiting for a client that does not
//! read it (a slow pub/sub subscriber) must not grow without bound. A
//! client whose pending output reaches its class's hard limit, or stays at
//! its soft limit or above for longer than the soft limit's seconds, is
//! disconnected at once, as Valkey does, and counted in INFO
//! `client_output_buffer_limit_disconnections`. The publisher and the
//! other clients never wait for it.
//!
//! The check runs where output is queued for a client other than the one
//! executing ([`ClientInfo::push_output`]), which holds no reference to the
//! server state; so the limits are kept here, copied from the
//! configuration at start and on every CONFIG SET of the directive (the
//! engine is one thread, so a thread-local copy is the server's).
//!
//! Sizes follow Valkey's accounting: a client's first 16 KiB of output sit
//! in its fixed reply buffer (CLIENT LIST `obl`); only what goes beyond
//! fills the reply list of 16 KiB blocks (`oll`, `omem`), and that is what
//! the limits measure.

use std::cell::Cell;

use crate::client::ClientInfo;
use crate::config::{Config, OutputBufferLimit};
use crate::log_warning;
use crate::server::ServerState;

/// Valkey's fixed per-client reply buffer, and the size of a reply list block.
const REPLY_CHUNK_BYTES: usize = 16 * 1024;
/// What each reply list block costs besides its bytes (list node and
/// block header).
const BLOCK_OVERHEAD: usize = 40;

thread_local! {
    /// normal, replica, pubsub.
    static LIMITS: Cell<[OutputBufferLimit; 3]> = const { Cell::new([OutputBufferLimit { hard_bytes: 0, soft_bytes: 0, soft_seconds: 0 }; 3]) };
}

/// Takes the limits from the configuration (at start and after CONFIG SET).
pub fn configure(config: &Config) {
    LIMITS.with(|l| l.set([config.output_limit_normal, config.output_limit_replica, config.output_limit_pubsub]));
}

/// A client's queued output as CLIENT LIST shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputUse {
    /// Bytes in the fixed reply buffer (`obl`).
    pub buffer_bytes: usize,
    /// Reply list blocks (`oll`).
    pub blocks: usize,
    /// Memory of the reply list (`omem`): what the limits apply to.
    pub list_memory: usize,
}

/// The output a client has waiting: queued, plus what its connection is
/// writing right now.
pub fn usage(info: &ClientInfo) -> OutputUse {
    let total = info.pending_output.borrow().len() + info.output_in_flight.get();
    let buffer_bytes = total.min(REPLY_CHUNK_BYTES);
    let beyond = total - buffer_bytes;
    let blocks = beyond.div_ceil(REPLY_CHUNK_BYTES);
    OutputUse { buffer_bytes, blocks, list_memory: beyond + blocks * BLOCK_OVERHEAD }
}

/// Called after output was queued for `info`: closes the client when it is
/// over its class's limit.
pub fn check(info: &ClientInfo) {
    if exceeded(info) {
        close(info, "scheduled to be closed ASAP");
    }
}

/// The periodic check of every client with output waiting, so that a soft
/// limit whose time runs out while nothing more is queued still applies.
pub fn cron(st: &ServerState) {
    for info in st.clients.by_id.values() {
        if exceeded(info) {
            close(info, "closed");
        }
    }
}

fn exceeded(info: &ClientInfo) -> bool {
    if info.close_requested.get() {
        return false;
    }
    let used = usage(info).list_memory as u64;
    if used == 0 {
        info.output_soft_limit_since.set(0);
        return false;
    }
    // Pub/sub clients are limited as such; this server has no replicas yet.
    let limit = LIMITS.with(|l| l.get()[if info.is_pubsub() { 2 } else { 0 }]);
    over_limit(info, &limit, used)
}

fn close(info: &ClientInfo, how: &str) {
    let now_ms = crate::server::unix_ms();
    log_warning!(
        "Client {} {how} for overcoming of output buffer limits.",
        crate::commands::connection::client_info_line(info, now_ms)
    );
    // Counted in INFO when the connection ends (see connection.rs).
    info.output_limit_reached.set(true);
    // What was queued will never be read: free it now.
    *info.pending_output.borrow_mut() = Vec::new();
    info.request_kill();
}

/// Valkey's rule: the hard limit at once; the soft limit only once it has
/// held for more than its seconds (the clock starts the first time the
/// soft limit is seen reached, and stops whenever usage falls below it).
fn over_limit(info: &ClientInfo, limit: &OutputBufferLimit, used: u64) -> bool {
    if limit.hard_bytes != 0 && used >= limit.hard_bytes {
        return true;
    }
    if limit.soft_bytes == 0 || used < limit.soft_bytes {
        info.output_soft_limit_since.set(0);
        return false;
    }
    let now_s = crate::server::unix_ms() / 1000;
    let since = info.output_soft_limit_since.get();
    if since == 0 {
        info.output_soft_limit_since.set(now_s);
        return false;
    }
    now_s - since > limit.soft_seconds
}
