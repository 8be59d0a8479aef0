//! The sshd broker: how the tests reach a real OpenSSH server when they run
//! under Wine (docs/windows.md).
//!
//! A Windows test binary cannot start the Linux `sshd` and `ssh-keygen` in a
//! useful way, so `.ci/run` starts this broker natively, from the Linux test
//! binary (the ignored test `sshd_broker`), and passes its address to the
//! Windows run as `SPUFF_TEST_BROKER=TOKEN@127.0.0.1:PORT`. The Windows harness
//! ([`super::Sshd`], [`super::keys`]) then asks it, over a line protocol on
//! 127.0.0.1, to do what the Linux harness does itself.
//!
//! Protocol: one request per line, one reply per line. A reply is `ok` or `err`
//! followed by hex-encoded fields. The first request on a connection is
//! `auth TOKEN`; then:
//!
//! - `keys` → the directory holding the client keys every sshd authorizes;
//! - `start HEX(extra sshd_config)` → port, directory, user of a new sshd that
//!   lives as long as this connection;
//! - `kill-sessions`, `stop-listener`, `restart` → as the [`super::Sshd`]
//!   methods of the same names, on this connection's sshd;
//! - whatever the [`server::Extension`] it was started with serves (the
//!   fake VMs of tests/fakevm: `boot`, `agent-binary`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// The variable that tells a Windows test binary where the broker listens.
pub const ENV: &str = "SPUFF_TEST_BROKER";

fn reply(result: Result<Vec<String>, String>) -> String {
    match result {
        Ok(fields) => std::iter::once("ok".to_string())
            .chain(fields.iter().map(hex::encode))
            .collect::<Vec<_>>()
            .join(" "),
        Err(msg) => format!("err {}", hex::encode(msg)),
    }
}

fn parse_reply(line: &str) -> Result<Vec<String>, String> {
    let mut words = line.split_whitespace();
    let status = words.next();
    let fields: Vec<String> = words
        .map(|w| {
            hex::decode(w)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| format!("<bad field {w:?}>"))
        })
        .collect();
    match status {
        Some("ok") => Ok(fields),
        Some("err") => Err(fields.join(" ")),
        _ => Err(format!("malformed reply from the broker: {line:?}")),
    }
}

/// A connection to the broker (used by the Windows harness).
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connect and authenticate; panics with a clear message when the broker
    /// is not configured or not reachable: the SSH tests cannot run without it.
    pub fn connect() -> Client {
        let value = std::env::var(ENV).unwrap_or_else(|_| {
            panic!(
                "{ENV} is not set: on Windows the SSH tests need the sshd broker running \
                 natively on the Linux side of Wine (`bash .ci/run` starts it; \
                 docs/windows.md shows how to start it by hand)"
            )
        });
        let (token, addr) = value
            .split_once('@')
            .unwrap_or_else(|| panic!("{ENV}={value:?} is not TOKEN@HOST:PORT"));
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("cannot reach the sshd broker at {addr} ({ENV}): {e}"));
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            writer: stream,
        };
        client
            .request(&format!("auth {token}"))
            .unwrap_or_else(|e| panic!("the sshd broker at {addr} refused us: {e}"));
        client
    }

    /// Send one request, return the reply's fields or its error message.
    pub fn request(&mut self, line: &str) -> Result<Vec<String>, String> {
        writeln!(self.writer, "{line}").map_err(|e| format!("broker: {e}"))?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) => Err("the sshd broker closed the connection".into()),
            Ok(_) => parse_reply(answer.trim_end()),
            Err(e) => Err(format!("broker: {e}")),
        }
    }
}

/// The broker itself (native only).
#[cfg(not(windows))]
pub mod server {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::panic::AssertUnwindSafe;

    use super::reply;
    use crate::util::{Sshd, keys};

    /// Requests the broker does not serve itself: given the op and its
    /// argument, `Some(reply)` when it is one of them. What a request
    /// starts goes in `keep`, dropped when the connection ends.
    pub type Extension = fn(
        op: &str,
        arg: &str,
        keep: &mut Vec<Box<dyn std::any::Any + Send>>,
    ) -> Option<Result<Vec<String>, String>>;

    /// Serve until killed, when `SPUFF_BROKER_LISTEN` (e.g. `127.0.0.1:0`)
    /// is set; the value for [`super::ENV`] is written to the file named by
    /// `SPUFF_BROKER_ADDR_FILE` (or printed). Without it, return at once.
    pub fn serve_from_env(extension: Extension) {
        let Ok(listen) = std::env::var("SPUFF_BROKER_LISTEN") else {
            eprintln!("SPUFF_BROKER_LISTEN is not set: not starting the sshd broker");
            return;
        };
        let listener = TcpListener::bind(&listen).expect("broker: bind");
        let addr = listener.local_addr().expect("broker: address");
        assert!(
            addr.ip().is_loopback(),
            "the broker listens on loopback only"
        );
        let mut raw = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .expect("broker: token");
        let token = hex::encode(raw);
        // Client keys first, so that the first test does not wait for them.
        let _ = keys();
        let value = format!("{token}@{addr}");
        match std::env::var("SPUFF_BROKER_ADDR_FILE") {
            Ok(file) => {
                use std::os::unix::fs::OpenOptionsExt;
                let tmp = format!("{file}.tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .expect("broker: address file");
                writeln!(f, "{value}").expect("broker: address file");
                std::fs::rename(&tmp, &file).expect("broker: address file");
            }
            Err(_) => println!("{}={value}", super::ENV),
        }
        eprintln!("sshd broker listening on {addr}");
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let token = token.clone();
            std::thread::spawn(move || serve_connection(conn, &token, extension));
        }
    }

    fn serve_connection(conn: TcpStream, token: &str, extension: Extension) {
        let Ok(read_half) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut writer = conn;
        let mut authed = false;
        // The sshd (and what extensions started) of this connection:
        // dropped (stopped) when the client goes.
        let mut sshd: Option<Sshd> = None;
        let mut kept: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let request = line.trim_end();
            let result = if !authed {
                if request.strip_prefix("auth ") == Some(token) {
                    authed = true;
                    Ok(vec![])
                } else {
                    let _ = writeln!(writer, "{}", reply(Err("bad token".into())));
                    break;
                }
            } else {
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let (op, arg) = request.split_once(' ').unwrap_or((request, ""));
                    extension(op, arg, &mut kept).unwrap_or_else(|| handle(request, &mut sshd))
                }))
                .unwrap_or_else(|panic| {
                    Err(panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "the broker panicked".into()))
                })
            };
            if writeln!(writer, "{}", reply(result)).is_err() {
                break;
            }
        }
    }

    fn handle(request: &str, sshd: &mut Option<Sshd>) -> Result<Vec<String>, String> {
        let (op, arg) = request.split_once(' ').unwrap_or((request, ""));
        match op {
            "keys" => Ok(vec![keys().dir.path().display().to_string()]),
            "start" => {
                if sshd.is_some() {
                    return Err("one sshd per connection".into());
                }
                let extra = hex::decode(arg)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or("start: bad config")?;
                let s = Sshd::start_with(&extra);
                let fields = vec![
                    s.port.to_string(),
                    s.dir.path().display().to_string(),
                    s.user.clone(),
                ];
                *sshd = Some(s);
                Ok(fields)
            }
            "kill-sessions" => {
                running(sshd, op)?.kill_sessions();
                Ok(vec![])
            }
            "stop-listener" => {
                running(sshd, op)?.stop_listener();
                Ok(vec![])
            }
            "restart" => {
                if running(sshd, op)?.restart_detached() {
                    Ok(vec![])
                } else {
                    Err("sshd did not restart".into())
                }
            }
            _ => Err(format!("unknown request {op:?}")),
        }
    }

    fn running<'a>(sshd: &'a Option<Sshd>, op: &str) -> Result<&'a Sshd, String> {
        sshd.as_ref()
            .ok_or_else(|| format!("{op}: no sshd started on this connection"))
    }
}
