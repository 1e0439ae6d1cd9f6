//! `seqcalc sweep`: a grid of seq2seq configurations over several seeds on all cores; a table
//! of fresh exact match per cell and a heatmap. Rerunning the same command resumes it.

use super::flags::RunFlags;
use super::{read_config, signals};
use anyhow::{bail, Context, Result};
use clap::Args;
use seqcalc::config::ExperimentConfig;
use seqcalc::report;
use seqcalc::run::RunConfig;
use seqcalc::sweep;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct SweepArgs {
    /// Base experiment config (TOML); default: the Keras 3-digit addition experiment.
    #[arg(long, conflicts_with = "experiment")]
    config: Option<PathBuf>,
    /// Base config from a built-in experiment instead (see `seqcalc experiment list`).
    #[arg(long)]
    experiment: Option<String>,
    /// A grid axis, key=v1,v2,... (repeat for more axes). Keys: digits, min_digits, terms, ops,
    /// brackets, hidden, layers, cell, decoder, attention, input, embed_dim, mask, reverse,
    /// reverse_output, lr, batch_size, epochs, size, or a config path such as optim.clip_norm.
    #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
    grid: Vec<String>,
    /// Seeds per cell: the base seed, +1, +2, ...
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// The sweep's directory is <runs-dir>/<name>.
    #[arg(long, default_value = "sweep")]
    name: String,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Runs at once (default: one per core divided by --threads).
    #[arg(long)]
    parallel: Option<usize>,
    /// Fresh questions each run is scored on.
    #[arg(long, default_value_t = 1000)]
    eval_n: usize,
    /// Validation exact match counted as "reached" (epochs and seconds to it).
    #[arg(long, default_value_t = 0.99)]
    target: f64,
    #[command(flatten)]
    ray: RayFlags,
    #[command(flatten)]
    flags: RunFlags,
}

/// Training the runs on a Ray cluster instead of this machine (see docs/distributed.md).
#[derive(Args, Clone, Debug, Default)]
pub struct RayFlags {
    /// Train the runs as tasks on the Ray cluster at ADDRESS (auto, HOST:PORT of its head, or
    /// ray://HOST:PORT); --runs-dir must be on storage every node mounts at the same path.
    /// --parallel then caps the runs in flight (default: as many as the cluster holds).
    #[arg(long, value_name = "ADDRESS", help_heading = "Ray cluster")]
    pub ray: Option<String>,
    /// A Python that can import ray [default: python3].
    #[arg(
        long,
        requires = "ray",
        value_name = "PATH",
        help_heading = "Ray cluster"
    )]
    pub python: Option<PathBuf>,
    /// The seqcalc binary's path on every node [default: this binary travels with the job].
    #[arg(
        long,
        requires = "ray",
        value_name = "PATH",
        help_heading = "Ray cluster"
    )]
    pub ray_binary: Option<PathBuf>,
    /// Times a run lost with its node is started again elsewhere, from its last checkpoint
    /// [default: 3].
    #[arg(long, requires = "ray", value_name = "N", help_heading = "Ray cluster")]
    pub ray_retries: Option<u32>,
}

impl RayFlags {
    /// Where the runs train: on the cluster with at most `parallel` in flight, or here; the
    /// cluster's options checked before anything is written.
    pub fn executor(&self, parallel: Option<usize>) -> Result<sweep::Executor> {
        let Some(address) = &self.ray else {
            return Ok(sweep::Executor::Local);
        };
        let ray = sweep::ray::RayOptions {
            address: address.clone(),
            python: self
                .python
                .clone()
                .unwrap_or_else(|| PathBuf::from("python3")),
            binary: self.ray_binary.clone(),
            retries: self.ray_retries.unwrap_or(3),
            max_in_flight: parallel,
        };
        ray.validate()?;
        Ok(sweep::Executor::Ray(ray))
    }
}

pub fn exec(a: SweepArgs) -> Result<ExitCode> {
    let base = match (&a.experiment, &a.config) {
        (Some(name), _) => super::experiment::find(name)?.run_config(false),
        (None, Some(p)) => read_config(p)?,
        (None, None) => RunConfig::Seq2seq(ExperimentConfig::default()),
    };
    let mut base = match base {
        RunConfig::Seq2seq(c) => c,
        other => bail!(
            "a sweep trains seq2seq runs; {} is a {} config",
            other.name(),
            other.kind()
        ),
    };
    a.flags.apply_seq2seq(&mut base)?;
    if a.seeds == 0 || a.seeds > 1000 {
        bail!("--seeds {} must be in 1..=1000", a.seeds);
    }
    if a.eval_n > 10_000_000 {
        bail!("--eval-n {} must be at most 10000000", a.eval_n);
    }
    seqcalc::rundir::validate_name(&a.name).map_err(anyhow::Error::msg)?;
    if !(0.0..=1.0).contains(&a.target) {
        bail!("--target {} must be in [0, 1]", a.target);
    }
    if a.eval_n == 0 {
        bail!("--eval-n must be at least 1");
    }
    let axes = a
        .grid
        .iter()
        .map(|g| sweep::Axis::parse(g))
        .collect::<Result<Vec<_>, _>>()?;
    let jobs = sweep::expand(&base, &axes, a.seeds)?;
    let cores = seqcalc::parallel::default_threads();
    let threads = if base.train.threads == 0 {
        1
    } else {
        base.train.threads
    };
    let executor = a.ray.executor(a.parallel)?;
    // On a cluster, --parallel caps the runs in flight (checked with the cluster's options).
    let parallel = match executor {
        sweep::Executor::Local => a.parallel.unwrap_or((cores / threads).max(1)),
        sweep::Executor::Ray(_) => 1,
    };
    if parallel == 0 || parallel > seqcalc::parallel::MAX_THREADS {
        bail!(
            "--parallel {parallel} must be in 1..={}",
            seqcalc::parallel::MAX_THREADS
        );
    }
    let dir = a.runs_dir.join(&a.name);
    let spec = sweep::Spec {
        axes: axes.clone(),
        seeds: a.seeds,
        eval_n: a.eval_n,
        target: a.target,
        base: base.clone(),
    };
    sweep::prepare(&spec, &dir)?;
    let already = sweep::read_results(&dir).len();
    let where_ = match &a.ray.ray {
        None => format!("{parallel} at a time"),
        Some(address) => format!("on the Ray cluster at {address}"),
    };
    println!(
        "Sweep {}: {} cells x {} seeds = {} runs ({} done before), {where_} with {threads} thread{} each",
        dir.display(),
        jobs.len() / a.seeds,
        a.seeds,
        jobs.len(),
        already.min(jobs.len()),
        if threads == 1 { "" } else { "s" }
    );
    signals::cooperate();
    let opts = sweep::Options {
        dir: dir.clone(),
        parallel,
        threads,
        eval_n: a.eval_n,
        target: a.target,
    };
    let results = sweep::run_on(
        &executor,
        &jobs,
        &opts,
        &signals::STOP,
        &mut |r, done, total| {
            let what = match (&r.error, r.fresh_exact) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, Some(x)) => format!(
                    "fresh exact {x:.4}, best val exact {:.4}, {} epochs, {:.0} s",
                    r.best_val_exact, r.epochs, r.seconds
                ),
                (None, None) => "no score".into(),
            };
            println!("[{done}/{total}] {}: {what}", r.id);
        },
    )?;
    if signals::stopped() {
        eprintln!(
            "Interrupted after {} of {} runs; rerun the same command to continue.",
            results.len(),
            jobs.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    let cells = sweep::summarise(&results);
    let mut table = sweep::table(&axes, &cells, a.target);
    if let Some(note) = sweep::kernel_note(&results) {
        table.push_str(&format!("\n{note}\n"));
    }
    let md = format!(
        "# Sweep {}\n\nBase: {} ({}); {} seed{} per cell (from {}); exact match on {} fresh questions per run (never seen in training or validation); \"reached\" counts runs whose validation exact match reached {}.\n\n{table}",
        a.name,
        base.name,
        base.description,
        a.seeds,
        if a.seeds == 1 { "" } else { "s" },
        base.seed,
        a.eval_n,
        a.target
    );
    seqcalc::fsutil::write_atomic(&dir.join("sweep.md"), md.as_bytes())
        .with_context(|| format!("writing {}", dir.join("sweep.md").display()))?;
    let (rows, cols, values, texts) = sweep::heatmap_grid(&axes, &cells);
    let title = format!("fresh exact match, mean over {} seeds", a.seeds);
    report::plot_heatmap(
        &report::Heatmap {
            title: &title,
            rows: &rows,
            cols: &cols,
            values: &values,
            texts: &texts,
        },
        &dir.join("heatmap.svg"),
        &dir.join("heatmap.png"),
    )?;
    println!("\n{table}");
    println!(
        "Wrote {0}/sweep.md, {0}/heatmap.svg and .png, {0}/results.jsonl",
        dir.display()
    );
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} runs failed (see above and {}/results.jsonl)",
            results.len(),
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
