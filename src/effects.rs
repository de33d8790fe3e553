//! The effects of commands, in execution order, as the journal (AOF) must
//! record them.
//!
//! `connection::call` hands every write command that changed the dataset
//! to [`Effects::record`]; expiry hands the keys it deleted. The effects of
//! one execution unit (a top-level command, a whole EXEC, a whole script)
//! are collected and released together by [`Effects::finish_unit`], to be
//! wrapped in MULTI/EXEC when there is more than one, so that a
//! transaction or a script is replayed atomically, as Valkey propagates
//! them. Nothing is collected while no consumer is attached (`enabled`
//! false).
//!
//! A command whose replay as sent would not reproduce what it did (a
//! relative expiry, a random pop, a float computed here, a blocking form)
//! says what to journal instead with [`Effects::journal_instead`] (or
//! [`Effects::journal_nothing`]) while it runs, once it has changed the
//! dataset; `record` then uses that in place of its arguments, as
//! Valkey's rewriteClientCommandVector / alsoPropagate do.
//!
//! Commands are kept encoded as the journal stores them (RESP multibulk),
//! in buffers that the consumer hands back ([`Effects::recycle`]): a write
//! costs one copy of its arguments and no allocation.

use ferrokey_formats::aof::encode_command;

/// The effects of one execution unit.
#[derive(Default, Debug)]
pub struct Unit {
    /// The commands, encoded back to back.
    bytes: Vec<u8>,
    /// Per command: the database it ran in and where it ends in `bytes`.
    commands: Vec<(usize, usize)>,
    /// The commands are independent of each other (the cron's expiries).
    separate: bool,
}

impl Unit {
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// More than one command: replayed as a transaction (MULTI ... EXEC,
    /// which Valkey journals without a SELECT: one goes inside, before the
    /// first command that needs it).
    pub fn is_transaction(&self) -> bool {
        self.commands.len() > 1 && !self.separate
    }

    /// Each command's database and encoded bytes, in order.
    pub fn commands(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let mut start = 0;
        self.commands.iter().map(move |&(db, end)| {
            let command = &self.bytes[start..end];
            start = end;
            (db, command)
        })
    }
}

/// One journalled command, decoded: what a [`Unit`] yields when iterated
/// (to inspect it; the journal copies the encoded bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// None for the MULTI and EXEC around a transaction.
    pub db: Option<usize>,
    pub args: Vec<Vec<u8>>,
}

impl IntoIterator for Unit {
    type Item = Effect;
    type IntoIter = std::vec::IntoIter<Effect>;

    /// The unit's commands, between MULTI and EXEC when it is a transaction.
    fn into_iter(self) -> Self::IntoIter {
        let marker = |name: &[u8]| Effect { db: None, args: vec![name.to_vec()] };
        let mut out = Vec::with_capacity(self.commands.len() + 2);
        if self.is_transaction() {
            out.push(marker(b"MULTI"));
        }
        for (db, bytes) in self.commands() {
            let decoded = ferrokey_formats::aof::read_all(bytes).map(|c| c.commands).unwrap_or_default();
            out.extend(decoded.into_iter().map(|c| Effect { db: Some(db), args: c.args }));
        }
        if self.is_transaction() {
            out.push(marker(b"EXEC"));
        }
        out.into_iter()
    }
}

#[derive(Default)]
pub struct Effects {
    /// A consumer (the AOF) wants the effects.
    pub enabled: bool,
    unit: Unit,
    /// What the running command asked to journal instead of itself,
    /// encoded, and how many commands that is.
    instead: Vec<u8>,
    instead_ends: Vec<usize>,
    replaced: bool,
}

impl Effects {
    /// Records one command's effect in the current unit: its replacement
    /// if it set one, else its arguments.
    pub fn record(&mut self, db: usize, args: &[&[u8]]) {
        if !self.enabled {
            return;
        }
        if !self.replaced {
            encode_command(&mut self.unit.bytes, args);
            self.unit.commands.push((db, self.unit.bytes.len()));
            return;
        }
        let base = self.unit.bytes.len();
        self.unit.bytes.extend_from_slice(&self.instead);
        self.unit.commands.extend(self.instead_ends.iter().map(|&end| (db, base + end)));
        self.clear_replacement();
    }

    /// Journals `args` in place of the running command. Called several
    /// times, journals each in order (SPOP's batches of SREM, the XCLAIMs
    /// of an XREADGROUP). Call it only once the command has changed the
    /// dataset: the replacement is used when the command is recorded.
    pub fn journal_instead<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        if self.enabled {
            encode_command(&mut self.instead, args);
            self.instead_ends.push(self.instead.len());
            self.replaced = true;
        }
    }

    /// Journals nothing for the running command although it changed the
    /// dataset (its effects were journalled another way).
    pub fn journal_nothing(&mut self) {
        if self.enabled {
            self.replaced = true;
        }
    }

    fn clear_replacement(&mut self) {
        self.instead.clear();
        self.instead_ends.clear();
        self.replaced = false;
    }

    /// Ends the current execution unit and returns what it must journal.
    pub fn finish_unit(&mut self) -> Unit {
        // A replacement left over by a command that changed nothing after
        // all must not apply to a later one.
        if self.replaced {
            self.clear_replacement();
        }
        if self.unit.is_empty() {
            // Keeps the buffers where they are.
            return Unit::default();
        }
        std::mem::take(&mut self.unit)
    }

    /// Ends a unit of independent effects (the keys the cron expired): each
    /// is journalled on its own, as Valkey propagates every expired key
    /// separately, not as a transaction.
    pub fn finish_independent(&mut self) -> Unit {
        let mut unit = self.finish_unit();
        unit.separate = true;
        unit
    }

    /// Takes back the buffers of a unit the consumer is done with, so the
    /// next units reuse them.
    pub fn recycle(&mut self, mut unit: Unit) {
        if self.unit.bytes.capacity() == 0 {
            unit.bytes.clear();
            unit.commands.clear();
            unit.separate = false;
            self.unit = unit;
        }
    }
}

/// What Valkey journals when a write deletes a key because the expiry
/// time it was given has already passed (its
/// deleteExpiredKeyFromOverwriteAndPropagate): UNLINK under
/// `lazyfree-lazy-expire` (the default), else DEL.
pub fn expired_overwrite_deletion(st: &crate::server::ServerState) -> &'static str {
    if st.config.lazyfree_lazy_expire {
        "UNLINK"
    } else {
        "DEL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(unit: Unit) -> Vec<String> {
        unit.into_iter().map(|e| String::from_utf8_lossy(&e.args[0]).into_owned()).collect()
    }

    #[test]
    fn nothing_is_kept_without_a_consumer() {
        let mut e = Effects::default();
        e.record(0, &[b"SET", b"k", b"v"]);
        e.journal_instead(&["DEL", "k"]);
        assert!(e.finish_unit().is_empty());
    }

    #[test]
    fn a_unit_of_several_commands_is_a_transaction() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.record(0, &[b"SET", b"k", b"v"]);
        let unit = e.finish_unit();
        assert!(!unit.is_transaction());
        let set = Effect { db: Some(0), args: vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()] };
        assert_eq!(unit.into_iter().collect::<Vec<_>>(), vec![set]);
        e.record(1, &[b"INCR", b"a"]);
        e.record(2, &[b"INCR", b"b"]);
        let unit = e.finish_unit();
        assert!(unit.is_transaction());
        let dbs: Vec<Option<usize>> = unit.into_iter().map(|e| e.db).collect();
        assert_eq!(dbs, [None, Some(1), Some(2), None]);
        assert!(e.finish_unit().is_empty());
    }

    #[test]
    fn independent_effects_are_no_transaction() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.record(0, &[b"DEL", b"a"]);
        e.record(0, &[b"DEL", b"b"]);
        assert_eq!(names(e.finish_independent()), ["DEL", "DEL"]);
    }

    #[test]
    fn buffers_are_reused() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.record(0, &[b"SET", b"k", b"v"]);
        let unit = e.finish_unit();
        let capacity = unit.bytes.capacity();
        e.recycle(unit);
        e.record(0, &[b"SET", b"k", b"w"]);
        assert_eq!(e.finish_unit().bytes.capacity(), capacity);
    }

    #[test]
    fn a_command_can_journal_other_commands_or_none() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.journal_instead(&["SREM", "s", "a"]);
        e.journal_instead(&["SREM", "s", "b"]);
        e.record(2, &[b"SPOP", b"s", b"2"]);
        e.record(2, &[b"SADD", b"t", b"x"]);
        assert_eq!(names(e.finish_unit()), ["MULTI", "SREM", "SREM", "SADD", "EXEC"]);
        e.journal_nothing();
        e.record(0, &[b"XREADGROUP"]);
        assert!(e.finish_unit().is_empty());
    }

    #[test]
    fn a_replacement_never_outlives_its_unit() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.journal_instead(&["DEL", "k"]);
        assert!(e.finish_unit().is_empty());
        e.record(0, &[b"SET", b"k", b"v"]);
        assert_eq!(names(e.finish_unit()), ["SET"]);
    }
}
