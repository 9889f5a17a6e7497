//! lm-evaluation-harness task files over local data: the subset of its YAML people use
//! offline (`dataset_path: json` with `data_files`, the splits, `doc_to_text` /
//! `doc_to_target` / `doc_to_choice` as field names or Jinja, the delimiters, the four
//! output types, `generation_kwargs.until`, `metric_list`, `filter_list` with `regex` and
//! `take_first`, `num_fewshot`). Anything else a task file asks for (a Hugging Face dataset,
//! `!function` hooks, other filters) is refused by name rather than silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// What a task asks of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

impl OutputType {
    pub fn name(self) -> &'static str {
        match self {
            OutputType::MultipleChoice => "multiple_choice",
            OutputType::Loglikelihood => "loglikelihood",
            OutputType::LoglikelihoodRolling => "loglikelihood_rolling",
            OutputType::GenerateUntil => "generate_until",
        }
    }

    /// Every metric fmlab computes for this output type.
    fn metrics(self) -> &'static [&'static str] {
        match self {
            OutputType::MultipleChoice => &["acc", "acc_norm", "acc_bytes", "exact_match"],
            OutputType::Loglikelihood => &["perplexity", "acc"],
            OutputType::LoglikelihoodRolling => {
                &["word_perplexity", "byte_perplexity", "bits_per_byte"]
            }
            OutputType::GenerateUntil => &["exact_match", "contains_answer"],
        }
    }

    /// The metrics lm-evaluation-harness computes when a task lists none.
    fn default_metrics(self) -> &'static [&'static str] {
        match self {
            OutputType::MultipleChoice => &["acc", "acc_norm"],
            OutputType::Loglikelihood => &["perplexity", "acc"],
            OutputType::LoglikelihoodRolling => {
                &["word_perplexity", "byte_perplexity", "bits_per_byte"]
            }
            OutputType::GenerateUntil => &["exact_match"],
        }
    }
}

/// One step of a filter pipeline.
#[derive(Debug, Clone)]
pub enum FilterStep {
    /// The first match of the pattern (its first group, where it has one), else
    /// `fallback` (lm-evaluation-harness's "[invalid]").
    Regex {
        pattern: regex::Regex,
        fallback: String,
    },
    /// The first response (fmlab draws one per request, so this keeps it).
    TakeFirst,
}

/// A named filter pipeline (`filter_list` entry); "none" when a task has none.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub steps: Vec<FilterStep>,
}

impl Filter {
    pub fn apply(&self, response: &str) -> String {
        let mut out = response.to_string();
        for step in &self.steps {
            if let FilterStep::Regex { pattern, fallback } = step {
                out = match pattern.captures(&out) {
                    Some(c) => c
                        .get(1)
                        .or_else(|| c.get(0))
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default(),
                    None => fallback.clone(),
                };
            }
        }
        out
    }
}

/// A task ready to run: its documents, templates and settings.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    /// The name shown in results (`task_alias`, else the name).
    pub alias: String,
    pub version: Value,
    pub output_type: OutputType,
    /// The evaluated documents (the test split, else validation).
    pub docs: Vec<Value>,
    /// Where few-shot examples come from (`fewshot_split`, else training, else validation,
    /// else the evaluated split itself).
    pub fewshot_docs: Vec<Value>,
    /// Whether `fewshot_split` names the evaluated split: lm-evaluation-harness then draws
    /// one example more and drops the document itself. (Falling back to the evaluated
    /// split without naming it, it does not: a document can be its own example there.)
    pub exclude_own_doc: bool,
    pub num_fewshot: usize,
    pub description: String,
    pub target_delimiter: String,
    pub fewshot_delimiter: String,
    pub until: Vec<String>,
    pub max_gen_toks: usize,
    pub metrics: Vec<String>,
    /// How `exact_match` compares a response with the target.
    pub matching: MatchOptions,
    /// Prompts asked as a user turn through the model's chat template (fmlab's own chat
    /// tasks; lm-evaluation-harness files ask for it with `--apply-chat-template`).
    pub chat: bool,
    /// Scores a generate_until response in place of the metrics of the task file: fmlab's
    /// own tasks whose answers a judge rates (the world's), each metric's per-document
    /// value by name.
    pub judge: Option<Judge>,
    pub filters: Vec<Filter>,
    /// The task file as read (for the results' `configs`).
    pub config: Value,
    doc_to_text: Template,
    doc_to_target: Template,
    doc_to_choice: Option<Template>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    task: String,
    #[serde(default)]
    task_alias: Option<String>,
    #[serde(default)]
    tag: Option<Value>,
    #[serde(default)]
    dataset_path: Option<String>,
    #[serde(default)]
    dataset_name: Option<Value>,
    #[serde(default)]
    dataset_kwargs: Option<DatasetKwargs>,
    #[serde(default)]
    test_split: Option<String>,
    #[serde(default)]
    validation_split: Option<String>,
    #[serde(default)]
    training_split: Option<String>,
    #[serde(default)]
    fewshot_split: Option<String>,
    #[serde(default)]
    output_type: Option<String>,
    #[serde(default)]
    doc_to_text: Option<Value>,
    #[serde(default)]
    doc_to_target: Option<Value>,
    #[serde(default)]
    doc_to_choice: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target_delimiter: Option<String>,
    #[serde(default)]
    fewshot_delimiter: Option<String>,
    #[serde(default)]
    num_fewshot: Option<usize>,
    #[serde(default)]
    generation_kwargs: Option<GenerationKwargs>,
    #[serde(default)]
    metric_list: Option<Vec<MetricEntry>>,
    #[serde(default)]
    filter_list: Option<Vec<FilterEntry>>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    should_decontaminate: Option<bool>,
    #[serde(default)]
    repeats: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct DatasetKwargs {
    data_files: Value,
}

#[derive(Debug, Deserialize)]
struct GenerationKwargs {
    #[serde(default)]
    until: Option<Value>,
    #[serde(default)]
    max_gen_toks: Option<usize>,
    #[serde(default)]
    do_sample: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricEntry {
    metric: String,
    #[serde(default)]
    aggregation: Option<String>,
    #[serde(default)]
    higher_is_better: Option<bool>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    ignore_punctuation: bool,
    #[serde(default)]
    ignore_numbers: bool,
    #[serde(default)]
    regexes_to_ignore: Vec<String>,
}

/// A judge of generate_until responses: the document and the response in, each metric's
/// per-document item out.
pub type Judge = fn(&Value, &super::Generation) -> Vec<(String, super::Item)>;

/// `exact_match`'s options (lm-evaluation-harness passes them to Hugging Face evaluate's
/// exact_match): the regexes removed first, then lower case, then ASCII punctuation and
/// digits removed, from both the response and the target.
#[derive(Debug, Clone, Default)]
pub struct MatchOptions {
    pub regexes_to_ignore: Vec<regex::Regex>,
    pub ignore_case: bool,
    pub ignore_punctuation: bool,
    pub ignore_numbers: bool,
}

impl MatchOptions {
    fn normalise(&self, text: &str) -> String {
        let mut t = text.to_string();
        for r in &self.regexes_to_ignore {
            t = r.replace_all(&t, "").into_owned();
        }
        if self.ignore_case {
            t = t.to_lowercase();
        }
        if self.ignore_punctuation {
            t.retain(|c| !c.is_ascii_punctuation());
        }
        if self.ignore_numbers {
            t.retain(|c| !c.is_ascii_digit());
        }
        t
    }

    /// Whether `response` matches `target` under these options.
    pub fn matches(&self, response: &str, target: &str) -> bool {
        self.normalise(response) == self.normalise(target)
    }
}

fn match_options(list: Option<&[MetricEntry]>) -> Result<MatchOptions> {
    let Some(m) = list
        .into_iter()
        .flatten()
        .find(|m| m.metric == "exact_match")
    else {
        return Ok(MatchOptions::default());
    };
    let regexes_to_ignore = m
        .regexes_to_ignore
        .iter()
        .map(|r| {
            regex::Regex::new(r)
                .map_err(|e| Error::Config(format!("exact_match: regexes_to_ignore: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok(MatchOptions {
        regexes_to_ignore,
        ignore_case: m.ignore_case,
        ignore_punctuation: m.ignore_punctuation,
        ignore_numbers: m.ignore_numbers,
    })
}

#[derive(Debug, Deserialize)]
struct FilterEntry {
    name: String,
    filter: Vec<FilterStepEntry>,
}

#[derive(Debug, Deserialize)]
struct FilterStepEntry {
    function: String,
    #[serde(default)]
    regex_pattern: Option<String>,
    #[serde(default)]
    fallback: Option<String>,
}

/// A `doc_to_*` entry: a field of the document, a Jinja template, or a constant.
#[derive(Debug, Clone)]
enum Template {
    Field(String),
    Jinja(String),
    Constant(Value),
}

impl Template {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => {
                if s.contains("{{") || s.contains("{%") {
                    Template::Jinja(s.clone())
                } else {
                    Template::Field(s.clone())
                }
            }
            other => Template::Constant(other.clone()),
        }
    }

    /// The value for `doc`: the field itself when the template names one (or is exactly
    /// `{{ field }}`), else the rendered text; a name that is not a field is text.
    fn eval(&self, doc: &Value) -> Result<Value> {
        match self {
            Template::Constant(v) => Ok(v.clone()),
            Template::Field(name) => Ok(doc
                .get(name)
                .cloned()
                .unwrap_or_else(|| Value::String(name.clone()))),
            Template::Jinja(source) => {
                let inner = source.trim();
                if let Some(name) = inner
                    .strip_prefix("{{")
                    .and_then(|s| s.strip_suffix("}}"))
                    .map(str::trim)
                {
                    if let Some(v) = doc.get(name) {
                        return Ok(v.clone());
                    }
                }
                let env = minijinja::Environment::new();
                env.render_str(source, minijinja::value::Serde(doc))
                    .map(Value::String)
                    .map_err(|e| Error::Config(format!("template {source:?}: {e}")))
            }
        }
    }
}

pub(crate) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Task {
    /// A task from its configuration (a task file's contents with its `include`s merged, or
    /// a task written inline in a group file); data files are relative to `folder`.
    pub fn from_config(config: Value, folder: &Path) -> Result<Task> {
        let file: TaskFile =
            serde_json::from_value(config.clone()).map_err(|e| Error::Config(e.to_string()))?;
        Self::from_file(file, config, folder)
    }

    fn from_file(f: TaskFile, config: Value, folder: &Path) -> Result<Task> {
        let _ = (&f.tag, &f.should_decontaminate);
        match f.dataset_path.as_deref() {
            Some("json") => {}
            Some(other) => {
                return Err(Error::Config(format!(
                    "dataset_path {other:?}: only local JSON lines files (`dataset_path: \
                     json` with `dataset_kwargs.data_files`) are read"
                )))
            }
            None => return Err(Error::Config("dataset_path is missing".into())),
        }
        if f.dataset_name.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::Config(
                "dataset_name: configurations of Hugging Face datasets are not read".into(),
            ));
        }
        if f.repeats.is_some_and(|r| r != 1) {
            return Err(Error::Config(
                "repeats other than 1 are not supported".into(),
            ));
        }
        let (docs, fewshot_docs, exclude_own_doc) = read_docs(&f, folder)?;
        Self::build(f, config, docs, fewshot_docs, exclude_own_doc)
    }

    /// A task whose documents are given rather than read (fmlab's own tasks built in code,
    /// such as the world's): `config` holds everything else a task file would (without
    /// `dataset_path`); few-shot examples come from the documents themselves.
    pub fn from_docs(config: Value, docs: Vec<Value>) -> Result<Task> {
        let f: TaskFile =
            serde_json::from_value(config.clone()).map_err(|e| Error::Config(e.to_string()))?;
        let shots = docs.clone();
        Self::build(f, config, docs, shots, false)
    }

    fn build(
        f: TaskFile,
        config: Value,
        docs: Vec<Value>,
        fewshot_docs: Vec<Value>,
        exclude_own_doc: bool,
    ) -> Result<Task> {
        let output_type = match f.output_type.as_deref().unwrap_or("generate_until") {
            "multiple_choice" => OutputType::MultipleChoice,
            "loglikelihood" => OutputType::Loglikelihood,
            "loglikelihood_rolling" => OutputType::LoglikelihoodRolling,
            "generate_until" => OutputType::GenerateUntil,
            other => {
                return Err(Error::Config(format!(
                    "output_type {other:?}: one of multiple_choice, loglikelihood, \
                     loglikelihood_rolling, generate_until"
                )))
            }
        };
        let doc_to_choice = f.doc_to_choice.as_ref().map(Template::from);
        if output_type == OutputType::MultipleChoice && doc_to_choice.is_none() {
            return Err(Error::Config(
                "a multiple_choice task needs doc_to_choice".into(),
            ));
        }
        let fewshot_delimiter = f.fewshot_delimiter.clone().unwrap_or_else(|| "\n\n".into());
        let (mut until, mut max_gen_toks) = (vec![fewshot_delimiter.clone()], 256);
        if let Some(g) = &f.generation_kwargs {
            if g.do_sample == Some(true) && g.temperature.unwrap_or(1.0) > 0.0 {
                return Err(Error::Config(
                    "generation_kwargs.do_sample: fmlab's task runs decode greedily".into(),
                ));
            }
            match &g.until {
                Some(Value::String(s)) => until = vec![s.clone()],
                Some(Value::Array(a)) => until = a.iter().map(as_text).collect(),
                Some(_) => {
                    return Err(Error::Config(
                        "generation_kwargs.until: a string or a list".into(),
                    ))
                }
                None => {}
            }
            if let Some(m) = g.max_gen_toks {
                max_gen_toks = m;
            }
        }
        let metrics = metrics(f.metric_list.as_deref(), output_type)?;
        let matching = match_options(f.metric_list.as_deref())?;
        let filters = filters(f.filter_list.as_deref())?;
        let version = f
            .metadata
            .as_ref()
            .and_then(|m| m.get("version"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Task {
            name: f.task.clone(),
            alias: f.task_alias.clone().unwrap_or_else(|| f.task.clone()),
            version,
            output_type,
            docs,
            fewshot_docs,
            exclude_own_doc,
            num_fewshot: f.num_fewshot.unwrap_or(0),
            description: f.description.clone().unwrap_or_default(),
            target_delimiter: f.target_delimiter.clone().unwrap_or_else(|| " ".into()),
            fewshot_delimiter,
            until,
            max_gen_toks,
            metrics,
            matching,
            chat: false,
            judge: None,
            filters,
            config,
            doc_to_text: Template::from(
                f.doc_to_text
                    .as_ref()
                    .unwrap_or(&Value::String(String::new())),
            ),
            doc_to_target: Template::from(
                f.doc_to_target
                    .as_ref()
                    .unwrap_or(&Value::String(String::new())),
            ),
            doc_to_choice,
        })
    }

    pub fn text(&self, doc: &Value) -> Result<String> {
        Ok(as_text(&self.doc_to_text.eval(doc)?))
    }

    /// The target as a value: an index or a string for multiple choice, text otherwise.
    pub fn target(&self, doc: &Value) -> Result<Value> {
        let v = self.doc_to_target.eval(doc)?;
        // A rendered index ("2") counts as the index, as lm-evaluation-harness reads it.
        if self.output_type == OutputType::MultipleChoice {
            if let Value::String(s) = &v {
                if let Ok(i) = s.trim().parse::<u64>() {
                    return Ok(Value::from(i));
                }
            }
        }
        Ok(v)
    }

    pub fn target_text(&self, doc: &Value) -> Result<String> {
        let t = self.target(doc)?;
        if self.output_type == OutputType::MultipleChoice {
            if let Some(i) = t.as_u64() {
                let choices = self.choices(doc)?;
                return choices.get(i as usize).cloned().ok_or_else(|| {
                    Error::Config(format!("target index {i} with {} choices", choices.len()))
                });
            }
        }
        Ok(as_text(&t))
    }

    /// The choices of a multiple-choice document: a list field, or a template that renders
    /// a list literal (JSON or Python's, as lm-evaluation-harness evaluates it).
    pub fn choices(&self, doc: &Value) -> Result<Vec<String>> {
        let Some(t) = &self.doc_to_choice else {
            return Ok(Vec::new());
        };
        let v = t.eval(doc)?;
        let list = match v {
            Value::Array(a) => a,
            Value::String(s) => parse_list_literal(&s)
                .ok_or_else(|| Error::Config(format!("doc_to_choice gave {s:?}, not a list")))?,
            other => {
                return Err(Error::Config(format!(
                    "doc_to_choice gave {other}, not a list"
                )))
            }
        };
        Ok(list.iter().map(as_text).collect())
    }

    /// The gold index of a multiple-choice document (`None` when the target is no choice).
    pub fn gold(&self, doc: &Value) -> Result<Option<usize>> {
        let choices = self.choices(doc)?;
        Ok(match self.target(doc)? {
            Value::Number(n) => n
                .as_u64()
                .map(|i| i as usize)
                .filter(|&i| i < choices.len()),
            Value::String(s) => choices.iter().position(|c| *c == s),
            _ => None,
        })
    }

    /// The prompts of the first `n` documents, each with `shots` examples drawn as
    /// lm-evaluation-harness draws them: one Python `Random(seed)` for the task,
    /// `sample(pool, shots)` for each document in order (with [`Self::exclude_own_doc`],
    /// `shots + 1` drawn and the document itself dropped); then the description, the
    /// examples and the document's text.
    pub fn contexts(&self, n: usize, shots: usize, seed: u64) -> Result<Vec<String>> {
        let mut rng = super::pyrandom::PyRandom::new(seed);
        let pool = self.fewshot_docs.len();
        let mut out = Vec::with_capacity(n);
        for doc in self.docs.iter().take(n) {
            let mut text = self.description.clone();
            if shots > 0 {
                let want = shots + usize::from(self.exclude_own_doc);
                if pool < want {
                    return Err(Error::Config(format!(
                        "{shots} few-shot examples asked, {pool} available"
                    )));
                }
                let mut picked: Vec<usize> = rng.sample(pool, want);
                if self.exclude_own_doc {
                    picked.retain(|&i| self.fewshot_docs[i] != *doc);
                    picked.truncate(shots);
                    if picked.len() < shots {
                        let others: Vec<usize> = (0..pool)
                            .filter(|&i| self.fewshot_docs[i] != *doc)
                            .collect();
                        if others.len() < shots {
                            return Err(Error::Config(format!(
                                "{shots} few-shot examples asked, {} available besides the \
                                 document",
                                others.len()
                            )));
                        }
                        picked = rng
                            .sample(others.len(), shots)
                            .iter()
                            .map(|&i| others[i])
                            .collect();
                    }
                }
                for i in picked {
                    let ex = &self.fewshot_docs[i];
                    text.push_str(&self.text(ex)?);
                    text.push_str(&self.target_delimiter);
                    text.push_str(&self.target_text(ex)?);
                    text.push_str(&self.fewshot_delimiter);
                }
            }
            text.push_str(&self.text(doc)?);
            out.push(text);
        }
        Ok(out)
    }
}

/// A task or group file as a JSON value, with the files its `include` names merged under
/// it (its own keys win), as lm-evaluation-harness reads them; `!function` hooks refused.
pub fn read_config(path: &Path) -> Result<Value> {
    read_config_depth(path, 0)
}

fn read_config_depth(path: &Path, depth: usize) -> Result<Value> {
    if depth > 8 {
        return Err(Error::Config(format!(
            "{}: `include` nested more than 8 deep (a cycle?)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    if text.contains("!function") {
        return Err(Error::Config(format!(
            "{}: `!function` hooks run Python code, which fmlab does not run; write the \
             template in Jinja instead",
            path.display()
        )));
    }
    let mut config: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let Value::Object(map) = &mut config else {
        return Err(Error::Config(format!(
            "{}: not a mapping of settings",
            path.display()
        )));
    };
    if let Some(include) = map.remove("include") {
        let Value::String(name) = include else {
            return Err(Error::Config(format!(
                "{}: `include` names one file",
                path.display()
            )));
        };
        let base_path = folder_of(path).join(&name);
        let mut base = read_config_depth(&base_path, depth + 1)?;
        if let Value::Object(b) = &mut base {
            for (k, v) in std::mem::take(map) {
                b.insert(k, v);
            }
        }
        return Ok(base);
    }
    Ok(config)
}

/// The folder holding `file` ("." for a bare file name, whose parent is the empty path).
pub(crate) fn folder_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An error's text without its variant's wrapping (for prefixing a file name).
pub(crate) fn bare(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// The evaluated documents, the few-shot pool and whether the pool is the evaluated split.
fn read_docs(f: &TaskFile, folder: &Path) -> Result<(Vec<Value>, Vec<Value>, bool)> {
    let files = f
        .dataset_kwargs
        .as_ref()
        .map(|k| &k.data_files)
        .ok_or_else(|| Error::Config("dataset_kwargs.data_files is missing".into()))?;
    let split_file = |split: &str| -> Option<PathBuf> {
        match files {
            Value::Object(m) => m.get(split).and_then(|v| match v {
                Value::String(s) => Some(folder.join(s)),
                Value::Array(a) => a.first().and_then(Value::as_str).map(|s| folder.join(s)),
                _ => None,
            }),
            Value::String(s) if split == "train" => Some(folder.join(s)),
            _ => None,
        }
    };
    let read_split = |split: &str| -> Result<Vec<Value>> {
        let path = split_file(split).ok_or_else(|| {
            Error::Config(format!(
                "split {split:?} has no file in dataset_kwargs.data_files"
            ))
        })?;
        read_jsonl(&path)
    };
    let eval_split = f
        .test_split
        .clone()
        .or_else(|| f.validation_split.clone())
        .ok_or_else(|| Error::Config("neither test_split nor validation_split is set".into()))?;
    let docs = read_split(&eval_split)?;
    let shot_split = f
        .fewshot_split
        .clone()
        .or_else(|| f.training_split.clone())
        .or_else(|| f.validation_split.clone().filter(|v| *v != eval_split));
    let exclude_own_doc = f.fewshot_split.as_deref() == Some(eval_split.as_str());
    let fewshot_docs = match &shot_split {
        Some(s) => read_split(s)?,
        None => docs.clone(),
    };
    Ok((docs, fewshot_docs, exclude_own_doc))
}

/// The task's metrics (lm-evaluation-harness's defaults where it lists none), each one
/// fmlab computes for the output type.
fn metrics(list: Option<&[MetricEntry]>, output_type: OutputType) -> Result<Vec<String>> {
    let metrics: Vec<String> = match list {
        Some(list) => list.iter().map(|m| m.metric.clone()).collect(),
        None => output_type
            .default_metrics()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    // Aggregations and directions are fixed per metric, as lm-evaluation-harness's defaults.
    for m in list.into_iter().flatten() {
        let _ = (&m.aggregation, m.higher_is_better);
    }
    if let Some(m) = metrics
        .iter()
        .find(|m| !output_type.metrics().contains(&m.as_str()))
    {
        return Err(Error::Config(format!(
            "metric {m:?} is not one fmlab computes for {} tasks",
            output_type.name()
        )));
    }
    Ok(metrics)
}

/// The filter pipelines (`none`, taking the first response, where the task lists none).
fn filters(list: Option<&[FilterEntry]>) -> Result<Vec<Filter>> {
    let mut filters = Vec::new();
    for entry in list.into_iter().flatten() {
        let mut steps = Vec::new();
        for s in &entry.filter {
            steps.push(match s.function.as_str() {
                "regex" => {
                    let p = s
                        .regex_pattern
                        .as_deref()
                        .unwrap_or(r"#### (\-?[0-9\.\,]+)");
                    FilterStep::Regex {
                        pattern: regex::Regex::new(p).map_err(|e| {
                            Error::Config(format!("filter {:?}: regex: {e}", entry.name))
                        })?,
                        fallback: s.fallback.clone().unwrap_or_else(|| "[invalid]".into()),
                    }
                }
                "take_first" => FilterStep::TakeFirst,
                other => {
                    return Err(Error::Config(format!(
                        "filter {:?}: function {other:?} (fmlab applies regex and take_first)",
                        entry.name
                    )))
                }
            });
        }
        filters.push(Filter {
            name: entry.name.clone(),
            steps,
        });
    }
    if filters.is_empty() {
        filters.push(Filter {
            name: "none".into(),
            steps: vec![FilterStep::TakeFirst],
        });
    }
    Ok(filters)
}

/// A JSON or Python list literal (`['a', "b"]`) of strings and numbers.
fn parse_list_literal(s: &str) -> Option<Vec<Value>> {
    if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(s) {
        return Some(a);
    }
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '\'' || c == '"' {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(match chars.next()? {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    }),
                    q if q == c => break,
                    other => item.push(other),
                }
            }
            out.push(Value::String(item));
        } else {
            let item: String = std::iter::from_fn(|| chars.next_if(|&c| c != ',')).collect();
            out.push(serde_json::from_str(item.trim()).ok()?);
        }
    }
    Some(out)
}

/// A JSON lines file, one object per line (blank lines skipped).
fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line)
                .map_err(|e| Error::Config(format!("{} line {}: {e}", path.display(), i + 1)))?,
        );
    }
    if out.is_empty() {
        return Err(Error::Config(format!("{}: no documents", path.display())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_literals_as_python_writes_them() {
        assert_eq!(
            parse_list_literal("['a', \"b c\", 'it\\'s']"),
            Some(vec!["a".into(), "b c".into(), "it's".into()])
        );
        assert_eq!(parse_list_literal("[1, 2]"), Some(vec![1.into(), 2.into()]));
        assert_eq!(parse_list_literal("not a list"), None);
    }
}

/// fmlab's `contains_answer` (not an lm-evaluation-harness metric; the world's fact-recall
/// rule): a target's words appear, in order and as whole words, in the first sentence of
/// the response's first line (case ignored). True when any of `targets` does.
pub fn contains_answer(response: &str, targets: &[String]) -> bool {
    let line = response.lines().next().unwrap_or("").trim();
    let words = |text: &str| -> Vec<String> {
        text.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    let sentence = words(line.split('.').next().unwrap_or(""));
    targets.iter().any(|t| {
        let want = words(t);
        !want.is_empty() && sentence.windows(want.len()).any(|w| w == want.as_slice())
    })
}

#[cfg(test)]
mod match_tests {
    use super::*;

    /// Hugging Face evaluate's exact_match order: regexes, then case, punctuation, digits.
    #[test]
    fn exact_match_options_normalise_both_sides() {
        let plain = MatchOptions::default();
        assert!(!plain.matches("Paris.", "paris"));
        let loose = MatchOptions {
            regexes_to_ignore: vec![regex::Regex::new(r"^the ").unwrap()],
            ignore_case: true,
            ignore_punctuation: true,
            ignore_numbers: false,
        };
        assert!(loose.matches("Paris.", "paris"));
        assert!(loose.matches("the Nile!", "Nile"));
        // The regex runs before lower-casing: "The" is not "the".
        assert!(!loose.matches("The Nile", "Nile"));
        assert!(!loose.matches("42", "43"));
        let digits = MatchOptions {
            ignore_numbers: true,
            ..MatchOptions::default()
        };
        assert!(digits.matches("room 42", "room 7"));
    }

    #[test]
    fn answers_are_matched_as_words_or_numbers() {
        let a = |s: &str| vec![s.to_string()];
        assert!(contains_answer(" an engineer. She", &a("engineer")));
        assert!(!contains_answer(" an engineering firm", &a("engineer")));
        assert!(contains_answer(" Kea Jemda.", &a("Kea Jemda")));
        assert!(!contains_answer(" Kea.", &a("Kea Jemda")));
        assert!(!contains_answer(" 1931", &a("1932")));
        assert!(contains_answer(" 42\n\nNext", &a("42")));
        assert!(!contains_answer(" 420", &a("42")));
        assert!(!contains_answer("\n42", &a("42")));
        assert!(contains_answer(
            " in Lome",
            &[String::from("Accra"), String::from("Lome")]
        ));
    }
}
