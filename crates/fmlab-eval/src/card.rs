//! The model-selection card behind `fmlab compare`: for one model, what it costs —
//! parameters, file size, memory at a context length (weights as fmlab holds them plus the
//! KV cache), prefill and decode speed measured on this machine — and how it does — tokens
//! per byte and per word by language, perplexity and bits per byte by language and domain
//! (lm-evaluation-harness's rolling log-likelihood), task scores with standard errors and
//! 95% intervals (the [`crate::harness`] pipeline). One serialisable [`Card`] per model;
//! [`relate_cards`] fills in each language's token count relative to the first card's.
//!
//! Perplexity per token depends on the tokenizer (a model that cuts text into more, easier
//! tokens looks better), so cards of different tokenizers compare by bits per byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fmlab_data::corpus::{Document, Documents, PlainText};
use fmlab_data::premium::LangCost;
use fmlab_formats::Inspection;
use fmlab_nn::{Linear, Norm, Session, Transformer};
use fmlab_sample::{GenerateOptions, Sampler, StopConditions};
use fmlab_tokenizer::Tokenizer;
use serde::Serialize;

use crate::harness::{
    aggregate_metric, regex_split_count, run_task, Item, LanguageModel, LocalModel, RunConfig, Task,
};
use crate::{Error, Result};

/// The label of documents that name no language (plain text files, JSONL without `lang`).
pub const NO_LANG: &str = "-";

/// The passage whose tokens, repeated, make the speed test's prompt (the same text for
/// every model, so each prefills its own tokenization of it).
const SPEED_TEXT: &str = "The river rose slowly through the night, and by morning the \
    old stone bridge stood in water to its arches. People came down from the hills to \
    watch; some carried baskets of bread, others only questions. ";

/// One model's card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// The MODEL argument as given.
    pub model: String,
    /// The file's own name for the model (GGUF's `general.name`), when it has one.
    pub name: Option<String>,
    pub path: PathBuf,
    pub architecture: String,
    /// Exactly as `fmlab inspect` counts them.
    pub parameters: u64,
    pub parameters_non_embedding: Option<u64>,
    /// The model file (or folder's shards) on disk.
    pub file_bytes: Option<u64>,
    /// Tensor count by storage type.
    pub tensor_types: BTreeMap<String, usize>,
    pub context_length: u64,
    pub vocab_size: u64,
    pub memory: Memory,
    /// Absent when no speed runs were asked for.
    pub speed: Option<Speed>,
    /// Per language of the texts.
    pub tokens: Vec<LangTokens>,
    /// Premiums over a parallel corpus (the same lines in every language), relative to
    /// its reference language; absent without one.
    pub parallel_premiums: Option<Vec<LangCost>>,
    /// Over all texts, then per language, then per domain.
    pub perplexity: Vec<PerplexityGroup>,
    pub tasks: Vec<TaskScore>,
}

/// Memory to serve one sequence of `ctx` tokens.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Memory {
    pub ctx: u64,
    /// The weights as fmlab holds them (block formats stay quantized; norms in f32).
    pub weights_bytes: u64,
    /// The copies of quantized matrices repacked for this CPU's kernels
    /// (`Matrix::repack`), held beside the stored bytes; 0 where nothing is repacked.
    pub repacked_bytes: u64,
    /// Keys and values of `ctx` tokens at f16 (llama.cpp's default, and fmlab's own
    /// cache's), sliding-window layers keeping only their window.
    pub kv_cache_bytes: u64,
    /// Weights + their repacked copies + the f16 KV cache.
    pub total_bytes: u64,
}

/// Prefill and decode speed on this machine: medians of `runs`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Speed {
    pub threads: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub runs: usize,
    pub prefill_tokens_per_second: f64,
    /// Tokens after the first (each one forward pass of one token).
    pub decode_tokens_per_second: f64,
    pub prefill_runs: Vec<f64>,
    pub decode_runs: Vec<f64>,
}

/// How one language's texts tokenize.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LangTokens {
    pub lang: String,
    pub documents: usize,
    pub bytes: u64,
    /// Whitespace-separated words, as lm-evaluation-harness counts them.
    pub words: u64,
    /// No BOS or EOS added.
    pub tokens: u64,
    pub bytes_per_token: f64,
    pub tokens_per_word: f64,
    /// Tokens relative to the first card's on the same texts ([`relate_cards`]).
    pub relative_to_first: Option<f64>,
}

/// Perplexity of a group of documents, each read whole by the rolling log-likelihood.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerplexityGroup {
    /// `all`, `lang` or `domain`.
    pub by: String,
    pub group: String,
    pub documents: usize,
    pub tokens: u64,
    pub bytes: u64,
    pub words: u64,
    /// exp(−Σ log p / tokens): depends on the tokenizer.
    pub token_perplexity: f64,
    pub token_perplexity_stderr: Option<f64>,
    /// −Σ log₂ p / bytes: compares across tokenizers.
    pub bits_per_byte: f64,
    pub bits_per_byte_stderr: Option<f64>,
    pub byte_perplexity: f64,
    pub word_perplexity: f64,
}

/// A task metric with its standard error and 95% interval (value ± 1.96 standard errors).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskScore {
    pub task: String,
    pub metric: String,
    pub filter: String,
    pub num_fewshot: usize,
    pub documents: usize,
    pub value: f64,
    pub stderr: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct CardConfig {
    /// The context length the memory is given for.
    pub ctx: u64,
    /// Prompt tokens prefilled in a speed run.
    pub prompt_tokens: usize,
    /// Tokens decoded after it.
    pub new_tokens: usize,
    /// Speed runs (the median is reported); 0 measures no speed.
    pub speed_runs: usize,
    /// Tokens per window of the rolling log-likelihood and of task requests.
    pub max_length: usize,
    /// Task contexts scored together.
    pub batch_size: usize,
    /// Task limit, few-shot, seed and the bootstrap of standard errors.
    pub run: RunConfig,
}

/// A model ready to measure, and what `fmlab inspect` says of it.
pub struct Subject<'a> {
    pub model_arg: &'a str,
    pub inspection: &'a Inspection,
    pub model: &'a Transformer,
    pub tokenizer: &'a Tokenizer,
}

/// Progress: (stage, done, total).
pub type Progress<'a> = dyn FnMut(&str, usize, usize) + 'a;

/// The documents of `paths`: JSONL files (`text`, optional `lang` and `domain`) or plain
/// text files, each one document whose domain is its file name's stem. Blank documents are
/// dropped; a missing file, or one without any text, is an error naming it.
pub fn read_texts(paths: &[PathBuf]) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_file() {
            return Err(Error::Config(format!(
                "--texts: {}: no such file",
                path.display()
            )));
        }
        let before = out.len();
        for doc in Documents::new(std::slice::from_ref(path), PlainText::Whole) {
            let mut doc = doc.map_err(|e| Error::Config(format!("--texts: {e}")))?;
            if doc.text.trim().is_empty() {
                continue;
            }
            if doc.line.is_none() && doc.domain.is_none() {
                doc.domain = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            }
            out.push(doc);
        }
        if out.len() == before {
            return Err(Error::Config(format!(
                "--texts: {} holds no text",
                path.display()
            )));
        }
    }
    Ok(out)
}

/// Checks what does not depend on a model: a context and a window of at least 2 tokens
/// (a context of 0 holds nothing), a batch of at least 1.
pub fn check_config(config: &CardConfig) -> Result<()> {
    if config.ctx == 0 {
        return Err(Error::Config(
            "--ctx 0: the memory is given for a context of at least 1 token".into(),
        ));
    }
    if config.max_length < 2 {
        return Err(Error::Config(format!(
            "--max-length {}: a window needs at least 2 tokens",
            config.max_length
        )));
    }
    if config.batch_size == 0 {
        return Err(Error::Config("--batch-size: at least 1".into()));
    }
    if config.speed_runs > 0 && (config.prompt_tokens == 0 || config.new_tokens < 2) {
        return Err(Error::Config(
            "--prompt-tokens at least 1 and --new-tokens at least 2 (decode speed counts the \
             tokens after the first)"
                .into(),
        ));
    }
    Ok(())
}

/// Measures one model's card: its anatomy and memory, speed (`config.speed_runs` runs),
/// how `texts` tokenize and their perplexity, `tasks`' scores, and the premiums over
/// `parallel` (lines of one text per language) relative to `reference`.
pub fn measure(
    subject: &Subject<'_>,
    texts: &[Document],
    tasks: &[Task],
    parallel: Option<(&[BTreeMap<String, String>], &str)>,
    config: &CardConfig,
    progress: &mut Progress<'_>,
) -> Result<Card> {
    check_config(config)?;
    let spec = &subject.model.spec;
    if config.ctx > spec.context_length {
        return Err(Error::Config(format!(
            "--ctx {}: {}'s context is {} tokens",
            config.ctx, subject.model_arg, spec.context_length
        )));
    }
    let src = &subject.inspection.source;
    let weights_bytes = weight_bytes(subject.model);
    let repacked_bytes = repacked_bytes(subject.model);
    let kv_cache_bytes = spec.kv_cache_bytes(config.ctx, 2);
    let memory = Memory {
        ctx: config.ctx,
        weights_bytes,
        repacked_bytes,
        kv_cache_bytes,
        total_bytes: weights_bytes + repacked_bytes + kv_cache_bytes,
    };
    let speed = match config.speed_runs {
        0 => None,
        _ => Some(speed(subject, config, progress)?),
    };
    let parallel_premiums = match parallel {
        Some((lines, reference)) => Some(
            fmlab_data::premium::tokenizer_premiums(
                subject.model_arg,
                subject.tokenizer,
                lines,
                reference,
            )
            .map_err(|e| Error::Config(format!("--parallel: {e}")))?
            .languages,
        ),
        None => None,
    };
    let perplexity = if texts.is_empty() {
        Vec::new()
    } else {
        perplexity_groups(subject, texts, config, progress)?
    };
    let mut lm = LocalModel::new(subject.model, subject.tokenizer, config.max_length)
        .with_batch(config.batch_size);
    let mut scores = Vec::new();
    for task in tasks {
        let r = run_task(task, &mut lm, &config.run, |d, t| {
            progress(&task.name, d, t)
        })?;
        for (metric, filter, value, stderr) in r.metrics {
            scores.push(TaskScore {
                task: r.task.clone(),
                metric,
                filter,
                num_fewshot: r.num_fewshot,
                documents: r.samples.len(),
                value,
                stderr,
                ci95: stderr.map(|s| [value - 1.96 * s, value + 1.96 * s]),
            });
        }
    }
    Ok(Card {
        model: subject.model_arg.to_string(),
        name: src.name.clone(),
        path: src
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(subject.model_arg)),
        architecture: spec.architecture.clone(),
        parameters: subject.inspection.parameters.unwrap_or(0),
        parameters_non_embedding: subject.inspection.parameters_non_embedding,
        file_bytes: src.file_bytes,
        tensor_types: src.tensor_types.clone(),
        context_length: spec.context_length,
        vocab_size: spec.vocab_size,
        memory,
        speed,
        tokens: lang_tokens(subject.tokenizer, texts),
        parallel_premiums,
        perplexity,
        tasks: scores,
    })
}

/// Each language's token count relative to the first card's on the same texts.
pub fn relate_cards(cards: &mut [Card]) {
    let Some(first) = cards.first() else {
        return;
    };
    let base: BTreeMap<String, u64> = first
        .tokens
        .iter()
        .map(|l| (l.lang.clone(), l.tokens))
        .collect();
    for card in cards.iter_mut() {
        for l in &mut card.tokens {
            l.relative_to_first = base
                .get(&l.lang)
                .filter(|&&b| b > 0)
                .map(|&b| l.tokens as f64 / b as f64);
        }
    }
}

/// Bytes of the repacked copies the model's matrices hold for this CPU's kernels.
pub fn repacked_bytes(model: &Transformer) -> u64 {
    let matrix = |m: &fmlab_kernels::Matrix| m.repacked.as_ref().map_or(0, |r| r.bytes() as u64);
    let layers: u64 = model
        .layers
        .iter()
        .map(|l| {
            [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down]
                .into_iter()
                .chain(l.gate.as_ref())
                .map(|lin| matrix(&lin.weight))
                .sum::<u64>()
        })
        .sum();
    matrix(&model.embed) + layers + model.head.as_ref().map_or(0, matrix)
}

/// The bytes of the model's weights as fmlab holds them in memory.
pub fn weight_bytes(model: &Transformer) -> u64 {
    let matrix = |m: &fmlab_kernels::Matrix| match &m.data {
        fmlab_kernels::MatrixData::Dense(v) => 4 * v.len() as u64,
        fmlab_kernels::MatrixData::Quant { bytes, .. } => bytes.len() as u64,
    };
    let vector = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, |v| 4 * v.len() as u64);
    let norm = |n: &Norm| 4 * n.weight.len() as u64 + vector(&n.bias);
    let opt_norm = |n: &Option<Norm>| n.as_ref().map_or(0, norm);
    let linear = |l: &Linear| matrix(&l.weight) + vector(&l.bias);
    let layers: u64 = model
        .layers
        .iter()
        .map(|l| {
            norm(&l.attn_norm)
                + [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down]
                    .into_iter()
                    .map(linear)
                    .sum::<u64>()
                + l.gate.as_ref().map_or(0, linear)
                + opt_norm(&l.q_norm)
                + opt_norm(&l.k_norm)
                + opt_norm(&l.post_attn_norm)
                + norm(&l.ffn_norm)
                + opt_norm(&l.post_ffn_norm)
        })
        .sum();
    matrix(&model.embed)
        + model.pos_embed.as_ref().map_or(0, matrix)
        + layers
        + opt_norm(&model.final_norm)
        + model.head.as_ref().map_or(0, matrix)
}

/// `config.speed_runs` greedy generations of `new_tokens` after a `prompt_tokens` prompt
/// (stop tokens ignored), each from an empty cache, on the current thread pool.
fn speed(subject: &Subject<'_>, config: &CardConfig, progress: &mut Progress<'_>) -> Result<Speed> {
    let needed = config.prompt_tokens + config.new_tokens;
    let context = subject.model.spec.context_length as usize;
    if needed > context {
        return Err(Error::Config(format!(
            "--prompt-tokens + --new-tokens = {needed}: {}'s context is {context} tokens",
            subject.model_arg
        )));
    }
    let piece = subject.tokenizer.encode(SPEED_TEXT, false, false);
    if piece.is_empty() {
        return Err(Error::Config(format!(
            "{}: the tokenizer gives no tokens for the speed prompt",
            subject.model_arg
        )));
    }
    let prompt: Vec<u32> = piece
        .iter()
        .copied()
        .cycle()
        .take(config.prompt_tokens)
        .collect();
    let mut prefill = Vec::with_capacity(config.speed_runs);
    let mut decode = Vec::with_capacity(config.speed_runs);
    for run in 0..config.speed_runs {
        let mut session = Session::new(subject.model, needed);
        let stop = StopConditions {
            max_new_tokens: config.new_tokens,
            ignore_stop_tokens: true,
            ..StopConditions::default()
        };
        let g = fmlab_sample::generate(
            &mut session,
            &prompt,
            &mut Sampler::greedy(),
            GenerateOptions::new(stop),
            &mut |_, _| true,
        )?;
        if g.decode_time == Duration::ZERO || g.tokens.len() < 2 {
            return Err(Error::Config(format!(
                "{}: the speed run decoded {} tokens",
                subject.model_arg,
                g.tokens.len()
            )));
        }
        prefill.push(g.prefill_tokens_per_second());
        decode.push(g.decode_tokens_per_second());
        progress("speed", run + 1, config.speed_runs);
    }
    Ok(Speed {
        threads: rayon::current_num_threads(),
        prompt_tokens: config.prompt_tokens,
        new_tokens: config.new_tokens,
        runs: config.speed_runs,
        prefill_tokens_per_second: median(&prefill),
        decode_tokens_per_second: median(&decode),
        prefill_runs: prefill,
        decode_runs: decode,
    })
}

/// The median (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn lang_of(d: &Document) -> &str {
    d.lang.as_deref().unwrap_or(NO_LANG)
}

/// Tokens, bytes and words per language (in order of first appearance).
fn lang_tokens(tokenizer: &Tokenizer, texts: &[Document]) -> Vec<LangTokens> {
    let mut order: Vec<String> = Vec::new();
    let mut sums: BTreeMap<String, (usize, u64, u64, u64)> = BTreeMap::new();
    for d in texts {
        let lang = lang_of(d).to_string();
        if !sums.contains_key(&lang) {
            order.push(lang.clone());
        }
        let e = sums.entry(lang).or_default();
        e.0 += 1;
        e.1 += d.text.len() as u64;
        e.2 += regex_split_count(&d.text) as u64;
        e.3 += tokenizer.encode(&d.text, false, false).len() as u64;
    }
    order
        .into_iter()
        .map(|lang| {
            let (documents, bytes, words, tokens) = sums[&lang];
            LangTokens {
                lang,
                documents,
                bytes,
                words,
                tokens,
                bytes_per_token: bytes as f64 / tokens.max(1) as f64,
                tokens_per_word: tokens as f64 / words.max(1) as f64,
                relative_to_first: None,
            }
        })
        .collect()
}

/// Every document's rolling log-likelihood (lm-evaluation-harness's
/// `loglikelihood_rolling`), aggregated over all texts, per language and per domain.
fn perplexity_groups(
    subject: &Subject<'_>,
    texts: &[Document],
    config: &CardConfig,
    progress: &mut Progress<'_>,
) -> Result<Vec<PerplexityGroup>> {
    let mut lm = LocalModel::new(subject.model, subject.tokenizer, config.max_length);
    let strings: Vec<String> = texts.iter().map(|d| d.text.clone()).collect();
    let lls = lm.loglikelihood_rolling(&strings, &mut |d, t| progress("perplexity", d, t))?;
    // What the rolling windows predict: the text's tokens as the harness encodes them.
    let counts: Vec<(u64, u64, u64)> = texts
        .iter()
        .map(|d| {
            (
                subject.tokenizer.encode(&d.text, false, true).len() as u64,
                d.text.len() as u64,
                regex_split_count(&d.text) as u64,
            )
        })
        .collect();
    let mut groups: Vec<(String, String, Vec<usize>)> =
        vec![("all".into(), "all".into(), (0..texts.len()).collect())];
    for by in ["lang", "domain"] {
        let mut seen: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, d) in texts.iter().enumerate() {
            let key = match by {
                "lang" => lang_of(d).to_string(),
                _ => d.domain.clone().unwrap_or_else(|| NO_LANG.to_string()),
            };
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(i),
                None => seen.push((key, vec![i])),
            }
        }
        groups.extend(seen.into_iter().map(|(k, v)| (by.to_string(), k, v)));
    }
    Ok(groups
        .into_iter()
        .map(|(by, group, idx)| {
            let items = |w: &dyn Fn(usize) -> u64| -> Vec<Item> {
                idx.iter()
                    .map(|&i| Item::Weighted(lls[i], w(i) as f64))
                    .collect()
            };
            let (by_token, by_byte, by_word) = (
                items(&|i| counts[i].0),
                items(&|i| counts[i].1),
                items(&|i| counts[i].2),
            );
            // exp(−Σ ll / Σ weight) with weights in tokens is the per-token perplexity.
            let (tp, tp_se) = aggregate_metric("byte_perplexity", &by_token, &config.run);
            let (bpb, bpb_se) = aggregate_metric("bits_per_byte", &by_byte, &config.run);
            let sum = |k: usize| {
                idx.iter()
                    .map(|&i| [counts[i].0, counts[i].1, counts[i].2][k])
                    .sum::<u64>()
            };
            PerplexityGroup {
                by,
                group,
                documents: idx.len(),
                tokens: sum(0),
                bytes: sum(1),
                words: sum(2),
                token_perplexity: tp,
                token_perplexity_stderr: tp_se,
                bits_per_byte: bpb,
                bits_per_byte_stderr: bpb_se,
                byte_perplexity: aggregate_metric("byte_perplexity", &by_byte, &config.run).0,
                word_perplexity: aggregate_metric("word_perplexity", &by_word, &config.run).0,
            }
        })
        .collect())
}

/// A path shown short: its file name (or the whole path when it has none).
pub fn short_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    fn card(tokens: &[(&str, u64)]) -> Card {
        Card {
            model: "m".into(),
            name: None,
            path: PathBuf::from("m"),
            architecture: "llama".into(),
            parameters: 1,
            parameters_non_embedding: None,
            file_bytes: None,
            tensor_types: BTreeMap::new(),
            context_length: 8,
            vocab_size: 8,
            memory: Memory {
                ctx: 1,
                weights_bytes: 0,
                repacked_bytes: 0,
                kv_cache_bytes: 0,
                total_bytes: 0,
            },
            speed: None,
            tokens: tokens
                .iter()
                .map(|&(lang, tokens)| LangTokens {
                    lang: lang.into(),
                    documents: 1,
                    bytes: 10,
                    words: 2,
                    tokens,
                    bytes_per_token: 10.0 / tokens as f64,
                    tokens_per_word: tokens as f64 / 2.0,
                    relative_to_first: None,
                })
                .collect(),
            parallel_premiums: None,
            perplexity: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// 5 and 8 tokens against the first card's 4 and 4: 1.25 and 2; a language the first
    /// card lacks has no ratio.
    #[test]
    fn tokens_relative_to_the_first_card() {
        let mut cards = vec![
            card(&[("en", 4), ("fr", 4)]),
            card(&[("en", 5), ("fr", 8), ("sw", 3)]),
        ];
        relate_cards(&mut cards);
        let r: Vec<Option<f64>> = cards[1]
            .tokens
            .iter()
            .map(|l| l.relative_to_first)
            .collect();
        assert_eq!(r, [Some(1.25), Some(2.0), None]);
        assert_eq!(cards[0].tokens[0].relative_to_first, Some(1.0));
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let config = CardConfig {
            ctx: 0,
            prompt_tokens: 128,
            new_tokens: 32,
            speed_runs: 3,
            max_length: 2048,
            batch_size: 8,
            run: RunConfig::default(),
        };
        let e = check_config(&config).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--ctx 0"), "{e}");
        let e = check_config(&CardConfig {
            ctx: 16,
            max_length: 1,
            ..config.clone()
        });
        assert!(e.is_err_and(|e| e.to_string().contains("--max-length 1")));
        let e = check_config(&CardConfig {
            ctx: 16,
            new_tokens: 1,
            ..config
        });
        assert!(e.is_err_and(|e| e.to_string().contains("--new-tokens")));
    }

    /// Plain text files are one document named by the file; JSONL keeps its fields; an
    /// empty file and a missing one are refused by name.
    #[test]
    fn texts_from_plain_and_jsonl_files() {
        let dir = fmlab_testkit::Scratch::new("eval-card-texts");
        let plain = dir.join("notes.txt");
        std::fs::write(&plain, "Some words here.\n").unwrap();
        let jsonl = dir.join("c.jsonl");
        let lines = "{\"text\": \"Habari\", \"lang\": \"sw\", \"domain\": \"news\"}\n\n{\"text\": \"  \"}\n";
        std::fs::write(&jsonl, lines).unwrap();
        let docs = read_texts(&[plain.clone(), jsonl]).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].domain.as_deref(), Some("notes"));
        assert_eq!(docs[0].lang, None);
        assert_eq!(docs[1].lang.as_deref(), Some("sw"));
        assert_eq!(docs[1].domain.as_deref(), Some("news"));
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "\n").unwrap();
        let e = read_texts(&[empty]).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("empty.txt holds no text"), "{e}");
        let e = read_texts(&[dir.join("gone.txt")])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone.txt: no such file"), "{e}");
    }
}
