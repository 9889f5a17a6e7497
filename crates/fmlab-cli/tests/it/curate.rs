//! `fmlab curate` end to end on a small world: the FineWeb recipe's report, two ranks
//! giving one process's output, a dry run re-cut into a mix, a trained classifier used as a
//! tagger, Slurm scripts, and one clear error for bad pipelines.

use std::path::{Path, PathBuf};

use super::{fails, fmlab, json, scratch};

/// A world's corpus cut into three JSONL files.
fn corpus(dir: &Path) -> PathBuf {
    let world = dir.join("world");
    json(&[
        "world",
        "--seed",
        "3",
        "--size",
        "300kB",
        "--out",
        world.to_str().unwrap(),
        "--json",
    ]);
    let text = std::fs::read_to_string(world.join("corpus.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for (i, part) in lines.chunks(lines.len().div_ceil(3)).enumerate() {
        std::fs::write(
            inputs.join(format!("part{i}.jsonl")),
            part.join("\n") + "\n",
        )
        .unwrap();
    }
    inputs
}

/// Every output file's decompressed text, by name.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("output"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let mut text = String::new();
            let mut r = fmlab_curate::read::open_decoded(p).unwrap();
            std::io::Read::read_to_string(&mut r, &mut text).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

#[test]
fn curate_the_fineweb_recipe_by_ranks_and_a_dry_run_into_a_mix() {
    let dir = scratch("curate");
    let inputs = corpus(dir.path());
    let input = inputs.to_str().unwrap();
    let one = dir.join("one");
    let report = json(&[
        "curate",
        input,
        "--out",
        one.to_str().unwrap(),
        "--recipe",
        "fineweb",
        "--json",
    ]);
    let blocks = report["blocks"].as_array().unwrap();
    let names: Vec<&str> = blocks.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "language",
            "gopher_repetition",
            "gopher_quality",
            "c4",
            "fineweb",
            "minhash"
        ]
    );
    for pair in blocks.windows(2) {
        assert_eq!(
            pair[0]["documents_out"], pair[1]["documents_in"],
            "{pair:?}"
        );
    }
    // The world writes French and Swahili too: the language block drops them by name.
    assert!(
        blocks[0]["dropped"]["language_not_kept"].as_u64().unwrap() > 0,
        "{}",
        blocks[0]
    );
    assert!(
        blocks[0]["by_language"]["fr"]["documents_in"]
            .as_u64()
            .unwrap()
            > 0
    );
    let kept: usize = outputs(&one).iter().map(|(_, t)| t.lines().count()).sum();
    assert_eq!(kept as u64, blocks[5]["documents_out"].as_u64().unwrap());
    assert!(one.join("report.html").is_file());
    assert!(one.join("attributes/gopher_quality/f00000.jsonl").is_file());

    // Two ranks, all here: the same files, the same report.
    let two = dir.join("two");
    let r2 = json(&[
        "curate",
        input,
        "--out",
        two.to_str().unwrap(),
        "--recipe",
        "fineweb",
        "--world-size",
        "2",
        "--json",
    ]);
    assert_eq!(r2["blocks"], report["blocks"]);
    assert_eq!(outputs(&two), outputs(&one));

    // The plan names MinHash's stages; --slurm writes one array script per stage.
    let plan = fmlab(&[
        "curate",
        "--recipe",
        "fineweb",
        "--world-size",
        "2",
        "--plan",
    ]);
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.contains("minhash-buckets") && plan.contains("14 parts"),
        "{plan}"
    );
    let slurm = dir.join("slurm");
    let s = json(&[
        "curate",
        input,
        "--out",
        slurm.to_str().unwrap(),
        "--recipe",
        "fineweb",
        "--world-size",
        "2",
        "--slurm",
        "--no-submit",
        "--json",
    ]);
    assert_eq!(s["scripts"].as_array().unwrap().len(), 5);
    let first = std::fs::read_to_string(slurm.join("slurm/00-segment0.sbatch")).unwrap();
    assert!(
        first.contains("#SBATCH --array=0-1") && first.contains("--stage segment0"),
        "{first}"
    );
    let submit = std::fs::read_to_string(slurm.join("slurm/submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterok:$jid"), "{submit}");

    // A dry run keeps everything; a mix is cut from its attributes.
    let dry = dir.join("dry");
    let d = json(&[
        "curate",
        input,
        "--out",
        dry.to_str().unwrap(),
        "--blocks",
        "language,gopher_quality",
        "--dry-run",
        "--compression",
        "none",
        "--json",
    ]);
    let total = d["blocks"][0]["documents_in"].as_u64().unwrap();
    assert_eq!(d["blocks"][1]["documents_in"].as_u64().unwrap(), total);
    let dropped = total - d["blocks"][1]["documents_out"].as_u64().unwrap();
    assert!(dropped > 0);
    // Not held to Gopher's rules: every language; held to them: fewer English documents.
    let mix = dir.join("mix.jsonl");
    let m = json(&[
        "curate",
        "mix",
        dry.to_str().unwrap(),
        "--out",
        mix.to_str().unwrap(),
        "--ignore-block",
        "gopher_quality",
        "--shares",
        "en=0.6,fr=0.3,sw=0.1",
        "--total",
        "20000",
        "--json",
    ]);
    let taken: f64 = m["groups"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["taken_tokens"].as_f64().unwrap())
        .sum();
    assert!((taken - 20000.0).abs() < 2000.0, "{m}");
    assert!(m["groups"]["sw"]["epochs"].as_f64().unwrap() > 1.0, "{m}");
    let lines = std::fs::read_to_string(&mix).unwrap().lines().count();
    assert_eq!(lines as u64, m["documents"].as_u64().unwrap());
    let held = json(&[
        "curate",
        "mix",
        dry.to_str().unwrap(),
        "--out",
        dir.join("mix2.jsonl").to_str().unwrap(),
        "--shares",
        "en=1",
        "--json",
    ]);
    let en = |v: &serde_json::Value| v["groups"]["en"]["documents"].as_u64().unwrap();
    assert!(en(&held) < en(&m), "{held}");
    let available: u64 = held["left_out"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum::<u64>()
        + en(&held);
    assert_eq!(available, total - dropped, "{held}");
}

#[test]
fn a_trained_classifier_tags_documents_in_a_pipeline() {
    let dir = scratch("curate-classifier");
    let inputs = corpus(dir.path());
    let model = dir.join("domains.fmcls");
    let r = json(&[
        "curate",
        "train-classifier",
        dir.join("world/corpus.jsonl").to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--label-field",
        "domain",
        "--json",
    ]);
    assert!(r["accuracy"].as_f64().unwrap() > 0.9, "{r}");
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[output]\ncompression = \"none\"\n\n[[blocks]]\nkind = \"classifier\"\nname = \"predicted\"\nmodel = {:?}\n",
            model.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = dir.join("tagged");
    json(&[
        "curate",
        inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    let (right, all) = outputs(&out)
        .iter()
        .flat_map(|(_, t)| t.lines().map(str::to_string).collect::<Vec<_>>())
        .fold((0, 0), |(right, all), line| {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            (right + usize::from(v["predicted"] == v["domain"]), all + 1)
        });
    assert!(all > 0 && right * 10 > all * 9, "{right} of {all}");
}

#[test]
fn bad_pipelines_get_one_clear_error() {
    let dir = scratch("curate-errors");
    let inputs = corpus(dir.path());
    let input = inputs.to_str().unwrap();
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    fails(&["curate", input, "--out", out], "choose the pipeline");
    fails(
        &["curate", input, "--out", out, "--recipe", "fineweeb"],
        "unknown recipe \"fineweeb\"",
    );
    fails(
        &["curate", input, "--out", out, "--blocks", "gopher_qualty"],
        "unknown block kind \"gopher_qualty\"",
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[blocks]]\nkind = \"gopher_quality\"\nmin_doc_wordz = 3\n",
    )
    .unwrap();
    fails(
        &[
            "curate",
            input,
            "--out",
            out,
            "--config",
            bad.to_str().unwrap(),
        ],
        "min_doc_wordz",
    );
    fails(
        &[
            "curate",
            "/nonexistent/x.jsonl",
            "--out",
            out,
            "--recipe",
            "minhash",
        ],
        "/nonexistent/x.jsonl",
    );
    fails(
        &[
            "curate",
            input,
            "--out",
            out,
            "--recipe",
            "minhash",
            "--rank",
            "2",
            "--world-size",
            "2",
        ],
        "--rank 2",
    );
    let broken = dir.join("broken.jsonl");
    std::fs::write(&broken, "{\"text\": \"fine\"}\n{\"text\": \n").unwrap();
    fails(
        &[
            "curate",
            broken.to_str().unwrap(),
            "--out",
            dir.join("o2").to_str().unwrap(),
            "--recipe",
            "minhash",
        ],
        "line 2",
    );
}
