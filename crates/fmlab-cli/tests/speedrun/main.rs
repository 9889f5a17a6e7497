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
    assert!(std::path::Path::new(checkpoint)
        .join("manifest.json")
        .is_file());
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
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Post-training"));
    assert_eq!(html.matches("data:image/png;base64,").count(), 2);
    for png in ["loss.png", "recall.png"] {
        assert!(out.join(png).is_file());
    }
    // A second speedrun into the same folder is refused rather than mixed in.
    let again = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(["speedrun", "--minutes", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a speedrun"));
    let _ = std::fs::remove_dir_all(&out);
}
