//! The one set of input checks shared by `spuff config set` and the
//! cloud-init renderer.
//!
//! Each value that ends up on a VM (a user name in `useradd`, a package in
//! `apt-get`, a dotfiles URL in `git clone`) is checked here, once; the
//! config refuses at `set` time exactly what the renderer would refuse at
//! `up` time, so a value `config set` accepted can never fail `up` later.
//! Each check returns the reason as text; callers wrap it in their own
//! error with the field name.

/// Why a value was refused.
pub type Reason = &'static str;

/// A login user: `^[a-z_][a-z0-9_-]{0,31}$` (the portable subset `useradd`
/// accepts), and not `root` (root logins are off on spuff VMs).
///
/// # Errors
/// The reason, for the caller's message.
pub fn username(name: &str) -> Result<(), Reason> {
    let mut bytes = name.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'));
    if !first_ok
        || name.len() > 32
        || !bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    {
        return Err("must match ^[a-z_][a-z0-9_-]{0,31}$");
    }
    if name == "root" {
        return Err("root logins are disabled on spuff VMs; use an ordinary user with sudo");
    }
    Ok(())
}

/// A Debian package name: lowercase letters, digits, `+`, `-`, `.`; at
/// least two characters, starting with a letter or digit.
///
/// # Errors
/// The reason, for the caller's message.
pub fn package(name: &str) -> Result<(), Reason> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'+' | b'-' | b'.'));
    ok.then_some(())
        .ok_or("not a Debian package name ([a-z0-9][a-z0-9+.-]+)")
}

/// Characters RFC 3986 allows in a URL (unreserved, reserved and `%`).
pub(crate) fn is_url_text(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b))
}

/// A git repository to clone: `https://host/path` or `git@host:path`,
/// without spaces, control characters or a path starting with `-` (which
/// `git` would read as an option).
///
/// # Errors
/// The reason, for the caller's message.
pub fn repo_url(url: &str) -> Result<(), Reason> {
    let ok = if let Some(rest) = url.strip_prefix("https://") {
        is_url_text(rest) && !rest.starts_with('/')
    } else if let Some(rest) = url.strip_prefix("git@") {
        match rest.split_once(':') {
            Some((host, path)) => {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                    && is_url_text(path)
                    && !path.starts_with('-')
            }
            None => false,
        }
    } else {
        false
    };
    ok.then_some(())
        .ok_or("must be an https:// URL or git@host:path, without spaces or control characters")
}

/// A git branch or tag: the parts of `git check-ref-format` that matter
/// here, plus no leading `-`.
///
/// # Errors
/// The reason, for the caller's message.
pub fn branch(branch: &str) -> Result<(), Reason> {
    let ok = !branch.is_empty()
        && branch.len() <= 255
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("@{")
        && !branch.contains("//")
        && branch
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"~^:?*[\\".contains(c));
    ok.then_some(()).ok_or("not a valid git branch or tag name")
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and `-`.
///
/// # Errors
/// The reason, for the caller's message.
pub fn hostname(name: &str) -> Result<(), Reason> {
    let ok = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(())
        .ok_or("must be letters, digits and `-` in dot-separated labels of at most 63")
}

/// A tz database name such as `Europe/Berlin` or `UTC`.
///
/// # Errors
/// The reason, for the caller's message.
pub fn timezone(tz: &str) -> Result<(), Reason> {
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && !tz.starts_with('/')
        && !tz.contains("..")
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    ok.then_some(())
        .ok_or("not a time zone name such as Europe/Berlin")
}

/// A provider slug (region, size, image): letters, digits, `-`, `_`, `.`,
/// at most 64.
///
/// # Errors
/// The reason, for the caller's message.
pub fn slug(value: &str) -> Result<(), Reason> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(())
        .ok_or("expected a slug of letters, digits, '-', '_' and '.'")
}

/// An address range: an IPv4 or IPv6 address and a prefix length that
/// fits it (`203.0.113.7/32`, `2001:db8::/64`).
///
/// # Errors
/// Why it is not one.
pub fn cidr(value: &str) -> Result<(), Reason> {
    let ok = value.split_once('/').is_some_and(|(ip, bits)| {
        let max = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => return false,
        };
        bits.parse::<u8>().is_ok_and(|b| b <= max)
    });
    ok.then_some(())
        .ok_or("not an address range such as 203.0.113.7/32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_url_should_refuse_what_git_would_misread() {
        assert!(repo_url("https://github.com/me/dots").is_ok());
        assert!(repo_url("git@github.com:me/dots.git").is_ok());
        for bad in [
            "http://insecure",
            "https://",
            "https:///path",
            "https://a b",
            "git@host:-oProxyCommand=x",
            "git@:path",
            "https://x\u{7}",
            "file:///etc",
        ] {
            assert!(repo_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn username_should_refuse_root_and_odd_names() {
        assert!(username("dev").is_ok());
        assert!(username("_x-1").is_ok());
        for bad in ["root", "", "Dev", "1a", "a b", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_branch_hostname_timezone_slug() {
        assert!(package("build-essential").is_ok() && package("g++").is_ok());
        assert!(package("x").is_err() && package("-x").is_err() && package("Vim").is_err());
        assert!(branch("main").is_ok() && branch("-x").is_err() && branch("a..b").is_err());
        assert!(hostname("spuff-1").is_ok() && hostname("-a").is_err());
        assert!(timezone("Europe/Berlin").is_ok() && timezone("../etc").is_err());
        assert!(slug("s-2vcpu-4gb").is_ok() && slug("a/b").is_err());
    }
}
