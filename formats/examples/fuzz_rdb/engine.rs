//! The engine of the RDB fuzzer, shared by the `fuzz_rdb` example (the long
//! run) and `tests/rdb_fuzz.rs` (the regression files and a short
//! deterministic pass):
//!
//! * seeds: real RDB files, plus one small file and one DUMP payload per
//!   sampled key of each file, each with a map of its fields (type bytes,
//!   lengths, strings, fixed-size numbers) made by a scanner of the format's
//!   layout;
//! * structure-aware mutations of those inputs, followed by a checksum
//!   repair so mutants get past the CRC check into the decoders;
//! * a checked execution: the reader under `catch_unwind`, a wall-clock
//!   limit, and an allocation guard (a global allocator that counts what the
//!   running thread holds); then oracles: the server's loading path
//!   (`next_load_item`, compact listpacks and intsets kept) must agree with
//!   the item reader, a quarter of the files are read again through a
//!   buffer of a few bytes and must give the same result, and every value
//!   that decodes must survive being written as a DUMP payload and read
//!   back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::BufReader;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use ferrokey_formats::crc64::crc64;
use ferrokey_formats::listpack::Listpack;
use ferrokey_formats::lzf;
use ferrokey_formats::rdb::packed::{
    intset_values, listpack_entries, parse_i64_strict, parse_score, ziplist_entries, Packed,
};
use ferrokey_formats::rdb::{
    decode_dump_payload, dump_value, load_all_from, CompactListNode, CompactValue, DecodedObject, EncodingLimits,
    LoadItem, LoadValue, RdbError, RdbFile, RdbItem, RdbReader, RdbValue, Stream,
};

// ---------------------------------------------------------------------------
// Allocation guard
// ---------------------------------------------------------------------------

/// What one guarded run may hold at once: 64 bytes per input byte plus
/// 16 MiB. A reader that reserves what a length field claims before the
/// bytes are there blows through this at once.
pub fn memory_limit(input_len: usize) -> usize {
    input_len.saturating_mul(64).saturating_add(16 << 20)
}

/// Past the limit by this much the run is stopped on the spot (the process
/// aborts after the fatal hook saved the input): the next allocation might
/// not be satisfiable at all.
const HARD_MARGIN: isize = 512 << 20;

#[derive(Clone, Copy)]
struct GuardState {
    armed: bool,
    /// Bytes this thread allocated minus bytes it freed since arming.
    held: isize,
    peak: isize,
    limit: isize,
    over: bool,
}

impl GuardState {
    const IDLE: GuardState = GuardState { armed: false, held: 0, peak: 0, limit: 0, over: false };
}

thread_local! {
    // A plain `Cell` of a `Copy` type: no destructor, no lazy allocation, so
    // it is safe to touch from inside the allocator.
    static GUARD: Cell<GuardState> = const { Cell::new(GuardState::IDLE) };
    /// Where the guarded run first went over its limit (a backtrace's
    /// innermost frame in the formats crate). Only touched disarmed.
    static OVER_SITE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Called (guard disarmed) when a run passes the hard margin, before the
/// process aborts: the example saves the input there.
static FATAL_HOOK: Mutex<Option<fn(&str)>> = Mutex::new(None);

/// The global allocator of the fuzzer and its test: the system allocator,
/// plus the per-thread accounting of guarded runs.
pub struct GuardedAlloc;

fn note_alloc(size: usize) {
    let _ = GUARD.try_with(|g| {
        let mut s = g.get();
        if !s.armed {
            return;
        }
        s.held += size as isize;
        s.peak = s.peak.max(s.held);
        let crossed = s.held > s.limit && !s.over;
        let fatal = s.held > s.limit.saturating_add(HARD_MARGIN);
        if crossed {
            s.over = true;
        }
        g.set(s);
        if crossed || fatal {
            // Capturing allocates: disarm meanwhile so this does not recurse.
            g.set(GuardState { armed: false, ..s });
            let site = allocation_site();
            if fatal {
                let msg = format!("allocation blow-up: {} bytes held (limit {}) at {site}", s.held, s.limit);
                if let Some(hook) = *fatal_hook() {
                    hook(&msg);
                }
                eprintln!("{msg}");
                std::process::abort();
            }
            let _ = OVER_SITE.try_with(|slot| *slot.borrow_mut() = Some(site));
            g.set(s);
        }
    });
}

fn fatal_hook() -> std::sync::MutexGuard<'static, Option<fn(&str)>> {
    FATAL_HOOK.lock().unwrap_or_else(|p| p.into_inner())
}

fn note_free(size: usize) {
    let _ = GUARD.try_with(|g| {
        let mut s = g.get();
        if s.armed {
            s.held -= size as isize;
            g.set(s);
        }
    });
}

unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            note_alloc(new_size - layout.size());
        } else {
            note_free(layout.size() - new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// The innermost frame of the formats crate in the current backtrace, with
/// its source line: what reserved the memory.
fn allocation_site() -> String {
    let bt = Backtrace::force_capture().to_string();
    let lines: Vec<&str> = bt.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        let is_frame = line.split_once(": ").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        if is_frame && line.contains("ferrokey_formats::") {
            let name = line.split_once(": ").map_or(*line, |(_, f)| f);
            let at = lines.get(i + 1).and_then(|l| l.strip_prefix("at ")).unwrap_or("?");
            let at = at.rsplit_once("formats/").map_or(at, |(_, tail)| tail);
            return format!("{name} ({at})");
        }
    }
    "an allocation outside the formats crate".to_string()
}

/// Install the function called when a run passes the hard margin.
pub fn set_fatal_hook(hook: fn(&str)) {
    *fatal_hook() = Some(hook);
}

/// Memory use of one guarded run.
#[derive(Debug, Clone)]
pub struct MemoryUse {
    pub peak: usize,
    pub limit: usize,
    /// Set when the run held more than its limit.
    pub over_site: Option<String>,
}

fn arm(limit: usize) {
    OVER_SITE.with(|slot| *slot.borrow_mut() = None);
    GUARD.with(|g| {
        g.set(GuardState { armed: true, held: 0, peak: 0, limit: limit.min(isize::MAX as usize) as isize, over: false })
    });
}

fn disarm() -> MemoryUse {
    let s = GUARD.with(|g| g.replace(GuardState::IDLE));
    let over_site = if s.over { OVER_SITE.with(|slot| slot.borrow_mut().take()) } else { None };
    MemoryUse { peak: s.peak.max(0) as usize, limit: s.limit as usize, over_site }
}

// ---------------------------------------------------------------------------
// Panic capture
// ---------------------------------------------------------------------------

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Route panics of guarded runs to [`execute`] instead of stderr (other
/// panics, e.g. a test's assertion, print as usual).
pub fn install_panic_capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let location = info.location().map_or_else(
                    || "?".to_string(),
                    |l| {
                        let file = l.file().rsplit_once("formats/").map_or(l.file(), |(_, tail)| tail);
                        format!("{file}:{}", l.line())
                    },
                );
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into `Err((location, message))`.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, (String, String)> {
    install_panic_capture();
    CAPTURING.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    r.map_err(|_| LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| ("?".into(), String::new())))
}

// ---------------------------------------------------------------------------
// Random numbers (SplitMix64: deterministic everywhere, no dependency)
// ---------------------------------------------------------------------------

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// Inputs and their field maps
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// A whole RDB file.
    Rdb,
    /// A DUMP / RESTORE payload.
    Dump,
}

impl InputKind {
    pub fn extension(self) -> &'static str {
        match self {
            InputKind::Rdb => "rdb",
            InputKind::Dump => "dump",
        }
    }

    pub fn from_extension(ext: &str) -> Option<InputKind> {
        match ext {
            "rdb" => Some(InputKind::Rdb),
            "dump" => Some(InputKind::Dump),
            _ => None,
        }
    }
}

/// What a field of an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// An opcode or object type byte.
    Type,
    /// A whole RDB length (1, 2, 5 or 9 bytes).
    Len,
    /// A string's bytes (LZF-compressed ones as stored).
    Str,
    /// A fixed-size number (expire times, scores, stream ids, checksums),
    /// the header, or a special string encoding byte with its integer.
    Fixed,
}

/// A byte range of an input that the format treats as one unit.
#[derive(Debug, Clone, Copy)]
struct Field {
    at: usize,
    len: usize,
    kind: FieldKind,
}

/// A seed or a corpus entry: bytes plus the map of their fields.
#[derive(Debug, Clone)]
pub struct Input {
    pub kind: InputKind,
    pub data: Vec<u8>,
    pub name: String,
    fields: Vec<Field>,
    /// Offsets of item starts (opcodes and object type bytes).
    items: Vec<usize>,
}

/// Maps the fields of RDB data from the format's layout alone (independent
/// of the reader under test). Stops quietly where the data stops making
/// sense: the map then covers the part before.
struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
    fields: Vec<Field>,
    items: Vec<usize>,
}

impl Scanner<'_> {
    fn field(&mut self, len: usize, kind: FieldKind) -> Option<()> {
        if len == 0 || self.pos.checked_add(len)? > self.data.len() {
            return None;
        }
        self.fields.push(Field { at: self.pos, len, kind });
        self.pos += len;
        Some(())
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.field(1, FieldKind::Type)?;
        Some(b)
    }

    fn len(&mut self) -> Option<u64> {
        let (size, n) = rdb_len_at(self.data, self.pos)?;
        self.field(size, FieldKind::Len)?;
        Some(n)
    }

    /// A count of things that each take at least one byte: more than the
    /// bytes left means the data stops making sense here.
    fn count(&mut self) -> Option<u64> {
        let n = self.len()?;
        (n <= (self.data.len() - self.pos) as u64).then_some(n)
    }

    fn string(&mut self) -> Option<()> {
        let b = *self.data.get(self.pos)?;
        if b >> 6 != 3 {
            let n = usize::try_from(self.len()?).ok()?;
            if n == 0 {
                return Some(());
            }
            return self.field(n, FieldKind::Str);
        }
        match b & 0x3f {
            0 => self.field(2, FieldKind::Fixed),
            1 => self.field(3, FieldKind::Fixed),
            2 => self.field(5, FieldKind::Fixed),
            3 => {
                self.field(1, FieldKind::Type)?;
                let clen = usize::try_from(self.len()?).ok()?;
                self.len()?;
                self.field(clen, FieldKind::Str)
            }
            _ => None,
        }
    }

    fn object(&mut self, t: u8) -> Option<()> {
        match t {
            0 | 9..=13 | 16 | 17 | 20 => self.string(),
            1 | 2 | 14 => {
                for _ in 0..self.count()? {
                    self.string()?;
                }
                Some(())
            }
            3 | 5 => {
                for _ in 0..self.count()? {
                    self.string()?;
                    if t == 5 {
                        self.field(8, FieldKind::Fixed)?;
                    } else {
                        let n = *self.data.get(self.pos)?;
                        self.field(1, FieldKind::Len)?;
                        if n < 253 && n > 0 {
                            self.field(n as usize, FieldKind::Str)?;
                        }
                    }
                }
                Some(())
            }
            4 => {
                for _ in 0..self.count()? {
                    self.string()?;
                    self.string()?;
                }
                Some(())
            }
            18 => {
                for _ in 0..self.count()? {
                    self.len()?;
                    self.string()?;
                }
                Some(())
            }
            15 | 19 | 21 => self.stream(t),
            _ => None,
        }
    }

    fn stream(&mut self, t: u8) -> Option<()> {
        for _ in 0..self.count()? {
            self.string()?; // node key: the master id
            self.string()?; // node listpack
        }
        let ids = if t >= 19 { 7 } else { 3 }; // length, last id (+ first id, max deleted id, entries added)
        for _ in 0..ids {
            self.len()?;
        }
        for _ in 0..self.count()? {
            self.string()?; // group name
            self.len()?;
            self.len()?; // last delivered id
            if t >= 19 {
                self.len()?; // entries read
            }
            for _ in 0..self.count()? {
                self.field(16, FieldKind::Fixed)?; // id
                self.field(8, FieldKind::Fixed)?; // delivery time
                self.len()?; // delivery count
            }
            for _ in 0..self.count()? {
                self.string()?; // consumer name
                self.field(8, FieldKind::Fixed)?; // seen time
                if t >= 21 {
                    self.field(8, FieldKind::Fixed)?; // active time
                }
                for _ in 0..self.count()? {
                    self.field(16, FieldKind::Fixed)?;
                }
            }
        }
        Some(())
    }

    fn file(&mut self) -> Option<()> {
        self.field(9, FieldKind::Fixed)?;
        let with_footer = rdb_header_version(self.data) >= 5;
        loop {
            self.items.push(self.pos);
            match self.byte()? {
                253 => self.field(4, FieldKind::Fixed)?,
                252 => self.field(8, FieldKind::Fixed)?,
                249 => self.field(1, FieldKind::Fixed)?,
                248 | 254 => {
                    self.len()?;
                }
                251 => {
                    self.len()?;
                    self.len()?;
                }
                244 => {
                    for _ in 0..3 {
                        self.len()?;
                    }
                }
                250 => {
                    self.string()?;
                    self.string()?;
                }
                245 => self.string()?,
                255 => {
                    if with_footer {
                        self.field(8, FieldKind::Fixed)?;
                    }
                    return Some(());
                }
                t => {
                    self.string()?; // key
                    self.object(t)?;
                }
            }
        }
    }
}

impl Input {
    /// An RDB input with its field map.
    pub fn rdb(name: String, data: Vec<u8>) -> Input {
        let mut scan = Scanner { data: &data, pos: 0, fields: Vec::new(), items: Vec::new() };
        let _ = scan.file();
        let (fields, items) = (scan.fields, scan.items);
        Input { kind: InputKind::Rdb, data, name, fields, items }
    }

    /// A DUMP payload input with its field map.
    pub fn dump(name: String, data: Vec<u8>) -> Input {
        let body = &data[..data.len().saturating_sub(10)];
        let mut scan = Scanner { data: body, pos: 0, fields: Vec::new(), items: vec![0] };
        if let Some(t) = scan.byte() {
            let _ = scan.object(t);
        }
        let mut fields = scan.fields;
        if data.len() >= 10 {
            fields.push(Field { at: data.len() - 10, len: 2, kind: FieldKind::Fixed });
            fields.push(Field { at: data.len() - 8, len: 8, kind: FieldKind::Fixed });
        }
        Input { kind: InputKind::Dump, data, name, fields, items: vec![0] }
    }
}

/// One item of a file read by the reader.
struct ItemSpan {
    start: usize,
    end: usize,
    /// For keys: the object type and the offset of its type byte.
    key: Option<(u8, usize)>,
}

/// The items of `data` as the reader sees them, as far as it reads, and
/// the header's version (0 when unreadable).
fn reader_items(data: &[u8]) -> (Vec<ItemSpan>, u32) {
    let mut reader = RdbReader::new(data);
    let mut items = Vec::new();
    let mut version = 0;
    loop {
        let start = reader.offset() as usize;
        match reader.next_item() {
            Ok(Some(item)) => {
                let key = match &item {
                    RdbItem::Key(k) => Some((k.rdb_type, k.offset as usize)),
                    RdbItem::EmptyKey(k) => Some((k.rdb_type, k.offset as usize)),
                    RdbItem::Header { version: v, .. } => {
                        version = *v;
                        None
                    }
                    _ => None,
                };
                items.push(ItemSpan { start, end: reader.offset() as usize, key });
            }
            _ => return (items, version),
        }
    }
}

/// How seeds are cut from a file.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    /// Files up to this size are seeds as they are.
    pub whole_file_max: usize,
    /// Keys sampled per object type and file (each becomes a one-key file
    /// and a DUMP payload).
    pub keys_per_type: usize,
    /// Larger keys are not sampled.
    pub key_max: usize,
}

impl SeedOptions {
    pub const LONG_RUN: SeedOptions = SeedOptions { whole_file_max: 256 << 10, keys_per_type: 6, key_max: 256 << 10 };
}

/// The seeds a file gives: itself (when small enough) and, per sampled key,
/// a one-key RDB file and the DUMP payload of its value.
pub fn seeds_from_file(name: &str, data: &[u8], opts: SeedOptions) -> Vec<Input> {
    let mut out = Vec::new();
    let (spans, version) = reader_items(data);
    if data.len() <= opts.whole_file_max {
        out.push(Input::rdb(name.to_string(), data.to_vec()));
    }
    if data.len() < 9 {
        return out;
    }
    let with_footer = version >= 5 || data.starts_with(b"VALKEY");
    let mut taken = [0usize; 256];
    for span in &spans {
        let Some((t, type_at)) = span.key else { continue };
        if span.end - span.start > opts.key_max || taken[t as usize] >= opts.keys_per_type {
            continue;
        }
        taken[t as usize] += 1;
        let n = taken[t as usize];
        let mut file = data[..9].to_vec();
        file.extend_from_slice(&data[span.start..span.end]);
        file.push(0xff);
        if with_footer {
            let crc = crc64(&file);
            file.extend_from_slice(&crc.to_le_bytes());
        }
        out.push(Input::rdb(format!("{name}#type{t}-{n}"), file));
        if let Some(value_at) = skip_rdb_string(data, type_at + 1) {
            let mut payload = vec![t];
            payload.extend_from_slice(&data[value_at..span.end]);
            finish_dump(&mut payload, 11);
            out.push(Input::dump(format!("{name}#type{t}-{n}.dump"), payload));
        }
    }
    out
}

/// Append a DUMP trailer: RDB version, then the CRC-64 of all before.
fn finish_dump(payload: &mut Vec<u8>, version: u16) {
    payload.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(payload);
    payload.extend_from_slice(&crc.to_le_bytes());
}

// ---------------------------------------------------------------------------
// RDB length and string fields
// ---------------------------------------------------------------------------

/// A plain RDB length at `at`: (field size, value).
fn rdb_len_at(data: &[u8], at: usize) -> Option<(usize, u64)> {
    let b = *data.get(at)?;
    match b >> 6 {
        0 => Some((1, (b & 0x3f) as u64)),
        1 => Some((2, (((b & 0x3f) as u64) << 8) | *data.get(at + 1)? as u64)),
        2 if b == 0x80 => Some((5, u32::from_be_bytes(data.get(at + 1..at + 5)?.try_into().ok()?) as u64)),
        2 if b == 0x81 => Some((9, u64::from_be_bytes(data.get(at + 1..at + 9)?.try_into().ok()?))),
        _ => None,
    }
}

/// The offset right after the RDB string starting at `at`.
fn skip_rdb_string(data: &[u8], at: usize) -> Option<usize> {
    let b = *data.get(at)?;
    if b >> 6 != 3 {
        let (size, n) = rdb_len_at(data, at)?;
        return at.checked_add(size)?.checked_add(usize::try_from(n).ok()?);
    }
    match b & 0x3f {
        0 => Some(at + 2),
        1 => Some(at + 3),
        2 => Some(at + 5),
        3 => {
            let (s1, clen) = rdb_len_at(data, at + 1)?;
            let (s2, _) = rdb_len_at(data, at + 1 + s1)?;
            (at + 1 + s1 + s2).checked_add(usize::try_from(clen).ok()?)
        }
        _ => None,
    }
}

/// How a length is written.
#[derive(Clone, Copy)]
enum LenForm {
    /// The shortest form, as writers use.
    Shortest,
    /// Always 0x80 + 32 bits (when it fits).
    Wide32,
    /// Always 0x81 + 64 bits.
    Wide64,
}

fn encode_len(n: u64, form: LenForm) -> Vec<u8> {
    match form {
        LenForm::Shortest if n < 0x40 => vec![n as u8],
        LenForm::Shortest if n < 0x4000 => vec![0x40 | (n >> 8) as u8, n as u8],
        LenForm::Shortest | LenForm::Wide32 if n <= u32::MAX as u64 => {
            let mut v = vec![0x80];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![0x81];
            v.extend_from_slice(&n.to_be_bytes());
            v
        }
    }
}

/// The string prefix that announces the `len` bytes at `at`: a plain
/// length ending right there, or an LZF header (`0xC3`, compressed length,
/// raw length). Returns (prefix start, is LZF).
fn string_prefix(data: &[u8], at: usize, len: usize) -> Option<(usize, bool)> {
    for size in [1usize, 2, 5, 9] {
        let Some(start) = at.checked_sub(size) else { continue };
        if rdb_len_at(data, start) == Some((size, len as u64)) {
            return Some((start, false));
        }
    }
    // LZF: 0xC3 <clen> <len> data. Try every split of the two lengths.
    for s2 in [1usize, 2, 5, 9] {
        for s1 in [1usize, 2, 5, 9] {
            let Some(start) = at.checked_sub(1 + s1 + s2) else { continue };
            if data[start] == 0xc3
                && rdb_len_at(data, start + 1) == Some((s1, len as u64))
                && rdb_len_at(data, start + 1 + s1).is_some_and(|(s, _)| s == s2)
            {
                return Some((start, true));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Mutation
// ---------------------------------------------------------------------------

/// Bytes worth trying anywhere: zero, sign and length-encoding boundaries,
/// the special string encodings, listpack/ziplist encoding bytes, opcodes.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0x82, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xd0, 0xe0, 0xef,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xfd, 0xfe, 0xff,
];

/// Lengths that cross a boundary or claim what no input holds.
const INTERESTING_LENGTHS: &[u64] = &[
    0,
    1,
    2,
    0x3f,
    0x40,
    0x3fff,
    0x4000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

/// Integers for the fixed-width header fields of embedded blobs.
const INTERESTING_INTS: &[u64] =
    &[0, 1, 2, 6, 7, 10, 11, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x7fff_ffff, 0x8000_0000, u64::MAX];

/// Elements for rebuilt listpacks, ziplists and intsets: integer encoding
/// boundaries, non-canonical integers, special scores, long strings.
const INTERESTING_ELEMENTS: &[&[u8]] = &[
    b"",
    b"0",
    b"-0",
    b"00",
    b"+1",
    b" 1",
    b"1",
    b"-1",
    b"12",
    b"13",
    b"127",
    b"128",
    b"-128",
    b"-129",
    b"4095",
    b"4096",
    b"-4096",
    b"-4097",
    b"32767",
    b"32768",
    b"8388607",
    b"8388608",
    b"-8388609",
    b"2147483647",
    b"2147483648",
    b"-2147483649",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"18446744073709551615",
    b"nan",
    b"-nan",
    b"inf",
    b"-inf",
    b"1e308",
    b"1e309",
    b"3.5",
    b"0x10",
    b"field",
    b"\xff\xfe",
];

/// One mutated input.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub kind: InputKind,
    pub data: Vec<u8>,
    /// The input it was made from.
    pub origin: String,
    /// The mutations applied, in order.
    pub ops: Vec<&'static str>,
}

/// Mutation state: the bytes being changed and the field map, kept in step
/// with insertions and deletions.
struct Work<'a> {
    data: Vec<u8>,
    fields: Vec<Field>,
    items: Vec<usize>,
    rng: &'a mut Rng,
}

impl Work<'_> {
    fn random_pos(&mut self) -> Option<usize> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.rng.below(self.data.len()))
        }
    }

    /// A field start (most of the time) or any offset.
    fn field_pos(&mut self) -> Option<usize> {
        if !self.fields.is_empty() && !self.rng.one_in(4) {
            let f = self.fields[self.rng.below(self.fields.len())];
            if f.at < self.data.len() {
                return Some(f.at);
            }
        }
        self.random_pos()
    }

    fn pick_field(&mut self, min_len: usize) -> Option<Field> {
        let candidates: Vec<Field> =
            self.fields.iter().copied().filter(|f| f.len >= min_len && f.at + f.len <= self.data.len()).collect();
        if candidates.is_empty() {
            None
        } else {
            Some(candidates[self.rng.below(candidates.len())])
        }
    }

    /// Replace `data[at..at + old_len]` by `new`, shifting the map.
    fn splice(&mut self, at: usize, old_len: usize, new: &[u8]) {
        let at = at.min(self.data.len());
        let old_len = old_len.min(self.data.len() - at);
        self.data.splice(at..at + old_len, new.iter().copied());
        let delta = new.len() as isize - old_len as isize;
        let end = at + old_len;
        self.fields.retain(|f| f.at + f.len <= at || f.at >= end || (f.at == at && f.len == old_len));
        for f in &mut self.fields {
            if f.at == at && f.len == old_len {
                f.len = new.len();
            } else if f.at >= end {
                f.at = (f.at as isize + delta) as usize;
            }
        }
        self.fields.retain(|f| f.len > 0);
        for i in &mut self.items {
            if *i >= end {
                *i = (*i as isize + delta) as usize;
            }
        }
    }

    fn flip_bit(&mut self) -> &'static str {
        if let Some(p) = self.field_pos() {
            self.data[p] ^= 1 << self.rng.below(8);
        }
        "flip-bit"
    }

    fn set_byte(&mut self) -> &'static str {
        if let Some(p) = self.field_pos() {
            self.data[p] = self.rng.pick(INTERESTING_BYTES);
        }
        "set-byte"
    }

    fn random_byte(&mut self) -> &'static str {
        if let Some(p) = self.random_pos() {
            self.data[p] = self.rng.next_u64() as u8;
        }
        "random-byte"
    }

    /// Rewrite a length field with a boundary or huge value, in its own
    /// form or a wider one (wide forms of small values are legal too).
    fn inflate_length(&mut self) -> &'static str {
        let candidates: Vec<(usize, usize, u64)> = self
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::Len)
            .filter_map(|f| rdb_len_at(&self.data, f.at).map(|(size, n)| (f.at, size, n)))
            .collect();
        if candidates.is_empty() {
            return self.set_byte();
        }
        let (at, size, old) = candidates[self.rng.below(candidates.len())];
        let n = match self.rng.below(4) {
            0 => old.wrapping_add(1),
            1 => old.wrapping_sub(1),
            2 => old.wrapping_mul(2).wrapping_add(self.rng.below(3) as u64),
            _ => self.rng.pick(INTERESTING_LENGTHS),
        };
        let form = self.rng.pick(&[LenForm::Shortest, LenForm::Shortest, LenForm::Wide32, LenForm::Wide64]);
        let encoded = encode_len(n, form);
        self.splice(at, size, &encoded);
        "inflate-length"
    }

    /// Put a special string encoding (or an unknown one) where a length is.
    fn special_encoding(&mut self) -> &'static str {
        if let Some(p) = self.field_pos() {
            self.data[p] = self.rng.pick(&[0xc0, 0xc1, 0xc2, 0xc3, 0xc3, 0xc4, 0xff, 0x82, 0xbf]);
        }
        "special-encoding"
    }

    /// Overwrite a 16/32/64-bit number inside a string field (the header
    /// sizes and counts of listpacks, ziplists, intsets; stream ids; times).
    fn overwrite_int(&mut self) -> &'static str {
        let Some(f) = self.pick_field(2) else { return self.flip_bit() };
        let width = self.rng.pick(&[2usize, 4, 4, 8]).min(f.len);
        let offsets = [0usize, 0, 4, 8, self.rng.below(f.len)];
        let off = self.rng.pick(&offsets).min(f.len - width);
        let v = match self.rng.below(4) {
            0 => f.len as u64 + self.rng.below(3) as u64 - 1,
            1 => self.rng.next_u64(),
            _ => self.rng.pick(INTERESTING_INTS),
        };
        let bytes = if self.rng.one_in(3) { v.to_be_bytes() } else { v.to_le_bytes() };
        let at = f.at + off;
        let src = if self.rng.one_in(3) { &bytes[8 - width..] } else { &bytes[..width] };
        self.data[at..at + width].copy_from_slice(src);
        "overwrite-int"
    }

    /// Another object type or opcode where an item starts.
    fn swap_type(&mut self) -> &'static str {
        let candidates: Vec<usize> = self.items.iter().copied().filter(|&i| i < self.data.len()).collect();
        if candidates.is_empty() {
            return self.set_byte();
        }
        let at = candidates[self.rng.below(candidates.len())];
        self.data[at] = match self.rng.below(4) {
            0 => 244 + self.rng.below(12) as u8,
            1 => self.rng.next_u64() as u8,
            _ => self.rng.below(26) as u8,
        };
        "swap-type"
    }

    fn change_version(&mut self, kind: InputKind) -> &'static str {
        match kind {
            InputKind::Rdb if self.data.len() >= 9 => {
                let v = self.rng.pick(&[0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99, 9999]);
                if self.rng.one_in(4) {
                    let head = format!("VALKEY{:03}", v % 1000);
                    self.data[..9].copy_from_slice(head.as_bytes());
                } else {
                    let head = format!("REDIS{:04}", v);
                    self.data[..9].copy_from_slice(head.as_bytes());
                }
            }
            InputKind::Dump if self.data.len() >= 10 => {
                let at = self.data.len() - 10;
                let v = self.rng.pick(&[0u16, 1, 5, 9, 10, 11, 12, 255, 0xffff]);
                self.data[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
        "change-version"
    }

    fn truncate(&mut self) -> &'static str {
        if let Some(p) = self.field_pos() {
            let len = self.data.len();
            self.splice(p, len - p, &[]);
        }
        "truncate"
    }

    fn delete_fields(&mut self) -> &'static str {
        if self.fields.is_empty() {
            return self.truncate();
        }
        let i = self.rng.below(self.fields.len());
        let n = 1 + self.rng.below(4);
        let start = self.fields[i].at;
        let last = self.fields[(i + n - 1).min(self.fields.len() - 1)];
        let end = (last.at + last.len).max(start);
        self.splice(start, end - start, &[]);
        "delete-fields"
    }

    /// Copy a run of fields (a length and its string, a whole element, a
    /// whole key) and insert the copy at a field boundary.
    fn duplicate_fields(&mut self) -> &'static str {
        if self.fields.is_empty() {
            return self.flip_bit();
        }
        let i = self.rng.below(self.fields.len());
        let n = 1 + self.rng.below(6);
        let start = self.fields[i].at;
        let last = self.fields[(i + n - 1).min(self.fields.len() - 1)];
        let end = (last.at + last.len).min(self.data.len()).max(start);
        let chunk = self.data[start..end].to_vec();
        let to = if self.rng.one_in(2) { end } else { self.field_pos().unwrap_or(end) };
        self.splice(to, 0, &chunk);
        "duplicate-fields"
    }

    fn insert_random(&mut self) -> &'static str {
        let at = self.field_pos().unwrap_or(0);
        let bytes: Vec<u8> = (0..1 + self.rng.below(9)).map(|_| self.rng.next_u64() as u8).collect();
        self.splice(at, 0, &bytes);
        "insert-random"
    }

    /// Take fields of another input and put them here (replacing or
    /// inserting).
    fn splice_other(&mut self, other: &Input) -> &'static str {
        if other.fields.is_empty() {
            return self.insert_random();
        }
        let i = self.rng.below(other.fields.len());
        let n = 1 + self.rng.below(8);
        let start = other.fields[i].at;
        let last = other.fields[(i + n - 1).min(other.fields.len() - 1)];
        let end = (last.at + last.len).min(other.data.len()).max(start);
        let chunk = other.data[start..end].to_vec();
        let at = self.field_pos().unwrap_or(0);
        let old = if self.rng.one_in(2) { 0 } else { self.fields.iter().find(|f| f.at == at).map_or(0, |f| f.len) };
        self.splice(at, old, &chunk);
        "splice-other"
    }

    /// Decode an embedded listpack, ziplist or intset (raw or LZF stored),
    /// change its elements, encode it again validly and store it back with
    /// a correct string prefix: the mutant then gets past the blob's
    /// structural checks into what the reader does with the elements.
    fn rebuild_blob(&mut self) -> &'static str {
        let blobs: Vec<Field> =
            self.fields.iter().copied().filter(|f| f.kind == FieldKind::Str && f.len >= 7).collect();
        if blobs.is_empty() {
            return self.overwrite_int();
        }
        let f = blobs[self.rng.below(blobs.len())];
        if f.at + f.len > self.data.len() {
            return self.overwrite_int();
        }
        let Some((prefix_at, is_lzf)) = string_prefix(&self.data, f.at, f.len) else {
            return self.overwrite_int();
        };
        let raw = if is_lzf {
            let raw_len = rdb_len_at(&self.data, prefix_at + 1)
                .and_then(|(clen_size, _)| rdb_len_at(&self.data, prefix_at + 1 + clen_size))
                .map(|(_, n)| n);
            let compressed = &self.data[f.at..f.at + f.len];
            // The library's decoders run on mutated bytes here, outside a
            // guarded run: a panic of theirs must not stop the fuzzer (the
            // reader meets the same bytes in a guarded run and reports it).
            match raw_len.map(|n| catch(|| lzf::decompress(compressed, n as usize))) {
                Some(Ok(Ok(r))) => r,
                _ => return self.overwrite_int(),
            }
        } else {
            self.data[f.at..f.at + f.len].to_vec()
        };
        let Ok(Some(rebuilt)) = catch(|| rebuild_elements(&raw, self.rng)) else { return self.overwrite_int() };
        let compressed =
            if self.rng.one_in(2) { lzf::compress(&rebuilt, rebuilt.len().saturating_sub(4)) } else { None };
        let mut string = Vec::new();
        let stored = match &compressed {
            Some(c) => {
                string.push(0xc3);
                string.extend(encode_len(c.len() as u64, LenForm::Shortest));
                string.extend(encode_len(rebuilt.len() as u64, LenForm::Shortest));
                c
            }
            None => {
                string.extend(encode_len(rebuilt.len() as u64, LenForm::Shortest));
                &rebuilt
            }
        };
        let header_len = string.len();
        string.extend_from_slice(stored);
        self.splice(prefix_at, f.at + f.len - prefix_at, &string);
        // The new string's bytes are one field, after its prefix.
        let end = prefix_at + string.len();
        self.fields.retain(|x| x.at + x.len <= prefix_at || x.at >= end);
        self.fields.push(Field { at: prefix_at + header_len, len: stored.len(), kind: FieldKind::Str });
        self.fields.sort_by_key(|x| x.at);
        "rebuild-blob"
    }
}

/// The blob's elements, changed, in the same container format.
fn rebuild_elements(blob: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    if let Ok(items) = listpack_entries(blob) {
        let mut elems: Vec<Vec<u8>> = items.into_iter().map(Packed::to_bytes).collect();
        mutate_elements(&mut elems, rng);
        let mut lp = Listpack::from_items(elems.iter().map(|e| e.as_slice())).into_bytes();
        if rng.one_in(8) {
            // "Count unknown": the reader must count the entries itself.
            lp[4] = 0xff;
            lp[5] = 0xff;
        }
        return Some(lp);
    }
    if let Ok(items) = ziplist_entries(blob) {
        let mut elems: Vec<Vec<u8>> = items.into_iter().map(Packed::to_bytes).collect();
        mutate_elements(&mut elems, rng);
        return Some(ziplist_encode(&elems));
    }
    if let Ok((width, mut values)) = intset_values(blob) {
        match rng.below(5) {
            0 if !values.is_empty() => {
                let i = rng.below(values.len());
                values.insert(i, values[i]);
            }
            1 if values.len() > 1 => {
                let i = rng.below(values.len() - 1);
                values.swap(i, i + 1);
            }
            2 if !values.is_empty() => {
                let i = rng.below(values.len());
                values[i] = rng.pick(&[0, -1, i16::MAX as i64 + 1, i32::MIN as i64 - 1, i64::MAX, i64::MIN]);
            }
            3 => values.clear(),
            _ => values.push(rng.next_u64() as i64),
        }
        let width = if rng.one_in(3) { rng.pick(&[2u32, 4, 8, 3, 0]) } else { width as u32 };
        return Some(intset_raw(width, &values));
    }
    None
}

fn mutate_elements(elems: &mut Vec<Vec<u8>>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(2) {
        let n = elems.len();
        match rng.below(7) {
            0 if n > 0 => {
                let i = rng.below(n);
                let copy = elems[i].clone();
                elems.insert(rng.below(n + 1), copy);
            }
            1 if n > 0 => {
                elems.remove(rng.below(n));
            }
            2 if n > 1 => {
                let (i, j) = (rng.below(n), rng.below(n));
                elems.swap(i, j);
            }
            3 if n > 0 => {
                // Small integer steps keep stream deltas and counts plausible.
                let i = rng.below(n);
                if let Some(v) = parse_i64_strict(&elems[i]) {
                    let step = rng.pick(&[1i64, -1, 2, -2, 1 << 20, i64::MIN]);
                    elems[i] = v.wrapping_add(step).to_string().into_bytes();
                } else {
                    elems[i] = rng.pick(INTERESTING_ELEMENTS).to_vec();
                }
            }
            4 if n > 0 => {
                let i = rng.below(n);
                elems[i] = if rng.one_in(4) {
                    vec![b'x'; rng.pick(&[63usize, 64, 4095, 4096])]
                } else {
                    rng.pick(INTERESTING_ELEMENTS).to_vec()
                };
            }
            5 => elems.truncate(rng.below(n + 1)),
            _ => elems.insert(rng.below(n + 1), rng.pick(INTERESTING_ELEMENTS).to_vec()),
        }
    }
}

/// A ziplist of `elems`, integers in the narrowest integer encoding.
fn ziplist_encode(elems: &[Vec<u8>]) -> Vec<u8> {
    const HEADER: usize = 10;
    let mut body = Vec::new();
    let mut prev_len = 0usize;
    let mut tail = HEADER;
    for e in elems {
        let start = body.len();
        if prev_len < 254 {
            body.push(prev_len as u8);
        } else {
            body.push(0xfe);
            body.extend_from_slice(&(prev_len as u32).to_le_bytes());
        }
        match parse_i64_strict(e) {
            Some(v @ 0..=12) => body.push(0xf1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => body.extend_from_slice(&[0xfe, v as u8]),
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xc0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                body.push(0xf0);
                body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xd0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xe0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None if e.len() < 64 => {
                body.push(e.len() as u8);
                body.extend_from_slice(e);
            }
            None if e.len() < 16384 => {
                body.extend_from_slice(&[0x40 | (e.len() >> 8) as u8, e.len() as u8]);
                body.extend_from_slice(e);
            }
            None => {
                body.push(0x80);
                body.extend_from_slice(&(e.len() as u32).to_be_bytes());
                body.extend_from_slice(e);
            }
        }
        prev_len = body.len() - start;
        tail = HEADER + start;
    }
    let total = HEADER + body.len() + 1;
    let mut zl = Vec::with_capacity(total);
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(elems.len().min(0xffff) as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xff);
    zl
}

/// An intset with the given width field and values as they are (unsorted,
/// duplicated or too wide for the width when the mutation made them so).
fn intset_raw(width: u32, values: &[i64]) -> Vec<u8> {
    let mut out = width.to_le_bytes().to_vec();
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        match width {
            2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            8 => out.extend_from_slice(&v.to_le_bytes()),
            w => out.extend_from_slice(&v.to_le_bytes()[..(w as usize).min(8)]),
        }
    }
    out
}

/// Put a valid checksum on a mutant (most of the time: sometimes a zero
/// "no checksum" footer, sometimes the stale one).
fn repair_checksum(kind: InputKind, data: &mut [u8], rng: &mut Rng) {
    if rng.one_in(20) {
        return;
    }
    if kind == InputKind::Rdb && rng.one_in(10) {
        let n = data.len();
        if n >= 18 && rdb_header_version(data) >= 5 {
            data[n - 8..].fill(0);
        }
        return;
    }
    write_checksum(kind, data);
}

/// The version in an RDB header (0 when unreadable; `VALKEY` files, which
/// always have a footer, count as the highest).
fn rdb_header_version(data: &[u8]) -> u32 {
    if data.starts_with(b"VALKEY") {
        u32::MAX
    } else if data.starts_with(b"REDIS") && data.len() >= 9 {
        std::str::from_utf8(&data[5..9]).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    } else {
        0
    }
}

/// Store the CRC-64 of everything before the last 8 bytes in them: the RDB
/// footer (for versions that have one) or the DUMP trailer.
pub fn write_checksum(kind: InputKind, data: &mut [u8]) {
    let n = data.len();
    let applies = match kind {
        InputKind::Rdb => n >= 18 && rdb_header_version(data) >= 5,
        InputKind::Dump => n >= 10,
    };
    if applies {
        let crc = crc64(&data[..n - 8]);
        data[n - 8..].copy_from_slice(&crc.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------
// Execution and oracles
// ---------------------------------------------------------------------------

/// No input may take longer than this.
pub const TIME_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// The reader (or the writer, in the round trip) panicked.
    Panic,
    /// One input made the reader hold more than [`memory_limit`].
    Memory,
    /// The input took longer than [`TIME_LIMIT`].
    Slow,
    /// Reading through a tiny buffer gave another result than reading
    /// from a slice.
    Inconsistent,
    /// A value the reader accepted does not survive being written as a
    /// DUMP payload and read again.
    RoundTrip,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Panic => "panic",
            FindingKind::Memory => "memory",
            FindingKind::Slow => "slow",
            FindingKind::RoundTrip => "roundtrip",
            FindingKind::Inconsistent => "inconsistent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    /// What identifies the bug (the panic's location, the allocation site):
    /// inputs with the same signature are one crash.
    pub signature: String,
    pub detail: String,
}

/// What one input did.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Read without error; the text summarizes what was read.
    Accepted(String),
    /// Refused with an error; the text is its reason, numbers elided.
    Refused(String),
    Finding(Finding),
}

impl Verdict {
    /// A text naming the path the input took (for the corpus' novelty
    /// test), `None` for findings.
    pub fn path_signature(&self) -> Option<&str> {
        match self {
            Verdict::Accepted(s) | Verdict::Refused(s) => Some(s),
            Verdict::Finding(_) => None,
        }
    }
}

/// Run `f` as one guarded run for an input of `input_len` bytes: panics
/// caught (as `Err((location, message))`), memory held accounted against
/// [`memory_limit`], time measured.
pub fn run_guarded<T>(input_len: usize, f: impl FnOnce() -> T) -> (Result<T, (String, String)>, MemoryUse, Duration) {
    let started = Instant::now();
    arm(memory_limit(input_len));
    let outcome = catch(f);
    let memory = disarm();
    (outcome, memory, started.elapsed())
}

/// Decoded values to check by the round trip, with their encodings.
type Decoded = Vec<(RdbValue, ferrokey_formats::rdb::Encoding)>;

/// Run the reader over `data` (all of it, as a file or as a DUMP payload),
/// guarded, then check what it accepted.
pub fn execute(kind: InputKind, data: &[u8]) -> Verdict {
    let (outcome, memory, elapsed) = run_guarded(data.len(), || read_input(kind, data));
    let outcome = match outcome {
        Ok(o) => o,
        Err((location, message)) => {
            return Verdict::Finding(Finding {
                kind: FindingKind::Panic,
                signature: format!("panic at {location}"),
                detail: format!("panic at {location}: {message}"),
            })
        }
    };
    if let Some(site) = memory.over_site {
        return Verdict::Finding(Finding {
            kind: FindingKind::Memory,
            signature: format!("memory at {site}"),
            detail: format!(
                "held {} bytes for a {}-byte input (limit {}); first over the limit in {site}",
                memory.peak,
                data.len(),
                memory.limit
            ),
        });
    }
    if let Some(why) = outcome.inconsistency {
        return Verdict::Finding(Finding {
            kind: FindingKind::Inconsistent,
            signature: format!("inconsistent {}", elide(&why)),
            detail: why,
        });
    }
    if elapsed > TIME_LIMIT {
        return Verdict::Finding(Finding {
            kind: FindingKind::Slow,
            signature: format!("slow {}", kind.extension()),
            detail: format!("took {elapsed:?} for a {}-byte input", data.len()),
        });
    }
    match outcome.result {
        Err(reason) => Verdict::Refused(format!("{}:{reason}", kind.extension())),
        Ok((summary, decoded)) => {
            for (value, encoding) in &decoded {
                match catch(|| round_trip(value, *encoding)) {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        return Verdict::Finding(Finding {
                            kind: FindingKind::RoundTrip,
                            signature: format!("roundtrip {} {why}", value.type_name()),
                            detail: format!("{} value ({encoding:?}) does not round-trip: {why}", value.type_name()),
                        })
                    }
                    Err((location, message)) => {
                        return Verdict::Finding(Finding {
                            kind: FindingKind::Panic,
                            signature: format!("panic at {location}"),
                            detail: format!("panic at {location} writing back an accepted value: {message}"),
                        })
                    }
                }
            }
            Verdict::Accepted(format!("{}:{summary}", kind.extension()))
        }
    }
}

/// What one run of the reader gave.
struct ReadOutcome {
    /// `Ok((shape summary, values))` or `Err(error reason with numbers
    /// elided)`.
    result: Result<(String, Decoded), String>,
    /// Set when reading the same bytes through a tiny buffer gave another
    /// result.
    inconsistency: Option<String>,
}

fn read_input(kind: InputKind, data: &[u8]) -> ReadOutcome {
    let refusal = |e: &RdbError| format!("{}:{}", type_tag(e.rdb_type), elide(&e.reason()));
    match kind {
        InputKind::Rdb => {
            let direct = load_all_from(RdbReader::new(data));
            // A quarter of the files are read a second time through a
            // buffer of a few bytes, so every field is split across
            // refills at some point: the result must be the same.
            let inconsistency = if data.len().is_multiple_of(4) {
                let capacity = 1 + data.len() % 11;
                let chunked = load_all_from(RdbReader::new(BufReader::with_capacity(capacity, data)));
                match (&direct, &chunked) {
                    (Ok(a), Ok(b)) if a == b => None,
                    (Err(a), Err(b)) if a.offset == b.offset && a.reason() == b.reason() => None,
                    (a, b) => Some(format!(
                        "read from a slice: {}; through a {capacity}-byte buffer: {}",
                        a.as_ref().map_or_else(|e| e.to_string(), |f| format!("{} keys", f.keys.len())),
                        b.as_ref().map_or_else(|e| e.to_string(), |f| format!("{} keys", f.keys.len())),
                    )),
                }
            } else {
                None
            };
            let inconsistency = inconsistency.or_else(|| loader_disagreement(data, &direct));
            let result = direct.map_err(|e| refusal(&e)).map(|file| {
                let mut shapes: Vec<String> = file
                    .keys
                    .iter()
                    .map(|k| format!("{}/{}", k.rdb_type, elide(&format!("{:?}", k.encoding))))
                    .collect();
                shapes.sort();
                shapes.dedup();
                let summary = format!("{}:{}:{}", file.version, shapes.join(","), file.empty_keys.len().min(2));
                (summary, file.keys.into_iter().map(|k| (k.value, k.encoding)).collect())
            });
            ReadOutcome { result, inconsistency }
        }
        InputKind::Dump => {
            let result = decode_dump_payload(data, true).map_err(|e| refusal(&e)).map(|p| match p.object {
                DecodedObject::Value { value, encoding } => {
                    (format!("{}/{}", p.rdb_type, elide(&format!("{encoding:?}"))), vec![(value, encoding)])
                }
                DecodedObject::Empty => (format!("{}/empty", p.rdb_type), Vec::new()),
            });
            ReadOutcome { result, inconsistency: None }
        }
    }
}

/// Read `data` as the server loads a file ([`RdbReader::next_load_item`]:
/// compact collections kept as listpacks and intsets) and compare with what
/// [`load_all_from`] gave: the same files must be accepted, with the same
/// values, or refused at the same offset. `None` when they agree.
fn loader_disagreement(data: &[u8], direct: &Result<RdbFile, RdbError>) -> Option<String> {
    let mut reader = RdbReader::new(data);
    let mut values = Vec::new();
    let loaded = loop {
        match reader.next_load_item() {
            Ok(Some(LoadItem::Key(k))) => match load_value_as_decoded(k.value) {
                Ok(v) => values.push((v, k.encoding)),
                Err(why) => return Some(format!("loader value: {why}")),
            },
            Ok(Some(LoadItem::Item(_))) => {}
            Ok(None) => {
                let end = reader.offset();
                // As load_all_from: nothing may follow the footer.
                break if reader.into_inner().is_empty() { Ok(()) } else { Err(end) };
            }
            Err(e) => break Err(e.offset),
        }
    };
    match (direct, loaded) {
        (Ok(file), Ok(())) => {
            if file.keys.len() != values.len() {
                return Some(format!("loader read {} keys, the item reader {}", values.len(), file.keys.len()));
            }
            let differing = file.keys.iter().zip(&values).position(|(k, (v, enc))| k.value != *v || k.encoding != *enc);
            differing.map(|i| format!("loader gives key {i} another value or encoding"))
        }
        (Err(a), Err(b)) if a.offset == b => None,
        (Err(a), Err(b)) => Some(format!("item reader refuses at offset {}, loader at {b}", a.offset)),
        (Ok(_), Err(b)) => Some(format!("loader refuses at offset {b} what the item reader accepts")),
        (Err(a), Ok(())) => Some(format!("loader accepts what the item reader refuses ({a})")),
    }
}

/// Field/value or member/score-text pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A loader value as the item reader decodes it, checking the compact
/// forms on the way (their forward and backward walks must agree).
fn load_value_as_decoded(value: LoadValue) -> Result<RdbValue, String> {
    let compact = match value {
        LoadValue::Decoded(v) => return Ok(v),
        LoadValue::Compact(c) => c,
    };
    let items = |lp: &Listpack| -> Result<Vec<Vec<u8>>, String> {
        let forward: Vec<Vec<u8>> = lp.iter().map(|(_, it)| it.to_vec()).collect();
        let mut backward: Vec<Vec<u8>> = lp.iter_rev().map(|(_, it)| it.to_vec()).collect();
        backward.reverse();
        if forward != backward {
            return Err("listpack walked backwards gives other elements".into());
        }
        if forward.len() != lp.len() || lp.total_bytes() != lp.as_bytes().len() {
            return Err("listpack length or size is not what it holds".into());
        }
        Ok(forward)
    };
    let pairs = |lp: &Listpack| -> Result<Pairs, String> {
        let flat = items(lp)?;
        Ok(flat.chunks_exact(2).map(|c| (c[0].clone(), c[1].clone())).collect())
    };
    Ok(match compact {
        CompactValue::List(nodes) => {
            let mut out = Vec::new();
            for node in nodes {
                match node {
                    CompactListNode::Packed(lp) => out.extend(items(&lp)?),
                    CompactListNode::Plain(bytes) => out.push(bytes),
                }
            }
            RdbValue::List(out)
        }
        CompactValue::SetIntset(members) => {
            RdbValue::Set(members.to_i64().into_iter().map(|v| v.to_string().into_bytes()).collect())
        }
        CompactValue::SetListpack(lp) => RdbValue::Set(items(&lp)?),
        CompactValue::HashListpack(lp) => RdbValue::Hash(pairs(&lp)?),
        CompactValue::ZSetListpack(lp) => {
            let mut out = Vec::new();
            for (member, score) in pairs(&lp)? {
                let score = parse_score(&score).ok_or("zset listpack score is not a number")?;
                out.push((member, score));
            }
            RdbValue::SortedSet(out)
        }
    })
}

/// `text` cut before its first quoted part (quoted values and names can
/// hold anything, quotes included), with every word holding a digit (decimal
/// and hex numbers) replaced by `#`: errors that differ only in values
/// compare equal.
fn elide(text: &str) -> String {
    let cut = [" '", "('"].iter().filter_map(|q| text.find(q)).min().unwrap_or(text.len());
    let text = &text[..cut];
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The object type of an error, as a path element (types past the known
/// ones are all alike).
fn type_tag(t: Option<u8>) -> String {
    match t {
        Some(t) if t <= 25 => t.to_string(),
        Some(_) => "x".into(),
        None => "-".into(),
    }
}

/// Write `value` as Valkey 8 would (a DUMP payload) and read it back: the
/// result must be the same value.
fn round_trip(value: &RdbValue, encoding: ferrokey_formats::rdb::Encoding) -> Result<(), String> {
    let payload = dump_value(value, Some(encoding), &EncodingLimits::default());
    let back = decode_dump_payload(&payload, true).map_err(|e| format!("written payload is refused: {e}"))?;
    match back.object {
        DecodedObject::Value { value: again, .. } => {
            if canonical(value) == canonical(&again) {
                Ok(())
            } else {
                Err("value differs after writing and reading".into())
            }
        }
        DecodedObject::Empty => Err("written payload reads as empty".into()),
    }
}

/// A value in a form where only content counts: set members, hash fields
/// and sorted set members sorted; stream groups and consumers by name.
fn canonical(value: &RdbValue) -> RdbValue {
    match value {
        RdbValue::Set(m) => {
            let mut m = m.clone();
            m.sort();
            RdbValue::Set(m)
        }
        RdbValue::Hash(p) => {
            let mut p = p.clone();
            p.sort();
            RdbValue::Hash(p)
        }
        RdbValue::SortedSet(p) => {
            let mut p = p.clone();
            p.sort_by(|a, b| a.0.cmp(&b.0));
            RdbValue::SortedSet(p)
        }
        RdbValue::Stream(s) => {
            let mut s: Stream = (**s).clone();
            s.listpack_nodes = 0;
            s.groups.sort_by(|a, b| a.name.cmp(&b.name));
            for g in &mut s.groups {
                g.consumers.sort_by(|a, b| a.name.cmp(&b.name));
            }
            RdbValue::Stream(Box::new(s))
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// The fuzzer
// ---------------------------------------------------------------------------

/// Mutants larger than this are not kept in the corpus.
const CORPUS_INPUT_MAX: usize = 64 << 10;
const CORPUS_MAX: usize = 20_000;

/// Seeds, the corpus of mutants that took a new path, and the mutator.
pub struct Fuzzer {
    seeds: Vec<Input>,
    corpus: Vec<Input>,
    seen_paths: HashSet<String>,
    rng: Rng,
}

impl Fuzzer {
    pub fn new(seeds: Vec<Input>, rng_seed: u64) -> Fuzzer {
        assert!(!seeds.is_empty(), "the fuzzer needs at least one seed");
        Fuzzer { seeds, corpus: Vec::new(), seen_paths: HashSet::new(), rng: Rng::new(rng_seed) }
    }

    pub fn corpus_len(&self) -> usize {
        self.corpus.len()
    }

    /// Distinct paths (outcome signatures) seen so far.
    pub fn paths_seen(&self) -> usize {
        self.seen_paths.len()
    }

    fn pick_input(&mut self) -> &Input {
        if !self.corpus.is_empty() && self.rng.below(10) < 6 {
            &self.corpus[self.rng.below(self.corpus.len())]
        } else {
            &self.seeds[self.rng.below(self.seeds.len())]
        }
    }

    /// The next mutant: one to six stacked mutations of a seed or corpus
    /// entry, then the checksum repair.
    pub fn next_mutant(&mut self) -> Mutant {
        let base = self.pick_input().clone();
        let other = self.seeds[self.rng.below(self.seeds.len())].clone();
        let mut rng = Rng::new(self.rng.next_u64());
        let mut work = Work { data: base.data, fields: base.fields, items: base.items, rng: &mut rng };
        let mut ops = Vec::new();
        let mut rounds = 1;
        while rounds < 6 && work.rng.one_in(2) {
            rounds += 1;
        }
        for _ in 0..rounds {
            let op = match work.rng.below(20) {
                0 | 1 => work.flip_bit(),
                2 | 3 => work.set_byte(),
                4 => work.random_byte(),
                5..=7 => work.inflate_length(),
                8 => work.special_encoding(),
                9 | 10 => work.overwrite_int(),
                11 => work.swap_type(),
                12 => work.change_version(base.kind),
                13 => work.truncate(),
                14 => work.delete_fields(),
                15 => work.duplicate_fields(),
                16 => work.insert_random(),
                17 => work.splice_other(&other),
                _ => work.rebuild_blob(),
            };
            ops.push(op);
        }
        let mut data = work.data;
        repair_checksum(base.kind, &mut data, &mut rng);
        Mutant { kind: base.kind, data, origin: base.name, ops }
    }

    /// Keep `mutant` in the corpus when its verdict names a path not seen
    /// before.
    pub fn record(&mut self, mutant: &Mutant, verdict: &Verdict) {
        let Some(path) = verdict.path_signature() else { return };
        if self.seen_paths.contains(path) {
            return;
        }
        self.seen_paths.insert(path.to_string());
        if mutant.data.len() > CORPUS_INPUT_MAX || self.corpus.len() >= CORPUS_MAX {
            return;
        }
        let name = format!("{}+{}", mutant.origin.split('+').next().unwrap_or(""), self.corpus.len());
        let input = match mutant.kind {
            InputKind::Rdb => Input::rdb(name, mutant.data.clone()),
            InputKind::Dump => Input::dump(name, mutant.data.clone()),
        };
        self.corpus.push(input);
    }
}

/// Shrink an input that produces `signature` by deleting ranges while the
/// signature stays (checksums repaired each time). Bounded by `attempts`.
pub fn minimize(kind: InputKind, data: &[u8], signature: &str, attempts: usize) -> Vec<u8> {
    let mut best = data.to_vec();
    let mut tries = 0;
    let mut chunk = (best.len() / 2).max(1);
    // Keep the header (RDB magic / DUMP type byte) and the trailer.
    let (head, tail) = match kind {
        InputKind::Rdb => (9, 9),
        InputKind::Dump => (1, 10),
    };
    while chunk >= 1 && tries < attempts {
        let mut progressed = false;
        let mut at = head;
        while at + chunk + tail <= best.len() && tries < attempts {
            let mut candidate = best.clone();
            candidate.drain(at..at + chunk);
            write_checksum(kind, &mut candidate);
            tries += 1;
            match execute(kind, &candidate) {
                Verdict::Finding(f) if f.signature == signature => {
                    best = candidate;
                    progressed = true;
                }
                _ => at += chunk,
            }
        }
        if !progressed {
            chunk /= 2;
        }
    }
    best
}
