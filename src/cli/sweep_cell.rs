//! `seqcalc sweep-cell`: one run of a sweep, for a cluster's task (see `seqcalc::sweep::ray`).
//! Reads the run's request as JSON on standard input, trains (or resumes) the run into the
//! sweep directory with the code a local sweep runs, and prints its result as one JSON line.
//! Started by the Ray driver of `seqcalc sweep --ray`, not by people.

use super::signals;
use anyhow::{Context, Result};
use clap::Args;
use seqcalc::rundir;
use seqcalc::sweep::ray::CellRequest;
use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct SweepCellArgs {}

/// How long a run waits for an earlier attempt of itself (killed with its task, writing its
/// last checkpoint) to let go of the run directory.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub fn exec(_: SweepCellArgs) -> Result<ExitCode> {
    if !stay_with_parent() {
        return Ok(ExitCode::from(143));
    }
    let mut text = String::new();
    std::io::stdin()
        .take(seqcalc::config::limits::INPUT_BYTES)
        .read_to_string(&mut text)
        .context("reading the run's request on standard input")?;
    let request: CellRequest =
        serde_json::from_str(&text).context("the run's request on standard input")?;
    request.check()?;
    let dir = rundir::run_path(&request.dir.join("runs"), &request.job.cfg.name)?;
    wait_for_lock(&dir);
    signals::cooperate();
    let result = request.run(&signals::STOP)?;
    println!(
        "{}",
        serde_json::to_string(&result).expect("result serialises")
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks the kernel for SIGTERM when the task that started this process dies (its node lost):
/// the run then checkpoints and stops instead of training on where nobody waits for it.
/// False when that task is already gone.
fn stay_with_parent() -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let parent = std::env::var("SEQCALC_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    // SAFETY: getppid has no preconditions.
    parent.is_none_or(|p| p == unsafe { libc::getppid() })
}

/// Waits (up to [`LOCK_WAIT`]) until no other process holds `dir`'s lock; training then takes
/// it. A lock still held after that is reported by training as usual.
fn wait_for_lock(dir: &std::path::Path) {
    if !dir.is_dir() {
        return;
    }
    let t0 = Instant::now();
    while t0.elapsed() < LOCK_WAIT {
        if rundir::RunLock::acquire(dir).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
