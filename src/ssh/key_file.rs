//! Refusing private key files that are not safe to use, as OpenSSH does.
//!
//! A private key others can read is as good as published, and OpenSSH
//! refuses to load one ("UNPROTECTED PRIVATE KEY FILE!") so that the mistake
//! is fixed rather than carried on. spuff does the same, so a key that works
//! with spuff also works with `ssh`, and the other way round.
//!
//! On Unix that is the mode bits: any access for group or others
//! (`mode & 0o077`) is refused, whoever owns the file. Windows has no mode
//! bits; OpenSSH for Windows checks the file's ACL instead. spuff does not
//! (yet): on Windows it only requires a regular file, and reading it then
//! fails with the system's own message when access is denied. The mode check
//! itself is a pure function, tested on every platform.

use std::path::Path;

/// Check that `path` is a regular file that only its owner can access.
/// The error is the reason, worded for the user.
pub(crate) fn check(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Some(reason) = mode_problem(meta.mode(), path) {
            return Err(reason);
        }
    }
    Ok(())
}

/// Why a Unix mode is too open for a private key, if it is.
#[cfg(any(unix, test))]
fn mode_problem(mode: u32, path: &Path) -> Option<String> {
    let perms = mode & 0o7777;
    (perms & 0o077 != 0).then(|| {
        format!(
            "permissions {perms:04o} are too open; run chmod 600 {}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_problem_should_refuse_group_or_other_access() {
        let p = Path::new("/home/me/.ssh/id_ed25519");
        for ok in [0o100600, 0o100400, 0o100700, 0o600] {
            assert_eq!(mode_problem(ok, p), None, "{ok:o}");
        }
        for bad in [0o100644, 0o100640, 0o100604, 0o100660, 0o100777, 0o100601] {
            assert!(mode_problem(bad, p).is_some(), "{bad:o}");
        }
        assert_eq!(
            mode_problem(0o100644, p).as_deref(),
            Some("permissions 0644 are too open; run chmod 600 /home/me/.ssh/id_ed25519")
        );
    }

    #[test]
    fn check_should_refuse_directories_and_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(check(dir.path()), Err("not a regular file".into()));
        assert!(check(&dir.path().join("missing")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn check_should_follow_the_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not really a key").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(check(&key), Ok(()));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let reason = check(&key).expect_err("0644 is too open");
        assert_eq!(
            reason,
            format!(
                "permissions 0644 are too open; run chmod 600 {}",
                key.display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_private_key_should_refuse_an_open_key_before_reading_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_rsa");
        std::fs::write(&key, "garbage").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        match super::super::load_private_key(&key, None) {
            Err(super::super::Error::KeyLoad { path, reason }) => {
                assert_eq!(path, key);
                assert!(
                    reason.starts_with("permissions 0640 are too open"),
                    "{reason}"
                );
            }
            other => panic!("expected KeyLoad, got {other:?}"),
        }
    }

    #[cfg(windows)]
    #[test]
    fn check_should_accept_a_regular_file_on_windows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not really a key").expect("write");
        assert_eq!(check(&key), Ok(()));
    }
}
