//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use crate::command::{CmdResult, Ctx, Handler};

pub const COMMANDS: &[(&str, Handler)] = &[("ping", ping), ("echo", echo)];

fn ping(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(args[1]),
        _ => return Err(crate::command::arity_error("ping")),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}
