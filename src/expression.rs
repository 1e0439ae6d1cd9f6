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

use crate::task::{Problem, TaskConfig, TaskError};
use num_bigint::{BigInt, BigUint, Sign};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

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

// ---------------------------------------------------------------------------------------------
// Parsing typed questions.

/// Parses an expression as a person types it: numbers, `+ - *`, brackets; surrounding
/// whitespace ignored, none inside. No unary minus. Inputs longer than `MAX_SOLVE_CHARS` or
/// nested deeper than `MAX_SOLVE_DEPTH` are refused before they can cost much.
pub(crate) fn parse(text: &str) -> Result<Seq, TaskError> {
    let trimmed = text.trim_start();
    let core = trimmed.trim_end();
    let len = core.chars().count();
    if len == 0 {
        return Err(TaskError::Invalid("empty question".into()));
    }
    if len > MAX_SOLVE_CHARS {
        return Err(TaskError::Invalid(format!(
            "the question is {len} characters long; at most {MAX_SOLVE_CHARS} are read"
        )));
    }
    let mut p = Parser {
        text: core,
        chars: core.chars().collect(),
        pos: 0,
        offset: text.chars().count() - trimmed.chars().count(),
    };
    let seq = p.seq(0)?;
    if let Some(&c) = p.chars.get(p.pos) {
        return Err(if c == ')' {
            p.error(format!("unmatched ')' at column {}", p.offset + p.pos + 1))
        } else {
            p.unexpected(c)
        });
    }
    Ok(seq)
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
    /// Characters trimmed from the front, so columns refer to the string as typed.
    offset: usize,
}

impl Parser<'_> {
    fn column(&self) -> usize {
        self.offset + self.pos + 1
    }

    fn error(&self, what: String) -> TaskError {
        TaskError::Invalid(format!("{what} in {:?}", abbreviate(self.text)))
    }

    fn unexpected(&self, c: char) -> TaskError {
        self.error(format!(
            "unexpected character {c:?} at column {}; expected a question like 12+3*(45-6)",
            self.column()
        ))
    }

    /// `item (op item)*`
    fn seq(&mut self, depth: usize) -> Result<Seq, TaskError> {
        let mut items = vec![self.item(depth)?];
        let mut ops = Vec::new();
        while let Some(op) = self.chars.get(self.pos).and_then(|&c| BinOp::from_char(c)) {
            self.pos += 1;
            ops.push(op);
            items.push(self.item(depth)?);
        }
        Ok(Seq { items, ops })
    }

    /// A number or `( seq )`.
    fn item(&mut self, depth: usize) -> Result<Item, TaskError> {
        match self.chars.get(self.pos).copied() {
            None => Err(self.error(format!(
                "the question ends without its last operand (column {})",
                self.column()
            ))),
            Some('(') => {
                if depth >= MAX_SOLVE_DEPTH {
                    return Err(self.error(format!(
                        "brackets nested deeper than {MAX_SOLVE_DEPTH} (column {})",
                        self.column()
                    )));
                }
                let open = self.column();
                self.pos += 1;
                let inner = self.seq(depth + 1)?;
                match self.chars.get(self.pos).copied() {
                    Some(')') => {
                        self.pos += 1;
                        Ok(Item::Group(inner))
                    }
                    Some(c) => Err(self.unexpected(c)),
                    None => Err(self.error(format!(
                        "the bracket opened at column {open} is never closed"
                    ))),
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits: Vec<u8> = self.chars[start..self.pos]
                    .iter()
                    .map(|&c| c as u8)
                    .collect();
                Ok(Item::Num(
                    BigUint::parse_bytes(&digits, 10).expect("ASCII digits parse"),
                ))
            }
            Some(c) => Err(self.unexpected(c)),
        }
    }
}

/// At most 60 characters of a question, for messages.
fn abbreviate(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing.

/// Bracket structures, for uniform sampling and length bounds: `a[d][l][m]` is the number of
/// ways to write `m` operands as a row of items, each an operand or a bracketed group of at
/// most `l` operands (nested at most `d` deep, counting the group's own brackets), and
/// `p[d][l][m]` the most bracket pairs such a row can hold.
struct Shapes {
    depth: usize,
    n_max: usize,
    a: Vec<u128>,
    p: Vec<usize>,
}

impl Shapes {
    fn new(n_max: usize, depth: usize) -> Shapes {
        let n_max = n_max.max(1);
        // Nesting deeper than n - 2 cannot happen with n operands.
        let depth = depth.min(n_max.saturating_sub(2));
        let size = (depth + 1) * n_max * (n_max + 1);
        let mut s = Shapes {
            depth,
            n_max,
            a: vec![0; size],
            p: vec![0; size],
        };
        for d in 0..=depth {
            for l in 0..n_max {
                let i0 = s.index(d, l, 0);
                s.a[i0] = 1;
                for m in 1..=n_max {
                    let (mut count, mut pairs) = (0u128, 0usize);
                    for size in 1..=m.min(l) {
                        let w = s.weight(size, d);
                        if w == 0 {
                            continue;
                        }
                        let rest = s.index(d, l, m - size);
                        count = count.saturating_add(w.saturating_mul(s.a[rest]));
                        let own = if size == 1 {
                            0
                        } else {
                            1 + s.pairs(size, d - 1)
                        };
                        pairs = pairs.max(own + s.p[rest]);
                    }
                    let i = s.index(d, l, m);
                    s.a[i] = count;
                    s.p[i] = pairs;
                }
            }
        }
        s
    }

    fn index(&self, d: usize, l: usize, m: usize) -> usize {
        (d * self.n_max + l) * (self.n_max + 1) + m
    }

    /// Ways to fill an item of `size` operands at a level allowing `d` more nesting.
    fn weight(&self, size: usize, d: usize) -> u128 {
        match (size, d) {
            (1, _) => 1,
            (_, 0) => 0,
            _ => self.structures(size, d - 1),
        }
    }

    /// Bracket structures of `n` operands nested at most `d` deep.
    fn structures(&self, n: usize, d: usize) -> u128 {
        if n <= 1 {
            1
        } else {
            self.a[self.index(d.min(self.depth), n - 1, n)]
        }
    }

    /// Most bracket pairs in a structure of `n` operands nested at most `d` deep.
    fn pairs(&self, n: usize, d: usize) -> usize {
        if n <= 1 {
            0
        } else {
            self.p[self.index(d.min(self.depth), n - 1, n)]
        }
    }
}

/// Bracket structures of `n` operands nested at most `depth` deep (1 for `depth = 0`).
pub fn structures(n: usize, depth: usize) -> u128 {
    Shapes::new(n, depth).structures(n, depth)
}

/// Most bracket pairs a structure of `n` operands nested at most `depth` deep can hold.
pub fn max_bracket_pairs(n: usize, depth: usize) -> usize {
    Shapes::new(n, depth).pairs(n, depth)
}

/// Upper bounds on the largest and the most negative value of any expression of `n` operands
/// in `0..=max` joined by `ops`, for every `n` in `1..=n_max`: `(largest, -most negative)`.
/// Every bracketing is a binary tree, and the bound takes the extreme over all of them.
fn extremes(max: &BigUint, ops: &[BinOp], n_max: usize) -> Vec<(BigUint, BigUint)> {
    let mut e: Vec<(BigUint, BigUint)> = vec![(BigUint::ZERO, BigUint::ZERO); n_max + 1];
    if n_max == 0 {
        return e;
    }
    e[1] = (max.clone(), BigUint::ZERO);
    for n in 2..=n_max {
        let (mut hi, mut lo) = (BigUint::ZERO, BigUint::ZERO);
        for k in 1..n {
            let ((p1, n1), (p2, n2)) = (&e[k], &e[n - k]);
            for op in ops {
                let (p, q) = match op {
                    BinOp::Add => (p1 + p2, n1 + n2),
                    BinOp::Sub => (p1 + n2, n1 + p2),
                    BinOp::Mul => ((p1 * p2).max(n1 * n2), (p1 * n2).max(n1 * p2)),
                };
                hi = hi.max(p);
                lo = lo.max(q);
            }
        }
        e[n] = (hi, lo);
    }
    e
}

/// The operators of a configured `ops` string, or why it is not a valid one.
pub(crate) fn parse_ops(ops: &str) -> Result<Vec<BinOp>, TaskError> {
    if ops.is_empty() {
        return Err(TaskError::Invalid(
            "ops is empty; give one or more of \"+-*\"".into(),
        ));
    }
    let mut out = Vec::new();
    for c in ops.chars() {
        let op = BinOp::from_char(c).ok_or_else(|| {
            TaskError::Invalid(format!(
                "unknown operator {c:?} in ops {ops:?}; expressions use \"+\", \"-\" and \"*\""
            ))
        })?;
        if out.contains(&op) {
            return Err(TaskError::Invalid(format!("ops {ops:?} lists {c:?} twice")));
        }
        out.push(op);
    }
    Ok(out)
}

/// Longest question of a (validated-shape) expression config.
pub(crate) fn max_question_len(cfg: &TaskConfig) -> usize {
    let shapes = Shapes::new(cfg.terms_max.min(MAX_TERMS), cfg.brackets);
    (cfg.terms_min.max(1)..=cfg.terms_max.min(MAX_TERMS))
        .map(|n| {
            n.saturating_mul(cfg.digits)
                .saturating_add(n - 1 + 2 * shapes.pairs(n, cfg.brackets))
        })
        .max()
        .unwrap_or(0)
}

/// `(largest, -most negative)` values of the expressions of one operand count.
type Extremes = (BigUint, BigUint);

/// The config's operators, its largest operand count, and `extremes` for it (`None` when the
/// operators do not parse).
fn config_extremes(cfg: &TaskConfig) -> Option<(Vec<BinOp>, usize, Vec<Extremes>)> {
    let ops = parse_ops(&cfg.ops).ok()?;
    let n_max = cfg.terms_max.min(MAX_TERMS);
    let max = BigUint::from(10u32).pow(cfg.digits.min(crate::task::MAX_DIGITS) as u32)
        - BigUint::from(1u32);
    let e = extremes(&max, &ops, n_max);
    Some((ops, n_max, e))
}

/// Characters of the longest value between `-lo` and `hi`, written with its sign.
fn signed_len((hi, lo): &Extremes) -> usize {
    let neg = if *lo > BigUint::ZERO {
        1 + decimal_len(lo)
    } else {
        0
    };
    decimal_len(hi).max(neg)
}

/// Longest answer of a (validated-shape) expression config.
pub(crate) fn max_answer_len(cfg: &TaskConfig) -> usize {
    let Some((_, n_max, e)) = config_extremes(cfg) else {
        return 0;
    };
    (cfg.terms_min.max(1)..=n_max)
        .map(|n| signed_len(&e[n]))
        .max()
        .unwrap_or(0)
}

/// Distinct questions of a (validated) expression config: the written form is exactly what is
/// drawn, so this is the sum over term counts of structures x operator choices x operand values
/// (saturating at `u128::MAX`).
pub(crate) fn distinct_questions(cfg: &TaskConfig) -> u128 {
    let Ok(ops) = parse_ops(&cfg.ops) else {
        return 0;
    };
    if cfg.terms_min == 0 || cfg.terms_min > cfg.terms_max || cfg.terms_max > MAX_TERMS {
        return 0;
    }
    let values = operand_values(cfg.min_digits, cfg.digits);
    let shapes = Shapes::new(cfg.terms_max, cfg.brackets);
    let mut total = 0u128;
    for n in cfg.terms_min..=cfg.terms_max {
        let mut count = shapes.structures(n, cfg.brackets);
        for _ in 1..n {
            count = count.saturating_mul(ops.len() as u128);
        }
        for _ in 0..n {
            count = count.saturating_mul(values);
        }
        total = total.saturating_add(count);
    }
    total
}

/// How many values an operand can take with lengths in `min_digits..=digits`.
pub(crate) fn operand_values(min_digits: usize, digits: usize) -> u128 {
    if digits == 0 || min_digits > digits || digits > crate::task::MAX_DIGITS {
        return 0;
    }
    crate::task::pow10(digits) - operand_floor(min_digits)
}

/// The smallest operand: 0, or `10^(min_digits-1)` when operands must have `min_digits` digits.
pub(crate) fn operand_floor(min_digits: usize) -> u128 {
    if min_digits <= 1 {
        0
    } else {
        crate::task::pow10(min_digits - 1)
    }
}

/// Draws expressions for one (validated) config.
pub(crate) struct Sampler {
    terms: (usize, usize),
    ops: Vec<BinOp>,
    brackets: usize,
    digits: usize,
    min_digits: usize,
    shapes: Shapes,
}

impl Sampler {
    pub(crate) fn new(cfg: &TaskConfig) -> Result<Sampler, TaskError> {
        Ok(Sampler {
            terms: (cfg.terms_min, cfg.terms_max),
            ops: parse_ops(&cfg.ops)?,
            brackets: cfg.brackets,
            digits: cfg.digits,
            min_digits: cfg.min_digits,
            shapes: Shapes::new(cfg.terms_max, cfg.brackets),
        })
    }

    /// One expression: term count, operands, operators, then the bracketing (module docs).
    pub(crate) fn draw(&self, rng: &mut ChaCha8Rng) -> Seq {
        let (lo, hi) = self.terms;
        let n = if lo == hi {
            lo
        } else {
            rng.random_range(lo..=hi)
        };
        let values: Vec<u128> = (0..n)
            .map(|_| crate::task::draw_operand(rng, self.min_digits, self.digits))
            .collect();
        let ops: Vec<BinOp> = (1..n)
            .map(|_| {
                if self.ops.len() == 1 {
                    self.ops[0]
                } else {
                    self.ops[rng.random_range(0..self.ops.len())]
                }
            })
            .collect();
        let (mut values, mut ops) = (values.into_iter(), ops.into_iter());
        self.build(
            rng,
            n,
            self.brackets.min(self.shapes.depth),
            &mut values,
            &mut ops,
        )
    }

    /// A row of `n` operands nested at most `d` deep, its structure uniform among all such.
    fn build(
        &self,
        rng: &mut ChaCha8Rng,
        n: usize,
        d: usize,
        values: &mut impl Iterator<Item = u128>,
        ops: &mut impl Iterator<Item = BinOp>,
    ) -> Seq {
        let num = |values: &mut dyn Iterator<Item = u128>| {
            Item::Num(BigUint::from(values.next().expect("one value per operand")))
        };
        if n == 1 {
            return Seq {
                items: vec![num(values)],
                ops: Vec::new(),
            };
        }
        let limit = n - 1;
        let (mut items, mut row_ops) = (Vec::new(), Vec::new());
        let mut m = n;
        while m > 0 {
            if !items.is_empty() {
                row_ops.push(ops.next().expect("one operator between operands"));
            }
            let size = if d == 0 {
                1
            } else {
                // The first item's size, weighted by how many structures each leaves.
                let total = self.shapes.a[self.shapes.index(d, limit, m)];
                let mut r = if total > 1 {
                    rng.random_range(0..total)
                } else {
                    0
                };
                let mut chosen = 1;
                for size in 1..=m.min(limit) {
                    let w = self
                        .shapes
                        .weight(size, d)
                        .saturating_mul(self.shapes.a[self.shapes.index(d, limit, m - size)]);
                    if r < w {
                        chosen = size;
                        break;
                    }
                    r -= w;
                }
                chosen
            };
            items.push(if size == 1 {
                num(values)
            } else {
                Item::Group(self.build(rng, size, d - 1, values, ops))
            });
            m -= size;
        }
        Seq {
            items,
            ops: row_ops,
        }
    }

    /// Whether drawing could produce exactly this written expression (so excluding it matters).
    pub(crate) fn drawable(&self, seq: &Seq) -> bool {
        let n = seq.operands();
        (self.terms.0..=self.terms.1).contains(&n)
            && (seq.items.len() >= 2 || n == 1)
            && self.fits(seq, self.brackets)
    }

    fn fits(&self, seq: &Seq, budget: usize) -> bool {
        let floor = operand_floor(self.min_digits);
        let limit = crate::task::pow10(self.digits);
        seq.ops.iter().all(|op| self.ops.contains(op))
            && seq.items.iter().all(|item| match item {
                Item::Num(v) => u128::try_from(v).is_ok_and(|v| (floor..limit).contains(&v)),
                Item::Group(g) => budget >= 1 && g.items.len() >= 2 && self.fits(g, budget - 1),
            })
    }
}

/// `generate_excluding` for the expression task: unique by question string.
pub(crate) fn generate(
    cfg: &TaskConfig,
    n: usize,
    seed: u64,
    exclude: &HashSet<String>,
    max_repeats: u64,
) -> Result<Vec<Problem>, TaskError> {
    use rand::SeedableRng;
    let sampler = Sampler::new(cfg)?;
    let mut seen: HashSet<String> = HashSet::with_capacity(n.min(1 << 20) + exclude.len());
    for q in exclude {
        if let Ok(seq) = parse(q) {
            let written = seq.render();
            if written == q.trim() && sampler.drawable(&seq) {
                seen.insert(written);
            }
        }
    }
    let available = distinct_questions(cfg).saturating_sub(seen.len() as u128);
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
        let seq = sampler.draw(&mut rng);
        if cfg.unique && !seen.insert(seq.render()) {
            repeats += 1;
            if repeats >= max_repeats {
                return Err(crate::task::gave_up(repeats, problems.len(), n, available));
            }
            continue;
        }
        repeats = 0;
        problems.push(seq.problem());
    }
    Ok(problems)
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

// ---------------------------------------------------------------------------------------------
// Worked answers: the codec's scratchpad.

/// Separates the steps of a worked answer.
pub const STEP_SEP: char = ';';
/// Separates a multiplication's partial products from each other and from its product.
pub const PART_SEP: char = ',';

/// Builds a worked answer: numbers written forwards or digit-reversed.
struct Worked {
    out: String,
    reverse: bool,
}

impl Worked {
    fn number(&mut self, v: &BigInt) {
        let text = v.to_string();
        if self.reverse {
            self.out.extend(text.chars().rev());
        } else {
            self.out.push_str(&text);
        }
    }

    fn begin_step(&mut self) {
        if !self.out.is_empty() {
            self.out.push(STEP_SEP);
        }
    }

    /// `total + term` or `total - term`, written as one step: its result.
    fn add(&mut self, total: BigInt, term: BigInt, minus: bool) -> BigInt {
        let z = if minus { total - term } else { total + term };
        self.begin_step();
        self.number(&z);
        z
    }

    /// `x * y`, written as one step: when the shorter magnitude (the right one on a tie) has
    /// several digits, the longer magnitude times each of its digits, least significant digit
    /// first, then the product.
    fn mul(&mut self, x: BigInt, y: BigInt) -> BigInt {
        let z = &x * &y;
        let (xm, ym) = (x.magnitude(), y.magnitude());
        let (n, m) = if decimal_len(xm) < decimal_len(ym) {
            (ym, xm)
        } else {
            (xm, ym)
        };
        self.begin_step();
        let digits = m.to_str_radix(10);
        if digits.len() > 1 {
            for d in digits.bytes().rev() {
                let partial = n * BigUint::from(d - b'0');
                self.number(&BigInt::from(partial));
                self.out.push(PART_SEP);
            }
        }
        self.number(&z);
        z
    }
}

impl Seq {
    /// The value, as `eval` computes it, writing every operation as a step of `w` in the order
    /// it is carried out (brackets first, then products, then sums left to right).
    fn worked(&self, w: &mut Worked) -> BigInt {
        let mut total: Option<BigInt> = None;
        let mut term = self.items[0].worked(w);
        let mut minus = false;
        for (op, item) in self.ops.iter().zip(&self.items[1..]) {
            let v = item.worked(w);
            match op {
                BinOp::Mul => term = w.mul(term, v),
                BinOp::Add | BinOp::Sub => {
                    total = Some(match total {
                        None => term,
                        Some(t) => w.add(t, term, minus),
                    });
                    term = v;
                    minus = *op == BinOp::Sub;
                }
            }
        }
        match total {
            None => term,
            Some(t) => w.add(t, term, minus),
        }
    }
}

impl Item {
    fn worked(&self, w: &mut Worked) -> BigInt {
        match self {
            Item::Num(v) => BigInt::from(v.clone()),
            Item::Group(g) => g.worked(w),
        }
    }
}

/// The worked answer to an expression (a scratchpad the model writes before its answer): every
/// operation in the order it is carried out, as steps separated by `STEP_SEP`; a step is its
/// result, preceded for a product of two multi-digit numbers by the partial products (longer
/// magnitude times each digit of the shorter, least significant digit first), separated by
/// `PART_SEP`. The last number is the answer. With `reverse` every number is written
/// digit-reversed (sign last), as `reverse_output` writes answers.
///
/// `(12*34)*56` gives `48,36,408;2448,2040,22848`; `47-(91*5)` gives `455;-408`; a question
/// without operators gives its number.
pub(crate) fn worked(question: &str, reverse: bool) -> Result<String, TaskError> {
    let seq = parse(question)?;
    let mut w = Worked {
        out: String::new(),
        reverse,
    };
    let v = seq.worked(&mut w);
    if w.out.is_empty() {
        w.number(&v);
    }
    Ok(w.out)
}

/// The answer written at the end of a worked answer (as written: still digit-reversed if the
/// numbers were).
pub(crate) fn worked_answer(work: &str) -> &str {
    work.rsplit([STEP_SEP, PART_SEP]).next().unwrap_or(work)
}

/// Longest worked answer (see `worked`) of a (validated-shape) expression config: a bound over
/// every binary evaluation tree, with each sub-expression's value bounded by `extremes`.
pub(crate) fn max_worked_len(cfg: &TaskConfig) -> usize {
    let Some((ops, n_max, e)) = config_extremes(cfg) else {
        return 0;
    };
    // Written length of a value of `n` operands (sign included), and of its magnitude.
    let signed = |n: usize| signed_len(&e[n]);
    let magnitude = |n: usize| decimal_len(&e[n].0).max(decimal_len(&e[n].1));
    // work[n]: longest work of `n` operands, each step followed by one separator.
    let mut work = vec![0usize; n_max + 1];
    for n in 2..=n_max {
        for k in 1..n {
            for op in &ops {
                let result = signed(n);
                let step = match op {
                    BinOp::Add | BinOp::Sub => result,
                    BinOp::Mul => {
                        let (a, b) = (magnitude(k), magnitude(n - k));
                        let short = a.min(b);
                        if short > 1 {
                            short * (a.max(b) + 2) + result
                        } else {
                            result
                        }
                    }
                };
                work[n] = work[n].max(work[k] + work[n - k] + step + 1);
            }
        }
    }
    (cfg.terms_min.max(1)..=n_max)
        .map(|n| signed(n).max(work[n].saturating_sub(1)))
        .max()
        .unwrap_or(0)
}

/// Bracket nesting depth of a question (0 when it has none or does not parse).
pub fn bracket_depth(question: &str) -> usize {
    parse(question).map_or(0, |s| s.depth())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every written structure of `n` operands nested at most `d` deep, as strings over `x`
    /// operands joined by `+` (brute force, independent of `Shapes`).
    fn all_structures(n: usize, d: usize) -> Vec<String> {
        fn rows(m: usize, limit: usize, d: usize) -> Vec<String> {
            if m == 0 {
                return vec![String::new()];
            }
            let mut out = Vec::new();
            for size in 1..=m.min(limit) {
                let heads: Vec<String> = if size == 1 {
                    vec!["x".into()]
                } else if d == 0 {
                    continue;
                } else {
                    whole(size, d - 1)
                        .into_iter()
                        .map(|s| format!("({s})"))
                        .collect()
                };
                for h in &heads {
                    for t in rows(m - size, limit, d) {
                        out.push(if t.is_empty() {
                            h.clone()
                        } else {
                            format!("{h}+{t}")
                        });
                    }
                }
            }
            out
        }
        fn whole(n: usize, d: usize) -> Vec<String> {
            if n == 1 {
                vec!["x".into()]
            } else {
                rows(n, n - 1, d)
            }
        }
        whole(n, d)
    }

    #[test]
    fn structure_counts_and_bracket_bounds_match_brute_force() {
        for n in 1..=7 {
            for d in 0..=6 {
                let all = all_structures(n, d);
                let unique: HashSet<&String> = all.iter().collect();
                assert_eq!(unique.len(), all.len(), "n={n} d={d}");
                assert_eq!(structures(n, d), all.len() as u128, "n={n} d={d}");
                let most = all.iter().map(|s| s.matches('(').count()).max().unwrap();
                assert_eq!(max_bracket_pairs(n, d), most, "n={n} d={d}");
                for s in &all {
                    let seq = parse(&s.replace('x', "1")).unwrap();
                    assert!(seq.depth() <= d, "{s}");
                }
            }
        }
        // Little Schroeder numbers when depth does not bind.
        assert_eq!(structures(3, 5), 3);
        assert_eq!(structures(4, 5), 11);
        assert_eq!(structures(5, 5), 45);
        assert_eq!(structures(6, 9), 197);
        // The largest table does not saturate.
        assert!(structures(MAX_TERMS, MAX_BRACKETS) < u128::MAX / 1_000_000);
        assert_eq!(max_bracket_pairs(MAX_TERMS, MAX_BRACKETS), MAX_TERMS - 2);
    }

    #[test]
    fn column_carries_by_hand() {
        let b = |v: u64| BigUint::from(v);
        assert_eq!(column_carries(&b(999), &b(1), true), 3);
        assert_eq!(column_carries(&b(1000), &b(1), false), 3);
        assert_eq!(column_carries(&b(15), &b(7), false), 1);
        assert_eq!(column_carries(&b(0), &b(0), true), 0);
        assert_eq!(column_carries(&b(123), &b(456), true), 0);
    }

    use crate::task::{self, TaskKind};
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn expr(terms: (usize, usize), ops: &str, brackets: usize, digits: usize) -> TaskConfig {
        TaskConfig {
            kind: TaskKind::Expression,
            terms_min: terms.0,
            terms_max: terms.1,
            ops: ops.into(),
            brackets,
            digits,
            ..TaskConfig::default()
        }
    }

    /// An independent evaluator: tokens, then Dijkstra's shunting-yard to reverse Polish, then a
    /// stack machine on `i128` (`None` on malformed input or overflow).
    fn shunting_yard(text: &str) -> Option<i128> {
        let prec = |c: char| if c == '*' { 2 } else { 1 };
        let (mut out, mut stack): (Vec<String>, Vec<char>) = (Vec::new(), Vec::new());
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(chars[start..i].iter().collect());
                continue;
            }
            match c {
                '+' | '-' | '*' => {
                    while let Some(&top) = stack.last() {
                        if top != '(' && prec(top) >= prec(c) {
                            out.push(stack.pop()?.to_string());
                        } else {
                            break;
                        }
                    }
                    stack.push(c);
                }
                '(' => stack.push(c),
                ')' => loop {
                    match stack.pop()? {
                        '(' => break,
                        op => out.push(op.to_string()),
                    }
                },
                _ => return None,
            }
            i += 1;
        }
        while let Some(op) = stack.pop() {
            if op == '(' {
                return None;
            }
            out.push(op.to_string());
        }
        let mut values: Vec<i128> = Vec::new();
        for t in out {
            match t.as_str() {
                "+" | "-" | "*" => {
                    let (b, a) = (values.pop()?, values.pop()?);
                    values.push(match t.as_str() {
                        "+" => a.checked_add(b)?,
                        "-" => a.checked_sub(b)?,
                        _ => a.checked_mul(b)?,
                    });
                }
                n => values.push(n.parse().ok()?),
            }
        }
        (values.len() == 1).then(|| values[0])
    }

    /// A random well-formed expression over small numbers, brackets anywhere (also redundant
    /// ones), as a string.
    fn arb_expression() -> impl Strategy<Value = String> {
        let leaf = (0u32..1000).prop_map(|v| v.to_string());
        leaf.prop_recursive(5, 24, 3, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(vec!['+', '-', '*']),
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("{a}{op}{b}")),
                inner.prop_map(|a| format!("({a})")),
            ]
        })
    }

    fn answer(q: &str) -> String {
        solve(&expr((2, 2), "+-*", 0, 3), q).unwrap().answer
    }

    #[test]
    fn precedence_and_brackets() {
        for (q, want) in [
            ("2+3*4", "14"),
            ("(2+3)*4", "20"),
            ("2*3+4", "10"),
            ("2*3-4*5", "-14"),
            ("10-2-3", "5"),
            ("10-(2-3)", "11"),
            ("10-2*3-4", "0"),
            ("2*(3+4)*5", "70"),
            ("2-3*4+5", "-5"),
            ("(2-3)*(4+5)", "-9"),
            ("((1+2)*(3+4))-5*6", "-9"),
            ("8-(8+7)", "-7"),
            ("0*7-5", "-5"),
            ("((5))", "5"),
            ("42", "42"),
            ("007+1", "8"),
            ("1-(2-(3-(4-5)))", "3"),
        ] {
            assert_eq!(answer(q), want, "{q}");
            assert_eq!(shunting_yard(q).unwrap().to_string(), want, "{q}");
        }
        // Exact beyond any machine integer.
        let big = "9".repeat(40);
        let p = solve(
            &expr((2, 2), "+-*", 0, 3),
            &format!("{big}*{big}-{big}*{big}*{big}"),
        )
        .unwrap();
        let b: BigInt = big.parse().unwrap();
        assert_eq!(p.answer, (&b * &b - &b * &b * &b).to_string());
        assert!(p.answer.starts_with('-'));
        assert_eq!(p.operand_lens, vec![40; 5]);
    }

    #[test]
    fn solve_explains_bad_questions_and_bounds_its_work() {
        let cfg = expr((3, 3), "+-*", 1, 2);
        let deep = format!(
            "{}1{}",
            "(".repeat(MAX_SOLVE_DEPTH + 1),
            ")".repeat(MAX_SOLVE_DEPTH + 1)
        );
        let ok_deep = format!(
            "{}1{}",
            "(".repeat(MAX_SOLVE_DEPTH),
            ")".repeat(MAX_SOLVE_DEPTH)
        );
        assert_eq!(solve(&cfg, &ok_deep).unwrap().answer, "1");
        let long = format!("1{}", "+1".repeat(MAX_SOLVE_CHARS / 2));
        for (q, needle) in [
            ("", "empty"),
            ("  ", "empty"),
            ("1+", "without its last operand"),
            ("-5+3", "'-' at column 1"),
            ("1+*2", "'*' at column 3"),
            (" 1x2", "'x' at column 3"),
            ("1 + 2", "' ' at column 2"),
            ("(1+2", "opened at column 1 is never closed"),
            ("1+2)", "unmatched ')' at column 4"),
            ("()", "')' at column 2"),
            ("1(2)", "'(' at column 2"),
            ("(1)2", "'2' at column 4"),
            ("1/2", "'/' at column 2"),
            ("1+２", "'２' at column 3"),
            (deep.as_str(), "nested deeper than 100"),
            (long.as_str(), "at most 10000"),
        ] {
            match solve(&cfg, q) {
                Err(TaskError::Invalid(m)) => assert!(m.contains(needle), "{q:.40}: {m}"),
                other => panic!("{q:.40}: expected Invalid, got {other:?}"),
            }
        }
        // Operators outside the task's are refused, wherever they are.
        let plus = expr((3, 3), "+", 1, 2);
        assert!(solve(&plus, "1+2").is_ok());
        match solve(&plus, "1+(2*3)") {
            Err(TaskError::Invalid(m)) => assert!(m.contains("uses '*'"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A hostile input far beyond the bound is refused quickly, not parsed.
        let huge = "(".repeat(1_000_000);
        assert!(solve(&cfg, &huge).is_err());
    }

    #[test]
    fn carries_of_expressions() {
        let cfg = expr((2, 4), "+-*", 2, 3);
        for (q, carries) in [
            ("999+1", 3),
            ("1000-1", 3),
            ("8-(8+7)", 2), // 8+7 carries once; 8-15 is 15-8, one borrow
            ("7*5+8", 1),   // 35+8
            ("12*34", 0),
            ("5-9+4", 2), // 5-9: 9-5 no borrow; -4+4: 4-4 none... see below
        ] {
            let p = solve(&cfg, q).unwrap();
            if q == "5-9+4" {
                // 0+5 (none), 5-9 = -(9-5) (none), -4+4 = 4-4 (none).
                assert_eq!(p.carries, 0, "{q}");
            } else {
                assert_eq!(p.carries, carries, "{q}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn solve_agrees_with_an_independent_evaluator(q in arb_expression()) {
            let want = shunting_yard(&q).expect("small expressions fit i128");
            let p = solve(&expr((2, 2), "+-*", 0, 3), &q).unwrap();
            prop_assert_eq!(p.answer, want.to_string());
            prop_assert_eq!(p.operand_lens.len(), q.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).count());
        }

        #[test]
        fn two_operands_match_the_arithmetic_task(a in 0u64..10_000_000, b in 0u64..10_000_000, plus in any::<bool>()) {
            let op = if plus { "+" } else { "-" };
            let q = format!("{a}{op}{b}");
            let arith = TaskConfig { digits: 7, op: op.into(), ..TaskConfig::default() };
            prop_assert_eq!(solve(&expr((2, 2), op, 0, 7), &q).unwrap(), task::solve(&arith, &q).unwrap());
        }

        #[test]
        fn garbage_never_panics(q in "[0-9()+*/ x-]{0,60}", any_text in "\\PC{0,60}") {
            let cfg = expr((3, 3), "+-*", 2, 2);
            for text in [&q, &any_text] {
                // Whatever solve accepts, the independent evaluator computes alike (when the
                // value fits its i128).
                if let (Ok(p), Some(v)) = (solve(&cfg, text), shunting_yard(text.trim())) {
                    prop_assert_eq!(p.answer, v.to_string(), "{:?}", text);
                }
            }
        }

        #[test]
        fn generated_problems_are_unique_right_and_fit(
            lo in 1usize..=5,
            extra in 0usize..=2,
            ops in prop::sample::select(vec!["+", "-", "*", "+-", "+*", "-*", "+-*", "*-+"]),
            brackets in 0usize..=4,
            digits in 1usize..=3,
            n in 1usize..300,
            seed in any::<u64>(),
        ) {
            let cfg = expr((lo, lo + extra), ops, brackets, digits);
            cfg.validate().unwrap();
            let n = n.min(cfg.distinct_questions() as usize);
            let problems = task::generate(&cfg, n, seed).unwrap();
            prop_assert_eq!(problems.len(), n);
            let sampler = Sampler::new(&cfg).unwrap();
            let alphabet = cfg.alphabet();
            let mut seen = HashSet::new();
            for p in &problems {
                prop_assert!(seen.insert(p.question.clone()), "duplicate {}", p.question);
                prop_assert_eq!(shunting_yard(&p.question).unwrap().to_string(), p.answer.clone(), "{}", p.question);
                prop_assert!(p.question.len() <= cfg.max_question_len(), "{}", p.question);
                prop_assert!(p.answer.len() <= cfg.max_answer_len(), "{} = {}", p.question, p.answer);
                prop_assert!(p.question.chars().chain(p.answer.chars()).all(|c| alphabet.contains(c)));
                prop_assert!((lo..=lo + extra).contains(&p.operand_lens.len()));
                prop_assert!(p.operand_lens.iter().all(|l| (1..=digits).contains(l)));
                let seq = parse(&p.question).unwrap();
                prop_assert!(seq.depth() <= brackets);
                prop_assert!(sampler.drawable(&seq), "{}", p.question);
                prop_assert!(p.question.chars().filter(|c| "+-*".contains(*c)).all(|c| ops.contains(c)));
                prop_assert_eq!(&task::solve(&cfg, &p.question).unwrap(), p);
                let work = worked(&p.question, seed % 2 == 0).unwrap();
                check_work(&work, seed % 2 == 0, &p.answer);
                prop_assert!(work.len() <= cfg.max_worked_len(), "{} -> {}", p.question, work);
            }
            prop_assert_eq!(&task::generate(&cfg, n, seed).unwrap(), &problems);
        }
    }

    /// Checks a worked answer against what it must say: its last number is the answer, and the
    /// partial products of every multi-part step add up (shifted) to the step's product.
    fn check_work(work: &str, reverse: bool, answer: &str) {
        let number = |t: &str| -> BigInt {
            let t: String = if reverse {
                t.chars().rev().collect()
            } else {
                t.into()
            };
            t.parse().unwrap_or_else(|_| panic!("{t:?} in {work:?}"))
        };
        assert_eq!(number(worked_answer(work)).to_string(), answer, "{work}");
        for step in work.split(STEP_SEP) {
            let parts: Vec<BigInt> = step.split(PART_SEP).map(number).collect();
            let (product, partials) = parts.split_last().unwrap();
            if partials.is_empty() {
                continue;
            }
            assert!(partials.len() >= 2, "{work}");
            let mut sum = BigInt::ZERO;
            for (i, p) in partials.iter().enumerate() {
                assert!(p.sign() != Sign::Minus, "{work}");
                sum += p * BigInt::from(10u32).pow(i as u32);
            }
            assert_eq!(sum.magnitude(), product.magnitude(), "{work}");
        }
    }

    #[test]
    fn worked_answers_by_hand() {
        let cases = [
            ("(12*34)*56", "48,36,408;2448,2040,22848"),
            ("47-(91*5)", "455;-408"),
            ("7", "7"),
            ("1+2*3", "6;7"),
            ("2*3+4*5-6", "6;20;26;20"),
            ("3*(4-10)", "-6;-18"),
            ("(3-50)*12", "-47;94,47,-564"),
            ("123*45", "615,492,5535"),
            ("5*123", "615"),
            ("12*345", "690,345,4140"),
        ];
        for (q, w) in cases {
            assert_eq!(worked(q, false).unwrap(), w, "{q}");
            check_work(w, false, &answer(q));
        }
        assert_eq!(
            worked("(12*34)*56", true).unwrap(),
            "84,63,804;8442,0402,84822"
        );
        assert_eq!(worked("47-(91*5)", true).unwrap(), "554;804-");
        assert_eq!(worked_answer("554;804-"), "804-");
        // The bound is reached: (99*99)*99.
        let cfg = expr((3, 3), "+-*", 1, 2);
        assert_eq!(worked("(99*99)*99", false).unwrap().len(), 31);
        assert_eq!(cfg.max_worked_len(), 31);
        assert!(worked("1+", false).is_err());
    }

    #[test]
    fn seeds_decide_the_problems() {
        let cfg = expr((2, 5), "+-*", 2, 3);
        let a = task::generate(&cfg, 300, 7).unwrap();
        assert_eq!(a, task::generate(&cfg, 300, 7).unwrap());
        assert_ne!(a, task::generate(&cfg, 300, 8).unwrap());
        assert_eq!(&task::generate(&cfg, 600, 7).unwrap()[..300], &a[..]);
        // Pinned: these exact questions, on every platform.
        let first: Vec<&str> = a.iter().take(3).map(|p| p.question.as_str()).collect();
        assert_eq!(first, pinned_questions(), "the draw changed");
    }

    /// The first questions of `seeds_decide_the_problems`'s config with seed 7.
    fn pinned_questions() -> Vec<&'static str> {
        vec!["7-8", "3-73", "42+9+(2+4)"]
    }

    #[test]
    fn bracket_structures_are_uniform() {
        // 3 terms, depth 1: a?b?c, (a?b)?c and a?(b?c), a third each.
        let cfg = expr((3, 3), "+", 1, 1);
        let sampler = Sampler::new(&cfg).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = [0usize; 3];
        let draws = 30_000;
        for _ in 0..draws {
            let q = sampler.draw(&mut rng).render();
            counts[match q.find('(') {
                None => 0,
                Some(0) => 1,
                Some(_) => 2,
            }] += 1;
        }
        for c in counts {
            let share = c as f64 / draws as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.015, "{counts:?}");
        }
        // 4 terms, depth 2: 11 structures, each about 1/11.
        let cfg = expr((4, 4), "+", 2, 1);
        let sampler = Sampler::new(&cfg).unwrap();
        let mut by_shape: std::collections::HashMap<String, usize> = Default::default();
        for _ in 0..55_000 {
            let shape: String = sampler
                .draw(&mut rng)
                .render()
                .chars()
                .map(|c| if c.is_ascii_digit() { 'x' } else { c })
                .collect();
            *by_shape.entry(shape).or_default() += 1;
        }
        assert_eq!(by_shape.len(), 11, "{by_shape:?}");
        assert!(
            by_shape.values().all(|&c| (4_400..5_600).contains(&c)),
            "{by_shape:?}"
        );
    }

    /// Every question of a tiny config, enumerated by brute force.
    fn enumerate(cfg: &TaskConfig) -> HashSet<String> {
        let ops: Vec<char> = cfg.ops.chars().collect();
        let values: Vec<String> = (operand_floor(cfg.min_digits)..task::pow10(cfg.digits))
            .map(|v| v.to_string())
            .collect();
        let mut out = HashSet::new();
        for n in cfg.terms_min..=cfg.terms_max {
            for shape in all_structures(n, cfg.brackets) {
                // Fill each 'x' with a value and each '+' with an operator, all combinations.
                let mut partial = vec![String::new()];
                for c in shape.chars() {
                    let choices: Vec<String> = match c {
                        'x' => values.clone(),
                        '+' => ops.iter().map(|o| o.to_string()).collect(),
                        other => vec![other.to_string()],
                    };
                    partial = partial
                        .iter()
                        .flat_map(|p| choices.iter().map(move |ch| format!("{p}{ch}")))
                        .collect();
                }
                out.extend(partial);
            }
        }
        out
    }

    #[test]
    fn distinct_counts_are_exact_and_every_question_can_be_drawn() {
        for cfg in [
            expr((1, 3), "+*", 1, 1),
            expr((3, 3), "-", 2, 1),
            expr((2, 3), "+-*", 1, 1),
            TaskConfig {
                min_digits: 2,
                ..expr((2, 2), "*", 0, 2)
            },
        ] {
            let all = enumerate(&cfg);
            assert_eq!(cfg.distinct_questions(), all.len() as u128, "{cfg:?}");
            let drawn = generate(&cfg, all.len(), 1, &HashSet::new(), 5_000_000).unwrap();
            let drawn: HashSet<String> = drawn.into_iter().map(|p| p.question).collect();
            assert_eq!(drawn, all, "{cfg:?}");
            assert!(matches!(
                task::generate(&cfg, all.len() + 1, 1),
                Err(TaskError::TooFew { .. })
            ));
            // The exact longest question and answer are the bounds.
            let longest = all.iter().map(|q| q.len()).max().unwrap();
            assert_eq!(cfg.max_question_len(), longest, "{cfg:?}");
            let answers = all.iter().map(|q| answer(q).len()).max().unwrap();
            assert!(cfg.max_answer_len() >= answers, "{cfg:?}");
            if cfg.ops.contains('*') {
                assert_eq!(cfg.max_answer_len(), answers, "{cfg:?}");
            }
        }
        // Saturates rather than overflows where the space is astronomically large.
        assert_eq!(expr((1, 32), "+-*", 30, 12).distinct_questions(), u128::MAX);
        assert_eq!(
            expr((3, 3), "+-*", 1, 2).distinct_questions(),
            3 * 9 * 100u128.pow(3)
        );
    }

    #[test]
    fn worst_case_lengths() {
        for (terms, ops, brackets, digits) in [
            (3, "+-*", 1, 2),
            (5, "*", 0, 3),
            (4, "+-*", 2, 2),
            (8, "+*", 6, 4),
            (32, "*", 0, 30),
            (32, "+-*", 30, 3),
        ] {
            let cfg = expr((terms, terms), ops, brackets, digits);
            let nines = "9".repeat(digits);
            let product = vec![nines.as_str(); terms].join("*");
            if ops.contains('*') {
                let a = answer(&product).len();
                assert_eq!(cfg.max_answer_len(), a, "{product}");
            }
            // The most brackets: a chain ((a*b)*c)*... as deep as allowed, then flat.
            let deep = brackets.min(terms.saturating_sub(2));
            let mut q = nines.clone();
            for i in 1..terms {
                q = if i <= deep {
                    format!("({q}*{nines})")
                } else {
                    format!("{q}*{nines}")
                };
            }
            if deep > 0 && deep == terms - 2 {
                // The outermost pair would wrap the whole question: drop it.
                q = q[1..q.len() - 1].to_string();
            }
            assert!(cfg.max_question_len() >= q.len(), "{q}");
            assert_eq!(
                cfg.max_question_len(),
                terms * digits + terms - 1 + 2 * max_bracket_pairs(terms, brackets)
            );
        }
        let cfg = expr((3, 3), "+-*", 1, 2);
        assert_eq!((cfg.max_question_len(), cfg.max_answer_len()), (10, 6));
        // Subtraction alone: a - b - ... is at least -(n-1)*max and at most max.
        let sub = expr((2, 2), "-", 0, 3);
        assert_eq!(sub.max_answer_len(), 4);
        assert_eq!(answer("0-999"), "-999");
    }

    #[test]
    fn excluded_questions_never_return() {
        let cfg = expr((3, 3), "+-", 1, 1);
        let first = task::generate(&cfg, 2000, 1).unwrap();
        let mut exclude: HashSet<String> = first.iter().map(|p| p.question.clone()).collect();
        // Junk, non-canonical spellings and questions of other tasks cannot be drawn: ignored.
        for junk in [
            "not a question",
            "007+1+2",
            "((1+2))+3",
            "(1+2+3)",
            "1*2+3",
            "12+3+4",
            "1+2",
        ] {
            exclude.insert(junk.into());
        }
        let total = cfg.distinct_questions() as usize;
        let fresh = task::generate_excluding(&cfg, total - 2000, 2, &exclude).unwrap();
        let old: HashSet<&str> = first.iter().map(|p| p.question.as_str()).collect();
        assert!(fresh.iter().all(|p| !old.contains(p.question.as_str())));
        match task::generate_excluding(&cfg, total - 1999, 2, &exclude) {
            Err(TaskError::TooFew { available, .. }) => {
                assert_eq!(available as usize, total - 2000)
            }
            other => panic!("expected TooFew, got {other:?}"),
        }
        // Whitespace around an excluded question still excludes it.
        let all = task::generate(&cfg, total, 3).unwrap();
        let spaced: HashSet<String> = all
            .iter()
            .skip(1)
            .map(|p| format!(" {} ", p.question))
            .collect();
        let left = task::generate_excluding(&cfg, 1, 4, &spaced).unwrap();
        assert_eq!(left[0].question, all[0].question);
    }

    #[test]
    fn longer_operands_than_training() {
        let train = expr((2, 3), "+-*", 1, 3);
        let longer = TaskConfig {
            min_digits: 4,
            digits: 6,
            ..train.clone()
        };
        longer.validate().unwrap();
        let seen: HashSet<String> = task::generate(&train, 5000, 1)
            .unwrap()
            .into_iter()
            .map(|p| p.question)
            .collect();
        let problems = task::generate_excluding(&longer, 3000, 2, &seen).unwrap();
        let mut by_len = [0usize; 7];
        for p in &problems {
            for &l in &p.operand_lens {
                assert!((4..=6).contains(&l), "{}", p.question);
                by_len[l] += 1;
            }
            assert_eq!(shunting_yard(&p.question).unwrap().to_string(), p.answer);
            assert!(p.question.len() <= longer.max_question_len());
            assert!(p.answer.len() <= longer.max_answer_len());
        }
        // Length uniform in 4..=6, then the value uniform at or above 1000: a 5-length draw
        // is 5 digits 9 times in 10, so about 1/3 + 1/30 + 1/300 of operands have 4 digits.
        let total: usize = by_len.iter().sum();
        let share4 = by_len[4] as f64 / total as f64;
        assert!((share4 - 0.37).abs() < 0.02, "{by_len:?}");
        // The same for two-operand arithmetic.
        let add = TaskConfig {
            digits: 5,
            min_digits: 4,
            ..TaskConfig::default()
        };
        add.validate().unwrap();
        assert_eq!(add.distinct_questions(), {
            let v = 100_000u128 - 1000;
            v * (v + 1) / 2
        });
        for p in task::generate(&add, 2000, 5).unwrap() {
            assert!(
                p.operand_lens.iter().all(|l| (4..=5).contains(l)),
                "{}",
                p.question
            );
        }
    }

    #[test]
    fn alphabets_validation_and_descriptions() {
        assert_eq!(expr((3, 3), "+-*", 1, 2).alphabet(), " ()*+-0123456789");
        assert_eq!(expr((3, 3), "+*", 0, 2).alphabet(), " *+0123456789");
        assert_eq!(expr((3, 3), "*", 0, 2).alphabet(), " *0123456789");
        assert_eq!(expr((1, 1), "+", 0, 2).max_question_len(), 2);
        assert_eq!(
            expr((3, 3), "+-*", 1, 2).describe(),
            "3-term expressions over +-* with operands of 1..=2 digits, brackets nested up to 1 deep"
        );
        let ok = expr((3, 3), "+-*", 1, 2);
        for (cfg, needle) in [
            (expr((0, 3), "+", 0, 2), "at least one operand"),
            (expr((4, 3), "+", 0, 2), "within 1..=32"),
            (expr((2, 33), "+", 0, 2), "within 1..=32"),
            (expr((3, 3), "", 0, 2), "ops is empty"),
            (expr((3, 3), "+/", 0, 2), "unknown operator '/'"),
            (expr((3, 3), "++", 0, 2), "twice"),
            (expr((3, 3), "+", 31, 2), "at most 30"),
            (expr((3, 3), "+", 0, 0), "digits"),
            (expr((3, 3), "+", 0, 31), "digits"),
            (
                TaskConfig {
                    min_digits: 3,
                    ..ok.clone()
                },
                "min_digits",
            ),
            (
                TaskConfig {
                    min_digits: 0,
                    ..ok.clone()
                },
                "min_digits",
            ),
            (
                TaskConfig {
                    op: "-".into(),
                    ..ok.clone()
                },
                "op",
            ),
            (
                TaskConfig {
                    max_value: Some(9),
                    ..ok.clone()
                },
                "max_value",
            ),
            (
                TaskConfig {
                    dedup: Some(task::Dedup::Sorted),
                    ..ok.clone()
                },
                "sorted",
            ),
            (expr((32, 32), "*", 30, 30), "at most 1000"),
            (
                TaskConfig {
                    terms_max: 3,
                    ..TaskConfig::default()
                },
                "expression task",
            ),
            (
                TaskConfig {
                    brackets: 1,
                    ..TaskConfig::default()
                },
                "expression task",
            ),
            (
                TaskConfig {
                    min_digits: 2,
                    max_value: Some(9),
                    ..TaskConfig::default()
                },
                "min_value",
            ),
            (
                TaskConfig {
                    min_digits: 2,
                    kind: TaskKind::PqSystem,
                    ..TaskConfig::default()
                },
                "pq-system",
            ),
        ] {
            match cfg.validate() {
                Err(TaskError::Invalid(m)) => assert!(m.contains(needle), "{needle}: {m}"),
                other => panic!("{cfg:?}: expected Invalid, got {other:?}"),
            }
            assert!(task::generate(&cfg, 1, 0).is_err());
        }
        assert!(TaskConfig {
            dedup: Some(task::Dedup::Ordered),
            ..ok.clone()
        }
        .validate()
        .is_ok());
        assert!(expr((1, 1), "*", 0, 30).validate().is_ok());
    }

    #[test]
    fn draws_with_repetition_when_not_unique() {
        let cfg = TaskConfig {
            unique: false,
            ..expr((1, 1), "+", 0, 1)
        };
        assert_eq!(task::generate(&cfg, 100, 0).unwrap().len(), 100);
    }

    #[test]
    fn gives_up_instead_of_hanging() {
        let cfg = expr((2, 2), "+", 0, 2);
        let err = generate(&cfg, 10_000, 0, &HashSet::new(), 10).unwrap_err();
        assert!(
            matches!(&err, TaskError::Invalid(m) if m.contains("ask for fewer")),
            "{err}"
        );
    }
}
