//! Escaping for the two languages user-data values end up in: YAML (the
//! `#cloud-config` document) and the POSIX shell (the bootstrap scripts).
//!
//! Templates never interpolate a value raw. A value that reaches YAML goes
//! through [`yaml_quote`] (a double-quoted scalar) or [`yaml_block`] (a
//! literal block for whole files, or a double-quoted scalar when a block could
//! not hold the content exactly); a value that reaches a script goes through
//! [`sh_quote`]. The YAML output is pure ASCII: everything else is written as
//! an escape, which sidesteps every difference between YAML 1.1 (PyYAML,
//! which cloud-init uses, treats U+0085, U+2028 and U+2029 as line breaks)
//! and YAML 1.2, and any transcoding on the way through a provider's API.

use std::fmt::Write as _;

/// `s` as a YAML double-quoted scalar that every YAML parser reads back as
/// exactly `s`: `\` and `"` are escaped, and so is every character outside
/// printable ASCII (`\t`, `\n`, `\xXX`, `\uXXXX`, `\UXXXXXXXX`), because raw
/// line breaks inside a double-quoted scalar would be folded.
pub(crate) fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            // Writing to a String cannot fail.
            c if (c as u32) <= 0xFF => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Whether `content` can be written as a YAML literal block (`|`) and read
/// back byte for byte: printable ASCII, tabs and `\n` line breaks only (no
/// `\r`, which a parser would normalise), and not starting with a blank or a
/// line break (a block's indentation is detected from its first line).
fn fits_literal_block(content: &str) -> bool {
    !content.is_empty()
        && !content.starts_with([' ', '\t', '\n'])
        && content
            .bytes()
            .all(|b| matches!(b, b' '..=b'~' | b'\t' | b'\n'))
}

/// `content` as the value of a mapping key whose entries are indented by
/// `indent` spaces, to be followed by a line break: a literal block whose lines are indented by `indent`
/// spaces, with the chomping indicator that keeps its trailing line breaks
/// exactly (`|-` none, `|` one, `|+` more), or [`yaml_quote`] when a literal
/// block could not represent it exactly.
pub(crate) fn yaml_block(content: &str, indent: usize) -> String {
    if indent == 0 || !fits_literal_block(content) {
        return yaml_quote(content);
    }
    let body = content.trim_end_matches('\n');
    let trailing = content.len() - body.len();
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(content.len() + (indent + 1) * content.lines().count() + 4);
    out.push_str(header);
    for line in body.split('\n') {
        out.push('\n');
        // Empty lines stay empty: spaces up to the indentation would be read
        // as indentation anyway, and trailing blanks are noise.
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    // With `|+` the extra line breaks are content: write them as empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

/// `s` as one POSIX shell word: single quotes, with each `'` written as
/// `'\''`. Every byte but NUL survives single quotes; strings with NUL are
/// refused earlier (a shell variable cannot hold one).
pub(crate) fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quote_should_escape_quotes_backslashes_and_controls() {
        assert_eq!(yaml_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(yaml_quote("x\ny\tz\r\0"), r#""x\ny\tz\r\0""#);
        assert_eq!(yaml_quote("\u{7F}\u{85}\u{A0}"), r#""\x7F\x85\xA0""#);
        assert_eq!(yaml_quote("\u{2028}é"), r#""\u2028\xE9""#);
        assert_eq!(yaml_quote("\u{1F600}"), r#""\U0001F600""#);
        assert_eq!(yaml_quote("  --- &a *b #c: d"), r#""  --- &a *b #c: d""#);
        assert!(yaml_quote("\u{FEFF}日本").is_ascii());
    }

    #[test]
    fn yaml_block_should_pick_the_chomping_indicator_from_trailing_newlines() {
        assert_eq!(yaml_block("a\nb", 2), "|-\n  a\n  b");
        assert_eq!(yaml_block("a\n\nb\n", 2), "|\n  a\n\n  b");
        // The line break that ends the template's line is the last one.
        assert_eq!(yaml_block("a\n\n\n", 4), "|+\n    a\n\n");
    }

    #[test]
    fn yaml_block_should_fall_back_to_quoting_what_a_block_cannot_hold() {
        for s in [
            "",
            " lead",
            "\tlead",
            "\nlead",
            "cr\r\n",
            "nel\u{85}",
            "é",
            "\u{7F}",
        ] {
            assert!(yaml_block(s, 2).starts_with('"'), "{s:?}");
        }
        assert!(yaml_block("x", 0).starts_with('"'));
    }

    /// Both helpers, placed the way the templates place them, read back
    /// exactly, for strings that stress every branch of the block checks.
    #[test]
    fn yaml_helpers_should_round_trip_through_a_parser() {
        let samples = [
            "",
            "x",
            " lead",
            "  two\nlines",
            "\tlead",
            "\nlead",
            "\n\n",
            "a\n",
            "a\n\n\n",
            "a\n  \n",
            "a\n\n  b  \n",
            "--- x\n...\n---",
            "# c\n- i\n? k",
            "cr\r\nlf",
            "tab\t\n",
            "nel\u{85}ls\u{2028}ps\u{2029}",
            "\u{7f}\u{80}\u{9f}\u{a0}\u{feff}",
            "é日🚀",
            "\0nul",
            "\"q\" 'q' \\",
            "key: v #c",
            "|\n>",
            "trailing \n",
        ];
        for s in samples {
            // `indent` is the column of the block's lines, two more than its key's.
            for indent in [4usize, 6] {
                let pad = " ".repeat(indent - 4);
                let doc = format!(
                    "{pad}k:\n{pad}  q: {}\n{pad}  b: {}\n{pad}  after: 1\n",
                    yaml_quote(s),
                    yaml_block(s, indent)
                );
                assert!(doc.is_ascii(), "{s:?}");
                let v: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(&doc).unwrap_or_else(|e| panic!("{s:?}: {e}\n{doc}"));
                assert_eq!(v["k"]["q"].as_str(), Some(s), "{doc}");
                assert_eq!(v["k"]["b"].as_str(), Some(s), "{doc}");
                assert_eq!(v["k"]["after"].as_u64(), Some(1), "{doc}");
            }
        }
    }

    #[test]
    fn sh_quote_should_make_one_word() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(x) `y` \"z\""), "'$(x) `y` \"z\"'");
    }
}
