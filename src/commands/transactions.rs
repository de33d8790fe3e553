//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC the dispatcher queues commands here instead of
//! running them (after the checks that can refuse them at once: an
//! unknown command or a wrong argument count aborts the transaction).
//! EXEC runs the queue without anything in between, since every command
//! runs to completion on the one engine thread; WATCH makes it fail when
//! a watched key changed (see watch.rs).

use crate::client::Client;
use crate::command::{CmdError, CmdResult, CommandSpec, Ctx, Handler};
use crate::server::ServerState;

pub const COMMANDS: &[(&str, Handler)] =
    &[("multi", multi), ("exec", exec), ("discard", discard), ("watch", watch), ("unwatch", unwatch)];

const EXEC_ABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// One queued command with its arguments.
pub struct QueuedCommand {
    pub args: Vec<Vec<u8>>,
    pub spec: &'static CommandSpec,
}

/// A transaction being queued.
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<QueuedCommand>,
    /// A command was refused while queuing: EXEC must fail.
    pub aborted: bool,
    /// The union of the queued commands' flags: EXEC is refused for what
    /// any of them would be (a write after a failed save, say).
    pub flags: u32,
}

/// Whether a command runs at once inside MULTI instead of being queued.
pub fn runs_inside_multi(spec: &CommandSpec) -> bool {
    matches!(spec.name.as_str(), "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

pub fn queue(client: &mut Client, spec: &'static CommandSpec, args: &[&[u8]]) {
    let Some(multi) = client.multi.as_mut() else { return };
    // An aborted or dirty transaction will fail anyway: keep nothing.
    if multi.aborted || client.info.dirty_cas.get() {
        return;
    }
    multi.queued.push(QueuedCommand { args: args.iter().map(|a| a.to_vec()).collect(), spec });
    multi.flags |= spec.flags;
    client.info.multi_queued.set(Some(multi.queued.len()));
}

/// A command refused before it ran: inside MULTI the transaction is
/// aborted; a refused EXEC ends the transaction and says why.
pub fn reject_queued(st: &mut ServerState, client: &mut Client, error: CmdError, refused_exec: bool) -> CmdError {
    if refused_exec {
        discard_transaction(st, client);
        // Valkey words its own refusals without the generic code but keeps
        // specific ones (MISCONF, NOAUTH, ...).
        let reason = error.0.strip_prefix("ERR ").unwrap_or(&error.0);
        return format!("EXECABORT Transaction discarded because of: {reason}").into();
    }
    if let Some(multi) = client.multi.as_mut() {
        multi.aborted = true;
        multi.queued = Vec::new();
    }
    error
}

/// Leaves the transaction (if any) and forgets the watched keys.
pub fn discard_transaction(st: &mut ServerState, client: &mut Client) {
    client.multi = None;
    client.info.multi_queued.set(None);
    client.info.dirty_cas.set(false);
    st.watches.unwatch_all(&client.info);
}

fn multi(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.client.multi = Some(MultiState::default());
    ctx.client.info.multi_queued.set(Some(0));
    ctx.out.ok();
    Ok(())
}

fn discard(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    discard_transaction(ctx.srv, ctx.client);
    ctx.out.ok();
    Ok(())
}

fn exec(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let Some(multi) = ctx.client.multi.take() else {
        return Err("ERR EXEC without MULTI".into());
    };
    if crate::watch::any_expired_since_watched(ctx.srv, &ctx.client.info, ctx.now_ms) {
        ctx.client.info.dirty_cas.set(true);
    }
    if multi.aborted {
        discard_transaction(ctx.srv, ctx.client);
        return Err(EXEC_ABORT.into());
    }
    if ctx.client.info.dirty_cas.get() {
        discard_transaction(ctx.srv, ctx.client);
        ctx.out.null_array();
        return Ok(());
    }
    // Nothing can dirty the transaction any more; the client still shows
    // as inside MULTI (CLIENT LIST) until its commands have run.
    ctx.srv.watches.unwatch_all(&ctx.client.info);
    ctx.out.array(multi.queued.len());
    // Blocking commands act as their non-blocking forms in a transaction.
    let could_block = std::mem::replace(&mut ctx.client.no_blocking, true);
    for queued in &multi.queued {
        let args: Vec<&[u8]> = queued.args.iter().map(Vec::as_slice).collect();
        // The whole transaction sees one clock, as in Valkey: a key cannot
        // expire between two of its commands.
        crate::connection::call_replying(ctx.srv, ctx.client, ctx.out, &args, queued.spec, ctx.now_ms);
    }
    ctx.client.no_blocking = could_block;
    discard_transaction(ctx.srv, ctx.client);
    Ok(())
}

fn watch(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // A dirty client's EXEC fails whatever it watches now.
    if !ctx.client.info.dirty_cas.get() {
        let info = ctx.client.info.clone();
        for key in &args[1..] {
            crate::watch::watch(ctx.srv, &info, ctx.client.db, key, ctx.now_ms);
        }
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.srv.watches.unwatch_all(&ctx.client.info);
    ctx.client.info.dirty_cas.set(false);
    ctx.out.ok();
    Ok(())
}
