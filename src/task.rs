//! Problem generators: questions and exact answers as strings, never tensors.
//!
//! `TaskConfig` describes the task (serde, every field defaulted); `generate` draws `n` unique
//! problems from it with a seeded RNG (ChaCha8, so the same seed gives the same problems on every
//! platform and rand version).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
    /// Expression: the number of operands is uniform in `terms_min..=terms_max`.
    pub terms_min: usize,
    pub terms_max: usize,
    /// Expression: the operators to draw from, each uniformly: a subset of "+-*".
    pub ops: String,
    /// Expression: the deepest bracket nesting (0: no brackets).
    pub brackets: usize,
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
            terms_min: 2,
            terms_max: 2,
            ops: crate::expression::OPERATORS.into(),
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

/// Errors from task configuration or generation.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task: {0}")]
    Invalid(String),
    #[error("asked for {wanted} unique questions but the task has only {available} distinct ones")]
    TooFew { wanted: usize, available: u128 },
}

/// Longest operand `validate` accepts for arithmetic and expressions, in digits (arithmetic
/// answers stay exact in `i128`; operands are drawn as `u128`).
pub const MAX_DIGITS: usize = 30;
/// Largest `pq_max` `validate` accepts (questions and answers of up to 200,001 symbols).
pub const MAX_PQ: usize = 100_000;
/// Longest operand `solve` accepts, in digits: sums and differences of two such numbers fit `i128`.
const MAX_SOLVE_DIGITS: usize = 37;
/// Draws in a row that may all repeat earlier questions before `generate` gives up. Rejection
/// sampling only stalls when nearly every distinct question has been drawn; at tens of
/// millions of draws per second this bounds the wait to about a second.
const MAX_CONSECUTIVE_REPEATS: u64 = 20_000_000;

impl TaskConfig {
    /// Checks the configuration is possible (digits >= 1, known op, pq_max >= 1, ...).
    pub fn validate(&self) -> Result<(), TaskError> {
        let invalid = |m: String| Err(TaskError::Invalid(m));
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
        use crate::expression::{MAX_BRACKETS, MAX_LEN, MAX_TERMS};
        let invalid = |m: String| Err(TaskError::Invalid(m));
        self.validate_digits()?;
        if self.terms_min < 1 || self.terms_min > self.terms_max || self.terms_max > MAX_TERMS {
            return invalid(format!(
                "terms must be a range within 1..={MAX_TERMS} (at least one operand), got {}..={}",
                self.terms_min, self.terms_max
            ));
        }
        crate::expression::parse_ops(&self.ops)?;
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
            TaskKind::Expression => crate::expression::max_question_len(self),
        }
    }

    /// Longest worked answer (the codec's scratchpad, see `crate::expression::worked`); only
    /// expressions have one, other tasks give their longest answer.
    pub fn max_worked_len(&self) -> usize {
        match self.kind {
            TaskKind::Expression => crate::expression::max_worked_len(self),
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
            TaskKind::Expression => crate::expression::max_answer_len(self),
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
            TaskKind::Arithmetic => crate::expression::operand_values(self.min_digits, self.digits),
            TaskKind::PqSystem => self.pq_max as u128,
            TaskKind::Expression => return crate::expression::distinct_questions(self),
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
    if cfg.kind == TaskKind::Expression {
        return crate::expression::generate(cfg, n, seed, exclude, max_repeats);
    }
    let sampler = Sampler::new(cfg)?;
    let dedup = cfg.dedup_rule();
    let mut seen: HashSet<Key> = HashSet::with_capacity(n.min(1 << 20) + exclude.len());
    for q in exclude {
        if let Ok((a, b)) = sampler.parse_operands(q) {
            if sampler.in_range(a, b) {
                seen.insert(key(dedup, a, b));
            }
        }
    }
    let distinct = cfg.distinct_questions();
    let available = distinct.saturating_sub(seen.len() as u128);
    if cfg.unique && n as u128 > available {
        return Err(TaskError::TooFew {
            wanted: n,
            available,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut problems = Vec::with_capacity(n.min(1 << 20));
    let mut repeats = 0u64;
    while problems.len() < n {
        let (a, b) = sampler.draw(&mut rng);
        // Without uniqueness (Brownlee) every draw counts and `exclude` does not apply.
        if cfg.unique && !seen.insert(key(dedup, a, b)) {
            repeats += 1;
            if repeats >= max_repeats {
                return Err(gave_up(repeats, problems.len(), n, available));
            }
            continue;
        }
        repeats = 0;
        problems.push(sampler.problem(a, b));
    }
    Ok(problems)
}

/// The error when rejection sampling stalls near exhaustion.
pub(crate) fn gave_up(repeats: u64, found: usize, n: usize, available: u128) -> TaskError {
    TaskError::Invalid(format!(
        "gave up after {repeats} draws in a row repeated earlier questions, with {found} of the \
         {n} unique questions asked for found; {available} are possible but the rest are too \
         rare to draw: ask for fewer"
    ))
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
    if cfg.kind == TaskKind::Expression {
        return crate::expression::solve(cfg, question);
    }
    let sampler = Sampler::new(cfg)?;
    let (a, b) = sampler.parse_operands(question)?;
    Ok(sampler.problem(a, b))
}

/// A dedup key: the operand pair, sorted or as drawn.
type Key = (u128, u128);

fn key(dedup: Dedup, a: u128, b: u128) -> Key {
    match dedup {
        Dedup::Sorted => (a.min(b), a.max(b)),
        Dedup::Ordered => (a, b),
    }
}

/// How one task draws operand pairs and turns them into problems.
enum Sampler {
    Arithmetic {
        op: Op,
        digits: usize,
        min_digits: usize,
        range: Option<(u128, u128)>,
    },
    Pq {
        max: usize,
    },
}

impl Sampler {
    fn new(cfg: &TaskConfig) -> Result<Sampler, TaskError> {
        Ok(match cfg.kind {
            TaskKind::Arithmetic => Sampler::Arithmetic {
                op: Op::from_symbol(&cfg.op)
                    .ok_or_else(|| TaskError::Invalid(format!("unknown operator {:?}", cfg.op)))?,
                digits: cfg.digits,
                min_digits: cfg.min_digits,
                range: cfg
                    .max_value
                    .map(|max| (cfg.min_value as u128, max as u128)),
            },
            TaskKind::PqSystem => Sampler::Pq { max: cfg.pq_max },
            TaskKind::Expression => {
                return Err(TaskError::Invalid(
                    "the expression task has its own sampler".into(),
                ))
            }
        })
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> (u128, u128) {
        match *self {
            Sampler::Arithmetic {
                range: Some((lo, hi)),
                ..
            } => (rng.random_range(lo..=hi), rng.random_range(lo..=hi)),
            Sampler::Arithmetic {
                digits, min_digits, ..
            } => (
                draw_operand(rng, min_digits, digits),
                draw_operand(rng, min_digits, digits),
            ),
            Sampler::Pq { max } => (
                rng.random_range(1..=max) as u128,
                rng.random_range(1..=max) as u128,
            ),
        }
    }

    /// Whether generation can draw this pair (exclusions outside the range cannot collide).
    fn in_range(&self, a: u128, b: u128) -> bool {
        match *self {
            Sampler::Arithmetic {
                range: Some((lo, hi)),
                ..
            } => (lo..=hi).contains(&a) && (lo..=hi).contains(&b),
            Sampler::Arithmetic {
                digits, min_digits, ..
            } => {
                let values = crate::expression::operand_floor(min_digits)..pow10(digits);
                values.contains(&a) && values.contains(&b)
            }
            Sampler::Pq { max } => (1..=max as u128).contains(&a) && (1..=max as u128).contains(&b),
        }
    }

    fn problem(&self, a: u128, b: u128) -> Problem {
        match *self {
            Sampler::Arithmetic { op, .. } => {
                Expr::binary(op, Expr::Num(a), Expr::Num(b)).problem()
            }
            Sampler::Pq { .. } => {
                let (a, b) = (a as usize, b as usize);
                let mut question = String::with_capacity(a + b + 1);
                question.extend(std::iter::repeat_n('-', a));
                question.push('p');
                question.extend(std::iter::repeat_n('-', b));
                let mut answer = String::with_capacity(a + b + 1);
                answer.push('q');
                answer.extend(std::iter::repeat_n('-', a + b));
                Problem {
                    question,
                    answer,
                    operand_lens: vec![a, b],
                    carries: 0,
                }
            }
        }
    }

    /// Parses a question as typed into its operand pair, checking its shape fits this task.
    fn parse_operands(&self, question: &str) -> Result<(u128, u128), TaskError> {
        match *self {
            Sampler::Arithmetic { op, .. } => match parse_expr(question)? {
                Expr::Bin(got, lhs, rhs) if got == op => match (*lhs, *rhs) {
                    (Expr::Num(a), Expr::Num(b)) => Ok((a, b)),
                    _ => Err(TaskError::Invalid(format!(
                        "{:?} has more than two operands; this task asks questions like 12{}345",
                        question.trim(),
                        op.symbol()
                    ))),
                },
                Expr::Bin(got, ..) => Err(TaskError::Invalid(format!(
                    "{:?} uses '{}' but this task asks questions like 12{}345",
                    question.trim(),
                    got.symbol(),
                    op.symbol()
                ))),
                Expr::Num(_) => Err(TaskError::Invalid(format!(
                    "{:?} has no operator; this task asks questions like 12{}345",
                    question.trim(),
                    op.symbol()
                ))),
            },
            Sampler::Pq { .. } => parse_pq(question),
        }
    }
}

/// One operand the Keras way: a length uniform in min_digits..=digits, then that many uniform
/// digits (leading zeros collapse, so short numbers are common). The digits are drawn as one
/// uniform number below 10^length: the same distribution as drawing them one at a time. With
/// `min_digits` above 1 the number is uniform in 10^(min_digits-1)..10^length instead, so it
/// never has fewer than `min_digits` digits. With `min_digits = 1` the draws are Keras's, and
/// the same random numbers as before `min_digits` existed.
pub(crate) fn draw_operand(rng: &mut ChaCha8Rng, min_digits: usize, digits: usize) -> u128 {
    let len = rng.random_range(min_digits..=digits);
    rng.random_range(crate::expression::operand_floor(min_digits)..pow10(len))
}

pub(crate) fn pow10(n: usize) -> u128 {
    10u128.pow(n as u32)
}

/// Decimal digits of `v` as written (0 has one).
fn decimal_len(mut v: u128) -> usize {
    let mut len = 1;
    while v >= 10 {
        v /= 10;
        len += 1;
    }
    len
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
}

impl Op {
    fn from_symbol(s: &str) -> Option<Op> {
        match s {
            "+" => Some(Op::Add),
            "-" => Some(Op::Sub),
            _ => None,
        }
    }

    fn from_char(c: char) -> Option<Op> {
        match c {
            '+' => Some(Op::Add),
            '-' => Some(Op::Sub),
            _ => None,
        }
    }

    fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
        }
    }

    /// Whether results of non-negative operands can be negative (the answer then needs '-').
    fn can_be_negative(self) -> bool {
        matches!(self, Op::Sub)
    }

    fn apply(self, a: i128, b: i128) -> Option<i128> {
        match self {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
        }
    }

    /// Column carries when adding `a` and `b` in decimal, or borrows when subtracting the
    /// smaller from the larger.
    fn column_carries(self, a: u128, b: u128) -> usize {
        let (mut hi, mut lo) = (a.max(b), a.min(b));
        let mut carry = 0u128;
        let mut count = 0;
        while hi > 0 || lo > 0 {
            let (x, y) = (hi % 10, lo % 10 + carry);
            carry = match self {
                Op::Add => u128::from(x + y >= 10),
                Op::Sub => u128::from(x < y),
            };
            count += carry as usize;
            hi /= 10;
            lo /= 10;
        }
        count
    }
}

/// An arithmetic expression. Today questions are one binary operation on two literals; more
/// terms, other operators and brackets extend this without touching the generator's contract.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Num(u128),
    Bin(Op, Box<Expr>, Box<Expr>),
}

impl Expr {
    fn binary(op: Op, lhs: Expr, rhs: Expr) -> Expr {
        Expr::Bin(op, Box::new(lhs), Box::new(rhs))
    }

    /// The exact value, `None` on overflow.
    fn eval(&self) -> Option<i128> {
        match self {
            Expr::Num(v) => i128::try_from(*v).ok(),
            Expr::Bin(op, lhs, rhs) => op.apply(lhs.eval()?, rhs.eval()?),
        }
    }

    /// Writes the expression as a person types it. Operators associate to the left, so a
    /// compound right operand needs brackets.
    fn write(&self, out: &mut String) {
        match self {
            Expr::Num(v) => out.push_str(&v.to_string()),
            Expr::Bin(op, lhs, rhs) => {
                lhs.write(out);
                out.push(op.symbol());
                if let Expr::Bin(..) = **rhs {
                    out.push('(');
                    rhs.write(out);
                    out.push(')');
                } else {
                    rhs.write(out);
                }
            }
        }
    }

    fn operand_lens(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Num(v) => out.push(decimal_len(*v)),
            Expr::Bin(_, lhs, rhs) => {
                lhs.operand_lens(out);
                rhs.operand_lens(out);
            }
        }
    }

    /// Carries or borrows of every operation, each on the magnitudes of its operands.
    fn carries(&self) -> Option<usize> {
        match self {
            Expr::Num(_) => Some(0),
            Expr::Bin(op, lhs, rhs) => {
                let (a, b) = (lhs.eval()?.unsigned_abs(), rhs.eval()?.unsigned_abs());
                Some(lhs.carries()? + rhs.carries()? + op.column_carries(a, b))
            }
        }
    }

    /// The problem this expression poses. Callers keep operands small enough not to overflow.
    fn problem(&self) -> Problem {
        let mut question = String::new();
        self.write(&mut question);
        let mut operand_lens = Vec::with_capacity(2);
        self.operand_lens(&mut operand_lens);
        Problem {
            question,
            answer: self.eval().expect("operands fit i128").to_string(),
            operand_lens,
            carries: self.carries().expect("operands fit i128"),
        }
    }
}

/// Parses `number (op number)*`, left-associative, ignoring surrounding whitespace. Columns in
/// messages are 1-based, in the string as typed.
fn parse_expr(text: &str) -> Result<Expr, TaskError> {
    let trimmed = text.trim_start();
    let offset = text.chars().count() - trimmed.chars().count();
    let chars: Vec<char> = trimmed.trim_end().chars().collect();
    if chars.is_empty() {
        return Err(TaskError::Invalid("empty question".into()));
    }
    let mut pos = 0;
    let mut expr = parse_number(text, &chars, &mut pos, offset)?;
    while pos < chars.len() {
        let c = chars[pos];
        let op = Op::from_char(c).ok_or_else(|| unexpected(text, c, offset + pos + 1))?;
        pos += 1;
        let rhs = parse_number(text, &chars, &mut pos, offset)?;
        expr = Expr::binary(op, expr, rhs);
    }
    if expr.eval().is_none() {
        return Err(TaskError::Invalid(format!(
            "{:?}: the answer is too large",
            text.trim()
        )));
    }
    Ok(expr)
}

fn parse_number(
    text: &str,
    chars: &[char],
    pos: &mut usize,
    offset: usize,
) -> Result<Expr, TaskError> {
    let start = *pos;
    while *pos < chars.len() && chars[*pos].is_ascii_digit() {
        *pos += 1;
    }
    let column = offset + start + 1;
    if *pos == start {
        return Err(match chars.get(start) {
            Some(&c) => unexpected(text, c, column),
            None => TaskError::Invalid(format!(
                "{:?} ends without its last operand (column {column})",
                text.trim()
            )),
        });
    }
    let digits = *pos - start;
    if digits > MAX_SOLVE_DIGITS {
        return Err(TaskError::Invalid(format!(
            "the operand at column {column} of {:?} has {digits} digits; at most \
             {MAX_SOLVE_DIGITS} are supported",
            text.trim()
        )));
    }
    let literal: String = chars[start..*pos].iter().collect();
    Ok(Expr::Num(
        literal.parse().expect("at most 37 ASCII digits fit u128"),
    ))
}

fn unexpected(text: &str, c: char, column: usize) -> TaskError {
    TaskError::Invalid(format!(
        "unexpected character {c:?} at column {column} of {:?}; expected a question like 12+345",
        text.trim()
    ))
}

/// Parses a pq-system question, `<a dashes>p<b dashes>` with a, b >= 1.
fn parse_pq(text: &str) -> Result<(u128, u128), TaskError> {
    let q = text.trim();
    let malformed = || {
        TaskError::Invalid(format!(
            "{q:?} is not a pq-system question: expected dashes, 'p', dashes, like --p---"
        ))
    };
    let (a, b) = q.split_once('p').ok_or_else(malformed)?;
    let dashes = |s: &str| !s.is_empty() && s.bytes().all(|c| c == b'-');
    if !dashes(a) || !dashes(b) {
        return Err(malformed());
    }
    Ok((a.len() as u128, b.len() as u128))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arith(digits: usize, op: &str, dedup: Option<Dedup>) -> TaskConfig {
        TaskConfig {
            digits,
            op: op.into(),
            dedup,
            ..TaskConfig::default()
        }
    }

    fn pq(pq_max: usize) -> TaskConfig {
        TaskConfig {
            kind: TaskKind::PqSystem,
            pq_max,
            ..TaskConfig::default()
        }
    }

    /// Column carries or borrows, recomputed on digit strings (independent of `Op`).
    fn carries_by_hand(a: &str, b: &str, op: char) -> usize {
        let (x, y): (u128, u128) = (a.parse().unwrap(), b.parse().unwrap());
        let (hi, lo) = if x >= y { (a, b) } else { (b, a) };
        let hi: Vec<u32> = hi.chars().rev().map(|c| c.to_digit(10).unwrap()).collect();
        let lo: Vec<u32> = lo.chars().rev().map(|c| c.to_digit(10).unwrap()).collect();
        let (mut carry, mut count) = (0, 0);
        for i in 0..hi.len().max(lo.len()) {
            let (p, q) = (*hi.get(i).unwrap_or(&0), *lo.get(i).unwrap_or(&0));
            carry = if op == '+' {
                (p + q + carry) / 10
            } else {
                u32::from(p < q + carry)
            };
            count += carry as usize;
        }
        count
    }

    /// Checks everything a generated arithmetic problem promises.
    fn check_arithmetic(cfg: &TaskConfig, p: &Problem) {
        let op = cfg.op.chars().next().unwrap();
        let (a, b) = p
            .question
            .split_once(op)
            .expect("question has the operator");
        let (x, y): (i128, i128) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a, x.to_string(), "no leading zeros in {:?}", p.question);
        assert_eq!(b, y.to_string(), "no leading zeros in {:?}", p.question);
        let want = if op == '+' { x + y } else { x - y };
        assert_eq!(p.answer, want.to_string(), "answer to {:?}", p.question);
        assert_eq!(p.operand_lens, vec![a.len(), b.len()]);
        assert!(p.operand_lens.iter().all(|l| (1..=cfg.digits).contains(l)));
        assert!(p.question.len() <= cfg.max_question_len());
        assert!(p.answer.len() <= cfg.max_answer_len());
        assert_eq!(
            p.carries,
            carries_by_hand(a, b, op),
            "carries of {:?}",
            p.question
        );
        assert_eq!(&solve(cfg, &p.question).unwrap(), p);
    }

    fn dedup_strategy() -> impl Strategy<Value = Option<Dedup>> {
        prop_oneof![
            Just(None),
            Just(Some(Dedup::Sorted)),
            Just(Some(Dedup::Ordered))
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arithmetic_problems_are_unique_right_and_fit(
            digits in 1usize..=6,
            plus in any::<bool>(),
            dedup in dedup_strategy(),
            n in 1usize..300,
            seed in any::<u64>(),
        ) {
            let cfg = arith(digits, if plus { "+" } else { "-" }, dedup);
            let n = n.min(cfg.distinct_questions() as usize);
            let problems = generate(&cfg, n, seed).unwrap();
            prop_assert_eq!(problems.len(), n);
            let rule = cfg.dedup_rule();
            let mut keys = HashSet::new();
            let questions: HashSet<&str> = problems.iter().map(|p| p.question.as_str()).collect();
            for p in &problems {
                check_arithmetic(&cfg, p);
                let (a, b) = p.question.split_once(cfg.op.as_str()).unwrap();
                let (x, y): (u128, u128) = (a.parse().unwrap(), b.parse().unwrap());
                prop_assert!(keys.insert(key(rule, x, y)), "duplicate {}", p.question);
                if rule == Dedup::Sorted && x != y {
                    let swapped = format!("{b}{}{a}", cfg.op);
                    prop_assert!(!questions.contains(swapped.as_str()), "{} and {}", p.question, swapped);
                }
            }
            prop_assert_eq!(&generate(&cfg, n, seed).unwrap(), &problems);
        }

        #[test]
        fn pq_problems_are_unique_right_and_fit(
            pq_max in 1usize..=60,
            n in 1usize..200,
            seed in any::<u64>(),
        ) {
            let cfg = pq(pq_max);
            let n = n.min(cfg.distinct_questions() as usize);
            let problems = generate(&cfg, n, seed).unwrap();
            prop_assert_eq!(problems.len(), n);
            let mut seen = HashSet::new();
            for p in &problems {
                let (a, b) = p.question.split_once('p').unwrap();
                prop_assert!(a.chars().chain(b.chars()).all(|c| c == '-'));
                prop_assert!((1..=pq_max).contains(&a.len()) && (1..=pq_max).contains(&b.len()));
                prop_assert_eq!(&p.answer, &format!("q{}", "-".repeat(a.len() + b.len())));
                prop_assert_eq!(&p.operand_lens, &vec![a.len(), b.len()]);
                prop_assert_eq!(p.carries, 0);
                prop_assert!(p.question.len() <= cfg.max_question_len());
                prop_assert!(p.answer.len() <= cfg.max_answer_len());
                prop_assert!(seen.insert(p.question.clone()));
                prop_assert_eq!(&solve(&cfg, &p.question).unwrap(), p);
            }
        }
    }

    #[test]
    fn seeds_decide_the_problems() {
        let cfg = TaskConfig::default();
        let a = generate(&cfg, 200, 7).unwrap();
        assert_eq!(a, generate(&cfg, 200, 7).unwrap());
        assert_ne!(a, generate(&cfg, 200, 8).unwrap());
        // A longer run starts with the shorter one.
        assert_eq!(&generate(&cfg, 400, 7).unwrap()[..200], &a[..]);
        let p = pq(1000);
        assert_ne!(generate(&p, 20, 1).unwrap(), generate(&p, 20, 2).unwrap());
    }

    #[test]
    fn operand_lengths_follow_keras() {
        // Length uniform in 1..=3, then uniform digits: P(one digit) = (1 + 1/10 + 1/100) / 3.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws = 60_000;
        let mut by_len = [0usize; 4];
        for _ in 0..draws {
            by_len[decimal_len(draw_operand(&mut rng, 1, 3))] += 1;
        }
        let share = |l: usize| by_len[l] as f64 / draws as f64;
        assert!(
            (share(1) - 0.37).abs() < 0.01,
            "one-digit share {}",
            share(1)
        );
        assert!(
            (share(2) - 0.33).abs() < 0.01,
            "two-digit share {}",
            share(2)
        );
        assert!(
            (share(3) - 0.30).abs() < 0.01,
            "three-digit share {}",
            share(3)
        );
        // Dedup removes most repeats of the few short pairs, yet in a Keras-sized data set about
        // a tenth of the operands still have one digit (measured 0.0975 with this seed).
        let problems = generate(&TaskConfig::default(), 50_000, 0).unwrap();
        let ones = problems
            .iter()
            .flat_map(|p| &p.operand_lens)
            .filter(|&&l| l == 1)
            .count();
        let share = ones as f64 / (2 * problems.len()) as f64;
        assert!(
            (0.08..0.12).contains(&share),
            "one-digit operands after dedup: {share}"
        );
    }

    #[test]
    fn too_few_distinct_questions() {
        let add1 = arith(1, "+", None);
        assert_eq!(add1.distinct_questions(), 55);
        match generate(&add1, 56, 0) {
            Err(TaskError::TooFew {
                wanted: 56,
                available: 55,
            }) => {}
            other => panic!("expected TooFew, got {other:?}"),
        }
        let all = generate(&add1, 55, 0).unwrap();
        let sorted: HashSet<(u32, u32)> = all
            .iter()
            .map(|p| {
                let (a, b) = p.question.split_once('+').unwrap();
                let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
                (a.min(b), a.max(b))
            })
            .collect();
        assert_eq!(sorted.len(), 55);
        let sub1 = arith(1, "-", None);
        assert_eq!(sub1.distinct_questions(), 100);
        assert_eq!(generate(&sub1, 100, 3).unwrap().len(), 100);
        assert!(matches!(
            generate(&sub1, 101, 3),
            Err(TaskError::TooFew { available: 100, .. })
        ));
        assert!(matches!(
            generate(&pq(3), 10, 0),
            Err(TaskError::TooFew { available: 9, .. })
        ));
    }

    #[test]
    fn gives_up_instead_of_hanging() {
        // All 5,050 two-digit sums are possible, but with only 10 repeats allowed in a row the
        // sampler gives up near exhaustion with a clear error.
        let err = generate_bounded(&arith(2, "+", None), 5050, 0, &HashSet::new(), 10).unwrap_err();
        assert!(
            matches!(&err, TaskError::Invalid(m) if m.contains("ask for fewer")),
            "{err}"
        );
        assert_eq!(generate(&arith(2, "+", None), 5050, 0).unwrap().len(), 5050);
    }

    #[test]
    fn distinct_question_counts() {
        assert_eq!(TaskConfig::default().distinct_questions(), 500_500);
        assert_eq!(arith(3, "-", None).distinct_questions(), 1_000_000);
        assert_eq!(
            arith(3, "-", Some(Dedup::Sorted)).distinct_questions(),
            500_500
        );
        assert_eq!(
            arith(5, "+", Some(Dedup::Ordered)).distinct_questions(),
            10_000_000_000
        );
        assert_eq!(
            arith(19, "+", None).distinct_questions(),
            10u128.pow(19) / 2 * (10u128.pow(19) + 1)
        );
        assert_eq!(arith(30, "+", None).distinct_questions(), u128::MAX);
        assert_eq!(arith(30, "-", None).distinct_questions(), u128::MAX);
        assert_eq!(pq(1000).distinct_questions(), 1_000_000);
        assert_eq!(
            TaskConfig {
                dedup: Some(Dedup::Sorted),
                ..pq(4)
            }
            .distinct_questions(),
            10
        );
    }

    #[test]
    fn excluded_questions_never_return() {
        let cfg = arith(1, "+", None);
        let first = generate(&cfg, 30, 1).unwrap();
        // Written the other way round they still exclude (sorted key); junk is ignored.
        let mut exclude: HashSet<String> = first
            .iter()
            .map(|p| {
                let (a, b) = p.question.split_once('+').unwrap();
                format!("{b}+{a}")
            })
            .collect();
        exclude.insert("not a question".into());
        exclude.insert("123+4".into());
        let fresh = generate_excluding(&cfg, 25, 2, &exclude).unwrap();
        let old: HashSet<&str> = first.iter().map(|p| p.question.as_str()).collect();
        assert!(fresh.iter().all(|p| !old.contains(p.question.as_str())));
        assert!(matches!(
            generate_excluding(&cfg, 26, 2, &exclude),
            Err(TaskError::TooFew {
                wanted: 26,
                available: 25
            })
        ));
        let cfg = pq(5);
        let exclude: HashSet<String> = ["-p-".to_string(), "--p-".to_string()].into();
        let fresh = generate_excluding(&cfg, 23, 0, &exclude).unwrap();
        assert!(fresh.iter().all(|p| !exclude.contains(&p.question)));
    }

    #[test]
    fn brownlee_ranges_draw_with_repetition() {
        let cfg = TaskConfig {
            max_value: Some(10),
            min_value: 1,
            unique: false,
            ..TaskConfig::default()
        };
        cfg.validate().unwrap();
        assert_eq!((cfg.max_question_len(), cfg.max_answer_len()), (5, 2));
        assert_eq!(cfg.distinct_questions(), 55);
        let ps = generate(&cfg, 500, 3).unwrap();
        assert_eq!(
            ps.len(),
            500,
            "more problems than distinct questions: repetition allowed"
        );
        for p in &ps {
            let (a, b) = p.question.split_once('+').unwrap();
            let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
            assert!((1..=10).contains(&a) && (1..=10).contains(&b));
            assert_eq!(p.answer, (a + b).to_string());
        }
        let bad = TaskConfig {
            max_value: Some(3),
            min_value: 5,
            ..TaskConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn carries_and_borrows() {
        let add = arith(3, "+", None);
        let sub = arith(3, "-", None);
        for (cfg, q, answer, carries) in [
            (&add, "999+1", "1000", 3),
            (&add, "123+456", "579", 0),
            (&add, "55+45", "100", 2),
            (&add, "0+0", "0", 0),
            (&add, "95+5", "100", 2),
            (&sub, "15-7", "8", 1),
            (&sub, "7-15", "-8", 1),
            (&sub, "100-1", "99", 2),
            (&sub, "345-12", "333", 0),
            (&sub, "12-345", "-333", 0),
            (&sub, "1000-999", "1", 3),
        ] {
            let p = solve(cfg, q).unwrap();
            assert_eq!((p.answer.as_str(), p.carries), (answer, carries), "{q}");
        }
    }

    #[test]
    fn solve_reads_typed_questions() {
        let p = solve(&TaskConfig::default(), "  12+345\n").unwrap();
        assert_eq!(
            p,
            Problem {
                question: "12+345".into(),
                answer: "357".into(),
                operand_lens: vec![2, 3],
                carries: 0
            }
        );
        // Longer than the task's digits is fine (length generalisation); leading zeros kept.
        assert_eq!(
            solve(&TaskConfig::default(), "12345+1").unwrap().answer,
            "12346"
        );
        assert_eq!(
            solve(&TaskConfig::default(), "007+1").unwrap().operand_lens,
            vec![1, 1]
        );
        let p = solve(&pq(1000), "--p---").unwrap();
        assert_eq!((p.answer.as_str(), p.operand_lens), ("q-----", vec![2, 3]));
        let big = "9".repeat(37);
        assert_eq!(
            solve(&TaskConfig::default(), &format!("{big}+1"))
                .unwrap()
                .answer,
            format!("1{}", "0".repeat(37))
        );
    }

    #[test]
    fn solve_explains_malformed_questions() {
        let add = TaskConfig::default();
        for (q, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("1x2", "'x' at column 2"),
            (" 1x2", "'x' at column 3"),
            ("12+", "last operand"),
            ("+3", "'+' at column 1"),
            ("12 + 3", "' ' at column 3"),
            ("12-3", "uses '-'"),
            ("1+2+3", "more than two operands"),
            ("123", "no operator"),
            (&format!("{}+1", "1".repeat(38)), "38 digits"),
        ] {
            match solve(&add, q) {
                Err(TaskError::Invalid(m)) => assert!(m.contains(needle), "{q:?}: {m}"),
                other => panic!("{q:?}: expected Invalid, got {other:?}"),
            }
        }
        let sub = arith(3, "-", None);
        assert!(matches!(solve(&sub, "-5-3"), Err(TaskError::Invalid(_))));
        for q in ["p--", "--p", "-p-p-", "--q--", "-+p-"] {
            assert!(
                matches!(solve(&pq(10), q), Err(TaskError::Invalid(m)) if m.contains("pq-system")),
                "{q}"
            );
        }
    }

    #[test]
    fn alphabets_and_widths() {
        let add = TaskConfig::default();
        assert_eq!(add.alphabet(), " +0123456789");
        assert_eq!((add.max_question_len(), add.max_answer_len()), (7, 4));
        let sub = arith(5, "-", None);
        assert_eq!(sub.alphabet(), " +-0123456789");
        assert_eq!((sub.max_question_len(), sub.max_answer_len()), (11, 6));
        let p = pq(1000);
        assert_eq!(p.alphabet(), " -pq");
        assert_eq!((p.max_question_len(), p.max_answer_len()), (2001, 2001));
        assert_eq!(add.dedup_rule(), Dedup::Sorted);
        assert_eq!(sub.dedup_rule(), Dedup::Ordered);
        assert_eq!(p.dedup_rule(), Dedup::Ordered);
        assert_eq!(
            arith(3, "-", Some(Dedup::Sorted)).dedup_rule(),
            Dedup::Sorted
        );
    }

    #[test]
    fn validation() {
        assert!(TaskConfig::default().validate().is_ok());
        assert!(pq(1000).validate().is_ok());
        assert!(arith(30, "-", None).validate().is_ok());
        for (cfg, needle) in [
            (arith(0, "+", None), "digits"),
            (arith(31, "+", None), "digits"),
            (arith(3, "*", None), "\"*\""),
            (arith(3, "", None), "operator"),
            (pq(0), "pq_max"),
            (pq(100_001), "pq_max"),
        ] {
            match cfg.validate() {
                Err(TaskError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{cfg:?}: expected Invalid, got {other:?}"),
            }
            assert!(generate(&cfg, 1, 0).is_err());
        }
    }
}
