//! The synthetic world: a seeded knowledge base rendered into a multilingual,
//! multi-domain corpus, and the SFT, preference and evaluation sets derived from it, all a
//! pure function of ([`WorldConfig`]).
//!
//! Files (JSONL, one object per line; schemas in `docs/world.md`), each written by its own
//! function under one skeleton ([`write_world`]): the corpus here, the sets derived from it
//! in `sets.rs`:
//! - `corpus.jsonl`: `{id, domain, lang, text, people}`;
//! - `kb.jsonl`: one fact per line, `{subject, subject_id, relation, values{lang}, mentions, split}`;
//! - `sft.jsonl`: `{id, kind, lang, messages[{role, content}]}`;
//! - `preferences.jsonl`: `{id, kind, lang, prompt[...], chosen, rejected, rejected_kind}`;
//! - `eval.jsonl`: [`EvalItem`] per line;
//! - `prompts.jsonl`: an eval item per line, judge-able training questions (never eval's);
//! - `raw.jsonl` and `raw-blocklist.txt` (with [`WorldConfig::raw`]): the raw web, the
//!   corpus as pages plus labelled crawl junk (`raw.rs`);
//! - `parallel.jsonl`: `{en, fr, sw}`, the same fact in each language (for tokenizer
//!   premiums);
//! - `manifest.json`: the configuration and counts.

mod config;
pub mod docs;
pub mod kb;
pub mod lang;
pub mod raw;
mod raw_spec;
mod raw_text;
mod records;
mod sets;
mod values;

pub use config::{WorldConfig, FREQUENT_MENTIONS};
pub use raw::{JunkKind, RawConfig, RawRecord, RawSummary};
pub use records::{Conversation, Document, EvalItem, Format, Preference, Turn, WorldSummary};
pub use sets::paraphrases;
pub use values::{named_number, Named, ValueIndex};

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::io::AtomicFile;
use crate::rng::{pick_weighted, Rng, Zipf};
use crate::{Error, Result};
use docs::Domain;
use kb::{Kb, Person};
use sets::Sets;

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    config: &'a WorldConfig,
    summary: &'a WorldSummary,
}

/// The configuration a world folder was written with (its `manifest.json`): with
/// [`Kb::generate`]`(config.seed, config.people(), config.held_out)` it rebuilds the
/// knowledge base.
pub fn read_config(dir: &Path) -> Result<WorldConfig> {
    #[derive(serde::Deserialize)]
    struct Head {
        format: String,
        config: WorldConfig,
    }
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|error| Error::Read {
        path: path.clone(),
        error,
    })?;
    let head: Head = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.clone(),
        line: e.line(),
        message: format!("not a world manifest: {e}"),
    })?;
    if head.format != "fmlab-world-1" {
        return Err(Error::Parse {
            path,
            line: 1,
            message: format!(
                "format {:?}: this build reads \"fmlab-world-1\"",
                head.format
            ),
        });
    }
    Ok(head.config)
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
    let mut mentions = vec![0u32; kb.people.len()];
    let mut summary = WorldSummary {
        people: kb.people.len() as u64,
        ..WorldSummary::default()
    };
    summary.documents = write_lines(dir, "corpus.jsonl", |out| {
        write_corpus(
            out,
            config,
            &kb,
            &seen,
            &mut mentions,
            &mut summary,
            &mut progress,
        )
    })?;
    progress(summary.corpus_bytes);
    if let Some(raw) = &config.raw {
        summary.raw = Some(raw::write_raw(dir, config, raw, &kb, &seen)?);
    }

    let sets = Sets::new(config, &kb, &seen, mentions);
    summary.facts = write_lines(dir, "kb.jsonl", |out| sets.facts(out))?;
    let mut asked = HashSet::new();
    summary.eval_items = write_lines(dir, "eval.jsonl", |out| sets.eval(out, &mut asked))?;
    summary.conversations = write_lines(dir, "sft.jsonl", |out| sets.sft(out, &asked))?;
    summary.preferences = write_lines(dir, "preferences.jsonl", |out| {
        sets.preferences(out, &asked)
    })?;
    summary.prompts = write_lines(dir, "prompts.jsonl", |out| sets.prompts(out, &asked))?;
    summary.parallel = write_lines(dir, "parallel.jsonl", |out| sets.parallel(out))?;

    let manifest = Manifest {
        format: "fmlab-world-1",
        config,
        summary: &summary,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(Error::Json)?;
    fmlab_formats::write_atomically(&dir.join("manifest.json"), &json)?;
    Ok(summary)
}

/// The skeleton of every JSONL file of a world: `dir/name` is written by `fill` (which
/// returns its line count) under a temporary name and renamed when complete.
fn write_lines(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut AtomicFile) -> Result<u64>,
) -> Result<u64> {
    let mut out = AtomicFile::create(&dir.join(name))?;
    let n = fill(&mut out)?;
    out.finish()?;
    Ok(n)
}

/// `corpus.jsonl`: documents until the text reaches the configured size; counts who each
/// one mentions into `mentions` and its bytes, language and domain into `summary`. Returns
/// the documents.
fn write_corpus(
    out: &mut AtomicFile,
    config: &WorldConfig,
    kb: &Kb,
    seen: &[u32],
    mentions: &mut [u32],
    summary: &mut WorldSummary,
    progress: &mut impl FnMut(u64),
) -> Result<u64> {
    let zipf = Zipf::new(seen.len(), config.zipf);
    let mut rng = Rng::stream(config.seed, "corpus");
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
                docs::biography(&mut text, kb, p, lang, &mut rng);
            }
            Domain::Story => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::story(&mut text, kb, p, lang, &mut rng);
            }
            Domain::Dialogue => {
                let p = person(&mut rng);
                people.push(p.id);
                docs::dialogue(&mut text, kb, p, lang, &mut rng);
            }
            Domain::Encyclopedia => docs::encyclopedia(&mut text, kb, lang, &mut rng),
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
                docs::table(&mut text, kb, &rows, lang);
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
        out.write(&line)?;
        summary.corpus_bytes += doc.text.len() as u64;
        text = doc.text;
        *summary.by_lang.entry(lang.code().into()).or_insert(0) += 1;
        *summary.by_domain.entry(domain.name().into()).or_insert(0) += 1;
        id += 1;
        if id.is_multiple_of(4096) {
            progress(summary.corpus_bytes);
        }
    }
    Ok(id)
}
