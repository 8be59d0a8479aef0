//! A real terminal for the binary: a private tmux server (its own socket
//! in a temporary directory) running one program in a pane of a fixed
//! size, driven as a person drives it (keys in, screen out).
//!
//! The program runs under a small `sh` that writes its exit status to a
//! file (tmux learns a pane's status only once it has reaped the process,
//! which it does not always do promptly); the pane stays after the exit
//! (`remain-on-exit`) to be read. The server is killed when the [`Tmux`]
//! is dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// One program in a tmux pane.
pub struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs `program args` with exactly `env` in a `width`×`height` pane.
    pub fn start(
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
        width: u16,
        height: u16,
    ) -> Tmux {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g history-limit 0\n")
            .expect("tmux.conf");
        // A trap, not an ignored signal: the program gets SIGINT's default
        // (which exec resets a handler to), the shell waits for it.
        let wrapper = dir.path().join("run.sh");
        std::fs::write(
            &wrapper,
            format!(
                "trap : INT\n\"$@\"\necho $? > '{}'\n",
                dir.path().join("status").display()
            ),
        )
        .expect("run.sh");
        let tmux = Tmux { dir };
        let mut cmd = tmux.command();
        cmd.arg("-f").arg(&conf).args([
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg("--")
            .arg("/bin/sh")
            .arg(&wrapper)
            .arg(program)
            .args(args);
        let out = cmd.output().expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm-256color")
            .arg("-S")
            .arg(self.socket());
        cmd
    }

    /// `tmux send-keys` with these key names (`Down`, `Enter`, `C-c`, `q`).
    pub fn keys(&self, keys: &[&str]) {
        let out = self
            .command()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "send-keys {keys:?}");
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        let out = self
            .command()
            .args(["send-keys", "-t", "t", "-l", text])
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "send-keys -l {text:?}");
    }

    /// What the pane shows now.
    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `test`; panics with the screen
    /// after `limit`.
    pub fn wait(&self, what: &str, limit: Duration, test: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            // A program that has ended will not show it any more.
            if let Some(code) = self.exit_status() {
                let screen = self.screen();
                assert!(
                    test(&screen),
                    "exited with {code} while waiting for {what}; the screen:\n{screen}"
                );
                return screen;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen shows `text`.
    pub fn wait_for(&self, text: &str, limit: Duration) -> String {
        self.wait(&format!("{text:?}"), limit, |s| s.contains(text))
    }

    /// The program's exit status once it has exited.
    pub fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("status"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits for the program to exit and returns its status.
    pub fn wait_exit(&self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(code) = self.exit_status() {
                return code;
            }
            assert!(
                start.elapsed() < limit,
                "still running after {limit:?}; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}
