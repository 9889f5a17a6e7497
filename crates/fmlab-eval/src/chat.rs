//! Evaluation of a chat model on the synthetic world: every question asked as a user turn
//! through the model's chat template, answered greedily, and judged exactly
//! (`fmlab_data::judge`). What post-training changes shows here: whether answers keep the
//! chat and the requested format, how often known facts come out right by how often the
//! corpus states them, and whether the model says "I don't know" about people it never saw
//! or invents something (a hallucination).
//!
//! The judge is a trait ([`Judge`]): the world's exact judge is one, a reward model can be
//! another; on-policy preference data ([`preference_pairs`]) and win rates use whichever is
//! given.

use std::collections::BTreeMap;

use fmlab_data::{EvalItem, Format, Verdict};
use fmlab_nn::{Session, Transformer};
use fmlab_sample::{GenerateOptions, Sampler, SamplerConfig, StopConditions, StopReason};
use fmlab_tokenizer::{ChatTemplate, Message, Tokenizer};
use rayon::prelude::*;
use serde::Serialize;

use crate::harness::{run_task, Generation, Item, LocalModel, RunConfig, Task as HarnessTask};
use crate::world::Score;
use crate::Result;

/// Scores answers: higher is better. The world's judge ranks verdicts; a reward model
/// returns its reward.
pub trait Judge: Sync {
    fn score(&self, item: &EvalItem, answer: &str) -> f64;
}

/// The world's exact judge, as a ranking: correct (3) over an honest "I don't know" about
/// a known fact (2) over a wrong answer or a broken format (1) over an invented fact about
/// someone never seen (0).
pub struct WorldJudge;

/// The rank [`WorldJudge`] gives a verdict.
pub fn verdict_rank(v: Verdict) -> f64 {
    match v {
        Verdict::Correct => 3.0,
        Verdict::Refused => 2.0,
        Verdict::Wrong | Verdict::FormatViolation => 1.0,
        Verdict::Hallucinated => 0.0,
    }
}

impl Judge for WorldJudge {
    fn score(&self, item: &EvalItem, answer: &str) -> f64 {
        verdict_rank(fmlab_data::judge(item, answer))
    }
}

/// A reward model as the judge: the reward of the prompt and answer rendered as one
/// exchange, read where training read it (after the answer's end-of-turn marker).
pub struct RewardJudge<'a> {
    pub scorer: fmlab_nn::RewardScorer<'a>,
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
}

impl Judge for RewardJudge<'_> {
    fn score(&self, item: &EvalItem, answer: &str) -> f64 {
        let messages = [
            Message::new("user", &item.prompt),
            Message::new("assistant", answer),
        ];
        let Ok(text) = self.template.render(&messages, false) else {
            return f64::NEG_INFINITY;
        };
        let mut ids = fmlab_tokenizer::chat::encode_chat(self.tokenizer, &text, true);
        // Training's rows predict each sequence's last token from the one before: the
        // reward sits at the end-of-turn marker, not after the newline that follows it.
        ids.pop();
        self.scorer.score_tokens(&ids).unwrap_or(f64::NEG_INFINITY)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChatEvalConfig {
    /// Items per split (frequent, rare, unseen, arithmetic) at most, in file order.
    pub per_split: usize,
    /// Tokens an answer may take.
    pub max_new_tokens: usize,
}

impl Default for ChatEvalConfig {
    fn default() -> Self {
        Self {
            per_split: 100,
            max_new_tokens: 48,
        }
    }
}

/// One judged answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub id: u64,
    pub split: String,
    pub lang: String,
    pub format: Format,
    pub prompt: String,
    pub text: String,
    pub verdict: Verdict,
    /// The model ended its turn (an end-of-turn token) within the token limit.
    pub ended: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatEval {
    /// Of the questions that ask for a format (one word, JSON, a list of three): the share
    /// answered in it, the turn ended.
    pub format_compliance: f64,
    /// Correct answers to facts about seen people, per split ("frequent", "rare").
    pub fact_accuracy: BTreeMap<String, Score>,
    /// The same over the free-form questions only: the questions few-shot recall asks too
    /// (a cloze cannot ask for JSON or one word), so the two compare like for like.
    pub fact_accuracy_free_form: BTreeMap<String, Score>,
    /// Share of questions about never-seen people answered "I don't know".
    pub idk_rate_unseen: f64,
    /// Share of questions about never-seen people answered with an invented fact.
    pub hallucination_rate_unseen: f64,
    pub arithmetic: Score,
    /// Verdicts by name, over every answer.
    pub verdicts: BTreeMap<String, usize>,
    pub answers: Vec<Answer>,
}

impl ChatEval {
    /// The figures as lines of text (`fmlab eval chat`'s table).
    pub fn describe(&self) -> String {
        let e = self;
        let mut s = format!(
            "{} answers; format compliance {:.1}%\n",
            e.answers.len(),
            100.0 * e.format_compliance
        );
        for (split, score) in &e.fact_accuracy {
            let free = e
                .fact_accuracy_free_form
                .get(split)
                .copied()
                .unwrap_or_default();
            s += &format!(
                "fact accuracy, {split}: {:.1}% ({} of {}); free-form questions {:.1}% ({} of {})\n",
                100.0 * score.accuracy,
                score.correct,
                score.items,
                100.0 * free.accuracy,
                free.correct,
                free.items
            );
        }
        s += &format!(
            "never-seen people: \"I don't know\" {:.1}%, hallucinated {:.1}%\narithmetic: {:.1}% ({} of {})\n",
            100.0 * e.idk_rate_unseen,
            100.0 * e.hallucination_rate_unseen,
            100.0 * e.arithmetic.accuracy,
            e.arithmetic.correct,
            e.arithmetic.items
        );
        s
    }
}

/// The items [`evaluate_chat`] asks: `per_split` at most per split, in file order.
pub fn select(items: &[EvalItem], per_split: usize) -> Vec<&EvalItem> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    items
        .iter()
        .filter(|it| {
            let n = count.entry(it.split.as_str()).or_default();
            *n += 1;
            *n <= per_split
        })
        .collect()
}

/// The prompt tokens of `item` as a user turn with the generation prompt.
pub(crate) fn prompt_ids(
    item: &EvalItem,
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
) -> Result<Vec<u32>> {
    template
        .prompt_ids(tokenizer, &[Message::new("user", &item.prompt)])
        .map_err(|e| crate::Error::Config(format!("chat template: {e}")))
}

/// One answer to `item`: greedy when `sampler` is `None`.
pub(crate) fn answer(
    model: &Transformer,
    tokenizer: &Tokenizer,
    ids: &[u32],
    max_new_tokens: usize,
    sampler: Option<Sampler>,
) -> Result<(String, bool)> {
    let context = (ids.len() + max_new_tokens).min(model.spec.context_length as usize);
    if ids.len() >= context {
        return Ok((String::new(), false));
    }
    let mut session = Session::new(model, context);
    let mut sampler = sampler.unwrap_or_else(Sampler::greedy);
    let g = fmlab_sample::generate(
        &mut session,
        ids,
        &mut sampler,
        GenerateOptions::new(StopConditions {
            max_new_tokens: max_new_tokens.min(context - ids.len()),
            stop_tokens: tokenizer.stop_tokens(),
            ..Default::default()
        }),
        &mut |_, _| true,
    )?;
    let text = tokenizer.decode(&g.tokens, false).unwrap_or_default();
    Ok((
        text.trim().to_string(),
        matches!(g.stop, StopReason::StopToken(_)),
    ))
}

/// `n` answers to one prompt after one prefill: answer `i` draws from sampler stream `i`
/// of `config`'s seed ([`fmlab_sample::generate_n`]); each with whether it ended its turn.
pub(crate) fn answers_n(
    model: &Transformer,
    tokenizer: &Tokenizer,
    ids: &[u32],
    max_new_tokens: usize,
    config: &SamplerConfig,
    n: usize,
) -> Result<Vec<(String, bool)>> {
    let context = (ids.len() + max_new_tokens).min(model.spec.context_length as usize);
    if ids.len() >= context {
        return Ok(vec![(String::new(), false); n]);
    }
    let mut session = Session::new(model, context);
    let stop = StopConditions {
        max_new_tokens: max_new_tokens.min(context - ids.len()),
        stop_tokens: tokenizer.stop_tokens(),
        ..Default::default()
    };
    let gens = fmlab_sample::generate_n(
        &mut session,
        ids,
        config,
        None,
        n,
        |_| GenerateOptions::new(stop.clone()),
        &mut |_, _, _| true,
    )?;
    Ok(gens
        .iter()
        .map(|g| {
            let text = tokenizer.decode(&g.tokens, false).unwrap_or_default();
            (
                text.trim().to_string(),
                matches!(g.stop, StopReason::StopToken(_)),
            )
        })
        .collect())
}

/// The world's questions to a chat model as tasks of the evaluation pipeline, one per
/// split (`world_chat_frequent`, `world_chat_rare`, `world_chat_unseen`,
/// `world_chat_arithmetic`): each document an eval item, asked as a user turn through the
/// model's chat template, answered greedily up to `max_new_tokens`, rated by the world's
/// judge ([`judge_answer`]: `correct` — for never-seen people, "I don't know" —, `refused`,
/// `hallucinated`, `ended`).
pub fn chat_tasks(items: &[&EvalItem], max_new_tokens: usize) -> Result<Vec<HarnessTask>> {
    let mut by_split: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    for it in items {
        let doc = serde_json::to_value(it).map_err(|e| crate::Error::Config(e.to_string()))?;
        by_split.entry(it.split.as_str()).or_default().push(doc);
    }
    let mut out = Vec::new();
    for split in ["frequent", "rare", "unseen", "arithmetic"] {
        let Some(docs) = by_split.remove(split) else {
            continue;
        };
        let config = serde_json::json!({
            "task": format!("world_chat_{split}"),
            "output_type": "generate_until",
            "doc_to_text": "prompt",
            "doc_to_target": "answer",
            "generation_kwargs": {"until": [], "max_gen_toks": max_new_tokens},
            "metadata": {"version": 1},
        });
        let mut task = HarnessTask::from_docs(config, docs)?;
        task.chat = true;
        task.judge = Some(judge_answer);
        task.metrics = JUDGED.iter().map(|m| m.to_string()).collect();
        out.push(task);
    }
    Ok(out)
}

/// What [`judge_answer`] rates.
const JUDGED: [&str; 4] = ["correct", "refused", "hallucinated", "ended"];

/// The world's judge on one answer (trimmed), as pipeline metrics.
pub fn judge_answer(doc: &serde_json::Value, answer: &Generation) -> Vec<(String, Item)> {
    let verdict = serde_json::from_value::<EvalItem>(doc.clone())
        .ok()
        .map(|item| fmlab_data::judge(&item, answer.text.trim()));
    let flag = |b: bool| Item::Score(if b { 1.0 } else { 0.0 });
    vec![
        ("correct".into(), flag(verdict == Some(Verdict::Correct))),
        ("refused".into(), flag(verdict == Some(Verdict::Refused))),
        (
            "hallucinated".into(),
            flag(verdict == Some(Verdict::Hallucinated)),
        ),
        ("ended".into(), flag(answer.ended)),
    ]
}

/// Asks `model` the selected eval items through its chat template and judges the answers:
/// the tasks of [`chat_tasks`] run through the evaluation pipeline (answers decoded in
/// batches), then summarised.
pub fn evaluate_chat(
    model: &Transformer,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    items: &[EvalItem],
    config: &ChatEvalConfig,
) -> Result<ChatEval> {
    let chosen = select(items, config.per_split);
    let position: BTreeMap<u64, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id, i))
        .collect();
    let mut lm =
        LocalModel::new(model, tokenizer, model.spec.context_length as usize).with_batch(8);
    let run = RunConfig {
        chat_template: Some(template.clone()),
        ..RunConfig::default()
    };
    let mut answers = Vec::with_capacity(chosen.len());
    for task in chat_tasks(&chosen, config.max_new_tokens)? {
        for s in run_task(&task, &mut lm, &run, |_, _| {})?.samples {
            let item: EvalItem = serde_json::from_value(s.doc.clone())
                .map_err(|e| crate::Error::Config(e.to_string()))?;
            let text = s.resps[0][0].as_str().unwrap_or("").trim().to_string();
            let ended = s
                .filtered
                .first()
                .and_then(|f| f.2.iter().find(|(m, _)| m == "ended"))
                .is_some_and(|(_, v)| matches!(v, Item::Score(x) if *x > 0.5));
            answers.push(Answer {
                id: item.id,
                split: item.split.clone(),
                lang: item.lang.code().into(),
                format: item.format,
                prompt: item.prompt.clone(),
                verdict: fmlab_data::judge(&item, &text),
                text,
                ended,
            });
        }
    }
    // The order questions were chosen in (file order), as before the pipeline.
    answers.sort_by_key(|a| position.get(&a.id).copied().unwrap_or(usize::MAX));
    Ok(summarise(answers))
}

fn summarise(answers: Vec<Answer>) -> ChatEval {
    let mut eval = ChatEval {
        format_compliance: 0.0,
        fact_accuracy: BTreeMap::new(),
        fact_accuracy_free_form: BTreeMap::new(),
        idk_rate_unseen: 0.0,
        hallucination_rate_unseen: 0.0,
        arithmetic: Score::default(),
        verdicts: BTreeMap::new(),
        answers: Vec::new(),
    };
    let (mut formatted, mut compliant) = (0usize, 0usize);
    let (mut unseen, mut idk, mut invented) = (0usize, 0usize, 0usize);
    for a in &answers {
        *eval.verdicts.entry(a.verdict.name().into()).or_default() += 1;
        if a.format != Format::Free {
            formatted += 1;
            if a.ended && a.verdict != Verdict::FormatViolation {
                compliant += 1;
            }
        }
        match a.split.as_str() {
            "unseen" => {
                unseen += 1;
                match a.verdict {
                    Verdict::Correct => idk += 1,
                    Verdict::Hallucinated => invented += 1,
                    _ => {}
                }
            }
            "arithmetic" => eval.arithmetic.add(a.verdict == Verdict::Correct),
            split => {
                let ok = a.verdict == Verdict::Correct;
                eval.fact_accuracy
                    .entry(split.to_string())
                    .or_default()
                    .add(ok);
                if a.format == Format::Free {
                    eval.fact_accuracy_free_form
                        .entry(split.to_string())
                        .or_default()
                        .add(ok);
                }
            }
        }
    }
    let share = |k: usize, n: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    eval.format_compliance = share(compliant, formatted);
    eval.idk_rate_unseen = share(idk, unseen);
    eval.hallucination_rate_unseen = share(invented, unseen);
    eval.answers = answers;
    eval
}

/// How often one model's answers beat another's on the same items, by a judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WinRate {
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
    /// (wins + ties / 2) / items, as AlpacaEval counts ties.
    pub win_rate: f64,
    /// wins / (wins + losses): among the items the judge separates.
    pub win_rate_decided: f64,
}

/// `new`'s win rate over `old` on the items both answered, judged by `judge`.
pub fn win_rate(new: &ChatEval, old: &ChatEval, items: &[EvalItem], judge: &dyn Judge) -> WinRate {
    let by_id: BTreeMap<u64, &EvalItem> = items.iter().map(|i| (i.id, i)).collect();
    let before: BTreeMap<u64, &Answer> = old.answers.iter().map(|a| (a.id, a)).collect();
    let mut w = WinRate::default();
    for a in &new.answers {
        let (Some(b), Some(item)) = (before.get(&a.id), by_id.get(&a.id)) else {
            continue;
        };
        // An answer that does not end its turn loses to one that does.
        let score = |x: &Answer| judge.score(item, &x.text) + if x.ended { 0.5 } else { 0.0 };
        let (sa, sb) = (score(a), score(b));
        if sa > sb {
            w.wins += 1;
        } else if sa < sb {
            w.losses += 1;
        } else {
            w.ties += 1;
        }
    }
    let n = w.wins + w.losses + w.ties;
    if n > 0 {
        w.win_rate = (w.wins as f64 + 0.5 * w.ties as f64) / n as f64;
    }
    if w.wins + w.losses > 0 {
        w.win_rate_decided = w.wins as f64 / (w.wins + w.losses) as f64;
    }
    w
}

/// An on-policy preference pair: two of the model's own answers to a prompt, the one the
/// judge scores higher chosen.
#[derive(Debug, Clone, Serialize)]
pub struct SampledPair {
    pub id: u64,
    pub kind: String,
    pub lang: String,
    pub prompt: Vec<Message>,
    pub chosen: String,
    pub rejected: String,
    pub chosen_score: f64,
    pub rejected_score: f64,
}

/// Which of a prompt's judged answers become pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pairing {
    /// The best against the worst: one pair per prompt.
    #[default]
    BestWorst,
    /// The best against one answer of every lower score: up to k − 1 pairs per prompt, so
    /// that a right answer is preferred to the model's own "I don't know" as well as to its
    /// wrong answers (best-against-worst teaches refusals on questions it can answer).
    BestVsEachLevel,
}

impl Pairing {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "best-worst" => Some(Pairing::BestWorst),
            "best-vs-each" => Some(Pairing::BestVsEachLevel),
            _ => None,
        }
    }
}

/// Which judge scores sampled answers: the world's exact judge, or a reward model (its
/// path or name) trained with `fmlab train reward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeSpec {
    World,
    Reward(String),
}

impl JudgeSpec {
    /// `world` or `reward:MODEL`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "world" => Some(JudgeSpec::World),
            _ => s
                .strip_prefix("reward:")
                .map(|m| JudgeSpec::Reward(m.to_string())),
        }
    }
}

/// Writes `pairs` to `path` (atomically) as JSON Lines in `preferences.jsonl`'s layout
/// plus the judge's scores.
pub fn write_pairs(path: &std::path::Path, pairs: &[SampledPair]) -> Result<()> {
    let mut text = String::new();
    for p in pairs {
        text += &serde_json::to_string(p).map_err(|e| crate::Error::Config(e.to_string()))?;
        text.push('\n');
    }
    fmlab_formats::write_atomically(path, text.as_bytes())?;
    Ok(())
}

/// How on-policy pairs are sampled.
#[derive(Debug, Clone)]
pub struct PairConfig {
    /// Answers sampled per prompt.
    pub k: usize,
    pub sampler: SamplerConfig,
    pub max_new_tokens: usize,
    pub pairing: Pairing,
    /// The sampler stream of the first answer to the first item (items asked in chunks
    /// continue where the previous chunk's streams ended).
    pub first_stream: u64,
}

/// For each item: `k` sampled answers, judged; the best and the worst become a pair when
/// the judge separates them (prompts where all answers tie give none), or with
/// [`Pairing::BestVsEachLevel`] the best and the first answer of each lower score. Answer
/// `j` of item `i` draws from sampler stream `first_stream + i·k + j` of the seed, so pairs
/// do not depend on threads.
pub fn preference_pairs(
    model: &Transformer,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    items: &[EvalItem],
    judge: &dyn Judge,
    config: &PairConfig,
) -> Result<Vec<SampledPair>> {
    let k = config.k.max(2);
    let out: Vec<Result<Vec<SampledPair>>> = items
        .par_iter()
        .enumerate()
        .map(|(i, item)| {
            let ids = prompt_ids(item, template, tokenizer)?;
            // (score, text) in sampling order.
            let mut judged: Vec<Judged> = Vec::new();
            for j in 0..k {
                let stream = config.first_stream + (i * k + j) as u64;
                let sampler = Sampler::for_sequence(config.sampler.clone(), stream)?;
                let (text, ended) =
                    answer(model, tokenizer, &ids, config.max_new_tokens, Some(sampler))?;
                if text.is_empty() {
                    continue;
                }
                // An answer that runs on past its turn is worse than one that ends.
                let s = judge.score(item, &text) + if ended { 0.5 } else { 0.0 };
                judged.push((s, text));
            }
            Ok(pairs_of(&judged, config.pairing)
                .into_iter()
                .map(|(b, w)| SampledPair {
                    id: item.id,
                    kind: item.kind.clone(),
                    lang: item.lang.code().into(),
                    prompt: vec![Message::new("user", &item.prompt)],
                    chosen: b.1.clone(),
                    rejected: w.1.clone(),
                    chosen_score: b.0,
                    rejected_score: w.0,
                })
                .collect())
        })
        .collect();
    let mut pairs = Vec::new();
    for p in out {
        pairs.extend(p?);
    }
    Ok(pairs)
}

/// A sampled answer with the judge's score.
type Judged = (f64, String);

/// The (chosen, rejected) answers `pairing` makes of one prompt's judged answers (in
/// sampling order; the first of equal scores stands for them).
fn pairs_of(judged: &[Judged], pairing: Pairing) -> Vec<(&Judged, &Judged)> {
    let mut best: Option<&Judged> = None;
    for a in judged {
        if best.is_none_or(|b| a.0 > b.0) {
            best = Some(a);
        }
    }
    let Some(best) = best else {
        return Vec::new();
    };
    // One answer per lower score, the first sampled, lowest score first.
    let mut levels: Vec<&Judged> = Vec::new();
    for a in judged {
        if a.0 < best.0 && a.1 != best.1 && !levels.iter().any(|l| l.0 == a.0) {
            levels.push(a);
        }
    }
    levels.sort_by(|x, y| x.0.total_cmp(&y.0));
    match pairing {
        Pairing::BestWorst => levels.first().map(|w| vec![(best, *w)]).unwrap_or_default(),
        Pairing::BestVsEachLevel => levels.into_iter().map(|w| (best, w)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u64, split: &str, verdict: Verdict, ended: bool) -> Answer {
        Answer {
            id,
            split: split.into(),
            lang: "en".into(),
            format: if id.is_multiple_of(2) {
                Format::Json
            } else {
                Format::Free
            },
            prompt: String::new(),
            text: String::new(),
            verdict,
            ended,
        }
    }

    #[test]
    fn pairs_of_a_prompts_answers() {
        let j = |s: f64, t: &str| (s, t.to_string());
        let judged = vec![
            j(1.5, "wrong A"),
            j(3.5, "right"),
            j(2.5, "I don't know."),
            j(1.5, "wrong B"),
            j(0.5, "invented"),
        ];
        let texts = |p: Vec<(&Judged, &Judged)>| -> Vec<(String, String)> {
            p.into_iter()
                .map(|(b, w)| (b.1.clone(), w.1.clone()))
                .collect()
        };
        assert_eq!(
            texts(pairs_of(&judged, Pairing::BestWorst)),
            vec![("right".to_string(), "invented".to_string())]
        );
        // Best against each lower score, lowest first; "wrong B" ties "wrong A", the first.
        assert_eq!(
            texts(pairs_of(&judged, Pairing::BestVsEachLevel)),
            vec![
                ("right".to_string(), "invented".to_string()),
                ("right".to_string(), "wrong A".to_string()),
                ("right".to_string(), "I don't know.".to_string()),
            ]
        );
        // All answers tie: no pair.
        assert!(pairs_of(&[j(1.5, "a"), j(1.5, "b")], Pairing::BestVsEachLevel).is_empty());
        assert!(pairs_of(&[], Pairing::BestWorst).is_empty());
    }

    #[test]
    fn rates_and_compliance() {
        let e = summarise(vec![
            answer(0, "frequent", Verdict::Correct, true),
            answer(1, "frequent", Verdict::Wrong, true),
            answer(2, "rare", Verdict::FormatViolation, true),
            answer(3, "unseen", Verdict::Correct, true),
            answer(4, "unseen", Verdict::Hallucinated, false),
            answer(5, "unseen", Verdict::Hallucinated, true),
            answer(6, "arithmetic", Verdict::Correct, true),
        ]);
        // Formatted (even ids): 0 ✓, 2 violation, 4 not ended, 6 ✓.
        assert!((e.format_compliance - 2.0 / 4.0).abs() < 1e-12);
        assert_eq!(e.fact_accuracy["frequent"].correct, 1);
        assert_eq!(e.fact_accuracy["rare"].items, 1);
        // Free-form only: item 1 (wrong) of the frequent ones, none of the rare ones.
        assert_eq!(e.fact_accuracy_free_form["frequent"].items, 1);
        assert_eq!(e.fact_accuracy_free_form["frequent"].correct, 0);
        assert!(!e.fact_accuracy_free_form.contains_key("rare"));
        assert!((e.idk_rate_unseen - 1.0 / 3.0).abs() < 1e-12);
        assert!((e.hallucination_rate_unseen - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.arithmetic.correct, 1);
        assert_eq!(e.verdicts["hallucinated"], 2);
    }
}
