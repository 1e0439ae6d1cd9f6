//! Worked answers: the scratchpad a model writes before its answer.

use super::bounds::{config_extremes, signed_len};
use super::{decimal_len, parse, BinOp, Item, Seq, TaskConfig, TaskError};
use num_bigint::{BigInt, BigUint};

/// Separates the steps of a worked answer.
pub const STEP_SEP: char = ';';
/// Separates a multiplication's partial products from each other and from its product.
pub const PART_SEP: char = ',';

/// Builds a worked answer.
struct Worked {
    out: String,
}

impl Worked {
    fn number(&mut self, v: &BigInt) {
        self.out.push_str(&v.to_string());
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
/// `PART_SEP`. The last number is the answer. Numbers are written forwards; a codec that writes
/// answers backwards turns each one around.
///
/// `(12*34)*56` gives `48,36,408;2448,2040,22848`; `47-(91*5)` gives `455;-408`; a question
/// without operators gives its number.
pub(crate) fn worked(question: &str) -> Result<String, TaskError> {
    let seq = parse(question)?;
    let mut w = Worked { out: String::new() };
    let v = seq.worked(&mut w);
    if w.out.is_empty() {
        w.number(&v);
    }
    Ok(w.out)
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
