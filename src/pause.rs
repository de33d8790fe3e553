//! CLIENT PAUSE / UNPAUSE: holding clients' commands for a while (to let
//! a replica catch up before a failover, say).
//!
//! A paused command is not run and not consumed: its client is postponed
//! (CLIENT LIST flag `b`, counted in INFO blocked_clients), reads nothing
//! more, and runs the command again when the pause ends, when it may be
//! paused again. With ALL every command waits, CLIENT UNPAUSE included;
//! with WRITE only commands that may change the dataset or be propagated
//! (write and may-replicate commands, and EXEC of a transaction holding
//! one). The checks that refuse a command (arity, authentication, ...)
//! come first, so such errors are answered at once, as in Valkey.
//!
//! As in Valkey, the pause is in force while the cron has not seen its end
//! time pass, and a new pause never shortens the current one nor makes it
//! less strict.

use crate::client::Client;
use crate::command::{flags, CommandSpec};
use crate::server::ServerState;

/// Commands that Valkey flags "may_replicate" (they can add to the
/// replication stream without writing a key). Valkey leaves the flag out
/// of COMMAND INFO, so the command table cannot tell.
const MAY_REPLICATE: &[&str] = &["eval", "evalsha", "fcall", "pfcount", "publish", "spublish"];

fn may_replicate(spec: &CommandSpec) -> bool {
    spec.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0 || MAY_REPLICATE.contains(&spec.name.as_str())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseMode {
    Write,
    All,
}

#[derive(Default)]
pub struct Pause {
    /// What CLIENT PAUSE asked for, until `end_ms` (unix milliseconds).
    requested: Option<PauseMode>,
    end_ms: i64,
    /// What is paused now: `requested` while its end is in the future.
    active: Option<PauseMode>,
    /// Ids of the postponed clients, in the order they were held.
    postponed: Vec<u64>,
}

impl Pause {
    /// Whether `client`'s command `spec` must wait now (EXEC: whether its
    /// transaction holds a command that must).
    #[inline]
    pub fn holds(&self, client: &Client, spec: &CommandSpec) -> bool {
        match self.active {
            None => false,
            Some(PauseMode::All) => true,
            Some(PauseMode::Write) => {
                may_replicate(spec)
                    || (spec.name == "exec"
                        && client.multi.as_ref().is_some_and(|m| m.queued.iter().any(|q| may_replicate(q.spec))))
            }
        }
    }

    /// Whether any pause is in force (expiry and eviction wait too).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Postponed clients (part of INFO blocked_clients).
    pub fn postponed_count(&self) -> usize {
        self.postponed.len()
    }
}

/// CLIENT PAUSE: pauses `mode` until `end_ms`, keeping a stricter mode or
/// a later end already in force.
pub fn pause(st: &mut ServerState, end_ms: i64, mode: PauseMode) {
    let p = &mut st.pause;
    let mode = match p.requested {
        Some(PauseMode::All) => PauseMode::All,
        _ => mode,
    };
    p.requested = Some(mode);
    p.end_ms = p.end_ms.max(end_ms);
    update(st);
}

/// CLIENT UNPAUSE: ends the pause at once.
pub fn unpause(st: &mut ServerState) {
    st.pause.requested = None;
    st.pause.end_ms = 0;
    update(st);
}

/// Ends a pause whose time is up (called by the cron).
pub fn cron(st: &mut ServerState) {
    if st.pause.active.is_some() {
        update(st);
    }
}

/// Recomputes what is paused; when that became less strict, every
/// postponed client tries its command again (it may be held again).
fn update(st: &mut ServerState) {
    let before = st.pause.active;
    let now = crate::server::unix_ms();
    if st.pause.end_ms > now {
        st.pause.active = st.pause.requested;
    } else {
        st.pause.requested = None;
        st.pause.end_ms = 0;
        st.pause.active = None;
    }
    if st.pause.active < before {
        release_postponed(st);
    }
}

fn release_postponed(st: &mut ServerState) {
    for id in std::mem::take(&mut st.pause.postponed) {
        let Some(info) = st.clients.by_id.get(&id) else { continue };
        info.postponed.set(false);
        info.blocked.set(false);
        info.wake.notify_one();
    }
}

/// Holds the client's current command: its connection stops reading and
/// runs the command again once released.
pub fn postpone(st: &mut ServerState, client: &Client) {
    client.info.postponed.set(true);
    client.info.blocked.set(true);
    st.pause.postponed.push(client.info.id);
}

/// A postponed client that disconnected is no longer waiting.
pub fn forget_client(st: &mut ServerState, id: u64) {
    if !st.pause.postponed.is_empty() {
        st.pause.postponed.retain(|&waiting| waiting != id);
    }
}
