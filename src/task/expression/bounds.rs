//! How many and how long: bracket structures, the longest question and answer, the number of
//! distinct questions.

use super::{decimal_len, parse_ops, BinOp, TaskConfig, MAX_TERMS};
use crate::task::operand::operand_values;
use num_bigint::BigUint;

/// Bracket structures, for uniform sampling and length bounds: `a[d][l][m]` is the number of
/// ways to write `m` operands as a row of items, each an operand or a bracketed group of at
/// most `l` operands (nested at most `d` deep, counting the group's own brackets), and
/// `p[d][l][m]` the most bracket pairs such a row can hold.
pub(super) struct Shapes {
    pub(super) depth: usize,
    pub(super) n_max: usize,
    pub(super) a: Vec<u128>,
    pub(super) p: Vec<usize>,
}

impl Shapes {
    pub(super) fn new(n_max: usize, depth: usize) -> Shapes {
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

    pub(super) fn index(&self, d: usize, l: usize, m: usize) -> usize {
        (d * self.n_max + l) * (self.n_max + 1) + m
    }

    /// Ways to fill an item of `size` operands at a level allowing `d` more nesting.
    pub(super) fn weight(&self, size: usize, d: usize) -> u128 {
        match (size, d) {
            (1, _) => 1,
            (_, 0) => 0,
            _ => self.structures(size, d - 1),
        }
    }

    /// Bracket structures of `n` operands nested at most `d` deep.
    pub(super) fn structures(&self, n: usize, d: usize) -> u128 {
        if n <= 1 {
            1
        } else {
            self.a[self.index(d.min(self.depth), n - 1, n)]
        }
    }

    /// Most bracket pairs in a structure of `n` operands nested at most `d` deep.
    pub(super) fn pairs(&self, n: usize, d: usize) -> usize {
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
pub(super) type Extremes = (BigUint, BigUint);

/// The config's operators, its largest operand count, and `extremes` for it (`None` when the
/// operators do not parse).
pub(super) fn config_extremes(cfg: &TaskConfig) -> Option<(Vec<BinOp>, usize, Vec<Extremes>)> {
    let ops = parse_ops(&cfg.ops).ok()?;
    let n_max = cfg.terms_max.min(MAX_TERMS);
    let max = BigUint::from(10u32).pow(cfg.digits.min(crate::task::MAX_DIGITS) as u32)
        - BigUint::from(1u32);
    let e = extremes(&max, &ops, n_max);
    Some((ops, n_max, e))
}

/// Characters of the longest value between `-lo` and `hi`, written with its sign.
pub(super) fn signed_len((hi, lo): &Extremes) -> usize {
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
