//! Function libraries as part of the dataset: kept by FLUSHALL, DEBUG
//! RELOAD, SAVE / BGSAVE and a restart; FUNCTION DUMP payloads identical
//! to valkey-server's and restorable both ways; RDB files with libraries
//! read by valkey-server; a file whose library cannot load is refused.

mod common;

use std::path::Path;

use std::thread;
use std::time::{Duration, Instant};

use common::{run_to_exit, RawConn, Server, Valkey};
use ferrokey_formats::rdb::{AuxInfo, RdbWriter, WriterOptions};

const COUNTER: &[u8] = b"#!lua name=counter\n\
    server.register_function('incr_by', function(keys, args) return server.call('incrby', keys[1], args[1]) end)\n\
    server.register_function{function_name='peek', callback=function(keys) return server.call('get', keys[1]) end, flags={'no-writes'}, description='reads the counter'}";

const GREETER: &[u8] =
    b"#!lua name=greeter\nserver.register_function('greet', function(_, args) return 'hello ' .. args[1] end)";

fn load(conn: &mut RawConn, code: &[u8]) -> Vec<u8> {
    conn.cmd(&[b"FUNCTION", b"LOAD", code])
}

/// Both libraries loaded and callable.
fn assert_libraries_work(conn: &mut RawConn) {
    assert_eq!(conn.cmd(&[b"FCALL", b"incr_by", b"1", b"n", b"5"]), b":5\r\n");
    assert_eq!(conn.cmd(&[b"FCALL_RO", b"PEEK", b"1", b"n"]), b"$1\r\n5\r\n");
    assert_eq!(conn.cmd(&[b"FCALL", b"greet", b"0", b"you"]), b"$9\r\nhello you\r\n");
    assert_eq!(
        conn.cmd(&[b"FUNCTION", b"STATS"]),
        b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n$15\r\nlibraries_count\r\n:2\r\n$15\r\nfunctions_count\r\n:3\r\n"
    );
}

#[test]
fn libraries_survive_flushall_reload_save_and_restart() {
    let mut server = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut conn = server.raw();
    assert_eq!(load(&mut conn, COUNTER), b"$7\r\ncounter\r\n");
    assert_eq!(load(&mut conn, GREETER), b"$7\r\ngreeter\r\n");
    assert_libraries_work(&mut conn);
    // FLUSHALL empties the keyspace only; DEBUG RELOAD saves and loads
    // the libraries with the keys.
    assert_eq!(conn.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&[b"DEBUG", b"RELOAD"]), b"+OK\r\n");
    assert_libraries_work(&mut conn);
    // DEBUG RELOAD NOFLUSH loads the file's libraries over the ones in
    // memory: the same names are an error, unless MERGE.
    assert_eq!(
        conn.cmd(&[b"DEBUG", b"RELOAD", b"NOFLUSH", b"NOSAVE"]),
        b"-ERR Error trying to load the RDB dump, check server logs.\r\n"
    );
    assert_eq!(conn.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&[b"DEBUG", b"RELOAD", b"NOFLUSH", b"MERGE", b"NOSAVE"]), b"+OK\r\n");
    assert_libraries_work(&mut conn);
    // A background save writes them too.
    assert_eq!(conn.cmd(&[b"BGSAVE"]), b"+Background saving started\r\n");
    wait_for_bgsave(&mut conn);
    drop(conn);
    server.restart();
    let mut conn = server.raw();
    assert_eq!(conn.cmd(&[b"GET", b"n"]), b"$1\r\n5\r\n");
    assert_eq!(conn.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
    assert_libraries_work(&mut conn);
    // FUNCTION FLUSH is what removes them.
    assert_eq!(conn.cmd(&[b"FUNCTION", b"FLUSH"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&[b"FCALL", b"greet", b"0", b"x"]), b"-ERR Function not found\r\n");
}

fn wait_for_bgsave(conn: &mut RawConn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = String::from_utf8_lossy(&conn.cmd(&[b"INFO", b"persistence"])).into_owned();
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_last_bgsave_status:ok") {
            return;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish:\n{info}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A library long enough to be compressed in a payload.
fn long_library() -> Vec<u8> {
    let mut code = b"#!lua name=long\n".to_vec();
    for i in 0..20 {
        code.extend_from_slice(format!("server.register_function('long_{i}', function() return {i} end)\n").as_bytes());
    }
    code
}

#[test]
fn dump_payloads_are_valkeys_and_restore_both_ways() {
    let valkey = Valkey::start();
    let server = Server::start();
    let mut theirs = valkey.raw();
    let mut ours = server.raw();
    let code = long_library();
    assert_eq!(load(&mut theirs, &code), b"$4\r\nlong\r\n");
    assert_eq!(load(&mut ours, &code), b"$4\r\nlong\r\n");
    let dump = theirs.cmd(&[b"FUNCTION", b"DUMP"]);
    assert_eq!(ours.cmd(&[b"FUNCTION", b"DUMP"]), dump, "the same library dumps to the same bytes");
    let payload = bulk_body(&dump);

    // Valkey's payload into ferrokey: APPEND refuses the existing library,
    // FLUSH replaces everything.
    assert_eq!(ours.cmd(&[b"FUNCTION", b"RESTORE", payload]), b"-ERR Library long already exists\r\n");
    assert_eq!(load(&mut ours, GREETER), b"$7\r\ngreeter\r\n");
    assert_eq!(ours.cmd(&[b"FUNCTION", b"RESTORE", payload, b"FLUSH"]), b"+OK\r\n");
    assert_eq!(ours.cmd(&[b"FCALL", b"long_19", b"0"]), b":19\r\n");
    assert_eq!(ours.cmd(&[b"FCALL", b"greet", b"0", b"x"]), b"-ERR Function not found\r\n");

    // ferrokey's payload of two libraries into Valkey.
    assert_eq!(load(&mut ours, GREETER), b"$7\r\ngreeter\r\n");
    let ours_dump = ours.cmd(&[b"FUNCTION", b"DUMP"]);
    assert_eq!(theirs.cmd(&[b"FUNCTION", b"FLUSH"]), b"+OK\r\n");
    assert_eq!(theirs.cmd(&[b"FUNCTION", b"RESTORE", bulk_body(&ours_dump)]), b"+OK\r\n");
    assert_eq!(theirs.cmd(&[b"FCALL", b"greet", b"0", b"valkey"]), b"$12\r\nhello valkey\r\n");
    assert_eq!(theirs.cmd(&[b"FCALL", b"long_0", b"0"]), b":0\r\n");
}

/// The body of a bulk string reply.
fn bulk_body(reply: &[u8]) -> &[u8] {
    assert_eq!(reply.first(), Some(&b'$'), "not a bulk string: {}", String::from_utf8_lossy(reply));
    let start = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
    &reply[start..reply.len() - 2]
}

#[test]
fn valkey_loads_the_libraries_ferrokey_saved() {
    let server = Server::start();
    let mut ours = server.raw();
    assert_eq!(load(&mut ours, COUNTER), b"$7\r\ncounter\r\n");
    assert_eq!(load(&mut ours, GREETER), b"$7\r\ngreeter\r\n");
    assert_eq!(ours.cmd(&[b"SAVE"]), b"+OK\r\n");
    let mut valkey = Valkey::start();
    std::fs::copy(server.path().join("dump.rdb"), valkey.path().join("dump.rdb")).unwrap();
    valkey.restart();
    let mut theirs = valkey.raw();
    assert_libraries_work(&mut theirs);
}

/// Writes an RDB file holding only the given libraries.
fn write_rdb_with_libraries(path: &Path, libraries: &[&[u8]]) {
    let mut bytes = Vec::new();
    let mut w = RdbWriter::new(&mut bytes, WriterOptions { compression: true, checksum: true });
    w.header().unwrap();
    w.standard_aux(&AuxInfo { ctime: 0, used_mem: 0, aof_base: false, repl: None }).unwrap();
    for code in libraries {
        w.function(code).unwrap();
    }
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_file_whose_library_cannot_load_is_refused() {
    let cases: [(&[&[u8]], &str); 3] = [
        (&[b"#!lua name=empty\nlocal a = 1"], "No functions registered"),
        (&[GREETER, GREETER], "Library 'greeter' already exists"),
        (&[b"#!lua name=broken\nserver.register_function("], "Error compiling function"),
    ];
    for (libraries, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_rdb_with_libraries(&dir.path().join("dump.rdb"), libraries);
        let (code, log) = run_to_exit(dir.path(), &[]);
        let failed = code != Some(0);
        assert!(failed, "the server started with a library that cannot load:\n{log}");
        assert!(log.contains("Failed loading library") && log.contains(reason), "{log}");
    }
    // The same file with a good library loads.
    let mut server = Server::start();
    write_rdb_with_libraries(&server.path().join("dump.rdb"), &[GREETER]);
    server.restart();
    assert_eq!(server.raw().cmd(&[b"FCALL", b"greet", b"0", b"again"]), b"$11\r\nhello again\r\n");
}
