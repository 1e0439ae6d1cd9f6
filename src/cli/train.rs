//! `seqcalc train`: one command for every run kind. The config (built in, from `--config`, or
//! the run's own on `--resume`) takes the flags its kind understands, trains, and leaves a run
//! directory with a manifest.

use super::flags::RunFlags;
use super::{read_config, signals};
use anyhow::Result;
use clap::Args;
use seqcalc::config::ExperimentConfig;
use seqcalc::run::{self, RunConfig};
use seqcalc::rundir::Open;
use seqcalc::training::Trained;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct TrainArgs {
    /// Run config (TOML or JSON, any run kind; `-` or /dev/stdin reads a pipe); flags override
    /// it. Default: the Keras 3-digit addition experiment.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run name: the run directory is <runs-dir>/<name> (default: the config's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Continue the stopped run in this directory (same weights as an uninterrupted run).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "name", "restart"])]
    pub resume: Option<PathBuf>,
    /// Start the run over if its directory already holds one (its files are removed first).
    #[arg(long)]
    pub restart: bool,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub flags: RunFlags,
}

pub fn exec(a: TrainArgs) -> Result<ExitCode> {
    if let Some(dir) = &a.resume {
        let mut cfg = run::load_config(dir)?;
        a.flags.apply_on_resume(&mut cfg)?;
        cfg.validate()?;
        if a.print_config {
            print!("{}", cfg.to_toml());
            return Ok(ExitCode::SUCCESS);
        }
        train(cfg, dir, Open::Resume)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut cfg = match &a.config {
        Some(p) if p.as_os_str() == "-" => read_config(Path::new("/dev/stdin"))?,
        Some(p) => read_config(p)?,
        None => RunConfig::Seq2seq(ExperimentConfig::default()),
    };
    a.flags.apply(&mut cfg)?;
    if let Some(n) = &a.name {
        cfg.set_name(n);
    }
    let dir = seqcalc::rundir::run_path(&a.runs_dir, cfg.name())?;
    cfg.validate()?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let open = if a.restart { Open::Restart } else { Open::New };
    train(cfg, &dir, open)?;
    Ok(ExitCode::SUCCESS)
}

/// Trains a run of any kind into `dir` (or resumes it), printing as it goes, and writes the
/// run's manifest when training returns. Stops cleanly on the first Ctrl-C or SIGTERM.
pub fn train(cfg: RunConfig, dir: &Path, open: Open) -> Result<Trained> {
    signals::cooperate();
    seqcalc::training::train_with(cfg, dir, open, &signals::STOP, None).map_err(Into::into)
}
