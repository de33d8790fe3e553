//! INFO: the server's state as `# Section` blocks of `field:value` lines,
//! with Valkey's sections, field names and field order, so that tools
//! written for Valkey parse it unchanged.

use std::fmt::Write as _;

use crate::command::{table, CmdResult, Ctx};
use crate::server::{unix_us, ServerState, FERROKEY_VERSION, REDIS_COMPAT_VERSION, VALKEY_VERSION};

use super::{config_value, memory, stats};

/// Sections INFO prints with no argument or "default".
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Which sections a request asked for.
struct Selection {
    /// Lower-cased names asked for by name (or through "default").
    names: Vec<String>,
    all: bool,
}

impl Selection {
    fn from_args(args: &[&[u8]]) -> Selection {
        let mut sel = Selection { names: Vec::new(), all: false };
        if args.is_empty() {
            sel.names = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
            return sel;
        }
        for arg in args {
            let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
            match name.as_str() {
                "default" => sel.names.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
                // "everything" adds module-provided sections to "all"; there are none.
                "all" | "everything" => sel.all = true,
                _ => sel.names.push(name),
            }
        }
        sel
    }

    fn wants(&self, section: &str) -> bool {
        self.all || self.names.iter().any(|n| n == section)
    }
}

/// INFO [section ...]
pub(super) fn info(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let text = render(ctx.srv, &args[1..]);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// Builds the INFO text for the sections named in `args`.
pub(super) fn render(st: &ServerState, args: &[&[u8]]) -> String {
    let sel = Selection::from_args(args);
    let mut out = String::with_capacity(4096);
    type Section = fn(&ServerState, &mut String);
    let sections: &[(&[&str], Section)] = &[
        (&["server"], server_section),
        (&["clients"], clients_section),
        (&["memory"], memory::info_section),
        (&["persistence"], persistence_section),
        (&["stats"], stats_section),
        (&["replication"], replication_section),
        (&["cpu"], cpu_section),
        (&["module_list", "modules"], modules_section),
        (&["commandstats"], commandstats_section),
        (&["errorstats"], errorstats_section),
        (&["latencystats"], latencystats_section),
        (&["cluster"], cluster_section),
        (&["keyspace"], keyspace_section),
    ];
    for (names, write_section) in sections {
        if names.iter().any(|n| sel.wants(n)) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            write_section(st, &mut out);
        }
    }
    out
}

fn server_section(st: &ServerState, s: &mut String) {
    let now_us = unix_us();
    let uptime = (now_us / 1_000_000 - st.start_unix_ms / 1000).max(0);
    let (sysname, release, machine) = uname();
    let config_file = st.config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let _ = write!(
        s,
        "# Server\r\n\
         redis_version:{REDIS_COMPAT_VERSION}\r\n\
         server_name:valkey\r\n\
         valkey_version:{VALKEY_VERSION}\r\n\
         ferrokey_version:{FERROKEY_VERSION}\r\n\
         redis_git_sha1:00000000\r\n\
         redis_git_dirty:0\r\n\
         redis_build_id:{build_id}\r\n\
         server_mode:standalone\r\n\
         os:{sysname} {release} {machine}\r\n\
         arch_bits:{bits}\r\n\
         monotonic_clock:POSIX clock_gettime\r\n\
         multiplexing_api:epoll\r\n\
         gcc_version:0.0.0\r\n\
         process_id:{pid}\r\n\
         process_supervised:no\r\n\
         run_id:{run_id}\r\n\
         tcp_port:{port}\r\n\
         server_time_usec:{now_us}\r\n\
         uptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{days}\r\n\
         hz:{hz}\r\n\
         configured_hz:{hz}\r\n\
         lru_clock:{lru}\r\n\
         executable:{exe}\r\n\
         config_file:{config_file}\r\n\
         io_threads_active:0\r\n\
         availability_zone:{zone}\r\n",
        build_id = build_id(),
        bits = usize::BITS,
        pid = std::process::id(),
        run_id = st.run_id,
        port = st.tcp_port,
        days = uptime / 86400,
        hz = st.config.hz,
        lru = (now_us / 1_000_000) & LRU_CLOCK_MAX,
        exe = st.executable,
        zone = config_value(st, "availability-zone"),
    );
    for (i, bind) in st.config.bind.iter().enumerate() {
        if i == 0 {
            let _ = write!(s, "listener0:name=tcp");
        }
        let _ = write!(s, ",bind={bind}");
        if i + 1 == st.config.bind.len() {
            let _ = write!(s, ",port={}\r\n", st.tcp_port);
        }
    }
}

/// The LRU clock counts seconds in 24 bits, as keys' access stamps do.
pub(super) const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;

/// A stable identifier of this build: a hash of the version and target.
fn build_id() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = format!("{}/{}/{}", FERROKEY_VERSION, std::env::consts::ARCH, std::env::consts::OS);
    for b in seed.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn uname() -> (String, String, String) {
    // SAFETY: uname fills the zeroed struct we pass; its fields are
    // NUL-terminated C strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (std::env::consts::OS.to_string(), String::new(), std::env::consts::ARCH.to_string());
        }
        let field = |f: &[libc::c_char]| std::ffi::CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
        (field(&u.sysname), field(&u.release), field(&u.machine))
    }
}

fn clients_section(st: &ServerState, s: &mut String) {
    let max_in = st.clients.by_id.values().map(|c| c.query_buf_len.get()).max().unwrap_or(0);
    let max_out = st.clients.by_id.values().map(|c| c.output_buf_len.get()).max().unwrap_or(0);
    let pubsub_clients = st.pubsub.client_count();
    let watching_clients = st.watches.watching_clients();
    let tracking_clients = st.tracking.client_count();
    let watched_keys = st.watches.watched_keys();
    let _ = write!(
        s,
        "# Clients\r\n\
         connected_clients:{}\r\n\
         cluster_connections:0\r\n\
         maxclients:{}\r\n\
         client_recent_max_input_buffer:{max_in}\r\n\
         client_recent_max_output_buffer:{max_out}\r\n\
         blocked_clients:{}\r\n\
         tracking_clients:{tracking_clients}\r\n\
         pubsub_clients:{pubsub_clients}\r\n\
         watching_clients:{watching_clients}\r\n\
         clients_in_timeout_table:{}\r\n\
         total_watched_keys:{watched_keys}\r\n\
         total_blocking_keys:{}\r\n\
         total_blocking_keys_on_nokey:0\r\n",
        st.clients.len(),
        st.config.maxclients,
        // Clients held by CLIENT PAUSE count as blocked, as in Valkey.
        st.blocking.parked_count() + st.pause.postponed_count(),
        st.blocking.timed_count(),
        st.blocking.key_count(),
    );
}

fn persistence_section(st: &ServerState, s: &mut String) {
    let p = &st.persistence;
    let now = unix_us() / 1_000_000;
    let current_bgsave = p.child.map_or(-1, |c| now - c.started_unix);
    // What the running child (BGSAVE or AOF rewrite) reported.
    let child = &p.child_stats;
    let fork_perc =
        if child.keys_total > 0 { child.keys_processed as f64 * 100.0 / child.keys_total as f64 } else { 0.0 };
    let _ = write!(
        s,
        "# Persistence\r\n\
         loading:{loading}\r\n\
         async_loading:0\r\n\
         current_cow_peak:{cow_peak}\r\n\
         current_cow_size:{cow_size}\r\n\
         current_cow_size_age:{cow_age}\r\n\
         current_fork_perc:{fork_perc:.2}\r\n\
         current_save_keys_processed:{keys_processed}\r\n\
         current_save_keys_total:{keys_total}\r\n\
         rdb_changes_since_last_save:{dirty}\r\n\
         rdb_bgsave_in_progress:{in_progress}\r\n\
         rdb_last_save_time:{last_save}\r\n\
         rdb_last_bgsave_status:{status}\r\n\
         rdb_last_bgsave_time_sec:{last_bgsave}\r\n\
         rdb_current_bgsave_time_sec:{current_bgsave}\r\n\
         rdb_saves:{saves}\r\n\
         rdb_last_cow_size:{rdb_cow}\r\n\
         rdb_last_load_keys_expired:{keys_expired}\r\n\
         rdb_last_load_keys_loaded:{keys_loaded}\r\n",
        loading = p.loading.is_some() as u8,
        cow_peak = child.cow_peak,
        cow_size = child.cow_bytes,
        cow_age = child.cow_updated.map_or(0, |at| at.elapsed().as_secs()),
        keys_processed = child.keys_processed,
        keys_total = child.keys_total,
        rdb_cow = p.rdb_last_cow_size,
        dirty = st.dirty,
        in_progress = p.child.is_some() as u8,
        last_save = st.last_save_unix,
        status = if p.last_bgsave_ok { "ok" } else { "err" },
        last_bgsave = p.last_bgsave_seconds,
        saves = p.saves,
        keys_expired = p.last_load_keys_expired,
        keys_loaded = p.last_load_keys_loaded,
    );
    crate::aof::info_fields(st, s);
    s.push_str("module_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n");
    crate::aof::info_enabled_fields(st, s);
    if let Some(l) = &p.loading {
        // Progress by bytes read; the `used-mem` figure stands in when the
        // file's size is unknown, as Valkey does.
        let (perc, remaining) = if l.total_bytes > 0 {
            (l.loaded_bytes as f64 / l.total_bytes as f64 * 100.0, l.total_bytes.saturating_sub(l.loaded_bytes))
        } else if l.rdb_used_mem > 0 {
            let perc = (l.loaded_bytes as f64 / l.rdb_used_mem as f64 * 100.0).min(99.99);
            (perc, l.rdb_used_mem.saturating_sub(l.loaded_bytes).max(1))
        } else {
            (0.0, 1)
        };
        let elapsed = (now - l.start_unix).max(0) as u64;
        let eta = if elapsed == 0 { 1 } else { elapsed * remaining / (l.loaded_bytes + 1) };
        let _ = write!(
            s,
            "loading_start_time:{}\r\n\
             loading_total_bytes:{}\r\n\
             loading_rdb_used_mem:{}\r\n\
             loading_loaded_bytes:{}\r\n\
             loading_loaded_perc:{perc:.2}\r\n\
             loading_eta_seconds:{eta}\r\n",
            l.start_unix, l.total_bytes, l.rdb_used_mem, l.loaded_bytes,
        );
    }
}

fn stats_section(st: &ServerState, s: &mut String) {
    let (ops, input_kbps, output_kbps) = stats::with(|c| {
        c.rates.sample(st);
        c.rates.current()
    });
    let t = &st.stats;
    let (pubsub_channels, pubsub_patterns, pubsubshard_channels) =
        (st.pubsub.channel_count(), st.pubsub.pattern_count(), st.pubsub.shard_channel_count());
    let (eviction_exceeded_total, eviction_exceeded_current) = st.evict.exceeded_time_ms();
    let (tracking_keys, tracking_items, tracking_prefixes) =
        (st.tracking.key_count(), st.tracking.item_count(), st.tracking.prefix_count());
    let _ = write!(
        s,
        "# Stats\r\n\
         total_connections_received:{}\r\n\
         total_commands_processed:{}\r\n\
         instantaneous_ops_per_sec:{ops}\r\n\
         total_net_input_bytes:{}\r\n\
         total_net_output_bytes:{}\r\n\
         total_net_repl_input_bytes:0\r\n\
         total_net_repl_output_bytes:0\r\n\
         instantaneous_input_kbps:{input_kbps:.2}\r\n\
         instantaneous_output_kbps:{output_kbps:.2}\r\n\
         instantaneous_input_repl_kbps:0.00\r\n\
         instantaneous_output_repl_kbps:0.00\r\n\
         rejected_connections:{}\r\n\
         sync_full:0\r\n\
         sync_partial_ok:0\r\n\
         sync_partial_err:0\r\n\
         expired_keys:{}\r\n\
         expired_stale_perc:{:.2}\r\n\
         expired_time_cap_reached_count:{}\r\n\
         expire_cycle_cpu_milliseconds:{}\r\n\
         evicted_keys:{}\r\n\
         evicted_clients:0\r\n\
         evicted_scripts:{}\r\n\
         total_eviction_exceeded_time:{eviction_exceeded_total}\r\n\
         current_eviction_exceeded_time:{eviction_exceeded_current}\r\n\
         keyspace_hits:{}\r\n\
         keyspace_misses:{}\r\n\
         pubsub_channels:{pubsub_channels}\r\n\
         pubsub_patterns:{pubsub_patterns}\r\n\
         pubsubshard_channels:{pubsubshard_channels}\r\n\
         latest_fork_usec:{}\r\n\
         total_forks:{}\r\n\
         migrate_cached_sockets:0\r\n\
         slave_expires_tracked_keys:0\r\n\
         active_defrag_hits:0\r\n\
         active_defrag_misses:0\r\n\
         active_defrag_key_hits:0\r\n\
         active_defrag_key_misses:0\r\n\
         total_active_defrag_time:0\r\n\
         current_active_defrag_time:0\r\n\
         tracking_total_keys:{tracking_keys}\r\n\
         tracking_total_items:{tracking_items}\r\n\
         tracking_total_prefixes:{tracking_prefixes}\r\n\
         unexpected_error_replies:{}\r\n\
         total_error_replies:{}\r\n\
         dump_payload_sanitizations:0\r\n\
         total_reads_processed:{}\r\n\
         total_writes_processed:{}\r\n\
         io_threaded_reads_processed:0\r\n\
         io_threaded_writes_processed:0\r\n\
         io_threaded_freed_objects:0\r\n\
         io_threaded_poll_processed:0\r\n\
         io_threaded_total_prefetch_batches:0\r\n\
         io_threaded_total_prefetch_entries:0\r\n\
         client_query_buffer_limit_disconnections:{}\r\n\
         client_output_buffer_limit_disconnections:{}\r\n\
         reply_buffer_shrinks:0\r\n\
         reply_buffer_expands:0\r\n\
         eventloop_cycles:0\r\n\
         eventloop_duration_sum:0\r\n\
         eventloop_duration_cmd_sum:0\r\n\
         instantaneous_eventloop_cycles_per_sec:0\r\n\
         instantaneous_eventloop_duration_usec:0\r\n\
         acl_access_denied_auth:0\r\n\
         acl_access_denied_cmd:0\r\n\
         acl_access_denied_key:0\r\n\
         acl_access_denied_channel:0\r\n",
        t.total_connections_received,
        t.total_commands_processed,
        t.total_net_input_bytes,
        t.total_net_output_bytes,
        t.rejected_connections,
        t.expired_keys,
        t.expired_stale_perc * 100.0,
        t.expired_time_cap_reached_count,
        t.expire_cycle_cpu_milliseconds,
        t.evicted_keys,
        crate::commands::scripting::evicted_scripts(),
        t.keyspace_hits,
        t.keyspace_misses,
        st.persistence.latest_fork_usec,
        st.persistence.total_forks,
        t.unexpected_error_replies,
        t.total_error_replies,
        t.total_reads_processed,
        t.total_writes_processed,
        t.client_query_buffer_limit_disconnections,
        t.client_output_buffer_limit_disconnections,
    );
}

fn replication_section(st: &ServerState, s: &mut String) {
    let _ = write!(
        s,
        "# Replication\r\n\
         role:master\r\n\
         connected_slaves:0\r\n\
         replicas_waiting_psync:0\r\n\
         master_failover_state:no-failover\r\n\
         master_replid:{}\r\n\
         master_replid2:0000000000000000000000000000000000000000\r\n\
         master_repl_offset:0\r\n\
         second_repl_offset:-1\r\n\
         repl_backlog_active:0\r\n\
         repl_backlog_size:{}\r\n\
         repl_backlog_first_byte_offset:0\r\n\
         repl_backlog_histlen:0\r\n",
        crate::commands::replication::replication_id(st),
        config_value(st, "repl-backlog-size"),
    );
}

/// The replication ID: 40 hex digits fixed for the life of the process.
/// Without replicas nothing ever changes it, so it is derived from the
/// run ID rather than stored.
fn cpu_section(_st: &ServerState, s: &mut String) {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        ru
    };
    let tv = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    let me = usage(libc::RUSAGE_SELF);
    let children = usage(libc::RUSAGE_CHILDREN);
    let thread = usage(libc::RUSAGE_THREAD);
    let _ = write!(
        s,
        "# CPU\r\n\
         used_cpu_sys:{}\r\n\
         used_cpu_user:{}\r\n\
         used_cpu_sys_children:{}\r\n\
         used_cpu_user_children:{}\r\n\
         used_cpu_sys_main_thread:{}\r\n\
         used_cpu_user_main_thread:{}\r\n",
        tv(me.ru_stime),
        tv(me.ru_utime),
        tv(children.ru_stime),
        tv(children.ru_utime),
        tv(thread.ru_stime),
        tv(thread.ru_utime),
    );
}

fn modules_section(_st: &ServerState, s: &mut String) {
    s.push_str("# Modules\r\n");
}

/// Full command names in Valkey's table order, each container followed by
/// its subcommands.
pub(super) fn command_names() -> Vec<String> {
    let t = table();
    let mut names = Vec::with_capacity(t.order.len());
    for name in &t.order {
        let Some(spec) = t.commands.get(name) else { continue };
        names.push(spec.name.clone());
        for sub in super::command_cmd::subcommands_in_order(spec) {
            names.push(sub.name.clone());
        }
    }
    names
}

fn commandstats_section(_st: &ServerState, s: &mut String) {
    s.push_str("# Commandstats\r\n");
    stats::with(|c| {
        for name in command_names() {
            let Some(calls) = c.commands.get(name.as_str()) else { continue };
            let per_call = if calls.calls == 0 { 0.0 } else { calls.micros as f32 / calls.calls as f32 };
            let _ = write!(
                s,
                "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                info_safe(&name),
                calls.calls,
                calls.micros,
                per_call,
                calls.rejected,
                calls.failed
            );
        }
    });
}

fn errorstats_section(_st: &ServerState, s: &mut String) {
    s.push_str("# Errorstats\r\n");
    stats::with(|c| {
        for (code, count) in &c.errors {
            let _ = write!(s, "errorstat_{}:count={count}\r\n", info_safe(code));
        }
    });
}

fn latencystats_section(st: &ServerState, s: &mut String) {
    s.push_str("# Latencystats\r\n");
    stats::with(|c| {
        c.settings.ensure_loaded(st);
        if !c.settings.latency_tracking {
            return;
        }
        for name in command_names() {
            let Some(histogram) = c.commands.get(name.as_str()).and_then(|calls| calls.histogram.as_ref()) else {
                continue;
            };
            let _ = write!(s, "latency_percentiles_usec_{}:", info_safe(&name));
            for (i, &p) in c.settings.percentiles.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let micros = histogram.value_at_percentile(p) as f64 / 1000.0;
                let _ = write!(s, "p{}={micros:.3}", trim_double(p));
            }
            s.push_str("\r\n");
        }
    });
}

/// A percentile as Valkey names it: "50", "99", "99.9".
fn trim_double(p: f64) -> String {
    let text = format!("{p:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn cluster_section(_st: &ServerState, s: &mut String) {
    s.push_str("# Cluster\r\ncluster_enabled:0\r\n");
}

fn keyspace_section(st: &ServerState, s: &mut String) {
    s.push_str("# Keyspace\r\n");
    let now_ms = crate::server::unix_ms();
    for (i, db) in st.dbs.iter().enumerate() {
        if !db.is_empty() || db.volatile_len() > 0 {
            let _ =
                write!(s, "db{i}:keys={},expires={},avg_ttl={}\r\n", db.len(), db.volatile_len(), db.avg_ttl(now_ms));
        }
    }
}

/// Replaces the characters that would break INFO's line format.
fn info_safe(name: &str) -> String {
    name.chars().map(|c| if matches!(c, '#' | ':' | '\n' | '\r') { '_' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_expands_default_and_all() {
        let sel = Selection::from_args(&[]);
        assert!(sel.wants("server") && sel.wants("keyspace") && !sel.wants("commandstats"));
        let sel = Selection::from_args(&[b"DEFAULT", b"commandstats"]);
        assert!(sel.wants("errorstats") && sel.wants("commandstats"));
        let sel = Selection::from_args(&[b"everything"]);
        assert!(sel.wants("latencystats"));
        let sel = Selection::from_args(&[b"Server"]);
        assert!(sel.wants("server") && !sel.wants("clients"));
    }

    #[test]
    fn percentile_names_are_trimmed() {
        assert_eq!(trim_double(50.0), "50");
        assert_eq!(trim_double(99.9), "99.9");
        assert_eq!(trim_double(99.99), "99.99");
    }

    #[test]
    fn recorded_calls_and_errors_are_listed() {
        let st = ServerState::new(crate::config::Config::defaults());
        stats::with(|c| c.reset());
        stats::record_call(&st, "get", true, 10, false);
        stats::record_call(&st, "get", true, 20, true);
        stats::record_call(&st, "config|get", false, 7, false);
        stats::record_rejected("config|get");
        stats::record_error_reply("WRONGTYPE Operation against a key holding the wrong kind of value");
        stats::record_error_reply("ERR syntax error");
        let text = render(&st, &[b"commandstats", b"errorstats", b"latencystats"]);
        assert!(text.starts_with("# Commandstats\r\n"), "{text}");
        assert!(text.contains("cmdstat_get:calls=2,usec=30,usec_per_call=15.00,rejected_calls=0,failed_calls=1\r\n"));
        assert!(
            text.contains("cmdstat_config|get:calls=1,usec=7,usec_per_call=7.00,rejected_calls=1,failed_calls=0\r\n")
        );
        assert!(text.contains("\r\n\r\n# Errorstats\r\nerrorstat_ERR:count=1\r\nerrorstat_WRONGTYPE:count=1\r\n"));
        // 10 µs and 20 µs, in nanosecond buckets of 64 and 128 ns.
        assert!(text.contains("latency_percentiles_usec_get:p50=10.047,p99=20.095,p99.9=20.095\r\n"), "{text}");
        stats::with(|c| c.reset());
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        assert_eq!(info_safe("a:b#c\r\n"), "a_b_c__");
    }
}
