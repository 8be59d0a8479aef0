//! The VM's SSH host key, generated on the client.
//!
//! spuff never trusts a VM's host key on first use: it makes the key pair
//! itself, sends the private half to the VM in the user-data (cloud-init's
//! `ssh_keys`, see [`cloudinit`](crate::cloudinit)) and pins the public half
//! for every connection ([`HostKeyPolicy::pinned`](super::HostKeyPolicy::pinned)). Someone answering in the
//! VM's place on its first boot cannot present that key.
//!
//! The key pair is plain SSH key material, so it lives with the rest of the
//! SSH key handling.

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::error::{Error, Result};

/// The comment on the generated keys, so that they are recognisable in
/// `/etc/ssh` and in spuff's state.
const COMMENT: &str = "spuff-vm-host-key";

/// An ed25519 host key pair for one VM.
///
/// The private key is a secret: it is kept in memory that is wiped on drop,
/// and `Debug` shows only the public fingerprint.
///
/// # Examples
///
/// Make a VM's host key, pin it for the connection, and keep the private
/// half to rebuild the same VM later:
///
/// ```
/// use spuff::ssh::{Config, HostKeyPair, HostKeyPolicy};
///
/// let key = HostKeyPair::generate()?;
/// let config = Config {
///     host_keys: HostKeyPolicy::pinned([key.public_key().clone()]),
///     ..Config::new("203.0.113.7", "dev")
/// };
/// // What to keep (as a secret) to rebuild the same VM later:
/// let again = HostKeyPair::from_openssh(key.private_key_openssh())?;
/// assert_eq!(again.fingerprint(), key.fingerprint());
/// # Ok::<(), spuff::ssh::Error>(())
/// ```
#[derive(Clone)]
pub struct HostKeyPair {
    private_openssh: Zeroizing<String>,
    public: PublicKey,
}

impl std::fmt::Debug for HostKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKeyPair")
            .field("public", &self.fingerprint())
            .field("private", &"<redacted>")
            .finish()
    }
}

impl HostKeyPair {
    /// A new ed25519 key pair from the operating system's random source.
    ///
    /// # Errors
    /// [`Error::HostKeyPair`] when the OS has no random source or the key cannot
    /// be encoded (neither happens on a working system).
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())
            .map_err(|e| Error::HostKeyPair(format!("no random source: {e}")))?;
        let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        key.set_comment(COMMENT);
        Self::from_private_key(&key)
    }

    /// A key pair from an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE
    /// KEY-----`), such as one kept in spuff's state for a VM that is rebuilt.
    ///
    /// # Errors
    /// [`Error::HostKeyPair`] when the text is not an unencrypted ed25519 key.
    pub fn from_openssh(private_openssh: &str) -> Result<Self> {
        let key = PrivateKey::from_openssh(private_openssh)
            .map_err(|e| Error::HostKeyPair(format!("not an OpenSSH private key: {e}")))?;
        if key.is_encrypted() {
            return Err(Error::HostKeyPair("the private key is encrypted".into()));
        }
        Self::from_private_key(&key)
    }

    fn from_private_key(key: &PrivateKey) -> Result<Self> {
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(Error::HostKeyPair(format!(
                "expected an ed25519 key, got {}",
                key.algorithm()
            )));
        }
        let private_openssh = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| Error::HostKeyPair(format!("cannot encode the private key: {e}")))?;
        Ok(HostKeyPair {
            private_openssh,
            public: key.public_key().clone(),
        })
    }

    /// The private key in OpenSSH format (what goes into
    /// `/etc/ssh/ssh_host_ed25519_key`), ending with a newline. A secret.
    pub fn private_key_openssh(&self) -> &Zeroizing<String> {
        &self.private_openssh
    }

    /// The public key, to pin with
    /// [`HostKeyPolicy::pinned`](crate::ssh::HostKeyPolicy::pinned).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key as one OpenSSH line (`ssh-ed25519 AAAA… spuff-vm-host-key`).
    pub fn public_key_openssh(&self) -> String {
        // Encoding a valid ed25519 public key cannot fail; the fallback keeps
        // this infallible without a panic path.
        self.public.to_openssh().unwrap_or_default()
    }

    /// The `SHA256:…` fingerprint, as `ssh-keygen -l` and spuff's host key
    /// errors show it.
    pub fn fingerprint(&self) -> String {
        crate::ssh::fingerprint(&self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_should_make_distinct_ed25519_keys_that_round_trip() {
        let a = HostKeyPair::generate().expect("host key");
        let b = HostKeyPair::generate().expect("host key");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(
            a.private_key_openssh()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(a.private_key_openssh().ends_with('\n'));
        assert!(a.public_key_openssh().starts_with("ssh-ed25519 "));
        let again = HostKeyPair::from_openssh(a.private_key_openssh()).expect("parse");
        assert_eq!(again.public_key().key_data(), a.public_key().key_data());
        let parsed = PublicKey::from_openssh(&a.public_key_openssh()).expect("parse");
        assert_eq!(parsed.key_data(), a.public_key().key_data());
    }

    #[test]
    fn debug_should_not_show_the_private_key() {
        let k = HostKeyPair::generate().expect("host key");
        let d = format!("{k:?}");
        assert!(!d.contains("PRIVATE KEY") && d.contains("SHA256:"), "{d}");
    }
}
