//! Evaluation of language models: perplexity under the protocol llama.cpp's reference
//! numbers use (so that ours can be compared with theirs), few-shot fact recall and
//! arithmetic of base models on the synthetic world ([`world`]), and chat models judged on
//! it ([`chat`]: format compliance, fact accuracy, "I don't know" versus hallucination,
//! win rates, on-policy preference pairs).

pub mod card;
pub mod chat;
pub mod consistency;
pub mod harness;
pub mod sampling_study;
pub mod world;

use fmlab_nn::{KvCache, Logits, Transformer};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("perplexity needs at least one window of {window} tokens; the text has {tokens}")]
    TooShort { tokens: usize, window: usize },
    #[error("window of {0} tokens: must be at least 2")]
    BadWindow(usize),
    #[error(transparent)]
    Model(#[from] fmlab_nn::Error),
    #[error(transparent)]
    Generate(#[from] fmlab_sample::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What `--tasks` names, resolved: world folders (`fmlab world` output) give the world's own
/// tasks (group "world": [`world::world_suite`]'s recall and arithmetic for base models,
/// [`chat::chat_tasks`] for chat models); everything else is lm-evaluation-harness
/// task and group files, folders and names ([`harness::resolve`], names looked up in
/// `include` folders too).
pub fn task_suite(specs: &[String], include: &[std::path::PathBuf]) -> Result<harness::Suite> {
    let mut worlds = Vec::new();
    let mut rest = Vec::new();
    for spec in specs {
        match world::world_suite(std::path::Path::new(spec))? {
            Some(w) => worlds.push(w),
            None => rest.push(spec.clone()),
        }
    }
    let mut suite = if rest.is_empty() {
        harness::Suite::default()
    } else {
        harness::resolve(&rest, include)?
    };
    for (mut tasks, mut group, items) in worlds {
        // A chat model's evaluation too: the world's questions through its chat template,
        // judged (dropped by the caller when the model has no template).
        let defaults = chat::ChatEvalConfig::default();
        let chosen = chat::select(&items, defaults.per_split);
        for t in chat::chat_tasks(&chosen, defaults.max_new_tokens)? {
            group.children.push(t.name.clone());
            tasks.push(t);
        }
        if suite.groups.iter().any(|g| g.name == group.name) {
            return Err(Error::Config(
                "--tasks: two world folders (both would be the group \"world\")".into(),
            ));
        }
        suite.tasks.extend(tasks);
        suite.groups.push(group);
    }
    Ok(suite)
}

/// The result of [`perplexity`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Perplexity {
    pub perplexity: f64,
    pub mean_nll: f64,
    pub tokens_scored: usize,
    pub windows: usize,
    pub window: usize,
}

/// Perplexity of `tokens` in non-overlapping windows of `window` tokens, each evaluated
/// from an empty cache; every token after the first in a window is predicted; a final
/// partial window is dropped; `exp(mean negative log-likelihood)`. `on_window` is called
/// after each window with (done, total), for progress.
pub fn perplexity(
    model: &Transformer,
    tokens: &[u32],
    window: usize,
    mut on_window: impl FnMut(usize, usize),
) -> Result<Perplexity> {
    if window < 2 {
        return Err(Error::BadWindow(window));
    }
    let windows = tokens.len() / window;
    if windows == 0 {
        return Err(Error::TooShort {
            tokens: tokens.len(),
            window,
        });
    }
    let vocab = model.spec.vocab_size as usize;
    let mut nll = 0f64;
    let mut scored = 0usize;
    let mut cache = KvCache::new(&model.spec, window);
    for w in 0..windows {
        cache.clear();
        let chunk = &tokens[w * window..(w + 1) * window];
        let logits = model.forward(chunk, &mut cache, Logits::All)?;
        for (i, &next) in chunk.iter().enumerate().skip(1) {
            let row = &logits[(i - 1) * vocab..i * vocab];
            nll -= log_softmax_at(row, next as usize);
            scored += 1;
        }
        on_window(w + 1, windows);
    }
    let mean_nll = nll / scored as f64;
    Ok(Perplexity {
        perplexity: mean_nll.exp(),
        mean_nll,
        tokens_scored: scored,
        windows,
        window,
    })
}

/// `log softmax(row)[index]`, in f64.
pub fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row[index] as f64 - max - sum.ln()
}
