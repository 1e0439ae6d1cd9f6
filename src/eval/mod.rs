//! Honest evaluation: fresh questions the model never saw (the run's whole generated data set is
//! excluded), exact match, per-character accuracy, and breakdowns by operand lengths and by
//! carries (borrows for `-`).
//!
//! [`lengths`]: long additions scored by operand length, with carry-stress sets.

pub mod grids;
pub mod lengths;

use crate::data::Dataset;
use crate::model::Seq2SeqEngine;
use crate::rundir::LoadedRun;
use crate::task::{generate, generate_excluding, Problem, TaskConfig, TaskError};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Exact-match counts for one group of questions.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Group {
    pub key: String,
    pub n: usize,
    pub exact: usize,
    pub exact_match: f64,
}

/// The result of `seqcalc eval`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The task the questions were drawn from (the run's, or one with longer operands).
    pub task: TaskConfig,
    /// Whether `task` differs from the training task (e.g. longer operands).
    pub task_differs: bool,
    /// Whether every question of the task's domain was scored (`evaluate_exhaustive`), in its
    /// fixed order; then `seed` is unused and `failures` are the first wrong answers.
    pub exhaustive: bool,
    pub n: usize,
    /// Whether the run's own questions were excluded (unique tasks); tasks drawn with
    /// repetition are scored on new draws that may repeat training questions.
    pub excludes_seen: bool,
    pub seed: u64,
    /// Questions answered exactly right.
    pub exact: usize,
    pub exact_match: f64,
    pub char_accuracy: f64,
    pub by_operand_lengths: Vec<Group>,
    pub by_carries: Vec<Group>,
    /// By the length of the right answer in characters (a sign included).
    pub by_answer_length: Vec<Group>,
    /// Up to 10 questions answered wrong (with `exhaustive`, the first 10 in the domain's
    /// order): (question, expected, predicted).
    pub failures: Vec<(String, String, String)>,
    pub answers_per_sec: f64,
}

/// Errors from evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("asked for {n} fresh questions, but only {fresh} remain: the task has {distinct} distinct questions and the run's data set used {seen}; ask for --n {fresh} or fewer (none at all: every question was seen in training or validation)")]
    TooFewFresh {
        n: usize,
        fresh: u128,
        distinct: u128,
        seen: usize,
    },
    #[error("{0}")]
    DoesNotFit(String),
}

/// Scores `n` fresh questions drawn with `seed` from the run's task, excluding every question
/// of the run's generated data set (training and validation).
pub fn evaluate_fresh(
    run: &LoadedRun,
    n: usize,
    seed: u64,
    threads: usize,
) -> Result<EvalReport, EvalError> {
    evaluate_fresh_on(run, &run.cfg.task.clone(), n, seed, threads)
}

/// Like `evaluate_fresh`, but draws the questions from `task`: the run's task with other
/// operand lengths (`digits`, `min_digits`) or term counts, to test length generalisation.
/// Questions and answers must fit the model's widths and alphabet; the run's whole data set is
/// still excluded.
pub fn evaluate_fresh_on(
    run: &LoadedRun,
    task: &TaskConfig,
    n: usize,
    seed: u64,
    threads: usize,
) -> Result<EvalReport, EvalError> {
    let cfg = &run.cfg;
    task.validate()?;
    let differs = *task != cfg.task;
    if differs {
        check_fits(run, task)?;
    }
    let mut rep = if !cfg.task.unique {
        // A task drawn with repetition (Brownlee's 100 questions) has no unseen questions:
        // fresh here means newly drawn, as in the tutorial.
        let mut rep = score(run, generate(task, n, seed)?, seed, threads)?;
        rep.excludes_seen = false;
        rep
    } else {
        let seen: HashSet<String> = generate(&cfg.task, cfg.data.size, cfg.seed)?
            .into_iter()
            .map(|p| p.question)
            .collect();
        let problems = match generate_excluding(task, n, seed, &seen) {
            Err(TaskError::TooFew { available, .. }) => {
                return Err(EvalError::TooFewFresh {
                    n,
                    fresh: available,
                    distinct: task.distinct_questions(),
                    seen: seen.len(),
                })
            }
            other => other?,
        };
        score(run, problems, seed, threads)?
    };
    rep.task = task.clone();
    rep.task_differs = differs;
    Ok(rep)
}

/// Refuses an evaluation task whose questions or answers the model cannot read or write.
fn check_fits(run: &LoadedRun, task: &TaskConfig) -> Result<(), EvalError> {
    if task.kind != run.cfg.task.kind {
        return Err(EvalError::DoesNotFit(format!(
            "the model was trained on the {:?} task; evaluate it on the same kind",
            run.cfg.task.kind
        )));
    }
    let codec = &run.codec;
    let (q, a) = (
        task.max_question_len(),
        codec.output_steps(task.max_answer_len()),
    );
    if q > codec.input_len() {
        return Err(EvalError::DoesNotFit(format!(
            "questions of {} are up to {q} characters, but this model reads at most {}; train \
             with --input-len {q} (codec.input_len) to leave room for longer questions",
            task.describe(),
            codec.input_len()
        )));
    }
    if a > codec.output_len() {
        return Err(EvalError::DoesNotFit(format!(
            "answers of {} take up to {a} output steps (an end symbol included), but this model writes at most {}; train \
             with --output-len {a} (codec.output_len) to leave room for longer answers",
            task.describe(),
            codec.output_len()
        )));
    }
    if let Some(c) = task
        .alphabet()
        .chars()
        .find(|&c| codec.symbol_index(c).is_none())
    {
        return Err(EvalError::DoesNotFit(format!(
            "questions of {} use {c:?}, which this model does not know (`{}`)",
            task.describe(),
            codec.alphabet()
        )));
    }
    Ok(())
}

/// Scores given problems with the run's model.
pub fn score(
    run: &LoadedRun,
    problems: Vec<Problem>,
    seed: u64,
    threads: usize,
) -> Result<EvalReport, EvalError> {
    let mut engine: Seq2SeqEngine<f32> = Seq2SeqEngine::new(run.model.clone(), threads);
    let mut tally = Tally::default();
    tally.add(run, &mut engine, problems)?;
    Ok(tally.report(&run.cfg.task, seed, false))
}

/// The most symbols (questions times the model's input and output widths) an exhaustive
/// evaluation reads and writes: the whole 3-digit domain is 11 million.
pub const MAX_EXHAUSTIVE_SYMBOLS: u128 = 200_000_000;

/// Questions encoded and scored at a time by [`evaluate_exhaustive`].
const EXHAUSTIVE_CHUNK: usize = 1 << 17;

/// Scores every question of `task`'s domain (`task::exhaustive`): the run's task, or one with
/// other operand lengths or term counts that fits the model. Refuses a domain of more than
/// `task::exhaustive::MAX_DOMAIN` questions or [`MAX_EXHAUSTIVE_SYMBOLS`] symbols.
pub fn evaluate_exhaustive(
    run: &LoadedRun,
    task: &TaskConfig,
    threads: usize,
) -> Result<EvalReport, EvalError> {
    task.validate()?;
    let differs = *task != run.cfg.task;
    if differs {
        check_fits(run, task)?;
    }
    let domain = crate::task::exhaustive::enumerate(task)?;
    let width = (run.codec.input_len() + run.codec.output_len()) as u128;
    let symbols = domain.size() as u128 * width;
    if symbols > MAX_EXHAUSTIVE_SYMBOLS {
        return Err(EvalError::DoesNotFit(format!(
            "the whole domain of {} has {} questions of {width} symbols each ({symbols} in all), \
             more than the {MAX_EXHAUSTIVE_SYMBOLS} an exhaustive evaluation reads; score a \
             random sample instead (--n)",
            task.describe(),
            domain.size()
        )));
    }
    let mut engine: Seq2SeqEngine<f32> = Seq2SeqEngine::new(run.model.clone(), threads);
    let mut tally = Tally::default();
    let mut domain = domain.peekable();
    while domain.peek().is_some() {
        let chunk: Vec<Problem> = domain.by_ref().take(EXHAUSTIVE_CHUNK).collect();
        tally.add(run, &mut engine, chunk)?;
    }
    let mut rep = tally.report(task, 0, true);
    rep.task = task.clone();
    rep.task_differs = differs;
    Ok(rep)
}

/// Questions [`evaluate_exhaustive_with`] asks at a time.
const ASK_CHUNK: usize = 4096;

/// Scores every question of `task`'s domain (`task::exhaustive`) through `answer`, which
/// answers typed questions as `run::Run::answer` does: the whole-domain check of runs that read
/// questions their own way (the long-addition kinds). Per-character accuracy compares the
/// written answer with the right one digit by digit from the right.
pub fn evaluate_exhaustive_with(
    task: &TaskConfig,
    mut answer: impl FnMut(&[&str]) -> Vec<Result<crate::run::Answer, String>>,
) -> Result<EvalReport, EvalError> {
    // (`enumerate` validates the task.)
    let mut domain = crate::task::exhaustive::enumerate(task)?.peekable();
    let mut tally = Tally::default();
    while domain.peek().is_some() {
        let chunk: Vec<Problem> = domain.by_ref().take(ASK_CHUNK).collect();
        let questions: Vec<&str> = chunk.iter().map(|p| p.question.as_str()).collect();
        let t0 = std::time::Instant::now();
        let answers = answer(&questions);
        tally.secs += t0.elapsed().as_secs_f64();
        for (prob, a) in chunk.iter().zip(answers) {
            let written = a.map_err(|e| {
                EvalError::DoesNotFit(format!("{:?} cannot be asked: {e}", prob.question))
            })?;
            let chars = prob
                .answer
                .bytes()
                .rev()
                .zip(written.output.bytes().rev())
                .filter(|(e, w)| e == w)
                .count();
            let ok = written.output == prob.answer;
            tally.record(prob, ok, (chars, prob.answer.len()), || written.output);
        }
    }
    Ok(tally.report(task, 0, true))
}

/// Running counts of one scoring pass, chunk by chunk.
#[derive(Default)]
struct Tally {
    n: usize,
    exact: usize,
    chars: usize,
    positions: usize,
    by_len: BTreeMap<Vec<usize>, (usize, usize)>,
    by_carry: BTreeMap<usize, (usize, usize)>,
    by_answer: BTreeMap<usize, (usize, usize)>,
    failures: Vec<(String, String, String)>,
    /// Seconds spent answering (inference only).
    secs: f64,
}

/// Wrong answers a report lists.
const FAILURES_SHOWN: usize = 10;

impl Tally {
    /// Encodes, answers and scores `problems`.
    fn add(
        &mut self,
        run: &LoadedRun,
        engine: &mut Seq2SeqEngine<f32>,
        problems: Vec<Problem>,
    ) -> Result<(), EvalError> {
        let ds = Dataset::encode(problems, &run.codec)?;
        let t0 = std::time::Instant::now();
        let mut pred = Vec::with_capacity(ds.n * ds.t_out);
        let chunk = run
            .model
            .inference_rows(crate::model::INFERENCE_BUDGET_BYTES);
        for start in (0..ds.n).step_by(chunk) {
            let end = (start + chunk).min(ds.n);
            pred.extend(engine.predict_indices(
                &run.params,
                &ds.inputs[start * ds.t_in..end * ds.t_in],
                end - start,
            ));
        }
        self.secs += t0.elapsed().as_secs_f64();
        for i in 0..ds.n {
            let p = &pred[i * ds.t_out..(i + 1) * ds.t_out];
            let t = ds.target(i);
            let scored = run.model.scored_len(t);
            let chars = p[..scored]
                .iter()
                .zip(&t[..scored])
                .filter(|(a, b)| a == b)
                .count();
            let ok = run.model.answer_matches(p, t);
            self.record(&ds.problems[i], ok, (chars, scored), || {
                run.codec.decode_output(p)
            });
        }
        Ok(())
    }

    /// Counts one answered question: `chars` right of `positions` scored, and what the model
    /// wrote (asked for only when the answer is wrong and still listed).
    fn record(
        &mut self,
        prob: &Problem,
        ok: bool,
        (chars, positions): (usize, usize),
        written: impl FnOnce() -> String,
    ) {
        self.n += 1;
        self.chars += chars;
        self.positions += positions;
        self.exact += usize::from(ok);
        for e in [
            self.by_len.entry(prob.operand_lens.clone()).or_default(),
            self.by_carry.entry(prob.carries).or_default(),
            self.by_answer
                .entry(prob.answer.chars().count())
                .or_default(),
        ] {
            e.0 += 1;
            e.1 += usize::from(ok);
        }
        if !ok && self.failures.len() < FAILURES_SHOWN {
            self.failures
                .push((prob.question.clone(), prob.answer.clone(), written()));
        }
    }

    fn report(self, task: &TaskConfig, seed: u64, exhaustive: bool) -> EvalReport {
        let group = |key: String, (n, e): (usize, usize)| Group {
            key,
            n,
            exact: e,
            exact_match: e as f64 / n as f64,
        };
        EvalReport {
            task: task.clone(),
            task_differs: false,
            exhaustive,
            n: self.n,
            excludes_seen: !exhaustive,
            seed,
            exact: self.exact,
            exact_match: self.exact as f64 / self.n.max(1) as f64,
            char_accuracy: self.chars as f64 / self.positions.max(1) as f64,
            by_operand_lengths: self
                .by_len
                .into_iter()
                .map(|(k, v)| {
                    group(
                        k.iter()
                            .map(|l| l.to_string())
                            .collect::<Vec<_>>()
                            .join("x"),
                        v,
                    )
                })
                .collect(),
            by_carries: self
                .by_carry
                .into_iter()
                .map(|(k, v)| group(k.to_string(), v))
                .collect(),
            by_answer_length: self
                .by_answer
                .into_iter()
                .map(|(k, v)| group(k.to_string(), v))
                .collect(),
            failures: self.failures,
            answers_per_sec: self.n as f64 / self.secs.max(1e-9),
        }
    }
}

impl EvalReport {
    /// A table for people.
    pub fn to_table(&self) -> String {
        let task = if self.task_differs {
            format!("task: {} (not the training task)\n", self.task.describe())
        } else {
            String::new()
        };
        let mut s = if self.exhaustive {
            format!(
                "every question of {}: {} (each once)\nexact match:        {:.6}  ({} of {}, {} wrong)\nper-character acc.: {:.6}\nanswers/s:          {:.0}\n",
                self.task.describe(),
                self.n,
                self.exact_match,
                self.exact,
                self.n,
                self.n - self.exact,
                self.char_accuracy,
                self.answers_per_sec
            )
        } else {
            format!(
                "{task}fresh questions: {} (seed {}), {}\nexact match:        {:.4}  ({} of {})\nper-character acc.: {:.4}\nanswers/s:          {:.0}\n",
                self.n,
                self.seed,
                if self.excludes_seen { "none seen in training or validation" } else { "new draws (this task repeats questions, so some were seen in training)" },
                self.exact_match,
                self.exact,
                self.n,
                self.char_accuracy,
                self.answers_per_sec
            )
        };
        if self.exhaustive {
            s.insert_str(0, &task);
        }
        for (title, groups) in [
            ("operand lengths", &self.by_operand_lengths),
            ("carries/borrows", &self.by_carries),
            ("answer length", &self.by_answer_length),
        ] {
            if self.exhaustive {
                s.push_str(&format!(
                    "\nby {title}:\n  {:<12}{:>9}{:>8}{:>11}\n",
                    "group", "n", "wrong", "exact"
                ));
                for g in groups {
                    s.push_str(&format!(
                        "  {:<12}{:>9}{:>8}{:>11.6}\n",
                        g.key,
                        g.n,
                        g.n - g.exact,
                        g.exact_match
                    ));
                }
                continue;
            }
            s.push_str(&format!(
                "\nby {title}:\n  {:<12}{:>8}{:>10}\n",
                "group", "n", "exact"
            ));
            for g in groups {
                s.push_str(&format!(
                    "  {:<12}{:>8}{:>10.4}\n",
                    g.key, g.n, g.exact_match
                ));
            }
        }
        if !self.failures.is_empty() {
            s.push_str(if self.exhaustive {
                "\nthe first wrong answers (question = expected, got):\n"
            } else {
                "\nsome wrong answers (question = expected, got):\n"
            });
            for (q, e, p) in &self.failures {
                let p = if p.is_empty() {
                    "\"\" (empty)"
                } else {
                    p.as_str()
                };
                s.push_str(&format!("  {q} = {e}, got {p}\n"));
            }
        }
        s
    }
}
