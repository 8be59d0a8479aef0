//! A token or password that must never reach a log, an error or a terminal
//! by accident.

use std::fmt;

/// A secret value (an API token, an agent token). Its `Debug` and `Display`
/// never show the value, so it cannot leak through logs, errors or `{:?}` of
/// a config struct; the one place that needs it calls [`Secret::expose`].
///
/// # Examples
/// ```
/// use spuff::Secret;
/// let token = Secret::new("dop_v1_abcdef");
/// assert_eq!(format!("{token:?} {token}"), "Secret(***) ***");
/// assert_eq!(token.expose(), "dop_v1_abcdef");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (an
    /// `Authorization` header, a config file written 0600).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value (or only whitespace) was given.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_should_never_show_in_debug_or_display() {
        let s = Secret::new("dop_v1_abcdef");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "dop_v1_abcdef");
        assert!(Secret::new("  ").is_empty());
    }
}
