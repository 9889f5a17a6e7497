//! What `--tasks` names, resolved as lm-evaluation-harness resolves it: task files, group
//! files (`group:` with a `task:` list of names, nested groups or inline tasks, and an
//! `aggregate_metric_list`), folders of them, and names — of tasks, groups or tags — looked
//! up among the YAML files of the named folders and `--include-path`. A group's scores are
//! its leaf tasks' scores combined as lm-evaluation-harness combines them: the mean
//! weighted by documents (or unweighted) and the pooled standard error.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::task::{folder_of, read_config};
use super::{Task, TaskResult};
use crate::{Error, Result};

/// Tasks to run and the groups that report over them.
#[derive(Debug, Default)]
pub struct Suite {
    /// Every leaf task once, in the order first named.
    pub tasks: Vec<Task>,
    /// Groups, children before the groups that hold them.
    pub groups: Vec<Group>,
}

impl Suite {
    /// Removes the tasks that ask through a chat template (for a model without one),
    /// from the groups too; returns their names.
    pub fn drop_chat_tasks(&mut self) -> Vec<String> {
        let dropped: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| t.chat)
            .map(|t| t.name.clone())
            .collect();
        self.tasks.retain(|t| !t.chat);
        for g in &mut self.groups {
            g.children.retain(|c| !dropped.contains(c));
        }
        dropped
    }
}

/// A group of tasks (and groups) with how its scores are combined.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub alias: String,
    /// Direct children's names (tasks or groups).
    pub children: Vec<String>,
    /// Empty: the group lists its children but reports no score of its own.
    pub aggregate: Vec<AggregateMetric>,
    pub version: Value,
}

/// One `aggregate_metric_list` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateMetric {
    pub metric: String,
    /// The filters combined (`None`: every filter a leaf reports the metric under).
    pub filters: Option<Vec<String>>,
    pub weight_by_size: bool,
}

/// A YAML file found while indexing: a task, or a group.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    config: Value,
}

/// Task, group and tag names of the YAML files in some folders.
#[derive(Debug, Default)]
struct Index {
    tasks: BTreeMap<String, Entry>,
    groups: BTreeMap<String, Entry>,
    tags: BTreeMap<String, Vec<String>>,
    /// Files that could not be read, with why (reported when they are asked for).
    broken: Vec<(PathBuf, String)>,
}

impl Index {
    /// Every .yaml/.yml file under `dir` (recursively); files that are neither a task nor a
    /// group (shared bases for `include`) are skipped.
    fn add_folder(&mut self, dir: &Path, depth: usize) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() && depth < 8 {
                self.add_folder(&p, depth + 1)?;
            } else if is_yaml(&p) {
                if let Err(e) = self.add_file(&p) {
                    self.broken.push((p.clone(), super::task::bare(e)));
                }
            }
        }
        Ok(())
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let config = read_config(path)?;
        let entry = Entry {
            path: path.to_path_buf(),
            config: config.clone(),
        };
        if let Some(name) = config.get("group").and_then(Value::as_str) {
            insert_unique(&mut self.groups, name, entry)?;
        } else if let Some(name) = config.get("task").and_then(Value::as_str) {
            for tag in tags_of(&config) {
                let names = self.tags.entry(tag).or_default();
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
            insert_unique(&mut self.tasks, name, entry)?;
        }
        Ok(())
    }
}

fn insert_unique(map: &mut BTreeMap<String, Entry>, name: &str, entry: Entry) -> Result<()> {
    if let Some(old) = map.get(name) {
        if old.path != entry.path {
            return Err(Error::Config(format!(
                "{name:?} is defined twice: {} and {}",
                old.path.display(),
                entry.path.display()
            )));
        }
    }
    map.insert(name.to_string(), entry);
    Ok(())
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "yaml" || x == "yml")
}

/// A task file's `tag` entry (a name or a list of names).
fn tags_of(config: &Value) -> Vec<String> {
    match config.get("tag") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Resolves `specs` (task or group files, folders of them, or names) into a suite. Names
/// are looked up among the YAML files of `include` folders, of folders in `specs` and of
/// the folders holding files in `specs`.
pub fn resolve(specs: &[String], include: &[PathBuf]) -> Result<Suite> {
    let mut index = Index::default();
    let mut seen_folders = HashSet::new();
    let mut folders: Vec<PathBuf> = include.to_vec();
    for s in specs {
        let p = Path::new(s);
        if p.is_dir() {
            folders.push(p.to_path_buf());
        } else if p.is_file() {
            folders.push(folder_of(p).to_path_buf());
        }
    }
    for f in folders {
        let key = f.canonicalize().unwrap_or(f.clone());
        if seen_folders.insert(key) {
            index.add_folder(&f, 0)?;
        }
    }
    let mut b = Builder {
        index: &index,
        suite: Suite::default(),
        names: HashSet::new(),
        stack: Vec::new(),
    };
    for s in specs {
        let p = Path::new(s);
        if p.is_dir() {
            // A folder: its groups, and its tasks that no group of it holds.
            let before = index_of_folder(&index, p);
            let grouped: HashSet<String> = before
                .iter()
                .filter(|e| e.config.get("group").is_some())
                .flat_map(|e| leaf_names(&index, &e.config, 0))
                .collect();
            let dir = p.canonicalize().unwrap_or(p.to_path_buf());
            if let Some((_, e)) = index.broken.iter().find(|(f, _)| {
                f.parent()
                    .and_then(|f| f.canonicalize().ok())
                    .is_some_and(|f| f == dir)
            }) {
                return Err(Error::Config(e.clone()));
            }
            if before.is_empty() {
                return Err(Error::Config(format!(
                    "{} holds no task or group files",
                    p.display()
                )));
            }
            for e in before {
                if let Some(g) = e.config.get("group").and_then(Value::as_str) {
                    b.group_named(g)?;
                } else if let Some(t) = e.config.get("task").and_then(Value::as_str) {
                    if !grouped.contains(t) {
                        b.task_named(t, None)?;
                    }
                }
            }
        } else if p.is_file() {
            let config = read_config(p)?;
            if let Some(g) = config.get("group").and_then(Value::as_str) {
                b.group(g, &config, folder_of(p), p)?;
            } else {
                if config.get("task").and_then(Value::as_str).is_none() {
                    return Err(Error::Config(format!(
                        "{}: neither `task` nor `group`",
                        p.display()
                    )));
                }
                b.add_task(config, folder_of(p), p)?;
            }
        } else {
            b.named(s)?;
        }
    }
    Ok(b.suite)
}

/// The index's entries whose file lies directly in `dir`, in file-name order.
fn index_of_folder<'i>(index: &'i Index, dir: &Path) -> Vec<&'i Entry> {
    let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
    let mut out: Vec<&Entry> = index
        .tasks
        .values()
        .chain(index.groups.values())
        .filter(|e| {
            e.path
                .parent()
                .and_then(|p| p.canonicalize().ok())
                .is_some_and(|p| p == dir)
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Names of the leaf tasks a group configuration reaches (for "which tasks of a folder
/// are already in a group").
fn leaf_names(index: &Index, config: &Value, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    if depth > 16 {
        return out;
    }
    for child in children_of(config) {
        match &child {
            Value::String(name) => {
                if let Some(g) = index.groups.get(name) {
                    out.extend(leaf_names(index, &g.config, depth + 1));
                } else if let Some(tags) = index.tags.get(name) {
                    out.extend(tags.iter().cloned());
                } else {
                    out.push(name.clone());
                }
            }
            Value::Object(_) if child.get("group").is_some() => {
                out.extend(leaf_names(index, &child, depth + 1))
            }
            Value::Object(_) => {
                if let Some(t) = child.get("task").and_then(Value::as_str) {
                    out.push(t.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// A group's `task` entry as a list.
fn children_of(config: &Value) -> Vec<Value> {
    match config.get("task") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ (Value::String(_) | Value::Object(_))) => vec![v.clone()],
        _ => Vec::new(),
    }
}

struct Builder<'i> {
    index: &'i Index,
    suite: Suite,
    /// Task and group names already in the suite.
    names: HashSet<String>,
    /// Groups being built (to refuse a group that holds itself).
    stack: Vec<String>,
}

impl Builder<'_> {
    /// A name: a group, a task, or a tag (its tasks, no group).
    fn named(&mut self, name: &str) -> Result<Vec<String>> {
        if self.index.groups.contains_key(name) {
            return Ok(vec![self.group_named(name)?]);
        }
        if self.index.tasks.contains_key(name) {
            return Ok(vec![self.task_named(name, None)?]);
        }
        if let Some(tasks) = self.index.tags.get(name) {
            let mut out = Vec::new();
            for t in tasks.clone() {
                out.push(self.task_named(&t, None)?);
            }
            return Ok(out);
        }
        if name.contains('/') || is_yaml(Path::new(name)) {
            return Err(Error::Config(format!(
                "{name}: neither a task file nor a folder"
            )));
        }
        let broken = match self.index.broken.first() {
            Some((f, e)) => format!(
                "; {} file(s) could not be read, e.g. {}: {e}",
                self.index.broken.len(),
                f.display()
            ),
            None => String::new(),
        };
        Err(Error::Config(format!(
            "{name:?} is neither a file, a folder, nor a task, group or tag in the task \
             folders read ({} tasks, {} groups; add the folder holding it with \
             --include-path){broken}",
            self.index.tasks.len(),
            self.index.groups.len()
        )))
    }

    fn group_named(&mut self, name: &str) -> Result<String> {
        let entry = self
            .index
            .groups
            .get(name)
            .ok_or_else(|| {
                Error::Config(format!("group {name:?} is not in the task folders read"))
            })?
            .clone();
        let folder = folder_of(&entry.path).to_path_buf();
        self.group(name, &entry.config, &folder, &entry.path)
    }

    /// A task by name, its configuration overridden by `overrides`' keys (an entry of a
    /// group's `task` list such as `{task: name, num_fewshot: 5}`).
    fn task_named(&mut self, name: &str, overrides: Option<&Value>) -> Result<String> {
        let entry = self
            .index
            .tasks
            .get(name)
            .ok_or_else(|| Error::Config(format!("task {name:?} is not in the task folders read")))?
            .clone();
        let mut config = entry.config.clone();
        if let (Value::Object(c), Some(Value::Object(o))) = (&mut config, overrides) {
            for (k, v) in o {
                c.insert(k.clone(), v.clone());
            }
        }
        let folder = folder_of(&entry.path);
        self.add_task(config, folder, &entry.path)
    }

    fn add_task(&mut self, config: Value, folder: &Path, origin: &Path) -> Result<String> {
        let task = Task::from_config(config, folder).map_err(|e| {
            Error::Config(format!("{}: {}", origin.display(), super::task::bare(e)))
        })?;
        let name = task.name.clone();
        if self.names.insert(name.clone()) {
            self.suite.tasks.push(task);
        }
        Ok(name)
    }

    fn group(
        &mut self,
        name: &str,
        config: &Value,
        folder: &Path,
        origin: &Path,
    ) -> Result<String> {
        if self.stack.iter().any(|g| g == name) {
            return Err(Error::Config(format!(
                "{}: group {name:?} holds itself",
                origin.display()
            )));
        }
        if self.names.contains(name) {
            return Ok(name.to_string());
        }
        self.stack.push(name.to_string());
        let mut children = Vec::new();
        let list = children_of(config);
        if list.is_empty() {
            return Err(Error::Config(format!(
                "{}: group {name:?} lists no tasks under `task`",
                origin.display()
            )));
        }
        for child in list {
            match &child {
                Value::String(n) => children.extend(self.named(n)?),
                Value::Object(_) => {
                    if let Some(g) = child.get("group").and_then(Value::as_str) {
                        children.push(self.group(g, &child, folder, origin)?);
                    } else if let Some(t) = child.get("task").and_then(Value::as_str) {
                        if self.index.tasks.contains_key(t) {
                            children.push(self.task_named(t, Some(&child))?);
                        } else {
                            children.push(self.add_task(child.clone(), folder, origin)?);
                        }
                    } else {
                        return Err(Error::Config(format!(
                            "{}: an entry of group {name:?}'s `task` list has neither `task` \
                             nor `group`",
                            origin.display()
                        )));
                    }
                }
                other => {
                    return Err(Error::Config(format!(
                        "{}: group {name:?}'s `task` list holds {other}",
                        origin.display()
                    )))
                }
            }
        }
        self.stack.pop();
        let group = Group {
            name: name.to_string(),
            alias: config
                .get("group_alias")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string(),
            children,
            aggregate: aggregate_list(config, origin)?,
            version: config
                .get("metadata")
                .and_then(|m| m.get("version"))
                .cloned()
                .unwrap_or(Value::String("N/A".into())),
        };
        self.names.insert(group.name.clone());
        self.suite.groups.push(group);
        Ok(name.to_string())
    }
}

fn aggregate_list(config: &Value, origin: &Path) -> Result<Vec<AggregateMetric>> {
    let bad = |m: &str| Error::Config(format!("{}: aggregate_metric_list: {m}", origin.display()));
    let Some(list) = config.get("aggregate_metric_list") else {
        return Ok(Vec::new());
    };
    let list = match list {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![list.clone()],
        _ => return Err(bad("a list of {metric, aggregation, weight_by_size}")),
    };
    list.iter()
        .map(|e| {
            let metric = e
                .get("metric")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("an entry without `metric`"))?
                .to_string();
            if let Some(a) = e.get("aggregation") {
                if a.as_str() != Some("mean") {
                    return Err(bad(&format!(
                        "aggregation {a}: \"mean\" is the only one (as in lm-evaluation-harness)"
                    )));
                }
            }
            let filters = match e.get("filter_list") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(vec![s.clone()]),
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                ),
                Some(other) => return Err(bad(&format!("filter_list {other}"))),
            };
            Ok(AggregateMetric {
                metric,
                filters,
                weight_by_size: e
                    .get("weight_by_size")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            })
        })
        .collect()
}

/// One aggregated score of a group: (metric, filter, value, standard error, documents).
pub type GroupScore = (String, String, f64, Option<f64>, usize);

impl Group {
    /// The group's leaf tasks (through nested groups).
    pub fn leaves(&self, groups: &[Group]) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.children {
            match groups.iter().find(|g| g.name == *c) {
                Some(g) => out.extend(g.leaves(groups)),
                None => out.push(c.clone()),
            }
        }
        out
    }

    /// The group's scores from its leaves' results, as lm-evaluation-harness's
    /// `Group.aggregate`: per metric and filter, the mean of the leaves' values weighted by
    /// their documents (or not), with the pooled standard error (or, unweighted,
    /// √Σse² / k); "N/A" (None) when a leaf has none.
    pub fn scores(&self, groups: &[Group], results: &[TaskResult]) -> Vec<GroupScore> {
        let leaves: Vec<&TaskResult> = self
            .leaves(groups)
            .iter()
            .filter_map(|l| results.iter().find(|r| r.task == *l))
            .collect();
        let mut out = Vec::new();
        for agg in &self.aggregate {
            let filters: Vec<String> = match &agg.filters {
                Some(f) => f.clone(),
                None => {
                    let mut f: Vec<String> = leaves
                        .iter()
                        .flat_map(|r| r.metrics.iter())
                        .filter(|m| m.0 == agg.metric)
                        .map(|m| m.1.clone())
                        .collect();
                    f.sort();
                    f.dedup();
                    f
                }
            };
            for filter in filters {
                let found: Vec<(f64, Option<f64>, usize)> = leaves
                    .iter()
                    .filter_map(|r| {
                        r.metrics
                            .iter()
                            .find(|m| m.0 == agg.metric && m.1 == filter)
                            .map(|m| (m.2, m.3, r.samples.len()))
                    })
                    .collect();
                if found.is_empty() {
                    continue;
                }
                let sizes: Vec<f64> = found
                    .iter()
                    .map(|f| if agg.weight_by_size { f.2 as f64 } else { 1.0 })
                    .collect();
                let value = found.iter().zip(&sizes).map(|(f, w)| f.0 * w).sum::<f64>()
                    / sizes.iter().sum::<f64>();
                let stderrs: Option<Vec<f64>> = found.iter().map(|f| f.1).collect();
                let stderr = stderrs.map(|s| {
                    if agg.weight_by_size {
                        let n: Vec<f64> = found.iter().map(|f| f.2 as f64).collect();
                        pooled_stderr(&s, &n)
                    } else {
                        s.iter().map(|x| x * x).sum::<f64>().sqrt() / s.len() as f64
                    }
                });
                let documents = found.iter().map(|f| f.2).sum();
                out.push((agg.metric.clone(), filter, value, stderr, documents));
            }
        }
        out
    }
}

/// lm-evaluation-harness's `pooled_sample_stderr`: √(Σ (nᵢ − 1) nᵢ seᵢ² / (Σnᵢ − k) / Σnᵢ).
pub fn pooled_stderr(stderrs: &[f64], sizes: &[f64]) -> f64 {
    let total: f64 = sizes.iter().sum();
    let var = stderrs
        .iter()
        .zip(sizes)
        .map(|(s, n)| (n - 1.0) * s * s * n)
        .sum::<f64>()
        / (total - sizes.len() as f64);
    (var / total).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tasks of 4 and 2 documents with standard errors 0.25 and 0.5:
    /// (3·4·0.0625 + 1·2·0.25) / (6 − 2) = 1.25/4 = 0.3125; /6 → √0.0520833 = 0.228218.
    /// A bare file name's tasks are read from (and its names looked up in) ".".
    #[test]
    fn bare_file_names_live_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("task.yaml")), Path::new("."));
        assert_eq!(folder_of(Path::new("a/task.yaml")), Path::new("a"));
    }

    #[test]
    fn pooled_standard_error_by_hand() {
        let se = pooled_stderr(&[0.25, 0.5], &[4.0, 2.0]);
        assert!((se - (0.3125f64 / 6.0).sqrt()).abs() < 1e-12, "{se}");
    }
}
