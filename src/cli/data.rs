//! `seqcalc data`: the questions and answers a seq2seq model trains on, as CSV, JSON lines, or
//! bare questions that pipe straight into `predict`.

use super::flags::{RunFlags, TASK_FLAGS};
use super::read_config;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use seqcalc::config::ExperimentConfig;
use seqcalc::run::RunConfig;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum DataFormat {
    /// `question,answer` with a header line.
    Csv,
    /// One JSON object per line: question, answer, operand lengths, carries.
    Jsonl,
    /// One question per line, as `predict` reads them from stdin.
    Questions,
}

/// The most questions one `data` writes.
const MAX_N: usize = 10_000_000;

#[derive(Args)]
pub struct DataArgs {
    /// Start from this seq2seq config's task.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Questions to write.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: DataFormat,
    #[command(flatten)]
    pub flags: RunFlags,
}

pub fn exec(a: DataArgs) -> Result<ExitCode> {
    let mut cfg = match &a.config {
        None => ExperimentConfig::default(),
        Some(p) => match read_config(p)? {
            RunConfig::Seq2seq(c) => c,
            other => bail!(
                "{}: `data` writes a seq2seq task's questions; this is a {} config",
                p.display(),
                other.kind()
            ),
        },
    };
    if a.n > MAX_N {
        bail!("--n {} must be at most {MAX_N}", a.n);
    }
    let takes = [TASK_FLAGS, &["seed"]].concat();
    a.flags
        .refuse_others(&takes, "`data` (it writes questions, not models)")?;
    a.flags.apply_seq2seq(&mut cfg)?;
    cfg.task.validate()?;
    let problems = seqcalc::task::generate(&cfg.task, a.n, cfg.seed)?;
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
        DataFormat::Questions => {
            for p in &problems {
                writeln!(out, "{}", p.question)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
