//! The final report of a two-level scratchpad experiment (many-operand addition,
//! multiplication): exact match of the final answer over a grid, random and carry-stress
//! questions, a heatmap in the run directory, and a verdict against the bars.

use anyhow::{bail, Result};
use seqcalc::config::long_addition::LongTask;
use seqcalc::eval::grids::{
    draw, grid, grid_header, grid_json, grid_row, score_levels, Cell, GridKind, GridRequest,
};
use seqcalc::run::RunConfig;
use seqcalc::training::Trained;
use std::path::Path;
use std::process::ExitCode;

/// The grid's rows and columns, the cells that carry a bar, and questions per cell.
struct Plan {
    kind: GridKind,
    rows: Vec<usize>,
    cols: Vec<usize>,
    bars: Vec<(usize, usize)>,
    /// Random questions and stress questions per part in a cell of `row x col`: 1,000 and 50
    /// in the cells that carry a bar, so that all right there means a 95% Wilson interval
    /// above 0.99.
    counts: fn(usize, usize) -> (usize, usize),
}

fn plan(task: LongTask, quick: bool) -> Plan {
    match (task, quick) {
        (LongTask::Multiplication, true) => Plan {
            kind: GridKind::Multiplication,
            rows: vec![2, 4],
            cols: vec![2, 4],
            bars: vec![(4, 4)],
            counts: |_, _| (10, 2),
        },
        (LongTask::Multiplication, false) => Plan {
            kind: GridKind::Multiplication,
            rows: vec![5, 10, 20, 30, 50, 100],
            cols: vec![5, 10, 15, 30, 50, 100],
            bars: vec![(20, 15), (30, 30)],
            counts: |r, c| match (r, c) {
                (20, 15) | (30, 30) => (1000, 50),
                _ if r * c <= 900 => (200, 20),
                _ if r * c <= 2500 => (100, 10),
                _ => (50, 5),
            },
        },
        (_, true) => Plan {
            kind: GridKind::Addition,
            rows: vec![2, 3, 6],
            cols: vec![3, 6],
            bars: vec![(6, 6)],
            counts: |_, _| (10, 2),
        },
        (_, false) => Plan {
            kind: GridKind::Addition,
            rows: vec![2, 10, 30, 100],
            cols: vec![10, 30, 100],
            bars: vec![(30, 30), (100, 100)],
            counts: |r, c| match (r, c) {
                (30, 30) | (100, 100) => (1000, 50),
                _ => (200, 20),
            },
        },
    }
}

/// Scores the trained run over its grid, prints and draws it; returns the verdict.
pub fn final_report(
    trained: &mut Trained,
    cfg: &RunConfig,
    dir: &Path,
    quick: bool,
) -> Result<String> {
    let (RunConfig::CoupledTransformer(c), Trained::CoupledTransformer { engine, params, .. }) =
        (cfg, trained)
    else {
        bail!("grids are for two-level scratchpad runs");
    };
    let p = plan(c.lengthgen.task, quick);
    println!(
        "\nexact match of the final answer (every digit; the model writes all its working greedily), fresh questions"
    );
    println!("{}", grid_header(p.kind));
    let mut cells: Vec<Cell> = Vec::new();
    for &r in &p.rows {
        for &col in &p.cols {
            let (n, stress) = (p.counts)(r, col);
            let mut score = |qs: &[_]| score_levels(engine, params, qs);
            let got = grid(
                p.kind,
                &mut score,
                &[r],
                &[col],
                n,
                stress,
                7,
                &mut |cell| println!("{}", grid_row(cell)),
            )?;
            cells.extend(got);
        }
    }
    let (svg, png) = (dir.join("grid.svg"), dir.join("grid.png"));
    draw(p.kind, &cells, &svg, &png)?;
    println!("Wrote {} and .png", svg.display());
    let json = serde_json::to_string_pretty(&cells)?;
    seqcalc::fsutil::write_atomic(&dir.join("grid.json"), json.as_bytes())?;
    let mut ok = true;
    let mut parts = Vec::new();
    for &(r, col) in &p.bars {
        let Some(cell) = cells.iter().find(|x| x.row == r && x.col == col) else {
            continue;
        };
        let pass = cell.random() >= 0.99 && cell.stress() >= 0.99;
        ok &= pass;
        parts.push(format!(
            "{r} x {col}: random {:.3}, stress {:.3} {}",
            cell.random(),
            cell.stress(),
            if pass { "✓" } else { "✗" }
        ));
    }
    let verdict = format!(
        "{}: exact match of the final answer {} (bar: >= 0.99 random and stress) {}",
        c.name,
        parts.join("; "),
        if ok { "✓" } else { "✗" }
    );
    println!("{verdict}");
    Ok(verdict)
}

/// `eval` on a many-operand or multiplication run: the grid over `lengths` x `lengths` (operand
/// count x operand length, or length of a x length of b), `n` random questions a cell (and the
/// stress sets with `stress`), printed, drawn to `grid.svg` in the run directory, or as JSON.
#[allow(clippy::too_many_arguments)]
pub fn eval(
    run: seqcalc::run::CoupledRun,
    mut engine: seqcalc::model::coupled::CoupledAdditionEngine,
    dir: &Path,
    n: Option<usize>,
    lengths: Option<Vec<usize>>,
    stress: bool,
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    let kind = GridKind::of(run.cfg.lengthgen.task);
    let req = GridRequest::new(kind, lengths, n, stress).map_err(|e| anyhow::anyhow!("--{e}"))?;
    if !json {
        println!(
            "{}: exact match of the final answer (every digit; the model writes all its working greedily), fresh questions (seed {seed})",
            dir.display()
        );
        println!("{}", grid_header(kind));
    }
    let cells = req.score(&mut engine, &run.params, seed, &mut |cell| {
        if !json {
            println!("{}", grid_row(cell));
        }
    })?;
    let (svg, png) = (dir.join("grid.svg"), dir.join("grid.png"));
    draw(kind, &cells, &svg, &png)?;
    if json {
        let v = grid_json(&dir.display().to_string(), seed, &cells);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("Wrote {} and .png", svg.display());
    }
    Ok(ExitCode::SUCCESS)
}
