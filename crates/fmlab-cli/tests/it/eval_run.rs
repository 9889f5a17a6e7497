//! `fmlab eval run`: lm-evaluation-harness task files on SmolLM2 give lm-evaluation-harness's
//! own numbers (recorded by scripts/check_serve.py, which runs it against `fmlab serve`),
//! results and samples in its shapes, and bad task files one clear error each.

use serde_json::Value;

use super::{fails, fmlab, json, scratch, smollm2};

fn tasks_dir() -> String {
    fmlab_testkit::root()
        .join("scripts/serve_tasks")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn task_files_score_as_lm_evaluation_harness_does() {
    let dir = scratch("eval-run");
    let out = dir.to_str().unwrap();
    let v = json(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        &tasks_dir(),
        "--out",
        out,
        "--log-samples",
        "--json",
    ]);
    let reference = fmlab_testkit::reference("lm-eval-serve-tasks.json");
    for (task, metrics) in reference["results"].as_object().unwrap() {
        for (key, want) in metrics.as_object().unwrap() {
            let (want, got) = (want.as_f64().unwrap(), v["results"][task][key].as_f64());
            let got = got.unwrap_or_else(|| panic!("{task} {key} missing: {}", v["results"]));
            // Accuracies and their standard errors exactly; perplexities to 1e-4 (lm-eval
            // read its log-probabilities through the server's JSON).
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0)
                    && (key.contains("perplexity") || key.contains("per_byte") || got == want),
                "{task} {key}: {got} vs lm-evaluation-harness {want}"
            );
        }
    }
    // Its results shape, and the file on disk equals what was printed.
    assert_eq!(v["n-samples"]["fmlab_mc"]["effective"], 8);
    assert_eq!(v["versions"]["fmlab_mc"], 1);
    assert_eq!(v["configs"]["fmlab_gen"]["output_type"], "generate_until");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(written["results"], v["results"]);
    // Samples: one line per document (per filter), with its responses and scores.
    let samples = std::fs::read_to_string(dir.join("samples_fmlab_mc.jsonl")).unwrap();
    let lines: Vec<Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["arguments"].as_array().unwrap().len(), 4);
    assert!(lines.iter().all(|l| l["acc"] == 0.0 || l["acc"] == 1.0));

    // --limit and the table.
    let o = fmlab(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        &format!("{}/fmlab_mc.yaml", tasks_dir()),
        "--limit",
        "2",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && table.contains("acc_norm"), "{table}");
}

#[test]
fn bad_task_files_name_the_problem() {
    let dir = scratch("eval-run-bad");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let model = smollm2();
    let run = |task: &str, needle: &str| {
        fails(&["eval", "run", "--model", &model, "--tasks", task], needle)
    };
    run(
        &write(
            "hub.yaml",
            "task: t\ndataset_path: cais/mmlu\ntest_split: test\n",
        ),
        "only local JSON lines",
    );
    run(
        &write(
            "fn.yaml",
            "task: t\ndataset_path: json\ndoc_to_text: !function utils.doc\n",
        ),
        "!function",
    );
    run(
        &write("nofile.yaml", "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: missing.jsonl\ntest_split: test\n"),
        "missing.jsonl",
    );
    std::fs::write(dir.join("d.jsonl"), "{\"q\": \"x\", \"a\": \"y\"}\n").unwrap();
    run(
        &write("metric.yaml", "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\ntest_split: test\noutput_type: generate_until\ndoc_to_text: q\ndoc_to_target: a\nmetric_list:\n  - metric: bleu\n"),
        "metric \"bleu\"",
    );
    run(
        &write("typo.yaml", "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\ntest_split: test\ndoc_to_txt: q\n"),
        "doc_to_txt",
    );
    run(
        &format!("{}/none.yaml", dir.display()),
        "neither a task file nor a folder",
    );
    fails(
        &[
            "eval",
            "run",
            "--model",
            &model,
            "--tasks",
            &tasks_dir(),
            "--log-samples",
        ],
        "--out",
    );
    for (flag, needle) in [
        ("--max-length", "at least 2 tokens"),
        ("--batch-size", "at least 1"),
    ] {
        fails(
            &[
                "eval",
                "run",
                "--model",
                &model,
                "--tasks",
                &tasks_dir(),
                flag,
                "0",
            ],
            needle,
        );
    }
}

/// `eval compare`: a planted regression (15 of 45 right answers turned wrong, on 60
/// documents) is flagged with exit status 1; a run against itself passes; the real run on
/// the serve tasks against a second identical run finds no change.
#[test]
fn compare_flags_a_regression_and_passes_no_change() {
    let dir = scratch("eval-compare");
    let write_run = |name: &str, right: usize| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let lines: Vec<String> = (0..60)
            .map(|i| {
                let acc = if i < right { 1.0 } else { 0.0 };
                format!("{{\"doc_id\": {i}, \"filter\": \"none\", \"acc\": {acc}}}")
            })
            .collect();
        std::fs::write(d.join("samples_quiz.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(d.join("results.json"), "{}").unwrap();
        d.to_string_lossy().into_owned()
    };
    let (a, b) = (write_run("a", 45), write_run("b", 30));
    let o = fmlab(&["eval", "compare", &a, &b]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("worse") && stdout.contains("-0.2500"),
        "{stdout}"
    );
    assert!(
        stderr.contains("significantly worse") && stderr.contains("quiz acc,none"),
        "{stderr}"
    );
    let v = json(&["eval", "compare", &b, &a, "--json"]);
    assert_eq!(v[0]["verdict"], "better");
    let o = fmlab(&["eval", "compare", &a, &a]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("no detectable change")
    );

    let runs: Vec<String> = ["r1", "r2"]
        .iter()
        .map(|r| {
            let d = dir.join(r).to_string_lossy().into_owned();
            let o = fmlab(&[
                "eval",
                "run",
                "--model",
                &smollm2(),
                "--tasks",
                &tasks_dir(),
                "--out",
                &d,
                "--log-samples",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            d
        })
        .collect();
    let v = json(&["eval", "compare", &runs[0], &runs[1], "--json"]);
    let rows = v.as_array().unwrap();
    assert!(rows.len() >= 6, "{v}");
    assert!(
        rows.iter()
            .all(|r| r["verdict"] == "no detectable change" && r["difference"] == 0.0),
        "{v}"
    );
    fails(
        &["eval", "compare", &a, &dir.join("none").to_string_lossy()],
        "none",
    );
    fails(
        &["eval", "compare", &a, &b, "--level", "2"],
        "between 0 and 1",
    );
}

/// An API model that cannot be reached, or a malformed address, is one error naming it.
#[test]
fn unreachable_api_is_one_clear_error() {
    let tasks = format!("{}/fmlab_mc.yaml", tasks_dir());
    fails(
        &[
            "eval",
            "run",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model-name",
            "m",
            "--tasks",
            &tasks,
            "--retries",
            "0",
        ],
        "127.0.0.1:9",
    );
    fails(
        &[
            "eval",
            "run",
            "--base-url",
            "localhost:8080",
            "--model-name",
            "m",
            "--tasks",
            &tasks,
        ],
        "http://",
    );
    fails(
        &[
            "eval",
            "run",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--tasks",
            &tasks,
        ],
        "--model-name",
    );
    fails(&["eval", "run", "--tasks", &tasks], "--model");
}

/// Batched scoring (contexts together, each continuation after a copy of its context's
/// cache) gives one-at-a-time's log-likelihoods to the bit on SmolLM2's Q4_1/Q8_0 weights,
/// and batched greedy generation (one decoding step for every unfinished request per
/// pass) one-at-a-time's texts.
#[test]
fn batched_scoring_equals_one_at_a_time() {
    let dir = scratch("eval-batch");
    let samples: Vec<String> = ["1", "3"]
        .iter()
        .map(|b| {
            let d = dir.join(format!("b{b}"));
            let d = d.to_str().unwrap();
            let o = fmlab(&[
                "eval",
                "run",
                "--model",
                &smollm2(),
                "--tasks",
                &format!("{}/fmlab_mc.yaml", tasks_dir()),
                &format!("{}/fmlab_gen.yaml", tasks_dir()),
                "--batch-size",
                b,
                "--out",
                d,
                "--log-samples",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read_to_string(format!("{d}/samples_fmlab_mc.jsonl")).unwrap()
                + &std::fs::read_to_string(format!("{d}/samples_fmlab_gen.jsonl")).unwrap()
        })
        .collect();
    let resps = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["resps"].clone())
            .collect()
    };
    assert_eq!(resps(&samples[0]), resps(&samples[1]));
}

/// A group file (lm-evaluation-harness's `group:` / `task:` / `aggregate_metric_list`)
/// named on the command line: its tasks found by name in --include-path folders (one of
/// them through `include:` with overrides, one inline group nested), its accuracy the
/// document-weighted mean of its tasks' with the pooled standard error, and the results'
/// `groups` / `group_subtasks` as lm-evaluation-harness writes them.
#[test]
fn groups_aggregate_their_tasks() {
    let dir = scratch("eval-group");
    let lines: Vec<&str> = include_str!("../../../../scripts/serve_tasks/mc.jsonl")
        .lines()
        .take(3)
        .collect();
    std::fs::write(dir.join("head.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("mc_head.yaml"),
        format!(
            "include: {}/fmlab_mc.yaml\ntask: fmlab_mc_head\ntag: heads\n\
             dataset_kwargs:\n  data_files:\n    test: head.jsonl\n",
            tasks_dir()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("suite.yaml"),
        "group: fmlab_suite\ngroup_alias: Suite\ntask:\n  - fmlab_mc\n  - heads\n  \
         - group: fmlab_inner\n    task:\n      - fmlab_gen\n\
         aggregate_metric_list:\n  - metric: acc\n    aggregation: mean\n    \
         weight_by_size: true\nmetadata:\n  version: 2\n",
    )
    .unwrap();
    let (d, t) = (dir.to_str().unwrap().to_string(), tasks_dir());
    let v = json(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        "fmlab_suite",
        "--include-path",
        &d,
        &t,
        "--json",
    ]);
    let acc = |task: &str, key: &str| v["results"][task][key].as_f64().unwrap();
    let (a, b) = (
        acc("fmlab_mc", "acc,none"),
        acc("fmlab_mc_head", "acc,none"),
    );
    let (sa, sb) = (
        acc("fmlab_mc", "acc_stderr,none"),
        acc("fmlab_mc_head", "acc_stderr,none"),
    );
    let want = (8.0 * a + 3.0 * b) / 11.0;
    assert!(
        (acc("fmlab_suite", "acc,none") - want).abs() < 1e-12,
        "{}",
        v["results"]
    );
    let pooled = ((7.0 * 8.0 * sa * sa + 2.0 * 3.0 * sb * sb) / 9.0 / 11.0).sqrt();
    assert!((acc("fmlab_suite", "acc_stderr,none") - pooled).abs() < 1e-12);
    assert_eq!(v["results"]["fmlab_suite"]["alias"], "Suite");
    assert_eq!(
        v["groups"]["fmlab_suite"]["acc,none"],
        v["results"]["fmlab_suite"]["acc,none"]
    );
    assert_eq!(
        v["group_subtasks"]["fmlab_suite"],
        serde_json::json!(["fmlab_mc", "fmlab_mc_head", "fmlab_inner"])
    );
    assert_eq!(
        v["group_subtasks"]["fmlab_inner"],
        serde_json::json!(["fmlab_gen"])
    );
    assert_eq!(v["versions"]["fmlab_suite"], 2);
    assert_eq!(v["n-samples"]["fmlab_mc_head"]["effective"], 3);
    // The included file's settings with the overrides on top.
    assert_eq!(
        v["configs"]["fmlab_mc_head"]["output_type"],
        "multiple_choice"
    );
    // A group without aggregate_metric_list reports no score of its own.
    assert!(v["groups"].get("fmlab_inner").is_none());
    fails(
        &[
            "eval",
            "run",
            "--model",
            &smollm2(),
            "--tasks",
            "no_such_task",
            "--include-path",
            &t,
        ],
        "\"no_such_task\" is neither a file, a folder, nor a task, group or tag",
    );
}

/// A world folder named in --tasks runs the world's own tasks through the pipeline (group
/// "world"): fact recall by bucket with `contains_answer`, arithmetic with `exact_match` on
/// the first number; each document keeps its language and the acceptable answers.
#[test]
fn world_folders_are_task_sources() {
    let dir = scratch("eval-world");
    let world = dir.join("w");
    let w = world.to_str().unwrap();
    json(&[
        "world", "--seed", "3", "--size", "200kB", "--out", w, "--json",
    ]);
    let out = dir.join("out");
    let v = json(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        w,
        "--limit",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--log-samples",
        "--json",
    ]);
    // The base-model tasks, then (SmolLM2 has a chat template) the chat tasks.
    assert_eq!(
        v["group_subtasks"]["world"],
        serde_json::json!([
            "world_recall_frequent",
            "world_recall_rare",
            "world_arithmetic",
            "world_chat_frequent",
            "world_chat_rare",
            "world_chat_unseen",
            "world_chat_arithmetic"
        ])
    );
    for (task, key) in [
        ("world_recall_frequent", "contains_answer,none"),
        ("world_recall_rare", "contains_answer,none"),
        ("world_arithmetic", "exact_match,first_number"),
    ] {
        let x = v["results"][task][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{task}: {}", v["results"][task]);
        assert_eq!(v["n-samples"][task]["effective"], 4);
    }
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("samples_world_recall_frequent.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(["en", "fr", "sw"].contains(&line["doc"]["lang"].as_str().unwrap()));
    assert!(line["doc"]["answers"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

/// fmlab's own task suite (scripts/eval_tasks: a group of two 3-shot multiple-choice tasks,
/// a rolling log-likelihood task, a 2-shot generate-until task with a regex filter and
/// `ignore_case`) gives lm-evaluation-harness's numbers, recorded by
/// `scripts/check_eval.sh --record` against `fmlab serve`: few-shot examples drawn as it
/// draws them, the group's aggregate, accuracies and their standard errors exactly,
/// perplexities to 1e-4.
#[test]
fn own_task_suite_scores_as_lm_evaluation_harness_does() {
    let tasks = fmlab_testkit::root().join("scripts/eval_tasks");
    let v = json(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        tasks.to_str().unwrap(),
        "--json",
    ]);
    let reference = fmlab_testkit::reference("lm-eval-eval-tasks.json");
    let mut checked = 0;
    for (task, metrics) in reference["results"].as_object().unwrap() {
        for (key, want) in metrics.as_object().unwrap() {
            let Some(want) = want.as_f64() else { continue };
            let inexact = key.contains("perplexity") || key.contains("per_byte");
            if inexact && key.contains("stderr") {
                continue; // bootstraps on both sides
            }
            let got = v["results"][task][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{task} {key} missing: {}", v["results"]));
            let ok = if inexact {
                (got - want).abs() <= 1e-4 * want.abs().max(1.0)
            } else {
                (got - want).abs() <= 1e-12
            };
            assert!(ok, "{task} {key}: {got} vs lm-evaluation-harness {want}");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} values in the reference");
}

/// A chat model on a world folder: the world's questions also as chat tasks (group
/// "world"), each asked through the model's chat template, answered as `fmlab generate
/// --chat --temperature 0` answers it alone (batched decoding changes nothing), judged by
/// the world's judge; a model without a template skips them with a notice.
#[test]
fn world_chat_tasks_answer_as_generate_does() {
    let dir = scratch("eval-world-chat");
    let world = dir.join("w");
    let w = world.to_str().unwrap();
    json(&[
        "world", "--seed", "5", "--size", "200kB", "--out", w, "--json",
    ]);
    let out = dir.join("out");
    let v = json(&[
        "eval",
        "run",
        "--model",
        &smollm2(),
        "--tasks",
        w,
        "--limit",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--log-samples",
        "--json",
    ]);
    let children = v["group_subtasks"]["world"].as_array().unwrap();
    assert!(
        children.iter().any(|c| c == "world_chat_unseen"),
        "{children:?}"
    );
    for key in [
        "correct,none",
        "refused,none",
        "hallucinated,none",
        "ended,none",
    ] {
        let x = v["results"]["world_chat_frequent"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key}: {}", v["results"]);
    }
    let samples = std::fs::read_to_string(out.join("samples_world_chat_unseen.jsonl")).unwrap();
    for line in samples.lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        let prompt = s["doc"]["prompt"].as_str().unwrap();
        let g = json(&[
            "generate",
            &smollm2(),
            "--chat",
            "--prompt",
            prompt,
            "--max-tokens",
            "48",
            "--temperature",
            "0",
            "--json",
        ]);
        assert_eq!(
            s["resps"][0][0].as_str().unwrap().trim(),
            g["text"].as_str().unwrap().trim(),
            "{prompt}"
        );
        assert_eq!(s["ended"] == 1.0, g["finish_reason"] == "stop", "{prompt}");
    }
}
