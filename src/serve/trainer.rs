//! Trainings started from the browser: each a `RunConfig` (built-in experiment or default, the
//! form's knobs applied as `train`'s flags are) trained by `seqcalc::training::train_with` on a worker
//! thread of one core into a normal run directory. Stop sets the run's own interrupt flag (it
//! checkpoints as on Ctrl-C); Resume reopens it with `Open::Resume`. At most one training per
//! slot (default: one per core); more are refused.

use super::{run_dir, ApiError, ApiResult, Shared};
use crate::cli::flags::{accepted, RunFlags};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use seqcalc::run::RunConfig;
use seqcalc::rundir::Open;
use seqcalc::train::Event;
use seqcalc::training::{train_with, Progress, Trained};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Lines of a training's output kept for its page.
const KEEP_LINES: usize = 40;

/// What the page of a training run shows live.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Live {
    /// starting, training, stopping, finished, stopped, or failed.
    pub state: &'static str,
    pub epoch: usize,
    pub epochs: usize,
    /// Training examples done in this epoch, of `examples`.
    pub done: usize,
    pub examples: usize,
    /// Training examples per second: over the current epoch so far, or the last one.
    pub examples_per_sec: Option<f64>,
    /// The latest sample questions.
    pub samples: Vec<LiveSample>,
    /// The latest lines of output (runs trained by steps, stop reasons).
    pub lines: Vec<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveSample {
    pub question: String,
    pub target: String,
    pub prediction: String,
    pub correct: bool,
}

/// One training of this server.
pub struct Job {
    pub stop: AtomicBool,
    live: Mutex<Live>,
    version: AtomicU64,
    epoch_started: Mutex<Option<std::time::Instant>>,
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live.lock().expect("live state"));
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    fn active(&self) -> bool {
        matches!(
            self.live.lock().expect("live state").state,
            "starting" | "training" | "stopping"
        )
    }

    fn observe(&self, p: Progress) {
        match p {
            Progress::Event(ev) => match ev {
                Event::Start { cfg, train, .. } => self.update(|l| {
                    l.state = if l.state == "stopping" {
                        "stopping"
                    } else {
                        "training"
                    };
                    l.epochs = cfg.train.epochs;
                    l.examples = train.n;
                }),
                Event::EpochStart {
                    epoch,
                    epochs,
                    examples,
                } => {
                    *self.epoch_started.lock().expect("clock") = Some(std::time::Instant::now());
                    self.update(|l| {
                        (l.epoch, l.epochs, l.examples, l.done) = (*epoch, *epochs, *examples, 0);
                    })
                }
                Event::Progress { done } => {
                    let secs = self
                        .epoch_started
                        .lock()
                        .expect("clock")
                        .map(|t| t.elapsed().as_secs_f64());
                    self.update(|l| {
                        l.done = *done;
                        // Within long epochs; short ones are measured at their end.
                        if let Some(s) = secs.filter(|s| *s > 0.5) {
                            l.examples_per_sec = Some(*done as f64 / s);
                        }
                    })
                }
                Event::EpochEnd {
                    samples, record, ..
                } => self.update(|l| {
                    if record.train_secs > 0.0 {
                        l.examples_per_sec = Some(l.examples as f64 / record.train_secs);
                    }
                    l.samples = samples
                        .iter()
                        .map(|s| LiveSample {
                            question: s.question.clone(),
                            target: s.target.clone(),
                            prediction: s.prediction.clone(),
                            correct: s.correct(),
                        })
                        .collect();
                }),
                Event::Stop { reason } => self.update(|l| push_line(l, reason)),
            },
            Progress::Line(line) => self.update(|l| {
                l.state = if l.state == "starting" {
                    "training"
                } else {
                    l.state
                };
                push_line(l, line)
            }),
        }
    }
}

fn push_line(l: &mut Live, line: &str) {
    for part in line.lines() {
        l.lines.push(part.to_string());
    }
    let over = l.lines.len().saturating_sub(KEEP_LINES);
    l.lines.drain(..over);
}

/// This server's trainings, by run name (finished ones are kept for their last state).
pub struct Trainer {
    slots: usize,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Trainer {
    pub fn new(slots: usize) -> Trainer {
        Trainer {
            slots: slots.max(1),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.lock().expect("jobs").get(name).cloned()
    }

    /// The state of a training of this server that is still running.
    pub fn active_state(&self, name: &str) -> Option<&'static str> {
        let job = self.job(name)?;
        let s = job.live.lock().expect("live state").state;
        matches!(s, "starting" | "training" | "stopping").then_some(s)
    }

    /// The last state of a training of this server.
    pub fn last_state(&self, name: &str) -> Option<&'static str> {
        Some(self.job(name)?.live.lock().expect("live state").state)
    }

    pub fn live(&self, name: &str) -> Option<Live> {
        Some(self.job(name)?.live.lock().expect("live state").clone())
    }

    /// Bumped at every change of the run's live state.
    pub fn version(&self, name: &str) -> u64 {
        self.job(name)
            .map_or(0, |j| j.version.load(Ordering::SeqCst))
    }

    fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .jobs
            .lock()
            .expect("jobs")
            .iter()
            .filter(|(_, j)| j.active())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Starts training `cfg` into `dir` on a worker thread, if a slot is free.
    fn spawn(&self, name: &str, cfg: RunConfig, dir: PathBuf, open: Open) -> ApiResult<()> {
        let mut jobs = self.jobs.lock().expect("jobs");
        if jobs.get(name).is_some_and(|j| j.active()) {
            return Err(ApiError::conflict(format!("{name:?} is already training")));
        }
        let running: Vec<&String> = jobs
            .iter()
            .filter(|(_, j)| j.active())
            .map(|(n, _)| n)
            .collect();
        if running.len() >= self.slots {
            let names: Vec<String> = running.iter().map(|n| format!("{n:?}")).collect();
            return Err(ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "all {} training slots are busy ({}): one training per core at a time; stop one or wait for it to finish",
                    self.slots,
                    names.join(", ")
                ),
            ));
        }
        let job = Arc::new(Job {
            stop: AtomicBool::new(false),
            live: Mutex::new(Live {
                state: "starting",
                ..Live::default()
            }),
            version: AtomicU64::new(1),
            epoch_started: Mutex::new(None),
            handle: Mutex::new(None),
        });
        let worker = job.clone();
        let handle = std::thread::Builder::new()
            .name(format!("train-{name}"))
            .spawn(move || {
                let mut observe = |p: Progress| worker.observe(p);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    train_with(cfg, &dir, open, &worker.stop, Some(&mut observe))
                }));
                worker.update(|l| match result {
                    Ok(Ok(t)) => {
                        let interrupted = match &t {
                            Trained::Seq2seq(o) => o.interrupted,
                            Trained::CoupledTransformer { outcome, .. }
                            | Trained::PairGru { outcome, .. } => outcome.interrupted,
                            Trained::Regression(_) => false,
                        };
                        l.state = if interrupted { "stopped" } else { "finished" };
                    }
                    Ok(Err(e)) => {
                        l.state = "failed";
                        l.error = Some(format!("{e:#}"));
                    }
                    Err(_) => {
                        l.state = "failed";
                        l.error = Some("the training panicked; see the server's output".into());
                    }
                });
            })
            .map_err(ApiError::internal)?;
        *job.handle.lock().expect("handle") = Some(handle);
        jobs.insert(name.to_string(), job);
        Ok(())
    }

    /// Asks every running training to checkpoint and stop; returns their names.
    pub fn stop_all(&self) -> Vec<String> {
        let jobs = self.jobs.lock().expect("jobs");
        let mut names = Vec::new();
        for (n, j) in jobs.iter().filter(|(_, j)| j.active()) {
            j.stop.store(true, Ordering::SeqCst);
            names.push(n.clone());
        }
        names
    }

    /// Waits for every training thread to return.
    pub fn join_all(&self) {
        let handles: Vec<_> = self
            .jobs
            .lock()
            .expect("jobs")
            .values()
            .filter_map(|j| j.handle.lock().expect("handle").take())
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

/// The train form: a built-in experiment or the default config, then the knobs, each applied
/// as `seqcalc train`'s flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub name: Option<String>,
    pub experiment: Option<String>,
    #[serde(default)]
    pub quick: bool,
    pub task: Option<String>,
    pub digits: Option<usize>,
    pub op: Option<String>,
    pub arch: Option<String>,
    pub cell: Option<String>,
    pub layers: Option<usize>,
    pub hidden: Option<usize>,
    pub decoder: Option<String>,
    #[serde(default)]
    pub attention: bool,
    pub size: Option<usize>,
    pub batch_size: Option<usize>,
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    pub lr: Option<f64>,
    pub patience: Option<usize>,
    pub seed: Option<u64>,
}

impl Form {
    /// The run config the form asks for, as `seqcalc train` (or `experiment run`) would build
    /// it from the same flags, on one thread.
    pub fn config(&self) -> Result<RunConfig, String> {
        let mut cfg = match &self.experiment {
            Some(e) => seqcalc::experiment::find(e)
                .ok_or_else(|| format!("no built-in experiment called {e:?}"))?
                .run_config(self.quick),
            None => RunConfig::Seq2seq(seqcalc::config::ExperimentConfig::default()),
        };
        let mut flags = RunFlags {
            task: self.task.clone(),
            digits: self.digits,
            op: self.op.clone(),
            arch: self.arch.clone(),
            cell: self.cell.clone(),
            layers: self.layers,
            hidden: self.hidden,
            decoder: self.decoder.clone(),
            attention: self.attention,
            size: self.size,
            batch_size: self.batch_size,
            epochs: self.epochs,
            steps: self.steps,
            lr: self.lr,
            patience: self.patience,
            seed: self.seed,
            ..RunFlags::default()
        };
        check_choices(&flags)?;
        if accepted(cfg.kind()).contains(&"threads") {
            flags.threads = Some(1);
        }
        flags.apply(&mut cfg).map_err(|e| format!("{e:#}"))?;
        if let Some(n) = &self.name {
            cfg.set_name(n);
        }
        seqcalc::rundir::validate_name(cfg.name())?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

/// The choices clap checks for `train`'s flags, checked here for the form.
fn check_choices(f: &RunFlags) -> Result<(), String> {
    let choices: [(&str, &Option<String>, &[&str]); 5] = [
        ("task", &f.task, &["arithmetic", "pq-system", "expression"]),
        ("op", &f.op, &["+", "-"]),
        ("arch", &f.arch, &["repeat-seq2seq", "transformer"]),
        ("cell", &f.cell, &["lstm", "gru", "simplernn"]),
        ("decoder", &f.decoder, &["repeat", "teacher-forced"]),
    ];
    for (what, v, ok) in choices {
        if let Some(v) = v {
            if !ok.contains(&v.as_str()) {
                return Err(format!("{what} {v:?} is not one of {}", ok.join(", ")));
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
pub struct Started {
    pub name: String,
}

/// `POST /api/train`: starts a training from the form.
pub async fn start(
    State(app): State<Shared>,
    Json(form): Json<Form>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let cfg = form.config().map_err(ApiError::bad)?;
    let name = cfg.name().to_string();
    let dir = seqcalc::rundir::run_path(&app.runs_dir, &name)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    if std::fs::symlink_metadata(&dir).is_ok() {
        return Err(ApiError::conflict(format!(
            "a run called {name:?} already exists: choose another name, or open it and resume it"
        )));
    }
    app.trainer.spawn(&name, cfg, dir.clone(), Open::New)?;
    started(&app, &name, &dir).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { name })))
}

/// Waits until a new run has written its config (its page can then be shown), or its
/// training ended first (an error is told here), for at most a few seconds.
async fn started(app: &super::App, name: &str, dir: &std::path::Path) -> ApiResult<()> {
    for _ in 0..600 {
        if dir.join(seqcalc::rundir::CONFIG).is_file() {
            return Ok(());
        }
        match app.trainer.live(name) {
            Some(l) if l.state == "failed" => {
                return Err(ApiError::bad(
                    l.error.unwrap_or_else(|| "the training failed".into()),
                ))
            }
            Some(l) if !matches!(l.state, "starting" | "training" | "stopping") => return Ok(()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    Ok(())
}

/// `POST /api/runs/{name}/stop`: the run checkpoints after its current batch and stops, whether
/// this server trains it or a `seqcalc` process elsewhere on the machine (signalled as Ctrl-C).
pub async fn stop(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let dir = run_dir(&app, &name)?;
    if let Some(job) = app.trainer.job(&name).filter(|j| j.active()) {
        job.stop.store(true, Ordering::SeqCst);
        job.update(|l| l.state = "stopping");
        return Ok((StatusCode::ACCEPTED, Json(Started { name })));
    }
    // A training started elsewhere (`seqcalc train` in a shell) is asked to stop as Ctrl-C
    // asks it: SIGTERM to the seqcalc process that holds the run's lock, which checkpoints.
    let pid = seqcalc::rundir::lock_holder(&dir)
        .ok_or_else(|| ApiError::conflict(format!("{name:?} is not training")))?;
    if pid == std::process::id() {
        return Err(ApiError::conflict(format!("{name:?} is finishing")));
    }
    if !is_seqcalc(pid) {
        return Err(ApiError::conflict(format!(
            "{name:?} is locked by process {pid}, which is not seqcalc; stop it where it runs"
        )));
    }
    // SAFETY: kill(2) with a pid and a signal number has no memory effects.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } != 0 {
        return Err(ApiError::conflict(format!(
            "could not signal process {pid} training {name:?}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(Started { name })))
}

/// Whether process `pid` runs a seqcalc binary (its executable's file name starts with
/// "seqcalc"), so the server signals nothing else, whatever a lock file says.
fn is_seqcalc(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("seqcalc"))
}

/// Optional body of a resume: a new epoch bound (as `train --resume --epochs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeForm {
    pub epochs: Option<usize>,
}

/// `POST /api/runs/{name}/resume`: continues the run from its checkpoint, as
/// `seqcalc train --resume` does.
pub async fn resume(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let dir = run_dir(&app, &name)?;
    let form: ResumeForm = if body.iter().all(u8::is_ascii_whitespace) {
        ResumeForm::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("resume takes {{\"epochs\": N}}: {e}")))?
    };
    let mut cfg = seqcalc::run::load_config(&dir).map_err(|e| ApiError::bad(e.to_string()))?;
    let flags = RunFlags {
        epochs: form.epochs,
        ..RunFlags::default()
    };
    flags
        .apply_on_resume(&mut cfg)
        .map_err(|e| ApiError::bad(format!("{e:#}")))?;
    if let RunConfig::Seq2seq(c) = &mut cfg {
        // One core per training; the thread count changes no bit of the results.
        c.train.threads = 1;
    }
    cfg.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    app.trainer.spawn(&name, cfg, dir, Open::Resume)?;
    Ok((StatusCode::ACCEPTED, Json(Started { name })))
}

#[derive(Serialize)]
pub struct Status {
    pub slots: usize,
    pub running: Vec<String>,
}

/// `GET /api/trainings`: the slots and the trainings running now.
pub async fn status(State(app): State<Shared>) -> Json<Status> {
    Json(Status {
        slots: app.trainer.slots,
        running: app.trainer.running(),
    })
}

#[derive(Serialize)]
pub struct ExperimentInfo {
    pub name: &'static str,
    pub kind: String,
    pub reproduces: &'static str,
    pub expected_time: &'static str,
}

/// `GET /api/experiments`: the built-in experiments the form can start.
pub async fn experiments() -> Json<Vec<ExperimentInfo>> {
    Json(
        seqcalc::experiment::all()
            .into_iter()
            .map(|e| ExperimentInfo {
                name: e.name,
                kind: e.kind().to_string(),
                reproduces: e.reproduces,
                expected_time: e.expected_time,
            })
            .collect(),
    )
}
