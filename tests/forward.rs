//! Port forwarding against a real sshd: in-process tunnels, local and remote
//! forwards carrying real TCP traffic, half-close, shutdown, and the errors
//! users meet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spuff::forward::{ForwardEvent, LocalForwardSpec, RemoteForwardSpec};
use spuff::ssh::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{Sshd, free_port};

/// A TCP echo server on 127.0.0.1: sends back everything, and passes EOF on
/// once the client has stopped sending.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that reads until the client half-closes, then answers with the
/// byte count and closes.
async fn count_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if s.read_to_end(&mut buf).await.is_ok() {
                    let _ = s
                        .write_all(format!("got {} bytes", buf.len()).as_bytes())
                        .await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Write `data` and read as many bytes back at the same time (a sequential
/// write-then-read would deadlock once buffers fill).
async fn round_trip<S>(stream: S, data: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let write = async {
        w.write_all(data).await.expect("write");
        w.shutdown().await.expect("shutdown");
    };
    let read = async {
        let mut back = Vec::with_capacity(data.len());
        r.read_to_end(&mut back).await.expect("read");
        back
    };
    let ((), back) = tokio::join!(write, read);
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_stream_should_round_trip_megabytes_intact() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let stream = s
        .open_tcp_stream("127.0.0.1", echo.port())
        .await
        .expect("open");
    assert_eq!(stream.target(), format!("127.0.0.1:{}", echo.port()));
    let data = pattern(8 * 1024 * 1024, 1);
    let started = Instant::now();
    let back = round_trip(stream, &data).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    eprintln!(
        "tunnel round trip: 8 MiB each way in {secs:.2}s ({:.1} MiB/s each way)",
        8.0 / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_stream_should_keep_working_after_half_close() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let server = count_server().await;
    let mut stream = s
        .open_tcp_stream("127.0.0.1", server.port())
        .await
        .expect("open");
    stream.write_all(&[7u8; 100_000]).await.expect("write");
    stream.shutdown().await.expect("eof");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    assert_eq!(reply, "got 100000 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_stream_should_be_refused_for_a_closed_port() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let port = free_port();
    match s.open_tcp_stream("127.0.0.1", port).await {
        Err(e @ Error::ChannelRefused { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            assert!(msg.contains("could not connect"), "{msg}");
        }
        other => panic!("expected ChannelRefused, got {other:?}"),
    }
    // The session is still fine afterwards.
    assert!(s.exec("true").await.expect("exec").status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_stream_should_be_refused_when_forwarding_is_disabled() {
    let sshd = Sshd::start_with("AllowTcpForwarding no");
    let s = sshd.connect().await;
    let echo = echo_server().await;
    match s.open_tcp_stream("127.0.0.1", echo.port()).await {
        Err(e @ Error::ChannelRefused { .. }) => {
            assert!(e.to_string().contains("not allowed"), "{e}");
        }
        other => panic!("expected ChannelRefused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_carry_50_concurrent_connections() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let mut fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", echo.port()))
        .await
        .expect("forward");
    let mut events = fwd.events().expect("events");
    assert!(fwd.events().is_none());
    let addr = fwd.local_addr();
    assert_ne!(addr.port(), 0);
    let started = Instant::now();
    let clients = (0..50u64).map(|i| {
        tokio::spawn(async move {
            let data = pattern(64 * 1024 + i as usize * 1000, i + 100);
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let back = round_trip(tcp, &data).await;
            assert!(back == data, "connection {i} got someone else's bytes");
        })
    });
    for c in futures::future::join_all(clients).await {
        c.expect("client");
    }
    eprintln!(
        "50 concurrent connections in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    fwd.shutdown().await;
    let (mut opened, mut closed, mut bytes) = (0, 0, 0);
    while let Some(e) = events.recv().await {
        match e {
            ForwardEvent::Opened { .. } => opened += 1,
            ForwardEvent::Closed {
                from_peer,
                to_peer,
                error,
                ..
            } => {
                assert!(error.is_none(), "{error:?}");
                assert_eq!(from_peer, to_peer);
                closed += 1;
                bytes += from_peer;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((opened, closed), (50, 50));
    assert_eq!(bytes, (0..50).map(|i| 64 * 1024 + i * 1000).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_survive_1000_round_trips_on_one_connection() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let fwd = s
        .forward_local(
            format!("0:127.0.0.1:{}", echo.port())
                .parse()
                .expect("spec"),
        )
        .await
        .expect("forward");
    let mut tcp = TcpStream::connect(fwd.local_addr()).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    for i in 0..1000u32 {
        let msg = format!("request {i:06}");
        tcp.write_all(msg.as_bytes()).await.expect("write");
        tcp.read_exact(&mut buf[..msg.len()]).await.expect("read");
        assert_eq!(&buf[..msg.len()], msg.as_bytes());
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "1000 round trips in {secs:.2}s ({:.0} µs each)",
        secs * 1000.0
    );
    drop(tcp);
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_pass_half_close_through() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let server = count_server().await;
    let fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", server.port()))
        .await
        .expect("forward");
    let mut tcp = TcpStream::connect(fwd.local_addr()).await.expect("connect");
    tcp.write_all(&pattern(300_000, 9)).await.expect("write");
    tcp.shutdown().await.expect("shutdown write");
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_string(&mut reply))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(reply, "got 300000 bytes");
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_release_its_port_on_shutdown() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let mut fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", echo.port()))
        .await
        .expect("forward");
    let mut events = fwd.events().expect("events");
    let addr = fwd.local_addr();
    // A connection still open at shutdown is closed, not left hanging.
    let mut open = TcpStream::connect(addr).await.expect("connect");
    open.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).await.expect("read");
    tokio::time::timeout(Duration::from_secs(10), fwd.shutdown())
        .await
        .expect("shutdown in time");
    let err = TcpStream::connect(addr).await.expect_err("port still open");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let n = tokio::time::timeout(Duration::from_secs(10), open.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "connection survived shutdown");
    let mut saw_cut = false;
    while let Some(e) = events.recv().await {
        if let ForwardEvent::Closed { error: Some(_), .. } = e {
            saw_cut = true;
        }
    }
    assert!(saw_cut, "no close event for the cut connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_stop_listening_when_dropped() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", 9))
        .await
        .expect("forward");
    let addr = fwd.local_addr();
    drop(fwd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_report_a_refused_target() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let closed = free_port();
    let mut fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", closed))
        .await
        .expect("forward");
    let mut events = fwd.events().expect("events");
    let mut tcp = TcpStream::connect(fwd.local_addr()).await.expect("connect");
    let mut buf = [0u8; 1];
    // The client is disconnected… (30 s: under Wine with the whole suite
    // running at once, 10 s once did not do, 2026-12-02)
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // …and the forward says why.
    match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        Ok(Some(ForwardEvent::Failed { error, .. })) => {
            assert!(matches!(error, Error::ChannelRefused { .. }), "{error}");
            assert!(
                error.to_string().contains(&format!("127.0.0.1:{closed}")),
                "{error}"
            );
        }
        other => panic!("expected a Failed event, got {other:?}"),
    }
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_fail_when_the_port_is_taken() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = taken.local_addr().expect("addr").port();
    match s
        .forward_local(LocalForwardSpec::new(port, "127.0.0.1", 80))
        .await
    {
        Err(e @ Error::Forward { .. }) => assert!(e.to_string().contains("cannot listen"), "{e}"),
        other => panic!("expected Error::Forward, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_should_reach_the_local_echo_server() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let mut fwd = s
        .forward_remote(RemoteForwardSpec::new(0, "127.0.0.1", echo.port()))
        .await
        .expect("remote forward");
    let port = fwd.bound_port();
    assert_ne!(port, 0);
    let mut events = fwd.events().expect("events");
    let cmd = format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; head -c 3 <&3'");
    let out = s.exec(&cmd).await.expect("exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hi\n");
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(ForwardEvent::Opened { peer, .. })) => {
            assert!(peer.starts_with("127.0.0.1:"), "{peer}")
        }
        other => panic!("expected an Opened event, got {other:?}"),
    }
    fwd.shutdown().await.expect("cancel");
    // The server no longer listens.
    let out = s.exec(&cmd).await.expect("exec");
    assert!(!out.status.success(), "port {port} still forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_should_listen_on_a_fixed_port() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let port = free_port();
    let fwd = s
        .forward_remote(
            format!("127.0.0.1:{port}:127.0.0.1:{}", echo.port())
                .parse()
                .expect("spec"),
        )
        .await
        .expect("remote forward");
    assert_eq!(fwd.bound_port(), port);
    // Several connections at once, each with its own payload.
    let cmd = format!(
        "for i in 1 2 3 4 5; do (exec 3<>/dev/tcp/127.0.0.1/{port}; printf \"msg$i\" >&3; r=$(head -c 4 <&3); echo \"$r\") & done; wait"
    );
    let out = s.exec(&format!("bash -c '{cmd}'")).await.expect("exec");
    let mut lines: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, ["msg1", "msg2", "msg3", "msg4", "msg5"]);
    // The same address and port cannot be forwarded twice on one session.
    let again = s
        .forward_remote(
            format!("127.0.0.1:{port}:127.0.0.1:1")
                .parse()
                .expect("spec"),
        )
        .await;
    assert!(matches!(again, Err(Error::Forward { .. })), "{again:?}");
    fwd.shutdown().await.expect("cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_should_be_refused_when_forwarding_is_disabled() {
    let sshd = Sshd::start_with("AllowTcpForwarding no");
    let s = sshd.connect().await;
    match s
        .forward_remote(RemoteForwardSpec::new(0, "127.0.0.1", 80))
        .await
    {
        Err(e @ Error::ChannelRefused { .. }) => {
            assert!(e.to_string().contains("remote forward"), "{e}")
        }
        other => panic!("expected ChannelRefused, got {other:?}"),
    }
}

#[test]
fn forward_spec_should_fail_to_parse_with_a_clear_message() {
    let e = "8080:localhost"
        .parse::<LocalForwardSpec>()
        .expect_err("bad spec");
    let msg = e.to_string();
    assert!(msg.contains("`8080:localhost`"), "{msg}");
    assert!(msg.contains("[bind_address:]port:host:hostport"), "{msg}");
    let e = "abc:localhost:80"
        .parse::<LocalForwardSpec>()
        .expect_err("bad port");
    assert!(
        e.to_string()
            .contains("local port `abc` is not a port number"),
        "{e}"
    );
    let e = "8080:localhost:99999"
        .parse::<RemoteForwardSpec>()
        .expect_err("bad port");
    assert!(e.to_string().contains("local port `99999`"), "{e}");
}

// Stock russh 0.65 re-opens a channel's window when data arrives, not when it
// is read, and blocks its session task on a full channel queue: one unread
// channel stalled every other channel. The vendored, patched russh
// (vendor/russh/PATCHES.md) gates the window on reads; this is its regression test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_stream_should_not_stall_the_session_when_unread() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    // A server that pours data at whoever connects, counting what the
    // kernel took, so that a stall can say which side stopped.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..64 {
                    if c.write_all(&chunk).await.is_err() {
                        break;
                    }
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    let unread = s.open_tcp_stream("127.0.0.1", port).await.expect("open");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Everything else on the connection still works while nobody reads it.
    // The bound only turns a hang into a failure: the bug this guards
    // against stalled the session for good, while a loaded CI machine
    // (Wine's full suite) has been seen to take over 10 s for one step.
    let out = tokio::time::timeout(Duration::from_secs(60), s.exec("echo alive"))
        .await
        .expect("session stalled by an unread tunnel")
        .expect("exec");
    assert_eq!(out.stdout, b"alive\n");
    // Once read, every byte that was held back arrives. A lost wake-up
    // stops the data for good; a busy machine only slows it, hence the
    // long bound on each read.
    let mut unread = unread;
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(120), unread.read(&mut buf)).await;
        let Ok(read) = read else {
            // Which side stopped: the server's writes, the tunnel, or
            // the whole connection.
            let session = match tokio::time::timeout(Duration::from_secs(30), s.exec("true")).await
            {
                Ok(Ok(_)) => "still runs commands",
                Ok(Err(_)) => "fails commands",
                Err(_) => "stalled too",
            };
            panic!(
                "data stopped after {total} of {} bytes read; the server had written {}; \
                 the session {session}",
                64 << 20,
                written.load(Ordering::SeqCst),
            );
        };
        let n = read.expect("read");
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == b'x'));
        total += n;
    }
    assert_eq!(total, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_should_stop_listening_when_the_connection_is_lost() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let echo = echo_server().await;
    let fwd = s
        .forward_local(LocalForwardSpec::new(0, "127.0.0.1", echo.port()))
        .await
        .expect("forward");
    let addr = fwd.local_addr();
    sshd.kill_sessions();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still listening after the connection died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A forward whose connection is gone still shuts down without fuss.
    fwd.shutdown().await;
    match s.open_tcp_stream("127.0.0.1", echo.port()).await {
        Err(Error::ConnectionLost { .. }) => {}
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
}
