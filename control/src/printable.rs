//! Escaping of text from outside the router (peer certificates, management replies) before
//! it reaches a terminal or a log, so that control sequences in it show as text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Returns `text` with every control character escaped: `\x1b` for one below U+0080 and
/// `\u{202e}` for others, including the bidirectional overrides. A backslash is left as it
/// is, so the result is for reading, not for parsing back.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Like [`escape_control`], but keeps newline and tab, for multi-line output.
pub fn escape_control_keep_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let must_escape = |c: char| !(keep_lines && (c == '\n' || c == '\t')) && is_unsafe(c);
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !must_escape(c) {
            escaped.push(c);
        } else if c.is_ascii() {
            let _ = write!(escaped, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(escaped)
}

/// Whether `c` can change how a terminal shows what follows: C0 and C1 controls, DEL, and
/// the bidirectional embedding, override and isolate characters.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_plain_text_borrowed() {
        assert!(matches!(escape_control("CN=r1, O=acme"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_terminal_sequences() {
        let cn = "r1\u{1b}]0;title\u{7}\u{1b}[2J";
        assert_eq!(escape_control(cn), "r1\\x1b]0;title\\x07\\x1b[2J");
    }

    #[test]
    fn escape_c1_and_bidi() {
        assert_eq!(escape_control("a\u{9b}b\u{202e}c"), "a\\u{9b}b\\u{202e}c");
    }

    #[test]
    fn escape_newline_unless_kept() {
        assert_eq!(escape_control("a\nb\tc\r"), "a\\x0ab\\x09c\\x0d");
        assert_eq!(escape_control_keep_lines("a\nb\tc\r"), "a\nb\tc\\x0d");
    }
}
