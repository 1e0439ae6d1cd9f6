//! `kind = transformer`: the same questions and answers as the RNN models, read by a
//! decoder-only transformer (`nn::transformer`) as one sequence of `T = T_in + T_out` tokens:
//!
//! ```text
//! tokens   q_0 .. q_{Tin-1}  START  a_0 .. a_{Tout-2}      (START = index V)
//! targets                    a_0    a_1 .. a_{Tout-1}      (the rows from T_in on are scored)
//! segment  0 1 .. T-1        (the segment table is a learned absolute position embedding)
//! position 0 1 .. T-1        (the attention's relative bias buckets)
//! ```
//!
//! Training is teacher-forced (one forward and backward over all `T` rows); answering is greedy,
//! one token per step against key/value caches. As for the RNN teacher-forced decoder, the
//! validation loss is the teacher-forced one and the accuracies come from greedy answers.

use super::{ModelConfig, ModelError, Network, Seq2Seq, Seq2SeqEngine, SliceStats};
use crate::nn::loss::{argmax, softmax_rows, softmax_xent_forward_backward, LossSums};
use crate::nn::transformer::{Transformer, TransformerConfig, Workspace as TransformerWorkspace};
use crate::nn::Real;
use crate::parallel::run_on_slices;

/// One worker's transformer buffers; sized on first use, reused after.
#[derive(Debug, Default)]
pub struct TransformerWorker<R> {
    ws: TransformerWorkspace<R>,
    grad: Vec<R>,
    tokens: Vec<u8>,
    segs: Vec<u8>,
    pos: Vec<u32>,
    targets: Vec<u8>,
    /// Greedy answers `[b, T_out]` and, when asked for, their probabilities `[b, T_out, V]`.
    answers: Vec<u8>,
    probs: Vec<R>,
}

impl Seq2Seq {
    pub(super) fn new_transformer(
        cfg: &ModelConfig,
        vocab: usize,
        t_in: usize,
        t_out: usize,
    ) -> Result<Seq2Seq, ModelError> {
        let bad = |m: String| Err(ModelError::Invalid(m));
        if cfg.mask {
            return bad("masking is not implemented for the transformer (model.mask)".into());
        }
        if cfg.attention {
            return bad(
                "the transformer is all attention already; drop model.attention (--attention)"
                    .into(),
            );
        }
        if vocab + 1 > 256 {
            return bad(format!(
                "the transformer needs one more symbol (its start symbol) than the {vocab} of the vocabulary; at most 255"
            ));
        }
        let t = t_in + t_out;
        if t > 256 {
            return bad(format!(
                "question and answer together are {t} symbols; the transformer's position table holds 256"
            ));
        }
        let tcfg = TransformerConfig {
            dim: cfg.hidden,
            heads: cfg.heads,
            ffn: cfg.ffn.unwrap_or(4 * cfg.hidden),
            layers: cfg.layers,
            local_window: 0,
        };
        let transformer = Transformer::new(&tcfg, vocab + 1, t).map_err(ModelError::Invalid)?;
        Ok(Seq2Seq {
            cfg: cfg.clone(),
            vocab,
            t_in,
            t_out,
            layout: transformer.layout.clone(),
            eos: None,
            pad: 0,
            net: Network::Transformer(transformer),
        })
    }

    /// The transformer network; only called on the transformer's paths, which `Network`
    /// dispatch alone reaches.
    fn transformer_net(&self) -> &Transformer {
        match &self.net {
            Network::Transformer(tr) => tr,
            Network::Recurrent(_) => unreachable!("a transformer path run on a recurrent model"),
        }
    }

    /// Activation floats per row of a forward and backward pass (for memory estimates).
    pub(super) fn transformer_floats_per_row(&self, tr: &Transformer) -> usize {
        let (d, f, h) = (tr.cfg.dim, tr.cfg.ffn, tr.cfg.heads);
        let t = self.t_in + self.t_out;
        tr.cfg.layers * t * (12 * d + 3 * f + 2 * h * t) + self.t_out * tr.vocab + 4 * t * d
    }

    /// Fills the worker's token, segment, position and target rows for `b` questions.
    fn transformer_rows(
        &self,
        w: &mut TransformerWorker<impl Real>,
        inputs: &[u8],
        targets: &[u8],
        b: usize,
    ) {
        let (t_in, t_out) = (self.t_in, self.t_out);
        let t = t_in + t_out;
        w.tokens.clear();
        w.segs.clear();
        w.pos.clear();
        w.targets.clear();
        for r in 0..b {
            let y = &targets[r * t_out..(r + 1) * t_out];
            w.tokens
                .extend_from_slice(&inputs[r * t_in..(r + 1) * t_in]);
            w.tokens.push(self.vocab as u8);
            w.tokens.extend_from_slice(&y[..t_out - 1]);
            w.segs.extend((0..t).map(|i| i as u8));
            w.pos.extend((0..t).map(|i| i as u32));
            w.targets.extend_from_slice(y);
        }
    }

    /// Greedy answers for `b` questions into `w.answers` (and their probabilities over the `V`
    /// answer symbols into `w.probs` when `probs` is set).
    fn transformer_greedy<R: Real>(
        &self,
        p: &[R],
        w: &mut TransformerWorker<R>,
        inputs: &[u8],
        b: usize,
        probs: bool,
    ) {
        let tr = self.transformer_net();
        let (t_in, t_out, v) = (self.t_in, self.t_out, self.vocab);
        let vt = tr.vocab;
        let mut st = tr.decode_start::<R>(b, t_in + t_out);
        let mut logits = vec![R::ZERO; b * vt];
        let mut tok = vec![0u8; b];
        let mut seg = vec![0u8; b];
        let mut pos = vec![0u32; b];
        w.answers.clear();
        w.answers.resize(b * t_out, 0);
        if probs {
            w.probs.clear();
            w.probs.resize(b * t_out * v, R::ZERO);
        }
        for i in 0..t_in + t_out {
            for r in 0..b {
                tok[r] = match i.cmp(&t_in) {
                    std::cmp::Ordering::Less => inputs[r * t_in + i],
                    std::cmp::Ordering::Equal => v as u8,
                    std::cmp::Ordering::Greater => w.answers[r * t_out + i - t_in - 1],
                };
            }
            seg.fill(i as u8);
            pos.fill(i as u32);
            tr.decode_step(p, &mut st, &tok, &seg, &pos, &mut logits);
            if i < t_in {
                continue;
            }
            let s = i - t_in;
            for r in 0..b {
                // The start symbol is never an answer: choose among the V answer symbols.
                let row = &mut logits[r * vt..r * vt + v];
                w.answers[r * t_out + s] = argmax(row) as u8;
                if probs {
                    softmax_rows(row, v);
                    w.probs[(r * t_out + s) * v..(r * t_out + s + 1) * v].copy_from_slice(row);
                }
            }
        }
    }

    /// Forward (and with `backward`, loss gradient scaled by `scale` into `w.grad`) for one
    /// slice of `b` rows with targets; greedy answers for the accuracies when not training.
    #[allow(clippy::too_many_arguments)]
    fn transformer_slice<R: Real>(
        &self,
        p: &[R],
        w: &mut TransformerWorker<R>,
        inputs: &[u8],
        targets: &[u8],
        b: usize,
        scale: R,
        backward: bool,
    ) -> SliceStats {
        let tr = self.transformer_net();
        let (t_in, t_out) = (self.t_in, self.t_out);
        let t = t_in + t_out;
        self.transformer_rows(w, inputs, targets, b);
        tr.forward(p, &mut w.ws, &w.tokens, &w.segs, &w.pos, b, t, t_in);
        let positions = b * t_out;
        if backward {
            if w.grad.len() != self.param_count() {
                w.grad = vec![R::ZERO; self.param_count()];
            } else {
                w.grad.fill(R::ZERO);
            }
            let sums: LossSums = tr.loss_backward(
                p,
                &mut w.ws,
                &w.tokens,
                &w.segs,
                &w.targets,
                scale,
                &mut w.grad,
            );
            let exact = (0..b)
                .filter(|&r| {
                    let rows = r * t_out..(r + 1) * t_out;
                    self.answer_matches(&w.ws.argmax[rows.clone()], &w.targets[rows])
                })
                .count();
            return SliceStats {
                loss_sum: sums.loss,
                correct_chars: sums.correct,
                exact,
                rows: b,
                positions,
            };
        }
        let vt = tr.vocab;
        w.ws.argmax.resize(positions, 0);
        let sums = softmax_xent_forward_backward(
            &mut w.ws.logits[..positions * vt],
            &w.targets[..positions],
            None,
            vt,
            R::ZERO,
            &mut w.ws.argmax,
        );
        self.transformer_greedy(p, w, inputs, b, false);
        let mut st = SliceStats {
            loss_sum: sums.loss,
            rows: b,
            positions,
            ..Default::default()
        };
        for r in 0..b {
            let rows = r * t_out..(r + 1) * t_out;
            let (pred, want) = (&w.answers[rows.clone()], &w.targets[rows]);
            st.correct_chars += pred.iter().zip(want).filter(|(a, b)| a == b).count();
            st.exact += usize::from(self.answer_matches(pred, want));
        }
        st
    }
}

impl<R: Real> Seq2SeqEngine<R> {
    /// [`Seq2SeqEngine::run`] for a transformer model.
    pub(super) fn run_transformer(
        &mut self,
        p: &[R],
        inputs: &[u8],
        targets: Option<&[u8]>,
        n: usize,
        backward: bool,
    ) -> SliceStats {
        let (t_in, t_out) = (self.model.t_in, self.model.t_out);
        let scale = R::from_f64(1.0 / (n * t_out).max(1) as f64);
        let slices = self.slices(n);
        self.transformer_workers
            .resize_with(self.workers.len(), TransformerWorker::default);
        let model = &self.model;
        let stats = run_on_slices(
            &self.pool,
            &mut self.transformer_workers,
            &slices,
            |w, a, b| {
                let x = &inputs[a * t_in..b * t_in];
                match targets {
                    Some(y) => {
                        let y = &y[a * t_out..b * t_out];
                        model.transformer_slice(p, w, x, y, b - a, scale, backward)
                    }
                    None => {
                        model.transformer_greedy(p, w, x, b - a, true);
                        SliceStats::default()
                    }
                }
            },
            backward.then_some((&mut self.grad[..], |w: &TransformerWorker<R>| &w.grad[..])),
        );
        SliceStats::total(&stats)
    }

    /// [`Seq2SeqEngine::attention_weights`] for a transformer model: `[n, T_out, T_in]`, the
    /// last block's attention (mean over heads) of the row that writes each greedy answer
    /// symbol on each question position. A row's weights on the question sum to at most 1: the
    /// rest falls on the start symbol and the answer written so far.
    pub(super) fn transformer_attention(&mut self, p: &[R], inputs: &[u8], n: usize) -> Vec<R> {
        let answers = self.predict_indices(p, inputs, n);
        let (t_in, t_out) = (self.model.t_in, self.model.t_out);
        let t = t_in + t_out;
        let mut workers = std::mem::take(&mut self.transformer_workers);
        workers.resize_with(1, TransformerWorker::default);
        let w = &mut workers[0];
        let tr = self.model.transformer_net();
        self.model.transformer_rows(w, inputs, &answers, n);
        tr.forward(p, &mut w.ws, &w.tokens, &w.segs, &w.pos, n, t, t_in);
        let probs = tr.attention_probs(&w.ws, tr.blocks.len() - 1);
        let heads = tr.cfg.heads;
        let scale = R::from_f64(1.0 / heads as f64);
        let mut out = vec![R::ZERO; n * t_out * t_in];
        for r in 0..n {
            for h in 0..heads {
                for s in 0..t_out {
                    let row = &probs[((r * heads + h) * t_out + s) * t..][..t_in];
                    let dst = &mut out[(r * t_out + s) * t_in..][..t_in];
                    for (d, &x) in dst.iter_mut().zip(row) {
                        *d += x * scale;
                    }
                }
            }
        }
        self.transformer_workers = workers;
        out
    }

    /// [`Seq2SeqEngine::predict`] for a transformer model: greedy answers' probabilities `[n, T_out, V]`.
    pub(super) fn predict_transformer(
        &mut self,
        p: &[R],
        inputs: &[u8],
        n: usize,
        probs: &mut Vec<R>,
    ) {
        let per = self.model.t_out * self.model.vocab;
        self.run_transformer(p, inputs, None, n, false);
        probs.clear();
        probs.resize(n * per, R::ZERO);
        for (w, (a, b)) in self.transformer_workers.iter().zip(self.slices(n)) {
            probs[a * per..b * per].copy_from_slice(&w.probs[..(b - a) * per]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;
    use crate::nn::gradcheck;
    use rand::{Rng, SeedableRng};

    fn tiny() -> (Seq2Seq, Vec<u8>, Vec<u8>, usize) {
        let cfg = ModelConfig {
            kind: ModelKind::Transformer,
            hidden: 8,
            heads: 2,
            ffn: Some(12),
            layers: 2,
            ..Default::default()
        };
        let (v, t_in, t_out) = (6, 4, 3);
        let m = Seq2Seq::new(&cfg, v, t_in, t_out).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 5;
        let x: Vec<u8> = (0..n * t_in)
            .map(|_| rng.random_range(0..v as u8))
            .collect();
        let y: Vec<u8> = (0..n * t_out)
            .map(|_| rng.random_range(0..v as u8))
            .collect();
        (m, x, y, n)
    }

    #[test]
    fn attention_weights_are_the_last_blocks_head_mean_over_the_question() {
        let (m, x, _, n) = tiny();
        let p: Vec<f64> = m.init_params(7);
        let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
        let w = eng
            .attention_weights(&p, &x, n)
            .expect("a transformer has attention");
        assert_eq!(w.len(), n * m.t_out * m.t_in);
        // Each answer row spreads at most its whole weight over the question (the rest falls on
        // the start symbol and the answer so far), and the first row sees nothing else but the
        // start symbol: it puts some weight on every question position.
        for (i, row) in w.chunks_exact(m.t_in).enumerate() {
            let sum: f64 = row.iter().sum();
            assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)), "{row:?}");
            assert!(sum <= 1.0 + 1e-12, "row {i}: {sum}");
            if i % m.t_out == 0 {
                assert!(
                    row.iter().all(|&v| v > 0.0) && sum < 1.0,
                    "row {i}: {row:?}"
                );
            }
        }
        // The same weights from a worker count of one, and the answers are untouched.
        let answers = eng.predict_indices(&p, &x, n);
        let mut one = Seq2SeqEngine::<f64>::new(m.clone(), 1);
        assert_eq!(one.attention_weights(&p, &x, n).unwrap(), w);
        assert_eq!(eng.predict_indices(&p, &x, n), answers);
    }

    #[test]
    fn the_fused_update_gives_the_bits_of_a_step_then_adam() {
        let (m, x, y, n) = tiny();
        crate::model::tests::assert_fused_update_is_step_then_adam(&m, &x, &y, n);
    }

    #[test]
    fn whole_transformer_gradient_check_f64() {
        let (m, x, y, n) = tiny();
        // Larger than the reference's 0.02 so that every path carries a visible gradient.
        let mut p: Vec<f64> = m.init_params(3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for v in p.iter_mut() {
            *v += 0.3 * (rng.random::<f64>() - 0.5);
        }
        let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
        let st = eng.train_step(&p, &x, &y, n);
        assert!(st.loss_sum > 0.0 && st.positions == n * 3);
        let grad = eng.grad.clone();
        let mut e2 = Seq2SeqEngine::<f64>::new(m.clone(), 1);
        let loss = |pp: &[f64]| e2.evaluate(pp, &x, &y, n).loss_sum / (n * 3) as f64;
        gradcheck::check(
            &p,
            &grad,
            &gradcheck::sample_indices(p.len(), 3),
            1e-4,
            loss,
            "transformer",
        );
    }

    #[test]
    fn greedy_answers_are_the_teacher_forced_argmax_of_themselves() {
        // Decoding with key/value caches, one token at a time, must agree with one full forward
        // pass over the question and the answer it produced.
        let (m, x, _, n) = tiny();
        let mut p: Vec<f64> = m.init_params(5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for v in p.iter_mut() {
            *v += 0.5 * (rng.random::<f64>() - 0.5);
        }
        let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
        let answers = eng.predict_indices(&p, &x, n);
        assert_eq!(answers.len(), n * m.t_out);
        assert!(answers.iter().any(|&a| a != answers[0]), "{answers:?}");
        let mut w = TransformerWorker::default();
        m.transformer_rows(&mut w, &x, &answers, n);
        let t = m.t_in + m.t_out;
        m.transformer_net()
            .forward(&p, &mut w.ws, &w.tokens, &w.segs, &w.pos, n, t, m.t_in);
        let vt = m.vocab + 1;
        for (i, &a) in answers.iter().enumerate() {
            let row = &w.ws.logits[i * vt..i * vt + m.vocab];
            assert_eq!(argmax(row) as u8, a, "row {i}");
        }
        // Greedy exact match equals teacher-forced exact match on these targets: all right.
        let st = eng.evaluate(&p, &x, &answers, n);
        assert_eq!((st.exact, st.correct_chars), (n, n * m.t_out));
    }

    #[test]
    fn same_seed_same_threads_same_bits_and_thread_counts_agree_closely() {
        let (m, x, y, n) = tiny();
        let p: Vec<f32> = m.init_params(9);
        let run = |threads: usize| {
            let mut e = Seq2SeqEngine::<f32>::new(m.clone(), threads);
            let st = e.train_step(&p, &x, &y, n);
            (st.loss_sum, e.grad.clone())
        };
        let (l2a, g2a) = run(2);
        let (l2b, g2b) = run(2);
        assert_eq!(l2a.to_bits(), l2b.to_bits());
        assert!(g2a
            .iter()
            .zip(&g2b)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let (l1, g1) = run(1);
        assert!((l1 - l2a).abs() < 1e-5 * l1.abs().max(1.0));
        assert!(g1.iter().zip(&g2a).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        let base = ModelConfig {
            kind: ModelKind::Transformer,
            hidden: 8,
            heads: 2,
            ..Default::default()
        };
        let err = |cfg: ModelConfig, v: usize, ti: usize, to: usize| {
            Seq2Seq::new(&cfg, v, ti, to).unwrap_err().to_string()
        };
        assert!(err(
            ModelConfig {
                heads: 3,
                ..base.clone()
            },
            6,
            4,
            3
        )
        .contains("heads"));
        assert!(err(
            ModelConfig {
                mask: true,
                ..base.clone()
            },
            6,
            4,
            3
        )
        .contains("mask"));
        assert!(err(base.clone(), 6, 200, 100).contains("256"));
        assert!(err(base.clone(), 256, 4, 3).contains("start symbol"));
        let m = Seq2Seq::new(&base, 6, 4, 3).unwrap();
        assert!(m.summary().contains("transformer") && m.summary().contains("block_0"));
    }
}
