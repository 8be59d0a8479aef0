//! One connection, many jobs at once: exec, SFTP and a forward share a session.

use spuff::forward::LocalForwardSpec;
use spuff::sftp::TransferOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{self, Sshd, sha256_file, write_pattern_file};

#[tokio::test]
async fn exec_sftp_and_forward_should_run_at_once_on_one_session() {
    let sshd = Sshd::start();
    let session = sshd.connect().await;
    let work = tempfile::tempdir().expect("tempdir");

    // An echo server for the forward.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let echo_port = echo.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let fwd = session
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", echo_port))
        .await
        .expect("forward");
    let fwd_port = fwd.local_addr().port();

    let local = work.path().join("up.bin");
    write_pattern_file(&local, 16 * 1024 * 1024);
    let remote = sshd.remote("up.bin");

    let upload = {
        let session = session.clone();
        let (local, remote) = (local.clone(), remote.clone());
        async move {
            let sftp = session.sftp().await.expect("sftp");
            sftp.upload_file(&local, &remote, &TransferOptions::default())
                .await
                .expect("upload")
        }
    };
    let exec = {
        let session = session.clone();
        async move {
            // Output streamed while the other jobs run.
            session
                .exec("for i in $(seq 1 2000); do echo line $i; done; echo done >&2")
                .await
                .expect("exec")
        }
    };
    let forward = async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", fwd_port))
            .await
            .expect("connect");
        let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let send = async {
            w.write_all(&data).await.expect("write");
            w.shutdown().await.expect("shutdown");
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (_, n) = tokio::join!(send, recv);
        n.expect("read");
        assert!(back == data, "forwarded data corrupted");
        back.len()
    };

    let (uploaded, out, echoed) = tokio::join!(upload, exec, forward);
    assert_eq!(uploaded, 16 * 1024 * 1024);
    assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), 2000);
    assert_eq!(out.stderr, b"done\n");
    assert_eq!(echoed, 4 * 1024 * 1024);
    assert_eq!(sha256_file(&util::local_path(&remote)), sha256_file(&local));
    fwd.shutdown().await;
}
