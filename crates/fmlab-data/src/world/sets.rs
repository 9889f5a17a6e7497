//! The sets a world derives from its knowledge base once the corpus is written (and so
//! who it mentions is known): `kb.jsonl`, `eval.jsonl`, `sft.jsonl`, `preferences.jsonl`,
//! `prompts.jsonl` and `parallel.jsonl`. Each file's content is one method of [`Sets`]
//! that writes its lines and returns how many; [`super::write_world`] opens and closes the
//! files. SFT, preference and prompt lines are drawn by one loop ([`Sets::draw_lines`]).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::config::{WorldConfig, FREQUENT_MENTIONS};
use super::docs::{self, Slots};
use super::kb::{Kb, Person};
use super::lang::{self, Lang, Relation};
use super::records::{Conversation, Preference, Turn};
use super::records::{EvalItem, Format};
use crate::io::AtomicFile;
use crate::rng::{pick_weighted, Rng};
use crate::Result;

#[derive(Debug, Clone, Serialize)]
struct Fact<'a> {
    subject: &'a str,
    subject_id: u32,
    relation: &'static str,
    values: BTreeMap<&'static str, String>,
    mentions: u32,
    split: &'static str,
}

/// What one draw of [`Sets::draw_lines`] gave.
enum Draw<T> {
    /// A line to write.
    Made(T),
    /// Nothing this time (a draw that hit an eval question or a never-named person).
    Retry,
    /// Nothing left to draw.
    Stop,
}

/// What the derived sets depend on: the world's configuration, its knowledge base and how
/// often the corpus mentions each person.
pub(super) struct Sets<'a> {
    config: &'a WorldConfig,
    kb: &'a Kb,
    /// People who may appear in training data, most mentioned first.
    seen: &'a [u32],
    mentions: Vec<u32>,
    /// Half of the held-out people: the "unknown" people of SFT and preference data (named
    /// in questions, never with a fact). The other half, with everyone the corpus happened
    /// never to name, are the eval's never-seen people.
    unknown_for_training: HashSet<u32>,
    /// The same people, in id order.
    unknown: Vec<u32>,
    /// Seen people the corpus names at least once.
    trained: Vec<u32>,
    /// Conversations, preference pairs and eval items to aim for.
    n_sets: usize,
}

impl<'a> Sets<'a> {
    pub(super) fn new(
        config: &'a WorldConfig,
        kb: &'a Kb,
        seen: &'a [u32],
        mentions: Vec<u32>,
    ) -> Self {
        let held: Vec<u32> = kb
            .people
            .iter()
            .filter(|p| p.held_out)
            .map(|p| p.id)
            .collect();
        let unknown_for_training: HashSet<u32> = held.iter().copied().step_by(2).collect();
        let unknown: Vec<u32> = held
            .iter()
            .copied()
            .filter(|id| unknown_for_training.contains(id))
            .collect();
        let trained: Vec<u32> = seen
            .iter()
            .copied()
            .filter(|&id| mentions[id as usize] > 0)
            .collect();
        Self {
            config,
            kb,
            seen,
            mentions,
            unknown_for_training,
            unknown,
            trained,
            n_sets: config.set_size(),
        }
    }

    fn split_of(&self, p: &Person) -> &'static str {
        if self.unknown_for_training.contains(&p.id) {
            return "unknown";
        }
        match self.mentions[p.id as usize] {
            0 => "unseen",
            m if m >= FREQUENT_MENTIONS => "frequent",
            _ => "rare",
        }
    }

    /// The split of a person the corpus names (for training prompts).
    fn split_named(&self, p: &Person) -> &'static str {
        match self.mentions[p.id as usize] {
            m if m >= FREQUENT_MENTIONS => "frequent",
            _ => "rare",
        }
    }

    fn person(&self, id: u32) -> &'a Person {
        &self.kb.people[id as usize]
    }

    fn trained_person(&self, rng: &mut Rng) -> &'a Person {
        self.person(self.trained[rng.below(self.trained.len())])
    }

    fn names_unmentioned(&self, p: &Person, rel: Relation) -> bool {
        names_unmentioned(self.kb, p, rel, &self.mentions)
    }

    fn unasked(
        &self,
        asked: &HashSet<(u32, Relation)>,
        rng: &mut Rng,
    ) -> Option<(&'a Person, Relation)> {
        unasked(self.kb, &self.trained, asked, &self.mentions, rng)
    }

    /// `kb.jsonl`: every fact of every person.
    pub(super) fn facts(&self, out: &mut AtomicFile) -> Result<u64> {
        let kb = self.kb;
        let mut n = 0u64;
        for p in &kb.people {
            for rel in Relation::ALL {
                let values = Lang::ALL
                    .iter()
                    .map(|&l| (l.code(), kb.answer(p, rel, l)))
                    .collect();
                let fact = Fact {
                    subject: &p.name,
                    subject_id: p.id,
                    relation: rel.name(),
                    values,
                    mentions: self.mentions[p.id as usize],
                    split: self.split_of(p),
                };
                out.write_json_line(&fact)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `eval.jsonl`, written first so that SFT and preferences never ask the same question:
    /// the (person, relation) pairs it asks about go into `asked`.
    pub(super) fn eval(
        &self,
        out: &mut AtomicFile,
        asked: &mut HashSet<(u32, Relation)>,
    ) -> Result<u64> {
        let kb = self.kb;
        let n_sets = self.n_sets;
        let mut rng = Rng::stream(self.config.seed, "eval");
        let groups: Vec<(&str, Vec<u32>)> = ["frequent", "rare", "unseen"]
            .iter()
            .map(|&s| {
                (
                    s,
                    kb.people
                        .iter()
                        .filter(|p| self.split_of(p) == s)
                        .map(|p| p.id)
                        .collect(),
                )
            })
            .collect();
        let langs: Vec<Lang> = self
            .config
            .languages
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(l, _)| *l)
            .collect();
        let mut eval_id = 0u64;
        for (split, ids) in &groups {
            if ids.is_empty() {
                continue;
            }
            for &lang in &langs {
                let per = (n_sets / (groups.len() * langs.len())).max(20);
                for k in 0..per {
                    let p = &kb.people[*rng.pick(ids) as usize];
                    let rel = Relation::ALL[k % Relation::ALL.len()];
                    asked.insert((p.id, rel));
                    let format = match k % 5 {
                        3 if rel.one_word() => Format::OneWord,
                        4 => Format::Json,
                        _ => Format::Free,
                    };
                    let item = fact_item(kb, p, rel, lang, format, split, eval_id, &mut rng);
                    out.write_json_line(&item)?;
                    eval_id += 1;
                }
                // A list of three facts, for seen people.
                if *split != "unseen" {
                    for _ in 0..(per / 8).max(2) {
                        let p = &kb.people[*rng.pick(ids) as usize];
                        let item = list_item(kb, p, lang, split, eval_id);
                        out.write_json_line(&item)?;
                        eval_id += 1;
                    }
                }
            }
        }
        // Arithmetic, per language.
        for &lang in &langs {
            for _ in 0..(n_sets / (8 * langs.len())).max(10) {
                let p = &kb.people[self.seen[rng.below(self.seen.len())] as usize];
                let item = arithmetic_item(p, lang, eval_id, &mut rng);
                out.write_json_line(&item)?;
                eval_id += 1;
            }
        }
        Ok(eval_id)
    }

    /// Up to `target` lines drawn by `draw` (given the random stream `stream` and the next
    /// line's id) until it stops; a bound on draws keeps a tiny world from looking forever.
    fn draw_lines<T: Serialize>(
        &self,
        out: &mut AtomicFile,
        stream: &str,
        target: usize,
        mut draw: impl FnMut(&mut Rng, u64) -> Draw<T>,
    ) -> Result<u64> {
        let mut rng = Rng::stream(self.config.seed, stream);
        let mut n = 0u64;
        let mut draws = 0usize;
        while (n as usize) < target && !self.trained.is_empty() && draws < 8 * self.n_sets + 1000 {
            draws += 1;
            match draw(&mut rng, n) {
                Draw::Made(line) => {
                    out.write_json_line(&line)?;
                    n += 1;
                }
                Draw::Retry => {}
                Draw::Stop => break,
            }
        }
        Ok(n)
    }

    /// `sft.jsonl`: conversations that never ask an eval question.
    pub(super) fn sft(
        &self,
        out: &mut AtomicFile,
        asked: &HashSet<(u32, Relation)>,
    ) -> Result<u64> {
        self.draw_lines(out, "sft", self.n_sets, |rng, id| {
            let lang = pick_weighted(&self.config.languages, rng);
            let kind = rng.below(10);
            let (kind_name, messages) = match kind {
                0 if !self.unknown.is_empty() => ("unknown", self.sft_unknown(rng, lang)),
                9 => ("format_list", self.sft_list(rng, lang)),
                1 => ("arithmetic", self.sft_arithmetic(rng, lang)),
                _ => match self.sft_fact(rng, lang, kind, asked) {
                    Some(made) => made,
                    None => return Draw::Stop,
                },
            };
            Draw::Made(Conversation {
                id,
                kind: kind_name.into(),
                lang,
                messages,
            })
        })
    }

    /// An unknown person: the honest answer, in the format asked for (eval asks about
    /// never-seen people in every format).
    fn sft_unknown(&self, rng: &mut Rng, lang: Lang) -> Vec<Turn> {
        let p = self.person(*rng.pick(&self.unknown));
        let rel = *rng.pick(&Relation::ALL);
        let format = unknown_format(rel, rng);
        let item = fact_item(self.kb, p, rel, lang, format, "unknown", 0, rng);
        let answer = match format {
            Format::Json => {
                serde_json::json!({"name": p.name, "answer": lang.refusal()}).to_string()
            }
            _ => lang.refusal().into(),
        };
        vec![
            Turn::new("user", item.prompt),
            Turn::new("assistant", answer),
        ]
    }

    /// A list of three facts about one person, one per line.
    fn sft_list(&self, rng: &mut Rng, lang: Lang) -> Vec<Turn> {
        let p = self.trained_person(rng);
        let mut q = String::new();
        lang::fill(&mut q, lang.lex().list_three, &[("name", &p.name)]);
        let mut rels: Vec<Relation> = Relation::ALL
            .iter()
            .copied()
            .filter(|&r| !self.names_unmentioned(p, r))
            .collect();
        rng.shuffle(&mut rels);
        let slots = Slots::person(self.kb, p, lang);
        let mut a = String::new();
        for (i, &rel) in rels.iter().take(3).enumerate() {
            if i > 0 {
                a.push('\n');
            }
            a.push_str("- ");
            docs::fact_sentence(&mut a, &slots, lang, rel, rng);
        }
        vec![Turn::new("user", q), Turn::new("assistant", a)]
    }

    fn sft_arithmetic(&self, rng: &mut Rng, lang: Lang) -> Vec<Turn> {
        let p = self.trained_person(rng);
        let mut q = String::new();
        let answer = docs::arithmetic_problem(&mut q, p, lang, rng);
        vec![
            Turn::new("user", q),
            Turn::new("assistant", answer.to_string()),
        ]
    }

    /// A question about a fact eval does not ask, sometimes with a follow-up about the same
    /// person; `None` when no such fact was found.
    fn sft_fact(
        &self,
        rng: &mut Rng,
        lang: Lang,
        kind: usize,
        asked: &HashSet<(u32, Relation)>,
    ) -> Option<(&'static str, Vec<Turn>)> {
        let kb = self.kb;
        let (p, rel) = self.unasked(asked, rng)?;
        let format = match kind {
            2 | 3 if rel.one_word() => Format::OneWord,
            4 => Format::Json,
            _ => Format::Free,
        };
        let item = fact_item(kb, p, rel, lang, format, "train", 0, rng);
        let mut messages = vec![
            Turn::new("user", item.prompt.clone()),
            Turn::new("assistant", good_answer(kb, p, rel, lang, format, rng)),
        ];
        // A follow-up about the same person, sometimes.
        if rng.chance(0.3) {
            if let Some(rel2) = Relation::ALL
                .iter()
                .copied()
                .find(|&r| r != rel && !asked.contains(&(p.id, r)) && !self.names_unmentioned(p, r))
            {
                let mut q = String::new();
                docs::question(&mut q, &Slots::person(kb, p, lang), lang, rel2, rng);
                messages.push(Turn::new("user", q));
                messages.push(Turn::new(
                    "assistant",
                    good_answer(kb, p, rel2, lang, Format::Free, rng),
                ));
            }
        }
        let kind_name = match format {
            Format::OneWord => "format_one_word",
            Format::Json => "format_json",
            _ => "fact",
        };
        Some((kind_name, messages))
    }

    /// `preferences.jsonl`: pairs of a better and a worse answer.
    pub(super) fn preferences(
        &self,
        out: &mut AtomicFile,
        asked: &HashSet<(u32, Relation)>,
    ) -> Result<u64> {
        self.draw_lines(out, "preferences", self.n_sets, |rng, id| {
            let lang = pick_weighted(&self.config.languages, rng);
            let kind = rng.below(4);
            if kind == 0 && !self.unknown.is_empty() {
                self.unknown_preference(rng, lang, id)
            } else {
                self.fact_preference(rng, lang, kind, asked, id)
            }
        })
    }

    /// A question about an unknown person: "I don't know" is better than a fact of someone
    /// else stated about them.
    fn unknown_preference(&self, rng: &mut Rng, lang: Lang, id: u64) -> Draw<Preference> {
        let kb = self.kb;
        let p = self.person(*rng.pick(&self.unknown));
        let rel = *rng.pick(&Relation::ALL);
        let mut q = String::new();
        docs::question(&mut q, &Slots::person(kb, p, lang), lang, rel, rng);
        let other = self.trained_person(rng);
        if self.names_unmentioned(other, rel) {
            return Draw::Retry;
        }
        let mut invented = String::new();
        docs::fact_sentence(
            &mut invented,
            &Slots::person(kb, other, lang).with("name", p.name.clone()),
            lang,
            rel,
            rng,
        );
        Draw::Made(Preference {
            id,
            kind: "unknown".into(),
            lang,
            prompt: vec![Turn::new("user", q)],
            chosen: lang.refusal().into(),
            rejected: invented,
            rejected_kind: "hallucinated".into(),
        })
    }

    /// A question about a fact eval does not ask: the right answer is better than a
    /// sentence where one word was asked for (kind 1), a padded answer (kind 2) or the same
    /// fact of someone else.
    fn fact_preference(
        &self,
        rng: &mut Rng,
        lang: Lang,
        kind: usize,
        asked: &HashSet<(u32, Relation)>,
        id: u64,
    ) -> Draw<Preference> {
        let kb = self.kb;
        let Some((p, rel)) = self.unasked(asked, rng) else {
            return Draw::Stop;
        };
        let format = if kind == 1 && rel.one_word() {
            Format::OneWord
        } else {
            Format::Free
        };
        let item = fact_item(kb, p, rel, lang, format, "train", 0, rng);
        let chosen = good_answer(kb, p, rel, lang, format, rng);
        let (rejected, rejected_kind) = match (kind, format) {
            (1, Format::OneWord) => {
                let mut s = String::new();
                docs::fact_sentence(&mut s, &Slots::person(kb, p, lang), lang, rel, rng);
                (s, "format")
            }
            (2, _) => {
                let mut s = lang.lex().filler.to_string();
                s.push(' ');
                s.push_str(&chosen);
                (s, "verbose")
            }
            _ => match self.wrong_answer(rng, p, rel, lang) {
                Some(s) => (s, "wrong"),
                None => return Draw::Retry,
            },
        };
        Draw::Made(Preference {
            id,
            kind: "fact".into(),
            lang,
            prompt: vec![Turn::new("user", item.prompt)],
            chosen,
            rejected,
            rejected_kind: rejected_kind.into(),
        })
    }

    /// The same fact of another person, stated about `p`: a plausible, wrong answer
    /// (`None` when it happens to be right, or names someone the corpus never mentions).
    fn wrong_answer(&self, rng: &mut Rng, p: &Person, rel: Relation, lang: Lang) -> Option<String> {
        let kb = self.kb;
        let other = self.trained_person(rng);
        let wrong = kb.answer(other, rel, lang);
        if kb.answers(p, rel, lang).contains(&wrong) || self.names_unmentioned(other, rel) {
            return None;
        }
        let mut s = String::new();
        let slots = Slots::person(kb, p, lang);
        let slots = match rel {
            Relation::BirthYear => slots.with("year", wrong),
            Relation::HomeTown => slots.with("town", wrong),
            Relation::Employer => slots.with("org", wrong),
            Relation::PetName => slots.with("petname", wrong),
            Relation::Sibling => slots.with("sib", wrong),
            _ => Slots::person(kb, other, lang).with("name", p.name.clone()),
        };
        docs::fact_sentence(&mut s, &slots, lang, rel, rng);
        Some(s)
    }

    /// `prompts.jsonl`: judge-able training questions (eval items' format, never eval's
    /// questions) for on-policy preference data: sample answers, judge them, pair them.
    pub(super) fn prompts(
        &self,
        out: &mut AtomicFile,
        asked: &HashSet<(u32, Relation)>,
    ) -> Result<u64> {
        let kb = self.kb;
        self.draw_lines(out, "prompts", self.n_sets / 2, |rng, id| {
            let lang = pick_weighted(&self.config.languages, rng);
            let kind = rng.below(10);
            Draw::Made(if kind == 0 && !self.unknown.is_empty() {
                let p = self.person(*rng.pick(&self.unknown));
                let rel = *rng.pick(&Relation::ALL);
                let format = unknown_format(rel, rng);
                fact_item(kb, p, rel, lang, format, "unknown", id, rng)
            } else if kind == 1 {
                let p = self.trained_person(rng);
                arithmetic_item(p, lang, id, rng)
            } else {
                let Some((p, rel)) = self.unasked(asked, rng) else {
                    return Draw::Stop;
                };
                let format = match kind {
                    2 | 3 if rel.one_word() => Format::OneWord,
                    4 => Format::Json,
                    _ => Format::Free,
                };
                fact_item(kb, p, rel, lang, format, self.split_named(p), id, rng)
            })
        })
    }

    /// `parallel.jsonl`: the same facts in every language (template 0 of each).
    pub(super) fn parallel(&self, out: &mut AtomicFile) -> Result<u64> {
        let mut n = 0u64;
        for &id in self.trained.iter().take(400) {
            let p = self.person(id);
            for rel in Relation::ALL {
                if self.names_unmentioned(p, rel) {
                    continue;
                }
                let mut line = BTreeMap::new();
                for lang in Lang::ALL {
                    let mut s = String::new();
                    Slots::person(self.kb, p, lang).fill(&mut s, lang.lex().facts[rel as usize][0]);
                    line.insert(lang.code(), s);
                }
                out.write_json_line(&line)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A seen person and a relation not used by eval (so training never asks an eval question).
fn unasked<'k>(
    kb: &'k Kb,
    trained: &[u32],
    asked: &HashSet<(u32, Relation)>,
    mentions: &[u32],
    rng: &mut Rng,
) -> Option<(&'k Person, Relation)> {
    for _ in 0..64 {
        let p = &kb.people[trained[rng.below(trained.len())] as usize];
        let rel = *rng.pick(&Relation::ALL);
        if !asked.contains(&(p.id, rel)) && !names_unmentioned(kb, p, rel, mentions) {
            return Some((p, rel));
        }
    }
    None
}

/// Whether stating `p`'s `rel` would name someone the corpus never mentions (a sibling):
/// training data must not, or that person would not be never-seen any more.
fn names_unmentioned(kb: &Kb, p: &Person, rel: Relation, mentions: &[u32]) -> bool {
    rel == Relation::Sibling && mentions[kb.people[p.sibling as usize].id as usize] == 0
}

/// An arithmetic word problem about `p` with its answer.
fn arithmetic_item(p: &Person, lang: Lang, id: u64, rng: &mut Rng) -> EvalItem {
    let mut q = String::new();
    let answer = docs::arithmetic_problem(&mut q, p, lang, rng);
    EvalItem {
        id,
        kind: "arithmetic".into(),
        lang,
        split: "arithmetic".into(),
        relation: None,
        subject: None,
        prompt: q,
        format: Format::Free,
        answer: answer.to_string(),
        answers: vec![answer.to_string()],
        refusal: false,
        known: vec![],
    }
}

/// The format a question about an unknown person asks for: as often as eval asks about
/// never-seen people, one word (a fifth, where the relation has one-word answers), JSON (a
/// fifth) or free.
fn unknown_format(rel: Relation, rng: &mut Rng) -> Format {
    match rng.below(5) {
        3 if rel.one_word() => Format::OneWord,
        4 => Format::Json,
        _ => Format::Free,
    }
}

/// A question about `p`'s `rel` with its exact answer.
#[allow(clippy::too_many_arguments)]
fn fact_item(
    kb: &Kb,
    p: &Person,
    rel: Relation,
    lang: Lang,
    format: Format,
    split: &str,
    id: u64,
    rng: &mut Rng,
) -> EvalItem {
    let mut question = String::new();
    docs::question(&mut question, &Slots::person(kb, p, lang), lang, rel, rng);
    asked_as(kb, p, rel, lang, format, split, id, question)
}

/// The eval item that asks `question` (about `p`'s `rel`, in `lang`) in `format`.
#[allow(clippy::too_many_arguments)]
fn asked_as(
    kb: &Kb,
    p: &Person,
    rel: Relation,
    lang: Lang,
    format: Format,
    split: &str,
    id: u64,
    mut prompt: String,
) -> EvalItem {
    let lex = lang.lex();
    match format {
        Format::OneWord => {
            prompt.push(' ');
            prompt.push_str(lex.one_word);
        }
        Format::Json => {
            prompt.push(' ');
            prompt.push_str(lex.json_fields);
        }
        _ => {}
    }
    // Never-seen people (eval) and the held-out "unknown" ones (training prompts) are
    // answered "I don't know".
    let unseen = split == "unseen" || split == "unknown";
    EvalItem {
        id,
        kind: "fact".into(),
        lang,
        split: split.into(),
        relation: Some(rel),
        subject: Some(p.name.clone()),
        prompt,
        format,
        answer: if unseen {
            lang.refusal().into()
        } else {
            kb.answer(p, rel, lang)
        },
        answers: if unseen {
            vec![]
        } else {
            kb.answers(p, rel, lang)
        },
        refusal: unseen,
        known: vec![],
    }
}

/// Every wording of a fact question in `lang`: one eval item per question template of
/// the lexicon (in its order), in `format`, with the answers `eval.jsonl` would give it for
/// a person of `split` ("unseen": the answer is a refusal). All carry `id`.
pub fn paraphrases(
    kb: &Kb,
    p: &Person,
    rel: Relation,
    lang: Lang,
    format: Format,
    split: &str,
    id: u64,
) -> Vec<EvalItem> {
    docs::questions(&Slots::person(kb, p, lang), lang, rel)
        .into_iter()
        .map(|q| asked_as(kb, p, rel, lang, format, split, id, q))
        .collect()
}

/// "List three facts about X": any three true facts, one per line.
fn list_item(kb: &Kb, p: &Person, lang: Lang, split: &str, id: u64) -> EvalItem {
    let mut prompt = String::new();
    lang::fill(&mut prompt, lang.lex().list_three, &[("name", &p.name)]);
    let known: Vec<String> = Relation::ALL
        .iter()
        .flat_map(|&r| kb.answers(p, r, lang))
        .collect();
    EvalItem {
        id,
        kind: "fact".into(),
        lang,
        split: split.into(),
        relation: None,
        subject: Some(p.name.clone()),
        prompt,
        format: Format::List3,
        answer: String::new(),
        answers: vec![],
        refusal: false,
        known,
    }
}

/// A correct, well-formatted answer.
fn good_answer(
    kb: &Kb,
    p: &Person,
    rel: Relation,
    lang: Lang,
    format: Format,
    rng: &mut Rng,
) -> String {
    let value = kb.answer(p, rel, lang);
    match format {
        Format::OneWord => value,
        Format::Json => serde_json::json!({"name": p.name, "answer": value}).to_string(),
        _ => {
            let mut s = String::new();
            docs::fact_sentence(&mut s, &Slots::person(kb, p, lang), lang, rel, rng);
            s
        }
    }
}
