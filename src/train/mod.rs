//! The training loops. Here: the epoch loop of seq2seq runs: epochs of shuffled batches,
//! validation, early stopping, checkpoints and resume. It reports through [`Event`]s and knows nothing of terminals or which task it trains.
//!
//! Resume is exact: the epoch order is a pure function of (seed, epoch), the checkpoint holds
//! weights, Adam moments and the loop state, so a resumed run ends with the same bits as an
//! uninterrupted one.
//!
//! [`steps`]: the step loop of the runs trained on fresh batches ([`step_nets`]: the networks
//! it trains).

pub mod step_nets;
pub mod steps;

use crate::codec::Codec;
use crate::config::ExperimentConfig;
use crate::data::{build_split, epoch_order, Dataset};
use crate::history::{EpochRecord, History};
use crate::model::{Network, Seq2Seq, Seq2SeqEngine, SliceStats};
use crate::optim::Adam;
use crate::report::Sample;
use crate::rundir::{self, Checkpoint, RunError};
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

/// The loop's state, saved in every checkpoint.
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
    /// The run was interrupted and checkpointed mid-epoch.
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

/// How often the curves are redrawn during a run (and always when it returns).
const PLOT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The run's curves (`curves.svg`, `curves.png`). Drawing both took about 25 ms, 2% of a 1.4 s
/// epoch, so they are drawn after the first epoch, then at most every [`PLOT_EVERY`], and
/// whenever the run returns (stopped, finished, interrupted or failed).
struct Curves {
    title: String,
    /// Epochs in the last drawing, and when it was made.
    drawn: usize,
    at: Option<Instant>,
}

impl Curves {
    /// Draws the history if it has epochs not drawn yet and `force` is set or [`PLOT_EVERY`] has
    /// passed since the last drawing.
    fn update(&mut self, dir: &Path, history: &History, force: bool) {
        let due = force || self.at.is_none_or(|t| t.elapsed() >= PLOT_EVERY);
        if history.records.len() == self.drawn || !due {
            return;
        }
        self.drawn = history.records.len();
        self.at = Some(Instant::now());
        if let Err(e) = crate::report::plot_curves(
            history,
            &self.title,
            &dir.join("curves.svg"),
            &dir.join("curves.png"),
        ) {
            eprintln!("warning: could not draw curves: {e:#}");
        }
    }
}

/// Trains `cfg` into `dir`. With `resume`, continues from `dir`'s checkpoint using the config
/// saved there (`cfg` is ignored except for `train.threads` when set on the command line).
///
/// When `interrupt` becomes true (the CLI sets it on Ctrl-C), the loop finishes the current
/// batch, writes a mid-epoch checkpoint and returns with `Outcome::interrupted` set; resuming
/// continues from the next batch with the same bits as an uninterrupted run.
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
    let _lock = rundir::open_run(dir, open)?;
    // The hash the checkpoint must carry: its config's as stored, before `--epochs` moves it.
    let mut stored_hash = None;
    if resume {
        // The stored config, with the caller's epoch bound (`--epochs` extends a resumed run)
        // and thread count.
        let (epochs, threads) = (cfg.train.epochs, cfg.train.threads);
        cfg = rundir::load_config(dir)?;
        stored_hash = Some(config_hash(&cfg));
        cfg.train.epochs = epochs;
        if threads != 0 {
            cfg.train.threads = threads;
        }
    }
    let (codec, model) = cfg.build().map_err(|e| TrainError::Config(e.to_string()))?;
    let (mut train, val) = build_split(&cfg.task, &codec, &cfg.data, cfg.seed)?;
    if train.n == 0 || val.n == 0 {
        return Err(TrainError::Config(format!(
            "data.size {} leaves {} training and {} validation questions; both must be non-empty",
            cfg.data.size, train.n, val.n
        )));
    }
    let threads = cfg.threads();
    let mut params: Vec<f32> = Vec::new();
    let mut adam = Adam::new(cfg.optim.clone(), model.param_count());
    let mut state = LoopState {
        config_hash: Some(config_hash(&cfg)),
        data_hash: Some(data_hash(&train, &val)),
        ..LoopState::default()
    };
    if resume {
        let ck = rundir::load_checkpoint_required(dir, &model)?;
        let path = dir.join(rundir::CHECKPOINT_DIR).join(rundir::CHECKPOINT);
        let saved: LoopState =
            serde_json::from_str(&ck.state_json).map_err(|e| RunError::File {
                path: path.clone(),
                msg: format!("bad training state: {e}"),
            })?;
        // Checkpoints written before the hashes existed carry none: nothing to compare.
        for (what, have, want) in [
            ("configuration", &saved.config_hash, &stored_hash),
            ("training data", &saved.data_hash, &state.data_hash),
        ] {
            if have.is_some() && have != want {
                return Err(RunError::File {
                    path: path.clone(),
                    msg: format!("belongs to another run: its {what} hash differs from this run directory's config.json; restore the run's own checkpoint, or start over with --restart"),
                }
                .into());
            }
        }
        state = LoopState {
            config_hash: state.config_hash,
            data_hash: state.data_hash,
            ..saved
        };
        params = ck.params;
        adam.m = ck.adam_m;
        adam.v = ck.adam_v;
        adam.t = state.adam_t;
        if let Some(lr) = state.lr {
            adam.cfg.lr = lr;
        }
    }
    // Told before the first weights exist: a big model takes seconds to initialise and save.
    events(Event::Start {
        cfg: &cfg,
        model: &model,
        codec: &codec,
        train: &train,
        val: &val,
        threads,
        resumed_at: resume.then_some(state.epochs_done),
    });
    if !resume {
        params = model.init_params(cfg.seed);
        // The checkpoint before the first step, then the config: a directory with a config
        // always has a checkpoint to resume from, even when killed before the first epoch ends.
        save_checkpoint(dir, &model, &params, &adam, &state)?;
    }
    rundir::save_config(dir, &cfg)?;
    let mut engine: Seq2SeqEngine<f32> = Seq2SeqEngine::new(model, threads);
    if let Some(reason) = &state.stopped {
        events(Event::Stop { reason });
        return Ok(Outcome {
            dir: dir.to_path_buf(),
            state,
            interrupted: false,
        });
    }

    let (t_in, t_out) = (codec.input_len(), codec.output_len());
    let bs = cfg.train.batch_size;
    let mut xb = vec![0u8; bs * t_in];
    let mut yb = vec![0u8; bs * t_out];
    let started = Instant::now();
    let elapsed_before = state.history.records.last().map_or(0.0, |r| r.elapsed_secs);
    let epochs = cfg.train.epochs;
    let kind = match &engine.model.net {
        Network::Transformer(tr) => format!(
            "transformer, {} blocks of width {}",
            tr.cfg.layers, tr.cfg.dim
        ),
        Network::Recurrent(_) => engine.model.cfg.cell.keras_name().to_string(),
    };
    let mut curves = Curves {
        title: format!("{} ({kind})", cfg.name),
        drawn: 0,
        at: None,
    };
    while state.epochs_done < epochs {
        let epoch = state.epochs_done; // 0-based
        let t0 = Instant::now();
        events(Event::EpochStart {
            epoch: epoch + 1,
            epochs,
            examples: train.n,
        });
        if cfg.data.fresh_per_epoch && epoch > 0 {
            // A new training set each epoch, a pure function of (seed, epoch) so resume is exact.
            let seed =
                cfg.seed ^ 0xF4E5_0000_0000 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let problems = crate::task::generate(&cfg.task, train.n, seed)
                .map_err(crate::data::DataError::from)?;
            train = Dataset::encode(problems, &codec)?;
        }
        let order = epoch_order(train.n, cfg.seed, epoch);
        let mut sums = std::mem::take(&mut state.partial);
        let skip = std::mem::take(&mut state.batches_done);
        for (bi, rows) in order.chunks(bs).enumerate().skip(skip) {
            let n = rows.len();
            train.gather(rows, &mut xb[..n * t_in], &mut yb[..n * t_out]);
            // The schedule is a function of the position in the run, so a resumed run follows it.
            let batches = order.len().div_ceil(bs);
            let progress = (epoch * batches + bi) as f64 / (epochs * batches).max(1) as f64;
            adam.lr_factor = cfg.optim.schedule_factor(progress);
            let (x, y) = (&xb[..n * t_in], &yb[..n * t_out]);
            // A NaN or infinite loss or gradient stops the run; nothing is saved after it, so the
            // last checkpoint stays the last good state.
            let st = match engine.train_step_adam(&mut params, x, y, n, &mut adam) {
                Ok(st) if st.loss_sum.is_finite() => st,
                Ok(st) | Err(st) => {
                    curves.update(dir, &state.history, true);
                    return Err(TrainError::NonFinite {
                        epoch: epoch + 1,
                        batch: bi + 1,
                        loss: st.mean_loss(),
                    });
                }
            };
            sums.add(&st);
            events(Event::Progress { done: sums.rows });
            if interrupt.load(Ordering::SeqCst) && bi + 1 < order.len().div_ceil(bs) {
                state.batches_done = bi + 1;
                state.partial = sums;
                state.adam_t = adam.t;
                save_checkpoint(dir, &engine.model, &params, &adam, &state)?;
                curves.update(dir, &state.history, true);
                return Ok(Outcome {
                    dir: dir.to_path_buf(),
                    state,
                    interrupted: true,
                });
            }
        }
        let train_secs = t0.elapsed().as_secs_f64();
        let v = evaluate_dataset(&mut engine, &params, &val);
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: sums.mean_loss(),
            train_char_acc: sums.char_accuracy(),
            val_loss: v.mean_loss(),
            val_char_acc: v.char_accuracy(),
            val_exact: v.exact as f64 / v.rows as f64,
            train_secs,
            epoch_secs: t0.elapsed().as_secs_f64(),
            elapsed_secs: elapsed_before + started.elapsed().as_secs_f64(),
        };
        // Early stopping (Keras semantics) and best-weights keeping, on validation loss.
        let improved = state
            .best_val_loss
            .is_none_or(|b| record.val_loss < b - cfg.train.min_delta);
        if improved {
            state.best_val_loss = Some(record.val_loss);
            state.best_epoch = epoch + 1;
            state.wait = 0;
            rundir::save_weights(dir, &engine.model, &params)?;
        } else {
            state.wait += 1;
            let p = cfg.train.reduce_lr_patience;
            if p > 0 && state.wait.is_multiple_of(p) {
                adam.cfg.lr *= cfg.train.reduce_lr_factor;
                state.lr = Some(adam.cfg.lr);
            }
        }
        state.epochs_done = epoch + 1;
        state.adam_t = adam.t;
        state.history.records.push(record.clone());
        let p = cfg.train.patience;
        if p > 0 && state.wait >= p {
            state.stopped = Some(format!("early stopping: validation loss did not improve by {} for {p} epochs; kept the weights of epoch {}", cfg.train.min_delta, state.best_epoch));
        }
        if let Some(target) = cfg.train.stop_at_exact {
            if record.val_exact >= target {
                if !improved {
                    // Keep the weights that reached the target.
                    rundir::save_weights(dir, &engine.model, &params)?;
                    state.best_epoch = epoch + 1;
                }
                state.stopped = Some(format!(
                    "validation exact match {:.4} reached the target {target}",
                    record.val_exact
                ));
            }
        }
        if state.stopped.is_none() && state.epochs_done == epochs {
            state.stopped = Some(format!(
                "finished {epochs} epochs; kept the weights of epoch {} (best validation loss)",
                state.best_epoch
            ));
        }
        let samples = pick_samples(
            &mut engine,
            &params,
            &codec,
            &val,
            cfg.train.samples,
            cfg.seed,
            epoch,
        );
        events(Event::EpochEnd {
            record: &record,
            samples: &samples,
            improved,
        });
        // Checkpoint last: a kill before this line repeats the epoch on resume, bit for bit.
        state.history.save(dir).map_err(RunError::Write)?;
        // (The flag is read once: a Ctrl-C while drawing must not skip the drawing it ends with.)
        let interrupted = state.stopped.is_none() && interrupt.load(Ordering::SeqCst);
        curves.update(dir, &state.history, interrupted || state.stopped.is_some());
        save_checkpoint(dir, &engine.model, &params, &adam, &state)?;
        if interrupted {
            return Ok(Outcome {
                dir: dir.to_path_buf(),
                state,
                interrupted: true,
            });
        }
        if let Some(reason) = &state.stopped {
            events(Event::Stop { reason });
            break;
        }
    }
    Ok(Outcome {
        dir: dir.to_path_buf(),
        state,
        interrupted: false,
    })
}

/// Writes weights, Adam moments and the loop state as the run's checkpoint.
fn save_checkpoint(
    dir: &Path,
    model: &Seq2Seq,
    params: &[f32],
    adam: &Adam,
    state: &LoopState,
) -> Result<(), RunError> {
    let ck = Checkpoint {
        params: params.to_vec(),
        adam_m: adam.m.clone(),
        adam_v: adam.v.clone(),
        state_json: serde_json::to_string(state).expect("state serialises"),
    };
    rundir::save_checkpoint(dir, model, &ck)
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
