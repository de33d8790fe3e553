//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, DUMP and
//! RESTORE.
//!
//! DUMP payloads are Valkey 8's byte for byte (the value's RDB encoding,
//! RDB version 11 and a CRC-64), so keys move between ferrokey and Valkey
//! with DUMP and RESTORE in either direction.

use ferrokey_formats::crc64::crc64;
use ferrokey_formats::rdb::{decode_dump_payload, dump_payload_with, DecodedObject, DUMP_RDB_VERSION};

use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::commands::args::c_str;
use crate::db::Entry;
use crate::notify::{self, notify};
use crate::persistence::{self, rdb, BgsaveError};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("save", save),
    ("bgsave", bgsave),
    ("bgrewriteaof", bgrewriteaof),
    ("lastsave", lastsave),
    ("dump", dump),
    ("restore", restore),
];

const BGSAVE_IN_PROGRESS: &str = "ERR Background save already in progress";
/// Valkey's generic error reply, "-ERR", which SAVE and BGSAVE answer when
/// the save itself fails (the log says why).
const SAVE_FAILED: &str = "ERR";

/// SAVE: writes the dataset to disk before answering.
fn save(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if ctx.srv.persistence.child.is_some() {
        return Err(BGSAVE_IN_PROGRESS.into());
    }
    ctx.srv.persistence.saves += 1;
    persistence::save_now(ctx.srv).map_err(|_| CmdError::from(SAVE_FAILED))?;
    ctx.out.ok();
    Ok(())
}

/// BGSAVE [SCHEDULE]: starts a save in a forked child. While an AOF
/// rewrite child runs, SCHEDULE makes it start once that one ends.
fn bgsave(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let schedule = args.len() == 2 && c_str(args[1]).eq_ignore_ascii_case(b"schedule");
    if args.len() > 1 && !schedule {
        return Err(errors::SYNTAX.into());
    }
    match persistence::start_bgsave(ctx.srv) {
        Ok(_) => {
            ctx.out.simple("Background saving started");
            Ok(())
        }
        Err(BgsaveError::AlreadyRunning) => Err(BGSAVE_IN_PROGRESS.into()),
        Err(BgsaveError::AnotherChild) if schedule => {
            ctx.srv.persistence.bgsave_scheduled = true;
            ctx.out.simple("Background saving scheduled");
            Ok(())
        }
        Err(BgsaveError::AnotherChild) => Err("ERR Another child process is active (AOF?): can't BGSAVE right now. \
             Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
            .into()),
        Err(BgsaveError::ForkFailed) => Err(SAVE_FAILED.into()),
    }
}

/// BGREWRITEAOF: rewrites the AOF's base in a forked child (scheduled
/// while a BGSAVE runs, or inside a transaction, whose snapshot would hold
/// half of it).
fn bgrewriteaof(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let in_exec = ctx.client.info.multi_queued.get().is_some();
    let status = crate::aof::bgrewriteaof(ctx.srv, in_exec)?;
    ctx.out.simple(status);
    Ok(())
}

/// LASTSAVE: when the dataset was last saved, in Unix seconds.
fn lastsave(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.srv.last_save_unix);
    Ok(())
}

/// DUMP key: the value's serialized form, nil when the key is missing.
fn dump(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let compression = persistence::config_flag(ctx.srv, "rdbcompression");
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    match entry {
        Some(entry) => out.bulk(&dump_payload_with(&rdb::payload_of(&entry.value), compression)),
        None => out.null(),
    }
    Ok(())
}

/// Valkey's check before it reads a payload: room for the footer, an RDB
/// version it knows, and a matching CRC-64.
fn payload_footer_ok(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let footer = payload.len() - 10;
    let version = u16::from_le_bytes([payload[footer], payload[footer + 1]]);
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&payload[footer + 2..]);
    version <= DUMP_RDB_VERSION && crc64(&payload[..footer + 2]) == u64::from_le_bytes(stored)
}

fn parse_i64_arg(arg: &[u8]) -> Result<i64, CmdError> {
    ferrokey_formats::resp::parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]
fn restore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let option = c_str(args[j]);
        let has_value = j + 1 < args.len();
        if option.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if option.eq_ignore_ascii_case(b"absttl") {
            absttl = true;
        } else if option.eq_ignore_ascii_case(b"idletime") && has_value && freq.is_none() {
            let seconds = parse_i64_arg(args[j + 1])?;
            if seconds < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0".into());
            }
            idle = Some(seconds);
            j += 1;
        } else if option.eq_ignore_ascii_case(b"freq") && has_value && idle.is_none() {
            let counter = parse_i64_arg(args[j + 1])?;
            if !(0..=255).contains(&counter) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255".into());
            }
            freq = Some(counter);
            j += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    let key = args[1];
    if !replace && ctx.lookup(key, Lookup::Write).0.is_some() {
        return Err("BUSYKEY Target key name already exists.".into());
    }
    let mut ttl = parse_i64_arg(args[2])?;
    if ttl < 0 {
        return Err("ERR Invalid TTL value, must be >= 0".into());
    }
    let payload = args[3];
    if !payload_footer_ok(payload) {
        return Err("ERR DUMP payload version or checksum are wrong".into());
    }
    let bad_format = || CmdError::from("ERR Bad data format");
    let decoded = decode_dump_payload(payload, false).map_err(|_| bad_format())?;
    let DecodedObject::Value { value, encoding } = decoded.object else { return Err(bad_format()) };
    let limits = rdb::Limits::from_config(&ctx.srv.config);
    let value = rdb::value_from_rdb(value, encoding, &limits).map_err(|_| bad_format())?;

    let now_ms = ctx.now_ms;
    let deleted = replace && ctx.db().remove(key).is_some();
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(now_ms);
    }
    if ttl != 0 && ttl <= now_ms {
        // Already expired: the key is gone (replaced by nothing).
        if deleted {
            ctx.dirty(1);
            let deletion: &[u8] = if ctx.srv.config.lazyfree_lazy_server_del { b"UNLINK" } else { b"DEL" };
            ctx.srv.effects.journal_instead(&[deletion, key]);
            notify(ctx, notify::GENERIC, "del", key);
        }
        ctx.out.ok();
        return Ok(());
    }
    let now_s = ctx.lru_now();
    let mut entry = Entry::new(value, now_s);
    if ttl != 0 {
        entry.expire_at = ttl;
    }
    // The access hint the eviction policy keeps: FREQ under LFU, IDLETIME otherwise.
    let (freq, idle) = (freq.map(|f| f as u8), idle.map(|s| s as u64));
    crate::evict::set_hints(&mut entry, &ctx.srv.config, freq, idle, now_s);
    ctx.db().insert_entry(key, entry);
    ctx.dirty(1);
    // A relative TTL is journalled as the absolute time it came to.
    if ttl != 0 && !absttl && ctx.srv.effects.enabled {
        let at = ttl.to_string();
        let mut journalled: Vec<&[u8]> = args.to_vec();
        journalled[2] = at.as_bytes();
        journalled.push(b"ABSTTL");
        ctx.srv.effects.journal_instead(&journalled);
    }
    notify::new_key(ctx, key);
    notify(ctx, notify::GENERIC, "restore", key);
    ctx.out.ok();
    Ok(())
}
