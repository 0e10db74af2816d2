//! proptest strategies over OAuth-shaped requests, one per endpoint.
//!
//! Requests are built from the vocabulary of each endpoint (its parameter names, grant types,
//! metadata members, auth header shapes) and then bent: parameters duplicated, missing, empty or
//! oversized, bytes that are not UTF-8, broken percent escapes, odd content types, unicode, and
//! markup markers that must never come back unescaped in an HTML page. Random bytes alone would
//! be refused at the first parser; these reach the code behind it.
//!
//! Shrinking is proptest's: a finding's value tree is simplified while the violation persists,
//! so collections lose elements, unions fall back to their first (plainest) arms and numbers
//! move towards their minimum. Each union below therefore lists its plainest arm first.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::SBoxedStrategy;

use super::probe::{Base, Probe, form_encode};

/// The marker of the reflection rule: a tag no server emits on its own. Found verbatim in an
/// HTML response, it means request input reached the page unescaped.
pub const MARKER: &str = "<acprobe>";

/// What the strategies know of the target: a test client and which bases exist.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    /// A client the AS knows (registered or from the profile), so requests get past client
    /// lookup; never its secret.
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    /// The metadata documents found (`AsMetadata`, `Prm`).
    pub metadata: Vec<Base>,
}

type S<T> = SBoxedStrategy<T>;

fn strs(items: &[&str]) -> S<Vec<u8>> {
    let v: Vec<Vec<u8>> = items.iter().map(|s| s.as_bytes().to_vec()).collect();
    select(v).sboxed()
}

/// Values a parameter may take, plainest first.
fn value(known: Vec<String>) -> S<Vec<u8>> {
    let known: Vec<Vec<u8>> = known.into_iter().map(String::into_bytes).collect();
    prop_oneof![
        6 => select(known),
        3 => "[A-Za-z0-9._~-]{0,40}".prop_map(String::into_bytes),
        1 => Just(Vec::new()),
        1 => (1usize..=64).prop_map(|k| vec![b'A'; k * 1024]),
        1 => "\\PC{1,12}".prop_map(String::into_bytes),
        1 => strs(&["%", "%zz", "%00", "%ff%fe", "%C0%AF", "+", "&", "=", "a=b&c=d", "%26", "\u{0}", "\r\n", "\u{202e}gpj.exe", "null", "[]", "{}"]),
        1 => select(vec![vec![0xff], vec![0xc3], vec![0xed, 0xa0, 0x80], vec![b'a', 0xfe, 0xff], vec![0xc0, 0xaf]]),
        1 => strs(&[MARKER, "\"><acprobe>", "'><acprobe>", "</title><acprobe>", "javascript:alert(1)//<acprobe>"]),
    ]
    .sboxed()
}

/// How a parameter is written into a form or query: properly encoded, or raw bytes (so `&`,
/// `=`, `%` and non-UTF-8 bytes reach the server's decoder unescaped).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Enc {
    Form,
    Raw,
}

fn enc() -> S<Enc> {
    prop_oneof![4 => Just(Enc::Form), 1 => Just(Enc::Raw)].sboxed()
}

fn key(known: &[&str]) -> S<Vec<u8>> {
    prop_oneof![
        8 => strs(known),
        1 => "[a-z_]{1,12}".prop_map(String::into_bytes),
        1 => strs(&["", "grant_type[]", "GRANT_TYPE", "client_id ", "redirect%5Furi", "\u{0}", "scope\u{0}", "a\u{301}"]),
    ]
    .sboxed()
}

type Param = (Vec<u8>, Vec<u8>, Enc);

fn params(keys: &'static [&'static str], values: Vec<String>, max: usize) -> S<Vec<Param>> {
    prop_oneof![
        9 => vec((key(keys), value(values.clone()), enc()), 0..max),
        // Thousands of parameters (a parser's worst case); shrinks towards few.
        1 => (500usize..5000).prop_map(|n| (0..n).map(|i| (format!("p{i}").into_bytes(), b"x".to_vec(), Enc::Form)).collect()),
    ]
    .sboxed()
}

fn render_pairs(ps: &[Param]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v, e)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        match e {
            Enc::Form => {
                out.extend_from_slice(form_encode(k).as_bytes());
                out.push(b'=');
                out.extend_from_slice(form_encode(v).as_bytes());
            }
            Enc::Raw => {
                out.extend_from_slice(k);
                out.push(b'=');
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// A query string is carried by a request line: bytes RFC 3986 never allows there (controls,
/// space, non-ASCII, `"<>\^`{|}` and `#`) are percent-escaped, since no HTTP client sends them
/// raw; `&`, `=`, `%` and `+` stay raw, which is where query parsers disagree.
fn render_query(ps: &[Param]) -> String {
    let raw = render_pairs(ps);
    let mut s = String::with_capacity(raw.len());
    for b in raw {
        if (0x21..0x7f).contains(&b) && !b"\"<>\\^`{|}#".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn render_json(ps: &[Param]) -> Vec<u8> {
    let m: serde_json::Map<String, serde_json::Value> = ps
        .iter()
        .map(|(k, v, _)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned().into(),
            )
        })
        .collect();
    serde_json::Value::Object(m).to_string().into_bytes()
}

/// Header values must be legal bytes for the HTTP client (no controls); anything else is
/// visible ASCII or obs-text, which servers must cope with.
fn header_safe(mut v: Vec<u8>) -> Vec<u8> {
    for b in &mut v {
        if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
            *b = b'?';
        }
    }
    v
}

/// `Authorization` header shapes, plainest (none) first.
#[derive(Clone, Debug, PartialEq)]
enum Auth {
    None,
    Basic(Vec<u8>, Vec<u8>),
    BasicJunk(Vec<u8>),
    Scheme(&'static str, Vec<u8>),
    Twice(Vec<u8>, Vec<u8>),
}

fn auth(values: Vec<String>) -> S<Auth> {
    prop_oneof![
        4 => Just(Auth::None),
        2 => (value(values.clone()), value(values.clone())).prop_map(|(a, b)| Auth::Basic(a, b)),
        1 => value(values.clone()).prop_map(Auth::BasicJunk),
        2 => (select(vec!["Bearer", "bearer", "BEARER", "Basic", "DPoP", "Negotiate", ""]), value(values.clone())).prop_map(|(s, v)| Auth::Scheme(s, v)),
        1 => (value(values.clone()), value(values)).prop_map(|(a, b)| Auth::Twice(a, b)),
    ]
    .sboxed()
}

fn push_auth(p: &mut Probe, a: &Auth) {
    use base64::Engine;
    let b64 = |b: &[u8]| {
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes()
    };
    let mut put = |v: Vec<u8>| p.headers.push(("Authorization".into(), header_safe(v)));
    match a {
        Auth::None => {}
        Auth::Basic(id, secret) => {
            let mut creds = form_encode(id).into_bytes();
            creds.push(b':');
            creds.extend_from_slice(form_encode(secret).as_bytes());
            let mut v = b"Basic ".to_vec();
            v.extend(b64(&creds));
            put(v);
        }
        Auth::BasicJunk(v) => {
            let mut h = b"Basic ".to_vec();
            h.extend_from_slice(v);
            put(h);
        }
        Auth::Scheme(s, v) => {
            let mut h = s.as_bytes().to_vec();
            h.push(b' ');
            h.extend_from_slice(v);
            put(h);
        }
        Auth::Twice(a, b) => {
            let mut h = b"Bearer ".to_vec();
            h.extend_from_slice(a);
            put(h);
            let mut h = b"Bearer ".to_vec();
            h.extend_from_slice(b);
            put(h);
        }
    }
}

/// Content types, plainest (the right one) first. `None` sends no header.
fn content_type(right: &'static str) -> S<Option<&'static str>> {
    prop_oneof![
        6 => Just(Some(right)),
        1 => select(vec![
            None,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
            Some("APPLICATION/X-WWW-FORM-URLENCODED"),
            Some("application/json"),
            Some("application/json; charset=utf-16"),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some("application/x-www-form-urlencoded, application/json"),
            Some(""),
            Some("application/jwt"),
        ]),
    ]
    .sboxed()
}

fn method(right: &'static str) -> S<&'static str> {
    prop_oneof![
        9 => Just(right),
        1 => select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    ]
    .sboxed()
}

const TOKEN_KEYS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "resource",
    "client_assertion",
    "client_assertion_type",
    "assertion",
    "username",
    "password",
    "device_code",
    "subject_token",
];

fn oauth_values(v: &Vocabulary) -> Vec<String> {
    let mut vals: Vec<String> = [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
        "implicit",
        "S256",
        "plain",
        "code",
        "token",
        "openid",
        "mcp:tools",
        "offline_access",
        "https://evil.authconform.test/cb",
        "http://127.0.0.1:1/cb",
        "https://not-served.authconform.test/mcp",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Always two slots, filled or not: the list's length must not depend on the target, or
    // the same seed and case would pick different values on targets with and without a client.
    vals.push(
        v.client_id
            .clone()
            .unwrap_or_else(|| "authconform-no-client".into()),
    );
    vals.push(
        v.redirect_uri
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:33418/cb".into()),
    );
    vals
}

/// Where a token request's parameters travel.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Carrier {
    Form,
    Json,
    Query,
    Both,
}

/// Token endpoint requests (O21 3.2). None can be valid: codes, refresh tokens and secrets are
/// made up, so nothing may be issued for any of them.
pub fn token(v: &Vocabulary) -> S<Probe> {
    let values = oauth_values(v);
    (
        method("POST"),
        params(TOKEN_KEYS, values.clone(), 10),
        prop_oneof![6 => Just(Carrier::Form), 1 => Just(Carrier::Json), 1 => Just(Carrier::Query), 1 => Just(Carrier::Both)],
        content_type("application/x-www-form-urlencoded"),
        auth(values),
    )
        .prop_map(|(m, ps, carrier, ct, a)| {
            let mut p = Probe::new(Base::Token, m);
            match carrier {
                Carrier::Form => p.body = Some(render_pairs(&ps)),
                Carrier::Json => p.body = Some(render_json(&ps)),
                Carrier::Query => p.suffix = format!("?{}", render_query(&ps)),
                Carrier::Both => {
                    p.suffix = format!("?{}", render_query(&ps));
                    p.body = Some(render_pairs(&ps));
                }
            }
            if let Some(ct) = ct {
                p.headers.push(("Content-Type".into(), ct.as_bytes().to_vec()));
            }
            push_auth(&mut p, &a);
            p.invalid = Some("made-up codes, refresh tokens and client secrets".into());
            p
        })
        .sboxed()
}

const REGISTER_KEYS: &[&str] = &[
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "client_name",
    "client_uri",
    "logo_uri",
    "scope",
    "contacts",
    "tos_uri",
    "policy_uri",
    "jwks_uri",
    "jwks",
    "software_id",
    "software_version",
    "software_statement",
    "application_type",
];

const ATTACK_URIS: &[&str] = &[
    "http://127.0.0.1:33418/cb",
    "https://client.authconform.test/cb",
    "javascript:alert(1)",
    "data:text/html,<acprobe>",
    "https://client.authconform.test/cb#frag",
    "http://evil.authconform.test/cb",
    "/relative/cb",
    "not a uri",
    "https://client.authconform.test@evil.authconform.test/cb",
    "",
];

/// A JSON value for a metadata member, plainest (a string) first.
fn json_value() -> S<serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        4 => value(vec!["none".into(), "authorization_code".into(), "code".into(), "client_secret_basic".into(), "native".into()])
            .prop_map(|b| Value::String(String::from_utf8_lossy(&b).into_owned())),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => select(ATTACK_URIS.to_vec()).prop_map(Value::from),
    ];
    // Two levels of nesting, built by hand: prop_recursive's strategy is not Send.
    let leaf = leaf.sboxed();
    let nest = |inner: S<Value>| {
        prop_oneof![
            3 => inner.clone(),
            1 => vec(inner.clone(), 0..4).prop_map(Value::Array),
            1 => vec(("[a-z_]{1,10}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
        .sboxed()
    };
    nest(nest(leaf))
}

/// The members of a registration body as written, duplicates kept (a JSON object with a
/// repeated name is itself a probe).
#[derive(Clone, Debug, PartialEq)]
enum RegBody {
    Object(Vec<(String, serde_json::Value)>),
    Text(&'static str),
    Bytes(Vec<u8>),
    Nested(usize),
    Form(Vec<Param>),
}

/// Dynamic Client Registration requests (RFC 7591 3.1). Some are certainly invalid (the body is
/// no JSON object, `redirect_uris` is not an array of strings, a redirect URI has a fragment or
/// a script scheme): those must not yield a client.
pub fn register(v: &Vocabulary) -> S<Probe> {
    let redirects = prop_oneof![
        3 => vec(select(ATTACK_URIS.to_vec()).prop_map(serde_json::Value::from), 0..4).prop_map(serde_json::Value::Array),
        1 => json_value(),
    ];
    let member = prop_oneof![
        2 => redirects.prop_map(|r| ("redirect_uris".to_string(), r)),
        5 => (select(REGISTER_KEYS.to_vec()), json_value()).prop_map(|(k, v)| (k.to_string(), v)),
        1 => ("[a-z_]{1,12}", json_value()),
        1 => (select(vec!["client_name", "client_uri", "logo_uri"]), (1usize..=64)).prop_map(|(k, n)| (k.to_string(), serde_json::Value::from("A".repeat(n * 1024)))),
    ];
    let body = prop_oneof![
        8 => vec(member, 0..8).prop_map(RegBody::Object),
        1 => select(vec!["[]", "null", "\"x\"", "1", "true", "{", "{\"redirect_uris\":", "\u{feff}{}", "{}}", "", "{\"a\":1,}"]).prop_map(RegBody::Text),
        1 => select(vec![vec![0xff, b'{', b'}'], b"{\"client_name\":\"\xff\xfe\"}".to_vec()]).prop_map(RegBody::Bytes),
        1 => (1usize..3000).prop_map(RegBody::Nested),
        1 => params(REGISTER_KEYS, vec!["http://127.0.0.1:1/cb".into()], 4).prop_map(RegBody::Form),
    ];
    let values = oauth_values(v);
    (
        method("POST"),
        body,
        content_type("application/json"),
        prop_oneof![6 => Just(Auth::None), 1 => auth(values)],
    )
        .prop_map(|(m, body, ct, a)| {
            let mut p = Probe::new(Base::Register, m);
            let (bytes, invalid) = render_registration(&body);
            p.body = Some(bytes);
            p.invalid = invalid;
            if let Some(ct) = ct {
                p.headers
                    .push(("Content-Type".into(), ct.as_bytes().to_vec()));
            }
            push_auth(&mut p, &a);
            p
        })
        .sboxed()
}

fn render_registration(body: &RegBody) -> (Vec<u8>, Option<String>) {
    match body {
        RegBody::Object(members) => {
            let mut s = String::from("{");
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&serde_json::Value::from(k.as_str()).to_string());
                s.push(':');
                s.push_str(&v.to_string());
            }
            s.push('}');
            // With duplicate names a server may keep either value: judge only what holds for
            // every member of that name.
            let redirects: Vec<&serde_json::Value> = members
                .iter()
                .filter(|(k, _)| k == "redirect_uris")
                .map(|(_, v)| v)
                .collect();
            let invalid = (!redirects.is_empty())
                .then(|| {
                    redirects
                        .iter()
                        .map(|r| redirect_uris_invalid(r))
                        .collect::<Option<Vec<_>>>()
                })
                .flatten()
                .map(|why| why.join("; "));
            (s.into_bytes(), invalid)
        }
        // RFC 8259 8.1 lets a parser ignore a byte order mark: `\u{feff}{}` may be read as `{}`.
        RegBody::Text(t) => (
            t.as_bytes().to_vec(),
            (!t.starts_with('\u{feff}')).then(|| "the body is not a JSON object".into()),
        ),
        RegBody::Bytes(b) => (b.clone(), Some("the body is not UTF-8 JSON".into())),
        RegBody::Nested(d) => (
            format!("{}{}", "[".repeat(*d), "]".repeat(*d)).into_bytes(),
            Some("the body is a JSON array, not an object".into()),
        ),
        RegBody::Form(ps) => (
            render_pairs(ps),
            Some("the body is form-encoded, not JSON".into()),
        ),
    }
}

/// Why a `redirect_uris` value is certainly invalid (RFC 7591 2, O21 2.3.1), or None when a
/// server could accept it.
fn redirect_uris_invalid(v: &serde_json::Value) -> Option<String> {
    let Some(items) = v.as_array() else {
        return Some("redirect_uris is not an array".into());
    };
    for it in items {
        let Some(s) = it.as_str() else {
            return Some("redirect_uris holds a non-string".into());
        };
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("javascript:") || lower.starts_with("data:") {
            return Some(format!("redirect URI {s:?} has a script scheme"));
        }
        if s.contains('#') {
            return Some(format!("redirect URI {s:?} has a fragment"));
        }
    }
    None
}

const AUTHORIZE_KEYS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
    "prompt",
    "nonce",
    "response_mode",
    "request",
    "request_uri",
];

/// Authorization requests (O21 4.1.1), sent without a login session: no code may be issued,
/// and no redirect may go to an unregistered URI.
pub fn authorize(v: &Vocabulary) -> S<Probe> {
    let values = oauth_values(v);
    (
        prop_oneof![9 => Just("GET"), 1 => Just("POST")],
        params(AUTHORIZE_KEYS, values, 12),
    )
        .prop_map(|(m, ps)| {
            let mut p = Probe::new(Base::Authorize, m);
            if m == "POST" {
                p.body = Some(render_pairs(&ps));
                p.headers.push((
                    "Content-Type".into(),
                    b"application/x-www-form-urlencoded".to_vec(),
                ));
            } else {
                p.suffix = format!("?{}", render_query(&ps));
            }
            p.invalid = Some("no user is logged in".into());
            p
        })
        .sboxed()
}

/// Metadata documents (RFC 8414 3, RFC 9728 3): path suffixes, methods, `Accept` values.
pub fn metadata(v: &Vocabulary) -> S<Probe> {
    let bases = if v.metadata.is_empty() {
        vec![Base::AsMetadata]
    } else {
        v.metadata.clone()
    };
    let suffix = prop_oneof![
        4 => Just(String::new()),
        3 => select(vec![
            "/", "//", "/..", "/..%2f..", "/%2e%2e/%2e%2e/etc/passwd", "%00", "/%00", "/x", ".json",
            "%20", "/%C3%A9", "/%ff", "/%3Cacprobe%3E", "?x=%3Cacprobe%3E", "/%22%3E%3Cacprobe%3E", ";x=1",
            "/.well-known/oauth-authorization-server", "%2f", "~", "/%252e%252e",
        ]).prop_map(str::to_string),
        1 => (1usize..=64).prop_map(|k| format!("/{}", "a".repeat(k * 128))),
        1 => "(/[a-zA-Z0-9%._~-]{1,12}){1,4}",
    ];
    (
        select(bases),
        prop_oneof![6 => Just("GET"), 1 => select(vec!["HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH"])],
        suffix,
        select(vec![None, Some("application/json"), Some("application/xml"), Some("text/html"), Some("*/*"), Some("application/json;q=0, */*;q=0")]),
    )
        .prop_map(|(base, m, suffix, accept)| {
            let mut p = Probe::new(base, m);
            p.suffix = suffix;
            if let Some(a) = accept {
                p.headers.push(("Accept".into(), a.as_bytes().to_vec()));
            }
            p
        })
        .sboxed()
}

/// MCP requests with every shape of bad bearer credential (RFC 6750 2, O21 5.1): none is a
/// token the AS issued, so none may be served.
pub fn resource(_v: &Vocabulary) -> S<Probe> {
    let token = prop_oneof![
        3 => "[A-Za-z0-9._~+/=-]{1,64}".prop_map(String::into_bytes),
        1 => strs(&[
            "",
            " ",
            "a b",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo",
            "eyJ",
            "...",
            MARKER,
        ]),
        1 => (1usize..=64).prop_map(|k| vec![b'A'; k * 1024]),
        1 => "\\PC{1,12}".prop_map(String::into_bytes),
        1 => select(vec![vec![0xff, 0xfe], vec![b'a', 0x80, b'b']]),
    ];
    #[derive(Clone, Debug, PartialEq)]
    enum Cred {
        Header(&'static str, Vec<u8>),
        Twice(Vec<u8>, Vec<u8>),
        Query(Vec<u8>),
        Form(Vec<u8>),
        None,
    }
    let cred = prop_oneof![
        6 => (select(vec!["Bearer", "bearer", "BEARER", "Bearer ", "Basic", "DPoP", "Token", ""]), token.clone()).prop_map(|(s, t)| Cred::Header(s, t)),
        1 => (token.clone(), token.clone()).prop_map(|(a, b)| Cred::Twice(a, b)),
        1 => token.clone().prop_map(Cred::Query),
        1 => token.prop_map(Cred::Form),
        1 => Just(Cred::None),
    ];
    let body = select(vec![
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"authconform-fuzz","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"<acprobe>"}}}"#,
        "",
        "{",
        "[]",
    ]);
    (
        prop_oneof![8 => Just("POST"), 1 => Just("GET"), 1 => Just("DELETE")],
        cred,
        body,
        prop::option::weighted(0.1, "[a-f0-9-]{1,40}"),
    )
        .prop_map(|(m, cred, body, session)| {
            let mut p = Probe::new(Base::Resource, m);
            p.headers.push((
                "Accept".into(),
                b"application/json, text/event-stream".to_vec(),
            ));
            if m == "POST" {
                p.headers
                    .push(("Content-Type".into(), b"application/json".to_vec()));
                p.body = Some(body.as_bytes().to_vec());
            }
            let bearer = |s: &str, t: &[u8]| {
                let mut h = s.as_bytes().to_vec();
                if !s.is_empty() {
                    h.push(b' ');
                }
                h.extend_from_slice(t);
                header_safe(h)
            };
            match cred {
                Cred::Header(s, t) => p.headers.push(("Authorization".into(), bearer(s, &t))),
                Cred::Twice(a, b) => {
                    p.headers
                        .push(("Authorization".into(), bearer("Bearer", &a)));
                    p.headers
                        .push(("Authorization".into(), bearer("Bearer", &b)));
                }
                Cred::Query(t) => p.suffix = format!("?access_token={}", form_encode(&t)),
                Cred::Form(t) => {
                    p.headers.retain(|(n, _)| n != "Content-Type");
                    p.headers.push((
                        "Content-Type".into(),
                        b"application/x-www-form-urlencoded".to_vec(),
                    ));
                    p.body = Some(format!("access_token={}", form_encode(&t)).into_bytes());
                }
                Cred::None => {}
            }
            if let Some(s) = session {
                p.headers.push(("Mcp-Session-Id".into(), s.into_bytes()));
            }
            p.invalid = Some("no credential the AS issued".into());
            p
        })
        .sboxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    fn sample(s: &S<Probe>, n: usize) -> Vec<Probe> {
        let mut r = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        (0..n)
            .map(|_| s.new_tree(&mut r).unwrap().current())
            .collect()
    }

    #[test]
    fn token_requests_cover_the_shapes_the_issue_names() {
        let v = Vocabulary {
            client_id: Some("cid".into()),
            redirect_uri: Some("http://127.0.0.1:9/cb".into()),
            metadata: vec![],
        };
        let ps = sample(&token(&v), 2000);
        let body = |p: &Probe| p.body.clone().unwrap_or_default();
        assert!(
            ps.iter().any(|p| std::str::from_utf8(&body(p)).is_err()),
            "non-UTF-8 bodies"
        );
        assert!(
            ps.iter().any(|p| body(p).len() > 32 * 1024),
            "oversized values"
        );
        assert!(ps.iter().any(|p| p.method != "POST"), "other methods");
        assert!(ps.iter().any(|p| {
            p.headers
                .iter()
                .filter(|(n, _)| n == "Authorization")
                .count()
                == 2
        }));
        assert!(
            ps.iter().any(|p| {
                let b = String::from_utf8_lossy(&body(p)).into_owned();
                b.matches("grant_type=").count() >= 2
            }),
            "duplicated parameters"
        );
        assert!(
            ps.iter()
                .any(|p| String::from_utf8_lossy(&body(p)).contains("client_id=cid"))
        );
        assert!(ps.iter().all(|p| p.invalid.is_some()));
    }

    #[test]
    fn registration_invalidity_is_judged_per_member() {
        let obj = |v: serde_json::Value| RegBody::Object(vec![("redirect_uris".into(), v)]);
        let (_, why) = render_registration(&obj(serde_json::json!("https://x/cb")));
        assert!(why.unwrap().contains("not an array"));
        let (_, why) = render_registration(&obj(serde_json::json!(["javascript:alert(1)"])));
        assert!(why.unwrap().contains("script scheme"));
        let (_, why) = render_registration(&obj(serde_json::json!(["http://127.0.0.1:9/cb"])));
        assert!(why.is_none());
        // A duplicate member with a valid value: a server keeping that one is right.
        let dup = RegBody::Object(vec![
            ("redirect_uris".into(), serde_json::json!("x")),
            (
                "redirect_uris".into(),
                serde_json::json!(["http://127.0.0.1:9/cb"]),
            ),
        ]);
        assert!(render_registration(&dup).1.is_none());
    }

    #[test]
    fn shrinking_reaches_a_plain_request() {
        let v = Vocabulary::default();
        let s = token(&v);
        let mut r = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
        );
        // Find a case with a non-UTF-8 body, then shrink while the body stays non-UTF-8.
        let mut tree = loop {
            let t = s.new_tree(&mut r).unwrap();
            let p = t.current();
            if p.body
                .as_deref()
                .is_some_and(|b| std::str::from_utf8(b).is_err())
            {
                break t;
            }
        };
        let fails = |p: &Probe| {
            p.body
                .as_deref()
                .is_some_and(|b| std::str::from_utf8(b).is_err())
        };
        let mut best = tree.current();
        let mut steps = 0;
        while steps < 2000 && tree.simplify() {
            steps += 1;
            loop {
                let c = tree.current();
                if fails(&c) {
                    best = c;
                    break;
                }
                if !tree.complicate() {
                    break;
                }
            }
        }
        assert!(
            best.size() < 200,
            "shrunk to {} bytes: {best:?}",
            best.size()
        );
    }
}
