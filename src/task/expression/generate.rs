//! Drawing expressions (the module docs of `expression` say how).

use super::bounds::Shapes;
use super::{parse, parse_ops, BinOp, Item, Problem, Seq, TaskConfig, TaskError};
use crate::task::operand::{draw_operand, operand_floor, pow10};
use num_bigint::BigUint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

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
            .map(|_| draw_operand(rng, self.min_digits, self.digits))
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
        let limit = pow10(self.digits);
        seq.ops.iter().all(|op| self.ops.contains(op))
            && seq.items.iter().all(|item| match item {
                Item::Num(v) => u128::try_from(v).is_ok_and(|v| (floor..limit).contains(&v)),
                Item::Group(g) => budget >= 1 && g.items.len() >= 2 && self.fits(g, budget - 1),
            })
    }
}

impl crate::task::Sampler for Sampler {
    type Drawn = Seq;
    /// Expressions are unique by their question string.
    type Key = String;

    fn draw(&self, rng: &mut ChaCha8Rng) -> Seq {
        Sampler::draw(self, rng)
    }

    fn key(&self, seq: &Seq) -> String {
        seq.render()
    }

    fn drawable_key(&self, question: &str) -> Option<String> {
        let seq = parse(question).ok()?;
        let written = seq.render();
        (written == question.trim() && self.drawable(&seq)).then_some(written)
    }

    fn problem(&self, seq: Seq) -> Problem {
        seq.problem()
    }
}
