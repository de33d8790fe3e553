//! AFL++ harness for the RDB reader and the DUMP payload decoder: the same
//! checks as the structured fuzzer (`examples/fuzz_rdb`, whose engine this
//! includes), with AFL's coverage feedback choosing what to mutate.
//!
//! An input is one mode byte, then the bytes: bit 0 of the mode set means a
//! DUMP payload (else a whole RDB file); bit 1 clear means the checksum is
//! recomputed first (so mutants reach the decoders), set means it is kept.
//! Any finding of the engine (a panic, an allocation past the guard, a
//! value that does not round-trip, ...) aborts, which AFL records as a
//! crash; AFL's `-t` catches hangs.
//!
//! ```text
//! cargo install cargo-afl
//! cd formats/fuzz-afl && cargo afl build --release
//! cargo run --release -p ferrokey-formats --example fuzz_rdb -- --export-seeds /tmp/afl-in
//! AFL_SKIP_CPUFREQ=1 cargo afl fuzz -i /tmp/afl-in -o /tmp/afl-out -t 2000 -V 1800 \
//!     target/release/fuzz_rdb_afl
//! ```
//! A crash file replays with `target/release/fuzz_rdb_afl < crash`.

#[allow(dead_code)]
#[path = "../../examples/fuzz_rdb/engine.rs"]
mod engine;

use engine::{InputKind, Verdict};

#[global_allocator]
static ALLOC: engine::GuardedAlloc = engine::GuardedAlloc;

fn main() {
    afl::fuzz!(|input: &[u8]| {
        let Some((&mode, body)) = input.split_first() else { return };
        let kind = if mode & 1 == 1 { InputKind::Dump } else { InputKind::Rdb };
        let mut data = body.to_vec();
        if mode & 2 == 0 {
            engine::write_checksum(kind, &mut data);
        }
        if let Verdict::Finding(f) = engine::execute(kind, &data) {
            eprintln!("{}: {}", f.kind.name(), f.detail);
            std::process::abort();
        }
    });
}
