//! Fuzzing the RDB reader. The long run is `scripts/fuzz-rdb.sh` (the
//! `fuzz_rdb` example); this file keeps what it found and exercises its
//! engine on every test run:
//!
//! * every input in `tests/fuzz-regressions/` (inputs that once crashed the
//!   reader, minimized) must now be refused with a clean error: no panic,
//!   no allocation past the guard's limit, no slow read;
//! * the engine's guards must catch a panic and an over-allocation;
//! * a short deterministic fuzz pass (fixed seed, 5,000 mutants of the
//!   fixtures) must find nothing.

mod common;
#[allow(dead_code)]
#[path = "../examples/fuzz_rdb/engine.rs"]
mod engine;

use std::fs;
use std::path::{Path, PathBuf};

use engine::{execute, Fuzzer, InputKind, SeedOptions, Verdict};

#[global_allocator]
static ALLOC: engine::GuardedAlloc = engine::GuardedAlloc;

fn regression_files() -> Vec<(PathBuf, InputKind)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<(PathBuf, InputKind)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter_map(|p| {
            let kind = InputKind::from_extension(p.extension()?.to_str()?)?;
            Some((p, kind))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn hex(data: &[u8]) -> String {
    data.iter().take(256).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn fuzz_regressions_are_refused_cleanly() {
    let files = regression_files();
    let mut failures = Vec::new();
    for (path, kind) in &files {
        let data = fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        match execute(*kind, &data) {
            Verdict::Refused(_) => {}
            Verdict::Accepted(summary) => failures.push(format!("{name}: accepted ({summary}), expected an error")),
            Verdict::Finding(f) => failures.push(format!("{name}: {} {}", f.kind.name(), f.detail)),
        }
    }
    assert!(failures.is_empty(), "{} of {} regression inputs:\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn guards_catch_panics_and_over_allocation() {
    let (result, memory, _) = engine::run_guarded(100, || vec![7u8; 40 << 20].len());
    assert_eq!(result.ok(), Some(40 << 20));
    assert!(memory.over_site.is_some(), "40 MiB for a 100-byte input must exceed {}", memory.limit);

    let (result, memory, _) = engine::run_guarded(100, || vec![7u8; 1 << 20].len());
    assert!(result.is_ok());
    assert!(memory.over_site.is_none() && memory.peak >= 1 << 20, "peak {}", memory.peak);

    let (result, _, _) = engine::run_guarded(100, || -> usize { panic!("on purpose") });
    let (location, message) = result.unwrap_err();
    assert!(location.contains("rdb_fuzz.rs"), "{location}");
    assert_eq!(message, "on purpose");
}

#[test]
fn short_deterministic_fuzz_pass() {
    const MUTANTS: usize = 5000;
    let root = common::fixtures_root().expect("no fixtures folder");
    // Debug builds are slow: small files only, few keys each.
    let opts = SeedOptions { whole_file_max: 16 << 10, keys_per_type: 2, key_max: 16 << 10 };
    let mut seeds = Vec::new();
    for path in common::rdb_files(&root) {
        let data = fs::read(&path).unwrap();
        if data.len() <= 256 << 10 {
            seeds.extend(engine::seeds_from_file(&path.display().to_string(), &data, opts));
        }
    }
    assert!(seeds.len() > 50, "only {} seeds under {}", seeds.len(), root.display());
    assert!(seeds.iter().any(|s| s.kind == InputKind::Dump));

    let mut fuzzer = Fuzzer::new(seeds, 0x5eed);
    let (mut accepted, mut refused) = (0, 0);
    let mut findings = Vec::new();
    for _ in 0..MUTANTS {
        let m = fuzzer.next_mutant();
        let verdict = execute(m.kind, &m.data);
        match &verdict {
            Verdict::Accepted(_) => accepted += 1,
            Verdict::Refused(_) => refused += 1,
            Verdict::Finding(f) => findings.push(format!(
                "{} {} ({} from {} by {:?}): {}",
                f.kind.name(),
                f.detail,
                m.kind.extension(),
                m.origin,
                m.ops,
                hex(&m.data)
            )),
        }
        fuzzer.record(&m, &verdict);
    }
    eprintln!(
        "{MUTANTS} mutants: {accepted} accepted, {refused} refused, {} findings, {} distinct paths",
        findings.len(),
        fuzzer.paths_seen()
    );
    assert!(findings.is_empty(), "{} findings:\n{}", findings.len(), findings.join("\n"));
    // The mutants must reach both outcomes and many distinct paths, or the
    // mutator has stopped doing its job.
    assert!(accepted > MUTANTS / 50 && refused > MUTANTS / 2, "{accepted} accepted, {refused} refused");
    assert!(fuzzer.paths_seen() > 150, "only {} distinct paths", fuzzer.paths_seen());
}
