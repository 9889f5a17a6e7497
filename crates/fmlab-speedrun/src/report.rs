//! `report.json`: what a speedrun measured, as typed structs. The field order is the file's
//! (tools and the HTML report read it); every figure is written once, here, and read back
//! by the CLI's HTML page from the same types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fmlab_data::Verdict;
use fmlab_eval::chat::{ChatEval, WinRate};
use fmlab_eval::world::{Example, Score};
use fmlab_train::FinetuneSummary;
use serde::Serialize;

/// The version of the report's layout.
pub const FORMAT: &str = "fmlab-speedrun-1";

#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub format: String,
    pub minutes: f64,
    pub seed: u64,
    pub elapsed_seconds: f64,
    pub within_budget: bool,
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
    pub split: String,
    pub prompt: String,
    pub answer: String,
    pub verdict: Verdict,
}

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

    pub fn of(e: &ChatEval) -> Self {
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
            examples: e
                .answers
                .iter()
                .take(8)
                .map(|a| StageExample {
                    split: a.split.clone(),
                    prompt: a.prompt.clone(),
                    answer: a.text.clone(),
                    verdict: a.verdict,
                })
                .collect(),
        }
    }
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

#[derive(Serialize, Clone, Debug)]
pub struct Plots {
    pub loss: String,
    pub recall: String,
}
