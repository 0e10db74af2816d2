//! What a lifecycle campaign holds and what it can do with it: the protocol's operations as
//! data ([`Op`]), generated as sequences by proptest, and the holdings an operation leaves
//! behind (clients, codes, token families and their tokens).
//!
//! An operation names what it uses by a *pick*: a small number counted back from the newest
//! thing of that kind held when the operation runs (0 = the newest). A sequence therefore keeps
//! its meaning when shrinking removes operations before it, and generated picks favour what was
//! just obtained, where the interesting transitions are.

use std::time::Instant;

use proptest::prelude::*;
use proptest::strategy::SBoxedStrategy;
use serde::{Deserialize, Serialize};

/// What a token request does to a code besides redeeming it as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeUse {
    /// The client the code was issued to, with its verifier.
    Own,
    /// The other client, with the right verifier (O21 4.1.3: the code is bound to its client).
    OtherClient,
    /// The right client with a verifier that does not match the challenge (RFC 7636 §4.6).
    WrongVerifier,
}

/// The `scope` of a refresh request (O21 4.3.1: the same or narrower, never wider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeAsk {
    /// No `scope`: the grant's scope.
    Same,
    /// The first scope of the grant only.
    Narrow,
    /// Every scope the campaign knows of: wider than a narrow grant.
    Wider,
}

/// `token_type_hint` of a revocation request (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hint {
    None,
    Right,
    /// The other type: the AS must extend its search (RFC 7009 §2.1).
    Wrong,
}

/// One transition of the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// An authorization request through the profile's login, for client `client % 2`; with
    /// `narrow`, only the first of the scopes the campaign asks for.
    Authorize { client: u8, narrow: bool },
    /// Redeems a held code, `copies` requests at once (2 or more: a race).
    Redeem { code: u8, by: CodeUse, copies: u8 },
    /// Refreshes with a held refresh token, `copies` requests at once.
    Refresh {
        token: u8,
        scope: ScopeAsk,
        other_client: bool,
        copies: u8,
    },
    /// Revokes a held access (`access`) or refresh token, as its client or as the other one.
    Revoke {
        token: u8,
        access: bool,
        hint: Hint,
        other_client: bool,
    },
    /// Calls the MCP endpoint with a held access token.
    Call { token: u8 },
    /// Asks the introspection endpoint (RFC 7662) about a held access or refresh token.
    Introspect { token: u8, access: bool },
    /// Registers another client (RFC 7591): later "other client" probes use the newest one.
    Register,
    /// Lets a little time pass.
    Wait { secs: u8 },
    /// Waits until the newest access token is past its `expires_in` (when that is within the
    /// campaign's longest wait; otherwise nothing happens).
    Expire,
}

impl Op {
    /// One line for reports: `refresh rt#0 scope=wider x3`.
    pub fn describe(&self) -> String {
        match self {
            Op::Authorize { client, narrow } => format!(
                "authorize as client {}{}",
                client_name(*client as usize),
                if *narrow { " (narrow scope)" } else { "" }
            ),
            Op::Redeem { code, by, copies } => format!(
                "redeem code #{code}{}{}",
                match by {
                    CodeUse::Own => "",
                    CodeUse::OtherClient => " as the other client",
                    CodeUse::WrongVerifier => " with a wrong verifier",
                },
                times(*copies)
            ),
            Op::Refresh {
                token,
                scope,
                other_client,
                copies,
            } => format!(
                "refresh with refresh token #{token}{}{}{}",
                match scope {
                    ScopeAsk::Same => "",
                    ScopeAsk::Narrow => " asking a narrower scope",
                    ScopeAsk::Wider => " asking a wider scope",
                },
                if *other_client {
                    " as the other client"
                } else {
                    ""
                },
                times(*copies)
            ),
            Op::Revoke {
                token,
                access,
                hint,
                other_client,
            } => format!(
                "revoke {} token #{token}{}{}",
                if *access { "access" } else { "refresh" },
                match hint {
                    Hint::None => "",
                    Hint::Right => " (right hint)",
                    Hint::Wrong => " (wrong hint)",
                },
                if *other_client {
                    " as the other client"
                } else {
                    ""
                }
            ),
            Op::Call { token } => format!("call the MCP endpoint with access token #{token}"),
            Op::Introspect { token, access } => format!(
                "introspect {} token #{token}",
                if *access { "access" } else { "refresh" }
            ),
            Op::Register => "register another client".into(),
            Op::Wait { secs } => format!("wait {secs} s"),
            Op::Expire => "wait for the newest access token to expire".into(),
        }
    }

    /// Whether the operation logs in (the costly transition).
    pub fn logs_in(&self) -> bool {
        matches!(self, Op::Authorize { .. })
    }
}

fn times(copies: u8) -> String {
    if copies > 1 {
        format!(", {copies} requests at once")
    } else {
        String::new()
    }
}

/// The campaign's two clients: `a` (the profile's or a registered one) and `b` (another, for
/// binding probes).
pub const CLIENTS: [&str; 2] = ["a", "b"];

pub fn client_name(i: usize) -> &'static str {
    CLIENTS[i % CLIENTS.len()]
}

/// Bounds of generation.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub min_len: usize,
    pub max_len: usize,
    /// Requests a concurrent duplicate sends at most (≥ 2 enables races).
    pub max_copies: u8,
    /// Longest generated short wait.
    pub max_wait_secs: u8,
    /// Whether the target has a revocation endpoint.
    pub revocation: bool,
    /// Whether the campaign can introspect (an endpoint and a client allowed to use it).
    pub introspection: bool,
    /// Whether the AS registers clients (RFC 7591).
    pub registration: bool,
}

fn pick() -> impl Strategy<Value = u8> + Clone {
    // Mostly the newest or the one before: the interesting transitions follow each other.
    prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => 2u8..6]
}

fn copies(max: u8) -> SBoxedStrategy<u8> {
    if max >= 2 {
        prop_oneof![5 => Just(1u8), 1 => 2u8..=max].sboxed()
    } else {
        Just(1u8).sboxed()
    }
}

/// One operation.
pub fn op(shape: Shape) -> SBoxedStrategy<Op> {
    let authorize = (0u8..2, prop::bool::weighted(0.4))
        .prop_map(|(client, narrow)| Op::Authorize { client, narrow });
    let redeem = (
        pick(),
        prop_oneof![
            6 => Just(CodeUse::Own),
            1 => Just(CodeUse::OtherClient),
            1 => Just(CodeUse::WrongVerifier)
        ],
        copies(shape.max_copies),
    )
        .prop_map(|(code, by, copies)| Op::Redeem { code, by, copies });
    let refresh = (
        pick(),
        prop_oneof![
            4 => Just(ScopeAsk::Same),
            1 => Just(ScopeAsk::Narrow),
            2 => Just(ScopeAsk::Wider)
        ],
        prop::bool::weighted(0.1),
        copies(shape.max_copies),
    )
        .prop_map(|(token, scope, other_client, copies)| Op::Refresh {
            token,
            scope,
            other_client,
            copies,
        });
    let revoke = (
        pick(),
        any::<bool>(),
        prop_oneof![2 => Just(Hint::None), 2 => Just(Hint::Right), 1 => Just(Hint::Wrong)],
        prop::bool::weighted(0.15),
    )
        .prop_map(|(token, access, hint, other_client)| Op::Revoke {
            token,
            access,
            hint,
            other_client,
        });
    let call = pick().prop_map(|token| Op::Call { token });
    let introspect =
        (pick(), any::<bool>()).prop_map(|(token, access)| Op::Introspect { token, access });
    let wait = prop_oneof![
        2 => (1u8..=shape.max_wait_secs.max(1)).prop_map(|secs| Op::Wait { secs }),
        1 => Just(Op::Expire)
    ];
    // Waits are rare: every other operation takes milliseconds, a wait seconds. New codes are
    // drawn less often than uses of what is held: the deep states (a third generation, a
    // revoked token used again) need several operations on one family. Operations the target
    // does not offer are not drawn.
    prop_oneof![
        4 => authorize,
        10 => redeem,
        24 => refresh,
        if shape.revocation { 16 } else { 0 } => revoke,
        16 => call,
        if shape.introspection { 6 } else { 0 } => introspect,
        if shape.registration { 1 } else { 0 } => Just(Op::Register),
        1 => wait
    ]
    .sboxed()
}

/// A sequence: it always starts by authorizing and redeeming (nothing else has anything to
/// use before), then draws freely.
pub fn sequence(shape: Shape) -> SBoxedStrategy<Vec<Op>> {
    let rest = prop::collection::vec(
        op(shape),
        shape.min_len.saturating_sub(2)..=shape.max_len.saturating_sub(2).max(1),
    );
    (0u8..2, prop::bool::weighted(0.4), rest)
        .prop_map(|(client, narrow, rest)| {
            let mut ops = vec![
                Op::Authorize { client, narrow },
                Op::Redeem {
                    code: 0,
                    by: CodeUse::Own,
                    copies: 1,
                },
            ];
            ops.extend(rest);
            ops
        })
        .sboxed()
}

/// A code the campaign obtained.
#[derive(Debug, Clone)]
pub struct Code {
    /// The saved authorization (`auth3`) in the executor's context.
    pub saved: String,
    pub client: usize,
    pub narrow: bool,
    /// The scope asked for.
    pub asked: Vec<String>,
    /// The family its first redemption started.
    pub family: Option<usize>,
    /// A token request for it was answered with tokens (a later one must not be).
    pub redeemed_at: Option<usize>,
    /// A replay was refused at this step (the AS may revoke what the code gave:
    /// code-replay-revokes).
    pub replay_refused: Option<usize>,
    /// Another client or a wrong verifier tried it: the AS may have spent it.
    pub tainted: bool,
}

/// A token family: everything descended from one redemption.
#[derive(Debug, Clone, Default)]
pub struct Family {
    pub client: usize,
    pub code: usize,
    /// The scope granted at redemption (the ceiling of every refresh, O21 4.3.1).
    pub granted: Vec<String>,
    /// Own revocation of one of its refresh tokens was answered 200, at this step.
    pub rt_revoked: Option<usize>,
    /// Own revocation of one of its access tokens was answered 200, at this step.
    pub at_revoked: Option<usize>,
    /// A rotated-out refresh token of it was presented and refused at this step (reuse
    /// detection).
    pub reuse_refused: Option<usize>,
    /// A refresh of it ran (a server may retire older access tokens then).
    pub refreshed: bool,
}

/// What became of a token as far as the campaign knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Live,
    /// Revoked by its own client, answered 200, at this step.
    Revoked(usize),
    /// Replaced by a refresh at this step (a refresh token).
    RotatedOut(usize),
}

/// A token the campaign holds.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    pub access: bool,
    pub family: usize,
    /// Refreshes between the redemption and this token.
    pub generation: u32,
    /// The step that obtained it (an event revokes only what existed before it).
    pub step: usize,
    pub issued: Instant,
    pub expires_in: Option<u64>,
    /// The scope issued with it (the response's `scope`, else what was asked).
    pub scope: Vec<String>,
    pub state: TokenState,
    /// Another client tried to revoke it (RFC 7009 §2.1: it must stay valid).
    pub foreign_revoke: Option<usize>,
    /// Another client tried to refresh with it (the AS may retire it).
    pub misused: bool,
    /// Its revocation named the other token type (`token_type_hint`).
    pub wrong_hint: bool,
    /// Last time a refresh with it succeeded (idle expiry counts from then).
    pub last_used: Instant,
}

/// Everything a sequence holds.
#[derive(Debug, Default)]
pub struct Holdings {
    pub codes: Vec<Code>,
    pub families: Vec<Family>,
    pub tokens: Vec<Token>,
}

impl Holdings {
    /// The code a pick names: counted back from the newest.
    pub fn code(&self, pick: u8) -> Option<usize> {
        back(self.codes.len(), pick)
    }

    /// The token of the kind a pick names, counted back from the newest of that kind.
    pub fn token(&self, pick: u8, access: bool) -> Option<usize> {
        let of_kind: Vec<usize> = (0..self.tokens.len())
            .filter(|&i| self.tokens[i].access == access)
            .collect();
        back(of_kind.len(), pick).map(|k| of_kind[k])
    }
}

fn back(len: usize, pick: u8) -> Option<usize> {
    (len > 0).then(|| len - 1 - (pick as usize % len))
}

/// Space-separated scope as a list.
pub fn scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn shape() -> Shape {
        Shape {
            min_len: 4,
            max_len: 12,
            max_copies: 4,
            max_wait_secs: 3,
            revocation: true,
            introspection: true,
            registration: true,
        }
    }

    #[test]
    fn sequences_start_by_authorizing_and_stay_in_bounds() {
        let mut runner = TestRunner::deterministic();
        let s = sequence(shape());
        for _ in 0..200 {
            let ops = s.new_tree(&mut runner).unwrap().current();
            assert!(matches!(ops[0], Op::Authorize { .. }), "{ops:?}");
            assert!(matches!(ops[1], Op::Redeem { .. }));
            assert!((4..=12).contains(&ops.len()), "{}", ops.len());
            for op in &ops {
                match op {
                    Op::Redeem { copies, .. } | Op::Refresh { copies, .. } => {
                        assert!((1..=4).contains(copies))
                    }
                    Op::Wait { secs } => assert!((1..=3).contains(secs)),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn without_revocation_no_revoke_is_drawn() {
        let mut runner = TestRunner::deterministic();
        let s = sequence(Shape {
            revocation: false,
            ..shape()
        });
        for _ in 0..200 {
            let ops = s.new_tree(&mut runner).unwrap().current();
            assert!(!ops.iter().any(|o| matches!(o, Op::Revoke { .. })));
        }
    }

    #[test]
    fn picks_count_back_from_the_newest_of_their_kind() {
        let mut h = Holdings::default();
        assert_eq!(h.token(0, true), None);
        for (i, access) in [true, false, true, false, true].into_iter().enumerate() {
            h.tokens.push(Token {
                value: format!("t{i}"),
                access,
                family: 0,
                generation: 0,
                step: i,
                issued: Instant::now(),
                expires_in: None,
                scope: vec![],
                state: TokenState::Live,
                foreign_revoke: None,
                misused: false,
                wrong_hint: false,
                last_used: Instant::now(),
            });
        }
        assert_eq!(h.token(0, true), Some(4));
        assert_eq!(h.token(1, true), Some(2));
        assert_eq!(h.token(3, true), Some(4), "wraps around");
        assert_eq!(h.token(0, false), Some(3));
        assert_eq!(h.token(1, false), Some(1));
    }

    #[test]
    fn operations_round_trip_as_json() {
        let ops = vec![
            Op::Authorize {
                client: 1,
                narrow: true,
            },
            Op::Refresh {
                token: 0,
                scope: ScopeAsk::Wider,
                other_client: false,
                copies: 3,
            },
            Op::Revoke {
                token: 1,
                access: true,
                hint: Hint::Wrong,
                other_client: true,
            },
        ];
        let j = serde_json::to_string(&ops).unwrap();
        assert!(j.contains(r#""op":"refresh""#), "{j}");
        let back: Vec<Op> = serde_json::from_str(&j).unwrap();
        assert_eq!(back, ops);
    }
}
