//! `fmlab speedrun` for a fixed number of steps (`--steps`, `--depth`), alone in its test
//! binary: nothing it checks depends on how fast the machine is. Its loss falls, the model
//! recalls facts about frequently mentioned people more often than about rarely mentioned
//! ones, and the post-training stages report their judged figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

#[test]
fn speedrun_learns_within_its_budget() {
    let out = std::env::temp_dir().join(format!("fmlab-speedrun-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // 1,000 steps of 2,048 tokens at depth 2 (951K parameters) on a world sized to 16
    // epochs of them; measured: few-shot recall 25.9% frequent against 13.5% rare, and SFT's
    // format compliance 0% → 33% (chat evaluation of 30 questions per split at 3 minutes).
    let run = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args([
            "speedrun",
            "--steps",
            "1000",
            "--depth",
            "2",
            "--minutes",
            "3",
            "--pair-prompts",
            "200",
            "--dpo-epochs",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let r: Value = serde_json::from_slice(&run.stdout).unwrap();
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r, on_disk);
    assert_eq!(r["plan"]["fixed_steps"], true);
    assert_eq!(r["pretrain"]["steps"], 1000);
    assert_eq!(r["pretrain"]["interrupted_at_deadline"], false);
    let p = &r["pretrain"];
    for key in [
        "initial_val_loss",
        "final_val_loss",
        "tokens",
        "tokens_per_second",
        "mfu",
        "params",
    ] {
        assert!(
            p[key].as_f64().is_some_and(|x| x > 0.0),
            "pretrain.{key}: {p}"
        );
    }
    let (first, last) = (
        p["initial_val_loss"].as_f64().unwrap(),
        p["final_val_loss"].as_f64().unwrap(),
    );
    assert!(
        (first - 2048f64.ln()).abs() < 0.2,
        "initial val loss {first}"
    );
    assert!(last < first / 2.0, "val loss {first} → {last}");
    // The loss curve falls: every validation point after the first half is below the first.
    let metrics = std::fs::read_to_string(out.join("run/metrics.jsonl")).unwrap();
    let val: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["val_loss"].as_f64())
        .collect();
    assert!(val.len() >= 5, "{val:?}");
    assert!(
        val[val.len() / 2..].iter().all(|&v| v < val[0] - 2.0),
        "{val:?}"
    );
    let e = &r["eval"];
    let (freq, rare) = (
        e["fact_recall"]["frequent"].as_f64().unwrap(),
        e["fact_recall"]["rare"].as_f64().unwrap(),
    );
    // Clearly higher: by 5 points and by half again. (Rare facts are seen 1–9 times per
    // epoch of a world sized to 16 epochs, so a good run recalls some of them too.)
    eprintln!("fact recall: frequent {freq}, rare {rare}");
    assert!(
        freq >= rare + 0.05 && freq >= 1.5 * rare,
        "fact recall frequent {freq}, rare {rare}"
    );
    assert!(e["arithmetic_accuracy"].as_f64().is_some());
    let bpb = e["val_bits_per_byte"].as_f64().unwrap();
    assert!(bpb > 0.0 && bpb < 2.0, "{bpb}");
    let checkpoint = r["checkpoint"].as_str().unwrap();
    assert!(out.join(checkpoint).join("manifest.json").is_file());
    // Post-training: every stage judged, with the stable fields; SFT teaches the chat
    // format the base model never saw, and DPO's rewards separate chosen from rejected.
    for stage in ["base", "sft", "dpo"] {
        let x = &r[stage];
        for key in [
            "format_compliance",
            "idk_rate_unseen",
            "hallucination_rate_unseen",
        ] {
            assert!(
                x[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
                "{stage}.{key}: {x}"
            );
        }
        for bucket in ["frequent", "rare"] {
            assert!(x["fact_accuracy"][bucket].is_number(), "{stage}: {x}");
            assert!(
                x["fact_accuracy_free_form"][bucket].is_number(),
                "{stage}: {x}"
            );
        }
    }
    assert!(r["sft"]["win_rate_vs_base"].is_number());
    assert!(r["dpo"]["win_rate_vs_sft"].is_number());
    let (base_fmt, sft_fmt) = (
        r["base"]["format_compliance"].as_f64().unwrap(),
        r["sft"]["format_compliance"].as_f64().unwrap(),
    );
    assert!(
        sft_fmt > base_fmt + 0.2,
        "format compliance {base_fmt} → {sft_fmt}"
    );
    report_context(&r);
    // Moved elsewhere, the folder keeps every file the report names.
    let moved = out.with_file_name(format!(
        "{}-moved",
        out.file_name().unwrap().to_str().unwrap()
    ));
    let _ = std::fs::remove_dir_all(&moved);
    std::fs::rename(&out, &moved).unwrap();
    let out = moved;
    report_paths(&r, &out);
    report_page(&r, &out);
    // A second speedrun into the same folder is refused rather than mixed in.
    let again = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(["speedrun", "--minutes", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a speedrun"));
    let _ = std::fs::remove_dir_all(&out);
}

/// The run's settings, fmlab's version and the CPU, and the examples' expected answers.
fn report_context(r: &Value) {
    let c = &r["config"];
    assert_eq!(c["steps"], 1000, "{c}");
    assert_eq!(c["depth"], 2, "{c}");
    assert_eq!(c["pair_prompts"], 200, "{c}");
    assert_eq!(c["dpo_epochs"].as_f64(), Some(2.0), "{c}");
    assert_eq!(c["seed"], 0, "{c}");
    for key in [
        "minutes",
        "vocab",
        "seq_len",
        "batch",
        "lr",
        "epochs",
        "eval_items",
        "post_share",
        "sft_lr",
        "sft_epochs",
        "sft_mix",
        "dpo_lr",
        "dpo_beta",
        "pair_answers",
    ] {
        assert!(c[key].is_number(), "config.{key}: {c}");
    }
    assert_eq!(r["fmlab_version"], env!("CARGO_PKG_VERSION"));
    assert!(r["cpu"]["model"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r["cpu"]["threads"].as_u64().is_some_and(|t| t >= 1));
    // Every stage shows the same questions, each with its expected answer and verdict.
    let ids = |stage: &str| -> Vec<u64> {
        let examples = r[stage]["examples"].as_array().unwrap();
        for x in examples {
            assert!(x["expected"].as_str().is_some_and(|e| !e.is_empty()), "{x}");
            assert!(x["verdict"].is_string(), "{x}");
        }
        examples.iter().map(|x| x["id"].as_u64().unwrap()).collect()
    };
    assert!(ids("sft").len() >= 8);
    assert_eq!(ids("sft"), ids("dpo"));
    assert_eq!(ids("base"), ids("sft"));
}

/// Every path in the report is relative to the report's folder and names a file there.
fn report_paths(r: &Value, out: &std::path::Path) {
    let mut paths = vec![
        &r["world"]["dir"],
        &r["tokenizer"]["path"],
        &r["pretrain"]["run"],
        &r["checkpoint"],
        &r["base"]["model"],
        &r["dpo"]["pairs"]["file"],
    ];
    for stage in ["sft", "dpo"] {
        let t = &r[stage]["training"];
        paths.extend([&t["run"], &t["checkpoint"], &t["loss_plot"]]);
    }
    for plot in ["loss", "recall", "sft_loss", "dpo_loss", "stages"] {
        paths.push(&r["plots"][plot]);
    }
    for p in paths {
        let p = std::path::Path::new(p.as_str().unwrap());
        assert!(p.is_relative(), "{}", p.display());
        assert!(out.join(p).exists(), "{}", p.display());
    }
}

/// The page: every PNG inline, the definitions, SFT's answers beside DPO's, the settings,
/// and links relative to the page.
fn report_page(r: &Value, out: &std::path::Path) {
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Post-training"));
    assert_eq!(html.matches("data:image/png;base64,").count(), 5);
    for term in [
        "format compliance:",
        "hallucinated:",
        "bits per byte:",
        "win rate:",
        "few-shot recall by bucket:",
    ] {
        assert!(html.contains(&format!("<dt>{term}</dt>")), "{term}");
    }
    assert!(html.contains("<th>SFT answer</th><th>verdict</th><th>DPO answer</th>"));
    let table = &html[html.find("Answers: SFT beside DPO").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(
        table.matches("<tr><td>").count(),
        r["sft"]["examples"].as_array().unwrap().len()
    );
    assert!(html.contains("<td>--pair-prompts</td><td>200</td>"));
    assert!(html.contains(r["cpu"]["model"].as_str().unwrap()));
    assert!(html.contains("<a href=\"sft/"));
    // No absolute path of the run's folder (made under the temporary folder).
    assert!(!html.contains(std::env::temp_dir().to_str().unwrap()));
}
