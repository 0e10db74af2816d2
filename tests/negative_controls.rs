//! Negative controls: every shipped case passes against the compliant reference server, and
//! fails against the reference started with the fault named after it. A check that cannot fail
//! is a defect; this walk is what proves each one can.
//!
//! libtest-mimic gives one trial per case and per direction, so `cargo test --test
//! negative_controls -- prm-` runs a subset and a failure names its case.

use std::sync::Arc;

use authconform::case::{self, Case, Feature};
use authconform::record::Status;
use authconform::reference;
use authconform::runner;
use authconform::session::{self, DocumentOptions, SetupOptions, TargetOptions};
use authconform::spec::{Revision, SpecChoice};
use libtest_mimic::{Arguments, Failed, Trial};

/// One case against the built-in reference started with `faults`, set up as `authconform run`
/// sets it up.
fn run_one(case: &Case, faults: Vec<String>) -> Result<authconform::record::CaseResult, Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("runtime: {e}")))?;
    rt.block_on(async {
        let opts = SetupOptions {
            target: TargetOptions {
                reference_faults: faults,
                reference_login: login_style(),
                ..TargetOptions::default()
            },
            // CIMD cases need the document host, trusted by the reference in development mode;
            // the ID-JAG cases' enterprise IdP is served there too.
            documents: (case.file.area == "cimd" || case.file.area == "id_jag")
                .then(DocumentOptions::default),
            spec: SpecChoice::Fixed(Revision::V2025_11_25),
            max_wait: None,
        };
        let mut prepared = session::prepare(&opts, &|_| {})
            .await
            .map_err(|e| Failed::from(format!("set-up: {e}")))?;
        // The reference's own consent is what an MCP proxy's consent looks like.
        if case.file.requires.contains(&Feature::Proxy) {
            prepared.env.profile.target.proxy = Some(true);
        }
        let result = runner::run_case(&prepared.env, case).await;
        prepared.shutdown();
        Ok(result)
    })
}

/// The reference's login style for this walk: `AUTHCONFORM_TEST_REFERENCE_LOGIN` (form, json
/// or spa; CI walks each), form by default. Every control must hold under every style: a login
/// driver must never turn the AS's refusal into an unjudged case.
fn login_style() -> reference::LoginStyle {
    std::env::var("AUTHCONFORM_TEST_REFERENCE_LOGIN")
        .ok()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_default()
}

fn explain(r: &authconform::record::CaseResult) -> String {
    format!(
        "{} {}: {}\n  {}",
        r.status.as_str(),
        r.id,
        r.message,
        r.details.join("\n  ")
    )
}

fn main() {
    let args = Arguments::from_args();
    let cases =
        Arc::new(case::load_builtin(authconform::checks::NAMES).unwrap_or_else(|e| panic!("{e}")));
    let mut trials = Vec::new();

    // Bookkeeping: every case has a fault or says why not; every fault names a case.
    {
        let cases = cases.clone();
        trials.push(Trial::test(
            "faults::every-case-has-its-negative-control",
            move || {
                let mut problems = Vec::new();
                for c in cases.iter() {
                    let has = reference::FAULTS.contains(&c.id());
                    match (&c.file.fault, has) {
                        (Some(_), false) => problems.push(format!(
                            "{} declares a fault the reference does not implement",
                            c.id()
                        )),
                        (None, true) => problems.push(format!(
                            "{} declares no_fault but the reference has a fault for it",
                            c.id()
                        )),
                        _ => {}
                    }
                }
                for f in reference::FAULTS {
                    if !cases.iter().any(|c| c.id() == *f) {
                        problems.push(format!("reference fault {f} names no case"));
                    }
                }
                let no_fault = cases.iter().filter(|c| c.file.no_fault.is_some()).count();
                if no_fault * 10 > cases.len() {
                    problems.push(format!(
                        "{no_fault} cases have no negative control: the list must stay short"
                    ));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("\n").into())
                }
            },
        ));
    }

    for c in cases.iter() {
        let area = c.file.area.clone();
        let compliant = c.clone();
        trials.push(Trial::test(
            format!("{area}::{}::passes-on-reference", c.id()),
            move || {
                let r = run_one(&compliant, vec![])?;
                if r.status == Status::Passed && !r.warning {
                    Ok(())
                } else {
                    Err(format!(
                        "expected passed against the compliant reference\n{}",
                        explain(&r)
                    )
                    .into())
                }
            },
        ));
        if c.file.fault.is_some() {
            let faulty = c.clone();
            trials.push(Trial::test(
                format!("{area}::{}::fails-with-its-fault", c.id()),
                move || {
                    let r = run_one(&faulty, vec![faulty.id().to_string()])?;
                    if r.status == Status::Failed {
                        // The failure must carry evidence: at least one exchange.
                        if r.exchanges.is_empty() {
                            return Err(format!(
                                "failed without any recorded exchange\n{}",
                                explain(&r)
                            )
                            .into());
                        }
                        Ok(())
                    } else {
                        Err(format!(
                            "expected failed with fault {}\n{}",
                            faulty.id(),
                            explain(&r)
                        )
                        .into())
                    }
                },
            ));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
