//! The raw web (`fmlab world --raw`): `raw.jsonl`, the clean corpus laid out as web pages
//! plus what real crawls carry, every page labelled with the ground truth of what it is, so
//! that curation's recall and precision on it are measured exactly.
//!
//! Design:
//! - **Pages, not documents.** World documents are a few sentences (30 words on average;
//!   encyclopedia entries 12), below Gopher's 50-word floor. The corpus is read back in
//!   order and its documents are gathered per (language, site) into pages of a log-uniform
//!   target length between `min_words` and `max_words` (100–600), paragraphs joined by a
//!   blank line; every corpus document lands in exactly one page (`sources`). Prose
//!   (biography, story, dialogue, encyclopedia) shares one site per language; arithmetic,
//!   code and tables have sites of their own, whose pages (worksheets, code pastes,
//!   registries) are three times as long. A page's `domain` is the one most of its words
//!   come from.
//! - **Pages as real pages are.** The world's prose is formulaic: a page of one template's
//!   documents repeats its fixed words ("thought about work and smiled") until Gopher's
//!   duplicated 5-gram rule drops it, which is the world's fault, not the page's. So a site
//!   keeps 16 pages open and a document goes to the one sharing the fewest of its word
//!   5-grams, and a page never holds one document twice (the corpus repeats some; Gopher's
//!   duplicate-paragraph rule). Measured with datatrove 0.10's four FineWeb filters on the
//!   English prose pages of a 5 MB world: gathered in order, 76% kept; spread over 8 open
//!   pages, 89%; over 16, 91% (stories 84%, dialogues 90%, biographies 97%).
//! - **Clean pages are still what the world is**: arithmetic, code and table pages fail
//!   Gopher's share of words with letters (0.71, 0.35 and 0.42 of their tokens, against a
//!   floor of 0.8: no layout passes them, as FineWeb drops real code and tables); French
//!   and Swahili pages fail English stop words. Those are false positives the measurement
//!   should count, not hide.
//! - **Boilerplate** (a share of clean pages, exact by count): header lines, footer lines
//!   fixed per host (so line-level dedup sees a site's footer repeat), and now and then one
//!   between paragraphs. About two thirds of the catalogue is removable by C4's line rules
//!   (fewer than 3 words, "javascript", a policy phrase); the rest ("Subscribe to our
//!   newsletter…", "Copyright © …") is not, as on the real web. `added_lines` names them.
//! - **Added junk**, interleaved after clean pages so that `junk_share` of all pages are
//!   junk, the kinds in their weights' proportions (exact to one page):
//!   - `near_duplicate`: a copy of a recent clean page (from the last 512; popular pages get
//!     copied several times) on a mirror URL, with word edits (substitute, delete, insert,
//!     swap) on 0.5–3% of its words, at least one — from near-certain to borderline for
//!     MinHash's 14×8 bands; `duplicate_of`, `edits`;
//!   - `wrong_language`: news pages in German, Spanish, Portuguese, Turkish, Italian or
//!     Dutch about the world's own people and towns (so names do not give the language
//!     away), sentences dealt from a deck of 20 templates per language (a page repeats
//!     one only after using all), pages up to 250 words, so that Gopher's repetition rules
//!     pass them (datatrove: 205 of 206) and language ID is what catches them (or, with no
//!     language ID, English stop words); `lang` is the page's language;
//!   - `spam` (`style`): `keyword_list` (short repeated keyword lines), `stuffed` (keyword-
//!     stuffed sentences) or `doorway` (a real-looking biography buried under a tag cloud) —
//!     for Gopher repetition's line and n-gram shares, with FineWeb's and C4's rules as a
//!     second net;
//!   - `markup` (`style`): `tag_soup` (HTML tag lines around real text: short lines,
//!     repeated lines, lines without punctuation), `script` (JS/CSS: C4's `{`),
//!     `lorem_ipsum` (a template page) or `entities` (words glued by `&nbsp;` and friends:
//!     Gopher's mean word length);
//!   - `blocklisted_url`: fluent gambling/streaming promotions on hosts listed in
//!     `raw-blocklist.txt` (written beside it): only a URL blocklist catches them.
//!
//! Pages made up for junk (foreign, spam, markup) take their people, towns and sentences
//! from the knowledge base and `docs`, never from the corpus, so they are not near-duplicates
//! of clean pages. Everything is a pure function of the configuration: the corpus is read
//! back, and randomness comes from the world's seeded streams.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;

pub use super::config::RawConfig;
use super::docs::{self, Domain};
use super::kb::Kb;
use super::lang::{fill, Lang};
pub use super::raw_spec::{JunkKind, RawRecord, RawSummary};
use super::raw_text as t;
use super::records::Document;
use super::WorldConfig;
use crate::io::AtomicFile;
use crate::rng::{pick_weighted, Rng};
use crate::{Error, Result};

/// A page being gathered from corpus documents of one site.
struct Pending {
    sources: Vec<u64>,
    /// Words per domain (in [`Domain::ALL`]'s order): the page's domain is the largest.
    by_domain: [usize; 7],
    paragraphs: Vec<String>,
    /// Hashes of the page's word 5-grams (lowercased).
    grams: HashSet<u64>,
    words: usize,
    target: usize,
}

/// Pages a site gathers at once: a document goes to the open page sharing the fewest of
/// its word 5-grams, so that one template's documents spread over a site's pages instead
/// of filling one (the world's prose is formulaic; a real page is not ten variations of
/// one sentence). Datatrove's filters on a 5 MB world's English story-heavy pages: one
/// open page per site, 63% kept; 8, 79%; 16, 84%.
const OPEN_PAGES: usize = 16;

/// Worksheets, code pastes and registries (arithmetic, code and table sites) are this many
/// times longer than prose pages: such pages are long lists on the web, and a few of them
/// among many prose pages, not a third of all pages.
const LIST_PAGE_FACTOR: f64 = 3.0;

/// Foreign pages are at most this long (or `min_words`): about one deal of their 20
/// templates. Longer, they repeat every template's fixed words and Gopher's repetition
/// rule drops them before language ID sees them (datatrove 0.10 on a 5 MB world, pages up
/// to 600 words: 4 of 116 under 300 words dropped by repetition, 85 of 94 above; up to
/// 250: 1 of 206).
const FOREIGN_MAX_WORDS: f64 = 250.0;

/// FNV-1a hashes of `text`'s lowercased word 5-grams (its words joined, when fewer).
fn word_grams(text: &str) -> Vec<u64> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let hash = |ws: &[String]| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in ws.join(" ").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    if words.len() < 5 {
        return vec![hash(&words)];
    }
    words.windows(5).map(hash).collect()
}

/// A site's pages still open when the corpus ends, merged in order while short of their
/// target and without a document in common, so that a site ends on one short page rather
/// than [`OPEN_PAGES`].
fn merge_leftovers(open: Vec<Pending>) -> Vec<Pending> {
    let mut out: Vec<Pending> = Vec::with_capacity(open.len());
    for page in open {
        match out.last_mut() {
            Some(last)
                if last.words < last.target
                    && !page.paragraphs.iter().any(|p| last.paragraphs.contains(p)) =>
            {
                last.sources.extend(page.sources);
                last.paragraphs.extend(page.paragraphs);
                last.grams.extend(page.grams);
                last.words += page.words;
                for (a, b) in last.by_domain.iter_mut().zip(page.by_domain) {
                    *a += b;
                }
            }
            _ => out.push(page),
        }
    }
    out
}

/// The open page a document goes to: of those not holding it already (a page never holds
/// one document twice: Gopher's duplicate paragraphs), the one sharing the fewest of its
/// 5-grams, the oldest on a tie; `None` when a new page should open (none takes it, or all
/// share some and fewer than [`OPEN_PAGES`] are open).
fn choose_page(open: &[Pending], text: &str, grams: &[u64]) -> Option<usize> {
    let best = open
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.paragraphs.iter().any(|q| q == text))
        .map(|(i, p)| (grams.iter().filter(|g| p.grams.contains(g)).count(), i))
        .min()?;
    if best.0 > 0 && open.len() < OPEN_PAGES {
        return None;
    }
    Some(best.1)
}

/// Writes `raw.jsonl` and `raw-blocklist.txt` into `dir`, reading the world's
/// `corpus.jsonl` there back.
pub(super) fn write_raw(
    dir: &Path,
    config: &WorldConfig,
    raw: &RawConfig,
    kb: &Kb,
    seen: &[u32],
) -> Result<RawSummary> {
    raw.validate()?;
    let blocklist: String = t::BLOCKED_HOSTS.iter().map(|h| format!("{h}\n")).collect();
    fmlab_formats::write_atomically(&dir.join("raw-blocklist.txt"), blocklist.as_bytes())?;
    let path = dir.join("corpus.jsonl");
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut w = Web {
        out: AtomicFile::create(&dir.join("raw.jsonl"))?,
        config,
        raw,
        kb,
        seen,
        rng: Rng::stream(config.seed, "raw-pages"),
        junk_rng: Rng::stream(config.seed, "raw-junk"),
        line: Vec::with_capacity(8192),
        summary: RawSummary::default(),
        recent: VecDeque::new(),
        clean_pages: 0,
        junk_pages: 0,
        kind_counts: vec![0; raw.kinds.len()],
    };
    let mut sites: BTreeMap<(Lang, Domain), Vec<Pending>> = BTreeMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(&path, e))?;
        let doc: Document = serde_json::from_str(&line).map_err(|e| Error::Parse {
            path: path.clone(),
            line: i + 1,
            message: format!("not a corpus document: {e}"),
        })?;
        let words = doc.text.split_whitespace().count();
        let grams = word_grams(&doc.text);
        let site = site(doc.domain);
        let open = sites.entry((doc.lang, site)).or_default();
        let at = match choose_page(open, &doc.text, &grams) {
            Some(at) => at,
            None => {
                if open.len() >= OPEN_PAGES {
                    // Every open page holds this document: the fullest goes out.
                    let fullest = (0..open.len()).max_by_key(|&j| (open[j].words, j));
                    if let Some(j) = fullest {
                        w.clean_page(doc.lang, open.remove(j))?;
                    }
                }
                open.push(Pending {
                    sources: Vec::new(),
                    by_domain: [0; 7],
                    paragraphs: Vec::new(),
                    grams: HashSet::new(),
                    words: 0,
                    target: w.page_target(site),
                });
                open.len() - 1
            }
        };
        let page = &mut open[at];
        page.sources.push(doc.id);
        page.paragraphs.push(doc.text);
        page.grams.extend(grams);
        page.words += words;
        page.by_domain[doc.domain as usize] += words;
        if page.words >= page.target {
            w.clean_page(doc.lang, open.remove(at))?;
        }
    }
    for ((lang, _), open) in std::mem::take(&mut sites) {
        for page in merge_leftovers(open) {
            w.clean_page(lang, page)?;
        }
    }
    w.out.finish()?;
    Ok(w.summary)
}

/// The raw web being written.
struct Web<'a> {
    out: AtomicFile,
    config: &'a WorldConfig,
    raw: &'a RawConfig,
    kb: &'a Kb,
    seen: &'a [u32],
    /// Page targets and boilerplate.
    rng: Rng,
    /// Added junk pages.
    junk_rng: Rng,
    line: Vec<u8>,
    summary: RawSummary,
    /// The last clean pages, which near-duplicates copy.
    recent: VecDeque<RawRecord>,
    clean_pages: u64,
    junk_pages: u64,
    kind_counts: Vec<u64>,
}

impl Web<'_> {
    /// A page's length target: log-uniform in the configured range, [`LIST_PAGE_FACTOR`]
    /// times that on arithmetic, code and table sites.
    fn page_target(&mut self, site: Domain) -> usize {
        let (lo, hi) = (self.raw.min_words as f64, self.raw.max_words as f64);
        let factor = match site {
            Domain::Arithmetic | Domain::Code | Domain::Table => LIST_PAGE_FACTOR,
            _ => 1.0,
        };
        (factor * lo * (hi / lo).powf(self.rng.f64())).round() as usize
    }

    /// Writes one page of corpus documents (with boilerplate on its share of pages), then
    /// the junk pages that keep the junk share.
    fn clean_page(&mut self, lang: Lang, page: Pending) -> Result<()> {
        let domain = (0..7)
            .max_by_key(|&i| (page.by_domain[i], std::cmp::Reverse(i)))
            .map_or(Domain::Biography, |i| Domain::ALL[i]);
        let n = self.clean_pages as f64;
        let boilerplate =
            ((n + 1.0) * self.raw.boilerplate).floor() > (n * self.raw.boilerplate).floor();
        self.clean_pages += 1;
        let (host, path) = *self.rng.pick(&t::HOSTS[domain as usize]);
        let host = match lang {
            Lang::En => host.to_string(),
            other => format!("{}.{}", other.code(), host.trim_start_matches("www.")),
        };
        let url = format!(
            "https://{host}{path}{}",
            slug(&page.paragraphs[0], self.summary.documents)
        );
        let mut record = RawRecord {
            id: self.summary.documents,
            junk: None,
            lang: lang.code().into(),
            domain: Some(domain),
            url,
            sources: page.sources,
            added_lines: Vec::new(),
            duplicate_of: None,
            edits: None,
            style: None,
            text: page.paragraphs.join("\n\n"),
        };
        if boilerplate {
            self.add_boilerplate(&mut record, &host, domain);
        } else {
            if self.recent.len() == 512 {
                self.recent.pop_front();
            }
            self.recent.push_back(record.clone());
        }
        self.write(&record)?;
        let share = self.raw.junk_share;
        let target = (self.clean_pages as f64 * share / (1.0 - share)).round() as u64;
        while self.junk_pages < target && !self.raw.kinds.is_empty() {
            self.junk_page()?;
        }
        Ok(())
    }

    /// Adds header, footer (fixed per host) and sometimes mid-page boilerplate lines.
    fn add_boilerplate(&mut self, record: &mut RawRecord, host: &str, domain: Domain) {
        let mut site = Rng::stream(self.config.seed, host);
        let footer: Vec<usize> = (0..2 + site.below(3))
            .map(|_| site.below(t::BOILERPLATE.len()))
            .collect();
        let rng = &mut self.rng;
        let section = format!("{} › {}", domain.name(), record.id);
        let year = rng.range(2005, 2024).to_string();
        let day = rng.range(1, 28).to_string();
        let month = *rng.pick(&t::MONTHS);
        let slots = [
            ("year", year.as_str()),
            ("site", host),
            ("day", day.as_str()),
            ("month", month),
            ("section", section.as_str()),
        ];
        let line = |i: usize| {
            let mut s = String::new();
            fill(&mut s, t::BOILERPLATE[i].0, &slots);
            s
        };
        let body: Vec<&str> = record.text.split('\n').collect();
        let mut lines: Vec<(String, bool)> = Vec::with_capacity(body.len() + 8);
        for _ in 0..1 + rng.below(3) {
            lines.push((line(rng.below(t::BOILERPLATE.len())), true));
        }
        for (i, l) in body.iter().enumerate() {
            // Between paragraphs, now and then: "Advertisement", "Read more »"…
            if l.is_empty() && i > 0 && rng.chance(0.15) {
                lines.push((line(rng.below(t::BOILERPLATE.len())), true));
                lines.push((String::new(), false));
            }
            lines.push((l.to_string(), false));
        }
        for i in footer {
            lines.push((line(i), true));
        }
        record.added_lines = lines
            .iter()
            .enumerate()
            .filter(|x| x.1 .1)
            .map(|x| x.0)
            .collect();
        self.summary.boilerplate_lines += record.added_lines.len() as u64;
        record.text = lines
            .into_iter()
            .map(|x| x.0)
            .collect::<Vec<_>>()
            .join("\n");
        record.junk = Some(JunkKind::Boilerplate);
    }

    /// One added junk page, of the kind furthest behind its share.
    fn junk_page(&mut self) -> Result<()> {
        let total: f64 = self.raw.kinds.iter().map(|k| k.1).sum();
        let next = (self.junk_pages + 1) as f64;
        let mut best = 0;
        let mut best_deficit = f64::MIN;
        for (i, (_, w)) in self.raw.kinds.iter().enumerate() {
            let deficit = w / total * next - self.kind_counts[i] as f64;
            if deficit > best_deficit {
                best = i;
                best_deficit = deficit;
            }
        }
        self.kind_counts[best] += 1;
        self.junk_pages += 1;
        let id = self.summary.documents;
        let kind = self.raw.kinds[best].0;
        let record = match kind {
            // `validate` keeps boilerplate out of the added kinds.
            JunkKind::NearDuplicate | JunkKind::Boilerplate => self.near_duplicate(id),
            JunkKind::WrongLanguage => self.foreign(id),
            JunkKind::Spam => self.spam(id),
            JunkKind::Markup => self.markup(id),
            JunkKind::BlocklistedUrl => self.blocked(id),
        };
        self.write(&record)
    }

    fn write(&mut self, record: &RawRecord) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(Error::Json)?;
        self.line.push(b'\n');
        self.out.write(&self.line)?;
        self.summary.documents += 1;
        self.summary.bytes += record.text.len() as u64;
        let kind = record.junk.map_or("clean", JunkKind::name);
        *self.summary.by_kind.entry(kind.into()).or_insert(0) += 1;
        Ok(())
    }

    /// A copy of a recent clean page with word edits, on a mirror URL.
    fn near_duplicate(&mut self, id: u64) -> RawRecord {
        let rng = &mut self.junk_rng;
        let Some(original) = self.recent.get(rng.below(self.recent.len().max(1))) else {
            // No clean page yet (a first page with boilerplate): a copy of nothing is
            // spam's business.
            return self.spam(id);
        };
        let words = original.text.split_whitespace().count();
        let rate = 0.005 + 0.025 * rng.f64();
        let edits = ((words as f64 * rate).round() as usize).max(1);
        let text = edit_words(&original.text, edits, rng);
        let url = match rng.below(4) {
            0 => original.url.replacen("https://", "https://mirror.", 1),
            1 => format!("{}?utm_source=feed&utm_medium=rss", original.url),
            2 => format!("{}/amp", original.url),
            _ => original.url.replacen("https://", "http://", 1) + "?print=1",
        };
        RawRecord {
            id,
            junk: Some(JunkKind::NearDuplicate),
            lang: original.lang.clone(),
            domain: original.domain,
            url,
            sources: original.sources.clone(),
            added_lines: Vec::new(),
            duplicate_of: Some(original.id),
            edits: Some(edits as u32),
            style: None,
            text,
        }
    }

    /// A seen person's slots for templates outside the lexicon, and their pet's index.
    fn person_slots(&mut self) -> ([(&'static str, String); 6], usize) {
        let p = &self.kb.people[self.seen[self.junk_rng.below(self.seen.len())] as usize];
        let slots = [
            ("name", p.name.clone()),
            ("year", p.birth_year.to_string()),
            ("town", self.kb.places[p.home_town as usize].name.clone()),
            ("org", self.kb.orgs[p.employer as usize].name.clone()),
            ("petname", p.pet_name.clone()),
            ("sib", self.kb.people[p.sibling as usize].name.clone()),
        ];
        (slots, p.pet as usize)
    }

    /// A news page in a language the world does not have, about the world's people: a
    /// paragraph per person, its sentences dealt from a shuffled deck of the language's 20
    /// templates (facts and fillers), so that a page repeats a template only once it has
    /// used them all — as often as the world's own prose repeats its templates, so that
    /// Gopher's repetition rules pass it and language ID is what catches it.
    fn foreign(&mut self, id: u64) -> RawRecord {
        let f = &t::FOREIGN[self.junk_rng.below(t::FOREIGN.len())];
        let (lo, hi) = (self.raw.min_words as f64, self.raw.max_words as f64);
        let hi = hi.min(lo.max(FOREIGN_MAX_WORDS));
        let target = (lo * (hi / lo).powf(self.junk_rng.f64())).round() as usize;
        let mut deck: Vec<usize> = Vec::new();
        let mut text = String::new();
        let mut words = 0;
        while words < target {
            let (slots, pet) = self.person_slots();
            let pet = f.pets[pet % f.pets.len()];
            let mut s: Vec<(&str, &str)> = slots.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.push(("pet", pet));
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            let start = text.len();
            for i in 0..2 + self.junk_rng.below(4) {
                if deck.is_empty() {
                    deck = (0..f.facts.len() + f.fillers.len()).collect();
                    self.junk_rng.shuffle(&mut deck);
                }
                let Some(k) = deck.pop() else { break };
                if i > 0 {
                    text.push(' ');
                }
                let template = match f.facts.get(k) {
                    Some(fact) => fact,
                    None => f.fillers[k - f.facts.len()],
                };
                fill(&mut text, template, &s);
            }
            words += text[start..].split_whitespace().count();
        }
        let url = format!("https://{}/{}", f.host, slug(&text, id));
        self.made_up(id, JunkKind::WrongLanguage, f.code, url, None, text)
    }

    fn made_up(
        &self,
        id: u64,
        kind: JunkKind,
        lang: &str,
        url: String,
        style: Option<&str>,
        text: String,
    ) -> RawRecord {
        RawRecord {
            id,
            junk: Some(kind),
            lang: lang.into(),
            domain: None,
            url,
            sources: Vec::new(),
            added_lines: Vec::new(),
            duplicate_of: None,
            edits: None,
            style: style.map(String::from),
            text,
        }
    }

    /// Paragraphs of the world's prose (biographies and stories of seen people) in one of
    /// its languages, about `words` long.
    fn prose(&mut self, lang: Lang, words: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut n = 0;
        while n < words {
            let kb = self.kb;
            let p = &kb.people[self.seen[self.junk_rng.below(self.seen.len())] as usize];
            let mut s = String::new();
            if self.junk_rng.chance(0.5) {
                docs::biography(&mut s, kb, p, lang, &mut self.junk_rng);
            } else {
                docs::story(&mut s, kb, p, lang, &mut self.junk_rng);
            }
            n += s.split_whitespace().count();
            out.push(s);
        }
        out
    }

    fn spam(&mut self, id: u64) -> RawRecord {
        let kb = self.kb;
        let rng = &mut self.junk_rng;
        let kw = rng.pick_str(t::SPAM_PRODUCTS);
        let towns: Vec<&str> = (0..1 + rng.below(3))
            .map(|_| kb.places[rng.below(kb.places.len())].name.as_str())
            .collect();
        let phrase = |rng: &mut Rng, pool: &[&str]| {
            let mut s = String::new();
            fill(
                &mut s,
                rng.pick_str(pool),
                &[("kw", kw), ("town", towns[rng.below(towns.len())])],
            );
            s
        };
        let style = ["keyword_list", "stuffed", "doorway"][rng.below(3)];
        let mut text = String::new();
        match style {
            "keyword_list" => {
                let lines: Vec<String> = (0..4 + rng.below(6))
                    .map(|_| phrase(rng, t::SPAM_PHRASES))
                    .collect();
                text.push_str(&format!("{} – {}", capitalise(kw), towns[0]));
                for _ in 0..20 + rng.below(50) {
                    text.push('\n');
                    text.push_str(&lines[rng.below(lines.len())]);
                }
            }
            "stuffed" => {
                let target = 80 + rng.below(300);
                while text.split_whitespace().count() < target {
                    text.push_str(if text.is_empty() {
                        ""
                    } else if rng.chance(0.2) {
                        "\n\n"
                    } else {
                        " "
                    });
                    text.push_str(&capitalise(&phrase(rng, t::SPAM_SENTENCES)));
                }
            }
            _ => {
                let words = 60 + self.junk_rng.below(120);
                text = self.prose(Lang::En, words).join("\n\n");
                let rng = &mut self.junk_rng;
                let tags: Vec<String> = (0..30 + rng.below(50))
                    .map(|_| phrase(rng, t::SPAM_PHRASES))
                    .collect();
                text.push_str("\n\nTags: ");
                text.push_str(&tags.join(", "));
            }
        }
        let host = format!(
            "www.{}-{}.info",
            kw.replace(' ', "-"),
            towns[0].to_lowercase()
        );
        let url = format!("http://{host}/{}.html", slug(&text, id));
        self.made_up(id, JunkKind::Spam, "en", url, Some(style), text)
    }

    fn markup(&mut self, id: u64) -> RawRecord {
        let lang = pick_weighted(&self.config.languages, &mut self.junk_rng);
        let style = ["tag_soup", "script", "lorem_ipsum", "entities"][self.junk_rng.below(4)];
        let words = 40 + self.junk_rng.below(200);
        let prose = self.prose(lang, words);
        let rng = &mut self.junk_rng;
        let debris = |rng: &mut Rng, pool: &[&str]| {
            let w = prose[0]
                .split_whitespace()
                .nth(rng.below(4))
                .unwrap_or("page")
                .to_lowercase();
            let w: String = w.chars().filter(|c| c.is_alphanumeric()).collect();
            rng.pick_str(pool)
                .replace("{n}", &rng.range(1, 999).to_string())
                .replace("{w}", &w)
        };
        let mut lines: Vec<String> = Vec::new();
        match style {
            "tag_soup" | "script" => {
                let pool = if style == "script" {
                    t::SCRIPT
                } else {
                    t::TAGS
                };
                for p in &prose {
                    for _ in 0..2 + rng.below(6) {
                        lines.push(debris(rng, t::TAGS));
                    }
                    if style == "script" {
                        lines.push("<script type=\"text/javascript\">".into());
                        for _ in 0..1 + rng.below(4) {
                            lines.push(debris(rng, pool));
                        }
                        lines.push("</script>".into());
                    }
                    lines.push(p.clone());
                }
            }
            "lorem_ipsum" => {
                lines.push("Sample Page".into());
                lines.push(prose[0].clone());
                for _ in 0..1 + rng.below(4) {
                    lines.push(String::new());
                    lines.push(t::LOREM.into());
                }
            }
            _ => {
                for p in &prose {
                    let mut s = String::new();
                    for (i, word) in p.split(' ').enumerate() {
                        if i > 0 {
                            if rng.chance(0.6) {
                                s.push_str(rng.pick_str(t::ENTITIES));
                            } else {
                                s.push(' ');
                            }
                        }
                        s.push_str(word);
                    }
                    lines.push(s);
                    lines.push(
                        (0..3 + rng.below(8))
                            .map(|_| rng.pick_str(t::ENTITIES))
                            .collect(),
                    );
                }
            }
        }
        let site = rng.below(t::HOSTS.len());
        let (host, path) = *rng.pick(&t::HOSTS[site]);
        let url = format!("https://{host}{path}index.php?p={}", rng.range(1, 99_999));
        self.made_up(
            id,
            JunkKind::Markup,
            lang.code(),
            url,
            Some(style),
            lines.join("\n"),
        )
    }

    /// A fluent promotion on a blocklisted host.
    fn blocked(&mut self, id: u64) -> RawRecord {
        let kb = self.kb;
        let rng = &mut self.junk_rng;
        let host = rng.pick_str(t::BLOCKED_HOSTS);
        let town = &kb.places[rng.below(self.kb.places.len())].name;
        let mut order: Vec<usize> = (0..t::PROMO.len()).collect();
        rng.shuffle(&mut order);
        let mut text = String::new();
        for (i, &k) in order.iter().take(5 + rng.below(5)).enumerate() {
            text.push_str(if i == 0 {
                ""
            } else if rng.chance(0.3) {
                "\n\n"
            } else {
                " "
            });
            let n = rng.range(10, 200).to_string();
            fill(&mut text, t::PROMO[k], &[("town", town), ("n", &n)]);
        }
        let url = format!("https://{host}/{}", slug(&text, id));
        self.made_up(id, JunkKind::BlocklistedUrl, "en", url, None, text)
    }
}

/// The site a corpus document's page belongs to: prose (biographies, stories, dialogues,
/// encyclopedia entries) is mixed on one site per language, as a portal's pages are — pages
/// of one prose template repeat its fixed words until Gopher's duplicated n-gram rules drop
/// them — while arithmetic, code and tables keep sites of their own.
fn site(domain: Domain) -> Domain {
    match domain {
        Domain::Story | Domain::Dialogue | Domain::Encyclopedia => Domain::Biography,
        other => other,
    }
}

/// A URL path piece from a page's first words and its id: `kourela-loulhai-walked-1234`.
fn slug(text: &str, id: u64) -> String {
    let mut s: String = text
        .split_whitespace()
        .take(4)
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if !s.is_empty() {
        s.push('-');
    }
    s.push_str(&id.to_string());
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Small words inserted by near-duplicate edits.
const INSERTS: [&str; 8] = ["also", "really", "the", "very", "now", "then", "just", "so"];

/// `text` with `edits` word edits (substitute with another of its words, delete, insert a
/// small word, swap with the next word), keeping its lines and their indentation.
fn edit_words(text: &str, edits: usize, rng: &mut Rng) -> String {
    let mut lines: Vec<(String, Vec<String>)> = text
        .split('\n')
        .map(|l| {
            let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
            (indent, l.split_whitespace().map(String::from).collect())
        })
        .collect();
    for _ in 0..edits {
        let total: usize = lines.iter().map(|l| l.1.len()).sum();
        if total < 2 {
            break;
        }
        let mut g = rng.below(total);
        let Some(words) = lines.iter_mut().map(|l| &mut l.1).find(|w| {
            if g < w.len() {
                true
            } else {
                g -= w.len();
                false
            }
        }) else {
            break;
        };
        match rng.below(4) {
            0 => {
                let other = words[rng.below(words.len())].clone();
                words[g] = if other == words[g] {
                    INSERTS[rng.below(8)].into()
                } else {
                    other
                };
            }
            1 if words.len() > 1 => {
                words.remove(g);
            }
            2 => words.insert(g, INSERTS[rng.below(8)].into()),
            _ if g + 1 < words.len() && words[g] != words[g + 1] => words.swap(g, g + 1),
            _ => words.insert(g, INSERTS[rng.below(8)].into()),
        }
    }
    lines
        .into_iter()
        .map(|(indent, words)| {
            if words.is_empty() {
                String::new()
            } else {
                indent + &words.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_change_few_words_and_keep_lines() {
        let text = "one two three four five six\n\n    seven eight nine ten";
        let mut rng = Rng::new(3);
        for n in 1..4 {
            let out = edit_words(text, n, &mut rng);
            assert_ne!(out, text);
            assert_eq!(out.split('\n').count(), 3, "{out}");
            assert!(out.split('\n').nth(2).unwrap().starts_with("    "), "{out}");
            let diff = out.split_whitespace().count() as i64 - 10;
            assert!(diff.abs() <= n as i64, "{out}");
        }
    }

    #[test]
    fn slugs_and_bad_configs() {
        assert_eq!(
            slug("Kourela Loulhai, walked far away", 7),
            "kourela-loulhai-walked-far-7"
        );
        assert_eq!(slug("", 7), "7");
        for c in [
            RawConfig {
                junk_share: 0.95,
                ..RawConfig::default()
            },
            RawConfig {
                kinds: vec![(JunkKind::Boilerplate, 1.0)],
                ..RawConfig::default()
            },
            RawConfig {
                kinds: vec![],
                ..RawConfig::default()
            },
            RawConfig {
                min_words: 50,
                max_words: 40,
                ..RawConfig::default()
            },
        ] {
            assert!(c
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("world: raw web:"));
        }
        let mut c = RawConfig::default();
        c.set_kinds("spam=1,markup=0.5").unwrap();
        assert_eq!(
            c.kinds,
            vec![(JunkKind::Spam, 1.0), (JunkKind::Markup, 0.5)]
        );
        assert!(c
            .set_kinds("junk=1")
            .unwrap_err()
            .to_string()
            .contains("junk"));
    }
}
