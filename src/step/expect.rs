//! Declarative expectations over one response: status, headers, content type, JSON Schema,
//! JSON pointer values, OAuth error codes and the Bearer challenge.

use serde_json::Value;

use super::context::{CaseCtx, StepResult, Stop};
use crate::case::model::{Absent, ChallengeExpect, Expect, JsonExpect};
use crate::http::Response;
use crate::www_authenticate;

/// Which error-format case owns the shape of the error answers a step may get: a refusal a case
/// asks for that comes with another shape than its expectation names is that case's finding,
/// not this one's (issue: one deviation must not fail every requirement that provokes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOwner {
    /// Token, revocation and introspection errors: status, media type and `error` code
    /// (OAuth 2.1 §3.2.4).
    Token,
    /// The MCP endpoint's Bearer challenge `error` parameter: a SHOULD (RFC 6750 §3.1, OAuth
    /// 2.1 §5.3.1); the 401/403 status stays each case's own requirement (MCP §9.2, §10).
    Resource,
}

impl ErrorOwner {
    /// The case whose requirement the shape is.
    pub fn case(self) -> &'static str {
        match self {
            ErrorOwner::Token => "tok-error-format",
            ErrorOwner::Resource => "rs-401-invalid-token",
        }
    }
}

/// What a token-endpoint answer issued, if anything: a refusal issues none of these.
const ISSUED: [&str; 3] = ["/access_token", "/refresh_token", "/id_token"];

/// Judges `e` on `r`. With an `owner`, a refusal the expectation asks for that arrived with
/// another shape passes this step with a note naming the owner (unless the running case owns
/// error shapes itself): the case's requirement, a refusal, held.
pub fn check_owned(
    ctx: &mut CaseCtx<'_>,
    url: &str,
    r: &Response,
    e: &Expect,
    owner: Option<ErrorOwner>,
) -> StepResult {
    let owner = owner.filter(|o| !ctx.owns_error_shape(o.case()));
    match owner {
        Some(ErrorOwner::Token) => {
            if e.asks_refusal() && is_refusal(r) {
                let shape = token_error_shape(ctx, r, e)?;
                if !shape.is_empty() {
                    note_shape(ctx, shape);
                    let mut rest = e.clone();
                    rest.status = None;
                    rest.content_type = None;
                    rest.error = None;
                    rest.json_object = false;
                    rest.json.retain(|j| !j.pointer.starts_with("/error"));
                    check(ctx, url, r, &rest)?;
                    ctx.pass(format!("refused ({}), nothing issued", r.status));
                    return Ok(());
                }
            }
            check(ctx, url, r, e)
        }
        Some(ErrorOwner::Resource) => {
            let Some(c) = e
                .challenge
                .as_ref()
                .filter(|c| c.params.contains_key("error"))
            else {
                return check(ctx, url, r, e);
            };
            let want = &c.params["error"];
            let values: Vec<&str> = r.header_all("www-authenticate").collect();
            let got = www_authenticate::parse_all(values).ok().and_then(|cs| {
                cs.iter()
                    .find(|x| x.is_scheme(c.scheme.as_deref().unwrap_or("Bearer")))
                    .map(|x| x.param("error").map(str::to_string))
            });
            match got {
                // The challenge is there but its `error` differs or is missing: a SHOULD
                // of another case; the rest of the expectation is still this case's.
                Some(g) if g.as_deref() != Some(want.as_str()) => {
                    ctx.note(format!(
                        "the challenge's error is {}, not {want:?}: a SHOULD judged by {}",
                        g.map_or("absent".to_string(), |g| format!("{g:?}")),
                        ErrorOwner::Resource.case()
                    ));
                    let mut rest = e.clone();
                    if let Some(c) = rest.challenge.as_mut() {
                        c.params.remove("error");
                    }
                    check(ctx, url, r, &rest)
                }
                _ => check(ctx, url, r, e),
            }
        }
        None => check(ctx, url, r, e),
    }
}

/// A refusal: a 4xx that issued nothing. A 429 is not one (`check` makes it "could not tell"),
/// nor is a 5xx (the server failed; it did not decide).
fn is_refusal(r: &Response) -> bool {
    let doc = r.json();
    let issued = ISSUED
        .iter()
        .any(|p| doc.as_ref().and_then(|d| d.pointer(p)).is_some());
    (400..500).contains(&r.status) && r.status != 429 && !issued
}

/// Did a token-endpoint answer refuse (a 4xx other than 429, with nothing issued)? `Some` with
/// how its shape differs from 400 and one of `codes` (empty when it matches): named checks that
/// ask for a refusal judge it as a `token` step's expectation is judged, and leave the shape to
/// tok-error-format (see [`note_shape`]).
pub fn token_refused(r: &Response, codes: &[&str]) -> Option<Vec<String>> {
    let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    is_refusal(r).then(|| shape_deviations(r, Some(&[400]), None, Some(&codes)))
}

/// Notes a refusal's shape that differs from the one asked for, naming the case that owns it.
pub fn note_shape(ctx: &mut CaseCtx<'_>, deviations: Vec<String>) {
    if !deviations.is_empty() {
        ctx.note(format!(
            "refused, but with {}: the shape of the error is {}'s requirement, judged there",
            deviations.join(", "),
            ErrorOwner::Token.case()
        ));
    }
}

/// How a refusal's shape differs from what the expectation names (status, media type,
/// `error` code); empty when it matches.
fn token_error_shape(ctx: &CaseCtx<'_>, r: &Response, e: &Expect) -> Result<Vec<String>, Stop> {
    let codes: Option<Vec<String>> = e
        .error
        .as_ref()
        .map(|codes| {
            codes
                .iter()
                .map(|c| ctx.expand(c).map_err(Stop::Error))
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    Ok(shape_deviations(
        r,
        e.status.as_deref(),
        e.content_type.as_deref(),
        codes.as_deref(),
    ))
}

/// The parts of an error answer's shape that differ from the allowed statuses, media type and
/// `error` codes (each checked only when given).
fn shape_deviations(
    r: &Response,
    statuses: Option<&[u16]>,
    content_type: Option<&str>,
    codes: Option<&[String]>,
) -> Vec<String> {
    let mut off = Vec::new();
    if let Some(allowed) = statuses
        && !allowed.contains(&r.status)
    {
        off.push(format!("status {} (expected one of {allowed:?})", r.status));
    }
    if let Some(ct) = content_type
        && !r.media_type().is_some_and(|m| m.eq_ignore_ascii_case(ct))
    {
        off.push(format!(
            "Content-Type {} (expected {ct})",
            r.media_type().unwrap_or_else(|| "absent".into())
        ));
    }
    if let Some(codes) = codes {
        match r
            .json()
            .as_ref()
            .and_then(|d| d.get("error")?.as_str().map(str::to_string))
        {
            Some(c) if codes.contains(&c) => {}
            Some(c) => off.push(format!("error {c:?} (expected one of {codes:?})")),
            None => off.push(format!(
                "no JSON `error` member (expected one of {codes:?})"
            )),
        }
    }
    off
}

pub fn check(ctx: &mut CaseCtx<'_>, url: &str, r: &Response, e: &Expect) -> StepResult {
    // A rate limit says nothing about the requirement: the suite could not tell.
    if let Some(limit) = r.rate_limited()
        && !e.status.as_ref().is_some_and(|s| s.contains(&429))
    {
        return Err(Stop::Error(format!(
            "{url} rate-limited the request ({limit}); run fewer cases at once or against a fresh server"
        )));
    }
    // First what must not be there: "tokens were issued" says more than "status 200".
    if !e.json_absent.is_empty() {
        let doc = r.json();
        for p in &e.json_absent {
            if doc.as_ref().and_then(|d| d.pointer(p)).is_some() {
                return ctx.fail(format!(
                    "{url} answered {} with {p} present: the request was accepted",
                    r.status
                ));
            }
        }
        ctx.pass(format!("no {} in the response", e.json_absent.join(", ")));
    }
    if let Some(allowed) = &e.status {
        if allowed.contains(&r.status) {
            ctx.pass(format!("status {} (expected one of {allowed:?})", r.status));
        } else {
            return ctx.fail(format!(
                "{url} answered {} (expected one of {allowed:?})",
                r.status
            ));
        }
    }
    if e.no_5xx {
        if r.status >= 500 {
            return ctx.fail(format!("{url} answered {} (a server error)", r.status));
        }
        ctx.pass(format!("status {} (no server error)", r.status));
    }
    for h in &e.headers_present {
        if r.header(h).is_none() {
            return ctx.fail(format!("the response has no {h} header"));
        }
        ctx.pass(format!("{h} header present"));
    }
    for h in &e.headers_absent {
        if let Some(v) = r.header(h) {
            return ctx.fail(format!("the response has a {h} header ({v:?})"));
        }
        ctx.pass(format!("no {h} header"));
    }
    for (h, want) in &e.header_directives {
        let values: Vec<&str> = r.header_all(h).collect();
        if values.is_empty() {
            return ctx.fail(format!("the response has no {h} header (expected {want})"));
        }
        let has = values
            .iter()
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case(want));
        if !has {
            return ctx.fail(format!("{h} is {:?}, without {want}", values.join(", ")));
        }
        ctx.pass(format!("{h}: {}", values.join(", ")));
    }
    if let Some(ct) = &e.content_type {
        match r.media_type() {
            Some(m) if m.eq_ignore_ascii_case(ct) => ctx.pass(format!("Content-Type {m}")),
            Some(m) => return ctx.fail(format!("Content-Type is {m:?}, expected {ct}")),
            None => return ctx.fail(format!("no Content-Type header (expected {ct})")),
        }
    }
    let needs_json = e.json_object || e.schema.is_some() || !e.json.is_empty() || e.error.is_some();
    let doc = if needs_json {
        match r.json() {
            Some(v) => Some(v),
            None if r.truncated => {
                return ctx.fail(format!(
                    "the body exceeds the {} byte cap or never finished",
                    ctx.env.http.config().max_body
                ));
            }
            None => return ctx.fail("the body is not JSON"),
        }
    } else {
        None
    };
    if e.json_object {
        if !doc.as_ref().is_some_and(Value::is_object) {
            return ctx.fail("the body is JSON but not an object");
        }
        ctx.pass("the body is a JSON object");
    }
    if let (Some(schema), Some(doc)) = (&e.schema, &doc) {
        schema_check(ctx, schema, doc)?;
    }
    if let Some(doc) = &doc {
        for j in &e.json {
            json_check(ctx, doc, j)?;
        }
    }
    if let (Some(codes), Some(doc)) = (&e.error, &doc) {
        let codes: Vec<String> = codes
            .iter()
            .map(|c| ctx.expand(c).map_err(Stop::Error))
            .collect::<Result<_, _>>()?;
        match doc.get("error").and_then(Value::as_str) {
            Some(c) if codes.iter().any(|x| x == c) => ctx.pass(format!("error code {c:?}")),
            Some(c) => return ctx.fail(format!("error code {c:?}, expected one of {codes:?}")),
            None => return ctx.fail(format!("no `error` member, expected one of {codes:?}")),
        }
    }
    if let Some(c) = &e.challenge {
        challenge_check(ctx, r, c)?;
    }
    Ok(())
}

fn schema_check(ctx: &mut CaseCtx<'_>, name: &str, doc: &Value) -> StepResult {
    let text = crate::case::schema_text(name)
        .ok_or_else(|| Stop::Error(format!("schema {name} is not shipped")))?;
    let schema: Value =
        serde_json::from_str(text).map_err(|e| Stop::Error(format!("schema {name}: {e}")))?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| Stop::Error(format!("schema {name}: {e}")))?;
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .take(10)
        .map(|e| {
            let at = e.instance_path().as_str().to_string();
            format!("{}: {e}", if at.is_empty() { "/".into() } else { at })
        })
        .collect();
    if errors.is_empty() {
        ctx.pass(format!("the document satisfies {name}"));
        Ok(())
    } else {
        for e in &errors[1..] {
            ctx.note(format!("also: {e}"));
        }
        ctx.fail(format!("violates {name}: {}", errors[0]))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn toml_to_json(ctx: &CaseCtx<'_>, v: &toml::Value) -> Result<Value, Stop> {
    Ok(match v {
        toml::Value::String(s) => Value::String(ctx.expand(s).map_err(Stop::Error)?),
        other => serde_json::to_value(other).map_err(|e| Stop::Error(e.to_string()))?,
    })
}

fn json_check(ctx: &mut CaseCtx<'_>, doc: &Value, j: &JsonExpect) -> StepResult {
    let p = &j.pointer;
    let Some(v) = doc.pointer(p) else {
        return match j.absent {
            Absent::Fail => ctx.fail(format!("{p} is absent")),
            Absent::Pass => {
                ctx.pass(format!(
                    "{p} is absent (the rule applies only when present)"
                ));
                Ok(())
            }
            Absent::Skip => Err(Stop::Skip(format!(
                "{p} is absent: the feature is not offered"
            ))),
        };
    };
    if let Some(k) = &j.kind {
        if type_name(v) != k {
            return ctx.fail(format!(
                "{p} is a JSON {} ({v}), expected {k}",
                type_name(v)
            ));
        }
        ctx.pass(format!("{p} is a JSON {k}"));
    }
    if let Some(want) = &j.equals {
        let want = toml_to_json(ctx, want)?;
        if *v != want {
            return ctx.fail(format!("{p} is {v}, expected {want}"));
        }
        ctx.pass(format!("{p} is {want}"));
    }
    if let Some(other) = &j.not_equals {
        let other = toml_to_json(ctx, other)?;
        if *v == other {
            return ctx.fail(format!("{p} is unchanged"));
        }
        ctx.pass(format!("{p} differs from the earlier value"));
    }
    if let Some(item) = &j.contains {
        let item = toml_to_json(ctx, item)?;
        match v.as_array() {
            Some(a) if a.contains(&item) => ctx.pass(format!("{p} contains {item}")),
            Some(_) => return ctx.fail(format!("{p} ({v}) does not contain {item}")),
            None => return ctx.fail(format!("{p} is not an array ({v})")),
        }
    }
    if let Some(items) = &j.contains_none {
        let Some(a) = v.as_array() else {
            return ctx.fail(format!("{p} is not an array ({v})"));
        };
        for item in items {
            let item = toml_to_json(ctx, item)?;
            if a.contains(&item) {
                return ctx.fail(format!("{p} contains {item}"));
            }
        }
        ctx.pass(format!("{p} contains none of the forbidden values"));
    }
    if j.non_empty {
        let empty = match v {
            Value::Array(a) => a.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            return ctx.fail(format!("{p} is empty"));
        }
        ctx.pass(format!("{p} is not empty"));
    }
    Ok(())
}

/// The response's challenges, parsed; a malformed header is a failure with the parse position.
fn challenges(
    ctx: &mut CaseCtx<'_>,
    r: &Response,
) -> Result<Vec<www_authenticate::Challenge>, Stop> {
    ctx.judged(|f| authconform_core::judge::challenge::challenges(f, r))
}

fn challenge_check(ctx: &mut CaseCtx<'_>, r: &Response, e: &ChallengeExpect) -> StepResult {
    let all = challenges(ctx, r)?;
    let scheme = e.scheme.as_deref().unwrap_or("Bearer");
    let Some(c) = all.iter().find(|c| c.is_scheme(scheme)) else {
        let got: Vec<&str> = all.iter().map(|c| c.scheme.as_str()).collect();
        return ctx.fail(format!("no {scheme} challenge (schemes offered: {got:?})"));
    };
    ctx.pass(format!("{} challenge present", c.scheme));
    for p in &e.params_present {
        match c.param(p) {
            Some(v) if !v.is_empty() => ctx.pass(format!("challenge carries {p}={v:?}")),
            Some(_) => return ctx.fail(format!("challenge parameter {p} is empty")),
            None => return ctx.fail(format!("challenge has no {p} parameter")),
        }
    }
    for p in &e.params_absent {
        if let Some(v) = c.param(p) {
            return ctx.fail(format!("challenge carries {p}={v:?}"));
        }
        ctx.pass(format!("challenge has no {p} parameter"));
    }
    for (p, want) in &e.params {
        match c.param(p) {
            Some(v) if v == want => ctx.pass(format!("challenge {p}={v:?}")),
            Some(v) => return ctx.fail(format!("challenge {p}={v:?}, expected {want:?}")),
            None => {
                return ctx.fail(format!(
                    "challenge has no {p} parameter (expected {want:?})"
                ));
            }
        }
    }
    Ok(())
}
