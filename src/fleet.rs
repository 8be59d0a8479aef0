//! Many VMs at once: one command on every host of a fleet, concurrently,
//! with a result per host (issue 15).
//!
//! What Spot Deployer's `BatchSSHManager.execute_on_all` and
//! `transfer_to_all` do, as library calls ([`exec_all`], [`upload_all`]):
//! one SSH connection per host, at most [`FleetOptions::parallel`]
//! hosts at a time, and a [`HostOutcome`] for every host whether it failed
//! to connect, failed its command or succeeded, so one bad host never hides
//! the others. Memory stays bounded however much a command prints: each
//! host keeps only the tail of its output (for the result table), and the
//! whole output goes to files when [`FleetOptions::output_dir`] is set.
//!
//! ```no_run
//! # async fn demo(hosts: Vec<spuff::fleet::FleetHost>) {
//! use spuff::fleet::{FleetOptions, exec_all};
//!
//! let outcomes = exec_all(hosts, "uptime", &FleetOptions::default(), |_| {}).await;
//! for o in &outcomes {
//!     match &o.result {
//!         Ok(run) => println!("{}: {} {}", o.name, run.status, run.last_line().unwrap_or("")),
//!         Err(e) => println!("{}: {e}", o.name),
//!     }
//! }
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::ssh::{self, ExecEvent, ExitStatus, Session};

/// One host of a fleet: a name for results and files, and how to reach it.
#[derive(Debug, Clone)]
pub struct FleetHost {
    /// The VM's name (`spuff-a1b2c3d4`), as results and files are named.
    pub name: String,
    /// How to connect (address, port, user, keys, pinned host key).
    pub ssh: ssh::Config,
}

/// How a fleet command runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetOptions {
    /// Hosts worked on at once (at least 1).
    pub parallel: usize,
    /// Where each host's whole output goes, as `NAME.stdout` and
    /// `NAME.stderr` (the name made safe for a file name); `None` keeps
    /// only the tail.
    pub output_dir: Option<PathBuf>,
    /// Bytes of each stream kept in memory per host (the tail).
    pub tail_bytes: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            parallel: 16,
            output_dir: None,
            tail_bytes: 16 * 1024,
        }
    }
}

impl FleetOptions {
    /// At most `n` hosts at once.
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }

    /// Keep each host's whole output under `dir`.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }
}

/// What happened on one host: a command's run ([`HostRun`], the default)
/// or an upload ([`Uploaded`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct HostOutcome<T = HostRun> {
    /// The host's name.
    pub name: String,
    /// What was done, or why it could not be (connect, auth, I/O).
    pub result: Result<T, FleetError>,
    /// From the start of the connection to the end of the work.
    pub duration: Duration,
}

impl HostOutcome<HostRun> {
    /// Whether the command ran and exited 0.
    pub fn success(&self) -> bool {
        self.result.as_ref().is_ok_and(|r| r.status.success())
    }
}

impl HostOutcome<Uploaded> {
    /// Whether the upload landed (it is checked on the host either way).
    pub fn success(&self) -> bool {
        self.result.is_ok()
    }
}

/// What an upload put on one host.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Uploaded {
    /// Bytes of file content.
    pub bytes: u64,
    /// Regular files (1 for a single file).
    pub files: u64,
    /// Whether a tree went through one `tar` stream (see
    /// [`crate::sftp::TransferSummary::streamed`]).
    pub streamed: bool,
}

/// A command that ran on a host.
#[derive(Debug)]
#[non_exhaustive]
pub struct HostRun {
    /// How it ended.
    pub status: ExitStatus,
    /// The last [`FleetOptions::tail_bytes`] of standard output.
    pub stdout_tail: Vec<u8>,
    /// The last [`FleetOptions::tail_bytes`] of standard error.
    pub stderr_tail: Vec<u8>,
    /// Bytes of standard output in all.
    pub stdout_bytes: u64,
    /// Bytes of standard error in all.
    pub stderr_bytes: u64,
    /// The files holding the whole output, when an output directory was
    /// given: standard output, standard error.
    pub files: Option<(PathBuf, PathBuf)>,
}

impl HostRun {
    /// The last non-empty line of output (standard output, else standard
    /// error), made safe to print.
    pub fn last_line(&self) -> Option<&str> {
        [&self.stdout_tail, &self.stderr_tail]
            .into_iter()
            .find_map(|t| {
                std::str::from_utf8(t)
                    .unwrap_or("")
                    .lines()
                    .rev()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.chars().any(char::is_control))
            })
    }
}

/// Why a host's command did not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// Connecting, authenticating or the command's channel failed.
    #[error(transparent)]
    Ssh(#[from] ssh::Error),
    /// The local file or directory to upload cannot be read.
    #[error("cannot read {path}: {source}")]
    Local {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output file could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs `command` on every host, at most [`FleetOptions::parallel`] at
/// once, and returns one outcome per host in the order of `hosts`.
/// `on_done` sees each outcome as it finishes (for a live table).
pub async fn exec_all(
    hosts: Vec<FleetHost>,
    command: &str,
    options: &FleetOptions,
    on_done: impl FnMut(&HostOutcome),
) -> Vec<HostOutcome> {
    run_all(
        hosts,
        options.parallel,
        on_done,
        |host, file_name| async move { exec_one(&host, command, options, &file_name).await },
    )
    .await
}

/// Uploads `local` (a file or a directory tree) to `remote` on every host,
/// at most [`FleetOptions::parallel`] at once, as
/// [`Sftp::upload_file`](crate::sftp::Sftp::upload_file) or
/// [`Sftp::upload_dir`](crate::sftp::Sftp::upload_dir) would: `remote` is
/// the path the file or tree gets, each copy checked on its host.
///
/// # Errors
/// [`FleetError::Local`] when `local` cannot be read (before any host is
/// contacted); every host's own failure is in its outcome.
pub async fn upload_all(
    hosts: Vec<FleetHost>,
    local: &Path,
    remote: &str,
    options: &FleetOptions,
    on_done: impl FnMut(&HostOutcome<Uploaded>),
) -> Result<Vec<HostOutcome<Uploaded>>, FleetError> {
    let meta = tokio::fs::metadata(local)
        .await
        .map_err(|source| FleetError::Local {
            path: local.to_path_buf(),
            source,
        })?;
    let is_dir = meta.is_dir();
    Ok(
        run_all(hosts, options.parallel, on_done, |host, _| async move {
            let session = Session::connect(host.ssh.clone()).await?;
            let sftp = session.sftp().await?;
            let opts = crate::sftp::TransferOptions::default();
            let done = if is_dir {
                let s = sftp.upload_dir(local, remote, &opts).await?;
                Uploaded {
                    bytes: s.bytes,
                    files: s.files,
                    streamed: s.streamed,
                }
            } else {
                Uploaded {
                    bytes: sftp.upload_file(local, remote, &opts).await?,
                    files: 1,
                    streamed: false,
                }
            };
            let _ = session.close().await;
            Ok(done)
        })
        .await,
    )
}

/// `work` on every host, `parallel` at a time, outcomes in host order.
/// `work` gets the host and a file name made safe from its name.
async fn run_all<T, F, Fut>(
    hosts: Vec<FleetHost>,
    parallel: usize,
    mut on_done: impl FnMut(&HostOutcome<T>),
    work: F,
) -> Vec<HostOutcome<T>>
where
    F: Fn(FleetHost, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, FleetError>>,
{
    let names = file_names(&hosts);
    let mut results: Vec<Option<HostOutcome<T>>> = (0..hosts.len()).map(|_| None).collect();
    let mut runs = futures::stream::iter(hosts.into_iter().zip(names).enumerate())
        .map(|(i, (host, file_name))| {
            let name = host.name.clone();
            let fut = work(host, file_name);
            async move {
                let started = Instant::now();
                let result = fut.await;
                (
                    i,
                    HostOutcome {
                        name,
                        result,
                        duration: started.elapsed(),
                    },
                )
            }
        })
        .buffer_unordered(parallel.max(1));
    while let Some((i, outcome)) = runs.next().await {
        on_done(&outcome);
        results[i] = Some(outcome);
    }
    results.into_iter().flatten().collect()
}

async fn exec_one(
    host: &FleetHost,
    command: &str,
    options: &FleetOptions,
    file_name: &str,
) -> Result<HostRun, FleetError> {
    let session = Session::connect(host.ssh.clone()).await?;
    let mut files = match &options.output_dir {
        Some(dir) => Some(Outputs::create(dir, file_name).await?),
        None => None,
    };
    let mut cmd = session.spawn(command).await?;
    cmd.close_stdin().await?;
    let (mut out, mut err) = (Tail::new(options.tail_bytes), Tail::new(options.tail_bytes));
    let mut status = None;
    while let Some(ev) = cmd.next_event().await? {
        match ev {
            ExecEvent::Stdout(b) => {
                out.push(&b);
                if let Some(f) = files.as_mut() {
                    f.write(true, &b).await?;
                }
            }
            ExecEvent::Stderr(b) => {
                err.push(&b);
                if let Some(f) = files.as_mut() {
                    f.write(false, &b).await?;
                }
            }
            ExecEvent::Exit(s) => status = Some(s),
        }
    }
    let files = match files {
        Some(f) => Some(f.finish().await?),
        None => None,
    };
    let status = status.ok_or_else(|| session.lost(command))?;
    let _ = session.close().await;
    Ok(HostRun {
        status,
        stdout_bytes: out.total,
        stderr_bytes: err.total,
        stdout_tail: out.bytes,
        stderr_tail: err.bytes,
        files,
    })
}

/// The last `keep` bytes of a stream, and how many there were.
struct Tail {
    bytes: Vec<u8>,
    keep: usize,
    total: u64,
}

impl Tail {
    fn new(keep: usize) -> Tail {
        Tail {
            bytes: Vec::new(),
            keep,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.keep)..];
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > self.keep {
            let cut = self.bytes.len() - self.keep;
            self.bytes.drain(..cut);
        }
    }
}

/// A host's output files.
struct Outputs {
    stdout: (PathBuf, tokio::fs::File),
    stderr: (PathBuf, tokio::fs::File),
}

impl Outputs {
    async fn create(dir: &Path, name: &str) -> Result<Outputs, FleetError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FleetError::Output { path, source }
        };
        tokio::fs::create_dir_all(dir).await.map_err(err(dir))?;
        let open = |ext: &str| {
            let path = dir.join(format!("{name}.{ext}"));
            async move {
                let f = tokio::fs::File::create(&path).await.map_err(err(&path))?;
                Ok::<_, FleetError>((path, f))
            }
        };
        Ok(Outputs {
            stdout: open("stdout").await?,
            stderr: open("stderr").await?,
        })
    }

    async fn write(&mut self, stdout: bool, data: &[u8]) -> Result<(), FleetError> {
        use tokio::io::AsyncWriteExt;
        let (path, file) = if stdout {
            &mut self.stdout
        } else {
            &mut self.stderr
        };
        file.write_all(data)
            .await
            .map_err(|source| FleetError::Output {
                path: path.clone(),
                source,
            })
    }

    async fn finish(mut self) -> Result<(PathBuf, PathBuf), FleetError> {
        use tokio::io::AsyncWriteExt;
        for (path, file) in [&mut self.stdout, &mut self.stderr] {
            file.flush().await.map_err(|source| FleetError::Output {
                path: path.clone(),
                source,
            })?;
        }
        Ok((self.stdout.0, self.stderr.0))
    }
}

/// A file name per host: its name with anything but `A-Z a-z 0-9 . _ -`
/// replaced (names come from the provider: never a path), never `.`/`..`,
/// and numbered when two hosts would share one.
fn file_names(hosts: &[FleetHost]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    hosts
        .iter()
        .map(|h| {
            let mut base: String = h
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(100)
                .collect();
            if base.trim_matches('.').is_empty() {
                base = format!("host{base}").replace('.', "_");
            }
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> FleetHost {
        FleetHost {
            name: name.into(),
            ssh: ssh::Config::new("127.0.0.1", "u"),
        }
    }

    #[test]
    fn file_names_should_never_be_paths_or_clash() {
        let names = file_names(&[
            host("web-1"),
            host("../../etc/passwd"),
            host(".."),
            host("web-1"),
            host("a/b"),
            host("a_b"),
            host(""),
        ]);
        assert_eq!(
            names,
            [
                "web-1",
                ".._.._etc_passwd",
                "host__",
                "web-1-2",
                "a_b",
                "a_b-2",
                "host"
            ]
        );
        assert!(
            names
                .iter()
                .all(|n| !n.contains('/') && n != ".." && n != ".")
        );
    }

    #[test]
    fn the_tail_should_keep_the_last_bytes_and_count_all() {
        let mut t = Tail::new(5);
        t.push(b"abc");
        t.push(b"defgh");
        t.push(b"");
        assert_eq!((t.bytes.as_slice(), t.total), (&b"defgh"[..], 8));
        t.push(b"0123456789");
        assert_eq!((t.bytes.as_slice(), t.total), (&b"56789"[..], 18));
    }

    #[test]
    fn the_last_line_should_skip_blanks_and_control_text() {
        let run = |out: &[u8], err: &[u8]| HostRun {
            status: ExitStatus::Code(0),
            stdout_tail: out.to_vec(),
            stderr_tail: err.to_vec(),
            stdout_bytes: 0,
            stderr_bytes: 0,
            files: None,
        };
        assert_eq!(run(b"a\nb\n\n  \n", b"").last_line(), Some("b"));
        assert_eq!(run(b"", b"oops\n").last_line(), Some("oops"));
        assert_eq!(run(b"ok\n\x1b[2J\n", b"").last_line(), Some("ok"));
        assert_eq!(run(b"", b"").last_line(), None);
    }
}
