//! A copy-ready `curl` command line per recorded exchange, reproducing the request as sent:
//! method, the raw URL (never normalised: `--path-as-is`, `--globoff`), every recorded header,
//! the body byte for byte, no redirect followed, the answer's headers shown (`-i`).
//!
//! The line is meant to be pasted into a shell, and every part of it came from the server under
//! test or was shaped to provoke it, so everything is quoted: plain single quotes when the text
//! is printable ASCII, bash's `$'…'` with `\xHH` escapes otherwise, so no control character,
//! bidi override or newline ever reaches the terminal or the shell raw. Secrets stay what the
//! record holds: `[redacted N bytes]` placeholders (see `crate::redact`), visibly not a value;
//! [`CurlLine::needs_secret`] says so, and a reader substitutes the real value.

use crate::record::Exchange;

/// One exchange's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlLine {
    pub line: String,
    /// A redacted secret stands in the request: replaying needs the real value substituted.
    pub needs_secret: bool,
    /// The command sends exactly what the record holds. False when the body holds a NUL byte
    /// (no command-line argument can), or the body was decoded lossily (U+FFFD in it).
    pub exact: bool,
}

/// The marker [`crate::redact::mask`] and the structural rules write in place of a secret.
const REDACTED: &str = "[redacted";

/// Headers the HTTP client adds itself and curl would add differently: `User-Agent` is sent by
/// the suite but not recorded, so it is given explicitly; curl's default `Accept: */*` is what
/// the suite's client sends when none is recorded.
pub fn curl(ex: &Exchange, user_agent: &str, insecure: bool) -> CurlLine {
    let mut parts: Vec<String> = vec!["curl".into(), "-i".into(), "--path-as-is".into()];
    parts.push("--globoff".into());
    if insecure {
        parts.push("-k".into());
    }
    let method = ex.method.as_str();
    if method.eq_ignore_ascii_case("HEAD") {
        // `-X HEAD` would make curl wait for a body that never comes.
        parts.push("--head".into());
    } else if !(method == "GET" && ex.request_body.is_none()) {
        parts.push("-X".into());
        parts.push(quote(method));
    }
    let has = |name: &str| {
        ex.request_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("user-agent") {
        parts.push("-H".into());
        parts.push(quote(&format!("User-Agent: {user_agent}")));
    }
    for (name, value) in &ex.request_headers {
        parts.push("-H".into());
        // `Name:` with nothing after it tells curl to remove the header; `Name;` sends it empty.
        parts.push(if value.is_empty() {
            quote(&format!("{name};"))
        } else {
            quote(&format!("{name}: {value}"))
        });
    }
    let mut exact = true;
    if let Some(body) = &ex.request_body {
        if !has("content-type") {
            // curl would add `application/x-www-form-urlencoded`; the suite sent none.
            parts.push("-H".into());
            parts.push(quote("Content-Type:"));
        }
        // `--data-binary @x` reads a file; `--data-raw` sends a leading `@` as is.
        parts.push(if body.starts_with('@') {
            "--data-raw".into()
        } else {
            "--data-binary".into()
        });
        parts.push(quote(body));
        exact = !body.contains('\0') && !body.contains('\u{FFFD}');
    }
    parts.push("--url".into());
    parts.push(quote(&ex.url));
    let needs_secret = ex.url.contains(REDACTED)
        || ex.request_headers.iter().any(|(_, v)| v.contains(REDACTED))
        || ex
            .request_body
            .as_deref()
            .is_some_and(|b| b.contains(REDACTED));
    CurlLine {
        line: parts.join(" "),
        needs_secret,
        exact,
    }
}

/// Should a replay skip certificate checks? Only for the loopback servers a run starts or tests
/// locally (the built-in reference, a local test server), whose CA the reader's curl does not
/// know; anything else is checked as usual.
pub fn insecure_for(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    if u.scheme() != "https" {
        return false;
    }
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        None => false,
    }
}

/// Quotes one shell word so that bash reads it back as exactly `s` (bar NUL, which no argument
/// can hold: shown as `\x00`, and the line marked not exact by the caller).
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        return s.to_owned();
    }
    // Single quotes; anything outside printable ASCII (controls, newlines, non-ASCII text that
    // may hide a bidi override) as `\xHH` bytes: exact in bash and zsh, inert on the screen.
    crate::terminal::shell_quote(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{NASTY, hostile_report};

    fn ex() -> Exchange {
        hostile_report().results[1].exchanges[0].clone()
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b'c"), r"'a b'\''c'");
        assert_eq!(quote("é\n\x1b'\\"), r"$'\xc3\xa9\x0a\x1b\'\\'");
    }

    #[test]
    fn hostile_exchange_line_is_printable_ascii() {
        let c = curl(&ex(), "authconform/0.1.0", false);
        assert!(
            c.line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{:?}",
            c.line
        );
        assert!(c.line.starts_with(
            "curl -i --path-as-is --globoff -X GET -H 'User-Agent: authconform/0.1.0' -H 'accept: application/json' -H $'x-evil"
        ));
        assert!(
            c.line.contains("-H Content-Type: --data-binary"),
            "{}",
            c.line
        );
        assert!(!c.needs_secret);
        // NASTY holds a NUL and U+FFFD: not exactly reproducible on a command line.
        assert!(!c.exact);
        assert!(NASTY.contains('\0'));
    }

    #[test]
    fn placeholders_head_empty_headers_and_at_bodies() {
        let mut e = ex();
        e.method = "POST".into();
        e.url = "https://127.0.0.1:8443/as/token".into();
        e.request_headers = vec![
            ("Authorization".into(), "Bearer [redacted 40 bytes]".into()),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("X-Empty".into(), String::new()),
        ];
        e.request_body = Some("@/etc/passwd".into());
        let c = curl(&e, "ua", insecure_for(&e.url));
        assert_eq!(
            c.line,
            "curl -i --path-as-is --globoff -k -X POST -H 'User-Agent: ua' \
             -H 'Authorization: Bearer [redacted 40 bytes]' \
             -H 'Content-Type: application/x-www-form-urlencoded' -H 'X-Empty;' \
             --data-raw @/etc/passwd --url https://127.0.0.1:8443/as/token"
        );
        assert!(c.needs_secret && c.exact);
        e.method = "HEAD".into();
        e.request_body = None;
        assert!(curl(&e, "ua", false).line.contains(" --head "));
        assert!(!insecure_for("https://as.example/token"));
        assert!(!insecure_for("http://127.0.0.1/"));
        assert!(insecure_for("https://[::1]:9/"));
    }

    /// The quoting round-trips through a real bash (when there is one): every argument reads
    /// back as the bytes it came from.
    #[test]
    fn bash_reads_back_every_word() {
        let Ok(out) = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "printf '%s\\0' {} {} {}",
                quote(NASTY.trim_start_matches('\0').replace('\0', "").as_str()),
                quote("it's"),
                quote("a\nb")
            ))
            .output()
        else {
            eprintln!("no bash: round trip not checked");
            return;
        };
        let words: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        assert_eq!(words[0], NASTY.replace('\0', "").as_bytes());
        assert_eq!(words[1], b"it's");
        assert_eq!(words[2], b"a\nb");
    }
}
