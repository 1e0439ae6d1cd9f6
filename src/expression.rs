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
        .map(|n| n * cfg.digits + (n - 1) + 2 * shapes.pairs(n, cfg.brackets))
        .max()
        .unwrap_or(0)
}

/// Longest answer of a (validated-shape) expression config.
pub(crate) fn max_answer_len(cfg: &TaskConfig) -> usize {
    let Ok(ops) = parse_ops(&cfg.ops) else {
        return 0;
    };
    let n_max = cfg.terms_max.min(MAX_TERMS);
    let max = BigUint::from(10u32).pow(cfg.digits.min(crate::task::MAX_DIGITS) as u32)
        - BigUint::from(1u32);
    let e = extremes(&max, &ops, n_max);
    (cfg.terms_min.max(1)..=n_max)
        .map(|n| {
            let (hi, lo) = &e[n];
            let neg = if *lo > BigUint::ZERO {
                1 + decimal_len(lo)
            } else {
                0
            };
            decimal_len(hi).max(neg)
        })
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
}
