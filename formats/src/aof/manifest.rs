//! The multi-part AOF manifest (`<appendfilename>.manifest` in
//! `appenddirname`) and the names of the files it lists.
//!
//! A manifest is a text file of lines `file <name> seq <n> type <t>`:
//! keyword/value pairs in any order (more pairs are tolerated, for
//! forward compatibility), split like a config line (a name with spaces or
//! unusual bytes is written in double quotes with C escapes), `t` one of
//! `b` (base), `h` (history: left over from an earlier rewrite, to be
//! deleted) and `i` (incr). Lines starting with `#` are comments. Every
//! line, the last one included, ends with `\n`; lines are at most 1024
//! bytes. At most one base; incr sequence numbers increase strictly. The
//! writer puts the base first, then history, then incr files.
//!
//! File names: base `<appendfilename>.<seq>.base.rdb` (RDB preamble) or
//! `.base.aof` (commands), incr `<appendfilename>.<seq>.incr.aof`; while
//! a rewrite runs, the new incr file is `temp-<appendfilename>.incr`, and
//! the manifest is written as `temp-<appendfilename>.manifest` then
//! renamed.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Longest manifest line, `\n` included.
pub const MANIFEST_LINE_MAX: usize = 1024;

/// The kind of a file listed in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AofFileType {
    /// The snapshot the last rewrite wrote (RDB or commands).
    Base,
    /// A file of an earlier generation, kept until it is deleted.
    History,
    /// Commands written since the base.
    Incr,
}

impl AofFileType {
    /// The letter the manifest uses.
    pub fn letter(self) -> u8 {
        match self {
            AofFileType::Base => b'b',
            AofFileType::History => b'h',
            AofFileType::Incr => b'i',
        }
    }

    pub fn from_letter(c: u8) -> Option<Self> {
        match c {
            b'b' => Some(AofFileType::Base),
            b'h' => Some(AofFileType::History),
            b'i' => Some(AofFileType::Incr),
            _ => None,
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofInfo {
    /// A bare file name (no directory), as bytes: Unix file names need
    /// not be UTF-8.
    pub file_name: Vec<u8>,
    pub seq: i64,
    pub file_type: AofFileType,
}

impl AofInfo {
    /// The file's path inside the AOF directory.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(name_as_path(&self.file_name))
    }

    /// The name, for messages.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.file_name).into_owned()
    }
}

fn name_as_path(name: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(name))
}

/// The manifest: which files make up the AOF, in loading order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub base: Option<AofInfo>,
    /// History files, in manifest order (not loaded).
    pub history: Vec<AofInfo>,
    /// Incr files, sequence numbers increasing.
    pub incr: Vec<AofInfo>,
    /// Sequence number of the current base (0 before any): the next base
    /// gets the one after.
    pub base_seq: i64,
    /// Sequence number of the last incr file (0 before any).
    pub incr_seq: i64,
}

/// What is wrong with a manifest.
#[derive(Debug)]
pub enum ManifestErrorKind {
    Io(io::Error),
    /// Not a single line.
    Empty,
    /// A line longer than [`MANIFEST_LINE_MAX`], or one without its `\n`
    /// (the last line included).
    LineTooLong,
    /// A blank line, unbalanced quotes, fewer than three keyword/value
    /// pairs, or a missing (or zero) name, sequence or type.
    InvalidFormat,
    /// A name with a `/` or `\`.
    FileIsPath,
    /// A second base file.
    DuplicateBase,
    /// An incr file whose sequence number is not above the previous one's.
    NonMonotonicSeq {
        seq: i64,
        previous: i64,
    },
    UnknownType(u8),
}

/// A manifest error, with the line it was found on.
#[derive(Debug)]
pub struct ManifestError {
    /// Line number (from 1) and the line's text (trimmed), when the error
    /// is about one line.
    pub line: Option<(usize, Vec<u8>)>,
    pub kind: ManifestErrorKind,
}

impl ManifestError {
    fn at(number: usize, text: &[u8], kind: ManifestErrorKind) -> Self {
        ManifestError { line: Some((number, text.to_vec())), kind }
    }

    /// The reason alone.
    pub fn reason(&self) -> String {
        match &self.kind {
            ManifestErrorKind::Io(e) => format!("can't read the AOF manifest: {e}"),
            ManifestErrorKind::Empty => "the AOF manifest is empty".into(),
            ManifestErrorKind::LineTooLong => format!(
                "invalid AOF manifest: a line longer than {MANIFEST_LINE_MAX} bytes or without its final newline"
            ),
            ManifestErrorKind::InvalidFormat => {
                "Invalid AOF manifest file format: expected 'file <name> seq <number> type <b|h|i>'".into()
            }
            ManifestErrorKind::FileIsPath => "invalid AOF manifest: a file must be a bare file name, not a path".into(),
            ManifestErrorKind::DuplicateBase => "invalid AOF manifest: more than one base file".into(),
            ManifestErrorKind::NonMonotonicSeq { seq, previous } => {
                format!("invalid AOF manifest: incr file sequence numbers must increase, got {seq} after {previous}")
            }
            ManifestErrorKind::UnknownType(t) => {
                format!("invalid AOF manifest: unknown file type '{}'", crate::rdb::escape_bytes(&[*t]))
            }
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())?;
        if let Some((n, text)) = &self.line {
            write!(f, " (line {n}: '{}')", crate::rdb::escape_bytes(text))?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl Manifest {
    /// Parses a manifest with Valkey's rules (see the module documentation).
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let mut manifest = Manifest::default();
        let mut line_number = 0;
        let mut rest = text;
        while !rest.is_empty() {
            // Valkey reads lines with a fixed buffer, so a longer line comes
            // in pieces; each piece is judged on its own.
            let piece_len = match memchr::memchr(b'\n', &rest[..rest.len().min(MANIFEST_LINE_MAX)]) {
                Some(i) => i + 1,
                None => rest.len().min(MANIFEST_LINE_MAX),
            };
            let piece = &rest[..piece_len];
            rest = &rest[piece_len..];
            line_number += 1;
            if piece[0] == b'#' {
                continue;
            }
            // The line is a C string there: a NUL byte ends it.
            let line = until_nul(piece);
            if !line.contains(&b'\n') {
                return Err(ManifestError::at(line_number, trim(line), ManifestErrorKind::LineTooLong));
            }
            let line = trim(line);
            let info = parse_line(line).map_err(|kind| ManifestError::at(line_number, line, kind))?;
            manifest.add(info).map_err(|kind| ManifestError::at(line_number, line, kind))?;
        }
        if line_number == 0 {
            return Err(ManifestError { line: None, kind: ManifestErrorKind::Empty });
        }
        Ok(manifest)
    }

    /// Reads and parses the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let text = fs::read(path).map_err(|e| ManifestError { line: None, kind: ManifestErrorKind::Io(e) })?;
        Manifest::parse(&text)
    }

    fn add(&mut self, info: AofInfo) -> Result<(), ManifestErrorKind> {
        match info.file_type {
            AofFileType::Base => {
                if self.base.is_some() {
                    return Err(ManifestErrorKind::DuplicateBase);
                }
                self.base_seq = info.seq;
                self.base = Some(info);
            }
            AofFileType::History => self.history.push(info),
            AofFileType::Incr => {
                // Valkey compares with the largest so far, starting from 0.
                let previous = self.incr.last().map_or(0, |i| i.seq);
                if info.seq <= previous {
                    return Err(ManifestErrorKind::NonMonotonicSeq { seq: info.seq, previous });
                }
                self.incr_seq = info.seq;
                self.incr.push(info);
            }
        }
        Ok(())
    }

    /// The manifest's text: the base, history files, then incr files.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for info in self.base.iter().chain(&self.history).chain(&self.incr) {
            out.extend_from_slice(b"file ");
            if needs_quoting(&info.file_name) {
                crate::repr::quote_into(&mut out, &info.file_name);
            } else {
                out.extend_from_slice(&info.file_name);
            }
            out.extend_from_slice(format!(" seq {} type {}\n", info.seq, info.file_type.letter() as char).as_bytes());
        }
        out
    }

    /// True when the manifest lists nothing to load.
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incr.is_empty()
    }

    /// The files to load, in order: the base, then the incr files.
    pub fn files_to_load(&self) -> impl Iterator<Item = &AofInfo> {
        self.base.iter().chain(&self.incr)
    }

    /// Starts a new base file, as a rewrite does: the current base (if any)
    /// becomes the first history file, and the new one gets the next
    /// base sequence number. Returns the new base.
    pub fn new_base(&mut self, appendfilename: impl AsRef<[u8]>, rdb_preamble: bool) -> &AofInfo {
        if let Some(mut old) = self.base.take() {
            old.file_type = AofFileType::History;
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let file_name = base_file_name(appendfilename.as_ref(), self.base_seq, rdb_preamble);
        self.base.insert(AofInfo { file_name, seq: self.base_seq, file_type: AofFileType::Base })
    }

    /// Adds a new incr file with the next incr sequence number.
    pub fn new_incr(&mut self, appendfilename: impl AsRef<[u8]>) -> &AofInfo {
        self.incr_seq += 1;
        let file_name = incr_file_name(appendfilename.as_ref(), self.incr_seq);
        self.incr.push(AofInfo { file_name, seq: self.incr_seq, file_type: AofFileType::Incr });
        &self.incr[self.incr.len() - 1]
    }

    /// The incr file to append to: the last one, or a new one when there is
    /// none.
    pub fn last_incr_or_new(&mut self, appendfilename: impl AsRef<[u8]>) -> &AofInfo {
        if self.incr.is_empty() {
            return self.new_incr(appendfilename);
        }
        &self.incr[self.incr.len() - 1]
    }

    /// After a successful rewrite, the incr files it covers become history
    /// (put before the existing history files, in their order). With
    /// `keep_last` (the AOF is on and writing to the last incr file), the
    /// last incr file stays.
    pub fn mark_rewritten_incr_as_history(&mut self, keep_last: bool) {
        let keep = if keep_last { self.incr.len().min(1) } else { 0 };
        let moved: Vec<AofInfo> = self
            .incr
            .drain(..self.incr.len() - keep)
            .map(|mut info| {
                info.file_type = AofFileType::History;
                info
            })
            .collect();
        self.history.splice(0..0, moved);
    }

    /// Removes the history files from the manifest and returns them (for
    /// the caller to delete).
    pub fn take_history(&mut self) -> Vec<AofInfo> {
        std::mem::take(&mut self.history)
    }

    /// The manifest an old single-file AOF is upgraded with: that file,
    /// moved into the AOF directory under its own name, as base 1.
    pub fn for_old_style_file(appendfilename: impl AsRef<[u8]>) -> Manifest {
        let base = AofInfo { file_name: appendfilename.as_ref().to_vec(), seq: 1, file_type: AofFileType::Base };
        Manifest { base: Some(base), base_seq: 1, ..Manifest::default() }
    }

    /// Whether a server finding `appendfilename` in its working directory
    /// upgrades it into the AOF directory (Valkey's rule), given whether the
    /// AOF directory exists, this manifest read from it (empty when there
    /// is none) and whether a file named `appendfilename` exists inside the
    /// AOF directory. Call only when the old file exists.
    pub fn old_style_upgrade_needed(
        &self,
        appendfilename: impl AsRef<[u8]>,
        dir_exists: bool,
        file_in_dir_exists: bool,
    ) -> bool {
        let name = appendfilename.as_ref();
        !dir_exists
            || self.is_empty()
            || (self.incr.is_empty() && self.base.as_ref().is_some_and(|b| b.file_name == name) && !file_in_dir_exists)
    }

    /// Checks the set of files a server would load: a base (if any) of type
    /// base first, incr files of type incr with increasing sequence
    /// numbers, bare names, and every one of them present in `dir` as a
    /// regular file. Returns their total size.
    pub fn check_files(&self, dir: &Path) -> Result<u64, ManifestSetError> {
        if let Some(base) = &self.base {
            if base.file_type != AofFileType::Base {
                return Err(ManifestSetError::Inconsistent(format!(
                    "the base file {} is not of type b",
                    base.name_lossy()
                )));
            }
        }
        let mut previous = 0;
        for info in &self.incr {
            if info.file_type != AofFileType::Incr {
                return Err(ManifestSetError::Inconsistent(format!(
                    "the incr file {} is not of type i",
                    info.name_lossy()
                )));
            }
            if info.seq <= previous {
                return Err(ManifestSetError::Inconsistent(format!(
                    "the incr file {} has sequence number {} after {previous}",
                    info.name_lossy(),
                    info.seq
                )));
            }
            previous = info.seq;
        }
        let mut total = 0;
        for info in self.files_to_load() {
            if info.file_name.contains(&b'/') || info.file_name.contains(&b'\\') {
                return Err(ManifestSetError::Inconsistent(format!(
                    "{} is a path, not a file name",
                    info.name_lossy()
                )));
            }
            match fs::metadata(info.path_in(dir)) {
                Ok(meta) if meta.is_file() => total += meta.len(),
                Ok(_) => return Err(ManifestSetError::NotAFile(info.name_lossy())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ManifestSetError::Missing(info.name_lossy()))
                }
                Err(e) => return Err(ManifestSetError::Io(info.name_lossy(), e)),
            }
        }
        Ok(total)
    }

    /// Writes the manifest into `dir` as Valkey does: to
    /// `temp-<appendfilename>.manifest`, synced, renamed over
    /// `<appendfilename>.manifest`, and the directory synced.
    pub fn write_to_dir(&self, dir: &Path, appendfilename: impl AsRef<[u8]>) -> io::Result<()> {
        let name = appendfilename.as_ref();
        let temp = dir.join(name_as_path(&temp_manifest_file_name(name)));
        let dest = dir.join(name_as_path(&manifest_file_name(name)));
        let mut file = fs::File::create(&temp)?;
        file.write_all(&self.to_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &dest)?;
        fs::File::open(dir)?.sync_all()
    }
}

/// Why the files of a manifest cannot be loaded.
#[derive(Debug)]
pub enum ManifestSetError {
    /// A listed file does not exist.
    Missing(String),
    /// A listed name is something other than a regular file.
    NotAFile(String),
    Io(String, io::Error),
    /// The manifest itself breaks a rule (only possible for one built in
    /// code: parsing refuses these).
    Inconsistent(String),
}

impl fmt::Display for ManifestSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestSetError::Missing(name) => write!(f, "the AOF file {name} listed in the manifest doesn't exist"),
            ManifestSetError::NotAFile(name) => write!(f, "the AOF file {name} listed in the manifest is not a file"),
            ManifestSetError::Io(name, e) => write!(f, "can't read the AOF file {name}: {e}"),
            ManifestSetError::Inconsistent(why) => write!(f, "inconsistent AOF manifest: {why}"),
        }
    }
}

impl std::error::Error for ManifestSetError {}

/// `<appendfilename>.manifest`
pub fn manifest_file_name(appendfilename: impl AsRef<[u8]>) -> Vec<u8> {
    [appendfilename.as_ref(), b".manifest"].concat()
}

/// `temp-<appendfilename>.manifest`
pub fn temp_manifest_file_name(appendfilename: impl AsRef<[u8]>) -> Vec<u8> {
    [b"temp-", appendfilename.as_ref(), b".manifest"].concat()
}

/// `<appendfilename>.<seq>.base.rdb` (RDB preamble) or `.base.aof`.
pub fn base_file_name(appendfilename: impl AsRef<[u8]>, seq: i64, rdb_preamble: bool) -> Vec<u8> {
    let format = if rdb_preamble { "rdb" } else { "aof" };
    [appendfilename.as_ref(), format!(".{seq}.base.{format}").as_bytes()].concat()
}

/// `<appendfilename>.<seq>.incr.aof`
pub fn incr_file_name(appendfilename: impl AsRef<[u8]>, seq: i64) -> Vec<u8> {
    [appendfilename.as_ref(), format!(".{seq}.incr.aof").as_bytes()].concat()
}

/// `temp-<appendfilename>.incr`: the incr file opened while a rewrite runs.
pub fn temp_incr_file_name(appendfilename: impl AsRef<[u8]>) -> Vec<u8> {
    [b"temp-", appendfilename.as_ref(), b".incr"].concat()
}

/// Parses one (trimmed, non-comment) line.
fn parse_line(line: &[u8]) -> Result<AofInfo, ManifestErrorKind> {
    if line.is_empty() {
        return Err(ManifestErrorKind::InvalidFormat);
    }
    let words = crate::resp::split_args(line).ok_or(ManifestErrorKind::InvalidFormat)?;
    if words.len() < 6 || words.len() % 2 != 0 {
        return Err(ManifestErrorKind::InvalidFormat);
    }
    let mut name = None;
    let mut seq = 0;
    let mut letter = 0;
    for pair in words.chunks_exact(2) {
        // Keys and values are C strings there too: a `\x00` escape ends them.
        let (key, value) = (until_nul(&pair[0]), until_nul(&pair[1]));
        if key.eq_ignore_ascii_case(b"file") {
            if value.contains(&b'/') || value.contains(&b'\\') {
                return Err(ManifestErrorKind::FileIsPath);
            }
            name = Some(value.to_vec());
        } else if key.eq_ignore_ascii_case(b"seq") {
            seq = atoll(value);
        } else if key.eq_ignore_ascii_case(b"type") {
            letter = value.first().copied().unwrap_or(0);
        }
    }
    let (Some(file_name), true, true) = (name, seq != 0, letter != 0) else {
        return Err(ManifestErrorKind::InvalidFormat);
    };
    let file_type = AofFileType::from_letter(letter).ok_or(ManifestErrorKind::UnknownType(letter))?;
    Ok(AofInfo { file_name, seq, file_type })
}

fn until_nul(s: &[u8]) -> &[u8] {
    memchr::memchr(0, s).map_or(s, |i| &s[..i])
}

fn trim(s: &[u8]) -> &[u8] {
    let blank = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !blank(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// C's `atoll`: leading blanks, a sign, digits up to the first other byte;
/// 0 when there are none; saturating like glibc's.
fn atoll(s: &[u8]) -> i64 {
    let s = &s[s.iter().position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).unwrap_or(s.len())..];
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        let d = (d - b'0') as i64;
        value = if negative {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
    }
    value
}

/// Whether a name must be written quoted: it holds a byte outside the
/// printable ASCII range, a space, a quote or a backslash.
fn needs_quoting(name: &[u8]) -> bool {
    name.iter().any(|&c| !(0x21..=0x7e).contains(&c) || c == b'\\' || c == b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoll_like_c() {
        assert_eq!(atoll(b"12"), 12);
        assert_eq!(atoll(b"  -7x"), -7);
        assert_eq!(atoll(b"abc"), 0);
        assert_eq!(atoll(b"99999999999999999999"), i64::MAX);
        assert_eq!(atoll(b"-99999999999999999999"), i64::MIN);
    }

    #[test]
    fn quoting_round_trips() {
        // A backslash would make it a path: Valkey refuses those.
        let name = b"odd name \"x\"\n\t\x07\x08\x01\xff.aof".to_vec();
        assert!(needs_quoting(&name));
        let mut line = b"file ".to_vec();
        crate::repr::quote_into(&mut line, &name);
        line.extend_from_slice(b" seq 1 type b\n");
        let m = Manifest::parse(&line).unwrap();
        assert_eq!(m.base.unwrap().file_name, name);
        assert!(!needs_quoting(b"appendonly.aof.1.base.rdb"));
    }
}
