#!/usr/bin/env python3
"""Reads authconform's junit.xml with a real JUnit consumer (PyPI's junitparser) and checks
that what a CI dashboard counts is the run's gate.

For each report folder given (each holds junit.xml and results.json from one run):
- junitparser parses every test case; the failures and errors it finds in them (not the counts
  the file claims) must equal the gating failures and the errored gating cases of results.json,
  recomputed here from the verdicts (MUST level, not a tolerated warning; under --expect, the
  differences from the file);
- the counts the file claims (`failures`, `errors`, `tests`, `skipped` on <testsuites> and each
  <testsuite>) must equal the ones junitparser recomputes from the test cases;
- a run that exited 0 (outcome.state "passed") shows no failure and no error, and every suite
  carries the run's state as the authconform.outcome property.

Usage: junit-consumer-check.py DIR [DIR...]; exits 1 naming the first disagreement.
"""

import json
import sys
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped


def gating(report):
    """(failures, errors) as the run's gate counts them, from results.json alone."""
    results = report["results"]
    expect = (report.get("outcome") or {}).get("expect")
    if expect is None:
        fails = [
            r for r in results
            if r["level"] == "MUST" and r["status"] == "failed" and not r.get("warning")
        ]
        errs = [r for r in results if r["level"] == "MUST" and r["status"] == "errored"]
        return len(fails), len(errs)
    differ = {c["id"] for c in expect.get("changed", []) + expect.get("unlisted", [])}
    differ |= {
        e["id"] for e in expect.get("expired", []) if e["observed"] in ("failed", "errored")
    }
    statuses = {r["id"]: r["status"] for r in results}
    errs = sum(1 for i in differ if statuses.get(i) == "errored")
    return len(differ) - errs, errs


def check(folder):
    folder = Path(folder)
    report = json.loads((folder / "results.json").read_text())
    xml = JUnitXml.fromfile(str(folder / "junit.xml"))
    claimed = {k: getattr(xml, k) for k in ("tests", "failures", "errors", "skipped")}

    seen = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in xml:
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in suite:
            counts["tests"] += 1
            for res in case.result:
                if isinstance(res, Failure):
                    counts["failures"] += 1
                elif isinstance(res, Error):
                    counts["errors"] += 1
                elif isinstance(res, Skipped):
                    counts["skipped"] += 1
        for k, n in counts.items():
            if getattr(suite, k) != n:
                sys.exit(f"{folder}: suite {suite.name}: {k}={getattr(suite, k)} but its cases hold {n}")
            seen[k] += n
        props = {p.name: p.value for p in suite.properties()}
        state = (report.get("outcome") or {}).get("state")
        if state and props.get("authconform.outcome") != state:
            sys.exit(f"{folder}: suite {suite.name} says outcome {props.get('authconform.outcome')}, results.json {state}")
    if claimed != seen:
        sys.exit(f"{folder}: <testsuites> claims {claimed}, the test cases hold {seen}")
    if seen["tests"] != len(report["results"]):
        sys.exit(f"{folder}: {seen['tests']} test cases for {len(report['results'])} results")

    want_f, want_e = gating(report)
    if (seen["failures"], seen["errors"]) != (want_f, want_e):
        sys.exit(
            f"{folder}: junitparser counts {seen['failures']} failures and {seen['errors']} errors; "
            f"the gate has {want_f} gating failures and {want_e} unjudged gating cases"
        )
    state = report["outcome"]["state"]
    if state == "passed" and (seen["failures"] or seen["errors"]):
        sys.exit(f"{folder}: the run passed, but the dashboard would show red")
    s = report["summary"]
    print(
        f"{folder}: {state} (exit {report['outcome']['exit_code']}); junitparser: {seen['tests']} tests, "
        f"{seen['failures']} failures, {seen['errors']} errors, {seen['skipped']} skipped "
        f"(results: {s['failed']} failed of which {s['warnings']} warnings, {s['errored']} errored): agrees"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for d in sys.argv[1:]:
        check(d)
