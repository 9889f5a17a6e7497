//! Rendering facts into documents of each domain, in each language.

use serde::{Deserialize, Serialize};

use super::kb::{Kb, Person};
use super::lang::{fill, Gender, Lang, Relation};
use crate::rng::Rng;

/// What kind of text a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    Biography,
    Story,
    Dialogue,
    Encyclopedia,
    Arithmetic,
    Code,
    Table,
}

impl Domain {
    pub const ALL: [Domain; 7] = [
        Domain::Biography,
        Domain::Story,
        Domain::Dialogue,
        Domain::Encyclopedia,
        Domain::Arithmetic,
        Domain::Code,
        Domain::Table,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Biography => "biography",
            Domain::Story => "story",
            Domain::Dialogue => "dialogue",
            Domain::Encyclopedia => "encyclopedia",
            Domain::Arithmetic => "arithmetic",
            Domain::Code => "code",
            Domain::Table => "table",
        }
    }

    pub fn parse(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The words of one person's facts in one language, ready for templates: borrowed from
/// the knowledge base and the lexicon (no allocation but the year).
pub struct Slots<'a> {
    year: String,
    values: [(&'static str, &'a str); 17],
    /// An override (`with`): a slot replaced by another value.
    extra: Option<(&'static str, String)>,
}

impl<'a> Slots<'a> {
    pub fn person(kb: &'a Kb, p: &'a Person, lang: Lang) -> Self {
        let lex = lang.lex();
        let sib = &kb.people[p.sibling as usize];
        let f = p.gender == Gender::F;
        let (pron, cap) = match (lang, f) {
            (Lang::En, true) => ("she", "She"),
            (Lang::En, false) => ("he", "He"),
            (Lang::Fr, true) => ("elle", "Elle"),
            (Lang::Fr, false) => ("il", "Il"),
            (Lang::Sw, _) => ("yeye", "Yeye"),
        };
        let (m, fem) = lex.professions[p.profession as usize];
        Self {
            year: p.birth_year.to_string(),
            values: [
                ("name", p.name.as_str()),
                ("year", ""),
                ("town", kb.places[p.home_town as usize].name.as_str()),
                ("prof", if f { fem } else { m }),
                ("aprof", lex.a_prof[p.profession as usize]),
                ("org", kb.orgs[p.employer as usize].name.as_str()),
                ("colour", lex.colours[p.colour as usize]),
                ("colournp", lex.colour_np[p.colour as usize]),
                ("pet", lex.pets[p.pet as usize]),
                ("petname", p.pet_name.as_str()),
                ("sib", sib.name.as_str()),
                ("ne", if f { "née" } else { "né" }),
                ("employe", if f { "employée" } else { "employé" }),
                (
                    "sibrel",
                    if sib.gender == Gender::F {
                        "la sœur"
                    } else {
                        "le frère"
                    },
                ),
                ("il", if f { "elle" } else { "il" }),
                ("pron", pron),
                ("Pron", cap),
            ],
            extra: None,
        }
    }

    /// The same slots with `key` set to `value`.
    pub fn with(mut self, key: &'static str, value: String) -> Self {
        self.extra = Some((key, value));
        self
    }

    pub fn fill(&self, out: &mut String, template: &str) {
        let mut slots = self.values;
        slots[1].1 = &self.year;
        if let Some((k, v)) = &self.extra {
            if let Some(s) = slots.iter_mut().find(|(key, _)| key == k) {
                s.1 = v;
            }
        }
        fill(out, template, &slots);
    }
}

/// Appends a fact sentence about `p` (a random paraphrase).
pub fn fact_sentence(out: &mut String, slots: &Slots, lang: Lang, rel: Relation, rng: &mut Rng) {
    let templates = lang.lex().facts[rel as usize];
    slots.fill(out, rng.pick_str(templates));
}

/// Appends a question about `p`'s `rel`.
pub fn question(out: &mut String, slots: &Slots, lang: Lang, rel: Relation, rng: &mut Rng) {
    let templates = lang.lex().questions[rel as usize];
    slots.fill(out, rng.pick_str(templates));
}

/// Every way the world asks about `p`'s `rel` in `lang`: each question template filled, in
/// the lexicon's order ([`question`] picks one of them).
pub fn questions(slots: &Slots, lang: Lang, rel: Relation) -> Vec<String> {
    lang.lex().questions[rel as usize]
        .iter()
        .map(|t| {
            let mut out = String::new();
            slots.fill(&mut out, t);
            out
        })
        .collect()
}

/// A biography: several facts about one person, in random order.
pub fn biography(out: &mut String, kb: &Kb, p: &Person, lang: Lang, rng: &mut Rng) {
    let slots = Slots::person(kb, p, lang);
    let mut rels = Relation::ALL.to_vec();
    rng.shuffle(&mut rels);
    let n = 3 + rng.below(4);
    for (i, &rel) in rels.iter().take(n).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        fact_sentence(out, &slots, lang, rel, rng);
    }
}

/// A short story around a person, their pet and sibling.
pub fn story(out: &mut String, kb: &Kb, p: &Person, lang: Lang, rng: &mut Rng) {
    let slots = Slots::person(kb, p, lang);
    let lex = lang.lex();
    slots.fill(out, rng.pick_str(lex.story_open));
    let n = 2 + rng.below(3);
    for _ in 0..n {
        out.push(' ');
        slots.fill(out, rng.pick_str(lex.story_events));
    }
    if rng.chance(0.5) {
        out.push(' ');
        let rel = *rng.pick(&Relation::ALL);
        fact_sentence(out, &slots, lang, rel, rng);
    }
}

/// A dialogue: questions about a person answered with facts.
pub fn dialogue(out: &mut String, kb: &Kb, p: &Person, lang: Lang, rng: &mut Rng) {
    let slots = Slots::person(kb, p, lang);
    let [a, b] = lang.lex().speaker;
    let mut rels = Relation::ALL.to_vec();
    rng.shuffle(&mut rels);
    for (i, &rel) in rels.iter().take(2 + rng.below(2)).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(a);
        out.push_str(": ");
        question(out, &slots, lang, rel, rng);
        out.push('\n');
        out.push_str(b);
        out.push_str(": ");
        fact_sentence(out, &slots, lang, rel, rng);
    }
}

/// An encyclopedia entry about a town or an organisation.
pub fn encyclopedia(out: &mut String, kb: &Kb, lang: Lang, rng: &mut Rng) {
    let lex = lang.lex();
    if rng.chance(0.5) {
        let town = rng.pick(&kb.places);
        let slots = [
            ("town", town.name.as_str()),
            ("year", &town.founded.to_string()),
            ("pop", &town.population.to_string()),
        ];
        fill(out, rng.pick_str(lex.town_entry), &slots);
    } else {
        let org = rng.pick(&kb.orgs);
        let town = &kb.places[org.town as usize];
        let slots = [
            ("org", org.name.as_str()),
            ("industry", lex.industries[org.industry as usize]),
            ("town", town.name.as_str()),
            ("year", &org.founded.to_string()),
        ];
        fill(out, rng.pick_str(lex.org_entry), &slots);
    }
}

/// An arithmetic word problem with its correct answer; returns the answer.
pub fn arithmetic_problem(out: &mut String, p: &Person, lang: Lang, rng: &mut Rng) -> i64 {
    let lex = lang.lex();
    let &(template, op) = rng.pick(lex.problems);
    let (a, b) = match op {
        '*' => (rng.range(2, 12), rng.range(2, 12)),
        '-' => {
            let a = rng.range(5, 60);
            (a, rng.range(1, a))
        }
        _ => (rng.range(1, 60), rng.range(1, 60)),
    };
    let result = match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    };
    let slots = [
        ("name", p.name.as_str()),
        ("a", &a.to_string()),
        ("b", &b.to_string()),
        ("item", lex.items[rng.below(lex.items.len())]),
    ];
    fill(out, template, &slots);
    result
}

pub fn arithmetic(out: &mut String, p: &Person, lang: Lang, rng: &mut Rng) {
    let result = arithmetic_problem(out, p, lang, rng);
    out.push('\n');
    out.push_str(lang.lex().answer_word);
    out.push_str(": ");
    out.push_str(&result.to_string());
}

/// A small program with its output, commented in the document's language.
pub fn code(out: &mut String, p: &Person, lang: Lang, rng: &mut Rng) {
    let lex = lang.lex();
    let item = lex.items[rng.below(lex.items.len())];
    let var: String = item
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_lowercase();
    let var = if var.is_empty() { "n".to_string() } else { var };
    let a = rng.range(1, 40);
    let b = rng.range(1, 40);
    let k = rng.range(2, 5);
    out.push_str(&format!("# {} — {}\n", p.name, item));
    match rng.below(3) {
        0 => {
            out.push_str(&format!(
                "{var} = {a}\n{var} = {var} + {b}\nprint({var} * {k})\n# output: {}",
                (a + b) * k
            ));
        }
        1 => {
            out.push_str(&format!(
                "total = 0\nfor i in range({k}):\n    total += {a}\nprint(total - {b})\n# output: {}",
                a * k - b
            ));
        }
        _ => {
            let xs: Vec<i64> = (0..k).map(|_| rng.range(1, 20)).collect();
            let list = xs
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "{var} = [{list}]\nprint(max({var}) + len({var}))\n# output: {}",
                xs.iter().max().copied().unwrap_or(0) + k
            ));
        }
    }
}

/// A table of a few people's facts (markdown).
pub fn table(out: &mut String, kb: &Kb, people: &[&Person], lang: Lang) {
    let lex = lang.lex();
    out.push_str(lex.table_title);
    out.push_str(":\n\n| ");
    out.push_str(&lex.table_header.join(" | "));
    out.push_str(" |\n|---|---|---|---|");
    for p in people {
        out.push_str(&format!(
            "\n| {} | {} | {} | {} |",
            p.name,
            p.birth_year,
            kb.places[p.home_town as usize].name,
            kb.answer(p, Relation::Profession, lang)
        ));
    }
}

/// Lexical noise: swaps two adjacent letters in a lowercase ASCII word of four or more
/// letters with probability `rate` per such word (names, which start with a capital,
/// numbers and accented words are left alone). In place, on the bytes: swapping two ASCII
/// letters keeps the text valid UTF-8.
pub fn typos(text: &mut String, rate: f64, rng: &mut Rng) {
    if rate <= 0.0 {
        return;
    }
    let mut bytes = std::mem::take(text).into_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(bytes.len(), |i| start + i);
        let word = &bytes[start..end];
        if word.len() >= 4
            && word[0].is_ascii_lowercase()
            && word.iter().all(u8::is_ascii_alphabetic)
            && rng.chance(rate)
        {
            let j = start + 1 + rng.below(word.len() - 2);
            bytes.swap(j, j + 1);
        }
        start = end + 1;
    }
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}
