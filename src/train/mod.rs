//! Training. [`driver`] is the loop every run kind goes through; `seq2seq` trains the
//! sequence-to-sequence runs on it ([`run`] is their entry point, reporting through [`Event`]s
//! and knowing nothing of terminals or which task it trains), [`steps`] the runs trained on
//! fresh batches ([`step_nets`]: the networks it trains), and `crate::regression` the mapping
//! models.

pub mod driver;
pub mod level_nets;
mod seq2seq;
pub mod step_nets;
pub mod steps;

use crate::codec::Codec;
use crate::config::ExperimentConfig;
use crate::data::Dataset;
use crate::history::{EpochRecord, History};
use crate::model::{Seq2Seq, Seq2SeqEngine, SliceStats};
use crate::report::Sample;
use crate::rundir::{self, RunError};
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Refused(String),
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss}; the last good checkpoint is kept (try a lower learning rate or optim.clip_norm)")]
    NonFinite {
        epoch: usize,
        batch: usize,
        loss: f64,
    },
    #[error(
        "training diverged: more than {0} steps with non-finite gradients; lower the learning rate"
    )]
    Diverged(usize),
}

/// What the loop tells its observer.
pub enum Event<'a> {
    /// Before the first epoch.
    Start {
        cfg: &'a ExperimentConfig,
        model: &'a Seq2Seq,
        codec: &'a Codec,
        train: &'a Dataset,
        val: &'a Dataset,
        threads: usize,
        resumed_at: Option<usize>,
    },
    EpochStart {
        epoch: usize,
        epochs: usize,
        examples: usize,
    },
    /// `done` training examples of this epoch are finished.
    Progress { done: usize },
    EpochEnd {
        record: &'a EpochRecord,
        samples: &'a [Sample],
        improved: bool,
    },
    /// Why the loop ended.
    Stop { reason: &'a str },
}

/// A seq2seq run's state, saved in every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoopState {
    /// Epochs finished.
    pub epochs_done: usize,
    pub best_val_loss: Option<f64>,
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub wait: usize,
    pub adam_t: u64,
    pub history: History,
    /// Set when the loop has ended (a resume then has nothing to do).
    pub stopped: Option<String>,
    /// The loop ended at its epoch bound (not by early stopping or a target): a resume with a
    /// higher bound trains on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_epoch_bound: bool,
    /// Mid-epoch checkpoints: batches of epoch `epochs_done + 1` already applied, and their sums.
    #[serde(default)]
    pub batches_done: usize,
    #[serde(default)]
    pub partial: SliceStats,
    /// The learning rate in force (changed by `reduce_lr_patience`); `None` means the config's.
    #[serde(default)]
    pub lr: Option<f64>,
    /// [`config_hash`] of the run's config: a resume refuses a checkpoint of another run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// [`data_hash`] of the run's first training and validation sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
}

/// FNV-1a (64 bit) over byte slices, as text.
fn fnv1a(parts: &[&[u8]]) -> String {
    let mut h = crate::fsutil::Fnv1a::default();
    for part in parts {
        h.update(part);
        h.update(&(part.len() as u64).to_le_bytes());
    }
    format!("fnv1a64:{:016x}", h.finish())
}

/// A hash of everything in the config that defines the run (the thread count, which a resume
/// may change without changing a bit of the results, is left out).
pub fn config_hash(cfg: &ExperimentConfig) -> String {
    let mut c = cfg.clone();
    c.train.threads = 0;
    fnv1a(&[c.to_json().as_bytes()])
}

/// A hash of the encoded training and validation sets.
pub fn data_hash(train: &Dataset, val: &Dataset) -> String {
    fnv1a(&[&train.inputs, &train.targets, &val.inputs, &val.targets])
}

/// What a finished run achieved.
pub struct Outcome {
    pub dir: PathBuf,
    pub state: LoopState,
    /// The run was interrupted and checkpointed (possibly mid-epoch).
    pub interrupted: bool,
}

impl Outcome {
    /// The record of the epoch whose weights were kept (best validation loss).
    pub fn best(&self) -> Option<&EpochRecord> {
        self.state
            .history
            .records
            .iter()
            .find(|r| r.epoch == self.state.best_epoch)
    }
}

/// Trains `cfg` into `dir`. With `resume`, continues from `dir`'s checkpoint using the config
/// saved there (`cfg` is ignored except for `train.epochs`, and `train.threads` when set on the
/// command line).
///
/// When `interrupt` becomes true (the CLI sets it on Ctrl-C), the loop finishes the current
/// batch, writes a checkpoint and returns with `Outcome::interrupted` set; resuming continues
/// from the next batch with the same bits as an uninterrupted run.
pub fn run(
    cfg: ExperimentConfig,
    dir: &Path,
    open: rundir::Open,
    interrupt: &AtomicBool,
    events: &mut dyn FnMut(Event),
) -> Result<Outcome, TrainError> {
    // Subnormals cost this CPU 60-100x per operation, and Adam's second moments of rarely-used
    // weights decay into them (a sweep's worker threads trained 3x slower before every thread
    // flushed them). The engine's pool threads flush them too, and the optimiser runs there.
    crate::nn::flush_denormals();
    let resume = open == rundir::Open::Resume;
    let mut cfg = cfg;
    // A new run's config is checked before the directory is touched; a resumed run's is read
    // from the directory, under its lock.
    if !resume {
        cfg.build().map_err(|e| TrainError::Config(e.to_string()))?;
    }
    let (t, finish) = driver::drive(dir, open, interrupt, || {
        seq2seq::Seq2seqTrainee::new(cfg, dir, resume, events)
    })?;
    if let (Some(reason), false) = (&finish.stopped, finish.interrupted) {
        (t.events)(Event::Stop { reason });
    }
    Ok(Outcome {
        dir: dir.to_path_buf(),
        state: t.state_at(&finish.pos),
        interrupted: finish.interrupted,
    })
}

/// Loss, per-character and exact-match sums over a whole data set, in chunks.
pub fn evaluate_dataset(
    engine: &mut Seq2SeqEngine<f32>,
    params: &[f32],
    ds: &Dataset,
) -> SliceStats {
    let mut total = SliceStats::default();
    let chunk = engine
        .model
        .inference_rows(crate::model::INFERENCE_BUDGET_BYTES);
    let mut start = 0;
    while start < ds.n {
        let end = (start + chunk).min(ds.n);
        let st = engine.evaluate(
            params,
            &ds.inputs[start * ds.t_in..end * ds.t_in],
            &ds.targets[start * ds.t_out..end * ds.t_out],
            end - start,
        );
        total.add(&st);
        start = end;
    }
    total
}

/// `k` random validation questions (seeded by epoch) with the model's answers.
fn pick_samples(
    engine: &mut Seq2SeqEngine<f32>,
    params: &[f32],
    codec: &Codec,
    val: &Dataset,
    k: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Sample> {
    let k = k.min(val.n);
    if k == 0 {
        return Vec::new();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5A3F_0000 ^ epoch as u64);
    let rows: Vec<usize> = sample(&mut rng, val.n, k).into_vec();
    let mut x = vec![0u8; k * val.t_in];
    let mut y = vec![0u8; k * val.t_out];
    val.gather(&rows, &mut x, &mut y);
    let pred = engine.predict_indices(params, &x, k);
    rows.iter()
        .enumerate()
        .map(|(i, &r)| {
            let out = &pred[i * val.t_out..(i + 1) * val.t_out];
            Sample {
                question: val.problems[r].question.clone(),
                target: val.problems[r].answer.clone(),
                prediction: codec.decode_output(out),
                work: codec.decode_work(out),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoints carry this hash and a resume compares it: a config field added in a way that
    /// changes a default config's text would make every earlier run refuse to resume.
    #[test]
    fn the_default_config_hashes_as_it_always_has() {
        let e = crate::experiment::find("keras-addition").unwrap();
        let crate::run::RunConfig::Seq2seq(mut cfg) = e.run_config(false) else {
            panic!("keras-addition is a seq2seq run")
        };
        cfg.build().unwrap();
        assert_eq!(config_hash(&cfg), "fnv1a64:eaa78b380b795472");
    }
}
