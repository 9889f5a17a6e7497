//! The synthetic world: a seeded knowledge base rendered into a multilingual,
//! multi-domain corpus, and the SFT, preference and evaluation sets derived from it, all a
//! pure function of ([`WorldConfig`]).
//!
//! Files (JSONL, one object per line; schemas in `docs/world.md`):
//! - `corpus.jsonl`: `{id, domain, lang, text, people}`;
//! - `kb.jsonl`: one fact per line, `{subject, subject_id, relation, values{lang}, mentions, split}`;
//! - `sft.jsonl`: `{id, kind, lang, messages[{role, content}]}`;
//! - `preferences.jsonl`: `{id, kind, lang, prompt[...], chosen, rejected, rejected_kind}`;
//! - `eval.jsonl`: [`EvalItem`] per line;
//! - `parallel.jsonl`: `{en, fr, sw}`, the same fact in each language (for tokenizer
//!   premiums);
//! - `manifest.json`: the configuration and counts.

pub mod docs;
pub mod kb;
pub mod lang;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::io::AtomicFile;
use crate::judge::{EvalItem, Format};
use crate::rng::{Rng, Zipf};
use crate::{Error, Result};
use docs::{Domain, Slots};
use kb::{Kb, Person};
use lang::{Lang, Relation};

/// Everything the world depends on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldConfig {
    pub seed: u64,
    /// Target size of the corpus text in bytes.
    pub size: u64,
    /// Languages with their shares of documents.
    pub languages: Vec<(Lang, f64)>,
    /// Domains with their shares of documents.
    pub domains: Vec<(Domain, f64)>,
    /// Share of people who never appear in training data.
    pub held_out: f64,
    /// Zipf exponent of how often people are mentioned.
    pub zipf: f64,
    /// Probability that a lowercase word gets two letters swapped.
    pub typo_rate: f64,
    /// Probability that a whole document is lowercased.
    pub lowercase_rate: f64,
    /// Conversations, preference pairs and eval items per 1 MB of corpus (at least 200 each).
    pub sets_per_mb: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            size: 1 << 20,
            languages: vec![(Lang::En, 0.85), (Lang::Fr, 0.135), (Lang::Sw, 0.015)],
            domains: vec![
                (Domain::Biography, 0.26),
                (Domain::Story, 0.14),
                (Domain::Dialogue, 0.14),
                (Domain::Encyclopedia, 0.12),
                (Domain::Arithmetic, 0.14),
                (Domain::Code, 0.08),
                (Domain::Table, 0.12),
            ],
            held_out: 0.1,
            zipf: 1.1,
            typo_rate: 0.01,
            lowercase_rate: 0.03,
            sets_per_mb: 2000.0,
        }
    }
}

impl WorldConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.size < 10_000 {
            return bad(format!(
                "size {} is below the smallest world (10 kB)",
                self.size
            ));
        }
        if self.size > 1 << 40 {
            return bad(format!("size {} is absurd (over 1 TB)", self.size));
        }
        for (what, shares) in [
            (
                "languages",
                self.languages.iter().map(|x| x.1).collect::<Vec<_>>(),
            ),
            ("domains", self.domains.iter().map(|x| x.1).collect()),
        ] {
            if shares.is_empty() || shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
                return bad(format!("{what}: shares must be numbers ≥ 0"));
            }
            if shares.iter().sum::<f64>() <= 0.0 {
                return bad(format!("{what}: the shares add up to 0"));
            }
        }
        if !self
            .languages
            .iter()
            .any(|(l, s)| *l == Lang::En && *s > 0.0)
        {
            return bad("languages: English must have a share (the eval sets need it)".into());
        }
        for (name, v) in [
            ("held_out", self.held_out),
            ("typo_rate", self.typo_rate),
            ("lowercase_rate", self.lowercase_rate),
        ] {
            if !(0.0..=0.9).contains(&v) {
                return bad(format!("{name} must be in [0, 0.9], got {v}"));
            }
        }
        if !(self.sets_per_mb.is_finite() && (0.0..=1e6).contains(&self.sets_per_mb)) {
            return bad(format!(
                "sets per MB must be in [0, 1e6], got {}",
                self.sets_per_mb
            ));
        }
        if !(self.zipf.is_finite() && self.zipf > 0.0 && self.zipf < 5.0) {
            return bad(format!(
                "zipf exponent must be in (0, 5), got {}",
                self.zipf
            ));
        }
        Ok(())
    }

    /// People in the world: enough that, at this size, popular people are mentioned often
    /// and a long tail only once or never.
    pub fn people(&self) -> usize {
        ((self.size / 3000) as usize).clamp(40, 400_000)
    }

    fn set_size(&self) -> usize {
        ((self.size as f64 / 1e6 * self.sets_per_mb) as usize).clamp(200, 2_000_000)
    }
}

/// One corpus document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub id: u64,
    pub domain: Domain,
    pub lang: Lang,
    pub text: String,
    /// Ids of the people whose facts it states.
    pub people: Vec<u32>,
}

/// A chat turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    fn new(role: &str, content: String) -> Self {
        Self {
            role: role.into(),
            content,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: u64,
    pub kind: String,
    pub lang: Lang,
    pub messages: Vec<Turn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preference {
    pub id: u64,
    pub kind: String,
    pub lang: Lang,
    pub prompt: Vec<Turn>,
    pub chosen: String,
    pub rejected: String,
    /// Why the rejected answer is worse: wrong, hallucinated, format or verbose.
    pub rejected_kind: String,
}

#[derive(Debug, Clone, Serialize)]
struct Fact<'a> {
    subject: &'a str,
    subject_id: u32,
    relation: &'static str,
    values: BTreeMap<&'static str, String>,
    mentions: u32,
    split: &'static str,
}

/// What a world run wrote.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorldSummary {
    pub documents: u64,
    pub corpus_bytes: u64,
    pub facts: u64,
    pub conversations: u64,
    pub preferences: u64,
    /// Lines of `prompts.jsonl` (judge-able training questions).
    #[serde(default)]
    pub prompts: u64,
    pub eval_items: u64,
    /// Lines of `parallel.jsonl` (one fact in every language).
    pub parallel: u64,
    pub people: u64,
    /// Documents per language and per domain.
    pub by_lang: BTreeMap<String, u64>,
    pub by_domain: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    config: &'a WorldConfig,
    summary: &'a WorldSummary,
}

/// People with at least this many mentions are "frequent"; with fewer, "rare".
pub const FREQUENT_MENTIONS: u32 = 10;

fn pick_weighted<T: Copy>(items: &[(T, f64)], rng: &mut Rng) -> T {
    let total: f64 = items.iter().map(|x| x.1).sum();
    let mut u = rng.f64() * total;
    for &(item, w) in items {
        if u < w {
            return item;
        }
        u -= w;
    }
    items[items.len() - 1].0
}

/// Writes the world into `dir` (created if needed). `progress` is told the corpus bytes
/// written so far. Every file is written to a temporary name and renamed when complete.
pub fn write_world(
    config: &WorldConfig,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<WorldSummary> {
    config.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let kb = Kb::generate(config.seed, config.people(), config.held_out);
    let seen = kb.seen_by_rank();
    let zipf = Zipf::new(seen.len(), config.zipf);
    let mut mentions = vec![0u32; kb.people.len()];
    let mut summary = WorldSummary {
        people: kb.people.len() as u64,
        ..WorldSummary::default()
    };

    // --- corpus ---
    let mut rng = Rng::stream(config.seed, "corpus");
    let mut corpus = AtomicFile::create(&dir.join("corpus.jsonl"))?;
    let mut text = String::with_capacity(4096);
    let mut line = Vec::with_capacity(8192);
    let mut id = 0u64;
    while summary.corpus_bytes < config.size {
        let lang = pick_weighted(&config.languages, &mut rng);
        let domain = pick_weighted(&config.domains, &mut rng);
        text.clear();
        let mut people: Vec<u32> = Vec::new();
        let person = |rng: &mut Rng| -> &Person { &kb.people[seen[zipf.sample(rng)] as usize] };
        match domain {
            Domain::Biography => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::biography(&mut text, &kb, p, lang, &mut rng);
            }
            Domain::Story => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::story(&mut text, &kb, p, lang, &mut rng);
            }
            Domain::Dialogue => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::dialogue(&mut text, &kb, p, lang, &mut rng);
            }
            Domain::Encyclopedia => docs::encyclopedia(&mut text, &kb, lang, &mut rng),
            Domain::Arithmetic => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::arithmetic(&mut text, p, lang, &mut rng);
            }
            Domain::Code => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::code(&mut text, p, lang, &mut rng);
            }
            Domain::Table => {
                let n = 3 + rng.below(3);
                let rows: Vec<&Person> = (0..n).map(|_| person(&mut rng)).collect();
                people.extend(rows.iter().map(|p| p.id));
                docs::table(&mut text, &kb, &rows, lang);
            }
        }
        // Siblings are named in some facts and stories: they are mentioned too.
        for i in 0..people.len() {
            let sib = kb.people[people[i] as usize].sibling;
            if !people.contains(&sib) && text.contains(kb.people[sib as usize].name.as_str()) {
                people.push(sib);
            }
        }
        for &p in &people {
            mentions[p as usize] += 1;
        }
        docs::typos(&mut text, config.typo_rate, &mut rng);
        if rng.chance(config.lowercase_rate) {
            text = text.to_lowercase();
        }
        let doc = Document {
            id,
            domain,
            lang,
            text: std::mem::take(&mut text),
            people,
        };
        line.clear();
        serde_json::to_writer(&mut line, &doc).map_err(Error::Json)?;
        line.push(b'\n');
        corpus.write(&line)?;
        summary.corpus_bytes += doc.text.len() as u64;
        text = doc.text;
        summary.documents += 1;
        *summary.by_lang.entry(lang.code().into()).or_insert(0) += 1;
        *summary.by_domain.entry(domain.name().into()).or_insert(0) += 1;
        id += 1;
        if id.is_multiple_of(4096) {
            progress(summary.corpus_bytes);
        }
    }
    corpus.finish()?;
    progress(summary.corpus_bytes);

    // Held-out people: half of them serve as the "unknown" people of SFT and preference
    // data (named in questions, never with a fact), the other half, with everyone the
    // corpus happened never to name, are the eval's never-seen people.
    let held: Vec<u32> = kb
        .people
        .iter()
        .filter(|p| p.held_out)
        .map(|p| p.id)
        .collect();
    let unknown_for_training: HashSet<u32> = held.iter().copied().step_by(2).collect();
    let split_of = |p: &Person| -> &'static str {
        if unknown_for_training.contains(&p.id) {
            return "unknown";
        }
        match mentions[p.id as usize] {
            0 => "unseen",
            m if m >= FREQUENT_MENTIONS => "frequent",
            _ => "rare",
        }
    };

    // --- kb ---
    let mut kb_file = AtomicFile::create(&dir.join("kb.jsonl"))?;
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
                mentions: mentions[p.id as usize],
                split: split_of(p),
            };
            kb_file.write_json_line(&fact)?;
            summary.facts += 1;
        }
    }
    kb_file.finish()?;

    // --- eval: chosen first, so that SFT and preferences never ask the same question ---
    let n_sets = config.set_size();
    let mut rng = Rng::stream(config.seed, "eval");
    let mut asked: HashSet<(u32, Relation)> = HashSet::new();
    let mut eval_file = AtomicFile::create(&dir.join("eval.jsonl"))?;
    let groups: Vec<(&str, Vec<u32>)> = ["frequent", "rare", "unseen"]
        .iter()
        .map(|&s| {
            (
                s,
                kb.people
                    .iter()
                    .filter(|p| split_of(p) == s)
                    .map(|p| p.id)
                    .collect(),
            )
        })
        .collect();
    let langs: Vec<Lang> = config
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
                let item = fact_item(&kb, p, rel, lang, format, split, eval_id, &mut rng);
                eval_file.write_json_line(&item)?;
                eval_id += 1;
            }
            // A list of three facts, for seen people.
            if *split != "unseen" {
                for _ in 0..(per / 8).max(2) {
                    let p = &kb.people[*rng.pick(ids) as usize];
                    let item = list_item(&kb, p, lang, split, eval_id);
                    eval_file.write_json_line(&item)?;
                    eval_id += 1;
                }
            }
        }
    }
    // Arithmetic, per language.
    for &lang in &langs {
        for _ in 0..(n_sets / (8 * langs.len())).max(10) {
            let p = &kb.people[seen[rng.below(seen.len())] as usize];
            let item = arithmetic_item(p, lang, eval_id, &mut rng);
            eval_file.write_json_line(&item)?;
            eval_id += 1;
        }
    }
    eval_file.finish()?;
    summary.eval_items = eval_id;

    // --- SFT ---
    let mut rng = Rng::stream(config.seed, "sft");
    let mut sft = AtomicFile::create(&dir.join("sft.jsonl"))?;
    let held: Vec<u32> = held
        .iter()
        .copied()
        .filter(|id| unknown_for_training.contains(id))
        .collect();
    let trained: Vec<u32> = seen
        .iter()
        .copied()
        .filter(|&id| mentions[id as usize] > 0)
        .collect();
    let mut n_conv = 0u64;
    // Draws that hit an eval question or a never-named person are skipped; a bound keeps a
    // tiny world from looking forever.
    let mut draws = 0usize;
    while (n_conv as usize) < n_sets && !trained.is_empty() && draws < 8 * n_sets + 1000 {
        draws += 1;
        let lang = pick_weighted(&config.languages, &mut rng);
        let kind = rng.below(10);
        let mut messages = Vec::new();
        let kind_name = match kind {
            0 if !held.is_empty() => {
                // An unknown person: the honest answer, in the format asked for (eval asks
                // about never-seen people in every format).
                let p = &kb.people[*rng.pick(&held) as usize];
                let rel = *rng.pick(&Relation::ALL);
                let format = unknown_format(rel, &mut rng);
                let item = fact_item(&kb, p, rel, lang, format, "unknown", 0, &mut rng);
                let answer = match format {
                    Format::Json => {
                        serde_json::json!({"name": p.name, "answer": lang.refusal()}).to_string()
                    }
                    _ => lang.refusal().into(),
                };
                messages.push(Turn::new("user", item.prompt));
                messages.push(Turn::new("assistant", answer));
                "unknown"
            }
            9 => {
                // A list of three facts about one person, one per line.
                let p = &kb.people[trained[rng.below(trained.len())] as usize];
                let mut q = String::new();
                lang::fill(&mut q, lang.lex().list_three, &[("name", &p.name)]);
                let mut rels: Vec<Relation> = Relation::ALL
                    .iter()
                    .copied()
                    .filter(|&r| !names_unmentioned(&kb, p, r, &mentions))
                    .collect();
                rng.shuffle(&mut rels);
                let slots = Slots::person(&kb, p, lang);
                let mut a = String::new();
                for (i, &rel) in rels.iter().take(3).enumerate() {
                    if i > 0 {
                        a.push('\n');
                    }
                    a.push_str("- ");
                    docs::fact_sentence(&mut a, &slots, lang, rel, &mut rng);
                }
                messages.push(Turn::new("user", q));
                messages.push(Turn::new("assistant", a));
                "format_list"
            }
            1 => {
                let p = &kb.people[trained[rng.below(trained.len())] as usize];
                let mut q = String::new();
                let answer = docs::arithmetic_problem(&mut q, p, lang, &mut rng);
                messages.push(Turn::new("user", q));
                messages.push(Turn::new("assistant", answer.to_string()));
                "arithmetic"
            }
            _ => {
                let Some((p, rel)) = unasked(&kb, &trained, &asked, &mentions, &mut rng) else {
                    break;
                };
                let format = match kind {
                    2 | 3 if rel.one_word() => Format::OneWord,
                    4 => Format::Json,
                    _ => Format::Free,
                };
                let item = fact_item(&kb, p, rel, lang, format, "train", 0, &mut rng);
                messages.push(Turn::new("user", item.prompt.clone()));
                messages.push(Turn::new(
                    "assistant",
                    good_answer(&kb, p, rel, lang, format, &mut rng),
                ));
                // A follow-up about the same person, sometimes.
                if rng.chance(0.3) {
                    if let Some(rel2) = Relation::ALL.iter().copied().find(|&r| {
                        r != rel
                            && !asked.contains(&(p.id, r))
                            && !names_unmentioned(&kb, p, r, &mentions)
                    }) {
                        let mut q = String::new();
                        docs::question(&mut q, &Slots::person(&kb, p, lang), lang, rel2, &mut rng);
                        messages.push(Turn::new("user", q));
                        messages.push(Turn::new(
                            "assistant",
                            good_answer(&kb, p, rel2, lang, Format::Free, &mut rng),
                        ));
                    }
                }
                match format {
                    Format::OneWord => "format_one_word",
                    Format::Json => "format_json",
                    _ => "fact",
                }
            }
        };
        sft.write_json_line(&Conversation {
            id: n_conv,
            kind: kind_name.into(),
            lang,
            messages,
        })?;
        n_conv += 1;
    }
    sft.finish()?;
    summary.conversations = n_conv;

    // --- preferences ---
    let mut rng = Rng::stream(config.seed, "preferences");
    let mut prefs = AtomicFile::create(&dir.join("preferences.jsonl"))?;
    let mut n_pref = 0u64;
    // Draws that hit an eval question or a never-named person are skipped; a bound keeps a
    // tiny world from looking forever.
    let mut draws = 0usize;
    while (n_pref as usize) < n_sets && !trained.is_empty() && draws < 8 * n_sets + 1000 {
        draws += 1;
        let lang = pick_weighted(&config.languages, &mut rng);
        let kind = rng.below(4);
        let pref = if kind == 0 && !held.is_empty() {
            let p = &kb.people[*rng.pick(&held) as usize];
            let rel = *rng.pick(&Relation::ALL);
            let mut q = String::new();
            docs::question(&mut q, &Slots::person(&kb, p, lang), lang, rel, &mut rng);
            let other = &kb.people[trained[rng.below(trained.len())] as usize];
            if names_unmentioned(&kb, other, rel, &mentions) {
                continue;
            }
            let mut invented = String::new();
            docs::fact_sentence(
                &mut invented,
                &Slots::person(&kb, other, lang).with("name", p.name.clone()),
                lang,
                rel,
                &mut rng,
            );
            Preference {
                id: n_pref,
                kind: "unknown".into(),
                lang,
                prompt: vec![Turn::new("user", q)],
                chosen: lang.refusal().into(),
                rejected: invented,
                rejected_kind: "hallucinated".into(),
            }
        } else {
            let Some((p, rel)) = unasked(&kb, &trained, &asked, &mentions, &mut rng) else {
                break;
            };
            let format = if kind == 1 && rel.one_word() {
                Format::OneWord
            } else {
                Format::Free
            };
            let item = fact_item(&kb, p, rel, lang, format, "train", 0, &mut rng);
            let chosen = good_answer(&kb, p, rel, lang, format, &mut rng);
            let (rejected, rejected_kind) = match (kind, format) {
                (1, Format::OneWord) => (
                    {
                        let mut s = String::new();
                        docs::fact_sentence(
                            &mut s,
                            &Slots::person(&kb, p, lang),
                            lang,
                            rel,
                            &mut rng,
                        );
                        s
                    },
                    "format",
                ),
                (2, _) => {
                    let mut s = lang.lex().filler.to_string();
                    s.push(' ');
                    s.push_str(&chosen);
                    (s, "verbose")
                }
                _ => {
                    // The same fact of another person: a plausible, wrong answer.
                    let other = &kb.people[trained[rng.below(trained.len())] as usize];
                    let wrong = kb.answer(other, rel, lang);
                    if kb.answers(p, rel, lang).contains(&wrong)
                        || names_unmentioned(&kb, other, rel, &mentions)
                    {
                        continue;
                    }
                    let mut s = String::new();
                    let slots = Slots::person(&kb, p, lang);
                    let slots = match rel {
                        Relation::BirthYear => slots.with("year", wrong),
                        Relation::HomeTown => slots.with("town", wrong),
                        Relation::Employer => slots.with("org", wrong),
                        Relation::PetName => slots.with("petname", wrong),
                        Relation::Sibling => slots.with("sib", wrong),
                        _ => Slots::person(&kb, other, lang).with("name", p.name.clone()),
                    };
                    docs::fact_sentence(&mut s, &slots, lang, rel, &mut rng);
                    (s, "wrong")
                }
            };
            Preference {
                id: n_pref,
                kind: "fact".into(),
                lang,
                prompt: vec![Turn::new("user", item.prompt)],
                chosen,
                rejected,
                rejected_kind: rejected_kind.into(),
            }
        };
        prefs.write_json_line(&pref)?;
        n_pref += 1;
    }
    prefs.finish()?;
    summary.preferences = n_pref;

    // --- prompts: judge-able training questions (eval items' format, never eval's
    // questions) for on-policy preference data: sample answers, judge them, pair them ---
    let mut rng = Rng::stream(config.seed, "prompts");
    let mut prompts = AtomicFile::create(&dir.join("prompts.jsonl"))?;
    let mut n_prompts = 0u64;
    let mut draws = 0usize;
    let split_named = |p: &Person| match mentions[p.id as usize] {
        m if m >= FREQUENT_MENTIONS => "frequent",
        _ => "rare",
    };
    while (n_prompts as usize) < n_sets / 2 && !trained.is_empty() && draws < 8 * n_sets + 1000 {
        draws += 1;
        let lang = pick_weighted(&config.languages, &mut rng);
        let kind = rng.below(10);
        let item = if kind == 0 && !held.is_empty() {
            let p = &kb.people[*rng.pick(&held) as usize];
            let rel = *rng.pick(&Relation::ALL);
            let format = unknown_format(rel, &mut rng);
            fact_item(&kb, p, rel, lang, format, "unknown", n_prompts, &mut rng)
        } else if kind == 1 {
            let p = &kb.people[trained[rng.below(trained.len())] as usize];
            arithmetic_item(p, lang, n_prompts, &mut rng)
        } else {
            let Some((p, rel)) = unasked(&kb, &trained, &asked, &mentions, &mut rng) else {
                break;
            };
            let format = match kind {
                2 | 3 if rel.one_word() => Format::OneWord,
                4 => Format::Json,
                _ => Format::Free,
            };
            fact_item(
                &kb,
                p,
                rel,
                lang,
                format,
                split_named(p),
                n_prompts,
                &mut rng,
            )
        };
        prompts.write_json_line(&item)?;
        n_prompts += 1;
    }
    prompts.finish()?;
    summary.prompts = n_prompts;

    // --- a parallel corpus: the same facts in every language (template 0 of each) ---
    let mut parallel = AtomicFile::create(&dir.join("parallel.jsonl"))?;
    let mut n_par = 0u64;
    for &id in trained.iter().take(400) {
        let p = &kb.people[id as usize];
        for rel in Relation::ALL {
            if names_unmentioned(&kb, p, rel, &mentions) {
                continue;
            }
            let mut line = BTreeMap::new();
            for lang in Lang::ALL {
                let mut s = String::new();
                Slots::person(&kb, p, lang).fill(&mut s, lang.lex().facts[rel as usize][0]);
                line.insert(lang.code(), s);
            }
            parallel.write_json_line(&line)?;
            n_par += 1;
        }
    }
    parallel.finish()?;
    summary.parallel = n_par;

    let manifest = Manifest {
        format: "fmlab-world-1",
        config,
        summary: &summary,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(Error::Json)?;
    crate::io::write_atomic(&dir.join("manifest.json"), &json)?;
    Ok(summary)
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
    let lex = lang.lex();
    let mut prompt = String::new();
    docs::question(&mut prompt, &Slots::person(kb, p, lang), lang, rel, rng);
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
