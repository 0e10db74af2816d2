//! The invariants a lifecycle campaign holds a server to, and the model that predicts, from
//! what a sequence did so far, what a conforming server may answer next.
//!
//! Each invariant belongs to one catalogue requirement. Where the specifications leave the
//! server a choice (revoking a refresh token SHOULD also revoke the access tokens of its grant,
//! RFC 7009 §2.1; revoking an access token MAY revoke the refresh token; reuse detection and a
//! replayed code may revoke a whole family; a resource server that reads JWTs may accept a
//! revoked token until it expires), the first answer that shows the choice teaches it, and every
//! later answer is held to it: a server that revokes for some tokens and not for others breaks
//! its own rule, whichever it chose.
//!
//! The model never judges a refusal of a token it believes live unless a choice or a binding
//! rule makes the refusal mean something, and only while the token is inside its known lifetime:
//! servers retire tokens for reasons no specification lists (idle limits, one live token per
//! client), and those are not findings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::model::{Code, CodeUse, Family, Holdings, Op, ScopeAsk, Token, TokenState, scopes};
use crate::http::Response;

/// A lifecycle invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    CodeOnce,
    CodeConcurrent,
    CodeClient,
    CodeVerifier,
    RevokedRefresh,
    WrongHintRevocation,
    RotatedRefresh,
    RefreshConcurrent,
    RefreshClient,
    ScopeCeiling,
    RevokeClient,
    ExpiredAccess,
    IntrospectionInactive,
    ResourceRevocation,
    RefreshRevocationCascade,
    AccessRevocationCascade,
    ReuseRevokesFamily,
    CodeReplayRevokes,
}

impl Invariant {
    pub const ALL: [Invariant; 18] = [
        Invariant::CodeOnce,
        Invariant::CodeConcurrent,
        Invariant::CodeClient,
        Invariant::CodeVerifier,
        Invariant::RevokedRefresh,
        Invariant::WrongHintRevocation,
        Invariant::RotatedRefresh,
        Invariant::RefreshConcurrent,
        Invariant::RefreshClient,
        Invariant::ScopeCeiling,
        Invariant::RevokeClient,
        Invariant::ExpiredAccess,
        Invariant::IntrospectionInactive,
        Invariant::ResourceRevocation,
        Invariant::RefreshRevocationCascade,
        Invariant::AccessRevocationCascade,
        Invariant::ReuseRevokesFamily,
        Invariant::CodeReplayRevokes,
    ];

    /// The catalogue requirement the invariant is part of.
    pub fn requirement(self) -> &'static str {
        match self {
            Invariant::CodeOnce => "code-single-use",
            Invariant::CodeConcurrent => "code-concurrent-redeem",
            Invariant::CodeClient => "code-client-binding",
            Invariant::CodeVerifier => "pkce-verifier-mismatch",
            Invariant::RevokedRefresh => "rt-after-revocation",
            Invariant::WrongHintRevocation => "rev-hint-wrong",
            Invariant::RotatedRefresh => "rt-rotation-public",
            Invariant::RefreshConcurrent => "rt-concurrent",
            Invariant::RefreshClient => "rt-client-binding",
            Invariant::ScopeCeiling => "rt-scope-escalation",
            Invariant::RevokeClient => "rev-client-binding",
            Invariant::ExpiredAccess => "at-expired-rs",
            Invariant::IntrospectionInactive => "intro-inactive",
            Invariant::ResourceRevocation => "rev-at",
            Invariant::RefreshRevocationCascade => "rev-rt-cascades",
            Invariant::AccessRevocationCascade => "rev-at-cascades-rt",
            Invariant::ReuseRevokesFamily => "rt-reuse-detection",
            Invariant::CodeReplayRevokes => "code-replay-revokes",
        }
    }

    /// The result id: `<requirement>.lifecycle`.
    pub fn result_id(self) -> String {
        format!("{}.lifecycle", self.requirement())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::CodeOnce => "code-once",
            Invariant::CodeConcurrent => "code-concurrent",
            Invariant::CodeClient => "code-client",
            Invariant::CodeVerifier => "code-verifier",
            Invariant::RevokedRefresh => "revoked-refresh",
            Invariant::WrongHintRevocation => "wrong-hint-revocation",
            Invariant::RotatedRefresh => "rotated-refresh",
            Invariant::RefreshConcurrent => "refresh-concurrent",
            Invariant::RefreshClient => "refresh-client",
            Invariant::ScopeCeiling => "scope-ceiling",
            Invariant::RevokeClient => "revoke-client",
            Invariant::ExpiredAccess => "expired-access",
            Invariant::IntrospectionInactive => "introspection-inactive",
            Invariant::ResourceRevocation => "resource-revocation",
            Invariant::RefreshRevocationCascade => "refresh-revocation-cascade",
            Invariant::AccessRevocationCascade => "access-revocation-cascade",
            Invariant::ReuseRevokesFamily => "reuse-revokes-family",
            Invariant::CodeReplayRevokes => "code-replay-revokes",
        }
    }

    pub fn parse(s: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// What holds, in one sentence.
    pub fn describe(self) -> &'static str {
        match self {
            Invariant::CodeOnce => "a code yields tokens at most once, whatever happened since",
            Invariant::CodeConcurrent => {
                "concurrent redemptions of one code yield one set of tokens"
            }
            Invariant::CodeClient => "a code is never redeemed by another client",
            Invariant::CodeVerifier => "a code is never redeemed with a wrong verifier",
            Invariant::RevokedRefresh => "a revoked refresh token never works again",
            Invariant::WrongHintRevocation => {
                "a refresh token revoked with the wrong token_type_hint never works again"
            }
            Invariant::RotatedRefresh => "a rotated-out refresh token never works again",
            Invariant::RefreshConcurrent => {
                "concurrent refreshes with one refresh token do not fork its family"
            }
            Invariant::RefreshClient => "a refresh token never works for another client",
            Invariant::ScopeCeiling => "a refresh never yields scope beyond the original grant",
            Invariant::RevokeClient => "another client's revocation leaves a token valid",
            Invariant::ExpiredAccess => {
                "the MCP endpoint refuses an access token past its lifetime"
            }
            Invariant::IntrospectionInactive => {
                "introspection says inactive for a revoked, rotated-out or expired token"
            }
            Invariant::ResourceRevocation => {
                "the MCP endpoint treats revoked access tokens the same way every time"
            }
            Invariant::RefreshRevocationCascade => {
                "revoking a refresh token affects its grant's access tokens the same way every time"
            }
            Invariant::AccessRevocationCascade => {
                "revoking an access token affects its grant's refresh token the same way every time"
            }
            Invariant::ReuseRevokesFamily => {
                "a detected refresh token reuse affects the family the same way every time"
            }
            Invariant::CodeReplayRevokes => {
                "a replayed code affects the tokens it gave the same way every time"
            }
        }
    }
}

/// A behaviour the specifications leave to the server: does the event kill the token?
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// A revoked access token is refused at the MCP endpoint (RFC 7009 §2; a JWT-reading RS
    /// may accept it until it expires).
    ResourceHonoursRevocation,
    /// Revoking a refresh token revokes the rest of the grant: its access tokens (RFC 7009
    /// §2.1, SHOULD) and its other refresh tokens.
    RefreshRevocationCascades,
    /// Revoking an access token revokes the grant's refresh token (RFC 7009 §2.1, MAY).
    AccessRevocationCascades,
    /// A reused rotated-out refresh token revokes its family (O21 4.3.1).
    ReuseRevokesFamily,
    /// A replayed code revokes the tokens it gave (O21 4.1.3, SHOULD).
    CodeReplayRevokes,
}

impl Choice {
    pub fn invariant(self) -> Invariant {
        match self {
            Choice::ResourceHonoursRevocation => Invariant::ResourceRevocation,
            Choice::RefreshRevocationCascades => Invariant::RefreshRevocationCascade,
            Choice::AccessRevocationCascades => Invariant::AccessRevocationCascade,
            Choice::ReuseRevokesFamily => Invariant::ReuseRevokesFamily,
            Choice::CodeReplayRevokes => Invariant::CodeReplayRevokes,
        }
    }
    pub fn describe(self, kills: bool) -> &'static str {
        match (self, kills) {
            (Choice::ResourceHonoursRevocation, true) => {
                "the MCP endpoint refuses revoked access tokens"
            }
            (Choice::ResourceHonoursRevocation, false) => {
                "the MCP endpoint accepts revoked access tokens (until they expire)"
            }
            (Choice::RefreshRevocationCascades, true) => {
                "revoking a refresh token revokes the rest of its grant"
            }
            (Choice::RefreshRevocationCascades, false) => {
                "revoking a refresh token leaves the rest of its grant valid"
            }
            (Choice::AccessRevocationCascades, true) => {
                "revoking an access token revokes its grant's refresh token"
            }
            (Choice::AccessRevocationCascades, false) => {
                "revoking an access token leaves its grant's refresh token valid"
            }
            (Choice::ReuseRevokesFamily, true) => "a reused refresh token revokes its family",
            (Choice::ReuseRevokesFamily, false) => "a reused refresh token leaves its family valid",
            (Choice::CodeReplayRevokes, true) => "a replayed code revokes the tokens it gave",
            (Choice::CodeReplayRevokes, false) => "a replayed code leaves the tokens it gave valid",
        }
    }
}

/// A choice as first shown: by which sequence and step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    pub kills: bool,
    /// Learned of access tokens (else refresh tokens): a server may revoke one kind and not
    /// the other on the same event, and is held to each separately.
    pub access: bool,
    pub sequence: u64,
    pub step: usize,
}

/// What the campaign learned of the server's choices (shared by its sequences).
#[derive(Debug, Clone, Default)]
pub struct Choices(pub BTreeMap<(Choice, bool), Learned>);

/// An invariant broken at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub step: usize,
    pub message: String,
    /// The sequence that taught the choice this violation holds the server to, when it was
    /// another one than the violating sequence.
    pub taught_by: Option<(u64, usize)>,
}

/// A token endpoint answer as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Issued {
        access: String,
        refresh: Option<String>,
        scope: Option<String>,
        expires_in: Option<u64>,
    },
    /// A 4xx other than 408/429 (the request was refused).
    Refused { status: u16, error: Option<String> },
    /// Anything that says nothing about the token (5xx, 429, no answer).
    Unjudged(String),
}

impl Answer {
    pub fn of(r: Result<&Response, &str>) -> Answer {
        let r = match r {
            Ok(r) => r,
            Err(e) => return Answer::Unjudged(e.to_string()),
        };
        let doc = r.json();
        let s = |k: &str| {
            doc.as_ref()
                .and_then(|d| d.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        match r.status {
            200 => match s("access_token") {
                Some(access) => Answer::Issued {
                    access,
                    refresh: s("refresh_token"),
                    scope: s("scope"),
                    expires_in: doc
                        .as_ref()
                        .and_then(|d| d.get("expires_in"))
                        .and_then(|v| v.as_u64()),
                },
                None => Answer::Unjudged("200 without an access_token".into()),
            },
            408 | 429 => Answer::Unjudged(format!("status {}", r.status)),
            400..=499 => Answer::Refused {
                status: r.status,
                error: s("error"),
            },
            n => Answer::Unjudged(format!("status {n}")),
        }
    }
    pub fn issued(&self) -> bool {
        matches!(self, Answer::Issued { .. })
    }
    /// Refused because the grant (code or refresh token) is not valid (RFC 6749 §5.2).
    pub fn grant_refused(&self) -> bool {
        matches!(self, Answer::Refused { error: Some(e), .. } if e == "invalid_grant")
    }
    pub fn describe(&self) -> String {
        match self {
            Answer::Issued { refresh, .. } => format!(
                "tokens issued{}",
                if refresh.is_some() {
                    " (with a refresh token)"
                } else {
                    ""
                }
            ),
            Answer::Refused { status, error } => match error {
                Some(e) => format!("refused ({status} {e})"),
                None => format!("refused ({status})"),
            },
            Answer::Unjudged(why) => format!("no judgeable answer ({why})"),
        }
    }
}

/// An MCP endpoint answer: accepted (2xx), refused (401), or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Accepted(u16),
    Refused,
    Unjudged(u16),
}

impl Call {
    pub fn of(status: Option<u16>) -> Call {
        match status {
            Some(s @ 200..=299) => Call::Accepted(s),
            Some(401) => Call::Refused,
            Some(s) => Call::Unjudged(s),
            None => Call::Unjudged(0),
        }
    }
}

/// What the model expects of a use of a token.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// It must be refused: a success breaks the invariant.
    Dead(Invariant, String),
    /// A choice decides; `known` when the server showed it already.
    Chosen {
        choice: Choice,
        why: String,
        known: Option<Learned>,
        /// Nothing else could explain a refusal (in lifetime, no other event).
        clean: bool,
    },
    /// It must work (another client's revocation must not touch it) while `clean`.
    Alive {
        invariant: Invariant,
        why: String,
        clean: bool,
    },
    /// Several causes, or none with a rule: nothing to judge.
    Open,
}

/// Model settings from the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// An idle refresh token's lifetime, when the profile states it.
    pub refresh_idle: Option<Duration>,
}

/// The state of one sequence run: what it holds, against the campaign's learned choices.
pub struct Model<'c> {
    pub holdings: Holdings,
    pub choices: &'c mut Choices,
    pub sequence: u64,
    pub timing: Timing,
    /// Each choice this sequence relied on, in order.
    pub used_choices: Vec<Choice>,
    /// Checks made, per invariant (an invariant never checked was never exercised).
    pub checked: BTreeMap<Invariant, u64>,
}

/// Slack on a token's lifetime: clocks and rounding.
pub const SLACK: Duration = Duration::from_secs(2);

impl<'c> Model<'c> {
    pub fn new(choices: &'c mut Choices, sequence: u64, timing: Timing) -> Self {
        Self {
            holdings: Holdings::default(),
            choices,
            sequence,
            timing,
            used_choices: Vec::new(),
            checked: BTreeMap::new(),
        }
    }

    fn check(&mut self, inv: Invariant) {
        *self.checked.entry(inv).or_default() += 1;
    }

    /// Records a code obtained at `step` (its authorization saved as `saved`).
    pub fn authorized(&mut self, saved: String, client: usize, narrow: bool, asked: Vec<String>) {
        self.holdings.codes.push(Code {
            saved,
            client,
            narrow,
            asked,
            family: None,
            redeemed_at: None,
            replay_refused: None,
            tainted: false,
        });
    }

    /// Judges the answers to a redemption of code `ci` and records what it gave.
    pub fn redeemed(
        &mut self,
        step: usize,
        ci: usize,
        by: CodeUse,
        answers: &[Answer],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let successes = answers.iter().filter(|a| a.issued()).count();
        let code = self.holdings.codes[ci].clone();
        match by {
            CodeUse::OtherClient | CodeUse::WrongVerifier => {
                let (inv, how) = if by == CodeUse::OtherClient {
                    (Invariant::CodeClient, "the other client")
                } else {
                    (Invariant::CodeVerifier, "a wrong code_verifier")
                };
                self.check(inv);
                if successes > 0 {
                    out.push(self.violation(
                        inv,
                        step,
                        format!(
                            "code #{ci} of client {} was redeemed by {how}",
                            code.client_name()
                        ),
                    ));
                }
                self.holdings.codes[ci].tainted = true;
                return out;
            }
            CodeUse::Own => {}
        }
        if code.redeemed_at.is_some() {
            self.check(Invariant::CodeOnce);
        }
        if answers.len() > 1 {
            self.check(Invariant::CodeConcurrent);
        }
        if let Some(first) = code.redeemed_at
            && successes > 0
        {
            out.push(self.violation(
                Invariant::CodeOnce,
                step,
                format!(
                    "code #{ci} gave tokens at step {} and again at step {}",
                    first + 1,
                    step + 1
                ),
            ));
        }
        if successes > 1 {
            out.push(self.violation(
                Invariant::CodeConcurrent,
                step,
                format!(
                    "{successes} of {} concurrent redemptions of code #{ci} were answered with tokens",
                    answers.len()
                ),
            ));
        }
        if successes > 0 && answers.iter().any(Answer::grant_refused) {
            // The duplicates that lost the race were replays of a spent code.
            self.holdings.codes[ci].replay_refused.get_or_insert(step);
        }
        if code.redeemed_at.is_some() {
            if answers.iter().any(|a| matches!(a, Answer::Refused { .. })) {
                self.holdings.codes[ci].replay_refused.get_or_insert(step);
            }
            return out;
        }
        if let Some(Answer::Issued {
            access,
            refresh,
            scope,
            expires_in,
        }) = answers.iter().find(|a| a.issued())
        {
            let granted = scope.as_deref().map(scopes).unwrap_or(code.asked.clone());
            let family = self.holdings.families.len();
            self.holdings.families.push(Family {
                client: code.client,
                code: ci,
                granted: granted.clone(),
                ..Family::default()
            });
            self.holdings.codes[ci].family = Some(family);
            self.holdings.codes[ci].redeemed_at = Some(step);
            self.add(
                step,
                family,
                0,
                access,
                refresh.as_deref(),
                granted,
                *expires_in,
            );
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        step: usize,
        family: usize,
        generation: u32,
        access: &str,
        refresh: Option<&str>,
        scope: Vec<String>,
        expires_in: Option<u64>,
    ) {
        let now = Instant::now();
        let base = Token {
            value: access.to_string(),
            access: true,
            family,
            generation,
            step,
            issued: now,
            expires_in,
            scope,
            state: TokenState::Live,
            foreign_revoke: None,
            misused: false,
            wrong_hint: false,
            last_used: now,
        };
        if let Some(rt) = refresh {
            self.holdings.tokens.push(Token {
                value: rt.to_string(),
                access: false,
                expires_in: None,
                ..base.clone()
            });
        }
        self.holdings.tokens.push(base);
    }

    /// What a use of token `ti` must show.
    fn expect(&self, ti: usize) -> Expect {
        let t = &self.holdings.tokens[ti];
        let f = &self.holdings.families[t.family];
        let code = &self.holdings.codes[f.code];
        let now = Instant::now();
        if t.access {
            if let Some(e) = t.expires_in
                && now > t.issued + Duration::from_secs(e) + SLACK
            {
                return Expect::Dead(
                    Invariant::ExpiredAccess,
                    format!("it expired {e} s after it was issued"),
                );
            }
        } else {
            match t.state {
                // RFC 7009 §2.1: a wrong hint only widens the search; the 200 still means revoked.
                TokenState::Revoked(s) if t.wrong_hint => {
                    return Expect::Dead(
                        Invariant::WrongHintRevocation,
                        format!(
                            "it was revoked at step {} (with token_type_hint=access_token, answered 200)",
                            s + 1
                        ),
                    );
                }
                TokenState::Revoked(s) => {
                    return Expect::Dead(
                        Invariant::RevokedRefresh,
                        format!("it was revoked at step {}", s + 1),
                    );
                }
                TokenState::RotatedOut(s) => {
                    return Expect::Dead(
                        Invariant::RotatedRefresh,
                        format!("a refresh at step {} replaced it", s + 1),
                    );
                }
                TokenState::Live => {}
            }
        }
        // An event revokes only what existed when it happened: a token obtained later (a
        // revoked refresh token that still worked, say) is not its concern. The same step
        // counts: a concurrent duplicate refused beside the one that succeeded is a replay
        // the server saw after issuing.
        let before = |event: Option<usize>| event.filter(|&s| t.step <= s);
        let mut causes: Vec<(Choice, String)> = Vec::new();
        if t.access {
            if let TokenState::Revoked(s) = t.state {
                causes.push((
                    Choice::ResourceHonoursRevocation,
                    format!("it was revoked at step {}", s + 1),
                ));
            }
        } else if let Some(s) = before(f.at_revoked) {
            causes.push((
                Choice::AccessRevocationCascades,
                format!("an access token of its grant was revoked at step {}", s + 1),
            ));
        }
        // Revoking one refresh token (even a rotated-out one) may revoke the rest of its grant.
        if let Some(s) = before(f.rt_revoked)
            && !matches!(t.state, TokenState::Revoked(_))
        {
            causes.push((
                Choice::RefreshRevocationCascades,
                format!("a refresh token of its grant was revoked at step {}", s + 1),
            ));
        }
        if let Some(s) = before(f.reuse_refused) {
            causes.push((
                Choice::ReuseRevokesFamily,
                format!(
                    "a rotated-out refresh token of its family was presented again at step {}",
                    s + 1
                ),
            ));
        }
        if let Some(s) = before(code.replay_refused) {
            causes.push((
                Choice::CodeReplayRevokes,
                format!(
                    "the code that started its family was replayed at step {}",
                    s + 1
                ),
            ));
        }
        // Known choices that kill decide; otherwise one unknown choice is learned.
        for (c, why) in &causes {
            if let Some(l) = self.choices.0.get(&(*c, t.access))
                && l.kills
            {
                return Expect::Chosen {
                    choice: *c,
                    why: why.clone(),
                    known: Some(l.clone()),
                    clean: false,
                };
            }
        }
        let in_lifetime = if t.access {
            t.expires_in
                .is_some_and(|e| now + SLACK < t.issued + Duration::from_secs(e))
        } else {
            self.timing
                .refresh_idle
                .is_some_and(|idle| now + SLACK < t.last_used + idle)
        };
        // A server may retire older access tokens when a grant is refreshed, and may retire a
        // refresh token another client misused: a refusal then says nothing.
        let newest_access = !t.access
            || !f.refreshed
            || self.holdings.tokens[ti + 1..]
                .iter()
                .all(|o| !(o.access && o.family == t.family));
        let clean = in_lifetime && newest_access && !t.misused && !code.tainted;
        match causes.len() {
            0 => match t.foreign_revoke {
                Some(s) => Expect::Alive {
                    invariant: Invariant::RevokeClient,
                    why: format!(
                        "only the other client tried to revoke it, at step {}",
                        s + 1
                    ),
                    clean,
                },
                None => Expect::Open,
            },
            1 => {
                let (c, why) = causes.remove(0);
                Expect::Chosen {
                    choice: c,
                    why,
                    known: self.choices.0.get(&(c, t.access)).cloned(),
                    clean: clean && t.foreign_revoke.is_none(),
                }
            }
            _ => Expect::Open,
        }
    }

    /// Judges one use of token `ti` (`worked`: it was accepted; `refused`: clearly refused).
    fn judge_use(
        &mut self,
        step: usize,
        ti: usize,
        worked: bool,
        refused: bool,
        what: &str,
    ) -> Option<Violation> {
        let t = self.holdings.tokens[ti].clone();
        let name = format!(
            "{} token #{ti} (generation {})",
            if t.access { "access" } else { "refresh" },
            t.generation
        );
        let expect = self.expect(ti);
        match &expect {
            Expect::Dead(inv, _) => self.check(*inv),
            Expect::Chosen {
                choice,
                known: Some(_),
                ..
            } => self.check(choice.invariant()),
            Expect::Alive {
                invariant,
                clean: true,
                ..
            } => self.check(*invariant),
            _ => {}
        }
        match expect {
            Expect::Dead(inv, why) if worked => {
                Some(self.violation(inv, step, format!("{what} accepted {name}, though {why}")))
            }
            Expect::Chosen {
                choice,
                why,
                known: Some(l),
                clean,
            } => {
                self.used_choices.push(choice);
                let broke = (l.kills && worked) || (!l.kills && refused && clean);
                broke.then(|| {
                    let mut v = self.violation(
                        choice.invariant(),
                        step,
                        format!(
                            "{what} {} {name} ({why}), but at step {} {}",
                            if worked { "accepted" } else { "refused" },
                            l.step + 1,
                            choice.describe(l.kills)
                        ),
                    );
                    if l.sequence != self.sequence {
                        v.taught_by = Some((l.sequence, l.step));
                    }
                    v
                })
            }
            Expect::Chosen {
                choice,
                known: None,
                clean,
                ..
            } => {
                // Learn only from an answer that can mean nothing else.
                if worked || (refused && clean) {
                    self.choices.0.insert(
                        (choice, t.access),
                        Learned {
                            kills: !worked,
                            access: t.access,
                            sequence: self.sequence,
                            step,
                        },
                    );
                }
                None
            }
            Expect::Alive {
                invariant,
                why,
                clean,
            } if refused && clean => Some(self.violation(
                invariant,
                step,
                format!("{what} refused {name}, though {why}"),
            )),
            _ => None,
        }
    }

    /// Judges a refresh with refresh token `ti` and records what it gave.
    pub fn refreshed(
        &mut self,
        step: usize,
        ti: usize,
        ask: ScopeAsk,
        asked: Option<Vec<String>>,
        other_client: bool,
        answers: &[Answer],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let t = self.holdings.tokens[ti].clone();
        let successes: Vec<&Answer> = answers.iter().filter(|a| a.issued()).collect();
        // Only invalid_grant says the refresh token itself is no good (RFC 6749 §5.2): a wider
        // scope refused with invalid_scope says nothing of the token.
        let refused = !answers.is_empty() && answers.iter().all(Answer::grant_refused);
        if other_client {
            self.check(Invariant::RefreshClient);
            if !successes.is_empty() {
                out.push(self.violation(
                    Invariant::RefreshClient,
                    step,
                    format!("refresh token #{ti} of another client was accepted"),
                ));
            }
            self.holdings.tokens[ti].misused = true;
            return out;
        }
        if let Some(v) = self.judge_use(
            step,
            ti,
            !successes.is_empty(),
            refused,
            "the token endpoint",
        ) {
            out.push(v);
        }
        let family = t.family;
        let granted = self.holdings.families[family].granted.clone();
        if !successes.is_empty() {
            self.check(Invariant::ScopeCeiling);
        }
        if answers.len() > 1 {
            self.check(Invariant::RefreshConcurrent);
        }
        for a in &successes {
            if let Answer::Issued { scope, .. } = a {
                let got = scope
                    .as_deref()
                    .map(scopes)
                    .or(asked.clone())
                    .unwrap_or(granted.clone());
                let beyond: Vec<&String> = got.iter().filter(|s| !granted.contains(s)).collect();
                if !beyond.is_empty() {
                    out.push(self.violation(
                        Invariant::ScopeCeiling,
                        step,
                        format!(
                            "a refresh{} gave scope {:?} beyond the grant's {:?}",
                            if ask == ScopeAsk::Wider {
                                " asking a wider scope"
                            } else {
                                ""
                            },
                            beyond,
                            granted
                        ),
                    ));
                    break;
                }
            }
        }
        let new_rts: std::collections::BTreeSet<&str> = successes
            .iter()
            .filter_map(|a| match a {
                Answer::Issued {
                    refresh: Some(r), ..
                } if *r != t.value => Some(r.as_str()),
                _ => None,
            })
            .collect();
        if new_rts.len() > 1 {
            out.push(self.violation(
                Invariant::RefreshConcurrent,
                step,
                format!(
                    "{} concurrent refreshes with refresh token #{ti} returned {} different new refresh tokens",
                    answers.len(),
                    new_rts.len()
                ),
            ));
        }
        if !successes.is_empty() && answers.iter().any(Answer::grant_refused) {
            // The duplicates that lost the race presented a spent refresh token: reuse.
            self.holdings.families[family]
                .reuse_refused
                .get_or_insert(step);
        }
        if refused && t.state != TokenState::Live {
            if matches!(t.state, TokenState::RotatedOut(_)) {
                self.holdings.families[family]
                    .reuse_refused
                    .get_or_insert(step);
            }
            return out;
        }
        if let Some(Answer::Issued {
            access,
            refresh,
            scope,
            expires_in,
        }) = successes.first().cloned()
        {
            let issued_scope = scope.as_deref().map(scopes).or(asked).unwrap_or(granted);
            let rotated = refresh.as_deref().filter(|r| *r != t.value);
            if rotated.is_some() && t.state == TokenState::Live {
                self.holdings.tokens[ti].state = TokenState::RotatedOut(step);
            } else {
                self.holdings.tokens[ti].last_used = Instant::now();
            }
            self.holdings.families[family].refreshed = true;
            self.add(
                step,
                family,
                t.generation + 1,
                access,
                rotated,
                issued_scope,
                *expires_in,
            );
        }
        out
    }

    /// Records a revocation of token `ti` and its answer's status.
    pub fn revoked(
        &mut self,
        step: usize,
        ti: usize,
        other_client: bool,
        wrong_hint: bool,
        status: Option<u16>,
    ) {
        let t = &mut self.holdings.tokens[ti];
        if other_client {
            t.foreign_revoke.get_or_insert(step);
            return;
        }
        // RFC 7009 §2.2: 200 = revoked (or the token was invalid already). A refresh token's
        // revocation may reach its whole grant even when that token was spent already.
        if status == Some(200) {
            let live = t.state == TokenState::Live;
            if live {
                t.state = TokenState::Revoked(step);
                t.wrong_hint = wrong_hint;
            }
            let f = &mut self.holdings.families[t.family];
            if !t.access {
                f.rt_revoked.get_or_insert(step);
            } else if live {
                f.at_revoked.get_or_insert(step);
            }
        }
    }

    /// Judges an introspection answer about token `ti` (`active`: its `active` member).
    pub fn introspected(
        &mut self,
        step: usize,
        ti: usize,
        active: Option<bool>,
    ) -> Option<Violation> {
        let t = self.holdings.tokens[ti].clone();
        let name = format!(
            "{} token #{ti} (generation {})",
            if t.access { "access" } else { "refresh" },
            t.generation
        );
        // RFC 7662 §2.2 with RFC 7009 §2: what the AS revoked, rotated out or let expire is
        // inactive, whatever a resource server that reads JWTs may still accept.
        let dead = match (t.access, t.state, self.expect(ti)) {
            (true, TokenState::Revoked(s), _) => Some(format!("it was revoked at step {}", s + 1)),
            (_, _, Expect::Dead(_, why)) => Some(why),
            _ => None,
        };
        match dead {
            Some(why) => {
                self.check(Invariant::IntrospectionInactive);
                (active == Some(true)).then(|| {
                    self.violation(
                        Invariant::IntrospectionInactive,
                        step,
                        format!("introspection said {name} is active, though {why}"),
                    )
                })
            }
            None => self.judge_use(
                step,
                ti,
                active == Some(true),
                active == Some(false),
                "introspection",
            ),
        }
    }

    /// Judges a call to the MCP endpoint with access token `ti`.
    pub fn called(&mut self, step: usize, ti: usize, call: Call) -> Option<Violation> {
        self.judge_use(
            step,
            ti,
            matches!(call, Call::Accepted(_)),
            call == Call::Refused,
            "the MCP endpoint",
        )
    }

    fn violation(&self, invariant: Invariant, step: usize, message: String) -> Violation {
        Violation {
            invariant,
            step,
            message,
            taught_by: None,
        }
    }
}

impl Code {
    fn client_name(&self) -> &'static str {
        super::model::client_name(self.client)
    }
}

/// The scope a refresh asks for, or `None` (no `scope` parameter).
pub fn asked_scope(ask: ScopeAsk, granted: &[String], known: &[String]) -> Option<Vec<String>> {
    match ask {
        ScopeAsk::Same => None,
        ScopeAsk::Narrow => granted.first().map(|s| vec![s.clone()]),
        ScopeAsk::Wider => {
            let mut all = granted.to_vec();
            for s in known {
                if !all.contains(s) {
                    all.push(s.clone());
                }
            }
            Some(all)
        }
    }
}

/// Whether an operation is one the model can use at all (a refresh needs a refresh token...).
pub fn usable(op: &Op, h: &Holdings) -> bool {
    match op {
        Op::Authorize { .. } | Op::Wait { .. } | Op::Expire => true,
        Op::Redeem { code, .. } => h.code(*code).is_some(),
        Op::Refresh { token, .. } => h.token(*token, false).is_some(),
        Op::Revoke { token, access, .. } => h.token(*token, *access).is_some(),
        Op::Call { token } => h.token(*token, true).is_some(),
        Op::Introspect { token, access } => h.token(*token, *access).is_some(),
        Op::Register => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(at: &str, rt: Option<&str>, scope: Option<&str>) -> Answer {
        Answer::Issued {
            access: at.into(),
            refresh: rt.map(str::to_string),
            scope: scope.map(str::to_string),
            expires_in: Some(60),
        }
    }
    fn refused() -> Answer {
        Answer::Refused {
            status: 400,
            error: Some("invalid_grant".into()),
        }
    }
    fn timing() -> Timing {
        Timing {
            refresh_idle: Some(Duration::from_secs(60)),
        }
    }
    fn model(choices: &mut Choices) -> Model<'_> {
        let mut m = Model::new(choices, 1, timing());
        m.authorized("auth0".into(), 0, false, scopes("read write"));
        let v = m.redeemed(1, 0, CodeUse::Own, &[issued("at0", Some("rt0"), None)]);
        assert!(v.is_empty());
        m
    }
    /// The index of the held token with this value.
    fn held(m: &Model<'_>, value: &str) -> usize {
        m.holdings
            .tokens
            .iter()
            .position(|t| t.value == value)
            .unwrap()
    }
    fn invs(v: &[Violation]) -> Vec<Invariant> {
        v.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_code_gives_tokens_once_and_once_only_under_concurrency() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let v = m.redeemed(2, 0, CodeUse::Own, &[issued("at1", None, None)]);
        assert_eq!(invs(&v), [Invariant::CodeOnce]);
        m.authorized("auth1".into(), 0, false, vec![]);
        let v = m.redeemed(
            3,
            1,
            CodeUse::Own,
            &[issued("a", None, None), issued("b", None, None), refused()],
        );
        assert_eq!(invs(&v), [Invariant::CodeConcurrent]);
        // The duplicate refused beside the winner was a replay already (step 3); a refused
        // replay is the conforming answer, and it may revoke what the code gave.
        assert_eq!(m.holdings.codes[1].replay_refused, Some(3));
        let v = m.redeemed(4, 1, CodeUse::Own, &[refused()]);
        assert!(v.is_empty());
        assert_eq!(m.holdings.codes[1].replay_refused, Some(3));
    }

    #[test]
    fn binding_probes_must_be_refused() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        m.authorized("auth1".into(), 0, false, vec![]);
        let v = m.redeemed(2, 1, CodeUse::OtherClient, &[issued("x", None, None)]);
        assert_eq!(invs(&v), [Invariant::CodeClient]);
        let v = m.redeemed(3, 1, CodeUse::WrongVerifier, &[refused()]);
        assert!(v.is_empty());
        let rt = m.holdings.token(0, false).unwrap();
        let v = m.refreshed(
            4,
            rt,
            ScopeAsk::Same,
            None,
            true,
            &[issued("y", None, None)],
        );
        assert_eq!(invs(&v), [Invariant::RefreshClient]);
    }

    #[test]
    fn rotation_revocation_and_scope_are_held() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let rt0 = m.holdings.token(0, false).unwrap();
        let v = m.refreshed(
            2,
            rt0,
            ScopeAsk::Same,
            None,
            false,
            &[issued("at1", Some("rt1"), None)],
        );
        assert!(v.is_empty());
        // The rotated-out token works again: broken.
        let v = m.refreshed(
            3,
            rt0,
            ScopeAsk::Same,
            None,
            false,
            &[issued("at2", Some("rt2"), None)],
        );
        assert_eq!(invs(&v), [Invariant::RotatedRefresh]);
        let rt1 = held(&m, "rt1");
        m.revoked(4, rt1, false, false, Some(200));
        let v = m.refreshed(
            5,
            rt1,
            ScopeAsk::Same,
            None,
            false,
            &[issued("at3", Some("rt3"), None)],
        );
        assert_eq!(invs(&v), [Invariant::RevokedRefresh]);
        // A wider scope than the grant: broken, whether the response says so or not.
        let rt2 = held(&m, "rt2");
        let wide = asked_scope(
            ScopeAsk::Wider,
            &scopes("read write"),
            &scopes("read write admin"),
        );
        let v = m.refreshed(
            6,
            rt2,
            ScopeAsk::Wider,
            wide,
            false,
            &[issued("at4", Some("rt4"), None)],
        );
        assert!(invs(&v).contains(&Invariant::ScopeCeiling), "{v:?}");
    }

    #[test]
    fn a_revocation_with_the_wrong_hint_is_held_to_rev_hint_wrong() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let rt0 = m.holdings.token(0, false).unwrap();
        m.revoked(2, rt0, false, true, Some(200));
        let v = m.refreshed(
            3,
            rt0,
            ScopeAsk::Same,
            None,
            false,
            &[issued("a", Some("r"), None)],
        );
        assert_eq!(invs(&v), [Invariant::WrongHintRevocation]);
        // Another client's revocation changes nothing, whatever it was answered.
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let rt0 = m.holdings.token(0, false).unwrap();
        m.revoked(2, rt0, true, false, Some(200));
        assert_eq!(m.holdings.tokens[rt0].state, TokenState::Live);
    }

    #[test]
    fn concurrent_refreshes_must_not_fork_the_family() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let rt0 = m.holdings.token(0, false).unwrap();
        let v = m.refreshed(
            2,
            rt0,
            ScopeAsk::Same,
            None,
            false,
            &[
                issued("a", Some("r1"), None),
                issued("b", Some("r2"), None),
                refused(),
            ],
        );
        assert_eq!(invs(&v), [Invariant::RefreshConcurrent]);
        // One new refresh token returned twice is a grace window, not a fork.
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let rt0 = m.holdings.token(0, false).unwrap();
        let v = m.refreshed(
            2,
            rt0,
            ScopeAsk::Same,
            None,
            false,
            &[issued("a", Some("r1"), None), issued("b", Some("r1"), None)],
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_choice_is_learned_once_and_held_both_ways() {
        let mut c = Choices::default();
        {
            let mut m = model(&mut c);
            let at0 = m.holdings.token(0, true).unwrap();
            m.revoked(2, at0, false, false, Some(200));
            // First showing: the MCP endpoint refuses a revoked token. Learned, no finding.
            assert_eq!(m.called(3, at0, Call::Refused), None);
        }
        assert!(c.0[&(Choice::ResourceHonoursRevocation, true)].kills);
        {
            // Another sequence: a revoked token is accepted. Held to the choice: broken, and
            // the finding names the teaching sequence.
            let mut m = Model::new(&mut c, 2, timing());
            m.authorized("auth0".into(), 0, false, vec![]);
            m.redeemed(1, 0, CodeUse::Own, &[issued("at9", Some("rt9"), None)]);
            let at = m.holdings.token(0, true).unwrap();
            m.revoked(2, at, false, false, Some(200));
            let v = m.called(3, at, Call::Accepted(200)).unwrap();
            assert_eq!(v.invariant, Invariant::ResourceRevocation);
            assert_eq!(v.taught_by, Some((1, 3)));
        }
        // The other way round: learned "accepts", then a refusal of a fresh revoked token.
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let at0 = m.holdings.token(0, true).unwrap();
        m.revoked(2, at0, false, false, Some(200));
        assert_eq!(m.called(3, at0, Call::Accepted(200)), None);
        m.authorized("auth1".into(), 0, false, vec![]);
        m.redeemed(4, 1, CodeUse::Own, &[issued("at5", Some("rt5"), None)]);
        let at5 = m.holdings.token(0, true).unwrap();
        m.revoked(5, at5, false, false, Some(200));
        let v = m.called(6, at5, Call::Refused).unwrap();
        assert_eq!(v.invariant, Invariant::ResourceRevocation);
        assert_eq!(v.taught_by, None);
    }

    #[test]
    fn another_clients_revocation_leaves_the_token_valid() {
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let at0 = m.holdings.token(0, true).unwrap();
        m.revoked(2, at0, true, false, Some(200));
        let v = m.called(3, at0, Call::Refused).unwrap();
        assert_eq!(v.invariant, Invariant::RevokeClient);
        // Without the foreign attempt, a refusal of a live token is not judged.
        let mut c = Choices::default();
        let mut m = model(&mut c);
        let at0 = m.holdings.token(0, true).unwrap();
        assert_eq!(m.called(2, at0, Call::Refused), None);
    }

    #[test]
    fn an_expired_access_token_must_be_refused_and_unknown_lifetimes_are_not_judged() {
        let mut c = Choices::default();
        let mut m = Model::new(&mut c, 1, Timing::default());
        m.authorized("auth0".into(), 0, false, vec![]);
        m.redeemed(
            1,
            0,
            CodeUse::Own,
            &[Answer::Issued {
                access: "at".into(),
                refresh: None,
                scope: None,
                expires_in: Some(1),
            }],
        );
        let at = m.holdings.token(0, true).unwrap();
        // Pretend it was issued long ago (no sleeping in unit tests).
        m.holdings.tokens[at].issued = Instant::now() - Duration::from_secs(10);
        assert_eq!(
            m.called(2, at, Call::Accepted(200)).map(|v| v.invariant),
            Some(Invariant::ExpiredAccess)
        );
        assert_eq!(m.called(3, at, Call::Refused), None);
    }

    #[test]
    fn every_invariant_names_a_catalogue_requirement_with_a_case() {
        let cases = crate::case::load_builtin(crate::checks::NAMES).unwrap();
        for i in Invariant::ALL {
            assert!(
                cases.iter().any(|c| c.id() == i.requirement()),
                "{} names no case",
                i.requirement()
            );
            assert_eq!(Invariant::parse(i.as_str()), Some(i));
        }
    }
}
