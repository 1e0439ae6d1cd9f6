//! Every written form of an expression task, by index: for each term count, each bracket
//! structure (the same structures `generate` draws from), each choice of operators and each
//! choice of operand values.

use super::{parse_ops, BinOp, Item, Problem, Seq, TaskConfig, TaskError};
use crate::task::operand::{operand_floor, pow10};
use num_bigint::BigUint;

/// A bracket structure: a row of items, each an operand or a bracketed row.
#[derive(Clone, Debug)]
enum Shape {
    Leaf,
    Group(Vec<Shape>),
}

/// Every row of `m` operands whose items hold at most `limit` operands each, with groups
/// nested at most `d` deep: the structures `Sampler::build` draws, in the same written form (a
/// group holds at least two operands and never the whole of what encloses it).
fn rows(m: usize, limit: usize, d: usize) -> Vec<Vec<Shape>> {
    if m == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for size in 1..=m.min(limit) {
        let firsts: Vec<Shape> = if size == 1 {
            vec![Shape::Leaf]
        } else if d == 0 {
            continue;
        } else {
            rows(size, size - 1, d - 1)
                .into_iter()
                .map(Shape::Group)
                .collect()
        };
        let rests = rows(m - size, limit, d);
        for first in &firsts {
            for rest in &rests {
                let mut row = Vec::with_capacity(rest.len() + 1);
                row.push(first.clone());
                row.extend(rest.iter().cloned());
                out.push(row);
            }
        }
    }
    out
}

/// The structures of `n` operands nested at most `depth` deep.
fn structures(n: usize, depth: usize) -> Vec<Vec<Shape>> {
    if n == 1 {
        vec![vec![Shape::Leaf]]
    } else {
        rows(n, n - 1, depth.min(n - 2))
    }
}

/// One block of the domain: a term count and a structure, with every operator and value choice.
struct Block {
    n: usize,
    shape: Vec<Shape>,
    /// Questions in the block: ops^(n-1) * values^n.
    size: u128,
}

/// Every written form of one (validated) expression config, each at one index.
pub(crate) struct Forms {
    blocks: Vec<Block>,
    ops: Vec<BinOp>,
    floor: u128,
    values: u128,
}

impl Forms {
    /// Lists the structures; callers check the domain's size first (`distinct_questions`), so
    /// there are few of them.
    pub(crate) fn new(cfg: &TaskConfig) -> Result<Forms, TaskError> {
        let ops = parse_ops(&cfg.ops)?;
        let floor = operand_floor(cfg.min_digits);
        let values = pow10(cfg.digits) - floor;
        let mut blocks = Vec::new();
        for n in cfg.terms_min..=cfg.terms_max {
            let per_shape = (ops.len() as u128)
                .saturating_pow(n as u32 - 1)
                .saturating_mul(values.saturating_pow(n as u32));
            for shape in structures(n, cfg.brackets) {
                blocks.push(Block {
                    n,
                    shape,
                    size: per_shape,
                });
            }
        }
        Ok(Forms {
            blocks,
            ops,
            floor,
            values,
        })
    }

    /// Questions in all.
    pub(crate) fn size(&self) -> u128 {
        self.blocks
            .iter()
            .fold(0u128, |s, b| s.saturating_add(b.size))
    }

    /// The question at `index` (`index < size()`): operands vary slowest, the last fastest of
    /// all; then the operators.
    pub(crate) fn problem(&self, mut index: u128) -> Problem {
        let block = self
            .blocks
            .iter()
            .find(|b| {
                if index < b.size {
                    true
                } else {
                    index -= b.size;
                    false
                }
            })
            .expect("index within the domain");
        let n_ops = block.n - 1;
        let mut ops = vec![self.ops[0]; n_ops];
        for op in ops.iter_mut().rev() {
            *op = self.ops[(index % self.ops.len() as u128) as usize];
            index /= self.ops.len() as u128;
        }
        let mut values = vec![0u128; block.n];
        for v in values.iter_mut().rev() {
            *v = self.floor + index % self.values;
            index /= self.values;
        }
        let (mut values, mut ops) = (values.into_iter(), ops.into_iter());
        fill(&block.shape, &mut values, &mut ops).problem()
    }
}

/// The expression of one structure with these operands and operators, in written order.
fn fill(
    row: &[Shape],
    values: &mut impl Iterator<Item = u128>,
    ops: &mut impl Iterator<Item = BinOp>,
) -> Seq {
    let mut items = Vec::with_capacity(row.len());
    let mut row_ops = Vec::with_capacity(row.len().saturating_sub(1));
    for (i, shape) in row.iter().enumerate() {
        if i > 0 {
            row_ops.push(ops.next().expect("one operator between operands"));
        }
        items.push(match shape {
            Shape::Leaf => Item::Num(BigUint::from(values.next().expect("one value per operand"))),
            Shape::Group(inner) => Item::Group(fill(inner, values, ops)),
        });
    }
    Seq {
        items,
        ops: row_ops,
    }
}
