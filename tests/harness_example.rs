//! The worked example of `authconform::harness` (README, "In your own cargo test"): a project
//! starts its server in this process and hands authconform its URL; every case is a test.
//! Here the server is authconform's own reference, started as a project would start its own.
//!
//! `cargo test --test harness_example -- --list`, `-- prm-`, `-- --exact prm-resource-match`, and
//! `cargo nextest run --test harness_example` all work.

use std::path::Path;

use authconform::harness::Harness;
use authconform::reference::LoginStyle;

fn main() {
    // The server under test, on a runtime of the test's own: its tasks run on the runtime's
    // threads while the harness runs the cases from this one.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (server, ca_file) = rt
        .block_on(authconform::session::serve_reference(
            authconform::reference::Options {
                login: LoginStyle::Form,
                ..Default::default()
            },
        ))
        .expect("the server starts");

    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("authconform-harness");
    // Given only a URL (no profile naming a test user), the areas whose cases need no login:
    // the 401 challenge, Protected Resource Metadata and the AS metadata it leads to, less the
    // three of them that log a user in (with a profile, `.config(...)`, they would run too).
    let conclusion = Harness::resource(server.resource.clone())
        .cacert(&ca_file)
        .only("challenge")
        .only("prm")
        .only("as_metadata")
        .skip("rs-401-expired-token")
        .skip("rs-auth-every-request")
        .skip("asm-iss-flag")
        .report_dir(&reports)
        .run();
    server.shutdown();
    drop(rt);
    if conclusion.num_passed > 0 && std::env::var_os("NEXTEST_RUN_ID").is_none() {
        // The usual reports, for CI to keep.
        for f in ["results.json", "junit.xml", "report.html"] {
            assert!(reports.join(f).is_file(), "{f} not written");
        }
    }
    conclusion.exit();
}
