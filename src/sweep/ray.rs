//! A sweep's runs as tasks on a Ray cluster.
//!
//! Only the training moves: the sweep is planned ([`super::expand`]), recorded
//! (`results.jsonl`, appended by [`super::run_on`] as each run finishes) and summarised here,
//! exactly as on one machine. A small Python driver ([`DRIVER`], `ray/seqcalc_ray.py` in the
//! repository, built into the binary) connects to the cluster and submits one task per run
//! (`num_cpus` = the run's threads). Each task starts `seqcalc sweep-cell` on its node (this
//! binary, shipped with the job, or one at a path every node has), which trains the run into
//! the sweep directory with [`super::run_cell`], the code a local sweep runs, and prints its
//! result. The sweep directory must be on storage every node mounts at the same path, so
//! checkpoints are where any node can resume them.
//!
//! The driver reads its plan from a file: a setup line, then one line per run. It writes one
//! JSON line per event to its standard output (a run's result, a run's error, a fatal error,
//! the end). Closing its standard input asks it to stop: running runs checkpoint and stop.

use super::{run_cell, Job, Options, RunResult, SweepError, SPEC_FILE};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// The Python driver that submits the runs to Ray.
pub const DRIVER: &str = include_str!("../../ray/seqcalc_ray.py");

/// Most times a run lost with its node is tried again.
pub const MAX_RETRIES: u32 = 100;

/// How to reach the cluster and what to send it.
#[derive(Clone, Debug)]
pub struct RayOptions {
    /// The cluster: `auto`, `HOST:PORT` of its head, or `ray://HOST:PORT` (Ray Client).
    pub address: String,
    /// A Python that can import `ray`.
    pub python: PathBuf,
    /// The seqcalc binary's path on every node; `None`: this binary travels with the job.
    pub binary: Option<PathBuf>,
    /// Times a run lost with its node (or killed) is started again elsewhere; it resumes from
    /// its last checkpoint.
    pub retries: u32,
    /// Runs in flight at most; `None`: as many as the cluster has CPUs for.
    pub max_in_flight: Option<usize>,
}

impl RayOptions {
    /// Checks the options against their bounds.
    pub fn validate(&self) -> Result<(), SweepError> {
        use crate::config::limits;
        let spec = SweepError::Spec;
        if self.address.trim().is_empty() || self.address.contains(['\n', '\r']) {
            return Err(spec(format!(
                "--ray {:?}: give the cluster's address (auto, HOST:PORT or ray://HOST:PORT)",
                self.address
            )));
        }
        if self.retries > MAX_RETRIES {
            return Err(spec(format!(
                "--ray-retries {} must be at most {MAX_RETRIES}",
                self.retries
            )));
        }
        if let Some(n) = self.max_in_flight {
            limits::within("--parallel", n, 1, limits::RUNS).map_err(spec)?;
        }
        Ok(())
    }
}

/// What a node runs for one run of a sweep: `seqcalc sweep-cell` reads it as JSON on its
/// standard input and prints the [`RunResult`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellRequest {
    /// The sweep's directory, absolute, on storage every node mounts at the same path.
    pub dir: PathBuf,
    pub threads: usize,
    pub eval_n: usize,
    pub target: f64,
    pub job: Job,
}

impl CellRequest {
    /// The request for `job` of a sweep run with `opts`, its directory made absolute.
    pub fn new(job: &Job, opts: &Options) -> Result<CellRequest, SweepError> {
        let dir = std::path::absolute(&opts.dir).map_err(|e| {
            SweepError::Io(format!("could not resolve {}: {e}", opts.dir.display()))
        })?;
        Ok(CellRequest {
            dir,
            threads: opts.threads,
            eval_n: opts.eval_n,
            target: opts.target,
            job: job.clone(),
        })
    }

    /// Checks the numbers, and that the sweep directory is visible here (a node without the
    /// shared storage fails here, once, rather than training somewhere nobody reads).
    pub fn check(&self) -> Result<(), SweepError> {
        use crate::config::limits;
        let spec = SweepError::Spec;
        limits::within("threads", self.threads, 1, limits::THREADS).map_err(spec)?;
        limits::within("eval_n", self.eval_n, 1, limits::QUESTIONS).map_err(spec)?;
        limits::finite_within("target", self.target, 0.0, 1.0).map_err(spec)?;
        if !self.dir.is_absolute() || !self.dir.join(SPEC_FILE).is_file() {
            return Err(SweepError::Spec(format!(
                "the sweep directory {} is not on this node ({} missing); put it on storage every node mounts at the same path",
                self.dir.display(),
                SPEC_FILE
            )));
        }
        Ok(())
    }

    /// Trains (or resumes) the run and scores it, as a local sweep does.
    pub fn run(&self, interrupt: &AtomicBool) -> Result<RunResult, SweepError> {
        self.check()?;
        run_cell(
            &self.job,
            &self.dir,
            self.threads,
            self.eval_n,
            self.target,
            interrupt,
        )
    }
}

/// The first line of the driver's plan.
#[derive(Serialize)]
struct Setup<'a> {
    address: &'a str,
    /// The seqcalc binary: on every node (`ship` false), or here, to send with the job.
    binary: &'a Path,
    ship: bool,
    retries: u32,
    /// 0: no limit.
    max_in_flight: usize,
    cells: usize,
}

/// One line of the plan per run.
#[derive(Serialize)]
struct Cell<'a> {
    id: &'a str,
    num_cpus: usize,
    request: &'a CellRequest,
}

/// What the driver reports, one JSON line each.
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    /// A run finished (or stopped when asked to: its `error` is "interrupted").
    Result { id: String, result: RunResult },
    /// A run failed by a fault of its own (a bad config, no sweep directory on its node), or
    /// was lost more often than the retries allow: reported once, the sweep stops.
    Error { id: String, message: String },
    /// The driver cannot go on (no Ray, no cluster, a run no node can hold).
    Fatal { message: String },
    /// Every run is accounted for.
    Done,
}

/// A plan file in the temporary directory, removed when dropped.
struct PlanFile(PathBuf);

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Trains `todo` on the cluster, sending each result (or the first error) to `tx`. Returns
/// when every run is accounted for, or, once `interrupt` is set, when the driver has stopped
/// the running ones.
pub(super) fn run_cells(
    ray: &RayOptions,
    todo: &[&Job],
    opts: &Options,
    interrupt: &AtomicBool,
    tx: &Sender<Result<RunResult, SweepError>>,
) -> Result<(), SweepError> {
    if todo.is_empty() {
        return Ok(());
    }
    let io = |what: String| move |e: std::io::Error| SweepError::Io(format!("{what}: {e}"));
    let binary = match &ray.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(io("could not find this binary".into()))?,
    };
    let mut plan = serde_json::to_string(&Setup {
        address: &ray.address,
        binary: &binary,
        ship: ray.binary.is_none(),
        retries: ray.retries,
        max_in_flight: ray.max_in_flight.unwrap_or(0),
        cells: todo.len(),
    })
    .expect("setup serialises");
    plan.push('\n');
    for job in todo {
        let request = CellRequest::new(job, opts)?;
        let line = serde_json::to_string(&Cell {
            id: &job.id,
            num_cpus: opts.threads,
            request: &request,
        })
        .expect("cell serialises");
        plan.push_str(&line);
        plan.push('\n');
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let plan_file = PlanFile(std::env::temp_dir().join(format!(
        "seqcalc-ray-plan-{}-{nanos}.jsonl",
        std::process::id()
    )));
    crate::fsutil::write_atomic(&plan_file.0, plan.as_bytes())
        .map_err(io(format!("could not write {}", plan_file.0.display())))?;

    let mut child = Command::new(&ray.python)
        .arg("-c")
        .arg(DRIVER)
        .arg(&plan_file.0)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            SweepError::Spec(format!(
                "could not start {}: {e}; install Python 3 with Ray (pip install \"ray[default]\") or name one with --python",
                ray.python.display()
            ))
        })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let finished = AtomicBool::new(false);
    let mut saw_done = false;
    let mut fatal = None;
    std::thread::scope(|s| {
        // Closing the driver's standard input asks it to stop the running runs.
        s.spawn(|| {
            let _stdin = stdin;
            while !finished.load(Ordering::SeqCst) && !interrupt.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&line) {
                Ok(Event::Result { id, result }) if id == result.id => {
                    if tx.send(Ok(result)).is_err() {
                        break;
                    }
                }
                Ok(Event::Result { id, result }) => {
                    let _ = tx.send(Err(SweepError::Io(format!(
                        "the Ray driver sent the result of {} for run {id}",
                        result.id
                    ))));
                }
                Ok(Event::Error { id, message }) => {
                    let _ = tx.send(Err(SweepError::Io(format!("run {id}: {message}"))));
                }
                Ok(Event::Fatal { message }) => fatal = Some(message),
                Ok(Event::Done) => saw_done = true,
                // Anything else the driver's libraries print goes where people read it.
                Err(_) => eprintln!("{line}"),
            }
        }
        finished.store(true, Ordering::SeqCst);
    });
    let status = child
        .wait()
        .map_err(io("could not wait for the Ray driver".into()))?;
    if let Some(message) = fatal {
        return Err(SweepError::Spec(message));
    }
    if !saw_done && !interrupt.load(Ordering::SeqCst) {
        return Err(SweepError::Io(format!(
            "the Ray driver ended ({status}) before the sweep finished; rerun the same command to continue"
        )));
    }
    Ok(())
}
