//! The recipes under deploy/ say what we mean: they parse, their shard counts agree with the
//! `--shard K/N` they generate, and every `authconform` command they run is accepted by the real
//! command line definition (`authconform::cli::Cli`).

use std::path::Path;

use clap::Parser;
use yaml_serde::Value;

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut docs = Vec::new();
    for d in yaml_serde::Deserializer::from_str(&text) {
        use serde::Deserialize;
        docs.push(Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: not YAML: {e}")));
    }
    docs
}

/// Shell words of the `authconform …` commands in a script: one per command, up to the first
/// `;`, `||`, `&&` or `|`. Variables are replaced from `vars` (a `$X` with no value is an error:
/// the test names every variable the recipes use).
fn authconform_commands(script: &str, vars: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut script = script.replace("\\\n", " ");
    // Workflow expressions hold spaces: replaced before the line is split into words.
    for (k, v) in vars {
        script = script.replace(&format!("${{{{ {k} }}}}"), v);
    }
    for line in script.lines() {
        let line = line.trim();
        let Some(start) = line.find("authconform ") else {
            continue;
        };
        if !(start == 0 || line[..start].ends_with(' ')) {
            continue;
        }
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        let chars = line[start..].chars();
        for c in chars {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '"' | '\'') => quote = Some(c),
                (None, ' ') => {
                    if !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                }
                (None, ';') => break,
                (None, '|' | '&') => break,
                (None, c) => cur.push(c),
            }
        }
        if !cur.is_empty() {
            words.push(cur);
        }
        let words = words.into_iter().map(|w| expand(&w, vars)).collect();
        out.push(words);
    }
    out
}

fn expand(word: &str, vars: &[(&str, &str)]) -> String {
    let mut w = word.to_string();
    for (k, v) in vars {
        w = w.replace(&format!("${{{k}}}"), v);
        w = w.replace(&format!("${k}"), v);
    }
    assert!(!w.contains('$'), "unexpanded variable in {word:?}");
    w
}

/// The command line parses with the real definition (flags, values, subcommand).
fn assert_real_command(words: &[String]) {
    assert_eq!(words[0], "authconform");
    if let Err(e) = authconform::cli::Cli::try_parse_from(words) {
        panic!(
            "`{}` is not a valid authconform command:\n{e}",
            words.join(" ")
        );
    }
}

/// The `N` of every `--shard K/N` in the commands, and the K values.
fn shard_values(cmds: &[Vec<String>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for c in cmds {
        if let Some(i) = c.iter().position(|w| w == "--shard") {
            let s: authconform::shard::Shard = c[i + 1].parse().expect("a valid K/N");
            out.push((s.index, s.count));
        }
    }
    out
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(*k)
            .unwrap_or_else(|| panic!("no {k} in {path:?} of {v:?}"))
    })
}

#[test]
fn github_actions_matrix_matches_the_shards_and_commands_are_real() {
    let docs = yaml_docs("deploy/github-actions/authconform.yml");
    let wf = &docs[0];
    let matrix: Vec<u64> = get(wf, &["jobs", "shard", "strategy", "matrix", "shard"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = matrix.len();
    assert_eq!(
        matrix,
        (1..=n as u64).collect::<Vec<_>>(),
        "matrix is 1..=N"
    );
    let mut per_job = std::collections::BTreeMap::new();
    for job in ["shard", "merge"] {
        let steps = get(wf, &["jobs", job, "steps"]).as_sequence().unwrap();
        let script: String = steps
            .iter()
            .filter_map(|s| s.get("run").and_then(|r| r.as_str()))
            .collect::<Vec<_>>()
            .join("\n");
        let mut all = Vec::new();
        for k in &matrix {
            let k = k.to_string();
            let vars = [
                ("matrix.shard", k.as_str()),
                ("MCP_URL", "https://mcp.example/mcp"),
            ];
            all.extend(authconform_commands(&script, &vars));
        }
        for c in &all {
            assert_real_command(c);
        }
        per_job.insert(job, all);
    }
    // The shard job's commands, one per matrix entry, take K/N for K in the matrix.
    let shards = shard_values(&per_job["shard"]);
    assert_eq!(
        shards,
        (1..=n).map(|k| (k, n)).collect::<Vec<_>>(),
        "the matrix and --shard disagree"
    );
    // The merge job merges what the shard jobs uploaded.
    let merge = &per_job["merge"][0];
    assert_eq!(merge[1], "merge");
    let download = get(wf, &["jobs", "merge", "steps"])
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s.get("uses")
                .and_then(|u| u.as_str())
                .is_some_and(|u| u.starts_with("actions/download-artifact"))
        })
        .expect("a download step");
    assert_eq!(merge[2], get(download, &["with", "path"]).as_str().unwrap());
    let needs = get(wf, &["jobs", "merge", "needs"]).as_str().unwrap();
    assert_eq!(needs, "shard");
}

#[test]
fn kubernetes_indexed_job_completions_match_the_shards() {
    let docs = yaml_docs("deploy/kubernetes/indexed-job.yaml");
    let job = docs
        .iter()
        .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("Job"))
        .expect("a Job");
    let spec = get(job, &["spec"]);
    assert_eq!(get(spec, &["completionMode"]).as_str(), Some("Indexed"));
    let completions = get(spec, &["completions"]).as_u64().unwrap() as usize;
    assert_eq!(
        get(spec, &["parallelism"]).as_u64().unwrap() as usize,
        completions
    );
    let container = &get(spec, &["template", "spec", "containers"])
        .as_sequence()
        .unwrap()[0];
    let args = get(container, &["args"]).as_sequence().unwrap();
    let script = args[0].as_str().unwrap();
    assert!(
        script.contains("K=$((JOB_COMPLETION_INDEX + 1))"),
        "the completion index becomes K: {script}"
    );
    let mut shards = Vec::new();
    for index in 0..completions {
        let k = (index + 1).to_string();
        let cmds = authconform_commands(
            script,
            &[("K", k.as_str()), ("MCP_URL", "https://mcp.example/mcp")],
        );
        assert_eq!(cmds.len(), 1, "{script}");
        assert_real_command(&cmds[0]);
        shards.extend(shard_values(&cmds));
    }
    assert_eq!(
        shards,
        (1..=completions)
            .map(|k| (k, completions))
            .collect::<Vec<_>>()
    );
    // The shards write where the merge Job reads, on the volume both mount.
    let merge = yaml_docs("deploy/kubernetes/merge-job.yaml");
    let m = &get(&merge[0], &["spec", "template", "spec", "containers"])
        .as_sequence()
        .unwrap()[0];
    let words: Vec<String> = get(m, &["command"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    assert_real_command(&words);
    assert_eq!(words[1], "merge");
    assert!(
        script.contains(&format!("--report-dir \"{}/shard-$K\"", words[2])),
        "{script}"
    );
    let claim = |d: &Value| {
        get(d, &["spec", "template", "spec", "volumes"])
            .as_sequence()
            .unwrap()[0]
            .get("persistentVolumeClaim")
            .and_then(|p| p.get("claimName"))
            .and_then(|c| c.as_str())
            .map(str::to_string)
    };
    assert_eq!(claim(job), claim(&merge[0]));
    assert!(claim(job).is_some());
}

#[test]
fn clusterfuzzlite_configuration_matches_the_fuzz_targets() {
    let dir = Path::new("deploy/clusterfuzzlite/.clusterfuzzlite");
    let project = yaml_docs("deploy/clusterfuzzlite/.clusterfuzzlite/project.yaml");
    assert_eq!(get(&project[0], &["language"]).as_str(), Some("rust"));
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM gcr.io/oss-fuzz-base/base-builder-rust"));
    assert!(dockerfile.contains("COPY .clusterfuzzlite/build.sh $SRC/"));
    let build = std::fs::read_to_string(dir.join("build.sh")).unwrap();
    assert!(build.contains("cd \"$SRC/authconform/fuzz\""));
    assert!(build.contains("cargo fuzz build"));
    // Valid shell, and the seed corpora it zips exist for the targets fuzz/Cargo.toml declares.
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(dir.join("build.sh"))
        .status()
        .unwrap();
    assert!(ok.success(), "build.sh is not valid bash");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string("fuzz/Cargo.toml").unwrap()).unwrap();
    let bins = manifest["bin"].as_array().unwrap();
    assert!(!bins.is_empty());
    for b in bins {
        let name = b["name"].as_str().unwrap();
        let path = b["path"].as_str().unwrap();
        assert!(Path::new("fuzz").join(path).is_file(), "{name}: {path}");
        assert!(
            Path::new("fuzz/corpus").join(name).is_dir(),
            "{name}: no seed corpus"
        );
    }
    let wf = yaml_docs("deploy/clusterfuzzlite/cflite_pr.yml");
    let steps = get(&wf[0], &["jobs", "fuzz", "steps"])
        .as_sequence()
        .unwrap();
    let uses: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.get("uses").and_then(|u| u.as_str()))
        .collect();
    assert_eq!(
        uses,
        [
            "google/clusterfuzzlite/actions/build_fuzzers@v1",
            "google/clusterfuzzlite/actions/run_fuzzers@v1"
        ]
    );
    assert_eq!(get(&steps[0], &["with", "language"]).as_str(), Some("rust"));
}

#[test]
fn the_command_parser_of_this_test_rejects_what_the_cli_rejects() {
    // Negative control: a misspelt flag or a bad shard does not parse, so the checks above can
    // fail.
    let bad = authconform_commands("authconform run --shards 1/4 || true", &[]);
    assert_eq!(bad[0], ["authconform", "run", "--shards", "1/4"]);
    assert!(authconform::cli::Cli::try_parse_from(&bad[0]).is_err());
    let bad = authconform_commands("x; authconform run --shard 5/4", &[]);
    assert!(authconform::cli::Cli::try_parse_from(&bad[0]).is_err());
}
