//! Writing a base file: the whole dataset, as an RDB file (the default,
//! `aof-use-rdb-preamble yes`) or as the commands that rebuild it, the way
//! Valkey's rewrite writes them: SELECT per non-empty database, SET, RPUSH,
//! SADD, ZADD and HMSET (64 items per command), streams as XADD, XSETID,
//! XGROUP CREATE, XCLAIM and XGROUP CREATECONSUMER, PEXPIREAT after a key
//! with a TTL, and the function libraries first (FUNCTION LOAD).
//!
//! Runs in a forked rewrite child (and at start-up, on an empty dataset):
//! plain blocking I/O, no event loop.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use ferrokey_formats::aof::{encode_command, encode_timestamp};
use ferrokey_formats::rdb::{decode_dump_payload, dump_payload_with, DecodedObject, RdbValue, Stream, StreamId};

use crate::db::NO_EXPIRE;
use crate::persistence::rdb::payload_of;
use crate::persistence::save::{write_dataset_observed, SaveOptions};
use crate::server::{unix_ms, ServerState};

/// Items per RPUSH, SADD, ZADD or HMSET (Valkey's AOF_REWRITE_ITEMS_PER_CMD).
const ITEMS_PER_COMMAND: usize = 64;
/// With `aof-rewrite-incremental-fsync`, bytes written between two fsyncs
/// (Valkey's REDIS_AUTOSYNC_BYTES), so the kernel never holds a huge
/// backlog that one final fsync would have to push at once.
const AUTOSYNC_BYTES: usize = 4 * 1024 * 1024;

/// Writes the dataset to `path` as a base file and makes it durable (the
/// caller renames it into place), calling `on_key` after each key.
pub fn write_base_file(st: &ServerState, path: &Path, rdb_preamble: bool, on_key: &mut dyn FnMut()) -> io::Result<()> {
    let file = File::create(path)?;
    let sync_every = if st.config.aof_rewrite_incremental_fsync { AUTOSYNC_BYTES } else { usize::MAX };
    let out = BufWriter::with_capacity(64 * 1024, SyncingWriter { file, unsynced: 0, sync_every });
    let out = if rdb_preamble {
        let opts = SaveOptions { aof_base: true, ..SaveOptions::from_state(st) };
        write_dataset_observed(st, out, opts, on_key)?
    } else {
        write_commands(st, out, on_key)?
    };
    let writer = out.into_inner().map_err(|e| e.into_error())?;
    writer.file.sync_all()
}

/// A file that fsyncs itself every `sync_every` bytes.
struct SyncingWriter {
    file: File,
    unsynced: usize,
    sync_every: usize,
}

impl Write for SyncingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n;
        if self.unsynced >= self.sync_every {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The dataset as commands (`aof-use-rdb-preamble no`), pausing after
/// each key as `rdb-key-save-delay` asks.
fn write_commands<W: Write>(st: &ServerState, mut out: W, on_key: &mut dyn FnMut()) -> io::Result<W> {
    let key_delay = crate::persistence::config_int(st, "rdb-key-save-delay");
    let mut cmd = Vec::with_capacity(64 * 1024);
    if st.config.aof_timestamp_enabled {
        encode_timestamp(&mut cmd, unix_ms() / 1000);
    }
    for library in st.persistence.functions.libraries() {
        encode_command(&mut cmd, &[&b"FUNCTION"[..], b"LOAD", &library.code]);
    }
    let mut digits = itoa::Buffer::new();
    for (index, db) in st.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        encode_command(&mut cmd, &[&b"SELECT"[..], digits.format(index).as_bytes()]);
        for (key, entry) in db.iter() {
            let payload = dump_payload_with(&payload_of(&entry.value), false);
            let decoded = decode_dump_payload(&payload, false).map_err(|e| io::Error::other(e.to_string()))?;
            if let DecodedObject::Value { value, .. } = decoded.object {
                key_commands(&mut cmd, key, &value);
            }
            if entry.expire_at != NO_EXPIRE {
                encode_command(&mut cmd, &[&b"PEXPIREAT"[..], key, digits.format(entry.expire_at).as_bytes()]);
            }
            if cmd.len() >= 64 * 1024 {
                out.write_all(&cmd)?;
                cmd.clear();
            }
            on_key();
            crate::persistence::debug_delay(key_delay);
        }
    }
    out.write_all(&cmd)?;
    Ok(out)
}

/// Appends the commands that create `key` holding `value`.
fn key_commands(out: &mut Vec<u8>, key: &[u8], value: &RdbValue) {
    match value {
        RdbValue::String(s) => encode_command(out, &[&b"SET"[..], key, s]),
        RdbValue::List(items) => batches(out, b"RPUSH", key, items.iter().map(|i| vec![i.as_slice()])),
        RdbValue::Set(members) => batches(out, b"SADD", key, members.iter().map(|m| vec![m.as_slice()])),
        RdbValue::SortedSet(pairs) => {
            let scores: Vec<_> = pairs.iter().map(|(_, s)| ferrokey_formats::double::format(*s)).collect();
            let items = pairs.iter().zip(&scores).map(|((m, _), s)| vec![s.as_bytes(), m.as_slice()]);
            batches(out, b"ZADD", key, items);
        }
        RdbValue::Hash(pairs) => {
            batches(out, b"HMSET", key, pairs.iter().map(|(f, v)| vec![f.as_slice(), v.as_slice()]))
        }
        RdbValue::Stream(stream) => stream_commands(out, key, stream),
    }
}

/// `name key item...` commands of at most [`ITEMS_PER_COMMAND`] items
/// (an item being one or more arguments).
fn batches<'a>(out: &mut Vec<u8>, name: &[u8], key: &'a [u8], items: impl Iterator<Item = Vec<&'a [u8]>>) {
    let mut args: Vec<&[u8]> = vec![name, key];
    let mut count = 0;
    for item in items {
        args.extend(item);
        count += 1;
        if count == ITEMS_PER_COMMAND {
            encode_command(out, &args);
            args.truncate(2);
            count = 0;
        }
    }
    if count > 0 {
        encode_command(out, &args);
    }
}

fn id_text(id: StreamId) -> Vec<u8> {
    format!("{}-{}", id.ms, id.seq).into_bytes()
}

fn stream_commands(out: &mut Vec<u8>, key: &[u8], s: &Stream) {
    let mut digits = itoa::Buffer::new();
    if s.entries.is_empty() {
        // An empty stream: add one entry and trim it away at once.
        encode_command(out, &[&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    for entry in &s.entries {
        let id = id_text(entry.id);
        let mut args: Vec<&[u8]> = vec![b"XADD", key, &id];
        for (field, value) in &entry.fields {
            args.push(field);
            args.push(value);
        }
        encode_command(out, &args);
    }
    let last = id_text(s.last_id);
    let max_deleted = id_text(s.max_deleted_id);
    let added = digits.format(s.entries_added).to_string();
    encode_command(
        out,
        &[&b"XSETID"[..], key, &last, b"ENTRIESADDED", added.as_bytes(), b"MAXDELETEDID", &max_deleted],
    );
    let mut groups: Vec<_> = s.groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    for group in groups {
        let last_delivered = id_text(group.last_delivered_id);
        let read = group.entries_read.map_or(-1, |n| n as i64);
        let read = digits.format(read).to_string();
        encode_command(
            out,
            &[&b"XGROUP"[..], b"CREATE", key, &group.name, &last_delivered, b"ENTRIESREAD", read.as_bytes()],
        );
        let mut consumers: Vec<_> = group.consumers.iter().collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        for consumer in consumers {
            let mut owned: Vec<_> = group.pending.iter().filter(|p| p.consumer == consumer.name).collect();
            if owned.is_empty() {
                encode_command(out, &[&b"XGROUP"[..], b"CREATECONSUMER", key, &group.name, &consumer.name]);
                continue;
            }
            owned.sort_by_key(|p| p.id);
            for pending in owned {
                let id = id_text(pending.id);
                let time = pending.delivery_time_ms.to_string();
                let count = pending.delivery_count.to_string();
                encode_command(
                    out,
                    &[
                        &b"XCLAIM"[..],
                        key,
                        &group.name,
                        &consumer.name,
                        b"0",
                        &id,
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}
