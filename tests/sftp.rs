//! SFTP against a real OpenSSH sftp server: large files intact and checked on
//! both sides, trees with modes, mtimes and symlinks, atomic replacement,
//! progress, and the errors users meet.
//!
//! The server runs on this machine, so "remote" paths are in the sshd's
//! temporary directory and can also be checked with `exec`, or read directly
//! at [`local_path`] (under Wine, through the `Z:` drive).

#[cfg(not(windows))]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spuff::sftp::{Progress, TransferOptions};
use spuff::ssh::{Error, RemoteCommand, Session};

use crate::util::{Sshd, local_path, sha256_file, write_pattern_file};

async fn sh(s: &Session, cmd: &str) -> String {
    let out = s.exec(cmd).await.expect("exec");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn remote(sshd: &Sshd, rel: &str) -> String {
    sshd.remote(rel)
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options()
        .write(!path.is_dir())
        .read(true)
        .open(path)
        .expect("open for mtime");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

#[cfg(not(windows))]
fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

fn mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .expect("stat")
        .modified()
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("epoch")
        .as_secs()
}

/// 64 MiB and a bit: uploaded over two channels (each half at its offset;
/// a half that landed in the wrong place or not at all changes the sum),
/// downloaded through one.
#[tokio::test]
async fn sftp_should_round_trip_a_64_mib_file_intact() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    let src = local.path().join("big.bin");
    let len = 64 * 1024 * 1024 + 12_345;
    write_pattern_file(&src, len);
    let want = sha256_file(&src);

    let dst = remote(&sshd, "big.bin");
    let started = Instant::now();
    let sent = sftp
        .upload_file(&src, &dst, &TransferOptions::default())
        .await
        .expect("upload");
    let up = started.elapsed();
    assert_eq!(sent, len);
    let remote_sum = sh(&s, &format!("sha256sum {dst}")).await;
    assert_eq!(remote_sum.split_whitespace().next(), Some(want.as_str()));

    let back = local.path().join("back.bin");
    let started = Instant::now();
    let got = sftp
        .download_file(&dst, &back, &TransferOptions::default())
        .await
        .expect("download");
    let down = started.elapsed();
    assert_eq!(got, len);
    assert_eq!(sha256_file(&back), want);
    let mib = |d: Duration| len as f64 / (1024.0 * 1024.0) / d.as_secs_f64();
    eprintln!(
        "64 MiB and a bit: upload {:.0} MiB/s, download {:.0} MiB/s",
        mib(up),
        mib(down)
    );
}

/// A connection to `sshd` (started with `MaxSessions 2`) whose every
/// channel is taken: SFTP's and a running command's. A third is refused.
async fn sftp_with_no_channel_left(sshd: &Sshd) -> (Session, spuff::sftp::Sftp, RemoteCommand) {
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let busy = s.spawn("sleep 60").await.expect("a second channel");
    s.exec("true")
        .await
        .expect_err("a third channel should be refused");
    (s, sftp, busy)
}

/// A server that allows the SFTP channel and one more (`MaxSessions 2`)
/// refuses the second channel of a big upload: the file goes whole over
/// the first, as it does when it is small.
#[tokio::test]
async fn a_big_upload_should_use_one_channel_when_a_second_is_refused() {
    let sshd = Sshd::start_with("MaxSessions 2\n");
    // The limit is real (on a connection of its own, so that the
    // upload's does not wait for these channels to be freed).
    drop(sftp_with_no_channel_left(&sshd).await);
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");

    let local = tempfile::tempdir().expect("tempdir");
    let src = local.path().join("big.bin");
    let len = 64 * 1024 * 1024 + 1;
    write_pattern_file(&src, len);
    set_mtime(&src, 1_234_567_890);
    let dst = remote(&sshd, "big.bin");
    let sent = sftp
        .upload_file(&src, &dst, &TransferOptions::default())
        .await
        .expect("upload over one channel");
    assert_eq!(sent, len);
    assert_eq!(sha256_file(&local_path(&dst)), sha256_file(&src));
    assert_eq!(mtime(&local_path(&dst)), 1_234_567_890);
}

/// With every channel of the connection taken (SFTP's, and a command
/// beside it, under `MaxSessions 2`), copies that would stream over a
/// channel of their own go over SFTP instead of failing: files of both
/// sizes and trees, both ways.
#[tokio::test]
async fn copies_should_go_over_sftp_when_no_channel_is_left() {
    let sshd = Sshd::start_with("MaxSessions 2\n");
    let (_s, sftp, _busy) = sftp_with_no_channel_left(&sshd).await;
    let local = tempfile::tempdir().expect("tempdir");
    let opts = TransferOptions::default();
    for (name, len) in [("small.bin", 100_000), ("big.bin", 64 * 1024 * 1024 + 3)] {
        let src = local.path().join(name);
        write_pattern_file(&src, len);
        set_mtime(&src, 1_234_567_890);
        let dst = remote(&sshd, name);
        let sent = sftp.upload_file(&src, &dst, &opts).await.expect("upload");
        assert_eq!(sent, len, "{name}");
        assert_eq!(sha256_file(&local_path(&dst)), sha256_file(&src), "{name}");
        assert_eq!(mtime(&local_path(&dst)), 1_234_567_890, "{name}");
        let back = local.path().join(format!("{name}.back"));
        let got = sftp
            .download_file(&dst, &back, &opts)
            .await
            .expect("download");
        assert_eq!(got, len, "{name}");
        assert_eq!(sha256_file(&back), sha256_file(&src), "{name}");
    }

    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    write_pattern_file(&tree.join("a.bin"), 5_000);
    write_pattern_file(&tree.join("sub").join("b.bin"), 70_000);
    let dst = remote(&sshd, "tree");
    let summary = sftp
        .upload_dir(&tree, &dst, &opts)
        .await
        .expect("upload_dir");
    assert_eq!((summary.files, summary.bytes), (2, 75_000));
    assert_eq!(
        sha256_file(&local_path(&format!("{dst}/sub/b.bin"))),
        sha256_file(&tree.join("sub").join("b.bin"))
    );
    let back = local.path().join("tree.back");
    let summary = sftp
        .download_dir(&dst, &back, &opts)
        .await
        .expect("download_dir");
    assert_eq!((summary.files, summary.bytes), (2, 75_000));
    assert_eq!(
        sha256_file(&back.join("sub").join("b.bin")),
        sha256_file(&tree.join("sub").join("b.bin"))
    );
}

/// A local file that cannot be read (a write-only sysctl: even root may
/// not open it) fails the upload with the file's name, promptly: the
/// command on the VM hears its input end rather than waiting for ever.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_unreadable_local_file_should_fail_the_upload_promptly() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let unreadable = Path::new("/proc/sys/net/ipv4/route/flush");
    if std::fs::File::open(unreadable).is_ok() {
        eprintln!("skipped: {} can be read here", unreadable.display());
        return;
    }
    std::fs::create_dir(sshd.dir.path().join("up")).expect("mkdir");
    let dst = remote(&sshd, "up/flush");
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        sftp.upload_file(unreadable, &dst, &TransferOptions::default()),
    )
    .await
    .expect("the upload hung")
    .expect_err("an unreadable file");
    assert!(matches!(err, Error::LocalIo { .. }), "{err:?}");
    assert!(err.to_string().contains("flush"), "{err}");
    assert_eq!(
        sh(&s, &format!("ls -A {}", sshd.remote("up"))).await,
        "",
        "nothing is left on the server"
    );
}

// Not under Wine: the local tree has Unix modes and a symlink (see
// sftp_should_copy_trees_between_windows_and_unix_paths for Windows).
#[cfg(not(windows))]
#[tokio::test]
async fn sftp_should_copy_trees_keeping_modes_mtimes_and_symlinks() {
    copy_trees_keeping_modes_mtimes_and_symlinks("", false).await;
}

/// The same tree through one tar stream each way (issue 14): the same
/// result, checked the same way.
#[cfg(not(windows))]
#[tokio::test]
async fn tar_streams_should_copy_trees_keeping_modes_mtimes_and_symlinks() {
    copy_trees_keeping_modes_mtimes_and_symlinks("", true).await;
}

/// A server without tar and mv (a PATH that has everything of /usr/bin but
/// those) still gets the tree and a file, over SFTP.
#[cfg(not(windows))]
#[tokio::test]
async fn copies_should_fall_back_to_sftp_without_gnu_tools_on_the_server() {
    let bin = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir("/usr/bin").expect("/usr/bin").flatten() {
        if e.file_name() != "tar" && e.file_name() != "mv" {
            std::os::unix::fs::symlink(e.path(), bin.path().join(e.file_name())).expect("symlink");
        }
    }
    let config = format!("SetEnv PATH={}\n", bin.path().display());
    copy_trees_keeping_modes_mtimes_and_symlinks(&config, true).await;

    // Single files larger than sshd's 2 MiB window: the stream commands
    // exit before reading any of it, and the copy must not wait for a
    // window that will never open (it hung before `feed`). The second is
    // big enough to go over two channels.
    let sshd = Sshd::start_with(&config);
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    for (name, len) in [("big", 5 * 1024 * 1024), ("huge", 64 * 1024 * 1024 + 7)] {
        let src = local.path().join(name);
        write_pattern_file(&src, len);
        let dst = remote(&sshd, name);
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            sftp.upload_file(&src, &dst, &TransferOptions::default()),
        )
        .await
        .expect("the upload hung")
        .expect("upload");
        assert_eq!(n, len);
        assert_eq!(sha256_file(&local_path(&dst)), sha256_file(&src));
    }
}

#[cfg(not(windows))]
async fn copy_trees_keeping_modes_mtimes_and_symlinks(sshd_config: &str, stream: bool) {
    let sshd = Sshd::start_with(sshd_config);
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let opts = TransferOptions {
        stream,
        ..TransferOptions::default()
    };
    let local = tempfile::tempdir().expect("tempdir");
    let tree = local.path().join("tree");
    let files: [(&str, u32, u64, u64); 4] = [
        ("secret.txt", 0o600, 1_000_000_000, 10),
        ("bin/run.sh", 0o755, 1_100_000_000, 3000),
        ("private/deep/data.csv", 0o640, 1_200_000_000, 300_000),
        ("empty", 0o644, 1_300_000_000, 0),
    ];
    for (rel, m, t, len) in files {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        write_pattern_file(&p, len);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        set_mtime(&p, t);
    }
    std::fs::create_dir_all(tree.join("empty_dir")).expect("mkdir");
    std::os::unix::fs::symlink("bin/run.sh", tree.join("link")).expect("symlink");
    std::fs::set_permissions(tree.join("private"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    for (d, t) in [
        ("private/deep", 1_400_000_000),
        ("private", 1_500_000_000),
        ("empty_dir", 1_600_000_000),
    ] {
        set_mtime(&tree.join(d), t);
    }

    let dst = remote(&sshd, "up/tree");
    let summary = sftp
        .upload_dir(&tree, &dst, &opts)
        .await
        .expect("upload_dir");
    assert_eq!(
        (summary.files, summary.symlinks, summary.bytes),
        (4, 1, 303_010)
    );
    for (rel, m, t, len) in files {
        let got = sh(&s, &format!("stat -c '%a %Y %s' {dst}/{rel}")).await;
        assert_eq!(got, format!("{m:o} {t} {len}"), "{rel}");
        assert_eq!(
            sha256_file(Path::new(&format!("{dst}/{rel}"))),
            sha256_file(&tree.join(rel)),
            "{rel}"
        );
    }
    assert_eq!(
        sh(&s, &format!("stat -c '%a %Y' {dst}/private")).await,
        "700 1500000000"
    );
    assert_eq!(
        sh(&s, &format!("stat -c '%Y' {dst}/private/deep")).await,
        "1400000000"
    );
    assert_eq!(
        sh(&s, &format!("stat -c '%F %Y' {dst}/empty_dir")).await,
        "directory 1600000000"
    );
    assert_eq!(sh(&s, &format!("readlink {dst}/link")).await, "bin/run.sh");
    // Nothing of the atomic upload's machinery is left behind.
    assert_eq!(
        sh(&s, &format!("find {dst} -name '*spuff-tmp*' | wc -l")).await,
        "0"
    );

    let back = local.path().join("back");
    let summary = sftp
        .download_dir(&dst, &back, &opts)
        .await
        .expect("download_dir");
    assert_eq!(
        (summary.files, summary.symlinks, summary.bytes),
        (4, 1, 303_010)
    );
    for (rel, m, t, _) in files {
        let p = back.join(rel);
        assert_eq!((mode(&p), mtime(&p)), (m, t), "{rel}");
        assert_eq!(sha256_file(&p), sha256_file(&tree.join(rel)), "{rel}");
    }
    assert_eq!(
        (mode(&back.join("private")), mtime(&back.join("private"))),
        (0o700, 1_500_000_000)
    );
    assert_eq!(mtime(&back.join("empty_dir")), 1_600_000_000);
    assert!(back.join("empty_dir").is_dir());
    assert_eq!(
        std::fs::read_link(back.join("link")).expect("link"),
        Path::new("bin/run.sh")
    );

    let names: Vec<String> = sftp
        .read_dir(&dst)
        .await
        .expect("read_dir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        ["bin", "empty", "empty_dir", "link", "private", "secret.txt"]
    );
}

/// The Windows side of the tree test: a local tree under a `C:\...` path
/// (backslashes) becomes a `/`-separated tree on the server and back, with
/// contents and mtimes intact. No Unix modes or symlinks on this side.
#[cfg(windows)]
#[tokio::test]
async fn sftp_should_copy_trees_between_windows_and_unix_paths() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    let tree = local.path().join("tree");
    let files: [(&str, u64, u64); 4] = [
        ("secret.txt", 1_000_000_000, 10),
        ("bin/run.sh", 1_100_000_000, 3000),
        ("private/deep/data.csv", 1_200_000_000, 300_000),
        ("empty", 1_300_000_000, 0),
    ];
    for (rel, t, len) in files {
        let p = tree.join(rel.replace('/', "\\"));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        write_pattern_file(&p, len);
        set_mtime(&p, t);
    }
    std::fs::create_dir_all(tree.join("empty_dir")).expect("mkdir");

    let dst = remote(&sshd, "up/tree");
    let summary = sftp
        .upload_dir(&tree, &dst, &TransferOptions::default())
        .await
        .expect("upload_dir");
    assert_eq!(
        (summary.files, summary.symlinks, summary.bytes),
        (4, 0, 303_010)
    );
    assert_eq!(
        sh(&s, &format!("cd {dst} && find . | sort | tr '\\n' ' '")).await,
        ". ./bin ./bin/run.sh ./empty ./empty_dir ./private ./private/deep \
         ./private/deep/data.csv ./secret.txt"
    );
    for (rel, t, len) in files {
        let got = sh(&s, &format!("stat -c '%Y %s' {dst}/{rel}")).await;
        assert_eq!(got, format!("{t} {len}"), "{rel}");
        assert_eq!(
            sha256_file(&local_path(&format!("{dst}/{rel}"))),
            sha256_file(&tree.join(rel)),
            "{rel}"
        );
    }

    let back = local.path().join("back");
    let summary = sftp
        .download_dir(&dst, &back, &TransferOptions::default())
        .await
        .expect("download_dir");
    assert_eq!(
        (summary.files, summary.symlinks, summary.bytes),
        (4, 0, 303_010)
    );
    for (rel, t, _) in files {
        let p = back.join(rel.replace('/', "\\"));
        assert_eq!(mtime(&p), t, "{rel}");
        assert_eq!(sha256_file(&p), sha256_file(&tree.join(rel)), "{rel}");
    }
    assert!(back.join("empty_dir").is_dir());
}

#[tokio::test]
async fn mkdir_p_should_create_deep_paths_and_accept_existing_ones() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let deep = remote(&sshd, "a/b/c/d/e/f");
    sftp.mkdir_p(&deep).await.expect("mkdir_p");
    assert!(sftp.metadata(&deep).await.expect("stat").is_dir());
    sftp.mkdir_p(&deep).await.expect("again");
    sftp.mkdir_p(&format!("{deep}/"))
        .await
        .expect("trailing slash");

    let file = remote(&sshd, "a/file");
    std::fs::write(local_path(&file), "x").expect("write");
    let err = sftp
        .mkdir_p(&format!("{file}/sub"))
        .await
        .expect_err("file in the way");
    assert!(err.to_string().contains(&file), "{err}");
}

#[tokio::test]
async fn upload_should_replace_targets_atomically_and_clean_up_on_failure() {
    replace_targets_atomically_and_clean_up_on_failure(false).await;
}

/// The same through `cat` on one exec channel (issue 14): same temporary
/// file, same clean-up.
#[tokio::test]
async fn streamed_upload_should_replace_targets_atomically_and_clean_up_on_failure() {
    replace_targets_atomically_and_clean_up_on_failure(true).await;
}

async fn replace_targets_atomically_and_clean_up_on_failure(stream: bool) {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    let opts = TransferOptions {
        stream,
        ..TransferOptions::default()
    };
    let dir = remote(&sshd, "atomic");
    sftp.mkdir_p(&dir).await.expect("mkdir");
    let target = format!("{dir}/config");
    std::fs::write(local_path(&target), "old").expect("write");

    // A successful upload replaces the content.
    let new = local.path().join("new");
    std::fs::write(&new, "new content").expect("write");
    sftp.upload_file(&new, &target, &opts)
        .await
        .expect("overwrite");
    assert_eq!(
        std::fs::read_to_string(local_path(&target)).expect("read"),
        "new content"
    );

    // A missing local file leaves the target alone.
    let err = sftp
        .upload_file(local.path().join("missing"), &target, &opts)
        .await
        .expect_err("missing local");
    assert!(matches!(err, Error::LocalIo { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(local_path(&target)).expect("read"),
        "new content"
    );

    // The final rename fails (a non-empty directory is in the way): the data
    // was written, but the temporary file must go and the directory stay.
    let blocker = format!("{dir}/blocker");
    std::fs::create_dir_all(local_path(&format!("{blocker}/inside"))).expect("mkdir");
    let big = local.path().join("big");
    write_pattern_file(&big, 3 * 1024 * 1024);
    let err = sftp
        .upload_file(&big, &blocker, &opts)
        .await
        .expect_err("rename over a directory");
    if stream {
        assert!(
            matches!(err, Error::Stream { .. }) && err.to_string().contains("cannot overwrite"),
            "{err}"
        );
    } else {
        assert!(
            matches!(
                err,
                Error::Sftp {
                    operation: "rename",
                    ..
                }
            ),
            "{err}"
        );
    }
    assert!(err.to_string().contains(&blocker), "{err}");
    assert!(local_path(&format!("{blocker}/inside")).is_dir());
    let left = sh(&s, &format!("ls -A {dir}")).await;
    assert_eq!(
        left.split_whitespace().collect::<Vec<_>>(),
        ["blocker", "config"],
        "{left}"
    );

    // A missing directory: the error names the target and the reason.
    let into_missing = format!("{dir}/no/such/file");
    let err = sftp
        .upload_file(&big, &into_missing, &opts)
        .await
        .expect_err("missing dir");
    let msg = err.to_string();
    assert!(
        msg.contains(&into_missing)
            && (msg.contains("No such file") || msg.contains("Directory nonexistent")),
        "{msg}"
    );
}

#[tokio::test]
async fn progress_should_grow_monotonically_to_the_total() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    let src = local.path().join("f");
    let len = 3 * 1024 * 1024 + 17;
    write_pattern_file(&src, len);
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let opts = TransferOptions {
        progress: Some(Arc::new(move |p| sink.lock().expect("lock").push(p))),
        chunk_size: Some(64 * 1024),
        max_in_flight: 8,
        ..TransferOptions::default()
    };
    for (download, stream) in [(false, false), (false, true), (true, false), (true, true)] {
        let opts = TransferOptions {
            stream,
            ..opts.clone()
        };
        seen.lock().expect("lock").clear();
        if download {
            sftp.download_file(&remote(&sshd, "f"), local.path().join("g"), &opts)
                .await
                .expect("download");
        } else {
            sftp.upload_file(&src, &remote(&sshd, "f"), &opts)
                .await
                .expect("upload");
        }
        let seen = seen.lock().expect("lock");
        assert!(seen.len() >= 48, "one report per chunk, got {}", seen.len());
        assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
        assert!(
            seen.iter()
                .all(|p| p.bytes_total == len && p.files_total == 1)
        );
        let last = seen.last().expect("reports");
        assert_eq!((last.bytes_done, last.files_done), (len, 1));
        assert!(last.path.ends_with("/f"));
    }
}

#[tokio::test]
async fn sftp_errors_should_name_the_path_and_the_reason() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let local = tempfile::tempdir().expect("tempdir");
    // The SFTP engine's own errors.
    let opts = TransferOptions {
        stream: false,
        ..TransferOptions::default()
    };

    let missing = remote(&sshd, "nope.txt");
    let dst = local.path().join("nope.txt");
    let err = sftp
        .download_file(&missing, &dst, &opts)
        .await
        .expect_err("missing");
    let msg = err.to_string();
    assert!(
        msg.contains(&missing) && msg.contains("No such file"),
        "{msg}"
    );
    assert!(!dst.exists());
    assert_eq!(
        std::fs::read_dir(local.path()).expect("ls").count(),
        0,
        "no temp file left"
    );

    // Through a stream, a missing file or a directory is left to SFTP,
    // which says why in its words.
    let streamed = TransferOptions::default();
    for (path, says) in [
        (missing.clone(), "No such file"),
        (remote(&sshd, ""), "is a directory"),
    ] {
        let err = sftp
            .download_file(&path, &dst, &streamed)
            .await
            .expect_err(&path);
        let msg = err.to_string();
        assert!(msg.contains(&path) && msg.contains(says), "{msg}");
        assert_eq!(std::fs::read_dir(local.path()).expect("ls").count(), 0);
    }

    let src = local.path().join("src");
    std::fs::write(&src, "data").expect("write");
    let into_missing = remote(&sshd, "no/such/dir/file");
    let err = sftp
        .upload_file(&src, &into_missing, &opts)
        .await
        .expect_err("missing dir");
    let msg = err.to_string();
    assert!(
        msg.contains(&into_missing) && msg.contains("No such file"),
        "{msg}"
    );

    // Root may write nearly anywhere, but not create files in /proc.
    let err = sftp
        .upload_file(&src, "/proc/spuff-test", &opts)
        .await
        .expect_err("/proc");
    assert!(err.to_string().contains("/proc/spuff-test"), "{err}");

    let err = sftp.metadata(&missing).await.expect_err("stat");
    assert!(
        matches!(
            err,
            Error::Sftp {
                operation: "stat",
                ..
            }
        ),
        "{err}"
    );
    let err = sftp.remove_file(&missing).await.expect_err("remove");
    assert!(err.to_string().contains("No such file"), "{err}");
}

#[tokio::test]
async fn sftp_helpers_should_rename_remove_and_stat() {
    let sshd = Sshd::start();
    let s = sshd.connect().await;
    let sftp = s.sftp().await.expect("sftp");
    let (a, b) = (remote(&sshd, "a"), remote(&sshd, "b"));
    std::fs::write(local_path(&a), "aaa").expect("write");
    std::fs::write(local_path(&b), "b").expect("write");
    sh(&s, &format!("chmod 640 {a}")).await;
    let m = sftp.metadata(&a).await.expect("stat");
    assert!(m.is_file());
    assert_eq!((m.size, m.permissions()), (3, 0o640));
    assert!(m.modified() <= SystemTime::now());
    sftp.rename(&a, &b).await.expect("rename over");
    assert_eq!(
        std::fs::read_to_string(local_path(&b)).expect("read"),
        "aaa"
    );
    assert!(!sftp.exists(&a).await.expect("exists"));
    sftp.remove_file(&b).await.expect("remove");
    assert!(!local_path(&b).exists());
    // Clones share the channel and work at the same time.
    let (x, y) = (sftp.clone(), sftp.clone());
    let root = remote(&sshd, "");
    let (r1, r2) = tokio::join!(x.read_dir(&root), y.metadata(&root));
    assert!(!r1.expect("read_dir").is_empty() && r2.expect("stat").is_dir());
}
