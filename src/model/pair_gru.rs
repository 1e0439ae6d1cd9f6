//! The aligned-digit-pairs GRU baseline for long additions, and its engine.
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

use super::coupled::Answer;
use crate::codec::coupled::Operands;
use crate::config::long_addition::PairGruConfig;
use crate::eval::lengths::{check_all, Check};
use crate::nn::dense::Dense;
use crate::nn::embedding::Embedding;
use crate::nn::loss::softmax_xent_forward_backward;
use crate::nn::params::ParamLayout;
use crate::nn::rnn::{CellKind, RnnCache, RnnInput, RnnInputGrad, RnnLayer, RnnPack};
use crate::nn::Real;
use crate::parallel::{run_on_slices, worker_slices};
use crate::rundir::{self, RunError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Pair symbols: `10 a + b`.
pub const PAIRS: usize = 100;

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

/// The baseline with its worker threads.
pub struct PairGruEngine {
    pub model: PairGru,
    pool: rayon::ThreadPool,
    workers: Vec<Worker<f32>>,
    /// The summed gradient of the last [`PairGruEngine::gradient`].
    pub grad: Vec<f32>,
}

impl PairGruEngine {
    pub fn new(model: PairGru, threads: usize) -> PairGruEngine {
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
            pool,
            workers,
            grad: vec![0.0; n],
        }
    }

    /// One step's mean-loss gradient over `qs` (sharing one padded length) into `self.grad`;
    /// returns the mean loss per answer digit.
    pub fn gradient(&mut self, p: &[f32], qs: &[Operands]) -> f64 {
        let l = qs[0].len();
        let t = l + 1;
        let scale = 1.0 / (qs.len() * t) as f32;
        let slices = worker_slices(qs.len(), self.workers.len());
        let model = &self.model;
        let losses = run_on_slices(
            &self.pool,
            &mut self.workers,
            &slices,
            |w, a, b| {
                encode(&qs[a..b], &mut w.syms, &mut w.targets);
                w.grad.fill(0.0);
                model.loss_backward(p, w, b - a, t, scale).0
            },
            Some((&mut self.grad[..], |w: &Worker<f32>| &w.grad[..])),
        );
        losses.iter().sum::<f64>() / (qs.len() * t) as f64
    }

    /// The answer the model writes for each question: `L + 1` digits, least significant first,
    /// and no end symbol (`ends` is always true).
    pub fn answer(&mut self, p: &[f32], qs: &[Operands]) -> Vec<Answer> {
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
            let model = &self.model;
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
    pub fn score(&mut self, p: &[f32], qs: &[Operands]) -> Vec<Check> {
        check_all(qs, &self.answer(p, qs))
    }
}

/// The file a baseline experiment writes its settings, training record and scores by length to.
pub const RESULTS: &str = "results.json";
/// The `model` field of [`RESULTS`].
pub const MODEL_NAME: &str = "aligned-pairs GRU";

/// The trained model of a run with these settings, from `dir/weights.safetensors`, and its
/// weights.
pub fn load_weights(
    dir: &Path,
    cfg: &PairGruConfig,
    threads: usize,
) -> Result<(PairGruEngine, Vec<f32>), RunError> {
    let model = PairGru::new(cfg.hidden, cfg.embed_dim);
    let params = rundir::load_flat(dir, &model.layout)?;
    Ok((PairGruEngine::new(model, threads), params))
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
}
