//! [`Seq2SeqEngine`] runs a [`Seq2Seq`] on the math threads: a training batch is split into
//! one contiguous slice per worker, every worker runs forward and backward on its slice with
//! its own buffers and gradient, and the gradients are added in worker order, so a given thread
//! count always gives the same bits. A forward without backward (evaluation, prediction) runs
//! its rows in chunks on whichever thread is free, each chunk writing its own rows: the same
//! bits on any thread.

use super::prefix::Prefixes;
use super::recurrent::Workspace;
use super::transformer_arch::TransformerWorker;
use super::{Network, Seq2Seq, SliceStats};
use crate::nn::loss::argmax;
use crate::nn::rnn::{PackJob, RnnPack};
use crate::nn::Real;
use crate::optim::Adam;
use crate::parallel::{math_pool, run_on_slices, worker_slices};

/// A chunk of rows of a forward without backward: its slice, its rows of the batch, its rows
/// of the outputs, and its sums.
struct Chunk<'o, R> {
    slice: usize,
    rows: std::ops::Range<usize>,
    probs: &'o mut [R],
    att: &'o mut [R],
    stats: SliceStats,
}

/// Runs a model over batches on `threads` workers (deterministic for a given thread count).
pub struct Seq2SeqEngine<R> {
    pub model: Seq2Seq,
    /// (Shared, so that a call can run on it while it borrows the engine.)
    pub(super) pool: std::sync::Arc<rayon::ThreadPool>,
    pub(super) workers: Vec<Workspace<R>>,
    /// Recurrent kernels packed for the current parameters: encoder, then decoders.
    pub(super) packs: Vec<RnnPack<R>>,
    /// The summed gradient of the last `train_step` (`train_step_adam` leaves a recurrent
    /// model's unwritten).
    pub grad: Vec<R>,
    /// Per-worker buffers of a transformer model.
    pub(super) transformer_workers: Vec<TransformerWorker<R>>,
    /// Rows per chunk of a forward without backward (default: [`Seq2Seq::forward_chunk_rows`];
    /// 0 counts as 1).
    pub forward_chunk: Option<usize>,
    /// Whether a forward without backward shares the encoder's first steps among questions
    /// that start alike (the `prefix` module; default on, the same bits either way).
    pub share_prefixes: bool,
    /// The question prefixes of each worker's slice in a forward without backward.
    pub(super) prefixes: Vec<Prefixes<R>>,
    /// A forward without targets: probabilities `[n, T_out, V]` and (when recording) attention
    /// weights `[n, T_out, T_in]`, row-major, each chunk writing its rows.
    pub(super) out_probs: Vec<R>,
    pub(super) out_attention: Vec<R>,
}

impl<R: Real> Seq2SeqEngine<R> {
    pub fn new(model: Seq2Seq, threads: usize) -> Seq2SeqEngine<R> {
        let threads = threads.max(1);
        let pool = std::sync::Arc::new(math_pool(threads));
        let workers = (0..threads).map(|_| Workspace::default()).collect();
        let grad = vec![R::ZERO; model.param_count()];
        let layers = match &model.net {
            Network::Recurrent(rnn) => 1 + rnn.decoders.len(),
            Network::Transformer(_) => 1,
        };
        let packs = (0..layers).map(|_| RnnPack::default()).collect();
        Seq2SeqEngine {
            model,
            pool,
            workers,
            packs,
            grad,
            transformer_workers: Vec::new(),
            forward_chunk: None,
            share_prefixes: true,
            prefixes: Vec::new(),
            out_probs: Vec::new(),
            out_attention: Vec::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Contiguous row ranges, one per worker (empty ones dropped).
    pub(super) fn slices(&self, n: usize) -> Vec<(usize, usize)> {
        worker_slices(n, self.workers.len())
    }

    /// Forward (and with `backward`, backward) over `n` rows; with `sum`, the workers'
    /// gradients are summed into `self.grad` (a transformer's always are).
    fn run(
        &mut self,
        p: &[R],
        inputs: &[u8],
        targets: Option<&[u8]>,
        n: usize,
        backward: bool,
        sum: bool,
    ) -> SliceStats {
        // On the pool as a whole: the calling thread hands over once, not once per phase
        // (packing, prefixes, the workers or chunks, the gradient sum); 0.5-1.5% of a training
        // step. (The phases' own `install`s and scopes then run in place.)
        let pool = self.pool.clone();
        pool.install(|| self.run_on_pool(p, inputs, targets, n, backward, sum))
    }

    /// [`Seq2SeqEngine::run`]'s body, on the pool.
    fn run_on_pool(
        &mut self,
        p: &[R],
        inputs: &[u8],
        targets: Option<&[u8]>,
        n: usize,
        backward: bool,
        sum: bool,
    ) -> SliceStats {
        let rnn = match &self.model.net {
            Network::Transformer(_) => {
                return self.run_transformer(p, inputs, targets, n, backward)
            }
            Network::Recurrent(rnn) => rnn,
        };
        let (t_in, t_out) = (self.model.t_in, self.model.t_out);
        // The mean over scored positions of the whole batch, whichever worker holds them.
        let positions = match targets {
            Some(t) if self.model.cfg.mask => t
                .chunks_exact(t_out)
                .take(n)
                .map(|row| self.model.scored_len(row))
                .sum(),
            _ => n * t_out,
        };
        let scale = R::from_f64(1.0 / positions.max(1) as f64);
        let slices = self.slices(n);
        let model = &self.model;
        // Pack every layer's kernels once for this call, each packing its own pool task (one
        // task per layer left the thread with the decoder's two large input kernels last).
        let mut jobs: Vec<PackJob<R>> = std::iter::once(&rnn.encoder)
            .chain(&rnn.decoders)
            .zip(self.packs.iter_mut())
            // (Without a backward, only the forward kernels: the first two jobs.)
            .flat_map(|(l, pk)| {
                l.pack_jobs(p, pk)
                    .into_iter()
                    .take(if backward { 4 } else { 2 })
            })
            .collect();
        self.pool.install(|| {
            use rayon::prelude::*;
            jobs.par_drain(..).with_max_len(1).for_each(PackJob::run);
        });
        let packs = &self.packs;
        if backward {
            // A backward runs a worker's rows in one pass: its gradient sums over all of them.
            let stats = run_on_slices(
                &self.pool,
                &mut self.workers,
                &slices,
                |ws, a, b| {
                    ws.backward = true;
                    ws.ensure(model, b - a);
                    ws.grad[..model.param_count()].fill(R::ZERO);
                    let x = &inputs[a * t_in..b * t_in];
                    let y = targets.map(|t| &t[a * t_out..b * t_out]);
                    model.run_slice(p, packs, ws, x, y, b - a, scale, None)
                },
                sum.then_some((&mut self.grad[..], |ws: &Workspace<R>| &ws.grad[..])),
            );
            return SliceStats::total(&stats);
        }
        // Without a backward every row is independent. Each slice's question prefixes are
        // shared first (one slice per worker); then the rows run a chunk at a time, so that one
        // step's gates and states stay in the core's cache, on whichever thread is free: a
        // thread slowed down by the machine takes fewer chunks. Each chunk writes its own rows
        // of the outputs and its own sums, which add up per slice in chunk order, then over the
        // slices: the same numbers whichever thread ran a chunk.
        let share = self.share_prefixes && model.shares_prefixes();
        if self.prefixes.len() < slices.len() {
            self.prefixes.resize_with(slices.len(), Prefixes::default);
        }
        if share {
            run_on_slices::<_, R, ()>(
                &self.pool,
                &mut self.prefixes,
                &slices,
                |pf, a, b| model.share_prefixes(p, packs, pf, &inputs[a * t_in..b * t_in], b - a),
                None,
            );
        }
        let chunk = self
            .forward_chunk
            .unwrap_or_else(|| model.forward_chunk_rows())
            .max(1);
        let (v, want) = (model.vocab, targets.is_none());
        let recording = want && self.workers.iter().any(|w| w.record_attention);
        self.out_probs
            .resize(if want { n * t_out * v } else { 0 }, R::ZERO);
        let att_w = t_out * t_in;
        self.out_attention
            .resize(if recording { n * att_w } else { 0 }, R::ZERO);
        // The next `len` values of an output buffer.
        fn front<'o, R>(left: &mut &'o mut [R], len: usize) -> &'o mut [R] {
            let (head, rest) = std::mem::take(left).split_at_mut(len);
            *left = rest;
            head
        }
        let (mut probs_left, mut att_left) = (&mut self.out_probs[..], &mut self.out_attention[..]);
        let mut chunks = Vec::new();
        for (w, &(a, b)) in slices.iter().enumerate() {
            for c0 in (a..b).step_by(chunk) {
                let c1 = c0 + chunk.min(b - c0);
                chunks.push(Chunk {
                    slice: w,
                    rows: c0..c1,
                    probs: front(&mut probs_left, usize::from(want) * (c1 - c0) * t_out * v),
                    att: front(&mut att_left, usize::from(recording) * (c1 - c0) * att_w),
                    stats: SliceStats::default(),
                });
            }
        }
        let workers: Vec<std::sync::Mutex<&mut Workspace<R>>> =
            self.workers.iter_mut().map(std::sync::Mutex::new).collect();
        let prefixes = &self.prefixes;
        self.pool.install(|| {
            use rayon::prelude::*;
            chunks.par_iter_mut().with_max_len(1).for_each(|c| {
                // One workspace per pool thread: the lock is never contended, as long as nothing
                // under run_slice hands work to the pool (a thread could then take another
                // chunk while holding its workspace).
                let i = rayon::current_thread_index().unwrap_or(0) % workers.len();
                let mut ws = workers[i]
                    .try_lock()
                    .expect("one workspace per pool thread, not re-entered");
                ws.backward = false;
                let (c0, c1) = (c.rows.start, c.rows.end);
                let x = &inputs[c0 * t_in..c1 * t_in];
                let y = targets.map(|t| &t[c0 * t_out..c1 * t_out]);
                let prefix = share.then(|| (&prefixes[c.slice], c0 - slices[c.slice].0));
                c.stats = model.run_slice(p, packs, &mut ws, x, y, c1 - c0, scale, prefix);
                if want {
                    ws.write_outputs(model, c1 - c0, c.probs, c.att);
                }
            });
        });
        let per_slice: Vec<SliceStats> = (0..slices.len())
            .map(|w| {
                let mut st = SliceStats::default();
                for c in chunks.iter().filter(|c| c.slice == w) {
                    st.add(&c.stats);
                }
                st
            })
            .collect();
        SliceStats::total(&per_slice)
    }

    /// Forward and backward on a batch of `n` rows (`inputs` `[n, T_in]`, `targets`
    /// `[n, T_out]`); the mean-loss gradient is left in `self.grad`.
    pub fn train_step(&mut self, p: &[R], inputs: &[u8], targets: &[u8], n: usize) -> SliceStats {
        self.run(p, inputs, Some(targets), n, true, true)
    }

    /// Loss and accuracy sums on a batch, no gradient.
    pub fn evaluate(&mut self, p: &[R], inputs: &[u8], targets: &[u8], n: usize) -> SliceStats {
        self.run(p, inputs, Some(targets), n, false, false)
    }

    /// Softmax probabilities for `n` questions: `probs` receives `[n, T_out, V]`.
    pub fn predict(&mut self, p: &[R], inputs: &[u8], n: usize, probs: &mut Vec<R>) {
        if let Network::Transformer(_) = self.model.net {
            return self.predict_transformer(p, inputs, n, probs);
        }
        self.run(p, inputs, None, n, false, false);
        // (The caller's buffer becomes the next call's output: no copy, and no allocation or
        // zeroing when the caller passes the same buffer each time.)
        std::mem::swap(probs, &mut self.out_probs);
    }

    /// Attention weights of the answers to `n` questions, `[n, T_out, T_in]` row-major: for each
    /// output step, how much it drew on each input position (greedy decoding for a
    /// teacher-forced decoder; a transformer's last block, heads averaged). `None` when the
    /// model has no attention.
    pub fn attention_weights(&mut self, p: &[R], inputs: &[u8], n: usize) -> Option<Vec<R>> {
        match &self.model.net {
            Network::Recurrent(rnn) => rnn.attention.as_ref()?,
            Network::Transformer(_) => return Some(self.transformer_attention(p, inputs, n)),
        };
        for ws in &mut self.workers {
            ws.record_attention = true;
        }
        self.run(p, inputs, None, n, false, false);
        let out = std::mem::take(&mut self.out_attention);
        for ws in &mut self.workers {
            ws.record_attention = false;
        }
        Some(out)
    }

    /// Argmax symbol indices `[n, T_out]` for `n` questions.
    pub fn predict_indices(&mut self, p: &[R], inputs: &[u8], n: usize) -> Vec<u8> {
        let v = self.model.vocab;
        let mut probs = Vec::new();
        self.predict(p, inputs, n, &mut probs);
        probs.chunks_exact(v).map(|row| argmax(row) as u8).collect()
    }
}

impl Seq2SeqEngine<f32> {
    /// [`Seq2SeqEngine::train_step`], then `adam`'s update of `p` on the engine's threads, with the
    /// workers' gradients summed inside the update pass: the bits of `train_step` followed by
    /// `adam.step(p, &engine.grad)` on a thread that flushes subnormals as the engine's do (the
    /// CLI's threads all do), one pass over the gradient fewer, the whole step in one pool
    /// hand-over. For a recurrent model `self.grad` is not written (a transformer's is). `Err`
    /// (with the step's statistics) when the gradient held NaN or infinity; the update is then
    /// meaningless.
    pub fn train_step_adam(
        &mut self,
        p: &mut [f32],
        inputs: &[u8],
        targets: &[u8],
        n: usize,
        adam: &mut Adam,
    ) -> Result<SliceStats, SliceStats> {
        assert!(n > 0, "a training step needs at least one row");
        // The update too, in the forward and backward's hand-over to the pool (see `run`).
        let pool = self.pool.clone();
        pool.install(|| self.train_step_adam_on_pool(p, inputs, targets, n, adam))
    }

    /// [`Seq2SeqEngine::train_step_adam`]'s body, on the pool.
    fn train_step_adam_on_pool(
        &mut self,
        p: &mut [f32],
        inputs: &[u8],
        targets: &[u8],
        n: usize,
        adam: &mut Adam,
    ) -> Result<SliceStats, SliceStats> {
        let st = self.run(p, inputs, Some(targets), n, true, false);
        let k = self.model.param_count();
        // (A transformer's run sums into `self.grad` itself.)
        let parts: Vec<&[f32]> = match self.model.net {
            Network::Transformer(_) => vec![&self.grad[..]],
            Network::Recurrent(_) => {
                let used = self.slices(n).len();
                self.workers[..used].iter().map(|w| &w.grad[..k]).collect()
            }
        };
        match self.pool.install(|| adam.step_parts(p, &parts)) {
            Ok(()) => Ok(st),
            Err(()) => Err(st),
        }
    }
}
