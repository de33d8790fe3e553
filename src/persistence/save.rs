//! Writing the dataset as an RDB file: Valkey 8's layout (see the formats
//! crate's writer), written to `temp-<pid>.rdb` with plain blocking I/O,
//! flushed and fsynced, renamed over the target, and the directory fsynced,
//! so the target is always either the old file or the complete new one.
//!
//! Nothing here touches the event loop or takes a lock: a forked BGSAVE
//! child runs exactly this code on the keyspace it inherited.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ferrokey_formats::rdb::{AuxInfo, KeyMeta, RdbWriter, WriterOptions};

use super::rdb::payload_of;
use crate::aof::strerror;
use crate::db::NO_EXPIRE;
use crate::server::{unix_ms, ServerState};
use crate::{log_notice, log_warning};

/// How the file is written: Valkey's `rdbcompression`, `rdbchecksum`, and
/// whether the eviction policy wants each key's idle time (LRU) or access
/// frequency (LFU, decayed by `lfu-decay-time` minutes) stored.
#[derive(Clone, Copy)]
pub struct SaveOptions {
    pub writer: WriterOptions,
    pub store_idle: bool,
    pub store_freq: Option<u32>,
    /// The file is the base of an AOF (its `aof-base` aux field says so).
    pub aof_base: bool,
    /// Leave the keys out, or the function libraries (the filters of a
    /// snapshot transfer, `REPLCONF rdb-filter-only`).
    pub without_keys: bool,
    pub without_functions: bool,
}

impl SaveOptions {
    pub fn from_state(st: &ServerState) -> SaveOptions {
        let policy = st.config.maxmemory_policy;
        SaveOptions {
            writer: WriterOptions {
                compression: super::config_flag(st, "rdbcompression"),
                checksum: super::config_flag(st, "rdbchecksum"),
            },
            store_idle: policy.uses_lru(),
            store_freq: policy.uses_lfu().then_some(st.config.lfu_decay_time),
            aof_base: false,
            without_keys: false,
            without_functions: false,
        }
    }
}

/// Writes the whole dataset to `out` as one RDB file.
pub fn write_dataset<W: Write>(st: &ServerState, out: W, opts: SaveOptions) -> io::Result<W> {
    write_dataset_observed(st, out, opts, &mut || {})
}

/// [`write_dataset`], calling `on_key` after each key (a child reports its
/// progress so), and pausing as `rdb-key-save-delay` asks.
pub fn write_dataset_observed<W: Write>(
    st: &ServerState,
    out: W,
    opts: SaveOptions,
    on_key: &mut dyn FnMut(),
) -> io::Result<W> {
    let key_delay = super::config_int(st, "rdb-key-save-delay");
    let now_ms = unix_ms();
    let now_s = (now_ms / 1000) as u32;
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let used_mem = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as i64;
    let mut w = RdbWriter::new(out, opts.writer);
    w.header()?;
    w.standard_aux(&AuxInfo { ctime: now_ms / 1000, used_mem, aof_base: opts.aof_base, repl: None })?;
    let libraries = if opts.without_functions { None } else { Some(st.persistence.functions.libraries()) };
    for library in libraries.into_iter().flatten() {
        w.function(&library.code)?;
    }
    for (index, db) in st.dbs.iter().enumerate() {
        if db.is_empty() || opts.without_keys {
            continue;
        }
        w.select_db(index as u64)?;
        w.resize_db(db.len() as u64, db.volatile_len() as u64)?;
        for (key, entry) in db.iter() {
            let meta = KeyMeta {
                expire_ms: (entry.expire_at != NO_EXPIRE).then_some(entry.expire_at),
                lru_idle_s: opts.store_idle.then(|| now_s.saturating_sub(entry.last_access) as u64),
                lfu_freq: opts.store_freq.map(|decay| crate::evict::lfu_counter(entry, now_s, decay)),
            };
            w.key(&meta, key, &payload_of(&entry.value))?;
            on_key();
            super::debug_delay(key_delay);
        }
    }
    w.finish()
}

/// The temporary file a save by process `pid` writes.
pub fn temp_file_name(pid: u32) -> PathBuf {
    PathBuf::from(format!("temp-{pid}.rdb"))
}

/// Writes the dataset to `temp`, makes it durable, and renames it to
/// `target` (both relative to the working directory, which is `dir`),
/// calling `on_key` after each key. Logs what failed, Valkey's way, and
/// removes the temporary file then; the error is the line logged.
pub fn write_file_atomically(
    st: &ServerState,
    temp: &Path,
    target: &Path,
    on_key: &mut dyn FnMut(),
) -> Result<(), String> {
    let opts = SaveOptions::from_state(st);
    let written = (|| -> Result<(), (&'static str, io::Error)> {
        let file = File::create(temp).map_err(|e| ("open", e))?;
        let out = BufWriter::with_capacity(64 * 1024, file);
        let out = write_dataset_observed(st, out, opts, on_key).map_err(|e| ("write", e))?;
        let file = out.into_inner().map_err(|e| ("fflush", e.into_error()))?;
        file.sync_all().map_err(|e| ("fsync", e))?;
        Ok(())
    })();
    let cwd = || std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "unknown".into());
    let failed = |line: String| {
        log_warning!("{line}");
        Err(line)
    };
    if let Err((op, e)) = written {
        let _ = std::fs::remove_file(temp);
        return failed(if op == "open" {
            format!(
                "Failed opening the temp RDB file {} (in server root dir {}) for saving: {}",
                temp.display(),
                cwd(),
                strerror(&e)
            )
        } else {
            format!("Write error while saving DB to the disk({op}): {}", strerror(&e))
        });
    }
    if let Err(e) = std::fs::rename(temp, target) {
        let _ = std::fs::remove_file(temp);
        return failed(format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            temp.display(),
            target.display(),
            cwd(),
            strerror(&e)
        ));
    }
    if let Err(e) = sync_parent_dir(target) {
        return failed(format!("Failed to fsync directory while saving DB: {}", strerror(&e)));
    }
    log_notice!("DB saved on disk");
    Ok(())
}

/// Makes the rename durable: fsync of the directory holding `path`.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(dir)?.sync_all()
}
