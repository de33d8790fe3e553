//! The append-only file: Valkey 7+'s multi-part journal (being written:
//! see the AOF task). The dispatcher, the server start-up, the cron and
//! the shutdown call the functions below; with `appendonly no` they do
//! nothing.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::effects::Effect;
use crate::server::ServerState;

/// The journal's state while `appendonly` is on.
#[derive(Default)]
pub struct Aof {}

/// Appends the effects of one execution unit (see effects.rs).
pub fn feed(_st: &mut ServerState, _unit: Vec<Effect>) {}

/// What a connection must wait for before it sends the replies of the
/// batch it just ran: the journal write (and, with `appendfsync always`,
/// the fsync) covering the effects those replies acknowledge. None when
/// nothing needs waiting for.
pub fn durability_wait(_state: &Rc<RefCell<ServerState>>) -> Option<Pin<Box<dyn Future<Output = bool>>>> {
    None
}

/// The start-up load from the AOF when `appendonly` is on (the RDB file is
/// then not read), and opening the journal. Returns false when the server
/// must not start.
pub async fn load_at_start(_state: &Rc<RefCell<ServerState>>) -> bool {
    true
}

/// Called from the server cron: fsync once a second (everysec), reap a
/// rewrite child, start automatic rewrites.
pub fn cron(_st: &mut ServerState) {}

/// Shutdown: writes and fsyncs what is buffered. Returns false when that
/// failed (the server then keeps running, as with a failed final save).
pub fn before_exit(_st: &ServerState) -> bool {
    true
}
