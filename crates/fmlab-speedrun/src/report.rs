//! `report.json`: what a speedrun measured, as typed structs. The field order is the file's
//! (tools and the HTML report read it); every figure is written once, here, and read back
//! by the CLI's HTML page from the same types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fmlab_data::{EvalItem, Verdict};
use fmlab_eval::chat::{ChatEval, WinRate};
use fmlab_eval::world::{Example, Score};
use fmlab_train::FinetuneSummary;
use serde::Serialize;

use crate::Config;

/// The version of the report's layout. 2: paths are relative to the report's folder
/// (1 had them as the run named them), and the configuration, fmlab's version, the CPU,
/// examples' expected answers and the SFT, DPO and comparison plots were added.
pub const FORMAT: &str = "fmlab-speedrun-2";

#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub format: String,
    pub minutes: f64,
    pub seed: u64,
    pub elapsed_seconds: f64,
    pub within_budget: bool,
    /// The fmlab release that ran it.
    pub fmlab_version: String,
    pub cpu: CpuFacts,
    /// Every setting of the run (the CLI's flags).
    pub config: Config,
    /// Seconds per stage, by stage name.
    pub stages_seconds: BTreeMap<String, f64>,
    pub world: WorldFacts,
    pub tokenizer: TokenizerFacts,
    pub plan: PlanFacts,
    pub pretrain: PretrainFacts,
    pub eval: EvalFacts,
    pub samples: Vec<SampleSet>,
    pub base: Option<BaseStage>,
    pub sft: Option<SftStage>,
    pub dpo: Option<DpoStage>,
    pub checkpoint: PathBuf,
    pub plots: Plots,
}

/// The machine's CPU, as the throughput and MFU figures depend on it.
#[derive(Serialize, Clone, Debug)]
pub struct CpuFacts {
    /// The model name from `/proc/cpuinfo` ("unknown CPU" elsewhere).
    pub model: String,
    /// Threads the training and evaluation ran on.
    pub threads: usize,
}

#[derive(Serialize, Clone, Debug)]
pub struct WorldFacts {
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub people: u64,
    pub documents: u64,
}

#[derive(Serialize, Clone, Debug)]
pub struct TokenizerFacts {
    pub path: PathBuf,
    pub vocab_size: u64,
    pub bytes_per_token: f64,
}

/// One depth the planner timed.
#[derive(Serialize, Clone, Debug)]
pub struct Candidate {
    pub depth: u64,
    pub d_model: u64,
    pub params: u64,
    pub tokens_per_second: f64,
    /// Tokens that depth trains in the planned seconds.
    pub tokens: f64,
    /// The compute-optimal size for that compute (Epoch AI's law).
    pub optimal_params: f64,
}

#[derive(Serialize, Clone, Debug)]
pub struct PlanFacts {
    pub law: String,
    pub fixed_steps: bool,
    pub train_seconds: f64,
    pub candidates: Vec<Candidate>,
    pub depth: u64,
    pub steps: u64,
    pub tokens: f64,
    pub epochs: f64,
}

#[derive(Serialize, Clone, Debug)]
pub struct PretrainFacts {
    pub params: u64,
    pub depth: u64,
    pub d_model: u64,
    pub steps: u64,
    pub tokens: u64,
    pub tokens_per_second: f64,
    pub mfu: f64,
    pub peak_flops: f64,
    pub initial_val_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub interrupted_at_deadline: bool,
    pub run: PathBuf,
}

#[derive(Serialize, Clone, Debug)]
pub struct EvalFacts {
    /// Few-shot fact recall by bucket (frequent, rare).
    pub fact_recall: BTreeMap<String, f64>,
    pub fact_recall_detail: BTreeMap<String, Score>,
    pub fact_recall_by_lang: BTreeMap<String, BTreeMap<String, Score>>,
    pub arithmetic_accuracy: f64,
    pub arithmetic: Score,
    pub val_bits_per_byte: f64,
    pub examples: Vec<Example>,
}

/// Greedy and sampled continuations of one prompt.
#[derive(Serialize, Clone, Debug)]
pub struct SampleSet {
    pub prompt: String,
    pub greedy: String,
    pub sampled: Vec<String>,
}

/// The stable fields of one model's chat evaluation.
#[derive(Serialize, Clone, Debug)]
pub struct StageEval {
    pub format_compliance: f64,
    pub fact_accuracy: BTreeMap<String, f64>,
    pub fact_accuracy_free_form: BTreeMap<String, f64>,
    pub idk_rate_unseen: f64,
    pub hallucination_rate_unseen: f64,
    pub arithmetic_accuracy: f64,
    pub verdicts: BTreeMap<String, usize>,
    pub items: usize,
    pub examples: Vec<StageExample>,
}

#[derive(Serialize, Clone, Debug)]
pub struct StageExample {
    /// The eval item's id: the same questions are asked of every stage.
    pub id: u64,
    pub split: String,
    pub prompt: String,
    /// The item's canonical answer ("I don't know" for never-seen people).
    pub expected: String,
    pub answer: String,
    pub verdict: Verdict,
}

/// Examples kept per split (frequent, rare, unseen, arithmetic) of each stage's answers.
const EXAMPLES_PER_SPLIT: usize = 3;

impl StageEval {
    /// One line of the figures, after the model's `name` (the speedrun's log).
    pub fn describe(&self, name: &str) -> String {
        let acc = |m: &BTreeMap<String, f64>, b: &str| m.get(b).copied().unwrap_or(0.0);
        format!(
            "{name}: format {:.0}%, facts frequent {:.1}% rare {:.1}% (free-form questions {:.1}% / {:.1}%), unseen: I don't know {:.0}% / hallucinated {:.0}%",
            100.0 * self.format_compliance,
            100.0 * acc(&self.fact_accuracy, "frequent"),
            100.0 * acc(&self.fact_accuracy, "rare"),
            100.0 * acc(&self.fact_accuracy_free_form, "frequent"),
            100.0 * acc(&self.fact_accuracy_free_form, "rare"),
            100.0 * self.idk_rate_unseen,
            100.0 * self.hallucination_rate_unseen
        )
    }

    /// The figures of `e`, and its first answers in each split with `items`' expected
    /// answers beside them.
    pub fn of(e: &ChatEval, items: &[EvalItem]) -> Self {
        let accuracies = |m: &BTreeMap<String, Score>| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.accuracy))
                .collect::<BTreeMap<_, _>>()
        };
        StageEval {
            format_compliance: e.format_compliance,
            fact_accuracy: accuracies(&e.fact_accuracy),
            fact_accuracy_free_form: accuracies(&e.fact_accuracy_free_form),
            idk_rate_unseen: e.idk_rate_unseen,
            hallucination_rate_unseen: e.hallucination_rate_unseen,
            arithmetic_accuracy: e.arithmetic.accuracy,
            verdicts: e.verdicts.clone(),
            items: e.answers.len(),
            examples: examples(e, items),
        }
    }
}

/// The first `EXAMPLES_PER_SPLIT` answers of each split, in the order asked.
fn examples(e: &ChatEval, items: &[EvalItem]) -> Vec<StageExample> {
    let expected: BTreeMap<u64, &str> = items.iter().map(|i| (i.id, i.answer.as_str())).collect();
    let mut per_split: BTreeMap<&str, usize> = BTreeMap::new();
    e.answers
        .iter()
        .filter(|a| {
            let n = per_split.entry(a.split.as_str()).or_default();
            *n += 1;
            *n <= EXAMPLES_PER_SPLIT
        })
        .map(|a| StageExample {
            id: a.id,
            split: a.split.clone(),
            prompt: a.prompt.clone(),
            expected: expected.get(&a.id).copied().unwrap_or_default().to_string(),
            answer: a.text.clone(),
            verdict: a.verdict,
        })
        .collect()
}

/// The pre-trained model asked through the chat template it never saw.
#[derive(Serialize, Clone, Debug)]
pub struct BaseStage {
    #[serde(flatten)]
    pub eval: StageEval,
    pub model: PathBuf,
}

/// A finetuning stage's summary, and where its loss curve is drawn (by the caller: this
/// crate draws nothing).
#[derive(Serialize, Clone, Debug)]
pub struct Training {
    #[serde(flatten)]
    pub summary: FinetuneSummary,
    pub loss_plot: PathBuf,
}

#[derive(Serialize, Clone, Debug)]
pub struct SftStage {
    #[serde(flatten)]
    pub eval: StageEval,
    pub win_rate_vs_base: f64,
    pub win_vs_base: WinRate,
    pub training: Training,
}

#[derive(Serialize, Clone, Debug)]
pub struct DpoStage {
    #[serde(flatten)]
    pub eval: StageEval,
    pub win_rate_vs_sft: f64,
    pub win_vs_sft: WinRate,
    pub training: Training,
    pub pairs: PairsFacts,
}

#[derive(Serialize, Clone, Debug)]
pub struct PairsFacts {
    pub prompts: usize,
    pub pairs: usize,
    pub k: usize,
    pub file: String,
}

/// The PNGs the caller draws, relative to the report's folder.
#[derive(Serialize, Clone, Debug)]
pub struct Plots {
    /// Pre-training's loss curve.
    pub loss: String,
    /// Few-shot accuracy by bucket.
    pub recall: String,
    /// SFT's and DPO's loss curves, in their run folders (with post-training).
    pub sft_loss: Option<String>,
    pub dpo_loss: Option<String>,
    /// Base, SFT and DPO side by side on every measure (with post-training).
    pub stages: Option<String>,
}

/// `path` relative to `dir` when it lies inside it (as every path a speedrun writes does),
/// whether it names `dir` as given or its canonical form.
fn relative(dir: &Path, canonical: Option<&Path>, path: &mut PathBuf) {
    let rel = path
        .strip_prefix(dir)
        .ok()
        .or_else(|| canonical.and_then(|c| path.strip_prefix(c).ok()));
    if let Some(rel) = rel {
        *path = rel.to_path_buf();
    }
}

impl Report {
    /// Rewrites every path of the report relative to `dir`, the report's folder, so that
    /// the folder can be moved; paths outside it are kept as they are.
    pub fn make_relative(&mut self, dir: &Path) {
        let mut paths = vec![
            &mut self.world.dir,
            &mut self.tokenizer.path,
            &mut self.pretrain.run,
            &mut self.checkpoint,
        ];
        if let Some(b) = &mut self.base {
            paths.push(&mut b.model);
        }
        let sft = self.sft.as_mut().map(|s| &mut s.training);
        let dpo = self.dpo.as_mut().map(|d| &mut d.training);
        for t in sft.into_iter().chain(dpo) {
            paths.extend([
                &mut t.loss_plot,
                &mut t.summary.run,
                &mut t.summary.checkpoint,
            ]);
        }
        let canonical = dir.canonicalize().ok();
        for p in paths {
            relative(dir, canonical.as_deref(), p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_folder_become_relative() {
        let dir = std::env::temp_dir();
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        let cases = [
            (dir.join("run/checkpoint-10"), "run/checkpoint-10"),
            (canonical.join("sft/loss.png"), "sft/loss.png"),
            (PathBuf::from("/elsewhere/run"), "/elsewhere/run"),
        ];
        for (given, expected) in cases {
            let mut p = given;
            relative(&dir, Some(&canonical), &mut p);
            assert_eq!(p, PathBuf::from(expected));
        }
        let mut p = PathBuf::from("sr/world");
        relative(Path::new("sr"), None, &mut p);
        assert_eq!(p, PathBuf::from("world"));
    }
}
