//! Authentication against a real sshd: each key type, a passphrase, the agent,
//! and failures that list what was tried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spuff::Hint as _;
#[cfg(not(windows))]
use spuff::ssh::AgentLocation;
use spuff::ssh::{AuthMethod, Error, Session};

#[cfg(not(windows))]
use crate::util::Agent;
use crate::util::{PASSPHRASE, Sshd, keys};

#[tokio::test]
async fn ed25519_and_rsa_key_files_should_log_in() {
    let sshd = Sshd::start();
    for key in [&keys().ed25519, &keys().rsa] {
        let mut cfg = sshd.config();
        cfg.auth = vec![AuthMethod::KeyFile(key.clone())];
        let s = Session::connect(cfg)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", key.display(), sshd.log()));
        assert_eq!(
            s.exec("whoami").await.expect("exec").stdout,
            format!("{}\n", sshd.user).as_bytes()
        );
    }
}

#[tokio::test]
async fn rsa_should_sign_with_whichever_sha2_algorithm_the_server_allows() {
    // OpenSSH refuses SHA-1 `ssh-rsa` signatures; each server here allows only one SHA-2 variant.
    for alg in ["rsa-sha2-256", "rsa-sha2-512"] {
        let sshd = Sshd::start_with(&format!("PubkeyAcceptedAlgorithms {alg}"));
        let mut cfg = sshd.config();
        cfg.auth = vec![AuthMethod::KeyFile(keys().rsa.clone())];
        let s = Session::connect(cfg)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}\n{}", sshd.log()));
        assert!(s.exec("true").await.expect("exec").status.success());
        // The same through the agent, which signs with the hash we ask for.
        // (Not under Wine: OpenSSH's agent is a Unix socket.)
        #[cfg(not(windows))]
        {
            let agent = Agent::start();
            agent.add(&keys().rsa);
            let mut cfg = sshd.config();
            cfg.auth = vec![AuthMethod::Agent(AgentLocation::Path(agent.sock.clone()))];
            Session::connect(cfg)
                .await
                .unwrap_or_else(|e| panic!("agent {alg}: {e}\n{}", sshd.log()));
        }
    }
}

#[tokio::test]
async fn encrypted_key_should_ask_for_the_passphrase_until_right() {
    let sshd = Sshd::start();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let mut cfg = sshd.config();
    cfg.auth = vec![AuthMethod::KeyFile(keys().encrypted.clone())];
    cfg.passphrase = Some(Arc::new(move |_path| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Some(if n == 0 {
            "wrong".to_string()
        } else {
            PASSPHRASE.to_string()
        })
    }));
    Session::connect(cfg.clone())
        .await
        .expect("login with passphrase");
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // Declining the prompt is a clear failure, not a hang.
    cfg.passphrase = Some(Arc::new(|_| None));
    let err = Session::connect(cfg).await.expect_err("no passphrase");
    assert!(err.to_string().contains("no passphrase was given"), "{err}");
}

// Not under Wine: OpenSSH's ssh-agent listens on a Unix socket, which a
// Windows program cannot use (Windows agents are named pipes).
#[cfg(not(windows))]
#[tokio::test]
async fn agent_keys_should_log_in() {
    let sshd = Sshd::start();
    let agent = Agent::start();
    agent.add(&keys().rsa);
    let mut cfg = sshd.config();
    cfg.auth = vec![AuthMethod::Agent(AgentLocation::Path(agent.sock.clone()))];
    let s = Session::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert!(s.exec("true").await.expect("exec").status.success());
}

#[tokio::test]
async fn failed_auth_should_list_every_method_and_key_tried() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.auth = vec![
        AuthMethod::KeyFile(keys().stranger.clone()),
        AuthMethod::KeyFile(sshd.dir.path().join("missing_key")),
    ];
    // An empty agent too, except under Wine (OpenSSH's agent is a Unix socket).
    #[cfg(not(windows))]
    let empty_agent = Agent::start();
    #[cfg(not(windows))]
    cfg.auth.push(AuthMethod::Agent(AgentLocation::Path(
        empty_agent.sock.clone(),
    )));
    let err = Session::connect(cfg).await.expect_err("no key accepted");
    let Error::AuthFailed {
        tried, remaining, ..
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(tried.len(), if cfg!(windows) { 2 } else { 3 }, "{tried:?}");
    assert!(tried[0].method.contains("id_stranger") && tried[0].outcome.contains("rejected"));
    assert!(tried[1].method.contains("missing_key"));
    #[cfg(not(windows))]
    assert!(tried[2].outcome.contains("holds no keys"));
    assert!(remaining.iter().any(|m| m == "publickey"));
    assert!(err.hint().is_some());
}

#[tokio::test]
async fn wrong_user_should_fail_with_the_user_named() {
    let sshd = Sshd::start();
    let mut cfg = sshd.config();
    cfg.user = "nosuchuser".into();
    let err = Session::connect(cfg).await.expect_err("wrong user");
    assert!(matches!(err, Error::AuthFailed { .. }));
    assert!(err.to_string().contains("nosuchuser@127.0.0.1"), "{err}");
}
