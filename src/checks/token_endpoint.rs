//! Token endpoint responses (O21 3.2.3, 3.2.4; RFC 6749 A.12, A.17, §5.1) and robustness.

use std::collections::BTreeMap;

use authconform_core::judge;

use crate::http::Response;
use crate::step::{CaseCtx, Saved, StepResult, Stop};

/// The token response saved as `on` (the judgements check that it is a success).
fn token_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => Ok(response.clone()),
        _ => Err(Stop::Error(format!("`{on}` holds no token response"))),
    }
}

/// `tok-response-shape`: access_token and token_type Bearer; expires_in a number; scope a string.
pub fn response_shape(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::response_shape(f, &r))
}

/// `tok-jwt-assertion-aud-issuer`: a request the AS should accept; a proper `invalid_client`
/// refusal is a tolerated deviation, anything else a failure.
pub fn accepted_or_warn(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::accepted_or_warn(f, &r))
}

/// `tok-token-charset`: tokens use only visible ASCII (RFC 6749 A.12, A.17).
pub fn token_charset(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::token_charset(f, &r))
}

/// `code-concurrent-redeem`, `rt-concurrent`: of parallel redemptions of one single-use
/// credential, exactly one succeeds. With `args.presented` (the refresh token the parallel
/// refreshes presented, a template) the credential is single-use only under rotation (O21
/// 4.3.1): when no success carries a new refresh token the AS does not rotate and the case is
/// skipped (rotation is rt-rotation-public's); successes that all return one and the same new
/// refresh token keep one token family (a grace window): a warning; distinct new refresh
/// tokens fork the family: a failure.
pub fn one_of_parallel(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let all = ctx.parallel.clone();
    if all.len() < 2 {
        return Err(Stop::Error("no parallel responses to compare".into()));
    }
    let presented = match args.get("presented").and_then(toml::Value::as_str) {
        Some(p) => Some(ctx.expand(p).map_err(Stop::Error)?),
        None => None,
    };
    let successes: Vec<&Response> = all
        .iter()
        .filter(|r| r.status == 200 && r.json().is_some_and(|d| d.get("access_token").is_some()))
        .collect();
    let ok = successes.len();
    if ok >= 2
        && let Some(old) = &presented
    {
        let new: std::collections::BTreeSet<String> = successes
            .iter()
            .filter_map(|r| r.json()?.get("refresh_token")?.as_str().map(str::to_string))
            .filter(|rt| rt != old)
            .collect();
        match new.len() {
            0 => {
                return Err(Stop::Skip(format!(
                    "{ok} of {} parallel refreshes got tokens, but none carries a new refresh token: the AS does not rotate, so the refresh token is not single-use (rotation itself is rt-rotation-public's requirement)",
                    all.len()
                )));
            }
            1 => {
                ctx.warn(format!(
                    "{ok} of {} parallel refreshes got tokens, all with the same new refresh token: one token family (a grace window), not a fork",
                    all.len()
                ));
                return Ok(());
            }
            n => {
                return ctx.fail(format!(
                    "{ok} of {} parallel refreshes of one refresh token got tokens, with {n} different new refresh tokens: the token family forked (a race)",
                    all.len()
                ));
            }
        }
    }
    match ok {
        1 => {
            ctx.pass(format!(
                "exactly one of {} parallel requests succeeded",
                all.len()
            ));
            Ok(())
        }
        0 => Err(Stop::Error(format!(
            "none of {} parallel requests succeeded (statuses {:?}): nothing to judge",
            all.len(),
            all.iter().map(|r| r.status).collect::<Vec<_>>()
        ))),
        n => ctx.fail(format!(
            "{n} of {} parallel requests with one single-use credential got tokens (a race)",
            all.len()
        )),
    }
}

/// `tok-fuzz`: hostile bodies get a 4xx, never a 5xx or a hang.
pub async fn fuzz(ctx: &mut CaseCtx<'_>, _args: &BTreeMap<String, toml::Value>) -> StepResult {
    let endpoint = crate::step::discovery::as_endpoint(ctx, "token_endpoint").await?;
    let many: String = (0..10_000).map(|i| format!("p{i}=x&")).collect();
    let h = |what, body: Vec<u8>| super::Hostile {
        what,
        body,
        acceptance_fails: false,
    };
    let bodies = vec![
        h(
            "huge parameter",
            format!("grant_type=authorization_code&code={}", "A".repeat(200_000)).into_bytes(),
        ),
        h(
            "invalid UTF-8",
            b"grant_type=authorization_code&code=\xff\xfe\xfd".to_vec(),
        ),
        h(
            "percent-encoded invalid UTF-8",
            b"grant_type=authorization_code&code=%FF%FE".to_vec(),
        ),
        h(
            "NUL",
            b"grant_type=authorization_code%00&code=a%00b".to_vec(),
        ),
        h(
            "10k parameters",
            format!("{many}grant_type=authorization_code").into_bytes(),
        ),
        h("lone percent signs", b"grant_type=%&code=%zz%".to_vec()),
    ];
    let worst = super::hostile_bodies(
        ctx,
        &endpoint,
        "application/x-www-form-urlencoded",
        bodies,
        |_| false,
    )
    .await;
    match worst {
        Some(w) => ctx.fail(format!("the token endpoint broke on a hostile body: {w}")),
        None => Ok(()),
    }
}

/// What the AS says about itself that makes it an OpenID Provider: the OIDC discovery document
/// answered (with its own issuer), or its metadata lists the `openid` scope. `None` when it
/// claims no OIDC. Reads the discovery saved as `on`; when that one tried no OIDC URL (the
/// run's shared discovery stops at the first usable document), asks the OIDC URLs itself.
async fn claims_oidc(ctx: &mut CaseCtx<'_>, on: &str) -> Option<String> {
    let saved = ctx.discovery(on).ok().cloned();
    let tried_oidc = saved
        .as_ref()
        .is_some_and(|d| d.attempts.iter().any(|a| a.source.starts_with("oidc")));
    let mut found = saved.as_ref().and_then(oidc_claim);
    if found.is_none() && !tried_oidc {
        let own = crate::step::discovery::discover_as(ctx, None, "oidc").await;
        if let Ok(Saved::Discovery(d)) = own {
            found = oidc_claim(&d);
        }
    }
    found
}

fn oidc_claim(d: &authconform_core::metadata::Discovery) -> Option<String> {
    for a in &d.attempts {
        let Some(doc) = a.doc() else { continue };
        let issuer_ok = doc.get("issuer").and_then(|v| v.as_str()) == Some(d.identifier.as_str());
        if a.source.starts_with("oidc") && issuer_ok {
            return Some(format!("it serves OpenID Connect discovery at {}", a.url));
        }
        let lists_openid = doc
            .get("scopes_supported")
            .and_then(|v| v.as_array())
            .is_some_and(|s| s.iter().any(|x| x == "openid"));
        if lists_openid && issuer_ok {
            return Some(format!("its metadata at {} lists the openid scope", a.url));
        }
    }
    None
}

/// How accepting a broken assertion is graded (`args.rule` of [`jwt_assertion_graded`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum AssertionRule {
    /// RFC 7523 §3 says the AS MUST reject it: accepting fails.
    Must,
    /// RFC 7523 §3 allows it (jti is optional and replay checks are a MAY), OIDC Core §9 does
    /// not (for `private_key_jwt`: "jti REQUIRED", "These tokens MUST only be used once"): an
    /// AS that claims OpenID Connect fails, an OAuth-only AS is skipped, saying so.
    Oidc,
    /// Only RFC 7523's MAY applies (a jwt-bearer *grant* replayed; OIDC Core §9 is about client
    /// authentication): accepting skips, saying so.
    May,
}

/// `tok-jwt-assertion.replay` (rule `oidc`, the default) and the variants of
/// `tok-jwt-assertion`, `cc-jwt-assertion` and `cc-ext-jwt-bearer` (`jwt_assertion_graded`):
/// a broken or replayed assertion, saved as `on`. A refusal (a 4xx that issues nothing) passes,
/// its shape noted when it is not 400 with `args.error` (default `invalid_client`, RFC 7523
/// §3.2; `invalid_grant` for the grant, §3.1): the shape is tok-error-format's. A 5xx fails.
/// Accepting it is graded by `args.rule` (`must`, `oidc`, `may`; see [`AssertionRule`]);
/// `args.what` says what was sent. The grade depends on the spec the AS claims only for `oidc`.
pub async fn jwt_assertion_graded(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    asm: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    // Templates: a case with variants names each variant's rule (`${v.rule}`).
    let rule = ctx
        .expand(super::arg_str(args, "rule", "oidc"))
        .map_err(Stop::Error)?;
    let rule = match rule.as_str() {
        "must" => AssertionRule::Must,
        "oidc" => AssertionRule::Oidc,
        "may" => AssertionRule::May,
        other => {
            return Err(Stop::Error(format!(
                "args.rule {other:?}: expected must, oidc or may"
            )));
        }
    };
    let what = ctx
        .expand(super::arg_str(
            args,
            "what",
            "a replayed client assertion (same jti)",
        ))
        .map_err(Stop::Error)?;
    let code = super::arg_str(args, "error", "invalid_client").to_string();
    let r = token_response(ctx, on)?;
    super::tokens::not_rate_limited(&r, "the request")?;
    if let Some(mut shape) = crate::step::expect::token_refused(&r, &[code.as_str()]) {
        // O21 3.2.4: invalid_client MAY come with 401, so 401 is no deviation for it.
        if code == "invalid_client" && r.status == 401 {
            shape.retain(|d| !d.starts_with("status "));
        }
        crate::step::expect::note_shape(ctx, shape);
        // Only what the saved discovery shows: a refusal passes whatever the AS claims.
        let oidc = match rule {
            AssertionRule::Oidc => ctx.discovery(asm).ok().and_then(oidc_claim),
            _ => None,
        };
        ctx.pass(format!(
            "{what} was refused ({}){}",
            r.status,
            match &oidc {
                Some(why) => format!(": graded by OIDC Core §9, since {why}"),
                None => String::new(),
            }
        ));
        return Ok(());
    }
    let issued = r.status == 200
        && r.json()
            .is_some_and(|d| d.get("access_token").and_then(|t| t.as_str()).is_some());
    if !issued {
        return ctx.fail(format!(
            "{what} got status {} ({}): neither a refusal (a 4xx that issues nothing) nor tokens",
            r.status,
            super::tokens::oauth_error(&r).unwrap_or_else(|| "no OAuth error code".into())
        ));
    }
    match rule {
        AssertionRule::Must => ctx.fail(format!("the AS issued tokens for {what}")),
        AssertionRule::May => Err(Stop::Skip(format!(
            "the AS issued tokens for {what}, which RFC 7523 §3 permits (\"The JWT MAY contain a jti\", \"The authorization server MAY ensure that JWTs are not replayed\"); OIDC Core §9's single-use rule is for client authentication, not for this grant"
        ))),
        AssertionRule::Oidc => match claims_oidc(ctx, asm).await {
            Some(why) => ctx.fail(format!(
                "the AS issued tokens for {what}; graded by OIDC Core §9 (private_key_jwt: \"jti REQUIRED\", \"These tokens MUST only be used once\"), since {why}"
            )),
            None => Err(Stop::Skip(format!(
                "the AS issued tokens for {what}, which RFC 7523 §3 permits (\"The JWT MAY contain a jti\", \"The authorization server MAY ensure that JWTs are not replayed\"); it claims no OpenID Connect (no OIDC discovery, no openid scope), so OIDC Core §9's jti rules do not apply"
            ))),
        },
    }
}
