//! Untrusted bytes made into text a page can show: invalid UTF-8 replaced, control
//! characters made visible, long output cut to its tail with the cut said.
//!
//! HTML escaping is not done here: the templates escape every value they print. What
//! this module guards against is text that escaping leaves intact but that would
//! mislead a reader: terminal escapes, carriage returns that overwrite a line,
//! bidirectional overrides that reorder what is shown, NUL bytes.

/// Bytes as text: invalid UTF-8 shown as U+FFFD, line breaks and tabs kept, every
/// other control character made visible.
pub fn shown(bytes: &[u8]) -> String {
    visible(&String::from_utf8_lossy(bytes), true)
}

/// Text for one line (a file name, a title): line breaks made visible too.
pub fn one_line(text: &str) -> String {
    visible(text, false)
}

/// Text with line breaks and tabs kept and every other control character visible.
pub fn multi_line(text: &str) -> String {
    visible(text, true)
}

fn visible(text: &str, keep_lines: bool) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\n' | '\t' if keep_lines => shown.push(character),
            // A Windows line end is a line end; a lone carriage return would overwrite.
            '\r' if keep_lines && characters.peek() == Some(&'\n') => {}
            // C0 controls and DEL have pictures of their own (U+2400…U+2421).
            '\u{0}'..='\u{1f}' => {
                shown.push(char::from_u32(0x2400 + character as u32).unwrap_or('\u{fffd}'));
            }
            '\u{7f}' => shown.push('\u{2421}'),
            _ if character.is_control() || is_format_control(character) => {
                shown.push_str(&format!("\\u{{{:x}}}", character as u32));
            }
            _ => shown.push(character),
        }
    }
    shown
}

/// Bidirectional overrides and invisible separators: they change how the text
/// around them is shown without being seen themselves.
fn is_format_control(character: char) -> bool {
    matches!(
        character,
        '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
    )
}

/// The end of a long text, cut at a line start, with how much was left out before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    pub text: String,
    /// Bytes before `text` that are not shown.
    pub cut_bytes: usize,
}

/// The last `max_bytes` (at most) of `bytes`, starting at a line when one starts in
/// the window, made visible as [`shown`] does.
pub fn tail(bytes: &[u8], max_bytes: usize) -> Tail {
    if bytes.len() <= max_bytes {
        return Tail {
            text: shown(bytes),
            cut_bytes: 0,
        };
    }
    let mut start = bytes.len() - max_bytes;
    if let Some(newline) = bytes[start..].iter().position(|byte| *byte == b'\n') {
        if newline + 1 < bytes.len() - start {
            start += newline + 1;
        }
    }
    Tail {
        text: shown(&bytes[start..]),
        cut_bytes: start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_lines_stay() {
        assert_eq!(
            shown(b"a\x1b[31mb\x00c\r\nd\re\tf\x7f"),
            "a\u{241b}[31mb\u{2400}c\nd\u{240d}e\tf\u{2421}"
        );
        assert_eq!(one_line("a\nb"), "a\u{240a}b");
        assert_eq!(one_line("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(shown(b"ok\xff\xfeend"), "ok\u{fffd}\u{fffd}end");
    }

    #[test]
    fn a_tail_starts_at_a_line_and_counts_what_it_left_out() {
        let text = b"first line\nsecond line\nthird\n";
        let cut = tail(text, 15);
        assert_eq!(cut.text, "third\n");
        assert_eq!(cut.cut_bytes, text.len() - 6);
        assert_eq!(tail(text, 100).cut_bytes, 0);
        let one_long_line = [b'x'; 50];
        assert_eq!(tail(&one_long_line, 10).text.len(), 10);
    }
}
