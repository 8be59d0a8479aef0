//! Test harness: a private OpenSSH `sshd` on 127.0.0.1 and a real `ssh-agent`.
//!
//! Each [`Sshd`] gets its own temporary directory with fresh host keys, an
//! sshd_config and an authorized_keys file, listens on a free loopback port and
//! is stopped by its pid when dropped. Client keys are made once per test
//! process with the real `ssh-keygen`.
//!
//! On Windows (the tests run under Wine on Linux, docs/windows.md) the same
//! sshd runs on the Linux side: [`Sshd`] and [`keys`] ask the sshd broker
//! ([`broker`], started natively by `.ci/run`) for it, and reach its files
//! through Wine's `Z:` drive ([`local_path`]).

#![allow(unreachable_pub, missing_docs)]
#![allow(dead_code)]

pub mod broker;
#[cfg(unix)]
pub mod tmux;
pub mod tweaked;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
#[cfg(not(windows))]
use std::process::{Child, Stdio};
use std::sync::OnceLock;
#[cfg(not(windows))]
use std::time::{Duration, Instant};

use spuff::ssh::{AuthMethod, Config, HostKeyPolicy, PublicKey};

pub const PASSPHRASE: &str = "correct horse battery staple";

/// Where this process reaches a file of the sshd's machine (the Linux side):
/// the same path on Unix, `Z:\...` under Wine.
pub fn local_path(server_path: &str) -> PathBuf {
    if cfg!(windows) {
        assert!(server_path.starts_with('/'), "not absolute: {server_path}");
        PathBuf::from(format!("Z:{}", server_path.replace('/', "\\")))
    } else {
        PathBuf::from(server_path)
    }
}

/// The sshd machine's name for a local path (the inverse of [`local_path`]).
pub fn server_path(local: &Path) -> String {
    let s = local.display().to_string();
    if cfg!(windows) {
        let rest = s
            .strip_prefix("Z:")
            .or_else(|| s.strip_prefix("z:"))
            .unwrap_or_else(|| panic!("{s} is not on Wine's Z: drive"));
        rest.replace('\\', "/")
    } else {
        s
    }
}

/// A temporary directory the sshd's machine can also reach.
pub fn shared_tempdir() -> tempfile::TempDir {
    if cfg!(windows) {
        tempfile::tempdir_in("Z:\\tmp").expect("tempdir on Z:")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

/// Run `ssh-keygen` where OpenSSH is: here on Unix, on the sshd's machine
/// (through an exec on `sshd`) under Wine. Paths in `args` are the sshd
/// machine's ([`server_path`]). Returns whether it succeeded, and its stdout.
pub async fn ssh_keygen(sshd: &Sshd, args: &[String]) -> (bool, String) {
    if cfg!(windows) {
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let out = sshd
            .connect()
            .await
            .exec(&format!("ssh-keygen {}", quoted.join(" ")))
            .await
            .expect("exec ssh-keygen");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    } else {
        let out = Command::new("ssh-keygen")
            .args(args)
            .output()
            .expect("run ssh-keygen");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// Client keys, generated once per test binary (under Wine: once per broker).
pub struct Keys {
    #[cfg(not(windows))]
    pub dir: tempfile::TempDir,
    #[cfg(windows)]
    pub dir: PathBuf,
    pub ed25519: PathBuf,
    pub rsa: PathBuf,
    pub encrypted: PathBuf,
    /// A key that is in no authorized_keys file.
    pub stranger: PathBuf,
}

#[cfg(not(windows))]
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let gen_key = |name: &str, args: &[&str], pass: &str| {
            let path = dir.path().join(name);
            run(Command::new("ssh-keygen")
                .args(args)
                .args(["-q", "-N", pass, "-C", name, "-f"])
                .arg(&path));
            path
        };
        Keys {
            ed25519: gen_key("id_ed25519", &["-t", "ed25519"], ""),
            rsa: gen_key("id_rsa", &["-t", "rsa", "-b", "2048"], ""),
            encrypted: gen_key("id_encrypted", &["-t", "ed25519"], PASSPHRASE),
            stranger: gen_key("id_stranger", &["-t", "ed25519"], ""),
            dir,
        }
    })
}

/// The broker's client keys: the sshds it starts authorize them.
#[cfg(windows)]
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut conn = broker::Client::connect();
        let reply = conn.request("keys").unwrap_or_else(|e| panic!("{e}"));
        let dir = local_path(&reply[0]);
        Keys {
            ed25519: dir.join("id_ed25519"),
            rsa: dir.join("id_rsa"),
            encrypted: dir.join("id_encrypted"),
            stranger: dir.join("id_stranger"),
            dir,
        }
    })
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn pub_key(private: &Path) -> PublicKey {
    let text = std::fs::read_to_string(private.with_extension("pub")).expect("read .pub");
    PublicKey::from_openssh(text.trim()).expect("parse .pub")
}

#[cfg(not(windows))]
pub fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| run(Command::new("id").arg("-un")).trim().to_string())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[cfg(not(windows))]
fn sshd_binary() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("OpenSSH sshd not found: install openssh-server (.ci/run does)");
}

/// How [`Sshd::launch`] sets a server up; the default is what [`Sshd::start`]
/// does.
#[cfg(not(windows))]
#[derive(Debug, Default, Clone, Copy)]
pub struct SshdOptions<'a> {
    /// Extra sshd_config lines, read before (so winning over) the defaults.
    /// A `Subsystem` line replaces the default `Subsystem sftp internal-sftp`
    /// (sshd refuses a subsystem defined twice).
    pub extra: &'a str,
    /// The host key, an OpenSSH private key; a fresh ed25519 key if `None`.
    pub host_key: Option<&'a str>,
    /// The authorized_keys file's content; the test client keys if `None`.
    pub authorized_keys: Option<&'a str>,
    /// The port to listen on; a free one if `None`.
    pub port: Option<u16>,
}

/// Writes a host key as sshd wants it (mode 0600, or it refuses the key),
/// with its `.pub` beside it (derived by `ssh-keygen -y`).
#[cfg(not(windows))]
fn write_host_key(path: &Path, private_openssh: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create host key file");
    f.write_all(private_openssh.as_bytes())
        .expect("write host key");
    let public = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(path));
    std::fs::write(path.with_extension("pub"), public).expect("write host key .pub");
}

/// A private sshd.
#[cfg(not(windows))]
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host_key: PublicKey,
    pub host_key_path: PathBuf,
    pub user: String,
    child: Child,
}

#[cfg(not(windows))]
impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with("")
    }

    /// Start with extra sshd_config lines. sshd keeps the first value it reads
    /// for a keyword, so these go first and win over the defaults below.
    pub fn start_with(extra: &str) -> Sshd {
        Self::launch(&SshdOptions {
            extra,
            ..SshdOptions::default()
        })
    }

    /// Start with a given host key (an OpenSSH private key, as cloud-init's
    /// `ssh_keys.ed25519_private` holds it) and authorized_keys content, in
    /// place of a fresh key and the test client keys.
    pub fn start_with_host_key(private_openssh: &str, authorized_keys: &str) -> Sshd {
        Self::launch(&SshdOptions {
            host_key: Some(private_openssh),
            authorized_keys: Some(authorized_keys),
            ..SshdOptions::default()
        })
    }

    /// Start as `opts` says.
    pub fn launch(opts: &SshdOptions<'_>) -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let host_key_path = d.join("ssh_host_ed25519_key");
        match opts.host_key {
            Some(private) => write_host_key(&host_key_path, private),
            None => {
                run(Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(&host_key_path));
            }
        }
        let authorized = match opts.authorized_keys {
            Some(lines) => lines.to_string(),
            None => {
                let k = keys();
                let mut authorized = String::new();
                for key in [&k.ed25519, &k.rsa, &k.encrypted] {
                    authorized.push_str(
                        &std::fs::read_to_string(key.with_extension("pub")).expect("pub"),
                    );
                }
                authorized
            }
        };
        std::fs::write(d.join("authorized_keys"), authorized).expect("authorized_keys");
        if is_root() {
            // sshd refuses to start as root without its privilege separation dir.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let extra = opts.extra;
        let subsystem = if extra
            .lines()
            .any(|l| l.trim_start().to_ascii_lowercase().starts_with("subsystem"))
        {
            ""
        } else {
            "Subsystem sftp internal-sftp"
        };
        // A port the caller chose gets one try; otherwise a few free ones.
        let attempts = if opts.port.is_some() { 1 } else { 5 };
        for _attempt in 0..attempts {
            let port = opts.port.unwrap_or_else(free_port);
            let config = format!(
                "{extra}
Port {port}
ListenAddress 127.0.0.1
HostKey {hk}
PidFile {pid}
AuthorizedKeysFile {ak}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowAgentForwarding yes
AllowTcpForwarding yes
PermitTTY yes
X11Forwarding no
AcceptEnv SPUFF_*
MaxStartups 200:30:400
MaxSessions 200
LogLevel VERBOSE
{subsystem}
",
                hk = host_key_path.display(),
                pid = d.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display(),
            );
            let cfg_path = d.join("sshd_config");
            std::fs::write(&cfg_path, config).expect("sshd_config");
            let log = std::fs::File::create(d.join("sshd.log")).expect("log");
            let child = Command::new(sshd_binary())
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn sshd");
            let mut child = child;
            if wait_listening(&mut child, port) {
                return Sshd {
                    host_key: pub_key(&host_key_path),
                    host_key_path: host_key_path.clone(),
                    user: current_user(),
                    port,
                    child,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            if !log.contains("Address already in use") {
                panic!("sshd did not start:\n{log}");
            }
        }
        match opts.port {
            Some(port) => panic!("sshd could not listen on port {port}: it is in use"),
            None => panic!("sshd could not find a free port"),
        }
    }

    /// SIGKILL every process this sshd forked for connections, as if the VM
    /// vanished, leaving the listener up.
    pub fn kill_sessions(&self) {
        self.signal_sessions("KILL");
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to every process this sshd
    /// forked for connections: `STOP` is a VM that stops answering without
    /// closing anything.
    pub fn signal_sessions(&self, signal: &str) {
        for pid in descendants(self.child.id()) {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Stop the listening daemon (by its pid file, so also one restarted by
    /// [`Sshd::restart_detached`]) and wait until its port is closed.
    pub fn stop_listener(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("sshd.pid")).expect("pid file");
        let st = Command::new("kill").arg(pid.trim()).status().expect("kill");
        assert!(st.success());
        // Wait until the port is closed.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("sshd did not stop");
    }

    /// Start the same config again as a daemon (it detaches; stop it with
    /// [`Sshd::stop_listener`]). Returns whether sshd started.
    pub fn restart_detached(&self) -> bool {
        Command::new(sshd_binary())
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .status()
            .expect("restart sshd")
            .success()
    }

    /// A path in this sshd's directory, as the server names it.
    pub fn remote(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
}

/// Under Wine: an sshd the broker runs on the Linux side for as long as this
/// connection to the broker is open. Its files are reached through `Z:`.
#[cfg(windows)]
pub struct Sshd {
    /// The server's directory, as this process reaches it (`Z:\tmp\...`).
    pub dir: SshdDir,
    pub port: u16,
    pub host_key: PublicKey,
    pub host_key_path: PathBuf,
    pub user: String,
    linux_dir: String,
    broker: std::sync::Mutex<broker::Client>,
}

/// The local name of a broker sshd's directory (the broker removes it).
#[cfg(windows)]
pub struct SshdDir(PathBuf);

#[cfg(windows)]
impl SshdDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(windows)]
impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with("")
    }

    /// Start with extra sshd_config lines (see the Unix harness).
    pub fn start_with(extra: &str) -> Sshd {
        let mut broker = broker::Client::connect();
        let fields = broker
            .request(&format!("start {}", hex::encode(extra)))
            .unwrap_or_else(|e| panic!("the sshd broker could not start sshd: {e}"));
        let [port, linux_dir, user] = <[String; 3]>::try_from(fields).expect("broker reply");
        let dir = local_path(&linux_dir);
        let host_key_path = dir.join("ssh_host_ed25519_key");
        Sshd {
            host_key: pub_key(&host_key_path),
            host_key_path,
            port: port.parse().expect("port"),
            dir: SshdDir(dir),
            user,
            linux_dir,
            broker: std::sync::Mutex::new(broker),
        }
    }

    fn ask(&self, request: &str) -> Result<Vec<String>, String> {
        self.broker.lock().expect("broker lock").request(request)
    }

    /// SIGKILL every process this sshd forked for connections (done by the broker).
    pub fn kill_sessions(&self) {
        self.ask("kill-sessions")
            .unwrap_or_else(|e| panic!("kill-sessions: {e}"));
    }

    /// Stop the listening daemon and wait until its port is closed.
    pub fn stop_listener(&self) {
        self.ask("stop-listener")
            .unwrap_or_else(|e| panic!("stop-listener: {e}"));
    }

    /// Start the same config again as a daemon. Returns whether sshd started.
    pub fn restart_detached(&self) -> bool {
        self.ask("restart").is_ok()
    }

    /// A path in this sshd's directory, as the server names it.
    pub fn remote(&self, rel: &str) -> String {
        format!("{}/{rel}", self.linux_dir)
    }
}

/// The parts that are the same on every platform.
impl Sshd {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A client config for this server: pinned host key, the ed25519 key.
    pub fn config(&self) -> Config {
        Config {
            port: self.port,
            host_keys: HostKeyPolicy::pinned([self.host_key.clone()]),
            auth: vec![AuthMethod::KeyFile(keys().ed25519.clone())],
            ..Config::new("127.0.0.1", self.user.clone())
        }
    }

    pub async fn connect(&self) -> spuff::ssh::Session {
        match spuff::ssh::Session::connect(self.config()).await {
            Ok(s) => s,
            Err(e) => panic!("connect failed: {e}\n--- sshd log ---\n{}", self.log()),
        }
    }

    /// OpenSSH client arguments for the same server (for comparisons).
    pub fn ssh_args(&self) -> Vec<String> {
        let kh = self.dir.path().join("client_known_hosts");
        let _ = std::fs::write(
            &kh,
            format!(
                "[127.0.0.1]:{} {}\n",
                self.port,
                self.host_key.to_openssh().expect("openssh")
            ),
        );
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            keys().ed25519.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", kh.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-l".into(),
            self.user.clone(),
        ]
    }
}

#[cfg(not(windows))]
impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(not(windows))]
fn wait_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// All descendants of `pid`, from /proc.
#[cfg(not(windows))]
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces; fields follow it.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
            && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok())
        {
            parents.entry(ppid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for &c in parents.get(&p).into_iter().flatten() {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

#[cfg(not(windows))]
pub fn is_root() -> bool {
    current_user() == "root"
}

/// A real ssh-agent on a private socket.
#[cfg(not(windows))]
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    child: Child,
}

#[cfg(not(windows))]
impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { dir, sock, child }
    }

    pub fn add(&self, key: &Path) {
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock));
    }
}

#[cfg(not(windows))]
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Write `len` bytes of deterministic, incompressible-looking data.
pub fn write_pattern_file(path: &Path, len: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len;
    let mut left = len;
    let mut buf = [0u8; 8192];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    f.flush().expect("flush");
}
