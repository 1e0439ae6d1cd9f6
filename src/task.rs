//! Problem generators: questions and exact answers as strings, never tensors.
//!
//! `TaskConfig` describes the task (serde, every field defaulted); `generate` draws `n` unique
//! problems from it with a seeded RNG (ChaCha8, so the same seed gives the same problems on every
//! platform and rand version).

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Which family of problems.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// `a<op>b` with decimal operands (Keras `addition_rnn`).
    Arithmetic,
    /// Hofstadter's pq-system in unary: `--p---` -> `q-----`.
    PqSystem,
}

/// How duplicates are detected.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Dedup {
    /// Keras's key: the sorted operand pair, so `b+a` is skipped once `a+b` was seen (also for `-`, as the tutorial's quirk).
    Sorted,
    /// The ordered operands: only exact repeats are skipped.
    Ordered,
}

/// What problems to generate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    pub kind: TaskKind,
    /// Arithmetic: the longest operand in digits; each operand's length is uniform in 1..=digits.
    pub digits: usize,
    /// Arithmetic: the operator, "+" or "-".
    pub op: String,
    /// Duplicate detection; `None` in the file means: sorted for "+", ordered for "-".
    pub dedup: Option<Dedup>,
    /// pq-system: a and b are uniform in 1..=pq_max dashes.
    pub pq_max: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            kind: TaskKind::Arithmetic,
            digits: 3,
            op: "+".into(),
            dedup: None,
            pq_max: 1000,
        }
    }
}

/// One problem, as a person writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// e.g. "12+345" (no padding, not reversed).
    pub question: String,
    /// e.g. "357" or "-333" (no padding).
    pub answer: String,
    /// Digits of each operand as written (for pq-system: dashes).
    pub operand_lens: Vec<usize>,
    /// Carries (for `+`) or borrows (for `-`) in the column-wise computation; 0 for pq-system.
    pub carries: usize,
}

/// Errors from task configuration or generation.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task: {0}")]
    Invalid(String),
    #[error("asked for {wanted} unique questions but the task has only {available} distinct ones")]
    TooFew { wanted: usize, available: u128 },
}

impl TaskConfig {
    /// Checks the configuration is possible (digits >= 1, known op, pq_max >= 1, ...).
    pub fn validate(&self) -> Result<(), TaskError> {
        todo!()
    }
    /// The symbols questions and answers can use, sorted (Keras's CharacterTable), including the pad ' '.
    pub fn alphabet(&self) -> String {
        todo!()
    }
    /// Longest question in characters (Keras MAXLEN: 2*digits+1; pq: 2*pq_max+1).
    pub fn max_question_len(&self) -> usize {
        todo!()
    }
    /// Longest answer in characters (Keras: digits+1; pq: pq_max*2+1).
    pub fn max_answer_len(&self) -> usize {
        todo!()
    }
    /// Number of distinct questions under this task's dedup rule (saturating).
    pub fn distinct_questions(&self) -> u128 {
        todo!()
    }
}

/// Draws `n` unique problems, seeded, in generation order (not shuffled).
pub fn generate(cfg: &TaskConfig, n: usize, seed: u64) -> Result<Vec<Problem>, TaskError> {
    generate_excluding(cfg, n, seed, &HashSet::new())
}

/// Like `generate`, but never returns a question whose dedup key matches one in `exclude`
/// (questions as strings, e.g. the training set): fresh problems for honest evaluation.
pub fn generate_excluding(
    cfg: &TaskConfig,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
) -> Result<Vec<Problem>, TaskError> {
    let _ = (cfg, n, seed, exclude);
    todo!()
}

/// Computes the exact answer and analysis of a question typed by a person ("12+345"), if it is
/// well formed for this task; used by eval and predict to check answers.
pub fn solve(cfg: &TaskConfig, question: &str) -> Result<Problem, TaskError> {
    let _ = (cfg, question);
    todo!()
}
