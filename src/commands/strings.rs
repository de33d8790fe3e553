//! String commands: GET, SET and friends, counters, ranges, LCS.

use crate::command::{errors, CmdResult, Ctx, Handler};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[("get", get), ("set", set)];

fn get(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.get(args[1], now) {
        None => out.null(),
        Some(e) => match &e.value {
            Value::Int(n) => out.bulk_int(*n),
            Value::EmbStr(b) => out.bulk(b),
            Value::RawStr(v) => out.bulk(v),
            #[allow(unreachable_patterns)]
            _ => return Err(errors::WRONG_TYPE.into()),
        },
    }
    Ok(())
}

fn set(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now_s = ctx.lru_now();
    ctx.db().set(args[1], Value::string(args[2]), now_s);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}
