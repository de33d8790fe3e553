//! The directive table: every directive Valkey knows, read from
//! `valkey-directives.tsv` (generated from Valkey's config.c by
//! scripts/gen-config-table.py) the first time it is needed.

use std::collections::HashMap;
use std::sync::LazyLock;

const TSV: &str = include_str!("valkey-directives.tsv");

/// Top-level command names `rename-command` accepts, one per line.
pub(super) const COMMANDS: &str = include_str!("valkey-commands.txt");

pub(super) const IMMUTABLE: u16 = 1 << 0;
pub(super) const SENSITIVE: u16 = 1 << 1;
pub(super) const MULTI_ARG: u16 = 1 << 2;
pub(super) const HIDDEN: u16 = 1 << 3;
pub(super) const PROTECTED: u16 = 1 << 4;
pub(super) const DENY_LOADING: u16 = 1 << 5;
pub(super) const VOLATILE: u16 = 1 << 6;
pub(super) const MEMORY: u16 = 1 << 7;
pub(super) const PERCENT: u16 = 1 << 8;
pub(super) const OCTAL: u16 = 1 << 9;
pub(super) const EMPTY_IS_NULL: u16 = 1 << 10;

/// The C type Valkey stores a numeric directive in. Only signedness matters
/// here: it decides how bounds are compared and reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum NumType {
    Signed,
    Unsigned,
}

/// Directives whose value has its own syntax.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Special {
    Dir,
    Save,
    ClientOutputBufferLimit,
    OomScoreAdjValues,
    NotifyKeyspaceEvents,
    Bind,
    ReplicaOf,
    LatencyTrackingInfoPercentiles,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Bool,
    /// Valkey's `string` and `sds` directives behave the same from outside.
    Str,
    Enum,
    Num(NumType),
    Special(Special),
}

/// Extra validation Valkey runs on a parsed value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Check {
    ActiveDefrag,
    ClusterConfigFile,
    DbFilename,
    AofFilename,
    AofDirname,
    ShutdownFlags,
    AnnouncedNodename,
    AnnouncedHostname,
    IpV4,
    IpV6,
    ProcTitleTemplate,
}

#[derive(Debug)]
pub(super) struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub flags: u16,
    /// Numeric bounds, inclusive (i128 holds both LLONG_MIN and ULLONG_MAX).
    pub min: i128,
    pub max: i128,
    /// The CONFIG GET text at startup (`dir`: empty, it is the working directory).
    pub default: &'static str,
    /// Enum names and values, in Valkey's order (which decides printed names).
    pub enum_values: Vec<(&'static str, i64)>,
    pub check: Option<Check>,
}

impl Directive {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Config-file-only directives, outside Valkey's CONFIG table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FileOnly {
    Include,
    RenameCommand,
    User,
    LoadModule,
    Sentinel,
    /// Old names still read and ignored.
    Deprecated,
}

#[derive(Debug)]
pub(super) struct FileDirective {
    pub name: &'static str,
    pub kind: FileOnly,
    pub min_args: usize,
    pub max_args: Option<usize>,
}

impl FileDirective {
    pub fn accepts(&self, nargs: usize) -> bool {
        nargs >= self.min_args && self.max_args.is_none_or(|max| nargs <= max)
    }
}

/// A name as CONFIG GET/SET resolve it: Valkey registers an alias as a
/// separate entry, which matters for duplicate detection and error texts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Entry {
    pub index: usize,
    pub alias: bool,
}

pub(super) struct Table {
    pub directives: Vec<Directive>,
    pub file_only: Vec<FileDirective>,
    by_name: HashMap<&'static str, Entry>,
}

impl Table {
    /// Case-insensitive lookup of a directive or alias name.
    pub fn lookup(&self, name: &[u8]) -> Option<Entry> {
        let lower = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(lower.as_str()).copied()
    }

    /// Index of a canonical name; panics on names missing from the table,
    /// which the tests rule out for every name the code uses.
    pub fn index(&self, name: &str) -> usize {
        match self.by_name.get(name) {
            Some(e) if !e.alias => e.index,
            _ => panic!("directive {name} is not in the table"),
        }
    }

    pub fn entry_name(&self, entry: Entry) -> &'static str {
        let d = &self.directives[entry.index];
        if entry.alias {
            d.alias.expect("alias entry of a directive without alias")
        } else {
            d.name
        }
    }

    /// Every name (canonical, then its alias) in table order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.directives.iter().enumerate().flat_map(|(index, d)| {
            let alias = d.alias.map(|_| Entry { index, alias: true });
            std::iter::once(Entry { index, alias: false }).chain(alias)
        })
    }

    pub fn file_directive(&self, name: &str) -> Option<&FileDirective> {
        self.file_only.iter().find(|f| f.name == name)
    }
}

pub(super) static TABLE: LazyLock<Table> = LazyLock::new(|| parse(TSV));

fn parse(tsv: &'static str) -> Table {
    let mut directives = Vec::new();
    let mut file_only = Vec::new();
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&'static str> = line.split('\t').collect();
        assert_eq!(f.len(), 9, "bad directive row: {line}");
        let opt = |s: &'static str| (s != "-").then_some(s);
        let file_kind = match f[2] {
            "deprecated" => Some(FileOnly::Deprecated),
            "directive" => Some(match f[0] {
                "include" => FileOnly::Include,
                "rename-command" => FileOnly::RenameCommand,
                "user" => FileOnly::User,
                "loadmodule" => FileOnly::LoadModule,
                "sentinel" => FileOnly::Sentinel,
                other => panic!("unknown config file directive {other}"),
            }),
            _ => None,
        };
        if let Some(kind) = file_kind {
            file_only.push(FileDirective {
                name: f[0],
                kind,
                min_args: f[4].parse().expect("argument count"),
                max_args: opt(f[5]).map(|n| n.parse().expect("argument count")),
            });
            continue;
        }
        let kind = match f[2] {
            "bool" => Kind::Bool,
            "string" | "sds" => Kind::Str,
            "enum" => Kind::Enum,
            "int" | "long" | "longlong" | "ssize_t" | "time_t" | "off_t" => Kind::Num(NumType::Signed),
            "uint" | "ulong" | "ulonglong" | "size_t" => Kind::Num(NumType::Unsigned),
            "special" => Kind::Special(special(f[0])),
            other => panic!("unknown directive type {other}"),
        };
        let bound = |s: &str| if s == "-" { 0 } else { s.parse::<i128>().expect("numeric bound") };
        directives.push(Directive {
            name: f[0],
            alias: opt(f[1]),
            kind,
            flags: opt(f[3]).map_or(0, |s| s.split(',').map(flag).fold(0, |a, b| a | b)),
            min: bound(f[4]),
            max: bound(f[5]),
            default: f[6],
            enum_values: opt(f[7]).map_or(Vec::new(), |s| {
                s.split(',')
                    .map(|item| {
                        let (name, value) = item.split_once('=').expect("enum item");
                        (name, value.parse().expect("enum value"))
                    })
                    .collect()
            }),
            check: opt(f[8]).map(check),
        });
    }
    let mut by_name = HashMap::new();
    for (index, d) in directives.iter().enumerate() {
        by_name.insert(d.name, Entry { index, alias: false });
        if let Some(alias) = d.alias {
            by_name.insert(alias, Entry { index, alias: true });
        }
    }
    Table { directives, file_only, by_name }
}

fn flag(name: &str) -> u16 {
    match name {
        "IMMUTABLE" => IMMUTABLE,
        "SENSITIVE" => SENSITIVE,
        "MULTI_ARG" => MULTI_ARG,
        "HIDDEN" => HIDDEN,
        "PROTECTED" => PROTECTED,
        "DENY_LOADING" => DENY_LOADING,
        "VOLATILE" => VOLATILE,
        "MEMORY" => MEMORY,
        "PERCENT" => PERCENT,
        "OCTAL" => OCTAL,
        "EMPTY_IS_NULL" => EMPTY_IS_NULL,
        // Only Valkey's DEBUG CONFIG dump uses it.
        "DEBUG" => 0,
        other => panic!("unknown directive flag {other}"),
    }
}

fn special(name: &str) -> Special {
    match name {
        "dir" => Special::Dir,
        "save" => Special::Save,
        "client-output-buffer-limit" => Special::ClientOutputBufferLimit,
        "oom-score-adj-values" => Special::OomScoreAdjValues,
        "notify-keyspace-events" => Special::NotifyKeyspaceEvents,
        "bind" => Special::Bind,
        "replicaof" => Special::ReplicaOf,
        "latency-tracking-info-percentiles" => Special::LatencyTrackingInfoPercentiles,
        other => panic!("no parser for special directive {other}"),
    }
}

fn check(name: &str) -> Check {
    match name {
        "isValidActiveDefrag" => Check::ActiveDefrag,
        "isValidClusterConfigFile" => Check::ClusterConfigFile,
        "isValidDBfilename" => Check::DbFilename,
        "isValidAOFfilename" => Check::AofFilename,
        "isValidAOFdirname" => Check::AofDirname,
        "isValidShutdownOnSigFlags" => Check::ShutdownFlags,
        "isValidAnnouncedNodename" => Check::AnnouncedNodename,
        "isValidAnnouncedHostname" => Check::AnnouncedHostname,
        "isValidIpV4" => Check::IpV4,
        "isValidIpV6" => Check::IpV6,
        "isValidProcTitleTemplate" => Check::ProcTitleTemplate,
        other => panic!("no implementation of the {other} check"),
    }
}
