//! `seqcalc bench`: times the training step and batched inference of a seq2seq model, and the
//! machine's GEMM peak.

use super::flags::RunFlags;
use super::read_config;
use anyhow::{bail, Result};
use clap::Args;
use seqcalc::config::ExperimentConfig;
use seqcalc::run::RunConfig;
use seqcalc::task::TaskKind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BenchArgs {
    /// Start from this seq2seq config (default: the 3-digit reference model).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds of timed training steps, and as many of timed inference.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Examples per epoch for the s/epoch figure.
    #[arg(long, default_value_t = 45_000)]
    pub epoch_examples: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: RunFlags,
}

pub fn exec(a: BenchArgs) -> Result<ExitCode> {
    let cfg = match &a.config {
        None => ExperimentConfig::default(),
        Some(p) => match read_config(p)? {
            RunConfig::Seq2seq(c) => c,
            other => bail!(
                "{}: `bench` times seq2seq models; this is a {} config",
                p.display(),
                other.kind()
            ),
        },
    };
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        bail!("--seconds {} must be in (0, 3600]", a.seconds);
    }
    if a.epoch_examples == 0 || a.epoch_examples > 100_000_000 {
        bail!(
            "--epoch-examples {} must be in 1..=100000000",
            a.epoch_examples
        );
    }
    let shaping: Vec<&str> = seq2seq_flags_without(&[
        "epochs",
        "patience",
        "stop-at-exact",
        "samples",
        "schedule",
        "lr",
        "size",
    ]);
    a.flags
        .refuse_others(&shaping, "`bench` (it times one model's step)")?;
    let mut cfg = cfg;
    a.flags.apply_seq2seq(&mut cfg)?;
    // Each thread times its own 1024^3 GEMM for the peak: more threads than cores only time
    // the scheduler, and the work grows with the count (256 threads on 2 cores: a minute).
    let cores = seqcalc::parallel::default_threads();
    if cfg.threads() > cores {
        bail!(
            "--threads {} must be at most {cores} (the cores of this machine) for `bench`",
            cfg.threads()
        );
    }
    let (_, model) = cfg.build()?;
    let bc = seqcalc::bench::BenchConfig {
        batch: cfg.train.batch_size,
        threads: cfg.threads(),
        seconds: a.seconds,
        epoch_examples: a.epoch_examples,
    };
    let task = match cfg.task.kind {
        TaskKind::PqSystem => format!("pq-system up to {} dashes", cfg.task.pq_max),
        TaskKind::Arithmetic => format!("{}-digit {}", cfg.task.digits, cfg.task.op),
        TaskKind::Expression => cfg.task.describe(),
    };
    let name = format!(
        "{task}: {}, T_in {}, T_out {}",
        model.describe(),
        model.t_in,
        model.t_out
    );
    let rep = seqcalc::bench::run(model, &name, &bc);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.to_table());
    }
    Ok(ExitCode::SUCCESS)
}

/// The seq2seq flags but these.
fn seq2seq_flags_without(drop: &[&str]) -> Vec<&'static str> {
    super::flags::accepted(seqcalc::run::RunKind::Seq2seq)
        .iter()
        .copied()
        .filter(|f| !drop.contains(f))
        .collect()
}
