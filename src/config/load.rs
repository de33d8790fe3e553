//! Startup configuration as valkey-server reads it: the command line turned
//! into config lines appended to the config file (and stdin), included
//! files, and Valkey's fatal error reports.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ferrokey_formats::resp::split_args;

use super::cnum::{os_error_text, repr, trim_line};
use super::table::{FileOnly, COMMANDS, MULTI_ARG, TABLE};
use super::value::Value;
use super::Config;
use crate::server::VALKEY_VERSION;

/// Valkey has no limit and overflows its stack on an include cycle.
const MAX_INCLUDE_DEPTH: usize = 64;

pub(super) fn from_args(args: &[String], read_stdin: impl FnOnce() -> Vec<u8>) -> Result<Config, String> {
    let mut cfg = Config::defaults();
    // Like valkey-server, no arguments at all means no config processing.
    if args.is_empty() {
        return Ok(cfg);
    }
    let mut first_option = 0;
    if !args[0].starts_with('-') {
        cfg.config_file = Some(absolute_path(&args[0]));
        first_option = 1;
    }
    let (options, from_stdin) = options_text(args, first_option);
    let mut text = match &cfg.config_file {
        Some(path) => read_config_file(path, path)?,
        None => Vec::new(),
    };
    if from_stdin {
        text.extend(read_stdin());
    }
    text.push(b'\n');
    text.extend(options);
    let mut loader = Loader {
        cfg: &mut cfg,
        reading_config_file: false,
        save_loaded: false,
        commands: COMMANDS.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect(),
        depth: 0,
    };
    loader.load_text(&text)?;
    cfg.refresh();
    Ok(cfg)
}

/// The config file path made absolute against the working directory, with
/// leading `../` folded into it, as Valkey records it.
fn absolute_path(arg: &str) -> PathBuf {
    let rel = arg.trim_matches([' ', '\r', '\n', '\t']);
    if rel.starts_with('/') {
        return PathBuf::from(rel);
    }
    let Ok(cwd) = std::env::current_dir() else { return PathBuf::from(rel) };
    let mut base = cwd.to_string_lossy().into_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    let mut rel = rel;
    while let Some(rest) = rel.strip_prefix("../") {
        rel = rest;
        if base.len() > 1 {
            let cut = base[..base.len() - 1].rfind('/').map_or(0, |i| i + 1);
            base.truncate(cut);
        }
    }
    PathBuf::from(base + rel)
}

/// Turns command line options into config lines as valkey-server does:
/// `--name` starts a line, following words are appended quoted, and a
/// single argument holding several words ("--port 6380") is taken as is.
/// Returns the lines and whether `-` asked for the config from stdin.
fn options_text(args: &[String], first: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut from_stdin = false;
    // False right after a bare `--name`, whose value may itself start with "--".
    let mut have_value = true;
    let last = args.len() - 1;
    for (j, arg) in args.iter().enumerate().skip(first) {
        if arg == "-" && (j == 0 || j == last) {
            from_stdin = true;
        } else if have_value && arg.starts_with("--") {
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(&arg.as_bytes()[2..]);
            out.push(b' ');
            let words = split_args(arg.as_bytes()).map_or(0, |w| w.len());
            have_value = words != 1;
            let next_is_option = j != last && args[j + 1].starts_with("--");
            let is = |name: &str| arg.eq_ignore_ascii_case(name);
            // `--save` with nothing after it means `save ""`; `--sentinel`
            // takes no value. Both compatibility rules come from Valkey.
            if words == 1 && next_is_option && (is("--save") || is("--sentinel")) {
                if is("--save") {
                    out.extend_from_slice(b"\"\"");
                }
                have_value = true;
            } else if words == 1 && j == last && is("--save") {
                out.extend_from_slice(b"\"\"");
            }
        } else {
            out.extend(repr(arg.as_bytes()).into_bytes());
            out.push(b' ');
            have_value = true;
        }
    }
    (out, from_stdin)
}

/// Reads a config file; `shown` is the name the error message uses.
fn read_config_file(path: &Path, shown: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("Fatal error, can't open config file '{}': {}", shown.display(), os_error_text(&e)))
}

/// The text Valkey prints on a config error, without the final newline.
fn fatal(at: Option<(usize, &[u8])>, why: &str) -> String {
    let mut text = format!("\n*** FATAL CONFIG FILE ERROR (Version {VALKEY_VERSION}) ***\n");
    if let Some((line_number, line)) = at {
        text.push_str(&format!(
            "Reading the configuration file, at line {line_number}\n>>> '{}'\n",
            String::from_utf8_lossy(line)
        ));
    }
    text + why
}

/// Why a line failed: the reason to report with it, or an already complete
/// report from an included file.
enum Failure {
    Reason(String),
    Report(String),
}

impl From<&str> for Failure {
    fn from(why: &str) -> Failure {
        Failure::Reason(why.to_string())
    }
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure::Reason(why)
    }
}

struct Loader<'a> {
    cfg: &'a mut Config,
    /// Valkey clears this at the end of every file it reads, included ones
    /// too, so `save` lines after an include replace instead of adding up.
    reading_config_file: bool,
    /// Whether a `save` line was read: the first one replaces the default
    /// save points, later ones (while reading a file) add to them.
    save_loaded: bool,
    /// Command names as renamed so far, lowercase, for `rename-command`.
    commands: HashSet<String>,
    depth: usize,
}

impl Loader<'_> {
    fn load_text(&mut self, text: &[u8]) -> Result<(), String> {
        self.reading_config_file = true;
        let lines: Vec<&[u8]> = if text.is_empty() { Vec::new() } else { text.split(|&c| c == b'\n').collect() };
        for (i, raw) in lines.iter().enumerate() {
            let line = trim_line(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            match self.load_line(line) {
                Ok(()) => {}
                Err(Failure::Reason(why)) => return Err(fatal(Some((i + 1, line)), &why)),
                Err(Failure::Report(text)) => return Err(text),
            }
        }
        self.check_loaded().map_err(|why| fatal(None, &why))?;
        self.reading_config_file = false;
        Ok(())
    }

    fn load_line(&mut self, line: &[u8]) -> Result<(), Failure> {
        let argv = split_args(line).ok_or("Unbalanced quotes in configuration line")?;
        let Some(first) = argv.first() else { return Ok(()) };
        let name = first.to_ascii_lowercase();
        if let Some(e) = TABLE.lookup(&name) {
            let d = &TABLE.directives[e.index];
            let multi = d.has(MULTI_ARG);
            if !multi && argv.len() != 2 {
                return Err("wrong number of arguments".into());
            }
            // A multi-word value may come as one argument (`--save "3600 1"`),
            // but an empty one must stay (`save ""`).
            let args = if multi && argv.len() == 2 && !argv[1].is_empty() {
                split_args(&argv[1]).unwrap_or_default()
            } else {
                argv[1..].to_vec()
            };
            self.assign(e.index, &args)?;
            if !self.cfg.given.contains(&e.index) {
                self.cfg.given.push(e.index);
            }
            return Ok(());
        }
        let shown = String::from_utf8_lossy(&name).into_owned();
        let nargs = argv.len() - 1;
        let kind = TABLE.file_directive(&shown).filter(|f| f.accepts(nargs)).map(|f| f.kind);
        match kind {
            Some(FileOnly::Deprecated) => Ok(()),
            Some(FileOnly::Include) => self.include(&argv[1]),
            Some(FileOnly::RenameCommand) => {
                self.rename_command(&argv[1], &argv[2])?;
                self.ignore(shown);
                Ok(())
            }
            // A bare `sentinel` line is fine: only `--sentinel` starts Valkey's sentinel mode.
            Some(FileOnly::Sentinel) if nargs > 0 => Err("sentinel directive while not in sentinel mode".into()),
            Some(FileOnly::User | FileOnly::LoadModule | FileOnly::Sentinel) => {
                self.ignore(shown);
                Ok(())
            }
            // Module directives are named "module.name".
            None if name.contains(&b'.') => {
                if nargs == 0 {
                    return Err("Module config specified without value".into());
                }
                self.ignore(shown);
                Ok(())
            }
            None => Err("Bad directive or wrong number of arguments".into()),
        }
    }

    fn ignore(&mut self, name: String) {
        if !self.cfg.ignored.contains(&name) {
            self.cfg.ignored.push(name);
        }
    }

    fn assign(&mut self, index: usize, args: &[Vec<u8>]) -> Result<(), String> {
        let reset = args.len() == 1 && args[0].is_empty();
        let kept = match &self.cfg.values[index] {
            Value::Save(points) if self.reading_config_file && self.save_loaded && !reset => points.clone(),
            _ => Vec::new(),
        };
        self.cfg.assign(index, args)?;
        if let (Value::Save(points), true) = (&mut self.cfg.values[index], self.reading_config_file) {
            points.splice(0..0, kept);
            self.save_loaded = true;
        }
        Ok(())
    }

    /// Reads an included file, or every file a glob pattern matches (none
    /// is fine then), relative to the `dir` in effect, as Valkey has
    /// already changed into it.
    fn include(&mut self, arg: &[u8]) -> Result<(), Failure> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err("Too many nested include directives".into());
        }
        let dir = self.cfg.dir_value().to_path_buf();
        let text = if arg.iter().any(|c| b"*?[".contains(c)) {
            let mut text = Vec::new();
            for path in glob_paths(&dir, arg) {
                text.extend(read_config_file(&path, &path).map_err(Failure::Report)?);
            }
            text
        } else {
            let shown = Path::new(OsStr::from_bytes(arg));
            read_config_file(&dir.join(shown), shown).map_err(Failure::Report)?
        };
        self.depth += 1;
        let result = self.load_text(&text);
        self.depth -= 1;
        result.map_err(Failure::Report)
    }

    fn rename_command(&mut self, from: &[u8], to: &[u8]) -> Result<(), &'static str> {
        let from = String::from_utf8_lossy(from).to_ascii_lowercase();
        if !self.commands.remove(&from) {
            return Err("No such command in rename-command");
        }
        // An empty new name removes the command.
        if !to.is_empty() && !self.commands.insert(String::from_utf8_lossy(to).to_ascii_lowercase()) {
            return Err("Target command name already exists");
        }
        Ok(())
    }

    /// The checks Valkey runs after reading each file.
    fn check_loaded(&mut self) -> Result<(), String> {
        let logfile = self.cfg.string_value("logfile");
        if !logfile.is_empty() {
            // Valkey opens it early so a bad path fails at startup.
            let path = self.cfg.dir_value().join(OsStr::from_bytes(&logfile));
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| format!("Can't open the log file: {}", os_error_text(&e)))?;
        }
        if self.cfg.bool_value("cluster-enabled") {
            if matches!(self.cfg.value("replicaof"), Value::ReplicaOf(Some(_))) {
                return Err("replicaof directive not allowed in cluster mode".into());
            }
            // Cluster mode has a single database.
            let databases = TABLE.index("databases");
            self.cfg.values[databases] = Value::Num(1);
        }
        Ok(())
    }
}

/// Files matching a glob(3) pattern, relative ones against `dir`, sorted.
fn glob_paths(dir: &Path, pattern: &[u8]) -> Vec<PathBuf> {
    let mut full = Vec::new();
    if pattern.first() != Some(&b'/') {
        // The directory is literal text in the pattern: escape its wildcards.
        for &c in dir.as_os_str().as_bytes() {
            if b"*?[\\".contains(&c) {
                full.push(b'\\');
            }
            full.push(c);
        }
        full.push(b'/');
    }
    full.extend_from_slice(pattern);
    let Ok(c_pattern) = CString::new(full) else { return Vec::new() };
    // SAFETY: an all-zero glob_t is the documented initial state; glob()
    // fills it from a valid NUL-terminated pattern, the path strings are
    // read while it is alive, and globfree() releases it exactly once.
    unsafe {
        let mut found: libc::glob_t = std::mem::zeroed();
        let mut paths = Vec::new();
        if libc::glob(c_pattern.as_ptr(), 0, None, &mut found) == 0 {
            for i in 0..found.gl_pathc {
                let path = CStr::from_ptr(*found.gl_pathv.add(i));
                paths.push(PathBuf::from(OsStr::from_bytes(path.to_bytes())));
            }
        }
        libc::globfree(&mut found);
        paths
    }
}
