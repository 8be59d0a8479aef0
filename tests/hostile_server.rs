//! Issue 13: servers a compromised VM could run. A real sshd runs a lying
//! SFTP subsystem (tests/data/hostile/sftp_server.py) whose listings hold
//! names chosen to escape a download's target, a tree or a listing without
//! end, symlink loops, lying sizes, too-long replies, or a stall in the
//! middle of a file; the client must refuse them, write nothing outside the
//! target, keep its memory bounded, and say what it refused. An SSH server that ignores the receive window
//! (tests/data/hostile/flood_server.py, paramiko) must be cut off before it
//! fills the client's memory.

use std::path::Path;

use spuff::sftp::TransferOptions;
use spuff::ssh::Error;

use crate::util::Sshd;

fn hostile_sshd(mode: &str) -> Sshd {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hostile/sftp_server.py"
    );
    Sshd::start_with(&format!(
        "Subsystem sftp /usr/bin/python3 {script} {mode}\n"
    ))
}

/// Every file (and symlink) under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            // Not following symlinks: the server's links may lead anywhere.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

async fn download(mode: &str, scratch: &Path) -> Result<spuff::sftp::TransferSummary, Error> {
    let sshd = hostile_sshd(mode);
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    let target = scratch.join("inside").join("target");
    sftp.download_dir("/evil", &target, &over_sftp()).await
}

/// These servers lie in their SFTP answers: keep the copy on SFTP even
/// though the VM has tar.
fn over_sftp() -> TransferOptions {
    TransferOptions {
        stream: false,
        ..TransferOptions::default()
    }
}

#[tokio::test]
async fn downloads_should_refuse_names_that_leave_the_target() {
    let mut modes = vec![
        ("dotdot", "../escaped"),
        ("absolute", "/tmp/spuff-escaped"),
        ("slash", "sub/escaped"),
        ("dup", "twice"),
    ];
    if cfg!(windows) {
        // A separator only where the client runs on Windows.
        modes.push(("backslash", "..\\escaped"));
    }
    for (mode, name) in modes {
        let scratch = tempfile::tempdir().expect("tempdir");
        let err = download(mode, scratch.path())
            .await
            .expect_err(&format!("{mode}: a hostile name must be refused"));
        match &err {
            Error::UnsafeName { name: got, .. } => assert_eq!(got, name, "{mode}: {err}"),
            other => panic!("{mode}: expected UnsafeName, got {other}"),
        }
        assert!(err.to_string().contains("refusing to write it"), "{err}");
        assert_eq!(
            files_under(scratch.path()),
            Vec::<String>::new(),
            "{mode}: nothing may be written"
        );
        assert!(!Path::new("/tmp/spuff-escaped").exists());
    }
}

/// A server that lists a directory inside every directory, forever: the
/// walk stops at its depth limit with an error instead of running on.
#[tokio::test]
async fn a_tree_without_end_should_be_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let err = download("deep", scratch.path())
        .await
        .expect_err("an endless tree");
    assert!(err.to_string().contains("directories deep"), "{err}");
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());
}

#[tokio::test]
async fn an_honest_listing_from_the_same_server_should_download() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let summary = download("good", scratch.path()).await.expect("download");
    assert_eq!(summary.files, 1);
    assert_eq!(files_under(scratch.path()), ["inside/target/fine.txt"]);
    let got = std::fs::read(scratch.path().join("inside/target/fine.txt")).expect("read");
    assert_eq!(got, b"evil\n");
}

/// A server that answers READDIR without end: the listing is refused at
/// its bound instead of filling the client's memory.
#[tokio::test]
async fn a_listing_without_end_should_be_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let err = download("wide", scratch.path())
        .await
        .expect_err("an endless listing");
    assert!(err.to_string().contains("listing without end"), "{err}");
    assert!(
        err.to_string()
            .contains(&spuff::sftp::MAX_DIR_ENTRIES.to_string()),
        "{err}"
    );
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());
}

/// Symlinks in a downloaded tree, one a loop, one climbing out of the
/// target, one absolute: each is recreated as a link (never followed, never
/// walked into) and the file beside them arrives.
#[tokio::test]
async fn symlinks_from_the_server_should_stay_links() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let result = download("links", scratch.path()).await;
    let target = scratch.path().join("inside/target");
    let summary = result.expect("download");
    assert_eq!(summary.files, 1, "{summary:?}");
    assert_eq!(
        std::fs::read(target.join("fine.txt")).expect("read"),
        b"evil\n"
    );
    if cfg!(unix) {
        assert_eq!(summary.symlinks, 3, "{summary:?}");
        for (name, to) in [("loop", "loop"), ("up", "../../.."), ("abs", "/etc")] {
            let link = target.join(name);
            assert!(
                std::fs::symlink_metadata(&link).expect(name).is_symlink(),
                "{name}"
            );
            assert_eq!(std::fs::read_link(&link).expect(name), Path::new(to));
        }
    } else {
        assert_eq!(summary.skipped, 3, "{summary:?}");
    }
    // Nothing else was written: not through the links, not beside them.
    assert_eq!(
        files_under(scratch.path())
            .into_iter()
            .filter(|f| f.ends_with("fine.txt"))
            .count(),
        1
    );
}

/// A file whose size is said to be 1 TiB but holds five bytes: the copy
/// ends at the real end of file with the five bytes, and allocates nothing
/// by the size it was told.
#[tokio::test]
async fn a_lying_size_should_not_be_believed() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let summary = download("liar", scratch.path()).await.expect("download");
    assert_eq!((summary.files, summary.bytes), (1, 5), "{summary:?}");
    let got = scratch.path().join("inside/target/fine.txt");
    assert_eq!(std::fs::read(&got).expect("read"), b"evil\n");
    assert_eq!(std::fs::metadata(&got).expect("stat").len(), 5);
}

/// A server that answers a READ with more bytes than were asked for is
/// refused, and the partial file is not left behind.
#[tokio::test]
async fn a_reply_longer_than_asked_should_be_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let err = download("overread", scratch.path())
        .await
        .expect_err("too long a reply");
    assert!(err.to_string().contains("bytes for a 5-byte read"), "{err}");
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());
}

/// A server that stops answering in the middle of a file: the transfer
/// fails once a request has waited for the request timeout, names the
/// file and the wait, and leaves no partial file.
#[tokio::test]
async fn a_server_that_stalls_mid_transfer_should_time_out() {
    let sshd = hostile_sshd("stall");
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    sftp.set_request_timeout(std::time::Duration::from_secs(2));
    let scratch = tempfile::tempdir().expect("tempdir");
    let target = scratch.path().join("target");
    let err = sftp
        .download_dir("/evil", &target, &over_sftp())
        .await
        .expect_err("a stalled transfer");
    let text = err.to_string();
    assert!(
        text.contains("no reply from the server within 2s"),
        "{text}"
    );
    assert!(text.contains("big.bin"), "{text}");
    assert_eq!(files_under(scratch.path()), Vec::<String>::new());
    // The connection itself is fine: a new request on it is answered.
    let again = session.sftp().await.expect("sftp again");
    assert!(again.metadata("/evil").await.expect("stat").is_dir());
}

/// A symlink an earlier copy left inside the target is not followed when a
/// directory of the same name arrives: it is replaced, over SFTP and
/// through tar alike.
#[cfg(unix)]
#[tokio::test]
async fn a_symlink_in_the_target_should_not_be_written_through() {
    let sshd = Sshd::start();
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    let remote = tempfile::tempdir_in(sshd.dir.path()).expect("remote dir");
    std::fs::create_dir_all(remote.path().join("tree/d")).expect("mkdir");
    std::fs::write(
        remote.path().join("tree/d/authorized_keys"),
        "from the VM\n",
    )
    .expect("write");
    for stream in [false, true] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let elsewhere = scratch.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        let target = scratch.path().join("target");
        std::fs::create_dir_all(&target).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, target.join("d")).expect("symlink");
        let opts = TransferOptions {
            stream,
            ..TransferOptions::default()
        };
        sftp.download_dir(
            &crate::util::server_path(&remote.path().join("tree")),
            &target,
            &opts,
        )
        .await
        .expect("download");
        assert!(
            !elsewhere.join("authorized_keys").exists(),
            "written through the link (stream {stream})"
        );
        assert!(
            std::fs::symlink_metadata(target.join("d"))
                .expect("d")
                .is_dir()
        );
        assert_eq!(
            std::fs::read_to_string(target.join("d/authorized_keys")).expect("read"),
            "from the VM\n"
        );
    }
}

/// A server whose `tar -c` is tests/data/hostile/tar_server.py in `mode`;
/// `elsewhere` is a directory outside every target, where nothing may land.
fn hostile_tar_sshd(mode: &str, elsewhere: &Path) -> Sshd {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hostile/tar_server.py"
    );
    // Only a symlink's text: under Wine the test's temporary directory is
    // not on the server's disk, and the client skips symlinks there anyway.
    let elsewhere = if cfg!(windows) {
        "/tmp/spuff-elsewhere".to_string()
    } else {
        elsewhere.display().to_string()
    };
    Sshd::start_with(&format!(
        "ForceCommand /usr/bin/python3 {script} {mode} {elsewhere}\n"
    ))
}

/// Download a tree from a hostile tar into `scratch/inside/target`.
async fn download_tar(mode: &str, scratch: &Path) -> Result<spuff::sftp::TransferSummary, Error> {
    let elsewhere = scratch.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let sshd = hostile_tar_sshd(mode, &elsewhere);
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    let remote = crate::util::server_path(sshd.dir.path());
    let target = scratch.join("inside").join("target");
    sftp.download_dir(&remote, &target, &TransferOptions::default())
        .await
}

/// Issue 14: a tree streamed through tar keeps the rules of the SFTP path.
/// Each archive below breaks one; the copy must stop with an error that
/// says which, and nothing may be written outside the target (nor through
/// a symlink the archive made, nor as a partial file).
#[tokio::test]
async fn a_hostile_tar_stream_should_be_refused() {
    let cases = [
        ("dotdot", "\"..\""),
        ("absolute", "not inside the directory asked for"),
        ("through", "arrived before its directory"),
        ("nodir", "arrived before its directory"),
        ("dup", "was listed twice"),
        ("longname", "refusing names over 65536 bytes"),
        ("short", "after 4096 of its 10485760 bytes"),
        ("pax", "PAX headers"),
        ("fails", "Cannot open: Permission denied"),
    ];
    for (mode, says) in cases {
        let scratch = tempfile::tempdir().expect("tempdir");
        let err = download_tar(mode, scratch.path())
            .await
            .expect_err(mode)
            .to_string();
        assert!(err.contains(says), "{mode}: {err}");
        let outside: Vec<String> = files_under(scratch.path())
            .into_iter()
            .filter(|f| !f.starts_with("inside/target/"))
            .collect();
        assert!(outside.is_empty(), "{mode}: written outside: {outside:?}");
        let inside = files_under(&scratch.path().join("inside/target"));
        // Files before the broken entry stay, each one whole.
        let expected: &[&str] = match mode {
            "fails" => &["fine.txt"],
            "dup" => &["twice"],
            _ => &[],
        };
        assert_eq!(inside, expected, "{mode}: in the target");
    }
    if cfg!(unix) {
        assert!(!Path::new("/tmp/spuff-escaped-tar").exists());
    }
}

/// A single file's download through `cat` (issue 14) believes the line
/// before the bytes only as an upper bound and a promise: more bytes than
/// it said, fewer, or a `cat` that fails end the copy with an error saying
/// so, and nothing is left beside the target. A login banner before the
/// line is passed over.
#[tokio::test]
async fn a_hostile_cat_download_should_be_refused() {
    for (mode, says) in [
        ("catlong", "more than the 5 bytes"),
        ("catshort", "received 5 bytes of a file that held 10"),
        ("catfails", "Input/output error"),
    ] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let (got, remote) = download_cat(mode, scratch.path()).await;
        let err = got.expect_err(mode).to_string();
        assert!(err.contains(says), "{mode}: {err}");
        assert!(err.contains(&remote), "{mode}: {err}");
        assert_eq!(files_under(scratch.path()), Vec::<String>::new(), "{mode}");
    }

    let scratch = tempfile::tempdir().expect("tempdir");
    let (n, _) = download_cat("catnoise", scratch.path()).await;
    assert_eq!(n.expect("catnoise"), 5);
    let got = scratch.path().join("got");
    assert_eq!(std::fs::read(&got).expect("read"), b"hello");
    let meta = std::fs::metadata(&got).expect("stat");
    assert_eq!(
        meta.modified().expect("mtime"),
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    }
    assert_eq!(files_under(scratch.path()), ["got"]);

    // A time no clock can hold is not believed (it used to overflow, which
    // panics): the bytes still come.
    let scratch = tempfile::tempdir().expect("tempdir");
    let (n, _) = download_cat("cattime", scratch.path()).await;
    n.expect("cattime");
    let got = std::fs::read(scratch.path().join("got")).expect("read");
    assert_eq!(got, b"hello");
}

/// Download one file from the hostile server in `mode` into
/// `scratch/got`; also returns the remote path asked for (the server
/// answers for any).
async fn download_cat(mode: &str, scratch: &Path) -> (Result<u64, Error>, String) {
    let sshd = hostile_tar_sshd(mode, scratch);
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    let remote = crate::util::server_path(&sshd.dir.path().join("f"));
    let got = sftp
        .download_file(&remote, scratch.join("got"), &TransferOptions::default())
        .await;
    (got, remote)
}

/// An upload through a tar that reads the archive and writes nothing, yet
/// exits 0: the check after the copy finds out and says which file.
#[tokio::test]
async fn a_tar_upload_that_did_not_land_should_be_caught() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let sshd = hostile_tar_sshd("drop", scratch.path());
    let session = sshd.connect().await;
    let sftp = session.sftp().await.expect("sftp");
    let tree = scratch.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::write(tree.join("sub/a.txt"), "data\n").expect("write");
    std::fs::create_dir_all(sshd.dir.path().join("up")).expect("mkdir");
    let remote = crate::util::server_path(&sshd.dir.path().join("up"));
    let err = sftp
        .upload_dir(&tree, &remote, &TransferOptions::default())
        .await
        .expect_err("nothing landed")
        .to_string();
    assert!(err.contains("a.txt"), "{err}");
    assert!(err.contains("(streamed)"), "{err}");
}

/// A big upload whose second half the VM claims to have written: when it
/// wrote nothing (and said it succeeded) the size check before the rename
/// catches it; when it failed, its own message is reported. Either way the
/// target is untouched and no temporary file is left beside it.
#[tokio::test]
async fn a_split_upload_whose_second_half_did_not_land_should_be_caught() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let src = scratch.path().join("big.bin");
    let len = 64 * 1024 * 1024 + 3;
    crate::util::write_pattern_file(&src, len);
    for (mode, says) in [
        ("splitdrop", "bytes, not 67108867"),
        ("splitfails", "No space left on device"),
    ] {
        let sshd = hostile_tar_sshd(mode, scratch.path());
        let session = sshd.connect().await;
        let sftp = session.sftp().await.expect("sftp");
        let dir = sshd.dir.path().join("up");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("big.bin"), "old\n").expect("write");
        let remote = crate::util::server_path(&dir.join("big.bin"));
        let err = sftp
            .upload_file(&src, &remote, &TransferOptions::default())
            .await
            .expect_err(mode)
            .to_string();
        assert!(err.contains("big.bin"), "{mode}: {err}");
        assert!(err.contains(says), "{mode}: {err}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["big.bin"], "{mode}");
        assert_eq!(
            std::fs::read_to_string(dir.join("big.bin")).expect("read"),
            "old\n",
            "{mode}"
        );
    }
}

/// The same hostile-tar server, answering honestly or with entries that
/// are skipped as over SFTP: the copy works and counts what it did.
#[tokio::test]
async fn an_honest_or_odd_tar_stream_should_download() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let s = download_tar("honest", scratch.path())
        .await
        .expect("honest");
    let target = scratch.path().join("inside/target");
    if cfg!(unix) {
        assert_eq!((s.files, s.dirs, s.symlinks, s.bytes), (1, 2, 1, 5));
        assert_eq!(
            std::fs::read_link(target.join("link")).expect("link"),
            Path::new("sub/fine.txt")
        );
    } else {
        // Symlinks need privileges on Windows: skipped, as over SFTP.
        assert_eq!((s.files, s.dirs, s.skipped, s.bytes), (1, 2, 1, 5));
    }
    assert_eq!(
        std::fs::read_to_string(target.join("sub/fine.txt")).expect("read"),
        "evil\n"
    );

    // An mtime of 2^64 - 1 seconds in a base-256 header field: the file
    // comes, with no overflow (which panics) on the way.
    let scratch = tempfile::tempdir().expect("tempdir");
    download_tar("bigtime", scratch.path())
        .await
        .expect("bigtime");
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("inside/target/fine.txt")).expect("read"),
        "evil\n"
    );

    let scratch = tempfile::tempdir().expect("tempdir");
    let s = download_tar("special", scratch.path())
        .await
        .expect("special");
    assert_eq!((s.files, s.skipped), (1, 3));
    assert_eq!(
        files_under(&scratch.path().join("inside/target")),
        ["fine.txt"]
    );
}

/// Issue 13: a server that ignores the receive window (paramiko with its
/// window check switched off, tests/data/hostile/flood_server.py) must not
/// grow the client's memory without bound: the client ends the connection
/// with a protocol error instead of buffering the flood.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ignores_the_window_should_be_cut_off() {
    use spuff::ssh::{AuthMethod, Config, HostKeyPolicy, PublicKey};
    use std::io::BufRead;

    if !Path::new("/usr/bin/python3").exists()
        || !std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import paramiko"])
            .status()
            .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: install python3-paramiko (ci/install-test-deps.sh does)"
        );
        eprintln!("skipped: needs /usr/bin/python3 with paramiko (python3-paramiko)");
        return;
    }
    let port = crate::util::free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hostile/flood_server.py"
    );
    let mut server = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the flood server");
    let mut lines = std::io::BufReader::new(server.stdout.take().expect("stdout")).lines();
    let host_key = lines.next().expect("host key line").expect("read");
    let _ = lines.next(); // "listening"
    let config = Config {
        port,
        host_keys: HostKeyPolicy::pinned([PublicKey::from_openssh(&host_key).expect("key")]),
        auth: vec![AuthMethod::KeyFile(crate::util::keys().ed25519.clone())],
        // A window the (slow, Python) flood overruns well within the
        // stall below, whatever the default is.
        window_size: 2 << 20,
        ..Config::new("127.0.0.1", "flood")
    };
    let session = spuff::ssh::Session::connect(config).await.expect("connect");
    let mut cmd = session.spawn("flood").await.expect("spawn");
    // The reader stalls, as a paused download through a tunnel does: the
    // window closes, and the server sends anyway.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut received = 0usize;
    let err = loop {
        match cmd.next_event().await {
            Ok(Some(spuff::ssh::ExecEvent::Stdout(b))) => received += b.len(),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the whole flood ({received} bytes) was accepted"),
            Err(e) => break e,
        }
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        received < 32 << 20,
        "the client took {received} bytes past its window before refusing"
    );
    let text = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(session.is_closed(), "the connection must end: {text}");
    eprintln!("refused after {received} bytes: {text}");
}
