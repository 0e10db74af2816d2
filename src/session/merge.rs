//! `authconform merge`: combine the `results.json` of many runs into one verdict.
//!
//! Reports are grouped by target: the `--targets` name when a report has one, else the kind of
//! target and its URLs (for the built-in reference, which each run starts on a port of its own,
//! its faults and the revision graded). Within a target:
//!
//! - **Shards of one run** (`run --shard K/N`) are concatenated. Every case must come from one
//!   report: a case id in two reports (the same shard twice, or two whole runs) is bad input
//!   (exit 2), as are shards that disagree on N or on the run's size. A shard no report holds is
//!   named as a warning, recorded in `merged.missing_shards`, and keeps the merged verdict from
//!   `passed`: it is `incomplete` (exit 3) unless something failed. So is a set of shards
//!   holding fewer cases than the run selected.
//! - **Campaigns** (`fuzz` reports, sharded or not) are combined per endpoint: request counts
//!   and answers add up, a rule's result is the worst any report gave it, and each rule keeps
//!   the finding with the lowest case number (its seed and case number unchanged, so
//!   `fuzz --replay` on the merged report sends the same request).
//!
//! The merged report is judged again ([`super::run::judge`], with `--expect` when given) and
//! written as `run` writes its reports. Reports of several targets give one folder per target
//! and an `index.html` listing them; the exit code is the worst of the targets (1 over 3 over 0).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{Error, Event, Events, Exit, ReportOptions};
use crate::expected_verdicts;
use crate::record::{
    CampaignStats, CaseResult, FuzzRecord, MergeInput, MergeRecord, Outcome, OutcomeState,
    RunReport, ShardRecord, Status,
};

/// What `authconform merge` does.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// `results.json` files, or folders holding one (or whose subfolders do).
    pub inputs: Vec<PathBuf>,
    pub reports: ReportOptions,
    /// Expected verdicts every merged target must match.
    pub expect: Option<PathBuf>,
}

/// A merge's result: each target's report (with its verdict), what was odd about the inputs,
/// and the exit code.
pub struct Merged {
    pub targets: Vec<MergedTarget>,
    /// Inputs that make the verdict weaker without making it wrong (a missing shard).
    pub warnings: Vec<String>,
    /// The index page, when the reports came from several targets.
    pub index: Option<PathBuf>,
    pub exit: Exit,
}

pub struct MergedTarget {
    /// The folder it was written to under the report folder (several targets only).
    pub folder: Option<String>,
    pub report: RunReport,
}

/// The exit code of several verdicts: a failure over an incomplete run over a pass.
pub fn worst_exit(exits: impl IntoIterator<Item = Exit>) -> Exit {
    exits
        .into_iter()
        .max_by_key(|e| match e {
            Exit::Ok => 0,
            Exit::Unjudged => 1,
            Exit::Failed => 2,
            Exit::Usage => 3,
        })
        .unwrap_or(Exit::Ok)
}

/// Finds, reads, groups, combines, judges and writes.
pub fn merge(opts: &MergeOptions, events: Events<'_>) -> Result<Merged, Error> {
    if opts.inputs.is_empty() {
        return Err(Error::new(
            "merge needs at least one results.json or folder",
        ));
    }
    let files = find_inputs(&opts.inputs)?;
    let mut loaded = Vec::with_capacity(files.len());
    for f in files {
        let report = read_report(&f)?;
        loaded.push((f, report));
    }
    let expect = match &opts.expect {
        Some(p) => Some(expected_verdicts::load(p).map_err(Error::new)?),
        None => None,
    };
    let catalogue: Vec<String> = super::load_cases(None)?
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    let mut warnings = Vec::new();
    let mut targets = Vec::new();
    for (key, group) in group_by_target(loaded) {
        let (mut report, missing) = combine(&key, group, &catalogue, &mut warnings)?;
        let mut known = catalogue.clone();
        known.extend(report.results.iter().map(|r| r.id.clone()));
        let outcome = if report.fuzz.is_some() {
            fuzz_outcome(&report)
        } else {
            super::run::judge(&report, expect.as_ref(), &known).0
        };
        report.outcome = Some(weaken_for_missing(outcome, &missing));
        targets.push(MergedTarget {
            folder: None,
            report,
        });
    }
    let exit = worst_exit(targets.iter().map(|t| exit_of(&t.report)));
    let index = write(opts, &mut targets, events)?;
    Ok(Merged {
        targets,
        warnings,
        index,
        exit,
    })
}

/// The exit code a report's outcome stands for.
pub fn exit_of(report: &RunReport) -> Exit {
    match report.outcome.as_ref().map(|o| o.state) {
        Some(OutcomeState::Passed) => Exit::Ok,
        Some(OutcomeState::Incomplete) => Exit::Unjudged,
        _ => Exit::Failed,
    }
}

/// The files named: a file as given; a folder's `results.json`, else those of its direct
/// subfolders (an artifact download puts each shard in a folder of its own), in name order.
fn find_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_file() {
            out.push(p.clone());
            continue;
        }
        if !p.is_dir() {
            return Err(Error(format!("{}: no such file or folder", p.display())));
        }
        let direct = p.join("results.json");
        if direct.is_file() {
            out.push(direct);
            continue;
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| Error(format!("{}: {e}", p.display())))?
            .filter_map(|e| e.ok().map(|e| e.path().join("results.json")))
            .filter(|f| f.is_file())
            .collect();
        if subs.is_empty() {
            return Err(Error(format!(
                "{}: no results.json in it or in its subfolders",
                p.display()
            )));
        }
        subs.sort();
        out.extend(subs);
    }
    // The same file named twice (a folder and its file) is one input.
    let mut seen = BTreeSet::new();
    out.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(out)
}

fn read_report(f: &Path) -> Result<RunReport, Error> {
    let text = std::fs::read_to_string(f)
        .map_err(|e| Error(format!("{}: cannot read: {e}", f.display())))?;
    let report: RunReport = serde_json::from_str(&text).map_err(|e| {
        Error(format!(
            "{}:{}:{}: not an authconform results.json: {e}",
            f.display(),
            e.line(),
            e.column()
        ))
    })?;
    if report.tool != "authconform" {
        return Err(Error(format!(
            "{}: field `tool`: {:?} is not authconform",
            f.display(),
            report.tool
        )));
    }
    Ok(report)
}

/// What makes reports "the same target": the `--targets` name, else the kind and URLs; for the
/// built-in reference (a new port every run) its faults and graded revision instead of its URL.
fn target_key(r: &RunReport) -> String {
    let t = &r.target;
    if let Some(n) = &t.name {
        return format!("name:{n}");
    }
    let faults = {
        let mut f = t.faults.clone();
        f.sort();
        f.join(",")
    };
    if t.kind == "reference" {
        return format!("reference:{faults}:{}", r.spec.graded);
    }
    format!(
        "{}:{}:{}:{faults}",
        t.kind,
        t.resource.as_deref().unwrap_or(""),
        t.issuer.as_deref().unwrap_or("")
    )
}

type Input = (PathBuf, RunReport);

/// Reports grouped by target, in the order each target first appears.
fn group_by_target(loaded: Vec<Input>) -> Vec<(String, Vec<Input>)> {
    let mut groups: Vec<(String, Vec<Input>)> = Vec::new();
    for (f, r) in loaded {
        let key = target_key(&r);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push((f, r)),
            None => groups.push((key, vec![(f, r)])),
        }
    }
    groups
}

/// One target's reports as one report, and the shards none of them held.
fn combine(
    key: &str,
    group: Vec<Input>,
    catalogue: &[String],
    warnings: &mut Vec<String>,
) -> Result<(RunReport, Vec<usize>), Error> {
    let name = |f: &Path| f.display().to_string();
    let fuzz = group.iter().filter(|(_, r)| r.fuzz.is_some()).count();
    if fuzz != 0 && fuzz != group.len() {
        let (a, _) = group.iter().find(|(_, r)| r.fuzz.is_some()).unwrap();
        let (b, _) = group.iter().find(|(_, r)| r.fuzz.is_none()).unwrap();
        return Err(Error(format!(
            "{} is a fuzz report and {} a run report of the same target: merge them separately",
            name(a),
            name(b)
        )));
    }
    let fuzz = fuzz != 0;
    // Graded alike, or the levels of the merged results would not belong to one revision.
    let graded = &group[0].1.spec.graded;
    if let Some((f, r)) = group.iter().find(|(_, r)| &r.spec.graded != graded) {
        return Err(Error(format!(
            "{}: graded at MCP {} while {} was graded at {graded}: give every shard the same --spec",
            name(f),
            r.spec.graded,
            name(&group[0].0)
        )));
    }
    // Shards: one N and one run size among them, each index once.
    let shards: Vec<(PathBuf, ShardRecord)> = group
        .iter()
        .filter_map(|(f, r)| r.shard.map(|s| (f.clone(), s)))
        .collect();
    let mut missing = Vec::new();
    if let Some((f0, s0)) = shards.first() {
        let mut held: BTreeMap<usize, &PathBuf> = BTreeMap::new();
        let f0 = f0.as_path();
        for (f, s) in &shards {
            if s.count != s0.count || s.total != s0.total {
                return Err(Error(format!(
                    "{}: shard {}/{} of {} while {} is shard {}/{} of {}: not shards of one run",
                    name(f),
                    s.index,
                    s.count,
                    s.total,
                    name(f0),
                    s0.index,
                    s0.count,
                    s0.total
                )));
            }
            if let Some(other) = held.insert(s.index, f) {
                return Err(Error(format!(
                    "shard {}/{} twice: {} and {}",
                    s.index,
                    s.count,
                    name(other),
                    name(f)
                )));
            }
        }
        if shards.len() != group.len() {
            let (f, _) = group.iter().find(|(_, r)| r.shard.is_none()).unwrap();
            return Err(Error(format!(
                "{} is a whole run and {} a shard of the same target: merge the shards alone",
                name(f),
                name(f0)
            )));
        }
        missing = (1..=s0.count).filter(|i| !held.contains_key(i)).collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "{}: shard(s) {} of {} missing: their cases have no verdict, so the merged verdict is at best incomplete",
                display_key(key),
                missing
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                s0.count
            ));
        }
    }
    let inputs: Vec<MergeInput> = group
        .iter()
        .map(|(f, r)| MergeInput {
            file: name(f),
            shard: r.shard,
            results: r.results.len(),
        })
        .collect();
    let mut reports = group.into_iter();
    let (first_file, mut out) = reports.next().expect("a group has a report");
    let mut origin: HashMap<String, PathBuf> = out
        .results
        .iter()
        .map(|r| (r.id.clone(), first_file.clone()))
        .collect();
    let mut incident_ids: BTreeSet<String> = out.incidents.iter().map(|i| i.id.clone()).collect();
    for (f, mut r) in reports {
        // An incident id (`target-down-1`) is per run: renamed where two runs used it.
        for inc in &mut r.incidents {
            if !incident_ids.insert(inc.id.clone()) {
                let renamed = format!(
                    "{}-{}",
                    inc.id,
                    r.shard
                        .map_or_else(|| "run".into(), |s| format!("shard{}", s.index))
                );
                for res in &mut r.results {
                    if res.incident.as_deref() == Some(inc.id.as_str()) {
                        res.incident = Some(renamed.clone());
                    }
                }
                inc.id = renamed.clone();
                incident_ids.insert(renamed);
            }
        }
        if fuzz {
            merge_fuzz_results(&mut out.results, r.results);
        } else {
            for res in r.results {
                if let Some(other) = origin.get(&res.id) {
                    return Err(Error(format!(
                        "case {} is in both {} and {}: the same shard twice, or two runs of one target that are not shards of one run (merge those apart)",
                        res.id,
                        name(other),
                        name(&f)
                    )));
                }
                origin.insert(res.id.clone(), f.clone());
                out.results.push(res);
            }
        }
        out.started_at = out.started_at.clone().min(r.started_at.clone());
        // Shards run side by side: the merged run took as long as its longest shard.
        out.duration_ms = out.duration_ms.max(r.duration_ms);
        out.interrupted |= r.interrupted;
        out.incidents.extend(r.incidents);
        out.unstable = match (out.unstable.take(), r.unstable) {
            (Some(mut a), Some(b)) => {
                a.concurrency = a.concurrency.max(b.concurrency);
                a.cases.extend(b.cases);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        out.provision = out.provision.or(r.provision);
        if let (Some(a), Some(b)) = (&mut out.fuzz, r.fuzz) {
            merge_fuzz_record(a, b);
        }
    }
    if let Some(f) = &mut out.fuzz {
        // One finding per result (the lowest case number), as a campaign keeps one per rule.
        f.findings
            .sort_by(|a, b| (&a.result_id, a.case).cmp(&(&b.result_id, b.case)));
        f.findings.dedup_by(|b, a| a.result_id == b.result_id);
    }
    if let Some(s) = shards.first().map(|(_, s)| *s)
        && missing.is_empty()
        && !out.interrupted
        && !fuzz
        && out.results.len() != s.total
    {
        warnings.push(format!(
            "{}: the shards hold {} cases, but the run selected {}: the merged verdict is at best incomplete",
            display_key(key),
            out.results.len(),
            s.total
        ));
        missing.push(0);
    }
    sort_results(&mut out.results, catalogue);
    out.summary = RunReport::summarize(&out.results);
    out.shard = None;
    out.outcome = None;
    out.merged = Some(MergeRecord {
        inputs,
        missing_shards: missing.iter().copied().filter(|&i| i > 0).collect(),
    });
    Ok((out, missing))
}

fn display_key(key: &str) -> String {
    key.trim_end_matches(':').to_string()
}

/// Results in the catalogue's order (the order of an unsharded run), others after them in the
/// order merged.
fn sort_results(results: &mut [CaseResult], catalogue: &[String]) {
    let pos: HashMap<&str, usize> = catalogue
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    results.sort_by_key(|r| pos.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
}

/// Campaign results of another report folded in: a rule's verdict is the worst seen (a
/// finding in any shard fails it), and a failed one keeps the message and evidence of the
/// lowest case number.
fn merge_fuzz_results(into: &mut Vec<CaseResult>, from: Vec<CaseResult>) {
    let rank = |s: Status| match s {
        Status::Failed => 3,
        Status::Errored => 2,
        Status::Passed => 1,
        Status::Skipped => 0,
    };
    for r in from {
        let Some(have) = into.iter_mut().find(|x| x.id == r.id) else {
            into.push(r);
            continue;
        };
        let better = rank(r.status) > rank(have.status)
            || (r.status == Status::Failed
                && have.status == Status::Failed
                && case_of(&r) < case_of(have));
        if better {
            let duration = have.duration_ms.max(r.duration_ms);
            *have = r;
            have.duration_ms = duration;
        } else {
            have.duration_ms = have.duration_ms.max(r.duration_ms);
        }
    }
}

/// The case number a failed campaign result names in its details (`seed S, case C: ...`).
fn case_of(r: &CaseResult) -> u64 {
    r.details
        .iter()
        .find_map(|d| {
            let rest = d.split_once(", case ")?.1;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(u64::MAX)
}

fn merge_fuzz_record(into: &mut FuzzRecord, from: FuzzRecord) {
    for c in from.campaigns {
        match into.campaigns.iter_mut().find(|x| x.endpoint == c.endpoint) {
            Some(have) => add_campaign(have, c),
            None => into.campaigns.push(c),
        }
    }
    into.findings.extend(from.findings);
}

/// Two shares of one endpoint's campaign: counts add up; they ran side by side, so the
/// duration is the longer and the rate the sum.
fn add_campaign(a: &mut CampaignStats, b: CampaignStats) {
    for u in b.urls {
        if !a.urls.contains(&u) {
            a.urls.push(u);
        }
    }
    a.requests += b.requests;
    a.duration_ms = a.duration_ms.max(b.duration_ms);
    a.requests_per_sec = ((a.requests_per_sec + b.requests_per_sec) * 10.0).round() / 10.0;
    for (k, n) in b.statuses {
        *a.statuses.entry(k).or_default() += n;
    }
    a.unsendable += b.unsendable;
    a.violations += b.violations;
    a.stopped_early = a.stopped_early.take().or(b.stopped_early);
}

/// A campaign's verdict as `fuzz` gives it: any finding or rule that could not be judged fails.
fn fuzz_outcome(r: &RunReport) -> Outcome {
    let s = &r.summary;
    let (state, reason) = if r.interrupted {
        (OutcomeState::Interrupted, "interrupted".to_string())
    } else if s.failed + s.errored > 0 {
        (
            OutcomeState::Failed,
            format!(
                "{} rule(s) broken, {} could not be judged",
                s.failed, s.errored
            ),
        )
    } else {
        (OutcomeState::Passed, "no rule broken".to_string())
    };
    Outcome {
        exit_code: if state == OutcomeState::Passed { 0 } else { 1 },
        state,
        reason,
        expect: None,
    }
}

/// Missing shards (or cases) make a passing verdict incomplete: what was not run was not judged.
fn weaken_for_missing(mut o: Outcome, missing: &[usize]) -> Outcome {
    if missing.is_empty() {
        return o;
    }
    let what = if missing.iter().all(|&i| i > 0) {
        format!(
            "shard(s) {} missing",
            missing
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "cases missing from the shards".to_string()
    };
    if o.state == OutcomeState::Passed {
        o.state = OutcomeState::Incomplete;
        o.exit_code = Exit::Unjudged.code();
        o.reason = format!("{what}; otherwise {}", o.reason);
    } else {
        o.reason = format!("{}; {what}", o.reason);
    }
    o
}

/// A folder name for a target: its `--targets` name, else made from what it was pointed at.
fn folder_name(r: &RunReport) -> String {
    let t = &r.target;
    let raw = match (&t.name, t.kind.as_str()) {
        (Some(n), _) => n.clone(),
        (None, "reference") if t.faults.is_empty() => "reference".into(),
        (None, "reference") => format!("reference-{}", t.faults.join("-")),
        (None, _) => {
            let url = t
                .resource
                .as_deref()
                .or(t.issuer.as_deref())
                .unwrap_or("target");
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            rest.to_string()
        }
    };
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    if s.is_empty() {
        s = "target".into();
    }
    s
}

/// Writes one target's reports where the flags say, or each target's into a folder of its own
/// with the index page beside them.
fn write(
    opts: &MergeOptions,
    targets: &mut [MergedTarget],
    events: Events<'_>,
) -> Result<Option<PathBuf>, Error> {
    let r = &opts.reports;
    if targets.len() == 1 {
        r.write(&targets[0].report, "reports", events)?;
        return Ok(None);
    }
    for (flag, set) in [
        ("--json", r.json.is_some()),
        ("--junit", r.junit.is_some()),
        ("--html", r.html.is_some()),
        ("--sarif", r.sarif.is_some()),
    ] {
        if set {
            return Err(Error(format!(
                "{flag} names one file, but the reports are of {} targets: each goes to a folder of its own under --report-dir",
                targets.len()
            )));
        }
    }
    let dir = r.dir.clone().unwrap_or_else(|| PathBuf::from("reports"));
    let mut used = BTreeSet::new();
    for t in targets.iter_mut() {
        let base = folder_name(&t.report);
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.to_ascii_lowercase()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        t.folder = Some(name);
    }
    write_targets(
        &dir,
        targets
            .iter()
            .map(|t| (t.folder.as_deref().unwrap_or(""), &t.report)),
        events,
    )
    .map(Some)
}

/// Each report into `dir/<folder>/` (results.json, junit.xml, report.html, results.sarif) and
/// the index page `dir/index.html` listing them.
pub(super) fn write_targets<'a>(
    dir: &Path,
    targets: impl Iterator<Item = (&'a str, &'a RunReport)> + Clone,
    events: Events<'_>,
) -> Result<PathBuf, Error> {
    for (folder, report) in targets.clone() {
        let opts = ReportOptions {
            dir: Some(dir.join(folder)),
            sarif: Some(dir.join(folder).join("results.sarif")),
            ..ReportOptions::default()
        };
        opts.write(report, "reports", events)?;
    }
    let entries: Vec<crate::report::index::Entry<'_>> = targets
        .map(|(folder, report)| crate::report::index::Entry { folder, report })
        .collect();
    let path = crate::report::write_index(&dir.join("index.html"), &entries).map_err(Error::new)?;
    events(Event::ReportsWritten(std::slice::from_ref(&path)));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Level, SpecInfo, Summary, TargetInfo};

    fn result(id: &str, status: Status) -> CaseResult {
        CaseResult {
            id: id.into(),
            area: "prm".into(),
            level: Level::Must,
            role: "rs".into(),
            title: id.into(),
            refs: vec![],
            status,
            warning: false,
            message: String::new(),
            details: vec![],
            spec: "2025-11-25".into(),
            duration_ms: 1,
            exchanges: vec![],
            incident: None,
            blocked_by: None,
            quote: None,
            test_users: vec![],
        }
    }

    fn report(shard: Option<(usize, usize, usize)>, results: Vec<CaseResult>) -> RunReport {
        RunReport {
            tool: "authconform".into(),
            version: "0".into(),
            target: TargetInfo {
                kind: "reference".into(),
                resource: Some("https://127.0.0.1:1/mcp".into()),
                ..TargetInfo::default()
            },
            spec: SpecInfo {
                graded: "2025-11-25".into(),
                ..SpecInfo::default()
            },
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 5,
            interrupted: false,
            summary: Summary::default(),
            incidents: vec![],
            unstable: None,
            provision: None,
            results,
            fuzz: None,
            outcome: None,
            shard: shard.map(|(index, count, total)| ShardRecord {
                index,
                count,
                total,
            }),
            merged: None,
        }
    }

    fn inputs(reports: Vec<RunReport>) -> Vec<Input> {
        reports
            .into_iter()
            .enumerate()
            .map(|(i, r)| (PathBuf::from(format!("s{i}/results.json")), r))
            .collect()
    }

    #[test]
    fn shards_concatenate_in_catalogue_order_and_a_missing_one_is_named() {
        let cat = vec!["a".to_string(), "b".into(), "c".into()];
        let mut w = vec![];
        let (r, missing) = combine(
            "k",
            inputs(vec![
                report(Some((2, 3, 3)), vec![result("c", Status::Passed)]),
                report(Some((1, 3, 3)), vec![result("a", Status::Failed)]),
            ]),
            &cat,
            &mut w,
        )
        .unwrap();
        let ids: Vec<&str> = r.results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(missing, [3]);
        assert_eq!(r.merged.as_ref().unwrap().missing_shards, [3]);
        assert_eq!(r.summary.failed, 1);
        assert!(w[0].contains("shard(s) 3 of 3 missing"), "{w:?}");
        let passed = Outcome {
            state: OutcomeState::Passed,
            exit_code: 0,
            reason: "no MUST requirement failed".into(),
            expect: None,
        };
        let o = weaken_for_missing(passed, &missing);
        assert_eq!(o.state, OutcomeState::Incomplete);
        assert_eq!(o.exit_code, 3);
    }

    #[test]
    fn overlapping_or_inconsistent_shards_are_refused_naming_the_files() {
        let cat = vec![];
        let dup = combine(
            "k",
            inputs(vec![
                report(Some((1, 2, 2)), vec![result("a", Status::Passed)]),
                report(Some((1, 2, 2)), vec![result("b", Status::Passed)]),
            ]),
            &cat,
            &mut vec![],
        )
        .err()
        .unwrap();
        assert!(
            dup.0
                .contains("shard 1/2 twice: s0/results.json and s1/results.json"),
            "{dup}"
        );
        let overlap = combine(
            "k",
            inputs(vec![
                report(None, vec![result("a", Status::Passed)]),
                report(None, vec![result("a", Status::Failed)]),
            ]),
            &cat,
            &mut vec![],
        )
        .err()
        .unwrap();
        assert!(
            overlap
                .0
                .contains("case a is in both s0/results.json and s1/results.json"),
            "{overlap}"
        );
        let counts = combine(
            "k",
            inputs(vec![
                report(Some((1, 2, 2)), vec![]),
                report(Some((2, 3, 2)), vec![]),
            ]),
            &cat,
            &mut vec![],
        )
        .err()
        .unwrap();
        assert!(counts.0.contains("not shards of one run"), "{counts}");
    }

    #[test]
    fn fewer_cases_than_the_run_selected_is_not_a_pass() {
        let mut w = vec![];
        let (_, missing) = combine(
            "k",
            inputs(vec![
                report(Some((1, 2, 3)), vec![result("a", Status::Passed)]),
                report(Some((2, 2, 3)), vec![result("b", Status::Passed)]),
            ]),
            &[],
            &mut w,
        )
        .unwrap();
        assert_eq!(missing, [0]);
        assert!(
            w[0].contains("hold 2 cases, but the run selected 3"),
            "{w:?}"
        );
    }

    #[test]
    fn campaign_results_take_the_worst_and_the_lowest_case() {
        let mut into = vec![result("x.no-5xx", Status::Passed)];
        let mut f1 = result("x.no-5xx", Status::Failed);
        f1.details = vec!["seed 7, case 9: shrunk".into()];
        let mut f2 = result("x.no-5xx", Status::Failed);
        f2.details = vec!["seed 7, case 4: shrunk".into()];
        merge_fuzz_results(&mut into, vec![f1]);
        merge_fuzz_results(&mut into, vec![f2, result("y.no-5xx", Status::Skipped)]);
        assert_eq!(into.len(), 2);
        assert_eq!(into[0].status, Status::Failed);
        assert_eq!(case_of(&into[0]), 4);
    }

    #[test]
    fn folder_names_are_plain() {
        let mut r = report(None, vec![]);
        assert_eq!(folder_name(&r), "reference");
        r.target.kind = "resource".into();
        r.target.resource = Some("https://a.example:8443/mcp/../x?q=<b>".into());
        assert_eq!(folder_name(&r), "a.example-8443-mcp-..-x-q--b");
        r.target.name = Some("..".into());
        assert_eq!(folder_name(&r), "target");
        assert_eq!(worst_exit([Exit::Ok, Exit::Unjudged]), Exit::Unjudged);
        assert_eq!(
            worst_exit([Exit::Failed, Exit::Unjudged, Exit::Ok]),
            Exit::Failed
        );
    }
}
