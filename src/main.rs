//! The `seqcalc` binary: parses the command line, installs the signal handlers once, hands the
//! command to its file under `cli/`, and turns the outcome into an exit code (0 success, 1 some
//! questions could not be answered or sweep runs failed, 2 an error, 130 after Ctrl-C, 143 after
//! SIGTERM).

mod cli;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "seqcalc",
    version = version(),
    about = "Teach neural networks arithmetic as character-level sequence-to-sequence translation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model of any kind (default: the Keras addition_rnn experiment, 3-digit addition).
    ///
    /// Example: seqcalc train --digits 3 --cell gru --name add3-gru
    Train(cli::train::TrainArgs),
    /// Answer questions with a trained model.
    ///
    /// Example: seqcalc predict --model runs/keras-addition "12+345" "7+8"
    Predict(cli::predict::PredictArgs),
    /// Score a trained model on fresh questions it never saw.
    ///
    /// Example: seqcalc eval --model runs/keras-addition --n 10000 --seed 7
    Eval(cli::eval::EvalArgs),
    /// Built-in experiments reproducing the tutorials: list, show (as TOML), run.
    ///
    /// Example: seqcalc experiment run keras-addition-gru --quick
    Experiment {
        #[command(subcommand)]
        cmd: cli::experiment::ExperimentCmd,
    },
    /// Overlay the curves of several runs in one picture and print their final metrics.
    ///
    /// Example: seqcalc compare runs/keras-addition runs/keras-addition-gru --out compare
    Compare(cli::compare::CompareArgs),
    /// Time the training step and batched inference, and the machine's GEMM peak.
    ///
    /// Example: seqcalc bench --threads 2 --json
    Bench(cli::bench::BenchArgs),
    /// Write generated questions and answers (what a model trains on).
    ///
    /// Example: seqcalc data --digits 3 --n 1000 --format questions | seqcalc predict --model runs/keras-addition
    Data(cli::data::DataArgs),
    /// Train a grid of configurations over several seeds on all cores; writes a table (mean and
    /// spread of fresh exact match per cell) and a heatmap. Rerun the same command to resume.
    ///
    /// Example: seqcalc sweep --grid hidden=32,64,128 --grid digits=3,5,8 --seeds 3
    Sweep(cli::sweep::SweepArgs),
    /// Write a trained run in a standard format: ONNX, for onnxruntime and other runtimes.
    ///
    /// Example: seqcalc export --format onnx runs/keras-addition -o keras-addition.onnx
    Export(cli::export::ExportArgs),
    /// A local web server: the runs, live curves, a playground and a train form.
    ///
    /// Example: seqcalc serve --runs-dir runs --port 8080
    Serve(cli::serve::ServeArgs),
    /// One run of a sweep on a cluster's node: reads its request as JSON on standard input and
    /// prints its result (started by `sweep --ray`).
    #[command(hide = true)]
    SweepCell(cli::sweep_cell::SweepCellArgs),
}

/// The version, the commit it was built from (where known) and the kernels this CPU runs.
fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let commit = option_env!("SEQCALC_GIT_COMMIT").filter(|c| !c.is_empty());
        format!(
            "{}{} (kernels: {})",
            env!("CARGO_PKG_VERSION"),
            commit.map_or(String::new(), |c| format!(" ({c})")),
            seqcalc::run::kernel_level()
        )
    })
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`seqcalc data ... | head`), and let a write past `ulimit -f` fail with EFBIG (one error
    // line naming the file, its previous version intact) instead of killing the process.
    #[cfg(unix)]
    // SAFETY: setting dispositions at start-up, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Subnormal floats cost 60-100x per operation here; flush them on every kernel thread.
    seqcalc::nn::flush_denormals();
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| seqcalc::nn::flush_denormals())
        .build_global();
    let cli = Cli::parse();
    if let Err(e) = cli::signals::install() {
        eprintln!("error: cannot install the signal handlers: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.cmd {
        Cmd::Train(a) => cli::train::exec(a),
        Cmd::Predict(a) => cli::predict::exec(a),
        Cmd::Eval(a) => cli::eval::exec(a),
        Cmd::Data(a) => cli::data::exec(a),
        Cmd::Bench(a) => cli::bench::exec(a),
        Cmd::Experiment { cmd } => cli::experiment::exec(cmd),
        Cmd::Compare(a) => cli::compare::exec(a),
        Cmd::Sweep(a) => cli::sweep::exec(a),
        Cmd::Serve(a) => cli::serve::exec(a),
        Cmd::SweepCell(a) => cli::sweep_cell::exec(a),
        Cmd::Export(a) => cli::export::exec(a),
    };
    if let Some(code) = cli::signals::exit_code() {
        if let Err(e) = &result {
            eprintln!("error: {e:#}");
        }
        return ExitCode::from(code);
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
