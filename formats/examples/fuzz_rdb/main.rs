//! A structure-aware fuzzer for the RDB reader and the DUMP payload decoder
//! that runs on stable Rust (no coverage instrumentation; see `engine.rs`
//! for the seeds, the mutations and the checks).
//!
//! ```text
//! cargo run --release -p ferrokey-formats --example fuzz_rdb -- \
//!     [--seconds 1800] [--corpus DIR]... [--crashes DIR] [--seed N] [--export-seeds DIR]
//! cargo run --release -p ferrokey-formats --example fuzz_rdb -- --replay FILE...
//! ```
//!
//! `--corpus` folders are searched for `*.rdb` files (each gives itself and
//! one-key files and DUMP payloads of sampled keys as seeds) and `*.dump`
//! payloads; without one, the shared fixtures and the repository's copies
//! are used. Each crash is minimized, saved in `--crashes` as
//! `<kind>-<id>.rdb|.dump` with a `.txt` report, and printed.
//!
//! The work runs in a single worker process, watched by this one: a worker
//! that aborts (an input that hangs past 2 s, or that makes the reader
//! allocate hundreds of MiB) saves that input first, and a new worker
//! carries on until the time is up.
//!
//! `--replay` runs the checks on saved inputs (`.rdb`, `.dump`, or an AFL
//! input) and prints each verdict. `--export-seeds DIR` writes the seeds in
//! the input format of the coverage-guided AFL++ harness that shares this
//! engine (`formats/fuzz-afl`: a kind byte, then the bytes) and exits.

mod engine;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use engine::{
    execute, minimize, seeds_from_file, Finding, FindingKind, Fuzzer, Input, InputKind, Mutant, SeedOptions, Verdict,
};
use ferrokey_formats::crc64::crc64;

#[global_allocator]
static ALLOC: engine::GuardedAlloc = engine::GuardedAlloc;

/// A worker prints its counters this often (so little is lost when it
/// aborts)...
const STATS_EVERY: Duration = Duration::from_secs(2);
/// ... and the supervisor shows them this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// Minimization attempts per new crash.
const MINIMIZE_ATTEMPTS: usize = 3000;

struct Options {
    seconds: f64,
    corpus: Vec<PathBuf>,
    crashes: PathBuf,
    seed: u64,
    worker: bool,
    export_seeds: Option<PathBuf>,
    replay: Vec<PathBuf>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: fuzz_rdb [--seconds N] [--corpus DIR]... [--crashes DIR] [--seed N] [--export-seeds DIR]\n       \
         fuzz_rdb --replay FILE...\n\
         defaults: 60 seconds, the fixtures as corpus, ./fuzz-rdb-crashes, seed 1"
    );
    ExitCode::from(2)
}

fn parse_options() -> Option<Options> {
    let mut opts = Options {
        seconds: 60.0,
        corpus: Vec::new(),
        crashes: PathBuf::from("fuzz-rdb-crashes"),
        seed: 1,
        worker: false,
        export_seeds: None,
        replay: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => opts.seconds = args.next()?.parse().ok()?,
            "--corpus" => opts.corpus.push(args.next()?.into()),
            "--crashes" => opts.crashes = args.next()?.into(),
            "--seed" => opts.seed = args.next()?.parse().ok()?,
            "--export-seeds" => opts.export_seeds = Some(args.next()?.into()),
            "--worker" => opts.worker = true,
            "--replay" => {
                opts.replay.extend(args.by_ref().map(PathBuf::from));
                if opts.replay.is_empty() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    if opts.corpus.is_empty() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os("FERROKEY_FIXTURES") {
            dirs.push(PathBuf::from(dir).join("rdb"));
        }
        dirs.push(manifest.join("../../shared/fixtures/rdb"));
        dirs.push(manifest.join("../fixtures/rdb"));
        opts.corpus = dirs.into_iter().filter(|d| d.is_dir()).collect();
    }
    Some(opts)
}

fn main() -> ExitCode {
    let Some(opts) = parse_options() else { return usage() };
    if !opts.replay.is_empty() {
        return replay(&opts.replay);
    }
    if let Some(dir) = &opts.export_seeds {
        return export_seeds(&opts, dir);
    }
    if opts.worker {
        work(&opts)
    } else {
        supervise(&opts)
    }
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Seeds from every `.rdb` and `.dump` file under the corpus folders (the
/// same file found twice counts once).
fn load_seeds(dirs: &[PathBuf]) -> (Vec<Input>, usize) {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    let mut seen = HashSet::new();
    let mut seeds = Vec::new();
    let mut used = 0;
    for path in files {
        let Some(kind) = path.extension().and_then(|e| e.to_str()).and_then(InputKind::from_extension) else {
            continue;
        };
        let Ok(data) = fs::read(&path) else { continue };
        // Compared by content, not by CRC-64: every file that ends in its
        // own CRC-64 footer has the same CRC-64 (zero).
        if !seen.insert(data.clone()) {
            continue;
        }
        used += 1;
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let parent =
            path.parent().and_then(|p| p.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let name = format!("{parent}/{name}");
        match kind {
            InputKind::Rdb => seeds.extend(seeds_from_file(&name, &data, SeedOptions::LONG_RUN)),
            InputKind::Dump => seeds.push(Input::dump(name, data)),
        }
    }
    (seeds, used)
}

fn export_seeds(opts: &Options, dir: &Path) -> ExitCode {
    let (seeds, files) = load_seeds(&opts.corpus);
    if let Err(e) = fs::create_dir_all(dir) {
        eprintln!("fuzz_rdb: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (i, s) in seeds.iter().enumerate() {
        let mut bytes = vec![match s.kind {
            InputKind::Rdb => 0u8,
            InputKind::Dump => 1,
        }];
        bytes.extend_from_slice(&s.data);
        if let Err(e) = fs::write(dir.join(format!("seed-{i:05}")), bytes) {
            eprintln!("fuzz_rdb: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    println!("fuzz_rdb: wrote {} seeds from {files} files to {}", seeds.len(), dir.display());
    ExitCode::SUCCESS
}

/// Run the checks on each file: `.rdb` / `.dump` as they are, anything
/// else as an AFL input (mode byte first). Fails when any has a finding.
fn replay(files: &[PathBuf]) -> ExitCode {
    let mut findings = 0;
    for path in files {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("fuzz_rdb: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let kind = path.extension().and_then(|e| e.to_str()).and_then(InputKind::from_extension);
        let (kind, data) = match kind {
            Some(kind) => (kind, data),
            None => {
                let Some((&mode, body)) = data.split_first() else { continue };
                let kind = if mode & 1 == 1 { InputKind::Dump } else { InputKind::Rdb };
                let mut body = body.to_vec();
                if mode & 2 == 0 {
                    engine::write_checksum(kind, &mut body);
                }
                (kind, body)
            }
        };
        let started = Instant::now();
        let verdict = execute(kind, &data);
        let took = started.elapsed();
        let what = match &verdict {
            Verdict::Accepted(s) => format!("accepted ({s})"),
            Verdict::Refused(s) => format!("refused ({s})"),
            Verdict::Finding(f) => {
                findings += 1;
                format!("FINDING {}: {}", f.kind.name(), f.detail)
            }
        };
        println!("{}: {} {} bytes, {took:?}: {what}", path.display(), kind.extension(), data.len());
    }
    if findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

// ---------------------------------------------------------------------------
// Supervisor
// ---------------------------------------------------------------------------

/// Counters a worker reports as `stats key=value ...` lines.
type Stats = BTreeMap<String, u64>;

fn parse_stats(line: &str) -> Option<Stats> {
    let rest = line.strip_prefix("stats ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

/// Signatures of the crashes saved in `dir` (from the `.txt` reports).
fn saved_signatures(dir: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(rd) = fs::read_dir(dir) else { return out };
    for e in rd.filter_map(|e| e.ok()) {
        if e.path().extension().is_some_and(|x| x == "txt") {
            if let Ok(text) = fs::read_to_string(e.path()) {
                if let Some(sig) = text.lines().find_map(|l| l.strip_prefix("signature: ")) {
                    out.insert(sig.to_string());
                }
            }
        }
    }
    out
}

fn supervise(opts: &Options) -> ExitCode {
    if let Err(e) = fs::create_dir_all(&opts.crashes) {
        eprintln!("fuzz_rdb: {}: {e}", opts.crashes.display());
        return ExitCode::FAILURE;
    }
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("fuzz_rdb: cannot find its own executable");
        return ExitCode::FAILURE;
    };
    let known_before = saved_signatures(&opts.crashes);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(opts.seconds);
    let mut totals: Stats = BTreeMap::new();
    let mut last: Stats = BTreeMap::new();
    let mut workers = 0u64;
    let mut next_progress = started + PROGRESS_EVERY;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(1) {
            break;
        }
        let mut cmd = Command::new(&exe);
        cmd.arg("--worker")
            .args(["--seconds", &format!("{:.3}", left.as_secs_f64())])
            .args(["--seed", &opts.seed.wrapping_add(workers.wrapping_mul(0x9e37_79b9)).to_string()])
            .arg("--crashes")
            .arg(&opts.crashes);
        for c in &opts.corpus {
            cmd.arg("--corpus").arg(c);
        }
        let mut child = match cmd.stdout(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fuzz_rdb: cannot start a worker: {e}");
                return ExitCode::FAILURE;
            }
        };
        workers += 1;
        last.clear();
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match parse_stats(&line) {
                    Some(s) => {
                        last = s;
                        if Instant::now() >= next_progress {
                            println!("{line}");
                            next_progress = Instant::now() + PROGRESS_EVERY;
                        }
                    }
                    None => println!("{line}"),
                }
            }
        }
        let status = child.wait();
        for (k, v) in &last {
            *totals.entry(k.clone()).or_default() += v;
        }
        match status {
            Ok(s) if s.success() => break,
            Ok(s) => eprintln!("fuzz_rdb: worker ended ({s}); starting another"),
            Err(e) => eprintln!("fuzz_rdb: worker lost: {e}; starting another"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let signatures = saved_signatures(&opts.crashes);
    let new = signatures.difference(&known_before).count();
    let get = |k: &str| totals.get(k).copied().unwrap_or(0);
    println!(
        "fuzz_rdb: {elapsed:.0} s, {} mutants tried ({} RDB files, {} DUMP payloads; {} accepted, {} refused), {:.0} mutants/s",
        get("tried"),
        get("rdb"),
        get("dump"),
        get("accepted"),
        get("refused"),
        get("tried") as f64 / elapsed.max(0.001)
    );
    println!(
        "fuzz_rdb: {} unique crashes in {} ({new} new in this run), {} findings in all, {} worker(s)",
        signatures.len(),
        opts.crashes.display(),
        get("findings"),
        workers
    );
    if signatures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

// ---------------------------------------------------------------------------
// Worker
// ---------------------------------------------------------------------------

/// The input being run, for the watchdog and the allocation hook, which
/// save it before the worker aborts.
struct Current {
    kind: InputKind,
    data: Vec<u8>,
    origin: String,
    ops: String,
}

static CURRENT: Mutex<Current> =
    Mutex::new(Current { kind: InputKind::Rdb, data: Vec::new(), origin: String::new(), ops: String::new() });
static CRASH_DIR: OnceLock<PathBuf> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// When the current run started (ms since EPOCH, plus one); 0 when idle.
static RUN_STARTED: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn set_current(m: &Mutant) {
    let mut c = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    c.kind = m.kind;
    c.data.clear();
    c.data.extend_from_slice(&m.data);
    c.origin.clear();
    c.origin.push_str(&m.origin);
    c.ops.clear();
    c.ops.push_str(&m.ops.join(","));
}

/// Save the current input as a crash of `kind` and abort the worker.
fn save_current_and_abort(kind: &str, signature: &str, detail: &str) -> ! {
    RUN_STARTED.store(0, Ordering::SeqCst);
    let c = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = CRASH_DIR.get() {
        let report = CrashReport {
            kind,
            signature,
            detail,
            input_kind: c.kind,
            data: &c.data,
            original_len: c.data.len(),
            origin: &c.origin,
            ops: &c.ops,
        };
        report.save_and_print(dir);
    }
    std::process::abort();
}

fn on_allocation_blowup(msg: &str) {
    let site = msg.rsplit_once(" at ").map_or("?", |(_, s)| s);
    save_current_and_abort("memory", &format!("memory at {site}"), msg);
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let started = RUN_STARTED.load(Ordering::SeqCst);
        if started != 0 && now_ms().saturating_sub(started) > engine::TIME_LIMIT.as_millis() as u64 {
            let origin = CURRENT.lock().map(|c| c.origin.clone()).unwrap_or_default();
            let seed = origin.split(['#', '+']).next().unwrap_or("").to_string();
            save_current_and_abort("hang", &format!("hang from {seed}"), "no result after 2 s");
        }
    }
}

struct CrashReport<'a> {
    kind: &'a str,
    signature: &'a str,
    detail: &'a str,
    input_kind: InputKind,
    data: &'a [u8],
    original_len: usize,
    origin: &'a str,
    ops: &'a str,
}

impl CrashReport<'_> {
    /// Write `<kind>-<id>.<rdb|dump>` and its `.txt` report; print both.
    fn save_and_print(&self, dir: &Path) {
        let id = crc64(self.signature.as_bytes()) as u32;
        let stem = dir.join(format!("{}-{id:08x}", self.kind));
        let input_path = stem.with_extension(self.input_kind.extension());
        let mut text = String::new();
        let _ = writeln!(text, "kind: {}", self.kind);
        let _ = writeln!(text, "signature: {}", self.signature);
        let _ = writeln!(text, "detail: {}", self.detail);
        let _ = writeln!(
            text,
            "input: {} ({} bytes, {} before minimizing)",
            input_path.display(),
            self.data.len(),
            self.original_len
        );
        let _ = writeln!(text, "made from: {} by {}", self.origin, self.ops);
        let _ = writeln!(text, "bytes:");
        for chunk in self.data.chunks(32).take(64) {
            let _ = writeln!(text, "  {}", chunk.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
        if self.data.len() > 32 * 64 {
            let _ = writeln!(text, "  ...");
        }
        let saved = fs::write(&input_path, self.data).and_then(|_| fs::write(stem.with_extension("txt"), &text));
        if let Err(e) = saved {
            eprintln!("fuzz_rdb: cannot save the crash in {}: {e}", dir.display());
        }
        eprintln!("CRASH\n{text}");
    }
}

fn work(opts: &Options) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds);
    let (seeds, files) = load_seeds(&opts.corpus);
    if seeds.is_empty() {
        eprintln!("fuzz_rdb: no seeds (no .rdb or .dump files in the corpus folders)");
        return ExitCode::FAILURE;
    }
    eprintln!("fuzz_rdb: worker with {} seeds from {files} files, seed {}", seeds.len(), opts.seed);
    let _ = CRASH_DIR.set(opts.crashes.clone());
    let _ = fs::create_dir_all(&opts.crashes);
    engine::install_panic_capture();
    engine::set_fatal_hook(on_allocation_blowup);
    std::thread::spawn(watchdog);

    let mut fuzzer = Fuzzer::new(seeds, opts.seed);
    let mut known = saved_signatures(&opts.crashes);
    let mut stats: Stats = BTreeMap::new();
    let started = Instant::now();
    let mut next_report = started + STATS_EVERY;
    let print_stats = |stats: &Stats, fuzzer: &Fuzzer| {
        let mut line = String::from("stats");
        for (k, v) in stats {
            let _ = write!(line, " {k}={v}");
        }
        let _ = write!(
            line,
            " corpus={} paths={} seconds={}",
            fuzzer.corpus_len(),
            fuzzer.paths_seen(),
            started.elapsed().as_secs()
        );
        println!("{line}");
        let _ = std::io::stdout().flush();
    };
    for key in ["tried", "rdb", "dump", "accepted", "refused", "findings"] {
        stats.insert(key.to_string(), 0);
    }
    while Instant::now() < deadline {
        let m = fuzzer.next_mutant();
        set_current(&m);
        RUN_STARTED.store(now_ms(), Ordering::SeqCst);
        let verdict = execute(m.kind, &m.data);
        RUN_STARTED.store(0, Ordering::SeqCst);
        *stats.entry("tried".into()).or_default() += 1;
        *stats.entry(m.kind.extension().into()).or_default() += 1;
        match &verdict {
            Verdict::Accepted(_) => *stats.entry("accepted".into()).or_default() += 1,
            Verdict::Refused(_) => *stats.entry("refused".into()).or_default() += 1,
            Verdict::Finding(f) => {
                *stats.entry("findings".into()).or_default() += 1;
                if known.insert(f.signature.clone()) {
                    report_finding(f, &m, &opts.crashes);
                }
            }
        }
        fuzzer.record(&m, &verdict);
        if Instant::now() >= next_report {
            print_stats(&stats, &fuzzer);
            next_report += STATS_EVERY;
        }
    }
    print_stats(&stats, &fuzzer);
    ExitCode::SUCCESS
}

fn report_finding(f: &Finding, m: &Mutant, dir: &Path) {
    let data = if f.kind == FindingKind::Slow {
        m.data.clone()
    } else {
        minimize(m.kind, &m.data, &f.signature, MINIMIZE_ATTEMPTS)
    };
    let ops = m.ops.join(",");
    CrashReport {
        kind: f.kind.name(),
        signature: &f.signature,
        detail: &f.detail,
        input_kind: m.kind,
        data: &data,
        original_len: m.data.len(),
        origin: &m.origin,
        ops: &ops,
    }
    .save_and_print(dir);
}
