//! `ferrokey-server [CONFIG_FILE] [--directive value ...]`, started as
//! valkey-server is.

use ferrokey::config::Config;
use ferrokey::server::{FERROKEY_VERSION, VALKEY_VERSION};
use ferrokey::{log, log_notice, log_warning};

fn usage() -> String {
    format!(
        "Usage: ferrokey-server [/path/to/ferrokey.conf] [options] [-]\n\
         \x20      ferrokey-server - (read config from stdin)\n\
         \x20      ferrokey-server -v or --version\n\
         \x20      ferrokey-server -h or --help\n\n\
         Examples:\n\
         \x20      ferrokey-server (run the server with default config)\n\
         \x20      ferrokey-server /etc/ferrokey/6379.conf\n\
         \x20      ferrokey-server --port 7777\n\
         \x20      ferrokey-server /etc/myferrokey.conf --loglevel verbose -\n\
         \x20      ferrokey-server /etc/myferrokey.conf --loglevel verbose\n\n\
         Every valkey.conf directive of Valkey {VALKEY_VERSION} is accepted, in the file or as --directive value.\n"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(first) = args.first() {
        match first.as_str() {
            "-v" | "--version" => {
                println!("ferrokey server v={FERROKEY_VERSION} (Valkey {VALKEY_VERSION} compatible) bits=64");
                return;
            }
            "-h" | "--help" => {
                print!("{}", usage());
                return;
            }
            _ => {}
        }
    }
    let (args, import) = match ferrokey::persistence::split_load_rdb_arg(args) {
        Ok(split) => split,
        Err(text) => {
            eprintln!("{text}");
            std::process::exit(1);
        }
    };
    if let Some(file) = import {
        ferrokey::persistence::set_import_file(file);
    }
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(text) => {
            eprintln!("{text}");
            std::process::exit(1);
        }
    };
    if config.daemonize {
        daemonize();
    }
    // Valkey changes into `dir` while reading its config, so a relative
    // logfile or pidfile is relative to `dir`: do the same before using them.
    if let Err(e) = config.apply_dir() {
        eprintln!("Can't chdir to '{}': {e}", config.dir.display());
        std::process::exit(1);
    }
    if let Err(e) = log::configure(config.loglevel.into(), &config.logfile) {
        eprintln!("Can't open the log file: {e}");
        std::process::exit(1);
    }
    log_notice!("oO0OoO0OoO0Oo ferrokey is starting oO0OoO0OoO0Oo");
    log_notice!(
        "ferrokey version={FERROKEY_VERSION} (Valkey {VALKEY_VERSION} compatible), bits=64, pid={}, just started",
        std::process::id()
    );
    match &config.config_file {
        Some(path) => log_notice!("Configuration loaded from {}", path.display()),
        None => log_warning!(
            "Warning: no config file specified, using the default config. In order to specify a config file use ferrokey-server /path/to/ferrokey.conf"
        ),
    }
    for name in config.unimplemented_directives_set() {
        log_warning!("Directive '{name}' is accepted for compatibility but not implemented yet: ignored");
    }
    let pidfile = if config.pidfile.is_empty() && config.daemonize {
        format!("/var/run/ferrokey_{}.pid", config.port)
    } else {
        config.pidfile.clone()
    };
    if !pidfile.is_empty() {
        if let Err(e) = std::fs::write(&pidfile, format!("{}\n", std::process::id())) {
            log_warning!("Failed to write PID file: {e}");
        }
    }
    log_notice!("Running mode=standalone, port={}.", config.port);
    let code = ferrokey::server::run(config);
    std::process::exit(code);
}

/// Detaches from the terminal the classic way: fork, let the parent exit,
/// start a new session, and point the standard streams at /dev/null.
/// Runs before any thread or runtime exists, so forking is safe.
fn daemonize() {
    // SAFETY: single-threaded at this point; plain libc process calls.
    unsafe {
        match libc::fork() {
            -1 => {
                eprintln!("fork failed");
                std::process::exit(1);
            }
            0 => {}
            _ => libc::_exit(0),
        }
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}
