//! `a<op>b` with decimal operands (Keras `addition_rnn`), and Brownlee's operand ranges.

use super::operand::{decimal_len, draw_operand, operand_floor, pow10};
use super::Sampler as _;
use super::{pair_key, Dedup, Problem, TaskConfig, TaskError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Longest operand `solve` accepts, in digits: sums and differences of two such numbers fit `i128`.
const MAX_SOLVE_DIGITS: usize = 37;

/// Draws operand pairs of one (validated) arithmetic config and turns them into problems.
pub(super) struct Sampler {
    op: Op,
    digits: usize,
    min_digits: usize,
    /// The fraction of pairs drawn uniformly over the domain (`TaskConfig::uniform_fraction`).
    uniform_fraction: f64,
    /// Brownlee's operand range, when set (else the Keras digit-length draw).
    range: Option<(u128, u128)>,
    dedup: Dedup,
}

impl Sampler {
    pub(super) fn new(cfg: &TaskConfig) -> Result<Sampler, TaskError> {
        Ok(Sampler {
            op: Op::from_symbol(&cfg.op)
                .ok_or_else(|| TaskError::Invalid(format!("unknown operator {:?}", cfg.op)))?,
            digits: cfg.digits,
            min_digits: cfg.min_digits,
            uniform_fraction: cfg.uniform_fraction,
            range: cfg
                .max_value
                .map(|max| (cfg.min_value as u128, max as u128)),
            dedup: cfg.dedup_rule(),
        })
    }

    /// Whether generation can draw this pair (exclusions outside the range cannot collide).
    fn in_range(&self, a: u128, b: u128) -> bool {
        match self.range {
            Some((lo, hi)) => (lo..=hi).contains(&a) && (lo..=hi).contains(&b),
            None => {
                let values = operand_floor(self.min_digits)..pow10(self.digits);
                values.contains(&a) && values.contains(&b)
            }
        }
    }

    /// The problem a question as typed poses, if it has this task's shape.
    pub(super) fn solve(&self, question: &str) -> Result<Problem, TaskError> {
        let (a, b) = self.parse_operands(question)?;
        Ok(self.problem((a, b)))
    }

    /// Parses a question as typed into its operand pair, checking its shape fits this task.
    fn parse_operands(&self, question: &str) -> Result<(u128, u128), TaskError> {
        let op = self.op;
        match parse_expr(question)? {
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
        }
    }
}

impl super::Sampler for Sampler {
    type Drawn = (u128, u128);
    type Key = (u128, u128);

    fn draw(&self, rng: &mut ChaCha8Rng) -> (u128, u128) {
        match self.range {
            Some((lo, hi)) => (rng.random_range(lo..=hi), rng.random_range(lo..=hi)),
            // No random number is spent on the choice at 0: Keras's draws stay as they were.
            None if self.uniform_fraction > 0.0 && rng.random_bool(self.uniform_fraction) => {
                let values = operand_floor(self.min_digits)..pow10(self.digits);
                (rng.random_range(values.clone()), rng.random_range(values))
            }
            None => (
                draw_operand(rng, self.min_digits, self.digits),
                draw_operand(rng, self.min_digits, self.digits),
            ),
        }
    }

    fn key(&self, &(a, b): &(u128, u128)) -> (u128, u128) {
        pair_key(self.dedup, a, b)
    }

    fn drawable_key(&self, question: &str) -> Option<(u128, u128)> {
        let (a, b) = self.parse_operands(question).ok()?;
        self.in_range(a, b).then(|| pair_key(self.dedup, a, b))
    }

    fn problem(&self, (a, b): (u128, u128)) -> Problem {
        Expr::binary(self.op, Expr::Num(a), Expr::Num(b)).problem()
    }
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
}

impl Op {
    pub(super) fn from_symbol(s: &str) -> Option<Op> {
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
    pub(super) fn can_be_negative(self) -> bool {
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
