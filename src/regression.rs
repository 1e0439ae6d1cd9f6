//! Brownlee's "beginner's mistake" (A1) and the MLP that shows why (A2): addition as a mapping
//! from normalised numbers to their normalised sum.
//!
//! Data: `n_numbers` integers uniform in 1..=`largest`, inputs and target divided by
//! `largest * n_numbers` (so they lie in [0, 1]). Models: a regression LSTM over the numbers as
//! a sequence (`[T = n_numbers, B, 1]`: LSTM(6, sequences) -> LSTM(2) -> Dense(1)), or an MLP on
//! the numbers as features (Dense(n -> 10) -> Dense(10 -> 1), linear: the sum is a linear map, and
//! a ReLU between them only slowed it down, RMSE 1.7 against 0.13); mean squared error; Adam.
//! Each epoch draws new examples; the report is RMSE in original units on new examples. The
//! models train on the loop of [`crate::train::driver`], without a checkpoint.

use crate::history::{EpochRecord, History};
use crate::nn::dense::Dense;
use crate::nn::params::ParamLayout;
use crate::nn::rnn::{CellKind, RnnCache, RnnInput, RnnInputGrad, RnnLayer, RnnPack};
use crate::optim::{Adam, OptimConfig};
use crate::rundir::{self, Checkpoint, RunError};
use crate::train::driver::{self, Cadence, Position, Stepped, Trainee, Verdict};
use crate::train::TrainError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Which mapping model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MappingModel {
    /// LSTM(6, return_sequences) -> LSTM(2) -> Dense(1).
    Lstm,
    /// Dense(n -> 10) -> Dense(10 -> 1).
    Mlp,
}

/// The mapping experiment's settings (Brownlee's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    pub model: MappingModel,
    pub n_numbers: usize,
    pub largest: u32,
    pub epochs: usize,
    pub examples_per_epoch: usize,
    pub batch_size: usize,
    pub seed: u64,
}

impl MappingConfig {
    /// Checks every number against its bounds (one line naming the value and the limit).
    pub fn validate(&self) -> Result<(), String> {
        use crate::config::limits::{self, within};
        within("mapping.n_numbers", self.n_numbers, 1, 1000)?;
        if !(1..=1_000_000_000).contains(&self.largest) {
            return Err(format!(
                "mapping.largest {} must be in 1..=1000000000",
                self.largest
            ));
        }
        within("mapping.epochs", self.epochs, 1, limits::EPOCHS)?;
        within(
            "mapping.examples_per_epoch",
            self.examples_per_epoch,
            1,
            limits::QUESTIONS,
        )?;
        within("mapping.batch_size", self.batch_size, 1, limits::BATCH)?;
        // An epoch's examples are drawn at once and a batch's activations kept: bounded by
        // the machine's memory as a seq2seq run's data and activations are.
        let per_example = (std::mem::size_of::<Vec<u32>>() + 12 * self.n_numbers) as u128;
        let need = self.examples_per_epoch as u128 * per_example
            + self.batch_size as u128 * self.n_numbers as u128 * 4 * 16;
        if let Some(have) = crate::config::machine_memory_bytes() {
            if need > u128::from(have / 10 * 8) {
                return Err(format!(
                    "mapping.examples_per_epoch {} of {} numbers with batches of {} need about {:.1} GiB of memory; the machine has {:.1} GiB",
                    self.examples_per_epoch,
                    self.n_numbers,
                    self.batch_size,
                    need as f64 / (1u64 << 30) as f64,
                    have as f64 / (1u64 << 30) as f64
                ));
            }
        }
        Ok(())
    }

    pub fn brownlee(model: MappingModel) -> MappingConfig {
        MappingConfig {
            model,
            n_numbers: 2,
            largest: 100,
            epochs: 50,
            examples_per_epoch: 100,
            batch_size: 2,
            seed: 1337,
        }
    }
}

/// The trained result.
pub struct MappingReport {
    /// Mean squared error (normalised units) per epoch.
    pub epoch_loss: Vec<f64>,
    /// RMSE in original units on `pairs.len()` new examples.
    pub rmse: f64,
    /// (numbers, expected sum, prediction in original units).
    pub pairs: Vec<(Vec<u32>, u32, f64)>,
    /// Per-epoch metrics for history.json and the curves. There are no characters: the
    /// "accuracy" columns hold the fraction of rounded predictions equal to the sum (train: the
    /// epoch's examples before each update; validation: 100 fixed examples drawn apart).
    pub history: History,
    /// The trained weights.
    pub params: Vec<f32>,
}

struct Net {
    layout: ParamLayout,
    rnn: Vec<RnnLayer>,
    dense: Vec<Dense>,
}

impl Net {
    fn new(cfg: &MappingConfig) -> Net {
        let mut layout = ParamLayout::default();
        let (rnn, dense) = match cfg.model {
            MappingModel::Lstm => (
                vec![
                    RnnLayer::new(&mut layout, "lstm", "_l0", CellKind::Lstm, 1, 6),
                    RnnLayer::new(&mut layout, "lstm", "_l1", CellKind::Lstm, 6, 2),
                ],
                vec![Dense::new(&mut layout, "head", 2, 1)],
            ),
            MappingModel::Mlp => (
                Vec::new(),
                vec![
                    Dense::new(&mut layout, "hidden", cfg.n_numbers, 10),
                    Dense::new(&mut layout, "head", 10, 1),
                ],
            ),
        };
        Net { layout, rnn, dense }
    }

    /// Forward for `b` examples `x` (`[B, n]` row-major); returns predictions `[B]`; with
    /// `target`, adds the MSE gradient (mean over the batch) into `grad` and returns the loss too.
    fn run(
        &self,
        p: &[f32],
        x: &[f32],
        b: usize,
        n: usize,
        target: Option<(&[f32], &mut [f32])>,
    ) -> (Vec<f32>, f64) {
        match self.rnn.len() {
            0 => {
                let (d1, d2) = (&self.dense[0], &self.dense[1]);
                let mut hpre = vec![0.0f32; b * d1.output];
                d1.forward(p, x, b, &mut hpre);
                let h = &hpre;
                let mut y = vec![0.0f32; b];
                d2.forward(p, h, b, &mut y);
                let Some((t, grad)) = target else {
                    return (y, 0.0);
                };
                let (loss, dy) = mse(&y, t);
                let mut dh = vec![0.0f32; b * d1.output];
                d2.backward(p, h, &dy, b, grad, Some(&mut dh));
                d1.backward(p, x, &dh, b, grad, None);
                (y, loss)
            }
            _ => {
                let (l0, l1, head) = (&self.rnn[0], &self.rnn[1], &self.dense[0]);
                // Time-major [T = n, B, 1].
                let mut xs = vec![0.0f32; n * b];
                for r in 0..b {
                    for s in 0..n {
                        xs[s * b + r] = x[r * n + s];
                    }
                }
                let (mut pk0, mut pk1) = (RnnPack::default(), RnnPack::default());
                l0.pack(p, &mut pk0);
                l1.pack(p, &mut pk1);
                let (mut c0, mut c1) = (RnnCache::default(), RnnCache::default());
                l0.forward(p, &pk0, RnnInput::Seq(&xs), b, n, &mut c0);
                let seq0 = l0.outputs(&c0, b, n).to_vec();
                l1.forward(p, &pk1, RnnInput::Seq(&seq0), b, n, &mut c1);
                let last = l1.last_output(&c1, b, n).to_vec();
                let mut y = vec![0.0f32; b];
                head.forward(p, &last, b, &mut y);
                let Some((t, grad)) = target else {
                    return (y, 0.0);
                };
                let (loss, dy) = mse(&y, t);
                let mut dlast = vec![0.0f32; b * 2];
                head.backward(p, &last, &dy, b, grad, Some(&mut dlast));
                let mut dseq0 = vec![0.0f32; n * b * 6];
                l1.backward(
                    p,
                    &pk1,
                    RnnInput::Seq(&seq0),
                    b,
                    n,
                    &mut c1,
                    None,
                    Some(&dlast),
                    grad,
                    RnnInputGrad::Dense(&mut dseq0),
                );
                l0.backward(
                    p,
                    &pk0,
                    RnnInput::Seq(&xs),
                    b,
                    n,
                    &mut c0,
                    Some(&dseq0),
                    None,
                    grad,
                    RnnInputGrad::Dense(&mut vec![0.0f32; n * b]),
                );
                (y, loss)
            }
        }
    }
}

/// Mean squared error and its gradient with respect to the predictions.
fn mse(y: &[f32], t: &[f32]) -> (f64, Vec<f32>) {
    let b = y.len() as f32;
    let loss = y
        .iter()
        .zip(t)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / y.len() as f64;
    (
        loss,
        y.iter().zip(t).map(|(a, c)| 2.0 * (a - c) / b).collect(),
    )
}

fn draw(
    cfg: &MappingConfig,
    rng: &mut impl Rng,
    count: usize,
) -> (Vec<Vec<u32>>, Vec<f32>, Vec<f32>) {
    let scale = (cfg.largest as usize * cfg.n_numbers) as f32;
    let nums: Vec<Vec<u32>> = (0..count)
        .map(|_| {
            (0..cfg.n_numbers)
                .map(|_| rng.random_range(1..=cfg.largest))
                .collect()
        })
        .collect();
    let x = nums.iter().flatten().map(|&v| v as f32 / scale).collect();
    let y = nums
        .iter()
        .map(|v| v.iter().sum::<u32>() as f32 / scale)
        .collect();
    (nums, x, y)
}

/// A mapping model in training: each epoch draws its examples, a step is one batch of them.
struct MappingTrainee<'a> {
    run: &'a MappingRunConfig,
    net: Net,
    rng: ChaCha8Rng,
    p: Vec<f32>,
    adam: Adam,
    /// Normalised validation examples, drawn apart from the training stream.
    val: (Vec<Vec<u32>>, Vec<f32>, Vec<f32>),
    /// The epoch's examples.
    epoch: (Vec<Vec<u32>>, Vec<f32>, Vec<f32>),
    /// The epoch's loss sum and rounded-right count so far.
    loss_sum: f64,
    right: usize,
    epoch_loss: Vec<f64>,
    history: History,
    epoch_started: Instant,
    started: Instant,
    on_epoch: &'a mut dyn FnMut(usize, f64),
}

impl MappingTrainee<'_> {
    fn cfg(&self) -> &MappingConfig {
        &self.run.mapping
    }

    /// Predictions rounded to the exact sum, counted.
    fn exact(&self, pred: &[f32], nums: &[Vec<u32>]) -> usize {
        let scale = (self.cfg().largest as usize * self.cfg().n_numbers) as f64;
        pred.iter()
            .zip(nums)
            .filter(|(y, v)| (**y as f64 * scale).round() == v.iter().sum::<u32>() as f64)
            .count()
    }
}

impl Trainee for MappingTrainee<'_> {
    fn cadence(&self) -> Cadence {
        let period = self
            .cfg()
            .examples_per_epoch
            .div_ceil(self.cfg().batch_size);
        Cadence {
            period,
            steps: self.cfg().epochs * period,
            max_seconds: None,
            nan_skips: 0,
            checkpoints: false,
        }
    }

    fn layout(&self) -> &ParamLayout {
        &self.net.layout
    }

    fn params(&self) -> &[f32] {
        &self.p
    }

    fn moments(&self) -> (&[f32], &[f32]) {
        (&self.adam.m, &self.adam.v)
    }

    fn state_json(&self, _pos: &Position) -> String {
        String::new()
    }

    fn restore(&mut self, _ck: Checkpoint, path: &Path) -> Result<Position, TrainError> {
        Err(rundir::file_err(path, "regression runs keep no checkpoint").into())
    }

    fn ready(&mut self, _resumed: Option<&Position>) {}

    fn save_config(&self, dir: &Path) -> Result<(), RunError> {
        let tagged = crate::run::RunConfig::Regression(self.run.clone()).to_json();
        crate::fsutil::write_atomic(&dir.join(rundir::CONFIG), tagged.as_bytes())
            .map_err(RunError::Write)
    }

    fn begin_period(&mut self, _pos: &Position) -> Result<(), TrainError> {
        self.epoch_started = Instant::now();
        let m = &self.run.mapping;
        self.epoch = draw(m, &mut self.rng, m.examples_per_epoch);
        (self.loss_sum, self.right) = (0.0, 0);
        Ok(())
    }

    fn step(&mut self, pos: &Position, _progress: f64) -> Result<Stepped, TrainError> {
        let (n, bs) = (self.cfg().n_numbers, self.cfg().batch_size);
        let start = (pos.step % self.cadence().period) * bs;
        let b = bs.min(self.cfg().examples_per_epoch - start);
        let mut grad = vec![0.0f32; self.p.len()];
        let (nums, x, y) = &self.epoch;
        let (pred, loss) = self.net.run(
            &self.p,
            &x[start * n..(start + b) * n],
            b,
            n,
            Some((&y[start..start + b], &mut grad)),
        );
        self.right += self.exact(&pred, &nums[start..start + b]);
        let finite = self.adam.step(&mut self.p, &grad).is_ok() && loss.is_finite();
        self.loss_sum += loss;
        Ok(Stepped { loss, finite })
    }

    fn end_period(&mut self, pos: &Position) -> Result<Verdict, TrainError> {
        let period = self.cadence().period;
        let epoch = pos.step / period;
        let train_secs = self.epoch_started.elapsed().as_secs_f64();
        let mean = self.loss_sum / period as f64;
        let (val_nums, val_x, val_y) = &self.val;
        let (val_pred, _) =
            self.net
                .run(&self.p, val_x, val_nums.len(), self.cfg().n_numbers, None);
        let val_exact = self.exact(&val_pred, val_nums) as f64 / val_nums.len() as f64;
        self.history.records.push(EpochRecord {
            epoch,
            train_loss: mean,
            train_char_acc: self.right as f64 / self.cfg().examples_per_epoch as f64,
            val_loss: mse(&val_pred, val_y).0,
            val_char_acc: val_exact,
            val_exact,
            train_secs,
            epoch_secs: self.epoch_started.elapsed().as_secs_f64(),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            lr: None,
        });
        self.epoch_loss.push(mean);
        (self.on_epoch)(epoch, mean);
        Ok(Verdict {
            keep_weights: true,
            stop: None,
        })
    }

    fn history_files(&self) -> (String, String) {
        (self.history.to_csv(), self.history.to_json())
    }

    fn curves(&self) -> (History, String, [&'static str; 3]) {
        (
            self.history.clone(),
            format!(
                "{}: MSE (normalised) and rounded-answer accuracy",
                self.run.name
            ),
            [
                "train (rounded = sum)",
                "validation (rounded = sum)",
                "validation (rounded = sum)",
            ],
        )
    }
}

/// Trains the mapping run `run` into `dir` (opened as `open`) through the loop, calling
/// `on_epoch(epoch, loss)` after each epoch, and evaluates it on new examples. The run keeps no
/// checkpoint: it takes seconds, trains to its end, and cannot be resumed.
pub fn train(
    run: &MappingRunConfig,
    dir: &Path,
    open: rundir::Open,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<MappingReport, TrainError> {
    let cfg = &run.mapping;
    cfg.validate().map_err(TrainError::Config)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let (t, _) = driver::drive(dir, open, &never, || {
        let net = Net::new(cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut p = vec![0.0f32; net.layout.total];
        for l in &net.rnn {
            l.init(&mut p, &mut rng);
        }
        for d in &net.dense {
            d.init(&mut p, &mut rng);
        }
        // Validation examples come from their own stream, so the training draws are Brownlee's.
        let val = draw(
            cfg,
            &mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0076_616c_6964),
            100,
        );
        Ok(MappingTrainee {
            run,
            adam: Adam::new(OptimConfig::default(), p.len()),
            net,
            rng,
            p,
            val,
            epoch: Default::default(),
            loss_sum: 0.0,
            right: 0,
            epoch_loss: Vec::new(),
            history: History::default(),
            epoch_started: Instant::now(),
            started: Instant::now(),
            on_epoch,
        })
    })?;
    let mut rng = t.rng;
    let n = cfg.n_numbers;
    let scale = (cfg.largest as usize * n) as f64;
    let (nums, x, _) = draw(cfg, &mut rng, 100);
    let (pred, _) = t.net.run(&t.p, &x, nums.len(), n, None);
    let pairs: Vec<(Vec<u32>, u32, f64)> = nums
        .iter()
        .zip(&pred)
        .map(|(v, &y)| (v.clone(), v.iter().sum(), y as f64 * scale))
        .collect();
    let rmse = (pairs
        .iter()
        .map(|(_, t, y)| (*t as f64 - y).powi(2))
        .sum::<f64>()
        / pairs.len() as f64)
        .sqrt();
    Ok(MappingReport {
        epoch_loss: t.epoch_loss,
        rmse,
        pairs,
        history: t.history,
        params: t.p,
    })
}

/// What a mapping run saves as `config.json`: the top-level `mapping` key tells it from a
/// sequence-to-sequence run's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRunConfig {
    pub format_version: u32,
    pub name: String,
    pub description: String,
    pub mapping: MappingConfig,
}

/// A trained mapping model read back from its run directory.
pub struct MappingRun {
    pub cfg: MappingRunConfig,
    net: Net,
    params: Vec<f32>,
}

/// One fresh-data evaluation of a mapping model.
#[derive(Clone, Debug, Serialize)]
pub struct MappingEval {
    pub n: usize,
    /// Root mean squared error in original units.
    pub rmse: f64,
    /// Fraction of predictions that round to the exact sum.
    pub exact: f64,
    pub mean_abs_error: f64,
}

impl MappingRun {
    pub fn load(dir: &Path) -> Result<MappingRun, RunError> {
        match crate::run::load_config(dir)? {
            crate::run::RunConfig::Regression(cfg) => Self::from_config(dir, cfg),
            other => Err(rundir::file_err(
                &dir.join(rundir::CONFIG),
                format!("holds a {} run, not a regression run", other.kind()),
            )),
        }
    }

    /// The model of a config already read from `dir/config.json`, with its weights.
    pub fn from_config(dir: &Path, cfg: MappingRunConfig) -> Result<MappingRun, RunError> {
        let path = dir.join(rundir::CONFIG);
        if cfg.format_version > crate::config::FORMAT_VERSION {
            return Err(rundir::file_err(
                &path,
                format!(
                    "format version {} is newer than this seqcalc understands ({})",
                    cfg.format_version,
                    crate::config::FORMAT_VERSION
                ),
            ));
        }
        let m = &cfg.mapping;
        m.validate().map_err(|e| rundir::file_err(&path, e))?;
        let net = Net::new(m);
        let params = rundir::load_flat(dir, &net.layout)?;
        Ok(MappingRun { cfg, net, params })
    }

    /// Parses a question such as "12+57": `n_numbers` whole numbers joined by '+'.
    pub fn parse(&self, question: &str) -> Result<Vec<u32>, String> {
        let n = self.cfg.mapping.n_numbers;
        let parts: Vec<&str> = question.trim().split('+').collect();
        if parts.len() != n {
            return Err(format!(
                "expected {n} numbers joined by '+', like \"12+57\""
            ));
        }
        parts
            .iter()
            .map(|p| {
                let p = p.trim();
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{p:?} is not a whole number"));
                }
                p.parse::<u32>()
                    .map_err(|_| format!("{p:?} is too large (at most {})", u32::MAX))
            })
            .collect()
    }

    /// Predicted sums in original units.
    pub fn predict(&self, numbers: &[Vec<u32>]) -> Vec<f64> {
        let m = &self.cfg.mapping;
        let scale = (m.largest as usize * m.n_numbers) as f64;
        // As `draw` normalises in training.
        let x: Vec<f32> = numbers
            .iter()
            .flatten()
            .map(|&v| v as f32 / scale as f32)
            .collect();
        let (y, _) = self
            .net
            .run(&self.params, &x, numbers.len(), m.n_numbers, None);
        y.iter().map(|&v| v as f64 * scale).collect()
    }

    /// RMSE and rounded exact match on `n` new examples drawn as in training (the operand
    /// space is small, so "new" means newly drawn, as in Brownlee's evaluation).
    pub fn evaluate(&self, n: usize, seed: u64) -> MappingEval {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut se, mut ae, mut right) = (0.0, 0.0, 0);
        // In chunks, so memory does not grow with `n` (the draws are those of one batch).
        let mut left = n;
        while left > 0 {
            let count = left.min(1 << 16);
            left -= count;
            let (nums, _, _) = draw(&self.cfg.mapping, &mut rng, count);
            let pred = self.predict(&nums);
            for (v, y) in nums.iter().zip(&pred) {
                let t = v.iter().sum::<u32>() as f64;
                se += (t - y).powi(2);
                ae += (t - y).abs();
                right += usize::from(y.round() == t);
            }
        }
        MappingEval {
            n,
            rmse: (se / n.max(1) as f64).sqrt(),
            exact: right as f64 / n.max(1) as f64,
            mean_abs_error: ae / n.max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mse_gradient_matches_finite_differences() {
        let (y, t) = (vec![0.3f32, -1.2, 0.7], vec![0.1f32, 0.4, 0.7]);
        let (_, g) = mse(&y, &t);
        for i in 0..y.len() {
            let (mut p, mut m) = (y.clone(), y.clone());
            p[i] += 1e-2;
            m[i] -= 1e-2;
            let fd = (mse(&p, &t).0 - mse(&m, &t).0) / 2e-2;
            assert!((fd - g[i] as f64).abs() < 1e-4, "{i}: {fd} vs {}", g[i]);
        }
    }

    /// Trains `cfg` into a new directory `dir/NAME`.
    fn trained(cfg: MappingConfig, dir: &Path, name: &str) -> MappingReport {
        let rc = MappingRunConfig {
            format_version: crate::config::FORMAT_VERSION,
            name: name.into(),
            description: String::new(),
            mapping: cfg,
        };
        train(&rc, &dir.join(name), rundir::Open::New, &mut |_, _| {}).unwrap()
    }

    #[test]
    fn both_models_learn_and_the_mlp_wins() {
        let dir = tempfile::tempdir().unwrap();
        let lstm = trained(
            MappingConfig::brownlee(MappingModel::Lstm),
            dir.path(),
            "lstm",
        );
        let mlp = trained(
            MappingConfig::brownlee(MappingModel::Mlp),
            dir.path(),
            "mlp",
        );
        for r in [&lstm, &mlp] {
            assert!(
                r.epoch_loss.last().unwrap() < &(r.epoch_loss[0] / 5.0),
                "{:?}",
                r.epoch_loss
            );
        }
        // Predicting the mean sum (101) would give an RMSE of about 40.
        assert!(lstm.rmse < 10.0, "lstm rmse {}", lstm.rmse);
        assert!(
            mlp.rmse < 0.5 && mlp.rmse < lstm.rmse,
            "mlp {} vs lstm {}",
            mlp.rmse,
            lstm.rmse
        );
        assert_eq!(mlp.pairs.len(), 100);
        assert_eq!(mlp.history.records.len(), 50);
        let last = mlp.history.records.last().unwrap();
        assert!(last.val_exact > 0.5, "{last:?}");
    }

    #[test]
    fn a_saved_run_predicts_what_the_trained_model_did() {
        let mut cfg = MappingConfig::brownlee(MappingModel::Lstm);
        cfg.epochs = 3;
        let root = tempfile::tempdir().unwrap();
        let rep = trained(cfg, root.path(), "m");
        let dir = root.path().join("m");
        assert_eq!(
            crate::run::load_config(&dir).unwrap().kind(),
            crate::run::RunKind::Regression
        );
        assert!(dir.join("history.json").is_file() && !dir.join("checkpoint").exists());
        let back = MappingRun::load(&dir).unwrap();
        let nums: Vec<Vec<u32>> = rep.pairs.iter().map(|p| p.0.clone()).collect();
        let again = back.predict(&nums);
        for (p, y) in rep.pairs.iter().zip(&again) {
            assert!((p.2 - y).abs() < 1e-3, "{} vs {y}", p.2);
        }
        assert_eq!(back.parse(" 12+57 ").unwrap(), vec![12, 57]);
        assert!(back.parse("12+x").is_err() && back.parse("1+2+3").is_err());
        let e = back.evaluate(200, 5);
        assert_eq!(e.n, 200);
        assert!(e.rmse.is_finite());
    }
}
