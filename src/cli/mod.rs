//! The command line, one file per command (as cargo lays out its commands): each declares its
//! arguments and turns them into calls into the library.

pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod flags;
pub mod grids;
pub mod lengths;
pub mod predict;
pub mod serve;
pub mod signals;
pub mod sweep;
pub mod sweep_cell;
pub mod train;

use anyhow::{Context, Result};
use seqcalc::run::RunConfig;
use std::path::Path;

/// Reads a config file once (a pipe, FIFO or `/dev/stdin` too) and parses it.
pub fn read_config(path: &Path) -> Result<RunConfig> {
    let text = seqcalc::config::read_input(path)?;
    RunConfig::parse(&text).with_context(|| path.display().to_string())
}

/// Whether stdout takes colour: a terminal, and NO_COLOR unset.
pub fn color() -> bool {
    seqcalc::report::stdout_color()
}

/// A check mark or cross, green or red where colour is on.
pub fn mark(correct: bool, color: bool) -> &'static str {
    seqcalc::report::mark(correct, color)
}
