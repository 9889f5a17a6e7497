//! A finetuning run's life outside its steps: created from a base model and packed
//! records (the reference log-probabilities of a preference run computed once), resumed
//! from its newest checkpoint, checkpointed.

use std::path::{Path, PathBuf};

use fmlab_data::shards::Cursor;
use fmlab_nn::train::{token_logprobs, Adapters, Weights};
use fmlab_spec::ModelSpec;

use super::objective::sequence_sums;
use super::prepare::order_for;
use super::{
    prepare, Base, Data, FinetuneConfig, FinetuneRun, Finetuner, Method, Prepared, RUN_FORMAT,
};
use crate::checkpoint;
use crate::run_state::{copy_tokenizer, ManifestParts, Resumed, RunState};
use crate::{AdamW, Error, Result};

impl Finetuner {
    /// Starts a run in `run` from `base` on `data` (tokenized with the base's template).
    /// `pad` fills the rows' tails.
    pub fn create(
        run: &Path,
        base: Base,
        data: Data,
        config: FinetuneConfig,
        pad: u32,
    ) -> Result<Self> {
        let prepared = prepare(&data, &[], &config, pad)?;
        Self::from_prepared(run, base, prepared, config)
    }

    /// [`Finetuner::create`] on records already split and packed with this `config`
    /// (a caller that sized the run from them does not pack twice).
    pub fn from_prepared(
        run: &Path,
        base: Base,
        prepared: Prepared,
        config: FinetuneConfig,
    ) -> Result<Self> {
        let c = &config.optim;
        c.validate(&base.spec)?;
        if !(0.0..1.0).contains(&config.val_fraction) {
            return Err(Error::Config(format!(
                "the validation share must be in [0, 1), got {}",
                config.val_fraction
            )));
        }
        if let Method::Preference { beta, .. } = config.method {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(Error::Config(format!("β must be > 0, got {beta}")));
            }
        }
        if run.join("run.json").exists() {
            return Err(Error::Config(format!(
                "{} already holds a run: choose another folder",
                run.display()
            )));
        }
        let Prepared {
            train,
            val,
            records,
            source,
        } = prepared;
        if matches!(config.method, Method::Reward) && config.lora.is_some() {
            return Err(Error::Config(
                "reward models train the full weights (the score head is new); drop --lora-rank"
                    .into(),
            ));
        }
        let adapters = match &config.lora {
            Some(l) => Some(Adapters::init(
                &base.spec, l.rank, l.alpha, &l.targets, c.seed,
            )?),
            None => None,
        };
        std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
        let tokenizer = match &base.tokenizer_json {
            Some(bytes) => Some(copy_tokenizer(run, bytes)?),
            None => None,
        };
        let file = FinetuneRun {
            format: RUN_FORMAT.into(),
            stage: config.method.stage(),
            spec: base.spec.clone(),
            config: config.clone(),
            base: base.source.clone(),
            tokenizer,
            records,
            data: source,
        };
        let Base {
            spec, mut weights, ..
        } = base;
        if matches!(config.method, Method::Reward) {
            weights = weights.with_score_head(&spec, c.seed)?;
        }
        let (grads, optimizer) = match &adapters {
            Some(a) => {
                let mut g = a.weights.clone();
                g.as_mut_slice().fill(0.0);
                let sizes: Vec<usize> = a.weights.descs().iter().map(|t| t.len()).collect();
                // Adapters are matrices: weight decay, when set, applies to them.
                let decay = vec![true; sizes.len()];
                (g, AdamW::new(c.adamw, &sizes, &decay)?)
            }
            None => {
                let named = weights.named_mut();
                let sizes: Vec<usize> = named.iter().map(|t| t.data.len()).collect();
                let decay: Vec<bool> = named.iter().map(|t| t.decay).collect();
                let mut g = weights.clone();
                g.as_mut_slice().fill(0.0);
                (g, AdamW::new(c.adamw, &sizes, &decay)?)
            }
        };
        let state = RunState::create(run, &file)?;
        let val_offset = train.sequences();
        let order = order_for(train.len(), c.seed, 0);
        let mut me = Self {
            state,
            file,
            weights,
            adapters,
            grads,
            optimizer,
            train,
            val,
            reference: Vec::new(),
            val_offset,
            order,
            cursor: Cursor::default(),
        };
        if matches!(config.method, Method::Preference { .. }) {
            me.compute_reference()?;
        }
        Ok(me)
    }

    /// `run.json` of a finetuning run.
    pub fn read_run(run: &Path) -> Result<FinetuneRun> {
        checkpoint::read_versioned(
            &run.join("run.json"),
            "an fmlab finetuning run",
            RUN_FORMAT,
            |f: &FinetuneRun| &f.format,
            Error::Config,
        )
    }

    /// Continues a run from its newest checkpoint that verifies. `base` is the run's base
    /// model loaded again (its frozen weights under LoRA; the full weights come from the
    /// checkpoint otherwise) and `prepared` its records read and packed again with the
    /// run's configuration: they must pack exactly as they did, or the data has changed.
    /// `steps`, when given, changes the run's length (the schedule keeps its own total).
    pub fn resume(
        run: &Path,
        base: Base,
        prepared: Prepared,
        steps: Option<u64>,
    ) -> Result<(Self, Resumed)> {
        let mut file = Self::read_run(run)?;
        if base.spec != file.spec {
            return Err(Error::Config(format!(
                "{}: the base model's shape differs from the run's",
                base.source.path.display()
            )));
        }
        let counted = &prepared.records;
        if *counted != file.records {
            return Err(Error::Config(format!(
                "the records no longer pack as they did when the run started ({} training \
                 and {} validation records then, {} and {} now): the data file changed",
                file.records.train, file.records.val, counted.train, counted.val
            )));
        }
        let (ckpt, skipped) = checkpoint::latest(run, true)?;
        let checkpoint::Checkpoint {
            dir,
            manifest,
            weights: saved,
            optimizer,
        } = ckpt;
        if manifest.spec != file.spec || manifest.lora != file.config.lora {
            return Err(Error::Checkpoint(format!(
                "{}: its model or LoRA settings differ from run.json",
                dir.display()
            )));
        }
        file.config.optim = manifest.config.clone();
        if let Some(s) = steps {
            file.config.optim.steps = s;
        }
        if file.config.optim.steps <= manifest.step {
            return Err(Error::Config(format!(
                "the run is already at step {} of {}: give --steps above {} to train longer",
                manifest.step, file.config.optim.steps, manifest.step
            )));
        }
        // Under LoRA the checkpoint holds the adapters and the base stays as loaded.
        let (weights, adapters) = match &file.config.lora {
            Some(l) => {
                let mut adapters = Adapters::zeros(&file.spec, l.rank, l.alpha, &l.targets)?;
                adapters.weights = saved;
                (base.weights, Some(adapters))
            }
            None => (saved, None),
        };
        let mut grads = match &adapters {
            Some(a) => a.weights.clone(),
            None => weights.clone(),
        };
        grads.as_mut_slice().fill(0.0);
        let Prepared { train, val, .. } = prepared;
        let val_offset = train.sequences();
        // A preference run's reference log-probabilities were computed once; read them back.
        let reference = if matches!(file.config.method, Method::Preference { .. }) {
            let path = run.join("reference_logps.json");
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let r: Vec<(f64, usize)> = serde_json::from_slice(&bytes).map_err(Error::Json)?;
            let n = val_offset + val.sequences();
            if r.len() != n {
                return Err(Error::Checkpoint(format!(
                    "{}: {} reference log-probabilities for {n} sequences",
                    path.display(),
                    r.len()
                )));
            }
            r
        } else {
            Vec::new()
        };
        let state = RunState::resume(run, &manifest)?;
        let order = order_for(train.len(), file.config.optim.seed, manifest.cursor.epoch);
        let resumed = Resumed {
            step: manifest.step,
            dir,
            skipped,
        };
        Ok((
            Self {
                state,
                file,
                weights,
                adapters,
                grads,
                optimizer,
                train,
                val,
                reference,
                val_offset,
                order,
                cursor: manifest.cursor,
            },
            resumed,
        ))
    }

    /// The reference's answer log-probabilities of every pair, computed once with the
    /// adapters off (they start at zero anyway) and the starting weights, and written to
    /// `reference_logps.json`.
    fn compute_reference(&mut self) -> Result<()> {
        let spec = &self.file.spec;
        let batch = self.file.config.optim.batch;
        let mut all = Vec::new();
        for rows in [&self.train, &self.val] {
            let n_seq = rows.sequences();
            let mut sums = vec![(0.0, 0usize); n_seq];
            for r0 in (0..rows.len()).step_by(batch) {
                let r1 = (r0 + batch).min(rows.len());
                let lp = token_logprobs(spec, &self.weights, None, rows.slice(r0, r1))?;
                for (i, s) in sequence_sums(rows, r0, r1, &lp, n_seq)
                    .into_iter()
                    .enumerate()
                {
                    sums[i].0 += s.0;
                    sums[i].1 += s.1;
                }
            }
            all.extend(sums);
        }
        self.reference = all;
        let json = serde_json::to_vec(&self.reference).map_err(Error::Json)?;
        fmlab_formats::write_atomically(&self.state.dir.join("reference_logps.json"), &json)?;
        Ok(())
    }

    pub fn run_dir(&self) -> &Path {
        &self.state.dir
    }

    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.file.spec
    }

    /// The weights the model now computes with (adapters merged).
    pub fn merged_weights(&self) -> Result<Weights<f32>> {
        let mut w = self.weights.clone();
        if let Some(a) = &self.adapters {
            a.merge_into(&self.file.spec, &mut w)?;
        }
        Ok(w)
    }

    /// Writes a checkpoint of the current step: the full weights, or the adapters.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let c = &self.file.config;
        let manifest = self.state.manifest(ManifestParts {
            spec: &self.file.spec,
            config: &c.optim,
            cursor: self.cursor,
            tokenizer: &self.file.tokenizer,
            stage: Some(self.file.stage),
            lora: c.lora.clone(),
            base: Some(self.file.base.clone()),
        });
        let keep = c.optim.keep.max(1);
        let target = match &mut self.adapters {
            Some(a) => &mut a.weights,
            None => &mut self.weights,
        };
        checkpoint::save(&self.state.dir, &manifest, target, &self.optimizer, keep)
    }
}
