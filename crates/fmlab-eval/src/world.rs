//! Evaluation of a base model on the synthetic world's eval split: few-shot fact recall by
//! how often the corpus mentions the person (frequent / rare), and few-shot arithmetic.
//!
//! A base model has only seen statements, never questions, so facts are asked as the
//! corpus states them: a few true statements about other frequent people, then the same
//! statement about the subject cut before the value ("Kea Jemda was born in"), completed
//! greedily. Arithmetic uses the corpus's own layout: the problem, then "Answer: N".
//! Decoding runs through the same generation loop as `fmlab generate`.

use std::collections::BTreeMap;

use fmlab_data::world::lang::{Lang, Relation};
use fmlab_data::EvalItem;
use fmlab_nn::{Session, Transformer};
use fmlab_sample::{GenerateOptions, Sampler, StopConditions};
use fmlab_tokenizer::Tokenizer;
use rayon::prelude::*;
use serde::Serialize;

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

/// Whether `completion` (its first line) states one of `answers`: as a whole word or phrase
/// for facts, as the first number for arithmetic.
fn is_correct(completion: &str, answers: &[String], arithmetic: bool) -> bool {
    let line = completion.lines().next().unwrap_or("").trim();
    if arithmetic {
        let number: String = line
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        return answers.iter().any(|a| a == &number);
    }
    let line = line.split('.').next().unwrap_or("").to_lowercase();
    let words: Vec<&str> = line
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    answers.iter().any(|a| {
        let want: Vec<String> = a
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        !want.is_empty() && words.windows(want.len()).any(|w| w == want.as_slice())
    })
}

/// Few-shot fact recall and arithmetic accuracy of `model` on the world's eval items.
pub fn evaluate_world(
    model: &Transformer,
    tokenizer: &Tokenizer,
    items: &[EvalItem],
    config: &WorldEvalConfig,
) -> Result<WorldEval> {
    let tasks = tasks(items, config);
    let context = model.spec.context_length as usize;
    let results: Vec<Result<Option<(usize, String)>>> = tasks
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut ids = tokenizer.encode(&t.prompt, false, false);
            // Keep the question whole when the examples do not fit.
            let room = context.saturating_sub(config.max_new_tokens);
            if ids.len() > room {
                ids.drain(..ids.len() - room);
            }
            if ids.is_empty() {
                return Ok(None);
            }
            let mut session = Session::new(model, ids.len() + config.max_new_tokens);
            let g = fmlab_sample::generate(
                &mut session,
                &ids,
                &mut Sampler::greedy(),
                GenerateOptions::new(StopConditions {
                    max_new_tokens: config.max_new_tokens,
                    ignore_stop_tokens: true,
                    ..Default::default()
                }),
                &mut |_, _| true,
            )?;
            let text = tokenizer.decode(&g.tokens, false).unwrap_or_default();
            Ok(Some((i, text)))
        })
        .collect();
    let mut eval = WorldEval {
        fact_recall: BTreeMap::new(),
        fact_recall_by_lang: BTreeMap::new(),
        arithmetic: Score::default(),
        examples: Vec::new(),
    };
    for r in results {
        let Some((i, completion)) = r? else { continue };
        let t = &tasks[i];
        let ok = is_correct(&completion, &t.answers, t.arithmetic);
        if t.arithmetic {
            eval.arithmetic.add(ok);
        } else {
            eval.fact_recall
                .entry(t.bucket.clone())
                .or_default()
                .add(ok);
            eval.fact_recall_by_lang
                .entry(t.lang.code().into())
                .or_default()
                .entry(t.bucket.clone())
                .or_default()
                .add(ok);
        }
        let shown = eval
            .examples
            .iter()
            .filter(|e| e.bucket == t.bucket)
            .count();
        if shown < 4 {
            eval.examples.push(Example {
                bucket: t.bucket.clone(),
                lang: t.lang.code().into(),
                question: t.question.clone(),
                completion: completion.lines().next().unwrap_or("").to_string(),
                answer: t.answers.first().cloned().unwrap_or_default(),
                correct: ok,
            });
        }
    }
    Ok(eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_matched_as_words_or_numbers() {
        let a = |s: &str| vec![s.to_string()];
        assert!(is_correct(" an engineer. She", &a("engineer"), false));
        assert!(!is_correct(" an engineering firm", &a("engineer"), false));
        assert!(is_correct(" Kea Jemda.", &a("Kea Jemda"), false));
        assert!(!is_correct(" Kea.", &a("Kea Jemda"), false));
        assert!(!is_correct(" 1931", &a("1932"), false));
        assert!(is_correct(" 42\n\nNext", &a("42"), true));
        assert!(!is_correct(" 420", &a("42"), true));
        assert!(!is_correct("\n42", &a("42"), true));
    }
}
