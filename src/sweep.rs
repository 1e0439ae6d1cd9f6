//! `seqcalc sweep`: a grid of configurations times seeds, run on all cores, results appended as
//! each run finishes (an interrupted sweep resumes where it stopped), summarised as a table
//! (mean and spread over seeds) and a heatmap of exact match per grid cell.
//!
//! A grid axis is `key=v1,v2,...`. Keys are short names (`hidden`, `digits`, `cell`, ...) or
//! dotted config paths (`model.hidden`, `optim.lr`); values are TOML values (`64`, `0.002`,
//! `true`) or bare words (`gru`). Each cell is the base config with the axis values set,
//! checked (`ExperimentConfig::build`) before anything runs.

use crate::config::ExperimentConfig;
use crate::rundir;
use crate::train::{self, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Errors that stop a sweep before or between runs.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Spec(String),
    #[error("{0}")]
    Io(String),
}

/// Short names for the config fields sweeps vary most.
const ALIASES: &[(&str, &[&str])] = &[
    ("digits", &["task.digits"]),
    ("min_digits", &["task.min_digits"]),
    ("terms", &["task.terms_min", "task.terms_max"]),
    ("ops", &["task.ops"]),
    ("brackets", &["task.brackets"]),
    ("hidden", &["model.hidden"]),
    ("layers", &["model.layers"]),
    ("cell", &["model.cell"]),
    ("decoder", &["model.decoder"]),
    ("attention", &["model.attention"]),
    ("input", &["model.input"]),
    ("embed_dim", &["model.embed_dim"]),
    ("mask", &["model.mask"]),
    ("kind", &["model.kind"]),
    ("heads", &["model.heads"]),
    ("ffn", &["model.ffn"]),
    ("reverse", &["codec.reverse_input"]),
    ("reverse_output", &["codec.reverse_output"]),
    ("scratchpad", &["codec.scratchpad"]),
    ("lr", &["optim.lr"]),
    ("schedule", &["optim.schedule"]),
    ("batch_size", &["train.batch_size"]),
    ("epochs", &["train.epochs"]),
    ("size", &["data.size"]),
];

/// One grid axis: the key as written, the config paths it sets, its values and their labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub key: String,
    pub paths: Vec<String>,
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `key=v1,v2,...`.
    pub fn parse(spec: &str) -> Result<Axis, SweepError> {
        let bad = |m: String| SweepError::Spec(format!("--grid {spec:?}: {m}"));
        let (key, vals) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected key=value,value,...".into()))?;
        let key = key.trim().replace('-', "_");
        let paths: Vec<String> = if key.contains('.') {
            vec![key.clone()]
        } else {
            match ALIASES.iter().find(|(k, _)| *k == key) {
                Some((_, p)) => p.iter().map(|s| s.to_string()).collect(),
                None => {
                    let known: Vec<&str> = ALIASES.iter().map(|a| a.0).collect();
                    return Err(bad(format!(
                        "unknown key {key:?}; use one of {} or a config path like model.hidden",
                        known.join(", ")
                    )));
                }
            }
        };
        let values: Vec<String> = vals
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(bad("no values".into()));
        }
        let mut seen = values.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != values.len() {
            return Err(bad("a value is listed twice".into()));
        }
        Ok(Axis { key, paths, values })
    }
}

/// A value as TOML: numbers, booleans and quoted strings as written, bare words as strings.
fn toml_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// `base` with `path` set to `raw`.
fn set_path(table: &mut toml::Table, path: &str, raw: &str) -> Result<(), String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().ok_or("empty path")?;
    let mut t = table;
    for p in parts {
        t = t
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{p} is not a section"))?;
    }
    t.insert(last.to_string(), toml_value(raw));
    Ok(())
}

/// One training run of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique, also the run directory's name: `hidden=64,digits=3,seed=1337`.
    pub id: String,
    /// The value of each axis.
    pub cell: Vec<String>,
    pub seed: u64,
    pub cfg: ExperimentConfig,
}

/// The grid times `seeds` seeds (`base.seed`, `base.seed + 1`, ...), first axis slowest. Every
/// cell's config is checked here, so a bad value fails before any training.
pub fn expand(
    base: &ExperimentConfig,
    axes: &[Axis],
    seeds: usize,
) -> Result<Vec<Job>, SweepError> {
    use crate::config::limits;
    limits::within("--seeds", seeds, 1, limits::RUNS).map_err(SweepError::Spec)?;
    for (i, a) in axes.iter().enumerate() {
        if axes[..i]
            .iter()
            .any(|b| b.key == a.key || b.paths.iter().any(|p| a.paths.contains(p)))
        {
            return Err(SweepError::Spec(format!(
                "--grid {}: the key is given twice (or sets a field another --grid sets)",
                a.key
            )));
        }
    }
    let runs = axes
        .iter()
        .try_fold(seeds, |n, a| n.checked_mul(a.values.len()))
        .filter(|&n| n <= limits::RUNS)
        .ok_or_else(|| {
            SweepError::Spec(format!(
                "the grid times --seeds is more than the limit of {} runs",
                limits::RUNS
            ))
        })?;
    if base.seed.checked_add(seeds as u64 - 1).is_none() {
        return Err(SweepError::Spec(format!(
            "seed {} plus {seeds} seeds does not fit in 64 bits",
            base.seed
        )));
    }
    let base_table = toml::Table::try_from(base)
        .map_err(|e| SweepError::Spec(format!("the base config does not serialise: {e}")))?;
    let cells = runs / seeds;
    let mut jobs: Vec<Job> = Vec::with_capacity(runs);
    for c in 0..cells {
        let mut rest = c;
        let mut cell = vec![String::new(); axes.len()];
        for (i, a) in axes.iter().enumerate().rev() {
            cell[i] = a.values[rest % a.values.len()].clone();
            rest /= a.values.len();
        }
        let mut table = base_table.clone();
        let mut touches_task = false;
        for (a, v) in axes.iter().zip(&cell) {
            for p in &a.paths {
                touches_task |= p.starts_with("task.");
                set_path(&mut table, p, v)
                    .map_err(|e| SweepError::Spec(format!("--grid {}={v}: {e}", a.key)))?;
            }
        }
        let label: Vec<String> = axes
            .iter()
            .zip(&cell)
            .map(|(a, v)| format!("{}={v}", a.key))
            .collect();
        let mut cfg: ExperimentConfig = table.try_into().map_err(|e: toml::de::Error| {
            SweepError::Spec(format!(
                "cell {}: {}",
                label.join(" "),
                e.message().lines().next().unwrap_or("invalid value")
            ))
        })?;
        if touches_task {
            // Widths and alphabet follow the task of each cell.
            cfg.codec.alphabet = None;
            cfg.codec.input_len = None;
            cfg.codec.output_len = None;
        }
        for k in 0..seeds {
            let mut c = cfg.clone();
            c.seed = base.seed + k as u64;
            let mut id = label.join(",");
            if !id.is_empty() {
                id.push(',');
            }
            id.push_str(&format!("seed={}", c.seed));
            c.name = run_name(&id);
            rundir::validate_name(&c.name)
                .map_err(|e| SweepError::Spec(format!("cell {}: {e}", label.join(" "))))?;
            if let Some(other) = jobs.iter().find(|j| j.cfg.name == c.name) {
                return Err(SweepError::Spec(format!(
                    "cells {} and {id} would share the run directory {}; make the values differ in letters or digits",
                    other.id, c.name
                )));
            }
            c.clone().build().map_err(|e| {
                SweepError::Spec(format!("cell {} cannot run: {e}", label.join(" ")))
            })?;
            jobs.push(Job {
                id,
                cell: cell.clone(),
                seed: c.seed,
                cfg: c,
            });
        }
    }
    Ok(jobs)
}

/// The run directory name of a job id: every character outside `A-Z a-z 0-9 . _ -` becomes
/// `_` (`hidden=64,seed=1` -> `hidden_64_seed_1`).
pub fn run_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What one finished run achieved, one line of `results.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub id: String,
    pub cell: Vec<String>,
    pub seed: u64,
    /// Set when the run failed (diverged); the numbers below are then absent or partial.
    pub error: Option<String>,
    pub params: usize,
    pub epochs: usize,
    /// Training wall time of the run (all epochs, validation included).
    pub seconds: f64,
    pub best_val_exact: f64,
    /// Exact match and per-character accuracy on `fresh_n` questions the run never saw.
    pub fresh_exact: Option<f64>,
    pub fresh_char: Option<f64>,
    pub fresh_n: usize,
    /// First epoch whose validation exact match reached the sweep's target, and the wall time
    /// until then.
    pub epochs_to_target: Option<usize>,
    pub seconds_to_target: Option<f64>,
    /// The kernels of the CPU that trained and scored the run (avx512, avx2 or portable);
    /// absent in results written before it was recorded.
    #[serde(default)]
    pub kernel: Option<String>,
}

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct Options {
    /// The sweep's directory: `sweep.json`, `results.jsonl`, `runs/<id>/`, the table and heatmap.
    pub dir: PathBuf,
    /// Runs at once.
    pub parallel: usize,
    /// Threads per run.
    pub threads: usize,
    /// Fresh questions per run's evaluation.
    pub eval_n: usize,
    /// Validation exact match counted as reached (epochs and seconds to it).
    pub target: f64,
}

/// What a sweep's directory records about itself; a rerun must match it to resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub axes: Vec<Axis>,
    pub seeds: usize,
    pub eval_n: usize,
    pub target: f64,
    pub base: ExperimentConfig,
}

pub const SPEC_FILE: &str = "sweep.json";
pub const RESULTS_FILE: &str = "results.jsonl";

/// Reads the results recorded so far; see [`read_results_checked`] for the damaged lines.
pub fn read_results(dir: &Path) -> Vec<RunResult> {
    read_results_checked(dir).0
}

/// Reads the results recorded so far, each line on its own: a damaged line (invalid bytes, a
/// torn last line from a kill mid-write, anything that is not a result) is skipped and reported
/// as `"results.jsonl line N: what is wrong"`, and every good line is kept. A skipped run is
/// redone, from its run directory.
pub fn read_results_checked(dir: &Path) -> (Vec<RunResult>, Vec<String>) {
    let path = dir.join(RESULTS_FILE);
    let bytes = std::fs::read(&path).unwrap_or_default();
    let (mut results, mut damaged) = (Vec::new(), Vec::new());
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<RunResult>(l).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => results.push(r),
            Err(e) => damaged.push(format!("{} line {}: {e}; skipped", path.display(), i + 1)),
        }
    }
    (results, damaged)
}

/// Runs with an error (diverged or not evaluated) among `results`: a sweep with any is a
/// failed sweep (the CLI exits non-zero).
pub fn failed_runs(results: &[RunResult]) -> usize {
    results.iter().filter(|r| r.error.is_some()).count()
}

impl Options {
    /// Checks the numbers against their bounds, and that each job leaves `eval_n` fresh
    /// questions, before anything trains.
    pub fn validate(&self, jobs: &[Job]) -> Result<(), SweepError> {
        use crate::config::limits;
        let spec = |e: String| SweepError::Spec(e);
        limits::within("--parallel", self.parallel, 1, limits::THREADS).map_err(spec)?;
        limits::within("--threads", self.threads, 1, limits::THREADS).map_err(spec)?;
        limits::within("--eval-n", self.eval_n, 1, limits::QUESTIONS).map_err(spec)?;
        limits::finite_within("--target", self.target, 0.0, 1.0).map_err(spec)?;
        for j in jobs {
            let t = &j.cfg.task;
            let need = j.cfg.data.size as u128 + self.eval_n as u128;
            if t.unique && need > t.distinct_questions() {
                return Err(SweepError::Spec(format!(
                    "--eval-n {}: run {} has {} distinct questions and trains on {}, leaving fewer than {} fresh ones; ask for fewer",
                    self.eval_n,
                    j.id,
                    t.distinct_questions(),
                    j.cfg.data.size,
                    self.eval_n
                )));
            }
        }
        Ok(())
    }
}

/// Creates the sweep directory and its spec, or checks that an existing one holds this sweep.
pub fn prepare(spec: &Spec, dir: &Path) -> Result<(), SweepError> {
    let io = |e: std::io::Error, what: &Path| {
        SweepError::Io(format!("could not write {}: {e}", what.display()))
    };
    let path = dir.join(SPEC_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| io(e, &path))?;
        let old: Spec = serde_json::from_str(&text).map_err(|e| {
            SweepError::Spec(format!(
                "{} is damaged ({e}); delete the directory to start over",
                path.display()
            ))
        })?;
        if old != *spec {
            return Err(SweepError::Spec(format!(
                "{} holds another sweep (different grid, seeds or base config); choose another --name or delete it",
                dir.display()
            )));
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    let text = serde_json::to_string_pretty(spec).expect("spec serialises");
    crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| io(e, &path))
}

/// Where the runs of a sweep train.
#[derive(Clone, Debug, Default)]
pub enum Executor {
    /// On this machine, `Options::parallel` runs at once in threads of this process.
    #[default]
    Local,
    /// As tasks on a Ray cluster, each a `seqcalc sweep-cell` process on some node
    /// (see [`ray`]); `Options::parallel` caps the runs in flight.
    Ray(ray::RayOptions),
}

/// Runs the jobs without a result yet, `opts.parallel` at a time, appending each result to
/// `results.jsonl` as it finishes and reporting it through `on_result` (done, total). Stops
/// taking new jobs when `interrupt` is set (running ones checkpoint and stop); returns all
/// results recorded, in job order.
pub fn run(
    jobs: &[Job],
    opts: &Options,
    interrupt: &AtomicBool,
    on_result: &mut dyn FnMut(&RunResult, usize, usize),
) -> Result<Vec<RunResult>, SweepError> {
    run_on(&Executor::Local, jobs, opts, interrupt, on_result)
}

/// [`run`] with the runs trained by `executor`: the bookkeeping (what is done, the appends to
/// `results.jsonl`, the order of the results) is the same wherever the runs train, and every
/// run goes through [`run_cell`].
pub fn run_on(
    executor: &Executor,
    jobs: &[Job],
    opts: &Options,
    interrupt: &AtomicBool,
    on_result: &mut dyn FnMut(&RunResult, usize, usize),
) -> Result<Vec<RunResult>, SweepError> {
    opts.validate(jobs)?;
    if let Executor::Ray(r) = executor {
        r.validate()?;
    }
    let (recorded, damaged) = read_results_checked(&opts.dir);
    for d in &damaged {
        eprintln!("warning: {d}");
    }
    let mut done: BTreeMap<String, RunResult> =
        recorded.into_iter().map(|r| (r.id.clone(), r)).collect();
    let todo: Vec<&Job> = jobs.iter().filter(|j| !done.contains_key(&j.id)).collect();
    let total = jobs.len();
    let results_path = opts.dir.join(RESULTS_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .map_err(|e| SweepError::Io(format!("could not open {}: {e}", results_path.display())))?;
    // A torn last line (a kill mid-append) must not swallow the next record: start on a new
    // line.
    let ends_torn = std::fs::read(&results_path)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    if ends_torn {
        file.write_all(b"\n").map_err(|e| {
            SweepError::Io(format!("could not write {}: {e}", results_path.display()))
        })?;
    }
    let todo_ids: std::collections::BTreeSet<&str> = todo.iter().map(|j| j.id.as_str()).collect();
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<Result<RunResult, SweepError>>();
    let mut first_error = None;
    std::thread::scope(|s| {
        match executor {
            Executor::Local => run_local(s, &todo, &next, opts, interrupt, &tx),
            Executor::Ray(r) => {
                let (tx, todo) = (tx.clone(), &todo);
                s.spawn(move || {
                    if let Err(e) = ray::run_cells(r, todo, opts, interrupt, &tx) {
                        let _ = tx.send(Err(e));
                    }
                });
            }
        }
        drop(tx);
        for r in rx {
            match r {
                Ok(r) if r.error.as_deref() == Some(INTERRUPTED) => {}
                Ok(r) if done.contains_key(&r.id) || !todo_ids.contains(r.id.as_str()) => {
                    // A result for a run that is not to do (one an executor reported twice):
                    // recorded once only.
                }
                Ok(r) => {
                    let line = serde_json::to_string(&r).expect("result serialises") + "\n";
                    let written = file
                        .write_all(line.as_bytes())
                        .and_then(|_| file.sync_data());
                    if let Err(e) = written {
                        first_error.get_or_insert(SweepError::Io(format!(
                            "could not write {}: {e}",
                            results_path.display()
                        )));
                        interrupt.store(true, Ordering::SeqCst);
                    }
                    done.insert(r.id.clone(), r.clone());
                    on_result(&r, done.len(), total);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    interrupt.store(true, Ordering::SeqCst);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(jobs.iter().filter_map(|j| done.remove(&j.id)).collect())
}

/// Trains `todo` in `opts.parallel` threads of this process, sending each result to `tx`.
fn run_local<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    todo: &'s [&'s Job],
    next: &'s AtomicUsize,
    opts: &'s Options,
    interrupt: &'s AtomicBool,
    tx: &std::sync::mpsc::Sender<Result<RunResult, SweepError>>,
) {
    for _ in 0..opts.parallel.max(1).min(todo.len().max(1)) {
        let tx = tx.clone();
        s.spawn(move || loop {
            crate::nn::flush_denormals();
            if interrupt.load(Ordering::SeqCst) {
                break;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(job) = todo.get(i) else { break };
            let r = run_cell(
                job,
                &opts.dir,
                opts.threads,
                opts.eval_n,
                opts.target,
                interrupt,
            );
            let stop = r.is_err();
            if tx.send(r).is_err() || stop {
                break;
            }
        });
    }
}

/// The `error` of a run stopped by an interrupt before it finished: not recorded, the run is
/// resumed by the next run of the sweep.
pub const INTERRUPTED: &str = "interrupted";

/// Trains (or resumes) one job in `dir/runs/<name>` with `threads` threads and scores it on
/// `eval_n` fresh questions: the one piece of code every run of a sweep goes through, on this
/// machine or on a cluster's node.
pub fn run_cell(
    job: &Job,
    dir: &Path,
    threads: usize,
    eval_n: usize,
    target: f64,
    interrupt: &AtomicBool,
) -> Result<RunResult, SweepError> {
    let dir = rundir::run_path(&dir.join("runs"), &job.cfg.name)
        .map_err(|e| SweepError::Spec(format!("run {}: {e}", job.id)))?;
    // A run that wrote its config has a checkpoint to go on from (see `train::run`).
    let open = if dir.join(rundir::CONFIG).exists() {
        rundir::Open::Resume
    } else {
        rundir::Open::New
    };
    let mut cfg = job.cfg.clone();
    cfg.train.threads = threads;
    cfg.train.samples = 0;
    let mut result = RunResult {
        id: job.id.clone(),
        cell: job.cell.clone(),
        seed: job.seed,
        error: None,
        params: 0,
        epochs: 0,
        seconds: 0.0,
        best_val_exact: 0.0,
        fresh_exact: None,
        fresh_char: None,
        fresh_n: 0,
        epochs_to_target: None,
        seconds_to_target: None,
        kernel: Some(crate::run::kernel_level().to_string()),
    };
    // The manifest records where the run trained: threads, CPU and kernel level.
    let spec = crate::run::spec_hash(&crate::run::RunConfig::Seq2seq(cfg.clone()));
    let mut manifest = crate::run::Manifest::start(crate::run::RunKind::Seq2seq, threads, spec);
    let mut data_hash = None;
    let trained = train::run(cfg, &dir, open, interrupt, &mut |ev| {
        if let train::Event::Start { train, val, .. } = ev {
            let texts = train
                .problems
                .iter()
                .chain(&val.problems)
                .flat_map(|p| [p.question.as_bytes(), p.answer.as_bytes()]);
            data_hash = Some(crate::run::fnv1a64(texts));
        }
    });
    if let Some(h) = data_hash {
        manifest.data_hash = format!("fnv1a64:{h:016x}");
    }
    // Only a run that trained (and so held the directory's lock) writes it.
    let how = match &trained {
        Ok(o) if o.interrupted => Some("interrupted"),
        Ok(_) => Some("finished"),
        Err(TrainError::NonFinite { .. } | TrainError::Diverged(_)) => Some("failed"),
        Err(_) => None,
    };
    if let Some(how) = how {
        manifest
            .finish(&dir, how)
            .map_err(|e| SweepError::Io(format!("run {}: {e}", job.id)))?;
    }
    let outcome = match trained {
        Ok(o) => o,
        Err(TrainError::NonFinite { epoch, batch, loss }) => {
            result.error = Some(format!(
                "diverged at epoch {epoch}, batch {batch} (loss {loss})"
            ));
            return Ok(result);
        }
        Err(e) => {
            return Err(SweepError::Io(format!("run {}: {e}", job.id)));
        }
    };
    if outcome.interrupted {
        result.error = Some(INTERRUPTED.into());
        return Ok(result);
    }
    let h = &outcome.state.history.records;
    result.epochs = h.len();
    result.seconds = h.last().map_or(0.0, |r| r.elapsed_secs);
    result.best_val_exact = h.iter().map(|r| r.val_exact).fold(0.0, f64::max);
    if let Some(r) = h.iter().find(|r| r.val_exact >= target) {
        result.epochs_to_target = Some(r.epoch);
        result.seconds_to_target = Some(r.elapsed_secs);
    }
    let loaded = rundir::load_run(&dir).map_err(|e| SweepError::Io(e.to_string()))?;
    result.params = loaded.model.param_count();
    match crate::eval::evaluate_fresh(&loaded, eval_n, 7, threads) {
        Ok(rep) => {
            result.fresh_exact = Some(rep.exact_match);
            result.fresh_char = Some(rep.char_accuracy);
            result.fresh_n = rep.n;
        }
        Err(e) => result.error = Some(format!("evaluation: {e}")),
    }
    Ok(result)
}

/// Mean and spread over the seeds of one grid cell.
#[derive(Clone, Debug, Serialize)]
pub struct CellSummary {
    pub cell: Vec<String>,
    pub runs: usize,
    pub failed: usize,
    pub exact_mean: Option<f64>,
    /// Sample standard deviation over seeds (0 with one seed).
    pub exact_sd: Option<f64>,
    pub exact_min: Option<f64>,
    pub exact_max: Option<f64>,
    pub char_mean: Option<f64>,
    pub epochs_mean: f64,
    pub seconds_mean: f64,
    /// Runs whose validation exact match reached the target, and their mean epochs and seconds.
    pub reached: usize,
    pub epochs_to_target: Option<f64>,
    pub seconds_to_target: Option<f64>,
}

/// Mean and sample standard deviation.
pub fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((m, sd))
}

/// Groups results by cell, in the order cells first appear.
pub fn summarise(results: &[RunResult]) -> Vec<CellSummary> {
    let mut order: Vec<Vec<String>> = Vec::new();
    for r in results {
        if !order.contains(&r.cell) {
            order.push(r.cell.clone());
        }
    }
    order
        .into_iter()
        .map(|cell| {
            let rs: Vec<&RunResult> = results.iter().filter(|r| r.cell == cell).collect();
            let exact: Vec<f64> = rs.iter().filter_map(|r| r.fresh_exact).collect();
            let chars: Vec<f64> = rs.iter().filter_map(|r| r.fresh_char).collect();
            let reached: Vec<&&RunResult> =
                rs.iter().filter(|r| r.epochs_to_target.is_some()).collect();
            let mean = |v: Vec<f64>| mean_sd(&v).map(|m| m.0);
            let n = rs.len().max(1) as f64;
            CellSummary {
                runs: rs.len(),
                failed: rs.iter().filter(|r| r.fresh_exact.is_none()).count(),
                exact_mean: mean_sd(&exact).map(|m| m.0),
                exact_sd: mean_sd(&exact).map(|m| m.1),
                exact_min: exact.iter().copied().reduce(f64::min),
                exact_max: exact.iter().copied().reduce(f64::max),
                char_mean: mean(chars),
                epochs_mean: rs.iter().map(|r| r.epochs as f64).sum::<f64>() / n,
                seconds_mean: rs.iter().map(|r| r.seconds).sum::<f64>() / n,
                reached: reached.len(),
                epochs_to_target: mean(
                    reached
                        .iter()
                        .filter_map(|r| r.epochs_to_target.map(|e| e as f64))
                        .collect(),
                ),
                seconds_to_target: mean(
                    reached.iter().filter_map(|r| r.seconds_to_target).collect(),
                ),
                cell,
            }
        })
        .collect()
}

/// The summary as a markdown table.
pub fn table(axes: &[Axis], cells: &[CellSummary], target: f64) -> String {
    let f4 = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut head: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    head.extend(
        [
            "seeds",
            "exact (mean ± sd)",
            "min",
            "max",
            "per char",
            "epochs",
            "seconds",
        ]
        .map(String::from),
    );
    head.push(format!("reached {target}"));
    head.push(format!("epochs to {target}"));
    head.push(format!("seconds to {target}"));
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
    for c in cells {
        let mut row = c.cell.clone();
        row.push(format!(
            "{}{}",
            c.runs,
            if c.failed > 0 {
                format!(" ({} failed)", c.failed)
            } else {
                String::new()
            }
        ));
        row.push(match (c.exact_mean, c.exact_sd) {
            (Some(m), Some(s)) => format!("{m:.4} ± {s:.4}"),
            _ => "-".into(),
        });
        row.push(f4(c.exact_min));
        row.push(f4(c.exact_max));
        row.push(f4(c.char_mean));
        row.push(format!("{:.1}", c.epochs_mean));
        row.push(format!("{:.0}", c.seconds_mean));
        row.push(format!("{}/{}", c.reached, c.runs));
        row.push(c.epochs_to_target.map_or("-".into(), |v| format!("{v:.1}")));
        row.push(
            c.seconds_to_target
                .map_or("-".into(), |v| format!("{v:.0}")),
        );
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A sentence naming the kernel levels the runs trained with, when they differ (runs on CPUs
/// of different levels can differ in the last bits, so their numbers are not strictly
/// comparable); `None` when all runs used one level or none is recorded.
pub fn kernel_note(results: &[RunResult]) -> Option<String> {
    let mut levels: BTreeMap<&str, usize> = BTreeMap::new();
    for r in results {
        if let Some(k) = &r.kernel {
            *levels.entry(k).or_default() += 1;
        }
    }
    if levels.len() < 2 {
        return None;
    }
    let list: Vec<String> = levels.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    Some(format!(
        "Runs trained on CPUs of different kernel levels ({} runs), so their numbers may differ in the last bits from runs on one kind of CPU.",
        list.join(", ")
    ))
}

/// Heatmap layout: the last axis across, every other axis combined down (one row for a
/// one-axis grid). Returns (row labels, column labels, [row][col] mean exact, cell texts).
#[allow(clippy::type_complexity)]
pub fn heatmap_grid(
    axes: &[Axis],
    cells: &[CellSummary],
) -> (
    Vec<String>,
    Vec<String>,
    Vec<Vec<Option<f64>>>,
    Vec<Vec<String>>,
) {
    let Some((last, rest)) = axes.split_last() else {
        let m = cells.first().and_then(|c| c.exact_mean);
        return (
            vec!["all".into()],
            vec!["base".into()],
            vec![vec![m]],
            vec![vec![cell_text(cells.first())]],
        );
    };
    let cols: Vec<String> = last
        .values
        .iter()
        .map(|v| format!("{}={v}", last.key))
        .collect();
    let mut rows: Vec<Vec<String>> = vec![Vec::new()];
    for a in rest {
        rows = rows
            .into_iter()
            .flat_map(|r| {
                a.values.iter().map(move |v| {
                    let mut r = r.clone();
                    r.push(v.clone());
                    r
                })
            })
            .collect();
    }
    let row_labels: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.is_empty() {
                "all".to_string()
            } else {
                rest.iter()
                    .zip(r)
                    .map(|(a, v)| format!("{}={v}", a.key))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        })
        .collect();
    let mut values = vec![vec![None; cols.len()]; rows.len()];
    let mut texts = vec![vec![String::new(); cols.len()]; rows.len()];
    for (ri, r) in rows.iter().enumerate() {
        for (ci, v) in last.values.iter().enumerate() {
            let mut key = r.clone();
            key.push(v.clone());
            let c = cells.iter().find(|c| c.cell == key);
            values[ri][ci] = c.and_then(|c| c.exact_mean);
            texts[ri][ci] = cell_text(c);
        }
    }
    (row_labels, cols, values, texts)
}

fn cell_text(c: Option<&CellSummary>) -> String {
    match c.and_then(|c| c.exact_mean.zip(c.exact_sd).map(|m| (m, c.runs))) {
        Some(((m, s), runs)) if runs > 1 => format!("{m:.3}±{s:.3}"),
        Some(((m, _), _)) => format!("{m:.3}"),
        None => "-".into(),
    }
}

pub mod ray;

#[cfg(test)]
mod tests;
