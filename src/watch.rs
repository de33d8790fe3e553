//! WATCH: which clients watch which keys, and marking them dirty when a
//! watched key changes, so that their EXEC fails.
//!
//! Each client keeps its own list of watched keys (in its
//! [`ClientInfo`], so a change made by anybody can unwatch a dirtied
//! client at once); this registry maps each watched key to its watchers.
//! A key that was already expired, but not yet deleted, when it was
//! watched is remembered as such: its deletion by expiry is then no
//! change, as in Valkey.

use std::collections::HashMap;
use std::rc::Rc;

use crate::client::ClientInfo;
use crate::server::ServerState;

struct Watcher {
    info: Rc<ClientInfo>,
    /// The key existed but was logically expired when WATCH ran.
    expired_when_watched: bool,
}

#[derive(Default)]
pub struct Watches {
    /// Watchers of each key, per database number.
    by_db: HashMap<usize, HashMap<Box<[u8]>, Vec<Watcher>>>,
    /// Clients watching at least one key (INFO watching_clients).
    watching_clients: usize,
}

impl Watches {
    /// Whether nobody watches anything: the write path's cheap pre-check.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.watching_clients == 0
    }

    pub fn watching_clients(&self) -> usize {
        self.watching_clients
    }

    /// Keys watched in all databases (INFO watched_keys).
    pub fn watched_keys(&self) -> usize {
        self.by_db.values().map(|keys| keys.len()).sum()
    }

    /// How many clients watch `key` in `db` (DEBUG-free introspection for tests).
    pub fn watchers_of(&self, db: usize, key: &[u8]) -> usize {
        self.by_db.get(&db).and_then(|keys| keys.get(key)).map(Vec::len).unwrap_or(0)
    }

    /// Forgets every key `info` watches.
    pub fn unwatch_all(&mut self, info: &ClientInfo) {
        let keys = std::mem::take(&mut *info.watched.borrow_mut());
        if keys.is_empty() {
            return;
        }
        self.watching_clients -= 1;
        for (db, key) in keys {
            let Some(by_key) = self.by_db.get_mut(&db) else { continue };
            if let Some(watchers) = by_key.get_mut(&key) {
                watchers.retain(|w| w.info.id != info.id);
                if watchers.is_empty() {
                    by_key.remove(&key);
                }
            }
            if by_key.is_empty() {
                self.by_db.remove(&db);
            }
        }
    }
}

/// WATCH of one key in `db` by `info`.
pub fn watch(st: &mut ServerState, info: &Rc<ClientInfo>, db: usize, key: &[u8], now_ms: i64) {
    let mut watched = info.watched.borrow_mut();
    if watched.iter().any(|(d, k)| *d == db && &**k == key) {
        return;
    }
    if watched.is_empty() {
        st.watches.watching_clients += 1;
    }
    watched.push((db, key.into()));
    let expired_when_watched = st.dbs[db].peek(key).is_some_and(|e| e.is_expired(now_ms));
    st.watches
        .by_db
        .entry(db)
        .or_default()
        .entry(key.into())
        .or_default()
        .push(Watcher { info: info.clone(), expired_when_watched });
}

/// Marks dirty every client watching `key` in `db`: the key was changed
/// (or deleted by expiry).
pub fn touch(st: &mut ServerState, db: usize, key: &[u8]) {
    if st.watches.is_empty() {
        return;
    }
    let present = st.dbs[db].peek(key).is_some();
    let Some(watchers) = st.watches.by_db.get_mut(&db).and_then(|keys| keys.get_mut(key)) else { return };
    let mut dirtied = Vec::new();
    for w in watchers.iter_mut() {
        if w.expired_when_watched {
            // Deleting a key that was already expired changes nothing a
            // client could have seen; from now on it is a deleted key.
            if !present {
                w.expired_when_watched = false;
            }
            continue;
        }
        dirtied.push(w.info.clone());
    }
    for info in dirtied {
        mark_dirty(st, &info);
    }
}

/// FLUSHDB, FLUSHALL and SWAPDB: every watched key of `emptied` that
/// existed (or exists in `replaced_with`, the database taking its place)
/// is touched.
pub fn touch_all_in_db(st: &mut ServerState, emptied: usize, replaced_with: Option<usize>, now_ms: i64) {
    if st.watches.is_empty() {
        return;
    }
    let Some(by_key) = st.watches.by_db.get_mut(&emptied) else { return };
    let mut dirtied = Vec::new();
    for (key, watchers) in by_key.iter_mut() {
        let in_emptied = st.dbs[emptied].peek(key).is_some();
        let replacement = replaced_with.and_then(|r| st.dbs[r].peek(key));
        if !in_emptied && replacement.is_none() {
            continue;
        }
        let replacement_expired = replacement.is_some_and(|e| e.is_expired(now_ms));
        for w in watchers.iter_mut() {
            if w.expired_when_watched {
                if replacement.is_none() {
                    w.expired_when_watched = false;
                    continue;
                }
                if replacement_expired {
                    continue;
                }
            } else if !in_emptied && replacement_expired {
                // A missing key replaced by an expired one: still no key.
                w.expired_when_watched = true;
                continue;
            }
            dirtied.push(w.info.clone());
        }
    }
    for info in dirtied {
        mark_dirty(st, &info);
    }
}

fn mark_dirty(st: &mut ServerState, info: &Rc<ClientInfo>) {
    info.dirty_cas.set(true);
    // A dirty transaction will fail anyway: nothing more to watch.
    st.watches.unwatch_all(info);
}

/// Whether a key `info` watches has expired since it was watched (EXEC
/// then fails even though nothing deleted the key yet).
pub fn any_expired_since_watched(st: &ServerState, info: &ClientInfo, now_ms: i64) -> bool {
    info.watched.borrow().iter().any(|(db, key)| {
        let was_expired = st
            .watches
            .by_db
            .get(db)
            .and_then(|keys| keys.get(key))
            .and_then(|ws| ws.iter().find(|w| w.info.id == info.id))
            .is_some_and(|w| w.expired_when_watched);
        !was_expired && st.dbs[*db].peek(key).is_some_and(|e| e.is_expired(now_ms))
    })
}
