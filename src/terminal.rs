//! Text that may have come from a server, made safe for a terminal. Below every layer that
//! prints (the reporters, the manual login prompt), so none of them needs another to escape.

/// Is `c` a character that must not reach a terminal (or a human reader) as-is?
///
/// Bidi overrides and isolates are included because they reorder how surrounding text is displayed
/// ("Trojan Source"), which would let a server make evidence read differently from what was sent.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Replace every control character except `\n` and `\t` (C0, DEL, C1) and every bidi
/// override/isolate with a visible escape (`\x1b`, `\u{202e}`).
///
/// Escaping instead of dropping keeps the evidence: a reader can still see that the server sent
/// an ESC or a NUL, without their terminal acting on it.
pub fn sanitize_terminal(s: &str) -> String {
    if !s.chars().any(is_unsafe_char) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn push_escape(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let cp = c as u32;
    // Writing into a String cannot fail.
    let _ = if cp < 0x80 {
        write!(out, "\\x{cp:02x}")
    } else {
        write!(out, "\\u{{{cp:x}}}")
    };
}
/// Quotes bytes as one bash word: plain single quotes when every byte is printable ASCII,
/// otherwise ANSI-C quoting (`$'..'`) with `\xHH` escapes, so the line is exact when pasted and
/// inert on the screen. The fuzz findings' and the reports' curl lines both quote with it.
pub(crate) fn shell_quote(b: &[u8]) -> String {
    if b.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        let s = String::from_utf8_lossy(b);
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for &c in b {
        match c {
            b'\\' => out.push_str(r"\\"),
            b'\'' => out.push_str(r"\'"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('\'');
    out
}
