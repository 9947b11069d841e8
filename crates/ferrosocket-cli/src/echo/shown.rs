//! How the echo server shows what a peer sent: the text is untrusted, so it is escaped and
//! cut short before it reaches the operator's terminal or log.
//!
//! A peer must not be able to start a new log line (`\n`, `\r`, U+2028), move the cursor or
//! recolour the terminal (ESC and the C1 CSI `\u{9b}`), reorder what is shown (bidi
//! controls), or fill the log with a megabyte-long line.

use std::fmt::Write as _;

/// Characters of a text message shown before it is cut.
pub(crate) const SHOWN_CHARS: usize = 200;
/// Bytes of a binary message shown (as hex) before it is cut.
pub(crate) const SHOWN_BYTES: usize = 16;

/// `text` escaped for one log line: control characters (C0, DEL, C1), line and paragraph
/// separators and bidi controls as `\n`, `\r`, `\t` or `\u{..}`, a backslash doubled (so an
/// escape cannot be faked), and at most [`SHOWN_CHARS`] characters, followed by
/// `… (N more bytes)` when there was more.
pub(crate) fn text_for_log(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SHOWN_CHARS) + 24);
    for (shown, (at, c)) in text.char_indices().enumerate() {
        if shown == SHOWN_CHARS {
            let _ = write!(out, "… ({} more bytes)", text.len() - at);
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// A binary message for one log line: its length and the first [`SHOWN_BYTES`] bytes in hex,
/// e.g. `<binary 3 bytes: 0a0b0c>`.
pub(crate) fn binary_for_log(data: &[u8]) -> String {
    if data.is_empty() {
        return "<binary 0 bytes>".to_owned();
    }
    let mut out = format!("<binary {} bytes: ", data.len());
    for b in data.iter().take(SHOWN_BYTES) {
        let _ = write!(out, "{b:02x}");
    }
    if data.len() > SHOWN_BYTES {
        out.push('…');
    }
    out.push('>');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Characters that would act on the terminal or the line structure instead of being shown.
fn needs_escape(c: char) -> bool {
    // is_control: the C0 set, DEL and the C1 set (general category Cc).
    c.is_control()
        || matches!(
            c,
            // line and paragraph separators
            '\u{2028}' | '\u{2029}'
            // bidi marks, embeddings, overrides and isolates
            | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // byte order mark / zero width no-break space
            | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_shown_as_is() {
        assert_eq!(text_for_log("hello, wörld ✓"), "hello, wörld ✓");
        assert_eq!(text_for_log(""), "");
    }

    #[test]
    fn line_breaks_cannot_forge_a_log_line() {
        let forged = "hi\n127.0.0.1:1 sent: admin logged in\r\n";
        let shown = text_for_log(forged);
        assert_eq!(shown, "hi\\n127.0.0.1:1 sent: admin logged in\\r\\n");
        assert!(!shown.contains(['\n', '\r']));
        assert_eq!(text_for_log("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
    }

    #[test]
    fn terminal_controls_are_escaped() {
        // ESC-based CSI, the one-byte C1 CSI, DEL, NUL, BEL, and a bidi override.
        assert_eq!(text_for_log("\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(text_for_log("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(text_for_log("a\x7fb\0c\x07"), "a\\u{7f}b\\u{0}c\\u{7}");
        assert_eq!(text_for_log("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(text_for_log("tab\there"), "tab\\there");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap_or_default();
            let shown = text_for_log(&c.to_string());
            assert!(shown.starts_with('\\'), "{c:?} shown as {shown:?}");
            assert!(!shown.chars().any(char::is_control), "{c:?} shown as {shown:?}");
        }
    }

    #[test]
    fn a_backslash_is_doubled_so_escapes_cannot_be_faked() {
        assert_eq!(text_for_log(r"a\nb"), r"a\\nb");
        assert_ne!(text_for_log("a\nb"), text_for_log(r"a\nb"));
    }

    #[test]
    fn long_text_is_cut_and_says_how_many_bytes_were_left_out() {
        let mib = "x".repeat(1 << 20);
        let shown = text_for_log(&mib);
        assert_eq!(
            shown,
            format!("{}… ({} more bytes)", "x".repeat(200), (1 << 20) - 200)
        );
        // Exactly the limit: nothing cut.
        assert_eq!(text_for_log(&"y".repeat(200)), "y".repeat(200));
        // The limit counts characters; the rest is counted in bytes (é is 2 bytes).
        let shown = text_for_log(&"é".repeat(300));
        assert_eq!(shown, format!("{}… (200 more bytes)", "é".repeat(200)));
        // Escapes make a line longer, but still bounded.
        let shown = text_for_log(&"\x1b".repeat(1 << 20));
        assert!(shown.len() < 200 * 6 + 40, "{} bytes", shown.len());
        assert!(shown.ends_with(&format!("… ({} more bytes)", (1 << 20) - 200)));
    }

    #[test]
    fn binary_shows_its_length_and_a_hex_prefix() {
        assert_eq!(binary_for_log(&[]), "<binary 0 bytes>");
        assert_eq!(binary_for_log(b"\n\x1b\xff"), "<binary 3 bytes: 0a1bff>");
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(
            binary_for_log(&data),
            "<binary 256 bytes: 000102030405060708090a0b0c0d0e0f…>"
        );
        assert_eq!(
            binary_for_log(&data[..16]),
            "<binary 16 bytes: 000102030405060708090a0b0c0d0e0f>"
        );
    }
}
