#!/usr/bin/env python3
"""Extracts Valkey's configuration directives into ferrokey's data files.

Reads the `static_configs[]` table of a Valkey source tree's src/config.c
(plus the headers and server.c next to it, to resolve constants and the
defaults of the directives with hand-written parsers) and writes:

  src/config/valkey-directives.tsv  one row per directive, see the header
  src/config/valkey-commands.txt    the command names `rename-command` accepts

ferrokey embeds both files at build time, so building never needs the Valkey
source. Rerun this script when moving to a new Valkey version.

Usage: scripts/gen-config-table.py /path/to/valkey/src/config.c
"""
import glob
import json
import os
import re
import sys

# C limits on the LP64 platforms Valkey targets, and the syslog facility
# codes of <syslog.h> (only their distinctness matters to ferrokey).
LIMITS = {
    "INT_MAX": 2**31 - 1, "INT_MIN": -(2**31), "UINT_MAX": 2**32 - 1,
    "LONG_MAX": 2**63 - 1, "LONG_MIN": -(2**63), "ULONG_MAX": 2**64 - 1,
    "LLONG_MAX": 2**63 - 1, "LLONG_MIN": -(2**63), "ULLONG_MAX": 2**64 - 1,
    "SSIZE_MAX": 2**63 - 1,
    "LOG_USER": 1 << 3,
    **{f"LOG_LOCAL{i}": (16 + i) << 3 for i in range(8)},
}

CONFIG_FLAGS = {
    "IMMUTABLE_CONFIG": "IMMUTABLE", "SENSITIVE_CONFIG": "SENSITIVE", "DEBUG_CONFIG": "DEBUG",
    "MULTI_ARG_CONFIG": "MULTI_ARG", "HIDDEN_CONFIG": "HIDDEN", "PROTECTED_CONFIG": "PROTECTED",
    "DENY_LOADING_CONFIG": "DENY_LOADING", "VOLATILE_CONFIG": "VOLATILE", "MODIFIABLE_CONFIG": None,
}
NUMERIC_FLAGS = {"MEMORY_CONFIG": "MEMORY", "PERCENT_CONFIG": "PERCENT", "OCTAL_CONFIG": "OCTAL", "INTEGER_CONFIG": None}
NUMERIC_TYPES = {
    "Int": "int", "UInt": "uint", "Long": "long", "ULong": "ulong", "LongLong": "longlong",
    "ULongLong": "ulonglong", "SizeT": "size_t", "SSizeT": "ssize_t", "TimeT": "time_t", "OffT": "off_t",
}
# Build options of a stock `make`; directives behind any other #ifdef are
# not known to a default valkey-server, so ferrokey rejects them too.
KNOWN_IFDEFS = {"LOG_REQ_RES"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Constants:
    """Resolves the macros and enum members of Valkey's headers to values."""

    def __init__(self, header_texts):
        self.raw = {}
        for text in header_texts:
            text = strip_comments(text.replace("\\\n", " "))
            for m in re.finditer(r"^[ \t]*#define[ \t]+(\w+)[ \t]+(.+)$", text, flags=re.M):
                self.raw.setdefault(m.group(1), m.group(2).strip())
            for m in re.finditer(r"\benum\b[^{;]*\{([^}]*)\}", text):
                prev = None
                for item in m.group(1).split(","):
                    name, _, expr = item.partition("=")
                    name = name.strip()
                    if not name:
                        continue
                    implicit = f"({prev}) + 1" if prev else "0"
                    self.raw.setdefault(name, expr.strip() or implicit)
                    prev = name

    def eval(self, expr, depth=0):
        if depth > 20:
            raise ValueError("constant nesting too deep: " + expr)
        expr = expr.strip()
        if re.fullmatch(r'"(?:[^"\\]|\\.)*"', expr):
            return c_string(expr)
        if expr in self.raw and re.fullmatch(r'"(?:[^"\\]|\\.)*"', self.raw[expr].strip()):
            return c_string(self.raw[expr].strip())

        def ident(m):
            word = m.group(0)
            if word in LIMITS:
                return str(LIMITS[word])
            if word in self.raw:
                return "(" + str(self.eval(self.raw[word], depth + 1)) + ")"
            raise ValueError("unknown constant " + word)

        py = re.sub(r"\((?:unsigned |signed )?(?:long long|long|int|size_t|ssize_t|time_t|off_t)\)", "", expr)
        py = re.sub(r"\b0([0-7]+)\b", r"0o\1", py)
        py = re.sub(r"\b(\d+)(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU])\b", r"\1", py)
        py = re.sub(r"\b[A-Za-z_]\w*\b", ident, py)
        py = py.replace("/", "//")
        return int(eval(py, {"__builtins__": {}}))


def c_string(literal):
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def split_top_level(args):
    """Splits a C argument list at commas outside parentheses and strings."""
    out, depth, cur, i = [], 0, "", 0
    while i < len(args):
        c = args[i]
        if c == '"':
            j = i + 1
            while args[j] != '"':
                j += 2 if args[j] == "\\" else 1
            cur += args[i:j + 1]
            i = j + 1
            continue
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur.strip())
    return out


def balanced(text, start):
    """Returns the text inside the parentheses opening at text[start]."""
    depth, i = 0, start
    while True:
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1


def flag_list(expr, table):
    out = []
    for part in expr.split("|"):
        part = part.strip()
        if part not in table:
            raise ValueError("unknown flag " + part)
        if table[part]:
            out.append(table[part])
    return out


def parse_enums(config_c, consts):
    enums = {}
    for m in re.finditer(r"configEnum\s+(\w+)\[\]\s*=\s*\{(.*?)\};", config_c, flags=re.S):
        items = []
        for name, value in re.findall(r'\{\s*"([^"]+)"\s*,\s*([^}]+?)\s*\}', m.group(2)):
            items.append((name, consts.eval(value)))
        enums[m.group(1)] = items
    return enums


def enum_name(items, value, bitflags):
    """The name(s) Valkey prints for an enum value."""
    for name, v in items:
        if v == value:
            return name
    if bitflags:
        names, rest = [], value
        for name, v in items:
            if v and v == rest & v:
                names.append(name)
                rest &= ~v
        if names and not rest:
            return " ".join(names)
    raise ValueError(f"no enum name for {value}")


def special_defaults(src_dir, config_c, consts):
    """CONFIG GET text of the special directives right after startup."""
    server_c = strip_comments(read(os.path.join(src_dir, "server.c")))
    init = server_c[server_c.index("void initServerConfig(void)"):]
    init = init[:init.index("\n}\n")]
    save = re.findall(r"appendServerSaveParams\(([^,]+),([^)]+)\);", init)
    percentiles = re.findall(r"latency_tracking_info_percentiles\[\d+\]\s*=\s*([\d.]+);", init)
    notify = re.search(r"server\.notify_keyspace_events\s*=\s*(\w+);", init).group(1)
    if not save or not percentiles or consts.eval(notify) != 0:
        raise ValueError("initServerConfig() no longer looks as expected")
    cob = re.search(r"clientBufferLimitsDefaults\[[^]]*\]\s*=\s*\{(.*?)\};", config_c, flags=re.S).group(1)
    cob = [[consts.eval(x) for x in split_top_level(row)] for row in re.findall(r"\{([^{}]*)\}", cob)]
    oom = re.search(r"configOOMScoreAdjValuesDefaults\[[^]]*\]\s*=\s*\{([^}]*)\}", config_c).group(1)
    bind = re.findall(r'"([^"]*)"', consts.raw["CONFIG_DEFAULT_BINDADDR"])
    classes = ["normal", "slave", "pubsub"]
    return {
        "dir": "",
        "save": " ".join(f"{consts.eval(s)} {consts.eval(c)}" for s, c in save),
        "client-output-buffer-limit": " ".join(f"{n} {h} {s} {t}" for n, (h, s, t) in zip(classes, cob)),
        "oom-score-adj-values": " ".join(str(consts.eval(x)) for x in oom.split(",")),
        "notify-keyspace-events": "",
        "bind": " ".join(bind),
        "replicaof": "",
        "latency-tracking-info-percentiles": " ".join(p.rstrip("0").rstrip(".") if "." in p else p for p in percentiles),
    }


def parse_static_configs(config_c, consts, enums, specials):
    start = config_c.index("standardConfig static_configs[] = {")
    body = config_c[start:config_c.index("\n};", start)]
    rows, skipped, ifdef = [], [], None
    pos = 0
    pattern = re.compile(r"^[ \t]*#[ \t]*(ifdef|ifndef|if|endif)\b[ \t]*(\w*)|\bcreate(\w+)Config\(", re.M)
    while True:
        m = pattern.search(body, pos)
        if not m:
            break
        if m.group(1):
            if m.group(1) == "endif":
                ifdef = None
            else:
                if m.group(2) not in KNOWN_IFDEFS:
                    raise ValueError("unexpected conditional " + m.group(0))
                ifdef = m.group(2)
            pos = m.end()
            continue
        kind = m.group(3)
        args = split_top_level(balanced(body, m.end() - 1))
        pos = m.end()
        name = c_string(args[0])
        if ifdef:
            skipped.append(name)
            continue
        alias = c_string(args[1]) if args[1] != "NULL" else "-"
        flags = flag_list(args[2], CONFIG_FLAGS)
        lo = hi = "-"
        enum = check = "-"
        if kind == "Bool":
            ctype, default = "bool", "yes" if consts.eval(args[4]) else "no"
            check = args[5]
        elif kind in ("String", "SDS"):
            ctype = "string" if kind == "String" else "sds"
            if args[3] == "EMPTY_STRING_IS_NULL":
                flags.append("EMPTY_IS_NULL")
            default = "" if args[5] == "NULL" else consts.eval(args[5])
            check = args[6]
        elif kind == "Enum":
            ctype = "enum"
            items = enums[args[3]]
            default = enum_name(items, consts.eval(args[5]), "MULTI_ARG" in flags)
            enum = ",".join(f"{n}={v}" for n, v in items)
            check = args[6]
        elif kind in NUMERIC_TYPES:
            ctype = NUMERIC_TYPES[kind]
            lo, hi = consts.eval(args[3]), consts.eval(args[4])
            default = consts.eval(args[6])
            flags += flag_list(args[7], NUMERIC_FLAGS)
            check = args[8]
        elif kind == "Special":
            ctype, default = "special", specials[name]
        else:
            raise ValueError("unknown config kind " + kind)
        check = "-" if check == "NULL" else check
        rows.append([name, alias, ctype, ",".join(flags) or "-", str(lo), str(hi), str(default), enum, check])
    return rows, skipped


def parse_file_only(config_c):
    """Directives the config file accepts beyond the table: include & co,
    and deprecated names that are read and ignored."""
    start = config_c.index("void loadServerConfigFromString(")
    body = config_c[start:config_c.index("\nvoid loadServerConfig(", start)]
    rows = []
    deprecated = re.search(r"deprecatedConfig deprecated_configs\[\] = \{(.*?)\};", body, flags=re.S).group(1)
    for name, lo, hi in re.findall(r'\{"([^"]+)",\s*(\d+),\s*(\d+)\}', deprecated):
        rows.append([name, "-", "deprecated", "-", str(int(lo) - 1), str(int(hi) - 1), "", "-", "-"])
    for m in re.finditer(r'!strcasecmp\(argv\[0\], "([a-z-]+)"\)(?:\s*&&\s*argc\s*(==|>=)\s*(\d+))?', body):
        name, op, argc = m.groups()
        lo = int(argc) - 1 if argc else 0
        hi = lo if op == "==" else "-"
        rows.append([name, "-", "directive", "-", str(lo), str(hi), "", "-", "-"])
    return rows


def command_names(src_dir):
    names = set()
    for path in glob.glob(os.path.join(src_dir, "commands", "*.json")):
        for name, spec in json.loads(read(path)).items():
            if "container" not in spec and "ONLY_SENTINEL" not in spec.get("command_flags", []):
                names.add(name.lower())
    return sorted(names)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    config_path = sys.argv[1]
    src_dir = os.path.dirname(os.path.abspath(config_path))
    config_c = strip_comments(read(config_path))
    consts = Constants([read(os.path.join(src_dir, name)) for name in ("server.h", "version.h")])
    version = consts.eval("VALKEY_VERSION")
    enums = parse_enums(config_c, consts)
    rows, skipped = parse_static_configs(config_c, consts, enums, special_defaults(src_dir, config_c, consts))
    rows += parse_file_only(config_c)
    for row in rows:
        if any("\t" in field or "\n" in field for field in row):
            raise ValueError("field with a tab or newline in " + row[0])

    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "..", "src", "config")
    with open(os.path.join(out_dir, "valkey-directives.tsv"), "w", encoding="utf-8") as w:
        w.write(f"# Valkey {version} configuration directives, generated by scripts/gen-config-table.py; do not edit.\n")
        w.write("# type: bool string sds enum int uint long ulong longlong ulonglong size_t ssize_t time_t off_t\n")
        w.write("#   special (own parser), directive (config file only), deprecated (accepted and ignored).\n")
        w.write("# min/max: numeric bounds, or for directive/deprecated the number of arguments ('-' = no limit).\n")
        w.write("# default: CONFIG GET text at startup ('' for dir: the working directory). enum: name=value list.\n")
        w.write("# check: Valkey's validation function, if any.\n")
        w.write("#name\talias\ttype\tflags\tmin\tmax\tdefault\tenum\tcheck\n")
        for row in rows:
            w.write("\t".join(row) + "\n")
    with open(os.path.join(out_dir, "valkey-commands.txt"), "w", encoding="utf-8") as w:
        w.write(f"# Valkey {version} command names (rename-command checks them), generated by scripts/gen-config-table.py.\n")
        w.write("\n".join(command_names(src_dir)) + "\n")
    print(f"wrote {len(rows)} directives from Valkey {version}; skipped (build option only): {', '.join(skipped)}")


main()
