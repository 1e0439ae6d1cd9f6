//! Problem generators: questions and exact answers as strings, never tensors.
//!
//! `TaskConfig` describes the task (serde, every field defaulted); `generate` draws `n` unique
//! problems from it with a seeded RNG (ChaCha8, so the same seed gives the same problems on every
//! platform and rand version).

mod arithmetic;
pub mod exhaustive;
pub mod expression;
pub mod long_addition;
pub mod many_operands;
mod operand;
mod pq;

use arithmetic::Op;
use operand::{decimal_len, operand_values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::Hash;

/// Which family of problems.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// `a<op>b` with decimal operands (Keras `addition_rnn`).
    Arithmetic,
    /// Hofstadter's pq-system in unary: `--p---` -> `q-----`.
    PqSystem,
    /// Any number of terms, `+ - *` with the usual precedence, brackets: `12+3*(45-6)`
    /// (see `crate::expression` for how questions are drawn).
    Expression,
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
    /// Arithmetic and expression: the longest operand in digits; each operand's length is
    /// uniform in `min_digits..=digits`.
    pub digits: usize,
    /// Arithmetic: the operator, "+" or "-".
    pub op: String,
    /// Duplicate detection; `None` in the file means: sorted for "+", ordered for "-".
    pub dedup: Option<Dedup>,
    /// pq-system: a and b are uniform in 1..=pq_max dashes.
    pub pq_max: usize,
    /// Arithmetic: when set, operands are uniform in `min_value..=max_value` (Brownlee's
    /// `random_sum_pairs`) instead of Keras's digit-length draw; `digits` is then ignored.
    pub max_value: Option<u64>,
    pub min_value: u64,
    /// Skip repeated questions (Keras). Brownlee draws with repetition: `unique = false`.
    pub unique: bool,
    /// Arithmetic and expression: the shortest operand in digits (default 1: Keras's draw, a
    /// value uniform below 10^length, so leading zeros collapse). Above 1, every operand has at
    /// least `min_digits` digits: with `digits` beyond a training run's, this draws operands
    /// strictly longer than any the model saw, for length-generalisation tests.
    pub min_digits: usize,
    /// Arithmetic with the digit-length draw: the fraction of questions whose operand pair is
    /// drawn uniformly from the whole domain (every ordered pair equally likely, so long
    /// operands dominate as they do among all questions) instead of Keras's way (a length
    /// uniform first, so short operands are common). 0 (the default) is Keras's draw, with its
    /// random numbers unchanged; 1 is the uniform draw alone. A mixture keeps short questions,
    /// rare in the domain, well represented while most of the training follows the domain.
    /// Left out of a saved config when 0, so configs (and the hashes checkpoints carry) of
    /// runs made before it existed stay as they were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uniform_fraction: f64,
    /// Expression: the number of operands is uniform in `terms_min..=terms_max`.
    pub terms_min: usize,
    pub terms_max: usize,
    /// Expression: the operators to draw from, each uniformly: a subset of "+-*".
    pub ops: String,
    /// Expression: the deepest bracket nesting (0: no brackets).
    pub brackets: usize,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            kind: TaskKind::Arithmetic,
            digits: 3,
            op: "+".into(),
            dedup: None,
            pq_max: 1000,
            max_value: None,
            min_value: 0,
            unique: true,
            min_digits: 1,
            uniform_fraction: 0.0,
            terms_min: 2,
            terms_max: 2,
            ops: expression::OPERATORS.into(),
            brackets: 0,
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
    /// Expressions: the carries and borrows of every addition and subtraction as a person does
    /// it on magnitudes (adding when the signs agree, else taking the smaller magnitude from the
    /// larger), evaluated in the usual order; multiplications count none.
    pub carries: usize,
}

impl Problem {
    /// What a model writes for this problem: its answer, or with `scratchpad` (the expression
    /// task) the worked answer that ends in it (see `expression::worked`), numbers forwards.
    pub fn target(&self, scratchpad: bool) -> Result<Cow<'_, str>, TaskError> {
        if scratchpad {
            Ok(Cow::Owned(expression::worked(&self.question)?))
        } else {
            Ok(Cow::Borrowed(&self.answer))
        }
    }
}

/// Errors from task configuration or generation.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task: {0}")]
    Invalid(String),
    #[error(
        "the whole domain of {what} has {size} questions, more than the {max} an exhaustive \
         evaluation scores; score a random sample instead (--n)"
    )]
    DomainTooLarge { what: String, size: u128, max: u128 },
    #[error("asked for {wanted} unique questions but the task has only {available} distinct ones")]
    TooFew { wanted: usize, available: u128 },
    #[error(
        "gave up after {repeats} draws in a row repeated earlier questions, with {found} of the \
         {wanted} unique questions asked for found; {available} are possible but the rest are too \
         rare to draw: ask for fewer"
    )]
    GaveUp {
        repeats: u64,
        found: usize,
        wanted: usize,
        available: u128,
    },
}

/// Longest operand `validate` accepts for arithmetic and expressions, in digits (arithmetic
/// answers stay exact in `i128`; operands are drawn as `u128`).
pub const MAX_DIGITS: usize = 30;
/// Largest `pq_max` `validate` accepts (questions and answers of up to 200,001 symbols).
pub const MAX_PQ: usize = 100_000;
/// Draws in a row that may all repeat earlier questions before `generate` gives up. Rejection
/// sampling only stalls when nearly every distinct question has been drawn; at tens of
/// millions of draws per second this bounds the wait to about a second.
pub(crate) const MAX_CONSECUTIVE_REPEATS: u64 = 20_000_000;

impl TaskConfig {
    /// Expressions of `terms` operands of up to `digits` digits over `+ - *`, brackets nested
    /// up to `brackets` deep; every other field at its default.
    pub fn expressions(terms: usize, digits: usize, brackets: usize) -> TaskConfig {
        TaskConfig {
            kind: TaskKind::Expression,
            digits,
            terms_min: terms,
            terms_max: terms,
            ops: expression::OPERATORS.into(),
            brackets,
            ..TaskConfig::default()
        }
    }

    /// Checks the configuration is possible (digits >= 1, known op, pq_max >= 1, ...).
    pub fn validate(&self) -> Result<(), TaskError> {
        let invalid = |m: String| Err(TaskError::Invalid(m));
        if !(0.0..=1.0).contains(&self.uniform_fraction) {
            return invalid(format!(
                "uniform_fraction must be a number in [0, 1], got {}",
                self.uniform_fraction
            ));
        }
        if self.uniform_fraction > 0.0
            && (self.kind != TaskKind::Arithmetic || self.max_value.is_some())
        {
            return invalid(
                "uniform_fraction applies to arithmetic with the digit-length draw (max_value \
                 already draws operands uniformly)"
                    .into(),
            );
        }
        if self.kind != TaskKind::Expression {
            let d = TaskConfig::default();
            if (self.terms_min, self.terms_max, &self.ops, self.brackets)
                != (d.terms_min, d.terms_max, &d.ops, d.brackets)
            {
                return invalid(
                    "terms, ops and brackets belong to the expression task (kind = \"expression\", \
                     --task expression)"
                        .into(),
                );
            }
        }
        match self.kind {
            TaskKind::Arithmetic => {
                if let Some(max) = self.max_value {
                    if self.min_value > max || decimal_len(max as u128) > MAX_DIGITS {
                        return Err(TaskError::Invalid(format!(
                            "operand range {}..={max} is empty or has more than {MAX_DIGITS} digits",
                            self.min_value
                        )));
                    }
                    if self.min_digits != 1 {
                        return invalid(
                            "min_digits applies to the digit-length draw; with max_value set, \
                             use min_value"
                                .into(),
                        );
                    }
                } else {
                    self.validate_digits()?;
                }
                Op::from_symbol(&self.op).ok_or_else(|| {
                    TaskError::Invalid(format!(
                        "unknown operator {:?}; expected \"+\" or \"-\"",
                        self.op
                    ))
                })?;
            }
            TaskKind::PqSystem => {
                if !(1..=MAX_PQ).contains(&self.pq_max) {
                    return Err(TaskError::Invalid(format!(
                        "pq_max must be between 1 and {MAX_PQ}, got {}",
                        self.pq_max
                    )));
                }
                if self.min_digits != 1 {
                    return invalid("min_digits does not apply to the pq-system".into());
                }
            }
            TaskKind::Expression => self.validate_expression()?,
        }
        Ok(())
    }

    fn validate_digits(&self) -> Result<(), TaskError> {
        if !(1..=MAX_DIGITS).contains(&self.digits) {
            return Err(TaskError::Invalid(format!(
                "digits must be between 1 and {MAX_DIGITS}, got {}",
                self.digits
            )));
        }
        if !(1..=self.digits).contains(&self.min_digits) {
            return Err(TaskError::Invalid(format!(
                "min_digits must be between 1 and digits ({}), got {}",
                self.digits, self.min_digits
            )));
        }
        Ok(())
    }

    fn validate_expression(&self) -> Result<(), TaskError> {
        use expression::{MAX_BRACKETS, MAX_LEN, MAX_TERMS};
        let invalid = |m: String| Err(TaskError::Invalid(m));
        self.validate_digits()?;
        if self.terms_min < 1 || self.terms_min > self.terms_max || self.terms_max > MAX_TERMS {
            return invalid(format!(
                "terms must be a range within 1..={MAX_TERMS} (at least one operand), got {}..={}",
                self.terms_min, self.terms_max
            ));
        }
        expression::parse_ops(&self.ops)?;
        if self.brackets > MAX_BRACKETS {
            return invalid(format!(
                "brackets (the deepest nesting) must be at most {MAX_BRACKETS}, got {}",
                self.brackets
            ));
        }
        if self.op != TaskConfig::default().op {
            return invalid(format!(
                "op ({:?}) belongs to the arithmetic task; the expression task draws from ops",
                self.op
            ));
        }
        if self.max_value.is_some() || self.min_value != 0 {
            return invalid(
                "max_value and min_value belong to the arithmetic task; the expression task \
                 draws operands by digits and min_digits"
                    .into(),
            );
        }
        if self.dedup == Some(Dedup::Sorted) {
            return invalid(
                "dedup = \"sorted\" is for two-operand arithmetic; expressions are unique by \
                 their question string (ordered)"
                    .into(),
            );
        }
        let (q, a) = (self.max_question_len(), self.max_answer_len());
        if q > MAX_LEN || a > MAX_LEN {
            return invalid(format!(
                "questions of up to {q} and answers of up to {a} characters; at most {MAX_LEN} \
                 are supported: use fewer terms or digits"
            ));
        }
        Ok(())
    }

    /// The symbols questions and answers can use, sorted (Keras's CharacterTable), including the pad ' '.
    pub fn alphabet(&self) -> String {
        let mut symbols: Vec<char> = match self.kind {
            // Keras's "0123456789+ " plus the operator, plus '-' when answers can be negative:
            // " +0123456789" for addition (12 symbols), " +-0123456789" for subtraction (the
            // tutorial's "0123456789+- ", 13 symbols).
            TaskKind::Arithmetic => {
                let mut s: Vec<char> = "0123456789+ ".chars().chain(self.op.chars()).collect();
                if Op::from_symbol(&self.op).is_some_and(Op::can_be_negative) {
                    s.push('-');
                }
                s
            }
            TaskKind::PqSystem => "-pq ".chars().collect(),
            // Digits, the pad, the operators, brackets when drawn, '-' when answers can be
            // negative (only with '-' among the operators, which puts it there already).
            TaskKind::Expression => {
                let mut s: Vec<char> = "0123456789 ".chars().chain(self.ops.chars()).collect();
                if self.brackets > 0 {
                    s.extend(['(', ')']);
                }
                s
            }
        };
        symbols.sort_unstable();
        symbols.dedup();
        symbols.into_iter().collect()
    }

    /// Longest question in characters (Keras MAXLEN: 2*digits+1; pq: 2*pq_max+1).
    pub fn max_question_len(&self) -> usize {
        match self.kind {
            TaskKind::Arithmetic => 2 * self.operand_digits() + self.op.chars().count(),
            TaskKind::PqSystem => 2 * self.pq_max + 1,
            TaskKind::Expression => expression::max_question_len(self),
        }
    }

    /// Longest worked answer (`Problem::target` with a scratchpad); only
    /// expressions have one, other tasks give their longest answer.
    pub fn max_worked_len(&self) -> usize {
        match self.kind {
            TaskKind::Expression => expression::max_worked_len(self),
            _ => self.max_answer_len(),
        }
    }

    /// Longest answer in characters (Keras: digits+1; pq: pq_max*2+1).
    pub fn max_answer_len(&self) -> usize {
        match self.kind {
            // A sum of two d-digit numbers has at most d+1 digits; a difference at most d
            // digits after its sign.
            TaskKind::Arithmetic => match (self.max_value, self.op.as_str()) {
                // Brownlee's width: the digits of the largest sum.
                (Some(max), "+") => decimal_len(2 * max as u128),
                (Some(max), _) => decimal_len(max as u128) + 1,
                (None, _) => self.digits + 1,
            },
            TaskKind::PqSystem => 2 * self.pq_max + 1,
            TaskKind::Expression => expression::max_answer_len(self),
        }
    }

    /// Number of distinct questions under this task's dedup rule (saturating).
    pub fn distinct_questions(&self) -> u128 {
        // Every value in the operand range is reachable: 0..10^digits for arithmetic (leading
        // zeros collapse; 10^(min_digits-1)..10^digits above min_digits 1), 1..=pq_max for the
        // pq-system.
        let values: u128 = match self.kind {
            TaskKind::Arithmetic if self.max_value.is_some() => {
                (self.max_value.unwrap_or(0) as u128 + 1).saturating_sub(self.min_value as u128)
            }
            TaskKind::Arithmetic if self.digits == 0 => 0,
            TaskKind::Arithmetic if self.digits > MAX_DIGITS => {
                10u128.checked_pow(self.digits as u32).unwrap_or(u128::MAX)
            }
            TaskKind::Arithmetic => operand_values(self.min_digits, self.digits),
            TaskKind::PqSystem => self.pq_max as u128,
            TaskKind::Expression => return expression::distinct_questions(self),
        };
        match self.dedup_rule() {
            Dedup::Ordered => values.saturating_mul(values),
            Dedup::Sorted => {
                // values * (values + 1) / 2 without overflowing before the division.
                let (even, odd) = if values.is_multiple_of(2) {
                    (values, values.saturating_add(1))
                } else {
                    (values.saturating_add(1), values)
                };
                (even / 2).saturating_mul(odd)
            }
        }
    }

    /// A one-line description, e.g. "3-term expressions over +-* with operands of 1..=2 digits,
    /// brackets nested up to 1 deep".
    pub fn describe(&self) -> String {
        let digits = if self.min_digits == self.digits {
            format!(
                "{} digit{}",
                self.digits,
                if self.digits == 1 { "" } else { "s" }
            )
        } else {
            format!("{}..={} digits", self.min_digits, self.digits)
        };
        match self.kind {
            TaskKind::Arithmetic => match self.max_value {
                Some(max) => format!("a{}b with a, b in {}..={max}", self.op, self.min_value),
                None => format!("a{}b with operands of {digits}", self.op),
            },
            TaskKind::PqSystem => format!("pq-system up to {} dashes", self.pq_max),
            TaskKind::Expression => {
                let terms = if self.terms_min == self.terms_max {
                    format!("{}", self.terms_min)
                } else {
                    format!("{}..={}", self.terms_min, self.terms_max)
                };
                let brackets = match self.brackets {
                    0 => "no brackets".to_string(),
                    d => format!("brackets nested up to {d} deep"),
                };
                format!(
                    "{terms}-term expressions over {} with operands of {digits}, {brackets}",
                    self.ops
                )
            }
        }
    }

    /// Digits of the longest operand.
    pub fn operand_digits(&self) -> usize {
        match self.max_value {
            Some(max) => decimal_len(max as u128),
            None => self.digits,
        }
    }

    /// The dedup rule in effect: the configured one, else sorted for "+" and ordered for "-"
    /// and the pq-system.
    pub fn dedup_rule(&self) -> Dedup {
        if self.kind == TaskKind::Expression {
            return Dedup::Ordered;
        }
        self.dedup.unwrap_or(match self.kind {
            TaskKind::Arithmetic if self.op == "+" => Dedup::Sorted,
            _ => Dedup::Ordered,
        })
    }
}

/// Draws `n` unique problems, seeded, in generation order (not shuffled).
pub fn generate(cfg: &TaskConfig, n: usize, seed: u64) -> Result<Vec<Problem>, TaskError> {
    generate_excluding(cfg, n, seed, &HashSet::new())
}

/// Like `generate`, but never returns a question whose dedup key matches one in `exclude`
/// (questions as strings, e.g. the training set): fresh problems for honest evaluation.
///
/// Strings in `exclude` that are not questions of this task (or lie outside its operand range)
/// cannot match anything and are ignored.
pub fn generate_excluding(
    cfg: &TaskConfig,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
) -> Result<Vec<Problem>, TaskError> {
    generate_bounded(cfg, n, seed, exclude, MAX_CONSECUTIVE_REPEATS)
}

/// `generate_excluding` with the give-up bound as a parameter (so tests can reach it).
fn generate_bounded(
    cfg: &TaskConfig,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
    max_repeats: u64,
) -> Result<Vec<Problem>, TaskError> {
    cfg.validate()?;
    let draws = UniqueDraws {
        n,
        seed,
        exclude,
        max_repeats,
    };
    let (unique, available) = (cfg.unique, cfg.distinct_questions());
    match cfg.kind {
        TaskKind::Arithmetic => draws.run(unique, available, &arithmetic::Sampler::new(cfg)?),
        TaskKind::PqSystem => draws.run(unique, available, &pq::Sampler::new(cfg)),
        TaskKind::Expression => draws.run(unique, available, &expression::Sampler::new(cfg)?),
    }
}

/// One task's way of drawing problems: what the unique-draw loop needs to know of it.
pub(crate) trait Sampler {
    /// What one draw gives (an operand pair, an expression).
    type Drawn;
    /// What makes two draws the same question under the task's dedup rule.
    type Key: Eq + Hash;
    /// One draw; the order of its random numbers is part of the task's definition.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Self::Drawn;
    fn key(&self, drawn: &Self::Drawn) -> Self::Key;
    /// The key of a question as typed, if drawing could produce exactly it (a question that
    /// cannot be drawn cannot collide, so excluding it changes nothing).
    fn drawable_key(&self, question: &str) -> Option<Self::Key>;
    fn problem(&self, drawn: Self::Drawn) -> Problem;
}

/// The one rejection-sampling loop every task draws through.
pub(crate) struct UniqueDraws<'a> {
    pub n: usize,
    pub seed: u64,
    pub exclude: &'a HashSet<String>,
    /// Draws in a row that may all repeat earlier questions before giving up.
    pub max_repeats: u64,
}

impl UniqueDraws<'_> {
    /// `n` problems; with `unique`, no two alike (and none in `exclude`) out of the
    /// `available` distinct questions the task has.
    fn run<S: Sampler>(
        &self,
        unique: bool,
        available: u128,
        sampler: &S,
    ) -> Result<Vec<Problem>, TaskError> {
        Ok(self
            .drawn(unique, available, sampler)?
            .into_iter()
            .map(|d| sampler.problem(d))
            .collect())
    }

    /// The draws themselves (before they are written as problems).
    pub(crate) fn drawn<S: Sampler>(
        &self,
        unique: bool,
        available: u128,
        sampler: &S,
    ) -> Result<Vec<S::Drawn>, TaskError> {
        let n = self.n;
        let mut seen: HashSet<S::Key> = HashSet::with_capacity(n.min(1 << 20) + self.exclude.len());
        seen.extend(self.exclude.iter().filter_map(|q| sampler.drawable_key(q)));
        let available = available.saturating_sub(seen.len() as u128);
        if unique && n as u128 > available {
            return Err(TaskError::TooFew {
                wanted: n,
                available,
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut problems = Vec::with_capacity(n.min(1 << 20));
        let mut repeats = 0u64;
        while problems.len() < n {
            let drawn = sampler.draw(&mut rng);
            // Without uniqueness (Brownlee) every draw counts and `exclude` does not apply.
            if unique && !seen.insert(sampler.key(&drawn)) {
                repeats += 1;
                if repeats >= self.max_repeats {
                    return Err(TaskError::GaveUp {
                        repeats,
                        found: problems.len(),
                        wanted: n,
                        available,
                    });
                }
                continue;
            }
            repeats = 0;
            problems.push(drawn);
        }
        Ok(problems)
    }
}

/// Computes the exact answer and analysis of a question typed by a person ("12+345"), if it is
/// well formed for this task; used by eval and predict to check answers.
///
/// Surrounding whitespace is ignored. Arithmetic operands may be longer than `digits` (up to 37
/// digits), so answers to longer questions than the model trained on can be checked.
/// Expressions may have any length up to `expression::MAX_SOLVE_CHARS` characters, any number of
/// terms and bracket nesting up to `expression::MAX_SOLVE_DEPTH`, with the task's operators.
pub fn solve(cfg: &TaskConfig, question: &str) -> Result<Problem, TaskError> {
    cfg.validate()?;
    match cfg.kind {
        TaskKind::Arithmetic => arithmetic::Sampler::new(cfg)?.solve(question),
        TaskKind::PqSystem => pq::solve(question),
        TaskKind::Expression => expression::solve(cfg, question),
    }
}

/// A dedup key of a two-operand question: the operand pair, sorted or as drawn.
fn pair_key(dedup: Dedup, a: u128, b: u128) -> (u128, u128) {
    match dedup {
        Dedup::Sorted => (a.min(b), a.max(b)),
        Dedup::Ordered => (a, b),
    }
}

#[cfg(test)]
mod tests;
