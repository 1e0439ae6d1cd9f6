//! `seqcalc._seqcalc`: the native half of the Python package. Every function here is a thin
//! call into the seqcalc library (`Run::load`, `Run::answer`, `eval`, `task::generate`, the
//! codec, `training::train_with`); the pure-Python half (`python/seqcalc/`) adds the history
//! table and the friendly signatures. Work on the Rust engine runs with the GIL released.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use seqcalc::config::ExperimentConfig;
use seqcalc::eval::grids::{grid_json, GridKind, GridRequest};
use seqcalc::eval::lengths::{LengthRequest, DEFAULT_LENGTHS};
use seqcalc::run::{Run, RunConfig, RunKind};
use seqcalc::rundir::{Open, RunError};
use seqcalc::train::{Event, TrainError};
use seqcalc::training::{train_with, Progress, Trained};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// The most questions one `evaluate`, `generate` or `encode` call takes (as the CLI's `--n`).
const MAX_N: usize = 10_000_000;

/// A `seqcalc.errors` exception of class `class` with the CLI's one-line message.
fn error(py: Python<'_>, class: &str, msg: impl std::fmt::Display) -> PyErr {
    let msg = msg.to_string();
    match py
        .import("seqcalc.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

/// The exception class of a run directory's error.
fn run_error(py: Python<'_>, e: &RunError) -> PyErr {
    match e {
        RunError::File { .. } => error(py, "RunDirError", e),
        RunError::Config(_) => error(py, "ConfigError", e),
        RunError::Write(_) => error(py, "TrainingError", e),
    }
}

fn train_error(py: Python<'_>, e: &TrainError) -> PyErr {
    match e {
        TrainError::Config(_) => error(py, "ConfigError", e),
        TrainError::Run(r) => run_error(py, r),
        _ => error(py, "TrainingError", e),
    }
}

fn bad_argument(py: Python<'_>, msg: impl std::fmt::Display) -> PyErr {
    error(py, "ArgumentError", msg)
}

/// A JSON value as Python objects (through the `json` module, so numbers read back exactly as
/// `--json` prints them).
fn to_python<'py>(py: Python<'py>, v: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| error(py, "SeqcalcError", e))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Python objects as a JSON value (through the `json` module).
fn from_python(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let text: String = py
        .import("json")?
        .call_method1("dumps", (obj,))
        .map_err(|e| {
            error(
                py,
                "ConfigError",
                format!("a config must be plain data: {e}"),
            )
        })?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| error(py, "ConfigError", e))
}

/// A whole number from Python within `lo..=hi`, or `ArgumentError` naming it. (Taken as i128
/// so that negative and huge numbers get the message, not an overflow.)
fn bounded(py: Python<'_>, v: i128, what: &str, lo: u64, hi: u64) -> PyResult<u64> {
    if v < i128::from(lo) || v > i128::from(hi) {
        return Err(bad_argument(
            py,
            format!("{what} {v} must be in {lo}..={hi}"),
        ));
    }
    Ok(v as u64)
}

fn check_n(py: Python<'_>, n: i128, what: &str) -> PyResult<usize> {
    Ok(bounded(py, n, what, 1, MAX_N as u64)? as usize)
}

fn check_seed(py: Python<'_>, seed: Option<i128>) -> PyResult<Option<u64>> {
    seed.map(|s| bounded(py, s, "seed", 0, u64::MAX))
        .transpose()
}

fn check_threads(py: Python<'_>, threads: Option<i128>) -> PyResult<usize> {
    match threads {
        None => Ok(seqcalc::parallel::default_threads()),
        Some(t) => {
            let max = seqcalc::parallel::MAX_THREADS as u64;
            Ok(bounded(py, t, "threads", 1, max)? as usize)
        }
    }
}

/// A config from Python: a dict (the config as data), an experiment's name, a TOML or JSON
/// file, or TOML or JSON text.
fn resolve_config(py: Python<'_>, config: &Bound<'_, PyAny>, quick: bool) -> PyResult<RunConfig> {
    if config.is_instance_of::<PyDict>() {
        if quick {
            return Err(bad_argument(
                py,
                "quick applies to a built-in experiment given by name",
            ));
        }
        let value = from_python(py, config)?;
        return RunConfig::parse_json(&value.to_string()).map_err(|e| run_error(py, &e));
    }
    let text: String = if let Ok(s) = config.cast::<PyString>() {
        s.to_string()
    } else if let Ok(p) = config.extract::<PathBuf>() {
        return read_config_file(py, &p);
    } else {
        return Err(PyTypeError::new_err(
            "config is an experiment name, a path, TOML or JSON text, or a dict",
        ));
    };
    if let Some(e) = seqcalc::experiment::find(&text) {
        return Ok(e.run_config(quick));
    }
    if quick {
        return Err(bad_argument(
            py,
            format!("quick applies to a built-in experiment given by name; {text:?} is not one"),
        ));
    }
    let looks_like_text = text.contains('\n') || text.contains('=') || text.contains('{');
    if looks_like_text {
        return RunConfig::parse(&text).map_err(|e| run_error(py, &e));
    }
    let p = Path::new(&text);
    if p.exists() {
        return read_config_file(py, p);
    }
    let names: Vec<&str> = seqcalc::experiment::all().iter().map(|e| e.name).collect();
    Err(error(
        py,
        "ConfigError",
        format!(
            "{text:?} is neither a built-in experiment nor a config file; experiments: {}",
            names.join(", ")
        ),
    ))
}

fn read_config_file(py: Python<'_>, p: &Path) -> PyResult<RunConfig> {
    let text =
        seqcalc::config::read_input(p).map_err(|e| error(py, "ConfigError", format!("{e:#}")))?;
    RunConfig::parse(&text).map_err(|e| error(py, "ConfigError", format!("{}: {e}", p.display())))
}

/// One answer to one question.
#[pyclass(frozen, get_all, module = "seqcalc")]
pub struct Answer {
    /// The question as asked.
    question: String,
    /// The answer as a person writes it (`None` when the question could not be asked).
    output: Option<String>,
    /// The product of the written symbols' probabilities (models with a softmax output).
    confidence: Option<f64>,
    /// What the model wrote, step by step in writing order: each symbol and its probability,
    /// up to and including the end symbol (models with a softmax output).
    steps: Vec<(char, f32)>,
    /// The worked answer of a model trained with a scratchpad.
    work: Option<String>,
    /// The raw output of a regression model.
    value: Option<f64>,
    /// Whether the answer is right, where the question's task can tell.
    correct: Option<bool>,
    /// Why the question could not be asked (`errors="return"`).
    error: Option<String>,
}

#[pymethods]
impl Answer {
    /// The probability of each written symbol, in writing order (`steps` without the symbols).
    #[getter]
    fn char_confidences(&self) -> Vec<f32> {
        self.steps.iter().map(|&(_, p)| p).collect()
    }

    /// The answer as `predict --jsonl` writes it: input, output, confidence, work, value,
    /// correct, or input and error.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("input", &self.question)?;
        if let Some(e) = &self.error {
            d.set_item("error", e)?;
            return Ok(d);
        }
        d.set_item("output", &self.output)?;
        for (k, v) in [("confidence", self.confidence), ("value", self.value)] {
            if let Some(v) = v {
                d.set_item(k, v)?;
            }
        }
        if let Some(w) = &self.work {
            d.set_item("work", w)?;
        }
        if let Some(c) = self.correct {
            d.set_item("correct", c)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        match (&self.output, &self.error) {
            (_, Some(e)) => format!("Answer({:?}, error={:?})", self.question, e),
            (Some(o), None) => format!(
                "Answer({:?} = {:?}{}{})",
                self.question,
                o,
                self.confidence
                    .map_or(String::new(), |c| format!(", confidence={c}")),
                self.correct
                    .map_or(String::new(), |c| format!(", correct={}", py_bool(c)))
            ),
            (None, None) => format!("Answer({:?})", self.question),
        }
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A trained model of any kind, read back from its run directory.
#[pyclass(module = "seqcalc")]
pub struct Model {
    run: Mutex<Run>,
    dir: PathBuf,
    threads: usize,
    kind: RunKind,
}

impl Model {
    fn lock(&self) -> std::sync::MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Model {
    /// The run's kind: `seq2seq`, `coupled-transformer`, `pair-gru` or `regression`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// The run directory.
    #[getter]
    fn run_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Worker threads of the engine.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// The run's configuration as a dict (its `config.json`).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cfg = seqcalc::run::load_config(&self.dir).map_err(|e| run_error(py, &e))?;
        py.import("json")?.call_method1("loads", (cfg.to_json(),))
    }

    /// Questions answered per engine batch (the same batches as `predict --jsonl`).
    #[getter]
    fn batch_rows(&self) -> usize {
        self.lock().batch_rows()
    }

    /// Answers questions on the Rust engine with the GIL released, in batches as `predict`
    /// does. A string gives one `Answer`, a list a list. `errors="raise"` raises
    /// `QuestionError` for the first question the model cannot read; `errors="return"` gives
    /// that question an `Answer` whose `error` says why.
    #[pyo3(signature = (questions, *, errors = "raise"))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        questions: &Bound<'py, PyAny>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let raise = match errors {
            "raise" => true,
            "return" => false,
            other => {
                return Err(bad_argument(
                    py,
                    format!("errors={other:?}: expected \"raise\" or \"return\""),
                ))
            }
        };
        let single = questions.is_instance_of::<PyString>();
        let qs: Vec<String> = if single {
            vec![questions.extract()?]
        } else {
            questions.extract().map_err(|_| {
                PyTypeError::new_err("questions is a string or a sequence of strings")
            })?
        };
        // Subnormals flushed as the command line does (same bits, same speed), on this thread
        // only while the engine runs.
        let results = py.detach(|| {
            seqcalc::nn::with_flushed_denormals(|| {
                let mut run = self.lock();
                let rows = run.batch_rows();
                let mut out = Vec::with_capacity(qs.len());
                for chunk in qs.chunks(rows) {
                    let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    out.extend(run.answer(&refs));
                }
                out
            })
        });
        let mut answers = Vec::with_capacity(qs.len());
        for (q, r) in qs.into_iter().zip(results) {
            answers.push(match r {
                Ok(a) => Answer {
                    question: q,
                    output: Some(a.output),
                    confidence: a.confidence,
                    steps: a.steps.unwrap_or_default(),
                    work: a.work,
                    value: a.value,
                    correct: a.correct,
                    error: None,
                },
                Err(e) if raise => {
                    return Err(error(py, "QuestionError", format!("{q:?}: {e}")));
                }
                Err(e) => Answer {
                    question: q,
                    output: None,
                    confidence: None,
                    steps: Vec::new(),
                    work: None,
                    value: None,
                    correct: None,
                    error: Some(e),
                },
            });
        }
        if single {
            let a = answers.pop().expect("one answer");
            Ok(Bound::new(py, a)?.into_any())
        } else {
            Ok(PyList::new(py, answers)?.into_any())
        }
    }

    /// Scores the model on fresh questions it never saw, as `seqcalc eval --json` does, and
    /// returns the same object as a dict. `n` (default 10,000; per length for long-addition
    /// runs) and `seed` (default 7) draw a sample; `exhaustive=True` asks every question of a
    /// seq2seq task's domain instead. Long-addition runs also take `lengths` and `stress`;
    /// many-operand and multiplication runs score the grid over `lengths` x `lengths` (default
    /// 5, 10, 30; `n` default 50 a cell) and return its `cells`, as `eval --json` does.
    #[pyo3(signature = (n = None, seed = None, *, exhaustive = false, lengths = None, stress = false))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        n: Option<i128>,
        seed: Option<i128>,
        exhaustive: bool,
        lengths: Option<Vec<i128>>,
        stress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = n.map(|n| check_n(py, n, "n")).transpose()?;
        let seed = check_seed(py, seed)?;
        let lengths = lengths
            .map(|ls| {
                ls.into_iter()
                    .map(|l| {
                        bounded(
                            py,
                            l,
                            "length",
                            1,
                            seqcalc::codec::coupled::MAX_DIGITS as u64,
                        )
                        .map(|l| l as usize)
                    })
                    .collect::<PyResult<Vec<usize>>>()
            })
            .transpose()?;
        if exhaustive && (n.is_some() || seed.is_some()) {
            return Err(bad_argument(
                py,
                "exhaustive scores every question of the domain; n and seed draw a sample instead",
            ));
        }
        let long = matches!(self.kind, RunKind::CoupledTransformer | RunKind::PairGru);
        if !long && (lengths.is_some() || stress) {
            return Err(bad_argument(
                py,
                "lengths and stress apply to long-addition runs (coupled-transformer, pair-gru)",
            ));
        }
        if long && exhaustive {
            return Err(bad_argument(
                py,
                format!(
                    "exhaustive applies to seq2seq runs; {} runs take lengths and stress",
                    self.kind
                ),
            ));
        }
        if self.kind == RunKind::Regression && exhaustive {
            return Err(bad_argument(py, "a regression run takes n and seed only"));
        }
        let seed = seed.unwrap_or(7);
        let threads = self.threads;
        let dir = self.dir.display().to_string();
        // Errors cross the detached section as (class, message).
        let out: Result<serde_json::Value, (&str, String)> = py.detach(|| {
            seqcalc::nn::with_flushed_denormals(|| {
                let mut run = self.lock();
                match &mut *run {
                    Run::Seq2seq { run, .. } => {
                        let task = run.cfg.task.clone();
                        let rep = if exhaustive {
                            seqcalc::eval::evaluate_exhaustive(run, &task, threads)
                        } else {
                            seqcalc::eval::evaluate_fresh_on(
                                run,
                                &task,
                                n.unwrap_or(10_000),
                                seed,
                                threads,
                            )
                        };
                        rep.map(|r| serde_json::to_value(r).expect("report serialises"))
                            .map_err(|e| ("ArgumentError", e.to_string()))
                    }
                    Run::Regression(m) => {
                        Ok(serde_json::to_value(m.evaluate(n.unwrap_or(10_000), seed))
                            .expect("report serialises"))
                    }
                    Run::CoupledTransformer { run, engine }
                        if !run.cfg.lengthgen.task.is_addition() =>
                    {
                        let kind = GridKind::of(run.cfg.lengthgen.task);
                        let req = GridRequest::new(kind, lengths, n, stress)
                            .map_err(|e| ("ArgumentError", e))?;
                        let cells = req
                            .score(engine, &run.params, seed, &mut |_| {})
                            .map_err(|e| ("ArgumentError", e.to_string()))?;
                        Ok(grid_json(&dir, seed, &cells))
                    }
                    long_run => {
                        let req = LengthRequest {
                            lengths: lengths.unwrap_or_else(|| DEFAULT_LENGTHS.to_vec()),
                            n,
                            stress,
                            pairs: Vec::new(),
                        };
                        req.score(long_run, seed, &mut |_| {})
                            .map(|s| s.to_json(&dir, seed, &req.pairs))
                            .map_err(|e| ("ArgumentError", e))
                    }
                }
            })
        });
        match out {
            Ok(v) => to_python(py, &v),
            Err((class, msg)) => Err(error(py, class, msg)),
        }
    }

    /// Questions (and answers) as the model reads and writes them: a uint8 array of symbol
    /// indices `[N, input_len]`, padded and reversed as the model's codec says, or with
    /// `answers` a pair `(inputs, targets [N, output_len])`. Seq2seq runs only.
    #[pyo3(signature = (questions, answers = None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        questions: Vec<String>,
        answers: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let run = self.lock();
        let Run::Seq2seq { run, .. } = &*run else {
            return Err(bad_argument(
                py,
                format!(
                    "encode reads with a seq2seq model's codec; {} is a {} run",
                    self.dir.display(),
                    self.kind
                ),
            ));
        };
        encode_with(py, &run.codec, &questions, answers.as_deref())
    }

    /// The run's history: one dict per epoch (loss, per-character accuracy, exact match,
    /// seconds), as `history.json` holds it.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        history(py, self.dir.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, kind={:?})",
            self.dir.display().to_string(),
            self.kind.name()
        )
    }
}

/// Reads a trained run of any kind from its directory (`config.json`, then the weights its
/// kind needs); `threads` engine workers (default one per core).
#[pyfunction]
#[pyo3(signature = (run_dir, *, threads = None))]
fn load(py: Python<'_>, run_dir: PathBuf, threads: Option<i128>) -> PyResult<Model> {
    let threads = check_threads(py, threads)?;
    let dir = run_dir.clone();
    let run = py
        .detach(|| Run::load(&dir, threads))
        .map_err(|e| run_error(py, &e))?;
    Ok(Model {
        kind: run.kind(),
        run: Mutex::new(run),
        dir: run_dir,
        threads,
    })
}

/// A run's history (one dict per epoch) without loading its weights.
#[pyfunction]
fn history(py: Python<'_>, run_dir: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let h = seqcalc::run::load_history(&run_dir).map_err(|e| run_error(py, &e))?;
    to_python(py, &h.records)
}

/// The task of a seq2seq config (the default experiment's when `config` is `None`), with
/// `task`'s fields set over it: a kind's name or a dict of `[task]` fields.
fn task_of(
    py: Python<'_>,
    config: Option<&Bound<'_, PyAny>>,
    task: Option<&Bound<'_, PyAny>>,
) -> PyResult<ExperimentConfig> {
    let mut cfg = match config {
        None => ExperimentConfig::default(),
        Some(c) => match resolve_config(py, c, false)? {
            RunConfig::Seq2seq(c) => c,
            other => {
                return Err(error(
                    py,
                    "ConfigError",
                    format!(
                        "questions come from a seq2seq task; this is a {} config",
                        other.kind()
                    ),
                ))
            }
        },
    };
    if let Some(t) = task {
        let mut value = serde_json::to_value(&cfg.task).expect("task serialises");
        let fields = if t.is_instance_of::<PyString>() {
            serde_json::json!({ "kind": t.extract::<String>()? })
        } else if t.is_instance_of::<PyDict>() {
            from_python(py, t)?
        } else {
            return Err(PyTypeError::new_err(
                "task is a task kind's name or a dict of task fields",
            ));
        };
        if let (Some(obj), Some(new)) = (value.as_object_mut(), fields.as_object()) {
            for (k, v) in new {
                obj.insert(k.clone(), v.clone());
            }
        }
        cfg.task = serde_json::from_value(value)
            .map_err(|e| error(py, "ConfigError", format!("task: {e}")))?;
    }
    cfg.task
        .validate()
        .map_err(|e| error(py, "ConfigError", e))?;
    Ok(cfg)
}

/// The questions and answers `seqcalc data` writes: `n` problems drawn with `seed` (default
/// the config's seed, 1337 for the default) from the task of `config` (default: the default
/// experiment's), with `task`'s fields set over it. Each is a dict with `question`, `answer`,
/// `operand_lens` and `carries`, as `seqcalc data --format jsonl` writes them.
#[pyfunction]
#[pyo3(signature = (n = 1000, seed = None, *, task = None, config = None))]
fn generate<'py>(
    py: Python<'py>,
    n: i128,
    seed: Option<i128>,
    task: Option<&Bound<'py, PyAny>>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let n = bounded(py, n, "n", 0, MAX_N as u64)? as usize;
    let seed = check_seed(py, seed)?;
    let cfg = task_of(py, config, task)?;
    let seed = seed.unwrap_or(cfg.seed);
    let problems = py
        .detach(|| seqcalc::task::generate(&cfg.task, n, seed))
        .map_err(|e| error(py, "ArgumentError", e))?;
    let rows: Vec<serde_json::Value> = problems
        .iter()
        .map(|p| {
            serde_json::json!({"question": p.question, "answer": p.answer, "operand_lens": p.operand_lens, "carries": p.carries})
        })
        .collect();
    to_python(py, &rows)
}

fn encode_with<'py>(
    py: Python<'py>,
    codec: &seqcalc::codec::Codec,
    questions: &[String],
    answers: Option<&[String]>,
) -> PyResult<Bound<'py, PyAny>> {
    if questions.len() > MAX_N {
        return Err(bad_argument(
            py,
            format!("{} questions: encode at most {MAX_N}", questions.len()),
        ));
    }
    let (t_in, t_out) = (codec.input_len(), codec.output_len());
    let mut inputs = vec![0u8; questions.len() * t_in];
    for (i, q) in questions.iter().enumerate() {
        codec
            .encode_input(q, &mut inputs[i * t_in..(i + 1) * t_in])
            .map_err(|e| error(py, "QuestionError", format!("question {i} {q:?}: {e}")))?;
    }
    let inputs: Bound<'py, PyArray2<u8>> = Array2::from_shape_vec((questions.len(), t_in), inputs)
        .expect("shape matches")
        .into_pyarray(py);
    let Some(answers) = answers else {
        return Ok(inputs.into_any());
    };
    if answers.len() != questions.len() {
        return Err(bad_argument(
            py,
            format!(
                "{} answers for {} questions: give one answer per question",
                answers.len(),
                questions.len()
            ),
        ));
    }
    let mut targets = vec![0u8; answers.len() * t_out];
    for (i, a) in answers.iter().enumerate() {
        codec
            .encode_output(a, &mut targets[i * t_out..(i + 1) * t_out])
            .map_err(|e| error(py, "QuestionError", format!("answer {i} {a:?}: {e}")))?;
    }
    let targets: Bound<'py, PyArray2<u8>> = Array2::from_shape_vec((answers.len(), t_out), targets)
        .expect("shape matches")
        .into_pyarray(py);
    Ok((inputs, targets).into_pyobject(py)?.into_any())
}

/// Questions (and answers) as symbol indices with the codec of a seq2seq config (default: the
/// default experiment's): a uint8 array `[N, input_len]`, or with `answers` a pair
/// `(inputs, targets [N, output_len])`; also the codec's alphabet.
#[pyfunction]
#[pyo3(signature = (questions, answers = None, *, config = None))]
fn encode<'py>(
    py: Python<'py>,
    questions: Vec<String>,
    answers: Option<Vec<String>>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut cfg = task_of(py, config, None)?;
    let (codec, _) = cfg.build().map_err(|e| error(py, "ConfigError", e))?;
    encode_with(py, &codec, &questions, answers.as_deref())
}

/// The alphabet (symbol `i` is its `i`-th character), input and output widths of a seq2seq
/// config's codec.
#[pyfunction]
#[pyo3(signature = (config = None))]
fn codec_info(
    py: Python<'_>,
    config: Option<&Bound<'_, PyAny>>,
) -> PyResult<(String, usize, usize)> {
    let mut cfg = task_of(py, config, None)?;
    let (codec, _) = cfg.build().map_err(|e| error(py, "ConfigError", e))?;
    Ok((
        codec.alphabet().to_string(),
        codec.input_len(),
        codec.output_len(),
    ))
}

/// A config (a built-in experiment's name, a file, TOML or JSON text, or a dict) checked and
/// returned as a dict, `kind` first: edit it and pass it to `train`.
#[pyfunction]
#[pyo3(signature = (config = None, *, quick = false))]
fn config<'py>(
    py: Python<'py>,
    config: Option<&Bound<'py, PyAny>>,
    quick: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut cfg = match config {
        None if quick => seqcalc::experiment::find("keras-addition")
            .expect("the default experiment exists")
            .run_config(true),
        None => RunConfig::Seq2seq(ExperimentConfig::default()),
        Some(c) => resolve_config(py, c, quick)?,
    };
    cfg.validate().map_err(|e| run_error(py, &e))?;
    py.import("json")?.call_method1("loads", (cfg.to_json(),))
}

/// The built-in experiments: (name, run kind, what it reproduces, expected time).
#[pyfunction]
fn experiments() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    seqcalc::experiment::all()
        .into_iter()
        .map(|e| (e.name, e.kind().name(), e.reproduces, e.expected_time))
        .collect()
}

/// What the training thread tells the waiting one.
enum Msg {
    /// A finished epoch of a seq2seq run, and where to say whether to go on.
    Epoch(serde_json::Value, mpsc::SyncSender<()>),
    Line(String),
}

/// Trains `config` into `run_dir` in this process, through the library's one training path,
/// on a thread of its own while this one waits with the GIL released, calling `on_epoch` and
/// `on_line` here and checking for Ctrl-C. Returns whether the run was stopped early (by
/// `on_epoch` returning `False`). An exception from a callback, or KeyboardInterrupt, stops
/// training after the current batch with a checkpoint and is then raised.
#[pyfunction]
#[pyo3(signature = (config, run_dir, *, open = "new", on_epoch = None, on_line = None, epochs = None))]
fn train_run(
    py: Python<'_>,
    config: Option<&Bound<'_, PyAny>>,
    run_dir: PathBuf,
    open: &str,
    on_epoch: Option<Py<PyAny>>,
    on_line: Option<Py<PyAny>>,
    epochs: Option<i128>,
) -> PyResult<bool> {
    let open = match open {
        "new" => Open::New,
        "restart" => Open::Restart,
        "resume" => Open::Resume,
        other => {
            return Err(bad_argument(
                py,
                format!("open={other:?}: expected \"new\", \"restart\" or \"resume\""),
            ))
        }
    };
    let mut cfg = match (open, config) {
        (Open::Resume, _) => seqcalc::run::load_config(&run_dir).map_err(|e| run_error(py, &e))?,
        (_, Some(c)) => resolve_config(py, c, false)?,
        (_, None) => RunConfig::Seq2seq(ExperimentConfig::default()),
    };
    if let Some(e) = epochs {
        // As `seqcalc train --resume DIR --epochs N`: a resumed seq2seq run's epoch bound.
        let e = bounded(py, e, "epochs", 1, seqcalc::config::limits::EPOCHS as u64)? as usize;
        match (open, &mut cfg) {
            (Open::Resume, RunConfig::Seq2seq(c)) => c.train.epochs = e,
            (Open::Resume, c) => {
                return Err(bad_argument(
                    py,
                    format!(
                        "epochs extends a resumed seq2seq run, not a {} run",
                        c.kind()
                    ),
                ))
            }
            _ => {
                return Err(bad_argument(
                    py,
                    "epochs is for resume; a new run takes it in its config",
                ))
            }
        }
    }
    cfg.validate().map_err(|e| run_error(py, &e))?;
    let stop = AtomicBool::new(false);
    let want_epochs = on_epoch.is_some();
    let want_lines = on_line.is_some();
    let (tx, mut rx) = mpsc::channel::<Msg>();
    let mut pending: Option<PyErr> = None;
    let mut stopped_by_callback = false;
    let result: Result<Trained, TrainError> = std::thread::scope(|s| {
        let stop = &stop;
        let dir = &run_dir;
        let worker = s.spawn(move || {
            seqcalc::nn::flush_denormals();
            let mut observe = |p: Progress<'_, '_>| match p {
                Progress::Event(Event::EpochEnd {
                    record, improved, ..
                }) if want_epochs => {
                    let mut v = serde_json::to_value(record).expect("record serialises");
                    v["improved"] = serde_json::Value::Bool(*improved);
                    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
                    if tx.send(Msg::Epoch(v, ack_tx)).is_ok() {
                        let _ = ack_rx.recv();
                    }
                }
                Progress::Line(l) if want_lines => {
                    let _ = tx.send(Msg::Line(l.to_string()));
                }
                _ => {}
            };
            train_with(cfg, dir, open, stop, Some(&mut observe))
        });
        loop {
            // The receiver crosses into the detached section and back (it is not `Sync`).
            let (msg, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(50)), rx));
            rx = back;
            let disconnected = matches!(msg, Err(mpsc::RecvTimeoutError::Disconnected));
            match msg {
                Ok(Msg::Epoch(v, ack)) => {
                    if pending.is_none() && !stopped_by_callback {
                        if let Some(cb) = &on_epoch {
                            let r = to_python(py, &v).and_then(|rec| cb.call1(py, (rec,)));
                            match r {
                                Err(e) => pending = Some(e),
                                Ok(ret) => {
                                    if ret.bind(py).is(&*pyo3::types::PyBool::new(py, false)) {
                                        stopped_by_callback = true;
                                    }
                                }
                            }
                        }
                    }
                    if pending.is_some() || stopped_by_callback {
                        stop.store(true, Ordering::SeqCst);
                    }
                    let _ = ack.send(());
                }
                Ok(Msg::Line(l)) => {
                    if pending.is_none() {
                        if let Some(cb) = &on_line {
                            if let Err(e) = cb.call1(py, (l,)) {
                                pending = Some(e);
                                stop.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                }
                Err(_) => {}
            }
            if let Err(e) = py.check_signals() {
                pending.get_or_insert(e);
                stop.store(true, Ordering::SeqCst);
            }
            if disconnected {
                break;
            }
        }
        match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let trained = result.map_err(|e| train_error(py, &e))?;
    if let Some(e) = pending {
        return Err(e);
    }
    let interrupted = match &trained {
        Trained::Seq2seq(o) => o.interrupted,
        Trained::CoupledTransformer { outcome, .. } | Trained::PairGru { outcome, .. } => {
            outcome.interrupted
        }
        Trained::Regression(_) => false,
    };
    Ok(interrupted)
}

/// The run directory a config trains into: `runs_dir/<name>` (the name checked as `train`
/// checks it).
#[pyfunction]
#[pyo3(signature = (config, runs_dir, name = None))]
fn run_path(
    py: Python<'_>,
    config: Option<&Bound<'_, PyAny>>,
    runs_dir: PathBuf,
    name: Option<String>,
) -> PyResult<PathBuf> {
    let mut cfg = match config {
        Some(c) => resolve_config(py, c, false)?,
        None => RunConfig::Seq2seq(ExperimentConfig::default()),
    };
    if let Some(n) = name {
        cfg.set_name(&n);
    }
    seqcalc::rundir::run_path(&runs_dir, cfg.name())
        .map_err(|e| error(py, "ConfigError", format!("{e:#}")))
}

/// The seqcalc version and the kernels this CPU runs.
#[pyfunction]
fn version() -> (String, &'static str) {
    (
        env!("CARGO_PKG_VERSION").to_string(),
        seqcalc::run::kernel_level(),
    )
}

#[pymodule]
fn _seqcalc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The pool of any parallel loop outside the engines flushes subnormals too, as the
    // command line's does (a pool already built elsewhere in the process is left as it is).
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| seqcalc::nn::flush_denormals())
        .build_global();
    m.add_class::<Model>()?;
    m.add_class::<Answer>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(history, m)?)?;
    m.add_function(wrap_pyfunction!(generate, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(codec_info, m)?)?;
    m.add_function(wrap_pyfunction!(config, m)?)?;
    m.add_function(wrap_pyfunction!(experiments, m)?)?;
    m.add_function(wrap_pyfunction!(train_run, m)?)?;
    m.add_function(wrap_pyfunction!(run_path, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
