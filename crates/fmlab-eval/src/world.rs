//! Evaluation of a base model on the synthetic world's eval split: few-shot fact recall by
//! how often the corpus mentions the person (frequent / rare), and few-shot arithmetic.
//!
//! A base model has only seen statements, never questions, so facts are asked as the
//! corpus states them: a few true statements about other frequent people, then the same
//! statement about the subject cut before the value ("Kea Jemda was born in"), completed
//! greedily. Arithmetic uses the corpus's own layout: the problem, then "Answer: N".
//! The questions are tasks of the evaluation pipeline ([`world_tasks`]), so `fmlab eval
//! run --tasks WORLD_FOLDER` runs them on any model and the speedrun's evaluation is a call
//! of it.

use std::collections::BTreeMap;

use fmlab_data::world::lang::{Lang, Relation};
use fmlab_data::EvalItem;
use fmlab_nn::Transformer;
use fmlab_tokenizer::Tokenizer;
use serde::Serialize;

use crate::harness::{run_task, Group, Item, LocalModel, RunConfig, Task as HarnessTask};

use crate::Result;

/// How much to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct WorldEvalConfig {
    /// Items per bucket (frequent, rare, arithmetic) at most.
    pub per_bucket: usize,
    /// Worked examples before each question.
    pub shots: usize,
    /// Tokens generated per answer.
    pub max_new_tokens: usize,
}

impl Default for WorldEvalConfig {
    fn default() -> Self {
        Self {
            per_bucket: 200,
            shots: 3,
            max_new_tokens: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    pub items: usize,
    pub correct: usize,
    pub accuracy: f64,
}

impl Score {
    pub(crate) fn add(&mut self, ok: bool) {
        self.items += 1;
        self.correct += ok as usize;
        self.accuracy = self.correct as f64 / self.items as f64;
    }
}

/// One question, its prompt's last line, what the model wrote, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub bucket: String,
    pub lang: String,
    pub question: String,
    pub completion: String,
    pub answer: String,
    pub correct: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorldEval {
    /// Per frequency bucket ("frequent", "rare").
    pub fact_recall: BTreeMap<String, Score>,
    /// Per language, then bucket.
    pub fact_recall_by_lang: BTreeMap<String, BTreeMap<String, Score>>,
    pub arithmetic: Score,
    pub examples: Vec<Example>,
}

/// A prompt and what counts as right.
struct Task {
    bucket: String,
    lang: Lang,
    prompt: String,
    question: String,
    answers: Vec<String>,
    arithmetic: bool,
}

fn statement(lang: Lang, rel: Relation, item: &EvalItem) -> Option<String> {
    let subject = item.subject.as_deref()?;
    let value = item.answers.first()?;
    Some(format!("{} {value}.", lang.cloze(rel, subject)?))
}

/// Builds the few-shot prompts, `per_bucket` at most per bucket, in file order.
fn tasks(items: &[EvalItem], config: &WorldEvalConfig) -> Vec<Task> {
    // Worked examples: frequent people's facts by (language, relation); arithmetic by
    // language.
    let mut shots: BTreeMap<(Lang, Relation), Vec<(u64, String)>> = BTreeMap::new();
    let mut sums: BTreeMap<Lang, Vec<(u64, String)>> = BTreeMap::new();
    for it in items {
        match (it.kind.as_str(), it.relation) {
            ("fact", Some(rel)) if it.split == "frequent" && !it.refusal => {
                if let Some(s) = statement(it.lang, rel, it) {
                    shots.entry((it.lang, rel)).or_default().push((it.id, s));
                }
            }
            ("arithmetic", _) => {
                let s = format!("{}\n{}: {}", it.prompt, it.lang.answer_word(), it.answer);
                sums.entry(it.lang).or_default().push((it.id, s));
            }
            _ => {}
        }
    }
    let pick = |pool: &[(u64, String)], id: u64| -> Option<Vec<String>> {
        let others: Vec<&String> = pool.iter().filter(|p| p.0 != id).map(|p| &p.1).collect();
        if others.len() < config.shots {
            return None;
        }
        // A rotation keyed by the item's id: different examples for different questions.
        let start = id as usize % others.len();
        Some(
            (0..config.shots)
                .map(|k| others[(start + k) % others.len()].clone())
                .collect(),
        )
    };
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for it in items {
        let task = match (it.kind.as_str(), it.relation) {
            ("fact", Some(rel))
                if (it.split == "frequent" || it.split == "rare")
                    && !it.refusal
                    && it.format == fmlab_data::Format::Free =>
            {
                let (Some(subject), Some(pool)) =
                    (it.subject.as_deref(), shots.get(&(it.lang, rel)))
                else {
                    continue;
                };
                let (Some(cloze), Some(examples)) =
                    (it.lang.cloze(rel, subject), pick(pool, it.id))
                else {
                    continue;
                };
                Task {
                    bucket: it.split.clone(),
                    lang: it.lang,
                    prompt: format!("{}\n{cloze}", examples.join("\n")),
                    question: cloze,
                    answers: it.answers.clone(),
                    arithmetic: false,
                }
            }
            ("arithmetic", _) => {
                let Some(examples) = sums.get(&it.lang).and_then(|p| pick(p, it.id)) else {
                    continue;
                };
                let question = format!("{}\n{}:", it.prompt, it.lang.answer_word());
                Task {
                    bucket: "arithmetic".into(),
                    lang: it.lang,
                    prompt: format!("{}\n\n{question}", examples.join("\n\n")),
                    question,
                    answers: vec![it.answer.clone()],
                    arithmetic: true,
                }
            }
            _ => continue,
        };
        let n = count.entry(task.bucket.clone()).or_default();
        if *n < config.per_bucket {
            *n += 1;
            out.push(task);
        }
    }
    out
}

/// The world's eval items as evaluation-pipeline tasks (`world_recall_frequent`,
/// `world_recall_rare`, `world_arithmetic`, generate_until over prompts with their worked
/// examples built in): fact recall scored by `contains_answer` (the answer's words in the
/// completion's first sentence), arithmetic by `exact_match` on the completion's first
/// number. Each document keeps its language and question.
pub fn world_tasks(items: &[EvalItem], config: &WorldEvalConfig) -> Result<Vec<HarnessTask>> {
    let mut docs: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    for t in tasks(items, config) {
        let bucket = if t.arithmetic {
            "arithmetic"
        } else {
            t.bucket.as_str()
        };
        let key = match bucket {
            "frequent" => "world_recall_frequent",
            "rare" => "world_recall_rare",
            _ => "world_arithmetic",
        };
        docs.entry(key).or_default().push(serde_json::json!({
            "prompt": t.prompt,
            "question": t.question,
            "answers": t.answers,
            "lang": t.lang.code(),
            "bucket": bucket,
        }));
    }
    let mut out = Vec::new();
    for name in [
        "world_recall_frequent",
        "world_recall_rare",
        "world_arithmetic",
    ] {
        let Some(d) = docs.remove(name) else { continue };
        let arithmetic = name == "world_arithmetic";
        let mut task = serde_json::json!({
            "task": name,
            "output_type": "generate_until",
            "doc_to_text": "prompt",
            "doc_to_target": "answers",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": config.max_new_tokens},
            "metric_list": [{"metric": if arithmetic { "exact_match" } else { "contains_answer" }}],
            "metadata": {"version": 1},
        });
        if arithmetic {
            task["filter_list"] = serde_json::json!([{"name": "first_number", "filter": [
                {"function": "regex", "regex_pattern": "^\\s*([-0-9]+)"},
                {"function": "take_first"},
            ]}]);
        }
        out.push(HarnessTask::from_docs(task, d)?);
    }
    Ok(out)
}

/// Few-shot fact recall and arithmetic accuracy of `model` on the world's eval items: the
/// tasks of [`world_tasks`] run through the evaluation pipeline (contexts batched, greedy),
/// then counted by bucket and language.
pub fn evaluate_world(
    model: &Transformer,
    tokenizer: &Tokenizer,
    items: &[EvalItem],
    config: &WorldEvalConfig,
) -> Result<WorldEval> {
    let context = model.spec.context_length as usize;
    let mut lm = LocalModel::new(model, tokenizer, context).with_batch(8);
    let run = RunConfig::default();
    let mut eval = WorldEval {
        fact_recall: BTreeMap::new(),
        fact_recall_by_lang: BTreeMap::new(),
        arithmetic: Score::default(),
        examples: Vec::new(),
    };
    for task in world_tasks(items, config)? {
        let result = run_task(&task, &mut lm, &run, |_, _| {})?;
        for s in &result.samples {
            let field = |k: &str| {
                s.doc
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (bucket, lang) = (field("bucket"), field("lang"));
            let completion = s.resps[0][0].as_str().unwrap_or("").to_string();
            let ok = s
                .filtered
                .first()
                .and_then(|f| f.2.first())
                .is_some_and(|(_, item)| matches!(item, Item::Score(v) if *v > 0.5));
            if bucket == "arithmetic" {
                eval.arithmetic.add(ok);
            } else {
                eval.fact_recall.entry(bucket.clone()).or_default().add(ok);
                eval.fact_recall_by_lang
                    .entry(lang.clone())
                    .or_default()
                    .entry(bucket.clone())
                    .or_default()
                    .add(ok);
            }
            if eval.examples.iter().filter(|e| e.bucket == bucket).count() < 4 {
                let answers = s.doc.get("answers").and_then(|a| a.as_array());
                eval.examples.push(Example {
                    bucket,
                    lang,
                    question: field("question"),
                    completion: completion.lines().next().unwrap_or("").to_string(),
                    answer: answers
                        .and_then(|a| a.first())
                        .and_then(|a| a.as_str())
                        .unwrap_or("")
                        .to_string(),
                    correct: ok,
                });
            }
        }
    }
    Ok(eval)
}

/// A world folder's tasks: see [`world_suite`].
pub type WorldSuite = (Vec<HarnessTask>, Group, Vec<EvalItem>);

/// A world folder (`fmlab world` output: eval.jsonl beside manifest.json) named as a task
/// source: its tasks (see [`world_tasks`], default sizes), a `world` group listing them,
/// and the eval items they were made from (for tasks built elsewhere, such as the chat
/// ones). `None` when `dir` is not a world folder.
pub fn world_suite(dir: &std::path::Path) -> Result<Option<WorldSuite>> {
    let items_path = dir.join("eval.jsonl");
    if !(dir.join("manifest.json").is_file() && items_path.is_file()) {
        return Ok(None);
    }
    let items = fmlab_data::read_items(&items_path)
        .map_err(|e| crate::Error::Config(format!("{}: {e}", items_path.display())))?;
    let tasks = world_tasks(&items, &WorldEvalConfig::default())?;
    if tasks.is_empty() {
        return Err(crate::Error::Config(format!(
            "{}: no fact or arithmetic questions to ask",
            items_path.display()
        )));
    }
    let group = Group {
        name: "world".into(),
        alias: "world".into(),
        children: tasks.iter().map(|t| t.name.clone()).collect(),
        aggregate: Vec::new(),
        version: serde_json::json!(1),
    };
    Ok(Some((tasks, group, items)))
}
