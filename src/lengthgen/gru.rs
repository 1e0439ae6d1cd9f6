//! The aligned-digit-pairs GRU baseline (issue 8; the PyTorch reference is
//! `shared/anchors/lengthgen/gru.py`).
//!
//! **Format.** Operands are zero-padded to `L = max(len a, len b)` and read least significant
//! digit first. Step `j` of `L + 1` reads the pair `(a_j, b_j)` as one symbol `10 a_j + b_j`
//! (the last step reads `(0, 0)`, for the final carry). The model writes sum digit `s_j` at
//! step `j`. The format hands the model the alignment: it never has to find which digits go
//! together, only to carry.
//!
//! **Model.** Embedding(100, E), then GRU(H) over the pairs, then Dense(H, 10) softmax at
//! every step. Outputs are not fed back, so the argmax at each step *is* the answer, decoded in
//! one pass. The layers are `nn`'s, each with its own gradient check; this module composes them
//! and checks the whole with finite differences.
//!
//! Random test sets flatter this model. A carry must survive in its state across every step of
//! a chain, and chains are short on random operands: the carry-stress sets are what it fails.

use super::engine::{check_all, Answer, Check};
use super::format::Operands;
use crate::nn::dense::Dense;
use crate::nn::embedding::Embedding;
use crate::nn::loss::softmax_xent_forward_backward;
use crate::nn::params::ParamLayout;
use crate::nn::rnn::{CellKind, RnnCache, RnnInput, RnnInputGrad, RnnLayer, RnnPack};
use crate::nn::Real;
use crate::optim::{warmup_cosine, AdamW};
use crate::parallel::{run_on_slices, worker_slices};
use crate::rundir::{self, RunError};
use crate::task::long_addition::sample_bucket;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The experiment that trains and scores this baseline.
pub const EXPERIMENT: &str = "length-generalisation-gru";
/// What it reproduces, for `experiment list`.
pub const DESCRIPTION: &str = "the length-generalisation baseline: a GRU over aligned digit pairs, trained on 1..20 digits, scored to 1000 digits with carry-stress sets";

/// Pair symbols: `10 a + b`.
pub const PAIRS: usize = 100;

/// The baseline's settings (the reference's defaults).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PairGruConfig {
    pub hidden: usize,
    pub embed_dim: usize,
    pub min_digits: usize,
    pub max_digits: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub threads: usize,
    /// Fraction of training questions rewritten as carry-stress questions, half "nines"
    /// (`a + b = 10^L - 1`: every column sums to 9, no carry) and half "ripples"
    /// (`a + b = 10^L`: a carry through every column), the patterns random operands almost never
    /// show. 0: the reference's data.
    pub stress_fraction: f64,
}

impl Default for PairGruConfig {
    fn default() -> Self {
        PairGruConfig {
            hidden: 64,
            embed_dim: 32,
            min_digits: 1,
            max_digits: 20,
            batch_size: 256,
            steps: 10_000,
            lr: 3e-3,
            threads: 0,
            stress_fraction: 0.0,
        }
    }
}

impl PairGruConfig {
    /// Checks every number against its bounds (one line naming the value and the limit).
    pub fn validate(&self) -> Result<(), String> {
        use crate::config::limits::{self, within};
        within("hidden", self.hidden, 1, limits::WIDTH)?;
        within("embed_dim", self.embed_dim, 1, limits::WIDTH)?;
        within("batch_size", self.batch_size, 1, 1 << 16)?;
        within("steps", self.steps, 1, limits::STEPS)?;
        limits::at_most("threads", self.threads, limits::THREADS)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("learning rate {} must be positive", self.lr));
        }
        if !(0.0..=1.0).contains(&self.stress_fraction) {
            return Err(format!(
                "stress_fraction {} must be in [0, 1]",
                self.stress_fraction
            ));
        }
        if self.min_digits == 0 || self.min_digits > self.max_digits || self.max_digits > 1000 {
            return Err(format!(
                "training operand lengths {}..={} must satisfy 1 <= min <= max <= 1000",
                self.min_digits, self.max_digits
            ));
        }
        Ok(())
    }
}

/// Embedding -> GRU -> Dense over aligned digit pairs.
#[derive(Clone, Debug)]
pub struct PairGru {
    pub layout: ParamLayout,
    emb: Embedding,
    gru: RnnLayer,
    out: Dense,
}

/// One worker's buffers (time-major `[T, B, ...]`).
#[derive(Default)]
struct Worker<R> {
    cache: RnnCache<R>,
    pack: RnnPack<R>,
    syms: Vec<u8>,
    targets: Vec<u8>,
    x: Vec<R>,
    logits: Vec<R>,
    argmax: Vec<u8>,
    dh: Vec<R>,
    dx: Vec<R>,
    grad: Vec<R>,
}

/// Symbols and targets of questions sharing one padded length `L`, time-major `[L + 1, B]`.
fn encode(qs: &[Operands], syms: &mut Vec<u8>, targets: &mut Vec<u8>) {
    let l = qs.first().map_or(0, Operands::len);
    let sums: Vec<Vec<u8>> = qs.iter().map(Operands::sum).collect();
    syms.clear();
    targets.clear();
    for j in 0..=l {
        for (q, s) in qs.iter().zip(&sums) {
            assert_eq!(q.len(), l, "a batch shares one padded length");
            let pair = if j < l { 10 * q.a[j] + q.b[j] } else { 0 };
            syms.push(pair);
            targets.push(s[j]);
        }
    }
}

impl PairGru {
    pub fn new(hidden: usize, embed_dim: usize) -> PairGru {
        let mut layout = ParamLayout::default();
        let emb = Embedding::new(&mut layout, "emb", PAIRS, embed_dim);
        let gru = RnnLayer::new(&mut layout, "gru", "_l0", CellKind::Gru, embed_dim, hidden);
        let out = Dense::new(&mut layout, "out", hidden, 10);
        PairGru {
            layout,
            emb,
            gru,
            out,
        }
    }

    pub fn param_count(&self) -> usize {
        self.layout.total
    }

    pub fn init_params<R: Real>(&self, seed: u64) -> Vec<R> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![R::ZERO; self.layout.total];
        self.emb.init(&mut p, &mut rng);
        self.gru.init(&mut p, &mut rng);
        self.out.init(&mut p, &mut rng);
        p
    }

    /// Logits `[T, B, 10]` of the encoded rows in `w` (`T = L + 1`).
    fn forward<R: Real>(&self, p: &[R], w: &mut Worker<R>, b: usize, t: usize) {
        let (e, h) = (self.emb.dim, self.gru.hidden);
        w.x.resize(t * b * e, R::ZERO);
        self.emb.forward(p, &w.syms, &mut w.x);
        self.gru.pack(p, &mut w.pack);
        self.gru
            .forward(p, &w.pack, RnnInput::Seq(&w.x), b, t, &mut w.cache);
        w.logits.resize(t * b * 10, R::ZERO);
        let hs = self.gru.outputs(&w.cache, b, t);
        debug_assert_eq!(hs.len(), t * b * h);
        self.out.forward(p, hs, t * b, &mut w.logits);
    }

    /// Forward, then the gradient of `scale` x the summed cross-entropy added into `w.grad`.
    /// Returns (summed loss, steps right).
    fn loss_backward<R: Real>(
        &self,
        p: &[R],
        w: &mut Worker<R>,
        b: usize,
        t: usize,
        scale: R,
    ) -> (f64, usize) {
        self.forward(p, w, b, t);
        w.argmax.resize(t * b, 0);
        let sums = softmax_xent_forward_backward(
            &mut w.logits,
            &w.targets,
            None,
            10,
            scale,
            &mut w.argmax,
        );
        w.dh.resize(t * b * self.gru.hidden, R::ZERO);
        let hs = self.gru.outputs(&w.cache, b, t);
        self.out
            .backward(p, hs, &w.logits, t * b, &mut w.grad, Some(&mut w.dh));
        w.dx.resize(w.x.len(), R::ZERO);
        self.gru.backward(
            p,
            &w.pack,
            RnnInput::Seq(&w.x),
            b,
            t,
            &mut w.cache,
            Some(&w.dh),
            None,
            &mut w.grad,
            RnnInputGrad::Dense(&mut w.dx),
        );
        self.emb.backward(&w.syms, &w.dx, &mut w.grad);
        (sums.loss, sums.correct)
    }
}

/// Rewrites `b` so that `a + b = 10^L - 1`: every column sums to 9 and no carry arises.
fn make_nines(q: &mut Operands) {
    q.b = q.a.iter().map(|d| 9 - d).collect();
}

/// `digits += 1` (least significant first; `a + b = 10^L - 1` becomes `a + b = 10^L`, which
/// fits: `a >= 1`, so `b <= 10^L - 1`).
fn add_one(digits: &mut [u8]) {
    for d in digits {
        if *d < 9 {
            *d += 1;
            return;
        }
        *d = 0;
    }
}

/// What training did.
#[derive(Clone, Debug, Serialize)]
pub struct GruOutcome {
    pub params: usize,
    pub steps: usize,
    pub train_secs: f64,
    pub tokens: u64,
    pub final_loss: f64,
}

/// The baseline, trained, with its worker threads.
pub struct PairGruEngine {
    pub model: PairGru,
    pub params: Vec<f32>,
    pool: rayon::ThreadPool,
    workers: Vec<Worker<f32>>,
}

impl PairGruEngine {
    pub fn new(model: PairGru, params: Vec<f32>, threads: usize) -> PairGruEngine {
        let threads = threads.max(1);
        let pool = crate::parallel::math_pool(threads);
        let n = model.param_count();
        let workers = (0..threads)
            .map(|_| Worker {
                grad: vec![0.0; n],
                ..Worker::default()
            })
            .collect();
        PairGruEngine {
            model,
            params,
            pool,
            workers,
        }
    }

    /// One step's mean-loss gradient over `qs` (sharing one padded length) into `grad`;
    /// returns the mean loss per answer digit.
    fn gradient(&mut self, qs: &[Operands], grad: &mut [f32]) -> f64 {
        let l = qs[0].len();
        let t = l + 1;
        let scale = 1.0 / (qs.len() * t) as f32;
        let slices = worker_slices(qs.len(), self.workers.len());
        let (model, p) = (&self.model, &self.params);
        let losses = run_on_slices(
            &self.pool,
            &mut self.workers,
            &slices,
            |w, a, b| {
                encode(&qs[a..b], &mut w.syms, &mut w.targets);
                w.grad.fill(0.0);
                model.loss_backward(p, w, b - a, t, scale).0
            },
            Some((grad, |w: &Worker<f32>| &w.grad[..])),
        );
        losses.iter().sum::<f64>() / (qs.len() * t) as f64
    }

    /// The answer the model writes for each question: `L + 1` digits, least significant first,
    /// and no end symbol (`ends` is always true).
    pub fn answer(&mut self, qs: &[Operands]) -> Vec<Answer> {
        let mut out = Vec::with_capacity(qs.len());
        // Batches of one padded length, at most about a million steps of rows at once.
        let mut i = 0;
        while i < qs.len() {
            let l = qs[i].len();
            let rows = (1 << 20) / (l + 1);
            let mut j = i;
            while j < qs.len() && qs[j].len() == l && j - i < rows.max(1) {
                j += 1;
            }
            let batch = &qs[i..j];
            let slices = worker_slices(batch.len(), self.workers.len());
            let (model, p) = (&self.model, &self.params);
            let parts: Vec<Vec<Answer>> = run_on_slices::<_, f32, _>(
                &self.pool,
                &mut self.workers,
                &slices,
                |w, a, b| {
                    let n = b - a;
                    encode(&batch[a..b], &mut w.syms, &mut w.targets);
                    model.forward(p, w, n, l + 1);
                    (0..n)
                        .map(|r| Answer {
                            digits: (0..=l)
                                .map(|s| {
                                    let row = &w.logits[(s * n + r) * 10..(s * n + r + 1) * 10];
                                    crate::nn::loss::argmax(row) as u8
                                })
                                .collect(),
                            ends: true,
                        })
                        .collect()
                },
                None,
            );
            out.extend(parts.into_iter().flatten());
            i = j;
        }
        out
    }

    /// Each answer scored against the exact sum. The GRU writes exactly `L + 1` digits and no
    /// end symbol, so `exact_eos` is `exact`.
    pub fn score(&mut self, qs: &[Operands]) -> Vec<Check> {
        check_all(qs, &self.answer(qs))
    }
}

/// The file a baseline experiment writes its settings, training record and scores by length to.
pub const RESULTS: &str = "results.json";
/// The `model` field of [`RESULTS`].
pub const MODEL_NAME: &str = "aligned-pairs GRU";

/// The trained model of a run with these settings, from `dir/weights.safetensors`.
pub fn load_weights(
    dir: &Path,
    cfg: &PairGruConfig,
    threads: usize,
) -> Result<PairGruEngine, RunError> {
    let model = PairGru::new(cfg.hidden, cfg.embed_dim);
    let params = rundir::load_flat(dir, &model.layout)?;
    Ok(PairGruEngine::new(model, params, threads))
}

/// Trains the baseline: operand lengths uniform in `min..=max` digits, length-bucketed batches,
/// AdamW (0.9, 0.95), warm-up and cosine decay to a tenth, gradient clipping at 1, as the
/// reference. Same seed and thread count: same bits.
pub fn train(
    cfg: &PairGruConfig,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<(PairGruEngine, GruOutcome), String> {
    cfg.validate()?;
    let model = PairGru::new(cfg.hidden, cfg.embed_dim);
    let params = model.init_params(seed);
    let n = params.len();
    let threads = crate::parallel::threads_or_cores(cfg.threads);
    log(&format!(
        "aligned-pairs GRU: embedding {}, GRU {}, {} parameters; {} thread(s)",
        cfg.embed_dim, cfg.hidden, n, threads
    ));
    let mut engine = PairGruEngine::new(model, params, threads);
    let mut opt = AdamW::new(n, 0.9, 0.95, 0.0, Some(1.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6a7e_0001);
    let mut grad = vec![0.0f32; n];
    let mut out = GruOutcome {
        params: n,
        steps: 0,
        train_secs: 0.0,
        tokens: 0,
        final_loss: f64::NAN,
    };
    let mut ema: Option<f64> = None;
    for step in 0..cfg.steps {
        let t0 = Instant::now();
        let lr = warmup_cosine(step as f64 / cfg.steps as f64, cfg.lr, 0.02, 0.1);
        let (l, mut qs) = sample_bucket(&mut rng, cfg.min_digits, cfg.max_digits, cfg.batch_size);
        if cfg.stress_fraction > 0.0 {
            for q in &mut qs {
                if rng.random_bool(cfg.stress_fraction) {
                    let ripple = rng.random_bool(0.5);
                    make_nines(q);
                    if ripple {
                        add_one(&mut q.b);
                    }
                }
            }
        }
        let loss = engine.gradient(&qs, &mut grad);
        // A non-finite gradient skips the update (as the transformer's loop does).
        let _ = opt.step(&mut engine.params, &grad, lr, &[]);
        ema = Some(ema.map_or(loss, |e| 0.98 * e + 0.02 * loss));
        out.steps += 1;
        out.tokens += (qs.len() * (l + 1)) as u64;
        out.train_secs += t0.elapsed().as_secs_f64();
        if (step + 1) % 500 == 0 || step + 1 == cfg.steps {
            log(&format!(
                "step {:>6}  {:>7.1}s  lr {lr:.2e}  loss {:.5}",
                step + 1,
                out.train_secs,
                ema.unwrap_or(f64::NAN)
            ));
        }
    }
    out.final_loss = ema.unwrap_or(f64::NAN);
    Ok((engine, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;

    #[test]
    fn pairs_are_aligned_least_significant_first_with_a_last_carry_step() {
        let qs = [
            Operands::from_decimal("95", "7"),
            Operands::from_decimal("10", "99"),
        ];
        let (mut syms, mut targets) = (Vec::new(), Vec::new());
        encode(&qs, &mut syms, &mut targets);
        // Time-major: step 0 holds both questions' units.
        assert_eq!(syms, [57, 9, 90, 19, 0, 0]);
        // 95 + 7 = 102 and 10 + 99 = 109, least significant digit first.
        assert_eq!(targets, [2, 9, 0, 0, 1, 1]);
    }

    #[test]
    fn stress_rewrites_give_nines_and_ripples() {
        let mut q = Operands::from_decimal("4071", "12");
        make_nines(&mut q);
        assert_eq!(q.question(), "4071+5928");
        assert_eq!(q.sum(), [9, 9, 9, 9, 0]);
        add_one(&mut q.b);
        assert_eq!(q.question(), "4071+5929");
        assert_eq!(q.sum(), [0, 0, 0, 0, 1]);
        let mut q = Operands::from_decimal("100", "0");
        make_nines(&mut q);
        add_one(&mut q.b);
        assert_eq!(q.question(), "100+900");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let model = PairGru::new(5, 4);
        let p: Vec<f64> = model.init_params(2);
        let qs = [
            Operands::from_decimal("907", "85"),
            Operands::from_decimal("19", "991"),
            Operands::from_decimal("5", "5"),
        ];
        let qs: Vec<Operands> = qs
            .iter()
            .map(|q| Operands {
                a: [q.a.clone(), vec![0; 3 - q.a.len()]].concat(),
                b: [q.b.clone(), vec![0; 3 - q.b.len()]].concat(),
            })
            .collect();
        let (b, t) = (qs.len(), 4);
        let mut w = Worker::<f64> {
            grad: vec![0.0; p.len()],
            ..Worker::default()
        };
        encode(&qs, &mut w.syms, &mut w.targets);
        model.loss_backward(&p, &mut w, b, t, 1.0);
        let analytic = w.grad.clone();
        let mut probe = Worker::<f64>::default();
        encode(&qs, &mut probe.syms, &mut probe.targets);
        let loss = |pp: &[f64]| {
            probe.grad = vec![0.0; pp.len()];
            model.loss_backward(pp, &mut probe, b, t, 1.0).0
        };
        // Most embedding rows belong to digit pairs these questions never hold, and their
        // gradient is zero: a stride alone would compare mostly zeros with zeros there. So
        // every coordinate of each pair the questions do hold is checked (and must have a
        // gradient), besides a stride over everything and several coordinates of each tensor.
        let emb = model.emb.weight;
        let d = model.emb.dim;
        let mut pairs = w.syms.clone();
        pairs.sort_unstable();
        pairs.dedup();
        let used: Vec<usize> = pairs
            .iter()
            .flat_map(|&s| (0..d).map(move |j| emb.offset + s as usize * d + j))
            .collect();
        assert!(pairs.len() >= 8, "{pairs:?}");
        for &i in &used {
            assert!(
                analytic[i] != 0.0,
                "embedding coordinate {i} has no gradient"
            );
        }
        let mut indices = gradcheck::sample_indices(p.len(), 7);
        indices.extend(&used);
        indices.extend(gradcheck::sample_per_tensor(&model.layout, &analytic, 4));
        indices.sort_unstable();
        indices.dedup();
        gradcheck::check(
            &p,
            &analytic,
            &indices,
            // The summed loss is about 28, so central differences carry about 1e-10 of
            // rounding; the smallest gradients checked are about 1e-6.
            1e-4,
            loss,
            "aligned-pairs GRU",
        );
    }

    #[test]
    fn a_small_baseline_learns_to_add_and_answers_longer_operands() {
        let cfg = PairGruConfig {
            hidden: 32,
            embed_dim: 16,
            max_digits: 6,
            batch_size: 64,
            steps: 400,
            lr: 1e-2,
            threads: 2,
            ..PairGruConfig::default()
        };
        let (mut engine, out) = train(&cfg, 5, &mut |_| {}).unwrap();
        assert_eq!(out.steps, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for len in [4, 12] {
            let qs = crate::task::long_addition::random_questions(&mut rng, len, 100);
            let rate = super::super::engine::exact_rate(&engine.score(&qs));
            assert!(rate >= 0.9, "{len} digits: {rate}");
        }
        // Same seed and threads: same bits.
        let (again, _) = train(&cfg, 5, &mut |_| {}).unwrap();
        assert_eq!(again.params, engine.params);
    }
}
