//! Slurm, the first scheduler past one machine: one sbatch array script per stage (an
//! array task per part: rank, or bucket), chained by job dependencies, each task running
//! `fmlab curate … --stage S --rank $SLURM_ARRAY_TASK_ID`. The completion markers make a
//! resubmission skip finished parts.

use std::path::{Path, PathBuf};

use crate::pipeline::run::Stage;

/// The resources asked of Slurm.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// `--time` (e.g. `2:00:00`).
    pub time: Option<String>,
    pub cpus_per_task: usize,
    /// `--mem` (e.g. `8G`).
    pub mem: Option<String>,
}

/// One script, named `NN-<stage>.sbatch`.
#[derive(Debug, Clone)]
pub struct SlurmScript {
    pub stage: String,
    pub parts: usize,
    pub path: PathBuf,
    pub text: String,
}

/// Quotes a word for bash (single quotes, a quote inside written as '\'').
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The scripts for `stages`, in `dir`, each running `command` (the fmlab binary and the
/// arguments every task shares) plus `--stage`, `--rank` and `--threads`.
pub fn scripts(
    dir: &Path,
    stages: &[Stage],
    command: &[String],
    opts: &SlurmOptions,
) -> Vec<SlurmScript> {
    let logs = dir.join("logs");
    let base: Vec<String> = command.iter().map(|w| shell_quote(w)).collect();
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut t = String::from("#!/bin/bash\n");
            t += &format!("#SBATCH --job-name=fmlab-curate-{}\n", s.name);
            t += &format!("#SBATCH --array=0-{}\n", s.parts.saturating_sub(1));
            t += &format!("#SBATCH --output={}/{}-%a.out\n", logs.display(), s.name);
            t += &format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task.max(1));
            if let Some(p) = &opts.partition {
                t += &format!("#SBATCH --partition={p}\n");
            }
            if let Some(v) = &opts.time {
                t += &format!("#SBATCH --time={v}\n");
            }
            if let Some(v) = &opts.mem {
                t += &format!("#SBATCH --mem={v}\n");
            }
            t += &format!(
                "# fmlab curate, stage {} of {} ({}, {} part{}); written by `fmlab curate --slurm`.\n",
                i + 1,
                stages.len(),
                s.name,
                s.parts,
                if s.parts == 1 { "" } else { "s" }
            );
            t += "set -euo pipefail\n";
            t += &format!(
                "exec {} --stage {} --rank \"$SLURM_ARRAY_TASK_ID\" --threads {}\n",
                base.join(" "),
                shell_quote(&s.name),
                opts.cpus_per_task.max(1)
            );
            SlurmScript {
                stage: s.name.clone(),
                parts: s.parts,
                path: dir.join(format!("{i:02}-{}.sbatch", s.name)),
                text: t,
            }
        })
        .collect()
}

/// `submit.sh`: submits the scripts in order, each after the previous one succeeded.
pub fn submit_script(scripts: &[SlurmScript]) -> String {
    let mut t = String::from("#!/bin/bash\n# Submits the curation's stages, each after the one before it succeeded.\nset -euo pipefail\njid=\n");
    for s in scripts {
        let path = shell_quote(&s.path.to_string_lossy());
        t += &format!(
            "jid=$(sbatch --parsable ${{jid:+--dependency=afterok:$jid}} {path})\necho \"{} $jid\"\n",
            s.stage
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_bash() {
        assert_eq!(shell_quote("a/b.jsonl"), "a/b.jsonl");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }
}
