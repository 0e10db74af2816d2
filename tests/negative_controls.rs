//! Negative controls: every shipped case passes against the compliant reference server, and
//! fails against the reference started with the fault named after it. A check that cannot fail
//! is a defect; this walk is what proves each one can.
//!
//! libtest-mimic gives one trial per case and per direction, so `cargo test --test
//! negative_controls -- prm-` runs a subset and a failure names its case.

use std::sync::Arc;

use authconform::case::{self, Case};
use authconform::http::{Http, HttpConfig};
use authconform::record::Status;
use authconform::redact::Redactor;
use authconform::reference;
use authconform::runner;
use authconform::spec::Revision;
use authconform::step::RunEnv;
use authconform::target::Target;
use libtest_mimic::{Arguments, Failed, Trial};

fn run_one(case: &Case, faults: Vec<String>) -> Result<authconform::record::CaseResult, Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("runtime: {e}")))?;
    rt.block_on(async {
        // CIMD cases need the document host, trusted by the reference in development mode.
        let documents = if case.file.area == "cimd" {
            let ca = authconform::local_ca::generate_for("document host")
                .map_err(|e| Failed::from(format!("CA: {e}")))?;
            let d = authconform::cimd::Documents::start(0, None, ca, None)
                .await
                .map_err(Failed::from)?;
            Some(Arc::new(d))
        } else {
            None
        };
        let r = reference::start(reference::Options {
            port: 0,
            faults,
            cimd_dev_origins: documents.iter().flat_map(|d| d.dev_origins()).collect(),
            cimd_trust_pem: documents.as_ref().map(|d| d.host.ca_pem.clone()),
        })
        .await
        .map_err(|e| Failed::from(format!("reference: {e}")))?;
        let cfg = HttpConfig {
            extra_roots_pem: vec![r.ca.ca_pem.clone().into_bytes()],
            ..HttpConfig::default()
        };
        let http = Http::new(cfg, Redactor::new()).map_err(|e| Failed::from(e.to_string()))?;
        let env = RunEnv {
            http,
            target: Target {
                resource: Some(r.resource.clone()),
                issuer: None,
            },
            revision: Revision::V2025_11_25,
            profile: {
                let mut p = r.profile();
                // The reference's own consent is what an MCP proxy's consent looks like.
                if case
                    .file
                    .requires
                    .contains(&authconform::case::Feature::Proxy)
                {
                    p.target.proxy = Some(true);
                }
                p
            },
            callback: None,
            registered: Default::default(),
            as_metadata: Default::default(),
            documents,
        };
        let result = runner::run_case(&env, case).await;
        r.shutdown();
        Ok(result)
    })
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
