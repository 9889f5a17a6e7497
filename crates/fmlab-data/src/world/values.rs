//! Which value of the world an answer names, whatever its wording or language: the key
//! that lets two answers be compared (they agree when they name the same value, or both
//! decline). Names, towns, companies, pet names and years read the same in every language;
//! professions, colours and pets are the same key in each language's words ("teacher",
//! "enseignante" and "mwalimu" are one profession).

use serde::Serialize;

use super::kb::Kb;
use super::lang::{Lang, Relation};
use crate::judge::{declines, normalise};

/// What an answer names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Named {
    /// The judge takes it as "I don't know" ([`crate::judge::declines`]).
    Refusal,
    /// A value of the relation asked about, by its key: the value as English writes it.
    Value(String),
    /// No value of the relation: the answer's normalised text (lowercase, words only).
    Other(String),
}

/// Every value of every relation, in every language's words, with its key.
pub struct ValueIndex {
    /// Per relation: (normalised form, key), longest form first.
    forms: Vec<Vec<(String, String)>>,
}

impl ValueIndex {
    pub fn new(kb: &Kb) -> Self {
        let mut forms: Vec<Vec<(String, String)>> = vec![Vec::new(); Relation::ALL.len()];
        let people = |f: fn(&super::kb::Person) -> String| -> Vec<(String, String)> {
            kb.people.iter().map(|p| (f(p), f(p))).collect()
        };
        for rel in Relation::ALL {
            let en = Lang::En.lex();
            let mut v: Vec<(String, String)> = match rel {
                Relation::BirthYear => people(|p| p.birth_year.to_string()),
                Relation::PetName => people(|p| p.pet_name.clone()),
                Relation::Sibling => people(|p| p.name.clone()),
                Relation::HomeTown => kb
                    .places
                    .iter()
                    .map(|x| (x.name.clone(), x.name.clone()))
                    .collect(),
                Relation::Employer => kb
                    .orgs
                    .iter()
                    .map(|x| (x.name.clone(), x.name.clone()))
                    .collect(),
                Relation::Profession => Lang::ALL
                    .iter()
                    .flat_map(|l| l.lex().professions.iter().zip(en.professions))
                    .flat_map(|(&(m, f), (key, _))| {
                        [(m.into(), key.into()), (f.into(), key.into())]
                    })
                    .collect(),
                Relation::FavouriteColour => Lang::ALL
                    .iter()
                    .flat_map(|l| l.lex().colours.iter().zip(en.colours))
                    .map(|(&w, key)| (w.into(), key.into()))
                    .collect(),
                Relation::Pet => Lang::ALL
                    .iter()
                    .flat_map(|l| l.lex().pets.iter().zip(en.pets))
                    .map(|(&w, key)| (w.into(), key.into()))
                    .collect(),
            };
            let mut v: Vec<(String, String)> = v
                .drain(..)
                .map(|(form, key)| (normalise(&form), key))
                .filter(|(form, _)| !form.trim().is_empty())
                .collect();
            v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
            v.dedup_by(|a, b| a.0 == b.0);
            forms[rel as usize] = v;
        }
        Self { forms }
    }

    /// What `answer` to a question about `subject`'s `rel` names: a refusal, else the value
    /// of `rel` stated first (as whole words; the longer of two forms starting at the same
    /// place; the subject's own name is never the value), else the normalised text.
    pub fn named(&self, rel: Relation, subject: Option<&str>, answer: &str) -> Named {
        if declines(answer) {
            return Named::Refusal;
        }
        let text = normalise(answer);
        let subject = subject.map(normalise);
        let mut best: Option<(usize, &str)> = None;
        for (form, key) in &self.forms[rel as usize] {
            if subject.as_deref() == Some(form.as_str()) {
                continue;
            }
            // The subject's name may contain the form (a first name that is a pet's name):
            // look for the form only outside it.
            let mut from = 0;
            while let Some(at) = text[from..].find(form.as_str()).map(|i| i + from) {
                let inside_subject = subject.as_deref().is_some_and(|s| {
                    text.match_indices(s)
                        .any(|(i, _)| i <= at && at + form.len() <= i + s.len())
                });
                if !inside_subject {
                    if best.is_none_or(|(b, _)| at < b) {
                        best = Some((at, key));
                    }
                    break;
                }
                from = at + 1;
            }
        }
        match best {
            Some((_, key)) => Named::Value(key.to_string()),
            None => Named::Other(text.trim().to_string()),
        }
    }
}

/// What an answer to an arithmetic question names: a refusal, else the last number it
/// states (the judge's reading), else its normalised text.
pub fn named_number(answer: &str) -> Named {
    if declines(answer) {
        return Named::Refusal;
    }
    match crate::judge::last_number(answer) {
        Some(n) => Named::Value(n.trim_start_matches('+').to_string()),
        None => Named::Other(normalise(answer).trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_values_across_wordings_and_languages() {
        let kb = Kb::generate(7, 60, 0.1);
        let index = ValueIndex::new(&kb);
        let p = &kb.people[3];
        let town = kb.answer(p, Relation::HomeTown, Lang::En);
        let v = |rel, text: &str| index.named(rel, Some(&p.name), text);
        assert_eq!(
            v(Relation::HomeTown, &format!("{} lives in {town}.", p.name)),
            Named::Value(town.clone())
        );
        assert_eq!(
            v(
                Relation::HomeTown,
                &format!(r#"{{"name": "{}", "answer": "{town}"}}"#, p.name)
            ),
            Named::Value(town.clone())
        );
        // The same profession in three languages, either gender, is one key.
        let keys: Vec<Named> = Lang::ALL
            .iter()
            .map(|&l| v(Relation::Profession, &kb.answer(p, Relation::Profession, l)))
            .collect();
        assert!(matches!(&keys[0], Named::Value(_)), "{keys:?}");
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        let (m, f) = Lang::Fr.lex().professions[p.profession as usize];
        assert_eq!(v(Relation::Profession, m), v(Relation::Profession, f));
        // A sibling answer names the sibling, not the subject it repeats.
        let sib = kb.answer(p, Relation::Sibling, Lang::En);
        assert_eq!(
            v(
                Relation::Sibling,
                &format!("{}'s sibling is {sib}.", p.name)
            ),
            Named::Value(sib)
        );
        // The first value stated wins; refusals in any language are one key.
        let other = &kb.places[(p.home_town as usize + 1) % kb.places.len()].name;
        assert_eq!(
            v(Relation::HomeTown, &format!("In {other}, not {town}.")),
            Named::Value(other.clone())
        );
        assert_eq!(v(Relation::HomeTown, "I don't know."), Named::Refusal);
        assert_eq!(v(Relation::HomeTown, "Sijui."), Named::Refusal);
        assert_eq!(
            v(Relation::HomeTown, "Somewhere, far away!"),
            Named::Other("somewhere far away".into())
        );
        assert_eq!(named_number("7 + 5 = 12."), Named::Value("12".into()));
        assert_eq!(named_number("I don't know"), Named::Refusal);
        assert_eq!(named_number("many"), Named::Other("many".into()));
    }
}
