//! The command line of length-generalisation runs: `experiment run length-generalisation`,
//! and `predict` / `eval` on such a run directory (main.rs dispatches here).

use anyhow::{bail, Result};
use rand::SeedableRng;
use seqcalc::lengthgen::engine::{check_answer, Answer, Engine};
use seqcalc::lengthgen::eval::{
    evaluate_lengths, length_pairs, table_header, table_row, transformer_scorer, LengthResult,
    Scorer,
};
use seqcalc::lengthgen::format::{self, Operands, MAX_DIGITS};
use seqcalc::lengthgen::{self, LengthGenRunConfig};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// The lengths `eval` scores by default.
const DEFAULT_LENGTHS: [usize; 7] = [10, 20, 50, 100, 200, 500, 1000];

/// The lengths a finished run is scored at, and questions per length (`quick`: tiny ones).
type Counts = Box<dyn Fn(usize) -> usize>;
fn final_lengths(quick: bool) -> (Vec<usize>, Counts) {
    if quick {
        (vec![3, 6, 12], Box::new(|_| 20))
    } else {
        (vec![20, 100, 200, 500, 1000], Box::new(default_count))
    }
}

/// Questions per length: the bar (500 up to 200 digits, 200 beyond).
fn default_count(n: usize) -> usize {
    if n <= 200 {
        500
    } else {
        200
    }
}

/// Whether a config file's text is a length-generalisation config (it has a `lengthgen`
/// section).
pub fn is_lengthgen_config(text: &str) -> bool {
    if text.trim_start().starts_with('{') {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v.get("lengthgen").is_some())
    } else {
        toml::from_str::<toml::Table>(text)
            .ok()
            .is_some_and(|t| t.contains_key("lengthgen"))
    }
}

/// `train --config` with a length-generalisation config: trains and saves, no final grid.
/// With `resume`, goes on from the checkpoint in `dir`.
pub fn train_only(
    cfg: &LengthGenRunConfig,
    dir: &Path,
    resume: bool,
    interrupted: &AtomicBool,
) -> Result<()> {
    if dir.join(seqcalc::rundir::CONFIG).exists() && !lengthgen::is_run(dir) {
        bail!(
            "{}: holds another kind of run; pass --name or --runs-dir to write elsewhere",
            dir.display()
        );
    }
    let (_, _, outcome) =
        lengthgen::train::train(cfg, dir, resume, interrupted, &mut |l| println!("{l}"))?;
    println!(
        "trained {} steps in {:.1} s: {:.0} tokens/s; saved to {} (seqcalc eval --model {} --stress)",
        outcome.steps,
        outcome.train_secs,
        outcome.tokens_per_sec(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Trains, evaluates by length with the stress sets, and returns the verdict line.
pub fn run_experiment(
    cfg: &LengthGenRunConfig,
    dir: &Path,
    quick: bool,
    interrupted: &AtomicBool,
) -> Result<String> {
    if dir.join(seqcalc::rundir::CONFIG).exists() && !lengthgen::is_run(dir) {
        bail!(
            "{}: holds another kind of run; pass --runs-dir to write elsewhere",
            dir.display()
        );
    }
    let t = &cfg.lengthgen.train;
    println!(
        "training on operands of {}..={} digits, batch {}, {} steps{}",
        t.min_digits,
        t.max_digits,
        t.batch_size,
        t.steps,
        t.max_seconds
            .map_or(String::new(), |s| format!(", at most {s} s"))
    );
    let (mut engine, params, outcome) =
        lengthgen::train::train(cfg, dir, false, interrupted, &mut |l| println!("{l}"))?;
    println!(
        "trained {} steps in {:.1} s: {:.0} tokens/s{}",
        outcome.steps,
        outcome.train_secs,
        outcome.tokens_per_sec(),
        if outcome.skipped_steps > 0 {
            format!(
                " ({} steps skipped: non-finite gradient)",
                outcome.skipped_steps
            )
        } else {
            String::new()
        }
    );
    let (lengths, count) = final_lengths(quick);
    println!("\n{}", table_header());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let results = evaluate_lengths(
        &mut *transformer_scorer(&mut engine, &params),
        &lengths,
        count,
        true,
        &mut rng,
        &mut |r| println!("{}", table_row(r)),
    );
    let bar_lengths: &[usize] = if quick {
        &[6, 12]
    } else {
        &[100, 200, 500, 1000]
    };
    let worst = results
        .iter()
        .filter(|r| bar_lengths.contains(&r.length) && (r.set == "random" || r.set == "stress"))
        .map(|r| r.exact)
        .fold(1.0f64, f64::min);
    println!(
        "Saved to {}: try `seqcalc predict --model {} \"{}+1\"`",
        dir.display(),
        dir.display(),
        "9".repeat(30)
    );
    let ok = if worst >= 0.99 { "✓" } else { "✗" };
    Ok(format!(
        "{}: lowest exact match at {:?} digits (random and stress) {worst:.4}, the bar is 0.99 {ok}",
        cfg.name, bar_lengths
    ))
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

/// Whether `dir` holds a length-generalisation run: the transformer's or the GRU baseline's.
pub fn is_run(dir: &Path) -> bool {
    lengthgen::is_run(dir) || lengthgen::gru::is_run(dir)
}

/// A trained length-generalisation model read back from its run directory: the transformer
/// of `experiment run length-generalisation` or the aligned-pairs GRU baseline. One per command,
/// so the variants' difference in size does not matter.
#[allow(clippy::large_enum_variant)]
enum Loaded {
    Transformer(lengthgen::LoadedRun, Engine),
    Gru(lengthgen::gru::PairGruConfig, lengthgen::gru::GruEngine),
}

impl Loaded {
    fn load(dir: &Path, threads: usize) -> Result<Loaded> {
        if lengthgen::gru::is_run(dir) {
            let (cfg, engine) = lengthgen::gru::load_run(dir, threads)?;
            return Ok(Loaded::Gru(cfg, engine));
        }
        let run = lengthgen::load_run(dir)?;
        let engine = Engine::new(run.model.clone(), threads);
        Ok(Loaded::Transformer(run, engine))
    }

    /// The operand lengths it was trained on.
    fn trained_on(&self) -> (usize, usize) {
        match self {
            Loaded::Transformer(run, _) => (
                run.cfg.lengthgen.train.min_digits,
                run.cfg.lengthgen.train.max_digits,
            ),
            Loaded::Gru(cfg, _) => (cfg.min_digits, cfg.max_digits),
        }
    }

    /// Multiplies every attention head's length scale (transformers only).
    fn sharpen(&mut self, f: f32) -> Result<()> {
        if !(f.is_finite() && f > 0.0) {
            bail!("--sharpen must be a positive number, not {f}");
        }
        match self {
            Loaded::Transformer(run, _) => {
                for b in &run.model.blocks {
                    b.attn
                        .c
                        .of_mut(&mut run.params)
                        .iter_mut()
                        .for_each(|c| *c *= f);
                }
                Ok(())
            }
            Loaded::Gru(..) => {
                bail!("--sharpen applies to transformer runs; the GRU has no attention")
            }
        }
    }

    fn scorer(&mut self) -> Box<Scorer<'_>> {
        match self {
            Loaded::Transformer(run, engine) => transformer_scorer(engine, &run.params),
            Loaded::Gru(_, engine) => Box::new(|qs: &[Operands]| engine.score(qs)),
        }
    }

    /// Greedy answers, one per question.
    fn answers(&mut self, qs: &[Operands]) -> Vec<Answer> {
        match self {
            Loaded::Transformer(run, engine) => engine.greedy(&run.params, qs),
            Loaded::Gru(_, engine) => engine.answer(qs),
        }
    }
}

/// `eval` on a length-generalisation run.
pub fn eval(
    dir: &Path,
    n: Option<usize>,
    sets: EvalSets,
    seed: u64,
    threads: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    let threads = threads.unwrap_or_else(seqcalc::model::default_threads);
    let mut model = Loaded::load(dir, threads)?;
    if let Some(f) = sets.sharpen {
        model.sharpen(f)?;
    }
    let table = sets.lengths.is_some() || sets.stress || sets.heatmap.is_none();
    let lengths = match (table, sets.lengths) {
        (false, _) => Vec::new(),
        (true, l) => l.unwrap_or_else(|| DEFAULT_LENGTHS.to_vec()),
    };
    let pairs = sets.heatmap.unwrap_or_default();
    for (flag, list) in [("--lengths", &lengths), ("--heatmap", &pairs)] {
        if let Some(&bad) = list.iter().find(|&&l| l == 0 || l > MAX_DIGITS) {
            bail!("{flag}: {bad} is not in 1..={MAX_DIGITS}");
        }
    }
    let stress = sets.stress;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    if !json {
        let (lo, hi) = model.trained_on();
        println!(
            "{}: trained on {lo}..={hi} digits; fresh questions (seed {seed}){}",
            dir.display(),
            sets.sharpen
                .map_or(String::new(), |f| format!("; every length scale c x {f}"))
        );
        println!(
            "{}",
            match model {
                Loaded::Transformer(..) => "exact: greedy decoding of the answer's L+1 digits; +EOS: and the model then ends it (free decoding)",
                Loaded::Gru(..) => "exact: the L+1 digits the GRU writes, one per aligned pair (it writes no end symbol: +EOS = exact)",
            }
        );
        if table {
            println!("{}", table_header());
        }
    }
    let mut scorer = model.scorer();
    let results: Vec<LengthResult> = evaluate_lengths(
        &mut *scorer,
        &lengths,
        |l| n.unwrap_or_else(|| default_count(l)),
        stress,
        &mut rng,
        &mut |r| {
            if !json {
                println!("{}", table_row(r));
            }
        },
    );
    let grid = if pairs.is_empty() {
        Vec::new()
    } else {
        let per_cell = n.unwrap_or(50);
        let grid = length_pairs(&mut *scorer, &pairs, per_cell, &mut rng);
        let (svg, png) = (dir.join("length-pairs.svg"), dir.join("length-pairs.png"));
        draw_length_pairs(&pairs, &grid, &svg, &png)?;
        if !json {
            println!("\nexact match by (length of a: rows, length of b: columns), {per_cell} questions per cell");
            print!("{:>8}", "a \\ b");
            for l in &pairs {
                print!("{l:>8}");
            }
            println!();
            for (la, row) in pairs.iter().zip(&grid) {
                print!("{la:>8}");
                for &(k, m) in row {
                    print!("{:>8.3}", k as f64 / m.max(1) as f64);
                }
                println!();
            }
            println!("Wrote {} and .png", svg.display());
        }
        grid
    };
    if json {
        let cells: Vec<serde_json::Value> = pairs
            .iter()
            .zip(&grid)
            .flat_map(|(&la, row)| {
                pairs.iter().zip(row).map(move |(&lb, &(k, m))| {
                    serde_json::json!({"len_a": la, "len_b": lb, "right": k, "n": m})
                })
            })
            .collect();
        let v = serde_json::json!({
            "model": dir.display().to_string(),
            "seed": seed,
            "results": results,
            "length_pairs": cells,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `experiment run length-generalisation-gru`: trains the aligned-pairs GRU baseline, scores
/// it by length with the stress sets, and writes `results.json` in `dir`. Returns the verdict.
pub fn run_gru_baseline(
    cfg: &lengthgen::gru::PairGruConfig,
    seed: u64,
    dir: &Path,
    quick: bool,
) -> Result<String> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir)?;
    let _lock = seqcalc::rundir::RunLock::acquire(dir)?;
    println!(
        "training on operands of {}..={} digits, batch {}, {} steps, seed {seed}",
        cfg.min_digits, cfg.max_digits, cfg.batch_size, cfg.steps
    );
    let (mut engine, outcome) =
        lengthgen::gru::train(cfg, seed, &mut |l| println!("{l}")).map_err(anyhow::Error::msg)?;
    println!(
        "trained {} steps in {:.1} s: {:.0} tokens/s",
        outcome.steps,
        outcome.train_secs,
        outcome.tokens as f64 / outcome.train_secs.max(1e-9)
    );
    let (lengths, count) = final_lengths(quick);
    println!("\n{}", table_header());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let results = evaluate_lengths(
        &mut |qs: &[Operands]| engine.score(qs),
        &lengths,
        count,
        true,
        &mut rng,
        &mut |r| println!("{}", table_row(r)),
    );
    let v = serde_json::json!({
        "model": lengthgen::gru::MODEL_NAME,
        "config": cfg,
        "seed": seed,
        "training": outcome,
        "results": results,
    });
    let path = dir.join(lengthgen::gru::RESULTS);
    seqcalc::fsutil::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    seqcalc::rundir::save_flat(dir, &engine.model.layout, &engine.params)?;
    let worst = |set: &str| {
        results
            .iter()
            .filter(|r| r.length >= lengths[1] && r.set == set)
            .map(|r| r.exact)
            .fold(1.0f64, f64::min)
    };
    Ok(format!(
        "aligned-pairs GRU: lowest exact match from {} digits on: random {:.4}, carry-stress {:.4} (written to {})",
        lengths[1],
        worst("random"),
        worst("stress"),
        path.display()
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
    )
}

/// `predict` on a length-generalisation run: one answer per question, exit code 1 when any
/// question could not be asked.
pub fn predict(
    dir: &Path,
    questions: &[String],
    jsonl: bool,
    threads: Option<usize>,
) -> Result<ExitCode> {
    let mut model = Loaded::load(dir, threads.unwrap_or(1))?;
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Answers every parsable question of a batch at once.
    let mut answer = |lines: &[(String, Result<Operands, String>)],
                      out: &mut std::io::StdoutLock,
                      failed: &mut bool|
     -> Result<()> {
        let ok: Vec<Operands> = lines
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut gen = model.answers(&ok).into_iter();
        let mut ops = ok.iter();
        for (q, r) in lines {
            match r {
                Ok(_) => {
                    let (g, o) = (
                        gen.next().expect("one answer each"),
                        ops.next().expect("one each"),
                    );
                    let answer = format::to_decimal(&g.digits);
                    let exact = check_answer(o, &g).exact;
                    if jsonl {
                        let v = serde_json::json!({"input": q, "output": answer, "correct": exact, "ends": g.ends});
                        writeln!(out, "{v}")?;
                    } else {
                        let mark = if exact { "✓" } else { "✗" };
                        writeln!(out, "{} = {answer}  {mark}", q.trim())?;
                    }
                }
                Err(e) => {
                    *failed = true;
                    if jsonl {
                        writeln!(out, "{}", serde_json::json!({"input": q, "error": e}))?;
                    } else {
                        eprintln!("error: {q:?}: {e}");
                    }
                }
            }
        }
        Ok(())
    };
    if jsonl {
        if !questions.is_empty() {
            bail!("--jsonl reads questions from stdin; do not also pass them as arguments");
        }
        let mut batch = Vec::new();
        let mut digits = 0usize;
        for line in std::io::stdin().lock().split(b'\n') {
            let line = line?;
            let r = match std::str::from_utf8(&line) {
                Ok(t) => format::parse_question(t.trim_end_matches('\r')),
                Err(_) => Err("line is not valid UTF-8".to_string()),
            };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            digits += text.len();
            batch.push((text, r));
            if batch.len() >= 256 || digits >= 1 << 20 {
                answer(&batch, &mut out, &mut failed)?;
                batch.clear();
                digits = 0;
            }
        }
        answer(&batch, &mut out, &mut failed)?;
    } else {
        if questions.is_empty() {
            bail!("no questions given; pass them as arguments (seqcalc predict --model DIR \"123+4567\") or use --jsonl with stdin");
        }
        let batch: Vec<(String, Result<Operands, String>)> = questions
            .iter()
            .map(|q| (q.clone(), format::parse_question(q)))
            .collect();
        answer(&batch, &mut out, &mut failed)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
