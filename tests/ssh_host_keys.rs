//! Host key policies against a real sshd: strict, accept-new, pinned, changed.

use spuff::ssh::{Error, HostKeyPolicy, Session, fingerprint};

use crate::util::{Sshd, keys, pub_key, server_path, shared_tempdir, ssh_keygen};

#[tokio::test]
async fn strict_should_accept_a_key_in_known_hosts_and_refuse_an_unknown_host() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("kh");
    // Unknown: refused, with the fingerprint to check.
    let mut cfg = sshd.config();
    cfg.host_keys = HostKeyPolicy::strict([kh.clone()]);
    let err = Session::connect(cfg.clone())
        .await
        .expect_err("unknown host");
    match &err {
        Error::HostKeyUnknown {
            fingerprint: fp, ..
        } => assert_eq!(fp, &fingerprint(&sshd.host_key)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    // Known (hashed entry as written by `ssh-keyscan -H`-style tools): accepted.
    let line = format!(
        "[127.0.0.1]:{} {}\n",
        sshd.port,
        sshd.host_key.to_openssh().expect("openssh")
    );
    std::fs::write(&kh, line).expect("write kh");
    let (hashed, _) = ssh_keygen(&sshd, &["-H".into(), "-f".into(), server_path(&kh)]).await;
    assert!(hashed, "ssh-keygen -H failed");
    assert!(std::fs::read_to_string(&kh).expect("kh").starts_with("|1|"));
    let s = Session::connect(cfg).await.expect("known host");
    assert!(s.exec("true").await.expect("exec").status.success());
}

#[tokio::test]
async fn accept_new_should_record_the_key_then_refuse_a_changed_one() {
    let sshd = Sshd::start();
    // Where OpenSSH's ssh-keygen can read it too (under Wine, on the Linux side).
    let home = shared_tempdir();
    let kh = home.path().join("spuff_known_hosts");
    let mut cfg = sshd.config();
    cfg.host_keys = HostKeyPolicy::accept_new(&kh);
    Session::connect(cfg.clone()).await.expect("first use");
    let recorded = std::fs::read_to_string(&kh).expect("recorded");
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{recorded}"
    );
    // OpenSSH's own client accepts the file we wrote.
    let (found, _) = ssh_keygen(
        &sshd,
        &[
            "-F".into(),
            format!("[127.0.0.1]:{}", sshd.port),
            "-f".into(),
            server_path(&kh),
        ],
    )
    .await;
    assert!(found, "ssh-keygen cannot find our entry");
    Session::connect(cfg.clone()).await.expect("second use");

    // Same address, new server key: refused, naming both fingerprints and the line.
    let old_fp = fingerprint(&sshd.host_key);
    let port = sshd.port;
    drop(sshd);
    let other = Sshd::start();
    let mut cfg2 = other.config();
    cfg2.host_keys = HostKeyPolicy::accept_new(&kh);
    // Make the old entry name the new server's port.
    let text = std::fs::read_to_string(&kh)
        .expect("kh")
        .replace(&format!("]:{port} "), &format!("]:{} ", other.port));
    std::fs::write(&kh, text).expect("rewrite");
    let err = Session::connect(cfg2).await.expect_err("changed key");
    let msg = err.to_string();
    assert!(matches!(err, Error::HostKeyChanged { .. }), "{err:?}");
    assert!(
        msg.contains(&old_fp) && msg.contains(&fingerprint(&other.host_key)),
        "{msg}"
    );
    assert!(msg.contains(&format!("{}:1", kh.display())), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&kh).expect("kh").lines().count(),
        1,
        "nothing new recorded"
    );
}

#[tokio::test]
async fn pinned_should_refuse_any_other_key() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    let wrong = pub_key(&keys().stranger);
    cfg.host_keys = HostKeyPolicy::pinned([wrong.clone()]);
    let err = Session::connect(cfg).await.expect_err("wrong pin");
    match err {
        Error::HostKeyChanged {
            presented,
            expected,
            ..
        } => {
            assert_eq!(presented, fingerprint(&sshd.host_key));
            assert_eq!(expected[0].fingerprint, fingerprint(&wrong));
        }
        other => panic!("unexpected {other:?}"),
    }
    // And the right pin works.
    sshd.connect().await;
}

#[tokio::test]
async fn strict_with_no_source_should_refuse_before_trusting_anything() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.host_keys = HostKeyPolicy::default();
    assert!(matches!(Session::connect(cfg).await, Err(Error::Config(_))));
}
