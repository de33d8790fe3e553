//! COMMAND: introspection of the command table. Entries are Valkey's own
//! COMMAND INFO and COMMAND DOCS replies for the commands ferrokey serves.

use ferrokey_formats::resp::Value;

use crate::command::{self, errors, table, CmdError, CmdResult, CommandSpec, CommandTable, Ctx};
use crate::glob::glob_match;
use crate::reply::Reply;

use super::keyspecs::{self, KEY_FLAG_NAMES};

/// COMMAND: every command's COMMAND INFO entry.
pub(super) fn command_all(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let t = table();
    ctx.out.array(t.order.len());
    for spec in top_level(t) {
        write_info(ctx.out, &spec.info);
    }
    Ok(())
}

/// Writes a COMMAND INFO entry. The table holds a command's subcommand
/// list (its tenth field) as an array even when it is empty, where Valkey
/// answers an empty set for commands without subcommands.
fn write_info(out: &mut Reply, info: &Value) {
    out.value(info);
}

/// COMMAND COUNT
pub(super) fn command_count(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int(table().order.len() as i64);
    Ok(())
}

/// The top-level commands in Valkey's order.
fn top_level(t: &CommandTable) -> impl Iterator<Item = &CommandSpec> {
    t.order.iter().filter_map(|name| t.commands.get(name))
}

/// A container's subcommands in Valkey's order (the order of its COMMAND
/// INFO entry).
pub(super) fn subcommands_in_order(spec: &CommandSpec) -> Vec<&CommandSpec> {
    let Value::Array(fields) = &spec.info else { return Vec::new() };
    let Some(Value::Array(subs)) = fields.get(9) else { return Vec::new() };
    subs.iter()
        .filter_map(|sub| match sub {
            Value::Array(f) => match f.first() {
                Some(Value::Bulk(full) | Value::Simple(full)) => {
                    let short = full.splitn(2, |&c| c == b'|').nth(1)?;
                    spec.subcommands.get(&short.to_ascii_lowercase())
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Every command and subcommand, containers before their subcommands.
fn all_specs(t: &CommandTable) -> Vec<&CommandSpec> {
    let mut out = Vec::new();
    for spec in top_level(t) {
        out.push(spec);
        out.extend(subcommands_in_order(spec));
    }
    out
}

/// Finds a command by its full name, "get" or "config|get", ignoring case.
fn by_full_name<'t>(t: &'t CommandTable, name: &[u8]) -> Option<&'t CommandSpec> {
    let mut parts = name.split(|&c| c == b'|');
    let base = t.commands.get(&parts.next()?.to_ascii_lowercase())?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(base),
        (Some(sub), None) => base.subcommands.get(&sub.to_ascii_lowercase()),
        _ => None,
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
pub(super) fn command_list(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    enum Filter<'a> {
        None,
        Module,
        AclCategory(&'a [u8]),
        Pattern(&'a [u8]),
    }
    let mut filter = Filter::None;
    let mut i = 2;
    while i < args.len() {
        // FILTERBY must be followed by exactly its type and argument.
        if !args[i].eq_ignore_ascii_case(b"filterby") || args.len() - 1 - i != 2 {
            return Err(errors::SYNTAX.into());
        }
        let kind = args[i + 1].to_ascii_lowercase();
        filter = match kind.as_slice() {
            // No modules are ever loaded, so no command belongs to one.
            b"module" => Filter::Module,
            b"aclcat" => Filter::AclCategory(args[i + 2]),
            b"pattern" => Filter::Pattern(args[i + 2]),
            _ => return Err(errors::SYNTAX.into()),
        };
        i += 3;
    }
    let names: Vec<&str> = all_specs(table())
        .into_iter()
        .filter(|spec| match &filter {
            Filter::None => true,
            Filter::Module => false,
            Filter::AclCategory(cat) => has_acl_category(spec, cat),
            Filter::Pattern(p) => glob_match(p, spec.name.as_bytes(), true),
        })
        .map(|spec| spec.name.as_str())
        .collect();
    ctx.out.array(names.len());
    for name in names {
        ctx.out.bulk_str(name);
    }
    Ok(())
}

fn has_acl_category(spec: &CommandSpec, category: &[u8]) -> bool {
    let Value::Array(fields) = &spec.info else { return false };
    let Some(Value::Set(cats) | Value::Array(cats)) = fields.get(6) else { return false };
    cats.iter().any(|c| match c {
        Value::Simple(name) | Value::Bulk(name) => {
            name.strip_prefix(b"@").is_some_and(|n| n.eq_ignore_ascii_case(category))
        }
        _ => false,
    })
}

/// COMMAND INFO [name ...]: an entry per name, null for unknown ones.
pub(super) fn command_info(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() == 2 {
        return command_all(ctx, args);
    }
    let t = table();
    ctx.out.array(args.len() - 2);
    for name in &args[2..] {
        match by_full_name(t, name) {
            Some(spec) => write_info(ctx.out, &spec.info),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// COMMAND DOCS [name ...]: a map from name to docs; unknown names are left out.
pub(super) fn command_docs(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let t = table();
    let specs: Vec<&CommandSpec> = if args.len() == 2 {
        top_level(t).collect()
    } else {
        args[2..].iter().filter_map(|name| by_full_name(t, name)).collect()
    };
    ctx.out.map(specs.len());
    for spec in specs {
        ctx.out.bulk_str(&spec.name);
        ctx.out.value(&spec.docs);
    }
    Ok(())
}

/// COMMAND GETKEYS command [arg ...]
pub(super) fn command_getkeys(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    getkeys(ctx, args, false)
}

/// COMMAND GETKEYSANDFLAGS command [arg ...]
pub(super) fn command_getkeysandflags(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    getkeys(ctx, args, true)
}

fn getkeys(ctx: &mut Ctx, args: &[&[u8]], with_flags: bool) -> CmdResult {
    let line = &args[2..];
    let spec = command::lookup(table(), line).map_err(|_| CmdError::from("ERR Invalid command specified"))?;
    if !keyspecs::has_keys(spec) {
        return Err("ERR The command has no key arguments".into());
    }
    if command::check_arity(spec, line.len()).is_err() {
        return Err("ERR Invalid number of arguments specified for command".into());
    }
    let keys = keyspecs::find_keys(spec, line);
    if keys.is_empty() && !keyspecs::keys_optional(spec) {
        return Err("ERR Invalid arguments specified for command".into());
    }
    ctx.out.array(keys.len());
    for key in keys {
        if with_flags {
            ctx.out.array(2);
            ctx.out.bulk(line[key.pos]);
            let names: Vec<&str> =
                KEY_FLAG_NAMES.iter().filter(|(bit, _)| key.flags & bit != 0).map(|(_, n)| *n).collect();
            ctx.out.set(names.len());
            for name in names {
                ctx.out.simple(name);
            }
        } else {
            ctx.out.bulk(line[key.pos]);
        }
    }
    Ok(())
}

/// COMMAND HELP
pub(super) fn command_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full command.",
        ],
    );
    Ok(())
}
