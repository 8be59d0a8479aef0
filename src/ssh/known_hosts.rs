//! Host key verification: the policy a caller chooses and the known_hosts
//! files it reads and writes.
//!
//! spuff never accepts a host key it cannot vouch for. A key is trusted when it
//! was pinned by the caller (spuff generates each VM's host key itself and pins
//! it) or found in a known_hosts file; under [`HostKeyCheck::AcceptNew`] a host
//! with no recorded key is trusted on first use and recorded. A host whose key
//! differs from what we know is refused with both fingerprints, always.
//!
//! The parser is our own rather than `russh::keys::known_hosts` because that one
//! fails the whole lookup on one malformed line and does not understand
//! markers (`@revoked`, `@cert-authority`) or wildcard patterns; a user's
//! `~/.ssh/known_hosts` has all of these.

use std::io::Write;
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hmac::{KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};

use super::error::{Error, ExpectedKey, KeySource, Result};

/// How to treat a host whose key we have never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyCheck {
    /// Refuse it: the key must be pinned or in a known_hosts file.
    #[default]
    Strict,
    /// Trust it on first use and record it in [`HostKeyPolicy::record_in`].
    /// A *changed* key is still refused.
    AcceptNew,
}

/// Which host keys a session accepts.
///
/// # Examples
///
/// ```
/// use spuff::ssh::{HostKeyCheck, HostKeyPolicy};
///
/// // Trust on first use, remembered in spuff's own file:
/// let policy = HostKeyPolicy::accept_new("/home/me/.config/spuff/known_hosts");
/// assert_eq!(policy.check, HostKeyCheck::AcceptNew);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HostKeyPolicy {
    /// Unknown hosts: refuse or trust on first use.
    pub check: HostKeyCheck,
    /// Keys pinned by the caller. When not empty they are the only keys
    /// accepted and known_hosts files are not consulted.
    pub pinned: Vec<PublicKey>,
    /// known_hosts files to read, in order.
    pub known_hosts: Vec<PathBuf>,
    /// Where [`HostKeyCheck::AcceptNew`] records new keys (created 0600 if missing).
    /// It is also read, as if listed in `known_hosts`.
    pub record_in: Option<PathBuf>,
}

impl HostKeyPolicy {
    /// Accept only these keys.
    pub fn pinned(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        HostKeyPolicy {
            pinned: keys.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Require the key to be in one of these known_hosts files.
    pub fn strict(known_hosts: impl IntoIterator<Item = PathBuf>) -> Self {
        HostKeyPolicy {
            known_hosts: known_hosts.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Trust on first use, recording new keys in `record_in`.
    pub fn accept_new(record_in: impl Into<PathBuf>) -> Self {
        HostKeyPolicy {
            check: HostKeyCheck::AcceptNew,
            record_in: Some(record_in.into()),
            ..Default::default()
        }
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.record_in.iter().chain(self.known_hosts.iter())
    }

    /// The keys we know for `host:port`, pinned or from the files, with their source.
    pub fn known_keys(&self, host: &str, port: u16) -> Result<Vec<(PublicKey, KeySource)>> {
        if !self.pinned.is_empty() {
            return Ok(self
                .pinned
                .iter()
                .map(|k| (k.clone(), KeySource::Pinned))
                .collect());
        }
        let mut out = Vec::new();
        for path in self.files() {
            for entry in read_entries(path, host, port)? {
                out.push((
                    entry.key,
                    KeySource::KnownHosts {
                        path: path.clone(),
                        line: entry.line,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Decide about the key `presented` by `host:port`. Records it when the
    /// policy trusts new hosts and none was known. Errors say why it is refused.
    pub fn verify(&self, host: &str, port: u16, presented: &PublicKey) -> Result<()> {
        if self.pinned.is_empty()
            && self.check == HostKeyCheck::Strict
            && self.files().next().is_none()
        {
            return Err(Error::Config(
                "strict host key checking needs a pinned key or a known_hosts file".into(),
            ));
        }
        for path in self.files() {
            if is_revoked(path, presented)? {
                return Err(Error::HostKeyChanged {
                    host: host.into(),
                    port,
                    algorithm: presented.algorithm().to_string(),
                    presented: fingerprint(presented),
                    expected: vec![],
                });
            }
        }
        let known = self.known_keys(host, port)?;
        if known.iter().any(|(k, _)| same_key(k, presented)) {
            return Ok(());
        }
        if !known.is_empty() {
            return Err(Error::HostKeyChanged {
                host: host.into(),
                port,
                algorithm: presented.algorithm().to_string(),
                presented: fingerprint(presented),
                expected: known
                    .into_iter()
                    .map(|(k, source)| ExpectedKey {
                        fingerprint: fingerprint(&k),
                        algorithm: k.algorithm().to_string(),
                        source,
                    })
                    .collect(),
            });
        }
        match (self.check, &self.record_in) {
            (HostKeyCheck::AcceptNew, Some(path)) => {
                append_entry(path, host, port, presented)?;
                tracing::info!(
                    host,
                    port,
                    fingerprint = %fingerprint(presented),
                    file = %path.display(),
                    "recorded new host key"
                );
                Ok(())
            }
            (HostKeyCheck::AcceptNew, None) => Err(Error::Config(
                "accept-new host key checking needs a file to record keys in".into(),
            )),
            (HostKeyCheck::Strict, _) => Err(Error::HostKeyUnknown {
                host: host.into(),
                port,
                algorithm: presented.algorithm().to_string(),
                fingerprint: fingerprint(presented),
            }),
        }
    }
}

/// OpenSSH-style `SHA256:…` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    // Comments differ between sources; only the key material counts.
    a.key_data() == b.key_data()
}

/// One usable line of a known_hosts file.
pub(crate) struct Entry {
    line: usize,
    key: PublicKey,
}

/// The name OpenSSH writes for a host: `host` on port 22, `[host]:port` otherwise.
pub(crate) fn host_pattern_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The file's text; bytes that are not UTF-8 (a comment in Latin-1) are
/// replaced rather than making the whole file unreadable, as OpenSSH reads
/// it byte-wise. Host names and keys are ASCII, so no entry changes.
fn read_file(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::KnownHosts {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_entries(path: &Path, host: &str, port: u16) -> Result<Vec<Entry>> {
    let Some(text) = read_file(path)? else {
        return Ok(vec![]);
    };
    Ok(parse_entries(&text, host, port, path))
}

/// The entries of a known_hosts text that name `host:port`; `path` only
/// names the file in warnings.
pub(crate) fn parse_entries(text: &str, host: &str, port: u16, path: &Path) -> Vec<Entry> {
    let name = host_pattern_name(host, port);
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let mut fields = raw.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        if first.starts_with('@') {
            // @cert-authority lines describe CAs, not host keys; @revoked is
            // handled by is_revoked. Neither makes a host known.
            continue;
        }
        let (Some(_alg), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, &name) {
            continue;
        }
        match russh::keys::parse_public_key_base64(b64) {
            Ok(key) => out.push(Entry { line: idx + 1, key }),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = idx + 1, error = %e, "skipping unreadable known_hosts line");
            }
        }
    }
    out
}

fn is_revoked(path: &Path, key: &PublicKey) -> Result<bool> {
    let Some(text) = read_file(path)? else {
        return Ok(false);
    };
    Ok(revoked_in(&text, key))
}

/// Whether a known_hosts text marks `key` `@revoked`.
pub(crate) fn revoked_in(text: &str, key: &PublicKey) -> bool {
    for raw in text.lines() {
        let mut fields = raw.split_whitespace();
        if fields.next() != Some("@revoked") {
            continue;
        }
        let (_hosts, _alg, Some(b64)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(revoked) = russh::keys::parse_public_key_base64(b64)
            && same_key(&revoked, key)
        {
            return true;
        }
    }
    false
}

/// OpenSSH host list matching: comma-separated patterns with `*`/`?` wildcards,
/// `!` negation, and hashed `|1|salt|hash` entries.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        let hit = if let Some(hashed) = pat.strip_prefix("|1|") {
            hashed_match(hashed, name)
        } else {
            wildcard_match(pat.as_bytes(), name.as_bytes())
        };
        if hit {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn hashed_match(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*`/`?` matching, ASCII case-insensitive. Iterative, remembering only
/// the last `*`: at most `pat.len() * s.len()` steps. (A recursive matcher
/// takes exponential time on a line like `*a*a*a…b`, which fuzzing turns
/// up: one such line in known_hosts would hang every connection.)
pub(crate) fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&s[i]) => {
                p += 1;
                i += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte and try again.
                Some((sp, si)) => {
                    star = Some((sp, si + 1));
                    p = sp + 1;
                    i = si + 1;
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == b'*')
}

/// Append `host:port key` to a known_hosts file, creating it (and its folder)
/// readable only by the user.
pub(crate) fn append_entry(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<()> {
    let err = |source| Error::KnownHosts {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let line = format!(
        "{} {}\n",
        host_pattern_name(host, port),
        key.to_openssh()
            .map_err(|e| err(std::io::Error::other(e)))?
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(err)?;
    // A file whose last line lacks its newline would glue our entry onto it.
    let needs_newline = std::fs::read(path)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    if needs_newline {
        file.write_all(b"\n").map_err(err)?;
    }
    file.write_all(line.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Fuzz entry (`fuzz/`, `spuff::fuzzing`): `data` as a known_hosts file
/// read for a few host names, as [`HostKeyPolicy::verify`] reads one.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz");
    for (host, port) in [("example.com", 22), ("127.0.0.1", 2222), ("::1", 22)] {
        for e in parse_entries(&text, host, port, path) {
            // A line number is one of the file's lines.
            assert!(e.line >= 1 && e.line <= text.lines().count());
            let _ = revoked_in(&text, &e.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_openssh() {
        let m = |p: &str, s: &str| wildcard_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("*.example.com", "a.b.EXAMPLE.com"));
        assert!(!m("*.example.com", "example.com"));
        assert!(m("h?st", "host"));
        assert!(!m("h?st", "hst"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[127.0.0.1]:22*", "[127.0.0.1]:2222"));
        assert!(!m("", "x"));
        assert!(m("**", "x"));
    }

    /// A known_hosts line built to make a backtracking matcher take
    /// exponential time ends at once (this test never finished before).
    #[test]
    fn a_pathological_pattern_matches_in_bounded_steps() {
        let pat = "*a".repeat(40) + "b";
        let name = "a".repeat(200);
        assert!(!wildcard_match(pat.as_bytes(), name.as_bytes()));
        assert!(wildcard_match(pat.as_bytes(), (name + "b").as_bytes()));
    }

    const ED1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key")
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("known_hosts");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn known_key_is_accepted_and_changed_key_refused_with_both_fingerprints() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(
            d.path(),
            &format!("# comment\n\nbad line\n[10.0.0.1]:2222 ssh-ed25519 {ED1}\n"),
        );
        let pol = HostKeyPolicy::strict([p.clone()]);
        pol.verify("10.0.0.1", 2222, &key(ED1)).expect("known key");
        let err = pol
            .verify("10.0.0.1", 2222, &key(ED2))
            .expect_err("changed");
        match &err {
            Error::HostKeyChanged {
                presented,
                expected,
                ..
            } => {
                assert_eq!(presented, &fingerprint(&key(ED2)));
                assert_eq!(expected[0].fingerprint, fingerprint(&key(ED1)));
                assert_eq!(
                    expected[0].source,
                    KeySource::KnownHosts { path: p, line: 4 }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Port 22 is a different entry.
        assert!(matches!(
            pol.verify("10.0.0.1", 22, &key(ED1)),
            Err(Error::HostKeyUnknown { .. })
        ));
    }

    #[test]
    fn accept_new_records_then_refuses_a_change() {
        let d = tempfile::tempdir().expect("tempdir");
        let rec = d.path().join("sub/known_hosts");
        let pol = HostKeyPolicy::accept_new(&rec);
        pol.verify("vm", 22, &key(ED1)).expect("first use");
        pol.verify("vm", 22, &key(ED1)).expect("same again");
        assert!(matches!(
            pol.verify("vm", 22, &key(ED2)),
            Err(Error::HostKeyChanged { .. })
        ));
        let text = std::fs::read_to_string(&rec).expect("read");
        assert_eq!(text.lines().count(), 1, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&rec).expect("meta").permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "known_hosts must not be group/world accessible"
            );
        }
    }

    #[test]
    fn pinned_keys_override_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), &format!("vm ssh-ed25519 {ED1}\n"));
        let mut pol = HostKeyPolicy::pinned([key(ED2)]);
        pol.known_hosts.push(p);
        pol.verify("vm", 22, &key(ED2)).expect("pinned");
        let err = pol.verify("vm", 22, &key(ED1)).expect_err("not pinned");
        assert!(
            matches!(&err, Error::HostKeyChanged { expected, .. } if expected[0].source == KeySource::Pinned)
        );
    }

    #[test]
    fn strict_without_any_source_is_a_config_error() {
        assert!(matches!(
            HostKeyPolicy::default().verify("h", 22, &key(ED1)),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn patterns_hashes_negation_and_revocation() {
        assert!(hosts_match("a,b*.example.com", "box1.example.com"));
        assert!(hosts_match("10.0.0.?", "10.0.0.7"));
        assert!(!hosts_match(
            "*.example.com,!bad.example.com",
            "bad.example.com"
        ));
        // `ssh-keygen -H` of "localhost" with a fixed salt.
        let salt = [7u8; 20];
        let mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt)
            .expect("hmac")
            .chain_update(b"localhost")
            .finalize()
            .into_bytes();
        let hashed = format!("|1|{}|{}", BASE64.encode(&salt), BASE64.encode(&mac));
        assert!(hosts_match(&hashed, "localhost"));
        assert!(!hosts_match(&hashed, "otherhost"));

        let d = tempfile::tempdir().expect("tempdir");
        let p = write(
            d.path(),
            &format!("@revoked * ssh-ed25519 {ED1}\nvm ssh-ed25519 {ED1}\n"),
        );
        assert!(matches!(
            HostKeyPolicy::strict([p]).verify("vm", 22, &key(ED1)),
            Err(Error::HostKeyChanged { .. })
        ));
    }

    #[test]
    fn append_adds_missing_newline() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), "other ssh-ed25519 AAAA");
        append_entry(&p, "vm", 2200, &key(ED1)).expect("append");
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.contains("AAAA\n[vm]:2200 ssh-ed25519 "), "{text}");
    }
}
