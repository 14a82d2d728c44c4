//! Text that came from untrusted input (a manifest, a cpio entry name, a recipe string, a file name) is shown to a
//! person only through [`untrusted`]: control characters, bidirectional overrides and line separators are escaped, and
//! the length is bounded, so that an untrusted image cannot add, hide or disguise lines in a listing, a script that
//! `run --print-command` prints, or an error message.

use std::fmt;

/// The most characters of one untrusted string that are shown; the rest is replaced by a marker with its length.
pub const MAX_SHOWN_CHARS: usize = 256;

/// Wraps `text` for display: escaped and bounded (see the module docs).
pub fn untrusted(text: &str) -> Untrusted<'_> {
    Untrusted { text, max_chars: MAX_SHOWN_CHARS }
}

/// Like [`untrusted`] with another bound (for example a kernel command line, which may be up to 2 KiB).
pub fn untrusted_bounded(text: &str, max_chars: usize) -> Untrusted<'_> {
    Untrusted { text, max_chars }
}

/// An untrusted string, displayed escaped and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    text: &'a str,
    max_chars: usize,
}

/// Whether `c` must not reach a terminal or a script as itself.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Bidirectional embeddings, overrides and isolates (Trojan Source), and the line/paragraph separators.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.text.chars().count();
        for c in self.text.chars().take(self.max_chars) {
            if needs_escape(c) {
                for e in c.escape_default() {
                    fmt::Write::write_char(f, e)?;
                }
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        if total > self.max_chars {
            write!(f, "…[{} more characters]", total - self.max_chars)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters() {
        let shown = untrusted("a\nb\r\x1b[2Jc\u{202e}d\u{2028}e\u{7f}\u{85}").to_string();
        assert_eq!(shown, "a\\nb\\r\\u{1b}[2Jc\\u{202e}d\\u{2028}e\\u{7f}\\u{85}");
        assert!(!shown.chars().any(needs_escape));
    }

    #[test]
    fn keeps_printable_text_including_non_ascii() {
        assert_eq!(untrusted("vmlinuz-6.1 résumé \"q\" 'x' \\").to_string(), "vmlinuz-6.1 résumé \"q\" 'x' \\");
    }

    #[test]
    fn bounds_the_length_and_says_how_much_is_hidden() {
        let long = "x".repeat(MAX_SHOWN_CHARS + 10);
        let shown = untrusted(&long).to_string();
        assert_eq!(shown, format!("{}…[10 more characters]", "x".repeat(MAX_SHOWN_CHARS)));
    }

    proptest::proptest! {
        #[test]
        fn output_never_holds_a_control_character(s in ".*") {
            let shown = untrusted(&s).to_string();
            proptest::prop_assert!(!shown.chars().any(needs_escape));
        }
    }
}
