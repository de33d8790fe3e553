//! `ferrokey-check-aof` against `valkey-check-aof` 8.0.1: on every AOF
//! fixture, on damaged copies, with `--fix` and `--truncate-to-timestamp`,
//! and on bad manifests, both tools must print the same lines, exit with
//! the same code and leave the same files. Where valkey-check-aof is not
//! installed, the verdicts are checked against what it is known to say.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The AOF fixtures: the shared folder, else the repository's copy.
fn fixtures() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../shared/fixtures/aof");
    if shared.is_dir() {
        shared
    } else {
        manifest.join("fixtures/aof")
    }
}

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrokey-check-aof"))
}

/// valkey-check-aof, when installed.
fn valkey() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let found = std::env::split_paths(&path).map(|d| d.join("valkey-check-aof")).find(|p| p.is_file());
            if found.is_none() {
                eprintln!("valkey-check-aof not found: checking known verdicts only");
            }
            found
        })
        .clone()
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: i32,
    stdout: String,
}

fn run(tool: &Path, cwd: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the checker");
    // The tool may exit before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned() }
}

/// A writable copy of `src` (a file or a folder) inside `dst`.
fn copy_into(src: &Path, dst: &Path) {
    let target = dst.join(src.file_name().unwrap());
    if src.is_dir() {
        fs::create_dir_all(&target).unwrap();
        for entry in fs::read_dir(src).unwrap() {
            copy_into(&entry.unwrap().path(), &target);
        }
    } else {
        fs::write(&target, fs::read(src).unwrap()).unwrap();
    }
}

/// Every file under `dir` with its size, for comparing what the tools left.
fn sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sizes(&path));
        } else {
            out.push((path.strip_prefix(dir).unwrap().display().to_string(), fs::metadata(&path).unwrap().len()));
        }
    }
    out.sort();
    out
}

/// Runs both tools on separate copies of `setup`'s files (made by `setup`
/// in a fresh folder), with the same arguments and input; returns our run
/// and, when valkey-check-aof is there, a description of any difference in
/// output, exit code or resulting files.
fn compare(setup: &dyn Fn(&Path), args: &[&str], stdin: &[u8]) -> (Run, Option<String>) {
    let ours_dir = tempfile::tempdir().unwrap();
    setup(ours_dir.path());
    let our_run = run(&ours(), ours_dir.path(), args, stdin);
    let Some(valkey) = valkey() else { return (our_run, None) };
    let theirs_dir = tempfile::tempdir().unwrap();
    setup(theirs_dir.path());
    let their_run = run(&valkey, theirs_dir.path(), args, stdin);
    let (our_files, their_files) = (sizes(ours_dir.path()), sizes(theirs_dir.path()));
    let same_output = our_run.code == their_run.code
        && without_stack_garbage(&our_run.stdout) == without_stack_garbage(&their_run.stdout);
    let difference = if !same_output || our_files != their_files {
        Some(format!(
            "args {args:?}\n--- valkey-check-aof (exit {}), files {their_files:?}:\n{}\n--- ferrokey-check-aof (exit {}), \
             files {our_files:?}:\n{}",
            their_run.code, their_run.stdout, our_run.code, our_run.stdout
        ))
    } else {
        None
    };
    (our_run, difference)
}

/// When a count or length line ends before its `\r\n` (a file cut right
/// after the number), valkey-check-aof shows the byte after the line's
/// terminator in its stack buffer: whatever an earlier call left there.
/// Only that byte is left out of the comparison.
fn without_stack_garbage(stdout: &str) -> String {
    let marker = "Expected \\r\\n, got: 00";
    stdout
        .lines()
        .map(|line| match line.find(marker) {
            Some(i) => format!("{}??", &line[..i + marker.len()]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fixture folders (each holding `appendonlydir/`).
fn fixture_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for writer in fs::read_dir(fixtures()).unwrap() {
        let writer = writer.unwrap().path();
        for entry in fs::read_dir(&writer).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.join("appendonlydir").is_dir() {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 2, "too few AOF fixtures under {}", fixtures().display());
    out
}

/// Redis 7.4 writes RDB 12, which valkey-check-aof refuses whatever the
/// file holds; ferrokey reads it when it holds only types it knows (and
/// refuses the hash-field-expiry types).
fn rdb12_base(dir: &Path) -> bool {
    dir.to_string_lossy().contains("redis-7.4.1") && dir.join("appendonlydir/appendonly.aof.2.base.rdb").exists()
}

#[test]
fn fixtures_get_valkeys_verdicts() {
    let mut problems = Vec::new();
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let setup = |d: &Path| copy_into(&dir.join("appendonlydir"), d);
        let (run, difference) = compare(&setup, &["appendonlydir/appendonly.aof.manifest"], b"");
        if rdb12_base(&dir) {
            let hfe = name.starts_with("aof-hfe");
            let ok = if hfe {
                run.code == 1 && run.stdout.contains("RDB preamble of AOF file is not sane, aborting.")
            } else {
                run.code == 0 && run.stdout.ends_with("All AOF files and manifest are valid\n")
            };
            if !ok {
                problems.push(format!("{}: exit {}\n{}", dir.display(), run.code, run.stdout));
            }
            continue;
        }
        let want_code = if name == "aof-truncated" { 1 } else { 0 };
        if run.code != want_code {
            problems.push(format!("{}: exit {}\n{}", dir.display(), run.code, run.stdout));
        }
        problems.extend(difference);
        // Each file alone, as an old-style AOF.
        for file in fs::read_dir(dir.join("appendonlydir")).unwrap() {
            let file = file.unwrap().path();
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            if file_name.ends_with(".manifest") {
                continue;
            }
            let (_, difference) = compare(&|d: &Path| copy_into(&file, d), &[&file_name], b"");
            problems.extend(difference);
        }
    }
    let historic = fixtures().join("historic/rdb-preamble.aof");
    let (run, difference) = compare(&|d: &Path| copy_into(&historic, d), &["rdb-preamble.aof"], b"");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("RDB preamble is OK, proceeding with AOF tail...\n"));
    assert!(run.stdout.ends_with("AOF rdb-preamble.aof is valid\n"), "{}", run.stdout);
    problems.extend(difference);
    assert!(problems.is_empty(), "{} difference(s):\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn reports_a_truncated_file_like_valkey() {
    let dir = fixtures().join("valkey-8.0.1/aof-truncated/appendonlydir");
    let (run, difference) = compare(&|d: &Path| copy_into(&dir, d), &["appendonlydir/appendonly.aof.manifest"], b"");
    assert_eq!(run.code, 1);
    // Recorded from valkey-check-aof 8.0.1.
    assert!(run.stdout.contains(
        "0x             bb4: Expected to read 48 bytes, got 8 bytes\n\
         AOF analyzed: filename=appendonly.aof.2.incr.aof, size=3004, ok_up_to=2965, ok_up_to_line=552, diff=39\n\
         AOF appendonly.aof.2.incr.aof is not valid. Use the --fix option to try fixing it.\n"
    ));
    assert_eq!(difference, None);
}

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Damaged versions of `bytes`: cuts at evenly spread offsets, and bytes
/// replaced (by protocol characters or anything) at random places from
/// `from` on.
fn damaged_versions(bytes: &[u8], from: usize, seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let span = bytes.len() - from;
    for i in 0..count {
        out.push(bytes[..from + span * i / count + i % 3].to_vec());
    }
    let mut rng = Lcg(seed);
    let interesting = [b'*', b'$', b'\r', b'\n', b'#', b'0', b'9', b'-', b' ', 0, 0xff];
    for _ in 0..count {
        let mut file = bytes.to_vec();
        let at = from + (rng.next() as usize) % span;
        file[at] = if rng.next().is_multiple_of(2) {
            interesting[(rng.next() as usize) % interesting.len()]
        } else {
            rng.next() as u8
        };
        out.push(file);
    }
    out
}

#[test]
fn damaged_files_get_valkeys_verdicts() {
    let mut problems = Vec::new();
    // The last incr file of a multi-part AOF (the line count runs on from
    // the base file).
    let set = fixtures().join("valkey-8.0.1/aof-timestamp/appendonlydir");
    let incr = fs::read(set.join("appendonly.aof.2.incr.aof")).unwrap();
    for (i, file) in damaged_versions(&incr, 0, 11, 40).into_iter().enumerate() {
        let setup = |d: &Path| {
            copy_into(&set, d);
            fs::write(d.join("appendonlydir/appendonly.aof.2.incr.aof"), &file).unwrap();
        };
        let (run, difference) = compare(&setup, &["appendonlydir/appendonly.aof.manifest"], b"");
        assert!(run.code == 0 || run.stdout.contains("is not valid"), "version {i}: {}", run.stdout);
        problems.extend(difference.map(|d| format!("incr version {i}: {d}")));
    }
    // The tail of an old AOF with an RDB preamble.
    let historic = fs::read(fixtures().join("historic/rdb-preamble.aof")).unwrap();
    let rdb_end = 117;
    for (i, file) in damaged_versions(&historic, rdb_end, 12, 30).into_iter().enumerate() {
        let (_, difference) = compare(&|d: &Path| fs::write(d.join("old.aof"), &file).unwrap(), &["old.aof"], b"");
        problems.extend(difference.map(|d| format!("preamble tail version {i}: {d}")));
    }
    // Damage inside the preamble: refused by both (the RDB messages differ).
    for (i, file) in damaged_versions(&historic[..rdb_end], 9, 13, 10).into_iter().enumerate() {
        let setup = |d: &Path| fs::write(d.join("old.aof"), [&file[..], &historic[rdb_end..]].concat()).unwrap();
        let (run, difference) = compare(&setup, &["old.aof"], b"");
        let refused = run.code == 1 && run.stdout.ends_with("RDB preamble of AOF file is not sane, aborting.\n");
        // A replaced byte inside a string value can leave the RDB valid
        // apart from its checksum, which both check.
        if !refused {
            problems.push(format!("preamble version {i}: exit {}\n{}", run.code, run.stdout));
        }
        // valkey-check-aof may exit from inside its RDB reader, without
        // its last line: the exit code is the verdict.
        if let Some(d) = difference {
            if d.matches("(exit 1)").count() != 2 {
                problems.push(format!("preamble version {i}: {d}"));
            }
        }
    }
    assert!(problems.is_empty(), "{} difference(s):\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn fix_cuts_the_tail_after_asking() {
    let set = fixtures().join("valkey-8.0.1/aof-truncated/appendonlydir");
    let setup = |d: &Path| copy_into(&set, d);
    let manifest = "appendonlydir/appendonly.aof.manifest";

    // Declined, or no answer: nothing changes.
    for answer in [&b"n\n"[..], b""] {
        let (run, difference) = compare(&setup, &["--fix", manifest], answer);
        assert_eq!(run.code, 1);
        assert!(run.stdout.ends_with(
            "This will shrink the AOF appendonly.aof.2.incr.aof from 3004 bytes, with 39 bytes, to 2965 bytes\n\
             Continue? [y/N]: Aborting...\n"
        ));
        assert_eq!(difference, None);
    }

    // Accepted: cut at the last complete command, after which both tools
    // accept the set.
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let fixed = run(&ours(), dir.path(), &["--fix", manifest], b"y\n");
    assert_eq!(fixed.code, 0, "{}", fixed.stdout);
    assert!(fixed.stdout.ends_with(
        "Continue? [y/N]: Successfully truncated AOF appendonly.aof.2.incr.aof\nAll AOF files and manifest are valid\n"
    ));
    assert_eq!(fs::metadata(dir.path().join("appendonlydir/appendonly.aof.2.incr.aof")).unwrap().len(), 2965);
    let again = run(&ours(), dir.path(), &[manifest], b"");
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert!(again.stdout.ends_with("All AOF files and manifest are valid\n"));
    if let Some(valkey) = valkey() {
        let theirs = run(&valkey, dir.path(), &[manifest], b"");
        assert_eq!(theirs, again);
    }
    let (_, difference) = compare(&setup, &["--fix", manifest], b"y\n");
    assert_eq!(difference, None);

    // The incr file alone, as an old-style AOF.
    let (run, difference) = compare(&setup, &["--fix", "appendonlydir/appendonly.aof.2.incr.aof"], b"Y");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(difference, None);
}

#[test]
fn fix_only_cuts_the_last_file() {
    // Two incr files, the first one cut short: it may not be fixed.
    let set = fixtures().join("valkey-8.0.1/aof-truncated/appendonlydir");
    let setup = |d: &Path| {
        copy_into(&set, d);
        let dir = d.join("appendonlydir");
        fs::write(dir.join("appendonly.aof.3.incr.aof"), b"*1\r\n$4\r\nPING\r\n").unwrap();
        let manifest = fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        fs::write(dir.join("appendonly.aof.manifest"), manifest + "file appendonly.aof.3.incr.aof seq 3 type i\n")
            .unwrap();
    };
    let (run, difference) = compare(&setup, &["--fix", "appendonlydir/appendonly.aof.manifest"], b"y\n");
    assert_eq!(run.code, 1);
    assert!(run.stdout.ends_with("Failed to truncate AOF appendonly.aof.2.incr.aof because it is not the last file\n"));
    assert_eq!(difference, None);
}

#[test]
fn truncate_to_timestamp_like_valkey() {
    let set = fixtures().join("valkey-8.0.1/aof-timestamp/appendonlydir");
    let incr = fs::read(set.join("appendonly.aof.2.incr.aof")).unwrap();
    let stamps: Vec<i64> = incr
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"#TS:"))
        .filter_map(|rest| std::str::from_utf8(rest).ok()?.trim_end().parse().ok())
        .collect();
    assert!(stamps.len() >= 2, "the fixture has timestamps");
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    let setup = |d: &Path| copy_into(&set, d);
    let mut problems = Vec::new();
    for ts in [first - 1, first, last - 1, last, last + 1, 0, -5] {
        let ts = ts.to_string();
        for target in ["appendonlydir/appendonly.aof.manifest", "appendonlydir/appendonly.aof.2.incr.aof"] {
            let (run, difference) = compare(&setup, &["--truncate-to-timestamp", &ts, target], b"");
            assert!(run.code == 0 || run.code == 1, "{}", run.stdout);
            problems.extend(difference);
        }
    }
    let (run, difference) =
        compare(&setup, &["--truncate-to-timestamp", &first.to_string(), "appendonlydir/appendonly.aof.manifest"], b"");
    assert!(run
        .stdout
        .contains(&format!("Successfully truncated AOF appendonly.aof.2.incr.aof to timestamp {first}\n")));
    problems.extend(difference);
    for bad in ["12x", "99999999999999999999", " "] {
        let (run, difference) =
            compare(&setup, &["--truncate-to-timestamp", bad, "appendonlydir/appendonly.aof.manifest"], b"");
        assert_eq!((run.code, run.stdout.as_str()), (1, "Invalid timestamp, aborting...\n"));
        problems.extend(difference);
    }
    assert!(problems.is_empty(), "{} difference(s):\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn bad_manifests_are_refused() {
    let incr = b"*1\r\n$4\r\nPING\r\n";
    let cases: &[(&str, Option<usize>)] = &[
        ("file a.aof seq 1 type i\nfile b.aof seq 1 type i\n", Some(2)),
        ("file a.aof seq 1 type b\nfile b.aof seq 2 type b\n", Some(2)),
        ("file a.aof seq 1 type i", Some(1)),
        ("file a.aof seq 1 type z\n", Some(1)),
        ("file a.aof seq 0 type i\n", Some(1)),
        ("# header\nfile sub/a.aof seq 1 type i\n", Some(2)),
        ("file a.aof seq 1\n", Some(1)),
        ("file a.aof seq 1 type i\n\n", Some(2)),
        ("file \"a.aof seq 1 type i\n", Some(1)),
    ];
    let mut problems = Vec::new();
    for (text, line) in cases {
        let setup = |d: &Path| {
            fs::write(d.join("a.aof"), incr).unwrap();
            fs::write(d.join("b.aof"), incr).unwrap();
            fs::write(d.join("m.manifest"), text).unwrap();
        };
        let (result, _) = compare(&setup, &["m.manifest"], b"");
        let ok = result.code == 1
            && result.stdout.starts_with("Start checking Multi Part AOF\n*** FATAL AOF MANIFEST FILE ERROR ***\n")
            && line.is_none_or(|n| result.stdout.contains(&format!("Reading the manifest file, at line {n}\n")));
        if !ok {
            problems.push(format!("{text:?}: exit {}\n{}", result.code, result.stdout));
        }
        // valkey-check-aof prints these as log lines: compare the verdict.
        if let Some(valkey) = valkey() {
            let dir = tempfile::tempdir().unwrap();
            setup(dir.path());
            let theirs = run(&valkey, dir.path(), &["m.manifest"], b"");
            if theirs.code != 1 || !theirs.stdout.contains("*** FATAL AOF MANIFEST FILE ERROR ***") {
                problems.push(format!("{text:?}: valkey-check-aof said (exit {}):\n{}", theirs.code, theirs.stdout));
            }
        }
    }
    // Listed files that are missing, and unusual but valid manifests,
    // compare line for line.
    for text in [
        "file missing.aof seq 1 type i\n",
        "file missing.rdb seq 1 type b\nfile a.aof seq 1 type i\n",
        "# comment\nfile \"a.aof\" TYPE i SEQ 3 future-key x\nfile old.aof seq 1 type h\n",
        "file empty.aof seq 1 type b\nfile a.aof seq 2 type i\n",
        "file a.aof seq 1 type b\nfile empty.aof seq 2 type i\n",
    ] {
        let setup = |d: &Path| {
            fs::write(d.join("a.aof"), incr).unwrap();
            fs::write(d.join("empty.aof"), b"").unwrap();
            fs::write(d.join("m.manifest"), text).unwrap();
        };
        let (run, difference) = compare(&setup, &["m.manifest"], b"");
        if text.contains("missing") {
            assert!(run.code == 1 && run.stdout.contains("Cannot open file ./missing"), "{}", run.stdout);
        } else {
            assert_eq!(run.code, 0, "{}", run.stdout);
        }
        problems.extend(difference);
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn arguments_and_odd_files() {
    let none = |_: &Path| {};
    let (run, _) = compare(&none, &[], b"");
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("[--fix|--truncate-to-timestamp $timestamp] <file.manifest|file.aof>"));
    for args in [&["--fix"][..], &["--fix", "a", "b"], &["--truncate-to-timestamp", "5"], &["-x", "a"]] {
        assert_eq!(compare(&none, args, b"").0.code, 1, "{args:?}");
    }
    assert_eq!(run_version().code, 0);

    let mut problems = Vec::new();
    let cases: &[(&[u8], i32)] = &[
        (b"", 0),
        (b"*1\r\n$4\r\nPING\r\n", 0),
        (b"*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nPING\r\n", 1),
        (b"*1\r\n$5\r\nMULTI\r\n*1\r\n$5\r\nMULTI\r\n", 1),
        (b"*1\r\n$4\r\nEXEC\r\n", 1),
        (b"#TS:1\r\n*0\r\n*\r\n", 0),
        (b"hello\r\n", 1),
        (b"REDIS", 1),
        (b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET", 1),
    ];
    for (bytes, code) in cases {
        let (run, difference) = compare(&|d: &Path| fs::write(d.join("x.aof"), bytes).unwrap(), &["x.aof"], b"");
        if run.code != *code {
            problems.push(format!("{:?}: exit {}\n{}", String::from_utf8_lossy(bytes), run.code, run.stdout));
        }
        problems.extend(difference);
    }
    let (run, difference) = compare(&none, &["missing.aof"], b"");
    assert_eq!(run.stdout, "Cannot open file missing.aof: No such file or directory\n");
    problems.extend(difference);
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n\n"));
}

fn run_version() -> Run {
    let out = Command::new(ours()).arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.starts_with("ferrokey-check-aof v="), "{stdout}");
    Run { code: out.status.code().unwrap_or(-1), stdout }
}
