//! Campaign outcomes as report records: one result per endpoint URL and rule, with the
//! requirement's id, level and references from the case catalogue, so every reporter (console,
//! JSON, JUnit, HTML, SARIF) shows fuzz findings the way it shows case verdicts.

use crate::case::Case;
use crate::record::{CaseResult, Exchange, FuzzRecord, Level, Status};

use super::{Base, Outcome, Rule, Setup};

/// The case of a requirement id: the case with that id, else its first variant
/// (`<id>.<variant>`), whose level and references are the requirement's.
pub fn requirement_case<'a>(cases: &'a [Case], req: &str) -> Option<&'a Case> {
    cases.iter().find(|c| c.id() == req).or_else(|| {
        cases.iter().find(|c| {
            c.id()
                .strip_prefix(req)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    })
}

/// A result for requirement `req` under `id`: area, level, role and references are the
/// requirement's (from its case); `passed` until told otherwise.
pub fn result_for(id: String, req: &str, title: String, cases: &[Case], spec: &str) -> CaseResult {
    let case = requirement_case(cases, req);
    CaseResult {
        id,
        area: case.map_or_else(|| "fuzz".into(), |c| c.file.area.clone()),
        level: case.map_or(Level::Info, |c| Level::from(c.file.level)),
        role: case.map_or_else(String::new, |c| c.file.role.as_str().to_string()),
        title,
        refs: case.map_or_else(Vec::new, |c| c.file.refs.clone()),
        status: Status::Passed,
        warning: false,
        message: String::new(),
        details: Vec::new(),
        spec: spec.to_string(),
        duration_ms: 0,
        exchanges: Vec::new(),
        incident: None,
        blocked_by: None,
        quote: case.and_then(|c| c.file.quote.clone()),
        test_users: Vec::new(),
    }
}

fn blank(id: String, rule: Rule, base: Base, cases: &[Case], spec: &str) -> CaseResult {
    let req = rule.requirement(base);
    let title = format!(
        "{} (fuzz, {}: {})",
        requirement_case(cases, req).map_or(req, |c| c.file.title.as_str()),
        base.as_str(),
        rule.describe()
    );
    result_for(id, req, title, cases, spec)
}

/// The records of a whole campaign (every endpoint run), and the fuzz section of the report.
pub fn build(
    outcomes: &[Outcome],
    setup: &Setup,
    cases: &[Case],
    seed: u64,
    spec: &str,
    replay_hint: &str,
) -> (Vec<CaseResult>, FuzzRecord) {
    let mut results = Vec::new();
    let mut record = FuzzRecord {
        seed,
        ..FuzzRecord::default()
    };
    for o in outcomes {
        record.campaigns.push(o.stats.clone());
        for &base in o.endpoint.bases() {
            let sent = o.sent.get(&base).copied().unwrap_or(0);
            let url = setup.urls.get(&base).cloned().unwrap_or_default();
            let statuses = o
                .stats
                .statuses
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            for rule in Rule::ALL.into_iter().filter(|r| r.applies(base)) {
                let mut r = blank(rule.result_id(base), rule, base, cases, spec);
                r.duration_ms = o.stats.duration_ms;
                if let Some(why) = setup.missing.get(&base) {
                    r.status = Status::Skipped;
                    r.message = format!("not attacked: {why}");
                    r.exchanges = setup.discovery.clone();
                    results.push(r);
                    continue;
                }
                if let Some(why) = o.errored.get(&base) {
                    r.status = Status::Errored;
                    r.message = why.clone();
                    r.exchanges = o.liveness.clone();
                    results.push(r);
                    continue;
                }
                let finding = o
                    .findings
                    .iter()
                    .find(|(b, f, _)| *b == base && f.rule == rule.as_str());
                let broke = o.violations.get(&(base, rule)).copied().unwrap_or(0);
                match finding {
                    Some((_, f, exchanges)) => {
                        r.status = Status::Failed;
                        r.message = f.message.clone();
                        if rule != Rule::StillAnswers {
                            r.details.push(format!(
                                "{broke} of {sent} generated requests to {url} broke the rule: {}",
                                rule.describe()
                            ));
                            r.details.push(format!(
                                "seed {}, case {}: shrunk in {} steps ({} candidates tried) to {} {} with a {}-byte request",
                                f.seed,
                                f.case,
                                f.shrink_steps,
                                f.shrink_tries,
                                f.request.method,
                                if f.request.suffix.is_empty() { "(no suffix)".to_string() } else { format!("suffix {:?}", cut(&f.request.suffix, 120)) },
                                f.request.body_base64.as_ref().map_or(0, |b| b.len() * 3 / 4)
                            ));
                        }
                        r.details.push(format!("reproduce: {}", f.curl));
                        r.details.push(format!("replay: {replay_hint}"));
                        let mut ex: Vec<Exchange> = exchanges.clone();
                        if rule == Rule::StillAnswers {
                            ex = o.liveness.clone();
                        }
                        r.exchanges = ex;
                        record.findings.push(f.clone());
                    }
                    // Stopped early (the target went away): the suite could not tell.
                    None if sent == 0 && o.stats.stopped_early.is_some() => {
                        r.status = Status::Errored;
                        r.message = o.stats.stopped_early.clone().unwrap_or_default();
                    }
                    // The budget ran out before a generated request went to this URL (a few
                    // --cases shared by two metadata documents): nothing was judged here.
                    None if sent == 0 => {
                        r.status = Status::Skipped;
                        r.message =
                            "no generated request went to this URL within the budget".into();
                    }
                    None => {
                        r.message = format!(
                            "{sent} generated requests ({} per second), none broke the rule",
                            o.stats.requests_per_sec
                        );
                        r.details
                            .push(format!("sent to {url}; answers: {statuses}"));
                        r.details.push(format!("seed {seed}"));
                        if rule == Rule::StillAnswers {
                            r.exchanges = o.liveness.clone();
                        }
                    }
                }
                results.push(r);
            }
        }
    }
    (results, record)
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n).collect();
    c.push('…');
    c
}
