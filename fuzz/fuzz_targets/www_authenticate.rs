//! `WWW-Authenticate` field values (RFC 9110 §11.6.1), as a 401/403 from the server under test
//! sends them: `parse`, `parse_all`, and the readers built on them (the `resource_metadata`
//! parameter discovery follows, and the `expect` step's challenge check).
//!
//! Input: the field values, one per line (the HTTP client decodes values lossily, so do we).
//!
//! Properties:
//! - nothing panics; an error's offset lies within the value; over `MAX_LEN` is always an error;
//! - a parsed value round-trips: serialized again (every value quoted), it parses to the same
//!   challenges; schemes and parameter names are non-empty tokens; token68 and parameters are
//!   exclusive;
//! - `parse_all` is `parse` of each field, concatenated (or an error when any field is one);
//! - `resource_metadata_param` is the first Bearer challenge's `resource_metadata`;
//! - the `expect` step's `challenges` fails (with the reason recorded) exactly when there is no
//!   field, no challenge, or a field that does not parse.
#![no_main]

mod common;

use authconform_core::judge::challenge::{challenges, resource_metadata_param};
use authconform_core::verdict::{Finding, Findings, Stop};
use authconform_core::www_authenticate::{Challenge, MAX_LEN, parse, parse_all};
use libfuzzer_sys::fuzz_target;

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Every parameter value quoted, as a server could have sent it.
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

fn check_one(v: &str) -> Option<Vec<Challenge>> {
    match parse(v) {
        Err(e) => {
            assert!(
                e.offset <= v.len().max(MAX_LEN),
                "offset {} past {v:?}",
                e.offset
            );
            assert!(v.len() > MAX_LEN || e.offset <= v.len());
            None
        }
        Ok(cs) => {
            assert!(v.len() <= MAX_LEN);
            for c in &cs {
                assert!(
                    !c.scheme.is_empty() && c.scheme.chars().all(is_tchar),
                    "{c:?}"
                );
                assert!(c.token68.is_none() || c.params.is_empty(), "{c:?}");
                for (n, _) in &c.params {
                    assert!(!n.is_empty() && n.chars().all(is_tchar), "{c:?}");
                }
                for (n, _) in &c.params {
                    assert!(c.param(n).is_some());
                    assert!(c.param_count(n) >= 1);
                }
            }
            let again = serialize(&cs);
            if again.len() <= MAX_LEN {
                assert_eq!(
                    parse(&again).as_ref(),
                    Ok(&cs),
                    "round trip of {v:?} through {again:?}"
                );
            }
            Some(cs)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();

    let mut each: Option<Vec<Challenge>> = Some(Vec::new());
    for v in &values {
        match (check_one(v), each.as_mut()) {
            (Some(mut cs), Some(all)) => all.append(&mut cs),
            _ => each = None,
        }
    }
    let all = parse_all(values.iter().copied());
    let total: usize = values.iter().map(|v| v.len()).sum();
    match (&all, &each) {
        (Ok(a), Some(e)) => assert_eq!(a, e),
        (Ok(_), None) => panic!("parse_all accepted fields that parse rejects"),
        (Err(_), Some(_)) => assert!(total > MAX_LEN, "parse_all rejected parseable fields"),
        (Err(_), None) => {}
    }

    // The readers that take a whole response.
    let headers: Vec<(&str, &str)> = values.iter().map(|v| ("WWW-Authenticate", *v)).collect();
    let r = common::response(401, &headers, b"");
    let want = all.as_ref().ok().and_then(|cs| {
        cs.iter()
            .filter(|c| c.is_scheme("bearer"))
            .find_map(|c| c.param("resource_metadata").map(str::to_string))
    });
    assert_eq!(resource_metadata_param(&r), want);

    let mut f = Findings::default();
    match challenges(&mut f, &r) {
        Ok(cs) => assert_eq!(Ok(&cs), all.as_ref()),
        Err(Stop::Fail(m)) => {
            assert!(all.as_ref().map_or(true, |c| c.is_empty()), "{m}");
            assert!(f.0.contains(&Finding::Fail(m.clone())), "{m} not recorded");
        }
        Err(other) => panic!("challenges stopped with {other:?}"),
    }
});
