//! Interactive shells against a real sshd: a real PTY, its size and resizes,
//! the exit code, and agent forwarding only when asked.

use std::time::Duration;

#[cfg(not(windows))]
use spuff::ssh::AgentLocation;
use spuff::ssh::{ExitStatus, ShellOptions, TermSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::util::Sshd;
#[cfg(not(windows))]
use crate::util::{Agent, keys};

/// Read from the shell's output until `needle` appears; returns all read so far.
async fn read_until(out: &mut DuplexStream, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(needle) {
            let n = out.read(&mut buf).await.expect("read");
            assert!(n > 0, "shell output ended before {needle:?}; got {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "timed out waiting for {needle:?}; got {seen:?}"
    );
}

#[tokio::test]
async fn shell_should_have_a_pty_follow_resizes_and_return_the_exit_code() {
    let sshd = Sshd::start();
    let session = sshd.connect().await;
    let (mut to_shell, shell_in) = tokio::io::duplex(4096);
    let (shell_out, mut from_shell) = tokio::io::duplex(1 << 16);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let opts = ShellOptions {
        term: "xterm-256color".into(),
        size: TermSize {
            cols: 120,
            rows: 33,
        },
        command: Some("/bin/sh".into()),
        ..ShellOptions::default()
    };
    let shell = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .shell_with_io(opts, shell_in, shell_out, resize_rx)
                .await
        }
    });

    let mut seen = String::new();
    // Markers are assembled by the shell so the echoed command line never matches.
    to_shell
        .write_all(b"tty; stty size; echo \"$TERM\"; echo MA\"RK\"1\n")
        .await
        .expect("write");
    read_until(&mut from_shell, &mut seen, "MARK1").await;
    assert!(seen.contains("/dev/pts/"), "no pty: {seen:?}");
    assert!(
        seen.contains("33 120"),
        "initial size not applied: {seen:?}"
    );
    assert!(seen.contains("xterm-256color"), "TERM not passed: {seen:?}");

    resize_tx
        .send(TermSize {
            cols: 140,
            rows: 50,
        })
        .await
        .expect("resize");
    // The resize and the next command travel separately; ask until it shows.
    let mut resized = false;
    for i in 0..50 {
        to_shell
            .write_all(format!("stty size; echo DO\"NE\"{i}\n").as_bytes())
            .await
            .expect("write");
        read_until(&mut from_shell, &mut seen, &format!("DONE{i}")).await;
        if seen.contains("50 140") {
            resized = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resized, "resize never reached the pty: {seen:?}");

    to_shell.write_all(b"exit 3\n").await.expect("write");
    let status = tokio::time::timeout(Duration::from_secs(20), shell)
        .await
        .expect("shell ended")
        .expect("join")
        .expect("shell");
    assert_eq!(status, ExitStatus::Code(3));
}

// Not under Wine: the agent to forward is OpenSSH's ssh-agent on a Unix socket,
// which a Windows program cannot use.
#[cfg(not(windows))]
#[tokio::test]
async fn shell_should_forward_the_agent_only_when_asked() {
    let sshd = Sshd::start();
    let agent = Agent::start();
    agent.add(&keys().ed25519);
    let session = sshd.connect().await;

    let run = |forward: Option<AgentLocation>| {
        let session = session.clone();
        async move {
            let (_to_shell, shell_in) = tokio::io::duplex(64);
            let (shell_out, mut from_shell) = tokio::io::duplex(1 << 16);
            let (_tx, rx) = mpsc::channel(1);
            let opts = ShellOptions {
                command: Some("ssh-add -l; echo \"sock=$SSH_AUTH_SOCK\"".into()),
                forward_agent: forward,
                ..ShellOptions::default()
            };
            let status = session
                .shell_with_io(opts, shell_in, shell_out, rx)
                .await
                .expect("shell");
            let mut out = String::new();
            from_shell.read_to_string(&mut out).await.expect("read");
            (status, out)
        }
    };

    let (status, out) = run(Some(AgentLocation::Path(agent.sock.clone()))).await;
    let fp = spuff::ssh::fingerprint(&crate::util::pub_key(&keys().ed25519));
    assert!(
        out.contains(&fp),
        "forwarded agent not visible on the server: {out:?}"
    );
    assert!(status.success(), "{out}");

    // A fresh connection without forwarding: the server has no agent socket.
    let plain = sshd.connect().await;
    let out = plain
        .exec("ssh-add -l; echo \"sock=$SSH_AUTH_SOCK\"")
        .await
        .expect("exec");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sock=\n"),
        "agent socket set without forwarding: {text:?}"
    );
    assert!(!text.contains(&fp));
}
