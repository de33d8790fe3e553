//! MONITOR: clients that are sent every command the server runs, one
//! status line each, as Valkey writes them:
//!
//! `+<unix seconds>.<microseconds> [<db> <client address>] "arg" "arg"...`
//!
//! with `lua` for the address of a command a script or function called.
//! A command is shown once it ran, under the database it left selected,
//! except EVAL and FCALL (and their variants), shown before the commands
//! their script runs; admin commands are never shown, nor a command a
//! client sends while it is not run (rejected, or queued in MULTI: it shows
//! when EXEC runs it), nor a parked blocking command when it is served.
//! Passwords given to AUTH and HELLO show as `(redacted)`.

use std::collections::BTreeMap;
use std::rc::Rc;

use ferrokey_formats::resp::parse_i64;

use crate::client::ClientInfo;
use crate::server::{unix_us, ServerState};

/// The clients in MONITOR mode, by id.
#[derive(Default)]
pub struct Monitors {
    clients: BTreeMap<u64, Rc<ClientInfo>>,
}

impl Monitors {
    pub fn add(&mut self, client: &Rc<ClientInfo>) {
        client.monitor.set(true);
        self.clients.insert(client.id, client.clone());
    }

    /// Leaves MONITOR mode (RESET, disconnect); nothing if not in it.
    pub fn remove(&mut self, client: &ClientInfo) {
        client.monitor.set(false);
        self.clients.remove(&client.id);
    }
}

/// Sends one command to every monitor. `db` is the database the command
/// ran in (or left selected).
pub fn feed(st: &ServerState, client: &ClientInfo, db: usize, args: &[&[u8]]) {
    if st.monitors.clients.is_empty() {
        return;
    }
    let micros = unix_us();
    let origin = if crate::scripting::engine::script_is_running() {
        "lua".to_string()
    } else {
        crate::commands::connection::format_addr(&client.addr)
    };
    let mut line = format!("+{}.{:06} [{db} {origin}] ", micros / 1_000_000, micros % 1_000_000).into_bytes();
    let redacted = redacted_arguments(args);
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        let shown: &[u8] = if redacted.contains(&i) { b"(redacted)" } else { arg };
        ferrokey_formats::repr::quote_into(&mut line, shown);
    }
    line.extend_from_slice(b"\r\n");
    for monitor in st.monitors.clients.values() {
        monitor.push_output(&line);
    }
}

/// The positions of the arguments Valkey hides from monitors: AUTH's
/// username and password (unless the call has too many arguments to be
/// read as either form), HELLO's AUTH pair (once the protocol version was
/// accepted; options after a syntax error are not looked at).
fn redacted_arguments(args: &[&[u8]]) -> Vec<usize> {
    let name = args[0];
    if name.eq_ignore_ascii_case(b"auth") {
        return match args.len() {
            2 => vec![1],
            3 => vec![1, 2],
            _ => Vec::new(),
        };
    }
    if !name.eq_ignore_ascii_case(b"hello") || args.len() < 2 {
        return Vec::new();
    }
    let version_accepted = parse_i64(args[1]).is_some_and(|v| (2..=3).contains(&v));
    if !version_accepted {
        return Vec::new();
    }
    let mut redacted = Vec::new();
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args[j].eq_ignore_ascii_case(b"auth") && more >= 2 {
            redacted.extend([j + 1, j + 2]);
            j += 3;
        } else if args[j].eq_ignore_ascii_case(b"setname") && more >= 1 {
            j += 2;
        } else {
            break;
        }
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_auth_and_hello_passwords() {
        assert_eq!(redacted_arguments(&[b"AUTH", b"pw"]), vec![1]);
        assert_eq!(redacted_arguments(&[b"auth", b"user", b"pw"]), vec![1, 2]);
        assert_eq!(redacted_arguments(&[b"auth", b"a", b"b", b"c"]), Vec::<usize>::new());
        assert_eq!(redacted_arguments(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"x"]), vec![3, 4]);
        assert_eq!(redacted_arguments(&[b"hello", b"3", b"SETNAME", b"x", b"auth", b"u", b"p"]), vec![5, 6]);
        assert_eq!(redacted_arguments(&[b"HELLO", b"9", b"AUTH", b"u", b"p"]), Vec::<usize>::new());
        assert_eq!(redacted_arguments(&[b"HELLO", b"3", b"bogus", b"AUTH", b"u", b"p"]), Vec::<usize>::new());
        assert_eq!(redacted_arguments(&[b"SET", b"k", b"v"]), Vec::<usize>::new());
    }
}
