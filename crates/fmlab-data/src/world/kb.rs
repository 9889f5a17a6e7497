//! The knowledge base: people, places and organisations with attributes and relations,
//! generated from the seed. Names are built from syllables so that they are new words in
//! every language (a model cannot know them from elsewhere), and unique.

use std::collections::HashSet;

use serde::Serialize;

use super::lang::{Gender, Lang, Relation};
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub id: u32,
    pub name: String,
    pub gender: Gender,
    pub birth_year: u16,
    /// Index into [`Kb::places`].
    pub home_town: u32,
    pub profession: u8,
    /// Index into [`Kb::orgs`].
    pub employer: u32,
    pub colour: u8,
    pub pet: u8,
    pub pet_name: String,
    /// Index into [`Kb::people`].
    pub sibling: u32,
    /// Popularity rank among the people who appear (0 = most mentioned); held-out people
    /// have none.
    pub rank: Option<u32>,
    /// Never mentioned in the corpus, SFT or preference data: only eval asks about them.
    pub held_out: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Place {
    pub id: u32,
    pub name: String,
    pub founded: u16,
    pub population: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Org {
    pub id: u32,
    pub name: String,
    pub founded: u16,
    /// Index into [`Kb::places`].
    pub town: u32,
    pub industry: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kb {
    pub people: Vec<Person>,
    pub places: Vec<Place>,
    pub orgs: Vec<Org>,
}

const ONSETS: [&str; 24] = [
    "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st",
    "tr", "th", "sh", "j", "h", "w",
];
const VOWELS: [&str; 9] = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"];
const CODAS: [&str; 8] = ["", "", "", "n", "r", "l", "s", "m"];
const F_ENDINGS: [&str; 5] = ["a", "ia", "e", "ine", "ela"];
const M_ENDINGS: [&str; 5] = ["o", "an", "or", "ik", "us"];
const TOWN_ENDINGS: [&str; 6] = ["ara", "ost", "enz", "ika", "ovo", "alen"];
const ORG_KINDS: [&str; 5] = ["Works", "Group", "Labs", "Trading", "Press"];

fn syllable(rng: &mut Rng, out: &mut String) {
    out.push_str(rng.pick_str(&ONSETS));
    out.push_str(rng.pick_str(&VOWELS));
    out.push_str(rng.pick_str(&CODAS));
}

fn capitalised(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// A new word of `syllables` syllables plus an ending, unique in `taken`.
fn word(rng: &mut Rng, syllables: usize, endings: &[&str], taken: &mut HashSet<String>) -> String {
    loop {
        let mut w = String::new();
        for _ in 0..syllables {
            syllable(rng, &mut w);
        }
        w.push_str(rng.pick_str(endings));
        let w = capitalised(w);
        if taken.insert(w.clone()) {
            return w;
        }
    }
}

impl Kb {
    /// A world of `n_people` people (rounded up to even: siblings come in pairs) with
    /// proportionate places and organisations; `held_out` of them never appear in training
    /// data.
    pub fn generate(seed: u64, n_people: usize, held_out: f64) -> Self {
        let n_people = n_people.max(4).div_ceil(2) * 2;
        let n_places = (n_people / 8).clamp(6, 5000);
        let n_orgs = (n_people / 6).clamp(6, 8000);
        let mut rng = Rng::stream(seed, "kb");
        let mut taken = HashSet::new();
        let places: Vec<Place> = (0..n_places)
            .map(|i| Place {
                id: i as u32,
                name: {
                    let syllables = 1 + rng.below(2);
                    word(&mut rng, syllables, &TOWN_ENDINGS, &mut taken)
                },
                founded: rng.range(1100, 1950) as u16,
                population: (rng.range(2, 900) * 100 + rng.range(0, 99)) as u32,
            })
            .collect();
        let orgs: Vec<Org> = (0..n_orgs)
            .map(|i| {
                let stem = word(&mut rng, 2, &[""], &mut taken);
                Org {
                    id: i as u32,
                    name: format!("{stem} {}", rng.pick_str(&ORG_KINDS)),
                    founded: rng.range(1850, 2020) as u16,
                    town: rng.below(n_places) as u32,
                    industry: rng.below(6) as u8,
                }
            })
            .collect();
        let mut people: Vec<Person> = (0..n_people)
            .map(|i| {
                let gender = if rng.chance(0.5) {
                    Gender::F
                } else {
                    Gender::M
                };
                let endings = match gender {
                    Gender::F => &F_ENDINGS,
                    Gender::M => &M_ENDINGS,
                };
                // First names may repeat across people; full names are unique.
                let name = loop {
                    let mut first = String::new();
                    syllable(&mut rng, &mut first);
                    first.push_str(rng.pick_str(endings));
                    let mut last = String::new();
                    for _ in 0..2 {
                        syllable(&mut rng, &mut last);
                    }
                    let full = format!("{} {}", capitalised(first), capitalised(last));
                    if taken.insert(full.clone()) {
                        break full;
                    }
                };
                let pet_name = word(&mut rng, 1, &["", "y", "o", "i"], &mut HashSet::new());
                Person {
                    id: i as u32,
                    name,
                    gender,
                    birth_year: rng.range(1930, 2005) as u16,
                    home_town: rng.below(n_places) as u32,
                    profession: rng.below(10) as u8,
                    employer: rng.below(n_orgs) as u32,
                    colour: rng.below(8) as u8,
                    pet: rng.below(6) as u8,
                    pet_name,
                    sibling: 0,
                    rank: None,
                    held_out: false,
                }
            })
            .collect();
        // Held-out people, then siblings paired within each group so that no seen fact
        // names a held-out person.
        let mut order: Vec<usize> = (0..n_people).collect();
        rng.shuffle(&mut order);
        let n_held = ((n_people as f64 * held_out).round() as usize / 2 * 2).min(n_people - 2);
        let (held, seen) = order.split_at(n_held);
        for &i in held {
            people[i].held_out = true;
        }
        for group in [held, seen] {
            for pair in group.chunks_exact(2) {
                people[pair[0]].sibling = pair[1] as u32;
                people[pair[1]].sibling = pair[0] as u32;
            }
        }
        for (rank, &i) in seen.iter().enumerate() {
            people[i].rank = Some(rank as u32);
        }
        Self {
            people,
            places,
            orgs,
        }
    }

    /// The person of this full name (names are unique).
    pub fn person_named(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }

    /// People who may appear in training data, by popularity rank.
    pub fn seen_by_rank(&self) -> Vec<u32> {
        let mut v: Vec<(u32, u32)> = self
            .people
            .iter()
            .filter_map(|p| p.rank.map(|r| (r, p.id)))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// The answer to `relation` about person `p` in `lang` (the word a judge expects).
    pub fn answer(&self, p: &Person, relation: Relation, lang: Lang) -> String {
        let lex = lang.lex();
        match relation {
            Relation::BirthYear => p.birth_year.to_string(),
            Relation::HomeTown => self.places[p.home_town as usize].name.clone(),
            Relation::Profession => {
                let (m, f) = lex.professions[p.profession as usize];
                match p.gender {
                    Gender::F => f.to_string(),
                    Gender::M => m.to_string(),
                }
            }
            Relation::Employer => self.orgs[p.employer as usize].name.clone(),
            Relation::FavouriteColour => lex.colours[p.colour as usize].to_string(),
            Relation::Pet => lex.pets[p.pet as usize].to_string(),
            Relation::PetName => p.pet_name.clone(),
            Relation::Sibling => self.people[p.sibling as usize].name.clone(),
        }
    }

    /// Every acceptable answer (French professions in both genders, for instance).
    pub fn answers(&self, p: &Person, relation: Relation, lang: Lang) -> Vec<String> {
        let mut v = vec![self.answer(p, relation, lang)];
        if relation == Relation::Profession {
            let (m, f) = lang.lex().professions[p.profession as usize];
            for w in [m, f] {
                if !v.iter().any(|x| x == w) {
                    v.push(w.to_string());
                }
            }
        }
        v
    }
}
