//! Seq2seq runs as the loop trains them: epochs of shuffled batches of a fixed training set
//! (or one drawn fresh each epoch), Adam with the config's schedule, validation after every
//! epoch with early stopping, best-weights keeping and learning-rate reduction.
//!
//! The epoch order and any fresh training set are pure functions of (seed, epoch), so a
//! checkpoint at any batch resumes to the same bits.

use super::driver::{Cadence, Position, Stepped, Trainee, Verdict};
use super::{config_hash, data_hash, evaluate_dataset, pick_samples, Event, LoopState, TrainError};
use crate::codec::Codec;
use crate::config::ExperimentConfig;
use crate::data::{build_split, epoch_order, Dataset};
use crate::history::{EpochRecord, History};
use crate::model::{Network, Seq2SeqEngine, SliceStats};
use crate::nn::params::ParamLayout;
use crate::optim::Adam;
use crate::rundir::{self, Checkpoint, RunError};
use std::path::Path;
use std::time::Instant;

/// A seq2seq run in training.
pub(super) struct Seq2seqTrainee<'e> {
    pub cfg: ExperimentConfig,
    codec: Codec,
    engine: Seq2SeqEngine<f32>,
    train: Dataset,
    val: Dataset,
    threads: usize,
    params: Vec<f32>,
    adam: Adam,
    /// The loop state as of the last epoch's end (its position fields are set when saved).
    pub state: LoopState,
    /// On resume, the hash the checkpoint must carry: the stored config's, before `--epochs`
    /// moved its bound.
    stored_hash: Option<String>,
    pub events: &'e mut dyn FnMut(Event),
    /// Batches per epoch.
    batches: usize,
    order: Vec<usize>,
    /// Sums over this epoch's batches so far.
    sums: SliceStats,
    xb: Vec<u8>,
    yb: Vec<u8>,
    epoch_started: Instant,
    started: Instant,
    /// Seconds of the run before this process took it up.
    elapsed_before: f64,
    title: String,
}

impl<'e> Seq2seqTrainee<'e> {
    /// The run of `cfg` (with `resume`, the config stored in `dir`, taking `cfg`'s epoch bound
    /// and thread count), its data and its model, before any parameters exist.
    pub fn new(
        mut cfg: ExperimentConfig,
        dir: &Path,
        resume: bool,
        events: &'e mut dyn FnMut(Event),
    ) -> Result<Self, TrainError> {
        let mut stored_hash = None;
        if resume {
            // `--epochs` extends a resumed run.
            let (epochs, threads) = (cfg.train.epochs, cfg.train.threads);
            cfg = rundir::load_config(dir)?;
            stored_hash = Some(config_hash(&cfg));
            cfg.train.epochs = epochs;
            if threads != 0 {
                cfg.train.threads = threads;
            }
        }
        let (codec, model) = cfg.build().map_err(|e| TrainError::Config(e.to_string()))?;
        let (train, val) = build_split(&cfg.task, &codec, &cfg.data, cfg.seed)?;
        if train.n == 0 || val.n == 0 {
            return Err(TrainError::Config(format!(
                "data.size {} leaves {} training and {} validation questions; both must be non-empty",
                cfg.data.size, train.n, val.n
            )));
        }
        let threads = cfg.threads();
        let adam = Adam::new(cfg.optim.clone(), model.param_count());
        let state = LoopState {
            config_hash: Some(config_hash(&cfg)),
            data_hash: Some(data_hash(&train, &val)),
            ..LoopState::default()
        };
        let kind = match &model.net {
            Network::Transformer(tr) => format!(
                "transformer, {} blocks of width {}",
                tr.cfg.layers, tr.cfg.dim
            ),
            Network::Recurrent(_) => model.cfg.cell.keras_name().to_string(),
        };
        let bs = cfg.train.batch_size;
        Ok(Seq2seqTrainee {
            title: format!("{} ({kind})", cfg.name),
            batches: train.n.div_ceil(bs),
            xb: vec![0u8; bs * codec.input_len()],
            yb: vec![0u8; bs * codec.output_len()],
            engine: Seq2SeqEngine::new(model, threads),
            cfg,
            codec,
            train,
            val,
            threads,
            params: Vec::new(),
            adam,
            state,
            stored_hash,
            events,
            order: Vec::new(),
            sums: SliceStats::default(),
            epoch_started: Instant::now(),
            started: Instant::now(),
            elapsed_before: 0.0,
        })
    }

    /// The loop state with the position `pos` in it.
    pub fn state_at(&self, pos: &Position) -> LoopState {
        let mut s = self.state.clone();
        s.epochs_done = pos.step / self.batches;
        s.batches_done = pos.step % self.batches;
        s.partial = if s.batches_done > 0 {
            self.sums
        } else {
            SliceStats::default()
        };
        s.adam_t = self.adam.t;
        s
    }
}

impl Trainee for Seq2seqTrainee<'_> {
    fn cadence(&self) -> Cadence {
        Cadence {
            period: self.batches,
            steps: self.cfg.train.epochs * self.batches,
            max_seconds: None,
            nan_skips: 0,
            checkpoints: true,
        }
    }

    fn layout(&self) -> &ParamLayout {
        &self.engine.model.layout
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn moments(&self) -> (&[f32], &[f32]) {
        (&self.adam.m, &self.adam.v)
    }

    fn state_json(&self, pos: &Position) -> String {
        serde_json::to_string(&self.state_at(pos)).expect("state serialises")
    }

    fn restore(&mut self, ck: Checkpoint, path: &Path) -> Result<Position, TrainError> {
        let saved: LoopState =
            serde_json::from_str(&ck.state_json).map_err(|e| RunError::File {
                path: path.to_path_buf(),
                msg: format!("bad training state: {e}"),
            })?;
        // Checkpoints written before the hashes existed carry none: nothing to compare.
        for (what, have, want) in [
            (
                "configuration",
                &saved.config_hash,
                self.stored_hash
                    .as_ref()
                    .or(self.state.config_hash.as_ref()),
            ),
            (
                "training data",
                &saved.data_hash,
                self.state.data_hash.as_ref(),
            ),
        ] {
            if have.is_some() && have.as_ref() != want {
                return Err(RunError::File {
                    path: path.to_path_buf(),
                    msg: format!("belongs to another run: its {what} hash differs from this run directory's config.json; restore the run's own checkpoint, or start over with --restart"),
                }
                .into());
            }
        }
        self.state = LoopState {
            config_hash: self.state.config_hash.take(),
            data_hash: self.state.data_hash.take(),
            ..saved
        };
        self.params = ck.params;
        self.adam.m = ck.adam_m;
        self.adam.v = ck.adam_v;
        self.adam.t = self.state.adam_t;
        if let Some(lr) = self.state.lr {
            self.adam.cfg.lr = lr;
        }
        // Ended at its epoch bound, resumed with a higher one (`train --resume --epochs`):
        // train on. Checkpoints older than the flag say so in their reason.
        let at_bound = self.state.at_epoch_bound
            || self.state.stopped.as_deref().is_some_and(|s| {
                s == format!(
                    "finished {} epochs; kept the weights of epoch {} (best validation loss)",
                    self.state.epochs_done, self.state.best_epoch
                )
            });
        if at_bound && self.state.epochs_done < self.cfg.train.epochs {
            self.state.stopped = None;
            self.state.at_epoch_bound = false;
        }
        self.sums = std::mem::take(&mut self.state.partial);
        self.elapsed_before = self
            .state
            .history
            .records
            .last()
            .map_or(0.0, |r| r.elapsed_secs);
        Ok(Position {
            step: self.state.epochs_done * self.batches + self.state.batches_done,
            ..Position::default()
        })
    }

    fn ready(&mut self, resumed: Option<&Position>) {
        // Told before the first weights exist: a big model takes seconds to initialise.
        (self.events)(Event::Start {
            cfg: &self.cfg,
            model: &self.engine.model,
            codec: &self.codec,
            train: &self.train,
            val: &self.val,
            threads: self.threads,
            resumed_at: resumed.map(|_| self.state.epochs_done),
        });
        if resumed.is_none() {
            self.params = self.engine.model.init_params(self.cfg.seed);
        }
    }

    fn save_config(&self, dir: &Path) -> Result<(), RunError> {
        rundir::save_config(dir, &self.cfg)
    }

    fn ended(&self) -> Option<String> {
        self.state.stopped.clone()
    }

    fn begin_period(&mut self, pos: &Position) -> Result<(), TrainError> {
        let epoch = pos.step / self.batches;
        self.epoch_started = Instant::now();
        (self.events)(Event::EpochStart {
            epoch: epoch + 1,
            epochs: self.cfg.train.epochs,
            examples: self.train.n,
        });
        if self.cfg.data.fresh_per_epoch && epoch > 0 {
            // A new training set each epoch, a pure function of (seed, epoch).
            let seed = self.cfg.seed
                ^ 0xF4E5_0000_0000
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let problems = crate::task::generate(&self.cfg.task, self.train.n, seed)
                .map_err(crate::data::DataError::from)?;
            self.train = Dataset::encode(problems, &self.codec)?;
        }
        self.order = epoch_order(self.train.n, self.cfg.seed, epoch);
        if pos.step.is_multiple_of(self.batches) {
            self.sums = SliceStats::default();
        }
        Ok(())
    }

    fn step(&mut self, pos: &Position, progress: f64) -> Result<Stepped, TrainError> {
        let bs = self.cfg.train.batch_size;
        let bi = pos.step % self.batches;
        let rows = &self.order[bi * bs..((bi + 1) * bs).min(self.order.len())];
        let n = rows.len();
        let (t_in, t_out) = (self.codec.input_len(), self.codec.output_len());
        let (x, y) = (&mut self.xb[..n * t_in], &mut self.yb[..n * t_out]);
        self.train.gather(rows, x, y);
        self.adam.lr_factor = self.cfg.optim.schedule_factor(progress);
        match self
            .engine
            .train_step_adam(&mut self.params, x, y, n, &mut self.adam)
        {
            Ok(st) if st.loss_sum.is_finite() => {
                self.sums.add(&st);
                (self.events)(Event::Progress {
                    done: self.sums.rows,
                });
                Ok(Stepped {
                    loss: st.mean_loss(),
                    finite: true,
                })
            }
            Ok(st) | Err(st) => Ok(Stepped {
                loss: st.mean_loss(),
                finite: false,
            }),
        }
    }

    fn end_period(&mut self, pos: &Position) -> Result<Verdict, TrainError> {
        let epoch = pos.step / self.batches - 1; // 0-based
        let train_secs = self.epoch_started.elapsed().as_secs_f64();
        let v = evaluate_dataset(&mut self.engine, &self.params, &self.val);
        let sums = std::mem::take(&mut self.sums);
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: sums.mean_loss(),
            train_char_acc: sums.char_accuracy(),
            val_loss: v.mean_loss(),
            val_char_acc: v.char_accuracy(),
            val_exact: v.exact as f64 / v.rows as f64,
            train_secs,
            epoch_secs: self.epoch_started.elapsed().as_secs_f64(),
            elapsed_secs: self.elapsed_before + self.started.elapsed().as_secs_f64(),
            lr: Some(self.adam.cfg.lr * self.adam.lr_factor),
        };
        let t = &self.cfg.train;
        let state = &mut self.state;
        // Early stopping (Keras semantics) and best-weights keeping, on validation loss.
        let improved = state
            .best_val_loss
            .is_none_or(|b| record.val_loss < b - t.min_delta);
        let mut keep_weights = improved;
        if improved {
            state.best_val_loss = Some(record.val_loss);
            state.best_epoch = epoch + 1;
            state.wait = 0;
        } else {
            state.wait += 1;
            let p = t.reduce_lr_patience;
            if p > 0 && state.wait.is_multiple_of(p) {
                self.adam.cfg.lr *= t.reduce_lr_factor;
                state.lr = Some(self.adam.cfg.lr);
            }
        }
        state.epochs_done = epoch + 1;
        state.adam_t = self.adam.t;
        state.history.records.push(record.clone());
        let p = t.patience;
        if p > 0 && state.wait >= p {
            state.stopped = Some(format!("early stopping: validation loss did not improve by {} for {p} epochs; kept the weights of epoch {}", t.min_delta, state.best_epoch));
        }
        if let Some(target) = t.stop_at_exact {
            if record.val_exact >= target {
                if !improved {
                    // Keep the weights that reached the target.
                    keep_weights = true;
                    state.best_epoch = epoch + 1;
                }
                state.stopped = Some(format!(
                    "validation exact match {:.4} reached the target {target}",
                    record.val_exact
                ));
            }
        }
        if state.stopped.is_none() && state.epochs_done == t.epochs {
            state.at_epoch_bound = true;
            state.stopped = Some(format!(
                "finished {} epochs; kept the weights of epoch {} (best validation loss)",
                t.epochs, state.best_epoch
            ));
        }
        let samples = pick_samples(
            &mut self.engine,
            &self.params,
            &self.codec,
            &self.val,
            t.samples,
            self.cfg.seed,
            epoch,
        );
        (self.events)(Event::EpochEnd {
            record: &record,
            samples: &samples,
            improved,
        });
        Ok(Verdict {
            keep_weights,
            stop: self.state.stopped.clone(),
        })
    }

    fn history_files(&self) -> (String, String) {
        (self.state.history.to_csv(), self.state.history.to_json())
    }

    fn curves(&self) -> (History, String, [&'static str; 3]) {
        (
            self.state.history.clone(),
            self.title.clone(),
            crate::report::CURVE_LABELS,
        )
    }
}
