//! Cluster commands on a server without cluster support, answered as
//! Valkey 8 answers them with `cluster-enabled no`: READONLY and READWRITE
//! succeed (cluster-aware clients send them to every node they use, and
//! valkey-cli --bigkeys does), ASKING and every CLUSTER subcommand answer
//! that cluster support is disabled.

use crate::command::{CmdResult, Ctx, Handler};

const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

pub const COMMANDS: &[(&str, Handler)] = &[
    ("readonly", ok),
    ("readwrite", ok),
    ("asking", disabled),
    ("cluster|addslots", disabled),
    ("cluster|addslotsrange", disabled),
    ("cluster|bumpepoch", disabled),
    ("cluster|count-failure-reports", disabled),
    ("cluster|countkeysinslot", disabled),
    ("cluster|delslots", disabled),
    ("cluster|delslotsrange", disabled),
    ("cluster|failover", disabled),
    ("cluster|flushslots", disabled),
    ("cluster|forget", disabled),
    ("cluster|getkeysinslot", disabled),
    ("cluster|help", disabled),
    ("cluster|info", disabled),
    ("cluster|keyslot", disabled),
    ("cluster|links", disabled),
    ("cluster|meet", disabled),
    ("cluster|myid", disabled),
    ("cluster|myshardid", disabled),
    ("cluster|nodes", disabled),
    ("cluster|replicas", disabled),
    ("cluster|replicate", disabled),
    ("cluster|reset", disabled),
    ("cluster|saveconfig", disabled),
    ("cluster|set-config-epoch", disabled),
    ("cluster|setslot", disabled),
    ("cluster|shards", disabled),
    ("cluster|slaves", disabled),
    ("cluster|slot-stats", disabled),
    ("cluster|slots", disabled),
];

fn ok(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    Ok(())
}

fn disabled(_ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err(CLUSTER_DISABLED.into())
}
