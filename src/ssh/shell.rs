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
    /// The escape character (`~`, the default), recognised at the start of
    /// a line as OpenSSH does: `~.` leaves the session (the shell then
    /// returns [`ExitStatus::Disconnected`]), `~?` lists the escapes, `~~`
    /// sends one `~`. `None` passes every byte through.
    pub escape: Option<u8>,
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
            escape: Some(b'~'),
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
        let mut escapes = opts.escape.map(super::escape::Escapes::new);
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
                        Ok(n) => {
                            let (data, action) = match escapes.as_mut() {
                                Some(e) => {
                                    let mut data = Vec::with_capacity(n);
                                    let action = e.feed(&buf[..n], &mut data);
                                    (data, action)
                                }
                                None => (buf[..n].to_vec(), None),
                            };
                            if !data.is_empty() {
                                write
                                    .data_bytes(Bytes::from(data))
                                    .await
                                    .map_err(|e| self.op_error(op, e))?;
                            }
                            match action {
                                Some(super::escape::Action::Disconnect) => {
                                    // A dead VM may never take the close:
                                    // leave regardless.
                                    let _ = tokio::time::timeout(
                                        std::time::Duration::from_secs(1),
                                        write.close(),
                                    )
                                    .await;
                                    return Ok(ExitStatus::Disconnected);
                                }
                                Some(super::escape::Action::Help) => {
                                    let help = escapes.as_ref().map(|e| e.help()).unwrap_or_default();
                                    output.write_all(help.as_bytes()).await.map_err(Error::Terminal)?;
                                    output.flush().await.map_err(Error::Terminal)?;
                                }
                                None => {}
                            }
                        }
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
///
/// On Windows spuff sets the console modes itself rather than through
/// crossterm, because a remote shell needs more than crossterm's raw mode:
/// keys as VT sequences (`ENABLE_VIRTUAL_TERMINAL_INPUT`), VT output with
/// xterm's deferred wrap, and Ctrl-C as the byte 0x03 for the remote side
/// rather than a `CTRL_C_EVENT` that would end spuff
/// (`ENABLE_PROCESSED_INPUT` off). The modes found at the start are put back
/// exactly when the guard drops. Stdin is read with `ReadConsoleW` directly:
/// the standard library's console reader turns Ctrl-Z into end of input (the
/// DOS convention), which would end the session where a remote shell expects
/// a suspend.
///
/// Every way out of [`Session::shell`] drops the guard: return, error and
/// panic (unwinding). A process killed outright (Ctrl-Break on Windows, which
/// raw mode leaves alone as the user's emergency exit, or SIGKILL) cannot
/// restore anything; the next shell resets the console.
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
            #[cfg(not(windows))]
            crossterm::terminal::enable_raw_mode()?;
            Ok(RawMode {
                #[cfg(windows)]
                console: windows_console::enter_raw(),
            })
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            #[cfg(windows)]
            windows_console::restore(&self.console);
            #[cfg(not(windows))]
            let _ = crossterm::terminal::disable_raw_mode();
            let _ = std::io::stdout().flush();
        }
    }

    /// Stdin on a thread of its own: tokio's stdin would keep the runtime
    /// from shutting down while a read is pending after the shell ends.
    ///
    /// On Unix the thread reads only when input is there, and looks every
    /// 100 ms whether the shell has ended: a reader left blocked in `read`
    /// would take the next keystroke meant for whatever uses the terminal
    /// after the shell (a prompt, `spuff dash`). A Windows console is
    /// still read blocking: its read can return nothing but a key-up, so
    /// waiting on its handle is not enough (docs/windows.md).
    pub(super) fn stdin_reader() -> impl AsyncRead + Unpin {
        #[cfg(windows)]
        if let Some(mut console) = windows_console::Input::open() {
            return spawn_reader(windows_console::ready, move || console.read());
        }
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 8192];
        spawn_reader(stdin_ready, move || {
            use std::io::Read;
            stdin.read(&mut buf).map(|n| buf[..n].to_vec())
        })
    }

    /// How long the stdin reader waits for input before it looks whether
    /// it is still wanted.
    #[cfg(unix)]
    const STDIN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

    /// Whether stdin has input (or its end) within [`STDIN_POLL`].
    #[cfg(unix)]
    fn stdin_ready() -> std::io::Result<bool> {
        ready_within(&std::io::stdin(), STDIN_POLL)
    }

    /// Whether `fd` has input (or its end) within `timeout` (under 1 s).
    #[cfg(unix)]
    fn ready_within(
        fd: &impl std::os::fd::AsFd,
        timeout: std::time::Duration,
    ) -> std::io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Windows without a console (a pipe): read at once.
    #[cfg(windows)]
    fn stdin_ready() -> std::io::Result<bool> {
        Ok(true)
    }

    /// Run `read` on a thread until it returns an error or no bytes (end of
    /// input), or the returned reader is dropped, passing what it reads to
    /// the returned reader. `ready` says whether a `read` would not block;
    /// the thread only reads then.
    fn spawn_reader(
        mut ready: impl FnMut() -> std::io::Result<bool> + Send + 'static,
        mut read: impl FnMut() -> std::io::Result<Vec<u8>> + Send + 'static,
    ) -> ChannelReader {
        let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(16);
        std::thread::spawn(move || {
            loop {
                if tx.is_closed() {
                    return;
                }
                match ready() {
                    // Input came while the shell was ending: it belongs to
                    // whoever reads the terminal next (`spuff dash` lost
                    // the `q` typed right after a shell under load).
                    Ok(true) if tx.is_closed() => return,
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                let r = read();
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

    /// The console mode bits spuff changes and how, as pure functions so they
    /// are tested on every platform. The values are wincon.h's; on Windows
    /// they are checked against windows-sys at compile time.
    #[cfg(any(windows, test))]
    pub(super) mod console_mode {
        pub(crate) const ENABLE_PROCESSED_INPUT: u32 = 0x0001;
        pub(crate) const ENABLE_LINE_INPUT: u32 = 0x0002;
        pub(crate) const ENABLE_ECHO_INPUT: u32 = 0x0004;
        pub(crate) const ENABLE_VIRTUAL_TERMINAL_INPUT: u32 = 0x0200;
        pub(crate) const ENABLE_PROCESSED_OUTPUT: u32 = 0x0001;
        pub(crate) const ENABLE_VIRTUAL_TERMINAL_PROCESSING: u32 = 0x0004;
        pub(crate) const DISABLE_NEWLINE_AUTO_RETURN: u32 = 0x0008;

        /// Input for a remote PTY: no line editing or echo (the remote side
        /// does both), Ctrl-C delivered as 0x03 rather than as a signal to
        /// spuff, keys as VT sequences. Other bits (mouse, quick edit,
        /// extended flags) stay as the user had them.
        pub(crate) fn raw_input(mode: u32) -> u32 {
            (mode & !(ENABLE_PROCESSED_INPUT | ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT))
                | ENABLE_VIRTUAL_TERMINAL_INPUT
        }

        /// Output that interprets the remote side's VT sequences and, when
        /// `deferred_wrap`, wraps at the last column the way xterm does
        /// (full-screen programs draw the bottom-right cell without
        /// scrolling). Consoles before Windows 10 1809 refuse that bit.
        pub(crate) fn vt_output(mode: u32, deferred_wrap: bool) -> u32 {
            let mode = mode | ENABLE_PROCESSED_OUTPUT | ENABLE_VIRTUAL_TERMINAL_PROCESSING;
            if deferred_wrap {
                mode | DISABLE_NEWLINE_AUTO_RETURN
            } else {
                mode
            }
        }
    }

    /// What the stdin reader needs to know of a console input event.
    #[cfg(any(windows, test))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum ConsoleEvent {
        /// A key went down: its virtual key code.
        KeyDown(u16),
        /// A key went up, the mouse moved, the window was resized or
        /// focused: nothing `ReadConsoleW` returns.
        Other,
    }

    /// Whether `ReadConsoleW` would return at once for the waiting
    /// `events`: some key went down other than a lone modifier (Shift,
    /// Ctrl, Alt, Caps Lock, the Windows keys), which give no characters.
    /// Arrow and function keys count: in VT input mode they arrive as
    /// sequences. When this is false the events can be dropped and the
    /// reader waits on, so it never sits in a read the shell's end cannot
    /// stop (the same reason the Unix reader polls).
    #[cfg(any(windows, test))]
    pub(super) fn console_would_read(events: &[ConsoleEvent]) -> bool {
        // VK_SHIFT, VK_CONTROL, VK_MENU, VK_CAPITAL, VK_LWIN, VK_RWIN,
        // VK_LSHIFT..VK_RMENU (winuser.h).
        const MODIFIERS: [u16; 12] = [
            0x10, 0x11, 0x12, 0x14, 0x5B, 0x5C, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5,
        ];
        events
            .iter()
            .any(|e| matches!(e, ConsoleEvent::KeyDown(vk) if !MODIFIERS.contains(vk)))
    }

    /// Console input arrives as UTF-16; the remote side wants UTF-8. A
    /// surrogate pair may be split across two reads, so the high half waits
    /// for the next read; unpaired surrogates become U+FFFD rather than an
    /// error that would end the session.
    #[cfg(any(windows, test))]
    #[derive(Debug, Default)]
    pub(super) struct Utf16Decoder {
        high: Option<u16>,
    }

    #[cfg(any(windows, test))]
    impl Utf16Decoder {
        pub(super) fn push(&mut self, units: &[u16]) -> Vec<u8> {
            let mut all: Vec<u16> = self.high.take().into_iter().collect();
            all.extend_from_slice(units);
            if let Some(&last) = all.last()
                && (0xD800..=0xDBFF).contains(&last)
            {
                self.high = Some(last);
                all.pop();
            }
            char::decode_utf16(all)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect::<String>()
                .into_bytes()
        }
    }

    #[cfg(windows)]
    mod windows_console {
        use windows_sys::Win32::Foundation::{WAIT_OBJECT_0, WAIT_TIMEOUT};
        use windows_sys::Win32::System::Console::{
            CONSOLE_MODE, GetConsoleMode, GetStdHandle, INPUT_RECORD, KEY_EVENT, PeekConsoleInputW,
            ReadConsoleInputW, ReadConsoleW, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, SetConsoleMode,
        };
        use windows_sys::Win32::System::Threading::WaitForSingleObject;

        use super::console_mode::{self, *};
        use super::{ConsoleEvent, Utf16Decoder, console_would_read};

        // The hand-written values in `console_mode` are the real ones.
        const _: () = {
            use windows_sys::Win32::System::Console as c;
            assert!(ENABLE_PROCESSED_INPUT == c::ENABLE_PROCESSED_INPUT);
            assert!(ENABLE_LINE_INPUT == c::ENABLE_LINE_INPUT);
            assert!(ENABLE_ECHO_INPUT == c::ENABLE_ECHO_INPUT);
            assert!(ENABLE_VIRTUAL_TERMINAL_INPUT == c::ENABLE_VIRTUAL_TERMINAL_INPUT);
            assert!(ENABLE_PROCESSED_OUTPUT == c::ENABLE_PROCESSED_OUTPUT);
            assert!(ENABLE_VIRTUAL_TERMINAL_PROCESSING == c::ENABLE_VIRTUAL_TERMINAL_PROCESSING);
            assert!(DISABLE_NEWLINE_AUTO_RETURN == c::DISABLE_NEWLINE_AUTO_RETURN);
        };

        /// The modes found before raw mode; `None` where the handle is not a
        /// console (redirected), which is then left alone.
        pub(crate) struct Saved {
            input: Option<CONSOLE_MODE>,
            output: Option<CONSOLE_MODE>,
        }

        fn get(which: u32) -> Option<CONSOLE_MODE> {
            let mut mode: CONSOLE_MODE = 0;
            // SAFETY: plain Win32 console calls on this process's own std
            // handles; `mode` is a valid out-pointer for the duration of the call.
            let ok = unsafe { GetConsoleMode(GetStdHandle(which), &mut mode) };
            (ok != 0).then_some(mode)
        }

        fn set(which: u32, mode: CONSOLE_MODE) -> bool {
            // SAFETY: as in `get`.
            unsafe { SetConsoleMode(GetStdHandle(which), mode) != 0 }
        }

        pub(crate) fn enter_raw() -> Saved {
            let saved = Saved {
                input: get(STD_INPUT_HANDLE),
                output: get(STD_OUTPUT_HANDLE),
            };
            if let Some(m) = saved.input {
                set(STD_INPUT_HANDLE, console_mode::raw_input(m));
            }
            if let Some(m) = saved.output
                && !set(STD_OUTPUT_HANDLE, console_mode::vt_output(m, true))
            {
                set(STD_OUTPUT_HANDLE, console_mode::vt_output(m, false));
            }
            saved
        }

        pub(crate) fn restore(saved: &Saved) {
            if let Some(m) = saved.input {
                set(STD_INPUT_HANDLE, m);
            }
            if let Some(m) = saved.output {
                set(STD_OUTPUT_HANDLE, m);
            }
        }

        /// Whether the console has keys for `ReadConsoleW` within 100 ms.
        /// Events that give no characters (key releases, mouse, focus,
        /// resizes, a lone Shift) are taken off the queue, so the console
        /// handle does not stay signalled for them.
        pub(crate) fn ready() -> std::io::Result<bool> {
            const WAIT_MS: u32 = 100;
            // SAFETY: this process's own stdin handle, a console here.
            let handle = unsafe { GetStdHandle(STD_INPUT_HANDLE) };
            // SAFETY: waiting on a valid handle with a bounded timeout.
            match unsafe { WaitForSingleObject(handle, WAIT_MS) } {
                WAIT_OBJECT_0 => {}
                WAIT_TIMEOUT => return Ok(false),
                _ => return Err(std::io::Error::last_os_error()),
            }
            let mut records = [INPUT_RECORD::default(); 32];
            let mut seen: u32 = 0;
            // SAFETY: `records` is valid for 32 writes, `seen` for one.
            let ok = unsafe { PeekConsoleInputW(handle, records.as_mut_ptr(), 32, &mut seen) };
            if ok == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let seen_records = &records[..usize::try_from(seen).unwrap_or(0).min(32)];
            let events: Vec<ConsoleEvent> = seen_records
                .iter()
                .map(|r| {
                    if u32::from(r.EventType) == KEY_EVENT {
                        // SAFETY: `EventType` says which union member is set.
                        let key = unsafe { r.Event.KeyEvent };
                        if key.bKeyDown != 0 {
                            return ConsoleEvent::KeyDown(key.wVirtualKeyCode);
                        }
                    }
                    ConsoleEvent::Other
                })
                .collect();
            if console_would_read(&events) {
                return Ok(true);
            }
            // The queue is first in, first out: these are the events peeked.
            let mut dropped: u32 = 0;
            // SAFETY: as for the peek, for at most `seen` records.
            unsafe { ReadConsoleInputW(handle, records.as_mut_ptr(), seen, &mut dropped) };
            Ok(false)
        }

        /// Stdin when it is a console, read as UTF-16 and passed on as UTF-8
        /// with every control character intact (Ctrl-C, Ctrl-Z, Ctrl-D).
        pub(crate) struct Input {
            decoder: Utf16Decoder,
            units: Vec<u16>,
        }

        impl Input {
            /// `None` when stdin is not a console (a pipe or file), which the
            /// standard library reads as plain bytes already.
            pub(crate) fn open() -> Option<Input> {
                get(STD_INPUT_HANDLE).map(|_| Input {
                    decoder: Utf16Decoder::default(),
                    units: vec![0u16; 4096],
                })
            }

            /// The next input as UTF-8; empty at end of input.
            pub(crate) fn read(&mut self) -> std::io::Result<Vec<u8>> {
                // An interrupted read (a console event) is not the end of input.
                const ERROR_OPERATION_ABORTED: i32 = 995;
                let capacity = u32::try_from(self.units.len()).unwrap_or(u32::MAX);
                loop {
                    let mut read: u32 = 0;
                    // SAFETY: `units` is valid for `capacity` u16 writes and
                    // `read` for one u32; no input control structure is passed,
                    // so no character ends the read early or is swallowed.
                    let ok = unsafe {
                        ReadConsoleW(
                            GetStdHandle(STD_INPUT_HANDLE),
                            self.units.as_mut_ptr().cast(),
                            capacity,
                            &mut read,
                            std::ptr::null(),
                        )
                    };
                    if ok == 0 {
                        let err = std::io::Error::last_os_error();
                        if err.raw_os_error() == Some(ERROR_OPERATION_ABORTED) {
                            continue;
                        }
                        return Err(err);
                    }
                    let n = usize::try_from(read).unwrap_or(0).min(self.units.len());
                    if n == 0 {
                        return Ok(Vec::new());
                    }
                    let bytes = self.decoder.push(&self.units[..n]);
                    // Half a surrogate pair alone is not the end of input.
                    if !bytes.is_empty() {
                        return Ok(bytes);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::console_mode::*;
        use super::*;

        #[test]
        fn raw_input_should_pass_ctrl_c_through_and_enable_vt_keys() {
            // A typical cmd.exe console: processed, line, echo, insert,
            // quick edit, extended flags, auto position.
            let cooked = 0x0001 | 0x0002 | 0x0004 | 0x0020 | 0x0040 | 0x0080 | 0x0100;
            let raw = raw_input(cooked);
            assert_eq!(
                raw & ENABLE_PROCESSED_INPUT,
                0,
                "Ctrl-C must not be a signal"
            );
            assert_eq!(raw & ENABLE_LINE_INPUT, 0);
            assert_eq!(raw & ENABLE_ECHO_INPUT, 0);
            assert_ne!(raw & ENABLE_VIRTUAL_TERMINAL_INPUT, 0);
            // Everything else is left as the user had it.
            assert_eq!(raw & !ENABLE_VIRTUAL_TERMINAL_INPUT, cooked & !0x7);
            assert_eq!(raw_input(raw), raw, "idempotent");
        }

        #[test]
        fn vt_output_should_add_only_the_vt_bits() {
            let plain = ENABLE_PROCESSED_OUTPUT | 0x0002; // wrap at EOL
            let with = vt_output(plain, true);
            assert_eq!(
                with,
                plain | ENABLE_VIRTUAL_TERMINAL_PROCESSING | DISABLE_NEWLINE_AUTO_RETURN
            );
            let without = vt_output(plain, false);
            assert_eq!(without, plain | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
            assert_ne!(vt_output(0, false) & ENABLE_PROCESSED_OUTPUT, 0);
        }

        #[test]
        fn console_should_be_read_only_for_keys_that_give_characters() {
            use ConsoleEvent::{KeyDown, Other};
            assert!(!console_would_read(&[]));
            // Key releases, focus and mouse events, a lone Shift or Ctrl.
            assert!(!console_would_read(&[Other, KeyDown(0x10), KeyDown(0xA2)]));
            // A letter, Enter, an arrow key (a VT sequence), after noise.
            assert!(console_would_read(&[Other, KeyDown(0x41)]));
            assert!(console_would_read(&[KeyDown(0x0D)]));
            assert!(console_would_read(&[KeyDown(0x10), KeyDown(0x26)]));
        }

        fn utf16(s: &str) -> Vec<u16> {
            s.encode_utf16().collect()
        }

        #[test]
        fn decoder_should_keep_control_characters() {
            let mut d = Utf16Decoder::default();
            // Ctrl-C, Ctrl-Z, Ctrl-D and an arrow key's VT sequence.
            let input = "\u{3}\u{1a}\u{4}\x1b[A";
            assert_eq!(d.push(&utf16(input)), input.as_bytes());
            assert_eq!(d.push(&[0x1a]), [0x1a], "a lone Ctrl-Z is not end of input");
        }

        #[test]
        fn decoder_should_join_surrogate_pairs_split_across_reads() {
            let mut d = Utf16Decoder::default();
            let crab = utf16("é🦀");
            assert_eq!(crab.len(), 3);
            assert_eq!(d.push(&crab[..2]), "é".as_bytes());
            assert_eq!(d.push(&crab[2..]), "🦀".as_bytes());
        }

        #[test]
        fn decoder_should_replace_unpaired_surrogates() {
            let mut d = Utf16Decoder::default();
            assert_eq!(d.push(&[0xDC00, u16::from(b'a')]), "\u{fffd}a".as_bytes());
            assert!(d.push(&[0xD800]).is_empty());
            assert_eq!(d.push(&[u16::from(b'b')]), "\u{fffd}b".as_bytes());
        }

        #[tokio::test]
        async fn spawned_reader_should_end_at_empty_read() {
            let mut chunks = vec![Ok(b"ab".to_vec()), Ok(vec![3u8]), Ok(Vec::new())].into_iter();
            let mut reader = spawn_reader(
                || Ok(true),
                move || chunks.next().unwrap_or_else(|| Ok(Vec::new())),
            );
            let mut all = Vec::new();
            reader.read_to_end(&mut all).await.expect("read");
            assert_eq!(all, b"ab\x03");
        }

        /// A pipe's two ends, and a reader polling and reading it as a
        /// shell's does the terminal.
        #[cfg(unix)]
        fn reader_over_a_pipe() -> (std::io::PipeReader, std::io::PipeWriter, ChannelReader) {
            use std::io::Read;
            let (read_end, write_end) = std::io::pipe().expect("pipe");
            let polled = read_end.try_clone().expect("clone");
            let mut reading = read_end.try_clone().expect("clone");
            let reader = spawn_reader(
                move || ready_within(&polled, STDIN_POLL),
                move || {
                    let mut buf = [0u8; 64];
                    reading.read(&mut buf).map(|n| buf[..n].to_vec())
                },
            );
            (read_end, write_end, reader)
        }

        /// A shell's reader must stop with the shell: the next input
        /// belongs to whoever uses the terminal after it.
        #[cfg(unix)]
        #[tokio::test]
        async fn a_dropped_reader_should_leave_later_input_alone() {
            use std::io::{Read, Write};
            let (read_end, mut write_end, reader) = reader_over_a_pipe();
            drop(reader);
            // Longer than one poll: the thread has seen it is not wanted.
            tokio::time::sleep(STDIN_POLL * 3).await;
            write_end.write_all(b"x").expect("write");
            let mut got = [0u8; 1];
            let mut read_end = read_end;
            read_end.read_exact(&mut got).expect("read");
            assert_eq!(&got, b"x");
        }

        /// Input that arrives while the reader waits in its poll, just
        /// after the shell ended, is left alone too.
        #[cfg(unix)]
        #[tokio::test]
        async fn input_right_after_the_drop_should_be_left_alone() {
            use std::io::{Read, Write};
            let (read_end, mut write_end, reader) = reader_over_a_pipe();
            // The thread is in its poll by now.
            tokio::time::sleep(STDIN_POLL / 2).await;
            drop(reader);
            write_end.write_all(b"q").expect("write");
            tokio::time::sleep(STDIN_POLL * 3).await;
            assert!(
                ready_within(&read_end, STDIN_POLL).expect("poll"),
                "the reader took the key"
            );
            let mut got = [0u8; 1];
            let mut read_end = read_end;
            read_end.read_exact(&mut got).expect("read");
            assert_eq!(&got, b"q");
        }
    }
}
