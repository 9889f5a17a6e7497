//! Finetuning records made into training rows: a seeded split into training and
//! validation, each packed into rows (plain text mixed into SFT's training rows), and the
//! seeded order rows are visited in, a new one each epoch.

use serde::{Deserialize, Serialize};

use super::{Data, DataRef, FinetuneConfig};
use crate::chat_data::{pack, Rows, Sequence};
use crate::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordCounts {
    pub train: usize,
    pub val: usize,
    pub train_rows: usize,
    pub val_rows: usize,
    /// Trained-on tokens per epoch.
    pub train_tokens: usize,
    /// Records left out because they do not fit a row.
    pub too_long: usize,
    /// Pieces of plain text mixed into the training rows (SFT with replay) and the
    /// positions they predict per epoch (included in `train_tokens`).
    #[serde(default)]
    pub mix_pieces: usize,
    #[serde(default)]
    pub mix_tokens: usize,
}

/// A seeded permutation of `0..n` for epoch `epoch`.
pub(super) fn order_for(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = fmlab_sample::Rng::for_sequence(seed, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    order
}

/// Splits the records into training and validation (seeded) and packs each into rows:
/// what [`Finetuner::create`] trains on, exposed so that a caller can size the run (steps
/// per epoch) first. Records longer than a row are left out (counted in the result).
/// `mix` (plain text, [`crate::chat_data::read_texts`]; SFT only) joins the training rows,
/// never the validation rows, so that the validation loss stays the conversations' own.
pub fn prepare(
    data: &Data,
    mix: &[Sequence],
    config: &FinetuneConfig,
    pad: u32,
) -> Result<Prepared> {
    if !mix.is_empty() && !matches!(data, Data::Sft(_)) {
        return Err(Error::Config(
            "plain text can be mixed into supervised finetuning only".into(),
        ));
    }
    let c = &config.optim;
    // Units: what must share a row (a conversation; a pair's two answers).
    let units: Vec<Vec<&Sequence>> = match &data {
        Data::Sft(s) => s.iter().map(|x| vec![x]).collect(),
        Data::Pairs(p) => p.iter().map(|(a, b)| vec![a, b]).collect(),
    };
    let seq_len = c.seq_len;
    let fits: Vec<usize> = (0..units.len())
        .filter(|&i| units[i].iter().map(|s| s.positions()).sum::<usize>() <= seq_len)
        .collect();
    if fits.is_empty() {
        return Err(Error::Config(format!(
            "no record fits rows of {seq_len} tokens"
        )));
    }
    let order = order_for(fits.len(), c.seed, u64::MAX);
    let n_val = if fits.len() >= 2 {
        ((fits.len() as f64 * config.val_fraction).round() as usize)
            .clamp(usize::from(config.val_fraction > 0.0), fits.len() - 1)
    } else {
        0
    };
    let (val_idx, train_idx) = order.split_at(n_val);
    let pick = |idx: &[usize]| -> Vec<Vec<&Sequence>> {
        idx.iter().map(|&i| units[fits[i]].clone()).collect()
    };
    let mut train_units = pick(train_idx);
    let mix_fits: Vec<&Sequence> = mix.iter().filter(|s| s.positions() <= seq_len).collect();
    let mix_tokens = mix_fits.iter().map(|s| s.positions()).sum();
    train_units.extend(mix_fits.iter().map(|&s| vec![s]));
    let train = pack(&train_units, seq_len, pad)?;
    let val = pack(&pick(val_idx), seq_len, pad)?;
    let records = RecordCounts {
        train: train_idx.len(),
        val: val_idx.len(),
        train_rows: train.len(),
        val_rows: val.len(),
        train_tokens: train.mask.iter().filter(|&&m| m).count(),
        too_long: units.len() - fits.len(),
        mix_pieces: mix_fits.len(),
        mix_tokens,
    };
    Ok(Prepared {
        train,
        val,
        records,
        source: None,
    })
}

/// Records split and packed by [`prepare`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub train: Rows,
    pub val: Rows,
    pub records: RecordCounts,
    /// Where the records came from (recorded in `run.json`; set by the caller).
    pub source: Option<DataRef>,
}
