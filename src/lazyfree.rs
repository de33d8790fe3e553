//! Freeing big values off the engine thread, as Valkey's lazyfree does.
//!
//! Dropping a collection of millions of elements takes as many frees; on
//! the engine thread that would stall every client. Values are `Send` and
//! hold no shared state, so a value whose freeing takes many steps (its
//! "effort") is handed over a channel to one background thread that drops
//! it; small ones are freed inline, where handing over would cost more.
//! Which deletions go through here is configured as in Valkey: UNLINK and
//! FLUSHALL/FLUSHDB ASYNC always, DEL, eviction, expiry and overwrites
//! (server-side deletes) by the `lazyfree-lazy-*` directives.
//!
//! INFO memory reports `lazyfree_pending_objects` (handed over, not yet
//! freed) and `lazyfreed_objects` (freed so far) from the counters here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

use crate::config::Config;
use crate::db::KeyTable;
use crate::value::Value;

/// A value whose freeing takes at most this many steps is freed inline.
const LAZYFREE_THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// The directives read where no configuration is at hand (the keyspace
/// frees expired and overwritten values itself); [`configure`] keeps
/// them in step with the configuration. Valkey's defaults: yes.
static LAZY_EXPIRE: AtomicBool = AtomicBool::new(true);
static LAZY_SERVER_DEL: AtomicBool = AtomicBool::new(true);

/// What the lazyfree thread is given to drop, and how many objects that
/// counts for.
enum Garbage {
    Value(Value),
    Databases(Vec<KeyTable>),
}

struct Job {
    garbage: Garbage,
    objects: u64,
}

/// Copies the `lazyfree-lazy-expire` and `lazyfree-lazy-server-del`
/// settings for the keyspace (at start and when CONFIG SET changes them).
pub fn configure(config: &Config) {
    LAZY_EXPIRE.store(config.lazyfree_lazy_expire, Relaxed);
    LAZY_SERVER_DEL.store(config.lazyfree_lazy_server_del, Relaxed);
}

/// Objects handed to the lazyfree thread and not freed yet.
pub fn pending_objects() -> u64 {
    PENDING.load(Relaxed)
}

/// Objects the lazyfree thread has freed (CONFIG RESETSTAT zeroes it).
pub fn freed_objects() -> u64 {
    FREED.load(Relaxed)
}

pub fn reset_stats() {
    FREED.store(0, Relaxed);
}

/// Frees a deleted value: on the lazyfree thread when `lazy` and its
/// freeing takes many steps, inline otherwise.
pub fn free(value: Value, lazy: bool) {
    if lazy && free_effort(&value) > LAZYFREE_THRESHOLD {
        hand_over(Job { garbage: Garbage::Value(value), objects: 1 });
    }
}

/// Frees the value of a key that expired (`lazyfree-lazy-expire`).
pub fn free_expired(value: Value) {
    free(value, LAZY_EXPIRE.load(Relaxed));
}

/// Frees a value the server deleted by overwriting its key, or by
/// replacing it (RENAME, MOVE, COPY and RESTORE onto an existing key):
/// `lazyfree-lazy-server-del`.
pub fn free_overwritten(value: Value) {
    free(value, LAZY_SERVER_DEL.load(Relaxed));
}

/// Frees flushed databases: on the lazyfree thread when `asynchronous`,
/// each key counting as one object, as Valkey counts them.
pub fn free_databases(tables: Vec<KeyTable>, asynchronous: bool) {
    let keys: usize = tables.iter().map(KeyTable::len).sum();
    if asynchronous && keys > 0 {
        hand_over(Job { garbage: Garbage::Databases(tables), objects: keys as u64 });
    }
}

/// How many steps freeing a value takes, as Valkey estimates it: one for
/// anything held in a single allocation (strings, listpacks, intsets), the
/// element count of a hash table or skiplist, the node count of a
/// quicklist, and nodes plus groups and their pending entries of a stream.
fn free_effort(value: &Value) -> usize {
    match value {
        Value::List(list) if list.encoding_name() == "quicklist" => {
            list.quicklist_nodes().take(LAZYFREE_THRESHOLD + 1).count()
        }
        Value::Hash(hash) if hash.encoding_name() == "hashtable" => hash.len(),
        Value::Set(set) if set.encoding_name() == "hashtable" => set.len(),
        Value::ZSet(zset) if zset.encoding_name() == "skiplist" => zset.len(),
        Value::Stream(stream) => {
            let first_pel = stream.groups.values().next().map(|g| g.pel.len()).unwrap_or(0);
            stream.entries.node_count() + stream.groups.len() * (1 + first_pel)
        }
        _ => 1,
    }
}

/// Sends a job to the lazyfree thread (starting it the first time); if
/// the thread cannot run, the garbage is dropped here instead.
fn hand_over(job: Job) {
    let objects = job.objects;
    PENDING.fetch_add(objects, Relaxed);
    if let Some(sender) = sender() {
        match sender.send(job) {
            Ok(()) => return,
            Err(returned) => drop(returned.0),
        }
    }
    PENDING.fetch_sub(objects, Relaxed);
    FREED.fetch_add(objects, Relaxed);
}

fn sender() -> Option<&'static Sender<Job>> {
    static SENDER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
                let memory = crate::evict::HelperMemory::for_this_thread();
                for job in rx {
                    let objects = job.objects;
                    match job.garbage {
                        Garbage::Value(value) => drop(value),
                        Garbage::Databases(tables) => drop(tables),
                    }
                    // The freed bytes count before the objects stop being
                    // pending, so an eviction pass waiting on pending
                    // objects sees the memory come back.
                    memory.publish();
                    PENDING.fetch_sub(objects, Relaxed);
                    FREED.fetch_add(objects, Relaxed);
                }
            });
            spawned.ok().map(|_| tx)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Set;

    #[test]
    fn small_values_are_freed_inline_and_big_ones_on_the_thread() {
        assert_eq!(free_effort(&Value::string(b"x")), 1);
        let limits = crate::types::set::SetLimits { intset_entries: 0, listpack_entries: 0, listpack_value: 0 };
        let mut big = Set::new_hashtable(1000);
        for i in 0..1000 {
            big.add(format!("member{i}").as_bytes(), limits);
        }
        let value = Value::Set(big);
        assert!(free_effort(&value) > LAZYFREE_THRESHOLD, "{}", free_effort(&value));
        let freed_before = freed_objects();
        free(value, true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while freed_objects() == freed_before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(freed_objects() > freed_before);
    }
}
