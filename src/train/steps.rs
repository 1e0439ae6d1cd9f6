//! The step loop: every run kind trained by optimiser steps on batches drawn fresh at each step
//! (the coupled-position transformer, the aligned-pairs GRU). AdamW with warm-up and cosine
//! decay, global-norm clipping, greedy evaluations at chosen operand lengths along the way, a
//! checkpoint (weights, AdamW's moments, the loop's state with the data stream's position) at
//! every evaluation and on interruption, bit-identical resume, history and curves, the NaN stop.
//!
//! The network is anything that implements [`StepNet`]: draw a batch, compute its loss and
//! gradient, answer questions for the evaluations.

use crate::codec::coupled::Operands;
use crate::eval::lengths::{exact_rate, Check};
use crate::fsutil::write_atomic;
use crate::history::{EpochRecord, History};
use crate::nn::params::ParamLayout;
use crate::optim::{warmup_cosine, AdamW};
use crate::run::RunConfig;
use crate::rundir::{self, RunError};
use crate::task::long_addition::random_questions;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

/// A network the step loop can train.
pub trait StepNet {
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
    fn score(&mut self, params: &[f32], qs: &[Operands]) -> Vec<Check>;
}

/// The loop's settings, taken from a run config.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSettings {
    /// Optimiser steps; the learning-rate schedule spans them. 0: schedule by `max_seconds`.
    pub steps: usize,
    /// Stop after this many seconds of training even if steps remain.
    pub max_seconds: Option<f64>,
    pub lr: f64,
    /// Fraction of the run spent warming the learning rate up linearly.
    pub warmup: f64,
    /// The cosine decays to `lr * min_lr_fraction`.
    pub min_lr_fraction: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub clip_norm: f64,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
    /// Operand lengths of those evaluations.
    pub eval_lengths: Vec<usize>,
    /// Questions per length in those evaluations.
    pub eval_count: usize,
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

/// Everything the loop carries from step to step.
struct Loop {
    params: Vec<f32>,
    opt: AdamW,
    rng: ChaCha8Rng,
    out: Outcome,
    loss_ema: Option<f64>,
    lr: f64,
    examples: u64,
}

/// Where the loop writes, and what it writes into its checkpoints.
struct Files<'a> {
    dir: &'a Path,
    layout: &'a ParamLayout,
    hash: String,
    title: String,
}

impl Files<'_> {
    fn checkpoint(&self, s: &Loop) -> Result<(), RunError> {
        let st = LoopState {
            steps: s.out.steps,
            train_secs: s.out.train_secs,
            tokens: s.out.tokens,
            examples: s.examples,
            skipped_steps: s.out.skipped_steps,
            history: s.out.history.clone(),
            loss_ema: s.loss_ema,
            lr: s.lr,
            adam_t: s.opt.t,
            rng_word_pos: s.rng.get_word_pos().to_string(),
            config_hash: Some(self.hash.clone()),
        };
        let ck = rundir::Checkpoint {
            params: s.params.clone(),
            adam_m: s.opt.m.clone(),
            adam_v: s.opt.v.clone(),
            state_json: serde_json::to_string(&st).expect("state serialises"),
        };
        rundir::save_checkpoint_flat(self.dir, self.layout, &ck)
    }

    /// Reads the checkpoint into `s`.
    fn restore(&self, s: &mut Loop) -> Result<(), RunError> {
        let ck = rundir::load_checkpoint_required_flat(self.dir, self.layout)?;
        let bad = |e: String| {
            rundir::file_err(
                &self
                    .dir
                    .join(rundir::CHECKPOINT_DIR)
                    .join(rundir::CHECKPOINT),
                e,
            )
        };
        let st: LoopState = serde_json::from_str(&ck.state_json)
            .map_err(|e| bad(format!("bad training state: {e}")))?;
        if st.config_hash.as_ref().is_some_and(|h| *h != self.hash) {
            return Err(bad("belongs to another run: its configuration hash differs from this run directory's config.json; restore the run's own checkpoint, or start over in a new directory".into()));
        }
        let pos: u128 = st.rng_word_pos.parse().map_err(|e| bad(format!("{e}")))?;
        s.rng.set_word_pos(pos);
        (s.params, s.opt.m, s.opt.v, s.opt.t) = (ck.params, ck.adam_m, ck.adam_v, st.adam_t);
        (s.out.steps, s.out.train_secs, s.out.tokens) = (st.steps, st.train_secs, st.tokens);
        (s.out.skipped_steps, s.out.history) = (st.skipped_steps, st.history);
        (s.examples, s.loss_ema, s.lr) = (st.examples, st.loss_ema, st.lr);
        Ok(())
    }

    /// Weights, history and curves after an evaluation.
    fn after_eval(&self, s: &Loop) -> Result<(), RunError> {
        rundir::save_flat(self.dir, self.layout, &s.params)?;
        let h = &s.out.history;
        write_atomic(&self.dir.join("history.csv"), history_csv(h).as_bytes())
            .map_err(RunError::Write)?;
        let json = serde_json::to_string_pretty(h).expect("history serialises");
        write_atomic(&self.dir.join("history.json"), json.as_bytes()).map_err(RunError::Write)?;
        if let Err(e) = crate::report::plot_curves_labelled(
            &as_history(h),
            &self.title,
            [
                "exact match (mean over lengths)",
                "exact match (mean over lengths)",
                "exact match (mean over lengths)",
            ],
            &self.dir.join("curves.svg"),
            &self.dir.join("curves.png"),
        ) {
            eprintln!("warning: could not draw curves: {e:#}");
        }
        Ok(())
    }
}

/// Trains `net` for the run `cfg` into `dir` (created if needed); `log` receives progress
/// lines. Stops early when `interrupted` is set (Ctrl-C), keeping the weights so far. A
/// checkpoint is written atomically at every evaluation and on interruption; with
/// `Open::Resume`, training goes on from the checkpoint in `dir`, and gives the same bits as a
/// run never stopped (for a step budget; a time budget's schedule follows the clock).
/// Returns the final parameters.
pub fn train<N: StepNet>(
    net: &mut N,
    s: &StepSettings,
    cfg: &RunConfig,
    dir: &Path,
    open: rundir::Open,
    interrupted: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<f32>, Outcome), RunError> {
    let resume = open == rundir::Open::Resume;
    let _lock = rundir::open_run(dir, open)?;
    log(&net.describe());
    let layout = net.layout().clone();
    let files = Files {
        dir,
        layout: &layout,
        hash: config_hash(cfg),
        title: cfg.name().to_string(),
    };
    let params = net.init_params(s.init_seed);
    let decay = net.decay_ranges();
    let mut st = Loop {
        opt: AdamW::new(
            params.len(),
            s.beta1,
            s.beta2,
            s.weight_decay,
            Some(s.clip_norm),
        ),
        params,
        rng: ChaCha8Rng::seed_from_u64(s.data_seed),
        out: Outcome {
            steps: 0,
            train_secs: 0.0,
            tokens: 0,
            history: Vec::new(),
            skipped_steps: 0,
            interrupted: false,
        },
        loss_ema: None,
        lr: 0.0,
        examples: 0,
    };
    let mut eval_rng = ChaCha8Rng::seed_from_u64(s.eval_seed);
    let eval_sets: Vec<(usize, Vec<Operands>)> = s
        .eval_lengths
        .iter()
        .map(|&l| (l, random_questions(&mut eval_rng, l, s.eval_count)))
        .collect();
    if resume {
        files.restore(&mut st)?;
        log(&format!("resumed after step {}", st.out.steps));
    } else {
        // The checkpoint before the first step, then the config: a directory with a config
        // always has a checkpoint to resume from.
        files.checkpoint(&st)?;
    }
    crate::run::save_config(dir, cfg)?;
    let evaluate = |net: &mut N, st: &mut Loop, log: &mut dyn FnMut(&str)| {
        let exact: Vec<(usize, f64)> = eval_sets
            .iter()
            .map(|(l, qs)| (*l, exact_rate(&net.score(&st.params, qs))))
            .collect();
        let shown: Vec<String> = exact.iter().map(|(l, e)| format!("{l}:{e:.3}")).collect();
        let loss = st.loss_ema.unwrap_or(f64::NAN);
        log(&format!(
            "step {:>6}  {:>7.1}s  lr {:.2e}  loss {:.4}  exact by length {}",
            st.out.steps,
            st.out.train_secs,
            st.lr,
            loss,
            shown.join(" ")
        ));
        st.out.history.push(EvalRecord {
            step: st.out.steps,
            examples: st.examples,
            tokens: st.out.tokens,
            train_secs: st.out.train_secs,
            lr: st.lr,
            loss,
            exact,
        });
        files.after_eval(st)
    };
    loop {
        let progress = if s.steps > 0 {
            st.out.steps as f64 / s.steps as f64
        } else {
            st.out.train_secs / s.max_seconds.unwrap_or(1.0)
        };
        let time_up = s.max_seconds.is_some_and(|m| st.out.train_secs >= m);
        if (s.steps > 0 && st.out.steps >= s.steps) || time_up {
            break;
        }
        let stop = interrupted.load(Ordering::SeqCst);
        // (A run resumed from the checkpoint of an evaluation does not repeat it.)
        let evaluated = st
            .out
            .history
            .last()
            .is_some_and(|r| r.step == st.out.steps);
        let eval_now = st.out.steps.is_multiple_of(s.eval_every) && st.out.steps > 0 && !evaluated;
        if eval_now && !stop {
            evaluate(net, &mut st, log)?;
        }
        if stop || eval_now {
            st.out.interrupted = stop;
            files.checkpoint(&st)?;
        }
        if stop {
            log(&format!(
                "interrupted after step {}: checkpoint written; go on with `seqcalc train --resume {}`",
                st.out.steps,
                dir.display()
            ));
            break;
        }
        let t0 = Instant::now();
        st.lr = warmup_cosine(progress, s.lr, s.warmup, s.min_lr_fraction);
        let step = net.step(&st.params, &mut st.rng);
        if st
            .opt
            .step(&mut st.params, net.grad(), st.lr, &decay)
            .is_err()
        {
            st.out.skipped_steps += 1;
            if st.out.skipped_steps > 20 {
                return Err(RunError::Config(
                    "training diverged: more than 20 steps with non-finite gradients; lower the learning rate".into(),
                ));
            }
        }
        st.loss_ema = Some(match st.loss_ema {
            None => step.loss,
            Some(e) => 0.98 * e + 0.02 * step.loss,
        });
        st.out.steps += 1;
        st.examples += step.examples as u64;
        st.out.tokens += step.tokens;
        st.out.train_secs += t0.elapsed().as_secs_f64();
    }
    // The last evaluation, then a checkpoint of the finished run, so that resuming it trains and
    // writes nothing. (A finished run resumed finds its last evaluation done.)
    let evaluated = st
        .out
        .history
        .last()
        .is_some_and(|r| r.step == st.out.steps);
    if !evaluated {
        evaluate(net, &mut st, log)?;
        if !st.out.interrupted {
            files.checkpoint(&st)?;
        }
    }
    Ok((st.params, st.out))
}
