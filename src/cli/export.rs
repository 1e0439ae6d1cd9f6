//! `seqcalc export`: writes a trained run in a standard format (ONNX).

use anyhow::Result;
use clap::{Args, ValueEnum};
use seqcalc::export::{export, write_output, Format};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// ONNX (opset 17): question symbol indices in, answer logits and probabilities out
    Onnx,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Run directory of a trained seq2seq model (recurrent encoder-decoder or transformer).
    pub run: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// File to write (written atomically).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(a: ExportArgs) -> Result<ExitCode> {
    let format = match a.format {
        FormatArg::Onnx => Format::Onnx,
    };
    let bytes = export(&a.run, format)?;
    write_output(&a.output, &bytes, a.force)?;
    eprintln!("Wrote {} ({} bytes)", a.output.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}
