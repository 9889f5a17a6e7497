//! What the speedrun shows of a pre-trained model besides its scores: greedy and seeded
//! samples for prompts in the world's styles, and validation bits per byte.

use fmlab_sample::{GenerateOptions, Sampler, SamplerConfig, StopConditions};
use fmlab_tokenizer::Tokenizer;
use fmlab_train::pretrain::Pretrainer;

use crate::report::SampleSet;
use crate::Error;

/// Prompts in the world's styles: a story, a place, French, an arithmetic question.
const PROMPTS: [&str; 4] = [
    "Once upon a time,",
    "The town of",
    "Il était une fois",
    "A farmer has 12 apples and buys 7 more. How many apples does the farmer have now?\nAnswer:",
];

/// Greedy and two seeded samples (temperature 0.8, llama.cpp's default chain) of 40 tokens
/// for each prompt.
pub fn samples(
    model: &fmlab_nn::Transformer,
    tok: &Tokenizer,
    seed: u64,
) -> Result<Vec<SampleSet>, Error> {
    let mut out = Vec::new();
    for prompt in PROMPTS {
        let ids = tok.encode(prompt, false, false);
        let run = |sampler: &mut Sampler| -> Result<String, Error> {
            let mut session = fmlab_nn::Session::new(model, ids.len() + 40);
            let g = fmlab_sample::generate(
                &mut session,
                &ids,
                sampler,
                GenerateOptions::new(StopConditions {
                    max_new_tokens: 40,
                    stop_tokens: tok.stop_tokens(),
                    ..Default::default()
                }),
                &mut |_, _| true,
            )?;
            Ok(tok.decode(&g.tokens, false).unwrap_or_default())
        };
        let greedy = run(&mut Sampler::greedy())?;
        let mut sampled = Vec::new();
        for i in 0..2 {
            let config = SamplerConfig {
                seed,
                ..Default::default()
            };
            sampled.push(run(&mut Sampler::for_sequence(config, i)?)?);
        }
        out.push(SampleSet {
            prompt: prompt.into(),
            greedy,
            sampled,
        });
    }
    Ok(out)
}

/// Validation bits per byte: the validation windows' total loss in bits over the bytes of
/// the text they predict (special tokens count no bytes).
pub fn bits_per_byte(pre: &Pretrainer, tok: &Tokenizer) -> Result<f64, Error> {
    let windows = pre.validation();
    if windows.is_empty() {
        return Ok(f64::NAN);
    }
    let mean = pre.evaluate()?.unwrap_or(f64::NAN);
    let tokens: usize = windows.iter().map(|w| w.len() - 1).sum();
    let mut bytes = 0usize;
    for w in windows {
        for &id in &w[1..] {
            bytes += tok.token_bytes(id, false).map(|b| b.len()).unwrap_or(0);
        }
    }
    Ok(mean * tokens as f64 / (bytes.max(1) as f64 * std::f64::consts::LN_2))
}
