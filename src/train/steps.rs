//! Runs trained by optimiser steps on batches drawn fresh at each step (the coupled-position
//! transformer, the aligned-pairs GRU), on the loop of [`driver`]: AdamW with warm-up and cosine
//! decay, global-norm clipping, greedy evaluations at chosen operand lengths every `eval_every`
//! steps; the checkpoint's state holds the data stream's position.
//!
//! The network is anything that implements [`StepNet`]: draw a batch, compute its loss and
//! gradient, answer questions for the evaluations.

use super::driver::{self, Cadence, Position, Stepped, Trainee, Verdict};
use super::TrainError;
use crate::config::long_addition::LengthGenTrain;
use crate::eval::lengths::{exact_rate, Check};
use crate::history::{EpochRecord, History};
use crate::nn::params::ParamLayout;
use crate::optim::{warmup_cosine, AdamW};
use crate::run::RunConfig;
use crate::rundir::{self, Checkpoint, RunError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// What one training step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLoss {
    /// Mean loss per scored token.
    pub loss: f64,
    /// Questions in the batch.
    pub examples: usize,
    /// Tokens the model read.
    pub tokens: u64,
}

/// A network trained on fresh batches, step by step.
pub trait StepNet {
    /// A question the evaluations ask.
    type Question;
    /// `count` fresh evaluation questions at operand length `len`.
    fn eval_set(&self, rng: &mut ChaCha8Rng, len: usize, count: usize) -> Vec<Self::Question>;
    /// Names and shapes of the parameters (the weights and checkpoint files).
    fn layout(&self) -> &ParamLayout;
    /// Fresh parameters for `seed`.
    fn init_params(&self, seed: u64) -> Vec<f32>;
    /// The parameter ranges AdamW's weight decay applies to.
    fn decay_ranges(&self) -> Vec<Range<usize>>;
    /// One line saying what is trained, for the log.
    fn describe(&self) -> String;
    /// Draws one batch from `rng`, runs forward and backward with `params`, and leaves the
    /// mean-loss gradient in [`StepNet::grad`].
    fn step(&mut self, params: &[f32], rng: &mut ChaCha8Rng) -> StepLoss;
    /// The gradient of the last [`StepNet::step`].
    fn grad(&self) -> &[f32];
    /// Each question answered with `params` and scored against its exact sum.
    fn score(&mut self, params: &[f32], qs: &[Self::Question]) -> Vec<Check>;
}

/// The loop's settings, taken from a run config.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSettings {
    /// Steps or a time budget, AdamW, the schedule and the evaluations (its digits and batch
    /// size are the network's business).
    pub train: LengthGenTrain,
    /// Seeds the initial parameters.
    pub init_seed: u64,
    /// Seeds the training batches' stream.
    pub data_seed: u64,
    /// Seeds the evaluation questions (their own stream: evaluating never moves the data's).
    pub eval_seed: u64,
}

/// One evaluation during training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalRecord {
    pub step: usize,
    pub examples: u64,
    /// Tokens the model read in training so far.
    pub tokens: u64,
    pub train_secs: f64,
    pub lr: f64,
    /// Exponential moving average of the training loss (per scored token).
    pub loss: f64,
    /// (operand length, exact-match fraction) of greedy answers to fresh questions.
    pub exact: Vec<(usize, f64)>,
}

/// What a training run did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub steps: usize,
    pub train_secs: f64,
    pub tokens: u64,
    pub history: Vec<EvalRecord>,
    /// Steps skipped because the gradient was not finite.
    pub skipped_steps: usize,
    pub interrupted: bool,
}

impl Outcome {
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.train_secs.max(1e-9)
    }

    /// The training loss at the last evaluation.
    pub fn final_loss(&self) -> f64 {
        self.history.last().map_or(f64::NAN, |r| r.loss)
    }
}

/// The loop's state in a checkpoint (with the weights and AdamW's moments): enough to go on
/// exactly where a killed or interrupted run stopped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct LoopState {
    steps: usize,
    train_secs: f64,
    tokens: u64,
    examples: u64,
    skipped_steps: usize,
    history: Vec<EvalRecord>,
    loss_ema: Option<f64>,
    lr: f64,
    adam_t: u64,
    /// Position of the batch generator's stream (a decimal u128).
    rng_word_pos: String,
    /// [`config_hash`] of the run's config: a resume refuses a checkpoint of another run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_hash: Option<String>,
}

/// A hash of everything in the config that defines the run (the thread count left out).
pub fn config_hash(cfg: &RunConfig) -> String {
    let text = match cfg {
        RunConfig::CoupledTransformer(c) => {
            let mut c = c.clone();
            c.lengthgen.train.threads = 0;
            serde_json::to_string(&c)
        }
        RunConfig::PairGru(c) => {
            let mut c = c.clone();
            c.pair_gru.threads = 0;
            serde_json::to_string(&c)
        }
        other => Ok(other.to_json()),
    }
    .expect("config serialises");
    let mut h = crate::fsutil::Fnv1a::default();
    h.update(text.as_bytes());
    format!("fnv1a64:{:016x}", h.finish())
}

/// The evaluations as per-epoch records (for curves and `compare`): each one's `epoch` is its
/// step, its losses the training loss, its exact match the mean over the evaluated lengths.
pub fn as_history(evals: &[EvalRecord]) -> History {
    let records = evals
        .iter()
        .map(|r| {
            let exact = if r.exact.is_empty() {
                0.0
            } else {
                r.exact.iter().map(|&(_, x)| x).sum::<f64>() / r.exact.len() as f64
            };
            EpochRecord {
                epoch: r.step,
                train_loss: r.loss,
                train_char_acc: exact,
                val_loss: r.loss,
                val_char_acc: exact,
                val_exact: exact,
                train_secs: r.train_secs,
                epoch_secs: 0.0,
                elapsed_secs: r.train_secs,
                lr: Some(r.lr),
            }
        })
        .collect();
    History { records }
}

fn history_csv(h: &[EvalRecord]) -> String {
    let mut s = String::from("step,examples,tokens,train_secs,lr,loss");
    if let Some(r) = h.first() {
        for (l, _) in &r.exact {
            s.push_str(&format!(",exact_{l}"));
        }
    }
    s.push('\n');
    for r in h {
        s.push_str(&format!(
            "{},{},{},{:.2},{:.3e},{:.6}",
            r.step, r.examples, r.tokens, r.train_secs, r.lr, r.loss
        ));
        for (_, e) in &r.exact {
            s.push_str(&format!(",{e:.4}"));
        }
        s.push('\n');
    }
    s
}

/// A run of a [`StepNet`] as the loop trains it: AdamW on the warm-up-cosine schedule, batches
/// from a seeded stream, greedy evaluations at the settings' lengths every `eval_every` steps.
struct StepTrainee<'a, N: StepNet> {
    net: &'a mut N,
    s: &'a StepSettings,
    cfg: &'a RunConfig,
    log: &'a mut dyn FnMut(&str),
    hash: String,
    params: Vec<f32>,
    opt: AdamW,
    decay: Vec<Range<usize>>,
    rng: ChaCha8Rng,
    /// (operand length, questions) of every evaluation.
    eval_sets: Vec<(usize, Vec<N::Question>)>,
    history: Vec<EvalRecord>,
    loss_ema: Option<f64>,
    lr: f64,
    examples: u64,
    tokens: u64,
}

impl<N: StepNet> Trainee for StepTrainee<'_, N> {
    fn cadence(&self) -> Cadence {
        Cadence {
            period: self.s.train.eval_every,
            steps: self.s.train.steps,
            max_seconds: self.s.train.max_seconds,
            nan_skips: 20,
            checkpoints: true,
        }
    }

    fn layout(&self) -> &ParamLayout {
        self.net.layout()
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn moments(&self) -> (&[f32], &[f32]) {
        (&self.opt.m, &self.opt.v)
    }

    fn state_json(&self, pos: &Position) -> String {
        let st = LoopState {
            steps: pos.step,
            train_secs: pos.train_secs,
            tokens: self.tokens,
            examples: self.examples,
            skipped_steps: pos.skipped,
            history: self.history.clone(),
            loss_ema: self.loss_ema,
            lr: self.lr,
            adam_t: self.opt.t,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            config_hash: Some(self.hash.clone()),
        };
        serde_json::to_string(&st).expect("state serialises")
    }

    fn restore(&mut self, ck: Checkpoint, path: &Path) -> Result<Position, TrainError> {
        let bad = |e: String| TrainError::Run(rundir::file_err(path, e));
        let st: LoopState = serde_json::from_str(&ck.state_json)
            .map_err(|e| bad(format!("bad training state: {e}")))?;
        if st.config_hash.as_ref().is_some_and(|h| *h != self.hash) {
            return Err(bad("belongs to another run: its configuration hash differs from this run directory's config.json; restore the run's own checkpoint, or start over in a new directory".into()));
        }
        let pos: u128 = st.rng_word_pos.parse().map_err(|e| bad(format!("{e}")))?;
        self.rng.set_word_pos(pos);
        (self.params, self.opt.m, self.opt.v) = (ck.params, ck.adam_m, ck.adam_v);
        self.opt.t = st.adam_t;
        (self.tokens, self.examples, self.history) = (st.tokens, st.examples, st.history);
        (self.loss_ema, self.lr) = (st.loss_ema, st.lr);
        Ok(Position {
            step: st.steps,
            train_secs: st.train_secs,
            skipped: st.skipped_steps,
        })
    }

    fn ready(&mut self, resumed: Option<&Position>) {
        if let Some(pos) = resumed {
            (self.log)(&format!("resumed after step {}", pos.step));
        }
    }

    fn save_config(&self, dir: &Path) -> Result<(), RunError> {
        crate::run::save_config(dir, self.cfg)
    }

    fn evaluated(&self, pos: &Position) -> bool {
        self.history.last().is_some_and(|r| r.step == pos.step)
    }

    fn begin_period(&mut self, _pos: &Position) -> Result<(), TrainError> {
        Ok(())
    }

    fn step(&mut self, _pos: &Position, progress: f64) -> Result<Stepped, TrainError> {
        let s = self.s;
        self.lr = warmup_cosine(
            progress,
            s.train.lr,
            s.train.warmup,
            s.train.min_lr_fraction,
        );
        let step = self.net.step(&self.params, &mut self.rng);
        let finite = self
            .opt
            .step(&mut self.params, self.net.grad(), self.lr, &self.decay)
            .is_ok();
        self.loss_ema = Some(match self.loss_ema {
            None => step.loss,
            Some(e) => 0.98 * e + 0.02 * step.loss,
        });
        self.examples += step.examples as u64;
        self.tokens += step.tokens;
        Ok(Stepped {
            loss: step.loss,
            finite,
        })
    }

    fn end_period(&mut self, pos: &Position) -> Result<Verdict, TrainError> {
        let exact: Vec<(usize, f64)> = self
            .eval_sets
            .iter()
            .map(|(l, qs)| (*l, exact_rate(&self.net.score(&self.params, qs))))
            .collect();
        let shown: Vec<String> = exact.iter().map(|(l, e)| format!("{l}:{e:.3}")).collect();
        let loss = self.loss_ema.unwrap_or(f64::NAN);
        (self.log)(&format!(
            "step {:>6}  {:>7.1}s  lr {:.2e}  loss {:.4}  exact by length {}",
            pos.step,
            pos.train_secs,
            self.lr,
            loss,
            shown.join(" ")
        ));
        self.history.push(EvalRecord {
            step: pos.step,
            examples: self.examples,
            tokens: self.tokens,
            train_secs: pos.train_secs,
            lr: self.lr,
            loss,
            exact,
        });
        // The weights are always the latest evaluated ones.
        Ok(Verdict {
            keep_weights: true,
            stop: None,
        })
    }

    fn history_files(&self) -> (String, String) {
        let json = serde_json::to_string_pretty(&self.history).expect("history serialises");
        (history_csv(&self.history), json)
    }

    fn curves(&self) -> (History, String, [&'static str; 3]) {
        (
            as_history(&self.history),
            self.cfg.name().to_string(),
            ["exact match (mean over lengths)"; 3],
        )
    }
}

/// Trains `net` for the run `cfg` into `dir` (created if needed) through the loop
/// ([`driver::drive`]); `log` receives progress lines. Stops early when `interrupted` is set
/// (Ctrl-C), with a checkpoint at the step it stopped after; with `Open::Resume`, training goes
/// on from the checkpoint in `dir` and gives the same bits as a run never stopped (for a step
/// budget; a time budget's schedule follows the clock). Returns the final parameters.
pub fn train<N: StepNet>(
    net: &mut N,
    s: &StepSettings,
    cfg: &RunConfig,
    dir: &Path,
    open: rundir::Open,
    interrupted: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<f32>, Outcome), TrainError> {
    let (t, finish) = driver::drive(dir, open, interrupted, || {
        log(&net.describe());
        let params = net.init_params(s.init_seed);
        let mut eval_rng = ChaCha8Rng::seed_from_u64(s.eval_seed);
        let eval_sets = s
            .train
            .eval_lengths
            .iter()
            .map(|&l| (l, net.eval_set(&mut eval_rng, l, s.train.eval_count)))
            .collect();
        Ok(StepTrainee {
            opt: AdamW::new(
                params.len(),
                s.train.beta1,
                s.train.beta2,
                s.train.weight_decay,
                Some(s.train.clip_norm),
            ),
            decay: net.decay_ranges(),
            net,
            s,
            cfg,
            log,
            hash: config_hash(cfg),
            params,
            rng: ChaCha8Rng::seed_from_u64(s.data_seed),
            eval_sets,
            history: Vec::new(),
            loss_ema: None,
            lr: 0.0,
            examples: 0,
            tokens: 0,
        })
    })?;
    if finish.interrupted {
        (t.log)(&format!(
            "interrupted after step {}: checkpoint written; go on with `seqcalc train --resume {}`",
            finish.pos.step,
            dir.display()
        ));
    }
    let out = Outcome {
        steps: finish.pos.step,
        train_secs: finish.pos.train_secs,
        tokens: t.tokens,
        history: t.history,
        skipped_steps: finish.pos.skipped,
        interrupted: finish.interrupted,
    };
    Ok((t.params, out))
}
