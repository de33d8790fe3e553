// TEMPORARY STUB written by the lead so the crate builds while the config
// module is being written. The config helper replaces this file entirely.
use std::path::PathBuf;

pub enum LogLevel { Debug, Verbose, Notice, Warning, Nothing }
pub enum AppendFsync { Always, EverySec, No }

pub struct Config {
    pub port: u16, pub bind: Vec<String>, pub protected_mode: bool, pub dir: PathBuf,
    pub dbfilename: String, pub databases: usize, pub requirepass: Option<Vec<u8>>, pub maxclients: usize,
    pub timeout: u64, pub tcp_keepalive: u64, pub tcp_backlog: u32, pub loglevel: LogLevel,
    pub logfile: String, pub daemonize: bool, pub pidfile: String, pub save: Vec<(u64, u64)>,
    pub appendonly: bool, pub appendfsync: AppendFsync, pub appenddirname: String, pub appendfilename: String,
    pub hz: u32, pub proto_max_bulk_len: i64, pub client_query_buffer_limit: u64, pub maxmemory: u64,
    pub enable_debug_command: String, pub config_file: Option<PathBuf>,
}

impl Config {
    pub fn defaults() -> Config {
        Config { port: 6379, bind: vec!["*".into()], protected_mode: true, dir: PathBuf::from("."),
            dbfilename: "dump.rdb".into(), databases: 16, requirepass: None, maxclients: 10000, timeout: 0,
            tcp_keepalive: 300, tcp_backlog: 511, loglevel: LogLevel::Notice, logfile: String::new(),
            daemonize: false, pidfile: String::new(), save: vec![], appendonly: false, appendfsync: AppendFsync::EverySec,
            appenddirname: "appendonlydir".into(), appendfilename: "appendonly.aof".into(), hz: 10,
            proto_max_bulk_len: 512 << 20, client_query_buffer_limit: 1 << 30, maxmemory: 0,
            enable_debug_command: "no".into(), config_file: None }
    }
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut c = Config::defaults();
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--port" => { c.port = args[i + 1].parse().map_err(|_| "bad port".to_string())?; i += 1; }
                "--dir" => { c.dir = PathBuf::from(&args[i + 1]); i += 1; }
                "--bind" => { c.bind = vec![args[i + 1].clone()]; i += 1; }
                "--enable-debug-command" => { c.enable_debug_command = args[i + 1].clone(); i += 1; }
                _ => {}
            }
            i += 1;
        }
        Ok(c)
    }
    pub fn unimplemented_directives_set(&self) -> Vec<String> { vec![] }
    pub fn apply_dir(&self) -> Result<(), String> { std::env::set_current_dir(&self.dir).map_err(|e| e.to_string()) }
}
