//! Client-side caching (CLIENT TRACKING): which clients may hold which
//! keys in a local cache, and the invalidation messages that tell them to
//! drop a key that changed.
//!
//! Two modes, as in Valkey:
//! - default: the keys a tracking client reads (the keys of its read-only
//!   commands) go into the tracking table, key → client ids. When such a
//!   key is written, expires or is evicted, every client in its entry gets
//!   one invalidation and the entry is dropped (a client that reads the
//!   key again is remembered again).
//! - BCAST: a client names key prefixes and hears of every change to a
//!   matching key, whether it read it or not. Changes are collected per
//!   prefix and sent in one message per prefix when the current batch of
//!   work is done ([`broadcast_pending`]).
//!
//! Keys are remembered without their database, as Valkey does: a write to
//! `k` in any database invalidates `k`. FLUSHDB and FLUSHALL send every
//! tracking client a null invalidation ("everything") and empty the table.
//!
//! Messages are RESP3 pushes (`>2 invalidate [keys]`) to the client itself
//! or to the client it redirects to; a RESP2 client can only be served by
//! redirecting to a connection subscribed to `__redis__:invalidate`, which
//! gets them as pub/sub messages. Output for the client running the command
//! lands after its reply, through [`ClientInfo::push_output`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use indexmap::IndexMap;
use rand::Rng;

use crate::client::{Client, ClientInfo};
use crate::command::{flags, CommandSpec};
use crate::commands::server::keyspecs;
use crate::server::ServerState;

/// The channel a RESP2 redirection target subscribes to.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// A client's tracking mode (CLIENT TRACKINGINFO shows it). Off is the
/// default value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientTracking {
    pub on: bool,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) given for the next
    /// command (or transaction).
    pub caching: bool,
    pub noloop: bool,
    /// The redirection target disconnected (CLIENT LIST flag `R`).
    pub broken_redirect: bool,
    /// The client id invalidations go to; 0 for the client itself.
    pub redirect: u64,
}

/// The options of one CLIENT TRACKING ON.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackingOptions {
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// One BCAST prefix: its clients, and the keys under it changed since the
/// last broadcast with who changed each last (for NOLOOP).
#[derive(Default)]
struct Prefix {
    clients: BTreeMap<u64, Rc<ClientInfo>>,
    /// Key → id of the client that changed it last (0: no client, as for
    /// expiry and eviction). Sorted, as the keys are listed in messages.
    changed: BTreeMap<Box<[u8]>, u64>,
}

/// The server-wide tracking state.
#[derive(Default)]
pub struct Tracking {
    /// Clients with tracking on (INFO tracking_clients).
    clients: usize,
    /// Key → ids of the clients that may cache it (sorted, no repeats).
    /// An IndexMap so that [`enforce_table_limit`] can pick a random key.
    table: IndexMap<Box<[u8]>, Vec<u64>>,
    /// Client ids summed over every key (INFO tracking_total_items).
    items: u64,
    /// BCAST prefixes, in byte order (each prefix's message goes out in
    /// that order).
    prefixes: BTreeMap<Box<[u8]>, Prefix>,
    /// The BCAST prefixes of each client.
    client_prefixes: HashMap<u64, BTreeSet<Box<[u8]>>>,
    /// Some prefix has changed keys waiting for [`broadcast_pending`].
    broadcast_waiting: bool,
    /// Rounds in a row that [`enforce_table_limit`] ended still above the
    /// limit: each one tries harder.
    over_limit_rounds: u32,
    /// The client whose command is being executed (its tracking decides
    /// for the commands a script runs for it; NOLOOP spares it).
    current_client: u64,
}

impl Tracking {
    /// Whether any work can follow a command: the cheap pre-check of the
    /// command path, false unless a client tracks or the table still holds
    /// entries of clients that stopped.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.clients > 0 || !self.table.is_empty()
    }

    pub fn client_count(&self) -> usize {
        self.clients
    }

    /// Keys in the tracking table (INFO tracking_total_keys).
    pub fn key_count(&self) -> usize {
        self.table.len()
    }

    /// Client ids over all keys (INFO tracking_total_items).
    pub fn item_count(&self) -> u64 {
        self.items
    }

    /// BCAST prefixes in use (INFO tracking_total_prefixes).
    pub fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// The BCAST prefixes of a client, in byte order (CLIENT TRACKINGINFO).
    pub fn prefixes_of(&self, id: u64) -> Vec<Box<[u8]>> {
        self.client_prefixes.get(&id).map(|set| set.iter().cloned().collect()).unwrap_or_default()
    }

    /// Marks the start of a client's command; returns the client that was
    /// current before, for [`Tracking::leave`] (commands nest: a write can
    /// serve a parked client's command).
    #[inline]
    pub fn enter(&mut self, id: u64) -> u64 {
        std::mem::replace(&mut self.current_client, id)
    }

    #[inline]
    pub fn leave(&mut self, previous: u64) {
        self.current_client = previous;
    }
}

// ---------------------------------------------------------------------------
// Turning tracking on and off
// ---------------------------------------------------------------------------

/// Why CLIENT TRACKING ON refuses a set of BCAST prefixes.
pub enum PrefixConflict {
    /// The command fails.
    Refused(String),
    /// Valkey reports an overlap between two given prefixes other than the
    /// first, yet still turns tracking on and answers OK after the error.
    ReportedOnly(String),
}

fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Checks new BCAST prefixes against each other and against the client's
/// current ones: two prefixes overlap when one starts the other (a key
/// would be announced twice).
pub fn check_prefixes(st: &ServerState, id: u64, prefixes: &[&[u8]]) -> Result<(), PrefixConflict> {
    let shown = |p: &[u8]| crate::commands::args::c_string_lossy(p);
    let existing = st.tracking.client_prefixes.get(&id);
    for (i, &prefix) in prefixes.iter().enumerate() {
        if let Some(old) = existing.and_then(|set| set.iter().find(|old| overlaps(old, prefix))) {
            return Err(PrefixConflict::Refused(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                shown(prefix),
                shown(old)
            )));
        }
        if let Some(&other) = prefixes[i + 1..].iter().find(|other| overlaps(prefix, other)) {
            let message = format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                shown(prefix),
                shown(other)
            );
            return Err(if i == 0 { PrefixConflict::Refused(message) } else { PrefixConflict::ReportedOnly(message) });
        }
    }
    Ok(())
}

/// CLIENT TRACKING ON with options already validated. Turning it on again
/// replaces the mode; BCAST prefixes add to those the client has.
pub fn enable(st: &mut ServerState, info: &Rc<ClientInfo>, options: TrackingOptions, prefixes: &[&[u8]]) {
    let old = info.tracking.get();
    if !old.on {
        st.tracking.clients += 1;
    }
    info.tracking.set(ClientTracking {
        on: true,
        bcast: options.bcast,
        optin: options.optin,
        optout: options.optout,
        // A CLIENT CACHING given before stays for the next command.
        caching: old.caching,
        noloop: options.noloop,
        broken_redirect: false,
        redirect: options.redirect,
    });
    if options.bcast {
        if prefixes.is_empty() {
            add_prefix(st, info, b"");
        }
        for prefix in prefixes {
            add_prefix(st, info, prefix);
        }
    }
}

fn add_prefix(st: &mut ServerState, info: &Rc<ClientInfo>, prefix: &[u8]) {
    let state = st.tracking.prefixes.entry(prefix.into()).or_default();
    if state.clients.insert(info.id, info.clone()).is_none() {
        st.tracking.client_prefixes.entry(info.id).or_default().insert(prefix.into());
    }
}

/// CLIENT TRACKING OFF, RESET and disconnection. The client's entries in
/// the tracking table stay until their keys are invalidated (skipping it),
/// as in Valkey: removing them would mean scanning the whole table.
pub fn disable(st: &mut ServerState, info: &ClientInfo) {
    let state = info.tracking.get();
    if state.bcast {
        for prefix in st.tracking.client_prefixes.remove(&info.id).unwrap_or_default() {
            if let Some(p) = st.tracking.prefixes.get_mut(&prefix) {
                p.clients.remove(&info.id);
                if p.clients.is_empty() {
                    st.tracking.prefixes.remove(&prefix);
                }
            }
        }
    }
    if state.on {
        st.tracking.clients -= 1;
        info.tracking.set(ClientTracking::default());
    }
}

/// CLIENT CACHING YES (`Some(true)`), NO (`Some(false)`) or anything else
/// (`None`, a syntax error once tracking is known to be on): errors are
/// Valkey's, checked in its order.
pub fn set_caching(info: &ClientInfo, yes: Option<bool>) -> Result<(), &'static str> {
    let mut state = info.tracking.get();
    if !state.on {
        return Err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    match yes {
        None => return Err(crate::command::errors::SYNTAX),
        Some(true) if !state.optin => {
            return Err("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        }
        Some(false) if !state.optout => {
            return Err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        }
        _ => {}
    }
    state.caching = true;
    info.tracking.set(state);
    Ok(())
}

/// After each command a client sent: CLIENT CACHING concerns only the next
/// command, or the next transaction as a whole, so it is forgotten after
/// any command but CLIENT's own subcommands, outside MULTI.
#[inline]
pub fn command_done(client: &Client, command_name: &[u8]) {
    let state = client.info.tracking.get();
    if state.caching && client.multi.is_none() && !command_name.eq_ignore_ascii_case(b"client") {
        client.info.tracking.set(ClientTracking { caching: false, ..state });
    }
}

// ---------------------------------------------------------------------------
// After a command: remembering reads, invalidating writes
// ---------------------------------------------------------------------------

/// What follows a command for client-side caching (called only when
/// [`Tracking::is_active`]): a command that changed the dataset
/// invalidates the keys it writes (a write, or PFCOUNT refreshing its
/// cached count, which Valkey announces as a change too); a read-only
/// command's keys are then remembered for the client that sent it.
pub fn after_call(st: &mut ServerState, client: &Client, spec: &CommandSpec, args: &[&[u8]], changed: bool) {
    let readonly = spec.has(flags::READONLY);
    if changed && (readonly || spec.has(flags::WRITE)) {
        for key in keyspecs::find_keys(spec, args) {
            if key.flags & (keyspecs::RW | keyspecs::OW | keyspecs::RM) != 0 {
                invalidate(st, args[key.pos], client.info.id, true);
            }
        }
    }
    if !readonly || spec.has(flags::PUBSUB) {
        return;
    }
    // Read-only scripts are not remembered themselves: the commands they
    // run are.
    if matches!(spec.name.as_str(), "eval_ro" | "evalsha_ro" | "fcall_ro") {
        return;
    }
    let current = st.tracking.current_client;
    let tracker = if client.info.id == current {
        client.info.clone()
    } else {
        match st.clients.by_id.get(&current) {
            Some(info) => info.clone(),
            None => return,
        }
    };
    let state = tracker.tracking.get();
    if !state.on || state.bcast || (state.optin && !state.caching) || (state.optout && state.caching) {
        return;
    }
    // A key this command found expired was deleted (and invalidated) by
    // its lookup in Valkey, before the read is remembered: do the same
    // here, or the invalidation would drop what is remembered now.
    st.collect_expired();
    for key in keyspecs::find_keys(spec, args) {
        let ids = st.tracking.table.entry(args[key.pos].into()).or_default();
        if let Err(at) = ids.binary_search(&tracker.id) {
            ids.insert(at, tracker.id);
            st.tracking.items += 1;
        }
    }
}

/// A key changed outside any command's own writes: it expired or was
/// evicted. Every client that may cache it is told, and BCAST clients
/// whose prefixes match hear of it with the next broadcast.
pub fn invalidate_key(st: &mut ServerState, _db: usize, key: &[u8]) {
    if st.tracking.is_active() {
        invalidate(st, key, 0, true);
    }
}

/// Invalidates `key` for the clients in its table entry. `writer` is the
/// client that changed it (0: none), remembered for BCAST NOLOOP; with
/// `bcast` false (the table limit dropping an entry) the key did not
/// change, so BCAST clients are not told.
fn invalidate(st: &mut ServerState, key: &[u8], writer: u64, bcast: bool) {
    if bcast && !st.tracking.prefixes.is_empty() {
        for (prefix, state) in st.tracking.prefixes.iter_mut() {
            if key.starts_with(prefix) {
                state.changed.insert(key.into(), writer);
                st.tracking.broadcast_waiting = true;
            }
        }
    }
    let Some(ids) = st.tracking.table.swap_remove(key) else { return };
    st.tracking.items -= ids.len() as u64;
    let current = st.tracking.current_client;
    for id in ids {
        let Some(target) = st.clients.by_id.get(&id).cloned() else { continue };
        let state = target.tracking.get();
        // A client that switched to BCAST since reading the key (or
        // stopped tracking) left its entries behind: they mean nothing now.
        if !state.on || state.bcast || (state.noloop && id == current) {
            continue;
        }
        send(st, &target, Keys::One(key));
    }
}

/// FLUSHDB / FLUSHALL: every tracking client is told that all its keys are
/// invalid (a null instead of keys), and the table is emptied.
pub fn invalidate_all(st: &mut ServerState) {
    if st.tracking.clients > 0 {
        let trackers: Vec<Rc<ClientInfo>> =
            st.clients.by_id.values().filter(|info| info.tracking.get().on).cloned().collect();
        for target in trackers {
            send(st, &target, Keys::All);
        }
    }
    st.tracking.table = IndexMap::new();
    st.tracking.items = 0;
}

/// Sends every BCAST prefix's changed keys to the prefix's clients, one
/// message per prefix; a NOLOOP client does not hear of the keys it
/// changed itself. Called once the current batch of commands (or a cron
/// round) is done, so that a transaction or pipeline gives one message.
pub fn broadcast_pending(st: &mut ServerState) {
    if !st.tracking.broadcast_waiting {
        return;
    }
    st.tracking.broadcast_waiting = false;
    let mut deliveries: Vec<(Rc<ClientInfo>, Vec<u8>)> = Vec::new();
    for state in st.tracking.prefixes.values_mut() {
        if state.changed.is_empty() {
            continue;
        }
        let changed = std::mem::take(&mut state.changed);
        let everything = key_array(&changed, None);
        for info in state.clients.values() {
            if info.tracking.get().noloop {
                if let Some(theirs) = key_array(&changed, Some(info.id)) {
                    deliveries.push((info.clone(), theirs));
                }
            } else if let Some(all) = &everything {
                deliveries.push((info.clone(), all.clone()));
            }
        }
    }
    for (target, keys) in deliveries {
        send(st, &target, Keys::Encoded(&keys));
    }
}

/// The RESP array of the changed keys, leaving out those `skip_writer`
/// changed last; None when that leaves nothing.
fn key_array(changed: &BTreeMap<Box<[u8]>, u64>, skip_writer: Option<u64>) -> Option<Vec<u8>> {
    let keys: Vec<&[u8]> =
        changed.iter().filter(|(_, &writer)| Some(writer) != skip_writer).map(|(k, _)| &k[..]).collect();
    if keys.is_empty() {
        return None;
    }
    let mut out = crate::reply::Reply::new(false);
    out.bulk_array(keys);
    Some(out.buf)
}

/// Keeps the tracking table within `tracking-table-max-keys` by dropping
/// random entries, invalidating them for their clients as if the keys had
/// changed. Each call does a bounded amount of work, more for every call
/// in a row that could not get under the limit.
pub fn enforce_table_limit(st: &mut ServerState) {
    let max = st.config.tracking_table_max_keys;
    if max == 0 || st.tracking.table.len() <= max {
        st.tracking.over_limit_rounds = 0;
        return;
    }
    let mut effort = 100 * (st.tracking.over_limit_rounds as usize + 1);
    while effort > 0 && !st.tracking.table.is_empty() {
        effort -= 1;
        let at = st.rng.gen_range(0..st.tracking.table.len());
        let Some((key, _)) = st.tracking.table.get_index(at) else { break };
        let key = key.clone();
        invalidate(st, &key, 0, false);
        if st.tracking.table.len() <= max {
            st.tracking.over_limit_rounds = 0;
            return;
        }
    }
    st.tracking.over_limit_rounds += 1;
}

/// The periodic part: the table limit and BCAST changes made outside
/// commands (expiry, eviction).
pub fn cron(st: &mut ServerState) {
    if st.tracking.clients > 0 {
        enforce_table_limit(st);
    }
    broadcast_pending(st);
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// What an invalidation names.
enum Keys<'a> {
    One(&'a [u8]),
    /// Already encoded as a RESP array (a BCAST batch).
    Encoded(&'a [u8]),
    /// Everything (after a flush): a null.
    All,
}

/// Sends an invalidation for `tracker` to where it goes: the client itself
/// in RESP3, or its redirection target (a RESP3 push, or a message on
/// `__redis__:invalidate` for a RESP2 subscriber). A RESP2 client without
/// redirection cannot receive anything; a vanished target is reported to
/// a RESP3 client.
fn send(st: &ServerState, tracker: &Rc<ClientInfo>, keys: Keys) {
    let state = tracker.tracking.get();
    // The null is written in the protocol of the client that tracks, even
    // when a target of another protocol receives it, as Valkey does.
    let null: &[u8] = if tracker.resp.get() == 3 { b"_\r\n" } else { b"$-1\r\n" };
    let (target, redirected) = if state.redirect == 0 {
        (tracker.clone(), false)
    } else {
        match st.clients.by_id.get(&state.redirect) {
            Some(target) => (target.clone(), true),
            None => {
                tracker.tracking.set(ClientTracking { broken_redirect: true, ..state });
                if tracker.resp.get() == 3 {
                    let mut out = crate::reply::Reply::new(true);
                    out.push(2);
                    out.bulk(b"tracking-redir-broken");
                    out.int(state.redirect as i64);
                    tracker.push_output(&out.buf);
                }
                return;
            }
        }
    };
    let mut out = crate::reply::Reply::new(target.resp.get() == 3);
    if out.resp3 {
        out.push(2);
        out.bulk(b"invalidate");
    } else if redirected && target.is_pubsub() {
        out.array(3);
        out.bulk(b"message");
        out.bulk(INVALIDATE_CHANNEL);
    } else {
        return;
    }
    match keys {
        Keys::One(key) => {
            out.array(1);
            out.bulk(key);
        }
        Keys::Encoded(encoded) => out.buf.extend_from_slice(encoded),
        Keys::All => out.buf.extend_from_slice(null),
    }
    target.push_output(&out.buf);
}
