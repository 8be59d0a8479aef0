//! The QMP client against a real QEMU (no guest: `-machine none`), the peer
//! the local provider will power VMs down through.

use std::process::{Command, Stdio};
use std::time::Duration;

use spuff::provider::local::qmp::{Error, Qmp};

#[tokio::test]
async fn qmp_should_talk_to_a_real_qemu_and_make_it_quit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("qmp.sock");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 starts (bash ci/install-test-deps.sh installs it)");
    // QEMU creates the socket once it is listening.
    let mut stream = None;
    for _ in 0..200 {
        if let Ok(s) = tokio::net::UnixStream::connect(&sock).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = stream.expect("QEMU's QMP socket");
    let mut qmp = Qmp::handshake(stream).await.expect("handshake");
    let major = qmp.version["major"].as_u64().expect("major version");
    assert!(major >= 7, "{:?}", qmp.version);

    let status = qmp
        .execute("query-status", None)
        .await
        .expect("query-status");
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["status"], "prelaunch", "{status}");
    let version = qmp
        .execute("query-version", None)
        .await
        .expect("query-version");
    assert_eq!(version["qemu"], qmp.version);

    let e = qmp
        .execute("no-such-command", None)
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, Error::Command { class, .. } if class == "CommandNotFound"),
        "{e:?}"
    );

    qmp.execute("quit", None).await.expect("quit");
    let status = tokio::task::spawn_blocking(move || qemu.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "QEMU exits cleanly on quit: {status}");
}
