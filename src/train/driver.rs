//! The training loop every run kind goes through. A [`Trainee`] supplies what differs between
//! kinds (how a batch is drawn and a step taken, how an evaluation scores, what its state and
//! history hold); [`drive`] owns the rest: the run directory's lock, the cadence (a run is a
//! sequence of steps grouped into periods, each ending in an evaluation), the schedule's
//! progress, the NaN stop, Ctrl-C, checkpoints and their restore, weights, history files and
//! curves.
//!
//! Resume is exact: a checkpoint holds the weights, the optimiser's moments and the trainee's
//! state at a step, and everything a step draws is a pure function of that state, so a run
//! interrupted at any step and resumed ends with the same bits as one never stopped.

use super::TrainError;
use crate::fsutil::write_atomic;
use crate::history::History;
use crate::nn::params::ParamLayout;
use crate::rundir::{self, Checkpoint, RunError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How a run's steps group into periods, and when the run ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    /// Steps per period (an epoch's batches, or the steps between evaluations).
    pub period: usize,
    /// Steps in the whole run (the schedule spans them); 0: bounded by `max_seconds` alone.
    pub steps: usize,
    /// Stop once this many seconds were spent in steps (the last step ends a period).
    pub max_seconds: Option<f64>,
    /// Steps with a non-finite loss or gradient that are skipped before the run stops; with 0
    /// the first one stops it.
    pub nan_skips: usize,
    /// The run keeps a checkpoint (and so can be interrupted and resumed). A run without one
    /// trains to its end whatever the interrupt flag says.
    pub checkpoints: bool,
}

/// Where a run is: the loop's own state, saved in every checkpoint by the trainee.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    /// Steps taken.
    pub step: usize,
    /// Seconds spent in steps.
    pub train_secs: f64,
    /// Steps skipped because their loss or gradient was not finite.
    pub skipped: usize,
}

impl Position {
    /// The 0-based period the next step belongs to.
    pub fn period(&self, c: &Cadence) -> usize {
        self.step / c.period
    }

    /// Steps of the current period already taken.
    pub fn in_period(&self, c: &Cadence) -> usize {
        self.step % c.period
    }
}

/// What a step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stepped {
    /// Mean loss of the step.
    pub loss: f64,
    /// The loss and gradient were finite (and the update applied).
    pub finite: bool,
}

/// What an evaluation decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Write the current weights as the run's weights.
    pub keep_weights: bool,
    /// End the run, for this reason.
    pub stop: Option<String>,
}

/// How a call to [`drive`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    pub pos: Position,
    /// Interrupted: a checkpoint was written at `pos` and a resume goes on from there.
    pub interrupted: bool,
    /// Why the run ended, when the trainee ended it (also for a finished run resumed).
    pub stopped: Option<String>,
}

/// A run kind, as the loop sees it.
pub trait Trainee {
    fn cadence(&self) -> Cadence;
    /// The parameter layout of the weights and checkpoint files.
    fn layout(&self) -> &ParamLayout;
    fn params(&self) -> &[f32];
    /// The optimiser's first and second moments.
    fn moments(&self) -> (&[f32], &[f32]);
    /// The trainee's state at `pos` (with `pos` itself), for the checkpoint.
    fn state_json(&self, pos: &Position) -> String;
    /// Takes the run's state from its checkpoint (read from `path`) and says where it was.
    fn restore(&mut self, ck: Checkpoint, path: &Path) -> Result<Position, TrainError>;
    /// Once the state is there (fresh, or `resumed` from a checkpoint), before any file is
    /// written: a fresh run makes its first parameters here.
    fn ready(&mut self, resumed: Option<&Position>);
    /// Writes the run's config.json.
    fn save_config(&self, dir: &Path) -> Result<(), RunError>;
    /// Set when a resumed run had already ended: it then trains nothing.
    fn ended(&self) -> Option<String> {
        None
    }
    /// Whether the evaluation at the end of the period that `pos` closes is recorded (only a
    /// checkpoint written between a period's last step and its evaluation lacks it).
    fn evaluated(&self, _pos: &Position) -> bool {
        true
    }
    /// A period starts (or resumes at `pos`, part of it done).
    fn begin_period(&mut self, pos: &Position) -> Result<(), TrainError>;
    /// One optimiser step at schedule `progress` in [0, 1]; `pos` counts the steps before it.
    fn step(&mut self, pos: &Position, progress: f64) -> Result<Stepped, TrainError>;
    /// The period that `pos` closes is over: evaluate, record, decide.
    fn end_period(&mut self, pos: &Position) -> Result<Verdict, TrainError>;
    /// history.csv and history.json as text.
    fn history_files(&self) -> (String, String);
    /// The history as the curves draw it, the curves' title and their accuracy lines' names.
    fn curves(&self) -> (History, String, [&'static str; 3]);
}

/// How often the curves are redrawn during a run (and always when it returns).
const PLOT_EVERY: Duration = Duration::from_secs(10);

/// The run's curves (`curves.svg`, `curves.png`). Drawing both takes about 25 ms, so they are
/// drawn after the first evaluation, then at most every [`PLOT_EVERY`], and whenever the run
/// returns (stopped, finished, interrupted or failed).
#[derive(Default)]
struct Curves {
    /// Records in the last drawing, and when it was made.
    drawn: usize,
    at: Option<Instant>,
}

impl Curves {
    fn update<T: Trainee>(&mut self, dir: &Path, t: &T, force: bool) {
        let (history, title, labels) = t.curves();
        let due = force || self.at.is_none_or(|t| t.elapsed() >= PLOT_EVERY);
        if history.records.len() == self.drawn || !due {
            return;
        }
        self.drawn = history.records.len();
        self.at = Some(Instant::now());
        if let Err(e) = crate::report::plot_curves_labelled(
            &history,
            &title,
            labels,
            &dir.join("curves.svg"),
            &dir.join("curves.png"),
        ) {
            eprintln!("warning: could not draw curves: {e:#}");
        }
    }
}

fn checkpoint<T: Trainee>(dir: &Path, t: &T, pos: &Position) -> Result<(), RunError> {
    let (m, v) = t.moments();
    let ck = Checkpoint {
        params: t.params().to_vec(),
        adam_m: m.to_vec(),
        adam_v: v.to_vec(),
        state_json: t.state_json(pos),
    };
    rundir::save_checkpoint(dir, t.layout(), &ck)
}

/// Evaluation, weights, history, curves and checkpoint at the end of a period.
fn close_period<T: Trainee>(
    dir: &Path,
    t: &mut T,
    pos: &Position,
    curves: &mut Curves,
    checkpoints: bool,
) -> Result<Option<String>, TrainError> {
    let verdict = t.end_period(pos)?;
    if verdict.keep_weights {
        rundir::save_flat(dir, t.layout(), t.params())?;
    }
    let (csv, json) = t.history_files();
    write_atomic(&dir.join("history.csv"), csv.as_bytes()).map_err(RunError::Write)?;
    write_atomic(&dir.join("history.json"), json.as_bytes()).map_err(RunError::Write)?;
    curves.update(dir, t, verdict.stop.is_some());
    // Checkpoint last: a kill before this line repeats the period's end on resume, bit for bit.
    if checkpoints {
        checkpoint(dir, t, pos)?;
    }
    Ok(verdict.stop)
}

/// Trains the trainee that `make` builds into `dir`. `make` runs once the directory is opened
/// (`open`) and locked, so a resume can read the run's own config; with `Open::Resume` the
/// trainee's state then comes from the checkpoint. A fresh run writes its first checkpoint
/// before its config: a directory with a config always has a checkpoint to resume from.
///
/// When `interrupt` becomes true (Ctrl-C), the loop finishes the current step, writes a
/// checkpoint and returns with [`Finish::interrupted`] set. Returns the trainee with how the run
/// ended.
pub fn drive<T: Trainee>(
    dir: &Path,
    open: rundir::Open,
    interrupt: &AtomicBool,
    make: impl FnOnce() -> Result<T, TrainError>,
) -> Result<(T, Finish), TrainError> {
    let resume = open == rundir::Open::Resume;
    let _lock = rundir::open_run(dir, open)?;
    let mut t = make()?;
    let c = t.cadence();
    assert!(c.period > 0, "a period of no steps");
    let mut pos = Position::default();
    if resume {
        let ck = rundir::load_checkpoint_required(dir, t.layout())?;
        pos = t.restore(
            ck,
            &dir.join(rundir::CHECKPOINT_DIR).join(rundir::CHECKPOINT),
        )?;
    }
    t.ready(resume.then_some(&pos));
    if !resume && c.checkpoints {
        checkpoint(dir, &t, &pos)?;
    }
    t.save_config(dir)?;
    let mut finish = Finish {
        pos: pos.clone(),
        interrupted: false,
        stopped: t.ended(),
    };
    if finish.stopped.is_some() {
        return Ok((t, finish));
    }
    let mut curves = Curves::default();
    let time_up = |p: &Position| c.max_seconds.is_some_and(|m| p.train_secs >= m);
    let done = |p: &Position| (c.steps > 0 && p.step >= c.steps) || time_up(p);
    // A checkpoint written between a period's last step and its evaluation: evaluate now.
    if pos.step > 0 && pos.in_period(&c) == 0 && !done(&pos) && !t.evaluated(&pos) {
        finish.stopped = close_period(dir, &mut t, &pos, &mut curves, c.checkpoints)?;
    }
    let mut begun = false;
    while finish.stopped.is_none() && !done(&pos) {
        if !begun || pos.in_period(&c) == 0 {
            t.begin_period(&pos)?;
            begun = true;
        }
        let progress = if c.steps > 0 {
            pos.step as f64 / c.steps as f64
        } else {
            pos.train_secs / c.max_seconds.unwrap_or(1.0)
        };
        let t0 = Instant::now();
        let s = t.step(&pos, progress)?;
        if !s.finite {
            pos.skipped += 1;
            if c.nan_skips == 0 {
                // Nothing is saved after it: the last checkpoint stays the last good state.
                curves.update(dir, &t, true);
                return Err(TrainError::NonFinite {
                    epoch: pos.period(&c) + 1,
                    batch: pos.in_period(&c) + 1,
                    loss: s.loss,
                });
            }
            if pos.skipped > c.nan_skips {
                curves.update(dir, &t, true);
                return Err(TrainError::Diverged(c.nan_skips));
            }
        }
        pos.step += 1;
        pos.train_secs += t0.elapsed().as_secs_f64();
        let closes = pos.in_period(&c) == 0 || done(&pos);
        if closes {
            finish.stopped = close_period(dir, &mut t, &pos, &mut curves, c.checkpoints)?;
        }
        // (The flag is read once: a Ctrl-C while drawing must not skip the drawing it ends with.)
        if finish.stopped.is_none()
            && !done(&pos)
            && c.checkpoints
            && interrupt.load(Ordering::SeqCst)
        {
            if !closes {
                checkpoint(dir, &t, &pos)?;
            }
            finish.interrupted = true;
            break;
        }
    }
    curves.update(dir, &t, true);
    finish.pos = pos;
    Ok((t, finish))
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
