//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH, their shard forms SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, and the
//! PUBSUB introspection subcommands. The registry and delivery live in
//! `crate::pubsub`.

use crate::command::{CmdResult, Ctx, Handler};
use crate::pubsub::{self, Kind};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("subscribe", subscribe),
    ("unsubscribe", unsubscribe),
    ("psubscribe", psubscribe),
    ("punsubscribe", punsubscribe),
    ("publish", publish),
    ("ssubscribe", ssubscribe),
    ("sunsubscribe", sunsubscribe),
    ("spublish", spublish),
    ("pubsub|channels", pubsub_channels),
    ("pubsub|numsub", pubsub_numsub),
    ("pubsub|numpat", pubsub_numpat),
    ("pubsub|shardchannels", pubsub_shardchannels),
    ("pubsub|shardnumsub", pubsub_shardnumsub),
    ("pubsub|help", pubsub_help),
];

/// A client that must get exactly one reply per command (a script) cannot
/// enter subscribed mode. Valkey lets a transaction subscribe, for old
/// clients' sake, but not shard-subscribe.
fn refuse_deny_blocking(ctx: &Ctx, name: &str, allowed_in_exec: bool) -> CmdResult {
    let in_exec = ctx.client.info.multi_queued.get().is_some();
    if ctx.client.no_blocking && !(allowed_in_exec && in_exec) {
        return Err(format!("ERR {name} isn't allowed for a DENY BLOCKING client").into());
    }
    Ok(())
}

fn subscribe_all(ctx: &mut Ctx, args: &[&[u8]], kind: Kind) {
    for name in &args[1..] {
        pubsub::subscribe(ctx.srv, ctx.client, ctx.out, kind, name);
    }
}

/// SUBSCRIBE channel [channel ...]
fn subscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    refuse_deny_blocking(ctx, "SUBSCRIBE", true)?;
    subscribe_all(ctx, args, Kind::Channel);
    Ok(())
}

/// PSUBSCRIBE pattern [pattern ...]
fn psubscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    refuse_deny_blocking(ctx, "PSUBSCRIBE", true)?;
    subscribe_all(ctx, args, Kind::Pattern);
    Ok(())
}

/// SSUBSCRIBE shardchannel [shardchannel ...]
fn ssubscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    refuse_deny_blocking(ctx, "SSUBSCRIBE", false)?;
    subscribe_all(ctx, args, Kind::Shard);
    Ok(())
}

/// UNSUBSCRIBE [channel ...]
fn unsubscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pubsub::unsubscribe(ctx.srv, ctx.client, ctx.out, Kind::Channel, &args[1..]);
    Ok(())
}

/// PUNSUBSCRIBE [pattern ...]
fn punsubscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pubsub::unsubscribe(ctx.srv, ctx.client, ctx.out, Kind::Pattern, &args[1..]);
    Ok(())
}

/// SUNSUBSCRIBE [shardchannel ...]
fn sunsubscribe(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pubsub::unsubscribe(ctx.srv, ctx.client, ctx.out, Kind::Shard, &args[1..]);
    Ok(())
}

/// PUBLISH channel message: answers how many subscriptions received it.
fn publish(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let receivers = pubsub::publish(ctx.srv, args[1], args[2]);
    ctx.out.int(receivers as i64);
    Ok(())
}

/// SPUBLISH shardchannel message
fn spublish(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let receivers = pubsub::publish_shard(ctx.srv, args[1], args[2]);
    ctx.out.int(receivers as i64);
    Ok(())
}

fn list_channels(ctx: &mut Ctx, args: &[&[u8]], shard: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(crate::commands::server::subcommand_syntax_error(args));
    }
    let names = ctx.srv.pubsub.active_channels(shard, args.get(2).copied());
    ctx.out.bulk_array(names);
    Ok(())
}

fn count_subscribers(ctx: &mut Ctx, args: &[&[u8]], shard: bool) -> CmdResult {
    ctx.out.array((args.len() - 2) * 2);
    for name in &args[2..] {
        ctx.out.bulk(name);
        ctx.out.int(ctx.srv.pubsub.subscriber_count(shard, name) as i64);
    }
    Ok(())
}

/// PUBSUB CHANNELS [pattern]
fn pubsub_channels(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    list_channels(ctx, args, false)
}

/// PUBSUB SHARDCHANNELS [pattern]
fn pubsub_shardchannels(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    list_channels(ctx, args, true)
}

/// PUBSUB NUMSUB [channel ...]
fn pubsub_numsub(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    count_subscribers(ctx, args, false)
}

/// PUBSUB SHARDNUMSUB [shardchannel ...]
fn pubsub_shardnumsub(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    count_subscribers(ctx, args, true)
}

/// PUBSUB NUMPAT: how many patterns have subscribers.
fn pubsub_numpat(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.srv.pubsub.pattern_count() as i64);
    Ok(())
}

fn pubsub_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    );
    Ok(())
}
