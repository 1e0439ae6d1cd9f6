//! `seqcalc eval`: scores a trained model of any kind on fresh questions it never saw.

use super::flags::parse_terms;
use super::lengths::{self, EvalSets};
use anyhow::{bail, Result};
use clap::Args;
use seqcalc::run::Run;
use seqcalc::task::TaskKind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory of a trained model.
    #[arg(long)]
    pub model: PathBuf,
    /// Fresh questions to score (default 10,000; for long-addition runs, per length: 500 up to
    /// 200 digits, 200 beyond).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the fresh questions (default 7).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Score every question of the task's domain instead of a sample (every ordered pair a+b
    /// of 3-digit operands: 1,000,000), when it has at most 10,000,000. Long-addition runs:
    /// every a+b with operands up to the longest trained on, or --digits.
    #[arg(long)]
    pub exhaustive: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seq2seq runs: operands of up to this many digits instead of the training task's (they
    /// must fit the model's input width: train with --input-len to leave room). With
    /// --exhaustive on a long-addition run: every a+b with operands of at most this many digits.
    #[arg(long, help_heading = "Seq2seq runs")]
    pub digits: Option<usize>,
    /// Seq2seq runs: operands of at least this many digits: with --min-digits 4 --digits 5
    /// after training on 1..=3 digits, every operand is longer than any seen in training.
    #[arg(long, help_heading = "Seq2seq runs")]
    pub min_digits: Option<usize>,
    /// Seq2seq runs on the expression task: this many operands (N or N..M).
    #[arg(long, value_parser = parse_terms, value_name = "N|N..M", help_heading = "Seq2seq runs")]
    pub terms: Option<(usize, usize)>,
    /// Operand lengths to score, e.g. 10,20,50,100,200,500,1000 (the default).
    #[arg(long, value_delimiter = ',', help_heading = "Long-addition runs")]
    pub lengths: Option<Vec<usize>>,
    /// Also score the carry-stress sets at each length.
    #[arg(long, help_heading = "Long-addition runs")]
    pub stress: bool,
    /// Exact match over every pair (length of a, length of b) of these operand lengths, e.g.
    /// 1,5,10,20,50,100 (--n questions per cell, default 50), drawn as length-pairs.svg and
    /// .png in the run directory.
    #[arg(long, value_delimiter = ',', help_heading = "Long-addition runs")]
    pub heatmap: Option<Vec<usize>>,
    /// Coupled transformers, a diagnostic: multiply every head's learned length scale by this
    /// factor before scoring (1 = as trained).
    #[arg(long, help_heading = "Long-addition runs")]
    pub sharpen: Option<f32>,
}

/// The most fresh questions one `eval` scores.
const MAX_N: usize = 10_000_000;

pub fn exec(a: EvalArgs) -> Result<ExitCode> {
    if let Some(n) = a.n {
        if n == 0 || n > MAX_N {
            bail!("--n {n} must be in 1..={MAX_N}");
        }
    }
    let threads = a.threads.unwrap_or_else(seqcalc::parallel::default_threads);
    if threads == 0 || threads > seqcalc::parallel::MAX_THREADS {
        bail!(
            "--threads {threads} must be in 1..={}",
            seqcalc::parallel::MAX_THREADS
        );
    }
    if a.exhaustive && (a.n.is_some() || a.seed.is_some()) {
        bail!("--exhaustive scores every question of the domain; --n and --seed draw a sample instead");
    }
    let seed = a.seed.unwrap_or(7);
    let run = Run::load(&a.model, threads)?;
    let seq2seq_flags = a.digits.is_some() || a.min_digits.is_some() || a.terms.is_some();
    let length_flags =
        a.lengths.is_some() || a.stress || a.heatmap.is_some() || a.sharpen.is_some();
    let kind = run.kind();
    match run {
        Run::CoupledTransformer { run, engine } if !run.cfg.lengthgen.task.is_addition() => {
            if seq2seq_flags || a.exhaustive || a.heatmap.is_some() || a.sharpen.is_some() {
                bail!("a many-operand or multiplication run takes --lengths (its grid's rows and columns), --stress, --n, --seed and --json");
            }
            super::grids::eval(
                run, engine, &a.model, a.n, a.lengths, a.stress, seed, a.json,
            )
        }
        Run::CoupledTransformer { .. } | Run::PairGru { .. } if a.exhaustive => {
            if a.min_digits.is_some() || a.terms.is_some() || length_flags {
                bail!("{kind} runs take --exhaustive with --digits only (every a+b with operands of at most that many digits)");
            }
            let task = run
                .addition_domain(a.digits)
                .expect("a long-addition run has an addition domain");
            let mut run = run;
            let rep = seqcalc::eval::evaluate_exhaustive_with(&task, |qs| run.answer(qs))?;
            print_report(&rep, a.json)
        }
        Run::CoupledTransformer { .. } | Run::PairGru { .. } => {
            if seq2seq_flags {
                bail!("--digits, --min-digits and --terms apply to seq2seq runs (and --digits to --exhaustive); {kind} runs take --lengths, --stress, --heatmap and --sharpen");
            }
            lengths::eval(
                run,
                &a.model,
                a.n,
                EvalSets {
                    lengths: a.lengths,
                    stress: a.stress,
                    heatmap: a.heatmap,
                    sharpen: a.sharpen,
                },
                seed,
                a.json,
            )
        }
        Run::Regression(m) => {
            if seq2seq_flags || length_flags || a.exhaustive {
                bail!("a regression run takes --n, --seed and --json only");
            }
            let rep = m.evaluate(a.n.unwrap_or(10_000), seed);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                println!(
                    "{} new examples (regression: a prediction is exact when it rounds to the sum)\n\
                     RMSE            {:.3}\nmean abs error  {:.3}\nexact (rounded) {:.4}",
                    rep.n, rep.rmse, rep.mean_abs_error, rep.exact
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Run::Seq2seq { run, .. } => {
            if length_flags {
                bail!("--lengths, --stress, --heatmap and --sharpen apply to long-addition runs (coupled-transformer, pair-gru)");
            }
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
            let rep = if a.exhaustive {
                seqcalc::eval::evaluate_exhaustive(&run, &task, threads)?
            } else {
                seqcalc::eval::evaluate_fresh_on(&run, &task, a.n.unwrap_or(10_000), seed, threads)?
            };
            print_report(&rep, a.json)
        }
    }
}

/// A seq2seq-style report, as JSON or as a table.
fn print_report(rep: &seqcalc::eval::EvalReport, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(rep)?);
    } else {
        print!("{}", rep.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
