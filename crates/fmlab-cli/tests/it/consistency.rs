//! `fmlab study consistency` end to end on a tiny world and a tiny pre-trained run (fmlab's
//! chat template): the report's shape, sane values (greedy answers agree with themselves,
//! rates are shares), the plots, and one clear error for each kind of bad input.

use serde_json::Value;

use super::train::{pretrain_args, world_shards};
use super::{fails, json, scratch};

fn share(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((0.0..=1.0).contains(&x), "{x} is not a share");
    x
}

#[test]
fn consistency_study_report_and_errors() {
    let dir = scratch("consistency");
    let (tok, shards) = world_shards(&dir);
    let run = dir.join("run");
    let mut args = pretrain_args(
        shards.to_str().unwrap(),
        tok.to_str().unwrap(),
        run.to_str().unwrap(),
        "20",
    );
    // A context that holds a question and a short answer.
    let at = args.iter().position(|a| *a == "--seq-len").unwrap();
    args[at + 1] = "96";
    args.push("--json");
    json(&args);
    let items = dir.join("world").join("eval.jsonl");
    let out = dir.join("study");
    let (run_s, items_s, out_s) = (
        run.to_str().unwrap(),
        items.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = [
        "study",
        "consistency",
        run_s,
        "--items",
        items_s,
        "--per-split",
        "2",
        "--max-tokens",
        "6",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let argv = with(&[
        "--temperatures",
        "0,1.2",
        "-n",
        "3",
        "--out",
        out_s,
        "--json",
    ]);
    let v = json(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    // The report on stdout is report.json.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(v, file);
    for split in ["frequent", "rare", "unseen", "arithmetic"] {
        assert_eq!(v["questions"][split], 2, "{split}");
    }
    assert_eq!(v["languages"], serde_json::json!(["en", "fr", "sw"]));
    assert!(v["definitions"]["self_agreement"].as_str().is_some());
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        for f in [
            "self_agreement",
            "modal_share",
            "paraphrase_agreement",
            "cross_language_agreement",
            "idk_rate_unseen",
            "hallucination_rate_unseen",
        ] {
            share(&r[f]);
        }
        share(&r["accuracy_seen"]["accuracy"]);
        share(&r["accuracy"]["arithmetic"]["accuracy"]);
        // 2 frequent + 2 rare questions, 3 answers each.
        assert_eq!(r["accuracy_seen"]["items"], 12);
        assert_eq!(r["unseen_answers"], 6);
        // Pairs of wordings of each fact question: in one language, and across two.
        let (mut same, mut across) = (0, 0);
        for q in r["questions"].as_array().unwrap() {
            let langs: Vec<&str> = q["wordings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["lang"].as_str().unwrap())
                .collect();
            for (i, a) in langs.iter().enumerate() {
                for b in &langs[i + 1..] {
                    if a == b {
                        same += 1;
                    } else {
                        across += 1;
                    }
                }
            }
        }
        assert!(same >= 6 && across >= 6 * 3, "{same} {across}");
        assert_eq!(r["paraphrase_pairs"], same);
        assert_eq!(r["cross_language_pairs"], across);
        let d = &r["detector"];
        assert_eq!(
            d["positives"].as_u64().unwrap() + d["negatives"].as_u64().unwrap(),
            8
        );
        for split in ["frequent", "rare", "unseen", "arithmetic"] {
            let a = &d["auroc_by_split"][split];
            assert!(a.is_null() || share(a) >= 0.0, "{split}: {a}");
        }
        let roc = d["roc"].as_array().unwrap();
        match d["auroc"].as_f64() {
            Some(a) => {
                share(&d["auroc"]);
                assert!(a.is_finite());
                assert_eq!(roc[0]["true_positive_rate"], 0.0);
                assert_eq!(roc.last().unwrap()["false_positive_rate"], 1.0);
                assert_eq!(roc.last().unwrap()["true_positive_rate"], 1.0);
            }
            None => assert!(roc.is_empty()),
        }
        let qs = r["questions"].as_array().unwrap();
        assert_eq!(qs.len(), 8);
        for q in qs {
            assert_eq!(q["samples"].as_array().unwrap().len(), 3);
            // Facts: every language, at least two templates in one; arithmetic: none.
            let wordings = q["wordings"].as_array().unwrap();
            if q["split"] == "arithmetic" {
                assert!(wordings.is_empty(), "{q}");
            } else {
                for lang in ["en", "fr", "sw"] {
                    assert!(wordings.iter().any(|w| w["lang"] == lang), "{q}");
                }
                assert!(wordings.len() >= 4, "{q}");
            }
        }
    }
    // Greedy answers: every question's three answers are one answer.
    assert_eq!(rows[0]["temperature"], 0.0);
    assert_eq!(rows[0]["self_agreement"], 1.0);
    assert_eq!(rows[0]["modal_share"], 1.0);
    for q in rows[0]["questions"].as_array().unwrap() {
        let s = q["samples"].as_array().unwrap();
        assert!(s.iter().all(|a| a["text"] == s[0]["text"]), "{q}");
    }
    for png in ["consistency.png", "roc.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }

    // Bad input: one error each, naming the problem.
    let run_bad = |extra: &[&str], needle: &str| {
        let argv = with(extra);
        fails(&argv.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    run_bad(&["-n", "1"], "--samples 1");
    run_bad(&["-n", "0"], "--samples");
    run_bad(&["--temperatures", "0,-0.5"], "--temperatures");
    run_bad(&["--temperature", "0.3"], "--temperatures list");
    // Items that are not a world's eval.jsonl, and one outside its world folder.
    let lone = scratch("consistency-lone");
    let copy = lone.join("eval.jsonl");
    std::fs::copy(&items, &copy).unwrap();
    let argv = [
        "study",
        "consistency",
        run_s,
        "--items",
        copy.to_str().unwrap(),
    ];
    fails(&argv, "no manifest.json");
    let sft = dir.join("world").join("sft.jsonl");
    let argv = [
        "study",
        "consistency",
        run_s,
        "--items",
        sft.to_str().unwrap(),
    ];
    fails(&argv, "--items");
    let prompts = dir.join("world").join("prompts.jsonl");
    let argv = [
        "study",
        "consistency",
        run_s,
        "--items",
        prompts.to_str().unwrap(),
    ];
    fails(&argv, "give a world's eval.jsonl");
    let empty = dir.join("world").join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let argv = [
        "study",
        "consistency",
        run_s,
        "--items",
        empty.to_str().unwrap(),
    ];
    fails(&argv, "no items");
}
