//! Evaluation grids of the two-level scratchpad runs: exact match of the final answer over
//! (operand count x operand length) for many-operand addition and over (length of a x length
//! of b) for multiplication, on fresh random questions and on carry-stress sets, with 95%
//! Wilson intervals and heatmaps.
//!
//! The model writes its whole working greedily from the question; only the final answer is
//! compared (every digit of it), as for the other long-number runs.

use super::lengths::{wilson, Check};
use crate::codec::levels::{read_answer, sequence, Question};
use crate::model::coupled::CoupledAdditionEngine;
use crate::task::many_operands::{
    addition_questions, addition_stress, product_questions, product_stress,
};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Greedy answers to `qs` (any shapes, in any order), each scored against the exact answer.
pub fn score_levels(
    engine: &mut CoupledAdditionEngine,
    params: &[f32],
    qs: &[Question],
) -> Vec<Check> {
    let mut out = vec![Check::default(); qs.len()];
    let mut i = 0;
    while i < qs.len() {
        let shape = qs[i].shape();
        let mut j = i;
        while j < qs.len() && qs[j].shape() == shape {
            j += 1;
        }
        let seqs: Vec<_> = qs[i..j].iter().map(sequence).collect();
        let layout = &seqs[0];
        let prompts: Vec<Vec<u8>> = seqs.iter().map(|s| s.tokens[..s.prompt].to_vec()).collect();
        let written = engine.greedy_layout(params, layout, &prompts);
        for (k, (w, free)) in written.iter().enumerate() {
            let want = read_answer(&seqs[k], &seqs[k].tokens);
            let got = read_answer(&seqs[k], w);
            let right = want.iter().zip(&got).filter(|(a, b)| a == b).count();
            let exact = right == want.len();
            out[i + k] = Check {
                exact,
                exact_eos: exact && *free,
                right,
            };
        }
        i = j;
    }
    out
}

/// The largest grid row or column `eval` takes.
pub const MAX_GRID: usize = 1000;
/// Bounds one cell's work: questions times the square of the longest length.
pub const MAX_DIGITS_PER_CELL: usize = 10_000_000;

/// What `eval` asks of a two-level scratchpad run (the command line's `--lengths`, `--n` and
/// `--stress`, Python's `lengths`, `n` and `stress`): the grid over `lengths` x `lengths`
/// (operand count x operand length, or length of a x length of b), `n` random questions a
/// cell, and the stress sets (5 questions a part) with `stress`.
#[derive(Clone, Debug, PartialEq)]
pub struct GridRequest {
    pub kind: GridKind,
    pub lengths: Vec<usize>,
    pub n: usize,
    pub stress: bool,
}

impl GridRequest {
    /// Checks the request against the bounds (defaults: lengths 5, 10, 30 and 50 questions a
    /// cell); the error is one line naming the offending value.
    pub fn new(
        kind: GridKind,
        lengths: Option<Vec<usize>>,
        n: Option<usize>,
        stress: bool,
    ) -> Result<GridRequest, String> {
        let lengths = lengths.unwrap_or_else(|| vec![5, 10, 30]);
        let n = n.unwrap_or(50);
        if lengths.is_empty() {
            return Err("lengths: give at least one".into());
        }
        if let Some(&bad) = lengths.iter().find(|&&l| !(1..=MAX_GRID).contains(&l)) {
            return Err(format!("lengths: {bad} is not in 1..={MAX_GRID}"));
        }
        if kind == GridKind::Addition && lengths.contains(&1) {
            return Err("lengths: operand counts (the rows) start at 2".into());
        }
        let longest = lengths.iter().max().copied().unwrap_or(1);
        if n == 0 || n.saturating_mul(longest * longest) > MAX_DIGITS_PER_CELL {
            return Err(format!(
                "n {n} questions of {longest} x {longest} is more than {MAX_DIGITS_PER_CELL} digits a cell; ask for 1..={}",
                (MAX_DIGITS_PER_CELL / (longest * longest)).max(1)
            ));
        }
        Ok(GridRequest {
            kind,
            lengths,
            n,
            stress,
        })
    }

    /// Scores the grid with the model's greedy answers, seeded by `seed`; `progress` sees
    /// each cell as it is done.
    pub fn score(
        &self,
        engine: &mut CoupledAdditionEngine,
        params: &[f32],
        seed: u64,
        progress: &mut dyn FnMut(&Cell),
    ) -> Result<Vec<Cell>, crate::task::TaskError> {
        let mut score = |qs: &[Question]| score_levels(engine, params, qs);
        grid(
            self.kind,
            &mut score,
            &self.lengths,
            &self.lengths,
            self.n,
            if self.stress { 5 } else { 0 },
            seed,
            progress,
        )
    }
}

/// The grid's JSON, as `eval --json` prints it and Python's `evaluate` returns it.
pub fn grid_json(model: &str, seed: u64, cells: &[Cell]) -> serde_json::Value {
    serde_json::json!({"model": model, "seed": seed, "cells": cells})
}

/// One cell of a grid: exact match on random questions and on the stress set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Operand count (addition) or length of a (multiplication).
    pub row: usize,
    /// Operand length (addition) or length of b (multiplication).
    pub col: usize,
    pub random_right: usize,
    pub random_n: usize,
    pub stress_right: usize,
    pub stress_n: usize,
    /// Exact and free greedy decoding would have written the whole working unchanged.
    pub exact_eos_right: usize,
    pub secs: f64,
}

impl Cell {
    pub fn random(&self) -> f64 {
        self.random_right as f64 / self.random_n.max(1) as f64
    }
    pub fn stress(&self) -> f64 {
        self.stress_right as f64 / self.stress_n.max(1) as f64
    }
    /// The 95% Wilson interval of the random and stress questions together.
    pub fn interval(&self) -> (f64, f64) {
        wilson(
            self.random_right + self.stress_right,
            self.random_n + self.stress_n,
        )
    }
}

/// Which grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridKind {
    /// Rows: operand count; columns: operand length.
    Addition,
    /// Rows: length of a; columns: length of b.
    Multiplication,
}

impl GridKind {
    /// The grid of a two-level scratchpad task.
    pub fn of(task: crate::config::long_addition::LongTask) -> GridKind {
        match task {
            crate::config::long_addition::LongTask::Multiplication => GridKind::Multiplication,
            _ => GridKind::Addition,
        }
    }
}

/// Scores every (row, col) cell: `per_cell` unique random questions and (with `stress_per_part`
/// above 0) the stress set, each cell seeded from `seed` and its place so that cells do not
/// depend on one another. `progress` sees each cell as it is done.
#[allow(clippy::too_many_arguments)]
pub fn grid(
    kind: GridKind,
    score: &mut dyn FnMut(&[Question]) -> Vec<Check>,
    rows: &[usize],
    cols: &[usize],
    per_cell: usize,
    stress_per_part: usize,
    seed: u64,
    progress: &mut dyn FnMut(&Cell),
) -> Result<Vec<Cell>, crate::task::TaskError> {
    let mut out = Vec::new();
    for &r in rows {
        for &c in cols {
            let cell_seed = seed ^ ((r as u64) << 32) ^ (c as u64) ^ 0x6e1d_0000_0000_0000;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cell_seed);
            let (random, stress): (Vec<Question>, Vec<Question>) = match kind {
                GridKind::Addition => (
                    addition_questions(cell_seed, r, c, per_cell)?
                        .into_iter()
                        .map(Question::Sum)
                        .collect(),
                    if stress_per_part > 0 {
                        addition_stress(&mut rng, r, c, stress_per_part)
                            .into_iter()
                            .map(|(q, _)| Question::Sum(q))
                            .collect()
                    } else {
                        Vec::new()
                    },
                ),
                GridKind::Multiplication => (
                    product_questions(cell_seed, r, c, per_cell)?
                        .into_iter()
                        .map(Question::Product)
                        .collect(),
                    if stress_per_part > 0 {
                        product_stress(&mut rng, r, c, stress_per_part)
                            .into_iter()
                            .map(|(q, _)| Question::Product(q))
                            .collect()
                    } else {
                        Vec::new()
                    },
                ),
            };
            let t0 = std::time::Instant::now();
            let all: Vec<Question> = random.iter().chain(&stress).cloned().collect();
            let checks = score(&all);
            let (a, b) = checks.split_at(random.len());
            let cell = Cell {
                row: r,
                col: c,
                random_right: a.iter().filter(|x| x.exact).count(),
                random_n: a.len(),
                stress_right: b.iter().filter(|x| x.exact).count(),
                stress_n: b.len(),
                exact_eos_right: checks.iter().filter(|x| x.exact_eos).count(),
                secs: t0.elapsed().as_secs_f64(),
            };
            progress(&cell);
            out.push(cell);
        }
    }
    Ok(out)
}

/// The grid as a table for people: one line per cell.
pub fn grid_header(kind: GridKind) -> String {
    let (r, c) = match kind {
        GridKind::Addition => ("operands", "digits"),
        GridKind::Multiplication => ("len a", "len b"),
    };
    format!(
        "{r:>8} {c:>7}  {:>18}  {:>16}  {:>17}  {:>7}",
        "random", "stress", "95% CI (both)", "secs"
    )
}

pub fn grid_row(cell: &Cell) -> String {
    let (lo, hi) = cell.interval();
    format!(
        "{:>8} {:>7}  {:>6.4} ({:>4}/{:<4})  {:>6.4} ({:>3}/{:<3})  [{lo:.4}, {hi:.4}]  {:>7.1}",
        cell.row,
        cell.col,
        cell.random(),
        cell.random_right,
        cell.random_n,
        cell.stress(),
        cell.stress_right,
        cell.stress_n,
        cell.secs
    )
}

/// Draws a grid as a heatmap (exact match of random and stress questions together).
pub fn draw(
    kind: GridKind,
    cells: &[Cell],
    svg: &std::path::Path,
    png: &std::path::Path,
) -> Result<(), crate::report::PlotError> {
    let mut rows: Vec<usize> = cells.iter().map(|c| c.row).collect();
    rows.dedup();
    let mut cols: Vec<usize> = cells.iter().map(|c| c.col).collect();
    cols.sort_unstable();
    cols.dedup();
    let (rname, cname, title) = match kind {
        GridKind::Addition => (
            "operands",
            "digits",
            "exact match of the final answer by operand count and length",
        ),
        GridKind::Multiplication => (
            "a",
            "b",
            "exact match of the final answer by lengths of a and b",
        ),
    };
    let row_labels: Vec<String> = rows.iter().map(|r| format!("{rname}: {r}")).collect();
    let col_labels: Vec<String> = cols.iter().map(|c| format!("{cname}: {c}")).collect();
    let find = |r: usize, c: usize| cells.iter().find(|x| x.row == r && x.col == c);
    let values: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|&r| {
            cols.iter()
                .map(|&c| {
                    find(r, c).map(|x| {
                        (x.random_right + x.stress_right) as f64
                            / (x.random_n + x.stress_n).max(1) as f64
                    })
                })
                .collect()
        })
        .collect();
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|&r| {
            cols.iter()
                .map(|&c| {
                    find(r, c).map_or(String::new(), |x| {
                        format!(
                            "{}/{}",
                            x.random_right + x.stress_right,
                            x.random_n + x.stress_n
                        )
                    })
                })
                .collect()
        })
        .collect();
    crate::report::plot_heatmap(
        &crate::report::Heatmap {
            title,
            rows: &row_labels,
            cols: &col_labels,
            values: &values,
            texts: &texts,
        },
        svg,
        png,
    )
}
