//! The effects of commands, in execution order, as the journal (AOF) must
//! record them.
//!
//! `connection::call` hands every write command that changed the dataset
//! to [`record`]; expiry hands the keys it deleted. The effects of one
//! execution unit (a top-level command, a whole EXEC, a whole script) are
//! collected and released together by [`finish_unit`], wrapped in
//! MULTI/EXEC when there is more than one, so that a transaction or a
//! script is replayed atomically, as Valkey propagates them. Nothing is
//! collected while no consumer is attached (`enabled` false).

/// One command to journal, in the database it ran in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub db: usize,
    pub args: Vec<Vec<u8>>,
}

#[derive(Default)]
pub struct Effects {
    /// A consumer (the AOF) wants the effects.
    pub enabled: bool,
    unit: Vec<Effect>,
}

impl Effects {
    /// Records one command's effect in the current unit.
    pub fn record(&mut self, db: usize, args: &[&[u8]]) {
        if self.enabled {
            self.unit.push(Effect { db, args: args.iter().map(|a| a.to_vec()).collect() });
        }
    }

    /// Ends the current execution unit and returns what it must journal:
    /// nothing, one command, or MULTI, the commands, EXEC.
    pub fn finish_unit(&mut self) -> Vec<Effect> {
        if self.unit.len() <= 1 {
            return std::mem::take(&mut self.unit);
        }
        let db = self.unit[0].db;
        let mut out = Vec::with_capacity(self.unit.len() + 2);
        out.push(Effect { db, args: vec![b"MULTI".to_vec()] });
        out.append(&mut self.unit);
        let last_db = out.last().map(|e| e.db).unwrap_or(db);
        out.push(Effect { db: last_db, args: vec![b"EXEC".to_vec()] });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_without_a_consumer() {
        let mut e = Effects::default();
        e.record(0, &[b"SET", b"k", b"v"]);
        assert!(e.finish_unit().is_empty());
    }

    #[test]
    fn a_unit_of_several_commands_is_wrapped_in_a_transaction() {
        let mut e = Effects { enabled: true, ..Default::default() };
        e.record(0, &[b"SET", b"k", b"v"]);
        assert_eq!(e.finish_unit(), vec![Effect { db: 0, args: vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()] }]);
        e.record(1, &[b"INCR", b"a"]);
        e.record(1, &[b"INCR", b"b"]);
        let unit = e.finish_unit();
        let names: Vec<&[u8]> = unit.iter().map(|x| x.args[0].as_slice()).collect();
        assert_eq!(names, vec![&b"MULTI"[..], b"INCR", b"INCR", b"EXEC"]);
        assert!(e.finish_unit().is_empty());
    }
}
