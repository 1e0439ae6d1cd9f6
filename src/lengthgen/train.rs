//! The training loop: length-bucketed batches of fresh additions (every question in a batch
//! has the same padded length, so no padding is wasted), AdamW with warm-up and cosine decay,
//! global-norm clipping, greedy evaluations at longer lengths along the way.

use super::engine::{exact_rate, CoupledAdditionEngine};
pub use crate::task::long_addition::{
    pad_further, random_operand, random_questions, sample_bucket,
};

use super::format::{self, Operands};
use super::{save_config, LengthGenRunConfig};
use crate::fsutil::write_atomic;
use crate::optim::{warmup_cosine, AdamW};
use crate::rundir::{self, RunError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
pub fn config_hash(cfg: &LengthGenRunConfig) -> String {
    let mut c = cfg.clone();
    c.lengthgen.train.threads = 0;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in serde_json::to_string(&c)
        .expect("config serialises")
        .as_bytes()
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

impl Outcome {
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.train_secs.max(1e-9)
    }
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

/// Trains the run described by `cfg` into `dir` (created if needed); `log` receives progress
/// lines. Stops early when `interrupted` is set (Ctrl-C), keeping the weights so far. A
/// checkpoint (weights, AdamW moments, loop state) is written atomically at every evaluation
/// and on interruption; with `resume`, training goes on from the checkpoint in `dir`, and
/// gives the same bits as a run never stopped (for a step budget; a time budget's schedule
/// follows the clock).
pub fn train(
    cfg: &LengthGenRunConfig,
    dir: &Path,
    open: rundir::Open,
    interrupted: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(CoupledAdditionEngine, Vec<f32>, Outcome), RunError> {
    let model = cfg.build().map_err(RunError::Config)?;
    let resume = open == rundir::Open::Resume;
    let _lock = rundir::open_run(dir, open)?;
    let hash = config_hash(cfg);
    let t = &cfg.lengthgen.train;
    let threads = crate::parallel::threads_or_cores(t.threads);
    log(&format!(
        "model: {} layer(s), d {}, {} heads, FFN {}: {} parameters; {} thread(s)",
        model.cfg.layers,
        model.cfg.dim,
        model.cfg.heads,
        model.cfg.ffn,
        model.param_count(),
        threads
    ));
    let mut params: Vec<f32> = model.init_params(cfg.seed);
    let decay = model.decay_ranges();
    let mut opt = AdamW::new(
        params.len(),
        t.beta1,
        t.beta2,
        t.weight_decay,
        Some(t.clip_norm),
    );
    let mut engine = CoupledAdditionEngine::new(model, threads);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut eval_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_e7a1);
    let eval_sets: Vec<(usize, Vec<Operands>)> = t
        .eval_lengths
        .iter()
        .map(|&l| (l, random_questions(&mut eval_rng, l, t.eval_count)))
        .collect();
    let mut out = Outcome {
        steps: 0,
        train_secs: 0.0,
        tokens: 0,
        history: Vec::new(),
        skipped_steps: 0,
        interrupted: false,
    };
    let mut loss_ema: Option<f64> = None;
    let mut examples = 0u64;
    let mut lr = 0.0;
    if resume {
        {
            let ck = rundir::load_checkpoint_required_flat(dir, &engine.model.layout)?;
            let bad = |e: String| {
                rundir::file_err(
                    &dir.join(rundir::CHECKPOINT_DIR).join(rundir::CHECKPOINT),
                    e,
                )
            };
            let st: LoopState = serde_json::from_str(&ck.state_json)
                .map_err(|e| bad(format!("bad training state: {e}")))?;
            if st.config_hash.as_ref().is_some_and(|h| *h != hash) {
                return Err(bad("belongs to another run: its configuration hash differs from this run directory's config.json; restore the run's own checkpoint, or start over in a new directory".into()));
            }
            let pos: u128 = st.rng_word_pos.parse().map_err(|e| bad(format!("{e}")))?;
            rng.set_word_pos(pos);
            (params, opt.m, opt.v, opt.t) = (ck.params, ck.adam_m, ck.adam_v, st.adam_t);
            (out.steps, out.train_secs, out.tokens) = (st.steps, st.train_secs, st.tokens);
            (out.skipped_steps, out.history) = (st.skipped_steps, st.history);
            (examples, loss_ema, lr) = (st.examples, st.loss_ema, st.lr);
            log(&format!("resumed after step {}", out.steps));
        }
    }
    let checkpoint = |params: &[f32],
                      opt: &AdamW,
                      out: &Outcome,
                      rng: &ChaCha8Rng,
                      loss_ema: Option<f64>,
                      lr: f64,
                      examples: u64,
                      layout: &crate::nn::params::ParamLayout|
     -> Result<(), RunError> {
        let st = LoopState {
            steps: out.steps,
            train_secs: out.train_secs,
            tokens: out.tokens,
            examples,
            skipped_steps: out.skipped_steps,
            history: out.history.clone(),
            loss_ema,
            lr,
            adam_t: opt.t,
            rng_word_pos: rng.get_word_pos().to_string(),
            config_hash: Some(hash.clone()),
        };
        let ck = rundir::Checkpoint {
            params: params.to_vec(),
            adam_m: opt.m.clone(),
            adam_v: opt.v.clone(),
            state_json: serde_json::to_string(&st).expect("state serialises"),
        };
        rundir::save_checkpoint_flat(dir, layout, &ck)
    };
    if !resume {
        // The checkpoint before the first step, then the config: a directory with a config
        // always has a checkpoint to resume from.
        checkpoint(
            &params,
            &opt,
            &out,
            &rng,
            loss_ema,
            lr,
            examples,
            &engine.model.layout,
        )?;
    }
    save_config(dir, cfg)?;
    let mut seqs: Vec<u8> = Vec::new();
    let evaluate = |engine: &mut CoupledAdditionEngine,
                    params: &[f32],
                    out: &mut Outcome,
                    lr: f64,
                    loss: f64,
                    examples: u64,
                    log: &mut dyn FnMut(&str)|
     -> Result<(), RunError> {
        let exact: Vec<(usize, f64)> = eval_sets
            .iter()
            .map(|(l, qs)| (*l, exact_rate(&super::eval::score(engine, params, qs))))
            .collect();
        let shown: Vec<String> = exact.iter().map(|(l, e)| format!("{l}:{:.3}", e)).collect();
        log(&format!(
            "step {:>6}  {:>7.1}s  lr {:.2e}  loss {:.4}  exact by length {}",
            out.steps,
            out.train_secs,
            lr,
            loss,
            shown.join(" ")
        ));
        out.history.push(EvalRecord {
            step: out.steps,
            examples,
            tokens: out.tokens,
            train_secs: out.train_secs,
            lr,
            loss,
            exact,
        });
        rundir::save_flat(dir, &engine.model.layout, params)?;
        write_atomic(
            &dir.join("history.csv"),
            history_csv(&out.history).as_bytes(),
        )
        .map_err(RunError::Write)?;
        write_atomic(
            &dir.join("history.json"),
            serde_json::to_string_pretty(&out.history)
                .expect("history serialises")
                .as_bytes(),
        )
        .map_err(RunError::Write)
    };
    loop {
        let progress = if t.steps > 0 {
            out.steps as f64 / t.steps as f64
        } else {
            out.train_secs / t.max_seconds.unwrap_or(1.0)
        };
        let time_up = t.max_seconds.is_some_and(|s| out.train_secs >= s);
        if (t.steps > 0 && out.steps >= t.steps) || time_up {
            break;
        }
        let stop = interrupted.load(Ordering::SeqCst);
        // (A run resumed from the checkpoint of an evaluation does not repeat it.)
        let evaluated = out.history.last().is_some_and(|r| r.step == out.steps);
        let eval_now = out.steps.is_multiple_of(t.eval_every) && out.steps > 0 && !evaluated;
        if eval_now && !stop {
            evaluate(
                &mut engine,
                &params,
                &mut out,
                lr,
                loss_ema.unwrap_or(f64::NAN),
                examples,
                log,
            )?;
        }
        if stop || eval_now {
            out.interrupted = stop;
            checkpoint(
                &params,
                &opt,
                &out,
                &rng,
                loss_ema,
                lr,
                examples,
                &engine.model.layout,
            )?;
        }
        if stop {
            log(&format!(
                "interrupted after step {}: checkpoint written; go on with `seqcalc train --resume {}`",
                out.steps,
                dir.display()
            ));
            break;
        }
        let t0 = Instant::now();
        lr = warmup_cosine(progress, t.lr, t.warmup, t.min_lr_fraction);
        let (l, mut qs) = sample_bucket(&mut rng, t.min_digits, t.max_digits, t.batch_size);
        let l = pad_further(&mut rng, l, &mut qs, t.pad_fraction, t.pad_to_digits);
        seqs.clear();
        for q in &qs {
            seqs.extend(format::tokens(q, &q.sum()));
        }
        let st = engine.train_step(&params, l, qs.len(), &seqs);
        if opt.step(&mut params, &engine.grad, lr, &decay).is_err() {
            out.skipped_steps += 1;
            if out.skipped_steps > 20 {
                return Err(RunError::Config(
                    "training diverged: more than 20 steps with non-finite gradients; lower the learning rate".into(),
                ));
            }
        }
        let loss = st.loss_sum / st.tokens.max(1) as f64;
        loss_ema = Some(match loss_ema {
            None => loss,
            Some(e) => 0.98 * e + 0.02 * loss,
        });
        out.steps += 1;
        examples += qs.len() as u64;
        out.tokens += (qs.len() * (3 * l + 4)) as u64;
        out.train_secs += t0.elapsed().as_secs_f64();
    }
    evaluate(
        &mut engine,
        &params,
        &mut out,
        lr,
        loss_ema.unwrap_or(f64::NAN),
        examples,
        log,
    )?;
    Ok((engine, params, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lengthgen::eval::score;

    fn tiny(steps: usize, threads: usize) -> LengthGenRunConfig {
        let mut c = super::super::experiment_config(true);
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
            let (_, p, out) = train(
                &tiny(12, threads),
                dir.path(),
                rundir::Open::New,
                &stop,
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(out.steps, 12);
            let saved = rundir::load_flat(
                dir.path(),
                &super::super::load_run(dir.path()).unwrap().model.layout,
            )
            .unwrap();
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
            train(&cfg, straight.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
        // Interrupt when the evaluation at step 4 reports (the step after it still runs).
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (_, _, first) = train(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
            if l.starts_with("step") {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
        assert!(first.interrupted && first.steps == 5, "{first:?}");
        let stop = AtomicBool::new(false);
        let mut lines = Vec::new();
        let (_, got, rest) = train(&cfg, dir.path(), rundir::Open::Resume, &stop, &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert!(
            lines.iter().any(|l| l == "resumed after step 5"),
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
        let (mut engine, p, out) = train(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
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
            train(&cfg, dir.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(98);
        for len in [3, 30] {
            let qs = random_questions(&mut rng, len, 100);
            let rate = exact_rate(&score(&mut engine, &p, &qs));
            eprintln!("windowed: {len} digits {rate} ({:.1} s)", out.train_secs);
            assert!(rate >= 0.9, "{len} digits (trained on 1..5): {rate}");
        }
    }
}
