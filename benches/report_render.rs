//! How long report.html takes to render, and how big it is, for a given results.json (a full
//! reference run is the figure to watch: `authconform run --report-dir /tmp/x`, then
//! `AUTHCONFORM_RESULTS=/tmp/x/results.json cargo bench --bench report_render`). Without the
//! variable it says so and does nothing: the input is a run's output, not a fixture.

use std::time::Instant;

fn main() {
    let Some(path) = std::env::var_os("AUTHCONFORM_RESULTS") else {
        eprintln!("report_render: set AUTHCONFORM_RESULTS to a results.json to measure");
        return;
    };
    let text = std::fs::read_to_string(&path).expect("results.json readable");
    let report: authconform::record::RunReport =
        serde_json::from_str(&text).expect("results.json parses");
    let mut best = f64::MAX;
    let mut size = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        let html = authconform::report::html::to_string(&report);
        best = best.min(t0.elapsed().as_secs_f64());
        size = html.len();
    }
    let exchanges: usize = report.results.iter().map(|r| r.exchanges.len()).sum();
    println!(
        "report.html: {} cases, {exchanges} exchanges, results.json {} bytes -> {size} bytes in {:.1} ms (best of 5)",
        report.results.len(),
        text.len(),
        best * 1000.0
    );
}
