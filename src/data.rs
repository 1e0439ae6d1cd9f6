//! Datasets of symbol indices (u8, never one-hot), the Keras split, per-epoch shuffling, batches.

use crate::codec::{Codec, CodecError};
use crate::task::{Problem, TaskConfig, TaskError};
use serde::{Deserialize, Serialize};

/// Data-set size and split.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Questions generated (train + validation).
    pub size: usize,
    /// Fraction held out for validation, taken from the end after shuffling (Keras: 0.1).
    pub val_fraction: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            size: 50_000,
            val_fraction: 0.1,
        }
    }
}

/// Errors building data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("question {index} ({question:?}): {source}")]
    Codec {
        index: usize,
        question: String,
        source: CodecError,
    },
    #[error("invalid data config: {0}")]
    Invalid(String),
}

/// Encoded problems: `inputs` is `[n, t_in]`, `targets` is `[n, t_out]`, row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub n: usize,
    pub t_in: usize,
    pub t_out: usize,
    pub inputs: Vec<u8>,
    pub targets: Vec<u8>,
    pub problems: Vec<Problem>,
}

impl Dataset {
    /// Encodes problems with the codec.
    pub fn encode(problems: Vec<Problem>, codec: &Codec) -> Result<Dataset, DataError> {
        let _ = (problems, codec);
        todo!()
    }
    pub fn input(&self, i: usize) -> &[u8] {
        &self.inputs[i * self.t_in..(i + 1) * self.t_in]
    }
    pub fn target(&self, i: usize) -> &[u8] {
        &self.targets[i * self.t_out..(i + 1) * self.t_out]
    }
    /// Copies rows `rows` into `inputs` (`[rows.len(), t_in]`) and `targets` (`[rows.len(), t_out]`).
    pub fn gather(&self, rows: &[usize], inputs: &mut [u8], targets: &mut [u8]) {
        let _ = (rows, inputs, targets);
        todo!()
    }
}

/// The Keras flow: generate `size` unique problems with `seed`, shuffle them (seeded), encode,
/// and hold out the last `val_fraction` as validation. Returns (train, validation).
pub fn build_split(
    task: &TaskConfig,
    codec: &Codec,
    cfg: &DataConfig,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    let _ = (task, codec, cfg, seed);
    todo!()
}

/// The order of training rows in epoch `epoch` (0-based): a seeded permutation of 0..n that is
/// a pure function of (n, seed, epoch), so a resumed run shuffles exactly as an uninterrupted one.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let _ = (n, seed, epoch);
    todo!()
}
