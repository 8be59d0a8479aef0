//! OpenSSH's escape sequences for interactive sessions: the way out of a
//! session whose VM stopped answering, where every key (Ctrl-C included)
//! goes to the dead remote side.
//!
//! As in `ssh(1)`, the escape character (`~` by default) counts only at the
//! start of a line (after Enter, or first in the session): `~.` leaves,
//! `~?` lists the escapes, `~~` sends one `~`; any other character after it
//! sends both. Everything else passes through untouched.

/// What [`Escapes::feed`] found besides the bytes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `~.`: leave the session.
    Disconnect,
    /// `~?`: show the help.
    Help,
}

/// The escape state of one session's input.
#[derive(Debug, Clone)]
pub(crate) struct Escapes {
    escape: u8,
    at_line_start: bool,
    pending: bool,
}

impl Escapes {
    /// Recognises `escape` at the start of a line.
    pub(crate) fn new(escape: u8) -> Self {
        Escapes {
            escape,
            at_line_start: true,
            pending: false,
        }
    }

    /// Filters `input` into `out` (the bytes for the remote side); returns
    /// the first action met, with the input after it dropped (a disconnect
    /// ends the session; help is shown before more is read).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<Action> {
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'.' => return Some(Action::Disconnect),
                    b'?' => return Some(Action::Help),
                    _ if b == self.escape => {
                        out.push(b);
                        self.at_line_start = false;
                    }
                    _ => {
                        out.extend_from_slice(&[self.escape, b]);
                        self.at_line_start = matches!(b, b'\r' | b'\n');
                    }
                }
            } else if self.at_line_start && b == self.escape {
                self.pending = true;
            } else {
                out.push(b);
                self.at_line_start = matches!(b, b'\r' | b'\n');
            }
        }
        None
    }

    /// The help `~?` shows, for a terminal in raw mode.
    pub(crate) fn help(&self) -> String {
        let e = char::from(self.escape);
        format!(
            "\r\nSupported escape sequences:\r\n \
             {e}.   - terminate the session (the VM keeps running)\r\n \
             {e}?   - this message\r\n \
             {e}{e}   - send the escape character by typing it twice\r\n\
             (Escapes are only recognized immediately after a newline.)\r\n"
        )
    }
}

/// Parses `-e`'s value as `ssh(1)` does: one character, `^X` for a control
/// character, or `none`. `None` turns escapes off.
///
/// # Errors
/// A message for anything else.
pub fn parse_escape_char(value: &str) -> Result<Option<u8>, String> {
    match value.as_bytes() {
        b"none" => Ok(None),
        [c] if c.is_ascii() && *c != b'\r' && *c != b'\n' => Ok(Some(*c)),
        [b'^', c] if c.is_ascii_alphabetic() || b"@[\\]^_".contains(c) => {
            Ok(Some(c.to_ascii_uppercase() & 0x1f))
        }
        _ => Err(format!(
            "{value:?} is not an escape character: give one character (`~`), `^X` for a control \
             character, or `none`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[&[u8]]) -> (Vec<u8>, Vec<Option<Action>>) {
        let mut e = Escapes::new(b'~');
        let mut out = Vec::new();
        let actions = input.iter().map(|i| e.feed(i, &mut out)).collect();
        (out, actions)
    }

    #[test]
    fn tilde_dot_should_disconnect_only_at_the_start_of_a_line() {
        assert_eq!(run(&[b"~."]).1, [Some(Action::Disconnect)]);
        assert_eq!(run(&[b"ls\r~."]).1, [Some(Action::Disconnect)]);
        // Split across reads, as keys arrive one by one.
        assert_eq!(
            run(&[b"\r", b"~", b"."]).1,
            [None, None, Some(Action::Disconnect)]
        );
        // In the middle of a line it is text.
        let (out, actions) = run(&[b"echo a~.b\r"]);
        assert_eq!(out, b"echo a~.b\r");
        assert_eq!(actions, [None]);
    }

    #[test]
    fn doubled_and_unknown_escapes_should_send_text() {
        let (out, _) = run(&[b"~~x\r~q\r"]);
        assert_eq!(out, b"~x\r~q\r");
        // After `~~` the line has started: a following `~.` is text.
        let (out, actions) = run(&[b"~~~."]);
        assert_eq!(out, b"~~.");
        assert_eq!(actions, [None]);
    }

    #[test]
    fn help_should_stop_the_input_there_and_keep_the_line_start() {
        let mut e = Escapes::new(b'~');
        let mut out = Vec::new();
        assert_eq!(e.feed(b"~?", &mut out), Some(Action::Help));
        assert!(e.help().contains("~.   - terminate"));
        assert_eq!(e.feed(b"~.", &mut out), Some(Action::Disconnect));
        assert!(out.is_empty());
    }

    #[test]
    fn escape_chars_should_parse_as_ssh_does() {
        assert_eq!(parse_escape_char("~"), Ok(Some(b'~')));
        assert_eq!(parse_escape_char("none"), Ok(None));
        assert_eq!(parse_escape_char("^]"), Ok(Some(0x1d)));
        assert_eq!(parse_escape_char("^a"), Ok(Some(0x01)));
        assert!(parse_escape_char("ab").is_err());
        assert!(parse_escape_char("").is_err());
        assert!(parse_escape_char("é").is_err());
    }
}
