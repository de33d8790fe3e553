//! `maxmemory`: memory accounting, key eviction and the OOM refusal, as
//! Valkey 8 does them.
//!
//! Before every command (see `connection::run_checked`), when a limit is
//! set, [`before_command`] compares the memory in use with it and, over
//! it, evicts keys chosen by `maxmemory-policy` until enough is freed or
//! the pass's time budget (`maxmemory-eviction-tenacity`) runs out; then
//! a background task keeps evicting between client requests. When
//! nothing can be evicted (`noeviction`, or no candidate key) the
//! commands flagged `denyoom` are refused with the OOM error.
//!
//! Candidates, as in Valkey: the LRU, LFU and TTL policies keep a pool of
//! the 16 best candidates seen so far, refilled from `maxmemory-samples`
//! random keys of every database at each pick, and evict the best one
//! that still exists; the random policies take any key. LRU ranks by idle
//! seconds, LFU by the key's logarithmic access counter (after its decay),
//! TTL by the nearest expiry.
//!
//! Memory in use is counted as Valkey's allocator wrapper counts it: the
//! bytes the program holds, not what the allocator keeps around. jemalloc
//! keeps exact per-thread totals of bytes allocated and freed; the engine
//! thread's totals plus those the helper threads publish give the figure
//! in a few nanoseconds. (jemalloc's global `stats.allocated` needs an
//! `epoch` refresh that merges every arena, measured at 12 to 20 µs: too
//! slow to run before every command.)

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Notify;

use crate::command::flags;
use crate::config::{Config, MaxmemoryPolicy};
use crate::db::{Entry, NO_EXPIRE};
use crate::server::ServerState;
use crate::{log_warning, notify};

/// Valkey's reply when a `denyoom` command finds memory full.
pub const OOM_ERROR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

// ---------------------------------------------------------------------------
// Memory accounting
// ---------------------------------------------------------------------------

thread_local! {
    /// This thread's running totals of bytes allocated and freed, kept by
    /// jemalloc (read through pointers into its thread state).
    static THREAD_TOTALS: Option<(tikv_jemalloc_ctl::thread::ThreadLocal<u64>, tikv_jemalloc_ctl::thread::ThreadLocal<u64>)> =
        tikv_jemalloc_ctl::thread::allocatedp::read()
            .and_then(|a| tikv_jemalloc_ctl::thread::deallocatedp::read().map(|d| (a, d)))
            .ok();
}

/// What helper threads allocated minus what they freed, all together (it
/// is negative when they free what the engine thread allocated, as the
/// lazyfree thread does).
static HELPERS_NET: AtomicI64 = AtomicI64::new(0);
/// The highest used memory seen (INFO used_memory_peak).
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes this thread allocated minus bytes it freed.
fn thread_net() -> i64 {
    THREAD_TOTALS.with(|t| t.map(|(a, d)| a.get() as i64 - d.get() as i64).unwrap_or(0))
}

/// The memory the server holds (INFO used_memory). Call it on the engine
/// thread, where the dataset lives.
pub fn used_memory() -> usize {
    (thread_net() + HELPERS_NET.load(Relaxed)).max(0) as usize
}

/// The highest used memory seen so far, including now.
pub fn peak_memory() -> usize {
    let used = used_memory();
    PEAK.fetch_max(used, Relaxed).max(used)
}

/// A helper thread's share of the memory count: the thread calls
/// [`HelperMemory::publish`] after work that allocates or frees.
pub struct HelperMemory {
    published: std::cell::Cell<i64>,
}

impl HelperMemory {
    /// Starts counting for the calling thread.
    pub fn for_this_thread() -> HelperMemory {
        let memory = HelperMemory { published: std::cell::Cell::new(0) };
        memory.publish();
        memory
    }

    /// Makes what this thread allocated and freed so far count.
    pub fn publish(&self) {
        let now = thread_net();
        HELPERS_NET.fetch_add(now - self.published.replace(now), Relaxed);
    }
}

/// jemalloc-bg-thread: whether jemalloc returns unused pages to the system
/// from a thread of its own, as Valkey has it do by default; otherwise it
/// does so only while the program allocates (a server left idle after a
/// flush would keep its resident memory).
pub fn set_allocator_background_thread(enabled: bool) {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(enabled) {
        log_warning!("Could not set jemalloc's background thread to {enabled}: {e}");
    }
}

/// Memory that does not count against `maxmemory` (Valkey leaves out the
/// replication and AOF buffers, which eviction itself makes grow). There
/// is no replication, and the journal keeps no buffer between execution
/// units, so nothing is left out yet.
pub fn not_counted_memory(_st: &ServerState) -> usize {
    0
}

/// How much must be freed to get back under `maxmemory`; None when under
/// it (or when there is no limit).
fn memory_to_free(config: &Config, not_counted: usize) -> Option<usize> {
    let limit = usize::try_from(config.maxmemory).unwrap_or(usize::MAX);
    if limit == 0 {
        return None;
    }
    let reported = used_memory();
    if reported <= limit {
        return None;
    }
    let counted = reported.saturating_sub(not_counted);
    (counted > limit).then(|| counted - limit)
}

// ---------------------------------------------------------------------------
// LRU and LFU hints
// ---------------------------------------------------------------------------

/// The LFU counter of a new key: a few accesses' head start, so that a key
/// just written is not the first to go.
pub const LFU_INIT_VAL: u8 = 5;

/// The LFU clock: minutes, on 16 bits that wrap.
pub fn lfu_minutes(now_s: u32) -> u16 {
    (now_s / 60) as u16
}

/// Minutes since `then` on the wrapping LFU clock (assumed to have wrapped
/// at most once).
fn lfu_elapsed(then: u16, now_s: u32) -> u32 {
    let now = lfu_minutes(now_s) as u32;
    let then = then as u32;
    if now >= then {
        now - then
    } else {
        65535 - then + now
    }
}

/// The key's LFU counter after the decay due since its last access: one
/// less per `lfu-decay-time` minutes (OBJECT FREQ; eviction ranking).
pub fn lfu_counter(entry: &Entry, now_s: u32, decay_minutes: u32) -> u8 {
    if decay_minutes == 0 {
        return entry.lfu_counter;
    }
    let periods = lfu_elapsed(entry.lfu_minutes, now_s) / decay_minutes;
    entry.lfu_counter.saturating_sub(periods.min(255) as u8)
}

/// One access's increment of a logarithmic counter: certain at first, ever
/// less likely as it grows (`lfu-log-factor` sets how fast). `chance` is
/// uniform in [0, 1).
fn lfu_log_increment(counter: u8, log_factor: u32, chance: f64) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if chance < p {
        counter + 1
    } else {
        counter
    }
}

/// Records an access to a key (a lookup that touches): its LRU stamp, and
/// under an LFU policy its decayed and incremented counter.
pub fn touch(entry: &mut Entry, now_ms: i64, config: &Config, rng: &mut impl Rng) {
    let now_s = (now_ms / 1000) as u32;
    entry.last_access = now_s;
    if config.maxmemory_policy.uses_lfu() {
        let decayed = lfu_counter(entry, now_s, config.lfu_decay_time);
        entry.lfu_counter = lfu_log_increment(decayed, config.lfu_log_factor, rng.gen());
        entry.lfu_minutes = lfu_minutes(now_s);
    }
}

/// Sets a new key's access hints from what an RDB file or RESTORE gave:
/// the frequency under an LFU policy, the idle time otherwise; the other
/// hint is ignored, as Valkey does.
pub fn set_hints(entry: &mut Entry, config: &Config, freq: Option<u8>, idle_s: Option<u64>, now_s: u32) {
    if config.maxmemory_policy.uses_lfu() {
        if let Some(freq) = freq {
            entry.lfu_counter = freq;
            entry.lfu_minutes = lfu_minutes(now_s);
        }
    } else if let Some(idle) = idle_s {
        entry.last_access = now_s.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX));
    }
}

/// Whether small integers may be one shared object (OBJECT REFCOUNT):
/// not when LRU or LFU eviction needs per-key access hints.
pub fn shares_integers(config: &Config) -> bool {
    config.maxmemory == 0 || !(config.maxmemory_policy.uses_lru() || config.maxmemory_policy.uses_lfu())
}

// ---------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------

/// Candidates kept between picks.
const POOL_SIZE: usize = 16;

/// One candidate of the pool. `score` is what ranks it: idle time,
/// inverted frequency or inverted expiry; higher goes first.
#[derive(Default)]
struct Candidate {
    in_use: bool,
    score: u64,
    db: usize,
    /// The key's bytes; the buffer is kept when the slot empties, to be
    /// reused by the next candidate.
    key: Vec<u8>,
}

/// The eviction state of the server.
pub struct Eviction {
    /// Ordered by ascending score: the best candidate is the last in use.
    pool: Vec<Candidate>,
    /// The database the random policies try first next time.
    next_db: usize,
    /// Whether the background task is evicting (started when a pass ran
    /// out of time while memory was still over the limit).
    running: bool,
    wake: Rc<Notify>,
    /// Whether memory was full when the current command started: scripts
    /// refuse their first `denyoom` call then (see [`oom_refusal`]).
    pre_command_oom: bool,
    /// Since when memory has been over the limit, while it is.
    over_limit_since: Option<Instant>,
    /// Time spent over the limit in earlier episodes.
    over_limit_total: Duration,
}

impl Default for Eviction {
    fn default() -> Eviction {
        Eviction {
            pool: (0..POOL_SIZE).map(|_| Candidate::default()).collect(),
            next_db: 0,
            running: false,
            wake: Rc::new(Notify::new()),
            pre_command_oom: false,
            over_limit_since: None,
            over_limit_total: Duration::ZERO,
        }
    }
}

impl Eviction {
    /// INFO stats: total and current time spent over `maxmemory`, in ms.
    pub fn exceeded_time_ms(&self) -> (u64, u64) {
        let current = self.over_limit_since.map(|t| t.elapsed()).unwrap_or_default();
        ((self.over_limit_total + current).as_millis() as u64, current.as_millis() as u64)
    }

    /// CONFIG RESETSTAT: both times restart from zero (the current one at
    /// the next pass that finds memory over the limit).
    pub fn reset_stats(&mut self) {
        self.over_limit_total = Duration::ZERO;
        self.over_limit_since = None;
    }
}

/// What an eviction pass achieved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Memory is under the limit (or eviction may not run now).
    Ok,
    /// Still over the limit; the background task goes on evicting.
    Running,
    /// Over the limit and nothing can be evicted.
    Fail,
}

/// The time one pass may spend evicting: up to 500 µs growing linearly
/// with the tenacity up to 10, then by 15% a step (about two minutes at
/// 99); unbounded at 100.
fn pass_time_limit(tenacity: u32) -> Option<Duration> {
    match tenacity {
        0..=10 => Some(Duration::from_micros(50 * tenacity as u64)),
        11..=99 => Some(Duration::from_micros((500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64)),
        _ => None,
    }
}

/// The check before a command: evicts if memory is over the limit and
/// returns the OOM error when the command is `denyoom` (for EXEC, when
/// any queued command is) and memory could not be brought back.
pub fn before_command(st: &mut ServerState, command_flags: u32) -> Option<&'static str> {
    if st.config.maxmemory == 0 {
        return None;
    }
    let out_of_memory = perform_evictions(st) == Outcome::Fail;
    st.evict.pre_command_oom = out_of_memory;
    (out_of_memory && command_flags & flags::DENYOOM != 0).then_some(OOM_ERROR)
}

/// For commands a script calls: the OOM error when memory was full as the
/// script started and the command is `denyoom`. (The caller applies the
/// script's own exemptions: `allow-oom`, or a write already made.)
pub fn oom_refusal(st: &ServerState, command_flags: u32) -> Option<&'static str> {
    (st.config.maxmemory != 0 && st.evict.pre_command_oom && command_flags & flags::DENYOOM != 0).then_some(OOM_ERROR)
}

/// CONFIG SET maxmemory: warns when the new limit is already exceeded and
/// starts evicting down to it in the background, between requests.
pub fn maxmemory_changed(st: &mut ServerState) {
    if st.config.maxmemory == 0 {
        return;
    }
    let used = used_memory().saturating_sub(not_counted_memory(st));
    if (st.config.maxmemory as usize) < used {
        log_warning!(
            "WARNING: the new maxmemory value set via CONFIG SET ({}) is smaller than the current memory usage ({used}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.",
            st.config.maxmemory
        );
    }
    start_background(st);
}

fn start_background(st: &mut ServerState) {
    if !st.evict.running {
        st.evict.running = true;
        st.evict.wake.notify_one();
    }
}

/// The background eviction task: once started, it runs passes with a
/// yield to the event loop between them until memory is under the limit
/// or nothing is left to evict.
pub async fn background(state: Rc<RefCell<ServerState>>) {
    let wake = state.borrow().evict.wake.clone();
    loop {
        wake.notified().await;
        loop {
            let outcome = {
                let mut st = state.borrow_mut();
                let outcome = perform_evictions(&mut st);
                if outcome != Outcome::Running {
                    st.evict.running = false;
                }
                // Parked clients waiting on evicted keys hear of it now.
                if st.blocking.has_ready() {
                    crate::blocking::serve_ready(&mut st);
                }
                outcome
            };
            if outcome != Outcome::Running {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Cron duty: keeps the peak memory figure current.
pub fn cron(_st: &mut ServerState) {
    peak_memory();
}

/// One eviction pass, as Valkey's performEvictions: evicts until the
/// memory to free is freed, nothing is evictable, or the time budget is
/// spent (then the background task continues).
pub fn perform_evictions(st: &mut ServerState) -> Outcome {
    // Nothing is evicted from a dataset being loaded, nor while clients
    // are paused (Valkey pauses eviction with either kind of pause, so the
    // dataset holds still, e.g. for a failover).
    if st.persistence.loading.is_some() || st.pause.is_active() {
        return Outcome::Ok;
    }
    let Some(to_free) = memory_to_free(&st.config, not_counted_memory(st)) else {
        return record_outcome(st, Outcome::Ok);
    };
    if st.config.maxmemory_policy == MaxmemoryPolicy::NoEviction {
        return record_outcome(st, Outcome::Fail);
    }
    let time_limit = pass_time_limit(st.config.maxmemory_eviction_tenacity);
    let started = Instant::now();
    let out_of_time = || time_limit.is_some_and(|limit| started.elapsed() > limit);
    let lazy = st.config.lazyfree_lazy_eviction;
    let mut freed = 0i64;
    let mut evicted = 0u64;
    let mut exhausted = false;
    while freed < to_free as i64 {
        let Some((db, key)) = pick_victim(st) else {
            exhausted = true;
            break;
        };
        freed += evict_key(st, db, &key);
        evicted += 1;
        if evicted.is_multiple_of(16) {
            // Memory freed on the lazyfree thread does not show in `freed`:
            // look at the real figure now and then.
            if lazy && memory_to_free(&st.config, not_counted_memory(st)).is_none() {
                break;
            }
            if out_of_time() {
                start_background(st);
                break;
            }
        }
    }
    let outcome = if !exhausted {
        if st.evict.running {
            Outcome::Running
        } else {
            Outcome::Ok
        }
    } else if wait_for_lazyfree(st, &out_of_time) {
        Outcome::Ok
    } else {
        Outcome::Fail
    };
    record_outcome(st, outcome)
}

/// When no key is left to evict, values may still be being freed on the
/// lazyfree thread: wait for them briefly, within the pass's budget.
/// Returns whether memory got back under the limit.
fn wait_for_lazyfree(st: &ServerState, out_of_time: &impl Fn() -> bool) -> bool {
    let nap =
        pass_time_limit(st.config.maxmemory_eviction_tenacity).unwrap_or(Duration::MAX).min(Duration::from_millis(1));
    while crate::lazyfree::pending_objects() > 0 && !out_of_time() {
        if memory_to_free(&st.config, not_counted_memory(st)).is_none() {
            return true;
        }
        std::thread::sleep(nap);
    }
    false
}

/// Tracks the time spent over the limit (INFO stats) and returns `outcome`.
fn record_outcome(st: &mut ServerState, outcome: Outcome) -> Outcome {
    let e = &mut st.evict;
    match outcome {
        Outcome::Ok => {
            if let Some(since) = e.over_limit_since.take() {
                e.over_limit_total += since.elapsed();
            }
        }
        _ => {
            e.over_limit_since.get_or_insert_with(Instant::now);
        }
    }
    outcome
}

/// Chooses the next key to evict by the policy: (database, key).
fn pick_victim(st: &mut ServerState) -> Option<(usize, Vec<u8>)> {
    let policy = st.config.maxmemory_policy;
    let volatile_only = !policy.all_keys();
    match policy {
        MaxmemoryPolicy::NoEviction => None,
        MaxmemoryPolicy::AllKeysRandom | MaxmemoryPolicy::VolatileRandom => {
            let ServerState { dbs, rng, evict, .. } = st;
            for _ in 0..dbs.len() {
                evict.next_db = evict.next_db.wrapping_add(1);
                let db = evict.next_db % dbs.len();
                if let Some(key) = dbs[db].random_key_of(volatile_only, rng) {
                    return Some((db, key.to_vec()));
                }
            }
            None
        }
        _ => pick_from_pool(st, volatile_only),
    }
}

/// The pool policies: refill the pool from every database, then take the
/// best candidate that still exists (a candidate may have been deleted,
/// or lost its TTL, since it was sampled).
fn pick_from_pool(st: &mut ServerState, volatile_only: bool) -> Option<(usize, Vec<u8>)> {
    let now_s = (crate::server::unix_ms() / 1000) as u32;
    loop {
        let ServerState { dbs, rng, evict, config, .. } = &mut *st;
        let mut candidates_exist = false;
        for (index, db) in dbs.iter().enumerate() {
            let size = if volatile_only { db.volatile_len() } else { db.len() };
            if size == 0 {
                continue;
            }
            candidates_exist = true;
            db.sample(volatile_only, config.maxmemory_samples, rng, |key, entry| {
                let score = score(config, entry, now_s);
                offer(&mut evict.pool, index, key, score);
            });
        }
        if !candidates_exist {
            return None;
        }
        for slot in evict.pool.iter_mut().rev() {
            if !slot.in_use {
                continue;
            }
            slot.in_use = false;
            let exists =
                dbs[slot.db].peek(&slot.key).is_some_and(|entry| !volatile_only || entry.expire_at != NO_EXPIRE);
            if exists {
                return Some((slot.db, slot.key.clone()));
            }
        }
    }
}

/// How good a candidate a key is under the pool policies: higher is
/// evicted first.
fn score(config: &Config, entry: &Entry, now_s: u32) -> u64 {
    match config.maxmemory_policy {
        MaxmemoryPolicy::AllKeysLfu | MaxmemoryPolicy::VolatileLfu => {
            255 - lfu_counter(entry, now_s, config.lfu_decay_time) as u64
        }
        MaxmemoryPolicy::VolatileTtl => u64::MAX - entry.expire_at.max(0) as u64,
        _ => now_s.saturating_sub(entry.last_access) as u64,
    }
}

/// Offers a sampled key to the pool, which stays sorted by ascending
/// score: it goes in if there is a free slot or it beats the worst
/// candidate, which then drops out.
fn offer(pool: &mut [Candidate], db: usize, key: &[u8], score: u64) {
    let last = pool.len() - 1;
    let mut k = 0;
    while k < pool.len() && pool[k].in_use && pool[k].score < score {
        k += 1;
    }
    if k == 0 && pool[last].in_use {
        // Worse than every candidate, and no room.
        return;
    }
    if k < pool.len() && !pool[k].in_use {
        // A free slot right where it belongs.
    } else if !pool[last].in_use {
        // Room at the top: shift the better ones up by one.
        pool[k..].rotate_right(1);
    } else {
        // Full: drop the worst and shift the lesser ones down by one.
        k -= 1;
        pool[..=k].rotate_left(1);
    }
    let slot = &mut pool[k];
    slot.in_use = true;
    slot.score = score;
    slot.db = db;
    slot.key.clear();
    slot.key.extend_from_slice(key);
}

/// Evicts one key as Valkey does: deleted (its value freed on the lazyfree
/// thread under `lazyfree-lazy-eviction`), counted, WATCHes touched,
/// parked readers signalled, the `evicted` event announced, and the
/// deletion journalled as its own unit. Returns the bytes the deletion
/// freed on this thread.
fn evict_key(st: &mut ServerState, db: usize, key: &[u8]) -> i64 {
    let lazy = st.config.lazyfree_lazy_eviction;
    let before = used_memory() as i64;
    let Some(entry) = st.dbs[db].remove(key) else { return 0 };
    crate::lazyfree::free(entry.value, lazy);
    let freed = before - used_memory() as i64;
    st.stats.evicted_keys += 1;
    crate::watch::touch(st, db, key);
    if st.blocking.has_waiters() {
        st.blocking.signal(key);
    }
    notify::keyspace_event(st, notify::EVICTED, "evicted", key, db);
    crate::tracking::invalidate_key(st, db, key);
    let command: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
    st.effects.record(db, &[command, key]);
    let unit = st.effects.finish_unit();
    if !unit.is_empty() {
        crate::aof::feed(st, unit);
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn pool() -> Vec<Candidate> {
        (0..POOL_SIZE).map(|_| Candidate::default()).collect()
    }

    fn scores(pool: &[Candidate]) -> Vec<u64> {
        pool.iter().filter(|c| c.in_use).map(|c| c.score).collect()
    }

    #[test]
    fn the_pool_keeps_the_best_candidates_in_order() {
        let mut p = pool();
        for s in [5u64, 1, 9, 3] {
            offer(&mut p, 0, format!("k{s}").as_bytes(), s);
        }
        assert_eq!(scores(&p), vec![1, 3, 5, 9]);
        for s in 10..30u64 {
            offer(&mut p, 0, b"x", s);
        }
        // Full: only the 16 best remain, ascending.
        assert_eq!(scores(&p), (14..30).collect::<Vec<_>>());
        // A worse candidate than all is not taken.
        offer(&mut p, 0, b"low", 2);
        assert_eq!(scores(&p), (14..30).collect::<Vec<_>>());
        // A middling one pushes out the worst.
        offer(&mut p, 0, b"mid", 20);
        assert_eq!(p.iter().filter(|c| c.in_use).count(), POOL_SIZE);
        assert_eq!(scores(&p)[0], 15);
        assert!(p.iter().any(|c| c.key == b"mid"));
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        let mut counter = LFU_INIT_VAL;
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            counter = lfu_log_increment(counter, 10, rng.gen());
        }
        // With the default factor, a thousand hits reach about 18.
        assert!((10..40).contains(&counter), "counter {counter}");
        assert_eq!(lfu_log_increment(255, 10, 0.0), 255);
        assert_eq!(lfu_log_increment(0, 10, 0.99), 1);
        let mut entry = Entry::new(Value::Int(1), 0);
        entry.lfu_counter = 10;
        assert_eq!(lfu_counter(&entry, 59, 1), 10);
        assert_eq!(lfu_counter(&entry, 3 * 60, 1), 7);
        assert_eq!(lfu_counter(&entry, 3 * 60, 2), 9);
        assert_eq!(lfu_counter(&entry, 3 * 60, 0), 10);
        assert_eq!(lfu_counter(&entry, 100 * 60, 1), 0);
    }

    #[test]
    fn the_lfu_clock_wraps() {
        assert_eq!(lfu_elapsed(65530, 3 * 60), 8);
    }

    #[test]
    fn tenacity_sets_the_time_budget() {
        assert_eq!(pass_time_limit(0), Some(Duration::ZERO));
        assert_eq!(pass_time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(pass_time_limit(11), Some(Duration::from_micros(575)));
        assert!(pass_time_limit(99).unwrap() > Duration::from_secs(60));
        assert_eq!(pass_time_limit(100), None);
    }

    #[test]
    fn this_threads_count_follows_allocations() {
        // (A test thread may have freed more than it allocated, which
        // used_memory would show as 0: look at the thread's own count.)
        let before = thread_net();
        let block = vec![1u8; 1 << 20];
        let during = thread_net();
        assert!(during >= before + (1 << 20), "{before} -> {during}");
        drop(block);
        assert!(thread_net() <= during - (1 << 20));
    }
}
