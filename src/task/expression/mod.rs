//! The expression task (Brownlee's extensions): any number of terms, `+ - *` with the usual
//! precedence, brackets up to a nesting depth, exact answers with big integers.
//!
//! # How a question is drawn
//!
//! With `n` operands (uniform in `terms_min..=terms_max`):
//!
//! 1. the `n` operands, left to right, each the Keras way: a length uniform in
//!    `min_digits..=digits`, then a value uniform among the numbers of at most that many digits
//!    and at least `min_digits` (with `min_digits = 1`: uniform below `10^length`, so leading
//!    zeros collapse as in Keras);
//! 2. the `n - 1` operators, left to right, each uniform from `ops`;
//! 3. the bracketing, **uniform among all bracket structures** of `n` operands whose nesting
//!    depth is at most `brackets`. A structure is the written form: a bracket pair always holds
//!    at least two operands and is never the whole of what encloses it, so `(7)`, `((1+2))` and a
//!    question wrapped whole in brackets never appear. A bracket that does not change the value,
//!    like `(2*3)+1` or `(1+2)+3`, is drawn like any other: brackets are part of the question as
//!    written, not derived from the value, so the model has to read them (a rendering with only
//!    the brackets that matter would let it infer the grouping from the mere presence of one).
//!    With 3 terms and `brackets >= 1` the structures are `a?b?c`, `(a?b)?c` and `a?(b?c)`, each
//!    a third of the questions.
//!
//! The written question is exactly what was drawn, so different draws give different strings
//! and duplicates are detected by the question string. The answer is the value under the usual
//! rules (`*` before `+` and `-`, left to right otherwise, brackets first), computed with
//! `num-bigint`, written in decimal with `-` for negatives.

mod bounds;
mod enumerate;
mod generate;
mod parse;
mod worked;

pub(crate) use bounds::{distinct_questions, max_answer_len, max_question_len};
pub use bounds::{max_bracket_pairs, structures};
pub(crate) use enumerate::Forms;
pub(crate) use generate::Sampler;
pub(crate) use parse::{abbreviate, parse, parse_ops};
pub(crate) use worked::{max_worked_len, worked};
pub use worked::{PART_SEP, STEP_SEP};

use super::{Problem, TaskConfig, TaskError};
use num_bigint::{BigInt, BigUint, Sign};

/// Most operands a configured expression may have.
pub const MAX_TERMS: usize = 32;
/// Deepest bracket nesting a configuration may ask for (deeper than `MAX_TERMS - 2` is
/// impossible anyway: each level holds at least one operand fewer than the one around it).
pub const MAX_BRACKETS: usize = MAX_TERMS - 2;
/// Longest question or answer, in characters, a configured expression task may produce.
pub const MAX_LEN: usize = 1000;
/// Longest question `solve` reads (characters after trimming).
pub const MAX_SOLVE_CHARS: usize = 10_000;
/// Deepest bracket nesting `solve` reads (bounds the parser's recursion).
pub const MAX_SOLVE_DEPTH: usize = 100;
/// The operators expressions may use.
pub const OPERATORS: &str = "+-*";

/// A binary operator of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
}

impl BinOp {
    fn from_char(c: char) -> Option<BinOp> {
        match c {
            '+' => Some(BinOp::Add),
            '-' => Some(BinOp::Sub),
            '*' => Some(BinOp::Mul),
            _ => None,
        }
    }

    fn symbol(self) -> char {
        match self {
            BinOp::Add => '+',
            BinOp::Sub => '-',
            BinOp::Mul => '*',
        }
    }
}

/// An expression as written: items joined by operators (`ops.len() == items.len() - 1`).
/// Brackets are kept as written; precedence is applied when evaluating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seq {
    items: Vec<Item>,
    ops: Vec<BinOp>,
}

/// An operand or a bracketed sub-expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Num(BigUint),
    Group(Seq),
}

impl Seq {
    /// Writes the expression: numbers in decimal without leading zeros, brackets as held.
    pub(crate) fn write(&self, out: &mut String) {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(self.ops[i - 1].symbol());
            }
            match item {
                Item::Num(v) => out.push_str(&v.to_str_radix(10)),
                Item::Group(g) => {
                    out.push('(');
                    g.write(out);
                    out.push(')');
                }
            }
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    /// Number of operands.
    fn operands(&self) -> usize {
        self.items
            .iter()
            .map(|it| match it {
                Item::Num(_) => 1,
                Item::Group(g) => g.operands(),
            })
            .sum()
    }

    fn operand_lens(&self, out: &mut Vec<usize>) {
        for item in &self.items {
            match item {
                Item::Num(v) => out.push(decimal_len(v)),
                Item::Group(g) => g.operand_lens(out),
            }
        }
    }

    /// The exact value: a sum of products, left to right, brackets first. Adds to `carries` the
    /// column carries or borrows of every addition and subtraction as carried out on magnitudes
    /// (see `add_counting`); multiplications add none.
    fn eval(&self, carries: &mut usize) -> BigInt {
        let mut total = BigInt::ZERO;
        let mut term = self.items[0].eval(carries);
        let mut minus = false;
        for (op, item) in self.ops.iter().zip(&self.items[1..]) {
            let v = item.eval(carries);
            match op {
                BinOp::Mul => term *= v,
                BinOp::Add | BinOp::Sub => {
                    total = add_counting(total, term, minus, carries);
                    term = v;
                    minus = *op == BinOp::Sub;
                }
            }
        }
        add_counting(total, term, minus, carries)
    }

    /// The problem this expression poses.
    pub(crate) fn problem(&self) -> Problem {
        let mut carries = 0;
        let value = self.eval(&mut carries);
        let mut operand_lens = Vec::with_capacity(self.items.len());
        self.operand_lens(&mut operand_lens);
        Problem {
            question: self.render(),
            answer: value.to_string(),
            operand_lens,
            carries,
        }
    }

    /// Deepest bracket nesting (0 without brackets).
    fn depth(&self) -> usize {
        self.items
            .iter()
            .map(|it| match it {
                Item::Num(_) => 0,
                Item::Group(g) => 1 + g.depth(),
            })
            .max()
            .unwrap_or(0)
    }
}

impl Item {
    fn eval(&self, carries: &mut usize) -> BigInt {
        match self {
            Item::Num(v) => BigInt::from(v.clone()),
            Item::Group(g) => g.eval(carries),
        }
    }
}

/// `total + term` (or `total - term` when `minus`), counting the carries of adding the
/// magnitudes when the two sides have the same sign, else the borrows of subtracting the
/// smaller magnitude from the larger: the column work a person does. For two operands this is
/// the arithmetic task's count (carries for `+`, borrows for `-`).
fn add_counting(total: BigInt, term: BigInt, minus: bool, carries: &mut usize) -> BigInt {
    let term = if minus { -term } else { term };
    let same_sign =
        total.sign() == Sign::NoSign || term.sign() == Sign::NoSign || total.sign() == term.sign();
    *carries += column_carries(total.magnitude(), term.magnitude(), same_sign);
    total + term
}

/// Column carries of `a + b` (`add`) or borrows of `max(a, b) - min(a, b)`, in decimal.
fn column_carries(a: &BigUint, b: &BigUint, add: bool) -> usize {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    let (hi, lo) = (hi.to_str_radix(10), lo.to_str_radix(10));
    let (hi, lo) = (hi.as_bytes(), lo.as_bytes());
    let (mut carry, mut count) = (0u8, 0usize);
    for i in 0..hi.len() {
        let x = hi[hi.len() - 1 - i] - b'0';
        let y = if i < lo.len() {
            lo[lo.len() - 1 - i] - b'0'
        } else {
            0
        };
        carry = if add {
            u8::from(x + y + carry >= 10)
        } else {
            u8::from(x < y + carry)
        };
        count += usize::from(carry);
    }
    count
}

/// Decimal digits of `v` as written (0 has one).
fn decimal_len(v: &BigUint) -> usize {
    v.to_str_radix(10).len()
}

/// `solve` for the expression task: any well-formed expression with this task's operators
/// (more terms, longer operands or deeper brackets than the task draws are fine).
pub(crate) fn solve(cfg: &TaskConfig, question: &str) -> Result<Problem, TaskError> {
    let allowed = parse_ops(&cfg.ops)?;
    let seq = parse(question)?;
    let mut stack = vec![&seq];
    while let Some(s) = stack.pop() {
        if let Some(op) = s.ops.iter().find(|op| !allowed.contains(op)) {
            return Err(TaskError::Invalid(format!(
                "{:?} uses '{}' but this task's operators are {:?}",
                abbreviate(question.trim()),
                op.symbol(),
                cfg.ops
            )));
        }
        stack.extend(s.items.iter().filter_map(|it| match it {
            Item::Group(g) => Some(g),
            Item::Num(_) => None,
        }));
    }
    Ok(seq.problem())
}

/// Bracket nesting depth of a question (0 when it has none or does not parse).
pub fn bracket_depth(question: &str) -> usize {
    parse(question).map_or(0, |s| s.depth())
}

#[cfg(test)]
mod tests;
