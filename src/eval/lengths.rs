//! Evaluation by length: exact match and per-digit accuracy of greedy answers on random
//! operands and on carry-stress sets, with sample counts and 95% Wilson intervals.
//!
//! Random operands at length `n` are two uniform `n`-digit numbers, where long carry chains
//! are rare; the carry-stress sets (`crate::task::long_addition::stress_set`) hold the chains
//! a model must get right too.

use crate::codec::coupled::Operands;
use crate::model::coupled::{Answer, CoupledAdditionEngine};
use crate::task::long_addition::{self, random_operand, stress_set};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// One row of the report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LengthResult {
    /// Operand length in digits.
    pub length: usize,
    /// `random`, `stress` (all 45), or a stress part: `stress:fixed`, `stress:ripple`,
    /// `stress:nines`.
    pub set: String,
    pub n: usize,
    /// Exact match: every digit of the `L + 1`-digit answer right.
    pub exact: f64,
    /// 95% Wilson interval of the exact-match rate.
    pub exact_lo: f64,
    pub exact_hi: f64,
    /// Exact and ended with EOS under free greedy decoding (stricter; equal to `exact` for
    /// models that write a fixed number of digits).
    #[serde(default)]
    pub exact_eos: f64,
    /// Fraction of answer digits right.
    pub digit_acc: f64,
    pub secs: f64,
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054;
    let (nf, p) = (n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One answer scored against the exact sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// All `L + 1` digits right: the number the user is shown is the sum.
    pub exact: bool,
    /// Exact, and free greedy decoding would have written it and stopped with EOS (stricter).
    pub exact_eos: bool,
    /// Answer digits right.
    pub right: usize,
}

/// Scores a greedy answer against the exact sum.
pub fn check_answer(q: &Operands, answer: &Answer) -> Check {
    let sum = q.sum();
    let right = sum
        .iter()
        .zip(&answer.digits)
        .filter(|(a, b)| a == b)
        .count();
    let exact = right == sum.len() && answer.digits.len() == sum.len();
    Check {
        exact,
        exact_eos: exact && answer.ends,
        right,
    }
}

/// Each answer scored against its question's exact sum.
pub fn check_all(qs: &[Operands], answers: &[Answer]) -> Vec<Check> {
    qs.iter()
        .zip(answers)
        .map(|(q, a)| check_answer(q, a))
        .collect()
}

/// The fraction of exact answers.
pub fn exact_rate(checks: &[Check]) -> f64 {
    checks.iter().filter(|c| c.exact).count() as f64 / checks.len().max(1) as f64
}

/// Greedy answers to `qs`, each scored against the exact sum.
pub fn score(engine: &mut CoupledAdditionEngine, params: &[f32], qs: &[Operands]) -> Vec<Check> {
    check_all(qs, &engine.greedy(params, qs))
}

fn summarise(
    length: usize,
    set: &str,
    qs: &[&Operands],
    checks: &[Check],
    secs: f64,
) -> LengthResult {
    let k = checks.iter().filter(|c| c.exact).count();
    let k_eos = checks.iter().filter(|c| c.exact_eos).count();
    let n = checks.len();
    let digits: usize = qs.iter().map(|q| q.len() + 1).sum();
    let (lo, hi) = wilson(k, n);
    LengthResult {
        length,
        set: set.to_string(),
        n,
        exact: k as f64 / n.max(1) as f64,
        exact_lo: lo,
        exact_hi: hi,
        exact_eos: k_eos as f64 / n.max(1) as f64,
        digit_acc: checks.iter().map(|c| c.right).sum::<usize>() as f64 / digits.max(1) as f64,
        secs,
    }
}

/// A model's answers scored, one [`Check`] per question.
pub type Scorer<'a> = dyn FnMut(&[Operands]) -> Vec<Check> + 'a;

/// The transformer's greedy answers as a [`Scorer`].
pub fn transformer_scorer<'a>(
    engine: &'a mut CoupledAdditionEngine,
    params: &'a [f32],
) -> Box<Scorer<'a>> {
    Box::new(move |qs| score(engine, params, qs))
}

/// Scores random questions (`count(n)` at each length) and, with `stress`, the stress sets.
pub fn evaluate_lengths(
    score: &mut Scorer,
    lengths: &[usize],
    count: impl Fn(usize) -> usize,
    stress: bool,
    rng: &mut impl Rng,
    progress: &mut dyn FnMut(&LengthResult),
) -> Vec<LengthResult> {
    let mut out = Vec::new();
    for &n in lengths {
        let qs = long_addition::random_questions(rng, n, count(n));
        let t0 = std::time::Instant::now();
        let checks = score(&qs);
        let refs: Vec<&Operands> = qs.iter().collect();
        let r = summarise(n, "random", &refs, &checks, t0.elapsed().as_secs_f64());
        progress(&r);
        out.push(r);
        if stress {
            let set = stress_set(rng, n, 20);
            let qs: Vec<Operands> = set.iter().map(|(q, _)| q.clone()).collect();
            let t0 = std::time::Instant::now();
            let checks = score(&qs);
            let secs = t0.elapsed().as_secs_f64();
            let refs: Vec<&Operands> = qs.iter().collect();
            let r = summarise(n, "stress", &refs, &checks, secs);
            progress(&r);
            out.push(r);
            for part in ["fixed", "ripple", "nines"] {
                let idx: Vec<usize> = (0..set.len()).filter(|&i| set[i].1 == part).collect();
                let refs: Vec<&Operands> = idx.iter().map(|&i| &qs[i]).collect();
                let c: Vec<Check> = idx.iter().map(|&i| checks[i]).collect();
                let r = summarise(n, &format!("stress:{part}"), &refs, &c, secs);
                progress(&r);
                out.push(r);
            }
        }
    }
    out
}

/// Exact match over pairs of operand lengths: for every `(len a, len b)` in `lengths` x
/// `lengths`, `per_cell` questions with `a` of exactly `len a` digits and `b` of `len b`, both
/// zero-padded to the longer. Returns `[row = len a][col = len b]` as (right, asked).
pub fn length_pairs(
    score: &mut Scorer,
    lengths: &[usize],
    per_cell: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<(usize, usize)>> {
    lengths
        .iter()
        .map(|&la| {
            lengths
                .iter()
                .map(|&lb| {
                    let l = la.max(lb);
                    let qs: Vec<Operands> = (0..per_cell)
                        .map(|_| Operands {
                            a: random_operand(rng, la, l),
                            b: random_operand(rng, lb, l),
                        })
                        .collect();
                    let checks = score(&qs);
                    (checks.iter().filter(|c| c.exact).count(), qs.len())
                })
                .collect()
        })
        .collect()
}

/// The operand lengths `eval` scores by default.
pub const DEFAULT_LENGTHS: [usize; 7] = [10, 20, 50, 100, 200, 500, 1000];

/// The most digits `eval` asks per operand length (questions times their length).
pub const MAX_DIGITS_PER_LENGTH: usize = 10_000_000;

/// Questions per length when none are asked for: 500 up to 200 digits, 200 beyond.
pub fn default_count(n: usize) -> usize {
    if n <= 200 {
        500
    } else {
        200
    }
}

/// What `eval` scores on a long-addition run (coupled-transformer or pair-gru).
#[derive(Clone, Debug, Default)]
pub struct LengthRequest {
    /// Operand lengths of the table (empty: no table).
    pub lengths: Vec<usize>,
    /// Questions per length (default [`default_count`]) and per heatmap cell (default 50).
    pub n: Option<usize>,
    /// Also the carry-stress sets at each length.
    pub stress: bool,
    /// Operand lengths whose every pair (length of a, length of b) is scored.
    pub pairs: Vec<usize>,
}

/// A long-addition run's scores: the table's rows, and the grid of `LengthRequest::pairs`
/// (`[row = len a][col = len b]` as (right, asked)).
pub struct LengthScores {
    pub results: Vec<LengthResult>,
    pub grid: Vec<Vec<(usize, usize)>>,
}

impl LengthRequest {
    /// Refuses lengths out of `1..=MAX_DIGITS` and more work per length than
    /// [`MAX_DIGITS_PER_LENGTH`] (one line, naming `eval`'s flag).
    pub fn check(&self) -> Result<(), String> {
        use crate::codec::coupled::MAX_DIGITS;
        for (flag, list) in [("--lengths", &self.lengths), ("--heatmap", &self.pairs)] {
            if let Some(&bad) = list.iter().find(|&&l| l == 0 || l > MAX_DIGITS) {
                return Err(format!("{flag}: {bad} is not in 1..={MAX_DIGITS}"));
            }
        }
        // The work of one length is its questions times their digits; bound it (the default,
        // 200 questions of 1000 digits, is 200,000).
        if let Some(n) = self.n {
            if n == 0 {
                return Err("--n 0: ask for at least one question".into());
            }
            let longest = self
                .lengths
                .iter()
                .chain(&self.pairs)
                .copied()
                .max()
                .unwrap_or(1);
            if n.saturating_mul(longest) > MAX_DIGITS_PER_LENGTH {
                return Err(format!(
                    "--n {n} questions of {longest} digits is more than {MAX_DIGITS_PER_LENGTH} digits per length; ask for at most {}",
                    MAX_DIGITS_PER_LENGTH / longest
                ));
            }
        }
        Ok(())
    }

    /// Scores a long-addition run (`eval` on it): the table's rows first, each told to
    /// `on_row` as it is done, then the grid, all from one generator seeded with `seed`.
    pub fn score(
        &self,
        run: &mut crate::run::Run,
        seed: u64,
        on_row: &mut dyn FnMut(&LengthResult),
    ) -> Result<LengthScores, String> {
        use crate::run::Run;
        use rand::SeedableRng;
        self.check()?;
        let mut scorer: Box<Scorer<'_>> = match run {
            Run::CoupledTransformer { run, engine } => transformer_scorer(engine, &run.params),
            Run::PairGru { engine, params, .. } => {
                Box::new(|qs: &[Operands]| engine.score(params, qs))
            }
            other => {
                return Err(format!(
                    "scored by length only for long-addition runs (coupled-transformer, pair-gru); this is a {} run",
                    other.kind()
                ))
            }
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = self.n;
        let results = evaluate_lengths(
            &mut *scorer,
            &self.lengths,
            |l| n.unwrap_or_else(|| default_count(l)),
            self.stress,
            &mut rng,
            on_row,
        );
        let grid = if self.pairs.is_empty() {
            Vec::new()
        } else {
            length_pairs(&mut *scorer, &self.pairs, n.unwrap_or(50), &mut rng)
        };
        Ok(LengthScores { results, grid })
    }
}

impl LengthScores {
    /// `eval --json`'s object for a long-addition run.
    pub fn to_json(&self, model: &str, seed: u64, pairs: &[usize]) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = pairs
            .iter()
            .zip(&self.grid)
            .flat_map(|(&la, row)| {
                pairs.iter().zip(row).map(move |(&lb, &(k, m))| {
                    serde_json::json!({"len_a": la, "len_b": lb, "right": k, "n": m})
                })
            })
            .collect();
        serde_json::json!({
            "model": model,
            "seed": seed,
            "results": self.results,
            "length_pairs": cells,
        })
    }
}

/// The report as a table for people.
pub fn table_header() -> String {
    format!(
        "{:>7}  {:<14}{:>6}  {:>8}  {:>17}  {:>9}  {:>10}  {:>7}",
        "length", "set", "n", "exact", "95% CI", "+EOS", "per-digit", "secs"
    )
}

pub fn table_row(r: &LengthResult) -> String {
    format!(
        "{:>7}  {:<14}{:>6}  {:>8.4}  [{:.4}, {:.4}]  {:>9.4}  {:>10.6}  {:>7.1}",
        r.length, r.set, r.n, r.exact, r.exact_lo, r.exact_hi, r.exact_eos, r.digit_acc, r.secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn length_pairs_ask_operands_of_the_named_lengths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut cfg = crate::config::long_addition::LengthGenRunConfig::default();
        cfg.lengthgen.model.dim = 16;
        cfg.lengthgen.model.heads = 2;
        cfg.lengthgen.model.ffn = 32;
        let model = cfg.build().unwrap();
        let params = model.init_params(3);
        let mut engine = CoupledAdditionEngine::new(model, 1);
        let grid = length_pairs(
            &mut *transformer_scorer(&mut engine, &params),
            &[1, 3, 7],
            4,
            &mut rng,
        );
        assert_eq!(grid.len(), 3);
        assert!(grid
            .iter()
            .all(|row| row.len() == 3 && row.iter().all(|&(k, n)| n == 4 && k <= 4)));
        // The operands themselves: exactly the named lengths, padded to the longer.
        let a = random_operand(&mut rng, 3, 7);
        assert_eq!(a.len(), 7);
        assert!(a[2] != 0 && a[3..].iter().all(|&d| d == 0));
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(245, 245);
        assert!((lo - 0.9846).abs() < 1e-3 && hi == 1.0, "{lo}");
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
