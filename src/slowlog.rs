//! The slow log: commands that ran longer than `slowlog-log-slower-than`
//! microseconds, newest first, at most `slowlog-max-len` of them.

use std::collections::VecDeque;

use crate::client::ClientInfo;

pub struct SlowLogEntry {
    pub id: u64,
    pub unix_s: i64,
    pub micros: u64,
    pub args: Vec<Vec<u8>>,
    pub peer: String,
    pub name: String,
}

pub struct SlowLog {
    pub entries: VecDeque<SlowLogEntry>,
    pub next_id: u64,
    /// Microseconds; negative disables the log, 0 logs every command.
    pub slower_than: i64,
    pub max_len: usize,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog { entries: VecDeque::new(), next_id: 0, slower_than: 10_000, max_len: 128 }
    }
}

/// Valkey keeps at most this many arguments, and this many bytes of each.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

impl SlowLog {
    pub fn record(&mut self, args: &[&[u8]], micros: u64, now_ms: i64, client: &ClientInfo) {
        if self.slower_than < 0 || (micros as i64) < self.slower_than {
            return;
        }
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(args.len().min(MAX_ARGS));
        for (i, a) in args.iter().enumerate() {
            if i == MAX_ARGS - 1 && args.len() > MAX_ARGS {
                kept.push(format!("... ({} more arguments)", args.len() - MAX_ARGS + 1).into_bytes());
                break;
            }
            if a.len() > MAX_ARG_BYTES {
                let mut v = a[..MAX_ARG_BYTES].to_vec();
                v.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes());
                kept.push(v);
            } else {
                kept.push(a.to_vec());
            }
        }
        self.entries.push_front(SlowLogEntry {
            id: self.next_id,
            unix_s: now_ms / 1000,
            micros,
            args: kept,
            peer: client.addr.to_string(),
            name: client.name.borrow().as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
        });
        self.next_id += 1;
        while self.entries.len() > self.max_len {
            self.entries.pop_back();
        }
    }
}
