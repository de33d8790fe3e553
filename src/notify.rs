//! Keyspace notifications (notify-keyspace-events): commands announce what
//! they did to a key as pub/sub messages, on `__keyspace@<db>__:<key>`
//! (the message is the event name) and on `__keyevent@<db>__:<event>` (the
//! message is the key), when the configured classes include the event's.
//!
//! The class bits are Valkey's, which the configuration stores as they are.

use crate::command::Ctx;
use crate::server::ServerState;

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: commands that apply to any type (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key removed because its time to live passed.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key removed to free memory under `maxmemory`.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read of a key that does not exist.
pub const KEY_MISS: u32 = 1 << 11;
/// `n`: a key was created.
pub const NEW: u32 = 1 << 14;

/// Whether events of `class` are published at all, for callers that must
/// do extra work (such as checking whether a key already existed) only to
/// announce one.
pub fn enabled(st: &ServerState, class: u32) -> bool {
    let flags = st.config.notify_keyspace_events;
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

/// Publishes `event` about `key` of database `db` when the configured
/// classes include `class`.
pub fn keyspace_event(st: &mut ServerState, class: u32, event: &str, key: &[u8], db: usize) {
    if !enabled(st, class) {
        return;
    }
    // Keys the running command found expired were announced by Valkey the
    // moment its lookup removed them, before the command's own events.
    if class != EXPIRED {
        st.collect_expired();
    }
    let flags = st.config.notify_keyspace_events;
    if flags & KEYSPACE != 0 {
        let channel = channel_name("__keyspace@", db, key);
        crate::pubsub::publish(st, &channel, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let channel = channel_name("__keyevent@", db, event.as_bytes());
        crate::pubsub::publish(st, &channel, key);
    }
}

fn channel_name(prefix: &str, db: usize, tail: &[u8]) -> Vec<u8> {
    let mut db_text = itoa::Buffer::new();
    let db_text = db_text.format(db);
    let mut channel = Vec::with_capacity(prefix.len() + db_text.len() + 3 + tail.len());
    channel.extend_from_slice(prefix.as_bytes());
    channel.extend_from_slice(db_text.as_bytes());
    channel.extend_from_slice(b"__:");
    channel.extend_from_slice(tail);
    channel
}

/// [`keyspace_event`] about a key of the running client's database.
pub fn notify(ctx: &mut Ctx, class: u32, event: &str, key: &[u8]) {
    keyspace_event(ctx.srv, class, event, key, ctx.client.db);
}

/// Announces that a command created `key` in the client's database (the
/// `new` event, which Valkey sends before the command's own).
pub fn new_key(ctx: &mut Ctx, key: &[u8]) {
    keyspace_event(ctx.srv, NEW, "new", key, ctx.client.db);
}
