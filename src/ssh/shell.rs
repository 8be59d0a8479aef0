//! Interactive shells: a PTY sized like the local terminal, raw mode that is
//! always restored, window-size changes passed on, and the remote exit status.
//!
//! [`Session::shell`] drives the process's own terminal.
//! [`Session::shell_with_io`] is the same loop over any reader, writer and
//! stream of size changes; tests and programs that embed a terminal use it.

use std::io::Write as _;

use bytes::Bytes;
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Session;
use super::agent::AgentLocation;
use super::error::{Error, Result};
use super::exec::{ExitStatus, sig_name};

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl Default for TermSize {
    fn default() -> Self {
        TermSize { cols: 80, rows: 24 }
    }
}

/// How to start a shell.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// `TERM` for the remote PTY; defaults to the local `TERM` or `xterm-256color`.
    pub term: String,
    /// Initial size; [`Session::shell`] fills in the local terminal's.
    pub size: TermSize,
    /// Relay the remote side's agent requests to this agent. `None` (the
    /// default) leaves forwarding off, and agent channels are then refused.
    pub forward_agent: Option<AgentLocation>,
    /// Run this command on the PTY instead of the login shell.
    pub command: Option<String>,
    /// Environment variables to ask for (sshd accepts only those in its `AcceptEnv`).
    pub env: Vec<(String, String)>,
}

impl Default for ShellOptions {
    fn default() -> Self {
        ShellOptions {
            term: std::env::var("TERM")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "xterm-256color".into()),
            size: TermSize::default(),
            forward_agent: None,
            command: None,
            env: Vec::new(),
        }
    }
}

impl Session {
    /// Run an interactive shell on this process's terminal until it exits.
    ///
    /// The local terminal is put in raw mode and restored on every way out,
    /// errors and panics included. Ctrl-C goes to the remote side.
    ///
    /// # Errors
    /// [`Error::Terminal`] when the terminal cannot be set up; the errors of
    /// [`Session::shell_with_io`].
    pub async fn shell(&self, mut opts: ShellOptions) -> Result<ExitStatus> {
        if let Ok((cols, rows)) = crossterm::terminal::size()
            && cols > 0
            && rows > 0
        {
            opts.size = TermSize { cols, rows };
        }
        let _raw = terminal::RawMode::enable().map_err(Error::Terminal)?;
        let (tx, rx) = mpsc::channel(8);
        let watcher = tokio::spawn(terminal::watch_size(opts.size, tx));
        let result = self
            .shell_with_io(opts, terminal::stdin_reader(), tokio::io::stdout(), rx)
            .await;
        watcher.abort();
        result
    }

    /// Run a shell with a PTY over the given input, output and size changes.
    ///
    /// Input ending (EOF) sends EOF to the remote side; the call returns when
    /// the remote shell exits.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] when the server refuses the PTY, shell or agent
    /// forwarding; [`Error::ConnectionLost`] when the connection drops first.
    pub async fn shell_with_io<R, W>(
        &self,
        opts: ShellOptions,
        mut input: R,
        mut output: W,
        mut resize: mpsc::Receiver<TermSize>,
    ) -> Result<ExitStatus>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let op = "interactive shell";
        let mut channel = self.open_session_channel(op).await?;
        if let Some(agent) = opts.forward_agent.clone() {
            self.enable_agent_forwarding(agent);
            channel
                .agent_forward(true)
                .await
                .map_err(|e| self.op_error("agent forwarding", e))?;
            self.expect_success(&mut channel, "agent forwarding")
                .await?;
        }
        for (k, v) in &opts.env {
            channel
                .set_env(false, k.as_str(), v.as_str())
                .await
                .map_err(|e| self.op_error(op, e))?;
        }
        channel
            .request_pty(
                true,
                &opts.term,
                u32::from(opts.size.cols),
                u32::from(opts.size.rows),
                0,
                0,
                &[],
            )
            .await
            .map_err(|e| self.op_error("pty request", e))?;
        self.expect_success(&mut channel, "pty request").await?;
        match &opts.command {
            Some(cmd) => channel.exec(true, cmd.as_str()).await,
            None => channel.request_shell(true).await,
        }
        .map_err(|e| self.op_error(op, e))?;
        self.expect_success(&mut channel, op).await?;

        let (mut read, write) = channel.split();
        let mut buf = vec![0u8; 16 * 1024];
        let mut input_open = true;
        let mut resize_open = true;
        let mut status: Option<ExitStatus> = None;
        loop {
            tokio::select! {
                n = input.read(&mut buf), if input_open => {
                    match n {
                        Ok(0) | Err(_) => {
                            input_open = false;
                            let _ = write.eof().await;
                        }
                        Ok(n) => write
                            .data_bytes(Bytes::copy_from_slice(&buf[..n]))
                            .await
                            .map_err(|e| self.op_error(op, e))?,
                    }
                }
                size = resize.recv(), if resize_open => {
                    match size {
                        Some(s) => write
                            .window_change(u32::from(s.cols), u32::from(s.rows), 0, 0)
                            .await
                            .map_err(|e| self.op_error(op, e))?,
                        None => resize_open = false,
                    }
                }
                msg = read.wait() => {
                    match msg {
                        Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                            output.write_all(&data).await.map_err(Error::Terminal)?;
                            output.flush().await.map_err(Error::Terminal)?;
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => {
                            status = Some(ExitStatus::Code(exit_status));
                        }
                        Some(ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, .. }) => {
                            status = Some(ExitStatus::Signal {
                                name: sig_name(&signal_name),
                                core_dumped,
                                message: error_message,
                            });
                        }
                        Some(ChannelMsg::Close) | None => break,
                        Some(_) => {}
                    }
                }
            }
        }
        status.ok_or_else(|| self.lost(op))
    }

    /// Wait for the reply to a `want_reply` channel request.
    async fn expect_success(
        &self,
        channel: &mut russh::Channel<russh::client::Msg>,
        operation: &str,
    ) -> Result<()> {
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(()),
                Some(ChannelMsg::Failure) => {
                    return Err(Error::ChannelRefused {
                        host: self.host().to_string(),
                        port: self.port(),
                        operation: operation.to_string(),
                        reason: "the server refused the request".into(),
                    });
                }
                Some(ChannelMsg::Close) | None => return Err(self.lost(operation)),
                Some(_) => {}
            }
        }
    }
}

/// The local terminal: raw mode and size changes, with the platform
/// differences kept here.
mod terminal {
    use super::*;

    /// Raw mode for as long as this lives; dropping it (also while unwinding
    /// from a panic) restores the terminal.
    pub(super) struct RawMode {
        #[cfg(windows)]
        console: windows_console::Saved,
    }

    impl RawMode {
        pub(super) fn enable() -> std::io::Result<RawMode> {
            crossterm::terminal::enable_raw_mode()?;
            Ok(RawMode {
                #[cfg(windows)]
                console: windows_console::enable_vt(),
            })
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            #[cfg(windows)]
            windows_console::restore(&self.console);
            let _ = crossterm::terminal::disable_raw_mode();
            let _ = std::io::stdout().flush();
        }
    }

    /// Stdin on a thread of its own: tokio's stdin would keep the runtime
    /// from shutting down while a read is pending after the shell ends.
    pub(super) fn stdin_reader() -> impl AsyncRead + Unpin {
        let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(16);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 8192];
            loop {
                let r = stdin.read(&mut buf).map(|n| buf[..n].to_vec());
                let end = matches!(&r, Ok(v) if v.is_empty()) || r.is_err();
                if tx.blocking_send(r).is_err() || end {
                    return;
                }
            }
        });
        ChannelReader {
            rx,
            pending: Vec::new(),
        }
    }

    struct ChannelReader {
        rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
        pending: Vec<u8>,
    }

    impl AsyncRead for ChannelReader {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            use std::task::Poll;
            if self.pending.is_empty() {
                match self.rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                    Poll::Ready(Some(Ok(v))) => self.pending = v,
                }
            }
            let n = self.pending.len().min(buf.remaining());
            buf.put_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    fn current_size() -> Option<TermSize> {
        match crossterm::terminal::size() {
            Ok((cols, rows)) if cols > 0 && rows > 0 => Some(TermSize { cols, rows }),
            _ => None,
        }
    }

    /// Send the terminal's size whenever it changes: on SIGWINCH on Unix, by
    /// polling on Windows (consoles have no such signal).
    #[cfg(unix)]
    pub(super) async fn watch_size(_initial: TermSize, tx: mpsc::Sender<TermSize>) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some(s) = current_size()
                && tx.send(s).await.is_err()
            {
                return;
            }
        }
    }

    #[cfg(windows)]
    pub(super) async fn watch_size(initial: TermSize, tx: mpsc::Sender<TermSize>) {
        let mut last = initial;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            tick.tick().await;
            if let Some(s) = current_size()
                && s != last
            {
                last = s;
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    }

    /// crossterm's raw mode leaves `ENABLE_VIRTUAL_TERMINAL_INPUT` off, so
    /// arrow keys would not arrive as the escape sequences a remote shell
    /// expects; turn it on (and VT output processing) and put both back after.
    #[cfg(windows)]
    mod windows_console {
        use windows_sys::Win32::System::Console::{
            CONSOLE_MODE, ENABLE_VIRTUAL_TERMINAL_INPUT, ENABLE_VIRTUAL_TERMINAL_PROCESSING,
            GetConsoleMode, GetStdHandle, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, SetConsoleMode,
        };

        pub(crate) struct Saved {
            input: Option<CONSOLE_MODE>,
            output: Option<CONSOLE_MODE>,
        }

        fn set(which: u32, add: CONSOLE_MODE) -> Option<CONSOLE_MODE> {
            // SAFETY: plain Win32 console calls on this process's own std handles;
            // `mode` is a valid out-pointer for the duration of the call.
            unsafe {
                let h = GetStdHandle(which);
                let mut mode: CONSOLE_MODE = 0;
                if GetConsoleMode(h, &mut mode) == 0 {
                    return None;
                }
                SetConsoleMode(h, mode | add);
                Some(mode)
            }
        }

        pub(crate) fn enable_vt() -> Saved {
            Saved {
                input: set(STD_INPUT_HANDLE, ENABLE_VIRTUAL_TERMINAL_INPUT),
                output: set(STD_OUTPUT_HANDLE, ENABLE_VIRTUAL_TERMINAL_PROCESSING),
            }
        }

        pub(crate) fn restore(saved: &Saved) {
            // SAFETY: as above; restores modes read from the same handles.
            unsafe {
                if let Some(m) = saved.input {
                    SetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), m);
                }
                if let Some(m) = saved.output {
                    SetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), m);
                }
            }
        }
    }
}
