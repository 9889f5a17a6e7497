//! The world's languages: English (the majority), French, and Swahili (the rare one), with
//! the words for attribute values and the templates that render facts, questions and
//! answers. Names of people, places and organisations are the same in every language, so a
//! fact reads the same wherever it is rendered.
//!
//! Templates hold `{slot}` markers filled by [`fill`]; every relation has several
//! paraphrases so that a model must learn the fact, not the string.

use serde::{Deserialize, Serialize};

/// A language of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Fr,
    Sw,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Fr, Lang::Sw];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Sw => "sw",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "French",
            Lang::Sw => "Swahili",
        }
    }

    pub(crate) fn lex(self) -> &'static Lexicon {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
            Lang::Sw => &SW,
        }
    }

    /// "I don't know" in this language.
    pub fn refusal(self) -> &'static str {
        self.lex().refusal
    }

    /// The word before an arithmetic problem's result in the corpus ("Answer").
    pub fn answer_word(self) -> &'static str {
        self.lex().answer_word
    }

    /// A statement of `rel` about `name` cut just before the value, as the corpus phrases it
    /// ("Kea Jemda was born in"): the first paraphrase whose value ends the sentence and
    /// needs no slot but the name. For few-shot recall of a base model, which has only seen
    /// statements, never questions. `None` when no paraphrase fits (pet names).
    pub fn cloze(self, rel: Relation, name: &str) -> Option<String> {
        self.lex().facts[rel as usize].iter().find_map(|t| {
            let body = t.strip_suffix('.')?;
            let open = body.rfind('{')?;
            if !body.ends_with('}') {
                return None;
            }
            let prefix = &body[..open];
            if prefix.replace("{name}", "").contains('{') || !prefix.contains("{name}") {
                return None;
            }
            Some(prefix.replace("{name}", name).trim_end().to_string())
        })
    }
}

/// Grammatical gender of a person (French agreement, English pronouns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    F,
    M,
}

/// The relations a person has; each is a fact of the knowledge base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    BirthYear,
    HomeTown,
    Profession,
    Employer,
    FavouriteColour,
    Pet,
    PetName,
    Sibling,
}

impl Relation {
    pub const ALL: [Relation; 8] = [
        Relation::BirthYear,
        Relation::HomeTown,
        Relation::Profession,
        Relation::Employer,
        Relation::FavouriteColour,
        Relation::Pet,
        Relation::PetName,
        Relation::Sibling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Relation::BirthYear => "birth_year",
            Relation::HomeTown => "home_town",
            Relation::Profession => "profession",
            Relation::Employer => "employer",
            Relation::FavouriteColour => "favourite_colour",
            Relation::Pet => "pet",
            Relation::PetName => "pet_name",
            Relation::Sibling => "sibling",
        }
    }

    /// Whether the answer is always a single word (usable with "answer in one word").
    pub fn one_word(self) -> bool {
        matches!(
            self,
            Relation::BirthYear
                | Relation::HomeTown
                | Relation::Profession
                | Relation::FavouriteColour
                | Relation::Pet
                | Relation::PetName
        )
    }
}

pub(crate) struct Lexicon {
    /// Per profession: (masculine, feminine) forms, with the English article in `a_prof`.
    pub professions: [(&'static str, &'static str); 10],
    /// English "a teacher" / "an engineer"; other languages use the bare noun.
    pub a_prof: [&'static str; 10],
    pub colours: [&'static str; 8],
    /// Colour as used after "is" in a sentence ("le rouge" in French).
    pub colour_np: [&'static str; 8],
    pub pets: [&'static str; 6],
    pub industries: [&'static str; 6],
    pub refusal: &'static str,
    /// Per relation: statement templates.
    pub facts: [&'static [&'static str]; 8],
    /// Per relation: question templates.
    pub questions: [&'static [&'static str]; 8],
    /// Town entries ({town}, {year}, {pop}).
    pub town_entry: &'static [&'static str],
    /// Organisation entries ({org}, {industry}, {town}, {year}).
    pub org_entry: &'static [&'static str],
    /// Sentences that open a story ({name}, {town}).
    pub story_open: &'static [&'static str],
    /// Story events ({name}, {pet}, {petname}, {sib}, {pron}).
    pub story_events: &'static [&'static str],
    /// Arithmetic word problems ({name}, {a}, {b}, {item}); `op` says which operation.
    pub problems: &'static [(&'static str, char)],
    pub items: [&'static str; 5],
    pub answer_word: &'static str,
    /// Dialogue speakers' turn prefixes.
    pub speaker: [&'static str; 2],
    /// Instruction suffixes: one word; JSON with fields; list of three.
    pub one_word: &'static str,
    pub json_fields: &'static str,
    pub list_three: &'static str,
    /// Table header: name, born, town, profession.
    pub table_header: [&'static str; 4],
    pub table_title: &'static str,
    /// Padding that makes an answer verbose (for rejected preferences).
    pub filler: &'static str,
}

/// Replaces `{key}` markers in `template` by the values of `slots` (unknown keys stay).
pub fn fill(out: &mut String, template: &str, slots: &[(&str, &str)]) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let key = &after[..close];
                match slots.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
}

static EN: Lexicon = Lexicon {
    professions: [
        ("teacher", "teacher"),
        ("doctor", "doctor"),
        ("farmer", "farmer"),
        ("engineer", "engineer"),
        ("baker", "baker"),
        ("musician", "musician"),
        ("writer", "writer"),
        ("pilot", "pilot"),
        ("carpenter", "carpenter"),
        ("nurse", "nurse"),
    ],
    a_prof: [
        "a teacher",
        "a doctor",
        "a farmer",
        "an engineer",
        "a baker",
        "a musician",
        "a writer",
        "a pilot",
        "a carpenter",
        "a nurse",
    ],
    colours: ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"],
    colour_np: ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"],
    pets: ["dog", "cat", "horse", "rabbit", "parrot", "goldfish"],
    industries: ["software", "shipping", "farming", "publishing", "banking", "medicine"],
    refusal: "I don't know.",
    facts: [
        &[
            "{name} was born in {year}.",
            "In {year}, {name} was born.",
            "{name}'s year of birth is {year}.",
            "{name} came into the world in {year}.",
        ],
        &[
            "{name} lives in {town}.",
            "{name} comes from {town}.",
            "{name}'s home town is {town}.",
            "{name} has a house in {town}.",
        ],
        &[
            "{name} works as {aprof}.",
            "{name} is {aprof}.",
            "By profession, {name} is {aprof}.",
        ],
        &[
            "{name} works for {org}.",
            "{name} is employed by {org}.",
            "{org} employs {name}.",
        ],
        &[
            "{name}'s favourite colour is {colour}.",
            "The colour {name} likes best is {colour}.",
            "{name} loves the colour {colour}.",
        ],
        &[
            "{name} has a {pet}.",
            "{name} owns a {pet}.",
            "{name} keeps a {pet} at home.",
        ],
        &[
            "{name}'s {pet} is called {petname}.",
            "{name} has a {pet} named {petname}.",
            "{petname} is the name of {name}'s {pet}.",
        ],
        &[
            "{name}'s sibling is {sib}.",
            "{name} and {sib} are siblings.",
            "{sib} is the sibling of {name}.",
        ],
    ],
    questions: [
        &["In which year was {name} born?", "When was {name} born?"],
        &["Where does {name} live?", "What is {name}'s home town?"],
        &["What is {name}'s profession?", "What does {name} do for a living?"],
        &["Who does {name} work for?", "Which company employs {name}?"],
        &["What is {name}'s favourite colour?", "Which colour does {name} like best?"],
        &["What kind of pet does {name} have?", "Which animal does {name} keep?"],
        &["What is the name of {name}'s pet?", "What is {name}'s pet called?"],
        &["Who is {name}'s sibling?", "Who is the sibling of {name}?"],
    ],
    town_entry: &[
        "{town} is a town founded in {year}. It has about {pop} inhabitants.",
        "Founded in {year}, {town} is home to roughly {pop} people.",
    ],
    org_entry: &[
        "{org} is a {industry} company based in {town}, founded in {year}.",
        "Founded in {year}, {org} works in {industry} from its offices in {town}.",
    ],
    story_open: &[
        "One morning in {town}, {name} woke up early.",
        "It was a quiet day in {town} when {name} went out.",
        "{name} walked through the streets of {town}.",
    ],
    story_events: &[
        "{Pron} took {petname} the {pet} for a long walk.",
        "Later, {name} visited {sib} and they talked for hours.",
        "{petname} the {pet} was waiting at the door.",
        "{Pron} thought about work and smiled.",
        "In the evening, {name} and {sib} shared a meal.",
    ],
    problems: &[
        ("{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?", '+'),
        ("{name} had {a} {item} and gave away {b}. How many {item} are left?", '-'),
        ("{name} packs {a} boxes with {b} {item} each. How many {item} is that in total?", '*'),
    ],
    items: ["apples", "books", "coins", "pencils", "stamps"],
    answer_word: "Answer",
    speaker: ["A", "B"],
    one_word: "Answer in one word.",
    json_fields: "Answer in JSON with the fields \"name\" and \"answer\".",
    list_three: "List three facts about {name}, one per line, each starting with \"- \".",
    table_header: ["Name", "Born", "Town", "Profession"],
    table_title: "Some residents",
    filler: "That is a very interesting question, and I am happy to help you with it. Let me think about it carefully before I answer.",
};

static FR: Lexicon = Lexicon {
    professions: [
        ("enseignant", "enseignante"),
        ("médecin", "médecin"),
        ("agriculteur", "agricultrice"),
        ("ingénieur", "ingénieure"),
        ("boulanger", "boulangère"),
        ("musicien", "musicienne"),
        ("écrivain", "écrivaine"),
        ("pilote", "pilote"),
        ("charpentier", "charpentière"),
        ("infirmier", "infirmière"),
    ],
    a_prof: ["", "", "", "", "", "", "", "", "", ""],
    colours: ["rouge", "bleu", "vert", "jaune", "blanc", "noir", "violet", "orange"],
    colour_np: [
        "le rouge", "le bleu", "le vert", "le jaune", "le blanc", "le noir", "le violet",
        "l'orange",
    ],
    pets: ["chien", "chat", "cheval", "lapin", "perroquet", "poisson"],
    industries: ["logiciel", "transport", "agriculture", "édition", "banque", "médecine"],
    refusal: "Je ne sais pas.",
    facts: [
        &[
            "{name} est {ne} en {year}.",
            "En {year}, {name} est {ne}.",
            "L'année de naissance de {name} est {year}.",
        ],
        &[
            "{name} habite à {town}.",
            "{name} vient de {town}.",
            "La ville de {name} est {town}.",
        ],
        &[
            "{name} est {prof}.",
            "{name} travaille comme {prof}.",
            "De métier, {name} est {prof}.",
        ],
        &[
            "{name} travaille pour {org}.",
            "{name} est {employe} par {org}.",
            "{org} emploie {name}.",
        ],
        &[
            "La couleur préférée de {name} est {colournp}.",
            "{name} adore {colournp}.",
            "{name} préfère {colournp}.",
        ],
        &[
            "{name} a un {pet}.",
            "{name} possède un {pet}.",
            "{name} garde un {pet} à la maison.",
        ],
        &[
            "Le {pet} de {name} s'appelle {petname}.",
            "{name} a un {pet} nommé {petname}.",
            "{petname} est le nom du {pet} de {name}.",
        ],
        &[
            "{sib} est {sibrel} de {name}.",
            "{name} et {sib} sont de la même famille, frère ou sœur.",
        ],
    ],
    questions: [
        &["En quelle année {name} est-{il} {ne} ?", "Quelle est l'année de naissance de {name} ?"],
        &["Où habite {name} ?", "Quelle est la ville de {name} ?"],
        &["Quel est le métier de {name} ?", "Que fait {name} dans la vie ?"],
        &["Pour qui travaille {name} ?", "Quelle entreprise emploie {name} ?"],
        &["Quelle est la couleur préférée de {name} ?"],
        &["Quel animal a {name} ?", "Quel animal de compagnie a {name} ?"],
        &["Comment s'appelle l'animal de {name} ?"],
        &["Qui est le frère ou la sœur de {name} ?"],
    ],
    town_entry: &[
        "{town} est une ville fondée en {year}. Elle compte environ {pop} habitants.",
        "Fondée en {year}, {town} abrite environ {pop} personnes.",
    ],
    org_entry: &[
        "{org} est une entreprise de {industry} basée à {town}, fondée en {year}.",
        "Fondée en {year}, {org} travaille dans le secteur {industry} depuis {town}.",
    ],
    story_open: &[
        "Un matin à {town}, {name} s'est levé tôt.",
        "C'était une journée calme à {town} quand {name} est sorti.",
    ],
    story_events: &[
        "{Pron} a promené {petname}, son {pet}, pendant longtemps.",
        "Plus tard, {name} a rendu visite à {sib}.",
        "{petname} attendait devant la porte.",
        "Le soir, {name} et {sib} ont partagé un repas.",
    ],
    problems: &[
        ("{name} a {a} {item} et en achète {b} de plus. Combien de {item} a {name} maintenant ?", '+'),
        ("{name} avait {a} {item} et en a donné {b}. Combien de {item} reste-t-il ?", '-'),
        ("{name} remplit {a} boîtes de {b} {item} chacune. Combien de {item} en tout ?", '*'),
    ],
    items: ["pommes", "livres", "pièces", "crayons", "timbres"],
    answer_word: "Réponse",
    speaker: ["A", "B"],
    one_word: "Réponds en un seul mot.",
    json_fields: "Réponds en JSON avec les champs \"name\" et \"answer\".",
    list_three: "Donne trois faits sur {name}, un par ligne, chacun commençant par \"- \".",
    table_header: ["Nom", "Naissance", "Ville", "Métier"],
    table_title: "Quelques habitants",
    filler: "C'est une question très intéressante et je suis ravi de vous aider. Laissez-moi réfléchir attentivement avant de répondre.",
};

static SW: Lexicon = Lexicon {
    professions: [
        ("mwalimu", "mwalimu"),
        ("daktari", "daktari"),
        ("mkulima", "mkulima"),
        ("mhandisi", "mhandisi"),
        ("mwokaji", "mwokaji"),
        ("mwanamuziki", "mwanamuziki"),
        ("mwandishi", "mwandishi"),
        ("rubani", "rubani"),
        ("seremala", "seremala"),
        ("muuguzi", "muuguzi"),
    ],
    a_prof: ["", "", "", "", "", "", "", "", "", ""],
    colours: ["nyekundu", "bluu", "kijani", "njano", "nyeupe", "nyeusi", "zambarau", "machungwa"],
    colour_np: ["nyekundu", "bluu", "kijani", "njano", "nyeupe", "nyeusi", "zambarau", "machungwa"],
    pets: ["mbwa", "paka", "farasi", "sungura", "kasuku", "samaki"],
    industries: ["programu", "usafirishaji", "kilimo", "uchapishaji", "benki", "dawa"],
    refusal: "Sijui.",
    facts: [
        &["{name} alizaliwa mwaka {year}.", "Mwaka {year}, {name} alizaliwa."],
        &["{name} anaishi {town}.", "{name} anatoka {town}.", "Mji wa {name} ni {town}."],
        &["{name} ni {prof}.", "Kwa kazi, {name} ni {prof}."],
        &["{name} anafanya kazi katika {org}.", "{name} ameajiriwa na {org}."],
        &["Rangi anayoipenda {name} ni {colour}.", "{name} anapenda rangi ya {colour}."],
        &["{name} ana {pet}.", "{name} anafuga {pet}."],
        &["{pet} wa {name} anaitwa {petname}.", "{name} ana {pet} anayeitwa {petname}."],
        &["{sib} ni ndugu wa {name}.", "{name} na {sib} ni ndugu."],
    ],
    questions: [
        &["{name} alizaliwa mwaka gani?"],
        &["{name} anaishi wapi?", "Mji wa {name} ni upi?"],
        &["Kazi ya {name} ni ipi?"],
        &["{name} anafanya kazi katika kampuni gani?"],
        &["Rangi anayoipenda {name} ni ipi?"],
        &["{name} ana mnyama gani?"],
        &["Mnyama wa {name} anaitwa nani?"],
        &["Ndugu wa {name} ni nani?"],
    ],
    town_entry: &[
        "{town} ni mji ulioanzishwa mwaka {year}. Una wakazi wapatao {pop}.",
    ],
    org_entry: &[
        "{org} ni kampuni ya {industry} iliyoko {town}, iliyoanzishwa mwaka {year}.",
    ],
    story_open: &[
        "Asubuhi moja huko {town}, {name} aliamka mapema.",
        "Ilikuwa siku tulivu huko {town} {name} alipotoka nje.",
    ],
    story_events: &[
        "Alimtembeza {petname}, {pet} wake, kwa muda mrefu.",
        "Baadaye, {name} alimtembelea {sib}.",
        "{petname} alikuwa akisubiri mlangoni.",
        "Jioni, {name} na {sib} walikula pamoja.",
    ],
    problems: &[
        ("{name} ana {item} {a} na ananunua {b} zaidi. {name} ana {item} ngapi sasa?", '+'),
        ("{name} alikuwa na {item} {a} na akatoa {b}. Zimebaki {item} ngapi?", '-'),
        ("{name} anajaza masanduku {a} yenye {item} {b} kila moja. Ni {item} ngapi kwa jumla?", '*'),
    ],
    items: ["machungwa", "vitabu", "sarafu", "penseli", "stempu"],
    answer_word: "Jibu",
    speaker: ["A", "B"],
    one_word: "Jibu kwa neno moja.",
    json_fields: "Jibu kwa JSON yenye sehemu \"name\" na \"answer\".",
    list_three: "Taja mambo matatu kuhusu {name}, moja kwa kila mstari, kila moja likianza na \"- \".",
    table_header: ["Jina", "Alizaliwa", "Mji", "Kazi"],
    table_title: "Baadhi ya wakazi",
    filler: "Hilo ni swali zuri sana, na nina furaha kukusaidia. Niruhusu nifikirie kwa makini kabla ya kujibu.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clozes_cut_statements_before_the_value() {
        assert_eq!(
            Lang::En.cloze(Relation::BirthYear, "Kea Jemda").as_deref(),
            Some("Kea Jemda was born in")
        );
        assert_eq!(
            Lang::En.cloze(Relation::HomeTown, "Kea").as_deref(),
            Some("Kea lives in")
        );
        assert_eq!(Lang::En.cloze(Relation::PetName, "Kea"), None);
        // In English every relation but pet names has a cloze; French and Swahili name
        // siblings mid-sentence too. Clozes name the person and leave no slot.
        for lang in Lang::ALL {
            let mut found = 0;
            for rel in Relation::ALL {
                match lang.cloze(rel, "Zyx") {
                    Some(c) => {
                        assert!(c.contains("Zyx") && !c.contains('{'), "{c}");
                        found += 1;
                    }
                    None => assert!(
                        rel == Relation::PetName || (lang != Lang::En && rel == Relation::Sibling),
                        "{lang:?} {rel:?}"
                    ),
                }
            }
            assert!(found >= 6, "{lang:?}");
        }
    }

    #[test]
    fn fill_replaces_known_slots() {
        let mut s = String::new();
        fill(
            &mut s,
            "{name} was born in {year}. {x}",
            &[("name", "Kalo"), ("year", "1984")],
        );
        assert_eq!(s, "Kalo was born in 1984. {x}");
        let mut s = String::new();
        fill(&mut s, "open { brace", &[]);
        assert_eq!(s, "open { brace");
    }
}
