//! Hugging Face tokenizer files ↔ GGUF `tokenizer.ggml.*` metadata, for byte-level BPE
//! tokenizers (GPT-2, Llama 3, Qwen2, SmolLM, fmlab's own).
//!
//! [`gguf_metadata`] follows the rules of llama.cpp's `convert_hf_to_gguf.py`: tokens by id
//! (ids the vocabulary lacks up to the model's size become unused `[PADn]` tokens), added
//! tokens marked special — or looking special (`<|…|>`) — are control tokens and other
//! added tokens user-defined; merges as `left right`; BOS/EOS/UNK/… ids from
//! `tokenizer_config.json`'s token texts (then `config.json`'s `*_token_id`);
//! `add_bos_token`/`add_eos_token` as `tokenizer_config.json` gives them; the chat template.
//! `tokenizer.ggml.pre` is chosen as llama.cpp chooses it, by the SHA-256 of the ids of a
//! check text; a tokenizer llama.cpp does not list (fmlab's own) is recognised by its
//! pre-tokenizer's description. Either way the choice is verified: our encoder over the
//! metadata must give the `tokenizers` crate's ids on the check text.
//!
//! [`tokenizer_json`] goes the other way, from a GGUF byte-level BPE vocabulary to a
//! `tokenizer.json` that the `tokenizers` library encodes with the same pre-tokenizer.

use std::collections::HashMap;

use fmlab_formats::{Gguf, Value, ValueType};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::pretokenize::{LLAMA3, QWEN2};
use crate::{Error, Result, TokenType, Tokenizer};

/// llama.cpp's check text for the pre-tokenizer (`get_vocab_base_pre`): whitespace runs,
/// emoji, digit groups, scripts and contractions, where pre-tokenizers differ.
pub const CHECK_TEXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// SHA-256 of the check text's ids (as Python prints the list) → `tokenizer.ggml.pre`, for
/// the pre-tokenizers fmlab implements (llama.cpp's table, reference models named).
const KNOWN_HASHES: [(&str, &str); 5] = [
    // meta-llama/Meta-Llama-3-8B
    (
        "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5",
        "llama-bpe",
    ),
    // bigcode/starcoder2-3b
    (
        "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34",
        "starcoder",
    ),
    // openai-community/gpt2
    (
        "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454",
        "gpt-2",
    ),
    // Qwen/Qwen1.5-7B
    (
        "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea",
        "qwen2",
    ),
    // HuggingFaceTB/SmolLM-135M
    (
        "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249",
        "smollm",
    ),
];

/// The tokenizer files of a Hugging Face model folder, as text and JSON.
pub struct HfFiles<'a> {
    /// `tokenizer.json`'s text.
    pub tokenizer_json: &'a str,
    /// `tokenizer_config.json`, when the folder has one.
    pub tokenizer_config: Option<&'a serde_json::Value>,
    /// `config.json` (for `*_token_id` the tokenizer config does not give).
    pub config: Option<&'a serde_json::Value>,
    /// `chat_template.jinja`, used when `tokenizer_config.json` has no `chat_template`.
    pub chat_template: Option<&'a str>,
    /// `tokenizer.model`'s bytes: a SentencePiece model's vocabulary, scores and types.
    pub tokenizer_model: Option<&'a [u8]>,
    /// `added_tokens.json` (token text → id), which older SentencePiece folders carry.
    pub added_tokens: Option<&'a serde_json::Value>,
}

/// The `tokenizer.*` metadata of a converted model.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    pub metadata: Vec<(String, Value)>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// How `pre` was chosen: `"hash"` (llama.cpp's table) or `"pre_tokenizer"` (its
    /// description in tokenizer.json); `"tokenizer.model"` for a SentencePiece vocabulary.
    pub pre_from: &'static str,
    /// The SHA-256 of the check text's ids (empty when no tokenizer.json gave them).
    pub hash: String,
    /// For a SentencePiece vocabulary with a `tokenizer.json` beside it: the first token at
    /// which the `tokenizers` crate's ids for llama.cpp's check text differ from the
    /// converted vocabulary's (`None` when they agree or there is nothing to compare).
    pub differs_at: Option<usize>,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("tokenizer.json: {why}"))
}

/// The `tokenizer.ggml.*` metadata and chat template of `files` for a model of
/// `vocab_size` tokens.
pub fn gguf_metadata(files: &HfFiles, vocab_size: usize) -> Result<GgufTokenizer> {
    if let Some(model) = files.tokenizer_model {
        return spm_metadata(files, model, vocab_size);
    }
    let doc: serde_json::Value = serde_json::from_str(files.tokenizer_json).map_err(bad)?;
    let model = &doc["model"];
    match model["type"].as_str() {
        Some("BPE") => {}
        Some(other) => {
            return Err(bad(format!(
                "a {other} model; conversion covers byte-level BPE tokenizers"
            )))
        }
        None => return Err(bad("no model.type")),
    }
    if !is_byte_level(&doc) {
        return Err(bad(
            "a SentencePiece-style BPE (byte fallback, no ByteLevel pre-tokenizer or decoder), whose scores and piece types are in tokenizer.model, which the folder lacks",
        ));
    }
    let hf: tokenizers::Tokenizer = files.tokenizer_json.parse().map_err(bad)?;

    // Tokens by id, with types.
    let vocab = hf.get_vocab(true);
    let mut by_id: Vec<Option<String>> = vec![None; vocab_size];
    for (piece, &id) in &vocab {
        let slot = by_id.get_mut(id as usize).ok_or_else(|| {
            bad(format!(
                "token {piece:?} has id {id}, outside the model's vocabulary of {vocab_size}"
            ))
        })?;
        *slot = Some(piece.clone());
    }
    let added = hf.get_added_tokens_decoder();
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for (i, piece) in by_id.into_iter().enumerate() {
        let (text, kind) = match (piece, added.get(&(i as u32))) {
            (None, _) => (format!("[PAD{i}]"), TokenType::Unused),
            (Some(p), Some(a)) if a.special || looks_special(&p) => (p, TokenType::Control),
            // llama.cpp keeps user-defined tokens pre-normalised: `▁` back to a space.
            (Some(p), Some(_)) => (p.replace('\u{2581}', " "), TokenType::UserDefined),
            (Some(p), None) => (p, TokenType::Normal),
        };
        tokens.push(text);
        types.push(Value::I32(kind.id()));
    }

    let merges = merges(&doc)?;
    let mut metadata: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(String::new())),
        ("tokenizer.ggml.tokens".into(), Value::strings(&tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(ValueType::I32, types),
        ),
        ("tokenizer.ggml.merges".into(), Value::strings(&merges)),
    ];
    metadata.extend(special_ids(&doc, files, vocab_size));
    if let Some(cfg) = files.tokenizer_config {
        for typ in ["bos", "eos"] {
            if let Some(flag) = cfg[format!("add_{typ}_token")].as_bool() {
                metadata.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(flag)));
            }
        }
    }
    metadata.extend(chat_templates(files)?);

    // The pre-tokenizer: llama.cpp's hash, else the description; verified by encoding.
    let hash = check_hash(&hf)?;
    let (pre, pre_from) = match KNOWN_HASHES.iter().find(|(h, _)| *h == hash) {
        Some((_, name)) => (name.to_string(), "hash"),
        None => (
            pre_from_description(&doc["pre_tokenizer"]).ok_or_else(|| {
                Error::UnsupportedPreTokenizer(format!(
                    "tokenizer.json's (check-text hash {hash}, not in llama.cpp's table, and a pre_tokenizer fmlab does not recognise)"
                ))
            })?,
            "pre_tokenizer",
        ),
    };
    metadata[1].1 = Value::String(pre.clone());
    let ours = encoder(&metadata)?;
    let want = hf
        .encode(CHECK_TEXT, false)
        .map_err(bad)?
        .get_ids()
        .to_vec();
    let got = ours.encode(CHECK_TEXT, false, true);
    if got != want {
        let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        return Err(Error::Metadata(format!(
            "tokenizer.ggml.pre {pre:?} (from the {}) gives other ids than tokenizer.json on llama.cpp's check text, from token {at} on",
            if pre_from == "hash" { "hash" } else { "pre_tokenizer" }
        )));
    }
    Ok(GgufTokenizer {
        metadata,
        pre,
        pre_from,
        hash,
        differs_at: None,
    })
}

/// The metadata of a SentencePiece vocabulary, as llama.cpp's `_set_vocab_sentencepiece`
/// writes it: `tokenizer.model`'s pieces by id with their scores and types (user-defined
/// pieces count as normal there), ids the model lacks up to `vocab_size` as unused
/// `[PADn]` with score -10000; then `added_tokens.json`'s tokens as user-defined and
/// `tokenizer_config.json`'s `added_tokens_decoder` entries as control (special, or
/// looking special) or user-defined tokens, each with score -1000. Special ids and the
/// BOS/EOS flags as for byte-level vocabularies; `add_space_prefix` false for Gemma 3 (as
/// llama.cpp writes it) or when the model adds no dummy prefix.
fn spm_metadata(files: &HfFiles, model: &[u8], vocab_size: usize) -> Result<GgufTokenizer> {
    use crate::sentencepiece::{ModelProto, BPE};
    let proto = ModelProto::parse(model)?;
    if proto.model_type != BPE {
        return Err(Error::UnsupportedModel(format!(
            "tokenizer.model is a {} SentencePiece model; fmlab's SentencePiece tokenizer merges pieces by score, as llama.cpp's does for BPE models",
            match proto.model_type {
                crate::sentencepiece::UNIGRAM => "unigram".to_string(),
                other => format!("type-{other}"),
            }
        )));
    }
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10_000f32; vocab_size];
    let mut types = vec![TokenType::Unused; vocab_size];
    for (id, p) in proto.pieces.iter().enumerate().take(vocab_size) {
        tokens[id] = p.piece.clone();
        scores[id] = p.score;
        types[id] = match p.kind {
            TokenType::UserDefined => TokenType::Normal,
            other => other,
        };
    }
    let mut added = |id: u64, text: String, kind: TokenType| {
        if let Some(slot) = usize::try_from(id).ok().filter(|&i| i < vocab_size) {
            tokens[slot] = text;
            scores[slot] = -1000.0;
            types[slot] = kind;
        }
    };
    if let Some(map) = files.added_tokens.and_then(|v| v.as_object()) {
        for (text, id) in map {
            if let Some(id) = id.as_u64() {
                added(id, text.clone(), TokenType::UserDefined);
            }
        }
    }
    if let Some(decoder) = files
        .tokenizer_config
        .and_then(|c| c["added_tokens_decoder"].as_object())
    {
        for (id, entry) in decoder {
            let (Ok(id), Some(text)) = (id.parse::<u64>(), entry["content"].as_str()) else {
                return Err(Error::Metadata(format!(
                    "tokenizer_config.json: added_tokens_decoder entry {id:?} is not an id with a content"
                )));
            };
            if entry["special"].as_bool() == Some(true) || looks_special(text) {
                added(id, text.to_string(), TokenType::Control);
            } else {
                added(id, text.replace('\u{2581}', " "), TokenType::UserDefined);
            }
        }
    }

    let mut metadata: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        ("tokenizer.ggml.tokens".into(), Value::strings(&tokens)),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(ValueType::F32, scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                ValueType::I32,
                types.iter().map(|t| Value::I32(t.id())).collect(),
            ),
        ),
    ];
    // Special ids are looked up among tokenizer.json's added tokens when there is one.
    let doc: serde_json::Value =
        serde_json::from_str(files.tokenizer_json).unwrap_or(serde_json::Value::Null);
    metadata.extend(special_ids(&doc, files, vocab_size));
    if let Some(cfg) = files.tokenizer_config {
        for typ in ["bos", "eos"] {
            if let Some(flag) = cfg[format!("add_{typ}_token")].as_bool() {
                metadata.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(flag)));
            }
        }
    }
    let gemma3 = files
        .config
        .is_some_and(|c| matches!(c["model_type"].as_str(), Some("gemma3" | "gemma3_text")));
    if gemma3 || !proto.add_dummy_prefix {
        metadata.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)));
    }
    metadata.extend(chat_templates(files)?);

    // Where tokenizer.json is there too, the two should tokenize alike: say where not.
    let ours = encoder(&metadata)?;
    let (hash, differs_at) = match files.tokenizer_json.parse::<tokenizers::Tokenizer>() {
        Ok(hf) => {
            let want = hf
                .encode(CHECK_TEXT, false)
                .map_err(bad)?
                .get_ids()
                .to_vec();
            let got = ours.encode(CHECK_TEXT, false, true);
            let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
            let differs = (got != want).then_some(at);
            (check_hash(&hf)?, differs)
        }
        Err(_) => (String::new(), None),
    };
    Ok(GgufTokenizer {
        metadata,
        pre: "default".into(),
        pre_from: "tokenizer.model",
        hash,
        differs_at,
    })
}

/// Our encoder over converted metadata (its `tokenizer.ggml.*` keys), to check it against
/// the `tokenizers` crate.
fn encoder(metadata: &[(String, Value)]) -> Result<Tokenizer> {
    Tokenizer::from_metadata(
        metadata
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer.ggml."))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    )
}

/// Whether a tokenizer.json maps bytes to GPT-2's printable characters (a ByteLevel
/// pre-tokenizer or decoder) rather than SentencePiece's `▁` with byte fallback.
fn is_byte_level(doc: &serde_json::Value) -> bool {
    fn has_byte_level(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.get("type").and_then(|t| t.as_str()) == Some("ByteLevel")
                    || m.values().any(has_byte_level)
            }
            serde_json::Value::Array(a) => a.iter().any(has_byte_level),
            _ => false,
        }
    }
    doc["model"]["byte_fallback"].as_bool() != Some(true)
        && (has_byte_level(&doc["pre_tokenizer"]) || has_byte_level(&doc["decoder"]))
}

/// llama.cpp's `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// `model.merges` as `left right` strings (the list-of-pairs format since transformers
/// 4.45 joined, a space inside a part written as GPT-2's `Ġ`).
fn merges(doc: &serde_json::Value) -> Result<Vec<String>> {
    let list = doc["model"]["merges"]
        .as_array()
        .ok_or_else(|| bad("no model.merges"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| match m {
            serde_json::Value::String(s) if s.contains(' ') => Ok(s.clone()),
            serde_json::Value::Array(pair) => match (
                pair.first().and_then(|x| x.as_str()),
                pair.get(1).and_then(|x| x.as_str()),
                pair.len(),
            ) {
                (Some(a), Some(b), 2) => Ok(format!(
                    "{} {}",
                    a.replace(' ', "\u{120}"),
                    b.replace(' ', "\u{120}")
                )),
                _ => Err(bad(format!("merge {i} is not a pair of strings"))),
            },
            _ => Err(bad(format!("merge {i} is not \"left right\""))),
        })
        .collect()
}

/// GGUF's key for each special token type that llama.cpp's `SpecialVocab` reads.
const SPECIAL_KEYS: [(&str, &str); 7] = [
    ("bos", "tokenizer.ggml.bos_token_id"),
    ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"),
    ("cls", "tokenizer.ggml.cls_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// Special ids: `tokenizer_config.json`'s `{typ}_token` text looked up among the added
/// tokens, else `config.json`'s `{typ}_token_id` when it is one integer.
fn special_ids(doc: &serde_json::Value, files: &HfFiles, n: usize) -> Vec<(String, Value)> {
    let added: HashMap<&str, u64> = doc["added_tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| Some((t["content"].as_str()?, t["id"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (typ, key) in SPECIAL_KEYS {
        let from_tokenizer = files.tokenizer_config.and_then(|cfg| {
            let entry = &cfg[format!("{typ}_token")];
            let text = entry.as_str().or_else(|| entry["content"].as_str())?;
            added.get(text).copied()
        });
        let from_config = || {
            files
                .config
                .and_then(|c| c[format!("{typ}_token_id")].as_u64())
        };
        if let Some(id) = from_tokenizer.or_else(from_config) {
            if (id as usize) < n {
                out.push((key.to_string(), Value::U32(id as u32)));
            }
        }
    }
    out
}

/// `tokenizer.chat_template` (and named templates as `tokenizer.chat_template.NAME`).
fn chat_templates(files: &HfFiles) -> Result<Vec<(String, Value)>> {
    let entry = files.tokenizer_config.map(|c| &c["chat_template"]);
    let mut out = Vec::new();
    match entry {
        Some(serde_json::Value::String(s)) => {
            out.push(("tokenizer.chat_template".into(), Value::String(s.clone())))
        }
        Some(serde_json::Value::Array(list)) => {
            for t in list {
                let (Some(name), Some(text)) = (t["name"].as_str(), t["template"].as_str()) else {
                    return Err(Error::Template(
                        "tokenizer_config.json: a chat_template entry lacks its name or template"
                            .into(),
                    ));
                };
                let key = match name {
                    "default" => "tokenizer.chat_template".to_string(),
                    other => format!("tokenizer.chat_template.{other}"),
                };
                out.push((key, Value::String(text.into())));
            }
        }
        Some(serde_json::Value::Null) | None => {
            if let Some(text) = files.chat_template {
                out.push(("tokenizer.chat_template".into(), Value::String(text.into())));
            }
        }
        Some(_) => {
            return Err(Error::Template(
                "tokenizer_config.json: chat_template is neither text nor a list".into(),
            ))
        }
    }
    Ok(out)
}

/// llama.cpp's identifier of a pre-tokenizer: SHA-256 of the check text's ids (special
/// tokens added as the tokenizer adds them), printed as a Python list.
fn check_hash(hf: &tokenizers::Tokenizer) -> Result<String> {
    let ids = hf.encode(CHECK_TEXT, true).map_err(bad)?;
    let list: Vec<String> = ids.get_ids().iter().map(u32::to_string).collect();
    let text = format!("[{}]", list.join(", "));
    Ok(format!("{:x}", Sha256::digest(text.as_bytes())))
}

/// The pre-tokenizer fmlab implements that a tokenizer.json's `pre_tokenizer` describes: a
/// split by Llama 3's (or fmlab's case-insensitive spelling of it) or Qwen2's pattern, digits
/// isolated before GPT-2's split, or GPT-2's split alone.
fn pre_from_description(pre: &serde_json::Value) -> Option<String> {
    let steps: Vec<&serde_json::Value> = match pre["type"].as_str()? {
        "Sequence" => pre["pretokenizers"].as_array()?.iter().collect(),
        _ => vec![pre],
    };
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["type"].as_str()).collect();
    let pattern = steps
        .iter()
        .find(|s| s["type"] == "Split")
        .and_then(|s| s["pattern"]["Regex"].as_str());
    let byte_level_regex = steps
        .iter()
        .any(|s| s["type"] == "ByteLevel" && s["use_regex"].as_bool().unwrap_or(true));
    let name = match (kinds.as_slice(), pattern) {
        (["Split", "ByteLevel"], Some(p)) if p == LLAMA3 || p == crate::train::SPLIT_PATTERN => {
            "llama-bpe"
        }
        (["Split", "ByteLevel"], Some(p)) if p == QWEN2 => "qwen2",
        (["Digits", "ByteLevel"], None)
            if steps[0]["individual_digits"].as_bool() == Some(true) && byte_level_regex =>
        {
            "smollm"
        }
        (["ByteLevel"], None) if byte_level_regex => "gpt2",
        _ => return None,
    };
    Some(name.into())
}

/// A `tokenizer.json` for the tokenizer of a GGUF file: every token in the vocabulary,
/// control and user-defined tokens also as added tokens (special when control), and a
/// post-processor adding BOS when the file asks for it. A byte-level BPE vocabulary
/// (`tokenizer.ggml.model = gpt2`) keeps its merges and the pre-tokenizer
/// `tokenizer.ggml.pre` names; a SentencePiece one (`llama`) becomes what Hugging Face
/// writes for Gemma and Llama 2: spaces replaced by `▁`, BPE with byte fallback, and
/// merges generated from the vocabulary, ordered by the merged piece's score.
pub fn tokenizer_json(g: &Gguf) -> Result<serde_json::Value> {
    let tok = Tokenizer::from_gguf(g)?;
    let model = g.get("tokenizer.ggml.model").and_then(Value::as_str);
    let (normalizer, pre_tokenizer, decoder, bpe) = match model {
        Some("gpt2") => byte_level_parts(g)?,
        Some("llama") => spm_parts(&tok),
        _ => {
            return Err(Error::UnsupportedModel(format!(
            "{} (byte-level BPE, gpt2, and SentencePiece, llama, are written as tokenizer.json)",
            model.unwrap_or("none")
        )))
        }
    };
    let n = tok.vocab_size();
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for id in 0..n as u32 {
        let piece = tok.piece(id)?;
        let kind = tok.vocab.stored_token_type(id);
        if matches!(kind, TokenType::Control | TokenType::UserDefined) {
            added.push(json!({
                "id": id, "content": piece, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind == TokenType::Control
            }));
        }
        vocab.entry(piece.to_string()).or_insert(json!(id));
    }
    let post_processor = match (tok.vocab.add_bos, tok.vocab.bos) {
        (true, Some(bos)) => {
            let text = tok.piece(bos)?;
            let mut specials = serde_json::Map::new();
            specials.insert(
                text.to_string(),
                json!({"id": text, "ids": [bos], "tokens": [text]}),
            );
            json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": text, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": specials
            })
        }
        _ => serde_json::Value::Null,
    };
    let mut model = bpe;
    model["type"] = json!("BPE");
    model["dropout"] = serde_json::Value::Null;
    model["continuing_subword_prefix"] = serde_json::Value::Null;
    model["end_of_word_suffix"] = serde_json::Value::Null;
    model["ignore_merges"] = json!(false);
    model["vocab"] = serde_json::Value::Object(vocab);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": model,
    }))
}

type Parts = (
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
);

/// Normaliser, pre-tokenizer, decoder and BPE settings of a byte-level vocabulary.
fn byte_level_parts(g: &Gguf) -> Result<Parts> {
    let pre = g
        .get("tokenizer.ggml.pre")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    let pre_tokenizer = match pre {
        "default" | "gpt2" | "gpt-2" => byte_level(true),
        "smollm" | "starcoder" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "llama-bpe" | "llama3" => {
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(false)]})
        }
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(false)]}),
        other => return Err(Error::UnsupportedPreTokenizer(other.into())),
    };
    let merges = g
        .get("tokenizer.ggml.merges")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Metadata("tokenizer.ggml.merges is missing".into()))?
        .iter()
        .map(|m| m.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| Error::Metadata("tokenizer.ggml.merges holds a non-string".into()))?;
    Ok((
        serde_json::Value::Null,
        pre_tokenizer,
        json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}),
        json!({"unk_token": null, "fuse_unk": false, "byte_fallback": false, "merges": merges}),
    ))
}

/// Normaliser, decoder and BPE settings of a SentencePiece vocabulary: `▁` for spaces (a
/// leading one too when the vocabulary adds a space prefix), byte fallback, and the merges.
fn spm_parts(tok: &Tokenizer) -> Parts {
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let unreplace = json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "});
    let (normalizer, decoder) = match tok.vocab.add_space_prefix {
        true => (
            json!({"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "\u{2581}"}, replace]}),
            json!({"type": "Sequence", "decoders": [unreplace, {"type": "ByteFallback"},
                {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
        ),
        false => (
            replace,
            json!({"type": "Sequence", "decoders": [unreplace, {"type": "ByteFallback"}, {"type": "Fuse"}]}),
        ),
    };
    let unk = tok
        .vocab
        .unk
        .and_then(|u| tok.piece(u).ok())
        .map(str::to_string);
    (
        normalizer,
        serde_json::Value::Null,
        decoder,
        json!({"unk_token": unk, "fuse_unk": true, "byte_fallback": true, "merges": spm_merges(&tok.vocab)}),
    )
}

/// Merges for a SentencePiece vocabulary, as Hugging Face generates them: every split of
/// every piece into two pieces of the vocabulary, those of one piece by the ids of their
/// parts, then all by the merged piece's score, highest first (then longer left and right
/// parts first). Merging by this rank is merging by score, as SentencePiece does.
fn spm_merges(vocab: &crate::Vocab) -> Vec<[String; 2]> {
    let mut merges: Vec<(f32, usize, usize, [String; 2])> = Vec::new();
    for id in 0..vocab.len() as u32 {
        let Ok(piece) = vocab.piece(id) else { continue };
        let score = vocab.scores[id as usize];
        let mut local: Vec<(u32, u32, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| Some((vocab.id(&piece[..at])?, vocab.id(&piece[at..])?, at)))
            .collect();
        local.sort_unstable();
        for (_, _, at) in local {
            let (l, r) = piece.split_at(at);
            merges.push((
                score,
                l.chars().count(),
                r.chars().count(),
                [l.to_string(), r.to_string()],
            ));
        }
    }
    // Stable, so that equal keys keep the order above (as Python's sort does).
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    merges.into_iter().map(|m| m.3).collect()
}
