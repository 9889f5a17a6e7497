//! Running a loaded model with a sampler, what `fmlab generate` and `fmlab chat` (and a
//! server) share besides the loop of `fmlab_sample::generate`: token bytes for stop strings
//! ([`TokenText`]) and for grammars ([`vocabulary`]), n samples of one prompt each under its
//! own grammar ([`sample`]), best-of-n and self-consistency over them ([`Drawn`]), DRY's breaker tokens ([`dry_breakers`]), a conversation
//! that fits the context ([`Conversation`]), conversation files ([`read_messages`]), and the typed report of what was drawn ([`Report`]: texts,
//! tokens, log-probabilities, best-of-n scores, self-consistency votes).

use std::sync::Arc;

use fmlab_sample::{
    best_of_n, generate_n, self_consistency, BestOfN, Constraint, Detokenizer, GenerateOptions,
    Generation, Grammar, GrammarSpec, LanguageModel, RegexAnswer, Sampled, SamplerConfig, Scorer,
    StopConditions, TokenLogprob, TokenizeFn, Vocabulary, Vote,
};
use std::path::Path;

use fmlab_tokenizer::{Message, TokenType, Tokenizer};
use serde::Serialize;

use super::{Error, Loaded, Result};

/// Token bytes for the sampler's stop strings (control tokens render as nothing).
pub struct TokenText<'a>(pub &'a Tokenizer);

impl Detokenizer for TokenText<'_> {
    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.0.token_bytes(id, false).unwrap_or_default()
    }
}

/// The model's vocabulary for constrained decoding: each token's bytes, control tokens
/// marked, and the tokenizer for the tokens a grammar forces.
pub fn vocabulary(tok: &Tokenizer) -> Result<Vocabulary> {
    let n = tok.vocab_size();
    let mut tokens = Vec::with_capacity(n);
    let mut special = Vec::with_capacity(n);
    for id in 0..n as u32 {
        let control = matches!(
            tok.vocab.token_type(id),
            TokenType::Control | TokenType::Unknown | TokenType::Unused
        );
        tokens.push(tok.token_bytes(id, control)?);
        special.push(control);
    }
    let shared = Arc::new(tok.clone());
    let tokenize: TokenizeFn =
        Arc::new(move |bytes: &[u8]| shared.encode(&String::from_utf8_lossy(bytes), false, false));
    Ok(Vocabulary::new(
        tokens,
        &special,
        &tok.stop_tokens(),
        tokenize,
    )?)
}

/// DRY's default sequence breakers (llama.cpp's).
pub const DEFAULT_BREAKERS: [&str; 4] = ["\n", ":", "\"", "*"];

/// DRY's breakers as token ids: every token whose text contains one of `texts` (empty
/// texts match nothing).
pub fn dry_breakers(tok: &Tokenizer, texts: &[&str]) -> Vec<u32> {
    let contains = |haystack: &[u8], needle: &[u8]| {
        needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
    };
    (0..tok.vocab_size() as u32)
        .filter(|&id| {
            let bytes = tok.token_bytes(id, false).unwrap_or_default();
            texts
                .iter()
                .any(|t| !t.is_empty() && contains(&bytes, t.as_bytes()))
        })
        .collect()
}

/// What [`sample`] draws: `samples` continuations of `ids`, each from its own stream of the
/// config's seed, stopping at `stop`, under `grammar` when given.
pub struct Request<'a> {
    pub ids: &'a [u32],
    pub config: &'a SamplerConfig,
    pub samples: usize,
    pub stop: StopConditions,
    pub grammar: Option<&'a GrammarSpec>,
    /// Log-probabilities of each drawn token with this many alternatives.
    pub logprobs: Option<usize>,
}

/// Draws the request's samples after one prefill; `on_bytes(sample, bytes)` sees each
/// token's text as it is drawn and stops generation by returning false.
pub fn sample(
    model: &mut dyn LanguageModel,
    tokenizer: &Tokenizer,
    request: &Request<'_>,
    on_bytes: &mut dyn FnMut(usize, &[u8]) -> bool,
) -> Result<Vec<Generation>> {
    let n = request.samples;
    let detok = TokenText(tokenizer);
    let vocabulary = match request.grammar {
        Some(_) => Some(vocabulary(tokenizer)?),
        None => None,
    };
    let mut grammars: Vec<Option<Grammar>> = (0..n)
        .map(|_| match (&vocabulary, request.grammar) {
            (Some(v), Some(spec)) => v.grammar(spec).map(Some),
            _ => Ok(None),
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut grammar_slots = grammars.iter_mut();
    Ok(generate_n(
        model,
        request.ids,
        request.config,
        request.logprobs,
        n,
        |_| GenerateOptions {
            stop: request.stop.clone(),
            detokenizer: Some(&detok),
            constraint: grammar_slots
                .next()
                .and_then(Option::as_mut)
                .map(|g| g as &mut dyn Constraint),
        },
        &mut |i, _step, bytes| on_bytes(i, bytes),
    )?)
}

/// What test-time compute does with a request's samples.
pub enum Selection<'a> {
    /// Every sample kept, the first shown.
    All,
    /// Best-of-n: the sample the scorer ranks highest (mean log-probability, or a reward
    /// model's score) is shown.
    BestOf(&'a mut dyn Scorer),
    /// Self-consistency: an answer extracted from each sample, the majority's shown.
    Vote(RegexAnswer),
}

/// A request's samples with test-time compute's verdict on them.
pub struct Drawn {
    pub generations: Vec<Generation>,
    pub best: Option<BestOfN>,
    pub vote: Option<Vote>,
}

impl Drawn {
    /// Applies `selection` to the samples of prompt `ids`.
    pub fn select(ids: &[u32], generations: Vec<Generation>, selection: Selection) -> Result<Self> {
        let (best, vote) = match selection {
            Selection::All => (None, None),
            Selection::BestOf(scorer) => (Some(best_of_n(ids, &generations, scorer)?), None),
            Selection::Vote(mut e) => (None, Some(self_consistency(&generations, &mut e))),
        };
        Ok(Drawn {
            generations,
            best,
            vote,
        })
    }

    /// The typed report; `logprobs`: with each token's log-probabilities.
    pub fn report(&self, tok: &Tokenizer, config: &SamplerConfig, logprobs: bool) -> Report {
        Report::new(
            tok,
            &self.generations,
            config,
            self.best.as_ref(),
            self.vote.as_ref(),
            logprobs,
        )
    }
}

/// An interactive conversation: a system turn and the turns since, re-read whole each
/// time the user speaks.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub system: Option<String>,
    pub history: Vec<Message>,
}

impl Conversation {
    /// Adds the user's turn and returns the ids of the whole conversation up to the reply;
    /// `None` when it no longer fits `context` tokens with room for one more, in which case
    /// every turn but the newest is dropped.
    pub fn ask(&mut self, loaded: &Loaded, text: &str, context: usize) -> Result<Option<Vec<u32>>> {
        self.history.push(Message::new("user", text));
        let mut turns = Vec::new();
        if let Some(s) = &self.system {
            turns.push(Message::new("system", s));
        }
        turns.extend(self.history.iter().cloned());
        let Some(ids) = loaded.chat_ids(&turns)? else {
            return Err(Error::NoModelTemplate(loaded.path.clone()));
        };
        if ids.len() + 1 >= context {
            self.history.drain(..self.history.len().saturating_sub(1));
            return Ok(None);
        }
        Ok(Some(ids))
    }

    /// Records the assistant's reply (trimmed).
    pub fn answered(&mut self, text: &str) {
        self.history.push(Message::new("assistant", text.trim()));
    }

    /// The conversation as turns, the system turn first when there is one: what a
    /// conversation file holds.
    pub fn messages(&self) -> Vec<Message> {
        let system = self.system.iter().map(|s| Message::new("system", s));
        system.chain(self.history.iter().cloned()).collect()
    }

    /// The conversation of a file's `turns` (`path` names it in errors): a system turn
    /// first, if any, then user and assistant turns; without a system turn of its own it
    /// keeps `self`'s.
    pub fn load(&mut self, path: &Path) -> Result<usize> {
        let mut turns = read_messages(path)?;
        let system = match turns.first() {
            Some(m) if m.role == "system" => Some(turns.remove(0).content),
            _ => None,
        };
        if let Some(m) = turns
            .iter()
            .find(|m| m.role != "user" && m.role != "assistant")
        {
            return Err(Error::TurnRole {
                path: path.to_path_buf(),
                role: m.role.clone(),
            });
        }
        let n = turns.len();
        self.system = system.or(self.system.take());
        self.history = turns;
        Ok(n)
    }
}

/// A conversation file: a JSON list of `{"role", "content"}` turns, not empty.
pub fn read_messages(path: &Path) -> Result<Vec<Message>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let m: Vec<Message> = serde_json::from_str(&text).map_err(|source| Error::Messages {
        path: path.to_path_buf(),
        source,
    })?;
    if m.is_empty() {
        return Err(Error::EmptyConversation(path.to_path_buf()));
    }
    Ok(m)
}

/// One alternative token in a `logprobs` entry.
#[derive(Debug, Serialize)]
pub struct Alternative {
    pub id: u32,
    pub text: String,
    pub logprob: f32,
}

/// Log-probabilities of one generated token.
#[derive(Debug, Serialize)]
pub struct TokenReport {
    pub id: u32,
    pub text: String,
    /// Under the model's own distribution.
    pub logprob: Option<f32>,
    /// Under the processed distribution the token was drawn from.
    pub logprob_sampled: f32,
    /// The best alternatives under the model's distribution.
    pub top: Vec<Alternative>,
    /// The best alternatives under the processed distribution.
    pub top_sampled: Vec<Alternative>,
}

/// One sample: its text, tokens, why it ended, and (when asked) its log-probabilities.
#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: usize,
    pub text: String,
    pub tokens: Vec<u32>,
    pub generated_tokens: usize,
    pub finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenReport>>,
}

impl Choice {
    /// Sample `index` of the generations; `logprobs`: with each token's log-probabilities.
    pub fn new(tok: &Tokenizer, index: usize, g: &Generation, logprobs: bool) -> Self {
        let text_of = |id: u32| {
            String::from_utf8_lossy(&tok.token_bytes(id, true).unwrap_or_default()).into_owned()
        };
        let alternatives = |alts: &[TokenLogprob]| {
            alts.iter()
                .map(|a| Alternative {
                    id: a.id,
                    text: text_of(a.id),
                    logprob: a.logprob,
                })
                .collect()
        };
        Choice {
            index,
            text: String::from_utf8_lossy(&g.bytes).into_owned(),
            tokens: g.tokens.clone(),
            generated_tokens: g.tokens.len(),
            finish_reason: g.stop.finish_reason(),
            mean_logprob: g.mean_logprob(),
            logprobs: logprobs.then(|| {
                g.steps
                    .iter()
                    .map(|s: &Sampled| TokenReport {
                        id: s.token,
                        text: text_of(s.token),
                        logprob: s.logprob,
                        logprob_sampled: s.logprob_sampled,
                        top: alternatives(&s.top),
                        top_sampled: alternatives(&s.top_sampled),
                    })
                    .collect()
            }),
        }
    }
}

/// Best-of-n's choice.
#[derive(Debug, Serialize)]
pub struct BestOfReport {
    /// Each sample's score: its mean log-probability, or the reward model's reward.
    pub scores: Vec<f64>,
    pub best: usize,
}

/// One answer's votes.
#[derive(Debug, Serialize)]
pub struct VoteEntry {
    pub answer: String,
    pub count: usize,
    pub share: f64,
}

/// Self-consistency's vote.
#[derive(Debug, Serialize)]
pub struct VoteReport {
    /// Per sample, the extracted answer (null when none).
    pub answers: Vec<Option<String>>,
    pub votes: Vec<VoteEntry>,
    pub answer: Option<String>,
    /// The winning answer's share of all samples.
    pub agreement: f64,
}

impl From<&Vote> for VoteReport {
    fn from(v: &Vote) -> Self {
        VoteReport {
            answers: v.answers.clone(),
            votes: v
                .shares
                .iter()
                .map(|s| VoteEntry {
                    answer: s.answer.clone(),
                    count: s.count,
                    share: s.share,
                })
                .collect(),
            answer: v.winner.clone(),
            agreement: v.agreement(),
        }
    }
}

/// Everything one generation request produced, as `fmlab generate --json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The sample shown: the first, or best-of-n's choice.
    #[serde(flatten)]
    pub first: Choice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_of: Option<BestOfReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_consistency: Option<VoteReport>,
    /// Every sample, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Choice>>,
    pub prompt_tokens: usize,
    pub stopped_at_eos: bool,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    /// The chain in force, with its order.
    pub sampler: String,
    pub temperature: f32,
    pub seed: u64,
}

impl Report {
    /// The report of `generations` (at least one) drawn with `config`; `logprobs`: with
    /// each token's log-probabilities.
    pub fn new(
        tok: &Tokenizer,
        generations: &[Generation],
        config: &SamplerConfig,
        best: Option<&BestOfN>,
        vote: Option<&Vote>,
        logprobs: bool,
    ) -> Self {
        let lead = best.map_or(0, |b| b.best);
        let first = &generations[lead];
        Report {
            first: Choice::new(tok, lead, first, logprobs),
            best_of: best.map(|b| BestOfReport {
                scores: b.scores.clone(),
                best: b.best,
            }),
            self_consistency: vote.map(VoteReport::from),
            choices: (generations.len() > 1).then(|| {
                generations
                    .iter()
                    .enumerate()
                    .map(|(i, g)| Choice::new(tok, i, g, logprobs))
                    .collect()
            }),
            prompt_tokens: first.prompt_tokens,
            stopped_at_eos: first.stopped(),
            prefill_tokens_per_second: first.prefill_tokens_per_second(),
            decode_tokens_per_second: mean_decode_speed(generations),
            sampler: config.describe(),
            temperature: config.temperature,
            seed: config.seed,
        }
    }
}

/// Mean decode speed over several generations.
pub fn mean_decode_speed(gs: &[Generation]) -> f64 {
    let speeds: Vec<f64> = gs
        .iter()
        .map(Generation::decode_tokens_per_second)
        .collect();
    speeds.iter().sum::<f64>() / speeds.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmlab_sample::Constraint;

    type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// The constrained-decoding vocabulary from a Hugging Face tokenizer.json: a regex
    /// grammar allows exactly the tokens whose text can continue a match.
    #[test]
    fn vocabulary_from_tokenizer_json() -> Result<()> {
        // The package folder at run time: a shared build folder may hold this test
        // compiled in another clone.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = std::path::Path::new(&dir).join("../../fixtures/tokenizer-json/tokenizer.json");
        let tok = Tokenizer::from_tokenizer_json(&path)?;
        let vocab = vocabulary(&tok)?;
        let mut grammar = vocab.grammar(&GrammarSpec::Regex("[0-9]+".into()))?;
        let mask = grammar.mask()?;
        let mut allowed = 0;
        for id in 0..tok.vocab_size() as u32 {
            let text = String::from_utf8_lossy(&tok.token_bytes(id, false)?).into_owned();
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            if mask.allows(id) {
                allowed += 1;
                assert!(digits, "token {id} {text:?} allowed");
            }
        }
        assert!(allowed > 0);
        Ok(())
    }
}
