//! Text helpers: durations for people, close-match suggestions, and making
//! text from outside (API bodies, names chosen on a VM or in a cloud console)
//! safe to print.

use std::borrow::Cow;
use std::time::Duration;

/// A duration as people read it: `250ms`, `3.0s`, `3m05s`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// assert_eq!(spuff::fmt_duration(Duration::from_secs(185)), "3m05s");
/// ```
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if secs < 120.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Candidates close to `input`, in the best tier found: exact
/// case-insensitive matches, else those that contain it, else those at the
/// smallest edit distance (at most a third of the length, at least 2). At
/// most 3 are returned.
///
/// The CLI uses this to answer `--size s-2vcpu-4g` with "did you mean
/// `s-2vcpu-4gb`?", and the config to answer a misspelt key.
///
/// # Examples
/// ```
/// use spuff::suggest;
/// let sizes = ["s-1vcpu-1gb", "s-2vcpu-4gb", "c-4"];
/// assert_eq!(suggest("s-2vcpu-4g", sizes), vec!["s-2vcpu-4gb"]);
/// ```
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let needle = input.trim().to_ascii_lowercase();
    if needle.is_empty() {
        return Vec::new();
    }
    let max = (needle.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let score = if lc == needle {
                0
            } else if lc.starts_with(&needle) || lc.contains(&needle) {
                1
            } else {
                let d = edit_distance(&needle, &lc);
                if d > max {
                    return None;
                }
                1 + d
            };
            Some((score, c))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.len().cmp(&b.1.len()))
            .then(a.1.cmp(b.1))
    });
    scored.dedup_by(|a, b| a.1 == b.1);
    // Only the best tier: a prefix match hides mere typos-away candidates.
    let best = scored.first().map_or(0, |s| s.0);
    scored
        .into_iter()
        .filter(|s| s.0 == best)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// Levenshtein distance over chars, two rows of memory.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Whether printing `c` could move the cursor, recolour, retitle or reorder
/// the terminal: C0 and C1 controls, DEL, and the bidirectional overrides
/// and isolates that can make text read differently from what it is.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character (escape sequences included) and
/// bidirectional override shown as a visible escape (`\x1b`, `\u{202e}`),
/// so that a name or message from an API or a VM cannot drive the terminal.
/// Borrowed when nothing needed changing.
///
/// # Examples
/// ```
/// assert_eq!(spuff::terminal_safe("web\x1b[2J1"), "web\\x1b[2J1");
/// assert_eq!(spuff::terminal_safe("plain"), "plain");
/// ```
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// The most characters of a body kept in an error message.
const BODY_CHARS: usize = 300;

/// One line saying what an error body was, for messages: an HTML page (a
/// proxy's or load balancer's error page) becomes `HTML page "<title>"
/// (N bytes)`, anything else its first 300 characters with
/// whitespace collapsed; both [`terminal_safe`].
///
/// # Examples
/// ```
/// let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>...</body></html>";
/// assert_eq!(spuff::summarize_body(page), "HTML page \"502 Bad Gateway\" (87 bytes)");
/// assert_eq!(spuff::summarize_body(b"  upstream\n timed out "), "upstream timed out");
/// ```
pub fn summarize_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let head: String = trimmed
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body") {
        let title = html_title(&text).unwrap_or_default();
        let title = collapse(&title);
        return if title.is_empty() {
            format!("HTML page ({} bytes)", body.len())
        } else {
            format!(
                "HTML page \"{}\" ({} bytes)",
                terminal_safe(&cut(&title, 120)),
                body.len()
            )
        };
    }
    let line = collapse(&text);
    if line.is_empty() {
        return "(empty body)".into();
    }
    terminal_safe(&cut(&line, BODY_CHARS)).into_owned()
}

/// The text of the first `<title>` (or, without one, the first `<h1>`).
fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    for tag in ["title", "h1"] {
        let Some(open) = lower.find(&format!("<{tag}")) else {
            continue;
        };
        let Some(start) = lower[open..].find('>').map(|i| open + i + 1) else {
            continue;
        };
        let end = lower[start..]
            .find(&format!("</{tag}"))
            .map_or(lower.len(), |i| start + i);
        // ASCII lowercasing keeps byte offsets, so they index `html` too.
        return Some(html.get(start..end)?.to_string());
    }
    None
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_duration_should_pick_a_readable_unit() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3.0s");
        assert_eq!(fmt_duration(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn suggest_should_rank_close_matches() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let regions = ["nyc1", "nyc3", "fra1", "sfo3", "ams3"];
        assert_eq!(suggest("fra", regions), vec!["fra1"]);
        assert_eq!(suggest("nyc2", regions), vec!["nyc1", "nyc3"]);
        assert!(suggest("mars-1", regions).is_empty());
        assert!(suggest("", regions).is_empty());
    }

    #[test]
    fn terminal_safe_should_neutralise_controls_and_bidi() {
        assert_eq!(terminal_safe("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(terminal_safe("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(terminal_safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(terminal_safe("line\nnext\r"), "line\\x0anext\\x0d");
        assert!(matches!(terminal_safe("ünïcode ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn summarize_body_should_shorten_html_and_long_text() {
        let page = "<html>\n<head><TITLE>\n 503 Service\x1b[31m Unavailable </title></head><body>x</body></html>";
        let s = summarize_body(page.as_bytes());
        assert!(
            s.starts_with("HTML page \"503 Service\\x1b[31m Unavailable\""),
            "{s}"
        );
        let h1 = "<html><body><h1>Bad gateway</h1></body></html>";
        assert!(summarize_body(h1.as_bytes()).contains("\"Bad gateway\""));
        let long = "x".repeat(1000);
        assert_eq!(
            summarize_body(long.as_bytes()).chars().count(),
            BODY_CHARS + 1
        );
        assert_eq!(summarize_body(b""), "(empty body)");
    }
}
