//! seqcalc: teach neural networks arithmetic as character-level sequence-to-sequence translation.
//!
//! The data flows `task` (problems as strings) -> `codec` (u8 symbol indices) -> `data`
//! (datasets and batches) -> `model` (built from `nn` layers) -> `train` (loop, metrics,
//! checkpoints) -> `report` (progress, samples, plots); `eval` and `predict` read a run
//! directory back. See shared/DESIGN.md.

pub mod bench;
pub mod codec;
pub mod compare;
pub mod config;
pub mod console;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod export;
/// The expression task, also reachable at the crate root.
pub use task::expression;
pub mod fsutil;
pub mod history;
pub mod model;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod regression;
pub mod report;
pub mod run;
pub mod rundir;
pub mod sweep;
pub mod task;
pub mod train;
pub mod training;
