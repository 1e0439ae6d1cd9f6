//! The `seqcalc` command line: parses arguments, builds configs, calls the library, sets exit
//! codes (0 ok, 1 failed predictions, 2 usage or data errors).

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use seqcalc::config::ExperimentConfig;
use seqcalc::data::Dataset;
use seqcalc::model::{Engine, ModelKind};
use seqcalc::report;
use seqcalc::rundir;
use seqcalc::task::{self, TaskKind};
use seqcalc::train::{self, Event};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod lengthgen_cli;

#[derive(Parser)]
#[command(
    name = "seqcalc",
    version,
    about = "Teach neural networks arithmetic as character-level sequence-to-sequence translation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model (default: the Keras addition_rnn experiment, 3-digit addition).
    ///
    /// Example: seqcalc train --digits 3 --cell gru --name add3-gru
    Train(TrainArgs),
    /// Answer questions with a trained model.
    ///
    /// Example: seqcalc predict --model runs/keras-addition "12+345" "7+8"
    Predict(PredictArgs),
    /// Score a trained model on fresh questions it never saw.
    ///
    /// Example: seqcalc eval --model runs/keras-addition --n 10000 --seed 7
    Eval(EvalArgs),
    /// Built-in experiments reproducing the tutorials: list, show (as TOML), run.
    ///
    /// Example: seqcalc experiment run keras-addition-gru --quick
    Experiment {
        #[command(subcommand)]
        cmd: ExperimentCmd,
    },
    /// Overlay the curves of several runs in one picture and print their final metrics.
    ///
    /// Example: seqcalc compare runs/keras-addition runs/keras-addition-gru --out compare
    Compare(CompareArgs),
    /// Time the training step and batched inference, and the machine's GEMM peak.
    ///
    /// Example: seqcalc bench --threads 2 --json
    Bench(BenchArgs),
    /// Write generated questions and answers (what a model trains on) as CSV or JSON lines.
    ///
    /// Example: seqcalc data --digits 3 --op + --n 1000 --format csv
    Data(DataArgs),
    /// Train a grid of configurations over several seeds on all cores; writes a table (mean and
    /// spread of fresh exact match per cell) and a heatmap. Rerun the same command to resume.
    ///
    /// Example: seqcalc sweep --grid hidden=32,64,128 --grid digits=3,5,8 --seeds 3
    Sweep(SweepArgs),
}

#[derive(Args)]
struct SweepArgs {
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
    over: Overrides,
    #[command(flatten)]
    fit: FitOverrides,
}

/// Flags that override the experiment config.
#[derive(Args, Default)]
struct Overrides {
    /// Longest operand in digits.
    #[arg(long)]
    digits: Option<usize>,
    /// Shortest operand in digits (default 1); above 1 every operand has at least this many.
    #[arg(long)]
    min_digits: Option<usize>,
    /// Operator: + or -.
    #[arg(long)]
    op: Option<String>,
    /// Task kind: arithmetic, pq-system or expression.
    #[arg(long)]
    task: Option<String>,
    /// Expression: operands per question, N or a range N..M (inclusive: 2..4 mixes 2, 3 and 4).
    #[arg(long, value_parser = parse_terms, value_name = "N|N..M")]
    terms: Option<(usize, usize)>,
    /// Expression: the operators to draw from, a subset of "+-*".
    #[arg(long)]
    ops: Option<String>,
    /// Expression: the deepest bracket nesting (0: no brackets).
    #[arg(long)]
    brackets: Option<usize>,
    /// Question width the model reads (default: the task's longest question); set it wider to
    /// evaluate later on longer operands or more terms than training draws.
    #[arg(long)]
    input_len: Option<usize>,
    /// Answer width the model writes (default: the task's longest answer).
    #[arg(long)]
    output_len: Option<usize>,
    /// Random seed (data, initialisation, shuffling).
    #[arg(long)]
    seed: Option<u64>,
    /// Questions generated (training + validation).
    #[arg(long)]
    size: Option<usize>,
    /// Recurrent cell: lstm, gru or simplernn.
    #[arg(long)]
    cell: Option<String>,
    /// Hidden units of every recurrent layer.
    #[arg(long)]
    hidden: Option<usize>,
    /// Decoder layers.
    #[arg(long)]
    layers: Option<usize>,
    /// pq-system: a and b go up to this many dashes.
    #[arg(long)]
    pq_max: Option<usize>,
    /// Decoder: repeat (Keras RepeatVector) or teacher-forced (feeds back the previous symbol,
    /// starts from the encoder's state, answers end with '$').
    #[arg(long)]
    decoder: Option<String>,
    /// Architecture: repeat-seq2seq (the RNN models) or transformer (decoder-only; --hidden is
    /// its width, --layers its blocks)
    #[arg(long)]
    kind: Option<String>,
    /// Transformer: attention heads (must divide --hidden)
    #[arg(long)]
    heads: Option<usize>,
    /// Transformer: feed-forward width (default 4 x --hidden)
    #[arg(long)]
    ffn: Option<usize>,
    /// Luong attention over the encoder's outputs.
    #[arg(long)]
    attention: bool,
    /// How questions enter the encoder: one-hot or embedding (integer encoding).
    #[arg(long)]
    input: Option<String>,
    /// Embedding width for --input embedding.
    #[arg(long)]
    embed_dim: Option<usize>,
    /// Write answers least significant digit first (the model's side only: answers print as usual).
    #[arg(long)]
    reverse_output: bool,
    /// Expressions: the model writes its work (each operation's result, partial products for
    /// long multiplications) before the answer; answers print as usual.
    #[arg(long)]
    scratchpad: bool,
    /// Leave padding out: the encoder skips pad steps and the loss stops at the answer's end
    /// symbol ('$', turned on by this).
    #[arg(long)]
    mask: bool,
}

impl Overrides {
    fn apply(&self, cfg: &mut ExperimentConfig) -> Result<()> {
        if let Some(t) = &self.task {
            cfg.task.kind = match t.as_str() {
                "arithmetic" => TaskKind::Arithmetic,
                "pq-system" | "pq" => TaskKind::PqSystem,
                "expression" => TaskKind::Expression,
                _ => bail!("unknown task {t:?}; expected arithmetic, pq-system or expression"),
            };
        }
        if let Some(d) = self.digits {
            cfg.task.digits = d;
        }
        if let Some(d) = self.min_digits {
            cfg.task.min_digits = d;
        }
        let expression_flags =
            self.terms.is_some() || self.ops.is_some() || self.brackets.is_some();
        if expression_flags && cfg.task.kind != TaskKind::Expression {
            bail!(
                "--terms, --ops and --brackets are for the expression task: add --task expression"
            );
        }
        if self.op.is_some() && cfg.task.kind == TaskKind::Expression {
            bail!("--op is for the arithmetic task; the expression task takes --ops (e.g. --ops '+-*')");
        }
        if let Some((lo, hi)) = self.terms {
            (cfg.task.terms_min, cfg.task.terms_max) = (lo, hi);
        }
        if let Some(ops) = &self.ops {
            cfg.task.ops = ops.clone();
        }
        if let Some(b) = self.brackets {
            cfg.task.brackets = b;
        }
        if let Some(n) = self.input_len {
            cfg.codec.input_len = Some(n);
        }
        if let Some(n) = self.output_len {
            cfg.codec.output_len = Some(n);
        }
        if let Some(op) = &self.op {
            cfg.task.op = op.clone();
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if let Some(n) = self.size {
            cfg.data.size = n;
        }
        if let Some(c) = &self.cell {
            cfg.model.cell = c.parse().map_err(|e: String| anyhow!(e))?;
        }
        if let Some(h) = self.hidden {
            cfg.model.hidden = h;
        }
        if let Some(l) = self.layers {
            cfg.model.layers = l;
        }
        if let Some(m) = self.pq_max {
            cfg.task.pq_max = m;
        }
        if let Some(k) = &self.kind {
            cfg.model.kind = match k.as_str() {
                "repeat-seq2seq" | "rnn" => ModelKind::RepeatSeq2seq,
                "transformer" => ModelKind::Transformer,
                _ => bail!("unknown model kind {k:?}; expected repeat-seq2seq or transformer"),
            };
        }
        if let Some(h) = self.heads {
            cfg.model.heads = h;
        }
        if let Some(f) = self.ffn {
            cfg.model.ffn = Some(f);
        }
        if let Some(d) = &self.decoder {
            cfg.model.decoder = match d.as_str() {
                "repeat" => seqcalc::model::DecoderKind::Repeat,
                "teacher-forced" | "tf" => seqcalc::model::DecoderKind::TeacherForced,
                _ => bail!("unknown decoder {d:?}; expected repeat or teacher-forced"),
            };
        }
        if self.attention {
            cfg.model.attention = true;
        }
        if let Some(i) = &self.input {
            cfg.model.input = match i.as_str() {
                "one-hot" | "onehot" => seqcalc::model::InputKind::OneHot,
                "embedding" => seqcalc::model::InputKind::Embedding,
                _ => bail!("unknown input {i:?}; expected one-hot or embedding"),
            };
        }
        if let Some(d) = self.embed_dim {
            cfg.model.embed_dim = d;
        }
        if self.reverse_output {
            cfg.codec.reverse_output = true;
        }
        if self.scratchpad {
            cfg.codec.scratchpad = true;
        }
        if self.mask {
            cfg.model.mask = true;
        }
        Ok(())
    }
}

/// `--terms`: "3" or an inclusive range "2..4" (also written "2..=4").
fn parse_terms(s: &str) -> Result<(usize, usize), String> {
    let number = |t: &str| {
        t.trim().parse::<usize>().map_err(|_| {
            format!("{s:?} is not a number of terms: expected N or N..M, like 3 or 2..4")
        })
    };
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => {
            let n = number(s)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!(
            "the range {s:?} is empty: write the smaller count first"
        ));
    }
    Ok((lo, hi))
}

/// Flags that override the training settings.
#[derive(Args, Default)]
struct FitOverrides {
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule: constant (Keras) or warmup-cosine (over --epochs)
    #[arg(long, value_parser = ["constant", "warmup-cosine"])]
    schedule: Option<String>,
    /// Early-stopping patience in epochs (0 disables early stopping).
    #[arg(long)]
    patience: Option<usize>,
    /// Stop once validation exact match reaches this (e.g. 0.99).
    #[arg(long)]
    stop_at_exact: Option<f64>,
    /// Do not reverse the question (Keras reverses by default).
    #[arg(long)]
    no_reverse: bool,
    /// Worker threads (default: one per core); results are bit-identical for a given count.
    #[arg(long)]
    threads: Option<usize>,
    /// Validation questions shown after each epoch.
    #[arg(long)]
    samples: Option<usize>,
}

impl FitOverrides {
    fn apply(&self, cfg: &mut ExperimentConfig) {
        macro_rules! set {
            ($flag:expr, $field:expr) => {
                if let Some(v) = $flag {
                    $field = v;
                }
            };
        }
        set!(self.epochs, cfg.train.epochs);
        set!(self.batch_size, cfg.train.batch_size);
        set!(self.lr, cfg.optim.lr);
        match self.schedule.as_deref() {
            Some("warmup-cosine") => cfg.optim.schedule = seqcalc::optim::Schedule::WarmupCosine,
            Some(_) => cfg.optim.schedule = seqcalc::optim::Schedule::Constant,
            None => {}
        }
        set!(self.threads, cfg.train.threads);
        set!(self.samples, cfg.train.samples);
        set!(self.patience, cfg.train.patience);
        if self.stop_at_exact.is_some() {
            cfg.train.stop_at_exact = self.stop_at_exact;
        }
        if self.no_reverse {
            cfg.codec.reverse_input = false;
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Experiment config (TOML or JSON); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run name: the run directory is <runs-dir>/<name> (default: the experiment's name).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Continue the stopped run in this directory (same weights as an uninterrupted run).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "name"])]
    resume: Option<PathBuf>,
    /// Start the run in <runs-dir>/<name> over from scratch, removing what it holds.
    #[arg(long, conflicts_with = "resume")]
    restart: bool,
    #[command(flatten)]
    over: Overrides,
    #[command(flatten)]
    fit: FitOverrides,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// Run directory of a trained model.
    #[arg(long)]
    model: PathBuf,
    /// Questions as a person writes them, e.g. "12+345".
    questions: Vec<String>,
    /// Read one question per stdin line, write one JSON object per line.
    #[arg(long)]
    jsonl: bool,
    /// Also show which question characters each answer character attended to (models with
    /// attention).
    #[arg(long)]
    explain: bool,
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    /// Fresh questions to score (default 10,000; for a length-generalisation run, per length:
    /// default 500 up to 200 digits, 200 beyond).
    #[arg(long)]
    n: Option<usize>,
    /// Length-generalisation runs: operand lengths to score, e.g. 10,20,50,100,200,500,1000
    /// (the default).
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
    /// Length-generalisation runs: also score the carry-stress sets at each length.
    #[arg(long)]
    stress: bool,
    /// Length-generalisation runs: exact match over every pair (length of a, length of b) of
    /// these operand lengths, e.g. 1,5,10,20,50,100 (--n questions per cell, default 50),
    /// drawn as length-pairs.svg and .png in the run directory.
    #[arg(long, value_delimiter = ',')]
    heatmap: Option<Vec<usize>>,
    /// Length-generalisation runs, a diagnostic: multiply every attention head's learned
    /// length scale c by this factor before scoring (1 = the model as trained). Sharper
    /// attention at long lengths shows whether errors come from softmax dilution.
    #[arg(long)]
    sharpen: Option<f32>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    threads: Option<usize>,
    /// Evaluate on operands of up to this many digits instead of the training task's (they must
    /// fit the model's input width: train with --input-len to leave room).
    #[arg(long)]
    digits: Option<usize>,
    /// Evaluate on operands of at least this many digits: with --min-digits 4 --digits 5 after
    /// training on 1..=3 digits, every operand is longer than any seen in training.
    #[arg(long)]
    min_digits: Option<usize>,
    /// Expression: evaluate on this many operands (N or N..M) instead of the training task's.
    #[arg(long, value_parser = parse_terms, value_name = "N|N..M")]
    terms: Option<(usize, usize)>,
}

#[derive(Subcommand)]
enum ExperimentCmd {
    /// Name, what it reproduces, expected time.
    List,
    /// Print an experiment's config as TOML (edit it and pass it to `train --config`).
    Show { name: String },
    /// Run one or more experiments, one after the other, with a verdict for each.
    Run(Box<ExperimentRunArgs>),
}

#[derive(Args)]
struct ExperimentRunArgs {
    /// Experiment names (see `seqcalc experiment list`).
    #[arg(required = true)]
    names: Vec<String>,
    /// A tiny version that runs in seconds (to check it works, not to reproduce results).
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// compare-decoders: where report.md and its pictures go (default:
    /// <runs-dir>/compare-decoders/report).
    #[arg(long)]
    report_dir: Option<PathBuf>,
    #[command(flatten)]
    over: Overrides,
    #[command(flatten)]
    fit: FitOverrides,
    /// length-generalisation: optimiser steps (the learning-rate schedule spans them).
    #[arg(long)]
    steps: Option<usize>,
    /// length-generalisation: stop training after this many seconds (with --steps 0 the
    /// schedule spans this time instead, as the PyTorch references do).
    #[arg(long)]
    train_seconds: Option<f64>,
    /// length-generalisation-gru: fraction of training questions rewritten as carry-stress
    /// questions, half a + b = 10^L - 1 (no carry) and half a + b = 10^L (a carry through
    /// every column), the patterns random operands almost never show.
    #[arg(long)]
    stress_fraction: Option<f64>,
    /// length-generalisation: fraction of training batches whose operands (still of at most
    /// --digits digits) are zero-padded further, to a length uniform up to --pad-to.
    #[arg(long)]
    pad_fraction: Option<f64>,
    /// length-generalisation: the longest padded operand length of those batches.
    #[arg(long)]
    pad_to: Option<usize>,
    /// length-generalisation: local attention, each query seeing only keys within this
    /// coupled-position distance (0: every earlier key, as the PyTorch reference).
    #[arg(long)]
    local_window: Option<usize>,
}

#[derive(Args)]
struct CompareArgs {
    /// Run directories.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Picture path without extension: writes OUT.svg and OUT.png.
    #[arg(long, default_value = "compare")]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Start from this experiment config (default: the 3-digit reference model).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    over: Overrides,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds of timed training steps, and as many of timed inference.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Examples per epoch for the s/epoch figure.
    #[arg(long, default_value_t = 45_000)]
    epoch_examples: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    Csv,
    Jsonl,
}

#[derive(Args)]
struct DataArgs {
    /// Start from this experiment config's task.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    over: Overrides,
    #[arg(long, default_value_t = 1000)]
    n: usize,
    #[arg(long, value_enum, default_value = "csv")]
    format: DataFormat,
}

/// Set by the first Ctrl-C: training stops after the current batch with a checkpoint.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    // A second Ctrl-C ends the process at once.
    // SAFETY: signal() is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`seqcalc data ... | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE disposition at start-up, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A write past the file size limit (ulimit -f) raises SIGXFSZ, which would kill the process
    // mid-run with "File size limit exceeded"; ignored, the write fails with EFBIG and the run
    // stops with one error line naming the file, its previous version intact.
    #[cfg(unix)]
    // SAFETY: as above, at start-up.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Subnormal floats cost 60-100x per operation here; flush them on every kernel thread.
    seqcalc::nn::flush_denormals();
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| seqcalc::nn::flush_denormals())
        .build_global();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Train(a) => cmd_train(a),
        Cmd::Predict(a) => cmd_predict(a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Data(a) => cmd_data(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Experiment { cmd } => cmd_experiment(cmd),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Sweep(a) => cmd_sweep(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_config_file(path: &Option<PathBuf>) -> Result<ExperimentConfig> {
    match path {
        None => Ok(ExperimentConfig::default()),
        Some(p) => {
            let text = seqcalc::config::read_input(p)?;
            ExperimentConfig::parse(&text).with_context(|| format!("{}", p.display()))
        }
    }
}

fn cmd_train(a: TrainArgs) -> Result<ExitCode> {
    if let Some(dir) = &a.resume {
        if seqcalc::lengthgen::is_run(dir) {
            let cfg = seqcalc::lengthgen::load_config(dir)?;
            #[cfg(unix)]
            // SAFETY: installing a handler that only stores to an atomic.
            unsafe {
                libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
            }
            lengthgen_cli::train_only(&cfg, dir, true, &INTERRUPTED)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut config_text = None;
    if let Some(path) = &a.config {
        let text = seqcalc::config::read_input(path)?;
        if lengthgen_cli::is_lengthgen_config(&text) {
            let mut cfg = seqcalc::lengthgen::LengthGenRunConfig::parse(&text)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            if let Some(n) = &a.name {
                cfg.name = n.clone();
            }
            if let Some(s) = a.over.seed {
                cfg.seed = s;
            }
            if let Some(t) = a.fit.threads {
                cfg.lengthgen.train.threads = t;
            }
            if a.print_config {
                cfg.build().map_err(|e| anyhow!(e))?;
                print!("{}", cfg.to_toml());
                return Ok(ExitCode::SUCCESS);
            }
            let dir = seqcalc::rundir::run_path(&a.runs_dir, &cfg.name)?;
            #[cfg(unix)]
            // SAFETY: installing a handler that only stores to an atomic.
            unsafe {
                libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
            }
            lengthgen_cli::train_only(&cfg, &dir, false, &INTERRUPTED)?;
            return Ok(ExitCode::SUCCESS);
        }
        config_text = Some(text);
    }
    let mut cfg = match (&a.config, config_text) {
        (Some(p), Some(text)) => {
            ExperimentConfig::parse(&text).with_context(|| format!("{}", p.display()))?
        }
        _ => ExperimentConfig::default(),
    };
    a.over.apply(&mut cfg)?;
    a.fit.apply(&mut cfg);
    if let Some(n) = &a.name {
        cfg.name = n.clone();
    }
    if a.print_config {
        cfg.build()?;
        print!("{}", cfg.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let (dir, open) = match &a.resume {
        Some(d) => (d.clone(), rundir::Open::Resume),
        None if a.restart => (
            rundir::run_path(&a.runs_dir, &cfg.name)?,
            rundir::Open::Restart,
        ),
        None => (rundir::run_path(&a.runs_dir, &cfg.name)?, rundir::Open::New),
    };
    run_training(cfg, &dir, open)?;
    Ok(ExitCode::SUCCESS)
}

/// Trains with the tutorial's printout: data statistics, an encoded example, the summary, a
/// progress bar and one line per epoch, sample questions, and where the run went.
fn run_training(
    cfg: ExperimentConfig,
    dir: &std::path::Path,
    open: rundir::Open,
) -> Result<train::Outcome> {
    // A question of this task for the closing hint ("12+345" fits only some tasks).
    // (pq questions start with '-', so they go after `--` or the flag parser takes them.)
    let example = match cfg.task.kind {
        TaskKind::PqSystem => "-- \"--p---\"".to_string(),
        _ => task::generate(&cfg.task, 1, 12_345)
            .ok()
            .and_then(|v| v.into_iter().next())
            .map_or_else(
                || "\"12+345\"".to_string(),
                |p| format!("\"{}\"", p.question),
            ),
    };
    let color = report::stdout_color();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut out = std::io::stdout();
    #[cfg(unix)]
    // SAFETY: installs a handler that only stores to an atomic and resets the disposition.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
    let outcome = train::run(cfg, dir, open, &INTERRUPTED, &mut |ev| match ev {
        Event::Start {
            cfg,
            model,
            codec,
            train,
            val,
            threads,
            resumed_at,
        } => {
            let _ = writeln!(out, "{}", data_statistics(train, val));
            if let Some(p) = train.problems.first() {
                // Long sequences (the pq-system's 2001 symbols) are shown as runs.
                let short = |t: &str| report::abbreviate(t, 60);
                let indices = |v: &[u8]| {
                    let shown: Vec<String> = v.iter().take(24).map(|i| i.to_string()).collect();
                    format!(
                        "[{}{}]",
                        shown.join(", "),
                        if v.len() > 24 {
                            format!(", ... {} in all", v.len())
                        } else {
                            String::new()
                        }
                    )
                };
                let _ = writeln!(
                    out,
                    "Example: \"{}\" -> \"{}\"",
                    short(&p.question),
                    short(&p.answer)
                );
                let syms: Vec<char> = codec.alphabet().chars().collect();
                let padded: String = train.input(0).iter().map(|&i| syms[i as usize]).collect();
                let _ = writeln!(
                    out,
                    "  encoded question (padded{}): \"{}\" = indices {}",
                    if codec.config().reverse_input {
                        ", reversed"
                    } else {
                        ""
                    },
                    short(&padded),
                    indices(train.input(0))
                );
                let _ = writeln!(
                    out,
                    "  as one-hot rows over `{}`: {}",
                    codec.alphabet(),
                    one_hot_preview(train.input(0), codec.vocab_size())
                );
                let _ = writeln!(
                    out,
                    "  encoded answer: indices {}",
                    indices(train.target(0))
                );
            }
            let _ = writeln!(out, "\n{}", model.summary());
            let _ = writeln!(
                out,
                "Training {} on {} questions, validating on {}, batch {}, {} threads, seed {}{}",
                cfg.name,
                train.n,
                val.n,
                cfg.train.batch_size,
                threads,
                cfg.seed,
                resumed_at.map_or(String::new(), |e| format!(", resumed after epoch {e}"))
            );
        }
        Event::EpochStart {
            epoch,
            epochs,
            examples,
        } => {
            bar = Some(report::epoch_bar(epoch, epochs, examples as u64));
        }
        Event::Progress { done } => {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        }
        Event::EpochEnd {
            record: r,
            samples,
            improved,
        } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            let _ = writeln!(
                out,
                "Epoch {:>3}  loss {:.4}  acc {:.4}  |  val_loss {:.4}  val_acc {:.4}  val_exact {:.4}  |  {:.2}s{}",
                r.epoch, r.train_loss, r.train_char_acc, r.val_loss, r.val_char_acc, r.val_exact, r.epoch_secs, if improved { "  *" } else { "" }
            );
            if !samples.is_empty() {
                let _ = write!(out, "{}", report::format_samples(samples, color, 60));
            }
        }
        Event::Stop { reason } => {
            let _ = writeln!(out, "Stopped: {reason}");
        }
    })?;
    if outcome.interrupted {
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "Interrupted: checkpoint written after {} full epochs and {} batches of the next.\nResume with: seqcalc train --resume {}",
            outcome.state.epochs_done,
            outcome.state.batches_done,
            outcome.dir.display()
        );
        return Ok(outcome);
    }
    if let Some(best) = outcome.best() {
        println!(
            "\nKept the weights of epoch {}: validation exact match {:.4}, per-character accuracy {:.4}, loss {:.4}",
            best.epoch, best.val_exact, best.val_char_acc, best.val_loss
        );
    }
    println!("Run directory: {}", outcome.dir.display());
    println!(
        "Next: seqcalc eval --model {0}   |   seqcalc predict --model {0} {example}",
        outcome.dir.display()
    );
    Ok(outcome)
}

fn one_hot_preview(row: &[u8], v: usize) -> String {
    row.iter()
        .take(3)
        .map(|&i| {
            (0..v)
                .map(|j| if j == i as usize { '1' } else { '0' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
        + if row.len() > 3 { " ..." } else { "" }
}

fn data_statistics(train: &Dataset, val: &Dataset) -> String {
    let all = train.problems.iter().chain(&val.problems);
    let (mut qn, mut qmin, mut qmax, mut qs, mut an, mut amin, mut amax, mut as_) =
        (0usize, usize::MAX, 0, 0usize, 0usize, usize::MAX, 0, 0usize);
    for p in all {
        let (q, a) = (p.question.chars().count(), p.answer.chars().count());
        qn += 1;
        qs += q;
        qmin = qmin.min(q);
        qmax = qmax.max(q);
        an += 1;
        as_ += a;
        amin = amin.min(a);
        amax = amax.max(a);
    }
    format!(
        "Data: {} questions ({} train, {} validation)\n  question length: average {:.2}, shortest {}, longest {}\n  answer length:   average {:.2}, shortest {}, longest {}",
        qn,
        train.n,
        val.n,
        qs as f64 / qn.max(1) as f64,
        qmin,
        qmax,
        as_ as f64 / an.max(1) as f64,
        amin,
        amax
    )
}

/// One line of `predict --jsonl` output, fields in this order.
#[derive(serde::Serialize)]
struct JsonlAnswer<'a> {
    input: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f64>,
    /// The worked answer (models trained with a scratchpad).
    #[serde(skip_serializing_if = "Option::is_none")]
    work: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `predict` on a mapping (regression) run: the rounded prediction and the raw value.
fn cmd_predict_mapping(a: PredictArgs) -> Result<ExitCode> {
    let run = seqcalc::regression::MappingRun::load(&a.model)?;
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut answer = |q: &str, out: &mut std::io::StdoutLock| -> Result<()> {
        let parsed = run.parse(q);
        let (output, value, error) = match &parsed {
            Ok(nums) => {
                let y = run.predict(std::slice::from_ref(nums))[0];
                (Some(format!("{}", y.round())), Some(y), None)
            }
            Err(e) => {
                failed = true;
                (None, None, Some(e.clone()))
            }
        };
        if a.jsonl {
            #[derive(serde::Serialize)]
            struct Line<'a> {
                input: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                output: Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                value: Option<f64>,
                #[serde(skip_serializing_if = "Option::is_none")]
                error: Option<String>,
            }
            let line = Line {
                input: q,
                output: output.clone(),
                value: value.map(|v| (v * 1e4).round() / 1e4),
                error: error.clone(),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            match (output, value, parsed) {
                (Some(o), Some(v), Ok(nums)) => {
                    let want: u64 = nums.iter().map(|&x| x as u64).sum();
                    let mark = if o == want.to_string() { "✓" } else { "✗" };
                    writeln!(
                        out,
                        "{} = {o}   (regression output {v:.3})  {mark}",
                        q.trim()
                    )?
                }
                _ => eprintln!("error: {q:?}: {}", error.unwrap_or_default()),
            }
        }
        Ok(())
    };
    if a.jsonl {
        if !a.questions.is_empty() {
            bail!("--jsonl reads questions from stdin; do not also pass them as arguments");
        }
        for line in std::io::stdin().lock().split(b'\n') {
            let line = line.context("reading stdin")?;
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            answer(&text, &mut out)?;
        }
    } else {
        if a.questions.is_empty() {
            bail!("no questions given; pass them as arguments (seqcalc predict --model DIR \"12+57\") or use --jsonl with stdin");
        }
        for q in &a.questions {
            answer(q, &mut out)?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `predict --explain`: for each answer step, the question characters it attended to most.
fn explain(
    engine: &mut Engine<f32>,
    run: &rundir::LoadedRun,
    question: &str,
    out: &mut impl Write,
) -> Result<()> {
    let (t_in, t_out) = (run.codec.input_len(), run.codec.output_len());
    let mut enc = vec![0u8; t_in];
    run.codec.encode_input(question, &mut enc)?;
    if engine.model.cfg.kind == ModelKind::Transformer {
        bail!("--explain shows the attention of RNN models trained with --attention; it does not read transformer heads yet");
    }
    let Some(w) = engine.attention_weights(&run.params, &enc, 1) else {
        bail!("--explain needs a model with attention (train with --attention)");
    };
    let chosen = engine.predict_indices(&run.params, &enc, 1);
    // Input position -> column of the question as typed (the model may read it reversed).
    let typed: Vec<char> = question.chars().collect();
    let column = |s: usize| -> Option<usize> {
        let pos = if run.codec.config().reverse_input {
            t_in - 1 - s
        } else {
            s
        };
        match run.codec.config().pad_side {
            seqcalc::codec::PadSide::Right => (pos < typed.len()).then_some(pos),
            seqcalc::codec::PadSide::Left => {
                let pad = t_in - typed.len();
                (pos >= pad).then(|| pos - pad)
            }
        }
    };
    writeln!(
        out,
        "  attention (output step: symbol <- question characters, column and weight){}",
        if run.codec.config().reverse_output {
            "; the model writes the answer backwards"
        } else {
            ""
        }
    )?;
    for s in 0..t_out {
        let sym = chosen[s];
        let row = &w[s * t_in..(s + 1) * t_in];
        let mut order: Vec<usize> = (0..t_in).collect();
        order.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
        let top: Vec<String> = order
            .iter()
            .take(3)
            .filter(|&&i| row[i] >= 0.05)
            .map(|&i| match column(i) {
                Some(c) => format!("{:?}@{} {:.2}", typed[c], c + 1, row[i]),
                None => format!("pad {:.2}", row[i]),
            })
            .collect();
        writeln!(
            out,
            "  {:>2}: {:?} <- {}",
            s + 1,
            run.codec.symbol(sym),
            top.join(", ")
        )?;
        if Some(sym) == run.codec.eos_index() {
            break;
        }
    }
    Ok(())
}

fn cmd_predict(a: PredictArgs) -> Result<ExitCode> {
    if seqcalc::regression::is_mapping_run(&a.model) {
        return cmd_predict_mapping(a);
    }
    if lengthgen_cli::is_run(&a.model) {
        return lengthgen_cli::predict(&a.model, &a.questions, a.jsonl, a.threads);
    }
    let run = rundir::load_run(&a.model)?;
    let threads = a.threads.unwrap_or(1);
    let mut engine: Engine<f32> = Engine::new(run.model.clone(), threads);
    let (t_in, t_out, v) = (
        run.codec.input_len(),
        run.codec.output_len(),
        run.codec.vocab_size(),
    );
    // Each question: Ok((answer, confidence, work)) or Err(message).
    type Answer = Result<(String, f64, Option<String>), String>;
    let answer_all = |engine: &mut Engine<f32>, qs: &[&str]| -> Vec<Answer> {
        let mut enc = Vec::new();
        let mut ok_rows = Vec::new();
        let mut results: Vec<Answer> = Vec::with_capacity(qs.len());
        let mut buf = vec![0u8; t_in];
        for (i, q) in qs.iter().enumerate() {
            match run.codec.encode_input(q.trim(), &mut buf) {
                Ok(()) => {
                    enc.extend_from_slice(&buf);
                    ok_rows.push(i);
                    results.push(Ok((String::new(), 0.0, None)));
                }
                Err(e) => results.push(Err(e.to_string())),
            }
        }
        if !ok_rows.is_empty() {
            let mut probs = Vec::new();
            engine.predict(&run.params, &enc, ok_rows.len(), &mut probs);
            for (k, &i) in ok_rows.iter().enumerate() {
                let row = &probs[k * t_out * v..(k + 1) * t_out * v];
                let (answer, confidence) = run.codec.decode_probs(row);
                results[i] = Ok((answer, confidence, run.codec.decode_probs_work(row)));
            }
        }
        results
    };
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if a.jsonl {
        if !a.questions.is_empty() {
            bail!("--jsonl reads questions from stdin; do not also pass them as arguments");
        }
        let stdin = std::io::stdin();
        // Lines waiting for an answer, in input order: the text, and whether it was valid UTF-8
        // (an invalid line is answered with an error in its place, never ahead of the lines
        // before it).
        let mut batch: Vec<(String, bool)> = Vec::new();
        let mut batch_bytes = 0usize;
        let rows = run
            .model
            .inference_rows(seqcalc::model::INFERENCE_BUDGET_BYTES);
        let mut flush = |batch: &mut Vec<(String, bool)>,
                         out: &mut std::io::StdoutLock,
                         failed: &mut bool|
         -> Result<()> {
            let qs: Vec<&str> = batch
                .iter()
                .filter(|(_, utf8)| *utf8)
                .map(|(q, _)| q.as_str())
                .collect();
            let mut answers = answer_all(&mut engine, &qs).into_iter();
            for (q, utf8) in batch.iter() {
                let r = match utf8 {
                    true => answers.next().expect("one answer per valid line"),
                    false => Err("line is not valid UTF-8".to_string()),
                };
                let line = match r {
                    Ok((ans, conf, work)) => JsonlAnswer {
                        input: q,
                        output: Some(ans),
                        confidence: Some((conf * 1e6).round() / 1e6),
                        work,
                        error: None,
                    },
                    Err(e) => {
                        *failed = true;
                        JsonlAnswer {
                            input: q,
                            output: None,
                            confidence: None,
                            work: None,
                            error: Some(e),
                        }
                    }
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
            batch.clear();
            Ok(())
        };
        for line in stdin.lock().split(b'\n') {
            let line = line.context("reading stdin")?;
            let utf8 = std::str::from_utf8(&line).is_ok();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            batch_bytes += text.len();
            batch.push((text, utf8));
            // A batch is as many questions as inference handles at once, and at most a few
            // megabytes of text (lines can be long).
            if batch.len() >= rows || batch_bytes >= 8 << 20 {
                flush(&mut batch, &mut out, &mut failed)?;
                batch_bytes = 0;
            }
        }
        flush(&mut batch, &mut out, &mut failed)?;
    } else {
        if a.questions.is_empty() {
            bail!("no questions given; pass them as arguments (seqcalc predict --model DIR \"12+345\") or use --jsonl with stdin");
        }
        let color = std::io::stdout().is_terminal();
        let qs: Vec<&str> = a.questions.iter().map(String::as_str).collect();
        for (q, r) in a.questions.iter().zip(answer_all(&mut engine, &qs)) {
            match r {
                Ok((ans, conf, work)) => {
                    let check = task::solve(&run.cfg.task, q).ok().map(|p| p.answer == ans);
                    let mark = match (check, color) {
                        (Some(true), true) => "  \x1b[32m✓\x1b[0m",
                        (Some(true), false) => "  ✓",
                        (Some(false), true) => "  \x1b[31m✗\x1b[0m",
                        (Some(false), false) => "  ✗",
                        (None, _) => "",
                    };
                    writeln!(out, "{} = {ans}   (confidence {conf:.3}){mark}", q.trim())?;
                    if let Some(work) = work {
                        writeln!(out, "    work: {work}")?;
                    }
                    if a.explain {
                        explain(&mut engine, &run, q.trim(), &mut out)?;
                    }
                }
                Err(e) => {
                    failed = true;
                    eprintln!("error: {:?}: {e}", q);
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_eval(a: EvalArgs) -> Result<ExitCode> {
    if a.n == Some(0) {
        bail!("--n must be at least 1");
    }
    if lengthgen_cli::is_run(&a.model) {
        return lengthgen_cli::eval(
            &a.model,
            a.n,
            lengthgen_cli::EvalSets {
                lengths: a.lengths,
                stress: a.stress,
                heatmap: a.heatmap,
                sharpen: a.sharpen,
            },
            a.seed,
            a.threads,
            a.json,
        );
    }
    if a.lengths.is_some() || a.stress || a.heatmap.is_some() || a.sharpen.is_some() {
        bail!("--lengths, --stress, --heatmap and --sharpen apply to length-generalisation runs (seqcalc experiment run length-generalisation)");
    }
    let n = a.n.unwrap_or(10_000);
    if seqcalc::regression::is_mapping_run(&a.model) {
        let run = seqcalc::regression::MappingRun::load(&a.model)?;
        let rep = run.evaluate(n, a.seed);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&rep)?);
        } else {
            println!(
                "{} new examples (regression: a prediction is exact when it rounds to the sum)\n\
                 RMSE            {:.3}\nmean abs error  {:.3}\nexact (rounded) {:.4}",
                rep.n, rep.rmse, rep.mean_abs_error, rep.exact
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let run = rundir::load_run(&a.model)?;
    let threads = a.threads.unwrap_or_else(seqcalc::model::default_threads);
    let mut task = run.cfg.task.clone();
    if let Some(d) = a.digits {
        task.digits = d;
    }
    if let Some(d) = a.min_digits {
        task.min_digits = d;
    }
    if let Some((lo, hi)) = a.terms {
        if task.kind != TaskKind::Expression {
            bail!("--terms applies to models trained on the expression task");
        }
        (task.terms_min, task.terms_max) = (lo, hi);
    }
    let rep = seqcalc::eval::evaluate_fresh_on(&run, &task, n, a.seed, threads)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.to_table());
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_data(a: DataArgs) -> Result<ExitCode> {
    let mut cfg = load_config_file(&a.config)?;
    a.over.apply(&mut cfg)?;
    cfg.task.validate()?;
    let problems = task::generate(&cfg.task, a.n, cfg.seed)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match a.format {
        DataFormat::Csv => {
            writeln!(out, "question,answer")?;
            for p in &problems {
                writeln!(out, "{},{}", p.question, p.answer)?;
            }
        }
        DataFormat::Jsonl => {
            for p in &problems {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"question": p.question, "answer": p.answer, "operand_lens": p.operand_lens, "carries": p.carries})
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(a: BenchArgs) -> Result<ExitCode> {
    let mut cfg = load_config_file(&a.config)?;
    a.over.apply(&mut cfg)?;
    if let Some(b) = a.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(t) = a.threads {
        cfg.train.threads = t;
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
    let net = match &model.transformer {
        Some(tr) => format!(
            "transformer(dim {}, {} heads, FFN {}) x{} blocks",
            tr.cfg.dim, tr.cfg.heads, tr.cfg.ffn, tr.cfg.layers
        ),
        None => format!(
            "{}({}) x{} decoder",
            model.cfg.cell.keras_name(),
            model.cfg.hidden,
            model.cfg.layers
        ),
    };
    let name = format!("{task}: {net}, T_in {}, T_out {}", model.t_in, model.t_out);
    let rep = seqcalc::bench::run(model, &name, &bc);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.to_table());
    }
    Ok(ExitCode::SUCCESS)
}

fn find_experiment(name: &str) -> Result<seqcalc::experiment::Experiment> {
    seqcalc::experiment::find(name).ok_or_else(|| {
        let names: Vec<&str> = seqcalc::experiment::all().iter().map(|e| e.name).collect();
        anyhow!("unknown experiment {name:?}; known: {}", names.join(", "))
    })
}

fn cmd_experiment(cmd: ExperimentCmd) -> Result<ExitCode> {
    match cmd {
        ExperimentCmd::List => {
            println!("{:<26}{:<36}reproduces", "name", "expected time (2 cores)");
            for e in seqcalc::experiment::all() {
                println!("{:<26}{:<36}{}", e.name, e.expected_time, e.reproduces);
            }
            println!(
                "{:<26}{:<36}{}",
                seqcalc::compare::NAME,
                "about 1 hour (18 runs)",
                seqcalc::compare::DESCRIPTION
            );
            println!(
                "{:<26}{:<36}{}",
                seqcalc::lengthgen::gru::EXPERIMENT,
                "about 2 min",
                seqcalc::lengthgen::gru::DESCRIPTION
            );
        }
        ExperimentCmd::Show { name } => {
            let e = find_experiment(&name)?;
            if e.lengthgen {
                print!(
                    "# {}: {}\n# Run it with `seqcalc experiment run {}`.\n{}",
                    e.name,
                    e.reproduces,
                    e.name,
                    seqcalc::lengthgen::experiment_config(false).to_toml()
                );
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(m) = e.mapping {
                let c = seqcalc::regression::MappingConfig::brownlee(m);
                println!(
                    "# {}: {}\n# A regression, not a seq2seq config: run it with `seqcalc experiment run {}`.\n{}",
                    e.name,
                    e.reproduces,
                    e.name,
                    toml::to_string_pretty(&c)?
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut cfg = e.config();
            cfg.build()?;
            print!("{}", cfg.to_toml());
        }
        ExperimentCmd::Run(a) => {
            let exps = a
                .names
                .iter()
                .filter(|n| {
                    *n != seqcalc::compare::NAME && *n != seqcalc::lengthgen::gru::EXPERIMENT
                })
                .map(|n| find_experiment(n))
                .collect::<Result<Vec<_>>>()?;
            if a.names.iter().any(|n| n == seqcalc::compare::NAME) {
                run_compare_decoders(&a)?;
            }
            if a.names
                .iter()
                .any(|n| n == seqcalc::lengthgen::gru::EXPERIMENT)
            {
                let mut cfg = seqcalc::lengthgen::gru::PairGruConfig::default();
                if a.quick {
                    (cfg.max_digits, cfg.batch_size, cfg.steps) = (3, 32, 60);
                }
                if let Some(d) = a.over.digits {
                    cfg.max_digits = d;
                }
                if let Some(v) = a.fit.threads {
                    cfg.threads = v;
                }
                if let Some(v) = a.fit.batch_size {
                    cfg.batch_size = v;
                }
                if let Some(v) = a.fit.lr {
                    cfg.lr = v;
                }
                if let Some(v) = a.steps {
                    cfg.steps = v;
                }
                if let Some(v) = a.stress_fraction {
                    cfg.stress_fraction = v;
                }
                let name = seqcalc::lengthgen::gru::EXPERIMENT;
                let name = if a.quick {
                    format!("{name}-quick")
                } else {
                    name.to_string()
                };
                println!("=== {name} ({})", seqcalc::lengthgen::gru::DESCRIPTION);
                let verdict = lengthgen_cli::run_gru_baseline(
                    &cfg,
                    a.over.seed.unwrap_or(1337),
                    &rundir::run_path(&a.runs_dir, &name)?,
                    a.quick,
                )?;
                println!("Verdict: {verdict}\n");
            }
            let mut results = Vec::new();
            let mut rmses = Vec::new();
            for e in &exps {
                if e.lengthgen {
                    let mut cfg = seqcalc::lengthgen::experiment_config(a.quick);
                    if let Some(seed) = a.over.seed {
                        cfg.seed = seed;
                    }
                    let t = &mut cfg.lengthgen.train;
                    if let Some(d) = a.over.digits {
                        t.max_digits = d;
                    }
                    if let Some(v) = a.fit.threads {
                        t.threads = v;
                    }
                    if let Some(v) = a.fit.batch_size {
                        t.batch_size = v;
                    }
                    if let Some(v) = a.fit.lr {
                        t.lr = v;
                    }
                    if let Some(v) = a.steps {
                        t.steps = v;
                    }
                    if a.train_seconds.is_some() {
                        t.max_seconds = a.train_seconds;
                    }
                    if let Some(v) = a.pad_fraction {
                        t.pad_fraction = v;
                    }
                    if let Some(v) = a.pad_to {
                        t.pad_to_digits = v;
                    }
                    if let Some(v) = a.local_window {
                        cfg.lengthgen.model.local_window = v;
                    }
                    println!("=== {} ({})", cfg.name, e.reproduces);
                    let dir = rundir::run_path(&a.runs_dir, &cfg.name)?;
                    #[cfg(unix)]
                    // SAFETY: installing a handler that only stores to an atomic.
                    unsafe {
                        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
                    }
                    let mut verdict =
                        lengthgen_cli::run_experiment(&cfg, &dir, a.quick, &INTERRUPTED)?;
                    if a.quick {
                        verdict = format!("{verdict} (quick run on tiny settings: checks it runs, reproduces nothing)");
                    }
                    println!("Verdict: {verdict}\n");
                    continue;
                }
                if let Some(m) = e.mapping {
                    let mut c = seqcalc::regression::MappingConfig::brownlee(m);
                    if a.quick {
                        c.epochs = 2;
                    }
                    if let Some(seed) = a.over.seed {
                        c.seed = seed;
                    }
                    println!("=== {} ({})", e.name, e.reproduces);
                    let rep = seqcalc::regression::run(&c, &mut |epoch, loss| {
                        println!("Epoch {epoch:>3}  mse {loss:.6}")
                    });
                    for (nums, want, got) in rep.pairs.iter().take(20) {
                        let q = nums
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join("+");
                        println!(
                            "  {q:<8} Expected={want:<4} Predicted={:<4} {}",
                            got.round(),
                            if got.round() as u32 == *want {
                                "✓"
                            } else {
                                "✗"
                            }
                        );
                    }
                    println!("RMSE on {} new examples: {:.3}", rep.pairs.len(), rep.rmse);
                    let name = if a.quick {
                        format!("{}-quick", e.name)
                    } else {
                        e.name.to_string()
                    };
                    let dir = rundir::run_path(&a.runs_dir, &name)?;
                    if dir.join(rundir::CONFIG).exists()
                        && !seqcalc::regression::is_mapping_run(&dir)
                    {
                        bail!(
                            "{}: holds another kind of run; pass --runs-dir to write elsewhere",
                            dir.display()
                        );
                    }
                    // A mapping run takes seconds and is deterministic: a rerun replaces it.
                    let rc = seqcalc::regression::MappingRunConfig {
                        format_version: seqcalc::config::FORMAT_VERSION,
                        name,
                        description: e.reproduces.to_string(),
                        mapping: c,
                    };
                    seqcalc::regression::save_run(&dir, &rc, &rep)?;
                    println!(
                        "Saved to {}: try `seqcalc predict --model {} \"12+57\"`\n",
                        dir.display(),
                        dir.display()
                    );
                    rmses.push((e.name, rep.rmse));
                    continue;
                }
                let mut cfg = if a.quick {
                    e.quick_config()
                } else {
                    e.config()
                };
                a.over.apply(&mut cfg)?;
                a.fit.apply(&mut cfg);
                println!("=== {} ({})", cfg.name, e.reproduces);
                let dir = rundir::run_path(&a.runs_dir, &cfg.name)?;
                let outcome = run_training(cfg, &dir, rundir::Open::New)?;
                let best = outcome.best().cloned();
                let mut verdict = e.verdict(best.as_ref().map_or(0.0, |b| b.val_exact));
                if a.quick {
                    verdict = format!("{verdict} (quick run on tiny settings: checks it runs, reproduces nothing)");
                }
                println!("Verdict: {verdict}\n");
                results.push((e.name, best, verdict));
            }
            if rmses.len() > 1 {
                println!("{:<26}{:>10}", "mapping experiment", "RMSE");
                for (name, r) in &rmses {
                    println!("{name:<26}{r:>10.3}");
                }
            }
            if results.len() > 1 {
                println!(
                    "{:<26}{:>8}{:>12}{:>12}{:>10}",
                    "experiment", "epoch", "val exact", "val char", "val loss"
                );
                for (name, best, _) in &results {
                    if let Some(b) = best {
                        println!(
                            "{name:<26}{:>8}{:>12.4}{:>12.4}{:>10.4}",
                            b.epoch, b.val_exact, b.val_char_acc, b.val_loss
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_compare(a: CompareArgs) -> Result<ExitCode> {
    let mut runs = Vec::new();
    for dir in &a.runs {
        let path = dir.join("history.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no training history (is this a run directory?)",
                path.display()
            )
        })?;
        let h = seqcalc::history::History::from_json(&text)
            .with_context(|| format!("{}: not a seqcalc history", path.display()))?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        runs.push((name, h));
    }
    println!("metrics at each run's epoch of lowest validation loss");
    println!(
        "{:<28}{:>8}{:>10}{:>12}{:>12}{:>10}{:>11}",
        "run", "epochs", "min-loss", "val exact", "val char", "val loss", "wall s"
    );
    for (name, h) in &runs {
        let best = h
            .records
            .iter()
            .min_by(|x, y| x.val_loss.total_cmp(&y.val_loss));
        let last = h.records.last();
        match (best, last) {
            (Some(b), Some(l)) => println!(
                "{name:<28}{:>8}{:>10}{:>12.4}{:>12.4}{:>10.4}{:>11.1}",
                l.epoch, b.epoch, b.val_exact, b.val_char_acc, b.val_loss, l.elapsed_secs
            ),
            _ => println!("{name:<28}  (no epochs yet)"),
        }
    }
    let (svg, png) = (a.out.with_extension("svg"), a.out.with_extension("png"));
    report::plot_compare(&runs, &svg, &png)?;
    println!("Curves: {} and {}", svg.display(), png.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_sweep(a: SweepArgs) -> Result<ExitCode> {
    use seqcalc::sweep;
    let mut base = match &a.experiment {
        Some(name) => seqcalc::experiment::find(name)
            .ok_or_else(|| anyhow!("unknown experiment {name:?}; see `seqcalc experiment list`"))?
            .config(),
        None => load_config_file(&a.config)?,
    };
    a.over.apply(&mut base)?;
    a.fit.apply(&mut base);
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
    let cores = seqcalc::model::default_threads();
    let threads = if base.train.threads == 0 {
        1
    } else {
        base.train.threads
    };
    let parallel = a.parallel.unwrap_or((cores / threads).max(1));
    if parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let dir = rundir::run_path(&a.runs_dir, &a.name)?;
    let spec = sweep::Spec {
        axes: axes.clone(),
        seeds: a.seeds,
        eval_n: a.eval_n,
        target: a.target,
        base: base.clone(),
    };
    sweep::prepare(&spec, &dir)?;
    let already = sweep::read_results(&dir).len();
    println!(
        "Sweep {}: {} cells x {} seeds = {} runs ({} done before), {parallel} at a time with {threads} thread{} each",
        dir.display(),
        jobs.len() / a.seeds,
        a.seeds,
        jobs.len(),
        already.min(jobs.len()),
        if threads == 1 { "" } else { "s" }
    );
    #[cfg(unix)]
    // SAFETY: installs a handler that only stores to an atomic and resets the disposition.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let opts = sweep::Options {
        dir: dir.clone(),
        parallel,
        threads,
        eval_n: a.eval_n,
        target: a.target,
    };
    let results = sweep::run(&jobs, &opts, &INTERRUPTED, &mut |r, done, total| {
        let what = match (&r.error, r.fresh_exact) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(x)) => format!(
                "fresh exact {x:.4}, best val exact {:.4}, {} epochs, {:.0} s",
                r.best_val_exact, r.epochs, r.seconds
            ),
            (None, None) => "no score".into(),
        };
        println!("[{done}/{total}] {}: {what}", r.id);
    })?;
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!(
            "Interrupted after {} of {} runs; rerun the same command to continue.",
            results.len(),
            jobs.len()
        );
        return Ok(ExitCode::from(130));
    }
    let cells = sweep::summarise(&results);
    let table = sweep::table(&axes, &cells, a.target);
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
    let failed = sweep::failed_runs(&results);
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} runs failed (see the table)",
            results.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `experiment run compare-decoders`: the runs (resumable, both cores), then the report.
fn run_compare_decoders(a: &ExperimentRunArgs) -> Result<()> {
    use seqcalc::{compare, sweep};
    let jobs = compare::jobs(a.quick)?;
    let name = if a.quick {
        format!("{}-quick", compare::NAME)
    } else {
        compare::NAME.to_string()
    };
    let dir = rundir::run_path(&a.runs_dir, &name)?;
    let eval_n = if a.quick { 100 } else { 2000 };
    let spec = sweep::Spec {
        axes: vec![sweep::Axis {
            key: "job".into(),
            paths: Vec::new(),
            values: jobs.iter().map(|j| j.id.clone()).collect(),
        }],
        seeds: 1,
        eval_n,
        target: 0.99,
        base: ExperimentConfig::default(),
    };
    sweep::prepare(&spec, &dir)?;
    let parallel = seqcalc::model::default_threads().max(1);
    println!(
        "=== {name}: {} runs, {parallel} at a time with 1 thread each, in {}",
        jobs.len(),
        dir.display()
    );
    #[cfg(unix)]
    // SAFETY: installs a handler that only stores to an atomic and resets the disposition.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let opts = sweep::Options {
        dir: dir.clone(),
        parallel,
        threads: 1,
        eval_n,
        target: 0.99,
    };
    let results = sweep::run(&jobs, &opts, &INTERRUPTED, &mut |r, done, total| {
        let what = match (&r.error, r.fresh_exact) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(x)) => format!(
                "fresh exact {x:.4}, {} epochs, {:.0} s",
                r.epochs, r.seconds
            ),
            (None, None) => "no score".into(),
        };
        println!("[{done}/{total}] {}: {what}", r.id);
    })?;
    let out = a.report_dir.clone().unwrap_or_else(|| dir.join("report"));
    compare::write_report(&dir, &out, &jobs, &results, eval_n, parallel)?;
    println!("Report: {}", out.join("report.md").display());
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        bail!(
            "interrupted after {} of {} runs (the report covers those); rerun the same command to continue",
            results.len(),
            jobs.len()
        );
    }
    Ok(())
}
