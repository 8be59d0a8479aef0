//! Exec against a real sshd: exit codes, signals, large outputs, stderr kept
//! apart, stdin, a connection lost mid-command, and the errors users meet.

use std::time::Duration;

use spuff::Hint as _;
use spuff::ssh::{Error, ExecEvent, ExitStatus, RetryPolicy, Session};

use crate::util::{Sshd, free_port};

#[tokio::test]
async fn exec_should_return_exit_codes_and_keep_stderr_apart() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let out = s
        .exec("echo out; echo err >&2; exit 7")
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status, ExitStatus::Code(7));
    assert!(s.exec("true").await.expect("true").status.success());
}

#[tokio::test]
async fn exec_should_report_the_signal_that_killed_the_command() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let out = s.exec("kill -TERM $$").await.expect("exec");
    match out.status {
        ExitStatus::Signal { ref name, .. } => assert_eq!(name, "TERM"),
        other => panic!("expected a signal, got {other:?}"),
    }
    assert_eq!(out.status.shell_code(), 143);
}

#[tokio::test]
async fn exec_should_carry_large_outputs_intact() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    // 32 MiB on stdout and 1 MiB on stderr at the same time.
    let out = s
        .exec("head -c 33554432 /dev/zero | tr '\\0' 'a'; head -c 1048576 /dev/zero | tr '\\0' 'b' >&2")
        .await
        .expect("exec");
    assert_eq!(out.stdout.len(), 32 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == b'a'));
    assert_eq!(out.stderr.len(), 1024 * 1024);
    assert!(out.status.success());
}

#[tokio::test]
async fn exec_should_stream_output_as_it_arrives() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let mut cmd = s
        .spawn("echo first; read line; echo \"got $line\"; echo e >&2")
        .await
        .expect("spawn");
    // The first line arrives while the command is still waiting for input.
    match cmd.next_event().await.expect("event") {
        Some(ExecEvent::Stdout(b)) => assert_eq!(&b[..], b"first\n"),
        other => panic!("unexpected {other:?}"),
    }
    cmd.write_stdin(b"hello\n").await.expect("stdin");
    cmd.close_stdin().await.expect("eof");
    let out = cmd.collect().await.expect("collect");
    assert_eq!(out.stdout, b"got hello\n");
    assert_eq!(out.stderr, b"e\n");
    assert!(out.status.success());
}

#[tokio::test]
async fn exec_should_fail_loudly_when_the_connection_is_lost() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let mut cmd = s.spawn("echo started; sleep 30").await.expect("spawn");
    assert!(matches!(
        cmd.next_event().await,
        Ok(Some(ExecEvent::Stdout(_)))
    ));
    // Kill the server's per-connection processes: the session dies mid-command.
    sshd.kill_sessions();
    let res = tokio::time::timeout(Duration::from_secs(60), cmd.wait()).await;
    match res {
        Ok(Err(Error::ConnectionLost { .. })) => {}
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_should_explain_a_refused_connection() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.port = free_port();
    let err = Session::connect(cfg).await.expect_err("refused");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1") && msg.contains("refused"),
        "{msg}"
    );
    assert!(err.hint().expect("hint").contains("nothing listens"));
}

#[tokio::test]
async fn connect_should_time_out_on_a_host_that_never_answers() {
    // A listener that accepts TCP (the kernel does) but never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.port = silent.local_addr().expect("addr").port();
    cfg.connect_timeout = Duration::from_millis(700);
    let err = Session::connect(cfg).await.expect_err("silent host");
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn wait_for_login_should_return_the_last_real_error() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.user = "nosuchuser".into();
    let policy = RetryPolicy {
        timeout: Duration::from_secs(2),
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
    };
    let err = spuff::ssh::wait_for_login(cfg, &policy)
        .await
        .expect_err("no such user");
    match &err {
        Error::LoginTimeout { attempts, last, .. } => {
            assert!(*attempts >= 2, "{err}");
            assert!(matches!(**last, Error::AuthFailed { .. }), "{last:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("nosuchuser"), "{err}");
}

#[tokio::test]
async fn wait_for_login_should_succeed_once_the_server_comes_up() {
    // Start with nothing listening; bring sshd up half a second later.
    let sshd = Sshd::start();
    let cfg = sshd.config();
    let port = sshd.port;
    let policy = RetryPolicy {
        timeout: Duration::from_secs(30),
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    };
    // Stop it, then restart the same config on the same port shortly after.
    sshd.stop_listener();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sshd.restart_detached()
    };
    let (session, restarted) = tokio::join!(spuff::ssh::wait_for_login(cfg, &policy), restart);
    assert!(restarted, "restart sshd");
    let session = session.expect("login after restart");
    assert_eq!(session.port(), port);
    assert!(session.exec("true").await.expect("exec").status.success());
    // The restarted daemon detached; stop it by its pid file.
    sshd.stop_listener();
}

/// Issue 13: the server decides how much a command prints, so what is
/// collected in memory has a limit, and passing it is a clear error.
#[tokio::test]
async fn collect_should_stop_at_its_limit() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let cmd = s.spawn("head -c 300000 /dev/zero").await.expect("spawn");
    cmd.close_stdin().await.expect("eof");
    let err = cmd
        .collect_limited(100_000)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(
            err,
            spuff::ssh::Error::OutputTooLarge { limit: 100_000, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("100000 bytes"), "{err}");
    // Under the limit, everything.
    let cmd = s.spawn("head -c 90000 /dev/zero").await.expect("spawn");
    cmd.close_stdin().await.expect("eof");
    let out = cmd.collect_limited(100_000).await.expect("collect");
    assert_eq!(out.stdout.len(), 90_000);
    // The session is still usable after an abandoned command.
    assert_eq!(s.exec("echo ok").await.expect("exec").stdout, b"ok\n");
    const { assert!(spuff::ssh::COLLECT_LIMIT >= 1 << 20) };
}

/// A payload or a secret goes on stdin, whole, in order, and ends with EOF;
/// the command's output is held to the caller's limit.
#[tokio::test]
async fn exec_with_input_should_deliver_all_of_the_input_then_eof() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    // Larger than one write, with no two pieces alike.
    let input: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let out = s
        .exec_with_input("wc -c; cksum", &input, 4096)
        .await
        .expect("exec");
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim), Some("700000"), "{text}");
    // `wc` read up to EOF, so `cksum` saw nothing after it.
    assert_eq!(lines.next(), Some("4294967295 0"), "{text}");
    // `cat` echoes it back: more than the limit is refused, not collected.
    let err = s
        .exec_with_input("cat", &input, 4096)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(err, Error::OutputTooLarge { limit: 4096, .. }),
        "{err}"
    );
}
