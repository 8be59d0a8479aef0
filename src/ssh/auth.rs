//! Public-key authentication from key files, in-memory keys and ssh-agent.
//!
//! Methods are tried in the order given; every attempt is recorded so that a
//! failure can tell the user exactly which keys were offered and why none got
//! in. RSA keys sign with `rsa-sha2-512`/`rsa-sha2-256` as the server
//! advertises (OpenSSH refuses SHA-1 `ssh-rsa` since 8.8).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{self, AuthResult};
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::agent::{self, AgentLocation};
use super::error::{AuthAttempt, Error, Result};
use super::handler::ClientHandler;
use super::key_file;
use super::known_hosts::fingerprint;

/// A way to prove who we are.
#[derive(Clone)]
pub enum AuthMethod {
    /// A private key file (OpenSSH or PEM). Encrypted keys are opened with the
    /// passphrase returned by [`Config::passphrase`](super::Config::passphrase).
    KeyFile(PathBuf),
    /// A private key already in memory.
    Key(Arc<PrivateKey>),
    /// Every key held by an ssh-agent.
    Agent(AgentLocation),
}

impl std::fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            AuthMethod::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            AuthMethod::Key(k) => f
                .debug_tuple("Key")
                .field(&fingerprint(k.public_key()))
                .finish(),
            AuthMethod::Agent(l) => f.debug_tuple("Agent").field(l).finish(),
        }
    }
}

/// Asks for the passphrase of an encrypted key file; `None` gives up on that key.
/// Called again (up to three times) after a wrong passphrase.
pub type PassphraseFn = Arc<dyn Fn(&Path) -> Option<String> + Send + Sync>;

const PASSPHRASE_TRIES: usize = 3;

/// Load a private key file, asking for its passphrase when it is encrypted.
///
/// The file must be safe to use first, as OpenSSH requires: a regular file
/// and, on Unix, not accessible to group or others (`chmod 600`).
///
/// # Errors
/// [`Error::KeyLoad`] when the file is not a regular file, its permissions are
/// too open, it cannot be read or parsed, or the passphrase is refused or not
/// given.
pub fn load_private_key(path: &Path, passphrase: Option<&PassphraseFn>) -> Result<PrivateKey> {
    let err = |reason: String| Error::KeyLoad {
        path: path.to_path_buf(),
        reason,
    };
    key_file::check(path).map_err(err)?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => return Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let Some(ask) = passphrase else {
        return Err(err(
            "the key is encrypted and no passphrase callback was given".into(),
        ));
    };
    for _ in 0..PASSPHRASE_TRIES {
        let Some(pass) = ask(path) else {
            return Err(err(
                "the key is encrypted and no passphrase was given".into()
            ));
        };
        let pass = zeroize::Zeroizing::new(pass);
        match russh::keys::decode_secret_key(&text, Some(&pass)) {
            Ok(k) => return Ok(k),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "passphrase refused"),
        }
    }
    Err(err(format!("wrong passphrase ({PASSPHRASE_TRIES} tries)")))
}

/// Authenticate `handle` as `user` with each method in turn.
pub(crate) async fn authenticate(
    handle: &mut client::Handle<ClientHandler>,
    target: (&str, u16),
    user: &str,
    methods: &[AuthMethod],
    passphrase: Option<&PassphraseFn>,
) -> Result<()> {
    let mut tried = Vec::new();
    let mut remaining = Vec::new();
    let mut rsa_hash: Option<Option<HashAlg>> = None;

    for method in methods {
        let (key, label) = match method {
            AuthMethod::KeyFile(path) => match load_private_key(path, passphrase) {
                Ok(k) => {
                    let label = format!("key {} ({})", path.display(), describe(k.public_key()));
                    (Arc::new(k), label)
                }
                Err(Error::KeyLoad { reason, .. }) => {
                    tried.push(AuthAttempt {
                        method: format!("key {}", path.display()),
                        outcome: reason,
                    });
                    continue;
                }
                Err(e) => return Err(e),
            },
            AuthMethod::Key(key) => (key.clone(), format!("key ({})", describe(key.public_key()))),
            AuthMethod::Agent(location) => {
                if try_agent(
                    handle,
                    user,
                    location,
                    &mut rsa_hash,
                    &mut tried,
                    &mut remaining,
                )
                .await?
                {
                    return Ok(());
                }
                continue;
            }
        };
        if try_key(
            handle,
            user,
            key,
            &mut rsa_hash,
            label,
            &mut tried,
            &mut remaining,
        )
        .await?
        {
            return Ok(());
        }
    }
    Err(Error::AuthFailed {
        user: user.to_string(),
        host: target.0.to_string(),
        port: target.1,
        tried,
        remaining,
    })
}

fn describe(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), fingerprint(key))
}

/// The signature hashes to try for `key`, best first. For RSA that is the
/// server's preferred SHA-2 variant, then the other one: servers advertise
/// both in `server-sig-algs` even when `PubkeyAcceptedAlgorithms` allows only
/// one, and OpenSSH's own client gives up after the first.
async fn hashes_for(
    handle: &client::Handle<ClientHandler>,
    key: &PublicKey,
    cache: &mut Option<Option<HashAlg>>,
) -> Result<Vec<Option<HashAlg>>> {
    if !key.algorithm().is_rsa() {
        return Ok(vec![None]);
    }
    let best = match *cache {
        Some(h) => h,
        None => {
            let h = match handle.best_supported_rsa_hash().await? {
                Some(best) => best,
                // No server-sig-algs extension: an old server; SHA-512 is what any
                // server from the last decade accepts and SHA-1 is refused by new ones.
                None => Some(HashAlg::Sha512),
            };
            *cache = Some(h);
            h
        }
    };
    Ok(match best {
        Some(HashAlg::Sha512) => vec![Some(HashAlg::Sha512), Some(HashAlg::Sha256)],
        Some(HashAlg::Sha256) => vec![Some(HashAlg::Sha256), Some(HashAlg::Sha512)],
        other => vec![other],
    })
}

fn hash_label(hash: Option<HashAlg>) -> &'static str {
    match hash {
        Some(HashAlg::Sha256) => " as rsa-sha2-256",
        Some(HashAlg::Sha512) => " as rsa-sha2-512",
        _ => "",
    }
}

fn outcome(result: &AuthResult, remaining: &mut Vec<String>) -> (bool, String) {
    match result {
        AuthResult::Success => (true, "accepted".into()),
        AuthResult::Failure {
            remaining_methods,
            partial_success,
        } => {
            *remaining = remaining_methods.iter().map(String::from).collect();
            if *partial_success {
                (
                    false,
                    "accepted, but the server wants another method too".into(),
                )
            } else {
                (false, "rejected by server".into())
            }
        }
    }
}

async fn try_key(
    handle: &mut client::Handle<ClientHandler>,
    user: &str,
    key: Arc<PrivateKey>,
    rsa_hash: &mut Option<Option<HashAlg>>,
    label: String,
    tried: &mut Vec<AuthAttempt>,
    remaining: &mut Vec<String>,
) -> Result<bool> {
    let hashes = hashes_for(handle, key.public_key(), rsa_hash).await?;
    let several = hashes.len() > 1;
    for hash in hashes {
        let res = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await?;
        let (ok, text) = outcome(&res, remaining);
        tried.push(AuthAttempt {
            method: format!("{label}{}", if several { hash_label(hash) } else { "" }),
            outcome: text,
        });
        if ok {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn try_agent(
    handle: &mut client::Handle<ClientHandler>,
    user: &str,
    location: &AgentLocation,
    rsa_hash: &mut Option<Option<HashAlg>>,
    tried: &mut Vec<AuthAttempt>,
    remaining: &mut Vec<String>,
) -> Result<bool> {
    let (mut client, desc) = match agent::connect(location).await {
        Ok(c) => c,
        Err(e) => {
            tried.push(AuthAttempt {
                method: format!("agent ({location})"),
                outcome: e.to_string(),
            });
            return Ok(false);
        }
    };
    if let Some(binding) = handle.agent_session_binding().cloned()
        && let Err(e) = client.bind_session(&binding, false).await
    {
        // Agents before OpenSSH 8.9 do not know session-bind; not fatal.
        tracing::debug!(error = %e, "agent refused session-bind");
    }
    let identities = match client.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            tried.push(AuthAttempt {
                method: format!("agent {desc}"),
                outcome: format!("cannot list keys: {e}"),
            });
            return Ok(false);
        }
    };
    if identities.is_empty() {
        tried.push(AuthAttempt {
            method: format!("agent {desc}"),
            outcome: "holds no keys (add one with ssh-add)".into(),
        });
        return Ok(false);
    }
    for id in identities {
        let (key, comment) = match id {
            AgentIdentity::PublicKey { key, comment } => (key, comment),
            // Certificates are not used for spuff VMs.
            AgentIdentity::Certificate { .. } => continue,
        };
        let hashes = hashes_for(handle, &key, rsa_hash).await?;
        let several = hashes.len() > 1;
        let label = format!("agent key ({}) {comment}", describe(&key));
        let label = label.trim_end();
        for hash in hashes {
            let method = format!("{label}{}", if several { hash_label(hash) } else { "" });
            match handle
                .authenticate_publickey_with(user, key.clone(), hash, &mut client)
                .await
            {
                Ok(res) => {
                    let (ok, text) = outcome(&res, remaining);
                    tried.push(AuthAttempt {
                        method,
                        outcome: text,
                    });
                    if ok {
                        return Ok(true);
                    }
                }
                Err(e) => {
                    tried.push(AuthAttempt {
                        method,
                        outcome: format!("agent could not sign: {e}"),
                    });
                    break;
                }
            }
        }
    }
    Ok(false)
}
