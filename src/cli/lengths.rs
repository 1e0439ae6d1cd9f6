//! Scoring by operand length, with the carry-stress sets, for the runs that answer long
//! additions (coupled-transformer and pair-gru): `eval` on such a run, and the final table and
//! verdict of their experiments.

use anyhow::{bail, Result};
use rand::SeedableRng;
use seqcalc::codec::coupled::Operands;
use seqcalc::eval::lengths::{
    default_count, evaluate_lengths, table_header, table_row, transformer_scorer, LengthRequest,
    LengthResult, DEFAULT_LENGTHS,
};
use seqcalc::run::{Run, RunConfig};
use seqcalc::training::Trained;
use std::path::Path;
use std::process::ExitCode;

/// The lengths a finished run is scored at, and questions per length (`quick`: tiny ones).
type Counts = Box<dyn Fn(usize) -> usize>;
fn final_lengths(quick: bool) -> (Vec<usize>, Counts) {
    if quick {
        (vec![3, 6, 12], Box::new(|_| 20))
    } else {
        (vec![20, 100, 200, 500, 1000], Box::new(default_count))
    }
}

/// What `eval` scores on a length-generalisation run.
pub struct EvalSets {
    /// Operand lengths for the table (default `DEFAULT_LENGTHS`, unless only a heatmap is asked).
    pub lengths: Option<Vec<usize>>,
    pub stress: bool,
    /// Operand lengths whose every pair is scored and drawn.
    pub heatmap: Option<Vec<usize>>,
    /// Multiplies every head's length scale `c` (a dilution diagnostic; `None` = as trained).
    pub sharpen: Option<f32>,
}

/// The operand lengths a run was trained on.
fn trained_on(run: &Run) -> (usize, usize) {
    match run {
        Run::CoupledTransformer { run, .. } => (
            run.cfg.lengthgen.train.min_digits,
            run.cfg.lengthgen.train.max_digits,
        ),
        Run::PairGru { cfg, .. } => (cfg.pair_gru.min_digits, cfg.pair_gru.max_digits),
        _ => (1, 1),
    }
}

/// Multiplies every attention head's length scale (coupled transformers only).
fn sharpen(run: &mut Run, f: f32) -> Result<()> {
    if !(f.is_finite() && f > 0.0) {
        bail!("--sharpen must be a positive number, not {f}");
    }
    match run {
        Run::CoupledTransformer { run, .. } => {
            for b in &run.model.blocks {
                b.attn
                    .c
                    .of_mut(&mut run.params)
                    .iter_mut()
                    .for_each(|c| *c *= f);
            }
            Ok(())
        }
        _ => bail!("--sharpen applies to coupled-transformer runs; this model has no attention"),
    }
}

/// `eval` on a length-generalisation run.
pub fn eval(
    mut model: Run,
    dir: &Path,
    n: Option<usize>,
    sets: EvalSets,
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    if let Some(f) = sets.sharpen {
        sharpen(&mut model, f)?;
    }
    let table = sets.lengths.is_some() || sets.stress || sets.heatmap.is_none();
    let req = LengthRequest {
        lengths: match (table, sets.lengths) {
            (false, _) => Vec::new(),
            (true, l) => l.unwrap_or_else(|| DEFAULT_LENGTHS.to_vec()),
        },
        n,
        stress: sets.stress,
        pairs: sets.heatmap.unwrap_or_default(),
    };
    req.check().map_err(anyhow::Error::msg)?;
    if !json {
        let (lo, hi) = trained_on(&model);
        println!(
            "{}: trained on {lo}..={hi} digits; fresh questions (seed {seed}){}",
            dir.display(),
            sets.sharpen
                .map_or(String::new(), |f| format!("; every length scale c x {f}"))
        );
        println!(
            "{}",
            match model {
                Run::CoupledTransformer { .. } => "exact: greedy decoding of the answer's L+1 digits; +EOS: and the model then ends it (free decoding)",
                _ => "exact: the L+1 digits the GRU writes, one per aligned pair (it writes no end symbol: +EOS = exact)",
            }
        );
        if table {
            println!("{}", table_header());
        }
    }
    let scores = req
        .score(&mut model, seed, &mut |r| {
            if !json {
                println!("{}", table_row(r));
            }
        })
        .map_err(anyhow::Error::msg)?;
    let pairs = &req.pairs;
    if !pairs.is_empty() {
        let grid = &scores.grid;
        let per_cell = n.unwrap_or(50);
        let (svg, png) = (dir.join("length-pairs.svg"), dir.join("length-pairs.png"));
        draw_length_pairs(pairs, grid, &svg, &png)?;
        if !json {
            println!("\nexact match by (length of a: rows, length of b: columns), {per_cell} questions per cell");
            print!("{:>8}", "a \\ b");
            for l in pairs {
                print!("{l:>8}");
            }
            println!();
            for (la, row) in pairs.iter().zip(grid) {
                print!("{la:>8}");
                for &(k, m) in row {
                    print!("{:>8.3}", k as f64 / m.max(1) as f64);
                }
                println!();
            }
            println!("Wrote {} and .png", svg.display());
        }
    }
    if json {
        let v = scores.to_json(&dir.display().to_string(), seed, pairs);
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// The final table of a long-addition experiment: exact match by length on random and
/// carry-stress questions; pair-gru runs also write it to `results.json`. Returns the verdict.
pub fn final_report(
    trained: &mut Trained,
    cfg: &RunConfig,
    dir: &Path,
    quick: bool,
) -> Result<String> {
    let (lengths, count) = final_lengths(quick);
    println!("\n{}", table_header());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut print = |r: &LengthResult| println!("{}", table_row(r));
    let results = match trained {
        Trained::CoupledTransformer { engine, params, .. } => evaluate_lengths(
            &mut *transformer_scorer(engine, params),
            &lengths,
            count,
            true,
            &mut rng,
            &mut print,
        ),
        Trained::PairGru { engine, params, .. } => evaluate_lengths(
            &mut |qs: &[Operands]| engine.score(params, qs),
            &lengths,
            count,
            true,
            &mut rng,
            &mut print,
        ),
        _ => bail!("scored by length only for long-addition runs"),
    };
    if let (
        Trained::PairGru {
            outcome, params, ..
        },
        RunConfig::PairGru(c),
    ) = (&*trained, cfg)
    {
        let v = serde_json::json!({
            "model": seqcalc::model::pair_gru::MODEL_NAME,
            "config": c.pair_gru,
            "seed": c.seed,
            "training": {
                "params": params.len(),
                "steps": outcome.steps,
                "train_secs": outcome.train_secs,
                "tokens": outcome.tokens,
                "final_loss": outcome.final_loss(),
            },
            "results": results,
        });
        let path = dir.join(seqcalc::model::pair_gru::RESULTS);
        seqcalc::fsutil::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    let bar_lengths: &[usize] = if quick {
        &[6, 12]
    } else {
        &[100, 200, 500, 1000]
    };
    let worst = |set: &str| {
        results
            .iter()
            .filter(|r| bar_lengths.contains(&r.length) && r.set == set)
            .map(|r| r.exact)
            .fold(1.0f64, f64::min)
    };
    let (random, stress) = (worst("random"), worst("stress"));
    let ok = if random.min(stress) >= 0.99 {
        "✓"
    } else {
        "✗"
    };
    Ok(format!(
        "{}: lowest exact match at {bar_lengths:?} digits: random {random:.4}, carry-stress {stress:.4}; the bar is 0.99 {ok}",
        cfg.name()
    ))
}

/// Draws the (length of a, length of b) exact-match grid as a heatmap.
fn draw_length_pairs(
    lengths: &[usize],
    grid: &[Vec<(usize, usize)>],
    svg: &Path,
    png: &Path,
) -> Result<()> {
    let labels: Vec<String> = lengths.iter().map(|l| format!("{l}")).collect();
    let rows: Vec<String> = lengths.iter().map(|l| format!("a: {l} digits")).collect();
    let cols: Vec<String> = labels.iter().map(|l| format!("b: {l}")).collect();
    let values: Vec<Vec<Option<f64>>> = grid
        .iter()
        .map(|row| {
            row.iter()
                .map(|&(k, m)| Some(k as f64 / m.max(1) as f64))
                .collect()
        })
        .collect();
    let texts: Vec<Vec<String>> = grid
        .iter()
        .map(|row| row.iter().map(|&(k, m)| format!("{k}/{m}")).collect())
        .collect();
    seqcalc::report::plot_heatmap(
        &seqcalc::report::Heatmap {
            title: "exact match by operand lengths",
            rows: &rows,
            cols: &cols,
            values: &values,
            texts: &texts,
        },
        svg,
        png,
    )?;
    Ok(())
}
