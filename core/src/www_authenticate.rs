//! Parser for `WWW-Authenticate` header field values (RFC 9110 §11.6.1, §11.3).
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param  = token BWS "=" BWS ( token / quoted-string )
//! token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! The values come from the server under test, so they are untrusted: the
//! parser never panics, rejects inputs over [`MAX_LEN`] bytes before looking
//! at them, and otherwise does work linear in the input (every look-ahead is
//! bounded by the distance to the next delimiter and is re-scanned at most a
//! constant number of times).
//!
//! It is deliberately strict where the grammar is unambiguous — this is a
//! conformance suite, and a malformed challenge is a finding — but it accepts
//! everything the grammar allows, including empty list elements and BWS
//! around `=`. It does *not* judge semantics (e.g. duplicate parameters, which
//! RFC 9110 forbids); [`Challenge::param_count`] lets callers check that.

/// Largest header field value (and, for [`parse_all`], total of all values)
/// that is parsed at all. Real challenges are a few hundred bytes; anything
/// this big is hostile or broken, and refusing it up front bounds our work.
pub const MAX_LEN: usize = 64 * 1024;

/// One authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme exactly as sent (compare with [`Challenge::is_scheme`]).
    pub scheme: String,
    /// The token68 form of the challenge (e.g. `Negotiate abc==`), if used.
    /// When this is `Some`, `params` is empty: the grammar makes them exclusive.
    pub token68: Option<String>,
    /// Parameters in order, names as sent, values with quoting removed.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Auth-schemes are case-insensitive (RFC 9110 §11.1).
    pub fn is_scheme(&self, s: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(s)
    }

    /// Value of the first parameter named `name` (case-insensitive, as
    /// RFC 9110 §11.2 says parameter names are).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times `name` occurs; RFC 9110 says at most once, and a
    /// conformance check may want to flag a server that repeats one.
    pub fn param_count(&self, name: &str) -> usize {
        self.params
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// Why a header value could not be parsed, and where (byte offset into the
/// field value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
}

/// Parse one header field value into its challenges.
///
/// An empty (or all-commas) value yields `Ok(vec![])`: the list grammar lets
/// recipients ignore empty elements, and whether "no challenge at all" is a
/// failure is the caller's decision, not a syntax question.
pub fn parse(value: &str) -> Result<Vec<Challenge>, ParseError> {
    if value.len() > MAX_LEN {
        return Err(ParseError {
            message: format!("header value longer than {MAX_LEN} bytes"),
            offset: MAX_LEN,
        });
    }
    Parser { s: value, pos: 0 }.challenges()
}

/// Parse all the header field values of a response (each may hold several
/// challenges), in order.
///
/// Errors name the (1-based) field and give the offset within that field.
/// The size bound applies to the total, so many small fields cannot be used
/// to make us do unbounded work either.
pub fn parse_all<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Challenge>, ParseError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, v) in values.into_iter().enumerate() {
        let field = i + 1;
        if v.len() > MAX_LEN - total {
            return Err(ParseError {
                message: format!(
                    "field {field}: header values longer than {MAX_LEN} bytes in total"
                ),
                offset: MAX_LEN - total,
            });
        }
        total += v.len();
        let mut cs = parse(v).map_err(|e| ParseError {
            message: format!("field {field}: {}", e.message),
            offset: e.offset,
        })?;
        out.append(&mut cs);
    }
    Ok(out)
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2 token68 characters, excluding the trailing `=` padding.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// The octet after a backslash: HTAB / SP / VCHAR / obs-text
fn is_quoted_pair_char(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF)
}

/// Byte cursor over the value. All delimiters in the grammar are ASCII, so
/// `pos` only ever stops on a char boundary outside quoted-strings; inside
/// them non-ASCII bytes are obs-text and copied through unchanged.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        self.s.as_bytes()
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    fn peek(&self) -> Option<u8> {
        self.peek_at(self.pos)
    }

    fn err_at<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            message: message.into(),
            offset,
        })
    }

    /// Error at the cursor, naming what was found there. Uses `{:?}` so that
    /// control characters from the untrusted input are escaped in reports.
    fn unexpected<T>(&self, expected: &str) -> Result<T, ParseError> {
        let found = match self.s.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_owned(),
        };
        self.err_at(self.pos, format!("expected {expected}, found {found}"))
    }

    /// End of the run of bytes satisfying `f` starting at `from`.
    fn run_end(&self, from: usize, f: impl Fn(u8) -> bool) -> usize {
        let b = self.bytes();
        let mut i = from;
        while i < b.len() && f(b[i]) {
            i += 1;
        }
        i
    }

    fn skip_ows(&mut self) {
        self.pos = self.run_end(self.pos, |b| b == b' ' || b == b'\t');
    }

    /// Skip any number of empty list elements: OWS and commas. Returns
    /// whether at least one comma was consumed.
    fn skip_separators(&mut self) -> bool {
        let start = self.pos;
        self.pos = self.run_end(self.pos, |b| matches!(b, b' ' | b'\t' | b','));
        self.bytes()[start..self.pos].contains(&b',')
    }

    fn token(&mut self) -> Option<&str> {
        let end = self.run_end(self.pos, is_tchar);
        if end == self.pos {
            return None;
        }
        let t = self.s.get(self.pos..end);
        self.pos = end;
        t
    }

    /// Does an auth-param (`token BWS "="`) start at the cursor? This is the
    /// rule that resolves the comma ambiguity: after a comma, `name=` (with
    /// optional whitespace before `=`) continues the current challenge's
    /// parameter list; any other token starts a new challenge.
    fn at_param_start(&self) -> bool {
        let t = self.run_end(self.pos, is_tchar);
        if t == self.pos {
            return false;
        }
        let after = self.run_end(t, |b| b == b' ' || b == b'\t');
        self.peek_at(after) == Some(b'=')
    }

    /// Consume a token68 if one is at the cursor *and* it forms the whole
    /// challenge body (followed only by OWS and then a comma or the end).
    /// That condition is what distinguishes `Negotiate abc==` from
    /// `Bearer realm=x`: a valid auth-param never matches it, because its
    /// value cannot be empty or consist of `=`.
    fn try_token68(&mut self) -> Option<String> {
        let body = self.run_end(self.pos, is_token68_char);
        if body == self.pos {
            return None;
        }
        let end = self.run_end(body, |b| b == b'=');
        let after = self.run_end(end, |b| b == b' ' || b == b'\t');
        if !matches!(self.peek_at(after), None | Some(b',')) {
            return None;
        }
        let t = self.s.get(self.pos..end)?.to_owned();
        self.pos = end;
        Some(t)
    }

    /// quoted-string, with the cursor on the opening DQUOTE; returns the
    /// unescaped content.
    fn quoted_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            match self.peek() {
                None => return self.err_at(open, "unterminated quoted-string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => match self.peek_at(self.pos + 1) {
                    None => return self.err_at(open, "unterminated quoted-string"),
                    Some(c) if is_quoted_pair_char(c) => {
                        buf.push(c);
                        self.pos += 2;
                    }
                    Some(_) => {
                        self.pos += 1;
                        return self.unexpected("a quotable character after '\\'");
                    }
                },
                Some(c) if is_qdtext(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
                Some(_) => return self.unexpected("a character allowed in a quoted-string"),
            }
        }
        // Only ASCII backslashes were dropped from valid UTF-8, so this cannot
        // fail; mapping the error rather than unwrapping keeps the parser total.
        String::from_utf8(buf).or_else(|_| self.err_at(open, "invalid UTF-8 in quoted-string"))
    }

    /// auth-param = token BWS "=" BWS ( token / quoted-string )
    fn auth_param(&mut self) -> Result<(String, String), ParseError> {
        let Some(name) = self.token().map(str::to_owned) else {
            return self.unexpected("parameter name");
        };
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return self.unexpected("'=' after parameter name");
        }
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => match self.token() {
                Some(t) => t.to_owned(),
                None => {
                    return self.unexpected(&format!(
                        "a value (token or quoted-string) for parameter {name:?}"
                    ));
                }
            },
        };
        Ok((name, value))
    }

    fn challenges(mut self) -> Result<Vec<Challenge>, ParseError> {
        let mut out = Vec::new();
        self.skip_separators();
        while self.pos < self.s.len() {
            out.push(self.challenge()?);
        }
        Ok(out)
    }

    /// One challenge, with the cursor on its scheme. Returns with the cursor
    /// either at the end of input or past the separating comma(s) and on the
    /// first byte of the next challenge.
    fn challenge(&mut self) -> Result<Challenge, ParseError> {
        let Some(scheme) = self.token().map(str::to_owned) else {
            return self.unexpected("auth-scheme");
        };
        let mut ch = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        // The grammar only admits a body after 1*SP (not HTAB). Without it the
        // challenge is the bare scheme, and a following `name=value` cannot
        // belong to it.
        let sp_end = self.run_end(self.pos, |b| b == b' ');
        let has_body = sp_end > self.pos;
        self.pos = sp_end;
        if has_body {
            if let Some(t) = self.try_token68() {
                ch.token68 = Some(t);
            } else if !matches!(self.peek(), None | Some(b' ' | b'\t' | b',')) {
                // Not a token68, so this must be an auth-param; if it is not
                // one, `auth_param` reports exactly where it goes wrong.
                ch.params.push(self.auth_param()?);
            }
            // Otherwise the first #auth-param element is empty; the loop
            // below insists on a comma or the end.
        }
        loop {
            self.skip_ows();
            if self.peek().is_none() {
                break;
            }
            if self.peek() != Some(b',') {
                return self.unexpected("',' or end of header");
            }
            self.skip_separators();
            if self.peek().is_none() {
                break;
            }
            if self.at_param_start() {
                if !has_body || ch.token68.is_some() {
                    let why = if ch.token68.is_some() {
                        "auth-param after token68 (a challenge has one or the other)"
                    } else {
                        "auth-param after a bare auth-scheme (parameters need a space after the scheme)"
                    };
                    return self.err_at(self.pos, why);
                }
                ch.params.push(self.auth_param()?);
                continue;
            }
            if !self.peek().is_some_and(is_tchar) {
                return self.unexpected("auth-param or auth-scheme");
            }
            // A token not followed by `=`: the next challenge starts here.
            break;
        }
        Ok(ch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            token68: None,
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn t68(scheme: &str, t: &str) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            token68: Some(t.into()),
            params: vec![],
        }
    }

    fn err(v: &str) -> ParseError {
        match parse(v) {
            Ok(c) => panic!("expected error for {v:?}, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rfc9110_example() {
        let v = r#"Basic realm="simple", Newauth realm="apps", type=1, title="Login to \"apps\"""#;
        assert_eq!(
            parse(v).unwrap(),
            vec![
                ch("Basic", &[("realm", "simple")]),
                ch(
                    "Newauth",
                    &[
                        ("realm", "apps"),
                        ("type", "1"),
                        ("title", r#"Login to "apps""#)
                    ]
                ),
            ]
        );
    }

    #[test]
    fn rfc6750_and_rfc9728_bearer() {
        let v = r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#;
        let c = parse(v).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("error"), Some("invalid_token"));
        assert_eq!(
            c[0].param("error_description"),
            Some("The access token expired")
        );

        let v = r#"Bearer resource_metadata="https://resource.example.com/.well-known/oauth-protected-resource", scope="files:read files:write""#;
        let c = parse(v).unwrap();
        assert_eq!(
            c[0].param("resource_metadata"),
            Some("https://resource.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(c[0].param("scope"), Some("files:read files:write"));
    }

    #[test]
    fn multiple_challenges_comma_ambiguity() {
        let v = r#"Bearer realm="a", error="x", Basic realm="b""#;
        assert_eq!(
            parse(v).unwrap(),
            vec![
                ch("Bearer", &[("realm", "a"), ("error", "x")]),
                ch("Basic", &[("realm", "b")]),
            ]
        );
        // Bare schemes, at the end and before a comma.
        assert_eq!(
            parse("Negotiate, Basic realm=x, NTLM").unwrap(),
            vec![
                ch("Negotiate", &[]),
                ch("Basic", &[("realm", "x")]),
                ch("NTLM", &[])
            ]
        );
        // A token68 challenge followed by a parameterised one, and vice versa.
        assert_eq!(
            parse("Negotiate abc==, Bearer realm=r, Other a/b+c").unwrap(),
            vec![
                t68("Negotiate", "abc=="),
                ch("Bearer", &[("realm", "r")]),
                t68("Other", "a/b+c")
            ]
        );
    }

    #[test]
    fn parse_all_concatenates_fields() {
        let c = parse_all(["Basic realm=a", "", r#"Bearer error="e", Negotiate"#]).unwrap();
        assert_eq!(
            c,
            vec![
                ch("Basic", &[("realm", "a")]),
                ch("Bearer", &[("error", "e")]),
                ch("Negotiate", &[])
            ]
        );
        let e = parse_all(["Basic", "Bearer realm=\"x"]).unwrap_err();
        assert!(e.message.starts_with("field 2:"), "{e}");
        assert_eq!(e.offset, 13);
    }

    #[test]
    fn case_insensitive_lookup() {
        let c = &parse(r#"bEaReR Realm="a", ERROR=b, error=c"#).unwrap()[0];
        assert_eq!(c.scheme, "bEaReR");
        assert!(c.is_scheme("Bearer"));
        assert!(!c.is_scheme("Basic"));
        assert_eq!(c.param("realm"), Some("a"));
        assert_eq!(c.params[0].0, "Realm");
        assert_eq!(c.param("error"), Some("b"));
        assert_eq!(c.param_count("Error"), 2);
        assert_eq!(c.param_count("scope"), 0);
        assert_eq!(c.param("scope"), None);
    }

    #[test]
    fn quoted_strings() {
        let c = &parse(r#"X a="q\"uo\\te", b="", c="\a\ b", d=" sp , = ""#).unwrap()[0];
        assert_eq!(c.param("a"), Some(r#"q"uo\te"#));
        assert_eq!(c.param("b"), Some(""));
        assert_eq!(c.param("c"), Some("a b"));
        assert_eq!(c.param("d"), Some(" sp , = "));
        // obs-text and HTAB pass through.
        let c = &parse("X a=\"h\u{e9}\tllo \\\u{e9}\"").unwrap()[0];
        assert_eq!(c.param("a"), Some("h\u{e9}\tllo \u{e9}"));
    }

    #[test]
    fn token68() {
        assert_eq!(
            parse("Negotiate abc==").unwrap(),
            vec![t68("Negotiate", "abc==")]
        );
        assert_eq!(
            parse("Negotiate  abc  ").unwrap(),
            vec![t68("Negotiate", "abc")]
        );
        assert_eq!(
            parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap()[0]
                .token68
                .as_deref(),
            Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        // `abc=` alone is a token68, not a parameter without a value.
        assert_eq!(parse("X abc=").unwrap(), vec![t68("X", "abc=")]);
        // ... but `abc=def` is a parameter.
        assert_eq!(
            parse("X abc=def").unwrap(),
            vec![ch("X", &[("abc", "def")])]
        );
    }

    #[test]
    fn whitespace_and_empty_elements() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse(" ,, \t,").unwrap(), vec![]);
        assert_eq!(
            parse(" , Basic realm = \"a\" ,,\t, b =\tc ,, Bearer ,").unwrap(),
            vec![
                ch("Basic", &[("realm", "a"), ("b", "c")]),
                ch("Bearer", &[])
            ]
        );
        // `Basic , realm=x`: 1*SP then an empty first #auth-param element.
        assert_eq!(
            parse("Basic , realm=x").unwrap(),
            vec![ch("Basic", &[("realm", "x")])]
        );
    }

    #[test]
    fn bad_inputs() {
        let e = err(r#"Bearer realm="abc"#);
        assert_eq!(e.offset, 13);
        assert!(e.message.contains("unterminated"), "{e}");
        assert!(
            err(r#"Bearer realm="abc\"#)
                .message
                .contains("unterminated")
        );

        // A parameter without a value. (`Bearer realm=` on its own is not one:
        // the grammar reads it as the token68 `realm=`.)
        let e = err("Bearer error=x, realm=");
        assert_eq!(e.offset, 22);
        assert!(e.message.contains("value"), "{e}");
        // BWS around `=` is fine.
        assert_eq!(
            parse("Bearer realm= \"x\"").unwrap(),
            vec![ch("Bearer", &[("realm", "x")])]
        );
        assert_eq!(err("Bearer a=b, realm=, Basic").offset, 18);
        assert_eq!(
            parse("Bearer realm=").unwrap(),
            vec![t68("Bearer", "realm=")]
        );
        // Not an error: a token after a comma with no `=` is a new challenge.
        assert_eq!(
            parse("Bearer a=b, realm").unwrap(),
            vec![ch("Bearer", &[("a", "b")]), ch("realm", &[])]
        );
    }

    #[test]
    fn more_bad_inputs() {
        // Garbage outside quotes.
        assert_eq!(err("Bearer realm=\"a\" @").offset, 17);
        assert_eq!(err("Bearer realm=a;b").offset, 14);
        assert_eq!(err("@Bearer").offset, 0);
        assert_eq!(err("Bearer, \"x\"").offset, 8);
        assert_eq!(err("Bearer realm=a b").offset, 15);
        assert_eq!(err("Negotiate abc def").offset, 14);
        assert_eq!(err("Bear\u{e9}r").offset, 4);
        // Control characters inside a quoted string.
        assert_eq!(err("X a=\"b\u{1}\"").offset, 6);
        assert_eq!(err("X a=\"b\\\u{1}\"").offset, 7);
        // Params must not follow a token68 or a scheme with no SP.
        assert!(err("Negotiate abc==, realm=x").message.contains("token68"));
        assert_eq!(err("Bearer, realm=x").offset, 8);
        // HTAB is not 1*SP.
        assert_eq!(err("Bearer\trealm=x").offset, 7);
        // Too long: rejected without scanning.
        let long = format!("Basic realm=\"{}\"", "a".repeat(MAX_LEN));
        assert_eq!(err(&long).offset, MAX_LEN);
        let half = "a".repeat(MAX_LEN / 2 + 1);
        assert!(parse_all([half.as_str(), half.as_str()]).is_err());
        assert!(parse(&"a".repeat(MAX_LEN)).is_ok());
    }

    /// Serializer used for the round-trip property: every value quoted.
    fn serialize(cs: &[Challenge]) -> String {
        cs.iter()
            .map(|c| {
                let mut s = c.scheme.clone();
                if let Some(t) = &c.token68 {
                    s.push(' ');
                    s.push_str(t);
                } else if !c.params.is_empty() {
                    s.push(' ');
                    let ps: Vec<String> = c
                        .params
                        .iter()
                        .map(|(n, v)| {
                            let esc = v.replace('\\', "\\\\").replace('"', "\\\"");
                            format!("{n}=\"{esc}\"")
                        })
                        .collect();
                    s.push_str(&ps.join(", "));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    const TOKEN: &str = "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}";

    fn challenge_strategy() -> impl Strategy<Value = Challenge> {
        // Values: printable text (any non-control char, incl. non-ASCII) and
        // a biased alphabet so quotes, backslashes, commas and `=` are common.
        let value = prop_oneof!["[\t\\PC]{0,20}", "[ \t\"\\\\,=a]{0,10}"];
        let params = prop::collection::vec((TOKEN, value), 0..5);
        let body = prop_oneof![
            params.prop_map(|p| (None, p)),
            "[A-Za-z0-9._~+/-]{1,12}={0,3}".prop_map(|t| (Some(t), vec![])),
        ];
        (TOKEN, body).prop_map(|(scheme, (token68, params))| Challenge {
            scheme,
            token68,
            params,
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(s in any::<String>()) {
            if let Err(e) = parse(&s) {
                prop_assert!(e.offset <= s.len());
            }
        }

        #[test]
        fn never_panics_on_grammar_soup(
            parts in prop::collection::vec(
                prop_oneof![
                    Just("Bearer"), Just("realm"), Just("abc=="), Just(" "), Just("\t"),
                    Just(","), Just("="), Just("\""), Just("\\"), Just("x/y"), Just("\u{e9}"),
                    Just("\u{1}"), Just("@"),
                ],
                0..40,
            )
        ) {
            let s = parts.concat();
            match parse(&s) {
                Err(e) => prop_assert!(e.offset <= s.len()),
                // Whatever parses must survive a serialize/parse cycle unchanged.
                Ok(cs) => prop_assert_eq!(parse(&serialize(&cs)).unwrap(), cs),
            }
        }

        #[test]
        fn round_trips(cs in prop::collection::vec(challenge_strategy(), 0..5)) {
            let s = serialize(&cs);
            prop_assert_eq!(parse(&s), Ok(cs), "serialized: {:?}", s);
        }
    }
}
