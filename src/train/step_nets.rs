//! The networks trained on fresh batches (`steps`): the coupled-position transformer and the aligned-pairs
//! GRU, each drawing its own batches (length-bucketed fresh additions: every question in a
//! batch has the same padded length, so no padding is wasted), and the entry points that train
//! a run of either kind.

use super::steps::{self, Outcome, StepLoss, StepNet, StepSettings};
use super::TrainError;
use crate::codec::coupled::{self as format, Operands};
use crate::config::long_addition::{
    LengthGenRunConfig, LengthGenTrain, PairGruConfig, PairGruRunConfig,
};
use crate::eval::lengths::{score, Check};
use crate::model::coupled::CoupledAdditionEngine;
use crate::model::pair_gru::{PairGru, PairGruEngine};
use crate::nn::params::ParamLayout;
use crate::run::RunConfig;
use crate::rundir::{self, RunError};
use crate::task::long_addition::{pad_further, random_questions, sample_bucket, stress_rewrite};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// The coupled-position transformer with its batch settings.
pub struct CoupledNet {
    pub engine: CoupledAdditionEngine,
    train: LengthGenTrain,
    seqs: Vec<u8>,
}

impl StepNet for CoupledNet {
    type Question = Operands;

    fn eval_set(&self, rng: &mut ChaCha8Rng, len: usize, count: usize) -> Vec<Operands> {
        random_questions(rng, len, count)
    }

    fn layout(&self) -> &ParamLayout {
        &self.engine.model.layout
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.engine.model.init_params(seed)
    }

    fn decay_ranges(&self) -> Vec<Range<usize>> {
        self.engine.model.decay_ranges()
    }

    fn describe(&self) -> String {
        let m = &self.engine.model;
        format!(
            "model: {} layer(s), d {}, {} heads, FFN {}: {} parameters; {} thread(s)",
            m.cfg.layers,
            m.cfg.dim,
            m.cfg.heads,
            m.cfg.ffn,
            m.param_count(),
            self.engine.threads()
        )
    }

    fn step(&mut self, params: &[f32], rng: &mut ChaCha8Rng) -> StepLoss {
        let t = &self.train;
        let (l, mut qs) = sample_bucket(rng, t.min_digits, t.max_digits, t.batch_size);
        let l = pad_further(rng, l, &mut qs, t.pad_fraction, t.pad_to_digits);
        self.seqs.clear();
        for q in &qs {
            self.seqs.extend(format::tokens(q, &q.sum()));
        }
        let st = self.engine.train_step(params, l, qs.len(), &self.seqs);
        StepLoss {
            loss: st.loss_sum / st.tokens.max(1) as f64,
            examples: qs.len(),
            tokens: (qs.len() * (3 * l + 4)) as u64,
        }
    }

    fn grad(&self) -> &[f32] {
        &self.engine.grad
    }

    fn score(&mut self, params: &[f32], qs: &[Operands]) -> Vec<Check> {
        score(&mut self.engine, params, qs)
    }
}

/// The aligned-pairs GRU with its batch settings.
pub struct PairGruNet {
    pub engine: PairGruEngine,
    cfg: PairGruConfig,
    threads: usize,
}

impl StepNet for PairGruNet {
    type Question = Operands;

    fn eval_set(&self, rng: &mut ChaCha8Rng, len: usize, count: usize) -> Vec<Operands> {
        random_questions(rng, len, count)
    }

    fn layout(&self) -> &ParamLayout {
        &self.engine.model.layout
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.engine.model.init_params(seed)
    }

    fn decay_ranges(&self) -> Vec<Range<usize>> {
        Vec::new()
    }

    fn describe(&self) -> String {
        format!(
            "aligned-pairs GRU: embedding {}, GRU {}, {} parameters; {} thread(s)",
            self.cfg.embed_dim,
            self.cfg.hidden,
            self.engine.model.param_count(),
            self.threads
        )
    }

    fn step(&mut self, params: &[f32], rng: &mut ChaCha8Rng) -> StepLoss {
        let c = &self.cfg;
        let (l, mut qs) = sample_bucket(rng, c.min_digits, c.max_digits, c.batch_size);
        stress_rewrite(rng, &mut qs, c.stress_fraction);
        StepLoss {
            loss: self.engine.gradient(params, &qs),
            examples: qs.len(),
            tokens: (qs.len() * (l + 1)) as u64,
        }
    }

    fn grad(&self) -> &[f32] {
        &self.engine.grad
    }

    fn score(&mut self, params: &[f32], qs: &[Operands]) -> Vec<Check> {
        self.engine.score(params, qs)
    }
}

/// The training settings of a coupled-transformer run.
pub fn coupled_settings(cfg: &LengthGenRunConfig) -> StepSettings {
    StepSettings {
        train: cfg.lengthgen.train.clone(),
        init_seed: cfg.seed,
        data_seed: cfg.seed,
        eval_seed: cfg.seed ^ 0x5eed_e7a1,
    }
}

/// The training settings of a pair-gru run: AdamW (0.9, 0.95), warm-up over 2% of the
/// steps and cosine decay to a tenth, gradient clipping at 1, as the PyTorch reference.
pub fn pair_gru_settings(cfg: &PairGruRunConfig) -> StepSettings {
    let g = &cfg.pair_gru;
    // The same schedule and optimiser as the coupled transformer's defaults.
    StepSettings {
        train: LengthGenTrain {
            steps: g.steps,
            max_seconds: None,
            lr: g.lr,
            eval_every: g.eval_every,
            eval_lengths: g.eval_lengths.clone(),
            eval_count: g.eval_count,
            ..LengthGenTrain::default()
        },
        init_seed: cfg.seed,
        data_seed: cfg.seed ^ 0x6a7e_0001,
        eval_seed: cfg.seed ^ 0x5eed_e7a1,
    }
}

/// Trains (or, with `Open::Resume`, goes on training) the coupled-transformer run `cfg` into
/// `dir` ([`steps::train`]). Returns the engine, the final weights and what
/// the loop did.
pub fn train_coupled(
    cfg: &LengthGenRunConfig,
    dir: &Path,
    open: rundir::Open,
    interrupted: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(CoupledAdditionEngine, Vec<f32>, Outcome), TrainError> {
    let model = cfg.build().map_err(RunError::Config)?;
    let threads = crate::parallel::threads_or_cores(cfg.lengthgen.train.threads);
    let run = RunConfig::CoupledTransformer(cfg.clone());
    if !cfg.lengthgen.task.is_addition() {
        let mut net = super::level_nets::LevelsNet::new(
            CoupledAdditionEngine::new(model, threads),
            cfg.lengthgen.task,
            cfg.lengthgen.train.clone(),
        );
        let (params, out) = steps::train(
            &mut net,
            &coupled_settings(cfg),
            &run,
            dir,
            open,
            interrupted,
            log,
        )?;
        return Ok((net.engine, params, out));
    }
    let mut net = CoupledNet {
        engine: CoupledAdditionEngine::new(model, threads),
        train: cfg.lengthgen.train.clone(),
        seqs: Vec::new(),
    };
    let (params, out) = steps::train(
        &mut net,
        &coupled_settings(cfg),
        &run,
        dir,
        open,
        interrupted,
        log,
    )?;
    Ok((net.engine, params, out))
}

/// Trains (or resumes) the pair-gru run `cfg` into `dir`. Same seed and
/// thread count: same bits.
pub fn train_pair_gru(
    cfg: &PairGruRunConfig,
    dir: &Path,
    open: rundir::Open,
    interrupted: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(PairGruEngine, Vec<f32>, Outcome), TrainError> {
    let g = &cfg.pair_gru;
    g.validate().map_err(RunError::Config)?;
    let threads = crate::parallel::threads_or_cores(g.threads);
    let mut net = PairGruNet {
        engine: PairGruEngine::new(PairGru::new(g.hidden, g.embed_dim), threads),
        cfg: g.clone(),
        threads,
    };
    let run = RunConfig::PairGru(cfg.clone());
    let (params, out) = steps::train(
        &mut net,
        &pair_gru_settings(cfg),
        &run,
        dir,
        open,
        interrupted,
        log,
    )?;
    Ok((net.engine, params, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::lengths::exact_rate;
    use crate::task::long_addition::random_questions;
    use rand::SeedableRng;
    use std::sync::atomic::Ordering;

    fn tiny(steps: usize, threads: usize) -> LengthGenRunConfig {
        let mut c = crate::config::long_addition::experiment_config(true);
        let t = &mut c.lengthgen.train;
        (t.steps, t.threads, t.batch_size, t.lr, t.eval_every) = (steps, threads, 64, 3e-3, 1000);
        (t.eval_lengths, t.eval_count) = (vec![3], 5);
        c
    }

    #[test]
    fn same_seed_and_threads_give_the_same_bits() {
        let run = |threads| {
            let dir = tempfile::tempdir().unwrap();
            let stop = AtomicBool::new(false);
            let (_, p, out) = train_coupled(
                &tiny(12, threads),
                dir.path(),
                rundir::Open::New,
                &stop,
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(out.steps, 12);
            let layout = tiny(12, threads).build().unwrap().layout;
            let saved = rundir::load_flat(dir.path(), &layout).unwrap();
            assert_eq!(saved, p, "the saved weights are the final ones");
            p
        };
        let a = run(2);
        assert_eq!(run(2), a);
        // Another thread count sums gradients in another order: close, not necessarily equal.
        let b = run(1);
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-3, "{diff}");
    }

    #[test]
    fn an_interrupted_run_resumes_to_the_same_bits() {
        let mut cfg = tiny(12, 2);
        cfg.lengthgen.train.eval_every = 4;
        let straight = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (_, want, whole) =
            train_coupled(&cfg, straight.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
        // Interrupt when the evaluation at step 4 reports: the run stops after it.
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (_, _, first) = train_coupled(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
            if l.starts_with("step") {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
        assert!(first.interrupted && first.steps == 4, "{first:?}");
        let stop = AtomicBool::new(false);
        let mut lines = Vec::new();
        let (_, got, rest) =
            train_coupled(&cfg, dir.path(), rundir::Open::Resume, &stop, &mut |l| {
                lines.push(l.to_string())
            })
            .unwrap();
        assert!(
            lines.iter().any(|l| l == "resumed after step 4"),
            "{lines:?}"
        );
        assert_eq!(rest.steps, 12);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "resumed weights differ from an uninterrupted run's"
        );
        let steps = |o: &Outcome| o.history.iter().map(|r| r.step).collect::<Vec<_>>();
        assert_eq!(steps(&rest), steps(&whole));
        assert_eq!(rest.tokens, whole.tokens);
    }

    #[test]
    fn a_small_model_learns_addition_and_answers_longer_operands() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut cfg = tiny(1500, 2);
        cfg.lengthgen.train.eval_every = 250;
        cfg.lengthgen.train.eval_lengths = vec![3, 6];
        cfg.lengthgen.model.dim = 48;
        cfg.lengthgen.model.heads = 2;
        cfg.lengthgen.model.ffn = 128;
        let mut lines = Vec::new();
        let (mut engine, p, out) =
            train_coupled(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
                lines.push(l.to_string())
            })
            .unwrap();
        let last_loss = out.history.last().unwrap().loss;
        assert!(last_loss < 0.1, "loss {last_loss}: {lines:?}");
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut rate = |engine: &mut CoupledAdditionEngine, len| {
            let qs = random_questions(&mut rng, len, 200);
            exact_rate(&score(engine, &p, &qs))
        };
        let in_dist = rate(&mut engine, 3);
        let longer = rate(&mut engine, 6);
        eprintln!(
            "exact: 3 digits {in_dist}, 6 digits {longer} ({:.1} s)",
            out.train_secs
        );
        assert!(in_dist >= 0.95, "3 digits: {in_dist}");
        assert!(longer >= 0.5, "6 digits (trained on 1..3): {longer}");
    }

    #[test]
    fn a_small_windowed_model_answers_operands_six_times_longer() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut cfg = tiny(1500, 2);
        cfg.lengthgen.train.eval_every = 1500;
        cfg.lengthgen.train.eval_lengths = vec![3];
        cfg.lengthgen.model.dim = 48;
        cfg.lengthgen.model.heads = 2;
        cfg.lengthgen.model.ffn = 128;
        cfg.lengthgen.model.local_window = 2;
        cfg.lengthgen.train.max_digits = 5;
        let (mut engine, p, out) =
            train_coupled(&cfg, dir.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(98);
        for len in [3, 30] {
            let qs = random_questions(&mut rng, len, 100);
            let rate = exact_rate(&score(&mut engine, &p, &qs));
            eprintln!("windowed: {len} digits {rate} ({:.1} s)", out.train_secs);
            assert!(rate >= 0.9, "{len} digits (trained on 1..5): {rate}");
        }
    }

    fn tiny_gru(steps: usize) -> PairGruRunConfig {
        PairGruRunConfig {
            seed: 5,
            pair_gru: PairGruConfig {
                hidden: 32,
                embed_dim: 16,
                max_digits: 6,
                batch_size: 64,
                steps,
                lr: 1e-2,
                threads: 2,
                stress_fraction: 0.0,
                eval_every: 100,
                eval_lengths: vec![4],
                eval_count: 20,
                ..PairGruConfig::default()
            },
            ..PairGruRunConfig::default()
        }
    }

    #[test]
    fn a_small_baseline_learns_to_add_and_answers_longer_operands() {
        let cfg = tiny_gru(400);
        let run = || {
            let dir = tempfile::tempdir().unwrap();
            let stop = AtomicBool::new(false);
            let r = train_pair_gru(&cfg, dir.path(), rundir::Open::New, &stop, &mut |_| {});
            let (engine, p, out) = r.unwrap();
            assert_eq!(out.steps, 400);
            assert_eq!(
                out.history.iter().map(|r| r.step).collect::<Vec<_>>(),
                [100, 200, 300, 400]
            );
            for f in ["history.json", "history.csv", "curves.svg", "config.json"] {
                assert!(dir.path().join(f).is_file(), "{f}");
            }
            (engine, p)
        };
        let (mut engine, p) = run();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for len in [4, 12] {
            let qs = random_questions(&mut rng, len, 100);
            let rate = exact_rate(&engine.score(&p, &qs));
            assert!(rate >= 0.9, "{len} digits: {rate}");
        }
        // Same seed and threads: same bits.
        assert_eq!(run().1, p);
    }

    #[test]
    fn an_interrupted_pair_gru_run_resumes_to_the_same_bits() {
        let cfg = tiny_gru(30);
        let cfg = PairGruRunConfig {
            pair_gru: PairGruConfig {
                eval_every: 10,
                stress_fraction: 0.3,
                ..cfg.pair_gru
            },
            ..cfg
        };
        let straight = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (_, want, whole) =
            train_pair_gru(&cfg, straight.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (_, _, first) = train_pair_gru(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
            if l.starts_with("step") {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
        assert!(first.interrupted && first.steps == 10, "{first:?}");
        let stop = AtomicBool::new(false);
        let (_, got, rest) =
            train_pair_gru(&cfg, dir.path(), rundir::Open::Resume, &stop, &mut |_| {}).unwrap();
        assert_eq!(rest.steps, 30);
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let steps = |o: &Outcome| o.history.iter().map(|r| r.step).collect::<Vec<_>>();
        assert_eq!(steps(&rest), steps(&whole));
    }
}
