//! Scale past one machine: `run --shard K/N` shares merged with `authconform merge` give the
//! verdicts of one unsharded run (the acceptance check, against the built-in reference), merge's
//! handling of bad and incomplete inputs, and `run --targets` with its index page.

mod common;

use common::{bin, text};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

fn spawn(args: &[String]) -> Child {
    bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authconform")
}

fn json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    serde_json::from_str(&s).expect("results.json is JSON")
}

fn validate_results(v: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/results.schema.json").unwrap())
            .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "results.json violates its schema: {errors:?}"
    );
}

/// Case id → status, in report order.
fn verdicts(v: &serde_json::Value) -> Vec<(String, String)> {
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs `extra` once whole and as shards 1/n … n/n at the same time (each its own reference),
/// merges the shards, and returns (whole run's output, merged run's output, the shard folder,
/// the merged folder).
fn whole_and_sharded(dir: &Path, extra: &[&str], n: usize) -> (Output, Output, PathBuf, PathBuf) {
    let args = |more: &[String]| -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(more.iter().cloned());
        a
    };
    let whole_dir = dir.join("whole");
    let shards_dir = dir.join("shards");
    let whole = spawn(&args(&[
        "--report-dir".into(),
        whole_dir.display().to_string(),
    ]));
    let shards: Vec<Child> = (1..=n)
        .map(|k| {
            spawn(&args(&[
                "--shard".into(),
                format!("{k}/{n}"),
                "--report-dir".into(),
                shards_dir.join(format!("shard-{k}")).display().to_string(),
            ]))
        })
        .collect();
    let whole = whole.wait_with_output().unwrap();
    for (k, s) in shards.into_iter().enumerate() {
        let o = s.wait_with_output().unwrap();
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "shard {}/{n}: {}",
            k + 1,
            text(&o)
        );
    }
    let merged_dir = dir.join("merged");
    let merged = bin()
        .args(["merge", "--report-dir"])
        .arg(&merged_dir)
        .arg(&shards_dir)
        .output()
        .unwrap();
    (whole, merged, shards_dir, merged_dir)
}

#[test]
fn four_shards_merged_give_the_verdicts_of_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, merged, shards_dir, merged_dir) = whole_and_sharded(tmp.path(), &[], 4);
    let a = json(&tmp.path().join("whole/results.json"));
    let b = json(&merged_dir.join("results.json"));
    validate_results(&b);
    let (va, vb) = (verdicts(&a), verdicts(&b));
    assert!(va.len() > 300, "the whole suite ran: {}", va.len());
    assert_eq!(
        va, vb,
        "merged verdicts (and their order) differ from the unsharded run"
    );
    assert_eq!(a["summary"], b["summary"]);
    assert_eq!(a["outcome"]["state"], b["outcome"]["state"]);
    assert_eq!(
        whole.status.code(),
        merged.status.code(),
        "{}",
        text(&merged)
    );
    // Every shard took a real share, said which, and the merge lists each input.
    let mut sizes = BTreeMap::new();
    for k in 1..=4 {
        let s = json(&shards_dir.join(format!("shard-{k}/results.json")));
        validate_results(&s);
        assert_eq!(s["shard"]["index"], k);
        assert_eq!(s["shard"]["count"], 4);
        assert_eq!(s["shard"]["total"], va.len());
        sizes.insert(k, s["results"].as_array().unwrap().len());
    }
    assert!(sizes.values().all(|&n| n > 0), "{sizes:?}");
    assert_eq!(b["merged"]["inputs"].as_array().unwrap().len(), 4);
    assert!(b.get("shard").is_none());
    for f in ["junit.xml", "report.html"] {
        assert!(merged_dir.join(f).is_file(), "{f} not written");
    }

    // A shard lost on the way: the merge says which, and cannot pass (exit 3).
    std::fs::remove_dir_all(shards_dir.join("shard-3")).unwrap();
    let o = bin()
        .args(["merge", "--report-dir"])
        .arg(tmp.path().join("partial"))
        .arg(&shards_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("shard(s) 3 of 4 missing"), "{}", text(&o));
    let p = json(&tmp.path().join("partial/results.json"));
    assert_eq!(p["merged"]["missing_shards"], serde_json::json!([3]));
    assert_eq!(p["outcome"]["state"], "incomplete");

    // A whole run mixed with shards of the same target is bad input, naming both files.
    let one = shards_dir.join("shard-1/results.json");
    let o = bin()
        .args(["merge", "--report-dir"])
        .arg(tmp.path().join("dup"))
        .arg(&one)
        .arg(shards_dir.join("shard-2/results.json"))
        .arg(tmp.path().join("whole/results.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is a whole run"), "{}", text(&o));
}

#[test]
fn cross_checks_keep_their_verdicts_when_sharded() {
    // The metadata cross-checks run after the other cases and read their facts; with a fault
    // that breaks one (client_secret_post listed but refused) the shards must still find it.
    let tmp = tempfile::tempdir().unwrap();
    let (whole, merged, ..) = whole_and_sharded(
        tmp.path(),
        &[
            "--reference-fault",
            "asm-auth-methods.advertised",
            "--only",
            "as_metadata",
            "--only",
            "token_endpoint",
        ],
        3,
    );
    let a = json(&tmp.path().join("whole/results.json"));
    let b = json(&tmp.path().join("merged/results.json"));
    assert_eq!(verdicts(&a), verdicts(&b));
    let failed: Vec<_> = verdicts(&b)
        .into_iter()
        .filter(|(_, s)| s == "failed")
        .collect();
    assert!(
        failed
            .iter()
            .any(|(id, _)| id == "asm-auth-methods.advertised"),
        "{failed:?}"
    );
    assert_eq!(whole.status.code(), merged.status.code());
}

#[test]
fn bad_shard_and_bad_merge_inputs_exit_2_naming_what_is_wrong() {
    for bad in ["0/4", "5/4", "4", "x/2"] {
        let o = bin().args(["run", "--shard", bad]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("--shard"), "{bad}: {}", text(&o));
    }
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("results.json");
    std::fs::write(&junk, "{\"tool\": \"authconform\", \"results\": 3}").unwrap();
    let o = bin().arg("merge").arg(&junk).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&junk.display().to_string()),
        "{}",
        text(&o)
    );
    let o = bin()
        .arg("merge")
        .arg(tmp.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("nowhere: no such file or folder"),
        "{}",
        text(&o)
    );
    let empty = tempfile::tempdir().unwrap();
    let o = bin().arg("merge").arg(empty.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no results.json in it"), "{}", text(&o));
}

/// `authconform reference` as a child process: its JSON line (resource URL, CA file).
struct ChildReference(Child, serde_json::Value);

impl ChildReference {
    fn start() -> Self {
        use std::io::BufRead;
        let mut c = bin()
            .args(["reference", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn authconform reference");
        let mut line = String::new();
        std::io::BufReader::new(c.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("the reference's JSON line");
        ChildReference(c, v)
    }
}

impl Drop for ChildReference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn many_targets_get_a_folder_each_an_index_and_the_worst_exit() {
    let child = ChildReference::start();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("targets.toml");
    std::fs::write(
        &file,
        format!(
            "[[target]]\nname = \"ref\"\nreference = true\n\n\
             [[target]]\nname = \"served\"\nresource = {}\ncacert = {}\n\n\
             [[target]]\nname = \"ref-no-401\"\nreference = true\nfaults = [\"rs-401-no-token\"]\n",
            child.1["resource"], child.1["ca"]
        ),
    )
    .unwrap();
    let out = tmp.path().join("reports");
    let o = bin()
        .args([
            "run",
            "--only",
            "prm",
            "--only",
            "rs-401-no-token",
            "--parallel-targets",
            "2",
        ])
        .arg("--targets")
        .arg(&file)
        .arg("--report-dir")
        .arg(&out)
        .output()
        .unwrap();
    // The faulty reference fails a MUST requirement: the worst exit is 1.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("[served] "),
        "lines are prefixed with the target: {t}"
    );
    let mut states = BTreeMap::new();
    for name in ["ref", "served", "ref-no-401"] {
        let r = json(&out.join(name).join("results.json"));
        validate_results(&r);
        assert_eq!(r["target"]["name"], name);
        states.insert(name, r["outcome"]["state"].as_str().unwrap().to_string());
        for f in ["junit.xml", "report.html", "results.sarif"] {
            assert!(out.join(name).join(f).is_file(), "{name}/{f}");
        }
    }
    assert_eq!(states["ref"], "passed");
    assert_eq!(states["ref-no-401"], "failed");
    let served = json(&out.join("served/results.json"));
    assert_eq!(served["target"]["kind"], "resource");
    assert_eq!(served["target"]["resource"], child.1["resource"]);

    // The index links each folder's report and shows each outcome, and nothing in it runs.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let doc = scraper::Html::parse_document(&html);
    let links: Vec<String> = doc
        .select(&scraper::Selector::parse("a").unwrap())
        .filter_map(|a| a.value().attr("href").map(str::to_string))
        .collect();
    assert_eq!(
        links,
        [
            "ref/report.html",
            "served/report.html",
            "ref-no-401/report.html"
        ]
    );
    let rows: Vec<String> = doc
        .select(&scraper::Selector::parse("tbody tr").unwrap())
        .map(|r| r.text().collect())
        .collect();
    assert!(
        rows[0].contains("passed") && rows[2].contains("failed"),
        "{rows:?}"
    );
    assert!(html.contains("Worst outcome: <strong>failed</strong>"));
    assert_eq!(
        doc.select(&scraper::Selector::parse("script, link, img, iframe").unwrap())
            .count(),
        0
    );

    // merge of the same folder finds the three targets again, and the same worst exit.
    let o = bin()
        .arg("merge")
        .arg(&out)
        .arg("--report-dir")
        .arg(tmp.path().join("merged"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for name in ["ref", "served", "ref-no-401"] {
        assert!(
            tmp.path()
                .join("merged")
                .join(name)
                .join("report.html")
                .is_file()
        );
    }
    assert!(tmp.path().join("merged/index.html").is_file());
}

#[test]
fn a_bad_targets_file_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("targets.toml");
    std::fs::write(
        &file,
        "[[target]]\nname = \"a\"\nreference = true\n\n[[target]]\nname = \"b\"\nconfig = \"nope.toml\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("run")
        .arg("--targets")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nope.toml"), "{}", text(&o));
    std::fs::write(&file, "[[target]]\nname = \"a\"\nrefrence = true\n").unwrap();
    let o = bin()
        .arg("run")
        .arg("--targets")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains(&format!("{}:3:", file.display())) && t.contains("refrence"),
        "{t}"
    );
}

/// `fuzz --shard`: two shares of one seeded campaign each send their residue class of case
/// numbers; merged, the campaign adds up, the finding keeps its seed and case number, and
/// `fuzz --replay` on the merged report sends it again and confirms it.
#[test]
fn fuzz_shards_merge_into_one_campaign_whose_findings_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let shards: Vec<Child> = (1..=2)
        .map(|k| {
            spawn(&[
                "fuzz".into(),
                "--endpoint".into(),
                "token".into(),
                "--cases".into(),
                "1500".into(),
                "--seed".into(),
                "42".into(),
                "--reference-fault".into(),
                "tok-fuzz".into(),
                "--shard".into(),
                format!("{k}/2"),
                "--report-dir".into(),
                tmp.path().join(format!("fuzz/{k}")).display().to_string(),
            ])
        })
        .collect();
    let mut found = 0;
    for (i, s) in shards.into_iter().enumerate() {
        let o = s.wait_with_output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
        let v = json(&tmp.path().join(format!("fuzz/{}/results.json", i + 1)));
        validate_results(&v);
        assert_eq!(v["shard"]["index"], i + 1);
        let c = &v["fuzz"]["campaigns"][0];
        let sent = c["requests"].as_u64().unwrap() + c["unsendable"].as_u64().unwrap();
        assert_eq!(
            sent,
            750,
            "shard {} sends half the case numbers: {c}",
            i + 1
        );
        // A finding of this shard has a case number of its residue class.
        for f in v["fuzz"]["findings"].as_array().into_iter().flatten() {
            if f["rule"] != "still-answers" {
                assert_eq!(f["case"].as_u64().unwrap() % 2, i as u64, "{f}");
                found += 1;
            }
        }
    }
    assert!(found > 0, "neither shard found the 500");
    let merged = tmp.path().join("merged");
    let o = bin()
        .arg("merge")
        .arg(tmp.path().join("fuzz"))
        .arg("--report-dir")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "a finding fails the merge: {}",
        text(&o)
    );
    let v = json(&merged.join("results.json"));
    validate_results(&v);
    let c = &v["fuzz"]["campaigns"].as_array().unwrap();
    assert_eq!(c.len(), 1, "one token campaign: {c:?}");
    assert_eq!(
        c[0]["requests"].as_u64().unwrap() + c[0]["unsendable"].as_u64().unwrap(),
        1500
    );
    let findings = v["fuzz"]["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["result_id"] == "tok-fuzz.no-5xx")
        .expect("the 500 finding");
    assert_eq!(f["seed"], 42);
    assert_eq!(
        findings
            .iter()
            .filter(|f| f["result_id"] == "tok-fuzz.no-5xx")
            .count(),
        1,
        "one finding per rule"
    );
    let r = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "tok-fuzz.no-5xx")
        .unwrap();
    assert_eq!(r["status"], "failed");
    assert!(
        r["details"]
            .to_string()
            .contains(&format!("seed 42, case {}:", f["case"])),
        "the result and the kept finding agree: {r}"
    );
    let o = bin()
        .arg("fuzz")
        .arg("--replay")
        .arg(merged.join("results.json"))
        .args(["--reference-fault", "tok-fuzz", "--report-dir"])
        .arg(tmp.path().join("replay"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("confirmed: answered 500"), "{}", text(&o));

    let o = bin()
        .args(["fuzz", "--shard", "1/2", "--cases", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--seed"), "{}", text(&o));
}
