//! The consistency study of a chat model on the synthetic world: for each temperature, the
//! world's questions asked through the chat template as `eval chat` asks them ([`crate::chat`]),
//! `n` answers each, judged by the world ([`fmlab_data::judge`]) and compared by the value
//! they name ([`fmlab_data::world::ValueIndex`]). Measured per temperature: accuracy on
//! seen people and arithmetic, self-agreement of the `n` answers, agreement across the
//! world's paraphrases of a question and across its languages, "I don't know" and
//! hallucination rates on never-seen people, and a SelfCheckGPT-style detector (the
//! disagreement among the samples) scored against the world's truth by AUROC.
//!
//! Definitions (also in `docs/consistency.md`):
//! - two answers *agree* when they name the same value of the relation asked about (in any
//!   language's words), both decline, or (naming no value) read the same once normalised;
//! - *self-agreement* of a question: the share of its `n(n−1)/2` answer pairs that agree;
//! - *paraphrase agreement*: over every fact question, every pair of wordings in one
//!   language (the world's question templates), one answer each (the first sample of the
//!   original wording), the share that agree; *cross-language agreement* the same over
//!   pairs of wordings in two different languages;
//! - the *detector* scores a question by `1 − self-agreement`; a question is *positive*
//!   when its first answer, judged as free text, is wrong or hallucinated.

mod measures;

use std::collections::BTreeMap;

use fmlab_data::world::kb::Kb;
use fmlab_data::world::lang::{Lang, Relation};
use fmlab_data::world::{named_number, paraphrases, Named, ValueIndex};
use fmlab_data::{EvalItem, Format, Verdict, WorldConfig};
use fmlab_nn::Transformer;
use fmlab_sample::{Sampler, SamplerConfig};
use fmlab_tokenizer::{ChatTemplate, Tokenizer};
use rayon::prelude::*;
use serde::Serialize;

pub use measures::{auroc, cross_pairs, modal, pairwise_agreement, roc_curve, RocPoint};

use crate::chat::{answer, answers_n, prompt_ids, select};
use crate::world::Score;
use crate::{Error, Result};

/// The splits of a world's `eval.jsonl`.
pub const SPLITS: [&str; 4] = ["frequent", "rare", "unseen", "arithmetic"];

/// What each measure of a row means (`report.json` carries them).
pub const DEFINITIONS: [(&str, &str); 8] = [
    ("agree", "two answers agree when they name the same value of the relation asked about (in any language's words; the first value an answer states), both decline (\"I don't know\" as the judge reads it), or, naming no value, read the same once normalised; arithmetic answers by the last number stated"),
    ("accuracy", "share of all sampled answers (n per question) the world's judge finds correct, per split; accuracy_seen pools frequent and rare"),
    ("self_agreement", "per question, the share of the n(n-1)/2 pairs of its n answers that agree; the mean over questions (modal_share: the most common answer's share, mean over questions)"),
    ("paraphrase_agreement", "over fact questions, every pair of the world's wordings of the question in one language (its question templates), one answer each (the original wording's first sample), pooled: the share of pairs that agree"),
    ("cross_language_agreement", "the same over pairs of wordings in two different languages of the world"),
    ("idk_rate_unseen", "share of sampled answers about never-seen people that decline (the right answer)"),
    ("hallucination_rate_unseen", "share of sampled answers about never-seen people that state something instead"),
    ("detector", "each question scored by 1 - self_agreement (disagreement among its samples, SelfCheckGPT's signal); positive when its first answer, judged as free text, is wrong or hallucinated; AUROC is the Mann-Whitney statistic (ties count half), roc the curve from (0,0) to (1,1)"),
];

/// The settings of a consistency study.
#[derive(Debug, Clone)]
pub struct ConsistencyConfig {
    /// At least two, each finite and ≥ 0.
    pub temperatures: Vec<f32>,
    /// Answers per question and temperature: at least 2.
    pub samples: usize,
    /// Questions per split at most, in file order (lists of three facts are skipped).
    pub per_split: usize,
    /// Tokens an answer may take.
    pub max_new_tokens: usize,
    /// The sampler chain; its temperature is replaced by each of `temperatures`.
    pub sampler: SamplerConfig,
    /// Question `q` draws from the sampler streams of seed `seed + q`.
    pub seed: u64,
}

/// What the study knows of the world: its knowledge base, rebuilt from the manifest's
/// configuration, the languages it asks in, and the value index answers are keyed by.
pub struct WorldFacts {
    pub kb: Kb,
    /// The configuration's languages with a share, in its order.
    pub languages: Vec<Lang>,
    values: ValueIndex,
}

impl WorldFacts {
    pub fn new(config: &WorldConfig) -> Self {
        let kb = Kb::generate(config.seed, config.people(), config.held_out);
        let values = ValueIndex::new(&kb);
        Self {
            languages: config
                .languages
                .iter()
                .filter(|(_, s)| *s > 0.0)
                .map(|(l, _)| *l)
                .collect(),
            kb,
            values,
        }
    }
}

/// One wording of a question: the item asked in `lang` with question template `template`.
#[derive(Debug, Clone)]
pub struct Wording {
    pub lang: Lang,
    pub template: usize,
    pub item: EvalItem,
}

/// A question of the study: an eval item and, for a fact, every wording of it.
#[derive(Debug, Clone)]
pub struct Question {
    pub item: EvalItem,
    /// Every language's every template (facts; empty for arithmetic).
    pub wordings: Vec<Wording>,
    /// Which of `wordings` is the item's own.
    pub original: usize,
}

/// The questions of a study: `per_split` at most per split, in file order, lists of three
/// facts left out; each fact with every wording the world has for it. Refuses items that
/// are not a world's eval items, and a world that does not know their subjects.
pub fn questions(
    items: &[EvalItem],
    world: &WorldFacts,
    per_split: usize,
) -> Result<Vec<Question>> {
    if let Some(bad) = items.iter().find(|i| !SPLITS.contains(&i.split.as_str())) {
        return Err(Error::Config(format!(
            "item {}: split {:?} is not one of eval.jsonl's ({}): give a world's eval.jsonl",
            bad.id,
            bad.split,
            SPLITS.join(", ")
        )));
    }
    let usable: Vec<EvalItem> = items
        .iter()
        .filter(|i| i.kind == "arithmetic" || i.relation.is_some())
        .cloned()
        .collect();
    let mut out = Vec::new();
    for item in select(&usable, per_split) {
        let (Some(rel), Some(subject)) = (item.relation, item.subject.as_deref()) else {
            out.push(Question {
                item: item.clone(),
                wordings: Vec::new(),
                original: 0,
            });
            continue;
        };
        let person = world.kb.person_named(subject).ok_or_else(|| {
            Error::Config(format!(
                "item {}: {subject} is not in the world the manifest describes: eval.jsonl and manifest.json are from different worlds",
                item.id
            ))
        })?;
        let mut wordings = Vec::new();
        for &lang in &world.languages {
            let asked = paraphrases(
                &world.kb,
                person,
                rel,
                lang,
                item.format,
                &item.split,
                item.id,
            );
            wordings.extend(
                asked
                    .into_iter()
                    .enumerate()
                    .map(|(template, item)| Wording {
                        lang,
                        template,
                        item,
                    }),
            );
        }
        let original = wordings
            .iter()
            .position(|w| w.lang == item.lang && w.item.prompt == item.prompt)
            .ok_or_else(|| {
                Error::Config(format!(
                    "item {}: its question {:?} is none of the world's wordings: eval.jsonl and manifest.json are from different worlds",
                    item.id, item.prompt
                ))
            })?;
        out.push(Question {
            item: item.clone(),
            wordings,
            original,
        });
    }
    if out.is_empty() {
        return Err(Error::Config(
            "no fact or arithmetic questions among the items".into(),
        ));
    }
    Ok(out)
}

/// One sampled answer.
#[derive(Debug, Clone, Serialize)]
pub struct Sampled {
    pub text: String,
    pub verdict: Verdict,
    pub named: Named,
}

/// The answer to one other wording of a question.
#[derive(Debug, Clone, Serialize)]
pub struct WordingAnswer {
    pub lang: Lang,
    pub template: usize,
    pub text: String,
    pub named: Named,
}

/// One question at one temperature.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionResult {
    pub id: u64,
    pub split: String,
    pub lang: Lang,
    pub relation: Option<Relation>,
    pub prompt: String,
    pub samples: Vec<Sampled>,
    /// Every wording's answer, the original's being the first sample.
    pub wordings: Vec<WordingAnswer>,
    pub self_agreement: f64,
    /// The most common value named and its share of the samples.
    pub modal: Named,
    pub modal_share: f64,
    /// The detector's score: 1 − self-agreement.
    pub disagreement: f64,
    /// The first answer, judged as free text, is wrong or hallucinated.
    pub first_wrong: bool,
}

/// The SelfCheckGPT-style detector at one temperature.
#[derive(Debug, Clone, Serialize)]
pub struct Detector {
    /// Questions whose first answer is wrong or hallucinated.
    pub positives: usize,
    pub negatives: usize,
    /// `None` without positives or negatives.
    pub auroc: Option<f64>,
    /// The same within each split (whether disagreement separates wrong answers from
    /// right ones and refusals about the same kind of question).
    pub auroc_by_split: BTreeMap<String, Option<f64>>,
    pub roc: Vec<RocPoint>,
}

/// One temperature's measures.
#[derive(Debug, Clone, Serialize)]
pub struct TemperatureRow {
    pub temperature: f32,
    /// Share of sampled answers judged correct, per split ("frequent", "rare",
    /// "arithmetic").
    pub accuracy: BTreeMap<String, Score>,
    /// The same over both splits of seen people.
    pub accuracy_seen: Score,
    /// Mean over questions of the share of agreeing answer pairs.
    pub self_agreement: f64,
    /// Mean over questions of the modal answer's share.
    pub modal_share: f64,
    /// Share of agreeing pairs of same-language wordings; `None` without such pairs.
    pub paraphrase_agreement: Option<f64>,
    pub paraphrase_pairs: usize,
    /// Share of agreeing pairs of wordings in two languages; `None` without such pairs.
    pub cross_language_agreement: Option<f64>,
    pub cross_language_pairs: usize,
    /// Over every sampled answer about never-seen people: share declining, share naming
    /// something (hallucinated); `None` without such questions.
    pub idk_rate_unseen: Option<f64>,
    pub hallucination_rate_unseen: Option<f64>,
    pub unseen_answers: usize,
    pub detector: Detector,
    pub questions: Vec<QuestionResult>,
}

/// Progress: answers drawn so far at a temperature, of how many.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub temperature: f32,
    pub done: usize,
    pub total: usize,
}

/// Checks a study's settings, naming the flag at fault.
pub fn check(config: &ConsistencyConfig) -> Result<()> {
    crate::sampling_study::check_temperatures(&config.temperatures)?;
    if config.samples < 2 {
        return Err(Error::Config(format!(
            "-n/--samples {}: self-agreement compares answers; give at least 2",
            config.samples
        )));
    }
    if config.per_split == 0 {
        return Err(Error::Config("--per-split: at least 1".into()));
    }
    if config.max_new_tokens == 0 {
        return Err(Error::Config("--max-tokens: at least 1".into()));
    }
    Ok(())
}

/// Runs the study: every question at every temperature. `on_progress` hears (from any
/// thread) after each question.
pub fn consistency_study(
    model: &Transformer,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    world: &WorldFacts,
    questions: &[Question],
    config: &ConsistencyConfig,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<TemperatureRow>> {
    check(config)?;
    let total: usize = questions
        .iter()
        .map(|q| config.samples + q.wordings.len().saturating_sub(1))
        .sum();
    let mut rows = Vec::new();
    for &t in &config.temperatures {
        let done = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<QuestionResult>> = questions
            .par_iter()
            .enumerate()
            .map(|(q, question)| {
                let sampler = SamplerConfig {
                    temperature: t,
                    seed: config.seed.wrapping_add(q as u64),
                    ..config.sampler.clone()
                };
                let r = ask(
                    model, tokenizer, template, world, question, &sampler, config,
                );
                let n = config.samples + question.wordings.len().saturating_sub(1);
                let done = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                on_progress(Progress {
                    temperature: t,
                    done,
                    total,
                });
                r
            })
            .collect();
        let results = results.into_iter().collect::<Result<Vec<_>>>()?;
        rows.push(summarise(t, results));
    }
    Ok(rows)
}

/// What an answer to `item` names.
fn named(world: &WorldFacts, item: &EvalItem, text: &str) -> Named {
    match item.relation {
        Some(rel) => world.values.named(rel, item.subject.as_deref(), text),
        None => named_number(text),
    }
}

/// One question at one sampler setting: `n` answers to its own wording, one to each other.
fn ask(
    model: &Transformer,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    world: &WorldFacts,
    question: &Question,
    sampler: &SamplerConfig,
    config: &ConsistencyConfig,
) -> Result<QuestionResult> {
    let item = &question.item;
    let ids = prompt_ids(item, template, tokenizer)?;
    let texts = answers_n(
        model,
        tokenizer,
        &ids,
        config.max_new_tokens,
        sampler,
        config.samples,
    )?;
    let samples: Vec<Sampled> = texts
        .into_iter()
        .map(|(text, _)| Sampled {
            verdict: fmlab_data::judge(item, &text),
            named: named(world, item, &text),
            text,
        })
        .collect();
    let mut wordings = Vec::new();
    for (w, wording) in question.wordings.iter().enumerate() {
        let text = if w == question.original {
            samples[0].text.clone()
        } else {
            let ids = prompt_ids(&wording.item, template, tokenizer)?;
            let stream = (config.samples + w) as u64;
            let s = Sampler::for_sequence(sampler.clone(), stream)?;
            answer(model, tokenizer, &ids, config.max_new_tokens, Some(s))?.0
        };
        wordings.push(WordingAnswer {
            lang: wording.lang,
            template: wording.template,
            named: named(world, &wording.item, &text),
            text,
        });
    }
    let keys: Vec<Named> = samples.iter().map(|s| s.named.clone()).collect();
    let self_agreement = pairwise_agreement(&keys).unwrap_or(1.0);
    let (modal_key, modal_share) = modal(&keys).unwrap_or((Named::Refusal, 0.0));
    let free = EvalItem {
        format: Format::Free,
        ..item.clone()
    };
    let first = fmlab_data::judge(&free, &samples[0].text);
    Ok(QuestionResult {
        id: item.id,
        split: item.split.clone(),
        lang: item.lang,
        relation: item.relation,
        prompt: item.prompt.clone(),
        samples,
        wordings,
        self_agreement,
        modal: modal_key,
        modal_share,
        disagreement: 1.0 - self_agreement,
        first_wrong: matches!(first, Verdict::Wrong | Verdict::Hallucinated),
    })
}

/// One temperature's row from its questions' results.
fn summarise(temperature: f32, questions: Vec<QuestionResult>) -> TemperatureRow {
    let mut accuracy: BTreeMap<String, Score> = BTreeMap::new();
    let mut seen = Score::default();
    let (mut unseen, mut idk, mut invented) = (0usize, 0usize, 0usize);
    let (mut para, mut para_pairs, mut cross, mut cross_pairs_n) = (0, 0, 0, 0);
    for q in &questions {
        for s in &q.samples {
            let ok = s.verdict == Verdict::Correct;
            match q.split.as_str() {
                "unseen" => {
                    unseen += 1;
                    idk += ok as usize;
                    invented += (s.verdict == Verdict::Hallucinated) as usize;
                }
                split => {
                    accuracy.entry(split.to_string()).or_default().add(ok);
                    if split != "arithmetic" {
                        seen.add(ok);
                    }
                }
            }
        }
        for (i, a) in q.wordings.iter().enumerate() {
            for b in &q.wordings[i + 1..] {
                let agree = (a.named == b.named) as usize;
                if a.lang == b.lang {
                    para += agree;
                    para_pairs += 1;
                } else {
                    cross += agree;
                    cross_pairs_n += 1;
                }
            }
        }
    }
    let share = |k: usize, n: usize| (n > 0).then(|| k as f64 / n as f64);
    let mean = |f: fn(&QuestionResult) -> f64| {
        questions.iter().map(f).sum::<f64>() / questions.len().max(1) as f64
    };
    let scored: Vec<(f64, bool)> = questions
        .iter()
        .map(|q| (q.disagreement, q.first_wrong))
        .collect();
    let positives = scored.iter().filter(|s| s.1).count();
    let mut by_split: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
    for (q, s) in questions.iter().zip(&scored) {
        by_split.entry(q.split.clone()).or_default().push(*s);
    }
    TemperatureRow {
        temperature,
        accuracy,
        accuracy_seen: seen,
        self_agreement: mean(|q| q.self_agreement),
        modal_share: mean(|q| q.modal_share),
        paraphrase_agreement: share(para, para_pairs),
        paraphrase_pairs: para_pairs,
        cross_language_agreement: share(cross, cross_pairs_n),
        cross_language_pairs: cross_pairs_n,
        idk_rate_unseen: share(idk, unseen),
        hallucination_rate_unseen: share(invented, unseen),
        unseen_answers: unseen,
        detector: Detector {
            positives,
            negatives: scored.len() - positives,
            auroc: auroc(&scored),
            auroc_by_split: by_split
                .iter()
                .map(|(k, v)| (k.clone(), auroc(v)))
                .collect(),
            roc: roc_curve(&scored),
        },
        questions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(verdict: Verdict, key: &str) -> Sampled {
        Sampled {
            text: key.into(),
            verdict,
            named: if key == "idk" {
                Named::Refusal
            } else {
                Named::Value(key.into())
            },
        }
    }

    fn wording(lang: Lang, template: usize, key: &str) -> WordingAnswer {
        WordingAnswer {
            lang,
            template,
            text: key.into(),
            named: Named::Value(key.into()),
        }
    }

    fn result(
        split: &str,
        samples: Vec<Sampled>,
        wordings: Vec<WordingAnswer>,
        wrong: bool,
    ) -> QuestionResult {
        let keys: Vec<Named> = samples.iter().map(|s| s.named.clone()).collect();
        let a = pairwise_agreement(&keys).unwrap();
        QuestionResult {
            id: 0,
            split: split.into(),
            lang: Lang::En,
            relation: Some(Relation::HomeTown),
            prompt: String::new(),
            samples,
            wordings,
            self_agreement: a,
            modal: Named::Refusal,
            modal_share: 0.0,
            disagreement: 1.0 - a,
            first_wrong: wrong,
        }
    }

    #[test]
    fn a_row_from_judged_answers() {
        use Verdict::*;
        let row = summarise(
            1.0,
            vec![
                // Seen, all agree and right; wordings: en 2 templates agree, fr disagrees.
                result(
                    "frequent",
                    vec![sampled(Correct, "a"), sampled(Correct, "a")],
                    vec![
                        wording(Lang::En, 0, "a"),
                        wording(Lang::En, 1, "a"),
                        wording(Lang::Fr, 0, "b"),
                        wording(Lang::Fr, 1, "b"),
                    ],
                    false,
                ),
                // Seen, split answers, first one wrong.
                result(
                    "rare",
                    vec![sampled(Wrong, "x"), sampled(Correct, "a")],
                    vec![],
                    true,
                ),
                // Unseen: one refusal, one invention.
                result(
                    "unseen",
                    vec![sampled(Correct, "idk"), sampled(Hallucinated, "y")],
                    vec![],
                    false,
                ),
            ],
        );
        assert_eq!(row.accuracy["frequent"].correct, 2);
        assert_eq!(row.accuracy["rare"].items, 2);
        assert!((row.accuracy_seen.accuracy - 0.75).abs() < 1e-12);
        assert!((row.self_agreement - 1.0 / 3.0).abs() < 1e-12);
        // Same language: en0–en1 agree, fr0–fr1 agree; across: 4 pairs, none agree.
        assert_eq!(row.paraphrase_agreement, Some(1.0));
        assert_eq!(row.paraphrase_pairs, 2);
        assert_eq!(row.cross_language_agreement, Some(0.0));
        assert_eq!(row.cross_language_pairs, 4);
        assert_eq!(row.idk_rate_unseen, Some(0.5));
        assert_eq!(row.hallucination_rate_unseen, Some(0.5));
        // Detector: the wrong question has disagreement 1, the others 0 and 1 — one tie.
        assert_eq!((row.detector.positives, row.detector.negatives), (1, 2));
        assert_eq!(row.detector.auroc, Some(0.75));
        // Within a split: one question each, so nothing to separate.
        assert_eq!(row.detector.auroc_by_split["rare"], None);
        assert_eq!(row.detector.auroc_by_split.len(), 3);
    }
}
