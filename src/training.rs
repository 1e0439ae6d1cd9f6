//! Training a run of any kind: the one entry point every surface calls (`train`, `experiment`
//! and `serve` on the command line, the Python package). The config picks its kind's trainer;
//! the run directory gets its manifest when training returns, however it ended.

use crate::data::Dataset;
use crate::run::{self, Manifest, RunConfig, RunKind};
use crate::rundir::Open;
use crate::train::step_nets;
use crate::train::steps::Outcome;
use crate::train::{Event, TrainError};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// What a training run gave back, by kind.
#[allow(clippy::large_enum_variant)]
pub enum Trained {
    Seq2seq(crate::train::Outcome),
    CoupledTransformer {
        engine: crate::model::coupled::CoupledAdditionEngine,
        params: Vec<f32>,
        outcome: Outcome,
    },
    PairGru {
        engine: crate::model::pair_gru::PairGruEngine,
        params: Vec<f32>,
        outcome: Outcome,
    },
    Regression(crate::regression::MappingReport),
}

/// What a training tells an observer instead of printing it: a seq2seq run's events, or the
/// lines other kinds print.
pub enum Progress<'a, 'b> {
    Event(&'a Event<'b>),
    Line(&'a str),
}

/// An observer of a training (see [`Progress`]).
pub type Observer<'a> = &'a mut dyn FnMut(Progress<'_, '_>);

/// Where a training's lines go: the console, or an observer.
struct Say<'a>(Option<Observer<'a>>);

impl Say<'_> {
    fn line(&mut self, l: &str) {
        match &mut self.0 {
            Some(o) => o(Progress::Line(l)),
            None => println!("{l}"),
        }
    }
}

/// [`train`] with its own stop flag: the run checkpoints and returns once `interrupt` is set.
/// With an observer nothing is printed; the observer is told instead.
pub fn train_with(
    cfg: RunConfig,
    dir: &Path,
    open: Open,
    interrupt: &AtomicBool,
    observer: Option<Observer<'_>>,
) -> Result<Trained, TrainError> {
    let quiet = observer.is_some();
    let mut say = Say(observer);
    let kind = cfg.kind();
    // A regression run keeps no checkpoint (it takes seconds): resuming it trains it again from
    // the start, a pure function of its config, so it ends with the same weights as a run
    // never stopped.
    let open = if open == Open::Resume && kind == RunKind::Regression {
        say.line(&format!(
            "{}: regression runs keep no checkpoint; training it again from the start (same weights)",
            dir.display()
        ));
        Open::Restart
    } else {
        open
    };
    let resume = open == Open::Resume;
    let threads = match &cfg {
        RunConfig::Seq2seq(c) => c.threads(),
        RunConfig::CoupledTransformer(c) => {
            crate::parallel::threads_or_cores(c.lengthgen.train.threads)
        }
        RunConfig::PairGru(c) => crate::parallel::threads_or_cores(c.pair_gru.threads),
        RunConfig::Regression(_) => 1,
    };
    let mut manifest = Manifest::start(kind, threads, run::spec_hash(&cfg));
    // A resumed run that had already finished trains nothing, and leaves every file as it was.
    let records = || run::load_history(dir).map(|h| h.records.len()).ok();
    let before = if resume { records() } else { None };
    let finish = |manifest: &mut Manifest, interrupted: bool| -> Result<(), TrainError> {
        if dir.is_dir() && (before.is_none() || interrupted || before != records()) {
            manifest.finish(
                dir,
                if interrupted {
                    "interrupted"
                } else {
                    "finished"
                },
            )?;
        }
        Ok(())
    };
    let trained = match cfg {
        RunConfig::Seq2seq(c) => {
            let mut data_hash = None;
            let mut hash = |train: &Dataset, val: &Dataset| {
                let texts = train
                    .problems
                    .iter()
                    .chain(&val.problems)
                    .flat_map(|p| [p.question.as_bytes(), p.answer.as_bytes()]);
                data_hash = Some(run::fnv1a64(texts));
            };
            let outcome = match &mut say.0 {
                None => crate::console::run_training(c, dir, open, interrupt, &mut |t, v, _| {
                    hash(t, v)
                })?,
                Some(obs) => crate::train::run(c, dir, open, interrupt, &mut |ev| {
                    if let Event::Start { train, val, .. } = &ev {
                        hash(train, val);
                    }
                    obs(Progress::Event(&ev));
                })?,
            };
            if let Some(h) = data_hash {
                manifest.data_hash = format!("fnv1a64:{h:016x}");
            }
            let interrupted = outcome.interrupted;
            finish(&mut manifest, interrupted)?;
            return Ok(Trained::Seq2seq(outcome));
        }
        RunConfig::CoupledTransformer(c) => {
            let (engine, params, outcome) =
                step_nets::train_coupled(&c, dir, open, interrupt, &mut |l| say.line(l))?;
            report_steps(&outcome, dir, &mut say);
            Trained::CoupledTransformer {
                engine,
                params,
                outcome,
            }
        }
        RunConfig::PairGru(c) => {
            let (engine, params, outcome) =
                step_nets::train_pair_gru(&c, dir, open, interrupt, &mut |l| say.line(l))?;
            report_steps(&outcome, dir, &mut say);
            Trained::PairGru {
                engine,
                params,
                outcome,
            }
        }
        RunConfig::Regression(c) => {
            let rep = crate::regression::train(&c, dir, open, &mut |epoch, loss| {
                say.line(&format!("Epoch {epoch:>3}  mse {loss:.6}"))
            })?;
            let color = !quiet && crate::report::stdout_color();
            for (nums, want, got) in rep.pairs.iter().take(20) {
                let q: Vec<String> = nums.iter().map(|v| v.to_string()).collect();
                say.line(&format!(
                    "  {:<8} Expected={want:<4} Predicted={:<4} {}",
                    q.join("+"),
                    got.round(),
                    crate::report::mark(got.round() as u32 == *want, color)
                ));
            }
            say.line(&format!(
                "RMSE on {} new examples: {:.3}",
                rep.pairs.len(),
                rep.rmse
            ));
            Trained::Regression(rep)
        }
    };
    let interrupted = matches!(&trained,
        Trained::CoupledTransformer { outcome, .. } | Trained::PairGru { outcome, .. }
            if outcome.interrupted);
    finish(&mut manifest, interrupted)?;
    if !interrupted && kind != RunKind::Seq2seq {
        say.line(&format!(
            "Run directory: {0}\nNext: seqcalc eval --model {0}   |   seqcalc predict --model {0} QUESTION",
            dir.display()
        ));
    }
    Ok(trained)
}

/// What a run trained by steps did, and how to go on if it was interrupted.
fn report_steps(outcome: &Outcome, dir: &Path, say: &mut Say) {
    say.line(&format!(
        "trained {} steps in {:.1} s: {:.0} tokens/s{}",
        outcome.steps,
        outcome.train_secs,
        outcome.tokens_per_sec(),
        if outcome.skipped_steps > 0 {
            format!(
                " ({} steps skipped: non-finite gradient)",
                outcome.skipped_steps
            )
        } else {
            String::new()
        }
    ));
    if outcome.interrupted {
        let msg = format!(
            "Interrupted: checkpoint written after step {}.\nResume with: seqcalc train --resume {}",
            outcome.steps,
            dir.display()
        );
        match &mut say.0 {
            Some(_) => say.line(&msg),
            None => eprintln!("{msg}"),
        }
    }
}
