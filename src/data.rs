//! Datasets of symbol indices (u8, never one-hot), the Keras split, per-epoch shuffling, batches.

use crate::codec::{Codec, CodecError};
use crate::task::{Problem, TaskConfig, TaskError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Data-set size and split.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Questions generated (train + validation).
    pub size: usize,
    /// Fraction held out for validation, taken from the end after shuffling (Keras: 0.1).
    pub val_fraction: f64,
    /// Draw a new training set every epoch (Brownlee); validation stays fixed.
    pub fresh_per_epoch: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            size: 50_000,
            val_fraction: 0.1,
            fresh_per_epoch: false,
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
    /// The task could not write what the model must produce (a scratchpad of a question
    /// that is not an expression).
    #[error("question {index} ({question:?}): {source}")]
    Target {
        index: usize,
        question: String,
        source: TaskError,
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
        let (n, t_in, t_out) = (problems.len(), codec.input_len(), codec.output_len());
        let mut inputs = vec![0u8; n * t_in];
        let mut targets = vec![0u8; n * t_out];
        let rows = inputs
            .chunks_exact_mut(t_in)
            .zip(targets.chunks_exact_mut(t_out));
        for (index, (p, (x, y))) in problems.iter().zip(rows).enumerate() {
            let target =
                p.target(codec.config().scratchpad)
                    .map_err(|source| DataError::Target {
                        index,
                        question: p.question.clone(),
                        source,
                    })?;
            codec
                .encode_input(&p.question, x)
                .and_then(|()| codec.encode_target(&target, y))
                .map_err(|source| DataError::Codec {
                    index,
                    question: p.question.clone(),
                    source,
                })?;
        }
        Ok(Dataset {
            n,
            t_in,
            t_out,
            inputs,
            targets,
            problems,
        })
    }
    pub fn input(&self, i: usize) -> &[u8] {
        &self.inputs[i * self.t_in..(i + 1) * self.t_in]
    }
    pub fn target(&self, i: usize) -> &[u8] {
        &self.targets[i * self.t_out..(i + 1) * self.t_out]
    }
    /// Copies rows `rows` into `inputs` (`[rows.len(), t_in]`) and `targets` (`[rows.len(), t_out]`).
    pub fn gather(&self, rows: &[usize], inputs: &mut [u8], targets: &mut [u8]) {
        assert_eq!(
            inputs.len(),
            rows.len() * self.t_in,
            "inputs must be [rows, t_in]"
        );
        assert_eq!(
            targets.len(),
            rows.len() * self.t_out,
            "targets must be [rows, t_out]"
        );
        for (&r, x) in rows.iter().zip(inputs.chunks_exact_mut(self.t_in)) {
            x.copy_from_slice(self.input(r));
        }
        for (&r, y) in rows.iter().zip(targets.chunks_exact_mut(self.t_out)) {
            y.copy_from_slice(self.target(r));
        }
    }

    /// Splits off rows `at..` into a new data set, keeping `..at` (no copy of the kept rows).
    pub fn split_off(&mut self, at: usize) -> Dataset {
        assert!(at <= self.n, "split point {at} beyond {} rows", self.n);
        let tail = Dataset {
            n: self.n - at,
            t_in: self.t_in,
            t_out: self.t_out,
            inputs: self.inputs.split_off(at * self.t_in),
            targets: self.targets.split_off(at * self.t_out),
            problems: self.problems.split_off(at),
        };
        self.n = at;
        tail
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
    if cfg.size == 0 {
        return Err(DataError::Invalid("size must be at least 1".into()));
    }
    if !(0.0..1.0).contains(&cfg.val_fraction) {
        return Err(DataError::Invalid(format!(
            "val_fraction must be in [0, 1), got {}",
            cfg.val_fraction
        )));
    }
    let n_val = val_rows(cfg.size, cfg.val_fraction);
    if n_val >= cfg.size {
        return Err(DataError::Invalid(format!(
            "size {} with val_fraction {} leaves no training questions",
            cfg.size, cfg.val_fraction
        )));
    }
    let mut problems = crate::task::generate(task, cfg.size, seed)?;
    problems.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, SHUFFLE_DOMAIN)));
    let mut train = Dataset::encode(problems, codec)?;
    let val = train.split_off(cfg.size - n_val);
    Ok((train, val))
}

/// Validation rows of a data set of `size` (the Keras split: 50,000 at 0.1 gives 5,000).
pub fn val_rows(size: usize, val_fraction: f64) -> usize {
    ((size as f64 * val_fraction).round() as usize).min(size)
}

/// Seed domains, so the split shuffle and epoch orders never share a stream with generation.
const SHUFFLE_DOMAIN: u64 = 0x5eed_5b11_7000_0001;
const EPOCH_DOMAIN: u64 = 0x5eed_e90c_4000_0002;

/// Mixes a seed with a domain tag (SplitMix64's finaliser): nearby seeds give unrelated streams.
fn mix(seed: u64, domain: u64) -> u64 {
    let mut z = seed ^ domain;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The order of training rows in epoch `epoch` (0-based): a seeded permutation of 0..n that is
/// a pure function of (n, seed, epoch), so a resumed run shuffles exactly as an uninterrupted one.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, EPOCH_DOMAIN));
    // One ChaCha stream per epoch under the same key: distinct epochs never share a stream.
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecConfig;
    use std::collections::HashSet;

    fn default_codec() -> Codec {
        Codec::new(&CodecConfig::default(), &TaskConfig::default()).unwrap()
    }

    fn small() -> DataConfig {
        DataConfig {
            size: 1000,
            val_fraction: 0.1,
            ..Default::default()
        }
    }

    #[test]
    fn keras_split_sizes_and_contents() {
        let task = TaskConfig::default();
        let codec = default_codec();
        let (train, val) = build_split(&task, &codec, &DataConfig::default(), 42).unwrap();
        assert_eq!((train.n, val.n), (45_000, 5_000));
        for ds in [&train, &val] {
            assert_eq!((ds.t_in, ds.t_out), (7, 4));
            assert_eq!(ds.inputs.len(), ds.n * 7);
            assert_eq!(ds.targets.len(), ds.n * 4);
            assert_eq!(ds.problems.len(), ds.n);
            for i in (0..ds.n).step_by(97) {
                assert_eq!(codec.decode_input(ds.input(i)), ds.problems[i].question);
                assert_eq!(codec.decode_output(ds.target(i)), ds.problems[i].answer);
            }
        }
        // The split is a shuffle of exactly the generated problems.
        let generated: HashSet<String> = crate::task::generate(&task, 50_000, 42)
            .unwrap()
            .into_iter()
            .map(|p| p.question)
            .collect();
        let split: HashSet<String> = train
            .problems
            .iter()
            .chain(&val.problems)
            .map(|p| p.question.clone())
            .collect();
        assert_eq!(split, generated);
        let in_order: Vec<String> = crate::task::generate(&task, 5, 42)
            .unwrap()
            .into_iter()
            .map(|p| p.question)
            .collect();
        let shuffled: Vec<String> = train.problems[..5]
            .iter()
            .map(|p| p.question.clone())
            .collect();
        assert_ne!(in_order, shuffled);
    }

    #[test]
    fn build_split_is_deterministic() {
        let (task, codec) = (TaskConfig::default(), default_codec());
        let (t1, v1) = build_split(&task, &codec, &small(), 3).unwrap();
        let (t2, v2) = build_split(&task, &codec, &small(), 3).unwrap();
        assert_eq!(
            (&t1.inputs, &t1.targets, &v1.inputs, &v1.targets),
            (&t2.inputs, &t2.targets, &v2.inputs, &v2.targets)
        );
        let (t3, _) = build_split(&task, &codec, &small(), 4).unwrap();
        assert_ne!(t1.inputs, t3.inputs);
        assert_eq!((t1.n, v1.n), (900, 100));
    }

    #[test]
    fn split_config_is_checked() {
        let (task, codec) = (TaskConfig::default(), default_codec());
        for cfg in [
            DataConfig {
                size: 0,
                val_fraction: 0.1,
                ..Default::default()
            },
            DataConfig {
                size: 100,
                val_fraction: 1.0,
                ..Default::default()
            },
            DataConfig {
                size: 100,
                val_fraction: -0.1,
                ..Default::default()
            },
            DataConfig {
                size: 100,
                val_fraction: f64::NAN,
                ..Default::default()
            },
            DataConfig {
                size: 1,
                val_fraction: 0.5,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(
                    build_split(&task, &codec, &cfg, 0),
                    Err(DataError::Invalid(_))
                ),
                "{cfg:?}"
            );
        }
        let (train, val) = build_split(
            &task,
            &codec,
            &DataConfig {
                size: 10,
                val_fraction: 0.0,
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert_eq!((train.n, val.n), (10, 0));
        let too_many = DataConfig {
            size: 56,
            val_fraction: 0.1,
            ..Default::default()
        };
        let one_digit = TaskConfig {
            digits: 1,
            ..TaskConfig::default()
        };
        let codec1 = Codec::new(&CodecConfig::default(), &one_digit).unwrap();
        assert!(matches!(
            build_split(&one_digit, &codec1, &too_many, 0),
            Err(DataError::Task(_))
        ));
    }

    #[test]
    fn encode_reports_the_question() {
        let narrow = Codec::new(
            &CodecConfig {
                input_len: Some(4),
                ..CodecConfig::default()
            },
            &TaskConfig::default(),
        )
        .unwrap();
        let problems = crate::task::generate(&TaskConfig::default(), 100, 0).unwrap();
        let bad = problems.iter().position(|p| p.question.len() > 4).unwrap();
        match Dataset::encode(problems.clone(), &narrow) {
            Err(DataError::Codec {
                index,
                question,
                source: CodecError::TooLong { .. },
            }) => {
                assert_eq!((index, question), (bad, problems[bad].question.clone()));
            }
            other => panic!("expected a codec error, got {other:?}"),
        }
    }

    #[test]
    fn epoch_orders_are_seeded_permutations() {
        let n = 1000;
        let a = epoch_order(n, 7, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(n, 7, 0));
        assert_ne!(a, epoch_order(n, 7, 1));
        assert_ne!(a, epoch_order(n, 8, 0));
        assert_ne!(a, (0..n).collect::<Vec<_>>());
        assert!(epoch_order(0, 7, 3).is_empty());
        assert_eq!(epoch_order(1, 7, 3), vec![0]);
    }

    #[test]
    fn gather_copies_rows() {
        let problems = crate::task::generate(&TaskConfig::default(), 50, 1).unwrap();
        let ds = Dataset::encode(problems, &default_codec()).unwrap();
        let rows = [3, 0, 49, 3];
        let mut x = vec![0u8; rows.len() * ds.t_in];
        let mut y = vec![0u8; rows.len() * ds.t_out];
        ds.gather(&rows, &mut x, &mut y);
        for (k, &r) in rows.iter().enumerate() {
            assert_eq!(&x[k * ds.t_in..(k + 1) * ds.t_in], ds.input(r));
            assert_eq!(&y[k * ds.t_out..(k + 1) * ds.t_out], ds.target(r));
        }
        let mut ds2 = ds.clone();
        let tail = ds2.split_off(45);
        assert_eq!((ds2.n, tail.n), (45, 5));
        assert_eq!(tail.input(0), ds.input(45));
        assert_eq!(tail.problems[4], ds.problems[49]);
    }
}
