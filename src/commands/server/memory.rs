//! Memory accounting (INFO memory) and the MEMORY command.
//!
//! ferrokey runs on jemalloc, as Valkey does. "Used memory" is what the
//! program holds, counted from jemalloc's exact per-thread totals (see
//! `evict.rs`; it is also what `maxmemory` is compared with), as Valkey
//! counts its own allocations; the allocator_* fields are jemalloc's
//! global statistics, resident memory is the process RSS from /proc, and
//! the per-key and per-table figures are estimates from the sizes of the
//! structures that hold them.

use std::cell::Cell;
use std::fmt::Write as _;

use crate::command::{errors, CmdResult, Ctx};
use crate::db::Db;
use crate::server::ServerState;

thread_local! {
    /// The memory in use once the server had started, when recorded.
    static STARTUP: Cell<usize> = const { Cell::new(0) };
}

/// Remembers the current allocation as the server's start-up footprint
/// (INFO used_memory_startup); called once the server is initialised.
pub fn record_startup_memory() {
    STARTUP.with(|s| s.set(crate::evict::used_memory()));
}

/// What the allocator reports.
#[derive(Clone, Copy, Default)]
pub(super) struct AllocatorStats {
    /// Bytes handed out to the program.
    pub allocated: usize,
    /// Bytes the allocator holds from the system (in use or free inside it).
    pub active: usize,
}

fn allocator_stats() -> AllocatorStats {
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0);
    let active = tikv_jemalloc_ctl::stats::active::read().unwrap_or(allocated);
    AllocatorStats { allocated, active }
}

/// The process's resident set size, from /proc/self/statm.
pub(super) fn process_rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * page_size()
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

pub(super) fn total_system_memory() -> usize {
    // SAFETY: sysconf only reads system constants.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if pages > 0 {
        pages as usize * page_size()
    } else {
        0
    }
}

/// Every memory figure INFO memory and MEMORY STATS report, measured once.
pub(super) struct MemoryReport {
    pub used: usize,
    pub rss: usize,
    pub peak: usize,
    pub startup: usize,
    pub allocator: AllocatorStats,
    pub clients_normal: usize,
    /// Per non-empty database: (index, main table bytes, expiry index bytes).
    pub dbs: Vec<(usize, usize, usize)>,
    pub overhead: usize,
    pub dataset: usize,
    pub total_keys: usize,
}

impl MemoryReport {
    pub fn measure(st: &ServerState) -> MemoryReport {
        let allocator = allocator_stats();
        let used = crate::evict::used_memory();
        let peak = crate::evict::peak_memory();
        let startup = STARTUP.with(Cell::get);
        let clients_normal: usize =
            st.clients.by_id.values().map(|c| c.query_buf_len.get() + c.output_buf_len.get()).sum();
        let mut dbs = Vec::new();
        let mut total_keys = 0;
        for (index, db) in st.dbs.iter().enumerate() {
            if db.is_empty() {
                continue;
            }
            total_keys += db.len();
            let (main, expires) = table_overhead(db);
            dbs.push((index, main, expires));
        }
        let overhead = startup + clients_normal + dbs.iter().map(|d| d.1 + d.2).sum::<usize>();
        MemoryReport {
            used,
            rss: process_rss(),
            peak,
            startup,
            allocator,
            clients_normal,
            dbs,
            overhead,
            dataset: used.saturating_sub(overhead),
            total_keys,
        }
    }

    pub fn peak_perc(&self) -> f64 {
        if self.peak == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.peak as f64
        }
    }

    pub fn dataset_perc(&self) -> f64 {
        let net = if self.used > self.startup { self.used - self.startup } else { 1 };
        self.dataset as f64 * 100.0 / net as f64
    }

    /// RSS over allocated memory (mem_fragmentation_ratio).
    pub fn total_frag(&self) -> f64 {
        ratio(self.rss, self.used)
    }

    pub fn total_frag_bytes(&self) -> i64 {
        self.rss as i64 - self.used as i64
    }

    /// Memory the allocator holds but has not handed out.
    pub fn allocator_frag(&self) -> f64 {
        ratio(self.allocator.active, self.allocator.allocated)
    }

    pub fn allocator_frag_bytes(&self) -> usize {
        self.allocator.active.saturating_sub(self.allocator.allocated)
    }

    /// Resident memory beyond what the allocator holds (stacks, code, ...).
    pub fn rss_extra(&self) -> f64 {
        ratio(self.rss, self.allocator.active)
    }

    pub fn rss_extra_bytes(&self) -> i64 {
        self.rss as i64 - self.allocator.active as i64
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Bytes the key tables of a database take beyond the keys and values:
/// (main table, expiry index).
fn table_overhead(db: &Db) -> (usize, usize) {
    let slots = db.len() * KEY_SLOT_BYTES;
    let volatile = db.volatile_len() * (std::mem::size_of::<usize>() * 2 + 1);
    (slots, volatile)
}

/// One key's slot in the table: the stored key (16 bytes, holding keys of
/// up to 12 bytes in place), the entry, and the hash index's position and
/// control byte.
const KEY_SLOT_BYTES: usize = 16 + std::mem::size_of::<crate::db::Entry>() + std::mem::size_of::<u32>() + 1;

/// Keys up to this length live inside their slot.
const INLINE_KEY: usize = 12;

/// The heap bytes a key takes beyond its slot.
fn key_heap_bytes(len: usize) -> usize {
    if len <= INLINE_KEY {
        0
    } else {
        jemalloc_size_class(len)
    }
}

/// What jemalloc really hands out for an allocation of `n` bytes: 8, then
/// multiples of 16 up to 128, then four size classes per doubling.
fn jemalloc_size_class(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            let spacing = n.next_power_of_two() / 8;
            n.div_ceil(spacing) * spacing
        }
    }
}

/// Valkey's human-readable sizes: "927.00K", "11.97M", "100B".
pub(super) fn bytes_to_human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [(1 << 10, "K"), (1 << 20, "M"), (1 << 30, "G"), (1 << 40, "T"), (1 << 50, "P")];
    if n < 1024 {
        return format!("{n}B");
    }
    for (i, (size, unit)) in UNITS.iter().enumerate() {
        let next = UNITS.get(i + 1).map(|u| u.0).unwrap_or(1 << 60);
        if n < next {
            return format!("{:.2}{unit}", n as f64 / *size as f64);
        }
    }
    format!("{n}B")
}

/// MEMORY USAGE key [SAMPLES count]
pub(super) fn memory_usage(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"samples") && i + 1 < args.len() {
            let samples = super::parse_i64(args[i + 1])?;
            if samples < 0 {
                return Err(errors::SYNTAX.into());
            }
            i += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    // Like Valkey, the key is looked at as it is: no expiry, no access stamp.
    let (db, out) = ctx.db_out();
    match db.peek(args[2]) {
        None => out.null(),
        Some(entry) => {
            let usage = key_heap_bytes(args[2].len()) + KEY_SLOT_BYTES + entry.value.heap_size();
            out.int(usage as i64);
        }
    }
    Ok(())
}

/// MEMORY STATS
pub(super) fn memory_stats(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let m = MemoryReport::measure(ctx.srv);
    let out = &mut *ctx.out;
    out.map(31 + m.dbs.len());
    let int = |out: &mut crate::reply::Reply, name: &str, v: i64| {
        out.bulk_str(name);
        out.int(v);
    };
    let double = |out: &mut crate::reply::Reply, name: &str, v: f64| {
        out.bulk_str(name);
        out.double_text(format_double(v).as_bytes());
    };
    int(out, "peak.allocated", m.peak as i64);
    int(out, "total.allocated", m.used as i64);
    int(out, "startup.allocated", m.startup as i64);
    int(out, "replication.backlog", 0);
    int(out, "clients.slaves", 0);
    int(out, "clients.normal", m.clients_normal as i64);
    int(out, "cluster.links", 0);
    int(out, "aof.buffer", 0);
    int(out, "lua.caches", crate::commands::scripting::eval_memory().scripts_bytes as i64);
    int(out, "functions.caches", 0);
    for &(index, main, expires) in &m.dbs {
        out.bulk_str(&format!("db.{index}"));
        out.map(2);
        int(out, "overhead.hashtable.main", main as i64);
        int(out, "overhead.hashtable.expires", expires as i64);
    }
    int(out, "overhead.db.hashtable.lut", 0);
    int(out, "overhead.db.hashtable.rehashing", 0);
    int(out, "overhead.total", m.overhead as i64);
    int(out, "db.dict.rehashing.count", 0);
    int(out, "keys.count", m.total_keys as i64);
    int(out, "keys.bytes-per-key", m.dataset.checked_div(m.total_keys).unwrap_or(0) as i64);
    int(out, "dataset.bytes", m.dataset as i64);
    double(out, "dataset.percentage", m.dataset_perc());
    double(out, "peak.percentage", m.peak_perc());
    int(out, "allocator.allocated", m.allocator.allocated as i64);
    int(out, "allocator.active", m.allocator.active as i64);
    int(out, "allocator.resident", m.allocator.active as i64);
    int(out, "allocator.muzzy", 0);
    double(out, "allocator-fragmentation.ratio", m.allocator_frag());
    int(out, "allocator-fragmentation.bytes", m.allocator_frag_bytes() as i64);
    double(out, "allocator-rss.ratio", 1.0);
    int(out, "allocator-rss.bytes", 0);
    double(out, "rss-overhead.ratio", m.rss_extra());
    int(out, "rss-overhead.bytes", m.rss_extra_bytes());
    double(out, "fragmentation", m.total_frag());
    int(out, "fragmentation.bytes", m.total_frag_bytes());
    Ok(())
}

/// Formats a double as Valkey's replies do (%.17g, shortest round trip).
fn format_double(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e17 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// MEMORY DOCTOR
pub(super) fn memory_doctor(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let m = MemoryReport::measure(ctx.srv);
    let clients = ctx.srv.clients.len().max(1);
    let mut issues: Vec<String> = Vec::new();
    let empty = m.used < 5 * 1024 * 1024;
    if !empty {
        if m.peak as f64 / m.used as f64 > 1.5 {
            issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Valkey instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Valkey instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n".into());
        }
        if m.total_frag() > 1.4 && m.total_frag_bytes() > 10 << 20 {
            issues.push(format!(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Valkey process is much larger than the sum of the logical allocations Valkey performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{ALLOCATOR}\".\n\n"));
        }
        if m.rss_extra() > 1.1 && m.rss_extra_bytes() > 10 << 20 {
            issues.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Valkey process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n".into());
        }
        if m.clients_normal / clients > 1024 * 200 {
            issues.push(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Valkey instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n".into());
        }
    }
    let report = if empty {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".to_string()
    } else if issues.is_empty() {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
            .to_string()
    } else {
        let mut s = String::from("Sam, I detected a few issues in this Valkey instance memory implants:\n\n");
        issues.iter().for_each(|i| s.push_str(i));
        s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
        s
    };
    ctx.out.verbatim(report.as_bytes());
    Ok(())
}

/// The allocator INFO reports as mem_allocator.
pub(super) const ALLOCATOR: &str = "jemalloc-5.3.0";

/// MEMORY MALLOC-STATS: jemalloc's own statistics report.
pub(super) fn memory_malloc_stats(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let mut report: Vec<u8> = Vec::new();
    // SAFETY: the callback gets back the pointer to `report`, alive for the
    // whole call, and NUL-terminated text; no options string.
    unsafe { jemalloc_stats_print(Some(append_report), (&mut report as *mut Vec<u8>).cast(), std::ptr::null()) };
    ctx.out.verbatim(&report);
    Ok(())
}

/// Receives a piece of jemalloc's statistics report.
unsafe extern "C" fn append_report(report: *mut libc::c_void, text: *const libc::c_char) {
    // SAFETY: `report` is the Vec passed to jemalloc_stats_print, `text` a C string.
    unsafe { (*report.cast::<Vec<u8>>()).extend_from_slice(std::ffi::CStr::from_ptr(text).to_bytes()) };
}

// jemalloc's own entry points, under the names the tikv-jemalloc crates
// link them with.
extern "C" {
    #[link_name = "_rjem_malloc_stats_print"]
    fn jemalloc_stats_print(
        write: Option<unsafe extern "C" fn(*mut libc::c_void, *const libc::c_char)>,
        opaque: *mut libc::c_void,
        options: *const libc::c_char,
    );
    #[link_name = "_rjem_mallctl"]
    fn jemalloc_mallctl(
        name: *const libc::c_char,
        oldp: *mut libc::c_void,
        oldlenp: *mut usize,
        newp: *mut libc::c_void,
        newlen: usize,
    ) -> libc::c_int;
}

/// MEMORY PURGE: returns the pages jemalloc keeps unused (dirty) to the
/// system, in every arena.
pub(super) fn memory_purge(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let purged = tikv_jemalloc_ctl::arenas::narenas::read().is_ok_and(|narenas| {
        // Arena index `narenas` names all arenas at once.
        let name = format!("arena.{narenas}.purge\0");
        // SAFETY: a NUL-terminated control name that takes no arguments.
        unsafe {
            jemalloc_mallctl(name.as_ptr().cast(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
                == 0
        }
    });
    if !purged {
        return Err("ERR Error purging dirty pages".into());
    }
    ctx.out.ok();
    Ok(())
}

pub(super) fn memory_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}

/// The Memory section of INFO.
pub(super) fn info_section(st: &ServerState, s: &mut String) {
    let m = MemoryReport::measure(st);
    let maxmemory = st.config.maxmemory;
    let policy = super::config_value(st, "maxmemory-policy");
    let total_system = total_system_memory();
    let eval = crate::commands::scripting::eval_memory();
    let _ = write!(
        s,
        "# Memory\r\n\
         used_memory:{used}\r\n\
         used_memory_human:{used_h}\r\n\
         used_memory_rss:{rss}\r\n\
         used_memory_rss_human:{rss_h}\r\n\
         used_memory_peak:{peak}\r\n\
         used_memory_peak_human:{peak_h}\r\n\
         used_memory_peak_perc:{peak_perc:.2}%\r\n\
         used_memory_overhead:{overhead}\r\n\
         used_memory_startup:{startup}\r\n\
         used_memory_dataset:{dataset}\r\n\
         used_memory_dataset_perc:{dataset_perc:.2}%\r\n\
         allocator_allocated:{alloc}\r\n\
         allocator_active:{active}\r\n\
         allocator_resident:{active}\r\n\
         allocator_muzzy:0\r\n\
         total_system_memory:{total_system}\r\n\
         total_system_memory_human:{total_system_h}\r\n\
         used_memory_lua:{eval_vm}\r\n\
         used_memory_vm_eval:{eval_vm}\r\n\
         used_memory_lua_human:{eval_vm_h}\r\n\
         used_memory_scripts_eval:{eval_scripts}\r\n\
         number_of_cached_scripts:{cached_scripts}\r\n\
         number_of_functions:0\r\n\
         number_of_libraries:0\r\n\
         used_memory_vm_functions:0\r\n\
         used_memory_vm_total:{eval_vm}\r\n\
         used_memory_vm_total_human:{eval_vm_h}\r\n\
         used_memory_functions:0\r\n\
         used_memory_scripts:{eval_scripts}\r\n\
         used_memory_scripts_human:{eval_scripts_h}\r\n\
         maxmemory:{maxmemory}\r\n\
         maxmemory_human:{maxmemory_h}\r\n\
         maxmemory_policy:{policy}\r\n\
         allocator_frag_ratio:{alloc_frag:.2}\r\n\
         allocator_frag_bytes:{alloc_frag_bytes}\r\n\
         allocator_rss_ratio:1.00\r\n\
         allocator_rss_bytes:0\r\n\
         rss_overhead_ratio:{rss_extra:.2}\r\n\
         rss_overhead_bytes:{rss_extra_bytes}\r\n\
         mem_fragmentation_ratio:{frag:.2}\r\n\
         mem_fragmentation_bytes:{frag_bytes}\r\n\
         mem_not_counted_for_evict:{not_counted}\r\n\
         mem_replication_backlog:0\r\n\
         mem_total_replication_buffers:0\r\n\
         mem_clients_slaves:0\r\n\
         mem_clients_normal:{clients}\r\n\
         mem_cluster_links:0\r\n\
         mem_aof_buffer:0\r\n\
         mem_allocator:{ALLOCATOR}\r\n\
         mem_overhead_db_hashtable_rehashing:0\r\n\
         active_defrag_running:0\r\n\
         lazyfree_pending_objects:{lazyfree_pending}\r\n\
         lazyfreed_objects:{lazyfreed}\r\n",
        used = m.used,
        used_h = bytes_to_human(m.used as u64),
        rss = m.rss,
        rss_h = bytes_to_human(m.rss as u64),
        peak = m.peak,
        peak_h = bytes_to_human(m.peak as u64),
        peak_perc = m.peak_perc(),
        overhead = m.overhead,
        startup = m.startup,
        dataset = m.dataset,
        dataset_perc = m.dataset_perc(),
        alloc = m.allocator.allocated,
        active = m.allocator.active,
        total_system_h = bytes_to_human(total_system as u64),
        maxmemory_h = bytes_to_human(maxmemory),
        alloc_frag = m.allocator_frag(),
        alloc_frag_bytes = m.allocator_frag_bytes(),
        rss_extra = m.rss_extra(),
        rss_extra_bytes = m.rss_extra_bytes(),
        frag = m.total_frag(),
        frag_bytes = m.total_frag_bytes(),
        clients = m.clients_normal,
        not_counted = crate::evict::not_counted_memory(st),
        lazyfree_pending = crate::lazyfree::pending_objects(),
        lazyfreed = crate::lazyfree::freed_objects(),
        eval_vm = eval.vm_bytes,
        eval_vm_h = bytes_to_human(eval.vm_bytes),
        eval_scripts = eval.scripts_bytes,
        eval_scripts_h = bytes_to_human(eval.scripts_bytes),
        cached_scripts = eval.cached_scripts,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_match_valkey() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(949248), "927.00K");
        assert_eq!(bytes_to_human(12550144), "11.97M");
        assert_eq!(bytes_to_human(25325268992), "23.59G");
    }

    #[test]
    fn sizes_round_to_jemalloc_classes() {
        assert_eq!(jemalloc_size_class(1), 8);
        assert_eq!(jemalloc_size_class(24), 32);
        assert_eq!(jemalloc_size_class(129), 160);
        assert_eq!(jemalloc_size_class(256), 256);
        assert_eq!(jemalloc_size_class(257), 320);
        assert_eq!(key_heap_bytes(12), 0);
        assert_eq!(key_heap_bytes(13), 16);
    }
}
